"""release/cutover/ordering.py: the phase rule as tables over live state, against profile facts read from fixture sources and the prod stack."""

from __future__ import annotations

import json

import pytest

from components.env import ServiceEnv, desired_env
from components.platforms import PLATFORMS
from components.profiles import ProfileFacts
from release.config import ReleaseBundle, SecretRef
from release.cutover.live import LiveService, from_knative_json
from release.cutover.ordering import ServicePlan, env_diff, live_revision, plan_service
from release.stack import load_stack_file
from tests.fixtures.live_json import knative_for_spec, release_annotations
from tests.fixtures.profile_sources import platform_source_files, profile_facts
from tests.fixtures.projects import SEED_STACK_FILE

OLD = "1111111111111111111111111111111111111111"
SNAP = "gs://bucket/old_feature_snapshot.csv"

CONFIG = load_stack_file(SEED_STACK_FILE)
BUNDLE = CONFIG.release
OLD_BUNDLE = ReleaseBundle(quantPlatformKit="v0.7.8", usEquityStrategies="v0.7.11")


def platform_files(platform: str, commit: str) -> dict:
    """The OLD commits are the platforms' baseline commits (old allowlists); every other is the seed target."""
    return platform_source_files(platform, "baseline" if commit == OLD else "target")


def facts_of(config) -> ProfileFacts:
    return profile_facts(config, platform_files=platform_files)


# What a lock would have kept: UES v0.7.11 at the OLD (baseline) commits, and v0.7.13 at the seed commits.
OLD_CONFIG = CONFIG.model_copy(
    update={"release": OLD_BUNDLE, "services": {k: s.model_copy(update={"commit": OLD}) for k, s in CONFIG.services.items()}}
)
FACTS = facts_of(CONFIG).with_history(facts_of(OLD_CONFIG))


def old_image(spec) -> str:
    return spec.image.rsplit(":", 1)[0] + ":" + OLD


def live_of(key: str, env: dict, commit=OLD, image=None, tags=("v0.7.8", "v0.7.11"), secrets=None, **bend) -> LiveService:
    spec = CONFIG.services[key]
    document = knative_for_spec(
        spec,
        env,
        commit=commit,
        image=image or (spec.image if commit == spec.commit else old_image(spec)),
        secrets=dict(spec.secrets) if secrets is None else secrets,
        annotations=release_annotations(*tags) if tags else {},
        **bend,
    )
    return from_knative_json(document, spec.service_name)


def plan(key: str, live, bundle=BUNDLE, **spec_changes) -> ServicePlan:
    spec = CONFIG.services[key].model_copy(update=spec_changes)
    config = CONFIG.model_copy(update={"release": bundle, "services": {**CONFIG.services, key: spec}})
    result = plan_service(key, spec, bundle, live, facts_of(config).with_history(FACTS))
    assert_one_kind_of_change(result)
    return result


def strategy_env(env: ServiceEnv, platform) -> dict:
    names = PLATFORMS[platform].strategy_env
    return {name: value for name, value in {**env.plain, **{k: str(v) for k, v in env.secrets.items()}}.items() if name in names}


def assert_one_kind_of_change(result: ServicePlan) -> None:
    """The invariant behind every row: no update changes both the image and the strategy env."""
    if result.live is None:
        return
    before = live_revision(result.live)
    # Images are compared by the commit they were built from; without a label, by reference.
    image_changes = result.applied.commit != before.commit if before.commit else result.applied.image != before.image
    env_changes = strategy_env(result.applied.env, result.spec.platform) != strategy_env(before.env, result.spec.platform)
    assert not (image_changes and env_changes), f"{result.phase} changes image and strategy env together"
    if result.phase == "blocked":
        assert result.applied == before


IBKR_OLD_ENV = {
    "STRATEGY_PROFILE": "russell_1000_multi_factor_defensive",
    "IBKR_FEATURE_SNAPSHOT_PATH": SNAP,
    "IBKR_DRY_RUN_ONLY": "false",
    "ACCOUNT_GROUP": "default",
    "IB_ACCOUNT_GROUP_CONFIG_SECRET_NAME": "ibkr-account-groups",
    "GLOBAL_TELEGRAM_CHAT_ID": "-1001234567890",
    "NOTIFY_LANG": "en",
    "IB_GATEWAY_HOST": "10.0.0.2",
}


def test_new_service_is_created_with_image_and_env_together():
    result = plan("ibkr", None)
    assert result.phase == "create"
    assert result.applied == result.desired
    assert result.applied.env.plain["STRATEGY_PROFILE"] == "soxl_soxx_trend_income"
    # `keep` on a service that does not exist yet starts it dry.
    assert result.applied.env.plain["IBKR_DRY_RUN_ONLY"] == "true"


def test_forward_release_deploys_the_image_first_holding_strategy_env():
    result = plan("ibkr", live_of("ibkr", IBKR_OLD_ENV))
    assert result.phase == "deploy-image" and result.next_phase == "switch-env"
    assert result.rollback is False
    assert result.applied.commit == CONFIG.services["ibkr"].commit
    assert result.applied.ues_tag == "v0.7.13"
    applied = result.applied.env.plain
    assert applied["STRATEGY_PROFILE"] == "russell_1000_multi_factor_defensive"
    assert applied["IBKR_FEATURE_SNAPSHOT_PATH"] == SNAP
    assert applied["IBKR_DRY_RUN_ONLY"] == "false"
    assert "RUNTIME_TARGET_JSON" not in applied  # absent live, so absent while held
    # Non-strategy env follows the config right away; legacy env goes.
    assert applied["NOTIFY_LANG"] == "zh" and "IB_GATEWAY_HOST" not in applied
    assert any("deferred" in warning and "soxl_soxx_trend_income" in warning for warning in result.notes) and not result.warnings
    # The end state still switches: the plan shows the whole diff against live.
    assert "IBKR_FEATURE_SNAPSHOT_PATH" in result.env_diff.removed
    assert "STRATEGY_PROFILE" in result.env_diff.changed
    assert result.desired.env.plain["IBKR_DRY_RUN_ONLY"] == "false"


def test_second_up_after_the_image_is_confirmed_switches_env():
    first = plan("ibkr", live_of("ibkr", IBKR_OLD_ENV))
    live_after = live_of(
        "ibkr", dict(first.applied.env.plain), commit=first.applied.commit, tags=(first.applied.qpk_tag, first.applied.ues_tag)
    )
    second = plan("ibkr", live_after)
    assert second.phase == "switch-env"
    assert second.applied == second.desired
    assert "STRATEGY_PROFILE russell_1000_multi_factor_defensive -> soxl_soxx_trend_income" in second.reason
    third = plan("ibkr", live_of("ibkr", dict(second.applied.env.plain), commit=second.applied.commit, tags=("v0.7.10", "v0.7.13")))
    assert third.phase == "in-sync" and third.env_diff.empty


def test_unknown_live_release_is_judged_by_the_bundles_facts():
    result = plan("ibkr", live_of("ibkr", IBKR_OLD_ENV, tags=None))
    assert result.phase == "deploy-image"
    assert "unknown" in result.reason


def test_alias_counts_as_its_canonical_profile():
    env = {"STRATEGY_PROFILE": "semiconductor_rotation_income", "GLOBAL_TELEGRAM_CHAT_ID": "1", "SCHWAB_DRY_RUN_ONLY": "true"}
    result = plan("schwab", live_of("schwab", env))
    assert result.phase == "deploy-image"
    assert result.applied.env.plain["STRATEGY_PROFILE"] == "semiconductor_rotation_income"


def test_rollback_to_an_older_bundle_switches_env_first():
    spec = CONFIG.services["schwab"]
    new_env = {
        "STRATEGY_PROFILE": "tqqq_growth_income",
        "GLOBAL_TELEGRAM_CHAT_ID": "-1001234567890",
        "NOTIFY_LANG": "zh",
        "SCHWAB_DRY_RUN_ONLY": "false",
    }
    live = live_of("schwab", new_env, commit=spec.commit, tags=("v0.7.10", "v0.7.13"))
    result = plan("schwab", live, bundle=OLD_BUNDLE, commit=OLD, image=old_image(spec), strategy_profile="hybrid_growth_income")
    assert result.phase == "switch-env" and result.next_phase == "deploy-image"
    assert result.rollback is True
    assert result.applied.image == spec.image and result.applied.commit == spec.commit
    assert result.applied.ues_tag == "v0.7.13"
    assert result.applied.env.plain["STRATEGY_PROFILE"] == "hybrid_growth_income"
    assert any("follows once the env switch is confirmed" in warning for warning in result.notes) and not result.warnings


def test_neither_order_valid_is_blocked_with_what_to_change():
    env = {"STRATEGY_PROFILE": "tech_pullback_cash_buffer", "IBKR_FEATURE_SNAPSHOT_PATH": SNAP, "IBKR_DRY_RUN_ONLY": "true"}
    result = plan("ibkr", live_of("ibkr", env))
    assert result.phase == "blocked"
    assert "IBKR_FEATURE_SNAPSHOT_MANIFEST_PATH" in result.reason  # why image-first fails
    assert (
        "soxl_soxx_trend_income is not a profile InteractiveBrokersPlatform@1111111's registry shows" in result.reason
    )  # why env-first fails
    assert "global_etf_rotation, russell_1000_multi_factor_defensive" in result.reason  # valid on both images


def test_same_image_confirmed_with_old_env_switches_env():
    spec = CONFIG.services["ibkr"]
    result = plan("ibkr", live_of("ibkr", IBKR_OLD_ENV, commit=spec.commit, tags=("v0.7.10", "v0.7.13")))
    assert result.phase == "switch-env" and result.applied == result.desired
    assert result.applied.env.plain["IBKR_DRY_RUN_ONLY"] == "false"  # keep holds the live flag


def plan_with_digest(key: str, live, digest):
    spec = CONFIG.services[key]
    config = CONFIG.model_copy(update={"services": {**CONFIG.services}})
    result = plan_service(key, spec, BUNDLE, live, facts_of(config).with_history(FACTS), digest)
    assert_one_kind_of_change(result)
    return result


def test_the_live_image_is_compared_by_digest_not_by_its_commit_label():
    spec = CONFIG.services["ibkr"]
    repository = spec.image.rsplit(":", 1)[0]
    pinned = f"{repository}@sha256:{'a' * 64}"
    live = live_of("ibkr", IBKR_OLD_ENV, commit=spec.commit, image=pinned, tags=("v0.7.10", "v0.7.13"))
    # the digest the configured tag resolves to now: the same image, already live
    assert plan_with_digest("ibkr", live, f"sha256:{'a' * 64}").phase == "switch-env"
    # another digest under the right label: not the configured image, so the image is deployed first
    other = plan_with_digest("ibkr", live, f"sha256:{'b' * 64}")
    assert other.phase == "deploy-image" and other.applied.image == spec.image
    assert "the live image is " + pinned in other.reason
    # the tag's digest not looked up: nothing proves which image runs
    unknown = plan_with_digest("ibkr", live, None)
    assert unknown.phase == "blocked" and "--images" in unknown.reason


@pytest.mark.parametrize(
    "image",
    [
        "us-central1-docker.pkg.dev/someoneelse/cloud-run-source-deploy/interactivebrokersplatform/cloud-run:{commit}",
        "europe-west1-docker.pkg.dev/interactivebrokersquant/cloud-run-source-deploy/interactivebrokersplatform/cloud-run:{commit}",
        "us-central1-docker.pkg.dev/interactivebrokersquant/cloud-run-source-deploy/interactivebrokersplatform/cloud-run:{other}",
    ],
    ids=["another project", "another registry", "another commit's tag"],
)
def test_another_image_under_the_configured_commit_label_is_not_in_sync(image):
    spec = CONFIG.services["ibkr"]
    env = desired_env(spec, FACTS.requirements(spec.strategy_profile, "ibkr"), "false")
    live = live_of("ibkr", env, commit=spec.commit, image=image.format(commit=spec.commit, other="f" * 40), tags=("v0.7.10", "v0.7.13"))
    result = plan_with_digest("ibkr", live, f"sha256:{'a' * 64}")
    assert result.phase == "deploy-image" and result.applied.image == spec.image


@pytest.mark.parametrize(
    "bend, why",
    [
        ({"traffic": [{"revisionName": "rev-00001", "percent": 50}, {"revisionName": "rev-00002", "percent": 50}]}, "serves 50%"),
        ({"ready": False}, "not Ready"),
        ({"latest_ready": "rev-00001"}, "is not ready"),
    ],
)
def test_same_image_not_confirmed_is_blocked_env_held(bend, why):
    spec = CONFIG.services["ibkr"]
    result = plan("ibkr", live_of("ibkr", IBKR_OLD_ENV, commit=spec.commit, tags=("v0.7.10", "v0.7.13"), **bend))
    assert result.phase == "blocked" and why in result.reason
    assert result.applied.env.plain["STRATEGY_PROFILE"] == "russell_1000_multi_factor_defensive"


def test_same_image_without_label_is_blocked():
    spec = CONFIG.services["ibkr"]
    result = plan("ibkr", live_of("ibkr", IBKR_OLD_ENV, commit=None, image=spec.image))
    assert result.phase == "blocked" and "no commit-sha label" in result.reason


def test_label_naming_another_commit_on_the_same_image_is_blocked():
    spec = CONFIG.services["ibkr"]
    result = plan("ibkr", live_of("ibkr", IBKR_OLD_ENV, commit=OLD, image=spec.image))
    assert result.phase == "blocked" and f"expects {spec.commit}" in result.reason


def test_dry_run_set_by_config_replaces_the_live_flag_in_the_end_state():
    result = plan("ibkr", live_of("ibkr", IBKR_OLD_ENV), dry_run_only=True)
    assert result.desired.env.plain["IBKR_DRY_RUN_ONLY"] == "true"
    assert result.applied.env.plain["IBKR_DRY_RUN_ONLY"] == "false"  # image first: held until the switch


def test_env_diff_shows_refs_never_hidden_values():
    before = ServiceEnv({"A": "1", "PASTED_TOKEN": "s3cr3t"}, {})
    after = ServiceEnv({"A": "2"}, {"TELEGRAM_TOKEN": SecretRef.parse("interactive-brokers-telegram-token")})
    diff = env_diff(before, after, showable=frozenset({"A"}))
    assert (diff.added, diff.changed, diff.removed) == (("TELEGRAM_TOKEN",), ("A",), ("PASTED_TOKEN",))
    shown = {change.name: (change.before, change.after) for change in diff.details}
    assert shown["A"] == ("1", "2")
    assert shown["TELEGRAM_TOKEN"] == (None, "secret:interactive-brokers-telegram-token:latest")
    assert "s3cr3t" not in repr(diff)


def test_release_record_read_from_live():
    live = live_of("ibkr", {}, tags=("v0.7.8", "v0.7.11"))
    assert live.release_record == f"{OLD} v0.7.8 v0.7.11"
    assert live_revision(live).ues_tag == "v0.7.11" and live_revision(live).qpk_tag == "v0.7.8"


@pytest.mark.parametrize("flag", [None, "", "  "])
@pytest.mark.parametrize("commit", ["old", "same"])
def test_keep_over_an_unset_live_flag_is_blocked_and_nothing_changes(flag, commit):
    env = {name: value for name, value in IBKR_OLD_ENV.items() if name != "IBKR_DRY_RUN_ONLY"}
    if flag is not None:
        env["IBKR_DRY_RUN_ONLY"] = flag
    spec = CONFIG.services["ibkr"]
    extra = {} if commit == "old" else {"commit": spec.commit, "tags": ("v0.7.10", "v0.7.13")}
    live = live_of("ibkr", env, **extra)
    result = plan("ibkr", live)
    assert result.phase == "blocked"
    assert (
        "IBKR_DRY_RUN_ONLY: the live flag is unset and its meaning depends on the image (the seed-era images "
        "trade live); set `dryRunOnly: true` or `false` explicitly" in result.reason
    )
    assert result.applied == live_revision(live) == result.desired
    assert result.env_diff.empty and result.applied_env_diff.empty


@pytest.mark.parametrize(("setting", "raw", "dry"), [(True, "true", True), (False, "false", False)])
def test_an_explicit_setting_over_an_unset_live_flag_proceeds(setting, raw, dry):
    env = {name: value for name, value in IBKR_OLD_ENV.items() if name != "IBKR_DRY_RUN_ONLY"}
    result = plan("ibkr", live_of("ibkr", env), dry_run_only=setting)
    assert result.phase == "deploy-image"
    assert "IBKR_DRY_RUN_ONLY" not in result.applied.env.plain  # held as live while the image rolls out
    assert result.desired.env.plain["IBKR_DRY_RUN_ONLY"] == raw
    assert json.loads(result.desired.env.plain["RUNTIME_TARGET_JSON"])["dry_run_only"] is dry
