"""Rollbacks the gate accepts: each step of a plan names the stack edits that put its service back where
the step found it.

A cutover step moves a service from one state to the next (ordering.py): the image step changes the image
and its release and holds the strategy env; the env step changes the strategy env on the image that stays.
Undoing a step is writing the state before it into the stack, so that the next `pulumi up` (gate first)
restores it:

- the image: `commit` and `image` as they ran, and the release that image runs as the service's own
  `release` (from the release record this program wrote on it). Without a record the release the image runs
  is unknown, and no edit is offered: revert the stack commit instead (never a guessed release);
- the strategy env: `strategyProfile` by its canonical name in the proved facts of the image that will
  run it (its platform commit with its release; an old alias is refused by the gate), the input-mode paths as they ran, and `dryRunOnly` as it ran.

Edits are data (`Edit`: a dotted path in the stack's `us-equity-cutover:` keys and a value, or `REMOVE`),
rendered once for the text plan and kept in the JSON, so a script or a test can apply exactly what the plan
says (`apply_edits`). Pure: nothing is read here.
"""

from __future__ import annotations

import copy
import json
from dataclasses import dataclass
from typing import Any, Final, Mapping, Optional

from components.platforms import PLATFORMS, TRUTHY
from components.profiles import PlatformProfiles, ProfileFacts
from release.config import ReleaseBundle, ServiceSpec
from release.cutover.adopt import FALSY, release_block, snapshot_block
from release.cutover.live import LiveService

REMOVE: Final = "(remove)"
SERVICES, RELEASE = "services", "release"


@dataclass(frozen=True)
class Edit:
    """Set `path` (e.g. `services.ibkr.commit`) to `value`, or delete it when `value` is REMOVE."""

    path: str
    value: Any

    def text(self) -> str:
        if self.value == REMOVE:
            return f"remove {self.path}"
        shown = self.value if isinstance(self.value, str) else json.dumps(self.value, sort_keys=True, separators=(", ", ": "))
        return f"{self.path}: {shown}"

    def to_json(self) -> dict[str, Any]:
        return {"path": self.path, "value": None if self.value == REMOVE else self.value, "remove": self.value == REMOVE}


@dataclass(frozen=True)
class Rollback:
    """The stack edits that undo one step, or (edits empty) why none can be given and what to do instead."""

    edits: tuple[Edit, ...] = ()
    instead: str = ""
    note: str = ""

    def text(self) -> str:
        if not self.edits:
            return self.instead
        text = "set " + "; ".join(edit.text() for edit in self.edits) + " and pulumi up"
        return text + (f" ({self.note})" if self.note else "")


def _stack_release_is(release: ReleaseBundle, refs: Mapping[str, str]) -> bool:
    return dict(release.refs) == dict(refs)


def image_facts(
    facts: Optional[ProfileFacts], release: ReleaseBundle, spec: ServiceSpec, commit: Optional[str], refs: Optional[Mapping[str, str]]
) -> Optional[PlatformProfiles]:
    """The proved facts of an image of this service: its platform commit run with the release it runs."""
    if facts is None:
        return None
    return facts.image_facts(release.repositories.for_platform(spec.platform), commit, refs)


def _dry_run(live: LiveService, spec: ServiceSpec) -> Optional[bool]:
    raw = (live.env.get(PLATFORMS[spec.platform].dry_run_env) or "").strip().lower()
    return True if raw in TRUTHY else False if raw in FALSY else None


def strategy_edits(key: str, spec: ServiceSpec, live: LiveService, image: Optional[PlatformProfiles]) -> Rollback:
    """Edits that put the strategy env back as `live` runs it, named canonically by `image`'s facts (the
    registry of the image that will run it, with its release)."""
    profile = live.profile
    if profile is None:
        return Rollback(instead=f"revert the stack commit that changed services.{key}: the live service names no profile to go back to")
    if image is None:
        return Rollback(
            instead=f"revert the stack commit that changed services.{key}: the profile {profile} cannot be named canonically "
            "without the proved facts of the image that will run it (its platform commit with its release)"
        )
    edits: list[Edit] = []
    canonical = image.canonical(profile)
    if canonical != spec.strategy_profile:
        edits.append(Edit(f"{SERVICES}.{key}.strategyProfile", canonical))
    snapshot = snapshot_block(live, spec.platform)
    configured = None if spec.snapshot is None else spec.snapshot.model_dump(by_alias=True, exclude_none=True)
    if snapshot != configured:
        edits.append(Edit(f"{SERVICES}.{key}.snapshot", snapshot if snapshot is not None else REMOVE))
    flag = _dry_run(live, spec)
    if spec.dry_run_only != "keep" and flag is not None and flag != spec.dry_run_only:
        edits.append(Edit(f"{SERVICES}.{key}.dryRunOnly", flag))
    if spec.execution_mode is not None and edits:
        # A written execution mode must agree with the flag; left out, it is derived from it again.
        edits.append(Edit(f"{SERVICES}.{key}.executionMode", REMOVE))
    note = f"{profile} is {canonical} in the registry of {image.label}" if canonical != profile else ""
    if not edits:
        # The step changes nothing the stack names (e.g. only an alias becomes its canonical name and the
        # env the program derives is added): say so, rather than print a rollback that does nothing.
        return Rollback(
            instead=f"nothing in the stack to set back: services.{key} already names what ran"
            + (f" ({note})" if note else "")
            + "; this step only writes what the program derives from it"
        )
    return Rollback(tuple(edits), note=note)


def image_rollback(
    key: str,
    spec: ServiceSpec,
    release: ReleaseBundle,
    live: Optional[LiveService],
    facts: Optional[ProfileFacts],
    with_strategy: bool = True,
) -> Rollback:
    """Undo an image step: the image and its release as `live` runs them, and (`with_strategy`: the step
    held the strategy env, but the gate judges the configured profile on the image) the strategy env too."""
    if live is None or not live.commit:
        return Rollback(instead=f"revert the stack commit that changed services.{key}: the live image's commit is unknown")
    refs = live.release_tags.refs
    if not refs:
        return Rollback(
            instead=f"revert the stack commit that changed services.{key}.commit: the release the live image runs is not recorded "
            "on it (this program did not deploy it), so no release block can be named without a guess"
        )
    edits = [Edit(f"{SERVICES}.{key}.commit", live.commit), Edit(f"{SERVICES}.{key}.image", live.image)]
    if _stack_release_is(release, refs):
        if spec.release is not None:
            edits.append(Edit(f"{SERVICES}.{key}.release", REMOVE))
    else:
        edits.append(Edit(f"{SERVICES}.{key}.release", release_block(refs)))
    if not with_strategy:
        return Rollback(tuple(edits))
    strategy = strategy_edits(key, spec, live, image_facts(facts, release, spec, live.commit, refs))
    if not strategy.edits and strategy.instead:
        return strategy
    return Rollback(tuple(edits) + strategy.edits, note=strategy.note)


def apply_edits(document: Mapping[str, Any], edits: tuple[Edit, ...]) -> dict[str, Any]:
    """The stack's own keys (`release`, `services`, without the project prefix) with `edits` applied."""
    result = copy.deepcopy(dict(document))
    for edit in edits:
        *parents, last = edit.path.split(".")
        node = result
        for part in parents:
            node = node.setdefault(part, {})
        if edit.value == REMOVE:
            node.pop(last, None)
        else:
            node[last] = copy.deepcopy(edit.value)
    return result
