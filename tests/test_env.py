"""The env a service runs with, computed without Pulumi from the prod stack (docs/platform-facts.md §3)."""

from __future__ import annotations

import json

import pytest

from components.env import (
    ServiceEnv,
    desired_env,
    desired_revision,
    dry_run_value,
    input_mode_problems,
    service_problems,
    stack_problems,
)
from components.platforms import OWNED_ENV_NAMES, PLATFORMS, is_dry_run, looks_secret
from components.profiles import PlatformRequirements
from release.config import SecretRef, ServiceSpec, SnapshotPaths
from release.stack import load_stack_file
from tests.fixtures.profile_sources import profile_facts
from tests.fixtures.projects import SEED_STACK_FILE

CONFIG = load_stack_file(SEED_STACK_FILE)
FACTS = profile_facts(CONFIG)
KEY_OF = {spec.service_name: key for key, spec in CONFIG.services.items()}
ARTIFACTS = "gs://qsl-runtime-logs-shared/strategy-artifacts/us_equity/qqq_tech_enhancement/"
CHAT = "-1001234567890"


# The target name each prod service's selectors derive from (components/runtime_target.py `target_name`):
# IBKR's ACCOUNT_GROUP, LongBridge's accountRegion, Schwab's service name without its affixes.
PROD_TARGET_NAMES = {
    "interactive-brokers-quant-service": "default",
    "charles-schwab-quant-service": "quant",
    "longbridge-quant-hk-service": "HK",
    "longbridge-quant-sg-service": "SG",
}


def target(platform: str, profile: str, service: str, dry: bool = True, name: str | None = None) -> str:
    """The RUNTIME_TARGET_JSON the program writes, written out field by field (the schema's required ones)."""
    selector = name or PROD_TARGET_NAMES[service]
    return json.dumps(
        {
            "account_scope": selector,
            "account_selector": [selector],
            "deployment_selector": selector,
            "dry_run_only": dry,
            "execution_mode": "paper" if dry else "live",
            "platform_id": platform,
            "service_name": service,
            "strategy_profile": profile,
        },
        sort_keys=True,
        separators=(",", ":"),
    )


# The seed cutover's target env, written out from docs/platform-facts.md §2-§4 (a new service starts dry).
EXPECTED = {
    "ibkr": ServiceEnv(
        plain={
            "ACCOUNT_GROUP": "default",
            "GLOBAL_TELEGRAM_CHAT_ID": CHAT,
            "IBKR_DRY_RUN_ONLY": "true",
            "IB_ACCOUNT_GROUP_CONFIG_SECRET_NAME": "ibkr-account-groups",
            "NOTIFY_LANG": "zh",
            "RUNTIME_TARGET_ENABLED": "true",
            "RUNTIME_TARGET_JSON": target("ibkr", "soxl_soxx_trend_income", "interactive-brokers-quant-service"),
            "STRATEGY_PROFILE": "soxl_soxx_trend_income",
        },
        secrets={"TELEGRAM_TOKEN": SecretRef(secret="interactive-brokers-telegram-token")},
    ),
    "schwab": ServiceEnv(
        plain={
            "GLOBAL_TELEGRAM_CHAT_ID": CHAT,
            "NOTIFY_LANG": "zh",
            "RUNTIME_TARGET_ENABLED": "true",
            "RUNTIME_TARGET_JSON": target("schwab", "tqqq_growth_income", "charles-schwab-quant-service"),
            "SCHWAB_DRY_RUN_ONLY": "true",
            "STRATEGY_PROFILE": "tqqq_growth_income",
        },
        secrets={
            "SCHWAB_API_KEY": SecretRef(secret="charles-schwab-api-key"),
            "SCHWAB_APP_SECRET": SecretRef(secret="charles-schwab-app-secret"),
            "TELEGRAM_TOKEN": SecretRef(secret="charles-schwab-telegram-token"),
        },
    ),
    "longbridge-hk": ServiceEnv(
        plain={
            "ACCOUNT_PREFIX": "HK",
            "ACCOUNT_REGION": "HK",
            "GLOBAL_TELEGRAM_CHAT_ID": CHAT,
            "LONGBRIDGE_DRY_RUN_ONLY": "true",
            "LONGBRIDGE_FEATURE_SNAPSHOT_MANIFEST_PATH": ARTIFACTS + "qqq_tech_enhancement_feature_snapshot_latest.csv.manifest.json",
            "LONGBRIDGE_FEATURE_SNAPSHOT_PATH": ARTIFACTS + "qqq_tech_enhancement_feature_snapshot_latest.csv",
            "LONGBRIDGE_STRATEGY_CONFIG_PATH": ARTIFACTS + "qqq_tech_enhancement_config.json",
            "LONGPORT_SECRET_NAME": "longport_token_hk",
            "NOTIFY_LANG": "zh",
            "RUNTIME_TARGET_ENABLED": "true",
            "RUNTIME_TARGET_JSON": target("longbridge", "qqq_tech_enhancement", "longbridge-quant-hk-service"),
            "STRATEGY_PROFILE": "qqq_tech_enhancement",
        },
        secrets={
            "LONGPORT_APP_KEY": SecretRef(secret="longport-app-key-hk"),
            "LONGPORT_APP_SECRET": SecretRef(secret="longport-app-secret-hk"),
            "TELEGRAM_TOKEN": SecretRef(secret="longbridge-telegram-token"),
        },
    ),
    "longbridge-sg": ServiceEnv(
        plain={
            "ACCOUNT_PREFIX": "SG",
            "ACCOUNT_REGION": "SG",
            "GLOBAL_TELEGRAM_CHAT_ID": CHAT,
            "LONGBRIDGE_DRY_RUN_ONLY": "true",
            "LONGPORT_SECRET_NAME": "longport_token_sg",
            "NOTIFY_LANG": "zh",
            "RUNTIME_TARGET_ENABLED": "true",
            "RUNTIME_TARGET_JSON": target("longbridge", "tqqq_growth_income", "longbridge-quant-sg-service"),
            "STRATEGY_PROFILE": "tqqq_growth_income",
        },
        secrets={
            "LONGPORT_APP_KEY": SecretRef(secret="longport-app-key-sg"),
            "LONGPORT_APP_SECRET": SecretRef(secret="longport-app-secret-sg"),
            "TELEGRAM_TOKEN": SecretRef(secret="longbridge-telegram-token"),
        },
    ),
}


def env_of(key: str, dry_run: str | None = "true") -> ServiceEnv:
    spec = CONFIG.services[key]
    return desired_env(spec, FACTS.requirements(spec.strategy_profile, KEY_OF[spec.service_name]), dry_run)


@pytest.mark.parametrize("key", sorted(EXPECTED))
def test_desired_env_of_each_prod_service_is_exactly_the_contract(key):
    env = env_of(key)
    assert dict(env.plain) == dict(EXPECTED[key].plain)
    assert dict(env.secrets) == dict(EXPECTED[key].secrets)
    # Sorted, so the component's env list and the preview diff are stable.
    assert list(env.plain) == sorted(env.plain) and list(env.secrets) == sorted(env.secrets)


@pytest.mark.parametrize("key", sorted(EXPECTED))
def test_no_service_carries_input_mode_env_its_profile_does_not_read(key):
    spec = CONFIG.services[key]
    requirements = FACTS.requirements(spec.strategy_profile, KEY_OF[spec.service_name])
    input_mode_env = set().union(*(platform.input_mode_env for platform in PLATFORMS.values()))
    present = input_mode_env & set(env_of(key).names())
    if requirements.requires_snapshot_artifacts:
        assert present == {name for name in PLATFORMS[spec.platform].input_mode_env if name in EXPECTED[key].plain}
        assert present
    else:
        assert present == set()


def test_a_direct_runtime_profile_drops_snapshot_paths_even_if_a_spec_carries_them():
    # parse_stack refuses this spec; desired_env must still never emit the stale paths.
    spec = CONFIG.services["ibkr"].model_copy(update={"snapshot": SnapshotPaths(feature_snapshot_path="gs://bucket/a.csv")})
    env = desired_env(spec, FACTS.requirements(spec.strategy_profile, "ibkr"), "true")
    assert not {"IBKR_FEATURE_SNAPSHOT_PATH", "IBKR_RECONCILIATION_OUTPUT_PATH"} & set(env.plain)


@pytest.mark.parametrize("key", sorted(EXPECTED))
def test_secrets_are_references_and_never_plain_values(key):
    env = env_of(key)
    assert not set(env.plain) & set(env.secrets)
    assert not [name for name in env.plain if looks_secret(name)]
    plain_values = set(env.plain.values())
    assert not [ref.secret for ref in env.secrets.values() if ref.secret in plain_values]


def test_runtime_target_json_is_compact_with_sorted_keys():
    text = env_of("schwab", "false").plain["RUNTIME_TARGET_JSON"]
    assert " " not in text
    parsed = json.loads(text)
    assert list(parsed) == sorted(parsed)
    assert parsed == {
        "account_scope": "quant",
        "account_selector": ["quant"],
        "deployment_selector": "quant",
        "dry_run_only": False,
        "execution_mode": "live",
        "platform_id": "schwab",
        "service_name": "charles-schwab-quant-service",
        "strategy_profile": "tqqq_growth_income",
    }


@pytest.mark.parametrize(
    "setting, live_value, live_exists, expected",
    [
        ("keep", "false", True, "false"),  # keep holds a live trading flag exactly
        ("keep", "1", True, "1"),
        ("keep", None, True, None),  # unset has no safe reading: no value (the plan blocks)
        ("keep", "", True, None),
        ("keep", "  ", True, None),
        ("keep", None, False, "true"),  # a new service starts dry
        (True, "false", True, "true"),
        (False, "true", True, "false"),
        (False, None, False, "false"),
    ],
)
def test_dry_run_value(setting, live_value, live_exists, expected):
    spec = CONFIG.services["schwab"].model_copy(update={"dry_run_only": setting})
    assert dry_run_value(spec, live_value, live_exists) == expected


@pytest.mark.parametrize("dry_run, runtime_dry", [("true", True), ("on", True), ("Y", True), ("false", False), ("0", False)])
def test_dry_run_flag_and_runtime_target_agree(dry_run, runtime_dry):
    env = env_of("schwab", dry_run)
    assert json.loads(env.plain["RUNTIME_TARGET_JSON"])["dry_run_only"] is runtime_dry
    assert is_dry_run(env.plain["SCHWAB_DRY_RUN_ONLY"]) is runtime_dry
    assert env.plain["SCHWAB_DRY_RUN_ONLY"] == dry_run


@pytest.mark.parametrize("dry_run", [None, "", " "])
def test_runtime_target_is_never_derived_from_an_unset_flag(dry_run):
    with pytest.raises(ValueError, match="dryRunOnly: true"):
        env_of("schwab", dry_run)
    with pytest.raises(ValueError):
        is_dry_run(dry_run)


def test_desired_revision_carries_image_commit_and_release():
    spec = CONFIG.services["longbridge-hk"]
    revision = desired_revision(spec, CONFIG.release, FACTS.requirements(spec.strategy_profile, KEY_OF[spec.service_name]), "true")
    assert (revision.image, revision.commit) == (spec.image, spec.commit)
    assert revision.image.endswith(":" + spec.commit)
    assert (revision.qpk_tag, revision.ues_tag) == ("v0.7.10", "v0.7.13")


def test_prod_config_has_no_problems_and_rules_see_every_service():
    assert stack_problems(CONFIG.services) == []
    for key, spec in CONFIG.services.items():
        assert service_problems(key, spec) == []


def test_owned_names_cover_every_platforms_strategy_env():
    for platform in PLATFORMS.values():
        assert platform.strategy_env <= OWNED_ENV_NAMES
        assert platform.dry_run_env in OWNED_ENV_NAMES
    assert {"ACCOUNT_PREFIX", "ACCOUNT_REGION", "LONGPORT_SECRET_NAME", "IBKR_RECONCILIATION_OUTPUT_PATH"} <= OWNED_ENV_NAMES


@pytest.mark.parametrize(
    "name, secret",
    [
        ("TELEGRAM_TOKEN", True),
        ("SCHWAB_APP_SECRET", True),
        ("LONGPORT_APP_KEY", True),
        ("DB_PASSWORD", True),
        ("LONGPORT_SECRET_NAME", False),
        ("IB_ACCOUNT_GROUP_CONFIG_SECRET_NAME", False),
        ("NOTIFY_LANG", False),
    ],
)
def test_secret_looking_names(name, secret):
    assert looks_secret(name) is secret


# -- the config sources the facts report ------------------------------------------------------------------


def _needs(input_mode: str = "direct_runtime", **fields) -> PlatformRequirements:
    return PlatformRequirements(profile="combo", display_name="Combo", input_mode=input_mode, **fields)


def _ibkr(**paths) -> ServiceSpec:
    return CONFIG.services["ibkr"].model_copy(update={"snapshot": SnapshotPaths(**paths) if paths else None})


SHADOW = "package://us_equity_strategies/configs/shadow.json"


def test_an_env_only_direct_runtime_profile_may_name_a_config_path_and_it_reaches_the_env():
    needs = _needs(strategy_config="env_only")
    spec = _ibkr(strategy_config_path=SHADOW)
    assert input_mode_problems("ibkr", spec, needs) == []
    assert desired_env(spec, needs, "true").plain["IBKR_STRATEGY_CONFIG_PATH"] == SHADOW
    # optional: without one the profile runs without it, and nothing is written
    assert input_mode_problems("ibkr", _ibkr(), needs) == []
    assert "IBKR_STRATEGY_CONFIG_PATH" not in desired_env(_ibkr(), needs, "true").plain


def test_a_required_env_only_config_path_is_asked_for_and_a_profile_without_config_refuses_one():
    required = input_mode_problems("ibkr", _ibkr(), _needs(strategy_config="env_only", strategy_config_required=True))
    assert [p.path for p in required] == ["services.ibkr.snapshot.strategyConfigPath"] and "set it" in required[0].message
    refused = input_mode_problems("ibkr", _ibkr(strategy_config_path=SHADOW), _needs())
    assert [p.path for p in refused] == ["services.ibkr.snapshot.strategyConfigPath"] and "remove it" in refused[0].message
    assert "IBKR_STRATEGY_CONFIG_PATH" not in desired_env(_ibkr(strategy_config_path=SHADOW), _needs(), "true").plain


def test_a_direct_runtime_env_only_profile_still_refuses_snapshot_paths():
    spec = _ibkr(strategy_config_path=SHADOW, feature_snapshot_path="gs://bucket/a.csv")
    problems = input_mode_problems("ibkr", spec, _needs(strategy_config="env_only"))
    assert [p.path for p in problems] == ["services.ibkr.snapshot.featureSnapshotPath"]
    assert "IBKR_FEATURE_SNAPSHOT_PATH" not in desired_env(spec, _needs(strategy_config="env_only"), "true").plain


@pytest.mark.parametrize(
    "policy, given, problem",
    [
        ("required", False, "requires a reconciliation output path"),
        ("none", True, "writes no reconciliation output"),
        ("optional", True, None),
        ("optional", False, None),
        (None, True, None),  # the seed's releases state no policy: the platform rule (optional) holds
        (None, False, None),
    ],
)
def test_ibkr_reconciliation_output_follows_the_release_policy(policy, given, problem):
    paths = {"feature_snapshot_path": "gs://bucket/a.csv"}
    if given:
        paths["reconciliation_output_path"] = "gs://bucket/reconciliation/"
    found = input_mode_problems("ibkr", _ibkr(**paths), _needs("snapshot_backed", reconciliation_output=policy))
    assert [p.message for p in found if problem and problem in p.message] == [p.message for p in found]
    assert bool(found) is (problem is not None)
