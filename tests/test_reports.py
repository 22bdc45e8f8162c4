"""The first execution report after a cutover, found in gcp-storage-emulator and checked against the config."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from release.cutover.live import from_knative_json
from release.first_run.gcs import GcsReader
from release.first_run.reports import find_first_run, found_check, month_segments, report_checks
from release.first_run.run_facts import run_facts
from release.stack import load_stack_file
from tests.fixtures.gcs_emulator import EMULATOR_ENV, denying_gate
from tests.fixtures.live_json import knative_for_spec
from tests.fixtures.profile_sources import profile_facts
from tests.fixtures.projects import SEED_STACK_FILE
from tests.fixtures.run_reports import ARTIFACTS, REPORTS_URI, SCOPES, report_uri, runtime_report

CONFIG = load_stack_file(SEED_STACK_FILE)
FACTS = profile_facts(CONFIG)
KEY_OF = {spec.service_name: key for key, spec in CONFIG.services.items()}
FLAG = {"ibkr": "IBKR_DRY_RUN_ONLY", "schwab": "SCHWAB_DRY_RUN_ONLY", "longbridge": "LONGBRIDGE_DRY_RUN_ONLY"}
SINCE = datetime(2026, 11, 24, 15, 0, tzinfo=timezone.utc)
NOW = datetime(2026, 11, 25, 23, 0, tzinfo=timezone.utc)
RUN = datetime(2026, 11, 24, 20, 45, 3, tzinfo=timezone.utc)


def live_for(key: str, spec=None, dry_run: str | None = "false", **env):
    spec = spec or CONFIG.services[key]
    base = {"EXECUTION_REPORT_GCS_URI": REPORTS_URI, **spec.env}
    if spec.account_region:
        base["ACCOUNT_REGION"] = spec.account_region
    if dry_run is not None:
        base[FLAG[spec.platform]] = dry_run
    return from_knative_json(knative_for_spec(spec, {**base, **env}))


def facts_for(spec):
    facts = run_facts(FACTS, spec.strategy_profile, KEY_OF[spec.service_name])
    assert facts is not None
    return facts


def put_report(gcs, key, at=RUN, spec=None, **kwargs):
    spec = spec or CONFIG.services[key]
    facts = facts_for(spec)
    kwargs.setdefault("snapshot_backed", facts.snapshot_backed)
    uri = report_uri(spec, SCOPES[key], at)  # filed under the configured profile, whatever the report says
    return gcs.put(uri, runtime_report(spec, kwargs.pop("display_name", facts.display_name), at, **kwargs))


def first_run(reader, key, spec=None, live=None, since=SINCE):
    spec = spec or CONFIG.services[key]
    live = live or live_for(key, spec)
    search = find_first_run(reader, spec, live, facts_for(spec).profile, since, NOW)
    checks = [found_check(search)]
    if search.report is not None:
        checks += report_checks(search.report, search.uri, spec, live, facts_for(spec))
    return search, {c.id: c for c in checks}


def failed(checks):
    return sorted(c.id for c in checks.values() if not c.ok)


@pytest.mark.parametrize("key", list(CONFIG.services))
def test_a_healthy_first_run_passes_for_every_platform_shape(gcs, reader, key):
    uri = put_report(gcs, key)
    search, checks = first_run(reader, key)
    assert failed(checks) == [], checks
    assert search.uri == uri and checks["report-found"].object == uri
    assert set(checks) == {
        "report-found", "report-schema", "report-profile", "report-service", "report-status",
        "report-dry-run", "report-display-name", "report-input-mode",
    }  # fmt: skip
    assert all(c.object == uri for c in checks.values())
    if CONFIG.services[key].platform != "ibkr":
        assert "carry no input mode" in checks["report-input-mode"].message


def test_skipped_run_is_passed_over_for_the_next_ok_one(gcs, reader):
    put_report(gcs, "schwab", at=RUN, status="skipped")
    ok_uri = put_report(gcs, "schwab", at=RUN + timedelta(days=1))
    search, checks = first_run(reader, "schwab")
    assert search.uri == ok_uri and failed(checks) == []
    assert "passed over 1 skipped run(s)" in checks["report-found"].message


def test_only_skipped_runs_means_no_run_yet(gcs, reader):
    put_report(gcs, "schwab", status="skipped")
    _, checks = first_run(reader, "schwab")
    assert failed(checks) == ["report-found"]
    message = checks["report-found"].message
    assert "no run yet" in message and "only 1 skipped run(s)" in message
    assert f"{REPORTS_URI}/charles_schwab/tqqq_growth_income/" in message


def test_no_report_at_all_fails_with_the_prefix_it_looked_under(gcs, reader):
    gcs.bucket("qsl-reports-test")
    _, checks = first_run(reader, "ibkr")
    assert failed(checks) == ["report-found"]
    assert checks["report-found"].object == f"{REPORTS_URI}/interactive_brokers/soxl_soxx_trend_income/default/"


def test_reports_before_the_cutover_do_not_count(gcs, reader):
    put_report(gcs, "ibkr", at=SINCE - timedelta(hours=3))
    put_report(gcs, "ibkr", at=SINCE - timedelta(days=40))
    _, checks = first_run(reader, "ibkr")
    assert failed(checks) == ["report-found"]


def test_report_of_the_old_profile_fails(gcs, reader):
    put_report(gcs, "ibkr", profile="russell_1000_multi_factor_defensive")
    _, checks = first_run(reader, "ibkr")
    assert failed(checks) == ["report-profile"]
    assert "russell_1000_multi_factor_defensive" in checks["report-profile"].message


def test_wrong_display_name_fails(gcs, reader):
    put_report(gcs, "longbridge-sg", display_name="QQQ/TQQQ Growth Income")
    _, checks = first_run(reader, "longbridge-sg")
    assert failed(checks) == ["report-display-name"]
    assert "'TQQQ Growth Income'" in checks["report-display-name"].message
    assert (
        "(per longbridge's registry at LongBridgePlatform@37fb570 with QPK v0.7.10, UES v0.7.13)" in checks["report-display-name"].message
    )


def test_dry_run_mismatch_fails(gcs, reader):
    put_report(gcs, "schwab", dry_run=False)  # the service is set to dry run, the run traded live
    _, checks = first_run(reader, "schwab", live=live_for("schwab", dry_run="true"))
    assert failed(checks) == ["report-dry-run"]
    assert "SCHWAB_DRY_RUN_ONLY=true" in checks["report-dry-run"].message


def test_dry_run_prechecks_of_a_live_service_are_passed_over_for_the_live_run(gcs, reader):
    put_report(gcs, "ibkr", at=RUN - timedelta(hours=2), dry_run=True)  # a later image's /dry-run precheck
    live_uri = put_report(gcs, "ibkr", at=RUN)
    search, checks = first_run(reader, "ibkr")
    assert search.uri == live_uri and failed(checks) == []
    assert "passed over 1 dry-run precheck report(s)" in checks["report-found"].message

    gcs.wipe()
    put_report(gcs, "ibkr", dry_run=True)
    _, checks = first_run(reader, "ibkr")
    assert failed(checks) == ["report-found"]
    assert "only 1 dry-run precheck report(s) of this live service" in checks["report-found"].message


def test_a_dry_run_service_is_judged_by_its_dry_run_report(gcs, reader):
    put_report(gcs, "ibkr", dry_run=True)
    _, checks = first_run(reader, "ibkr", live=live_for("ibkr", dry_run="true"))
    assert failed(checks) == []
    put_report(gcs, "ibkr", at=RUN - timedelta(minutes=10), dry_run=False)  # a dry service that traded live
    _, checks = first_run(reader, "ibkr", live=live_for("ibkr", dry_run="true"))
    assert failed(checks) == ["report-dry-run"]


def test_unset_live_flag_has_no_safe_reading(gcs, reader):
    put_report(gcs, "schwab", dry_run=True)
    _, checks = first_run(reader, "schwab", live=live_for("schwab", dry_run=None))
    assert failed(checks) == ["report-dry-run"]
    assert "SCHWAB_DRY_RUN_ONLY is unset" in checks["report-dry-run"].message


def test_error_status_fails(gcs, reader):
    put_report(gcs, "ibkr", status="error", errors=["ib gateway unreachable"])
    _, checks = first_run(reader, "ibkr")
    assert failed(checks) == ["report-status"]
    assert "1 error(s)" in checks["report-status"].message


def test_ibkr_direct_profile_whose_report_lists_snapshot_artifacts_fails(gcs, reader):
    put_report(gcs, "ibkr", artifacts={"feature_snapshot_path": "gs://old/r1000.csv"})
    _, checks = first_run(reader, "ibkr")
    assert failed(checks) == ["report-input-mode"]
    assert "feature_snapshot_path" in checks["report-input-mode"].message


def test_ibkr_snapshot_profile_needs_feature_snapshot_signal_and_artifacts(gcs, reader):
    spec = CONFIG.services["ibkr"].model_copy(update={"strategy_profile": "qqq_tech_enhancement"})
    put_report(gcs, "ibkr", spec=spec)
    same = live_for(
        "ibkr", spec,
        IBKR_FEATURE_SNAPSHOT_PATH=f"{ARTIFACTS}/qqq_tech_enhancement_feature_snapshot_latest.csv",
        IBKR_FEATURE_SNAPSHOT_MANIFEST_PATH=f"{ARTIFACTS}/qqq_tech_enhancement_feature_snapshot_latest.csv.manifest.json",
    )  # fmt: skip
    _, checks = first_run(reader, "ibkr", spec=spec, live=same)
    assert failed(checks) == []
    assert checks["report-input-mode"].message.startswith("snapshot-backed")

    other = live_for("ibkr", spec, IBKR_FEATURE_SNAPSHOT_PATH="gs://qsl-runtime-logs-shared/other.csv")
    _, checks = first_run(reader, "ibkr", spec=spec, live=other)
    assert failed(checks) == ["report-input-mode"]
    assert "is not the service's IBKR_FEATURE_SNAPSHOT_PATH" in checks["report-input-mode"].message

    gcs.wipe()
    put_report(gcs, "ibkr", spec=spec, snapshot_backed=False)  # ran on market data
    _, checks = first_run(reader, "ibkr", spec=spec, live=live_for("ibkr", spec))
    assert failed(checks) == ["report-input-mode"]
    assert "expected feature_snapshot" in checks["report-input-mode"].message


def test_malformed_report_is_a_failed_check_naming_it(gcs, reader):
    spec = CONFIG.services["schwab"]
    uri = gcs.put(report_uri(spec, None, RUN), '{"schema_version": "runtime_report.v1",')
    search, checks = first_run(reader, "schwab")
    assert failed(checks) == ["report-found"]
    assert checks["report-found"].object == uri and "not valid JSON" in checks["report-found"].message


def test_report_without_a_start_time_cannot_be_placed(gcs, reader):
    spec = CONFIG.services["schwab"]
    gcs.put(report_uri(spec, None, RUN), {**runtime_report(spec, "TQQQ Growth Income", RUN), "started_at": "yesterday"})
    _, checks = first_run(reader, "schwab")
    assert failed(checks) == ["report-found"] and "no valid started_at" in checks["report-found"].message


def test_403_on_the_reports_bucket_is_a_failed_check(gcs, monkeypatch):
    gcs.wipe()
    put_report(gcs, "schwab")
    with denying_gate(gcs.url, frozenset({"qsl-reports-test"})) as gate:
        monkeypatch.setenv(EMULATOR_ENV, gate)
        _, checks = first_run(GcsReader(call_deadline=10), "schwab")
    assert failed(checks) == ["report-found"]
    assert "HTTP 403" in checks["report-found"].message
    assert checks["report-found"].object.startswith(f"{REPORTS_URI}/charles_schwab/tqqq_growth_income/2026-11/")


def test_missing_prefix_env_and_scope_are_failed_checks(reader):
    spec = CONFIG.services["ibkr"]
    live = from_knative_json(knative_for_spec(spec, {"IBKR_DRY_RUN_ONLY": "false"}))
    _, checks = first_run(reader, "ibkr", live=live)
    assert "EXECUTION_REPORT_GCS_URI is unset" in checks["report-found"].message
    live = from_knative_json(knative_for_spec(spec, {"EXECUTION_REPORT_GCS_URI": REPORTS_URI}))
    no_group = spec.model_copy(update={"env": {}})
    _, checks = first_run(reader, "ibkr", spec=no_group, live=live)
    assert "ACCOUNT_GROUP" in checks["report-found"].message and not checks["report-found"].ok


def test_month_segments_span_the_cutover_and_are_capped():
    assert month_segments(datetime(2026, 11, 30, tzinfo=timezone.utc), datetime(2027, 1, 2, tzinfo=timezone.utc)) == [
        "2026-11", "2026-12", "2027-01",
    ]  # fmt: skip
    assert len(month_segments(datetime(2020, 1, 1, tzinfo=timezone.utc), NOW)) == 13


def test_a_report_that_started_in_the_future_is_not_the_first_run(gcs, reader):
    gcs.wipe()
    spec = CONFIG.services["schwab"]
    future = NOW + timedelta(days=30)
    gcs.put(report_uri(spec, None, RUN), {**runtime_report(spec, "TQQQ Growth Income", RUN), "started_at": future.isoformat()})
    _, checks = first_run(reader, "schwab")
    assert failed(checks) == ["report-found"] and "in the future" in checks["report-found"].message


def test_a_listing_answer_outside_the_requested_prefix_decides_nothing(gcs, monkeypatch):
    from tests.fixtures.gcs_emulator import without_list_prefix

    gcs.wipe()
    spec = CONFIG.services["schwab"]
    # A healthy-looking report of this service's run, filed under another profile's directory.
    elsewhere = report_uri(spec, None, RUN).replace("/tqqq_growth_income/", "/soxl_soxx_trend_income/")
    gcs.put(elsewhere, runtime_report(spec, "TQQQ Growth Income", RUN))
    with denying_gate(gcs.url, rewrite=without_list_prefix) as gate:
        monkeypatch.setenv(EMULATOR_ENV, gate)
        _, checks = first_run(GcsReader(call_deadline=10), "schwab")
    assert failed(checks) == ["report-found"] and "outside the requested prefix" in checks["report-found"].message
