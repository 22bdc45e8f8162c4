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
from components.ownership import (
    COMPONENT_TYPE,
    OwnedMetadata,
    Probe,
    ServiceSettings,
    desired_settings,
    owned_metadata,
    registered_metadata,
    release_record,
    service_logical_name,
)
from components.platforms import STRATEGY_PROFILE, looks_secret
from release.config import ServiceSpec
from release.cutover.live import LATEST_100, TrafficTarget
from release.cutover.scheduling import INVOKER_ROLE, JobInputs, is_credential_header, run_uri

# gcloud rewrites these on every manual deploy; they say nothing about what the service runs, and
# diffing on them would turn every preview after a hand deploy into noise.
IGNORED_DRIFT = ["client", "client_version"]


@dataclass(frozen=True)
class StrategyServiceArgs:
    """Everything one strategy service is built from."""

    key: str
    """The service key of the stack config (``longbridge-hk``); names the component in the stack."""

    spec: ServiceSpec
    """The validated service spec: project, region, service name, platform."""

    revision: ServiceRevision
    """The image, commit, env and release to APPLY in this run; computed by pure code before the
    component exists (the end state of the cutover, or an intermediate phase)."""

    provider: gcp.Provider
    """The explicit provider of the service's GCP project, shared by every service in that project."""

    input_mode: Optional[str] = None

    job: Optional[JobInputs] = None
    """The scheduler job that calls the service (computed by `release/cutover/scheduling.py`); None registers no
    job (a blocked service whose live service has none: nothing about it changes)."""

    invoker_member: Optional[str] = None
    """`serviceAccount:<scheduler account>` to hold `roles/run.invoker` on the service, one additive
    member (never a policy, which would drop bindings it does not know); None registers none."""
    """The input mode of the profile the revision runs (``direct_runtime`` | ``snapshot_backed``),
    exported for the operator; None when it is not known."""

    settings: Optional[ServiceSettings] = None
    """Every Cloud Run setting to register (held live values or configured ones, from
    `release.cutover.ordering.applied_inputs`); None = a new service's defaults (docs/platform-facts.md §2)."""

    owned: Optional[OwnedMetadata] = None
    """The owned labels/annotations to register; None = derived from the revision."""

    traffic: tuple[TrafficTarget, ...] = LATEST_100
    """The declared traffic: all to latest, or a blocked service's live split."""


def env_args(env: ServiceEnv) -> list[gcp.cloudrunv2.ServiceTemplateContainerEnvArgs]:
    """Env as Cloud Run container env, sorted by name so the preview diff is stable.

    Secrets become Secret Manager references; their values never pass through this program. A plain
    value that looks like a credential (only ever held from a live service: the config refuses one) is
    registered as a Pulumi secret, so it is encrypted in state and masked in the preview.
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
            value = env.plain[name]
            entries.append(
                gcp.cloudrunv2.ServiceTemplateContainerEnvArgs(
                    name=name, value=pulumi.Output.secret(value) if looks_secret(name) else value
                )
            )
    return entries


def _probe_args(probe: Optional[Probe], args_type: type, http_type: type, tcp_type: type, grpc_type: type) -> Any:
    if probe is None:
        return None
    timing = {
        "initial_delay_seconds": probe.initial_delay_seconds,
        "period_seconds": probe.period_seconds,
        "timeout_seconds": probe.timeout_seconds,
        "failure_threshold": probe.failure_threshold,
    }
    if probe.kind == "http":
        return args_type(http_get=http_type(path=probe.path, port=probe.port), **timing)
    if probe.kind == "tcp":
        return args_type(tcp_socket=tcp_type(port=probe.port), **timing)
    return args_type(grpc=grpc_type(port=probe.port, service=probe.service), **timing)


def _readiness_args(probe: Optional[Probe]) -> Optional[gcp.cloudrunv2.ServiceTemplateContainerReadinessProbeArgs]:
    """A readiness probe: HTTP or gRPC, with a success threshold and no initial delay."""
    if probe is None:
        return None
    run = gcp.cloudrunv2
    return run.ServiceTemplateContainerReadinessProbeArgs(
        http_get=run.ServiceTemplateContainerReadinessProbeHttpGetArgs(path=probe.path, port=probe.port) if probe.kind == "http" else None,
        grpc=run.ServiceTemplateContainerReadinessProbeGrpcArgs(port=probe.port, service=probe.service) if probe.kind == "grpc" else None,
        period_seconds=probe.period_seconds,
        timeout_seconds=probe.timeout_seconds,
        failure_threshold=probe.failure_threshold,
        success_threshold=probe.success_threshold,
    )


def template_args(
    revision: ServiceRevision, settings: ServiceSettings, labels: dict[str, str], annotations: dict[str, str]
) -> gcp.cloudrunv2.ServiceTemplateArgs:
    """The revision template: the owned image/env/labels over every held setting, nothing left out
    (an absent optional input is a removal in the provider)."""
    run = gcp.cloudrunv2
    vpc = settings.vpc_access
    limits = {name: value for name, value in (("cpu", settings.cpu), ("memory", settings.memory)) if value is not None}
    scaling = None
    if settings.min_instances is not None or settings.max_instances is not None:
        scaling = run.ServiceTemplateScalingArgs(min_instance_count=settings.min_instances, max_instance_count=settings.max_instances)
    container = run.ServiceTemplateContainerArgs(
        name=settings.container_name,
        image=revision.image,
        depends_ons=list(settings.depends_on) or None,
        base_image_uri=settings.base_image_uri,
        envs=env_args(revision.env),
        # cpu_idle must be explicit once limits are set, or Cloud Run switches the service to always-allocated
        # CPU; "not set" in the settings means the default, CPU only during requests.
        resources=run.ServiceTemplateContainerResourcesArgs(
            limits=limits or None,
            cpu_idle=settings.cpu_idle if settings.cpu_idle is not None else True,
            startup_cpu_boost=settings.startup_cpu_boost,
        ),
        commands=list(settings.command) or None,
        args=list(settings.args) or None,
        ports=run.ServiceTemplateContainerPortsArgs(container_port=settings.ports[0].container_port, name=settings.ports[0].name)
        if settings.ports
        else None,
        volume_mounts=[
            run.ServiceTemplateContainerVolumeMountArgs(name=m.name, mount_path=m.mount_path, sub_path=m.sub_path)
            for m in settings.volume_mounts
        ]
        or None,
        liveness_probe=_probe_args(
            settings.liveness_probe,
            run.ServiceTemplateContainerLivenessProbeArgs,
            run.ServiceTemplateContainerLivenessProbeHttpGetArgs,
            run.ServiceTemplateContainerLivenessProbeTcpSocketArgs,
            run.ServiceTemplateContainerLivenessProbeGrpcArgs,
        ),
        startup_probe=_probe_args(
            settings.startup_probe,
            run.ServiceTemplateContainerStartupProbeArgs,
            run.ServiceTemplateContainerStartupProbeHttpGetArgs,
            run.ServiceTemplateContainerStartupProbeTcpSocketArgs,
            run.ServiceTemplateContainerStartupProbeGrpcArgs,
        ),
        readiness_probe=_readiness_args(settings.readiness_probe),
    )
    volumes = []
    for volume in settings.volumes:
        if volume.kind == "secret":
            volumes.append(
                run.ServiceTemplateVolumeArgs(
                    name=volume.name,
                    secret=run.ServiceTemplateVolumeSecretArgs(
                        secret=volume.secret or "",
                        default_mode=volume.default_mode,
                        items=[
                            run.ServiceTemplateVolumeSecretItemArgs(path=item.path, version=item.version, mode=item.mode)
                            for item in volume.items
                        ]
                        or None,
                    ),
                )
            )
        else:
            volumes.append(
                run.ServiceTemplateVolumeArgs(
                    name=volume.name,
                    empty_dir=run.ServiceTemplateVolumeEmptyDirArgs(medium=volume.medium, size_limit=volume.size_limit),
                )
            )
    return run.ServiceTemplateArgs(
        revision=settings.revision,
        labels=labels or None,
        annotations=annotations or None,
        service_account=settings.service_account,
        scaling=scaling,
        timeout=settings.timeout,
        max_instance_request_concurrency=settings.concurrency,
        execution_environment=settings.execution_environment,
        session_affinity=settings.session_affinity,
        health_check_disabled=settings.health_check_disabled,
        vpc_access=run.ServiceTemplateVpcAccessArgs(
            connector=vpc.connector,
            egress=vpc.egress,
            network_interfaces=[
                run.ServiceTemplateVpcAccessNetworkInterfaceArgs(
                    network=item.network, subnetwork=item.subnetwork, tags=list(item.tags) or None
                )
                for item in vpc.network_interfaces
            ]
            or None,
        )
        if vpc is not None
        else None,
        volumes=volumes or None,
        containers=[container],
    )


def traffic_args(traffic: tuple[TrafficTarget, ...]) -> list[gcp.cloudrunv2.ServiceTrafficArgs]:
    return [
        gcp.cloudrunv2.ServiceTrafficArgs(
            type="TRAFFIC_TARGET_ALLOCATION_TYPE_LATEST" if target.latest else "TRAFFIC_TARGET_ALLOCATION_TYPE_REVISION",
            revision=None if target.latest else target.revision,
            percent=target.percent,
            tag=target.tag,
        )
        for target in traffic
    ]


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
    scheduler_job: pulumi.Output[Optional[str]]

    def __init__(self, args: StrategyServiceArgs, opts: Optional[pulumi.ResourceOptions] = None) -> None:
        super().__init__(COMPONENT_TYPE, args.key, None, opts)
        spec, revision = args.spec, args.revision
        settings = args.settings if args.settings is not None else desired_settings(spec, None)
        owned = args.owned
        if owned is None:
            owned = owned_metadata(revision.commit, release_record(revision.commit, revision.release), {})
        metadata = registered_metadata(settings, owned)
        service = gcp.cloudrunv2.Service(
            service_logical_name(args.key),
            name=spec.service_name,
            project=spec.project,
            location=spec.region,
            ingress=settings.ingress,
            description=settings.description,
            iap_enabled=settings.iap_enabled,
            labels=metadata.labels or None,
            annotations=metadata.annotations or None,
            deletion_protection=True,
            template=template_args(revision, settings, metadata.template_labels, metadata.template_annotations),
            traffics=traffic_args(args.traffic),
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
        """The per-service map the stack exports under the service key.

        Only values the preview already knows exactly as the update will leave them: the engine checks an
        update's outputs against the saved plan (`pulumi up --plan`), and the provider previews an update
        with the prior computed values (a revision name, a generation), so any output the update itself
        changes fails the run mid-apply ("resource violates plan") after some services changed. The live
        revision is what `python -m release verify` reads instead. `uri` is computed but never changes for
        an existing service; for a new one it is unknown in the preview, which the plan accepts.
        """
        return {
            "name": self.name,
            "project": self.project,
            "region": self.region,
            "uri": self.uri,
            "image": self.image,
            "commit": self.commit,
            "strategyProfile": self.strategy_profile,
            "inputMode": self.input_mode,
            "schedulerJob": self.scheduler_job,
        }


def job_headers(job: JobInputs) -> dict[str, pulumi.Input[str]]:
    """The job's headers (already as the provider reads them back); a credential header held from a job
    without a token (a literal `Authorization`, say) is registered as a Pulumi secret, never in plain text."""
    return {name: pulumi.Output.secret(value) if is_credential_header(name) else value for name, value in sorted(job.headers.items())}


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
            headers=job_headers(job) or None,
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
