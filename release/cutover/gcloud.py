"""One bounded gcloud call for the CLI's `--live/--images/--scheduler/--iam gcloud`, and one not-found rule.

Every reader that asks gcloud for a JSON description goes through `describe`, so each gets the same
bounds (a total timeout, a size bound on what gcloud prints, the JSON nesting bound) and the same strict
reading of a failure: only gcloud's own not-found answer means "does not exist". A message that merely
contains the words (GCP's "Project 'x' not found or permission denied") is a failure, never "missing":
read as missing it would plan a create, or call an image absent, on an answer that proves nothing.
"""

from __future__ import annotations

import subprocess
from typing import Any, Callable, Optional

from release.local_files import InputFileError, load_json

Runner = Callable[..., "subprocess.CompletedProcess[str]"]

# The value of `--live`, `--images`, `--scheduler` or `--iam` that reads through gcloud instead of a path.
ARGUMENT = "gcloud"

TIMEOUT_SECONDS = 120
MAX_OUTPUT_CHARS = 4_000_000
# gcloud's answers for a resource that does not exist (NOT_FOUND is the API's status, "could not be found"
# and "Cannot find" gcloud's own wording for Cloud Run services).
NOT_FOUND_MARKERS = ("NOT_FOUND", "could not be found", "Cannot find")
# Words that turn any of the above into a failure: the caller may not see the resource, which proves nothing.
DENIED_MARKERS = ("PERMISSION_DENIED", "permission denied", "Permission denied")


class GcloudError(Exception):
    """A gcloud call that answered nothing usable: what went wrong, the command, and what to check."""

    def __init__(self, what: str, where: str, fix: str) -> None:
        self.what, self.where, self.fix = what, where, fix
        super().__init__(f"{where}: {what}; {fix}")


def is_not_found(stderr: str) -> bool:
    return any(marker in stderr for marker in NOT_FOUND_MARKERS) and not any(marker in stderr for marker in DENIED_MARKERS)


def describe(command: list[str], runner: Runner, fix: str, max_chars: int = MAX_OUTPUT_CHARS) -> Optional[Any]:
    """gcloud's JSON answer to `command`; None when gcloud says the resource does not exist.

    `fix` says what to check when the call fails (auth, project, region, the resource's path).
    """
    where = " ".join(command)
    try:
        done = runner(command, capture_output=True, text=True, timeout=TIMEOUT_SECONDS, check=False)
    except FileNotFoundError:
        raise GcloudError("gcloud is not installed", where, "install the Google Cloud SDK or pass a file or directory instead") from None
    except subprocess.TimeoutExpired:
        raise GcloudError(f"timed out after {TIMEOUT_SECONDS}s", where, "check gcloud auth and network") from None
    if done.returncode != 0:
        stderr = (done.stderr or "").strip()
        if is_not_found(stderr):
            return None
        last = stderr.splitlines()[-1][:300] if stderr else "no output"
        raise GcloudError(f"failed (exit {done.returncode}): {last}", where, fix)
    output = done.stdout or ""
    if len(output) > max_chars:
        raise GcloudError(f"printed more than {max_chars} characters", where, "run it by hand to see what gcloud prints")
    try:
        return load_json(output, where, "run it by hand to see what gcloud prints")
    except InputFileError as error:
        raise GcloudError(error.what.replace("is not valid JSON", "printed invalid JSON"), where, error.fix) from None
