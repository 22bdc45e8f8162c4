"""`StrategyService`: one Cloud Run strategy service as a Pulumi component.

A translator only. Every rule (which env, which image, which release) was applied before the component
is constructed: it receives a validated `ServiceSpec` and the `ServiceRevision` to apply in this run and
maps them onto `gcp.cloudrunv2.Service` arguments and resource options. Keeping rules out of here means
the CLI's plan and this program can never disagree about what a service should run.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Optional

import pulumi
import pulumi_gcp as gcp

from components.env import ServiceEnv, ServiceRevision
from components.platforms import (
    COMMIT_LABEL,
    CPU,
    INGRESS,
    MAX_INSTANCES,
    MEMORY,
    PLATFORMS,
    QPK_TAG_ANNOTATION,
    STRATEGY_PROFILE,
    TIMEOUT,
    UES_TAG_ANNOTATION,
)
from release.config import ServiceSpec
from release.scheduling import INVOKER_ROLE, JobInputs, run_uri

COMPONENT_TYPE = "us-equity-cutover:platform:StrategyService"

# gcloud rewrites these on every manual deploy; they say nothing about what the service runs, and
# diffing on them would turn every preview after a hand deploy into noise.
IGNORED_DRIFT = ["client", "client_version"]


@dataclass(frozen=True)
class StrategyServiceArgs:
    """Everything one strategy service is built from."""

    key: str
    """The service key of the stack config (``longbridge-hk``); names the component in the stack."""

    spec: ServiceSpec
    """The validated service spec: project, region, service name, platform, service account."""

    revision: ServiceRevision
    """The image, commit, env and release to APPLY in this run; computed by pure code before the
    component exists (the end state of the cutover, or an intermediate phase)."""

    provider: gcp.Provider
    """The explicit provider of the service's GCP project, shared by every service in that project."""

    input_mode: Optional[str] = None

    job: Optional[JobInputs] = None
    """The scheduler job that calls the service (computed by `release/scheduling.py`); None registers no
    job (a blocked service whose live service has none: nothing about it changes)."""

    invoker_member: Optional[str] = None
    """`serviceAccount:<scheduler account>` to hold `roles/run.invoker` on the service, one additive
    member (never a policy, which would drop bindings it does not know); None registers none."""
    """The input mode of the profile the revision runs (``direct_runtime`` | ``snapshot_backed``),
    exported for the operator; None when it is not known."""


def env_args(env: ServiceEnv) -> list[gcp.cloudrunv2.ServiceTemplateContainerEnvArgs]:
    """Env as Cloud Run container env, sorted by name so the preview diff is stable.

    Secrets become Secret Manager references; their values never pass through this program.
    """
    entries: list[gcp.cloudrunv2.ServiceTemplateContainerEnvArgs] = []
    for name in env.names():
        if name in env.secrets:
            ref = env.secrets[name]
            entries.append(
                gcp.cloudrunv2.ServiceTemplateContainerEnvArgs(
                    name=name,
                    value_source=gcp.cloudrunv2.ServiceTemplateContainerEnvValueSourceArgs(
                        secret_key_ref=gcp.cloudrunv2.ServiceTemplateContainerEnvValueSourceSecretKeyRefArgs(
                            secret=ref.secret, version=ref.version
                        )
                    ),
                )
            )
        else:
            entries.append(gcp.cloudrunv2.ServiceTemplateContainerEnvArgs(name=name, value=env.plain[name]))
    return entries


def release_annotations(revision: ServiceRevision) -> dict[str, str]:
    """The release the image carries; omitted when unknown so we never record a guess."""
    pairs = ((QPK_TAG_ANNOTATION, revision.qpk_tag), (UES_TAG_ANNOTATION, revision.ues_tag))
    return {name: value for name, value in pairs if value is not None}


class StrategyService(pulumi.ComponentResource):
    """One Cloud Run service running a US-equity strategy on one broker platform."""

    name: pulumi.Output[str]
    project: pulumi.Output[str]
    region: pulumi.Output[str]
    uri: pulumi.Output[str]
    image: pulumi.Output[str]
    commit: pulumi.Output[str]
    strategy_profile: pulumi.Output[Optional[str]]
    input_mode: pulumi.Output[Optional[str]]
    latest_ready_revision: pulumi.Output[str]
    scheduler_job: pulumi.Output[Optional[str]]

    def __init__(self, args: StrategyServiceArgs, opts: Optional[pulumi.ResourceOptions] = None) -> None:
        super().__init__(COMPONENT_TYPE, args.key, None, opts)
        spec, revision = args.spec, args.revision
        platform = PLATFORMS[spec.platform]

        template = gcp.cloudrunv2.ServiceTemplateArgs(
            labels={COMMIT_LABEL: revision.commit},
            service_account=spec.service_account or platform.default_service_account(spec.project),
            scaling=gcp.cloudrunv2.ServiceTemplateScalingArgs(max_instance_count=MAX_INSTANCES),
            timeout=TIMEOUT,
            max_instance_request_concurrency=platform.concurrency,
            containers=[
                gcp.cloudrunv2.ServiceTemplateContainerArgs(
                    image=revision.image,
                    envs=env_args(revision.env),
                    # cpu_idle must be explicit once limits are set, or Cloud Run switches the service to
                    # always-allocated CPU (a cost and behaviour change nobody asked for).
                    resources=gcp.cloudrunv2.ServiceTemplateContainerResourcesArgs(limits={"cpu": CPU, "memory": MEMORY}, cpu_idle=True),
                )
            ],
        )
        service = gcp.cloudrunv2.Service(
            args.key,
            name=spec.service_name,
            project=spec.project,
            location=spec.region,
            ingress=INGRESS,
            annotations=release_annotations(revision),
            deletion_protection=True,
            template=template,
            # "Confirmed live" means the latest ready revision serves all traffic; say so instead of relying
            # on whatever split a hand deploy left behind.
            traffics=[gcp.cloudrunv2.ServiceTrafficArgs(type="TRAFFIC_TARGET_ALLOCATION_TYPE_LATEST", percent=100)],
            opts=pulumi.ResourceOptions(
                parent=self,
                provider=args.provider,
                # A service name is the identity of a live trading account: never delete or replace it
                # from a preview; an operator must unprotect it deliberately.
                protect=True,
                ignore_changes=IGNORED_DRIFT,
            ),
        )

        self.name = service.name
        self.project = service.project
        self.region = service.location
        self.uri = service.uri
        self.image = pulumi.Output.from_input(revision.image)
        self.commit = pulumi.Output.from_input(revision.commit)
        # A phase that holds the live env may apply a revision whose profile is not the spec's.
        self.strategy_profile = pulumi.Output.from_input(revision.env.plain.get(STRATEGY_PROFILE))
        self.input_mode = pulumi.Output.from_input(args.input_mode)
        self.latest_ready_revision = service.latest_ready_revision
        self.scheduler_job = pulumi.Output.from_input(None if args.job is None else args.job.name)
        if args.job is not None:
            scheduler_job(args.key, args.job, service, self, args.provider)
        if args.invoker_member is not None:
            gcp.cloudrunv2.ServiceIamMember(
                f"{args.key}-invoker",
                project=spec.project,
                location=spec.region,
                name=service.name,
                role=INVOKER_ROLE,
                member=args.invoker_member,
                opts=pulumi.ResourceOptions(parent=self, provider=args.provider),
            )
        self.register_outputs(self.outputs())

    def outputs(self) -> dict[str, pulumi.Output[Any]]:
        """The per-service map the stack exports under the service key."""
        return {
            "name": self.name,
            "project": self.project,
            "region": self.region,
            "uri": self.uri,
            "image": self.image,
            "commit": self.commit,
            "strategyProfile": self.strategy_profile,
            "inputMode": self.input_mode,
            "latestReadyRevision": self.latest_ready_revision,
            "schedulerJob": self.scheduler_job,
        }


def scheduler_job(
    key: str, job: JobInputs, service: gcp.cloudrunv2.Service, parent: pulumi.Resource, provider: gcp.Provider
) -> gcp.cloudscheduler.Job:
    """The job as its own child resource (logical name `<key>-scheduler`); its target is the service's
    URL unless the job is held as live (blocked), when it keeps whatever URL it had."""
    uri = job.uri if job.uri is not None else service.uri.apply(run_uri)
    audience = job.audience if job.audience is not None else service.uri
    retry = job.retry_config
    return gcp.cloudscheduler.Job(
        f"{key}-scheduler",
        name=job.name,
        project=job.project,
        region=job.region,
        schedule=job.schedule,
        time_zone=job.time_zone,
        paused=job.paused,
        attempt_deadline=job.attempt_deadline,
        description=job.description,
        http_target=gcp.cloudscheduler.JobHttpTargetArgs(
            uri=uri,
            http_method=job.http_method,
            headers=dict(job.headers) or None,
            body=job.body,
            oidc_token=gcp.cloudscheduler.JobHttpTargetOidcTokenArgs(service_account_email=job.service_account, audience=audience),
        ),
        retry_config=gcp.cloudscheduler.JobRetryConfigArgs(
            retry_count=retry.get("retryCount"),
            max_retry_duration=retry.get("maxRetryDuration"),
            min_backoff_duration=retry.get("minBackoffDuration"),
            max_backoff_duration=retry.get("maxBackoffDuration"),
            max_doublings=retry.get("maxDoublings"),
        )
        if retry
        else None,
        opts=pulumi.ResourceOptions(
            parent=parent,
            provider=provider,
            # The job is what makes the strategy trade: removing it must be as deliberate as removing the service.
            protect=True,
        ),
    )
