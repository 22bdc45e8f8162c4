"""Strategy profile matrices, one per UES release tag, loaded from ``profile_matrices.json``.

UES exposes its matrix only as Python, so the program ships a copy per tag. Each platform entry mirrors
``runtime_adapters.describe_platform_runtime_requirements(profile, platform_id=...)``; a profile is valid
for a service only when its status is ``runtime_enabled`` and the service's platform is listed.
"""

from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path
from typing import Literal, Mapping, Optional

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from release.config import COMMIT_PATTERN, ConfigModel, PlatformId

MATRIX_FILE = Path(__file__).with_name("profile_matrices.json")

InputMode = Literal["direct_runtime", "snapshot_backed"]
ConfigSourcePolicy = Literal["none", "env_only", "bundled_or_env"]
ReconciliationPolicy = Literal["none", "optional", "required"]


class PlatformRequirements(ConfigModel):
    """What one profile needs on one platform."""

    input_mode: InputMode
    requires_snapshot_manifest_path: bool = False
    config_source_policy: ConfigSourcePolicy = "none"
    reconciliation_output_policy: ReconciliationPolicy = "none"
    manifest_contract: Optional[str] = None

    @property
    def requires_snapshot_artifacts(self) -> bool:
        return self.input_mode == "snapshot_backed"

    @property
    def requires_strategy_config_path(self) -> bool:
        return self.config_source_policy == "env_only"

    @property
    def profile_group(self) -> str:
        return "snapshot_backed" if self.requires_snapshot_artifacts else "direct_runtime_inputs"

    @model_validator(mode="after")
    def _direct_needs_nothing(self) -> "PlatformRequirements":
        if not self.requires_snapshot_artifacts and (
            self.requires_snapshot_manifest_path or self.config_source_policy != "none" or self.reconciliation_output_policy != "none"
        ):
            raise ValueError("a direct_runtime profile cannot require snapshot, config or reconciliation paths")
        return self


class StrategyProfile(ConfigModel):
    display_name: str
    status: Literal["runtime_enabled", "paper_dry_run", "research"]
    platforms: dict[PlatformId, PlatformRequirements]

    @property
    def runtime_enabled(self) -> bool:
        return self.status == "runtime_enabled"


class ProfileMatrix(ConfigModel):
    """The profiles of one UES release, and the old names it still accepts as aliases."""

    ues_tag: str = ""
    profiles: dict[str, StrategyProfile]
    aliases: dict[str, str] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _aliases_point_at_profiles(self) -> "ProfileMatrix":
        for alias, target in self.aliases.items():
            if target not in self.profiles or alias in self.profiles:
                raise ValueError(f"alias {alias} -> {target} must map an old name to a profile of this matrix")
        return self

    def canonical(self, name: str) -> str:
        """The profile a name means in this release (an alias resolves; unknown names come back as is)."""
        return self.aliases.get(name, name)

    def enabled_on(self, platform: PlatformId) -> list[str]:
        return sorted(name for name, profile in self.profiles.items() if profile.runtime_enabled and platform in profile.platforms)

    def requirements(self, profile: str, platform: PlatformId) -> Optional[PlatformRequirements]:
        """Requirements of a runtime-enabled profile on a platform; None when it can't run there."""
        entry = self.profiles.get(self.canonical(profile))
        if entry is None or not entry.runtime_enabled:
            return None
        return entry.platforms.get(platform)

    def names(self) -> frozenset[str]:
        return frozenset(self.profiles) | frozenset(self.aliases)


class UnknownMatrixError(LookupError):
    pass


@lru_cache(maxsize=1)
def load_matrices(path: Path = MATRIX_FILE) -> Mapping[str, ProfileMatrix]:
    raw = json.loads(path.read_text(encoding="utf-8"))
    return {tag: ProfileMatrix.model_validate({**body, "uesTag": tag}) for tag, body in raw.items()}


def matrix_for(ues_tag: str, matrices: Optional[Mapping[str, ProfileMatrix]] = None) -> ProfileMatrix:
    matrices = load_matrices() if matrices is None else matrices
    try:
        return matrices[ues_tag]
    except KeyError:
        known = ", ".join(sorted(matrices)) or "none"
        raise UnknownMatrixError(
            f"no profile matrix for UES {ues_tag} (shipped: {known}); add a {ues_tag!r} entry to "
            f"components/{MATRIX_FILE.name} from UES {ues_tag}'s catalog and "
            "runtime_adapters.describe_platform_runtime_requirements"
        ) from None


def all_profile_names(matrices: Optional[Mapping[str, ProfileMatrix]] = None) -> frozenset[str]:
    """Every profile name and alias of every shipped release: none of them may appear in a service name."""
    matrices = load_matrices() if matrices is None else matrices
    return frozenset().union(*(matrix.names() for matrix in matrices.values()))


# -- profile facts proved from the pinned sources (issue 8) ---------------------------------------------
#
# What the release gate read from UES at the bundle tag and from each platform at its commit, with where
# it read it. `release/profile_source.py` reads them; the lock stores them; the rules consult them.

SNAPSHOT_INPUT = "feature_snapshot"  # among a profile's required inputs: the profile is snapshot-backed
RUNTIME_ENABLED = "runtime_enabled"
StrategyConfigSource = Literal["none", "bundled_or_env", "env_or_module_defaults"]


class FactsModel(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class SourceFile(FactsModel):
    """Provenance of one fact: the file it was read from, at which ref and commit, and its git blob id."""

    repo: str
    ref: str
    commit: str
    path: str
    blob: str

    @field_validator("commit", "blob")
    @classmethod
    def _object_id(cls, value: str) -> str:
        if not COMMIT_PATTERN.fullmatch(value):
            raise ValueError(f"{value!r} is not a 40-hex git object id")
        return value

    def describe(self) -> str:
        return f"{self.repo}@{self.ref}:{self.path} (blob {self.blob[:7]})"


class CatalogProfile(FactsModel):
    """One profile of UES's catalog (`catalog.py`)."""

    display_name: str
    status: str
    aliases: tuple[str, ...] = ()
    compatible_platforms: tuple[str, ...]
    required_inputs: tuple[str, ...]
    target_mode: str
    bundled_config: Optional[str] = None  # STRATEGY_BUNDLED_CONFIG_RELPATHS: a path in the platform repo

    @property
    def input_mode(self) -> InputMode:
        return "snapshot_backed" if SNAPSHOT_INPUT in self.required_inputs else "direct_runtime"


class RuntimeAdapter(FactsModel):
    """What UES's runtime adapter for one profile on one platform says about the snapshot manifest."""

    requires_snapshot_manifest: bool = False
    manifest_contract: Optional[str] = None


class UesFacts(FactsModel):
    repo: str
    tag: str
    commit: str
    domain: str  # the catalog's strategy domain (a QPK constant, compared by name)
    profiles: dict[str, CatalogProfile]
    adapters: dict[str, dict[str, RuntimeAdapter]]  # platform id -> canonical profile -> adapter
    files: tuple[SourceFile, ...]

    @model_validator(mode="after")
    def _aliases_are_old_names(self) -> "UesFacts":
        owner: dict[str, str] = {}
        for name, profile in self.profiles.items():
            for alias in profile.aliases:
                if alias in self.profiles or owner.setdefault(alias, name) != name:
                    raise ValueError(f"alias {alias} of {name} is also a profile or another profile's alias")
        return self

    @property
    def aliases(self) -> dict[str, str]:
        return {alias: name for name, profile in sorted(self.profiles.items()) for alias in profile.aliases}

    def canonical(self, name: str) -> str:
        return self.aliases.get(name, name)


class Capability(FactsModel):
    """A platform's `PlatformCapabilityMatrix(...)` literal."""

    supported_domains: tuple[str, ...]
    supported_target_modes: tuple[str, ...]
    supported_inputs: tuple[str, ...]


class PlatformFacts(FactsModel):
    platform: PlatformId
    repo: str
    commit: str
    rollout_allowlist: tuple[str, ...]
    capability: Capability
    bundled_configs: tuple[str, ...] = ()  # the catalog's bundled config paths present in this commit's tree
    files: tuple[SourceFile, ...]

    @property
    def label(self) -> str:
        return f"{self.repo}@{self.commit}"


class Requirements(FactsModel):
    """What one runtime-enabled profile needs on one platform commit, derived from the proved facts."""

    profile: str
    display_name: str
    input_mode: InputMode
    requires_snapshot_manifest_path: bool = False
    manifest_contract: Optional[str] = None
    strategy_config: StrategyConfigSource = "none"
    bundled_config: Optional[str] = None

    @property
    def requires_snapshot_artifacts(self) -> bool:
        return self.input_mode == "snapshot_backed"

    @property
    def profile_group(self) -> str:
        return "snapshot_backed" if self.requires_snapshot_artifacts else "direct_runtime_inputs"


class Judgement(FactsModel):
    """Can `profile` run on a platform commit with a UES release? `requirements` is None when it cannot."""

    requirements: Optional[Requirements] = None
    why: str


def judge(profile: str, platform: PlatformFacts, ues: UesFacts) -> Judgement:
    """Runtime-enabled = the platform's rollout allowlist ∩ UES compatibility ∩ its capability matrix.

    The capability matrix admits a profile when its required inputs are all among `supported_inputs`, its
    target mode among `supported_target_modes` and the catalog's domain among `supported_domains`. UES
    must also name a runtime adapter for it on the platform (the runtime refuses a profile without one).
    """
    where = f"{platform.platform} at {platform.repo}@{platform.commit[:7]} with UES {ues.tag}"
    name = ues.canonical(profile)
    entry = ues.profiles.get(name)
    if entry is None:
        return Judgement(why=f"{profile} is not a profile of UES {ues.tag} (profiles: {', '.join(sorted(ues.profiles))})")
    allowlist = {ues.canonical(item) for item in platform.rollout_allowlist}
    capability = platform.capability
    missing_inputs = sorted(set(entry.required_inputs) - set(capability.supported_inputs))
    refusals = [
        (entry.status != RUNTIME_ENABLED, f"its UES status is {entry.status}"),
        (
            platform.platform not in entry.compatible_platforms,
            f"UES lists it for {', '.join(entry.compatible_platforms) or 'no platform'} only",
        ),
        (name not in allowlist, f"it is not in {platform.repo}'s rollout allowlist"),
        (bool(missing_inputs), f"the platform does not support its inputs {', '.join(missing_inputs)}"),
        (entry.target_mode not in capability.supported_target_modes, f"the platform does not support target mode {entry.target_mode}"),
        (ues.domain not in capability.supported_domains, f"the platform does not support domain {ues.domain}"),
        (name not in ues.adapters.get(platform.platform, {}), f"UES has no {platform.platform} runtime adapter for it"),
    ]
    reasons = [reason for refused, reason in refusals if refused]
    if reasons:
        return Judgement(why=f"{name} is not runtime-enabled on {where}: {'; '.join(reasons)}")
    adapter = ues.adapters[platform.platform][name]
    snapshot = entry.input_mode == "snapshot_backed"
    config: StrategyConfigSource = "none"
    if snapshot and entry.bundled_config is not None:
        config = "bundled_or_env" if entry.bundled_config in platform.bundled_configs else "env_or_module_defaults"
    return Judgement(
        requirements=Requirements(
            profile=name,
            display_name=entry.display_name,
            input_mode=entry.input_mode,
            requires_snapshot_manifest_path=snapshot and adapter.requires_snapshot_manifest,
            manifest_contract=adapter.manifest_contract if snapshot else None,
            strategy_config=config,
            bundled_config=entry.bundled_config if config == "bundled_or_env" else None,
        ),
        why=f"{name} runs on {where}",
    )


def platform_key(repo: str, commit: str) -> str:
    return f"{repo}@{commit}"


class ProfileFacts(FactsModel):
    """The bundle's proved facts, plus earlier ones a lock kept (so an older live image can be judged)."""

    ues_tag: str
    ues: dict[str, UesFacts]  # UES tag -> facts
    platforms: dict[str, PlatformFacts]  # "<repo>@<commit>" -> facts
    services: dict[str, str]  # service key -> "<repo>@<commit>" of its configured commit

    @model_validator(mode="after")
    def _consistent(self) -> "ProfileFacts":
        if self.ues_tag not in self.ues:
            raise ValueError(f"no UES facts for the bundle tag {self.ues_tag}")
        for tag, facts in self.ues.items():
            if facts.tag != tag:
                raise ValueError(f"UES facts under {tag} were read at {facts.tag}")
        for key, platform_facts in self.platforms.items():
            if key != platform_facts.label:
                raise ValueError(f"platform facts under {key} were read at {platform_facts.label}")
        for service, key in self.services.items():
            if key not in self.platforms:
                raise ValueError(f"service {service} points at {key}, which has no facts")
        return self

    @property
    def bundle(self) -> UesFacts:
        return self.ues[self.ues_tag]

    def for_service(self, key: str) -> Optional[PlatformFacts]:
        label = self.services.get(key)
        return None if label is None else self.platforms.get(label)

    def judge_service(self, profile: str, key: str) -> Judgement:
        platform = self.for_service(key)
        if platform is None:
            return Judgement(why=f"no profile facts were proved for services.{key}")
        return judge(profile, platform, self.bundle)

    def judge_image(self, profile: str, key: str, repo: str, commit: Optional[str], ues_tag: Optional[str]) -> Judgement:
        """Can an image (platform commit, UES release) run `profile`? Unknown release: judged by the bundle."""
        if ues_tag is None:
            judgement = self.judge_service(profile, key)
            return Judgement(requirements=judgement.requirements, why=f"{judgement.why} (image release unknown: judged by the bundle)")
        platform = self.platforms.get(platform_key(repo, commit or ""))
        ues = self.ues.get(ues_tag)
        if platform is None or ues is None:
            missing = [f"UES {ues_tag}"] if ues is None else []
            missing += [] if platform is not None else [f"{repo}@{(commit or 'unknown')[:7]}"]
            return Judgement(why=f"no proved profile facts for {' and '.join(missing)} (a lock keeps those it proved)")
        return judge(profile, platform, ues)

    def requirements(self, profile: str, key: str) -> Optional[Requirements]:
        return self.judge_service(profile, key).requirements

    def enabled_on(self, key: str) -> list[str]:
        platform = self.for_service(key)
        if platform is None:
            return []
        return sorted(name for name in self.bundle.profiles if judge(name, platform, self.bundle).requirements is not None)

    def canonical(self, name: str) -> str:
        return self.bundle.canonical(name)

    def display_name(self, profile: str) -> Optional[str]:
        entry = self.bundle.profiles.get(self.canonical(profile))
        return None if entry is None else entry.display_name

    def names(self) -> frozenset[str]:
        """Every profile name and alias of every UES release here: none may appear in a service name."""
        return frozenset().union(*(set(ues.profiles) | set(ues.aliases) for ues in self.ues.values()))

    def with_history(self, older: Optional["ProfileFacts"]) -> "ProfileFacts":
        """These facts plus every UES release and platform commit `older` proved that these do not replace."""
        if older is None:
            return self
        return self.model_copy(update={"ues": {**older.ues, **self.ues}, "platforms": {**older.platforms, **self.platforms}})
