"""The snapshot a snapshot-backed service will load, checked by the runtime's own rules (docs/platform-facts.md §5).

The live env names the objects (`{P}_FEATURE_SNAPSHOT_MANIFEST_PATH`, `{P}_FEATURE_SNAPSHOT_PATH`,
`{P}_STRATEGY_CONFIG_PATH`). The CSV is hashed and scanned for its newest date while it streams, so a
large snapshot takes bounded memory. The manifest's own `snapshot_path`/`config_path` are the builder's
local paths and are never compared.
"""

from __future__ import annotations

import csv
import hashlib
import io
from dataclasses import dataclass
from datetime import date
from typing import Any, Callable, Iterable, Iterator, Mapping, Optional

from components.platforms import PLATFORMS
from release.config import ServiceSpec
from release.cutover.live import LiveService
from release.cutover.verify import VerifyCheck
from release.first_run.gcs import CSV_MAX_BYTES, GcsFault, GcsReader, parse_gs_uri, shown
from release.first_run.run_facts import RunFacts

MANIFEST_TYPE = "feature_snapshot"
REQUIRED_FIELDS = ("contract_version", "strategy_profile", "config_name", "snapshot_as_of", "snapshot_sha256", "config_sha256")
DATE_COLUMNS = ("as_of", "snapshot_date")
CONTRACT_MARK = ".feature_snapshot."
CONFIG_MAX_BYTES = 16 << 20

Progress = Callable[[str, int, int], None]


@dataclass(frozen=True)
class CsvScan:
    sha256: str
    size: int
    rows: int
    newest: date
    column: str


@dataclass(frozen=True)
class ManifestResult:
    checks: tuple[VerifyCheck, ...]
    record: Optional[dict[str, Any]]


class _HashingRaw(io.RawIOBase):
    """A raw stream over chunks that hashes every byte as it passes."""

    def __init__(self, chunks: Iterable[bytes]) -> None:
        self._chunks: Iterator[bytes] = iter(chunks)
        self._pending = b""
        self.digest = hashlib.sha256()
        self.size = 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        while not self._pending:
            chunk = next(self._chunks, None)
            if chunk is None:
                return 0
            self.digest.update(chunk)
            self.size += len(chunk)
            self._pending = chunk
        count = min(len(buffer), len(self._pending))
        buffer[:count] = self._pending[:count]
        self._pending = self._pending[count:]
        return count


def as_date(value: Any) -> Optional[date]:
    """The date of an as-of value: `2026-10-30`, or with a time after it (`2026-10-30T00:00:00`, `2026-10-30 ...`)."""
    if not isinstance(value, str) or len(value.strip()) < 10:
        return None
    try:
        return date.fromisoformat(value.strip()[:10])
    except ValueError:
        return None


def scan_csv(uri: str, chunks: Iterable[bytes]) -> CsvScan:
    """sha256 of the bytes and the newest date of the date column, in one streaming pass."""
    raw = _HashingRaw(chunks)
    text = io.TextIOWrapper(io.BufferedReader(raw, buffer_size=1 << 16), encoding="utf-8", newline="")
    try:
        rows = csv.reader(text)
        header = next(rows, None)
        if not header:
            raise GcsFault(uri, "is empty (no header row)", "republish the snapshot")
        names = [h.strip().lstrip("\ufeff") for h in header]
        column = next((c for c in DATE_COLUMNS if c in names), None)
        if column is None:
            raise GcsFault(uri, f"has no date column ({' or '.join(DATE_COLUMNS)})", "republish the snapshot with its as-of column")
        index = names.index(column)
        newest: Optional[date] = None
        count = 0
        for line, row in enumerate(rows, start=2):
            if not row:
                continue
            value = as_date(row[index]) if index < len(row) else None
            if value is None:
                raise GcsFault(uri, f"row {line} has no valid {column} date", "republish the snapshot")
            newest = value if newest is None or value > newest else newest
            count += 1
        if newest is None:
            raise GcsFault(uri, "has a header but no rows", "republish the snapshot")
        while text.read(1 << 16):  # whatever csv left unread still counts for the hash
            pass
    except UnicodeDecodeError:
        raise GcsFault(uri, "is not UTF-8 text", "republish the snapshot as UTF-8 CSV") from None
    except csv.Error as error:
        raise GcsFault(uri, f"is not valid CSV ({error})", "republish the snapshot") from None
    return CsvScan(raw.digest.hexdigest(), raw.size, count, newest, column)


def month_lag(as_of: date, today: date) -> int:
    """Calendar months between the two dates (2026-10-31 -> 2026-11-01 is 1), the runtime's staleness unit."""
    return (today.year * 12 + today.month) - (as_of.year * 12 + as_of.month)


def _sha_of(reader: GcsReader, uri_text: str, max_bytes: int, progress: Optional[Progress]) -> tuple[str, int]:
    uri = parse_gs_uri(uri_text)
    digest, size = hashlib.sha256(), 0
    report = (lambda done, total: progress(str(uri), done, total)) if progress else None
    for chunk in reader.iter_chunks(uri, max_bytes=max_bytes, progress=report):
        digest.update(chunk)
        size += len(chunk)
    return digest.hexdigest(), size


def manifest_checks(
    reader: GcsReader,
    spec: ServiceSpec,
    live: Optional[LiveService],
    facts: RunFacts,
    today: date,
    progress: Optional[Progress] = None,
) -> ManifestResult:
    """The snapshot checks of one service (nothing to check for a direct-runtime profile)."""
    if not facts.snapshot_backed:
        return ManifestResult((VerifyCheck("manifest", True, f"{facts.profile} is direct-runtime: it loads no snapshot"),), None)
    platform = PLATFORMS[spec.platform]
    env = live.env if live is not None else {}
    checks: list[VerifyCheck] = []
    snapshot_text = env.get(platform.feature_snapshot_env, "").strip()
    manifest_text = env.get(platform.manifest_env, "").strip()
    config_text = env.get(platform.strategy_config_env, "").strip()

    manifest: Optional[Mapping[str, Any]] = None
    manifest_uri = manifest_text or None
    if not manifest_text:
        checks.append(
            VerifyCheck(
                "manifest-fields",
                not facts.manifest_required,
                f"{platform.manifest_env} is unset"
                + (
                    "; the profile requires a manifest: set snapshot.manifestPath"
                    if facts.manifest_required
                    else "; the runtime loads the CSV without one"
                ),
            )
        )
    else:
        try:
            loaded = reader.read_json(parse_gs_uri(manifest_text))
            if not isinstance(loaded, Mapping):
                raise GcsFault(manifest_text, "is not a JSON object", "republish the manifest")
            manifest = loaded
        except ValueError as error:
            checks.append(VerifyCheck("manifest-fields", False, f"{platform.manifest_env}: {error}", object=manifest_text))
        except GcsFault as fault:
            checks.append(VerifyCheck("manifest-fields", False, f"{fault.what}; {fault.fix}", object=fault.uri))

    if manifest is not None:
        missing = [f for f in REQUIRED_FIELDS if manifest.get(f) in (None, "")]
        problems = [f"missing {', '.join(missing)}"] if missing else []
        if manifest.get("manifest_type") != MANIFEST_TYPE:
            problems.append(f"manifest_type {shown(manifest.get('manifest_type'))}, expected {MANIFEST_TYPE}")
        rows = manifest.get("row_count")
        if not (isinstance(rows, int) and not isinstance(rows, bool) and rows > 0):
            problems.append(f"row_count {shown(rows)}, expected a positive integer")
        checks.append(
            VerifyCheck(
                "manifest-fields",
                not problems,
                "; ".join(problems) + "; republish the snapshot" if problems else f"required fields present, {rows} rows",
                object=manifest_uri,
            )
        )
        contract = manifest.get("contract_version")
        contract_profile = contract.split(CONTRACT_MARK, 1)[0] if isinstance(contract, str) and CONTRACT_MARK in contract else None
        wrong = [
            f"{label} {shown(value)}"
            for label, value in (
                ("strategy_profile", manifest.get("strategy_profile")),
                ("config_name", manifest.get("config_name")),
                ("contract_version prefix", contract_profile if contract_profile is not None else contract),
            )
            if not facts.means_this_profile(value)
        ]
        checks.append(
            VerifyCheck(
                "manifest-profile",
                not wrong,
                f"manifest is for {facts.profile} (contract {shown(contract)})"
                if not wrong
                else f"{'; '.join(wrong)} do(es) not name {facts.profile} (or its aliases {', '.join(sorted(facts.names - {facts.profile})) or 'none'})",
                object=manifest_uri,
            )
        )

    scan: Optional[CsvScan] = None
    if not snapshot_text:
        checks.append(
            VerifyCheck("manifest-snapshot", False, f"{platform.feature_snapshot_env} is unset; set snapshot.featureSnapshotPath")
        )
    else:
        try:
            uri = parse_gs_uri(snapshot_text)
            report = (lambda done, total: progress(str(uri), done, total)) if progress else None
            scan = scan_csv(str(uri), reader.iter_chunks(uri, max_bytes=CSV_MAX_BYTES, progress=report))
            checks.append(
                VerifyCheck(
                    "manifest-snapshot",
                    True,
                    f"{scan.rows} row(s), {scan.size} bytes, newest {scan.column} {scan.newest}",
                    object=snapshot_text,
                )
            )
        except ValueError as error:
            checks.append(VerifyCheck("manifest-snapshot", False, f"{platform.feature_snapshot_env}: {error}", object=snapshot_text))
        except GcsFault as fault:
            checks.append(VerifyCheck("manifest-snapshot", False, f"{fault.what}; {fault.fix}", object=fault.uri))

    if scan is not None and manifest is not None:
        want = manifest.get("snapshot_sha256")
        same = isinstance(want, str) and want.strip().lower() == scan.sha256
        checks.append(
            VerifyCheck(
                "manifest-sha256",
                same,
                f"CSV sha256 {scan.sha256} matches the manifest"
                if same
                else f"CSV sha256 {scan.sha256} != manifest snapshot_sha256 {shown(want)}: the CSV changed after the manifest was written; republish both",
                object=snapshot_text,
            )
        )
        as_of = as_date(manifest.get("snapshot_as_of"))
        checks.append(
            VerifyCheck(
                "manifest-as-of",
                as_of == scan.newest,
                f"snapshot_as_of {as_of} is the CSV's newest date"
                if as_of == scan.newest
                else f"manifest snapshot_as_of {shown(manifest.get('snapshot_as_of'))} != CSV newest {scan.column} {scan.newest}",
                object=manifest_uri,
            )
        )
    if scan is not None:
        lag = month_lag(scan.newest, today)
        fresh = scan.newest <= today and lag <= 1
        checks.append(
            VerifyCheck(
                "manifest-fresh",
                fresh,
                f"as of {scan.newest}, {lag} calendar month(s) before {today}"
                if fresh
                else (
                    f"as of {scan.newest}, after today {today}: a snapshot from the future is refused by the runtime"
                    if scan.newest > today
                    else f"as of {scan.newest} is {lag} calendar months before {today} (at most 1): the runtime refuses it; republish"
                ),
                object=snapshot_text,
            )
        )

    if manifest is not None:
        checks.append(_config_check(reader, platform.strategy_config_env, config_text, manifest, progress))

    record = None
    if manifest is not None:
        record = {
            "object": manifest_uri,
            "snapshot_as_of": manifest.get("snapshot_as_of") if isinstance(manifest.get("snapshot_as_of"), str) else None,
            "snapshot_sha256": manifest.get("snapshot_sha256") if isinstance(manifest.get("snapshot_sha256"), str) else None,
        }
    elif scan is not None:
        record = {"object": snapshot_text, "snapshot_as_of": scan.newest.isoformat(), "snapshot_sha256": scan.sha256}
    return ManifestResult(tuple(checks), record)


def _config_check(
    reader: GcsReader, env_name: str, config_text: str, manifest: Mapping[str, Any], progress: Optional[Progress]
) -> VerifyCheck:
    if not config_text:
        return VerifyCheck("manifest-config-sha", True, f"{env_name} is unset: the bundled config or module defaults apply; not compared")
    if not config_text.startswith("gs://"):
        return VerifyCheck("manifest-config-sha", True, f"{env_name} is a path inside the image ({config_text}): not compared")
    try:
        sha, _ = _sha_of(reader, config_text, CONFIG_MAX_BYTES, progress)
    except ValueError as error:
        return VerifyCheck("manifest-config-sha", False, f"{env_name}: {error}", object=config_text)
    except GcsFault as fault:
        return VerifyCheck("manifest-config-sha", False, f"{fault.what}; {fault.fix}", object=fault.uri)
    want = manifest.get("config_sha256")
    same = isinstance(want, str) and want.strip().lower() == sha
    return VerifyCheck(
        "manifest-config-sha",
        same,
        f"config sha256 {sha} matches the manifest"
        if same
        else f"config sha256 {sha} != manifest config_sha256 {shown(want)}: the snapshot was built from another config",
        object=config_text,
    )
