"""components/service_fields.py: every input of `gcp.cloudrunv2.Service` has a rule, and the rules hold.

The SDK installed from requirements.txt is the truth: its args classes are walked, so a provider upgrade
that adds an input fails here until the input has a rule (and, for a held one, the program holds it).
A service as gcloud deploys it, read in v2, registers back field for field when blocked, and a deploy
changes only what the program owns.
"""

from __future__ import annotations

import copy
import re
from pathlib import Path
from typing import Any, Optional

import pulumi_gcp as gcp
import pytest
from pulumi_gcp.cloudrunv2 import outputs
from pulumi_gcp.cloudrunv2.get_service import GetServiceResult
from pydantic.alias_generators import to_camel

from components.ownership import USER_IMAGE_ANNOTATION
from components.platforms import COMMIT_LABEL
from components.program import deploy
from components.service_fields import FIELD_RULES, INHERITED_RULES, RULE_MEANING, listed_name, readme_rows, refused_in, rule_for
from release.cutover.live import LiveStateError, from_cloud_run_v2
from release.stack import load_stack_file
from tests.fixtures.cloud_run_v2 import BY_REVISION, LATEST, gcloud_deployed
from tests.fixtures.profile_sources import profile_facts
from tests.fixtures.projects import SEED_STACK_FILE
from tests.fixtures.provider_read import args_fields, read_back_differences, sdk_paths
from tests.fixtures.pulumi_mocks import CutoverMocks, run_under_mocks

ROOT = Path(__file__).resolve().parent.parent
CONFIG = load_stack_file(SEED_STACK_FILE)
FACTS = profile_facts(CONFIG)
IBKR = CONFIG.services["ibkr"]
KEY = (IBKR.project, IBKR.region, IBKR.service_name)
RUNTIME = f"ibkr-platform-runtime@{IBKR.project}.iam.gserviceaccount.com"
DIRECT_VPC = {
    "connector": "",
    "egress": "PRIVATE_RANGES_ONLY",
    "networkInterfaces": [{"network": "default", "subnetwork": "default", "tags": []}],
}
LIVE_ENV = {
    "ACCOUNT_GROUP": "default",
    "IB_ACCOUNT_GROUP_CONFIG_SECRET_NAME": "ibkr-account-groups",
    "GLOBAL_TELEGRAM_CHAT_ID": "-1001234567890",
    "NOTIFY_LANG": "zh",
    "STRATEGY_PROFILE": "soxl_soxx_trend_income",
    "IBKR_DRY_RUN_ONLY": "true",
}
SECRETS = {"TELEGRAM_TOKEN": ("interactive-brokers-telegram-token", "latest")}


def deployed(commit: str = IBKR.commit, **kwargs: Any) -> dict[str, Any]:
    image = IBKR.image.rsplit(":", 1)[0] + f":{commit}"
    return gcloud_deployed(
        KEY, image, commit, LIVE_ENV, SECRETS, service_account=RUNTIME, vpc_accesses=[DIRECT_VPC], concurrency=1, **kwargs
    )


def registered_for(live: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    run = run_under_mocks(lambda: deploy(CONFIG, FACTS), mocks=CutoverMocks(live={KEY: live}))
    assert run.error is None, run.error
    return run.outputs["ibkr"]["phase"], run.services()["ibkr"].inputs


# --- every field has a rule ------------------------------------------------------------------------


def test_every_input_of_the_installed_sdk_has_a_rule():
    paths = sdk_paths()
    assert len(paths) > 150  # the walk reached the nested blocks
    assert [path for path in paths if rule_for(path) is None] == []
    # ... and no rule names an input the SDK does not have (a stale rule would hide a renamed field).
    assert sorted(set(FIELD_RULES) - set(paths)) == []


def test_only_refused_and_not_sent_rules_cover_fields_they_do_not_name():
    # A held block must name each field: holding a block means registering each field of it.
    for path in sdk_paths():
        if path not in FIELD_RULES:
            parent = next(
                ".".join(path.split(".")[:end]) for end in range(path.count("."), 0, -1) if ".".join(path.split(".")[:end]) in FIELD_RULES
            )
            assert FIELD_RULES[parent][0] in INHERITED_RULES, path
    assert set(RULE_MEANING) == {rule for rule, _ in FIELD_RULES.values()}


def _result_fields(cls: type) -> dict[str, Optional[type]]:
    fields = {}
    for name, value in vars(cls).items():
        if isinstance(value, property):
            annotation = str(value.fget.__annotations__.get("return", "")) if value.fget else ""
            nested = re.search(r"(GetService\w+Result)", annotation)
            fields[name] = getattr(outputs, nested[1]) if nested else None
    return fields


def test_every_input_is_found_in_the_get_service_result_under_its_listed_name():
    def walk(args: type, result: type, prefix: str) -> list[str]:
        missing = []
        fields = _result_fields(result)
        for name, nested, _ in args_fields(args):
            listed = listed_name(f"{prefix}{name}")
            if listed not in fields:
                missing.append(f"{prefix}{name} (looked for {listed})")
            elif nested is not None:
                nested_result = fields[listed]
                assert nested_result is not None, f"{prefix}{name}"
                missing += walk(nested, nested_result, f"{prefix}{name}.")
        return missing

    assert walk(gcp.cloudrunv2.ServiceArgs, GetServiceResult, "") == []


def test_the_readme_lists_each_field_and_its_rule():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert [row for row in readme_rows() if row not in readme] == []
    listed = re.findall(r"^\| `([a-z_.]+)` \| (owned|configurable|held|refused|not-sent) \|", readme, re.M)
    assert sorted(path for path, _ in listed) == sorted(FIELD_RULES)


# --- refused: a live service that sets one is refused, naming it ------------------------------------


def _leaf_value(annotation: str) -> Any:
    if "Sequence" in annotation:
        return ["x"]
    if "Mapping" in annotation:
        return {"k": "v"}
    for kind, value in (("bool", True), ("int", 1), ("float", 0.5)):
        if f"[{kind}," in annotation or f"[{kind}]" in annotation or f"Union[{kind}," in annotation:
            return value
    return "x"


def _set_field(result: dict[str, Any], path: str) -> None:
    """Set `path` in a getService result (every block a list), creating the blocks on the way."""
    import inspect

    cls: Optional[type] = gcp.cloudrunv2.ServiceArgs
    current: dict[str, Any] = result
    parts = path.split(".")
    for index, part in enumerate(parts):
        assert cls is not None
        fields = {name: (nested, is_list) for name, nested, is_list in args_fields(cls)}
        nested, _ = fields[part]
        key = to_camel(listed_name(".".join(parts[: index + 1])))
        if nested is None:
            annotation = str(inspect.signature(cls.__init__).parameters[part].annotation)
            current[key] = _leaf_value(annotation)
            return
        if not current.get(key):
            current[key] = [{}]
        current = current[key][0]
        cls = nested
        if index == len(parts) - 1:
            # A refused block: set its first field (any set field refuses the block).
            name, leaf_nested, _ = args_fields(cls)[0]
            return _set_field_in(current, cls, name, path)


def _set_field_in(block: dict[str, Any], cls: type, name: str, prefix: str) -> None:
    import inspect

    nested = {n: c for n, c, _ in args_fields(cls)}[name]
    key = to_camel(listed_name(f"{prefix}.{name}"))
    if nested is None:
        block[key] = _leaf_value(str(inspect.signature(cls.__init__).parameters[name].annotation))
    else:
        block[key] = [{}]
        _set_field_in(block[key][0], nested, args_fields(nested)[0][0], f"{prefix}.{name}")


REFUSED = [path for path, (rule, _) in FIELD_RULES.items() if rule == "refused"]


def test_the_gcloud_deployed_service_sets_nothing_refused():
    assert refused_in(deployed()) == []


@pytest.mark.parametrize("path", REFUSED)
def test_a_live_service_that_sets_a_refused_field_is_refused_naming_it(path):
    live = deployed()
    _set_field(live, path)
    assert [found for found, _ in refused_in(live)] == [path]
    with pytest.raises(LiveStateError, match=rf"cannot hold \(Cloud Run v2 field {re.escape(path)}\)"):
        from_cloud_run_v2(live)


def test_a_refused_field_stops_the_program_before_anything_is_registered():
    live = deployed()
    _set_field(live, "template.containers.working_dir")
    run = run_under_mocks(lambda: deploy(CONFIG, FACTS), mocks=CutoverMocks(live={KEY: live}))
    assert run.error is not None and "template.containers.working_dir" in str(run.error)
    assert run.services() == {}


def test_a_resource_limit_other_than_cpu_and_memory_is_refused_not_dropped():
    live = deployed()
    live["templates"][0]["containers"][0]["resources"][0]["limits"]["nvidia.com/gpu"] = "1"
    with pytest.raises(LiveStateError, match="nvidia.com/gpu resource limit"):
        from_cloud_run_v2(live)


# --- held: a service as gcloud deploys it registers back field for field ------------------------------


def test_the_gcloud_deployed_service_reads_verbatim():
    settings = from_cloud_run_v2(deployed()).settings
    assert settings.cpu == "1000m" and settings.comparable().cpu == "1" and settings.memory == "512Mi"
    assert settings.container_name == f"{IBKR.service_name}-1"
    assert settings.template_annotations[USER_IMAGE_ANNOTATION].endswith(IBKR.commit)
    assert settings.template_labels["client.knative.dev/nonce"] == "qzvbnxkpwd"
    assert settings.startup_probe is not None and (settings.startup_probe.kind, settings.startup_probe.port) == ("tcp", 8080)
    assert settings.startup_cpu_boost is True and settings.ports[0].name == "http1"


def test_a_blocked_canary_registers_exactly_what_the_provider_reads():
    # 90/10: the new revision takes 10%, the latest ready one is not confirmed, so the service is held.
    old = f"{IBKR.service_name}-00011-abc"
    canary = deployed(
        traffics=[
            {"type": BY_REVISION, "revision": old, "percent": 90, "tag": ""},
            {"type": LATEST, "percent": 10, "revision": "", "tag": ""},
        ]
    )
    phase, registered = registered_for(canary)
    assert phase == "blocked"
    assert read_back_differences(registered, canary) == []
    # Held verbatim, not normalised: "1000m" is a different string from "1" to the provider.
    assert registered["template"]["containers"][0]["resources"]["limits"] == {"cpu": "1000m", "memory": "512Mi"}


CANARY = [{"type": LATEST, "percent": 10}, {"type": BY_REVISION, "revision": "r", "percent": 90}]


@pytest.fixture(scope="module")
def canary_registration() -> tuple[dict[str, Any], dict[str, Any]]:
    live = deployed(traffics=CANARY)
    phase, registered = registered_for(live)
    assert phase == "blocked"
    return live, registered


@pytest.mark.parametrize(
    ("mutate", "field"),
    [
        (lambda inputs: inputs["template"]["containers"][0].pop("name"), "template.containers[0].name"),
        (
            lambda inputs: inputs["template"]["containers"][0]["resources"]["limits"].update(cpu="1"),
            "template.containers[0].resources.limits",
        ),
        (lambda inputs: inputs["template"]["annotations"].pop(USER_IMAGE_ANNOTATION), "template.annotations"),
        (lambda inputs: inputs["template"]["labels"].pop("client.knative.dev/nonce"), "template.labels"),
    ],
)
def test_the_read_back_comparison_sees_what_the_program_would_have_dropped(canary_registration, mutate, field):
    # Not vacuous: each of these was left out (or rewritten) before, and the provider would plan it.
    live, registered = copy.deepcopy(canary_registration)
    assert read_back_differences(registered, live) == []
    mutate(registered)
    assert [line.split(":")[0] for line in read_back_differences(registered, live)] == [field]


def test_every_held_field_set_on_the_live_service_comes_back_when_blocked():
    live = deployed(traffics=CANARY)
    live["description"] = "IBKR strategy service"
    live["iapEnabled"] = True
    template = live["templates"][0]
    template.update(revision=f"{IBKR.service_name}-00012-kxq", healthCheckDisabled=True, sessionAffinity=True)
    template["executionEnvironment"] = "EXECUTION_ENVIRONMENT_GEN2"
    template["annotations"]["features.knative.dev/example"] = "on"
    template["volumes"] = [
        {"name": "cfg", "secrets": [{"secret": "ibkr-account-groups", "defaultMode": 292, "items": [{"path": "g.json", "version": "3", "mode": 256}]}], "emptyDirs": [], "gcs": [], "nfs": [], "cloudSqlInstances": []},
        {"name": "scratch", "secrets": [], "emptyDirs": [{"medium": "MEMORY", "sizeLimit": "64Mi"}], "gcs": [], "nfs": [], "cloudSqlInstances": []},
    ]  # fmt: skip
    container = template["containers"][0]
    container.update(
        commands=["python"],
        args=["-m", "app"],
        dependsOns=["warmup"],
        baseImageUri="us-central1-docker.pkg.dev/serverless-runtimes/google-22/runtimes/python312",
    )
    container["volumeMounts"] = [
        {"name": "cfg", "mountPath": "/etc/ib", "subPath": "g.json"},
        {"name": "scratch", "mountPath": "/tmp/s", "subPath": ""},
    ]
    container["livenessProbes"] = [
        {
            "initialDelaySeconds": 5,
            "timeoutSeconds": 3,
            "periodSeconds": 30,
            "failureThreshold": 4,
            "httpGets": [{"path": "/health", "port": 8080, "httpHeaders": []}],
            "tcpSockets": [],
            "grpcs": [],
        }
    ]
    container["readinessProbes"] = [
        {
            "timeoutSeconds": 2,
            "periodSeconds": 15,
            "failureThreshold": 2,
            "successThreshold": 2,
            "httpGets": [{"path": "/ready", "port": 8080}],
            "grpcs": [],
        }
    ]
    phase, registered = registered_for(live)
    assert phase == "blocked"
    assert read_back_differences(registered, live) == []


def test_a_deploy_changes_only_what_the_program_owns():
    # The live service runs another commit: this update deploys the configured image and nothing else
    # the program does not own (the strategy env is held too, by the phase rule).
    old = "f4496da" + "0" * 33
    live = deployed(commit=old)
    live["templates"][0]["revision"] = f"{IBKR.service_name}-00012-kxq"
    phase, registered = registered_for(live)
    assert phase == "deploy-image"
    changed = {line.split(":")[0] for line in read_back_differences(registered, live)}
    assert changed == {
        "labels",  # commit-sha, kept in step with the template's
        "annotations",  # user-image, following the image
        "template.labels",  # commit-sha
        "template.annotations",  # the release record, and user-image following the image
        "template.revision",  # a new revision: its name is the API's to choose
        "template.containers[0].image",
    }
    template = registered["template"]
    assert template["annotations"][USER_IMAGE_ANNOTATION] == IBKR.image and registered["annotations"][USER_IMAGE_ANNOTATION] == IBKR.image
    assert template["labels"][COMMIT_LABEL] == IBKR.commit and template["labels"]["client.knative.dev/nonce"] == "qzvbnxkpwd"


@pytest.mark.parametrize(
    ("place", "field", "value", "says"),
    [
        ("container", "name", {"planted": "ghp_x"}, "containers[0].name is not a string"),
        ("template", "revision", 7, "templates[0].revision is not a string"),
        ("service", "description", ["ghp_x"], "description is not a string"),
        ("service", "iapEnabled", "true", "iap_enabled is not a boolean"),
        ("container", "dependsOns", "warmup", "containers[0].depends_ons is not a list"),
    ],
)
def test_a_held_field_of_the_wrong_type_is_malformed_and_never_echoed(place, field, value, says):
    live = deployed()
    target = {"service": live, "template": live["templates"][0], "container": live["templates"][0]["containers"][0]}[place]
    target[field] = value
    with pytest.raises(LiveStateError, match=re.escape(says)) as raised:
        from_cloud_run_v2(live)
    assert "ghp_x" not in str(raised.value) and "planted" not in str(raised.value)
