"""The lock file: the offline record of what the gate proved, one per stack, beside its stack file.

`python -m release lock` writes it only when the gate passes. `plan` lets it answer the questions a run
could not ask (release/gate/checks.py `with_lock`), `verify` judges by its profile facts, and the next
gate run compares against it: a tag that moved fails `tag-immutable`, a package's new commit is ordered
against the one recorded (forward, rollback, diverged).

What it records (schema 4): the stack's release, every package as its ref -> commit (and the bundle it
came from, where it was read: repository, commit, path, blob), each strategy package's own pin of the kit;
per service its platform commit, the pins of its install files, and its own release when it overrides the
stack's; `refs`, every ref -> commit any lock of this stack proved (tags never move, so the history is
kept for a later rollback's check); the profile facts (components/profiles.py `ProfileFacts`: per
(platform commit, release) what the platform's registry gave when run over exactly those sources, with how
it was run: the functions, the environment, the isolation, the probe's sha256) with their sha256; and
`lock_sha256`, the sha256 of everything else.

What a reader can tell about an edited lock: any edit that leaves `lock_sha256` (or the facts' digest)
stale, a duplicate key, a field of the wrong type (`schema_version: true`), facts whose provenance is not
the lock's own commits (a service's facts of another platform commit, or run with another package commit
or ref than its release recorded; kept facts of a package commit the refs never recorded), a history that
lacks the lock's own refs. What it cannot: an edit whose digests were recomputed and whose provenance was
kept. A digest is not a signature; the lock is a record of what was proved, and `pulumi up` proves it all
again online before it deploys.

Locks of schemas 1 to 3 still load, as the same model (1 and 2: two tags, a `tags` history, UES's QPK pin),
and are judged as before, without their profile facts (read from source text then, not proved by running
the registries): they serve the ref history, not the offline plan. A schema-3 lock is checked against
its digest first.
Deterministic: sorted keys, two-space indent, trailing newline; the only volatile field is `locked_at`.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final, Literal, Optional, Sequence

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from components.profiles import ProfileFacts
from release.config import COMMIT_PATTERN, check_bundle_id, check_release_ref, ref_kind
from release.gate.pins import Pin
from release.local_files import LOCK_MAX_BYTES, InputFileError, load_json, read_text
from release.packages import QPK_PACKAGE, UES_PACKAGE

if TYPE_CHECKING:
    from release.gate.checks import GateReport

LOCK_SCHEMA: Final = 4
LOCK_AGAIN = "run `python -m release lock` again"
HAND_EDIT = "do not edit it by hand: delete it and run `python -m release lock`"


class LockModel(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _full_commit(value: str) -> str:
    if not COMMIT_PATTERN.fullmatch(value):
        raise ValueError(f"{value!r} is not a 40-hex commit")
    return value


class LockedRef(LockModel):
    """A package as released: its repository, the ref the release named, the commit it proved."""

    repo: str
    ref: str
    commit: str

    @field_validator("ref")
    @classmethod
    def _ref(cls, value: str) -> str:
        return check_release_ref(value)

    @field_validator("commit")
    @classmethod
    def _commit(cls, value: str) -> str:
        return _full_commit(value)

    @model_validator(mode="after")
    def _commit_ref(self) -> "LockedRef":
        if ref_kind(self.ref) == "commit" and self.ref != self.commit:
            raise ValueError(f"the ref {self.ref} is a commit, yet the lock says it proved {self.commit}")
        return self


class LockedBundle(LockModel):
    """Where a bundle release was read."""

    bundle: str
    repo: str
    commit: str
    path: str
    blob: str

    @field_validator("bundle")
    @classmethod
    def _bundle(cls, value: str) -> str:
        return check_bundle_id(value)

    @field_validator("commit", "blob")
    @classmethod
    def _object(cls, value: str) -> str:
        return _full_commit(value)


class LockedRelease(LockModel):
    packages: dict[str, LockedRef]  # distribution name ->
    bundle: Optional[LockedBundle] = None
    kit_pins: dict[str, list[Pin]] = Field(default_factory=dict)  # strategy package -> its own pins of the kit

    @model_validator(mode="after")
    def _required(self) -> "LockedRelease":
        missing = [name for name in (QPK_PACKAGE, UES_PACKAGE) if name not in self.packages]
        if missing:
            raise ValueError(f"the release lacks {', '.join(missing)}")
        return self

    def refs(self) -> dict[str, str]:
        return {name: locked.ref for name, locked in self.packages.items()}


class LockedService(LockModel):
    platform: str
    repo: str
    commit: str
    pins: list[Pin] = Field(default_factory=list)
    release: Optional[LockedRelease] = None  # its own release, when it overrides the stack's

    @field_validator("commit")
    @classmethod
    def _commit(cls, value: str) -> str:
        return _full_commit(value)


class Lock(LockModel):
    schema_version: Literal[1, 2, 3, 4] = LOCK_SCHEMA
    locked_at: str  # ISO 8601 UTC, e.g. 2026-04-20T09:30:00Z
    source: str  # the kind of source that proved it: github | git
    github_owner: str
    release: LockedRelease
    services: dict[str, LockedService]
    # "<owner>/<repo>" -> ref -> commit: every ref any lock of this stack proved (tags never move).
    refs: dict[str, dict[str, str]] = Field(default_factory=dict)
    # What the gate proved about profiles (None only in a schema-1 lock), and the sha256 of it.
    profile_facts: Optional[ProfileFacts] = None
    profile_facts_sha256: Optional[str] = None
    lock_sha256: Optional[str] = None  # schema 3+: the sha256 of everything else (`lock_digest`)
    # The checks the gate could not see when it wrote this lock (check id -> why), e.g. platform CI from
    # the git source: an offline plan shows them as skipped, never as passed. None: a lock written before
    # this was recorded (then only the source's kind says what it could not see).
    unseen: Optional[dict[str, str]] = None

    @field_validator("schema_version", mode="before")
    @classmethod
    def _schema(cls, value: object) -> object:
        if isinstance(value, bool):
            raise ValueError("is not a schema number")  # JSON true is not 1
        return value

    @model_validator(mode="before")
    @classmethod
    def _older_schemas(cls, data: object) -> object:
        """A lock of an older schema as the same model: schema 1/2 (two tags, `tags`, `ues_qpk_pin`)
        converted; the profile facts of schemas 2 and 3 (read from source text, not by running the
        registries) dropped, so such a lock serves the ref history and no offline plan. A schema-3 lock
        is checked against its own digest before anything of it is dropped."""
        if not isinstance(data, dict) or isinstance(data.get("schema_version"), bool) or data.get("schema_version") not in (1, 2, 3):
            return data
        data = dict(data)
        if data["schema_version"] == 3:
            if data.get("lock_sha256") != _digest({name: value for name, value in data.items() if name != "lock_sha256"}):
                raise ValueError("its content does not match lock_sha256")
            data.pop("lock_sha256")
        data.pop("profile_facts", None)
        data.pop("profile_facts_sha256", None)
        if data["schema_version"] == 3:
            return data
        data.pop("matrix_tag", None)
        packages, kit_pins = {}, {}
        for key, name in (("quant_platform_kit", QPK_PACKAGE), ("us_equity_strategies", UES_PACKAGE)):
            locked = data.pop(key, None)
            if isinstance(locked, dict) and set(locked) == {"repo", "tag", "commit"}:
                packages[name] = {"repo": locked["repo"], "ref": locked["tag"], "commit": locked["commit"]}
            else:
                packages[name] = locked  # refused below as what it is
        if "ues_qpk_pin" in data:
            kit_pins[UES_PACKAGE] = [data.pop("ues_qpk_pin")]
        data["release"] = {"packages": packages, "kit_pins": kit_pins}
        data["refs"] = data.pop("tags", {})
        return data

    def recorded_commit(self, owner: str, repo: str, ref: str) -> Optional[str]:
        return self.refs.get(f"{owner}/{repo}", {}).get(ref)

    def previous(self, name: str, services: Sequence[str]) -> Optional[LockedRef]:
        """What the lock recorded for package `name` of the release `services` install: the first of
        them that had its own release, else the stack's."""
        for key in services:
            locked = self.services.get(key)
            if locked is not None and locked.release is not None:
                return locked.release.packages.get(name)
        return self.release.packages.get(name)


class LockError(ValueError):
    """A lock file that exists but cannot be trusted: bad JSON or the wrong shape. Bad input (exit 2)."""


def lock_path(stack_file: Path) -> Path:
    """`Pulumi.prod.yaml` -> `Pulumi.prod.lock.json`, in the same directory."""
    stem = stack_file.name[: -len(stack_file.suffix)] if stack_file.suffix in (".yaml", ".yml") else stack_file.name
    return stack_file.with_name(f"{stem}.lock.json")


def _digest(value: Any) -> str:
    return hashlib.sha256(json.dumps(value, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


def facts_digest(facts: ProfileFacts) -> str:
    return _digest(facts.model_dump(mode="json"))


def lock_digest(lock: Lock) -> str:
    """The sha256 of every field of the lock but `lock_sha256` itself."""
    # A lock written before `unseen` existed has none: its digest is over the fields it had.
    excluded = {"lock_sha256"} | ({"unseen"} if lock.unseen is None else set())
    return _digest(lock.model_dump(mode="json", exclude=excluded))


def integrity_problems(lock: Lock) -> list[str]:
    """Where the lock contradicts its digests, its own history or the provenance of its facts."""
    problems = []
    if lock.schema_version == LOCK_SCHEMA and lock.lock_sha256 != lock_digest(lock):
        problems.append("its content does not match lock_sha256")
    releases = [("the release", lock.release)] + [
        (f"services.{key}.release", service.release) for key, service in sorted(lock.services.items()) if service.release is not None
    ]
    for where, release in releases:
        for name, locked in sorted(release.packages.items()):
            if lock.recorded_commit(lock.github_owner, locked.repo, locked.ref) != locked.commit:
                problems.append(f"refs lacks {where}'s {name} {locked.ref} -> {locked.commit[:7]}")
    return problems + provenance_problems(lock)


def provenance_problems(lock: Lock) -> list[str]:
    """Where the lock's profile facts contradict their digest or the lock's own commits: every service's
    facts must be of its recorded platform commit run with exactly its recorded release's packages (each
    by repository, ref and commit), and every package any kept facts ran must be in the lock's refs."""
    facts = lock.profile_facts
    if facts is None:
        return []
    problems = []
    if lock.profile_facts_sha256 != facts_digest(facts):
        problems.append("profile_facts do not match profile_facts_sha256")
    missing = sorted(set(lock.services) - set(facts.services))
    if missing:
        problems.append(f"no profile facts for services.{', services.'.join(missing)}")
    for key, facts_key in sorted(facts.services.items()):
        service, run = lock.services.get(key), facts.runs[facts_key]
        if service is None:
            problems.append(f"profile facts name services.{key}, which the lock does not record")
            continue
        if (run.platform, run.repo, run.commit) != (service.platform, service.repo, service.commit):
            problems.append(
                f"profile facts of services.{key} are for {run.repo}@{run.commit[:7]}, the lock proved {service.repo}@{service.commit[:7]}"
            )
        release = service.release or lock.release
        for package in run.packages:
            locked = release.packages.get(package.name)
            if locked is None or (locked.repo, locked.ref, locked.commit) != (package.repo, package.ref, package.commit):
                recorded = "nothing" if locked is None else f"{locked.ref} at {locked.commit[:7]}"
                problems.append(
                    f"profile facts of services.{key} ran {package.name} {package.ref} at {package.commit[:7]}, the lock's release has {recorded}"
                )
    for run in facts.runs.values():
        for package in run.packages:
            if lock.recorded_commit(lock.github_owner, package.repo, package.ref) != package.commit:
                problems.append(
                    f"profile facts of {run.repo}@{run.commit[:7]} ran {package.name} {package.ref} at {package.commit[:7]}, "
                    "which the lock's refs do not record"
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
        # The shared parser: nesting past the bound and a key given twice are refused, never a traceback.
        raw = load_json(text, str(path), HAND_EDIT)
    except InputFileError as error:
        raise LockError(str(error)) from None
    if isinstance(raw, dict) and raw.get("schema_version") in (1, 2, 3) and need_facts:
        raise LockError(f"{path} was written before profile facts were proved by running the platforms' registries; {LOCK_AGAIN}")
    try:
        lock = Lock.model_validate(raw)
    except ValidationError as error:
        first = error.errors()[0]
        where = ".".join(str(part) for part in first["loc"]) or "(top level)"
        raise LockError(
            f"{path} is not a valid lock ({error.error_count()} problem(s), first at {where}: {first['msg']}); {HAND_EDIT}"
        ) from None
    if lock.schema_version == LOCK_SCHEMA and lock.profile_facts is None:
        raise LockError(f"{path} has no profile facts; do not edit it by hand: {LOCK_AGAIN}")
    if lock.schema_version == LOCK_SCHEMA and lock.lock_sha256 is None:
        raise LockError(f"{path} has no lock_sha256; {HAND_EDIT}")
    problems = integrity_problems(lock)
    if problems:
        raise LockError(
            f"{path}: it does not match its own digests and provenance ({'; '.join(problems)}); it was edited by hand: {LOCK_AGAIN}"
        )
    if need_facts and lock.profile_facts is None:
        raise LockError(f"{path} was written before profile facts were proved by running the platforms' registries; {LOCK_AGAIN}")
    return lock


def utc_timestamp(now: Optional[datetime] = None) -> str:
    moment = (now or datetime.now(timezone.utc)).astimezone(timezone.utc)
    return moment.replace(microsecond=0).strftime("%Y-%m-%dT%H:%M:%SZ")


def lock_from_report(report: "GateReport", now: Optional[datetime] = None, previous: Optional[Lock] = None) -> Lock:
    """The lock a passing, source-verified gate report proves; ValueError for any other report."""
    if not report.ok or report.source_kind not in ("github", "git"):
        raise ValueError("only a passing gate verified from GitHub or git can be locked; run `python -m release check`")
    facts = report.facts
    assert facts.profiles is not None, "a passing gate has read the profile facts"
    assert facts.release is not None, "a passing gate has proved every package of the release"
    refs: dict[str, dict[str, str]] = {name: dict(recorded) for name, recorded in (previous.refs if previous else {}).items()}
    owner = report.bundle.github_owner
    releases = [facts.release] + [service.release for service in facts.services.values() if service.release is not None]
    for release in releases:
        assert release is not None
        for locked in release.packages.values():
            refs.setdefault(f"{owner}/{locked.repo}", {})[locked.ref] = locked.commit
    lock = Lock(
        locked_at=utc_timestamp(now),
        source=report.source_kind,
        github_owner=owner,
        release=facts.release,
        profile_facts=facts.profiles,
        profile_facts_sha256=facts_digest(facts.profiles),
        services={
            key: LockedService(
                platform=service.platform,
                repo=service.repo,
                commit=service.commit,
                pins=sorted(service.pins, key=lambda pin: (pin.package, pin.file, pin.ref)),
                release=service.release,
            )
            for key, service in facts.services.items()
        },
        refs=refs,
        # tag-immutable skips only when there was no lock to compare with: this lock is that record now.
        unseen={check.id: check.message for check in report.checks if check.status == "skipped" and check.id != "tag-immutable"},
    )
    return lock.model_copy(update={"lock_sha256": lock_digest(lock)})


def render_lock(lock: Lock) -> str:
    return json.dumps(lock.model_dump(mode="json"), indent=2, sort_keys=True) + "\n"


def write_lock(path: Path, report: "GateReport", now: Optional[datetime] = None) -> Lock:
    """Write the lock for a passing report, keeping every ref the previous lock at `path` recorded."""
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
