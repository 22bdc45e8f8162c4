"""`verify --reports` orchestration: the cutover time, bounded polling with progress, checks and record."""

from __future__ import annotations

import io
import threading
from datetime import datetime, timedelta, timezone

import pytest

from release.cutover.live import from_knative_json
from release.first_run.gcs import GcsFault
from release.first_run.reports import RunSearch
from release.first_run.run_facts import run_facts
from release.first_run.verification import FirstRunOptions, first_run_checks, parse_since, parse_wait, poll_first_run
from release.stack import load_stack_file
from tests.fixtures.live_json import knative_for_spec
from tests.fixtures.profile_sources import profile_facts
from tests.fixtures.projects import SEED_STACK_FILE
from tests.fixtures.run_reports import REPORTS_URI, report_uri, runtime_report

CONFIG = load_stack_file(SEED_STACK_FILE)
FACTS = profile_facts(CONFIG)
KEY_OF = {spec.service_name: key for key, spec in CONFIG.services.items()}
SCHWAB = CONFIG.services["schwab"]
SINCE = datetime(2026, 11, 24, 15, 0, tzinfo=timezone.utc)


def schwab_live(ready_since="2026-11-24T15:00:00Z"):
    env = {"EXECUTION_REPORT_GCS_URI": REPORTS_URI, "SCHWAB_DRY_RUN_ONLY": "false"}
    return from_knative_json(knative_for_spec(SCHWAB, env, ready_since=ready_since))


def facts():
    return run_facts(FACTS, SCHWAB.strategy_profile, KEY_OF[SCHWAB.service_name])


class FakeClock:
    def __init__(self):
        self.now = 0.0

    def __call__(self):
        return self.now

    def sleep(self, seconds):
        self.now += seconds


def test_polling_is_bounded_and_prints_a_line_per_poll():
    clock, calls, out = FakeClock(), [], io.StringIO()

    def search():
        calls.append(clock.now)
        return RunSearch(prefix="gs://b/p/", since=SINCE)

    result = poll_first_run(search, 100, 30, "svc", out, clock=clock, sleep=clock.sleep)
    assert not result.found
    assert calls == [0, 30, 60, 90, 100]
    lines = out.getvalue().splitlines()
    assert len(lines) == 4 and lines[0] == "svc: no run yet under gs://b/p/ (poll 1, 100s left)"


def test_polling_stops_at_a_fault_and_without_wait_searches_once():
    clock, out = FakeClock(), io.StringIO()
    faulted = RunSearch(prefix="p", since=SINCE, fault=GcsFault("gs://b/p", "access denied (HTTP 403)", "grant"))
    calls = []
    poll_first_run(lambda: calls.append(1) or faulted, 100, 30, "svc", out, clock=clock, sleep=clock.sleep)
    assert calls == [1] and out.getvalue() == ""
    poll_first_run(lambda: calls.append(2) or RunSearch(prefix="p", since=SINCE), 0, 30, "svc", out, clock=clock, sleep=clock.sleep)
    assert calls == [1, 2]


def test_cutover_defaults_to_when_the_service_became_ready(gcs, reader):
    before = datetime(2026, 11, 24, 14, 0, tzinfo=timezone.utc)
    after = datetime(2026, 11, 24, 20, 45, tzinfo=timezone.utc)
    for at, profile in ((before, "semiconductor_rotation_income"), (after, None)):
        gcs.put(report_uri(SCHWAB, None, at), runtime_report(SCHWAB, "TQQQ Growth Income", at, profile=profile))

    def now() -> datetime:
        return datetime(2026, 11, 25, tzinfo=timezone.utc)

    result = first_run_checks(SCHWAB, schwab_live(), facts(), reader, FirstRunOptions(), now=now)
    checks = {c.id: c for c in result.checks}
    assert all(c.ok for c in result.checks), result.checks
    assert checks["report-found"].object.endswith("20261124T204500Z.json")
    assert result.record["first_run"]["run_id"] == "20261124T204500Z"
    assert result.record["snapshot"] is None  # tqqq_growth_income is direct-runtime

    # --since earlier than the deploy picks the older run, whose profile is the old one
    result = first_run_checks(SCHWAB, schwab_live(), facts(), reader, FirstRunOptions(since=before - timedelta(minutes=1)), now=now)
    assert [c.id for c in result.checks if not c.ok] == ["report-profile"]


def test_no_ready_time_and_no_since_is_a_failed_check(reader):
    result = first_run_checks(SCHWAB, schwab_live(ready_since=None), facts(), reader, FirstRunOptions())
    assert result.checks[0].id == "report-found" and not result.checks[0].ok
    assert "--since" in result.checks[0].message


def test_wait_finds_a_report_written_while_it_polls(gcs, reader):
    at = datetime.now(timezone.utc).replace(microsecond=0) + timedelta(seconds=1)
    writer = threading.Timer(0.8, lambda: gcs.put(report_uri(SCHWAB, None, at), runtime_report(SCHWAB, "TQQQ Growth Income", at)))
    out = io.StringIO()
    gcs.bucket("qsl-reports-test")  # the bucket exists; the run has not reported yet
    writer.start()
    try:
        result = first_run_checks(
            SCHWAB, schwab_live(), facts(), reader,
            FirstRunOptions(since=at - timedelta(minutes=5), wait_seconds=20, poll_seconds=0.2), progress=out,
        )  # fmt: skip
    finally:
        writer.cancel()
    assert all(c.ok for c in result.checks), result.checks
    assert out.getvalue().count("no run yet under") >= 2


def test_parse_since_and_wait():
    assert parse_since("2026-11-24T15:40:00Z") == datetime(2026, 11, 24, 15, 40, tzinfo=timezone.utc)
    assert parse_since("2026-11-24T10:40:00-05:00") == datetime(2026, 11, 24, 15, 40, tzinfo=timezone.utc)
    for bad in ("2026-11-24T15:40:00", "yesterday"):
        with pytest.raises(ValueError):
            parse_since(bad)
    assert parse_wait("90") == 90.0
    for bad in ("-1", "nan", "1e9", "soon"):
        with pytest.raises(ValueError):
            parse_wait(bad)
