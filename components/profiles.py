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

from pydantic import Field, model_validator

from release.config import ConfigModel, PlatformId

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
            self.requires_snapshot_manifest_path
            or self.config_source_policy != "none"
            or self.reconciliation_output_policy != "none"
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
        return sorted(
            name for name, profile in self.profiles.items() if profile.runtime_enabled and platform in profile.platforms
        )

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
