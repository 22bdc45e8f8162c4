"""The tests are independent of the working tree: a lock committed beside Pulumi.prod.yaml changes nothing.

`python -m release lock` writes Pulumi.prod.lock.json beside the stack and the README recommends committing
it. The tests run in their own project (tests/fixtures/projects.py) and a guard fails any test that reads the
checkout's stack or lock (tests/fixtures/working_tree_guard.py); these tests prove both.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from release.cli import main
from release.config import ConfigError
from release.stack import project_dir, stack_file
from tests.fixtures.github_fake import prod_seed_repos, running
from tests.fixtures.prod_lock import operator_lock_path
from tests.fixtures.projects import SEED_STACK_FILE
from tests.fixtures.working_tree_guard import GUARD, PROJECT_ROOT, is_working_tree_stack_file

# Modules whose program runs once read the checkout's lock (what tag-immutable compares against): with an
# operator's lock committed there, 11 of their tests failed with "tag moved".
MODULES = ("tests/test_program.py", "tests/test_program_hold.py")


def checkout_with_a_committed_lock(directory: Path, lock: str) -> Path:
    """A copy of this checkout's files (tracked or not, never ignored ones) with `lock` committed beside
    Pulumi.prod.yaml in place of any lock there."""
    listed = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=PROJECT_ROOT,
        capture_output=True,
        check=True,
        timeout=30,
    )
    for name in listed.stdout.decode().split("\0"):
        if name and (PROJECT_ROOT / name).is_file():
            (directory / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(PROJECT_ROOT / name, directory / name)
    shutil.copyfile(lock, directory / "Pulumi.prod.lock.json")
    env = {
        **os.environ,
        "GIT_AUTHOR_NAME": "t",
        "GIT_AUTHOR_EMAIL": "t@example.com",
        "GIT_COMMITTER_NAME": "t",
        "GIT_COMMITTER_EMAIL": "t@example.com",
    }
    for command in (["git", "init", "-q"], ["git", "add", "-A"], ["git", "commit", "-q", "-m", "release: lock"]):
        subprocess.run(command, cwd=directory, env=env, check=True, capture_output=True, timeout=60)
    return directory


@pytest.mark.project_files  # it copies the checkout, stack included
def test_the_tests_pass_with_an_operators_lock_committed_beside_the_stack(tmp_path):
    checkout = checkout_with_a_committed_lock(tmp_path / "checkout", operator_lock_path())
    # The lock is one the checkout's own commands do read: the gate there sees the fake's tags as moved.
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(tmp_path), "CUTOVER_SOURCE": "github"}
    with running(prod_seed_repos()) as fake:
        check = subprocess.run(
            [sys.executable, "-m", "release", "check", "--stack", "prod"],
            cwd=checkout,
            env={**env, "GITHUB_API_URL": fake.base_url},
            capture_output=True,
            text=True,
            timeout=120,
        )
    assert check.returncode == 1 and "tag-immutable" in check.stdout and "restore" in check.stdout, check.stdout + check.stderr
    # ... and the tests that once read it pass there, untouched by it.
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-x", "-p", "no:cacheprovider", *MODULES],
        cwd=checkout,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-2000:]
    assert " passed" in done.stdout and "failed" not in done.stdout


def test_the_guard_records_a_read_of_the_checkouts_lock_or_stack():
    lock = PROJECT_ROOT / "Pulumi.prod.lock.json"
    try:
        with open(lock, encoding="utf-8"):
            pass
    except FileNotFoundError:
        pass  # the open was attempted, which is what the guard sees
    (PROJECT_ROOT / "Pulumi.prod.yaml").read_text(encoding="utf-8")
    assert GUARD.take() == sorted([str(lock), str(PROJECT_ROOT / "Pulumi.prod.yaml")])
    SEED_STACK_FILE.read_text(encoding="utf-8")
    (PROJECT_ROOT / "Pulumi.yaml").read_text(encoding="utf-8")
    assert GUARD.take() == []


@pytest.mark.parametrize(
    "name, guarded",
    [("Pulumi.prod.yaml", True), ("Pulumi.fleet.yml", True), ("Pulumi.prod.lock.json", True), ("Pulumi.yaml", False), ("README.md", False)],
)
def test_the_guard_covers_every_stack_and_lock_of_the_checkout(name, guarded):
    assert is_working_tree_stack_file(str(PROJECT_ROOT / name)) is guarded
    assert is_working_tree_stack_file(str(PROJECT_ROOT / "tests" / name)) is False


def test_each_test_runs_in_its_own_seed_project(fixture_project):
    assert Path.cwd() == fixture_project != PROJECT_ROOT
    assert project_dir() == fixture_project
    assert stack_file("prod") == fixture_project / "Pulumi.prod.yaml"
    assert stack_file("prod").read_text(encoding="utf-8") == SEED_STACK_FILE.read_text(encoding="utf-8")


def test_the_project_is_found_from_a_subdirectory_and_missing_is_bad_input(fixture_project, tmp_path, monkeypatch, capsys):
    nested = fixture_project / "a" / "b"
    nested.mkdir(parents=True)
    assert project_dir(nested) == fixture_project
    with pytest.raises(ConfigError, match="no Pulumi.yaml"):
        project_dir(tmp_path)
    monkeypatch.chdir(tmp_path)
    assert main(["check", "--stack", "prod"]) == 2
    assert "no Pulumi.yaml here or in a parent directory" in capsys.readouterr().err
