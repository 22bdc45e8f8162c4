"""Strategy profile facts: what a platform commit's own registry says about the profiles it can run, with
exactly the release's package commits on its path, and how that was proved.

No hand-maintained matrix and no reading of source text: the release gate runs the platform's public
functions (`strategy_registry.get_platform_profile_status_matrix()`, its catalog, and
`describe_platform_runtime_requirements` or the runtime adapter) in an isolated child process over the
pinned trees (release/gate/platform_facts.py) and keeps the answer as `PlatformProfiles`: one per
(platform commit, release), where a release is the commit of every package that was on the path. The lock
stores them; every rule that decides a phase, an env or a verify check asks these models, and only ever the
facts proved for exactly the commit and release it judges.
"""

from __future__ import annotations

import functools
from typing import TYPE_CHECKING, Literal, Mapping, Optional

from pydantic import BaseModel, ConfigDict, field_validator, model_validator

from release.config import COMMIT_PATTERN, PlatformId
from release.packages import BY_NAME

if TYPE_CHECKING:
    from release.config import StackConfig

InputMode = Literal["direct_runtime", "snapshot_backed"]
StrategyConfigSource = Literal["none", "bundled_or_env", "env_or_module_defaults", "env_only"]
"""Where a profile's strategy config comes from on a platform commit: `none` (it reads no config path),
`bundled_or_env` (a file the platform bundles, which a config path overrides), `env_or_module_defaults`
(no bundled file: a config path, else the module's defaults), `env_only` (only from a config path: required
when `strategy_config_required`, else optional, e.g. a shadow config of a direct-runtime profile)."""
ReconciliationPolicy = Literal["none", "optional", "required"]
FactsEnvironment = Literal["sources", "uv.lock", "requirements.txt"]
"""Where the probe's imports came from: the pinned sources alone, or an environment built from the
platform commit's `uv.lock` (`uv sync --frozen`) or `requirements.txt`."""
Isolation = Literal["unshare", "proxy"]
"""How the probe was kept off the network: its own empty network namespace, or closed-port proxies."""
MAX_HISTORY_RUNS = 12  # earlier (platform commit, release) facts a lock keeps beside the current ones
ImageRelease = Mapping[str, str]
"""The release an image was built with, as its record names it: distribution name -> ref (tag or commit)."""


ENVIRONMENT_TEXT: Mapping[str, str] = {
    "sources": "pinned sources only",
    "uv.lock": "environment from the platform commit's uv.lock",
    "requirements.txt": "environment from the platform commit's requirements.txt",
}


def environment_text(environment: str) -> str:
    """Which environment a registry ran in, in words (check output, plan and lock say the same)."""
    return ENVIRONMENT_TEXT.get(environment, environment)


class FactsModel(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _object_id(value: str) -> str:
    if not COMMIT_PATTERN.fullmatch(value):
        raise ValueError(f"{value[:60]!r} is not a 40-hex git commit")
    return value


class PlatformRequirements(FactsModel):
    """What one runtime-enabled profile needs on one platform commit with one release."""

    profile: str
    display_name: str
    input_mode: InputMode
    requires_snapshot_manifest_path: bool = False
    manifest_contract: Optional[str] = None
    strategy_config: StrategyConfigSource = "none"
    strategy_config_required: bool = False
    bundled_config: Optional[str] = None
    # The release's reconciliation output policy (IBKR's output path); None: the release does not state one
    # (the seed's), so the platform rule applies (optional for a snapshot-backed profile on IBKR).
    reconciliation_output: Optional[ReconciliationPolicy] = None

    @property
    def requires_snapshot_artifacts(self) -> bool:
        return self.input_mode == "snapshot_backed"

    @property
    def profile_group(self) -> str:
        return "snapshot_backed" if self.requires_snapshot_artifacts else "direct_runtime_inputs"


class Judgement(FactsModel):
    """Can a profile run on a platform commit with a release? `requirements` is None when it cannot."""

    requirements: Optional[PlatformRequirements] = None
    why: str


class PackageCommit(FactsModel):
    """One package of the release as it was put on the probe's path."""

    name: str  # distribution name: quant-platform-kit, us-equity-strategies, hk-equity-strategies
    repo: str
    ref: str  # the release's ref (tag or commit)
    commit: str

    @field_validator("commit")
    @classmethod
    def _commit(cls, value: str) -> str:
        return _object_id(value)


class RunProvenance(FactsModel):
    """How the facts were proved: which public functions, in which environment, isolated how."""

    functions: tuple[str, ...]
    environment: FactsEnvironment
    lock_sha256: Optional[str] = None
    isolation: Isolation
    probe_sha256: str


class ProvedProfile(FactsModel):
    display_name: str
    domain: str  # us_equity, hk_equity
    eligible: bool
    enabled: bool
    requirements: Optional[PlatformRequirements] = None
    unproved: Optional[str] = None  # why the requirements could not be read (the registry raised, a policy unknown)


def release_key(packages: tuple[PackageCommit, ...]) -> str:
    """A release as facts are keyed by it: every package by commit, sorted (a moved tag is another release)."""
    return " ".join(f"{package.name}@{package.commit}" for package in sorted(packages, key=lambda p: p.name))


def facts_key(repo: str, commit: str, release: str) -> str:
    return f"{repo}@{commit} {release}"


class PlatformProfiles(FactsModel):
    """One platform commit's registry, run with one release's packages on its path."""

    platform: PlatformId
    repo: str
    commit: str
    packages: tuple[PackageCommit, ...]
    aliases: dict[str, str]
    profiles: dict[str, ProvedProfile]
    run: RunProvenance

    @field_validator("commit")
    @classmethod
    def _commit(cls, value: str) -> str:
        return _object_id(value)

    @model_validator(mode="after")
    def _consistent(self) -> "PlatformProfiles":
        names = [package.name for package in self.packages]
        if len(set(names)) != len(names):
            raise ValueError("a package appears twice in the release")
        for name, profile in self.profiles.items():
            if profile.requirements is not None and profile.requirements.profile != name:
                raise ValueError(f"the requirements under {name} are {profile.requirements.profile}'s")
            if profile.requirements is None and profile.unproved is None:
                raise ValueError(f"{name} has neither requirements nor the reason they are unproved")
        clash = sorted(set(self.aliases) & set(self.profiles))
        if clash:
            raise ValueError(f"{', '.join(clash[:3])} is both a profile and an alias")
        return self

    @property
    def release(self) -> str:
        """The release these facts hold for: every package by commit (a moved tag is another release)."""
        return release_key(self.packages)

    @property
    def key(self) -> str:
        return facts_key(self.repo, self.commit, self.release)

    @property
    def label(self) -> str:
        """`repo@commit7 with QPK ref, UES ref, ...`: where, for messages."""
        refs = ", ".join(f"{_package_short(package.name)} {_short(package.ref)}" for package in sorted(self.packages, key=lambda p: p.name))
        return f"{self.repo}@{self.commit[:7]} with {refs}"

    def refs(self) -> dict[str, str]:
        return {package.name: package.ref for package in self.packages}

    def built_with(self, release: ImageRelease) -> bool:
        """Are these the facts of an image built with `release`? Every package that was on the probe's path
        (the release's packages this platform commit installs) is named there, by its ref or its commit;
        a package of the release the platform does not install (HK on Schwab) changes nothing it runs."""
        return all(release.get(package.name) in (package.ref, package.commit) for package in self.packages)

    def canonical(self, name: str) -> str:
        return self.aliases.get(name, name)

    @functools.cached_property
    def _enabled(self) -> tuple[str, ...]:
        # cached: the model is frozen, and judging a stack asks for this once per service
        return tuple(sorted(name for name, profile in self.profiles.items() if profile.enabled and profile.requirements is not None))

    def enabled(self) -> list[str]:
        return list(self._enabled)

    def display_name(self, profile: str) -> Optional[str]:
        entry = self.profiles.get(self.canonical(profile))
        return None if entry is None else entry.display_name

    def names(self) -> frozenset[str]:
        return frozenset(self.profiles) | frozenset(self.aliases)

    def judge(self, profile: str) -> Judgement:
        where = f"{self.platform} at {self.label}"
        name = self.canonical(profile)
        entry = self.profiles.get(name)
        if entry is None:
            return Judgement(
                why=f"{profile} is not a profile {self.repo}@{self.commit[:7]}'s registry shows with this release "
                f"(enabled: {', '.join(self.enabled()) or 'none'})"
            )
        if not entry.enabled:
            return Judgement(
                why=f"{name} is not enabled on {where} (its registry shows it {'eligible' if entry.eligible else 'not eligible'})"
            )
        if entry.requirements is None:
            return Judgement(why=f"{name}'s requirements on {where} are not proved: {entry.unproved or 'unknown'}")
        return Judgement(requirements=entry.requirements, why=f"{name} runs on {where}")


def _short(ref: str) -> str:
    return ref[:7] if COMMIT_PATTERN.fullmatch(ref) else ref


def _package_short(name: str) -> str:
    package = BY_NAME.get(name)
    return name if package is None else package.short


class ProfileFacts(FactsModel):
    """The facts a gate run proved, per (platform commit, release), and which of them each service runs;
    plus earlier ones a lock kept, so an older live image can be judged by its own release's facts."""

    runs: dict[str, PlatformProfiles]  # facts_key -> facts
    services: dict[str, str]  # service key -> facts_key of its configured commit and release

    @model_validator(mode="after")
    def _consistent(self) -> "ProfileFacts":
        for key, run in self.runs.items():
            if key != run.key:
                raise ValueError(f"facts under {key[:120]} were proved for {run.key[:120]}")
        for service, key in self.services.items():
            if key not in self.runs:
                raise ValueError(f"service {service} points at facts that are not here ({key[:120]})")
        return self

    def for_service(self, key: str) -> Optional[PlatformProfiles]:
        found = self.services.get(key)
        return None if found is None else self.runs.get(found)

    def judge_service(self, profile: str, key: str) -> Judgement:
        run = self.for_service(key)
        if run is None:
            return Judgement(why=f"no profile facts were proved for services.{key} at its commit and release")
        return run.judge(profile)

    def image_facts(self, repo: str, commit: Optional[str], release: Optional[ImageRelease]) -> Optional[PlatformProfiles]:
        """The facts proved for an image: its platform commit run with exactly the release it was built with."""
        if commit is None or release is None:
            return None
        found = [run for run in self.runs.values() if run.repo == repo and run.commit == commit and run.built_with(release)]
        # Two runs could match only by one ref naming two commits (a tag the lock saw moved): never a guess.
        return found[0] if len(found) == 1 else None

    def judge_image(self, profile: str, key: str, repo: str, commit: Optional[str], release: Optional[ImageRelease]) -> Judgement:
        """Can an image (platform commit, the release it was built with) run `profile`? An image whose
        release is unknown (a service this program never deployed) is judged by the service's own facts,
        and says so."""
        if release is None:
            judgement = self.judge_service(profile, key)
            return Judgement(requirements=judgement.requirements, why=f"{judgement.why} (image release unknown: judged by the config's)")
        run = self.image_facts(repo, commit, release)
        if run is None:
            refs = ", ".join(f"{_package_short(name)} {_short(ref)}" for name, ref in sorted(release.items()))
            return Judgement(
                why=f"no proved profile facts for {repo}@{(commit or 'unknown')[:7]} with {refs} (a lock keeps those it proved)"
            )
        return run.judge(profile)

    def for_config(self, config: "StackConfig") -> "ProfileFacts":
        """These facts with each service of `config` mapped to the facts of exactly its configured platform
        commit and release, and to nothing where there are none: whatever mapping they came with, no rule
        downstream can judge a service by another commit's or another release's facts."""
        services = {}
        for key, spec in config.services.items():
            release = config.release_for(key)
            run = self.image_facts(release.repositories.for_platform(spec.platform), spec.commit, release.refs)
            if run is not None:
                services[key] = run.key
        return self.model_copy(update={"services": services})

    def requirements(self, profile: str, key: str) -> Optional[PlatformRequirements]:
        return self.judge_service(profile, key).requirements

    def enabled_on(self, key: str) -> list[str]:
        run = self.for_service(key)
        return [] if run is None else run.enabled()

    def canonical(self, name: str, key: str) -> str:
        run = self.for_service(key)
        return name if run is None else run.canonical(name)

    def display_name(self, profile: str, key: str) -> Optional[str]:
        run = self.for_service(key)
        return None if run is None else run.display_name(profile)

    def names(self) -> frozenset[str]:
        """Every profile name and alias any proved registry shows: none may appear in a service name."""
        return frozenset().union(*(run.names() for run in self.runs.values()))

    def with_history(self, older: Optional["ProfileFacts"]) -> "ProfileFacts":
        """These facts plus the (platform commit, release) facts `older` (a lock's) proved that these do
        not replace: first those its services ran (the images live before this release: what a rollback
        or an image-first step judges), then its own history, at most MAX_HISTORY_RUNS in all, so a lock
        stays within its size bound however many releases it has seen."""
        if older is None:
            return self
        order = [*older.services.values(), *older.runs]
        kept = [key for key in dict.fromkeys(order) if key not in self.runs and key in older.runs][:MAX_HISTORY_RUNS]
        return self.model_copy(update={"runs": {**self.runs, **{key: older.runs[key] for key in kept}}})
