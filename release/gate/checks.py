"""The release gate: the checks that must pass before any env diff (docs/platform-facts.md §1).

`run_gate` asks a source (GitHub or git) for facts and returns a `GateReport`; it never raises for a
source fault: a fault becomes an "error" check (could not verify), which fails closed like a failed one.
`gate_from_lock` is the offline verdict: the config compared against what a lock proved.

Checks, in report order:
  qpk-tag, ues-tag           the bundle's tags exist; the commit each resolves to
  ues-pins-qpk               UES's pyproject.toml at its tag pins the bundle's QPK (tag or its commit)
  platform-pins:<key>        the platform commit exists and every pin file pins QPK and UES to the bundle
  pin-refs                   no branch, short sha, non-git or non-canonical repository in any pin
  tag-immutable              no tag resolves to another commit than the lock recorded
  order                      UES's QPK pin is not newer than the bundle's QPK; a move back is a rollback
  platform-ci:<key>          (GitHub only) the platform commit's statuses and check runs are green
  profile-facts:<key>        UES's catalog/adapters at the tag and the platform's registry at its commit
                             were read (release/gate/profile_checks.py) and the configured profile is enabled
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field
from typing import Any, Literal, Optional

from packaging.version import Version

from components.profiles import ProfileFacts, platform_key
from release.config import ReleaseBundle, StackConfig, ref_kind, release_version
from release.control_chars import escape_controls
from release.gate.lock import Lock
from release.gate.pins import PIN_FILES, PYPROJECT_TOML, QPK_PACKAGE, RELEASE_KINDS, UES_PACKAGE, Pin, PinFileError, pins_from_file
from release.gate.profile_checks import lock_profile_checks, profile_checks
from release.gate.sources import Answers, NotFound, Pending, ReleaseSource, SourceError, explore, exploring
from release.report_words import counts_text, status_label

Status = Literal["passed", "failed", "error", "skipped"]
LOCK_FIX = "run `python -m release lock` to verify and record the current config"
LOCK_AGAIN = "run `python -m release lock` again"


@dataclass(frozen=True)
class CheckResult:
    id: str
    status: Status
    message: str
    unreachable: bool = False  # an "error" because the source could not be reached at all

    @property
    def ok(self) -> bool:
        return self.status in ("passed", "skipped")


@dataclass(frozen=True)
class ServiceFacts:
    platform: str
    repo: str
    commit: str
    pins: tuple[Pin, ...]


@dataclass
class GateFacts:
    """What the gate proved; the lock is written from this."""

    tags: dict[tuple[str, str], str] = field(default_factory=dict)  # (repo, tag) -> commit
    ues_qpk_pin: Optional[Pin] = None
    services: dict[str, ServiceFacts] = field(default_factory=dict)
    # Proved profile facts (None when they could not all be read), plus the history the lock kept.
    profiles: Optional[ProfileFacts] = None


@dataclass
class GateReport:
    bundle: ReleaseBundle
    checks: list[CheckResult]
    source_kind: str
    verified_from: str
    facts: GateFacts = field(default_factory=GateFacts)
    rollback: bool = False

    @property
    def ok(self) -> bool:
        return all(check.ok for check in self.checks)

    @property
    def unverified(self) -> bool:
        return any(check.status == "error" for check in self.checks)

    @property
    def unreachable(self) -> bool:
        return any(check.unreachable for check in self.checks)

    def failed(self) -> list[CheckResult]:
        return [check for check in self.checks if not check.ok]

    def to_json(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "unverified": self.unverified,
            "unreachable": self.unreachable,
            "rollback": self.rollback,
            "source": self.source_kind,
            "verified_from": self.verified_from,
            "bundle": {
                "quant_platform_kit": self.bundle.quant_platform_kit,
                "us_equity_strategies": self.bundle.us_equity_strategies,
                "github_owner": self.bundle.github_owner,
            },
            "checks": [{"id": c.id, "ok": c.ok, "status": c.status, "message": c.message} for c in self.checks],
            "facts": {
                "tags": {f"{repo}@{tag}": commit for (repo, tag), commit in sorted(self.facts.tags.items())},
                "ues_qpk_pin": None if self.facts.ues_qpk_pin is None else self.facts.ues_qpk_pin.model_dump(),
                "profiles": None if self.facts.profiles is None else self.facts.profiles.model_dump(mode="json"),
                "services": {
                    key: {
                        "platform": s.platform,
                        "repo": s.repo,
                        "commit": s.commit,
                        "pins": [pin.model_dump() for pin in s.pins],
                    }
                    for key, s in sorted(self.facts.services.items())
                },
            },
        }

    def render_text(self) -> str:
        verdict = "PASS" if self.ok else ("UNVERIFIED" if self.unverified and not self.failed_definitely else "FAIL")
        lines = [
            f"Release gate: {verdict} - bundle QPK {self.bundle.quant_platform_kit}, UES {self.bundle.us_equity_strategies}"
            f" (owner {self.bundle.github_owner}; verified from {self.verified_from})"
        ]
        lines += [f"  {status_label(check.status)} {check.id}: {check.message}" for check in self.checks]
        lines.append(counts_text([check.status for check in self.checks]))
        if self.rollback:
            lines.append("This bundle is a ROLLBACK to older tags than the lock recorded.")
        if self.unverified:
            lines.append(
                "The gate could not verify everything and fails closed: fix access to the source "
                "(network and GITHUB_TOKEN, or --source git --git-root DIR) and run it again."
            )
        # Messages quote server answers: a newline in one must not forge a PASS line.
        return "\n".join(escape_controls(line) for line in lines)

    @property
    def failed_definitely(self) -> bool:
        return any(check.status == "failed" for check in self.checks)


# -- helpers ------------------------------------------------------------------------------------------


def short(sha: str) -> str:
    return sha[:7]


def _fault(check_id: str, error: SourceError) -> CheckResult:
    """A source fault: NotFound is a definite "no" (failed); anything else could not be verified (error)."""
    if isinstance(error, NotFound):
        return CheckResult(check_id, "failed", str(error))
    return CheckResult(check_id, "error", f"could not verify: {error}", unreachable=error.unreachable)


@dataclass(frozen=True)
class _Blocked:
    """Why a check could not run: a prerequisite failed ("failed") or could not be verified ("error")."""

    status: Status
    reason: str
    unreachable: bool = False

    def result(self, check_id: str) -> CheckResult:
        return CheckResult(check_id, self.status, f"not checked: {self.reason}", self.unreachable)


@dataclass(frozen=True)
class _PinRead:
    """The pins one repository declares at one commit, or why they could not be read."""

    pins: tuple[Pin, ...] = ()
    files: tuple[str, ...] = ()
    blocked: Optional[_Blocked] = None
    pending: bool = False  # blocked only because the gate is still exploring (never in a report)


def _expected(bundle_tag: str, tag_commit: Optional[str]) -> str:
    return f"{bundle_tag}" + (f" (= {short(tag_commit)})" if tag_commit else "")


def _pin_problem(pin: Pin, bundle_tag: str, tag_commit: Optional[str]) -> Optional[str]:
    """Why `pin` is not the bundle's release (None when it is): tag = the bundle tag, sha = its commit."""
    if pin.kind == "tag":
        if pin.ref != bundle_tag:
            return f"pins {pin.package} @{pin.ref}, bundle is {bundle_tag}"
    elif pin.kind == "sha":
        if tag_commit is None:
            return f"pins {pin.package} @{short(pin.ref)}, and the bundle tag {bundle_tag} did not resolve to compare it"
        if pin.ref != tag_commit:
            return f"pins {pin.package} @{short(pin.ref)}, bundle is {_expected(bundle_tag, tag_commit)}"
    else:
        return f"pins {pin.describe()} ({pin.kind}), bundle is {bundle_tag}"
    if pin.resolved is not None and tag_commit is not None and pin.resolved != tag_commit:
        return f"resolved {pin.package} to {short(pin.resolved)}, bundle {bundle_tag} is {short(tag_commit)}"
    return None


@functools.lru_cache(maxsize=1024)
def _pins_of(name: str, text: str) -> tuple[Pin, ...]:
    """Parsed once per distinct file: the gate's logic runs several passes while it explores."""
    return tuple(pins_from_file(name, text))


def _read_pins(source: ReleaseSource, repo: str, commit: str, files: tuple[str, ...]) -> _PinRead:
    label = f"{repo}@{short(commit)}"
    try:
        if not source.commit_exists(repo, commit):
            return _PinRead(blocked=_Blocked("failed", f"commit {commit} not found in {repo}; push it or fix the commit"))
        present = tuple(name for name in files if name in source.list_files(repo, commit, files))
        pins: list[Pin] = []
        waiting: Optional[Pending] = None
        for name in present:
            try:
                text = source.read_file(repo, commit, name)
            except Pending as pending:
                waiting = waiting or pending  # while exploring: ask for every file in the same round
                continue
            if text is None:
                continue
            try:
                pins += _pins_of(name, text)
            except PinFileError as error:
                return _PinRead(blocked=_Blocked("failed", f"{label} {error}; fix the file"))
        if waiting is not None:
            raise waiting
        return _PinRead(pins=tuple(pins), files=present)
    except SourceError as error:
        status: Status = "failed" if isinstance(error, NotFound) else "error"
        return _PinRead(blocked=_Blocked(status, str(error), error.unreachable), pending=isinstance(error, Pending))


# -- the gate -----------------------------------------------------------------------------------------


def run_gate(config: StackConfig, source: ReleaseSource, lock: Optional[Lock] = None) -> GateReport:
    """Every check against `source`; faults become "error" checks, never exceptions.

    A source that can answer concurrently (`answers` and `concurrency` > 1: GitHub) is first explored:
    the checks run as throw-away passes that collect the questions they reach, which a bounded pool
    asks at once (see `release.gate.sources.explore`); then the checks run for real from those answers,
    so the report is the one asking one question at a time would give, in the same order.
    """
    unjudged = _unjudged_shape(config)
    if unjudged is not None:
        return GateReport(bundle=config.release, checks=[unjudged], source_kind=source.kind, verified_from=source.describe())
    answers = getattr(source, "answers", None)
    pool_size = getattr(source, "concurrency", 1)
    if isinstance(answers, Answers) and pool_size > 1:
        explore(
            answers,
            lambda: _gate_pass(config, source, lock),
            pool_size,
            getattr(source, "deadline", lambda: None),
            group=getattr(source, "group_questions", None),
            priority=getattr(source, "question_priority", None),
        )
    return _gate_pass(config, source, lock)


def _unjudged_shape(config: StackConfig) -> Optional[CheckResult]:
    """A release this gate cannot judge yet fails closed as a whole, before any question is asked."""
    releases = [config.release] + [config.release_for(key) for key, spec in config.services.items() if spec.release is not None]
    shapes = []
    if any(release.bundle is not None for release in releases):
        shapes.append("a bundle")
    if any(ref_kind(ref) == "commit" for release in releases for ref in release.refs.values()):
        shapes.append("commit refs")
    if any(set(release.refs) - {QPK_PACKAGE, UES_PACKAGE} for release in releases):
        shapes.append("packages beyond QPK and UES")
    if len(releases) > 1:
        shapes.append("per-service releases")
    if not shapes:
        return None
    return CheckResult(
        "release-form",
        "failed",
        f"this gate judges releases of two tags (QPK and UES) only; not yet {', '.join(shapes)}: write the release as two tags",
    )


def _gate_pass(config: StackConfig, source: ReleaseSource, lock: Optional[Lock]) -> GateReport:
    bundle = config.release
    owner, repos = bundle.github_owner, bundle.repositories
    qpk_repo, ues_repo = repos.quant_platform_kit, repos.us_equity_strategies
    facts = GateFacts()
    checks: list[CheckResult] = []

    # 1. tags
    tag_commits: dict[str, Optional[str]] = {}
    tag_blocked: dict[str, _Blocked] = {}
    for check_id, repo, tag in (("qpk-tag", qpk_repo, bundle.quant_platform_kit), ("ues-tag", ues_repo, bundle.us_equity_strategies)):
        try:
            commit = source.resolve_tag(repo, tag)
        except SourceError as error:
            checks.append(_fault(check_id, error))
            tag_commits[check_id] = None
            tag_blocked[check_id] = _Blocked(checks[-1].status, f"{check_id} {checks[-1].status}", error.unreachable)
            continue
        tag_commits[check_id] = commit
        facts.tags[(repo, tag)] = commit
        checks.append(CheckResult(check_id, "passed", f"{owner}/{repo} tag {tag} -> {commit}"))
    qpk_commit, ues_commit = tag_commits["qpk-tag"], tag_commits["ues-tag"]

    # 2. UES's QPK pin
    all_pins: list[tuple[str, Pin]] = []  # (where, pin) for pin-refs
    read_faults: list[_Blocked] = []
    ues_label = f"{ues_repo}@{bundle.us_equity_strategies}"
    ues_qpk_pins: list[Pin] = []
    ues_blocked: Optional[_Blocked] = tag_blocked.get("ues-tag")
    if ues_commit is None and exploring(source):
        # The tag is still resolving: ask for the pin file by the tag's name meanwhile (this pass is thrown away).
        try:
            source.read_file(ues_repo, bundle.us_equity_strategies, PYPROJECT_TOML)
        except SourceError:
            pass
    if ues_commit is not None:
        read = _read_pins(source, ues_repo, ues_commit, (PYPROJECT_TOML,))
        ues_blocked = read.blocked
        if read.blocked is not None:
            read_faults.append(read.blocked)
        ues_qpk_pins = [pin for pin in read.pins if pin.package == QPK_PACKAGE]
        all_pins += [(ues_label, pin) for pin in ues_qpk_pins]
    if ues_blocked is not None:
        checks.append(ues_blocked.result("ues-pins-qpk"))
    elif not ues_qpk_pins:
        checks.append(
            CheckResult(
                "ues-pins-qpk",
                "failed",
                f"{ues_label} {PYPROJECT_TOML} does not pin {QPK_PACKAGE}; pin it to {bundle.quant_platform_kit} and tag a new UES",
            )
        )
    else:
        problems = [
            f"{ues_label} {pin.file} {p}" for pin in ues_qpk_pins if (p := _pin_problem(pin, bundle.quant_platform_kit, qpk_commit))
        ]
        problems += _non_canonical(ues_label, ues_qpk_pins, owner, qpk_repo)
        facts.ues_qpk_pin = ues_qpk_pins[0]
        if problems:
            checks.append(
                CheckResult(
                    "ues-pins-qpk",
                    "failed",
                    "; ".join(problems) + f"; bump UES's pin to {bundle.quant_platform_kit} and tag a new UES (or move the bundle)",
                )
            )
        else:
            checks.append(
                CheckResult(
                    "ues-pins-qpk",
                    "passed",
                    f"{ues_label} {PYPROJECT_TOML} pins {QPK_PACKAGE} @{ues_qpk_pins[0].ref} = bundle {bundle.quant_platform_kit}",
                )
            )

    # 3. platform pins, read once per (repository, commit) however many services share it
    reads: dict[tuple[str, str], _PinRead] = {}
    for key in sorted(config.services):
        spec = config.services[key]
        repo = repos.for_platform(spec.platform)
        label = f"{repo}@{short(spec.commit)}"
        check_id = f"platform-pins:{key}"
        first_read = (repo, spec.commit) not in reads
        if first_read:
            reads[(repo, spec.commit)] = _read_pins(source, repo, spec.commit, PIN_FILES)
        read = reads[(repo, spec.commit)]
        if read.blocked is not None:
            if first_read:
                read_faults.append(read.blocked)
            checks.append(
                CheckResult(
                    check_id, read.blocked.status, f"{label} (services.{key}.commit): {read.blocked.reason}", read.blocked.unreachable
                )
            )
            continue
        if first_read:
            all_pins += [(label, pin) for pin in read.pins]
        problems = []
        for package, bundle_tag, tag_commit, canonical in (
            (QPK_PACKAGE, bundle.quant_platform_kit, qpk_commit, qpk_repo),
            (UES_PACKAGE, bundle.us_equity_strategies, ues_commit, ues_repo),
        ):
            package_pins = [pin for pin in read.pins if pin.package == package]
            if not package_pins:
                where = ", ".join(read.files) or f"no pin file ({', '.join(PIN_FILES)})"
                problems.append(f"{label} does not pin {package} ({where}); pin it to {bundle_tag}")
                continue
            mismatched = [f"{label} {pin.file} {p}" for pin in package_pins if (p := _pin_problem(pin, bundle_tag, tag_commit))]
            refs = sorted({pin.ref for pin in package_pins})
            if mismatched and len(refs) > 1:
                problems.append(f"{label} pin files disagree on {package} ({', '.join('@' + r for r in refs)})")
            problems += mismatched
            problems += _non_canonical(label, package_pins, owner, canonical)
        facts.services[key] = ServiceFacts(spec.platform, repo, spec.commit, read.pins)
        if problems:
            checks.append(
                CheckResult(
                    check_id, "failed", "; ".join(problems) + f"; bump the pins in {repo} and set services.{key}.commit to that commit"
                )
            )
        else:
            checks.append(
                CheckResult(check_id, "passed", f"{label} pins {QPK_PACKAGE} and {UES_PACKAGE} to the bundle in {', '.join(read.files)}")
            )

    # 4. refs that a release must never carry
    checks.append(_pin_refs(all_pins, read_faults, owner, {QPK_PACKAGE: qpk_repo, UES_PACKAGE: ues_repo}, bundle))

    # 5. tags never move
    checks.append(_tag_immutable(facts.tags, tag_blocked, lock, owner))

    # 6. release order and rollback
    order, rollback = _order(bundle, facts.ues_qpk_pin, qpk_commit, ues_blocked or tag_blocked.get("qpk-tag"), lock)
    checks.append(order)

    # 7. CI on each platform commit (GitHub only)
    checks += _platform_ci(config, source, reads)

    # 8. profile facts from UES at the tag and each platform at its commit
    blocked = tag_blocked.get("ues-tag")
    profile_results, proved = profile_checks(config, source, ues_commit, None if blocked is None else f"ues-tag {blocked.status}")
    checks += [CheckResult(r.id, r.status, r.message, r.unreachable) for r in profile_results]
    if proved is not None:
        facts.profiles = proved.with_history(None if lock is None else lock.profile_facts)

    return GateReport(
        bundle=bundle,
        checks=checks,
        source_kind=source.kind,
        verified_from=source.describe(),
        facts=facts,
        rollback=rollback,
    )


def _non_canonical(label: str, pins: list[Pin], owner: str, repo: str) -> list[str]:
    return [
        f"{label} {pin.file} points {pin.package} at {pin.where}, not {owner}/{repo}"
        for pin in pins
        if pin.kind in RELEASE_KINDS and not pin.is_canonical(owner, repo)
    ]


def _pin_refs(
    pins: list[tuple[str, Pin]], faults: list[_Blocked], owner: str, canonical: dict[str, str], bundle: ReleaseBundle
) -> CheckResult:
    bundle_tags = {QPK_PACKAGE: bundle.quant_platform_kit, UES_PACKAGE: bundle.us_equity_strategies}
    refused = []
    for where, pin in pins:
        fix = f"pin the release tag {bundle_tags[pin.package]} or its full commit"
        if pin.kind not in RELEASE_KINDS:
            what = {"short-sha": "a short sha", "branch": "a branch or unknown ref", "no-ref": "no ref"}.get(
                pin.kind, f"a {pin.kind} requirement"
            )
            refused.append(f"{where} {pin.file} pins {pin.describe()} ({what}): {fix}")
        elif not pin.is_canonical(owner, canonical[pin.package]):
            refused.append(
                f"{where} {pin.file} pins {pin.package} from {pin.where}, not {owner}/{canonical[pin.package]}: point it at the canonical repository"
            )
    if refused:
        return CheckResult("pin-refs", "failed", "; ".join(refused))
    errors = [fault for fault in faults if fault.status == "error"]
    if errors:
        return CheckResult("pin-refs", "error", f"could not read every pin: {errors[0].reason}", any(f.unreachable for f in errors))
    if faults:
        return CheckResult("pin-refs", "failed", f"not every pin could be read: {faults[0].reason}")
    return CheckResult("pin-refs", "passed", f"{len(pins)} pin(s) use a release tag or a full commit of the canonical repository")


def _tag_immutable(tags: dict[tuple[str, str], str], blocked: dict[str, _Blocked], lock: Optional[Lock], owner: str) -> CheckResult:
    if lock is None:
        return CheckResult("tag-immutable", "skipped", f"no lock for this stack yet, nothing to compare; {LOCK_FIX}")
    moved, known = [], 0
    for (repo, tag), commit in sorted(tags.items()):
        recorded = lock.recorded_commit(owner, repo, tag)
        if recorded is None:
            continue
        known += 1
        if recorded != commit:
            moved.append(
                f"{owner}/{repo} tag {tag} now resolves to {short(commit)}, the lock at {lock.locked_at} recorded {short(recorded)}: "
                f"tags are never moved; restore {tag} to {recorded} and release the fix as a new tag"
            )
    if moved:
        return CheckResult("tag-immutable", "failed", "; ".join(moved))
    if blocked:
        first = next(iter(blocked.values()))
        return CheckResult("tag-immutable", first.status, f"not checked: {first.reason}", first.unreachable)
    return CheckResult("tag-immutable", "passed", f"{known} tag(s) match the lock at {lock.locked_at}; {len(tags) - known} new")


def _order(
    bundle: ReleaseBundle, ues_pin: Optional[Pin], qpk_commit: Optional[str], blocked: Optional[_Blocked], lock: Optional[Lock]
) -> tuple[CheckResult, bool]:
    rollback, moves = False, []
    if lock is not None:
        for name, now, then in (
            ("QPK", bundle.quant_platform_kit, lock.quant_platform_kit.tag),
            ("UES", bundle.us_equity_strategies, lock.us_equity_strategies.tag),
        ):
            if release_version(now) < release_version(then):
                rollback = True
                moves.append(f"{name} {then} -> {now}")
    history = (
        f"ROLLBACK from the lock at {lock.locked_at}: {', '.join(moves)}"
        if rollback and lock is not None
        else (
            f"not older than the lock at {lock.locked_at}"
            if lock is not None
            else "no lock to compare, so a rollback cannot be told from a release"
        )
    )
    if ues_pin is None:
        if blocked is not None:
            return blocked.result("order"), rollback
        return CheckResult("order", "failed", f"UES {bundle.us_equity_strategies} has no QPK pin to order against; {history}"), rollback
    pinned: Optional[Version] = None
    if ues_pin.kind == "tag":
        pinned = release_version(ues_pin.ref)
    elif ues_pin.kind == "sha" and ues_pin.ref == qpk_commit:
        pinned = bundle.qpk_version
    if pinned is None:
        return CheckResult(
            "order",
            "failed",
            f"UES {bundle.us_equity_strategies} pins {ues_pin.describe()}, which names no QPK release to order; pin a QPK tag or its commit; {history}",
        ), rollback
    if pinned > bundle.qpk_version:
        return CheckResult(
            "order",
            "failed",
            f"{bundle.repositories.us_equity_strategies}@{bundle.us_equity_strategies} pins {QPK_PACKAGE} v{pinned}, newer than the bundle's "
            f"QPK {bundle.quant_platform_kit}: UES cannot be released before its QPK; release QPK v{pinned} and move the bundle to it; {history}",
        ), rollback
    return CheckResult(
        "order", "passed", f"UES {bundle.us_equity_strategies} needs QPK v{pinned} <= bundle {bundle.quant_platform_kit}; {history}"
    ), rollback


def _platform_ci(config: StackConfig, source: ReleaseSource, reads: dict[tuple[str, str], _PinRead]) -> list[CheckResult]:
    if source.kind != "github":
        return [
            CheckResult(
                "platform-ci",
                "skipped",
                f"the {source.kind} source cannot see CI, so platform CI was not checked; run with --source github to check it",
            )
        ]
    results = []
    for key in sorted(config.services):
        spec = config.services[key]
        repo = config.release.repositories.for_platform(spec.platform)
        label = f"{repo}@{short(spec.commit)}"
        check_id = f"platform-ci:{key}"
        read = reads.get((repo, spec.commit))
        if read is not None and read.blocked is not None:
            if read.pending:
                # CI needs only the commit: while exploring, ask it in the same round as the pins
                try:
                    source.ci_status(repo, spec.commit)
                except SourceError:
                    pass
            results.append(read.blocked.result(check_id))
            continue
        try:
            status = source.ci_status(repo, spec.commit)
        except SourceError as error:
            results.append(_fault(check_id, error))
            continue
        if status is None:
            results.append(CheckResult(check_id, "skipped", f"{source.kind} source cannot see CI"))
        elif status.state == "success":
            results.append(CheckResult(check_id, "passed", f"{label} CI green ({status.detail})"))
        elif status.state == "pending":
            results.append(CheckResult(check_id, "failed", f"{label} CI still running ({status.detail}); wait for it to finish green"))
        elif status.state == "none":
            results.append(CheckResult(check_id, "failed", f"{label} has no CI result ({status.detail}); run CI on that commit"))
        else:
            results.append(
                CheckResult(check_id, "failed", f"{label} CI failed ({status.detail}); fix it and release a new platform commit")
            )
    return results


# -- the offline verdict --------------------------------------------------------------------------------


def gate_from_lock(config: StackConfig, lock: Lock) -> GateReport:
    """The config compared with what the lock proved; every mismatch names the field and the fix."""
    bundle = config.release
    owner, repos = bundle.github_owner, bundle.repositories
    when = f"verified from lock at {lock.locked_at}"
    checks: list[CheckResult] = []
    for check_id, field_name, repo, tag, locked in (
        ("qpk-tag", "release.quantPlatformKit", repos.quant_platform_kit, bundle.quant_platform_kit, lock.quant_platform_kit),
        ("ues-tag", "release.usEquityStrategies", repos.us_equity_strategies, bundle.us_equity_strategies, lock.us_equity_strategies),
    ):
        if (owner, repo, tag) != (lock.github_owner, locked.repo, locked.tag):
            checks.append(
                CheckResult(
                    check_id,
                    "failed",
                    f"{field_name} is {owner}/{repo} {tag}, the lock at {lock.locked_at} proved {lock.github_owner}/{locked.repo} {locked.tag}; {LOCK_FIX}",
                )
            )
        else:
            checks.append(CheckResult(check_id, "passed", f"{owner}/{repo} tag {tag} -> {locked.commit} ({when})"))
    tags_match = all(check.ok for check in checks)
    pin = lock.ues_qpk_pin
    checks.append(
        CheckResult("ues-pins-qpk", "passed", f"{repos.us_equity_strategies}@{bundle.us_equity_strategies} pins {pin.describe()} ({when})")
        if tags_match
        else CheckResult("ues-pins-qpk", "failed", f"not checked: the bundle differs from the lock at {lock.locked_at}; {LOCK_FIX}")
    )
    facts = GateFacts(ues_qpk_pin=pin)
    facts.tags = {
        (lock.quant_platform_kit.repo, lock.quant_platform_kit.tag): lock.quant_platform_kit.commit,
        (lock.us_equity_strategies.repo, lock.us_equity_strategies.tag): lock.us_equity_strategies.commit,
    }
    for key in sorted(config.services):
        spec = config.services[key]
        check_id = f"platform-pins:{key}"
        locked_service = lock.services.get(key)
        repo = repos.for_platform(spec.platform)
        if locked_service is None:
            checks.append(CheckResult(check_id, "failed", f"services.{key} is not in the lock at {lock.locked_at}; {LOCK_FIX}"))
        elif (spec.platform, repo) != (locked_service.platform, locked_service.repo):
            checks.append(
                CheckResult(
                    check_id,
                    "failed",
                    f"services.{key}.platform is {spec.platform} ({repo}), the lock at {lock.locked_at} proved {locked_service.platform} ({locked_service.repo}); {LOCK_FIX}",
                )
            )
        elif spec.commit != locked_service.commit:
            checks.append(
                CheckResult(
                    check_id,
                    "failed",
                    f"services.{key}.commit is {short(spec.commit)}, the lock at {lock.locked_at} proved {repo}@{short(locked_service.commit)}; {LOCK_FIX}",
                )
            )
        elif not tags_match:
            checks.append(CheckResult(check_id, "failed", f"not checked: the bundle differs from the lock at {lock.locked_at}; {LOCK_FIX}"))
        else:
            facts.services[key] = ServiceFacts(spec.platform, repo, spec.commit, tuple(locked_service.pins))
            checks.append(
                CheckResult(check_id, "passed", f"{repo}@{short(spec.commit)} pins {QPK_PACKAGE} and {UES_PACKAGE} to the bundle ({when})")
            )
    if lock.profile_facts is None:
        checks.append(
            CheckResult(
                "profile-facts", "failed", f"the lock at {lock.locked_at} was written before profile facts were recorded; {LOCK_AGAIN}"
            )
        )
    else:
        results = lock_profile_checks(config, lock.profile_facts, when) if tags_match else []
        checks += [CheckResult(r.id, r.status, r.message) for r in results]
        if tags_match:
            facts.profiles = lock.profile_facts.model_copy(update={"services": {
                key: platform_key(repos.for_platform(spec.platform), spec.commit)
                for key, spec in config.services.items()
                if platform_key(repos.for_platform(spec.platform), spec.commit) in lock.profile_facts.platforms
            }})  # fmt: skip
    if lock.source != "github":
        checks.append(
            CheckResult(
                "platform-ci", "skipped", f"the lock at {lock.locked_at} was written from the {lock.source} source, which cannot see CI"
            )
        )
    return GateReport(bundle=bundle, checks=checks, source_kind="lock", verified_from=f"lock at {lock.locked_at}", facts=facts)
