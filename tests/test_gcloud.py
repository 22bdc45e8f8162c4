"""The one gcloud call every `gcloud` reader makes: bounds, and the strict not-found rule."""

from __future__ import annotations

import subprocess

import pytest

from release.cutover import gcloud
from release.cutover.images import ImageInputError, read_images_gcloud
from release.cutover.live import LiveStateError, read_live_gcloud
from release.cutover.scheduling import SchedulingInputError, read_iam_gcloud, read_jobs_gcloud
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
        (raising(subprocess.TimeoutExpired(COMMAND, 120)), "timed out after 120s"),
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
