"""The runtime target (components/runtime_target.py): the target the program derives and owns, its defaults,
its bad input, and what a live service runs, read in the runtime's precedence. Pure: no Pulumi."""

from __future__ import annotations

import copy
import json
from typing import Any, Callable

import pytest
import yaml

from components.env import desired_env
from components.platforms import OWNED_ENV_NAMES, PLATFORMS
from components.runtime_target import (
    MAX_TARGET_CHARS,
    OPTIONAL_FIELDS,
    REQUIRED_FIELDS,
    derived_target,
    running_target,
    selectors,
    target_json,
)
from release.cli import main
from release.config import ConfigError, ServiceSpec
from release.stack import parse_stack
from tests.fixtures.projects import SEED_STACK_FILE
from tests.fixtures.runtime_target_schema import RUNTIME_TARGET, schema_problems
from tests.test_env import CONFIG, FACTS

RAW = yaml.safe_load(SEED_STACK_FILE.read_text(encoding="utf-8"))["config"]
RELEASE_RAW = RAW["us-equity-cutover:release"]
SERVICES_RAW = RAW["us-equity-cutover:services"]


def spec_with(key: str, **fields: Any) -> ServiceSpec:
    raw = copy.deepcopy(SERVICES_RAW)
    raw[key].update(fields)
    return parse_stack(RELEASE_RAW, raw).services[key]


# --- the derived target against the schema -----------------------------------------------------


def test_the_program_writes_exactly_the_schemas_field_list():
    # The module's own list and the schema's: the same fields, required ones the same.
    assert set(REQUIRED_FIELDS) == set(RUNTIME_TARGET["required"])
    assert set(REQUIRED_FIELDS) | set(OPTIONAL_FIELDS) == set(RUNTIME_TARGET["properties"])


@pytest.mark.parametrize("key", sorted(CONFIG.services))
@pytest.mark.parametrize("dry", [True, False])
def test_every_seed_services_target_conforms_to_the_schema(key, dry):
    spec = CONFIG.services[key]
    if spec.execution_mode is not None:
        pytest.skip("the seed sets no executionMode")
    target = derived_target(spec, dry)
    assert schema_problems(target) == []
    assert set(REQUIRED_FIELDS) <= set(target)
    text = target_json(spec, dry)
    assert " " not in text and json.loads(text) == target
    assert list(json.loads(text)) == sorted(target)


def test_a_target_with_every_optional_field_conforms_and_is_sorted_at_every_level():
    spec = spec_with(
        "longbridge-hk",
        dryRunOnly=False,
        executionMode="live",
        market="HK",
        marketCalendar="XHKG",
        marketTimezone="Asia/Hong_Kong",
        executionWindows={"precheck": {"enabled": True, "offsetMinutes": 15, "mode": "notify_only"}, "execution": {"mode": "live"}},
    )
    target = derived_target(spec, False)
    assert schema_problems(target) == []
    assert target["execution_windows"] == {
        "precheck": {"enabled": True, "offset_minutes": 15, "mode": "notify_only"},
        "execution": {"mode": "live"},
    }
    assert (target["market"], target["market_calendar"], target["market_timezone"]) == ("HK", "XHKG", "Asia/Hong_Kong")
    text = target_json(spec, False)
    assert '"precheck":{"enabled":true,"mode":"notify_only","offset_minutes":15}' in text


@pytest.mark.parametrize(
    "bend, problem",
    [
        (lambda t: t.pop("account_scope"), "missing required account_scope"),
        (lambda t: t.update(overrides={}), "overrides is not a schema field"),
        (lambda t: t.update(execution_mode="shadow"), "not in"),
        (lambda t: t.update(account_selector=[]), "fewer than 1 items"),
        (lambda t: t.update(market="US"), "market requires market_calendar"),
        (lambda t: t.update(dry_run_only="true"), "not of type boolean"),
    ],
)
def test_the_schema_check_itself_fails_on_a_broken_target(bend, problem):
    target = derived_target(CONFIG.services["schwab"], True)
    bend(target)
    assert any(problem in found for found in schema_problems(target))


# --- defaults: derived as the platforms derive them -----------------------------------------------


@pytest.mark.parametrize(
    "key, fields, expected",
    [
        # IBKR: the account group is the target (its workflow sets ACCOUNT_GROUP = account_scope).
        ("ibkr", {}, ("default", ["default"], "default")),
        ("ibkr", {"env": {**SERVICES_RAW["ibkr"]["env"], "ACCOUNT_GROUP": "live-u1234"}}, ("live-u1234", ["live-u1234"], "live-u1234")),
        ("ibkr", {"env": {**SERVICES_RAW["ibkr"]["env"], "ACCOUNT_GROUP": "hk"}}, ("HK", ["HK"], "HK")),
        # LongBridge: its Environment, the account region (PAPER / HK / SG).
        ("longbridge-hk", {}, ("HK", ["HK"], "HK")),
        ("longbridge-sg", {"accountRegion": "PAPER", "region": "us-central1"}, ("PAPER", ["PAPER"], "PAPER")),
        # Schwab: the service name without the platform's affixes.
        ("schwab", {}, ("quant", ["quant"], "quant")),
        ("schwab", {"serviceName": "charles-schwab-primary-service"}, ("primary", ["primary"], "primary")),
        # What the stack sets wins; scope follows the selector, accounts follow the scope.
        ("ibkr", {"deploymentSelector": "hk-verify"}, ("hk-verify", ["hk-verify"], "hk-verify")),
        ("schwab", {"accountScope": "US"}, ("quant", ["US"], "US")),
        ("ibkr", {"accountSelector": ["U1", "U2"]}, ("default", ["U1", "U2"], "default")),
    ],
)
def test_selectors_default_as_the_platforms_derive_them(key, fields, expected):
    chosen = selectors(spec_with(key, **fields))
    assert (chosen.deployment_selector, list(chosen.account_selector), chosen.account_scope) == expected


def test_execution_mode_follows_the_flag_and_the_target_lands_in_the_env():
    spec = spec_with("schwab", dryRunOnly=True)
    env = desired_env(spec, FACTS.requirements(spec.strategy_profile, "schwab"), "true")
    target = json.loads(env.plain["RUNTIME_TARGET_JSON"])
    assert (target["execution_mode"], target["dry_run_only"]) == ("paper", True)
    assert env.plain["RUNTIME_TARGET_ENABLED"] == "true"
    live = spec_with("schwab", dryRunOnly=False, executionMode="live", enabled=False)
    env = desired_env(live, FACTS.requirements(live.strategy_profile, "schwab"), "false")
    assert json.loads(env.plain["RUNTIME_TARGET_JSON"])["execution_mode"] == "live"
    assert env.plain["RUNTIME_TARGET_ENABLED"] == "false"


def test_a_paper_longbridge_service_runs_in_any_region():
    spec = spec_with("longbridge-sg", accountRegion="PAPER", region="us-central1", serviceName="longbridge-quant-paper-service")
    env = desired_env(spec, FACTS.requirements(spec.strategy_profile, "longbridge-sg"), "true")
    assert (env.plain["ACCOUNT_REGION"], env.plain["ACCOUNT_PREFIX"]) == ("PAPER", "PAPER")


def test_the_override_and_enabled_names_are_owned_and_held_while_an_image_rolls_out():
    for platform in PLATFORMS.values():
        assert {"QSL_RUNTIME_TARGET_JSON", "RUNTIME_TARGET_ENABLED", "RUNTIME_TARGET_JSON"} <= platform.strategy_env
    assert {"QSL_RUNTIME_TARGET_JSON", "RUNTIME_TARGET_ENABLED"} <= OWNED_ENV_NAMES


# --- bad input: exit 2, naming the service and the field, before anything is registered ----------


def setter(key: str, **fields: Any) -> Callable[[dict], None]:
    return lambda services: services[key].update(fields)


def env_entry(key: str, map_name: str, **entries: Any) -> Callable[[dict], None]:
    return lambda services: services[key].setdefault(map_name, {}).update(entries)


BAD_INPUT = [
    (
        "live with a dry-run flag",
        setter("schwab", dryRunOnly=True, executionMode="live"),
        "services.schwab.executionMode",
        ["live contradicts dryRunOnly: true"],
    ),
    (
        "paper without one",
        setter("schwab", dryRunOnly=False, executionMode="paper"),
        "services.schwab.executionMode",
        ["paper contradicts dryRunOnly: false"],
    ),
    ("mode with keep", setter("schwab", executionMode="live"), "services.schwab.executionMode", ["dryRunOnly: keep", "set dryRunOnly"]),
    (
        "unknown mode",
        setter("schwab", executionMode="shadow"),
        "services.schwab.executionMode",
        ["'shadow' is not an execution mode", "live or paper"],
    ),
    (
        "dry_run mode",
        setter("schwab", dryRunOnly=True, executionMode="dry_run"),
        "services.schwab.executionMode",
        ["refuses to start", "paper"],
    ),
    ("mode not a string", setter("schwab", executionMode=["live"]), "services.schwab.executionMode", ["is not an execution mode"]),
    ("selector a string", setter("ibkr", accountSelector="U1234"), "services.ibkr.accountSelector", ["is not a list", "non-empty list"]),
    ("selector empty", setter("ibkr", accountSelector=[]), "services.ibkr.accountSelector", ["is empty"]),
    (
        "selector item not a name",
        setter("ibkr", accountSelector=["U1", "two words"]),
        "services.ibkr.accountSelector",
        ["item 1 is not an account name"],
    ),
    (
        "selector item not a string",
        setter("ibkr", accountSelector=[1234]),
        "services.ibkr.accountSelector",
        ["item 0 is not an account name"],
    ),
    ("selector twice", setter("ibkr", accountSelector=["U1", "U1"]), "services.ibkr.accountSelector", ["names U1 twice"]),
    (
        "selector with a newline",
        setter("ibkr", accountSelector=["U1\nPlan: can proceed"]),
        ("services.ibkr.accountSelector", "services.ibkr.accountSelector[0]"),
        ["control character"],
    ),
    ("deployment selector not a name", setter("ibkr", deploymentSelector="live a"), "services.ibkr.deploymentSelector", ["is not a name"]),
    ("scope not a name", setter("ibkr", accountScope="../x"), "services.ibkr.accountScope", ["is not a name"]),
    (
        "market alone",
        setter("schwab", market="US"),
        ("services.schwab.marketCalendar", "services.schwab.marketTimezone"),
        ["all three or none"],
    ),
    (
        "market not a code",
        setter("schwab", market="us market", marketCalendar="XNYS", marketTimezone="America/New_York"),
        "services.schwab.market",
        ["not a market"],
    ),
    (
        "market zone unknown",
        setter("schwab", market="US", marketCalendar="XNYS", marketTimezone="Mars/Olympus"),
        "services.schwab.marketTimezone",
        ["not an IANA time zone"],
    ),
    (
        "window mode against the flag",
        setter("schwab", dryRunOnly=True, executionWindows={"execution": {"mode": "live"}}),
        "services.schwab.executionWindows.execution.mode",
        ["contradicts dryRunOnly: true", "write paper"],
    ),
    (
        "window mode with keep",
        setter("schwab", executionWindows={"execution": {"mode": "paper"}}),
        "services.schwab.executionWindows.execution.mode",
        ["explicit dryRunOnly"],
    ),
    (
        "precheck mode unknown",
        setter("schwab", executionWindows={"precheck": {"mode": "live"}}),
        "services.schwab.executionWindows.precheck.mode",
        ["'notify_only' or 'dry_run'"],
    ),
    (
        "window offset negative",
        setter("schwab", executionWindows={"precheck": {"offsetMinutes": -5}}),
        "services.schwab.executionWindows.precheck.offsetMinutes",
        ["greater than or equal to 0"],
    ),
    ("enabled as a string", setter("schwab", enabled="false"), "services.schwab.enabled", ["valid boolean"]),
    (
        "enabled false against scheduler.paused false",
        setter("schwab", enabled=False, scheduler={"paused": False}),
        "services.schwab.scheduler.paused",
        ["contradicts enabled: false"],
    ),
    (
        "override as plain env",
        env_entry("ibkr", "env", QSL_RUNTIME_TARGET_JSON='{"strategy_profile":"global_etf_rotation","dry_run_only":false}'),
        "services.ibkr.env.QSL_RUNTIME_TARGET_JSON",
        ["is set by the program", "use strategyProfile, dryRunOnly and the target fields"],
    ),
    (
        "override as a secret",
        env_entry("ibkr", "secrets", QSL_RUNTIME_TARGET_JSON="override-target"),
        "services.ibkr.secrets.QSL_RUNTIME_TARGET_JSON",
        ["is set by the program"],
    ),
    (
        "enabled as plain env",
        env_entry("schwab", "env", RUNTIME_TARGET_ENABLED="false"),
        "services.schwab.env.RUNTIME_TARGET_ENABLED",
        ["use enabled"],
    ),
    ("target field on the wrong platform", setter("schwab", accountRegion="PAPER"), "services.schwab.accountRegion", ["only LongBridge"]),
    (
        "account group unusable as a selector",
        env_entry("ibkr", "env", ACCOUNT_GROUP="live group"),
        "services.ibkr.env.ACCOUNT_GROUP",
        ["deployment selector", "set deploymentSelector"],
    ),
    (
        "duplicate Cloud Run name",
        setter("longbridge-sg", serviceName="longbridge-quant-hk-service", region="asia-east2", accountRegion="HK"),
        "services.longbridge-sg.serviceName",
        ["already the service of longbridge-hk"],
    ),
]


@pytest.mark.parametrize("case_id, mutate, path, words", BAD_INPUT, ids=[case[0] for case in BAD_INPUT])
def test_bad_target_input_is_one_problem_naming_service_and_field(case_id, mutate, path, words):
    services = copy.deepcopy(SERVICES_RAW)
    mutate(services)
    with pytest.raises(ConfigError) as caught:
        parse_stack(RELEASE_RAW, services)
    problems = caught.value.problems
    paths = sorted(path) if isinstance(path, tuple) else [path]
    assert sorted(problem.path for problem in problems) == paths, [str(problem) for problem in problems]
    for word in words:
        assert any(word in problem.message for problem in problems), [problem.message for problem in problems]


def test_an_override_in_the_stack_exits_2_before_the_gate_runs(tmp_path, capsys):
    # The new user: env sets QSL_RUNTIME_TARGET_JSON naming another strategy, trading live.
    document = yaml.safe_load(SEED_STACK_FILE.read_text(encoding="utf-8"))
    override = json.dumps({"platform_id": "ibkr", "strategy_profile": "global_etf_rotation", "dry_run_only": False})
    document["config"]["us-equity-cutover:services"]["ibkr"]["env"]["QSL_RUNTIME_TARGET_JSON"] = override
    stack = tmp_path / "Pulumi.override.yaml"
    stack.write_text(yaml.safe_dump(document), encoding="utf-8")
    assert main(["plan", "--config-file", str(stack)]) == 2
    out = capsys.readouterr()
    assert "services.ibkr.env.QSL_RUNTIME_TARGET_JSON: is set by the program" in out.out + out.err
    assert "Gate:" not in out.out


# --- what a live service runs ---------------------------------------------------------------------


def target_text(**fields: Any) -> str:
    base = {"platform_id": "schwab", "strategy_profile": "tqqq_growth_income", "dry_run_only": True, "execution_mode": "paper"}
    return json.dumps({**base, **fields})


def test_precedence_is_the_runtimes_override_then_target_then_profile():
    env = {
        "QSL_RUNTIME_TARGET_JSON": target_text(strategy_profile="global_etf_rotation", dry_run_only=False, execution_mode="live"),
        "RUNTIME_TARGET_JSON": target_text(),
        "STRATEGY_PROFILE": "soxl_soxx_trend_income",
    }
    running = running_target(env, "schwab")
    assert (running.source, running.profile, running.dry_run_only, running.overridden) == (
        "QSL_RUNTIME_TARGET_JSON",
        "global_etf_rotation",
        False,
        True,
    )
    assert running.describe() == "global_etf_rotation, LIVE trading (QSL_RUNTIME_TARGET_JSON)"
    # An empty override falls through, as `QSL or RTJ` does in the runtime.
    running = running_target({**env, "QSL_RUNTIME_TARGET_JSON": ""}, "schwab")
    assert (running.source, running.profile, running.dry_run_only) == ("RUNTIME_TARGET_JSON", "tqqq_growth_income", True)
    running = running_target({"STRATEGY_PROFILE": "soxl_soxx_trend_income"}, "schwab")
    assert (running.source, running.profile, running.dry_run_only) == ("STRATEGY_PROFILE", "soxl_soxx_trend_income", None)
    assert running_target({}, "schwab").source is None


@pytest.mark.parametrize(
    "raw, problem",
    [
        ("x" * (MAX_TARGET_CHARS + 1), f"longer than {MAX_TARGET_CHARS}"),
        ("[" * 100_000 + "]" * 100_000, "longer than"),
        ("[" * 5000 + "]" * 5000, "nests deeper than"),
        ('{"a":' * 100 + "1" + "}" * 100, "nests deeper than"),
        (
            '{"platform_id":"schwab","strategy_profile":"tqqq_growth_income","strategy_profile":"global_etf_rotation","dry_run_only":true}',
            "names strategy_profile twice",
        ),
        ('["tqqq_growth_income"]', "is not a JSON object"),
        ('"tqqq_growth_income"', "is not a JSON object"),
        ("not json", "is not readable JSON"),
        ('{"platform_id":"schwab","strategy_profile":"' + "9" * 5000 + '","dry_run_only":true}', "not a profile name"),
        ('{"platform_id":"schwab","strategy_profile":1' + "0" * 5000 + ',"dry_run_only":true}', "number too long"),
        (target_text(strategy_profile="tqqq\x1b[2J\nPlan: can proceed"), "not a profile name"),
        (target_text(strategy_profile="Global ETF"), "not a profile name"),
        (target_text(strategy_profile=""), "names no strategy_profile"),
        (target_text(strategy_profile=["tqqq_growth_income"]), "names no strategy_profile"),
        (target_text(platform_id="interactive_brokers"), "names platform 'interactive_brokers', not schwab"),
        (target_text(platform_id=None), "has no platform_id"),
        (target_text(dry_run_only=None), "has no dry_run_only"),
        (target_text(dry_run_only="maybe"), "not a boolean"),
        (target_text(dry_run_only={"x": 1}), "not a boolean"),
        (target_text(execution_mode="live"), "says execution_mode 'live' with dry_run_only true"),
        (target_text(execution_mode="dry_run"), "says execution_mode 'dry_run'"),
    ],
)
def test_a_hostile_live_target_names_nothing_that_runs(raw, problem):
    for source in ("QSL_RUNTIME_TARGET_JSON", "RUNTIME_TARGET_JSON"):
        running = running_target({source: raw, "STRATEGY_PROFILE": "tqqq_growth_income"}, "schwab")
        assert running.source == source and running.profile is None and running.problem is not None
        assert problem in running.problem, running.problem
        text = running.describe()
        # Never a raw control character, never the whole of a huge value.
        assert "\x1b" not in text and "\n" not in text and len(text) < 400


@pytest.mark.parametrize("value, dry", [(True, True), ("yes", True), (1, True), ("off", False), (0, False), (False, False)])
def test_dry_run_only_is_read_as_the_runtime_reads_it(value, dry):
    mode = "paper" if dry else "live"
    assert running_target({"RUNTIME_TARGET_JSON": target_text(dry_run_only=value, execution_mode=mode)}, "schwab").dry_run_only is dry


def test_a_hostile_strategy_profile_env_is_not_a_profile():
    running = running_target({"STRATEGY_PROFILE": "tqqq\u202egrowth"}, "schwab")
    assert running.profile is None and "not a profile name" in (running.problem or "")
    assert "\u202e" not in running.describe()
