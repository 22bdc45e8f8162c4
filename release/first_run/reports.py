"""The first execution report after a cutover (docs/platform-facts.md §6): find it in GCS, then check it.

Every run writes a `runtime_report.v1` JSON to
`$EXECUTION_REPORT_GCS_URI/<platform>/<profile>[/<account scope>]/<YYYY-MM>/<run id>.json`. No commit or
revision is in a report, so the cutover is matched by time: the first report whose `started_at` is after
it. A `skipped` run (market closed) proves nothing about the new strategy: the search goes on past it.

`find_first_run` reads (through `GcsReader`); `report_checks` is pure.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any, Mapping, Optional

from components.platforms import PLATFORMS, TRUTHY
from release.config import PlatformId, ServiceSpec
from release.cutover.live import LiveService
from release.cutover.verify import VerifyCheck
from release.first_run.gcs import GcsFault, GcsReader, GcsUri, parse_gs_uri, shown
from release.first_run.run_facts import RunFacts

REPORT_SCHEMA = "runtime_report.v1"
REPORTS_URI_ENV = "EXECUTION_REPORT_GCS_URI"
REPORT_PLATFORM_DIR: Mapping[PlatformId, str] = {
    "ibkr": "interactive_brokers",
    "schwab": "charles_schwab",
    "longbridge": "longbridge",
}
RUN_ID_FILE = re.compile(r"^(\d{8}T\d{6}Z)\.json$")
# Caps: months searched back from now, and report objects read per search.
MAX_MONTHS = 13
MAX_REPORT_READS = 60


@dataclass(frozen=True)
class RunSearch:
    """The outcome of one search: the first run after the cutover, or why there is none (yet)."""

    prefix: str
    since: datetime
    report: Optional[Mapping[str, Any]] = None
    uri: Optional[str] = None
    skipped: tuple[str, ...] = ()  # objects of skipped runs passed over
    # Dry-run reports of a live service passed over: later images' /dry-run precheck writes one before the run.
    prechecks: tuple[str, ...] = ()
    fault: Optional[GcsFault] = None
    problem: Optional[str] = None  # bad input: no prefix, no scope

    @property
    def found(self) -> bool:
        return self.report is not None


def account_scope(spec: ServiceSpec, live: Optional[LiveService]) -> tuple[Optional[str], Optional[str]]:
    """(scope segment, problem): ACCOUNT_GROUP for IBKR, the region HK/SG for LongBridge, none for Schwab."""
    env = {**spec.env, **(live.env if live is not None else {})}
    if spec.platform == "schwab":
        return None, None
    if spec.platform == "ibkr":
        group = env.get("ACCOUNT_GROUP", "").strip()
        return (group, None) if group else (None, "IBKR reports are filed under ACCOUNT_GROUP, which the service does not set")
    region = (env.get("ACCOUNT_REGION") or spec.account_region or "").strip()
    return (region, None) if region else (None, "LongBridge reports are filed under ACCOUNT_REGION, which the service does not set")


def reports_base(spec: ServiceSpec, live: Optional[LiveService], override: Optional[str]) -> tuple[Optional[GcsUri], str]:
    """The reports prefix (`--reports-uri`, else the live service's own env) and where it came from."""
    raw = override if override is not None else (live.env.get(REPORTS_URI_ENV) if live is not None else None)
    origin = "--reports-uri" if override is not None else f"{spec.service_name} env {REPORTS_URI_ENV}"
    if not raw:
        return None, f"{origin} is unset; pass --reports-uri gs://<bucket>/<prefix>"
    try:
        return parse_gs_uri(raw.strip(), allow_bucket_only=True), origin
    except ValueError as error:
        return None, f"{origin}: {error}; it must be gs://<bucket>/<prefix>"


def month_segments(since: datetime, now: datetime) -> list[str]:
    """`YYYY-MM` from since's month to now's, at most MAX_MONTHS (the newest ones)."""
    months = []
    year, month = since.year, since.month
    while (year, month) <= (now.year, now.month):
        months.append(f"{year:04d}-{month:02d}")
        year, month = (year + 1, 1) if month == 12 else (year, month + 1)
    return months[-MAX_MONTHS:]


def parse_time(value: Any) -> Optional[datetime]:
    """An ISO-8601 time as aware UTC; naive times are taken as UTC (the platforms write UTC)."""
    if not isinstance(value, str) or not value.strip():
        return None
    try:
        parsed = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed.replace(tzinfo=timezone.utc) if parsed.tzinfo is None else parsed.astimezone(timezone.utc)


# How far a report's start may lie ahead of this machine's clock before it is refused as "in the future".
CLOCK_SKEW = timedelta(minutes=5)


def find_first_run(
    reader: GcsReader,
    spec: ServiceSpec,
    live: Optional[LiveService],
    profile: str,
    since: datetime,
    now: datetime,
    reports_uri: Optional[str] = None,
) -> RunSearch:
    """The first non-skipped report whose `started_at` is after `since`, oldest first.

    For a service whose live flag says live, a report with `dry_run: true` is passed over too: later images
    write one for every `/dry-run` precheck, and only the live run shows what the cutover runs. (A live
    service that only ever reports dry runs therefore never passes: "no run yet".)"""
    base, origin = reports_base(spec, live, reports_uri)
    if base is None:
        return RunSearch(prefix="(none)", since=since, problem=origin)
    scope, problem = account_scope(spec, live)
    parts = [REPORT_PLATFORM_DIR[spec.platform], profile] + ([scope] if scope else [])
    prefix = base.child(*parts)
    where = f"gs://{prefix.bucket}/{prefix.name}/"
    if problem is not None:
        return RunSearch(prefix=where, since=since, problem=problem)
    floor = since.replace(microsecond=0)
    candidates: list[tuple[str, str]] = []
    try:
        for month in month_segments(since, now):
            month_prefix = prefix.child(month)
            asked = month_prefix.name + "/"
            for name in reader.list_names(GcsUri(prefix.bucket, asked)):
                if not name.startswith(asked):
                    # A listing answers for the prefix it was asked; a name outside it must not decide which object is read.
                    raise GcsFault(
                        f"gs://{prefix.bucket}/{asked}",
                        "the listing answered a name outside the requested prefix",
                        "retry; check the bucket",
                    )
                match = RUN_ID_FILE.match(name.rsplit("/", 1)[-1])
                if match is None:
                    continue
                run_time = datetime.strptime(match.group(1), "%Y%m%dT%H%M%SZ").replace(tzinfo=timezone.utc)
                if run_time >= floor:
                    candidates.append((match.group(1), name))
    except GcsFault as fault:
        return RunSearch(prefix=where, since=since, fault=fault)
    skipped: list[str] = []
    prechecks: list[str] = []
    live_service = effective_dry_run(spec, live)[0] is False
    for _, name in sorted(candidates)[:MAX_REPORT_READS]:
        uri = GcsUri(prefix.bucket, name)
        try:
            report = reader.read_json(uri)
        except GcsFault as fault:
            return RunSearch(prefix=where, since=since, fault=fault, skipped=tuple(skipped))
        if not isinstance(report, Mapping):
            return RunSearch(prefix=where, since=since, skipped=tuple(skipped),
                             fault=GcsFault(str(uri), "is not a JSON object", "the writer produced a broken report: check its logs"))  # fmt: skip
        started = parse_time(report.get("started_at"))
        if started is None:
            # Without a start time the run cannot be placed before or after the cutover.
            return RunSearch(prefix=where, since=since, skipped=tuple(skipped),
                             fault=GcsFault(str(uri), "has no valid started_at", "the writer produced a broken report: check its logs"))  # fmt: skip
        if started <= since:
            continue
        if started > now + CLOCK_SKEW:
            # A run that has not happened yet is no evidence of the cutover's first run: a broken clock or a forgery.
            return RunSearch(prefix=where, since=since, skipped=tuple(skipped),
                             fault=GcsFault(str(uri), f"has started_at {shown(report.get('started_at'))}, in the future (now {now.isoformat()})",
                                            "check the writer's clock; a report from the future proves no run"))  # fmt: skip
        if report.get("status") == "skipped":
            skipped.append(str(uri))
            continue
        if live_service and report.get("dry_run") is True:
            prechecks.append(str(uri))
            continue
        return RunSearch(prefix=where, since=since, report=report, uri=str(uri), skipped=tuple(skipped), prechecks=tuple(prechecks))
    return RunSearch(prefix=where, since=since, skipped=tuple(skipped), prechecks=tuple(prechecks))


def effective_dry_run(spec: ServiceSpec, live: Optional[LiveService]) -> tuple[Optional[bool], str]:
    """The live `{P}_DRY_RUN_ONLY` as the runtime reads it; None when unset (its meaning depends on the image)."""
    name = PLATFORMS[spec.platform].dry_run_env
    raw = live.env.get(name) if live is not None else None
    if raw is None or not raw.strip():
        return None, f"{name} is unset, and unset means live trading on seed-era images but dry run on later ones"
    return raw.strip().lower() in TRUTHY, f"{name}={raw}"


def found_check(search: RunSearch) -> VerifyCheck:
    since = search.since.isoformat()
    if search.problem is not None:
        return VerifyCheck("report-found", False, search.problem)
    if search.fault is not None:
        return VerifyCheck("report-found", False, f"{search.fault.what}; {search.fault.fix}", object=search.fault.uri)
    passed = [
        part
        for part in (
            f"{len(search.skipped)} skipped run(s), e.g. market closed" if search.skipped else "",
            f"{len(search.prechecks)} dry-run precheck report(s) of this live service" if search.prechecks else "",
        )
        if part
    ]
    if search.report is None:
        only = f" (only {'; '.join(passed)})" if passed else ""
        return VerifyCheck(
            "report-found",
            False,
            f"no run yet: no report started after {since} under {search.prefix}{only}; "
            "wait for the next scheduled run (or use --wait SECONDS)",
            object=search.prefix,
        )
    report = search.report
    return VerifyCheck(
        "report-found",
        True,
        f"first run after {since}: run {shown(report.get('run_id'))} started {shown(report.get('started_at'))}"
        + (f" (passed over {'; '.join(passed)})" if passed else ""),
        object=search.uri,
    )


def report_checks(
    report: Mapping[str, Any], uri: str, spec: ServiceSpec, live: Optional[LiveService], facts: RunFacts
) -> list[VerifyCheck]:
    """Every check of one report against the configured service and the profile facts of its release."""
    checks: list[VerifyCheck] = []

    def add(check_id: str, ok: bool, message: str) -> None:
        checks.append(VerifyCheck(check_id, ok, message, object=uri))

    schema = report.get("schema_version")
    add(
        "report-schema",
        schema == REPORT_SCHEMA,
        f"schema_version {shown(schema)}" + ("" if schema == REPORT_SCHEMA else f"; expected {REPORT_SCHEMA}"),
    )

    profile = report.get("strategy_profile")
    add(
        "report-profile",
        profile == facts.profile,
        f"strategy_profile {shown(profile)}"
        + ("" if profile == facts.profile else f"; expected {facts.profile}: the run used another strategy"),
    )

    service = report.get("service_name")
    add(
        "report-service",
        service == spec.service_name,
        f"service_name {shown(service)}" + ("" if service == spec.service_name else f"; expected {spec.service_name}"),
    )

    status, errors = report.get("status"), report.get("errors")
    status_ok = status == "ok" and errors == []
    add(
        "report-status",
        status_ok,
        "status ok, no errors"
        if status_ok
        else f"status {shown(status)}"
        + (f", {len(errors)} error(s)" if isinstance(errors, list) and errors else "")
        + ("" if isinstance(errors, list) else ", errors is not a list")
        + "; read the report and the service logs",
    )

    want_dry, flag = effective_dry_run(spec, live)
    dry = report.get("dry_run")
    if want_dry is None:
        add("report-dry-run", False, f"{flag}: set it explicitly (true or false); the report says dry_run={shown(dry)}")
    else:
        add(
            "report-dry-run",
            dry is want_dry,
            f"dry_run {shown(dry)}, service {flag}" + ("" if dry is want_dry else "; the run did not use the service's flag"),
        )

    raw_summary, raw_artifacts = report.get("summary"), report.get("artifacts")
    summary: Mapping[str, Any] = raw_summary if isinstance(raw_summary, Mapping) else {}
    artifacts: Mapping[str, Any] = raw_artifacts if isinstance(raw_artifacts, Mapping) else {}
    name = summary.get("strategy_display_name")
    add(
        "report-display-name",
        name == facts.display_name,
        f"summary.strategy_display_name {shown(name) if name is not None else '(absent)'}"
        + ("" if name == facts.display_name else f"; expected {facts.display_name!r}")
        + f" (per {facts.proved_from})",
    )

    if spec.platform == "ibkr":
        want_source = "feature_snapshot" if facts.snapshot_backed else "market_data"
        source = summary.get("signal_source")
        listed = sorted(k for k in ("feature_snapshot_path", "feature_snapshot_manifest_path") if artifacts.get(k))
        want_listed = ["feature_snapshot_path"] + (["feature_snapshot_manifest_path"] if facts.manifest_required else [])
        problems = []
        if source != want_source:
            problems.append(f"summary.signal_source {shown(source) if source is not None else '(absent)'}, expected {want_source}")
        if facts.snapshot_backed and not set(want_listed) <= set(listed):
            problems.append(f"artifacts lack {', '.join(sorted(set(want_listed) - set(listed)))}")
        platform = PLATFORMS[spec.platform]
        env = live.env if live is not None else {}
        for artifact, env_name in (
            ("feature_snapshot_path", platform.feature_snapshot_env),
            ("feature_snapshot_manifest_path", platform.manifest_env),
        ):
            if facts.snapshot_backed and artifacts.get(artifact) and env.get(env_name) and artifacts.get(artifact) != env.get(env_name):
                problems.append(f"artifacts.{artifact} {shown(artifacts.get(artifact))} is not the service's {env_name}")
        if not facts.snapshot_backed and listed:
            problems.append(f"a direct-runtime run still lists artifacts {', '.join(listed)} (stale snapshot env?)")
        mode = "snapshot-backed" if facts.snapshot_backed else "direct-runtime"
        add(
            "report-input-mode",
            not problems,
            f"{mode}: " + ("; ".join(problems) if problems else f"signal_source {want_source}, artifacts as expected"),
        )
    else:
        label = "Schwab" if spec.platform == "schwab" else "LongBridge"
        add("report-input-mode", True, f"{label} reports carry no input mode; the input-mode env check covers it")
    return checks


def run_record(search: Optional[RunSearch]) -> Optional[dict[str, Any]]:
    """What the operator record keeps of the first run: its id, object and status."""
    if search is None or search.report is None:
        return None
    report = search.report
    return {
        "run_id": report.get("run_id") if isinstance(report.get("run_id"), str) else None,
        "object": search.uri,
        "status": report.get("status") if isinstance(report.get("status"), str) else None,
        "started_at": report.get("started_at") if isinstance(report.get("started_at"), str) else None,
    }
