"""The one gcloud call every `gcloud` reader makes: bounds, and the strict not-found rule."""

from __future__ import annotations

import os
import re
import subprocess
import time

import pytest

from release.cutover import gcloud
from release.cutover.images import ImageInputError, read_images_gcloud
from release.cutover.live import LiveStateError, read_live_gcloud
from release.cutover.scheduling import SchedulingInputError, read_iam_gcloud, read_jobs_gcloud
from release.local_files import ProcessOutputError
from tests.fixtures.git_repos import prod_config

COMMAND = ["gcloud", "run", "services", "describe", "x", "--format=json"]
DENIED_AS_NOT_FOUND = "ERROR: (gcloud.run.services.describe) Project 'interactivebrokersquant' not found or permission denied."


def answering(returncode: int, stdout: str = "", stderr: str = ""):
    def run(command, **_):
        return subprocess.CompletedProcess(command, returncode, stdout, stderr)

    return run


def raising(error: Exception):
    def run(command, **_):
        raise error

    return run


@pytest.mark.parametrize(
    "stderr",
    [
        "ERROR: (gcloud.run.services.describe) Cannot find service [x]",
        "ERROR: (gcloud.scheduler.jobs.describe) NOT_FOUND: Job not found.",
        "ERROR: Service [x] could not be found.",
    ],
)
def test_gclouds_own_not_found_answer_means_missing(stderr):
    assert gcloud.describe(COMMAND, answering(1, stderr=stderr), "fix") is None


@pytest.mark.parametrize(
    "runner, expected",
    [
        (answering(1, stderr=DENIED_AS_NOT_FOUND), "not found or permission denied"),
        (answering(1, stderr="ERROR: PERMISSION_DENIED: NOT_FOUND or no access"), "PERMISSION_DENIED"),
        (answering(1, stderr=""), "no output"),
        (answering(0, stdout="{not json"), "printed invalid JSON"),
        (answering(0, stdout="[" * 100 + "]" * 100), "nests deeper"),
        (answering(0, stdout=" " * 1001), "printed more than 1000 characters"),
        (raising(FileNotFoundError()), "gcloud is not installed"),
        (raising(ProcessOutputError("deadline", "timed out after 120s")), "timed out after 120s"),
        (answering(0, stdout=b'{"a": "\xff"}'), "printed non-UTF-8 output (invalid byte at offset 7)"),
        (answering(1, stderr=b"\xfe NOT_FOUND"), "printed non-UTF-8 text on stderr"),
        (answering(0, stdout='{"a": 1, "a": 2}'), "names a twice in one object"),
    ],
)
def test_every_other_answer_is_a_failure_naming_the_command(runner, expected):
    with pytest.raises(gcloud.GcloudError) as caught:
        gcloud.describe(COMMAND, runner, "check the project", max_chars=1000)
    assert expected in str(caught.value) and " ".join(COMMAND) in str(caught.value)


def test_no_reader_takes_a_denied_project_for_a_missing_resource():
    services = {"ibkr": prod_config().services["ibkr"]}
    denied = answering(1, stderr=DENIED_AS_NOT_FOUND)
    for read, error in (
        (read_live_gcloud, LiveStateError),
        (read_images_gcloud, ImageInputError),
        (read_jobs_gcloud, SchedulingInputError),
        (read_iam_gcloud, SchedulingInputError),
    ):
        with pytest.raises(error, match="permission denied"):
            read(services, denied)


# --- the real runner: gcloud's output is read under the bound as it arrives ---------------------------


def fake_gcloud_on_path(tmp_path, monkeypatch, script: str) -> None:
    """A `gcloud` executable first on PATH that runs `script` (Python)."""
    import sys

    directory = tmp_path / "bin"
    directory.mkdir()
    program = directory / "gcloud"
    program.write_text(f"#!{sys.executable}\n{script}\n")
    program.chmod(0o755)
    monkeypatch.setenv("PATH", f"{directory}:{os.environ['PATH']}")


@pytest.mark.parametrize(
    "script, expected",
    [
        # Endless output: before, every byte was held until gcloud ended (never), then a MemoryError.
        ("import sys\nwhile True: sys.stdout.write('x' * 65536)", "printed more than 1000000 bytes on stdout"),
        ("import sys\nwhile True: sys.stderr.write('e' * 65536)", "printed more than 65536 bytes on stderr"),
        ('import sys\nsys.stdout.buffer.write(b\'{"a": "\\xff"}\')', "printed non-UTF-8 output"),
    ],
)
def test_the_real_runner_stops_gcloud_at_the_bound(tmp_path, monkeypatch, script, expected):
    fake_gcloud_on_path(tmp_path, monkeypatch, script)
    with pytest.raises(gcloud.GcloudError, match=re.escape(expected)):
        gcloud.describe(COMMAND, gcloud.run_gcloud, "check the project", max_chars=1_000_000)


def test_the_real_runner_stops_at_the_deadline(tmp_path, monkeypatch):
    fake_gcloud_on_path(tmp_path, monkeypatch, "import time\ntime.sleep(60)")
    monkeypatch.setattr(gcloud, "TIMEOUT_SECONDS", 1)
    started = time.monotonic()
    with pytest.raises(gcloud.GcloudError, match="timed out after 1s"):
        gcloud.describe(COMMAND, gcloud.run_gcloud, "check the project")
    assert time.monotonic() - started < 20


def test_the_real_runner_reads_a_normal_answer(tmp_path, monkeypatch):
    fake_gcloud_on_path(tmp_path, monkeypatch, 'print(\'{"kind": "Service"}\')')
    assert gcloud.describe(COMMAND, gcloud.run_gcloud, "check the project") == {"kind": "Service"}


def test_a_number_of_thousands_of_digits_is_a_failure_not_a_traceback():
    with pytest.raises(gcloud.GcloudError, match="holds a number too long to read"):
        gcloud.describe(COMMAND, answering(0, stdout='{"a": ' + "9" * 5000 + "}"), "check the project")
