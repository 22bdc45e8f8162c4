"""`adopt` of today's services: many per platform, the target JSON in either variable, account groups,
LongBridge PAPER, a disabled target. The round trip (adopt, then plan against the same live state) changes
nothing but what the program derives: the target completed to the schema's fields, an override removed."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from types import MappingProxyType
from typing import Any, Mapping

import pytest
import yaml

from components.env import ServiceEnv, desired_env
from release.cli import main
from release.config import PROJECT_NAME
from release.cutover.live import read_live_path
from release.cutover.plan import build_plan, render_text
from release.stack import load_stack_file, parse_stack
from tests.fixtures.gate_doubles import Check, Gate
from tests.fixtures.live_json import knative_for_spec, present_images, write_live_dir
from tests.fixtures.profile_sources import profile_facts
from tests.test_runtime_target import RELEASE_RAW, SERVICES_RAW

PASSED = Gate(ok=True, checks=(Check("qpk-tag", True, "v0.7.10 resolves"),))
PLACE = ("platform", "project", "region", "serviceName")


def fleet_raw() -> dict[str, Any]:
    """Today's shape at the seed commits: two IBKR account services (one a dry shadow), a Schwab entry, LongBridge PAPER."""
    ibkr, schwab, sg = (copy.deepcopy(SERVICES_RAW[key]) for key in ("ibkr", "schwab", "longbridge-sg"))

    def account(group: str, dry: bool) -> dict[str, Any]:
        return {
            **copy.deepcopy(ibkr),
            "serviceName": f"interactive-brokers-quant-live-{group}-service",
            "env": {**ibkr["env"], "ACCOUNT_GROUP": group},
            "dryRunOnly": dry,
        }

    return {
        "ibkr-live-a": account("live-a", False),
        "ibkr-shadow": account("shadow", True),
        "schwab-primary": {**schwab, "serviceName": "charles-schwab-primary-service", "dryRunOnly": False, "enabled": False},
        "longbridge-paper": {
            **sg,
            "serviceName": "longbridge-quant-paper-service",
            "accountRegion": "PAPER",
            "longportSecretName": "longport_token_paper",
            "dryRunOnly": False,
        },
    }


FLEET = parse_stack(RELEASE_RAW, fleet_raw())
FACTS = profile_facts(FLEET)


def today_env(key: str) -> ServiceEnv:
    spec = FLEET.services[key]
    requirements = FACTS.requirements(spec.strategy_profile, key)
    assert requirements is not None
    return desired_env(spec, requirements, "true" if spec.dry_run_only is True else "false")


def live_documents(bend: Mapping[str, Mapping[str, Any]] = MappingProxyType({})) -> list[dict[str, Any]]:
    """What today's platform workflows leave running (`bend`: per key, env names to set or, with None, drop)."""
    documents = []
    for key, spec in FLEET.services.items():
        env = today_env(key)
        plain = dict(env.plain)
        if key == "schwab-primary":
            # An older target: the five keys the seed wrote, no selectors; the target disabled.
            plain["RUNTIME_TARGET_JSON"] = json.dumps(
                {k: v for k, v in json.loads(plain["RUNTIME_TARGET_JSON"]).items() if "selector" not in k and k != "account_scope"}
            )
        if key == "longbridge-paper":
            # The target in the variable the runtime reads first; RUNTIME_TARGET_JSON left behind, unsorted.
            plain["QSL_RUNTIME_TARGET_JSON"] = plain["RUNTIME_TARGET_JSON"]
            plain["RUNTIME_TARGET_JSON"] = json.dumps(json.loads(plain["RUNTIME_TARGET_JSON"]), indent=1)
        for name, value in bend.get(key, {}).items():
            if value is None:
                plain.pop(name, None)
            else:
                plain[name] = value
        secrets = {name: str(ref) for name, ref in env.secrets.items()}
        documents.append(knative_for_spec(spec, plain, secrets=secrets))
    return documents


@pytest.fixture(autouse=True)
def ues_catalog_source(seed_fake, monkeypatch):
    for name in ("GITHUB_TOKEN", "CUTOVER_SOURCE", "CUTOVER_GIT_ROOT"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("GITHUB_API_URL", seed_fake.base_url)


def minimal_stack(path: Path) -> Path:
    services = {key: {name: raw[name] for name in PLACE} for key, raw in fleet_raw().items()}
    document = {"config": {f"{PROJECT_NAME}:release": RELEASE_RAW, f"{PROJECT_NAME}:services": services}}
    path.write_text(yaml.safe_dump(document, sort_keys=False), encoding="utf-8")
    return path


def adopt(tmp_path: Path, documents: list[dict[str, Any]], capsys) -> tuple[int, str, Path]:
    live_dir = write_live_dir(tmp_path / "live", documents)
    output = tmp_path / "adopted.yaml"
    stack = minimal_stack(tmp_path / "Pulumi.today.yaml")
    code = main(
        ["adopt", "--config-file", str(stack), "--live", str(live_dir), "--output", str(output), "--import-file", str(tmp_path / "i.json")]
    )
    return code, capsys.readouterr().err, output


def test_adopt_today_then_plan_changes_only_what_the_program_derives(tmp_path, capsys):
    code, err, output = adopt(tmp_path, live_documents(), capsys)
    assert code == 0, err
    services = yaml.safe_load(output.read_text(encoding="utf-8"))[f"{PROJECT_NAME}:services"]
    live_a, shadow, primary, paper = (services[key] for key in ("ibkr-live-a", "ibkr-shadow", "schwab-primary", "longbridge-paper"))
    # Complete entries: every target field written, from the live target (or derived where it says nothing).
    assert (live_a["deploymentSelector"], live_a["accountSelector"], live_a["accountScope"]) == ("live-a", ["live-a"], "live-a")
    assert (live_a["executionMode"], live_a["dryRunOnly"], live_a["enabled"]) == ("live", False, True)
    assert live_a["env"]["ACCOUNT_GROUP"] == "live-a"
    assert (shadow["executionMode"], shadow["dryRunOnly"], shadow["deploymentSelector"]) == ("paper", True, "shadow")
    assert (primary["enabled"], primary["deploymentSelector"], primary["accountSelector"]) == (False, "primary", ["primary"])
    assert (paper["accountRegion"], paper["deploymentSelector"], paper["accountScope"]) == ("PAPER", "PAPER", "PAPER")
    assert "QSL_RUNTIME_TARGET_JSON" in err and "removes the override" in err

    adopted = tmp_path / "Pulumi.adopted.yaml"
    adopted.write_text(
        yaml.safe_dump({"config": {f"{PROJECT_NAME}:release": RELEASE_RAW, f"{PROJECT_NAME}:services": services}}), encoding="utf-8"
    )
    config = load_stack_file(adopted)
    live = read_live_path(tmp_path / "live", config.services)
    plan = build_plan(config, PASSED, live, profile_facts(config), images=present_images(config.services))
    by_key = {service.key: service for service in plan.services}
    assert {key: s.phase for key, s in by_key.items()} == {
        "ibkr-live-a": "in-sync",
        "ibkr-shadow": "in-sync",
        "schwab-primary": "switch-env",
        "longbridge-paper": "switch-env",
    }
    for service in plan.services:
        assert service.settings_diff == (), (service.key, service.settings_diff)
    diffs = {key: (s.applied_env_diff.added, s.applied_env_diff.changed, s.applied_env_diff.removed) for key, s in by_key.items()}
    assert diffs["schwab-primary"] == ((), ("RUNTIME_TARGET_JSON",), ())
    assert diffs["longbridge-paper"] == ((), ("RUNTIME_TARGET_JSON",), ("QSL_RUNTIME_TARGET_JSON",))
    # The target the switch writes is the one that ran (the override's), in its canonical form.
    paper_env = by_key["longbridge-paper"].applied.env.plain
    assert paper_env["RUNTIME_TARGET_JSON"] == live["longbridge-paper"].env["QSL_RUNTIME_TARGET_JSON"]
    assert "runs now: tqqq_growth_income, LIVE trading (QSL_RUNTIME_TARGET_JSON)" in render_text(plan)


@pytest.mark.parametrize(
    "bend, words",
    [
        # The target says dry, the flag says live: which one trades depends on the image.
        ({"ibkr-live-a": {"IBKR_DRY_RUN_ONLY": "true"}}, ["says dry_run_only false, but IBKR_DRY_RUN_ONLY says true"]),
        # A target the runtime refuses runs nothing: there is no profile to adopt.
        (
            {"ibkr-shadow": {"RUNTIME_TARGET_JSON": json.dumps({"platform_id": "schwab", "strategy_profile": "x", "dry_run_only": True})}},
            ["services.ibkr-shadow", "nothing readable", "names platform 'schwab', not ibkr"],
        ),
        ({"schwab-primary": {"RUNTIME_TARGET_ENABLED": "sometimes"}}, ["RUNTIME_TARGET_ENABLED on charles-schwab-primary-service"]),
        (
            {"longbridge-paper": {"QSL_RUNTIME_TARGET_JSON": '{"platform_id":"longbridge","strategy_profile":"a","strategy_profile":"b"}'}},
            ["names strategy_profile twice"],
        ),
    ],
)
def test_a_service_whose_target_cannot_be_adopted_faithfully_writes_nothing(tmp_path, capsys, bend, words):
    code, err, output = adopt(tmp_path, live_documents(bend), capsys)
    assert code == 2
    for word in words:
        assert word in err, err
    assert not output.exists()
