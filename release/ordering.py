"""The phase rule: what one `pulumi up` may change on one service, given its live state and the config.

Every intermediate state a service passes through must be valid: the running image's UES release must
support the running profile. So a service never changes image and strategy env in the same update:

- forward release: image first (strategy env held at live values), then the env switch once the image is
  confirmed live;
- rollback (live profile unknown to the older image): env first, then the image;
- neither intermediate state valid: blocked, with the reason and what to change.

Pure functions; the Pulumi program and `python -m release plan` both call `plan_service`.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Literal, Mapping, Optional

from packaging.version import Version

from components.env import DRY_RUN_UNSET, ServiceEnv, ServiceRevision, desired_revision, dry_run_value
from components.ownership import (
    RELEASE_RECORD_ANNOTATION,
    OwnedMetadata,
    ServiceSettings,
    SettingChange,
    desired_settings,
    owned_metadata,
    release_record,
    settings_diff,
)
from components.platforms import COMMIT_LABEL, OWNED_ENV_NAMES, PLATFORMS, STRATEGY_PROFILE, looks_secret
from components.profiles import ProfileMatrix
from release.config import ReleaseBundle, ServiceSpec, release_version
from release.live import LATEST_100, LiveService, TrafficTarget

# The label the platforms' own deploy workflow puts on what it deploys (CONTRACT.md section 2).
MANAGED_BY_LABEL = "managed-by"
MANAGED_BY_WORKFLOW = "github-actions"
WORKFLOW_SWITCHES = ("ENABLE_GITHUB_CLOUD_RUN_DEPLOY", "ENABLE_GITHUB_ENV_SYNC")

Phase = Literal["create", "deploy-image", "switch-env", "in-sync", "blocked"]
PHASES: tuple[Phase, ...] = ("create", "deploy-image", "switch-env", "in-sync", "blocked")


def short(commit: Optional[str]) -> str:
    return commit[:7] if commit else "unknown"


@dataclass(frozen=True)
class EnvChange:
    """One changed name; `before`/`after` are shown values: refs for secrets, never a secret's value."""

    name: str
    before: Optional[str]
    after: Optional[str]


@dataclass(frozen=True)
class EnvDiff:
    """Names added, changed and removed going from one env to another (sorted)."""

    added: tuple[str, ...] = ()
    changed: tuple[str, ...] = ()
    removed: tuple[str, ...] = ()
    details: tuple[EnvChange, ...] = ()

    @property
    def empty(self) -> bool:
        return not (self.added or self.changed or self.removed)


def _shown(name: str, env: ServiceEnv, showable: frozenset[str]) -> Optional[str]:
    if name in env.secrets:
        return f"secret:{env.secrets[name]}"
    if name not in env.plain:
        return None
    # Plain values are shown only where the config declares them; a live-only plain value may be a
    # credential someone pasted in by hand, so it stays hidden.
    return env.plain[name] if name in showable and not looks_secret(name) else "(hidden)"


def env_diff(before: ServiceEnv, after: ServiceEnv, showable: frozenset[str] = frozenset()) -> EnvDiff:
    """What changes from `before` to `after`, by name; a plain value becoming a secret ref is a change."""

    def entry(env: ServiceEnv, name: str) -> tuple[str, object]:
        return ("secret", env.secrets[name]) if name in env.secrets else ("plain", env.plain[name])

    old, new = set(before.names()), set(after.names())
    added = tuple(sorted(new - old))
    removed = tuple(sorted(old - new))
    changed = tuple(sorted(name for name in old & new if entry(before, name) != entry(after, name)))
    details = tuple(
        EnvChange(name, _shown(name, before, showable), _shown(name, after, showable)) for name in sorted((*added, *changed, *removed))
    )
    return EnvDiff(added=added, changed=changed, removed=removed, details=details)


@dataclass(frozen=True)
class ServicePlan:
    """The plan for one service.

    `applied` is what this `pulumi up` gives the service (for blocked: the live state, held as is);
    `desired` is the end state of the cutover. `env_diff` is live -> desired (the whole switch, what the
    operator reviews); `applied_env_diff` is live -> applied (this update only).
    """

    key: str
    spec: ServiceSpec
    phase: Phase
    reason: str
    applied: ServiceRevision
    desired: ServiceRevision
    live: Optional[LiveService]
    env_diff: EnvDiff
    applied_env_diff: EnvDiff
    rollback: bool = False
    # True when this update is the first of two: the phase after it is known (image or env follows).
    next_phase: Optional[Phase] = None
    warnings: tuple[str, ...] = field(default_factory=tuple)
    # The Cloud Run settings, owned labels/annotations and traffic this update registers (see
    # `applied_inputs`), and every setting it changes against live: what `plan` shows is what is registered.
    applied_settings: ServiceSettings = field(default_factory=ServiceSettings)
    applied_owned: OwnedMetadata = field(default_factory=lambda: OwnedMetadata({}, {}, {}, {}))
    applied_traffic: tuple[TrafficTarget, ...] = LATEST_100
    settings_diff: tuple[SettingChange, ...] = ()

    @property
    def live_profile(self) -> Optional[str]:
        return None if self.live is None else self.live.profile

    @property
    def changes_service(self) -> bool:
        return self.phase in ("create", "deploy-image", "switch-env")


def live_revision(live: LiveService) -> ServiceRevision:
    """The live service as a revision: what `blocked` holds. An unknown commit is the empty string."""
    tags = live.release_tags
    return ServiceRevision(
        image=live.image,
        commit=live.commit or "",
        env=ServiceEnv(plain=dict(sorted(live.env.items())), secrets=dict(sorted(live.secrets.items()))),
        qpk_tag=tags.qpk,
        ues_tag=tags.ues,
    )


def live_owned(live: LiveService) -> OwnedMetadata:
    """The owned labels/annotations exactly as live: what `blocked` registers (no commit label invented)."""
    return OwnedMetadata(
        template_labels={COMMIT_LABEL: live.commit} if live.commit else {},
        template_annotations={RELEASE_RECORD_ANNOTATION: live.release_record} if live.release_record else {},
        labels={COMMIT_LABEL: live.labels[COMMIT_LABEL]} if COMMIT_LABEL in live.labels else {},
        annotations=live.legacy_annotations,
    )


def applied_inputs(
    spec: ServiceSpec, phase: Phase, applied: ServiceRevision, live: Optional[LiveService]
) -> tuple[ServiceSettings, OwnedMetadata, tuple[TrafficTarget, ...]]:
    """Settings, owned metadata and traffic one update registers.

    Blocked: exactly live, so the engine's update is a no-op (the live split included: a canary is never
    promoted by a run that could not verify it). Otherwise: the ownership rule's settings, the revision's
    commit label and release record, and all traffic to the latest ready revision.
    """
    if phase == "blocked" and live is not None:
        return live.settings, live_owned(live), live.declared_traffic
    settings = desired_settings(spec, None if live is None else live.settings)
    if phase == "in-sync" and live is not None:
        # Nothing changes: not even a release record added to a service adopted without one (a new revision).
        return settings, live_owned(live), LATEST_100
    owned = owned_metadata(
        applied.commit, release_record(applied.commit, applied.qpk_tag, applied.ues_tag), {} if live is None else live.labels
    )
    return settings, owned, LATEST_100


def traffic_shown(traffic: tuple[TrafficTarget, ...]) -> list[dict[str, object]]:
    return [
        {k: v for k, v in (("latest", t.latest or None), ("revision", t.revision), ("percent", t.percent), ("tag", t.tag)) if v is not None}
        for t in traffic
    ]


def full_settings_diff(
    live: Optional[LiveService], settings: ServiceSettings, traffic: tuple[TrafficTarget, ...]
) -> tuple[SettingChange, ...]:
    """`settings_diff` plus the declared traffic (live -> registered)."""
    changes = settings_diff(None if live is None else live.settings, settings)
    live_traffic = () if live is None else live.declared_traffic
    if live_traffic != traffic:
        changes += (SettingChange("traffic", traffic_shown(live_traffic) if live is not None else None, traffic_shown(traffic)),)
    return changes


def live_warnings(spec: ServiceSpec, bundle: ReleaseBundle, live: Optional[LiveService]) -> tuple[str, ...]:
    """What the operator must act on whatever the phase: a competing deployer, a credential in plain env."""
    if live is None:
        return ()
    warnings = []
    labels = {**live.labels, **live.settings.template_labels}
    if labels.get(MANAGED_BY_LABEL) == MANAGED_BY_WORKFLOW:
        repository = f"{bundle.github_owner}/{bundle.repositories.for_platform(spec.platform)}"
        warnings.append(
            f"{spec.service_name} is labelled {MANAGED_BY_LABEL}={MANAGED_BY_WORKFLOW}: the platform's own deploy "
            f"workflow still deploys it, and a push to {repository} will revert this cutover; turn it off first "
            f"(set the repository variables {' and '.join(WORKFLOW_SWITCHES)} to false in {repository})"
        )
    for name in sorted(live.env):
        if looks_secret(name):
            warnings.append(
                f"{name} on {spec.service_name} is a plain env value that looks like a credential (value not shown): "
                f"move it to Secret Manager and list it under secrets; until then it is held only as a Pulumi secret"
            )
    return tuple(warnings)


@dataclass(frozen=True)
class Validity:
    ok: bool
    why: str


def profile_validity(
    profile: Optional[str],
    ues_tag: Optional[str],
    spec: ServiceSpec,
    env: ServiceEnv,
    matrices: Mapping[str, ProfileMatrix],
    desired_tag: str,
) -> Validity:
    """Can an image of UES release `ues_tag` run `profile` with `env` on this service's platform?

    An unknown release (a service this program never deployed) can only be judged by the desired matrix.
    The env must carry what the profile needs on that release (snapshot, manifest, env-only config path).
    """
    platform = PLATFORMS[spec.platform]
    if profile is None:
        return Validity(False, f"the live service sets no {STRATEGY_PROFILE}")
    tag = ues_tag if ues_tag is not None else desired_tag
    release = f"UES {tag}" if ues_tag is not None else f"UES unknown (judged by {desired_tag})"
    matrix = matrices.get(tag)
    if matrix is None:
        return Validity(False, f"no profile matrix is shipped for UES {tag}, so {profile} cannot be checked there")
    requirements = matrix.requirements(profile, spec.platform)
    if requirements is None:
        enabled = ", ".join(matrix.enabled_on(spec.platform)) or "none"
        return Validity(False, f"{profile} is not runtime-enabled on {spec.platform} at {release} (enabled: {enabled})")
    needed = []
    if requirements.requires_snapshot_artifacts:
        needed.append(platform.feature_snapshot_env)
    if requirements.requires_snapshot_manifest_path:
        needed.append(platform.manifest_env)
    if requirements.requires_strategy_config_path:
        needed.append(platform.strategy_config_env)
    missing = [name for name in needed if not env.plain.get(name)]
    if missing:
        return Validity(False, f"{profile} at {release} needs {', '.join(missing)}, which that env lacks")
    return Validity(True, f"{profile} runs on {spec.platform} at {release}")


def _hold_strategy_env(desired: ServiceEnv, live: LiveService, spec: ServiceSpec) -> ServiceEnv:
    """Desired env with every strategy/input-mode/dry-run name exactly as live (present or absent)."""
    held = PLATFORMS[spec.platform].strategy_env
    plain = {name: value for name, value in desired.plain.items() if name not in held}
    secrets = {name: ref for name, ref in desired.secrets.items() if name not in held}
    plain.update({name: value for name, value in live.env.items() if name in held})
    secrets.update({name: ref for name, ref in live.secrets.items() if name in held})
    return ServiceEnv(plain=dict(sorted(plain.items())), secrets=dict(sorted(secrets.items())))


def is_older_bundle(bundle: ReleaseBundle, live: LiveService) -> bool:
    """Is the desired bundle older than the one this program recorded on the live service?"""
    tags = live.release_tags
    try:
        desired: tuple[Version, ...] = (bundle.ues_version, bundle.qpk_version)
        if tags.ues is None:
            return False
        recorded = (release_version(tags.ues), release_version(tags.qpk) if tags.qpk else bundle.qpk_version)
    except ValueError:
        return False
    return desired < recorded


def _same_image(spec: ServiceSpec, live: LiveService) -> bool:
    """Images are the same when built from the same commit; without a label, only an identical reference counts."""
    if live.commit:
        return live.commit == spec.commit or live.image == spec.image
    return live.image == spec.image


def _showable(spec: ServiceSpec) -> frozenset[str]:
    return frozenset(spec.env) | OWNED_ENV_NAMES


def _strategy_summary(before: ServiceEnv, after: ServiceEnv, spec: ServiceSpec) -> str:
    diff = env_diff(before, after, _showable(spec))
    held = PLATFORMS[spec.platform].strategy_env
    parts: list[str] = []
    for change in diff.details:
        if change.name not in held:
            continue
        if change.name == STRATEGY_PROFILE:
            parts.insert(0, f"{STRATEGY_PROFILE} {change.before or '(unset)'} -> {change.after or '(unset)'}")
        elif change.after is None:
            parts.append(f"remove {change.name}")
        elif change.before is None:
            parts.append(f"add {change.name}")
        else:
            parts.append(f"change {change.name}")
    return "; ".join(parts)


def plan_service(
    key: str,
    spec: ServiceSpec,
    bundle: ReleaseBundle,
    live: Optional[LiveService],
    matrices: Mapping[str, ProfileMatrix],
) -> ServicePlan:
    """The phase of one service for this `pulumi up`, what it applies, and why."""
    platform = PLATFORMS[spec.platform]
    desired_tag = bundle.us_equity_strategies
    matrix = matrices.get(desired_tag)
    requirements = None if matrix is None else matrix.requirements(spec.strategy_profile, spec.platform)
    live_dry_run = None if live is None else live.env.get(platform.dry_run_env)
    dry_run = dry_run_value(spec, live_dry_run, live is not None)

    if live is not None and dry_run is None:
        # `keep` over an unset live flag: nothing about the service changes until the config says which.
        held = live_revision(live)
        return ServicePlan(key, spec, "blocked", f"{platform.dry_run_env}: {DRY_RUN_UNSET}", held, held, live, EnvDiff(), EnvDiff())
    assert dry_run is not None
    if requirements is None:
        # The stack loader refuses such a config; fail closed if one reaches here anyway.
        reason = f"{spec.strategy_profile} is not runtime-enabled on {spec.platform} at UES {desired_tag}"
        placeholder = ServiceRevision(spec.image, spec.commit, ServiceEnv({}), bundle.quant_platform_kit, desired_tag)
        held = live_revision(live) if live is not None else placeholder
        settings, owned, traffic = applied_inputs(spec, "blocked", held, live)
        return ServicePlan(
            key, spec, "blocked", f"{reason}; fix strategyProfile", held, placeholder, live, EnvDiff(), EnvDiff(),
            warnings=live_warnings(spec, bundle, live), applied_settings=settings, applied_owned=owned,
            applied_traffic=traffic, settings_diff=full_settings_diff(live, settings, traffic),
        )  # fmt: skip

    desired = desired_revision(spec, bundle, requirements, dry_run)
    showable = _showable(spec)

    def result(
        phase: Phase,
        reason: str,
        applied: ServiceRevision,
        rollback: bool = False,
        next_phase: Optional[Phase] = None,
        warnings: tuple[str, ...] = (),
    ) -> ServicePlan:
        live_env = ServiceEnv({}) if live is None else live_revision(live).env
        settings, owned, traffic = applied_inputs(spec, phase, applied, live)
        all_warnings = warnings + live_warnings(spec, bundle, live)
        return ServicePlan(
            key=key,
            spec=spec,
            phase=phase,
            reason=reason,
            applied=applied,
            desired=desired,
            live=live,
            env_diff=env_diff(live_env, desired.env, showable),
            applied_env_diff=env_diff(live_env, applied.env, showable),
            rollback=rollback,
            next_phase=next_phase,
            warnings=all_warnings,
            applied_settings=settings,
            applied_owned=owned,
            applied_traffic=traffic,
            settings_diff=full_settings_diff(live, settings, traffic),
        )

    if live is None:
        dry = "dry run" if dry_run == "true" else f"{platform.dry_run_env}={dry_run}"
        return result("create", f"{spec.service_name} does not exist: create it with image and env together ({dry})", desired)

    held = live_revision(live)
    rollback = is_older_bundle(bundle, live)
    switch = _strategy_summary(held.env, desired.env, spec)

    if _same_image(spec, live):
        confirmation = live.confirmation()
        if confirmation.commit != spec.commit:
            why = confirmation.reason
            if confirmation.commit is not None:
                why = f"{why}, but the config expects {spec.commit}"
            return result(
                "blocked",
                f"image {short(spec.commit)} is deployed but not confirmed live: {why}; env held. Wait for the "
                f"revision to become ready and route all traffic to it (gcloud run services update-traffic "
                f"{spec.service_name} --to-latest), or fix the {COMMIT_LABEL} label, then plan again",
                held,
                rollback=rollback,
            )
        # The commit is already live: its image reference stays as live (a digest the program deployed, or
        # the tag a hand deploy used), so no phase here replaces the image.
        on_live_image = replace(desired, image=live.image)
        if env_diff(held.env, desired.env).empty:
            settings, _, traffic = applied_inputs(spec, "in-sync", desired, live)
            changed = [change.field for change in full_settings_diff(live, settings, traffic)]
            if changed:
                # Same image and env, but the config sets a Cloud Run setting the live service lacks.
                return result(
                    "switch-env",
                    f"image {short(spec.commit)} is confirmed live and env matches; change settings: {', '.join(changed)}",
                    on_live_image,
                    rollback=rollback,
                )
            return result(
                "in-sync",
                f"image {short(spec.commit)} is confirmed live ({confirmation.reason}) and env matches",
                on_live_image,
                rollback=rollback,
            )
        return result(
            "switch-env",
            f"image {short(spec.commit)} is confirmed live ({confirmation.reason}); switch env" + (f": {switch}" if switch else ""),
            on_live_image,
            rollback=rollback,
        )

    live_tag = live.release_tags.ues
    image_first_env = _hold_strategy_env(desired.env, live, spec)
    live_on_desired = profile_validity(live.profile, desired_tag, spec, image_first_env, matrices, desired_tag)
    desired_on_live = profile_validity(spec.strategy_profile, live_tag, spec, desired.env, matrices, desired_tag)
    image_first = ServiceRevision(
        image=spec.image, commit=spec.commit, env=image_first_env, qpk_tag=bundle.quant_platform_kit, ues_tag=desired_tag
    )
    env_first = ServiceRevision(image=held.image, commit=held.commit, env=desired.env, qpk_tag=held.qpk_tag, ues_tag=held.ues_tag)
    env_pending = not env_diff(image_first.env, desired.env).empty
    unknown_release = (
        "; the live image's UES release is unknown (not deployed by this program), so only the desired matrix was consulted"
        if live_tag is None
        else ""
    )

    def deploy_image() -> ServicePlan:
        warnings: tuple[str, ...] = ()
        if env_pending:
            warnings = (
                f"switch deferred until image {short(spec.commit)} is confirmed live; run pulumi up again after "
                f"verify passes ({switch or 'strategy env'})",
            )
        return result(
            "deploy-image",
            f"image {short(live.commit)} -> {short(spec.commit)} first, strategy env held at live values "
            f"({live_on_desired.why})" + unknown_release,
            image_first,
            rollback=rollback,
            next_phase="switch-env" if env_pending else None,
            warnings=warnings,
        )

    def switch_env_first() -> ServicePlan:
        because = "rolling back to an older bundle" if rollback else f"the live profile cannot run on the new image ({live_on_desired.why})"
        return result(
            "switch-env",
            f"env first, image {short(spec.commit)} next: {because}; {desired_on_live.why} on the live image"
            + (f" ({switch})" if switch else "")
            + unknown_release,
            env_first,
            rollback=True,
            next_phase="deploy-image",
            warnings=(
                f"image {short(live.commit)} -> {short(spec.commit)} follows once the env switch is confirmed live; run pulumi up again",
            ),
        )

    # A rollback puts the env back first (the older image knows the older profile); a forward release
    # moves the image first. Either way only an order whose intermediate state is valid is taken.
    if rollback and desired_on_live.ok and env_pending:
        return switch_env_first()
    if live_on_desired.ok:
        return deploy_image()
    if desired_on_live.ok:
        return switch_env_first()
    both = _profiles_valid_on_both(spec, desired_tag, live_tag, matrices)
    fix = (
        f"first switch strategyProfile to one valid on both images ({', '.join(both)}), pulumi up, then deploy"
        if both
        else "deploy an intermediate image whose release supports the live profile, or stop the service first"
    )
    return result(
        "blocked",
        f"no valid intermediate state: image first fails ({live_on_desired.why}); env first fails ({desired_on_live.why}); {fix}",
        held,
        rollback=rollback,
    )


def _profiles_valid_on_both(
    spec: ServiceSpec, desired_tag: str, live_tag: Optional[str], matrices: Mapping[str, ProfileMatrix]
) -> list[str]:
    desired = matrices.get(desired_tag)
    live = matrices.get(live_tag if live_tag is not None else desired_tag)
    if desired is None or live is None:
        return []
    return sorted(set(desired.enabled_on(spec.platform)) & set(live.enabled_on(spec.platform)))
