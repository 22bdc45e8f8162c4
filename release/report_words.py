"""One vocabulary for what every report says: a check's status and a plan's verdict.

`check`, `plan` (text and JSON), the pull-request comment and `verify` name a status the same way, so an
operator never has to translate between "error", "could not be verified" and "[ok]". In JSON the status
stays its data value (`passed`, `failed`, `error`, `skipped`); in text it is the label below. A skipped
check is shown as skipped, never as passed.
"""

from __future__ import annotations

from typing import Final, Mapping

STATUS_LABELS: Final[Mapping[str, str]] = {"passed": "PASS", "failed": "FAIL", "error": "UNVERIFIED", "skipped": "SKIPPED"}
# The plural a count of checks of that status reads with ("17 passed, 1 unverified").
STATUS_COUNTS: Final[Mapping[str, str]] = {"passed": "passed", "failed": "failed", "error": "unverified", "skipped": "skipped"}

VERDICT_BLOCKED: Final = "blocked"
VERDICT_PROCEED: Final = "can proceed"


def status_label(status: str) -> str:
    """The text label of a check status; an unknown status is shown as such, never as a pass."""
    return STATUS_LABELS.get(status, status.upper() or "UNKNOWN")


def counts_text(statuses: list[str]) -> str:
    """`18 checks: 17 passed, 1 failed, 0 unverified, 0 skipped`."""
    counts = {status: statuses.count(status) for status in STATUS_COUNTS}
    return f"{len(statuses)} checks: " + ", ".join(f"{counts[status]} {word}" for status, word in STATUS_COUNTS.items())


def verdict_text(ok: bool, warnings: int) -> str:
    """`blocked`, `can proceed`, or `can proceed, with 2 warnings`: the warnings count is part of the verdict."""
    if not ok:
        return VERDICT_BLOCKED
    if warnings:
        return f"{VERDICT_PROCEED}, with {warnings} warning{'s' if warnings != 1 else ''}"
    return VERDICT_PROCEED
