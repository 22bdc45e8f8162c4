"""The real `__main__.py` under Pulumi mocks: config -> release gate -> providers -> services -> exports.

Tests that need the gate to pass run it for real against the GitHub fake serving the seed release
(GITHUB_API_URL points at it); nothing here stubs the gate out.
"""

from __future__ import annotations

import json

import pulumi
import pytest
import yaml

from release.config import PROJECT_NAME
from tests.fixtures.program_gate import GATE_ENV
from tests.fixtures.pulumi_mocks import (
    PROD_STACK_FILE,
    deployed_image,
    program_config,
    run_main,
    service_env,
    stack_file_config,
)
from tests.test_env import EXPECTED

PROD = yaml.safe_load(PROD_STACK_FILE.read_text(encoding="utf-8"))["config"]
RELEASE = PROD[f"{PROJECT_NAME}:release"]
SERVICES = PROD[f"{PROJECT_NAME}:services"]


def expected_registered_env(key: str) -> dict:
    env = EXPECTED[key]
    return {
        **env.plain,
        **{name: ("secret", ref.secret, ref.version) for name, ref in env.secrets.items()},
    }


def test_prod_stack_registers_exactly_the_four_contract_services(github_api):
    run = run_main()
    assert run.error is None, run.error
    services = run.services()
    assert sorted(services) == ["ibkr", "longbridge-hk", "longbridge-sg", "schwab"]
    for key, service in services.items():
        spec = SERVICES[key]
        assert service_env(service.inputs) == expected_registered_env(key)
        assert service.inputs["name"] == spec["serviceName"]
        assert service.inputs["template"]["containers"][0]["image"] == deployed_image(spec["image"])
        assert service.inputs["template"]["labels"] == {"commit-sha": spec["commit"]}
    assert len(run.providers()) == 3
    assert set(run.outputs) == set(SERVICES)
    assert run.outputs["ibkr"]["strategyProfile"] == "soxl_soxx_trend_income"


def test_seed_target_env(github_api):
    envs = {key: service_env(service.inputs) for key, service in run_main().services().items()}
    snapshot_names = {"FEATURE_SNAPSHOT_PATH", "FEATURE_SNAPSHOT_MANIFEST_PATH", "STRATEGY_CONFIG_PATH", "RECONCILIATION_OUTPUT_PATH"}
    # IBKR leaves its snapshot profile: no snapshot, config or reconciliation vars at all.
    assert not [name for name in envs["ibkr"] if any(name.endswith(suffix) for suffix in snapshot_names)]
    hk = envs["longbridge-hk"]
    assert sorted(name for name in hk if name.startswith("LONGBRIDGE_") and name != "LONGBRIDGE_DRY_RUN_ONLY") == [
        "LONGBRIDGE_FEATURE_SNAPSHOT_MANIFEST_PATH",
        "LONGBRIDGE_FEATURE_SNAPSHOT_PATH",
        "LONGBRIDGE_STRATEGY_CONFIG_PATH",
    ]
    assert hk["ACCOUNT_PREFIX"] == "HK" and envs["longbridge-sg"]["ACCOUNT_PREFIX"] == "SG"
    for env in envs.values():
        assert env["TELEGRAM_TOKEN"][0] == "secret"


def test_a_failing_gate_fails_the_program_before_any_registration(github_api):
    stale = json.loads(json.dumps(SERVICES))
    # Schwab's pre-cutover commit: a valid config, but its requirements still pin QPK v0.7.8 / UES v0.7.10.
    baseline = github_api.seed_baseline_commit(github_api.SCHWAB)
    stale["schwab"]["commit"] = baseline
    stale["schwab"]["image"] = SERVICES["schwab"]["image"].rsplit(":", 1)[0] + ":" + baseline
    run = run_main(program_config(RELEASE, stale))
    assert isinstance(run.error, pulumi.RunError), run.error
    message = str(run.error)
    assert message.startswith("Release gate: FAIL")
    assert "v0.7.8" in message and "schwab" in message.lower()
    assert run.resources == []


def test_a_profile_the_commit_does_not_enable_fails_the_gate(github_api):
    services = json.loads(json.dumps(SERVICES))
    services["schwab"]["strategyProfile"] = "qqq_tech_enhancement"
    run = run_main(program_config(RELEASE, services))
    assert isinstance(run.error, pulumi.RunError) and run.resources == []
    message = str(run.error)
    assert (
        "FAIL profile-facts:schwab: services.schwab.strategyProfile qqq_tech_enhancement is not a profile the registry of schwab" in message
    )
    assert "enabled there: soxl_soxx_trend_income, tqqq_growth_income" in message


def test_profile_rules_run_on_the_gates_own_facts_before_any_registration(github_api):
    services = json.loads(json.dumps(SERVICES))
    del services["longbridge-hk"]["snapshot"]["manifestPath"]  # the proved adapter requires a manifest
    services["longbridge-sg"]["serviceName"] = "longbridge-qqq-tqqq-growth-income"  # an alias, in a name
    run = run_main(program_config(RELEASE, services))
    assert isinstance(run.error, pulumi.RunError) and run.resources == []
    message = str(run.error)
    assert "stack prod config is invalid (3 problems)" in message  # the alias and the name it contains
    assert (
        "services.longbridge-hk.snapshot.manifestPath: qqq_tech_enhancement requires a snapshot manifest "
        "(tech_pullback_cash_buffer.feature_snapshot.v1)" in message
    )
    assert "contains the strategy name qqq_tqqq_growth_income" in message
    assert "contains the strategy name tqqq_growth_income" in message


def test_an_unreachable_gate_fails_closed_before_any_registration(monkeypatch):
    for name in GATE_ENV:
        monkeypatch.delenv(name, raising=False)
    # Nothing listens on port 9 of loopback: the gate cannot verify the release and must not pass.
    monkeypatch.setenv("GITHUB_API_URL", "http://127.0.0.1:9")
    run = run_main()
    assert isinstance(run.error, pulumi.RunError), run.error
    assert "Release gate: UNVERIFIED" in str(run.error)
    assert run.resources == []


def test_a_bad_gate_source_selection_is_a_run_error(monkeypatch):
    for name in GATE_ENV:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("CUTOVER_SOURCE", "svn")
    run = run_main()
    assert isinstance(run.error, pulumi.RunError)
    assert "CUTOVER_SOURCE='svn' is not a source" in str(run.error)
    assert run.resources == []


def bad_config():
    services = json.loads(json.dumps(SERVICES))
    services["schwab"]["strategyProfile"] = "qqq_tech_enhancement"
    services["ibkr"]["env"]["STRATEGY_PROFILE"] = "global_etf_rotation"
    services["longbridge-sg"]["accountRegion"] = "HK"
    services["longbridge-hk"]["serviceName"] = "longbridge-quant-sg-service"
    services["ibkr"]["env"]["IB_PASSWORD"] = "do-not-log-me"
    return program_config(RELEASE, services)


def test_invalid_config_registers_nothing_and_lists_every_problem(monkeypatch):
    # No gate environment at all: an invalid config must fail before the gate is even consulted.
    for name in GATE_ENV:
        monkeypatch.delenv(name, raising=False)
    run = run_main(bad_config())
    assert isinstance(run.error, pulumi.RunError)
    assert run.resources == []
    assert run.outputs == {}
    message = str(run.error)
    # (The profile schwab asks for is not enabled on its commit: the gate's profile-facts check says so,
    # once the structure is valid; see test_a_profile_the_commit_does_not_enable_fails_the_gate.)
    assert "stack prod config is invalid (4 problems)" in message
    for line in (
        "services.ibkr.env.STRATEGY_PROFILE: is set by the program; use strategyProfile instead",
        "services.longbridge-sg.accountRegion: HK services run in asia-east2",
        "services.longbridge-sg.serviceName: longbridge-quant-sg-service is already the service of longbridge-hk",
        "services.ibkr.env.IB_PASSWORD: looks like a credential",
    ):
        assert line in message
    assert "do-not-log-me" not in message


def test_duplicate_keys_in_program_config_are_refused():
    services_json = json.dumps(SERVICES)
    # The same key twice in the JSON the CLI hands over: json.loads would silently keep the last one.
    duplicated = services_json[:-1] + ', "ibkr": ' + json.dumps(SERVICES["ibkr"]) + "}"
    run = run_main({**stack_file_config(), f"{PROJECT_NAME}:services": duplicated})
    assert isinstance(run.error, pulumi.RunError)
    assert "services.ibkr: duplicate key; keep one" in str(run.error)
    assert run.resources == []


@pytest.mark.parametrize(
    "services_text, message",
    [
        ('{"ibkr": ' + "[" * 100000 + "]" * 100000 + "}", "services: nests deeper than 64 levels"),
        ('{"ibkr": ' + "[" * 65 + "]" * 65 + "}", "services: nests deeper than 64 levels"),
        ('{"ibkr": "' + "x" * (1024 * 1024) + '"}', "services: is longer than the bound"),
    ],
)
def test_deep_or_huge_program_config_is_a_run_error_not_a_recursion_error(services_text, message):
    run = run_main({**stack_file_config(), f"{PROJECT_NAME}:services": services_text})
    assert isinstance(run.error, pulumi.RunError), repr(run.error)
    assert message in str(run.error)
    assert run.resources == []


def test_missing_config_is_a_problem_not_a_crash():
    run = run_main({})
    assert isinstance(run.error, pulumi.RunError)
    assert "release: missing" in str(run.error) and "services: missing or empty" in str(run.error)
    assert run.resources == []


def test_the_gate_checks_each_platform_commit_once_however_many_services_share_it(monkeypatch):
    github_fake = pytest.importorskip("tests.fixtures.github_fake")
    for name in GATE_ENV:
        monkeypatch.delenv(name, raising=False)
    # Twelve services: every prod service three times over, so three keys share each platform commit.
    tripled = {
        f"{key}-{n}": {**spec, "serviceName": spec["serviceName"].replace("-service", f"-{n}-service")}
        for key, spec in SERVICES.items()
        for n in range(3)
    }
    requests = {}
    for label, services in (("prod", SERVICES), ("tripled", tripled)):
        with github_fake.running(github_fake.prod_seed_repos()) as fake:
            monkeypatch.setenv("GITHUB_API_URL", fake.base_url)
            run = run_main(program_config(RELEASE, services))
            assert run.error is None, run.error
            assert len(run.services()) == len(services)
            requests[label] = fake.count()
    assert requests["tripled"] == requests["prod"]
