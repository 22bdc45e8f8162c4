"""What a service's first run after a cutover must show, from the profile facts of its platform commit and release.

The one place the report and manifest checks learn profile facts (display name, input mode, manifest
contract, the names that mean a profile): switching where those facts come from changes only this module.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

from components.profiles import ProfileFacts


@dataclass(frozen=True)
class RunFacts:
    profile: str  # canonical, as every report names it
    display_name: str
    snapshot_backed: bool
    manifest_required: bool
    manifest_contract: Optional[str]
    # The canonical name and every alias the release still maps to it (manifests may carry an alias).
    names: frozenset[str]
    # Where the display name was proved: the registry run, at which commit and release.
    proved_from: str = "the proved profile facts"

    def means_this_profile(self, name: object) -> bool:
        return isinstance(name, str) and name in self.names


def run_facts(facts: ProfileFacts, profile: str, key: str) -> Optional[RunFacts]:
    """Facts of a runtime-enabled profile on a service's platform commit with its release, from the facts
    its registry gave when run over exactly those sources (a US or an HK profile alike); None when it can't
    run there."""
    run = facts.for_service(key)
    requirements = facts.requirements(profile, key)
    if run is None or requirements is None:
        return None
    canonical = run.canonical(profile)
    return RunFacts(
        profile=canonical,
        display_name=requirements.display_name,
        snapshot_backed=requirements.requires_snapshot_artifacts,
        manifest_required=requirements.requires_snapshot_manifest_path,
        manifest_contract=requirements.manifest_contract,
        names=frozenset({canonical, *(alias for alias, name in run.aliases.items() if name == canonical)}),
        proved_from=f"{run.platform}'s registry at {run.label}",
    )
