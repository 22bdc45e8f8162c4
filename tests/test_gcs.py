"""The GCS reader against gcp-storage-emulator on 127.0.0.1: reads, bounds, and every fault as a GcsFault."""

from __future__ import annotations

import hashlib
import time

import pytest

from release.first_run.gcs import GcsFault, GcsReader, GcsUri, parse_gs_uri
from tests.fixtures.gcs_emulator import EMULATOR_ENV, denying_gate, silent_server


def test_parse_gs_uri():
    assert parse_gs_uri("gs://bucket-a/x/y.json") == GcsUri("bucket-a", "x/y.json")
    assert parse_gs_uri("gs://bucket-a/reports/", allow_bucket_only=True) == GcsUri("bucket-a", "reports")
    assert str(parse_gs_uri("gs://bucket-a/reports", allow_bucket_only=True).child("ibkr", "p/")) == "gs://bucket-a/reports/ibkr/p"
    for bad in ("/local/file.csv", "https://storage.googleapis.com/b/o", "gs://B!/o", "gs://bucket-a/", "gs://bucket-a/a\nb"):
        with pytest.raises(ValueError):
            parse_gs_uri(bad)


def test_reads_json_and_lists(gcs, reader):
    gcs.put("gs://reports-a/runs/2026-11/20261124T150000Z.json", {"status": "ok"})
    gcs.put("gs://reports-a/runs/2026-11/20261125T150000Z.json", {"status": "skipped"})
    gcs.put("gs://reports-a/other/x.json", {})
    assert reader.read_json(parse_gs_uri("gs://reports-a/runs/2026-11/20261124T150000Z.json")) == {"status": "ok"}
    assert reader.list_names(GcsUri("reports-a", "runs/2026-11/")) == [
        "runs/2026-11/20261124T150000Z.json",
        "runs/2026-11/20261125T150000Z.json",
    ]
    assert reader.list_names(GcsUri("reports-a", "runs/2026-12/")) == []


def test_list_is_capped(gcs, reader):
    for i in range(4):
        gcs.put(f"gs://reports-cap/m/{i}.json", {})
    with pytest.raises(GcsFault, match="more than 3 objects"):
        reader.list_names(GcsUri("reports-cap", "m/"), limit=3)


def test_missing_object_and_bucket_are_404_faults(gcs, reader):
    gcs.bucket("reports-b")
    with pytest.raises(GcsFault) as missing:
        reader.read_json(parse_gs_uri("gs://reports-b/nope.json"))
    assert missing.value.uri == "gs://reports-b/nope.json" and "HTTP 404" in missing.value.what
    with pytest.raises(GcsFault, match="HTTP 404"):
        reader.info(parse_gs_uri("gs://no-such-bucket-x/a.csv"))


def test_malformed_json_is_a_fault_naming_the_object(gcs, reader):
    gcs.put("gs://reports-b/broken.json", '{"status": "ok",')
    with pytest.raises(GcsFault) as fault:
        reader.read_json(parse_gs_uri("gs://reports-b/broken.json"))
    assert fault.value.uri == "gs://reports-b/broken.json" and "not valid JSON" in fault.value.what


def test_json_nested_past_the_recursion_limit_is_a_fault_not_a_recursion_error(gcs, reader):
    gcs.put("gs://reports-b/deep.json", "[" * 100000 + "]" * 100000)
    with pytest.raises(GcsFault) as fault:
        reader.read_json(parse_gs_uri("gs://reports-b/deep.json"), max_bytes=300000)
    assert fault.value.uri == "gs://reports-b/deep.json" and "nests deeper than 64 levels" in fault.value.what


def test_object_over_the_bound_is_refused(gcs, reader):
    gcs.put("gs://reports-b/big.json", b"[" + b"1," * 600 + b"1]")
    with pytest.raises(GcsFault, match="larger than 1000 bytes"):
        reader.read_json(parse_gs_uri("gs://reports-b/big.json"), max_bytes=1000)
    with pytest.raises(GcsFault, match="over the 1000-byte bound"):
        list(reader.iter_chunks(parse_gs_uri("gs://reports-b/big.json"), max_bytes=1000))


def test_chunks_cover_the_object_exactly_with_progress(gcs, reader):
    data = bytes(range(256)) * 40  # 10240 bytes: 3 chunks of 4096
    gcs.put("gs://artifacts-a/s.csv", data)
    seen: list[tuple[int, int]] = []
    chunks = list(reader.iter_chunks(parse_gs_uri("gs://artifacts-a/s.csv"), chunk_bytes=4096, progress=lambda d, t: seen.append((d, t))))
    assert [len(c) for c in chunks] == [4096, 4096, 2048]
    assert hashlib.sha256(b"".join(chunks)).hexdigest() == hashlib.sha256(data).hexdigest()
    assert seen == [(4096, 10240), (8192, 10240), (10240, 10240)]


def test_403_from_the_server_is_a_fault_not_a_pass(gcs, monkeypatch):
    gcs.put("gs://denied-a/m.json", {"ok": True})
    gcs.put("gs://allowed-a/m.json", {"ok": True})
    with denying_gate(gcs.url, frozenset({"denied-a"})) as gate:
        monkeypatch.setenv(EMULATOR_ENV, gate)
        reader = GcsReader(call_deadline=10)
        assert reader.read_json(parse_gs_uri("gs://allowed-a/m.json")) == {"ok": True}
        with pytest.raises(GcsFault) as denied:
            reader.read_json(parse_gs_uri("gs://denied-a/m.json"))
        assert denied.value.uri == "gs://denied-a/m.json" and "HTTP 403" in denied.value.what
        assert "objectViewer" in denied.value.fix
        with pytest.raises(GcsFault, match="HTTP 403"):
            reader.list_names(GcsUri("denied-a", "x/"))


def test_hung_server_hits_the_total_deadline(monkeypatch):
    with silent_server() as url:
        monkeypatch.setenv(EMULATOR_ENV, url)
        reader = GcsReader(call_deadline=1.0, request_timeout=0.3)
        started = time.monotonic()
        with pytest.raises(GcsFault) as fault:
            reader.read_json(parse_gs_uri("gs://reports-z/a.json"))
        assert time.monotonic() - started < 3
        assert "timed out" in fault.value.what and fault.value.uri == "gs://reports-z/a.json"


def test_nothing_listening_is_a_fault(monkeypatch):
    with silent_server() as url:
        pass  # closed: the port now refuses connections
    monkeypatch.setenv(EMULATOR_ENV, url)
    with pytest.raises(GcsFault) as fault:
        GcsReader(call_deadline=1.5, request_timeout=0.3).read_json(parse_gs_uri("gs://reports-z/a.json"))
    assert fault.value.uri == "gs://reports-z/a.json"
    assert "timed out" in fault.value.what or "cannot reach" in fault.value.what


def test_no_credentials_is_a_fault(monkeypatch):
    from google.auth.exceptions import DefaultCredentialsError

    def no_adc():
        raise DefaultCredentialsError("Your default credentials were not found.")

    with pytest.raises(GcsFault, match="no Application Default Credentials"):
        GcsReader(client_factory=no_adc).read_json(parse_gs_uri("gs://reports-z/a.json"))


def test_values_from_storage_are_shown_short_and_on_one_line():
    from release.first_run.gcs import shown

    assert shown(False) == "false" and shown(None) == "null" and shown(["a"]) == '["a"]'
    long = shown("token=" + "x" * 500 + "\nsecond line")
    assert len(long) == 80 and long.endswith("...") and "\n" not in long


def test_a_report_naming_a_key_twice_is_a_fault_not_the_last_value(gcs, reader):
    gcs.put("gs://reports-b/dup.json", '{"status": "error", "status": "ok"}')
    with pytest.raises(GcsFault, match="names status twice"):
        reader.read_json(parse_gs_uri("gs://reports-b/dup.json"))
