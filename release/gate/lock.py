"""The lock file: the offline record of what the gate proved, one per stack, beside its stack file.

`python -m release lock` writes it only when the gate passes. The plan reads it when GitHub is out of
reach, and the next gate run compares tags against it (a tag that moved fails `tag-immutable`). Every
tag a lock of this stack ever proved stays in `tags`, so moving the bundle forward keeps the record of
the old tags for the immutability check of a later rollback.

Since schema 2 the lock also carries the profile facts the gate proved (UES catalog and adapters at the
tag, each platform's registry at its commit), each with its provenance (repository, ref, commit, path,
blob id), and a sha256 digest of them. A lock whose facts do not match their digest or their provenance
(the lock's own tag and service commits) is refused as tampered (bad input). A schema-1 lock has no
facts: it still serves as the tag history of the next `lock`, but the offline plan refuses it.

Deterministic: sorted keys, two-space indent, trailing newline; the only volatile field is `locked_at`.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Final, Literal, Optional

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from components.profiles import ProfileFacts, platform_key
from release.config import COMMIT_PATTERN, release_version
from release.gate.pins import Pin
from release.local_files import LOCK_MAX_BYTES, InputFileError, load_json, read_text

if TYPE_CHECKING:
    from release.gate.checks import GateReport

LOCK_SCHEMA: Final = 2
LOCK_AGAIN = "run `python -m release lock` again"


class LockModel(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _full_commit(value: str) -> str:
    if not COMMIT_PATTERN.fullmatch(value):
        raise ValueError(f"{value!r} is not a 40-hex commit")
    return value


class LockedTag(LockModel):
    repo: str
    tag: str
    commit: str

    @field_validator("tag")
    @classmethod
    def _tag(cls, value: str) -> str:
        release_version(value)
        return value

    @field_validator("commit")
    @classmethod
    def _commit(cls, value: str) -> str:
        return _full_commit(value)


class LockedService(LockModel):
    platform: str
    repo: str
    commit: str
    pins: list[Pin] = Field(default_factory=list)

    @field_validator("commit")
    @classmethod
    def _commit(cls, value: str) -> str:
        return _full_commit(value)


class Lock(LockModel):
    schema_version: Literal[1, 2] = LOCK_SCHEMA
    locked_at: str  # ISO 8601 UTC, e.g. 2026-04-20T09:30:00Z
    source: str  # the kind of source that proved it: github | git
    github_owner: str
    quant_platform_kit: LockedTag
    us_equity_strategies: LockedTag
    ues_qpk_pin: Pin
    services: dict[str, LockedService]
    # "<owner>/<repo>" -> tag -> commit: every tag any lock of this stack proved (tags never move).
    tags: dict[str, dict[str, str]] = Field(default_factory=dict)
    # What the gate proved about profiles (None only in a schema-1 lock), and the sha256 of it.
    profile_facts: Optional[ProfileFacts] = None
    profile_facts_sha256: Optional[str] = None

    def recorded_commit(self, owner: str, repo: str, tag: str) -> Optional[str]:
        return self.tags.get(f"{owner}/{repo}", {}).get(tag)


class LockError(ValueError):
    """A lock file that exists but cannot be trusted: bad JSON or the wrong shape. Bad input (exit 2)."""


def lock_path(stack_file: Path) -> Path:
    """`Pulumi.prod.yaml` -> `Pulumi.prod.lock.json`, in the same directory."""
    stem = stack_file.name[: -len(stack_file.suffix)] if stack_file.suffix in (".yaml", ".yml") else stack_file.name
    return stack_file.with_name(f"{stem}.lock.json")


def facts_digest(facts: ProfileFacts) -> str:
    canonical = json.dumps(facts.model_dump(mode="json"), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()


def provenance_problems(lock: Lock) -> list[str]:
    """Where the lock's profile facts contradict their digest or the lock's own tag and commits."""
    facts = lock.profile_facts
    if facts is None:
        return []
    problems = []
    if lock.profile_facts_sha256 != facts_digest(facts):
        problems.append("profile_facts do not match profile_facts_sha256")
    ues = facts.ues.get(lock.us_equity_strategies.tag)
    if facts.ues_tag != lock.us_equity_strategies.tag or ues is None:
        problems.append(f"profile_facts are for UES {facts.ues_tag}, the lock proved {lock.us_equity_strategies.tag}")
    elif (ues.repo, ues.commit) != (lock.us_equity_strategies.repo, lock.us_equity_strategies.commit):
        problems.append(
            f"UES facts were read at {ues.repo}@{ues.commit[:7]}, the lock's tag is {lock.us_equity_strategies.repo}@{lock.us_equity_strategies.commit[:7]}"
        )
    for ues_facts in facts.ues.values():
        if any((f.repo, f.ref, f.commit) != (ues_facts.repo, ues_facts.tag, ues_facts.commit) for f in ues_facts.files):
            problems.append(f"a UES {ues_facts.tag} fact names another repository, ref or commit than its own")
    for platform in facts.platforms.values():
        if any((f.repo, f.commit) != (platform.repo, platform.commit) for f in platform.files):
            problems.append(f"a fact of {platform.repo}@{platform.commit[:7]} names another repository or commit")
    for key, label in facts.services.items():
        service = lock.services.get(key)
        if service is None or label != platform_key(service.repo, service.commit):
            problems.append(
                f"profile facts of services.{key} are for {label}, the lock proved {'nothing' if service is None else platform_key(service.repo, service.commit)}"
            )
    return problems


def read_lock(path: Path, need_facts: bool = False) -> Optional[Lock]:
    """The lock at `path`, None when there is none; LockError for anything unreadable or tampered.

    `need_facts`: the caller will plan from the lock's profile facts, so a lock without them is refused.
    """
    try:
        text = read_text(path, LOCK_MAX_BYTES, "delete it and run `python -m release lock`")
    except FileNotFoundError:
        return None
    except InputFileError as error:
        raise LockError(str(error)) from None
    try:
        # The shared parser: nesting past the bound is refused, never a RecursionError.
        raw = load_json(text, str(path), "do not edit it by hand: delete it and run `python -m release lock`")
    except InputFileError as error:
        raise LockError(str(error)) from None
    if isinstance(raw, dict) and raw.get("schema_version") == 1:
        # Written before profile facts: its matrix tag named a hand-written matrix that no longer exists.
        if need_facts:
            raise LockError(f"{path} was written before profile facts were recorded in locks; {LOCK_AGAIN}")
        raw.pop("matrix_tag", None)
    try:
        lock = Lock.model_validate(raw)
    except ValidationError as error:
        first = error.errors()[0]
        where = ".".join(str(part) for part in first["loc"]) or "(top level)"
        raise LockError(
            f"{path} is not a valid lock ({error.error_count()} problem(s), first at {where}: {first['msg']}); "
            "do not edit it by hand: delete it and run `python -m release lock`"
        ) from None
    if lock.schema_version == LOCK_SCHEMA and lock.profile_facts is None:
        raise LockError(f"{path} has no profile facts; do not edit it by hand: {LOCK_AGAIN}")
    problems = provenance_problems(lock)
    if problems:
        raise LockError(
            f"{path}: its profile facts do not match their provenance ({'; '.join(problems)}); it was edited by hand: {LOCK_AGAIN}"
        )
    if need_facts and lock.profile_facts is None:
        raise LockError(f"{path} was written before profile facts were recorded in locks; {LOCK_AGAIN}")
    return lock


def utc_timestamp(now: Optional[datetime] = None) -> str:
    moment = (now or datetime.now(timezone.utc)).astimezone(timezone.utc)
    return moment.replace(microsecond=0).strftime("%Y-%m-%dT%H:%M:%SZ")


def lock_from_report(report: "GateReport", now: Optional[datetime] = None, previous: Optional[Lock] = None) -> Lock:
    """The lock a passing, source-verified gate report proves; ValueError for any other report."""
    if not report.ok or report.source_kind not in ("github", "git"):
        raise ValueError("only a passing gate verified from GitHub or git can be locked; run `python -m release check`")
    facts, bundle = report.facts, report.bundle
    owner, repos = bundle.github_owner, bundle.repositories
    qpk_commit = facts.tags[(repos.quant_platform_kit, bundle.quant_platform_kit)]
    ues_commit = facts.tags[(repos.us_equity_strategies, bundle.us_equity_strategies)]
    assert facts.ues_qpk_pin is not None, "a passing gate has read UES's QPK pin"
    assert facts.profiles is not None, "a passing gate has read the profile facts"
    tags: dict[str, dict[str, str]] = {name: dict(recorded) for name, recorded in (previous.tags if previous else {}).items()}
    for (repo, tag), commit in facts.tags.items():
        tags.setdefault(f"{owner}/{repo}", {})[tag] = commit
    return Lock(
        locked_at=utc_timestamp(now),
        source=report.source_kind,
        github_owner=owner,
        quant_platform_kit=LockedTag(repo=repos.quant_platform_kit, tag=bundle.quant_platform_kit, commit=qpk_commit),
        us_equity_strategies=LockedTag(repo=repos.us_equity_strategies, tag=bundle.us_equity_strategies, commit=ues_commit),
        ues_qpk_pin=facts.ues_qpk_pin,
        profile_facts=facts.profiles,
        profile_facts_sha256=facts_digest(facts.profiles),
        services={
            key: LockedService(
                platform=service.platform,
                repo=service.repo,
                commit=service.commit,
                pins=sorted(service.pins, key=lambda pin: (pin.package, pin.file, pin.ref)),
            )
            for key, service in facts.services.items()
        },
        tags=tags,
    )


def render_lock(lock: Lock) -> str:
    return json.dumps(lock.model_dump(mode="json"), indent=2, sort_keys=True) + "\n"


def write_lock(path: Path, report: "GateReport", now: Optional[datetime] = None) -> Lock:
    """Write the lock for a passing report, keeping every tag the previous lock at `path` recorded."""
    lock = lock_from_report(report, now, previous=read_lock(path))
    # A fresh temporary file (O_EXCL, a unique name): a FIFO or a stale file left at a fixed `.tmp` name
    # can never block the write or be written through. Atomic replace: a crash mid-write never leaves a
    # half lock for the plan to read.
    fd, tmp_name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as tmp:
            tmp.write(render_lock(lock))
        os.chmod(tmp_name, 0o644)
        os.replace(tmp_name, path)
    except BaseException:
        Path(tmp_name).unlink(missing_ok=True)
        raise
    return lock
