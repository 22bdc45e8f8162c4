"""The phase rule: what one `pulumi up` may change on one service, given its live state and the config.

Every intermediate state a service passes through must be valid: the running image (its platform commit
with the release it was built with) must support the running profile, by the facts proved for exactly that. So a service never changes image and strategy env in the same update:

- forward release: image first (strategy env held at live values), then the env switch once the image is
  confirmed live;
- rollback (live profile unknown to the older image): env first, then the image;
- neither intermediate state valid: blocked, with the reason and what to change.

Pure functions; the Pulumi program and `python -m release plan` both call `plan_service`.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Literal, Optional

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
from components.platforms import (
    COMMIT_LABEL,
    OWNED_ENV_NAMES,
    PLATFORMS,
    QSL_RUNTIME_TARGET_JSON,
    RUNTIME_TARGET_JSON,
    STRATEGY_PROFILE,
    is_dry_run,
    is_unset_flag,
    looks_secret,
)
from components.profiles import ImageRelease, ProfileFacts
from components.runtime_target import running_target, shown_name, shown_value
from release.config import ReleaseBundle, ServiceSpec, release_version
from release.cutover.live import LATEST_100, LiveService, TrafficTarget, confirm_live, match_image

# The label the platforms' own deploy workflow puts on what it deploys (docs/platform-facts.md §2).
MANAGED_BY_LABEL = "managed-by"
MANAGED_BY_WORKFLOW = "github-actions"
# Every repository variable that turns the platforms' deploy workflow on today (QSL_ENABLE_CLOUD_RUN_AUTOMATION,
# when set, overrides ENABLE_MAIN_PUSH_CLOUD_RUN_AUTOMATION); all of them must say false.
WORKFLOW_SWITCHES = (
    "ENABLE_GITHUB_CLOUD_RUN_DEPLOY",
    "ENABLE_GITHUB_ENV_SYNC",
    "ENABLE_MAIN_PUSH_CLOUD_RUN_AUTOMATION",
    "QSL_ENABLE_CLOUD_RUN_AUTOMATION",
)
# LongBridge's workflow runs once per GitHub Environment, whose variables override the repository's.
WORKFLOW_ENVIRONMENTS = {"longbridge": ("longbridge-paper", "longbridge-hk", "longbridge-sg")}

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
    # What the operator must act on before or beside this update (a competing deployer, a credential in
    # plain env): each one changes the plan's verdict to "can proceed, with N warnings".
    warnings: tuple[str, ...] = field(default_factory=tuple)
    # What follows this update in the cutover's own order (the second `pulumi up`): information, not a warning.
    notes: tuple[str, ...] = field(default_factory=tuple)
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
        release=tags.refs,
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
    # This update makes a new revision: a revision name the live template carries is not sent again (the
    # API refuses a second revision of that name; an unnamed template gets a generated one).
    settings = settings.model_copy(update={"revision": None})
    owned = owned_metadata(
        applied.commit,
        release_record(applied.commit, applied.release),
        {} if live is None else live.labels,
        new_image=applied.image if live is not None and applied.image != live.image else None,
        live_settings=None if live is None else live.settings,
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
        environments = WORKFLOW_ENVIRONMENTS.get(spec.platform, ())
        where = f" and in its Environments {', '.join(environments)} (their variables override the repository's)" if environments else ""
        warnings.append(
            f"{spec.service_name} is labelled {MANAGED_BY_LABEL}={MANAGED_BY_WORKFLOW}: the platform's own deploy "
            f"workflow still deploys it, and a push to {repository} will revert this cutover; turn it off first "
            f"(set the variables {', '.join(WORKFLOW_SWITCHES[:-1])} and {WORKFLOW_SWITCHES[-1]} to false in {repository}{where}; "
            f"{WORKFLOW_SWITCHES[-1]}, when set, overrides {WORKFLOW_SWITCHES[2]})"
        )
    warnings += target_warnings(spec, live)
    for name in sorted(live.env):
        if looks_secret(name):
            warnings.append(
                f"{name} on {spec.service_name} is a plain env value that looks like a credential (value not shown): "
                f"move it to Secret Manager and list it under secrets; until then it is held only as a Pulumi secret"
            )
    return tuple(warnings)


def target_warnings(spec: ServiceSpec, live: LiveService) -> list[str]:
    """What the live env makes the service run, where that is not the program's own target: an override in
    QSL_RUNTIME_TARGET_JSON (another strategy, live trading), a target the runtime refuses, a second
    strategy name, a dry-run flag that contradicts the target."""
    name = spec.service_name
    platform = PLATFORMS[spec.platform]
    running = live.running(spec.platform)
    warnings = []
    if running.overridden:
        notes = []
        if running.profile is not None and running.profile != spec.strategy_profile:
            notes.append(f"another strategy than strategyProfile {spec.strategy_profile}")
        if running.dry_run_only is False:
            notes.append("LIVE trading")
        warnings.append(
            f"{QSL_RUNTIME_TARGET_JSON} on {name} overrides {RUNTIME_TARGET_JSON}: the service runs {running.describe()}"
            + (f" ({', '.join(notes)})" if notes else "")
            + "; the program never writes it, so the update that switches env removes it"
        )
    elif running.problem is not None:
        warnings.append(f"{name} runs {running.describe()}: the runtime refuses it, so no strategy runs until the env switch")
    named = (live.env.get(STRATEGY_PROFILE) or "").strip()
    if running.source in (QSL_RUNTIME_TARGET_JSON, RUNTIME_TARGET_JSON) and running.profile and named and named != running.profile:
        warnings.append(
            f"{name} names two strategies: {running.source} runs {running.profile}, {STRATEGY_PROFILE} says {shown_name(named)}; "
            "images that read a runtime target run the first, seed-era images the second"
        )
    flag = live.env.get(platform.dry_run_env)
    if running.dry_run_only is not None and not is_unset_flag(flag) and is_dry_run(flag or "") != running.dry_run_only:
        warnings.append(
            f"{name}: {running.source} says dry_run_only {str(running.dry_run_only).lower()} but {platform.dry_run_env}="
            f"{shown_value(flag)}; the two disagree on whether the service trades"
        )
    return warnings


@dataclass(frozen=True)
class Validity:
    ok: bool
    why: str


def profile_validity(
    profile: Optional[str],
    image_commit: Optional[str],
    release: Optional[ImageRelease],
    key: str,
    repo: str,
    env: ServiceEnv,
    facts: ProfileFacts,
) -> Validity:
    """Can an image (platform commit, the release it was built with) run `profile` with `env` on this
    service's platform?

    Judged by the facts proved for exactly that commit and release (this run's, or earlier ones a lock
    kept); an image whose release is unknown (a service this program never deployed) is judged by the
    service's configured facts. The env must carry what the profile needs there (snapshot path, manifest
    path, a required config path).
    """
    if profile is None:
        return Validity(
            False,
            f"the live service names no strategy it runs (no readable {QSL_RUNTIME_TARGET_JSON}, {RUNTIME_TARGET_JSON} or {STRATEGY_PROFILE})",
        )
    judgement = facts.judge_image(profile, key, repo, image_commit, release)
    requirements = judgement.requirements
    if requirements is None:
        return Validity(False, judgement.why)
    service_facts = facts.for_service(key)
    platform = None if service_facts is None else PLATFORMS[service_facts.platform]
    needed = []
    if platform is not None and requirements.requires_snapshot_artifacts:
        needed.append(platform.feature_snapshot_env)
    if platform is not None and requirements.requires_snapshot_manifest_path:
        needed.append(platform.manifest_env)
    if platform is not None and requirements.strategy_config_required:
        needed.append(platform.strategy_config_env)
    missing = [name for name in needed if not env.plain.get(name)]
    if missing:
        return Validity(False, f"{judgement.why}, but needs {', '.join(missing)}, which that env lacks")
    return Validity(True, judgement.why)


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


def _showable(spec: ServiceSpec) -> frozenset[str]:
    return frozenset(spec.env) | OWNED_ENV_NAMES


def _strategy_summary(before: ServiceEnv, after: ServiceEnv, spec: ServiceSpec) -> str:
    diff = env_diff(before, after, _showable(spec))
    held = PLATFORMS[spec.platform].strategy_env
    parts: list[str] = []
    # The strategy move as the runtime sees it (an override or a target may run another than STRATEGY_PROFILE says).
    running = running_target(before.plain, spec.platform).profile
    if running != spec.strategy_profile:
        parts.append(f"{STRATEGY_PROFILE} {running or '(unset)'} -> {spec.strategy_profile}")
    for change in diff.details:
        if change.name not in held or (change.name == STRATEGY_PROFILE and running != spec.strategy_profile):
            continue
        if change.after is None:
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
    facts: Optional[ProfileFacts],
    image_digest: Optional[str] = None,
) -> ServicePlan:
    """The phase of one service for this `pulumi up`, what it applies, and why.

    `facts` are the profile facts the gate proved (None when they could not be: the service is blocked).
    `image_digest` is what the configured image's tag resolves to now (the program's invoke, `plan
    --images`): the live image is compared by it, so a service running another image under the right
    `commit-sha` label is not "already deployed".
    """
    platform = PLATFORMS[spec.platform]
    release = bundle.refs
    repo = bundle.repositories.for_platform(spec.platform)
    judgement = None if facts is None else facts.judge_service(spec.strategy_profile, key)
    requirements = None if judgement is None else judgement.requirements
    live_dry_run = None if live is None else live.env.get(platform.dry_run_env)
    dry_run = dry_run_value(spec, live_dry_run, live is not None)

    if live is not None and dry_run is None:
        # `keep` over an unset live flag: nothing about the service changes until the config says which.
        held = live_revision(live)
        return ServicePlan(key, spec, "blocked", f"{platform.dry_run_env}: {DRY_RUN_UNSET}", held, held, live, EnvDiff(), EnvDiff())
    assert dry_run is not None
    if requirements is None:
        # The gate's profile-facts check refuses such a config; fail closed if one reaches here anyway.
        reason = (
            f"the profile facts of {repo}@{short(spec.commit)} with {bundle.describe()} are not proved (the gate could not "
            "prove them and there is no lock that did), so nothing about this service can be judged"
            if judgement is None
            else judgement.why
        )
        placeholder = ServiceRevision(spec.image, spec.commit, ServiceEnv({}), release)
        held = live_revision(live) if live is not None else placeholder
        settings, owned, traffic = applied_inputs(spec, "blocked", held, live)
        fix = "prove them (see the gate's profile-facts checks)" if judgement is None else "fix strategyProfile or the commit"
        return ServicePlan(
            key, spec, "blocked", f"{reason}; {fix}", held, placeholder, live, EnvDiff(), EnvDiff(),
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
        notes: tuple[str, ...] = (),
    ) -> ServicePlan:
        live_env = ServiceEnv({}) if live is None else live_revision(live).env
        settings, owned, traffic = applied_inputs(spec, phase, applied, live)
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
            warnings=live_warnings(spec, bundle, live),
            notes=notes,
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

    match = match_image(live.image, spec.image, image_digest)
    if match.state == "unknown":
        return result(
            "blocked",
            f"whether {spec.service_name} already runs image {short(spec.commit)} is not known: {match.reason}; env held",
            held,
            rollback=rollback,
        )
    if match.state == "same":
        confirmation = confirm_live(live, spec.commit, spec.image, image_digest)
        if confirmation.commit != spec.commit:
            why = confirmation.reason
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

    live_release = live.release_tags.refs
    image_first_env = _hold_strategy_env(desired.env, live, spec)
    assert facts is not None
    live_on_desired = profile_validity(live.profile, spec.commit, release, key, repo, image_first_env, facts)
    desired_on_live = profile_validity(spec.strategy_profile, live.commit, live_release, key, repo, desired.env, facts)
    image_first = ServiceRevision(image=spec.image, commit=spec.commit, env=image_first_env, release=release)
    env_first = ServiceRevision(image=held.image, commit=held.commit, env=desired.env, release=held.release)
    env_pending = not env_diff(image_first.env, desired.env).empty
    unknown_release = (
        "; the live image's release is unknown (not deployed by this program), so only the config's proved facts were consulted"
        if live_release is None
        else ""
    )

    def deploy_image() -> ServicePlan:
        notes: tuple[str, ...] = ()
        if env_pending:
            notes = (
                f"switch deferred until image {short(spec.commit)} is confirmed live; run pulumi up again after "
                f"verify passes ({switch or 'strategy env'})",
            )
        other_image = f" ({match.reason}, under the label {COMMIT_LABEL}={short(live.commit)})" if live.commit == spec.commit else ""
        return result(
            "deploy-image",
            f"image {short(live.commit)} -> {short(spec.commit)}{other_image} first, strategy env held at live values "
            f"({live_on_desired.why})" + unknown_release,
            image_first,
            rollback=rollback,
            next_phase="switch-env" if env_pending else None,
            notes=notes,
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
            notes=(
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
    both = _profiles_valid_on_both(key, repo, spec, release, live, facts)
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
    key: str, repo: str, spec: ServiceSpec, release: ImageRelease, live: LiveService, facts: ProfileFacts
) -> list[str]:
    return sorted(
        name
        for name in facts.enabled_on(key)
        if facts.judge_image(name, key, repo, spec.commit, release).requirements is not None
        and facts.judge_image(name, key, repo, live.commit, live.release_tags.refs).requirements is not None
    )
