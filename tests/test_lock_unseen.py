"""A lock records which checks it could not see, and an offline plan shows them as skipped, never passed."""

from __future__ import annotations

import json

import pytest

from release.gate.checks import gate_from_lock, run_gate
from release.gate.git_source import GitSource
from release.gate.lock import Lock, LockError, lock_digest, read_lock, write_lock
from tests.fixtures.git_repos import prod_config


def written(seed_repos, tmp_path) -> tuple[object, dict]:
    path = tmp_path / "Pulumi.prod.lock.json"
    write_lock(path, run_gate(prod_config(seed_repos.target), GitSource(seed_repos.root)))
    return path, json.loads(path.read_text(encoding="utf-8"))


def test_a_lock_from_git_records_that_it_could_not_see_ci_and_the_offline_gate_says_skipped(seed_repos, tmp_path):
    path, data = written(seed_repos, tmp_path)
    assert set(data["unseen"]) == {"platform-ci"} and "cannot see CI" in data["unseen"]["platform-ci"]
    lock = read_lock(path)
    report = gate_from_lock(prod_config(seed_repos.target), lock)
    ci = [check for check in report.checks if check.id.startswith("platform-ci")]
    assert sorted(check.id for check in ci) == [f"platform-ci:{key}" for key in sorted(prod_config().services)]
    assert all(check.status == "skipped" and "not seen when the lock at" in check.message for check in ci)
    assert "SKIPPED platform-ci:ibkr: not seen when the lock at" in report.render_text()


def test_editing_what_a_lock_could_not_see_is_refused(seed_repos, tmp_path):
    path, data = written(seed_repos, tmp_path)
    data["unseen"] = {}  # "CI was seen": a lie the digest catches
    path.write_text(json.dumps(data), encoding="utf-8")
    with pytest.raises(LockError, match="does not match"):
        read_lock(path)


def test_a_lock_written_before_unseen_was_recorded_still_loads_and_is_judged_by_its_source(seed_repos, tmp_path):
    path, data = written(seed_repos, tmp_path)
    del data["unseen"]
    data["lock_sha256"] = lock_digest(Lock.model_validate({**data, "lock_sha256": None}))
    path.write_text(json.dumps(data), encoding="utf-8")
    lock = read_lock(path)
    assert lock is not None and lock.unseen is None
    ci = [check for check in gate_from_lock(prod_config(seed_repos.target), lock).checks if check.id.startswith("platform-ci")]
    assert ci and all(check.status == "skipped" and "git source, which cannot see CI" in check.message for check in ci)
