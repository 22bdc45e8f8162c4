"""Strategy profile facts, as the release gate proved them from the pinned sources (issue 8).

No hand-maintained matrix: `release/gate/profile_source.py` reads UES's `catalog.py` and `runtime_adapters.py`
at the bundle's tag and each platform's `strategy_registry.py` at its commit (with `ast`, never importing
them); `release/gate/profile_checks.py` records them with their provenance; the lock stores them. Every rule that
decides a phase, an env or a verify check asks these models:

- a profile is runtime-enabled on a platform commit when it is in the platform's rollout allowlist, UES
  lists the platform as compatible, the platform's `PlatformCapabilityMatrix` admits its inputs, target
  mode and domain, and UES has a runtime adapter for it there (`judge`);
- its input mode is snapshot-backed exactly when `feature_snapshot` is among its required inputs; the
  manifest requirement and contract come from the adapter; its strategy config is bundled when the file the
  catalog names exists in the platform's tree, else module defaults unless a config path is set.
"""

from __future__ import annotations

import functools
from typing import Literal, Optional

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from release.config import COMMIT_PATTERN, PlatformId

InputMode = Literal["direct_runtime", "snapshot_backed"]


# -- profile facts proved from the pinned sources (issue 8) ---------------------------------------------
#
# What the release gate read from UES at the bundle tag and from each platform at its commit, with where
# it read it. `release/gate/profile_source.py` reads them; the lock stores them; the rules consult them.

SNAPSHOT_INPUT = "feature_snapshot"  # among a profile's required inputs: the profile is snapshot-backed
RUNTIME_ENABLED = "runtime_enabled"
StrategyConfigSource = Literal["none", "bundled_or_env", "env_or_module_defaults", "env_only"]
"""Where a profile's strategy config comes from on a platform commit: `none` (it reads no config path),
`bundled_or_env` (a file the platform bundles, which a config path overrides), `env_or_module_defaults`
(no bundled file: a config path, else the module's defaults), `env_only` (only from a config path: required
when `strategy_config_required`, else optional, e.g. a shadow config of a direct-runtime profile)."""
ReconciliationPolicy = Literal["none", "optional", "required"]


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

    @functools.cached_property
    def aliases(self) -> dict[str, str]:
        # cached: the model is frozen, and judging a stack asks for this once per profile per service
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


class PlatformRequirements(FactsModel):
    """What one runtime-enabled profile needs on one platform commit, derived from the proved facts."""

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
    """Can `profile` run on a platform commit with a UES release? `requirements` is None when it cannot."""

    requirements: Optional[PlatformRequirements] = None
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
        requirements=PlatformRequirements(
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
    # service key -> the UES ref of its own release, for a service whose release is not the stack's
    service_ues: dict[str, str] = Field(default_factory=dict)

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
        for service, tag in self.service_ues.items():
            if tag not in self.ues:
                raise ValueError(f"service {service} runs UES {tag}, which has no facts")
        return self

    @property
    def bundle(self) -> UesFacts:
        return self.ues[self.ues_tag]

    def for_service(self, key: str) -> Optional[PlatformFacts]:
        label = self.services.get(key)
        return None if label is None else self.platforms.get(label)

    def ues_for(self, key: str) -> UesFacts:
        """The UES facts of the release service `key` installs."""
        return self.ues[self.service_ues.get(key, self.ues_tag)]

    def judge_service(self, profile: str, key: str) -> Judgement:
        platform = self.for_service(key)
        if platform is None:
            return Judgement(why=f"no profile facts were proved for services.{key}")
        return judge(profile, platform, self.ues_for(key))

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

    def requirements(self, profile: str, key: str) -> Optional[PlatformRequirements]:
        return self.judge_service(profile, key).requirements

    def enabled_on(self, key: str) -> list[str]:
        platform = self.for_service(key)
        if platform is None:
            return []
        ues = self.ues_for(key)
        return sorted(name for name in ues.profiles if judge(name, platform, ues).requirements is not None)

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
