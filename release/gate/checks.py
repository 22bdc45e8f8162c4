"""The release gate: the checks that must pass before any env diff (docs/platform-facts.md §1 and §8).

`run_gate` fetches (release/gate/fetch.py: every question in stages, into an immutable `Snapshot`), then
`judge` runs the checks below over those facts alone, once, in this order; a source fault is a check
that could not verify ("error"), which fails closed like a failed one. Each check carries its stage of
the release order (`stage`: data, for `plan`'s next steps) and any warnings.

  release-bundle      the QSL bundle a release names was read at QuantRuntimeSettings' default branch
  <pkg>-tag|-commit   each package's ref: a tag resolves (annotated chains peeled); a commit exists and
                      is on its repository's default branch
  <pkg>-pins-qpk      each strategy package (UES, HK) at its ref requires the release's QPK, unless every
                      platform commit installing it overrides QPK (then a warning)
  platform-pins:<key> the platform commit exists and every install file agrees on every package of the
                      release and resolves to the release's commit; a package it does not install is
                      reported (a required one fails); a qsl.toml bundle other than the release's is reported
  pin-refs            every pin of a shared package, and every QuantStrategyLab git pin, is a release tag
                      or a full commit of the canonical repository
  tag-immutable       no tag resolves to another commit than a lock recorded
  order               a strategy needs no QPK newer than the release's; against the lock, a package moves
                      forward, or back as a labelled rollback (tags by version, commits by history), never
                      to a diverged commit
  platform-ci:<key>   (GitHub only) the platform commit's statuses and check runs are green
  profile-facts:<key> the platform commit's own registry, run over the fetched trees with the packages of the
                      release it installs (release/gate/profile_checks.py), enables the profile
Checks of a service's own release carry its key (`ues-commit:schwab`). `gate_from_lock` is the verdict a
lock alone gives; `with_lock` lets a lock answer only what a run could not.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any, Iterable, Literal, Optional

from packaging.version import Version

from components.profiles import ProfileFacts
from release.config import ReleaseBundle, StackConfig, ref_kind, release_version, short_ref
from release.control_chars import escape_controls
from release.gate.fetch import BundleFacts, ReleaseGroup, Snapshot, SnapshotTrees, fetch_snapshot, release_groups
from release.gate.lock import Lock, LockedBundle, LockedRef, LockedRelease
from release.gate.pins import (
    OVERRIDES,
    PIN_FILES,
    PYPROJECT_TOML,
    RELEASE_KINDS,
    InstallFiles,
    Pin,
    PinFileError,
    kit_pins,
    read_install_files,
)
from release.gate.profile_checks import BlockedStatus, lock_profile_checks, profile_checks, prove_requests, service_request
from release.gate.sources import NotFound, ReleaseSource, SourceError, redacted
from release.gate.trees import Tree, TreeError
from release.packages import BY_NAME, PACKAGES, QPK_PACKAGE, UES_PACKAGE, Package
from release.report_words import counts_text, status_label

Status = Literal["passed", "failed", "error", "skipped"]
Stage = Literal["verify-gate", "release-bundle", "tag-qpk", "tag-ues", "platform-pins"]
STAGE_ORDER: tuple[Stage, ...] = ("verify-gate", "release-bundle", "tag-qpk", "tag-ues", "platform-pins")
LOCK_FIX = "run `python -m release lock` to verify and record the current config"
LOCK_AGAIN = "run `python -m release lock` again"


@dataclass(frozen=True)
class CheckResult:
    id: str
    status: Status
    message: str
    stage: Stage = "verify-gate"  # where in the release order its cause sits
    unreachable: bool = False  # an "error" because the source could not be reached at all
    warnings: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        # Messages quote what files and servers hold (a requirement's URL, a status context): whatever
        # shows the report (text, JSON, plan, comment) shows nothing token-shaped.
        object.__setattr__(self, "message", redacted(self.message))
        object.__setattr__(self, "warnings", tuple(redacted(warning) for warning in self.warnings))

    @property
    def ok(self) -> bool:
        return self.status in ("passed", "skipped")


@dataclass(frozen=True)
class ServiceFacts:
    platform: str
    repo: str
    commit: str
    pins: tuple[Pin, ...]
    release: Optional[LockedRelease] = None  # its own release, when it overrides the stack's


@dataclass
class GateFacts:
    """What the gate proved; the lock is written from this."""

    release: Optional[LockedRelease] = None  # the stack's release, when every package of it was proved
    services: dict[str, ServiceFacts] = field(default_factory=dict)
    commits: dict[tuple[str, str], str] = field(default_factory=dict)  # (repo, ref) -> commit
    # Proved profile facts (None when they could not all be read), plus the history the lock kept.
    profiles: Optional[ProfileFacts] = None


@dataclass
class GateReport:
    bundle: ReleaseBundle  # the stack's release, its bundle's refs filled in when read
    checks: list[CheckResult]
    source_kind: str
    verified_from: str
    facts: GateFacts = field(default_factory=GateFacts)
    rollback: bool = False
    config: Optional[StackConfig] = None  # the config as judged (bundle refs filled in)
    snapshot: Optional[Snapshot] = None  # what was fetched (the trees), for whatever runs from them

    @property
    def ok(self) -> bool:
        return all(check.ok for check in self.checks)

    @property
    def unverified(self) -> bool:
        return any(check.status == "error" for check in self.checks)

    @property
    def unreachable(self) -> bool:
        return any(check.unreachable for check in self.checks)

    @property
    def failed_definitely(self) -> bool:
        return any(check.status == "failed" for check in self.checks)

    def failed(self) -> list[CheckResult]:
        return [check for check in self.checks if not check.ok]

    def to_json(self) -> dict[str, Any]:
        release = self.facts.release
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
                "packages": self.bundle.refs,
                "bundle": self.bundle.bundle,
                "github_owner": self.bundle.github_owner,
            },
            "checks": [
                {
                    "id": c.id,
                    "ok": c.ok,
                    "status": c.status,
                    "stage": c.stage,
                    "message": c.message,
                    "warnings": list(c.warnings),
                }
                for c in self.checks
            ],
            "facts": {
                "release": None if release is None else release.model_dump(mode="json"),
                "commits": {f"{repo}@{ref}": commit for (repo, ref), commit in sorted(self.facts.commits.items())},
                "profiles": None if self.facts.profiles is None else self.facts.profiles.model_dump(mode="json"),
                "services": {
                    key: {
                        "platform": s.platform,
                        "repo": s.repo,
                        "commit": s.commit,
                        "pins": [pin.model_dump() for pin in s.pins],
                        "release": None if s.release is None else s.release.model_dump(mode="json"),
                    }
                    for key, s in sorted(self.facts.services.items())
                },
            },
        }

    def render_text(self) -> str:
        verdict = "PASS" if self.ok else ("UNVERIFIED" if self.unverified and not self.failed_definitely else "FAIL")
        lines = [
            f"Release gate: {verdict} - {release_title(self.bundle)} (owner {self.bundle.github_owner}; verified from {self.verified_from})"
        ]
        for check in self.checks:
            lines.append(f"  {status_label(check.status)} {check.id}: {check.message}")
            lines += [f"        WARNING: {warning}" for warning in check.warnings]
        warned = sum(len(check.warnings) for check in self.checks)
        lines.append(counts_text([check.status for check in self.checks]) + (f"; {warned} warning(s)" if warned else ""))
        if self.rollback:
            lines.append("This release is a ROLLBACK to older refs than the lock recorded.")
        if self.unverified:
            lines.append(
                "The gate could not verify everything and fails closed: fix access to the source "
                "(network and GITHUB_TOKEN, or --source git --git-root DIR) and run it again."
            )
        # Messages quote server answers: a newline in one must not forge a PASS line.
        return "\n".join(escape_controls(line) for line in lines)


def release_title(release: ReleaseBundle) -> str:
    """`bundle QPK v0.7.10, UES v0.7.13` (the seed's words), `release QPK ff09c88, ...`, `bundle 2026.07.4 (...)`."""
    if release.form == "bundle":
        return release.describe()
    return f"{'bundle' if release.form == 'shorthand' else 'release'} {release.describe()}"


def short(sha: str) -> str:
    return sha[:7]


def _noun(release: ReleaseBundle) -> str:
    return "release" if release.form == "packages" else "bundle"


def _fault(check_id: str, error: SourceError, stage: Stage) -> CheckResult:
    """A source fault: NotFound is a definite "no" (failed); anything else could not be verified (error)."""
    if isinstance(error, NotFound):
        return CheckResult(check_id, "failed", str(error), stage)
    return CheckResult(check_id, "error", f"could not verify: {error}", stage, error.unreachable)


@dataclass(frozen=True)
class _Blocked:
    """Why a check could not run: a prerequisite failed ("failed") or could not be verified ("error")."""

    status: Status
    reason: str
    unreachable: bool = False

    def result(self, check_id: str, stage: Stage) -> CheckResult:
        return CheckResult(check_id, self.status, f"not checked: {self.reason}", stage, self.unreachable)

    @classmethod
    def of(cls, check: CheckResult) -> "_Blocked":
        return cls("failed" if check.status == "failed" else "error", f"{check.id} {check.status}", check.unreachable)


def _stage_of(package: Package) -> Stage:
    return "tag-qpk" if package.kit else "tag-ues"


def _ref_field(group: ReleaseGroup, name: str) -> str:
    """The stack field that names the package's ref (what to change to fix it)."""
    prefix = "release" if not group.suffix else f"services.{group.suffix[1:]}.release"
    release = group.release
    if release.form == "bundle":
        return f"the bundle {release.bundle} ({prefix}.bundle)"
    if release.form == "shorthand":
        return f"{prefix}.{BY_NAME[name].shorthand}"
    return f"{prefix}.packages.{name}"


# -- reading what a tree installs --------------------------------------------------------------------------


@dataclass(frozen=True)
class _Installs:
    """What one platform commit installs, or why it could not be told."""

    files: Optional[InstallFiles] = None
    blocked: Optional[_Blocked] = None


def _installs(snapshot: Snapshot, repo: str, commit: str, key: str, owner: str) -> _Installs:
    tree = snapshot.trees.get((repo, commit))
    label = f"{repo}@{short(commit)}"
    if tree is None:
        return _Installs(blocked=_Blocked("error", f"{label} was not read"))
    if isinstance(tree, SourceError):
        if isinstance(tree, NotFound):
            return _Installs(blocked=_Blocked("failed", f"commit {commit} not found in {repo}; push it or fix the commit"))
        return _Installs(blocked=_Blocked("error", str(tree), tree.unreachable))
    try:
        return _Installs(files=read_install_files(tree.text, owner))
    except (PinFileError, TreeError) as error:
        return _Installs(blocked=_Blocked("failed", f"{label} {error}; fix the file"))


def _pin_problem(pin: Pin, release_ref: str, commit: Optional[str], noun: str) -> Optional[str]:
    """Why `pin` is not the release's ref (None when it is): the tag itself or its commit for a tag
    release; the commit itself for a commit release. A resolution uv recorded must be that commit."""
    expected = short_ref(release_ref) + (f" (= {short(commit)})" if commit and ref_kind(release_ref) == "tag" else "")
    if pin.kind == "tag":
        if ref_kind(release_ref) == "commit":
            return f"pins {pin.package} @{pin.ref}, {noun} is commit {short(release_ref)}: pin the commit itself"
        if pin.ref != release_ref:
            return f"pins {pin.package} @{pin.ref}, {noun} is {release_ref}"
    elif pin.kind == "sha":
        if commit is None:
            return f"pins {pin.package} @{short(pin.ref)}, and the {noun}'s {release_ref} did not resolve to compare it"
        if pin.ref != commit:
            return f"pins {pin.package} @{short(pin.ref)}, {noun} is {expected}"
    else:
        return f"pins {pin.describe()} ({pin.kind}), {noun} is {short_ref(release_ref)}"
    if pin.resolved is not None and commit is not None and pin.resolved != commit:
        return f"resolved {pin.package} to {short(pin.resolved)}, {noun} {release_ref} is {short(commit)}"
    return None


def _listed_names(names: list[str]) -> str:
    """`a and b` (the seed's words), `a, b and c`."""
    return " and ".join(names) if len(names) <= 2 else f"{', '.join(names[:-1])} and {names[-1]}"


def _non_canonical(label: str, pins: Iterable[Pin], owner: str, repo: str) -> list[str]:
    return [
        f"{label} {pin.file} points {pin.package} at {pin.where}, not {owner}/{repo}"
        for pin in pins
        if pin.kind in RELEASE_KINDS and pin.owner is not None and not pin.is_canonical(owner, repo)
    ] + [
        f"{label} {pin.file} installs {pin.package} from {pin.where}, not {owner}/{repo}"
        for pin in pins
        if pin.kind in RELEASE_KINDS and pin.owner is None and pin.file.endswith("[tool.uv.sources]")
    ]


# -- the judge ------------------------------------------------------------------------------------------


def run_gate(config: StackConfig, source: ReleaseSource, lock: Optional[Lock] = None) -> GateReport:
    """Fetch every fact, then judge; faults become "error" checks, never exceptions."""
    return judge(fetch_snapshot(config, source, lock), lock)


class _Judge:
    """One judgement over one snapshot: the checks in order, and the facts they prove."""

    def __init__(self, snapshot: Snapshot, lock: Optional[Lock]) -> None:
        self.snapshot, self.lock = snapshot, lock
        self.config = snapshot.config
        self.owner = self.config.release.github_owner
        self.groups = release_groups(self.config)
        self.group_of = {key: group for group in self.groups for key in group.keys}
        self.checks: list[CheckResult] = []
        self.facts = GateFacts()
        self.rollback = False
        # per release group: why it cannot be judged at all (its bundle), and per package its commit or why not
        self.group_blocked: dict[str, _Blocked] = {}
        self.package_commits: dict[tuple[str, str], Optional[str]] = {}  # (suffix, package) -> commit
        self.package_blocked: dict[tuple[str, str], _Blocked] = {}
        self.strategy_pins: dict[tuple[str, str], list[Pin]] = {}  # (suffix, package) -> its kit pins
        self.pin_faults: list[_Blocked] = []
        self.refused_pins: list[tuple[str, Pin, Stage, str]] = []  # (where, pin, stage, fix)
        self.installs: dict[tuple[str, str], _Installs] = {}
        self.pins_registered: set[tuple[str, str]] = set()

    def run(self) -> GateReport:
        for group in self.groups:
            self._bundle(group)
        for group in self.groups:
            self._refs(group)
        for group in self.groups:
            self._kit_pins(group)
        for key in sorted(self.config.services):
            self._platform_pins(key)
        self.checks.append(self._pin_refs())
        self.checks.append(self._tag_immutable())
        for group in self.groups:
            self.checks.append(self._order(group))
        self.checks += self._platform_ci()
        self._profile_facts()
        self.facts.release = self._locked_release(self.groups[0])
        return GateReport(
            bundle=self.config.release,
            checks=self.checks,
            source_kind=self.snapshot.source_kind,
            verified_from=self.snapshot.verified_from,
            facts=self.facts,
            rollback=self.rollback,
            config=self.config,
            snapshot=self.snapshot,
        )

    # -- 1. the bundle and the refs ------------------------------------------------------------------------

    def _bundle(self, group: ReleaseGroup) -> None:
        bundle_id = group.release.bundle
        if bundle_id is None:
            return
        check_id = f"release-bundle{group.suffix}"
        read = self.snapshot.bundles.get(bundle_id)
        problem = self.snapshot.bundle_errors.get(bundle_id)
        if isinstance(read, BundleFacts):
            missing = [name for name in (QPK_PACKAGE, UES_PACKAGE) if name not in read.refs]
            if missing:
                problem = f"{read.path} at {read.repo}@{short(read.commit)} names no {' or '.join(BY_NAME[m].repository for m in missing)}"
            else:
                refs = ", ".join(f"{BY_NAME[name].short} {short(ref)}" for name, ref in read.refs.items())
                self.checks.append(
                    CheckResult(
                        check_id,
                        "passed",
                        f"bundle {bundle_id} read from {read.repo}@{short(read.commit)} {read.path} (blob {short(read.blob)}): {refs}",
                        "release-bundle",
                    )
                )
                return
        if problem is not None:
            result = CheckResult(check_id, "failed", f"{problem}; fix the bundle or name the release's packages", "release-bundle")
        elif isinstance(read, SourceError):
            result = _fault(check_id, read, "release-bundle")
        else:
            result = CheckResult(check_id, "error", f"bundle {bundle_id} was not read", "release-bundle")
        self.checks.append(result)
        self.group_blocked[group.suffix] = _Blocked.of(result)

    def _refs(self, group: ReleaseGroup) -> None:
        stack = self.groups[0].release
        for package in PACKAGES:
            ref = group.release.refs.get(package.name)
            if ref is None:
                continue
            repo = group.release.repositories.for_package(package.name)
            kind = ref_kind(ref)
            check_id = f"{package.check_name}-{kind}{group.suffix}"
            if group.suffix and stack.refs.get(package.name) == ref:
                # the same ref as the stack's release: proved by the stack's check
                self.package_commits[(group.suffix, package.name)] = self.package_commits.get(("", package.name))
                if ("", package.name) in self.package_blocked:
                    self.package_blocked[(group.suffix, package.name)] = self.package_blocked[("", package.name)]
                continue
            result, commit = self._ref(group, package, repo, ref, check_id)
            self.checks.append(result)
            self.package_commits[(group.suffix, package.name)] = commit
            if commit is None:
                self.package_blocked[(group.suffix, package.name)] = _Blocked.of(result)
            else:
                self.facts.commits[(repo, ref)] = commit

    def _ref(self, group: ReleaseGroup, package: Package, repo: str, ref: str, check_id: str) -> tuple[CheckResult, Optional[str]]:
        stage = _stage_of(package)
        where = f"{self.owner}/{repo}"
        found = self.snapshot.commits.get((repo, ref))
        if isinstance(found, SourceError):
            return _fault(check_id, found, stage), None
        if found is None:
            return CheckResult(check_id, "error", f"{where} {ref} was not asked", stage), None
        if ref_kind(ref) == "tag":
            return CheckResult(check_id, "passed", f"{where} tag {ref} -> {found}", stage), found
        released = self.snapshot.released.get((repo, ref))
        if isinstance(released, NotFound):
            fix = f"push it and merge it into the default branch, or fix {_ref_field(group, package.name)}"
            return CheckResult(check_id, "failed", f"{where} has no commit {ref}: {fix}", stage), None
        if isinstance(released, SourceError):
            return _fault(check_id, released, stage), None
        if released is None:
            return CheckResult(check_id, "error", f"{where} commit {ref} was not asked", stage), None
        on_default, branch = released
        if not on_default:
            return CheckResult(
                check_id,
                "failed",
                f"{where} commit {short(ref)} is not on its default branch {branch} (a fork's, a pull request's or an "
                f"unmerged branch's commit is not released): merge it first, then name the merge commit in {_ref_field(group, package.name)}",
                stage,
            ), None
        return CheckResult(check_id, "passed", f"{where} commit {ref} is on its default branch {branch}", stage), found

    def _commit(self, group: ReleaseGroup, name: str) -> Optional[str]:
        return self.package_commits.get((group.suffix, name))

    def _blocked(self, group: ReleaseGroup, name: str) -> Optional[_Blocked]:
        return self.group_blocked.get(group.suffix) or self.package_blocked.get((group.suffix, name))

    # -- 2. each strategy package's own QPK ---------------------------------------------------------------

    def _kit_pins(self, group: ReleaseGroup) -> None:
        release = group.release
        kit_ref = release.ref(QPK_PACKAGE)
        kit_commit = self._commit(group, QPK_PACKAGE)
        kit_repo = release.repositories.for_package(QPK_PACKAGE)
        for package in PACKAGES:
            if package.kit or (package.name not in release.refs and package.name != UES_PACKAGE):
                continue
            check_id = f"{package.check_name}-pins-qpk{group.suffix}"
            if (
                group.suffix
                and self.groups[0].release.refs.get(package.name) == release.refs.get(package.name)
                and (self.groups[0].release.refs.get(QPK_PACKAGE) == kit_ref)
            ):
                self.strategy_pins[(group.suffix, package.name)] = self.strategy_pins.get(("", package.name), [])
                continue  # the stack's check judged the same pair
            blocked = self._blocked(group, package.name)
            if blocked is not None:
                self.checks.append(blocked.result(check_id, "tag-ues"))
                self.pin_faults.append(blocked)
                continue
            repo = release.repositories.for_package(package.name)
            ref = release.ref(package.name)
            label = f"{repo}@{short_ref(ref) if ref_kind(ref) == 'commit' else ref}"
            commit = self._commit(group, package.name) or ""
            tree = self.snapshot.trees.get((repo, commit))
            if not isinstance(tree, Tree):
                result = (
                    _fault(check_id, tree, "tag-ues")
                    if isinstance(tree, SourceError)
                    else CheckResult(check_id, "error", f"{label} was not read", "tag-ues")
                )
                self.checks.append(result)
                self.pin_faults.append(_Blocked.of(result))
                continue
            try:
                pins = kit_pins(tree.text)
            except (PinFileError, TreeError) as error:
                result = CheckResult(check_id, "failed", f"{label} {error}; fix the file and release a new {package.short}", "tag-ues")
                self.checks.append(result)
                self.pin_faults.append(_Blocked.of(result))
                continue
            self.strategy_pins[(group.suffix, package.name)] = pins
            for pin in pins:
                self._refused(
                    label,
                    pin,
                    "tag-ues",
                    f"pin the release tag {kit_ref} or its full commit" if ref_kind(kit_ref) == "tag" else "pin a full commit of QPK",
                )
            self.checks.append(self._kit_pin_result(group, package, label, pins, kit_ref, kit_commit, kit_repo, check_id))

    def _kit_pin_result(
        self,
        group: ReleaseGroup,
        package: Package,
        label: str,
        pins: list[Pin],
        kit_ref: str,
        kit_commit: Optional[str],
        kit_repo: str,
        check_id: str,
    ) -> CheckResult:
        noun = _noun(group.release)
        seed_words = ref_kind(kit_ref) == "tag"
        if not pins:
            fix = (
                f"pin it to {kit_ref} and tag a new {package.short}"
                if seed_words
                else f"pin it to {short(kit_ref)} and release a new {package.short}"
            )
            return CheckResult(check_id, "failed", f"{label} {PYPROJECT_TOML} does not pin {QPK_PACKAGE}; {fix}", "tag-ues")
        problems = [f"{label} {pin.file} {p}" for pin in pins if (p := _pin_problem(pin, kit_ref, kit_commit, noun))]
        problems += _non_canonical(label, pins, self.owner, kit_repo)
        if not problems:
            return CheckResult(
                check_id, "passed", f"{label} {PYPROJECT_TOML} pins {QPK_PACKAGE} @{pins[0].ref} = {noun} {kit_ref}", "tag-ues"
            )
        overriding, not_overriding, unknown = self._overrides(group)
        if group.keys and not not_overriding and not unknown:
            warnings = tuple(
                f"{label} pins QPK @{short_ref(pins[0].ref)}, the release's QPK is {short_ref(kit_ref)}: {where} overrides QPK in "
                f"{OVERRIDES}, so {package.short} runs on a QPK it did not pin"
                for where in overriding
            )
            return CheckResult(
                check_id,
                "passed",
                f"{'; '.join(problems)}; every platform commit installing it overrides QPK",
                "tag-ues",
                warnings=warnings,
            )
        if unknown and not not_overriding:
            return CheckResult(
                check_id, "error", f"{'; '.join(problems)}; could not tell whether {', '.join(unknown)} override QPK", "tag-ues"
            )
        if seed_words:
            fix = f"bump {package.short}'s pin to {kit_ref} and tag a new {package.short} (or move the {noun})"
        else:
            fix = f"bump {package.short}'s pin to {short(kit_ref)} and release a new {package.short}, or override QPK in {OVERRIDES}"
        refused = (
            f" ({', '.join(not_overriding)} do not override QPK: pip would refuse it, ResolutionImpossible)"
            if not_overriding and group.keys
            else ""
        )
        return CheckResult(check_id, "failed", "; ".join(problems) + f"{refused}; {fix}", "tag-ues")

    def _overrides(self, group: ReleaseGroup) -> tuple[list[str], list[str], list[str]]:
        """The platform commits installing this release that override QPK, that do not, and unknown."""
        overriding, not_overriding, unknown = [], [], []
        for repo, commit, keys in self._platform_commits(group.keys):
            where = f"{repo}@{short(commit)} (services.{', '.join(keys)})"
            installs = self._install(repo, commit, keys[0])
            if installs.files is None:
                unknown.append(where)
            elif QPK_PACKAGE in installs.files.overridden:
                overriding.append(where)
            else:
                not_overriding.append(where)
        return overriding, not_overriding, unknown

    def _platform_commits(self, keys: Iterable[str]) -> list[tuple[str, str, list[str]]]:
        found: dict[tuple[str, str], list[str]] = {}
        for key in sorted(keys):
            spec = self.config.services[key]
            found.setdefault((self.config.release.repositories.for_platform(spec.platform), spec.commit), []).append(key)
        return [(repo, commit, keys) for (repo, commit), keys in found.items()]

    def _install(self, repo: str, commit: str, key: str) -> _Installs:
        if (repo, commit) not in self.installs:
            self.installs[(repo, commit)] = _installs(self.snapshot, repo, commit, key, self.owner)
        return self.installs[(repo, commit)]

    # -- 3. what each platform commit installs ------------------------------------------------------------

    def _platform_pins(self, key: str) -> None:
        spec = self.config.services[key]
        group = self.group_of[key]
        release = group.release
        repo = release.repositories.for_platform(spec.platform)
        label = f"{repo}@{short(spec.commit)}"
        check_id = f"platform-pins:{key}"
        first_read = (repo, spec.commit) not in self.pins_registered  # pin-refs counts each commit's pins once
        self.pins_registered.add((repo, spec.commit))
        installs = self._install(repo, spec.commit, key)
        if installs.blocked is not None:
            if first_read:
                self.pin_faults.append(installs.blocked)
            blocked = installs.blocked
            self.checks.append(
                CheckResult(
                    check_id, blocked.status, f"{label} (services.{key}.commit): {blocked.reason}", "platform-pins", blocked.unreachable
                )
            )
            return
        files = installs.files
        assert files is not None
        if first_read:
            for pin in files.pins:
                package = BY_NAME.get(pin.package)
                ref = release.refs.get(pin.package)
                fix = (
                    f"pin the release tag {ref} or its full commit"
                    if ref and ref_kind(ref) == "tag"
                    else "pin a release tag or a full commit"
                )
                if package is not None or (pin.owner or "").lower() == self.owner.lower() or pin.file.startswith("qsl.toml"):
                    self._refused(label, pin, "platform-pins", fix)
        group_blocked = self.group_blocked.get(group.suffix)
        if group_blocked is not None:
            self.checks.append(group_blocked.result(check_id, "platform-pins"))
            self.facts.services[key] = ServiceFacts(spec.platform, repo, spec.commit, files.pins)
            return
        noun = _noun(release)
        problems: list[str] = []
        warnings: list[str] = []
        read = ", ".join(files.files) or f"no install file ({', '.join(PIN_FILES)})"
        named = []
        needs: list[_Blocked] = []
        for package in PACKAGES:
            ref = release.refs.get(package.name)
            pins = files.of(package.name)
            if ref is None:
                if pins:
                    problems.append(
                        f"{label} installs {package.name} ({', '.join(sorted({pin.file for pin in pins}))}), which the {noun} does not name; add it to the release"
                    )
                continue
            if not pins:
                if package.required:
                    problems.append(f"{label} does not pin {package.name} ({read}); pin it to {ref}")
                else:
                    warnings.append(f"{label} does not install {package.name} of the release (not in {read})")
                continue
            named.append(package.name)
            commit = self._commit(group, package.name)
            if commit is None and (ref_kind(ref) == "commit" or any(pin.kind == "sha" or pin.resolved for pin in pins)):
                # judging these pins needs the release's commit, which was not proved
                needs.append(self._blocked(group, package.name) or _Blocked("error", f"{package.short} {ref} did not resolve"))
                continue
            mismatched = [f"{label} {pin.file} {p}" for pin in pins if (p := _pin_problem(pin, ref, commit, noun))]
            refs = sorted({pin.ref for pin in pins})
            if mismatched and len(refs) > 1:
                problems.append(f"{label} install files disagree on {package.name} ({', '.join('@' + short_ref(r) for r in refs)})")
            problems += mismatched
            problems += _non_canonical(label, pins, self.owner, release.repositories.for_package(package.name))
        if files.bundle_problem:
            problems.append(f"{label} {files.bundle_problem}")
        elif files.bundle is not None and release.bundle is not None and files.bundle != release.bundle:
            warnings.append(
                f"{label} qsl.toml names bundle {files.bundle[:40]}, the release is bundle {release.bundle}; the installed pins decide"
            )
        self.facts.services[key] = ServiceFacts(
            spec.platform, repo, spec.commit, files.pins, self._locked_release(group) if group.suffix else None
        )
        if problems:
            self.checks.append(
                CheckResult(
                    check_id,
                    "failed",
                    "; ".join(problems) + f"; bump the pins in {repo} and set services.{key}.commit to that commit",
                    "platform-pins",
                    warnings=tuple(warnings),
                )
            )
            return
        if needs:
            self.checks.append(needs[0].result(check_id, "platform-pins"))
            return
        self.checks.append(
            CheckResult(
                check_id,
                "passed",
                f"{label} pins {_listed_names(named)} to the {noun} in {read}",
                "platform-pins",
                warnings=tuple(warnings),
            )
        )

    # -- 4. refs no release may carry ----------------------------------------------------------------------

    def _refused(self, where: str, pin: Pin, stage: Stage, fix: str) -> None:
        package = BY_NAME.get(pin.package)
        if pin.kind not in RELEASE_KINDS:
            self.refused_pins.append((where, pin, stage, fix))
        elif (
            package is not None
            and pin.owner is not None
            and not pin.is_canonical(self.owner, self.config.release.repositories.for_package(pin.package))
        ):
            self.refused_pins.append((where, pin, stage, "point it at the canonical repository"))

    def _pin_refs(self) -> CheckResult:
        refused = []
        stages: list[Stage] = []
        for where, pin, stage, fix in self.refused_pins:
            stages.append(stage)
            if pin.kind not in RELEASE_KINDS:
                what = {"short-sha": "a short sha", "branch": "a branch or unknown ref", "no-ref": "no ref"}.get(
                    pin.kind, f"a {pin.kind} requirement"
                )
                refused.append(f"{where} {pin.file} pins {pin.describe()} ({what}): {fix}")
            else:
                canonical = self.config.release.repositories.for_package(pin.package)
                refused.append(f"{where} {pin.file} pins {pin.package} from {pin.where}, not {self.owner}/{canonical}: {fix}")
        if refused:
            stage = min(stages, key=STAGE_ORDER.index)
            return CheckResult("pin-refs", "failed", "; ".join(refused), stage)
        errors = [fault for fault in self.pin_faults if fault.status == "error"]
        if errors:
            return CheckResult(
                "pin-refs", "error", f"could not read every pin: {errors[0].reason}", "platform-pins", any(f.unreachable for f in errors)
            )
        if self.pin_faults:
            return CheckResult("pin-refs", "failed", f"not every pin could be read: {self.pin_faults[0].reason}", "platform-pins")
        counted = sum(len(i.files.pins) for i in self.installs.values() if i.files is not None) + sum(
            len(p) for p in self.strategy_pins.values()
        )
        return CheckResult(
            "pin-refs", "passed", f"{counted} pin(s) use a release tag or a full commit of the canonical repository", "platform-pins"
        )

    # -- 5. tags never move ----------------------------------------------------------------------------------

    def _tag_immutable(self) -> CheckResult:
        if self.lock is None:
            return CheckResult("tag-immutable", "skipped", f"no lock for this stack yet, nothing to compare; {LOCK_FIX}")
        moved, known, tags = [], 0, 0
        stages: list[Stage] = []
        for group in self.groups:
            for name, ref in group.release.refs.items():
                repo = group.release.repositories.for_package(name)
                commit = self.package_commits.get((group.suffix, name))
                if ref_kind(ref) != "tag" or commit is None or (group.suffix and self.groups[0].release.refs.get(name) == ref):
                    continue
                tags += 1
                recorded = self.lock.recorded_commit(self.owner, repo, ref)
                if recorded is None:
                    continue
                known += 1
                if recorded != commit:
                    stages.append(_stage_of(BY_NAME[name]))
                    moved.append(
                        f"{self.owner}/{repo} tag {ref} now resolves to {short(commit)}, the lock at {self.lock.locked_at} recorded {short(recorded)}: "
                        f"tags are never moved; restore {ref} to {recorded} and release the fix as a new tag"
                    )
        if moved:
            return CheckResult("tag-immutable", "failed", "; ".join(moved), min(stages, key=STAGE_ORDER.index))
        blocked = next(
            (
                b
                for (suffix, name), b in self.package_blocked.items()
                if not suffix and ref_kind(self.groups[0].release.refs.get(name, "v0")) == "tag"
            ),
            None,
        )
        if blocked is not None:
            return blocked.result("tag-immutable", "tag-qpk")
        return CheckResult("tag-immutable", "passed", f"{known} tag(s) match the lock at {self.lock.locked_at}; {tags - known} new")

    # -- 6. release order and rollback ------------------------------------------------------------------------

    def _order(self, group: ReleaseGroup) -> CheckResult:
        check_id = f"order{group.suffix}"
        release = group.release
        history, failed_moves, unverified, stages = self._history(group)
        blocked = self.group_blocked.get(group.suffix)
        if blocked is not None:
            return blocked.result(check_id, "release-bundle")
        kit_ref = release.ref(QPK_PACKAGE)
        kit_commit = self._commit(group, QPK_PACKAGE)
        needs = []
        for package in PACKAGES:
            if package.kit or package.name not in release.refs:
                continue
            ref = release.ref(package.name)
            shown = ref if ref_kind(ref) == "tag" else short(ref)
            pins = self.strategy_pins.get((group.suffix, package.name))
            if pins is None:
                reason = self._blocked(group, package.name) or self._blocked(group, QPK_PACKAGE)
                if reason is not None:
                    return reason.result(check_id, "tag-ues")
                return CheckResult(
                    check_id, "error", f"not checked: {package.short} {shown}'s QPK pin could not be read; {history}", "tag-ues"
                )
            if not pins:
                return CheckResult(check_id, "failed", f"{package.short} {shown} has no QPK pin to order against; {history}", "tag-ues")
            pin = pins[0]
            pinned: Optional[Version] = None
            if ref_kind(kit_ref) == "tag":
                if pin.kind == "tag":
                    pinned = release_version(pin.ref)
                elif pin.kind == "sha" and pin.ref == kit_commit:
                    pinned = release.qpk_version
                if pinned is None:
                    return CheckResult(
                        check_id, "failed",
                        f"{package.short} {shown} pins {pin.describe()}, which names no QPK release to order; pin a QPK tag or its commit; {history}",
                        "tag-ues",
                    )  # fmt: skip
                if pinned > release.qpk_version:
                    return CheckResult(
                        check_id,
                        "failed",
                        f"{release.repositories.for_package(package.name)}@{shown} pins {QPK_PACKAGE} v{pinned}, newer than the {_noun(release)}'s "
                        f"QPK {kit_ref}: {package.short} cannot be released before its QPK; release QPK v{pinned} and move the {_noun(release)} to it; {history}",
                        "tag-ues",
                    )
                needs.append(f"{package.short} {shown} needs QPK v{pinned} <= {_noun(release)} {kit_ref}")
            elif pin.kind == "sha" and pin.ref == kit_commit:
                needs.append(f"{package.short} {shown} needs QPK {short(kit_ref)} = the release's")
            else:
                overriding, not_overriding, unknown = self._overrides(group)
                if not group.keys or not_overriding or unknown:
                    return CheckResult(
                        check_id, "failed",
                        f"{package.short} {shown} pins {pin.describe()}, another QPK than the release's {short(kit_ref)}, and not every platform "
                        f"commit installing it overrides QPK ({package.check_name}-pins-qpk{group.suffix}); {history}",
                        "tag-ues",
                    )  # fmt: skip
                needs.append(f"{package.short} {shown} runs on the release's QPK {short(kit_ref)} by the platforms' override")
        if failed_moves:
            return CheckResult(check_id, "failed", f"{'; '.join(failed_moves)}; {history}", min(stages, key=STAGE_ORDER.index))
        if unverified is not None:
            return unverified.result(check_id, "tag-qpk")
        return CheckResult(check_id, "passed", f"{'; '.join(needs)}; {history}", "tag-ues")

    def _history(self, group: ReleaseGroup) -> tuple[str, list[str], Optional[_Blocked], list[Stage]]:
        """Against the lock: the moves (rollbacks named), the moves that fail (diverged), whether any
        could not be verified; the words for the message."""
        lock = self.lock
        if lock is None:
            return "no lock to compare, so a rollback cannot be told from a release", [], None, []
        moves, failed, stages = [], [], []
        unverified: Optional[_Blocked] = None
        rollback = False
        for package in PACKAGES:
            ref = group.release.refs.get(package.name)
            previous = lock.previous(package.name, group.keys)
            # the commit the ref names, released or not: a diverged commit is reported as such too
            found = self.snapshot.commits.get((group.release.repositories.for_package(package.name), ref or ""))
            commit = found if isinstance(found, str) else None
            if ref is None or previous is None or commit is None:
                continue
            repo = group.release.repositories.for_package(package.name)
            if previous.ref == ref or previous.commit == commit:
                continue
            then, now = short_ref(previous.ref), short_ref(ref)
            if ref_kind(ref) == "tag" and ref_kind(previous.ref) == "tag":
                if release_version(ref) < release_version(previous.ref):
                    rollback = True
                    moves.append(f"{package.short} {then} -> {now}")
                continue
            relation = self.snapshot.relations.get((repo, previous.commit, commit))
            if isinstance(relation, SourceError) or relation is None:
                unverified = unverified or _Blocked(
                    "error",
                    f"{package.short} {then} -> {now} could not be ordered ({relation or 'not asked'})",
                    getattr(relation, "unreachable", False),
                )
            elif relation == "behind":
                rollback = True
                moves.append(f"{package.short} {then} -> {now}")
            elif relation == "diverged":
                stages.append(_stage_of(package))
                failed.append(
                    f"{package.short} {now} and the lock's {then} are on diverged histories ({self.owner}/{repo}): neither is a release after "
                    "the other; release from the default branch"
                )
        if rollback:
            self.rollback = True
            return f"ROLLBACK from the lock at {lock.locked_at}: {', '.join(moves)}", failed, unverified, stages
        return f"not older than the lock at {lock.locked_at}", failed, unverified, stages

    # -- 7. CI, 8. profile facts ---------------------------------------------------------------------------------

    def _platform_ci(self) -> list[CheckResult]:
        if self.snapshot.source_kind != "github":
            kind = self.snapshot.source_kind
            return [
                CheckResult(
                    "platform-ci",
                    "skipped",
                    f"the {kind} source cannot see CI, so platform CI was not checked; run with --source github to check it",
                )
            ]
        results = []
        for key in sorted(self.config.services):
            spec = self.config.services[key]
            repo = self.config.release.repositories.for_platform(spec.platform)
            label = f"{repo}@{short(spec.commit)}"
            check_id = f"platform-ci:{key}"
            installs = self.installs.get((repo, spec.commit))
            if (
                installs is not None
                and installs.blocked is not None
                and isinstance(self.snapshot.trees.get((repo, spec.commit)), SourceError)
            ):
                results.append(installs.blocked.result(check_id, "platform-pins"))
                continue
            status = self.snapshot.ci.get((repo, spec.commit))
            if isinstance(status, SourceError):
                results.append(_fault(check_id, status, "platform-pins"))
            elif status is None:
                results.append(CheckResult(check_id, "skipped", f"{self.snapshot.source_kind} source cannot see CI"))
            elif status.state == "success":
                results.append(CheckResult(check_id, "passed", f"{label} CI green ({status.detail})", "platform-pins"))
            elif status.state == "pending":
                results.append(
                    CheckResult(
                        check_id, "failed", f"{label} CI still running ({status.detail}); wait for it to finish green", "platform-pins"
                    )
                )
            elif status.state == "none":
                results.append(
                    CheckResult(check_id, "failed", f"{label} has no CI result ({status.detail}); run CI on that commit", "platform-pins")
                )
            else:
                results.append(
                    CheckResult(
                        check_id,
                        "failed",
                        f"{label} CI failed ({status.detail}); fix it and release a new platform commit",
                        "platform-pins",
                    )
                )
        return results

    def _profile_facts(self) -> None:
        """Each (platform commit, release) proved by running the platform's registry over the fetched
        trees, with the packages of the release that commit installs; then each service judged by its own."""
        blocked: dict[str, tuple[BlockedStatus, str]] = {}
        for key, group in self.group_of.items():
            reasons = [self.group_blocked.get(group.suffix)] + [self._blocked(group, name) for name in group.release.refs]
            reason = next((found for found in reasons if found is not None), None)
            if reason is None and not group.release.refs:
                reason = _Blocked("error", f"{release_title(group.release)} names no package")
            if reason is not None:
                status: BlockedStatus = "unreachable" if reason.unreachable else "failed" if reason.status == "failed" else "error"
                blocked[key] = (status, reason.reason)
        commits = {ref: commit for ref, commit in self.snapshot.commits.items() if isinstance(commit, str)}
        requests = {}
        for key in sorted(self.config.services):
            spec = self.config.services[key]
            repo = self.config.release_for(key).repositories.for_platform(spec.platform)
            files = self._install(repo, spec.commit, key).files
            installed = None if files is None else frozenset(name for name in self.config.release_for(key).refs if files.of(name))
            requests[key] = service_request(self.config, key, commits, installed)
        wanted = [request for key, request in requests.items() if request is not None and key not in blocked]
        proved = prove_requests(wanted, SnapshotTrees(self.snapshot.trees)) if wanted else {}
        results, facts = profile_checks(self.config, requests, proved, blocked)
        stage: Stage = "platform-pins"
        self.checks += [CheckResult(r.id, r.status, r.message, stage, r.unreachable) for r in results]
        if facts is not None:
            self.facts.profiles = facts.with_history(None if self.lock is None else self.lock.profile_facts)

    # -- what the lock records ----------------------------------------------------------------------------------

    def _locked_release(self, group: ReleaseGroup) -> Optional[LockedRelease]:
        release = group.release
        packages = {}
        for name, ref in release.refs.items():
            commit = self._commit(group, name)
            if commit is None:
                return None
            packages[name] = LockedRef(repo=release.repositories.for_package(name), ref=ref, commit=commit)
        if QPK_PACKAGE not in packages or UES_PACKAGE not in packages:
            return None
        bundle = None
        if release.bundle is not None:
            read = self.snapshot.bundles.get(release.bundle)
            if not isinstance(read, BundleFacts) or not read.blob:
                return None
            bundle = LockedBundle(bundle=read.bundle, repo=read.repo, commit=read.commit, path=read.path, blob=read.blob)
        kit = {name: pins for (suffix, name), pins in self.strategy_pins.items() if suffix == group.suffix and pins}
        return LockedRelease(packages=packages, bundle=bundle, kit_pins=kit)


def judge(snapshot: Snapshot, lock: Optional[Lock] = None) -> GateReport:
    """Every check over the fetched facts, in report order; asks nothing."""
    return _Judge(snapshot, lock).run()


# -- the offline verdict ---------------------------------------------------------------------------------


def gate_from_lock(config: StackConfig, lock: Lock) -> GateReport:
    """The config compared with what the lock proved; every mismatch names the field and the fix."""
    owner = config.release.github_owner
    when = f"verified from lock at {lock.locked_at}"
    checks: list[CheckResult] = []
    resolved = config
    refs_match = True
    facts = GateFacts(release=lock.release, commits={})
    for group in release_groups(config):
        locked_release = lock.release if not group.suffix else _locked_release_of(lock, group.keys)
        release = group.release
        if release.bundle is not None:
            if locked_release is None or locked_release.bundle is None or locked_release.bundle.bundle != release.bundle:
                refs_match = False
                shown = "no bundle" if locked_release is None or locked_release.bundle is None else f"bundle {locked_release.bundle.bundle}"
                checks.append(
                    CheckResult(
                        f"release-bundle{group.suffix}",
                        "failed",
                        f"{_ref_field(group, QPK_PACKAGE)} is bundle {release.bundle}, the lock at {lock.locked_at} proved {shown}; {LOCK_FIX}",
                        "release-bundle",
                    )
                )
                continue
            release = release.resolved(locked_release.refs())
            resolved = resolved.with_bundles({release.bundle or "": locked_release.refs()})
        for package in PACKAGES:
            ref = release.refs.get(package.name)
            if ref is None:
                continue
            repo = release.repositories.for_package(package.name)
            check_id = f"{package.check_name}-{ref_kind(ref)}{group.suffix}"
            locked = None if locked_release is None else locked_release.packages.get(package.name)
            if locked is None or (owner, repo, ref) != (lock.github_owner, locked.repo, locked.ref):
                refs_match = False
                proved = "nothing" if locked is None else f"{lock.github_owner}/{locked.repo} {locked.ref}"
                checks.append(
                    CheckResult(
                        check_id,
                        "failed",
                        f"{_ref_field(group, package.name)} is {owner}/{repo} {ref}, the lock at {lock.locked_at} proved {proved}; {LOCK_FIX}",
                        _stage_of(package),
                    )
                )
            else:
                facts.commits[(repo, ref)] = locked.commit
                checks.append(
                    CheckResult(
                        check_id,
                        "passed",
                        f"{owner}/{repo} {'tag' if ref_kind(ref) == 'tag' else 'commit'} {ref} -> {locked.commit} ({when})",
                        _stage_of(package),
                    )
                )
        if locked_release is not None:
            for name, pins in sorted(locked_release.kit_pins.items()):
                strategy = BY_NAME.get(name)
                if strategy is None or not pins:
                    continue
                check_id = f"{strategy.check_name}-pins-qpk{group.suffix}"
                repo = release.repositories.for_package(name)
                checks.append(
                    CheckResult(check_id, "passed", f"{repo}@{release.ref(name)} pins {pins[0].describe()} ({when})", "tag-ues")
                    if refs_match
                    else CheckResult(
                        check_id, "failed", f"not checked: the release differs from the lock at {lock.locked_at}; {LOCK_FIX}", "tag-ues"
                    )
                )
    for key in sorted(config.services):
        spec = config.services[key]
        check_id = f"platform-pins:{key}"
        locked_service = lock.services.get(key)
        repo = config.release.repositories.for_platform(spec.platform)
        if locked_service is None:
            checks.append(
                CheckResult(check_id, "failed", f"services.{key} is not in the lock at {lock.locked_at}; {LOCK_FIX}", "platform-pins")
            )
        elif (spec.platform, repo) != (locked_service.platform, locked_service.repo):
            checks.append(
                CheckResult(
                    check_id,
                    "failed",
                    f"services.{key}.platform is {spec.platform} ({repo}), the lock at {lock.locked_at} proved {locked_service.platform} ({locked_service.repo}); {LOCK_FIX}",
                    "platform-pins",
                )
            )
        elif spec.commit != locked_service.commit:
            checks.append(
                CheckResult(
                    check_id,
                    "failed",
                    f"services.{key}.commit is {short(spec.commit)}, the lock at {lock.locked_at} proved {repo}@{short(locked_service.commit)}; {LOCK_FIX}",
                    "platform-pins",
                )
            )
        elif not refs_match:
            checks.append(
                CheckResult(
                    check_id, "failed", f"not checked: the release differs from the lock at {lock.locked_at}; {LOCK_FIX}", "platform-pins"
                )
            )
        else:
            facts.services[key] = ServiceFacts(spec.platform, repo, spec.commit, tuple(locked_service.pins), locked_service.release)
            names = " and ".join(name for name in config.release_for(key).refs) if config.release_for(key).refs else "the release"
            checks.append(
                CheckResult(
                    check_id,
                    "passed",
                    f"{repo}@{short(spec.commit)} pins {names} to the {_noun(config.release_for(key))} ({when})",
                    "platform-pins",
                )
            )
    # What a lock proves beyond the pins: it was written only when every check passed for exactly this
    # release and these commits, so for this config those checks passed then.
    all_proved = refs_match and len(facts.services) == len(config.services)
    differs = f"not checked: the config differs from the lock at {lock.locked_at}; {LOCK_FIX}"
    proofs: list[tuple[str, Stage, str]] = [
        (
            "pin-refs",
            "platform-pins",
            f"every pin the lock recorded uses a release tag or a full commit of the canonical repository ({when})",
        ),
        ("tag-immutable", "tag-qpk", f"the release's tags resolve to the commits the lock recorded ({when})"),
    ]
    proofs += [(f"order{group.suffix}", "tag-ues", f"the release the lock ordered ({when})") for group in release_groups(config)]
    if lock.source == "github":
        proofs += [
            (f"platform-ci:{key}", "platform-pins", f"CI was green when the lock was written ({when})") for key in sorted(config.services)
        ]
    for check_id, stage, message in proofs:
        checks.append(CheckResult(check_id, "passed", message, stage) if all_proved else CheckResult(check_id, "failed", differs, stage))
    if lock.profile_facts is None:
        checks.append(
            CheckResult(
                "profile-facts",
                "failed",
                f"the lock at {lock.locked_at} was written before profile facts were proved by running the platforms' registries; {LOCK_AGAIN}",
            )
        )
    elif refs_match:
        results, judged_by = lock_profile_checks(resolved, lock.profile_facts, when)
        checks += [CheckResult(r.id, r.status, r.message, "platform-pins") for r in results]
        facts.profiles = lock.profile_facts.model_copy(update={"services": judged_by})
    if lock.unseen is not None:
        # What the gate could not see when it wrote the lock stays unseen: shown as skipped, never as passed.
        # A check the source could not run for any service (platform CI from git) stands for each service's.
        per_service = {"platform-ci": [f"platform-ci:{key}" for key in sorted(config.services)]}
        checks += [
            CheckResult(shown, "skipped", f"not seen when the lock at {lock.locked_at} was written: {why}")
            for check_id, why in sorted(lock.unseen.items())
            for shown in per_service.get(check_id, [check_id])
        ]
    elif lock.source != "github":
        unseen = f"the lock at {lock.locked_at} was written from the {lock.source} source, which cannot see CI"
        checks += [CheckResult(f"platform-ci:{key}", "skipped", unseen) for key in sorted(config.services)]
    return GateReport(
        bundle=resolved.release, checks=checks, source_kind="lock", verified_from=f"lock at {lock.locked_at}", facts=facts, config=resolved
    )


def _locked_release_of(lock: Lock, keys: Iterable[str]) -> Optional[LockedRelease]:
    for key in keys:
        service = lock.services.get(key)
        if service is not None and service.release is not None:
            return service.release
    return None


def with_lock(online: GateReport, config: StackConfig, lock: Optional[Lock]) -> GateReport:
    """The online verdict, with the lock answering only what the run could not verify: a check the
    source answered (passed or failed) stands as answered; a check that could not be verified ("error")
    takes the lock's verdict for this config, marked as the lock's. A definite failure found online can
    never be replaced by the lock's pass."""
    if lock is None or not online.unverified:
        return online
    offline = {check.id: check for check in gate_from_lock(config, lock).checks}
    answered = []
    for check in online.checks:
        from_lock = offline.get(check.id)
        if check.status == "error" and from_lock is not None:
            answered.append(replace(from_lock, message=f"{from_lock.message}; not verifiable online now"))
        else:
            answered.append(check)
    facts = online.facts
    if facts.profiles is None and all(c.ok for c in answered if c.id.startswith("profile-facts")):
        offline_report = gate_from_lock(config, lock)
        facts = replace(facts, profiles=offline_report.facts.profiles)
    return replace(
        online, checks=answered, facts=facts, verified_from=f"{online.verified_from}, the rest from the lock at {lock.locked_at}"
    )
