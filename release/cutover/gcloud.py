"""One bounded gcloud call for the CLI's `--live/--images/--scheduler/--iam gcloud`, and one not-found rule.

Every reader that asks gcloud for a JSON description goes through `describe`, so each gets the same
bounds (a total timeout, a size bound on what gcloud prints, the JSON nesting bound) and the same strict
reading of a failure: only gcloud's own not-found answer means "does not exist". A message that merely
contains the words (GCP's "Project 'x' not found or permission denied") is a failure, never "missing":
read as missing it would plan a create, or call an image absent, on an answer that proves nothing.
"""

from __future__ import annotations

from typing import Any, Callable, Optional, Protocol, Union

from release.local_files import InputFileError, ProcessOutputError, decode_utf8, load_json, run_bounded
from release.progress import waiting


class Answer(Protocol):
    """What a runner hands back: `ProcessOutput` (bytes), or a `CompletedProcess` of text in tests."""

    @property
    def returncode(self) -> int: ...
    @property
    def stdout(self) -> Union[bytes, str, None]: ...
    @property
    def stderr(self) -> Union[bytes, str, None]: ...


# runner(command, max_bytes=..., timeout=...): the bounded process reader of release/local_files.py.
Runner = Callable[..., Answer]

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


def run_gcloud(command: list[str], max_bytes: int, timeout: float) -> Answer:
    """The default runner: gcloud under the shared bounds (release/local_files.py `run_bounded`)."""
    return run_bounded(command, max_bytes, timeout)


def _text(value: Union[bytes, str, None], where: str, what: str) -> str:
    if value is None:
        return ""
    if isinstance(value, bytes):
        try:
            return decode_utf8(value, where, "run it by hand to see what gcloud prints", what)
        except InputFileError as error:
            raise GcloudError(error.what, where, error.fix) from None
    return value


def describe(command: list[str], runner: Runner, fix: str, max_chars: int = MAX_OUTPUT_CHARS) -> Optional[Any]:
    """gcloud's JSON answer to `command`; None when gcloud says the resource does not exist.

    `fix` says what to check when the call fails (auth, project, region, the resource's path). The
    output is read under its bound as it arrives: an endless answer is stopped, never held in memory.
    """
    where = " ".join(command)
    try:
        with waiting(where):
            done = runner(command, max_bytes=max_chars, timeout=TIMEOUT_SECONDS)
    except FileNotFoundError:
        raise GcloudError("gcloud is not installed", where, "install the Google Cloud SDK or pass a file or directory instead") from None
    except ProcessOutputError as error:
        raise GcloudError(error.what, where, "run it by hand to see what gcloud prints; check gcloud auth and network") from None
    if done.returncode != 0:
        stderr = _text(done.stderr, where, "printed non-UTF-8 text on stderr").strip()
        if is_not_found(stderr):
            return None
        last = stderr.splitlines()[-1][:300] if stderr else "no output"
        raise GcloudError(f"failed (exit {done.returncode}): {last}", where, fix)
    output = _text(done.stdout, where, "printed non-UTF-8 output")
    if len(output) > max_chars:
        raise GcloudError(f"printed more than {max_chars} characters", where, "run it by hand to see what gcloud prints")
    try:
        return load_json(output, where, "run it by hand to see what gcloud prints")
    except InputFileError as error:
        raise GcloudError(error.what.replace("is not valid JSON", "printed invalid JSON"), where, error.fix) from None
