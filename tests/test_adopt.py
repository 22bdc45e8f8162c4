"""`python -m release adopt`: the round trip (adopt a live state, plan it against the same live state:
nothing to change but what the program derives and the live service lacks), the import file against
what the program registers, and every refusal (exit 2, nothing written, no credential echoed).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from components.env import desired_env
from components.ownership import COMPONENT_TYPE, SERVICE_TYPE
from components.platforms import RUNTIME_TARGET_JSON
from components.program import deploy
from release.cli import main
from release.config import PROJECT_NAME
from release.cutover.adopt import import_urns
from release.cutover.live import read_live_path
from release.cutover.plan import build_plan
from release.stack import load_stack_file
from tests.fixtures.gate_doubles import Check, Gate
from tests.fixtures.live_json import knative_for_spec, present_images, write_live_dir
from tests.fixtures.profile_sources import profile_facts
from tests.fixtures.projects import SEED_STACK_FILE
from tests.fixtures.pulumi_mocks import PROVIDER_TYPE, run_under_mocks

CONFIG = load_stack_file(SEED_STACK_FILE)
FACTS = profile_facts(CONFIG)
PASSED = Gate(ok=True, checks=(Check("qpk-tag", True, "v0.7.10 resolves"),))
RELEASE = {"quantPlatformKit": "v0.7.10", "usEquityStrategies": "v0.7.13"}
PLACE = ("platform", "project", "region", "serviceName")


@pytest.fixture(autouse=True)
def ues_catalog_source(seed_fake, monkeypatch):
    """adopt reads UES's catalog at the bundle tag (for canonical names) from GitHub: the fake serves it."""
    for name in ("GITHUB_TOKEN", "CUTOVER_SOURCE", "CUTOVER_GIT_ROOT"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("GITHUB_API_URL", seed_fake.base_url)


def minimal_stack(path: Path, **extra_per_key: dict[str, Any]) -> Path:
    """A stack whose service entries carry only where each service lives (plus any stale extras)."""
    services = {}
    for key, spec in CONFIG.services.items():
        dumped = spec.model_dump(by_alias=True)
        services[key] = {name: dumped[name] for name in PLACE} | extra_per_key.get(key, {})
    document = {"config": {f"{PROJECT_NAME}:release": RELEASE, f"{PROJECT_NAME}:services": services}}
    path.write_text(yaml.safe_dump(document, sort_keys=False), encoding="utf-8")
    return path


def running_env(key: str, without: tuple[str, ...] = ()) -> dict[str, str]:
    """What the service runs at the seed target, dry run on; `without` drops names (a seed-era service)."""
    spec = CONFIG.services[key]
    requirements = FACTS.requirements(spec.strategy_profile, key)
    assert requirements is not None
    env = desired_env(spec, requirements, "true")
    plain = {name: value for name, value in env.plain.items() if name not in without}
    return plain


def hand_deployed_ibkr(doc: dict[str, Any]) -> dict[str, Any]:
    """IBKR as deployed by hand: Direct VPC egress, own account, ingress all, a secret volume, min 1
    instance, extra template labels."""
    doc["metadata"]["annotations"]["run.googleapis.com/ingress"] = "all"
    template = doc["spec"]["template"]
    template["metadata"]["labels"]["team"] = "trading"
    template["metadata"]["annotations"].update(
        {
            "autoscaling.knative.dev/minScale": "1",
            "run.googleapis.com/network-interfaces": json.dumps([{"network": "default", "subnetwork": "cloudrun-direct-egress"}]),
            "run.googleapis.com/vpc-access-egress": "private-ranges-only",
        }
    )
    template["spec"]["serviceAccountName"] = "ib-runner@interactivebrokersquant.iam.gserviceaccount.com"
    template["spec"]["volumes"] = [
        {"name": "cfg", "secret": {"secretName": "ibkr-account-groups", "items": [{"key": "3", "path": "g.json"}]}}
    ]
    template["spec"]["containers"][0]["volumeMounts"] = [{"name": "cfg", "mountPath": "/etc/ib"}]
    return doc


def live_documents() -> list[dict[str, Any]]:
    """The four prod services as they run before adoption."""
    docs = []
    for key, spec in CONFIG.services.items():
        # IBKR and LongBridge SG are seed-era: no RUNTIME_TARGET_JSON yet.
        without = (RUNTIME_TARGET_JSON,) if key in ("ibkr", "longbridge-sg") else ()
        env = running_env(key, without)
        if key == "schwab":
            env["FEATURE_FLAGS"] = "fast-close"  # plain env the config does not list yet
        secrets = {name: str(ref) for name, ref in spec.secrets.items()}
        if key == "longbridge-hk":
            secrets["TELEGRAM_TOKEN"] = "projects/sharedsecrets/secrets/longbridge-telegram-token:2"
        doc = knative_for_spec(spec, env, secrets=secrets)
        docs.append(hand_deployed_ibkr(doc) if key == "ibkr" else doc)
    return docs


def adopt(tmp_path: Path, live_dir: Path, stack: Path, capsys) -> tuple[int, str, Path, Path]:
    output, imports = tmp_path / "adopted.yaml", tmp_path / "import.json"
    code = main(["adopt", "--config-file", str(stack), "--live", str(live_dir), "--output", str(output), "--import-file", str(imports)])
    return code, capsys.readouterr().err, output, imports


def test_adopt_then_plan_against_the_same_live_state_changes_nothing_but_derived_additions(tmp_path, capsys):
    live_dir = write_live_dir(tmp_path / "live", live_documents())
    # Stale extras in the input are replaced, not trusted.
    stack = minimal_stack(tmp_path / "Pulumi.prod.yaml", ibkr={"commit": "0" * 40, "strategyProfile": "global_etf_rotation"})
    code, err, output, _ = adopt(tmp_path, live_dir, stack, capsys)
    assert code == 0, err
    document = yaml.safe_load(output.read_text(encoding="utf-8"))
    # The release the services run, read from what their commits install (no release record on them).
    assert list(document) == [f"{PROJECT_NAME}:release", f"{PROJECT_NAME}:services"] and document[f"{PROJECT_NAME}:release"] == RELEASE
    services = document[f"{PROJECT_NAME}:services"]
    ibkr = services["ibkr"]
    assert ibkr["commit"] == CONFIG.services["ibkr"].commit and ibkr["dryRunOnly"] is True
    assert ibkr["strategyProfile"] == "soxl_soxx_trend_income"
    # Held settings that differ from a new service's defaults are written; the rest are held silently.
    assert ibkr["serviceAccount"] == "ib-runner@interactivebrokersquant.iam.gserviceaccount.com"
    assert ibkr["ingress"] == "all" and ibkr["scaling"] == {"minInstances": 1}
    assert ibkr["vpcAccess"] == {"network": "default", "subnetwork": "cloudrun-direct-egress", "egress": "private-ranges-only"}
    assert services["schwab"]["env"]["FEATURE_FLAGS"] == "fast-close"
    assert services["longbridge-hk"]["secrets"]["TELEGRAM_TOKEN"] == "projects/sharedsecrets/secrets/longbridge-telegram-token:2"
    assert services["longbridge-hk"]["snapshot"]["featureSnapshotPath"].startswith("gs://")

    adopted_stack = tmp_path / "Pulumi.adopted.yaml"
    adopted_stack.write_text(
        yaml.safe_dump({"config": {f"{PROJECT_NAME}:release": RELEASE, **document}}, sort_keys=False), encoding="utf-8"
    )
    config = load_stack_file(adopted_stack)
    live = read_live_path(live_dir, config.services)
    plan = build_plan(config, PASSED, live, profile_facts(config), images=present_images(config.services))
    phases = {service.key: service.phase for service in plan.services}
    assert phases == {"ibkr": "switch-env", "schwab": "in-sync", "longbridge-hk": "in-sync", "longbridge-sg": "switch-env"}
    for service in plan.services:
        assert service.settings_diff == (), (service.key, service.settings_diff)
        diff = service.applied_env_diff
        expected_added = (RUNTIME_TARGET_JSON,) if service.phase == "switch-env" else ()
        assert (diff.added, diff.changed, diff.removed) == (expected_added, (), ()), service.key


def test_the_import_file_names_exactly_what_the_program_registers(tmp_path, capsys):
    live_dir = write_live_dir(tmp_path / "live", live_documents())
    code, err, _, imports = adopt(tmp_path, live_dir, minimal_stack(tmp_path / "Pulumi.prod.yaml"), capsys)
    assert code == 0, err
    document = json.loads(imports.read_text(encoding="utf-8"))
    services = [entry for entry in document["resources"] if entry["type"] == SERVICE_TYPE]
    assert {entry["id"] for entry in services} == {
        f"projects/{spec.project}/locations/{spec.region}/services/{spec.service_name}" for spec in CONFIG.services.values()
    }
    for entry in services:
        # Its own logical name, under its component, on its project's provider.
        assert entry["name"] == f"{entry['parent']}-cloud-run" and entry["provider"] in document["nameTable"]
    run = run_under_mocks(lambda: deploy(CONFIG, FACTS))
    assert run.error is None, run.error
    registered = {engine_urn(r.urn) for r in run.resources if r.type in (SERVICE_TYPE, COMPONENT_TYPE)}
    assert set(import_urns(document, "prod").values()) == registered
    assert set(document["nameTable"].values()) == {engine_urn(r.urn) for r in run.of_type(PROVIDER_TYPE)}


def engine_urn(mock_urn: str) -> str:
    """The SDK's mock monitor qualifies a top-level resource's type with the root stack's
    (`pulumi:pulumi:Stack$...`); the engine leaves the root stack out of the type chain."""
    return mock_urn.replace("::pulumi:pulumi:Stack$", "::")


def test_an_alias_is_written_as_its_canonical_name_and_said_so(tmp_path, capsys):
    docs = live_documents()
    sg = next(doc for doc in docs if doc["metadata"]["name"] == CONFIG.services["longbridge-sg"].service_name)
    env = sg["spec"]["template"]["spec"]["containers"][0]["env"]
    next(entry for entry in env if entry["name"] == "STRATEGY_PROFILE")["value"] = "hybrid_growth_income"
    live_dir = write_live_dir(tmp_path / "live", docs)
    code, err, output, _ = adopt(tmp_path, live_dir, minimal_stack(tmp_path / "Pulumi.prod.yaml"), capsys)
    assert code == 0, err
    services = yaml.safe_load(output.read_text(encoding="utf-8"))[f"{PROJECT_NAME}:services"]
    assert services["longbridge-sg"]["strategyProfile"] == "tqqq_growth_income"
    assert "hybrid_growth_income is an alias" in err and "tqqq_growth_income" in err


def _bend(doc_key: str, bend) -> list[dict[str, Any]]:
    docs = live_documents()
    bend(next(doc for doc in docs if doc["metadata"]["name"] == CONFIG.services[doc_key].service_name))
    return docs


def _drop_env(name: str):
    def bend(doc: dict[str, Any]) -> None:
        container = doc["spec"]["template"]["spec"]["containers"][0]
        container["env"] = [entry for entry in container["env"] if entry["name"] != name]

    return bend


def _add_env(name: str, value: str):
    def bend(doc: dict[str, Any]) -> None:
        doc["spec"]["template"]["spec"]["containers"][0]["env"].append({"name": name, "value": value})

    return bend


def _no_commit(doc: dict[str, Any]) -> None:
    del doc["spec"]["template"]["metadata"]["labels"]["commit-sha"]


def _bad_egress(doc: dict[str, Any]) -> None:
    doc["spec"]["template"]["metadata"]["annotations"]["run.googleapis.com/vpc-access-egress"] = "everything"


@pytest.mark.parametrize(
    "key, bend, says",
    [
        ("ibkr", _no_commit, "services.ibkr: interactive-brokers-quant-service has no commit-sha label"),
        ("schwab", _drop_env("SCHWAB_DRY_RUN_ONLY"), "services.schwab: SCHWAB_DRY_RUN_ONLY is unset"),
        ("schwab", _add_env("BROKER_PASSWORD", "hunter2"), "services.schwab: BROKER_PASSWORD on charles-schwab-quant-service"),
        ("ibkr", _bad_egress, "run.googleapis.com/vpc-access-egress is 'everything'"),
    ],
)
def test_a_service_that_cannot_be_adopted_is_refused_and_nothing_is_written(tmp_path, capsys, key, bend, says):
    live_dir = write_live_dir(tmp_path / "live", _bend(key, bend))
    code, err, output, imports = adopt(tmp_path, live_dir, minimal_stack(tmp_path / "Pulumi.prod.yaml"), capsys)
    assert code == 2
    assert says in err
    assert not output.exists() and not imports.exists()
    assert "hunter2" not in err
    if "PASSWORD" in says:
        assert "move it to Secret Manager" in err


def test_an_import_target_whose_project_is_a_number_is_refused(tmp_path, capsys):
    live_dir = write_live_dir(tmp_path / "live", live_documents())
    stack = minimal_stack(tmp_path / "Pulumi.prod.yaml", schwab={"project": "123456789012"})
    code, err, output, imports = adopt(tmp_path, live_dir, stack, capsys)
    assert code == 2 and "services.schwab.project: 123456789012 is a project number" in err
    assert not output.exists() and not imports.exists()


def test_with_the_live_jobs_adopt_writes_their_settings_and_their_imports(tmp_path, capsys):
    from tests.fixtures.live_json import iam_policy, invoker_policy, scheduler_job, write_json

    live_dir = write_live_dir(tmp_path / "live", live_documents())
    jobs = tmp_path / "jobs"
    for key, spec in CONFIG.services.items():
        # Schwab's job was moved by hand to 09:50 Hong Kong time; the others run the defaults.
        bend = {"schedule": "50 9 * * 1-5", "time_zone": "Asia/Hong_Kong"} if key == "schwab" else {}
        write_json(jobs / f"{key}.json", scheduler_job(spec, **bend))
    iam = tmp_path / "iam"
    for key, spec in CONFIG.services.items():
        # Every policy grants the scheduler account except LongBridge SG's, which was never bound.
        write_json(iam / f"{spec.service_name}.json", iam_policy({}) if key == "longbridge-sg" else invoker_policy(spec))
    output, imports = tmp_path / "adopted.yaml", tmp_path / "import.json"
    argv = ["adopt", "--config-file", str(minimal_stack(tmp_path / "Pulumi.prod.yaml")), "--live", str(live_dir)]
    code = main([*argv, "--scheduler", str(jobs), "--iam", str(iam), "--output", str(output), "--import-file", str(imports)])
    err = capsys.readouterr().err
    assert code == 0, err
    # The unbound member is not imported (it would fail the import half-way); the first pulumi up creates it.
    assert "no invoker member import for longbridge-sg (the live policy does not grant" in err
    services = yaml.safe_load(output.read_text(encoding="utf-8"))[f"{PROJECT_NAME}:services"]
    assert services["schwab"]["scheduler"]["schedule"] == "50 9 * * 1-5"
    assert services["schwab"]["scheduler"]["timeZone"] == "Asia/Hong_Kong"
    document = json.loads(imports.read_text(encoding="utf-8"))
    names = {entry["name"]: entry for entry in document["resources"]}
    assert names["schwab-scheduler"]["parent"] == "schwab" and names["schwab-invoker"]["provider"] == "gcp-charlesschwabquant"
    assert "longbridge-sg-scheduler" in names and "longbridge-sg-invoker" not in names
    # Every child resolves to what the program registers under the same component.
    run = run_under_mocks(lambda: deploy(CONFIG, FACTS))
    registered = {engine_urn(r.urn) for r in run.resources if r.type != PROVIDER_TYPE}
    assert set(import_urns(document, "prod").values()) <= registered


def test_without_the_jobs_adopt_says_the_import_file_lacks_them(tmp_path, capsys):
    live_dir = write_live_dir(tmp_path / "live", live_documents())
    code, err, _, imports = adopt(tmp_path, live_dir, minimal_stack(tmp_path / "Pulumi.prod.yaml"), capsys)
    assert code == 0
    assert "scheduler jobs not read (no --scheduler)" in err and "--scheduler gcloud" in err
    assert "(invoker policies not read (no --iam)): the first pulumi up creates each <key>-invoker" in err
    names = {entry["name"] for entry in json.loads(imports.read_text(encoding="utf-8"))["resources"]}
    assert not any(name.endswith("-scheduler") or name.endswith("-invoker") for name in names)


def test_adopt_without_a_readable_ues_catalog_refuses_instead_of_guessing_names(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("GITHUB_API_URL", "http://127.0.0.1:9")  # nothing listens: the catalog cannot be read
    live_dir = write_live_dir(tmp_path / "live", live_documents())
    code, err, output, _ = adopt(tmp_path, live_dir, minimal_stack(tmp_path / "Pulumi.prod.yaml"), capsys)
    assert code == 2 and not output.exists()
    assert "installs could not be read" in err and "fix access to the source" in err


# --- where adopt writes: all or nothing, never a FIFO, never the stack file it reads ---------------------


def _adopt_to(tmp_path: Path, capsys, output: Path, imports: Path) -> tuple[int, str, Path]:
    live_dir = write_live_dir(tmp_path / "live", live_documents())
    stack = minimal_stack(tmp_path / "Pulumi.prod.yaml")
    argv = ["adopt", "--config-file", str(stack), "--live", str(live_dir), "--output", str(output), "--import-file", str(imports)]
    return main(argv), capsys.readouterr().err, stack


def test_adopt_to_a_fifo_is_refused_at_once_not_a_hang(tmp_path, capsys):
    import os

    fifo = tmp_path / "adopted.yaml"
    os.mkfifo(fifo)
    code, err, _ = _adopt_to(tmp_path, capsys, fifo, tmp_path / "import.json")
    assert code == 2 and "adopted.yaml: is a FIFO, not a regular file" in err
    # nothing was written: the import file is not there either
    assert not (tmp_path / "import.json").exists()


def test_adopt_writes_nothing_when_one_output_cannot_be_written(tmp_path, capsys):
    imports = tmp_path / "import.json"
    code, err, _ = _adopt_to(tmp_path, capsys, tmp_path / "missing-dir" / "adopted.yaml", imports)
    assert code == 2 and "adopted.yaml: cannot be written" in err
    assert not imports.exists() and list(tmp_path.glob(".import.json.*")) == []


def test_adopt_never_overwrites_the_stack_file_it_reads(tmp_path, capsys):
    stack_text = minimal_stack(tmp_path / "Pulumi.prod.yaml").read_text()
    code, err, stack = _adopt_to(tmp_path, capsys, tmp_path / "Pulumi.prod.yaml", tmp_path / "import.json")
    assert code == 2 and "which this command reads" in err
    assert stack.read_text() == stack_text and not (tmp_path / "import.json").exists()


def test_stack_and_config_file_together_are_refused(tmp_path, capsys):
    stack = minimal_stack(tmp_path / "Pulumi.prod.yaml")
    code = main(["adopt", "--stack", "staging", "--config-file", str(stack), "--live", str(tmp_path)])
    assert code == 2 and "--stack and --config-file name the stack twice" in capsys.readouterr().err
