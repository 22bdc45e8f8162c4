"""`verify --reports`: the first run after the cutover (its execution report) and the snapshot it loads.

Thin orchestration over `reports` and `manifest`: choose the cutover time, poll for the report within a
bounded wait (one progress line per poll), and collect the checks and the operator-record fields.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from datetime import date, datetime, timedelta, timezone
from typing import Any, Callable, Optional, TextIO
from zoneinfo import ZoneInfo

from release.config import ServiceSpec
from release.cutover.live import LiveService
from release.cutover.verify import VerifyCheck
from release.first_run.gcs import GcsReader
from release.first_run.manifest import manifest_checks
from release.first_run.reports import RunSearch, find_first_run, found_check, report_checks, run_record
from release.first_run.run_facts import RunFacts

POLL_SECONDS = 30.0
# The runtimes date a run in New York time; staleness is judged on that calendar.
RUN_CALENDAR = ZoneInfo("America/New_York")


@dataclass(frozen=True)
class FirstRunOptions:
    reports_uri: Optional[str] = None
    since: Optional[datetime] = None
    wait_seconds: float = 0.0
    poll_seconds: Optional[float] = None  # None: POLL_SECONDS


@dataclass(frozen=True)
class FirstRunResult:
    checks: tuple[VerifyCheck, ...]
    record: dict[str, Any]


def run_date(now: datetime) -> date:
    return now.astimezone(RUN_CALENDAR).date()


def cutover_time(options: FirstRunOptions, live: LiveService) -> Optional[datetime]:
    """`--since`, else when the service last became Ready (the deploy that switched it)."""
    return options.since if options.since is not None else live.ready_since


def poll_first_run(
    search: Callable[[], RunSearch],
    wait_seconds: float,
    poll_seconds: float,
    label: str,
    progress: Optional[TextIO],
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> RunSearch:
    """Search once, then again every `poll_seconds` until a run is found, a fault stops it, or the wait is over."""
    started = clock()
    polls = 1 + max(0, math.ceil(wait_seconds / max(poll_seconds, 0.01)))
    result = search()
    for poll in range(2, polls + 1):
        if result.found or result.fault is not None or result.problem is not None:
            break
        left = wait_seconds - (clock() - started)
        if left <= 0:
            break
        if progress is not None:
            print(f"{label}: no run yet under {result.prefix} (poll {poll - 1}, {left:.0f}s left)", file=progress, flush=True)
        sleep(min(poll_seconds, left))
        result = search()
    return result


def first_run_checks(
    spec: ServiceSpec,
    live: Optional[LiveService],
    facts: Optional[RunFacts],
    reader: GcsReader,
    options: FirstRunOptions,
    now: Callable[[], datetime] = lambda: datetime.now(timezone.utc),
    progress: Optional[TextIO] = None,
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.monotonic,
) -> FirstRunResult:
    """The `report-*` and `manifest-*` checks of one service, and what the operator record keeps of them."""
    if live is None:
        return FirstRunResult(
            (VerifyCheck("report-found", False, f"{spec.service_name} has no live state to read its report prefix from"),), {}
        )
    if facts is None:
        return FirstRunResult(
            (VerifyCheck("report-found", False, f"{spec.strategy_profile} is not runtime-enabled on {spec.platform} at this release"),), {}
        )
    checks: list[VerifyCheck] = []
    since = cutover_time(options, live)
    search: Optional[RunSearch] = None
    if since is None:
        checks.append(
            VerifyCheck(
                "report-found",
                False,
                f"the live state of {spec.service_name} has no Ready transition time to date the cutover; pass --since ISO-TIME",
            )
        )
    else:
        search = poll_first_run(
            lambda: find_first_run(reader, spec, live, facts.profile, since, now(), options.reports_uri),
            options.wait_seconds,
            options.poll_seconds if options.poll_seconds is not None else POLL_SECONDS,
            spec.service_name,
            progress,
            clock=clock,
            sleep=sleep,
        )
        checks.append(found_check(search))
        if search.report is not None and search.uri is not None:
            checks += report_checks(search.report, search.uri, spec, live, facts)

    def hashing(uri: str, done: int, total: int) -> None:
        if progress is not None:
            print(f"{spec.service_name}: hashing {uri} {done >> 20}/{total >> 20} MiB", file=progress, flush=True)

    manifest = manifest_checks(reader, spec, live, facts, run_date(now()), progress=hashing)
    checks += manifest.checks
    record: dict[str, Any] = {"first_run": run_record(search), "snapshot": manifest.record}
    return FirstRunResult(tuple(checks), record)


def parse_since(text: str) -> datetime:
    """`--since`: an ISO-8601 time with a zone (a naive time is refused: which zone would be a guess)."""
    try:
        parsed = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        raise ValueError(f"--since {text!r} is not an ISO-8601 time such as 2026-11-24T15:40:00Z") from None
    if parsed.tzinfo is None:
        raise ValueError(f"--since {text!r} has no time zone; add Z or +00:00")
    return parsed.astimezone(timezone.utc)


def parse_wait(text: str, cap: float = timedelta(hours=6).total_seconds()) -> float:
    try:
        seconds = float(text)
    except ValueError:
        raise ValueError(f"--wait {text!r} is not a number of seconds") from None
    if not (0 <= seconds <= cap) or math.isnan(seconds):
        raise ValueError(f"--wait {text!r} must be between 0 and {cap:.0f} seconds")
    return seconds
