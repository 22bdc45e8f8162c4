"""Snapshot manifest checks by the runtime's rules, against objects in gcp-storage-emulator."""

from __future__ import annotations

from datetime import date

import pytest

from release.cutover.live import from_knative_json
from release.first_run.gcs import GcsFault, GcsReader
from release.first_run.manifest import manifest_checks, month_lag, scan_csv
from release.first_run.run_facts import run_facts
from release.stack import load_stack_file
from tests.fixtures.gcs_emulator import EMULATOR_ENV, denying_gate
from tests.fixtures.live_json import knative_for_spec
from tests.fixtures.profile_sources import profile_facts
from tests.fixtures.projects import SEED_STACK_FILE
from tests.fixtures.run_reports import DROP, sha256, snapshot_csv, snapshot_manifest

CONFIG = load_stack_file(SEED_STACK_FILE)
FACTS = profile_facts(CONFIG)
KEY_OF = {spec.service_name: key for key, spec in CONFIG.services.items()}
HK = CONFIG.services["longbridge-hk"]
PATHS = HK.snapshot
TODAY = date(2026, 11, 24)
AS_OF = date(2026, 11, 20)
CONFIG_BYTES = b'{"name": "qqq_tech_enhancement", "cash_buffer": 0.1}'


def live_hk(**env):
    base = {
        "LONGBRIDGE_FEATURE_SNAPSHOT_PATH": PATHS.feature_snapshot_path,
        "LONGBRIDGE_FEATURE_SNAPSHOT_MANIFEST_PATH": PATHS.manifest_path,
        "LONGBRIDGE_STRATEGY_CONFIG_PATH": PATHS.strategy_config_path,
    }
    return from_knative_json(knative_for_spec(HK, {k: v for k, v in {**base, **env}.items() if v is not None}))


def publish(gcs, as_of=AS_OF, csv_bytes=None, config_bytes=CONFIG_BYTES, **manifest_overrides):
    csv_bytes = snapshot_csv(as_of) if csv_bytes is None else csv_bytes
    gcs.put(PATHS.feature_snapshot_path, csv_bytes)
    gcs.put(PATHS.strategy_config_path, config_bytes)
    gcs.put(PATHS.manifest_path, snapshot_manifest(csv_bytes, as_of, config_bytes=CONFIG_BYTES, **manifest_overrides))
    return csv_bytes


def run(reader, live=None, spec=HK, today=TODAY):
    facts = run_facts(FACTS, spec.strategy_profile, KEY_OF[spec.service_name])
    result = manifest_checks(reader, spec, live or live_hk(), facts, today)
    return result, {c.id: c for c in result.checks}


def failed(checks):
    return sorted(c.id for c in checks.values() if not c.ok)


def test_a_published_snapshot_passes_and_is_recorded(gcs, reader):
    csv_bytes = publish(gcs)
    result, checks = run(reader)
    assert failed(checks) == [], checks
    assert set(checks) == {
        "manifest-fields", "manifest-profile", "manifest-snapshot", "manifest-sha256", "manifest-as-of",
        "manifest-fresh", "manifest-config-sha",
    }  # fmt: skip
    assert checks["manifest-sha256"].object == PATHS.feature_snapshot_path
    assert checks["manifest-fields"].object == PATHS.manifest_path
    assert checks["manifest-config-sha"].object == PATHS.strategy_config_path
    assert result.record == {"object": PATHS.manifest_path, "snapshot_as_of": "2026-11-20T00:00:00", "snapshot_sha256": sha256(csv_bytes)}


def test_csv_altered_after_the_manifest_fails_the_checksum(gcs, reader):
    publish(gcs)
    gcs.put(PATHS.feature_snapshot_path, snapshot_csv(AS_OF).replace(b"QQQ,", b"QQQM,", 1))
    _, checks = run(reader)
    assert failed(checks) == ["manifest-sha256"]
    assert "changed after the manifest" in checks["manifest-sha256"].message


def test_a_month_and_a_half_old_snapshot_is_stale(gcs, reader):
    publish(gcs, as_of=date(2026, 10, 20))
    _, checks = run(reader, today=date(2026, 12, 5))
    assert failed(checks) == ["manifest-fresh"]
    assert "2 calendar months" in checks["manifest-fresh"].message


def test_staleness_counts_calendar_months_not_days():
    assert month_lag(date(2026, 10, 1), date(2026, 11, 30)) == 1  # 60 days, one month boundary: fresh
    assert month_lag(date(2026, 10, 31), date(2026, 12, 1)) == 2  # 31 days, two boundaries: stale
    assert month_lag(date(2026, 12, 31), date(2027, 1, 2)) == 1


def test_a_snapshot_from_the_future_fails(gcs, reader):
    publish(gcs, as_of=date(2026, 11, 25))
    _, checks = run(reader)
    assert failed(checks) == ["manifest-fresh"]
    assert "future" in checks["manifest-fresh"].message


def test_manifest_for_another_profile_fails(gcs, reader):
    publish(gcs, profile="russell_1000_multi_factor_defensive", contract="russell_1000_multi_factor_defensive.feature_snapshot.v1")
    _, checks = run(reader)
    assert failed(checks) == ["manifest-profile"]
    message = checks["manifest-profile"].message
    assert "strategy_profile russell_1000_multi_factor_defensive" in message and "contract_version prefix" in message


def test_old_alias_contract_prefix_passes(gcs, reader):
    publish(gcs, profile="tech_pullback_cash_buffer", contract="tech_pullback_cash_buffer.feature_snapshot.v1")
    _, checks = run(reader)
    assert failed(checks) == []
    assert "tech_pullback_cash_buffer.feature_snapshot.v1" in checks["manifest-profile"].message


def test_contract_without_the_feature_snapshot_mark_fails(gcs, reader):
    publish(gcs, contract="qqq_tech_enhancement.v1")
    _, checks = run(reader)
    assert failed(checks) == ["manifest-profile"]


def test_missing_field_fails(gcs, reader):
    publish(gcs, config_sha256=DROP, row_count=0)
    _, checks = run(reader)
    assert "manifest-fields" in failed(checks)
    assert "missing config_sha256" in checks["manifest-fields"].message and "row_count 0" in checks["manifest-fields"].message


def test_as_of_differing_from_the_csv_fails(gcs, reader):
    publish(gcs, snapshot_as_of="2026-11-19")
    _, checks = run(reader)
    assert failed(checks) == ["manifest-as-of"]


def test_config_sha_is_compared_for_a_gcs_config(gcs, reader):
    publish(gcs)
    gcs.put(PATHS.strategy_config_path, b'{"name": "qqq_tech_enhancement", "cash_buffer": 0.2}')
    _, checks = run(reader)
    assert failed(checks) == ["manifest-config-sha"]
    _, checks = run(reader, live=live_hk(LONGBRIDGE_STRATEGY_CONFIG_PATH=None))
    assert failed(checks) == [] and "not compared" in checks["manifest-config-sha"].message


def test_missing_objects_fail_naming_them(gcs, reader):
    gcs.bucket("qsl-runtime-logs-shared")
    _, checks = run(reader)
    assert failed(checks) == ["manifest-fields", "manifest-snapshot"]
    assert checks["manifest-fields"].object == PATHS.manifest_path and "HTTP 404" in checks["manifest-fields"].message
    assert checks["manifest-snapshot"].object == PATHS.feature_snapshot_path


def test_403_on_the_artifacts_bucket_fails(gcs, monkeypatch):
    gcs.wipe()
    publish(gcs)
    with denying_gate(gcs.url, frozenset({"qsl-runtime-logs-shared"})) as gate:
        monkeypatch.setenv(EMULATOR_ENV, gate)
        _, checks = run(GcsReader(call_deadline=10))
    assert failed(checks) == ["manifest-fields", "manifest-snapshot"]
    assert "HTTP 403" in checks["manifest-fields"].message and "HTTP 403" in checks["manifest-snapshot"].message


def test_malformed_manifest_fails(gcs, reader):
    publish(gcs)
    gcs.put(PATHS.manifest_path, "not json")
    _, checks = run(reader)
    assert "manifest-fields" in failed(checks) and "not valid JSON" in checks["manifest-fields"].message


def test_direct_runtime_profile_loads_no_snapshot(reader):
    sg = CONFIG.services["longbridge-sg"]
    result, checks = run(reader, live=from_knative_json(knative_for_spec(sg, {})), spec=sg)
    assert list(checks) == ["manifest"] and checks["manifest"].ok and result.record is None


def test_unset_manifest_env_fails_when_the_profile_requires_one(gcs, reader):
    publish(gcs)
    _, checks = run(reader, live=live_hk(LONGBRIDGE_FEATURE_SNAPSHOT_MANIFEST_PATH=None))
    assert failed(checks) == ["manifest-fields"]
    assert "requires a manifest" in checks["manifest-fields"].message


def test_scan_streams_across_chunk_boundaries():
    data = snapshot_csv(date(2026, 11, 20), rows=40, column="snapshot_date").replace(b"\n", b"\r\n")
    chunks = [data[i : i + 7] for i in range(0, len(data), 7)]
    scan = scan_csv("gs://b/s.csv", chunks)
    assert scan.sha256 == sha256(data) and scan.size == len(data)
    assert scan.newest == date(2026, 11, 20) and scan.rows == 80 and scan.column == "snapshot_date"


@pytest.mark.parametrize(
    "data, what",
    [
        (b"", "no header"),
        (b"symbol,x\nQQQ,1\n", "no date column"),
        (b"as_of,symbol\n", "no rows"),
        (b"as_of,symbol\n2026-13-01,QQQ\n", "row 2"),
        (b"as_of,symbol\n\xff\xfe,QQQ\n", "UTF-8"),
    ],
)
def test_unloadable_csv_is_a_fault(data, what):
    with pytest.raises(GcsFault, match=what):
        scan_csv("gs://b/s.csv", [data])
