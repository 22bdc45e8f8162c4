"""`python -m release verify --reports` end to end: live JSON in, reports and snapshots in gcp-storage-emulator."""

from __future__ import annotations

import json
import threading
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

import release.first_run.verification
from release.cli import main
from release.cutover.live import from_knative_json
from release.cutover.verify import expected_env
from release.first_run.run_facts import run_facts
from release.first_run.verification import run_date
from release.stack import load_stack_file
from tests.fixtures.live_json import knative_for_spec, release_annotations, write_live_dir, write_scheduling
from tests.fixtures.prod_lock import prod_lock_path
from tests.fixtures.profile_sources import profile_facts
from tests.fixtures.projects import SEED_STACK_FILE
from tests.fixtures.run_reports import REPORTS_URI, SCOPES, report_uri, runtime_report, sha256, snapshot_csv, snapshot_manifest

CONFIG = load_stack_file(SEED_STACK_FILE)
FACTS = profile_facts(CONFIG)
KEY_OF = {spec.service_name: key for key, spec in CONFIG.services.items()}
TAGS = release_annotations(CONFIG.release.quant_platform_kit, CONFIG.release.us_equity_strategies)
FLAG = {"ibkr": "IBKR_DRY_RUN_ONLY", "schwab": "SCHWAB_DRY_RUN_ONLY", "longbridge": "LONGBRIDGE_DRY_RUN_ONLY"}
NOW = datetime.now(timezone.utc).replace(microsecond=0)
SINCE = NOW - timedelta(hours=2)
RUN = NOW - timedelta(hours=1)


def live_dir(directory: Path) -> Path:
    documents = []
    for spec in CONFIG.services.values():
        env = expected_env(
            KEY_OF[spec.service_name], spec, from_knative_json(knative_for_spec(spec, {FLAG[spec.platform]: "false"})), FACTS
        )
        documents.append(knative_for_spec(spec, env.plain, secrets=dict(env.secrets), annotations=TAGS))
    return write_live_dir(directory, documents)


def publish_runs(gcs, skip=()):
    for key, spec in CONFIG.services.items():
        if key in skip:
            continue
        facts = run_facts(FACTS, spec.strategy_profile, KEY_OF[spec.service_name])
        gcs.put(report_uri(spec, SCOPES[key], RUN), runtime_report(spec, facts.display_name, RUN, snapshot_backed=facts.snapshot_backed))
    paths = CONFIG.services["longbridge-hk"].snapshot
    as_of = run_date(NOW) - timedelta(days=1)
    config_bytes = b'{"name": "qqq_tech_enhancement"}'
    csv_bytes = snapshot_csv(as_of)
    gcs.put(paths.feature_snapshot_path, csv_bytes)
    gcs.put(paths.strategy_config_path, config_bytes)
    gcs.put(paths.manifest_path, snapshot_manifest(csv_bytes, as_of, config_bytes=config_bytes))
    return csv_bytes, as_of


def verify(tmp_path, *extra):
    jobs, iam = write_scheduling(tmp_path / "scheduling", CONFIG.services)
    return main(["verify", "--lock", prod_lock_path(), "--live", str(live_dir(tmp_path / "live")), "--reports", "--reports-uri", REPORTS_URI,
                 "--since", SINCE.isoformat(), "--scheduler", str(jobs), "--iam", str(iam), *extra])  # fmt: skip


def test_first_runs_and_snapshot_pass_with_the_objects_read(emulated, tmp_path, capsys):
    publish_runs(emulated)
    code = verify(tmp_path)
    out = capsys.readouterr().out
    assert code == 0, out
    assert "FAIL" not in out
    assert out.count("PASS report-display-name") == len(CONFIG.services)
    hk = CONFIG.services["longbridge-hk"]
    assert "PASS manifest-sha256: CSV sha256" in out and f"[{hk.snapshot.feature_snapshot_path}]" in out
    assert f"[{report_uri(hk, 'HK', RUN)}]" in out


def test_json_output_carries_check_ids_and_objects(emulated, tmp_path, capsys):
    publish_runs(emulated)
    assert verify(tmp_path, "--format", "json") == 0
    data = json.loads(capsys.readouterr().out)
    hk = next(s for s in data["services"] if s["key"] == "longbridge-hk")
    ids = {c["id"]: c for c in hk["checks"]}
    assert ids["report-status"]["ok"] and ids["report-status"]["object"] == report_uri(CONFIG.services["longbridge-hk"], "HK", RUN)
    assert ids["manifest-fresh"]["object"] == CONFIG.services["longbridge-hk"].snapshot.feature_snapshot_path
    assert "object" not in ids["commit-live"]


def test_missing_report_fails_with_exit_1(emulated, tmp_path, capsys):
    publish_runs(emulated, skip=("ibkr",))
    assert verify(tmp_path) == 1
    out = capsys.readouterr().out
    assert out.count("FAIL") == 1
    assert f"FAIL report-found: no run yet: no report started after {SINCE.isoformat()}" in out
    assert f"[{REPORTS_URI}/interactive_brokers/soxl_soxx_trend_income/default/]" in out


def test_record_keeps_run_id_and_snapshot(emulated, tmp_path, capsys):
    csv_bytes, as_of = publish_runs(emulated)
    record = tmp_path / "ops.jsonl"
    assert verify(tmp_path, "--record", str(record)) == 0
    lines = [json.loads(line) for line in record.read_text().splitlines()]
    by_key = {line["key"]: line for line in lines}
    assert by_key["schwab"]["first_run"]["run_id"] == RUN.strftime("%Y%m%dT%H%M%SZ")
    assert by_key["schwab"]["snapshot"] is None
    snapshot = by_key["longbridge-hk"]["snapshot"]
    assert snapshot["snapshot_sha256"] == sha256(csv_bytes) and snapshot["snapshot_as_of"].startswith(as_of.isoformat())


def test_wait_polls_until_the_report_arrives(emulated, tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(release.first_run.verification, "POLL_SECONDS", 0.2)
    publish_runs(emulated, skip=("schwab",))
    schwab = CONFIG.services["schwab"]
    late = threading.Timer(0.7, lambda: emulated.put(report_uri(schwab, None, RUN), runtime_report(schwab, "TQQQ Growth Income", RUN)))
    late.start()
    try:
        code = verify(tmp_path, "--wait", "20")
    finally:
        late.cancel()
    captured = capsys.readouterr()
    assert code == 0, captured.out
    assert "charles-schwab-quant-service: no run yet under" in captured.err


@pytest.mark.parametrize(
    "args, message",
    [
        (["--since", "2026-11-24T15:00:00Z"], "only apply with --reports"),
        (["--reports", "--since", "2026-11-24 15:00"], "has no time zone"),
        (["--reports", "--wait", "-5"], "--wait"),
        (["--reports", "--reports-uri", "s3://bucket/x"], "not a gs:// URI"),
    ],
)
def test_bad_reports_arguments_are_exit_2(tmp_path, capsys, args, message):
    assert main(["verify", "--lock", prod_lock_path(), "--live", str(live_dir(tmp_path / "live")), *args]) == 2
    assert message in capsys.readouterr().err
