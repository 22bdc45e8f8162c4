"""release/cutover/verify.py: the runbook checks pass on a switched service and name each way one can be wrong."""

from __future__ import annotations

import json
from datetime import datetime, timezone

import pytest

from release.cutover.live import from_knative_json
from release.cutover.verify import expected_env, last_records, operator_record, verify_service
from release.stack import load_stack_file
from tests.fixtures.live_json import knative_for_spec, release_annotations
from tests.fixtures.profile_sources import profile_facts
from tests.fixtures.projects import SEED_STACK_FILE
from tests.test_env import target

CONFIG = load_stack_file(SEED_STACK_FILE)
FACTS = profile_facts(CONFIG)
KEY_OF = {spec.service_name: key for key, spec in CONFIG.services.items()}
TAGS = release_annotations(CONFIG.release.quant_platform_kit, CONFIG.release.us_equity_strategies)


def switched(key: str, **bend):
    """A describe of the service exactly as the config switches it (dry-run flag `false` live)."""
    spec = CONFIG.services[key]
    platform_flag = {"ibkr": "IBKR", "schwab": "SCHWAB", "longbridge": "LONGBRIDGE"}[spec.platform] + "_DRY_RUN_ONLY"
    seed = from_knative_json(knative_for_spec(spec, {platform_flag: "false"}))
    env = expected_env(KEY_OF[spec.service_name], spec, seed, FACTS)
    plain = dict(env.plain)
    plain.update(bend.pop("env_update", {}))
    for name in bend.pop("env_remove", ()):
        plain.pop(name, None)
    document = knative_for_spec(
        spec, plain, secrets=bend.pop("secrets", dict(env.secrets)), annotations=bend.pop("annotations", TAGS), **bend
    )
    return from_knative_json(document, spec.service_name)


def failing(key: str, live) -> dict[str, str]:
    checks = verify_service(key, CONFIG.services[key], CONFIG.release, live, FACTS)
    return {check.id: check.message for check in checks if not check.ok}


@pytest.mark.parametrize("key", sorted(CONFIG.services))
def test_switched_service_passes_every_check(key):
    checks = verify_service(key, CONFIG.services[key], CONFIG.release, switched(key), FACTS)
    assert [c.id for c in checks if not c.ok] == []
    assert {"service", "strategy-profile", "runtime-target", "input-mode", "no-stale-env", "commit-live", "secrets-are-refs"} <= {
        c.id for c in checks
    }


def test_old_profile_fails_profile_and_runtime_target():
    bad = failing("schwab", switched("schwab", env_update={"STRATEGY_PROFILE": "hybrid_growth_income"}))
    assert "expected tqqq_growth_income" in bad["strategy-profile"]
    assert "env-matches-config" in bad


def test_runtime_target_mismatch_fails():
    # A target the runtime refuses (no platform_id) runs nothing: the profile check fails with it.
    bad = failing("schwab", switched("schwab", env_update={"RUNTIME_TARGET_JSON": json.dumps({"strategy_profile": "x"})}))
    assert set(bad) >= {"runtime-target", "strategy-profile"}
    assert "nothing readable: RUNTIME_TARGET_JSON has no platform_id" in bad["strategy-profile"]


def test_stale_snapshot_env_fails_input_mode():
    bad = failing(
        "ibkr", switched("ibkr", env_update={"IBKR_FEATURE_SNAPSHOT_PATH": "gs://b/old.csv", "IBKR_RECONCILIATION_OUTPUT_PATH": "gs://b/r"})
    )
    assert "stale IBKR_FEATURE_SNAPSHOT_PATH, IBKR_RECONCILIATION_OUTPUT_PATH" in bad["input-mode"]


def test_missing_snapshot_env_fails_input_mode():
    bad = failing("longbridge-hk", switched("longbridge-hk", env_remove=("LONGBRIDGE_FEATURE_SNAPSHOT_MANIFEST_PATH",)))
    assert "missing LONGBRIDGE_FEATURE_SNAPSHOT_MANIFEST_PATH" in bad["input-mode"]


def test_legacy_and_other_platform_env_fail():
    bad = failing("schwab", switched("schwab", env_update={"IB_GATEWAY_HOST": "h", "IBKR_FEATURE_SNAPSHOT_PATH": "gs://b/x"}))
    assert "legacy IB_GATEWAY_HOST" in bad["no-stale-env"]
    assert "IBKR_FEATURE_SNAPSHOT_PATH" in bad["no-stale-env"]


@pytest.mark.parametrize(
    "bend, part",
    [
        ({"commit": "1" * 40}, "the config expects"),
        # the right label on another image: the label is a claim, the image is what runs
        (
            {"image": "us-central1-docker.pkg.dev/someoneelse/r/cloud-run:ca6cae89db0a62ae5a6e7508a47a80ffdcc0efe4"},
            "the live image is from",
        ),
        ({"traffic": [{"revisionName": "rev-00001", "percent": 100}]}, "serves 0%"),
        ({"ready": False}, "not Ready"),
        ({"commit": None}, "no commit-sha label"),
    ],
)
def test_commit_not_confirmed_fails(bend, part):
    bad = failing("ibkr", switched("ibkr", **bend))
    assert part in bad["commit-live"]


def test_plain_credential_fails_secrets_check_without_showing_it():
    spec = CONFIG.services["schwab"]
    secrets = {k: v for k, v in spec.secrets.items() if k != "SCHWAB_API_KEY"}
    bad = failing("schwab", switched("schwab", secrets=secrets, env_update={"SCHWAB_API_KEY": "literal-key-value"}))
    assert "plain value for SCHWAB_API_KEY" in bad["secrets-are-refs"]
    assert all("literal-key-value" not in message for message in bad.values())


def test_wrong_service_and_missing_service_fail():
    live = switched("ibkr").model_copy(update={"service_name": "other-service"})
    assert "expected interactive-brokers-quant-service" in failing("ibkr", live)["service"]
    assert "no live state" in failing("ibkr", None)["service"]


def test_release_not_recorded_fails():
    assert "release-recorded" in failing("ibkr", switched("ibkr", annotations={}))


def test_operator_record_compares_with_the_previous_record():
    spec = CONFIG.services["ibkr"]
    old = "russell_1000_multi_factor_defensive"
    first_live = switched(
        "ibkr", env_update={"STRATEGY_PROFILE": old, "RUNTIME_TARGET_JSON": target("ibkr", old, spec.service_name, dry=False)}
    )
    now = datetime(2026, 4, 20, 14, 30, tzinfo=timezone.utc)
    first = operator_record("ibkr", spec, CONFIG.release, first_live, [], None, now)
    assert first["old_profile"] is None and first["env_changed"] is None
    second_live = switched("ibkr")
    previous = last_records([json.dumps(first), "not json"])["interactive-brokers-quant-service"]
    second = operator_record("ibkr", spec, CONFIG.release, second_live, [], previous, now)
    assert (second["old_profile"], second["new_profile"]) == ("russell_1000_multi_factor_defensive", "soxl_soxx_trend_income")
    assert second["env_changed"] == ["RUNTIME_TARGET_JSON", "STRATEGY_PROFILE"]
    assert second["time"] == "2026-04-20T14:30:00+00:00"
    assert "-1001234567890" not in json.dumps(second)  # values are fingerprinted, never written


def test_keep_over_an_unset_live_flag_fails_verify_instead_of_reading_it_as_dry():
    bad = failing("schwab", switched("schwab", env_remove=("SCHWAB_DRY_RUN_ONLY",)))
    assert "SCHWAB_DRY_RUN_ONLY: the live flag is unset" in bad["dry-run"]
    assert "no explicit SCHWAB_DRY_RUN_ONLY" in bad["runtime-target"]


def test_verify_text_escapes_control_characters_quoted_from_live_state():
    from release.cutover.verify import ServiceVerification, VerifyCheck, render_verify_text

    check = VerifyCheck("strategy-profile", False, "STRATEGY_PROFILE=x\n  PASS commit-live: forged\x1b[2J")
    text = render_verify_text([ServiceVerification("ibkr", "interactive-brokers-quant-service", (check,))])
    assert "\n  PASS" not in text and "\x1b" not in text and "x\\n  PASS commit-live: forged\\x1b[2J" in text


def test_commit_live_compares_a_digest_pinned_image_by_the_configured_tags_digest():
    spec = CONFIG.services["ibkr"]
    repository = spec.image.rsplit(":", 1)[0]
    live = switched("ibkr", image=f"{repository}@sha256:{'a' * 64}")

    def commit_live(digest):
        return next(c for c in verify_service("ibkr", spec, CONFIG.release, live, FACTS, digest) if c.id == "commit-live")

    assert commit_live(f"sha256:{'a' * 64}").ok
    other = commit_live(f"sha256:{'b' * 64}")
    assert not other.ok and f"not {repository}@sha256:{'b' * 64}" in other.message
    unknown = commit_live(None)
    assert not unknown.ok and "pass --images" in unknown.message
