"""The Pulumi program: stack config -> release gate -> one provider per project -> one service per key.

`__main__.py` only calls `run_program()`; tests and the benchmark call the steps directly. Like
`strategy_service.py` this is a Pulumi shell (it imports Pulumi); the rules it applies are the pure
functions of `components/env.py`, `components/profiles.py` and `release/`.

Order matters: nothing is registered until the config is valid and the gate has passed, so a bad
config or an unverified release fails `pulumi preview` with an empty plan, never a partial one.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Callable, Mapping, Optional

import pulumi
import pulumi_gcp as gcp

from components.env import ServiceRevision
from components.platforms import STRATEGY_PROFILE
from components.profiles import ProfileFacts
from components.strategy_service import StrategyService, StrategyServiceArgs
from release.config import ConfigError, ServiceSpec, StackConfig
from release.cutover.images import ImageLookupError, ImageMissingError, ResolvedImage, pin_digest, resolve_image_invoke
from release.cutover.live import LiveService, LiveStateError, read_cloud_run_v2
from release.cutover.ordering import ServicePlan, plan_service
from release.cutover.scheduling import (
    INVOKER_ROLE,
    JobInputs,
    JobReadError,
    LiveSchedulerJob,
    SchedulingInputError,
    from_policy_json,
    held_job_inputs,
    job_inputs,
    read_job_api,
    scheduler_account,
)
from release.local_files import InputFileError, load_json
from release.stack import PROJECT_FILE, load_pulumi_config, project_dir, raise_profile_problems, stack_file

LiveReader = Callable[[ServiceSpec, "gcp.Provider"], Optional[LiveService]]
"""How the program sees one live service: (spec, its project's provider) -> live state, None when new."""


def read_live_service(spec: ServiceSpec, provider: gcp.Provider) -> Optional[LiveService]:
    """The live service through the `getService` invoke (v2 shape); only the provider's exact
    "<service id> not found" means it is new (release/cutover/live.py `is_not_found_error`)."""
    return read_cloud_run_v2(
        lambda: gcp.cloudrunv2.get_service(
            name=spec.service_name,
            project=spec.project,
            location=spec.region,
            opts=pulumi.InvokeOptions(provider=provider),
        ),
        spec,
    )


ImageResolver = Callable[[str, ServiceSpec, "gcp.Provider"], ResolvedImage]
"""How the program proves an image exists: (key, spec, its project's provider) -> the resolved digest."""


def resolve_image(key: str, spec: ServiceSpec, provider: gcp.Provider) -> ResolvedImage:
    """The configured image through the `get_docker_image` invoke on the service's project provider."""
    return resolve_image_invoke(
        key,
        spec,
        lambda image: gcp.artifactregistry.get_docker_image(
            location=image.location,
            project=image.project,
            repository_id=image.repository_id,
            image_name=image.image_name,
            opts=pulumi.InvokeOptions(provider=provider),
        ),
    )


def resolve_images(config: StackConfig, providers: "Providers", resolver: ImageResolver) -> dict[str, ResolvedImage]:
    """Every service's image, before anything is registered; a missing or unreadable one stops the run.

    Each distinct image is looked up once: services built from one commit share it, and every invoke is a
    round trip the run waits on (bench/program_bench.py).
    """
    resolved: dict[str, ResolvedImage] = {}
    by_image: dict[tuple[str, str], ResolvedImage] = {}
    for key, spec in sorted(config.services.items()):
        image = (spec.project, spec.image)
        if image not in by_image:
            try:
                by_image[image] = resolver(key, spec, providers.for_project(spec.project))
            except (ImageMissingError, ImageLookupError) as error:
                raise pulumi.RunError(str(error)) from None
        resolved[key] = by_image[image]
    return resolved


JobReader = Callable[[ServiceSpec], Optional[LiveSchedulerJob]]
"""How the program sees a service's live scheduler job; None when it has none."""


def read_scheduler_job(spec: ServiceSpec) -> Optional[LiveSchedulerJob]:
    """The live job through the Cloud Scheduler API: pulumi-gcp has no data source for a job."""
    return read_job_api(spec)


def has_live_invoker(spec: ServiceSpec, provider: gcp.Provider, member: str) -> bool:
    """Does the live service's IAM policy already grant `member` the invoker role (`getServiceIamPolicy`)?"""
    try:
        result = gcp.cloudrunv2.get_service_iam_policy(
            location=spec.region, name=spec.service_name, project=spec.project, opts=pulumi.InvokeOptions(provider=provider)
        )
        where = "gcp.cloudrunv2.get_service_iam_policy"
        policy = from_policy_json(load_json(result.policy_data or "{}", where, "read the policy again"), where)
    except (SchedulingInputError, InputFileError) as error:
        raise pulumi.RunError(f"{spec.service_name}: its IAM policy is malformed ({error}); nothing was changed") from None
    except Exception as error:  # an invoke failure (403, network): the live binding is unknown, so stop
        raise pulumi.RunError(
            f"{spec.service_name}: its IAM policy could not be read ({str(error)[:300]}); check run.services.getIamPolicy "
            "for the provider's credentials. Nothing was changed."
        ) from None
    return policy.has(INVOKER_ROLE, member)


def scheduling_of(
    plan: ServicePlan, live_job: Optional[LiveSchedulerJob], provider: gcp.Provider
) -> tuple[Optional[JobInputs], Optional[str]]:
    """The job and invoker member this update registers. Blocked: both exactly as live (the job held
    field for field, the member only if live already has it); otherwise the job from config, else live,
    else the defaults, and the member always (it is additive: an existing binding is a no-op)."""
    spec = plan.spec
    member = f"serviceAccount:{scheduler_account(spec)}"
    if plan.phase == "blocked":
        job = None if live_job is None else held_job_inputs(spec, live_job)
        return job, member if has_live_invoker(spec, provider, member) else None
    return job_inputs(spec, live_job), member


def load_config() -> StackConfig:
    """The stack's validated config; every problem becomes one line of a failed preview."""
    try:
        return load_pulumi_config()
    except ConfigError as error:
        raise pulumi.RunError(error.report()) from None


def check_release(config: StackConfig, environ: Optional[Mapping[str, str]] = None) -> tuple[StackConfig, ProfileFacts]:
    """Run the release gate synchronously; a failing gate stops the program before any registration.
    Returns the config as the gate judged it (a bundle release with the refs its bundle gave) and the
    profile facts it proved.

    The stack's lock (when there is one) is what `tag-immutable` compares against, and its profile facts
    are the history older live images are judged by; the program never falls back to the lock when the
    source is unreachable: `pulumi up` always re-verifies online, and uses the facts of its own gate run.
    The rules that need those facts (the config's second validation stage) run here too.
    """
    # Imported here so the component and its tests do not depend on the gate's source adapters.
    from release.gate.checks import run_gate
    from release.gate.lock import LockError, lock_path, read_lock
    from release.gate.selection import source_from_env
    from release.gate.sources import SourceSelectionError

    try:
        source = source_from_env(config.release, os.environ if environ is None else environ)
        lock = read_lock(lock_path(stack_file(pulumi.get_stack(), program_project_dir())))
    except (SourceSelectionError, LockError, ConfigError) as error:
        raise pulumi.RunError(f"release gate: {error}") from None
    report = run_gate(config, source, lock)
    if not report.ok:
        raise pulumi.RunError(report.render_text())
    proved = report.facts.profiles
    assert proved is not None, "a passing gate proved the profile facts"
    judged = report.config or config
    facts = proved.for_config(judged)  # each service judged only by the facts of exactly its commit and release
    try:
        raise_profile_problems(judged, facts, f"stack {pulumi.get_stack()} config")
    except ConfigError as error:
        raise pulumi.RunError(error.report()) from None
    return judged, facts


def program_project_dir() -> Path:
    """The directory of the project's `Pulumi.yaml`, where the stack's lock sits: the engine's root
    directory when it names one (the program may run from elsewhere), else found from the current directory."""
    root = pulumi.get_root_directory()
    if root and Path(root).is_absolute() and (Path(root) / PROJECT_FILE).is_file():
        return Path(root)
    return project_dir()


class Providers:
    """One explicit `gcp.Provider` per GCP project, created on first use and shared by its services."""

    def __init__(self) -> None:
        self._by_project: dict[str, gcp.Provider] = {}

    def for_project(self, project: str) -> gcp.Provider:
        provider = self._by_project.get(project)
        if provider is None:
            provider = gcp.Provider(f"gcp-{project}", project=project)
            self._by_project[project] = provider
        return provider


def input_mode_of(revision: ServiceRevision, key: str, repo: str, facts: ProfileFacts) -> Optional[str]:
    """The input mode of the profile the revision actually runs (during deploy-image: the live one)."""
    profile = revision.env.plain.get(STRATEGY_PROFILE)
    if profile is None:
        return None
    requirements = facts.judge_image(profile, key, repo, revision.commit or None, revision.release).requirements
    return None if requirements is None else requirements.input_mode


def deploy(
    config: StackConfig,
    facts: ProfileFacts,
    read_live: LiveReader = read_live_service,
    resolver: ImageResolver = resolve_image,
    read_job: Optional[JobReader] = None,
) -> dict[str, ServicePlan]:
    """Register every service of a validated, gated config at the phase the ordering rule allows.

    A service never changes image and strategy env in one update: `plan_service` (the same function
    `python -m release plan` shows) decides what this run applies; a blocked service is held as it is live.
    """
    providers = Providers()
    images = resolve_images(config, providers, resolver)
    # Every live read and every phase first, registrations after: a failed read stops the run with
    # nothing registered, and the reads don't queue behind registrations (that made each invoke ~15x
    # slower; see bench/program_bench.py).
    try:
        plans = {
            key: plan_service(
                key, spec, config.release_for(key), read_live(spec, providers.for_project(spec.project)), facts, images[key].digest
            )
            for key, spec in sorted(config.services.items())
        }
    except LiveStateError as error:
        # The CLI's one paragraph, not a traceback: malformed live state is an expected failure.
        raise pulumi.RunError(f"live state: {error}") from None
    reader = read_job or read_scheduler_job
    try:
        live_jobs = {key: reader(config.services[key]) for key in plans}
    except JobReadError as error:
        raise pulumi.RunError(f"scheduler job: {error}") from None
    scheduling = {key: scheduling_of(plan, live_jobs[key], providers.for_project(plan.spec.project)) for key, plan in plans.items()}
    for key, plan in plans.items():
        spec = config.services[key]
        provider = providers.for_project(spec.project)
        for warning in plan.warnings:
            pulumi.log.warn(f"{key}: {warning}")
        if plan.phase == "blocked":
            pulumi.log.warn(f"{key}: blocked, held at its live state: {plan.reason}")
        image = images[key]
        service = StrategyService(
            StrategyServiceArgs(
                key=key,
                spec=spec,
                # By digest: a tag pushed again between the review and this update cannot change what runs.
                # A service that does not change (blocked, in-sync) keeps its live reference, tag or digest.
                revision=plan.applied if plan.phase in ("blocked", "in-sync") else pin_digest(plan.applied, image),
                provider=provider,
                input_mode=input_mode_of(plan.applied, key, config.release.repositories.for_platform(spec.platform), facts),
                job=scheduling[key][0],
                invoker_member=scheduling[key][1],
                settings=plan.applied_settings,
                owned=plan.applied_owned,
                traffic=plan.applied_traffic,
            )
        )
        pulumi.export(key, {**service.outputs(), "phase": plan.phase, "imageTag": image.tag})
    return plans


def run_program(
    environ: Optional[Mapping[str, str]] = None,
    read_live: LiveReader = read_live_service,
    resolver: ImageResolver = resolve_image,
    read_job: Optional[JobReader] = None,
) -> dict[str, ServicePlan]:
    """The whole program, as `pulumi preview/up` runs it."""
    config, facts = check_release(load_config(), environ)
    return deploy(config, facts, read_live, resolver, read_job)
