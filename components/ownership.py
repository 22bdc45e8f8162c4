"""The ownership rule: which inputs of a Cloud Run service this program owns, and which it holds.

The program owns the image, the `commit-sha` template label, the env (what it derives plus what the stack
config lists) and its release record. Everything else a live service carries is *held*: registered with
its live value, so the engine's diff for it is empty and the state records it. A held setting changes only
when the stack config sets it (`serviceAccount`, `ingress`, `vpcAccess`, `scaling`, `resources`,
`concurrency`, `timeoutSeconds`); a service that does not exist yet starts from docs/platform-facts.md §2.

In the provider an absent optional input means "remove", so holding is the only safe reading of a field
the program does not own: omitting Direct VPC egress cuts IBKR off its IB Gateway.

Pure data and functions (no Pulumi): `release/cutover/ordering.py` computes the settings a run applies with
`desired_settings`, `python -m release plan` shows `settings_diff` of exactly those, and the component
maps the same `ServiceSettings` onto `gcp.cloudrunv2.Service` arguments.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Literal, Mapping, Optional

from pydantic import BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel

from components.platforms import COMMIT_LABEL, PLATFORMS, QPK_TAG_ANNOTATION, UES_TAG_ANNOTATION
from release.config import ServiceSpec
from release.packages import BY_NAME, QPK_PACKAGE, UES_PACKAGE

# What the program registers per service, by name (pure, so `adopt` can name it without Pulumi).
COMPONENT_TYPE = "us-equity-cutover:platform:StrategyService"
SERVICE_TYPE = "gcp:cloudrunv2/service:Service"
# The Cloud Run service's own logical name: not the component's, since Pulumi cannot resolve a parent by
# a name two resources share (`pulumi import --file` names the parent by logical name).
SERVICE_SUFFIX = "-cloud-run"


def service_logical_name(key: str) -> str:
    return f"{key}{SERVICE_SUFFIX}"


# The release record (`release_record`: the commit and every package's ref) on the revision template, so a
# hand deploy of another image (which keeps service-level annotations) cannot leave a record that names the
# wrong release.
RELEASE_RECORD_ANNOTATION = "us-equity-cutover/release"
# What earlier versions of this program wrote at service level; owned, so an update drops them.
LEGACY_RELEASE_ANNOTATIONS = frozenset({QPK_TAG_ANNOTATION, UES_TAG_ANNOTATION})
OWNED_TEMPLATE_LABELS = frozenset({COMMIT_LABEL})
OWNED_TEMPLATE_ANNOTATIONS = frozenset({RELEASE_RECORD_ANNOTATION})
OWNED_SERVICE_ANNOTATIONS = LEGACY_RELEASE_ANNOTATIONS
# gcloud's `--labels commit-sha=...` also labels the service; kept in step with the template label.
OWNED_SERVICE_LABELS = frozenset({COMMIT_LABEL})

# Label/annotation namespaces the Cloud Run v2 API rejects as inputs (v1 shows them: they are Cloud Run's
# own). Every other key is a user key and is held, `client.knative.dev/` and `features.knative.dev/`
# included: gcloud writes those, v2 accepts and reads them back, so leaving one out would be a template
# change (a new revision) on the first `pulumi up`.
SYSTEM_PREFIXES = (
    "run.googleapis.com/",
    "serving.knative.dev/",
    "autoscaling.knative.dev/",
    "cloud.googleapis.com/",
)
# What gcloud records as the image the user deployed (it shows it as the service's image): kept in step
# with the image wherever live has it, never added.
USER_IMAGE_ANNOTATION = "client.knative.dev/user-image"

Ingress = Literal["INGRESS_TRAFFIC_ALL", "INGRESS_TRAFFIC_INTERNAL_ONLY", "INGRESS_TRAFFIC_INTERNAL_LOAD_BALANCER"]
Egress = Literal["ALL_TRAFFIC", "PRIVATE_RANGES_ONLY"]
ExecutionEnvironment = Literal["EXECUTION_ENVIRONMENT_GEN1", "EXECUTION_ENVIRONMENT_GEN2"]

# The stack config speaks gcloud's words; the provider speaks v2 enums.
INGRESS_BY_WORD: Mapping[str, Ingress] = {
    "all": "INGRESS_TRAFFIC_ALL",
    "internal": "INGRESS_TRAFFIC_INTERNAL_ONLY",
    "internal-and-cloud-load-balancing": "INGRESS_TRAFFIC_INTERNAL_LOAD_BALANCER",
}
EGRESS_BY_WORD: Mapping[str, Egress] = {"all-traffic": "ALL_TRAFFIC", "private-ranges-only": "PRIVATE_RANGES_ONLY"}
EXECUTION_ENVIRONMENT_BY_WORD: Mapping[str, ExecutionEnvironment] = {
    "gen1": "EXECUTION_ENVIRONMENT_GEN1",
    "gen2": "EXECUTION_ENVIRONMENT_GEN2",
}
WORD_BY_INGRESS = {value: word for word, value in INGRESS_BY_WORD.items()}
WORD_BY_EGRESS = {value: word for word, value in EGRESS_BY_WORD.items()}

# docs/platform-facts.md §2: what the platforms' workflows deploy with; only a new service starts from these.
DEFAULT_INGRESS: Ingress = "INGRESS_TRAFFIC_INTERNAL_ONLY"
DEFAULT_MAX_INSTANCES = 1
DEFAULT_CPU = "1"
DEFAULT_MEMORY = "512Mi"
DEFAULT_TIMEOUT = "300s"
IBKR_DEFAULT_NETWORK = "default"
IBKR_DEFAULT_SUBNETWORK = "default"


class SettingsModel(BaseModel):
    # camelCase when shown (the settings diff speaks the stack config's and the provider's case).
    model_config = ConfigDict(extra="forbid", frozen=True, alias_generator=to_camel, populate_by_name=True)


class NetworkInterface(SettingsModel):
    network: Optional[str] = None
    subnetwork: Optional[str] = None
    tags: tuple[str, ...] = ()


class VpcAccess(SettingsModel):
    """Direct VPC egress (network interfaces) or a Serverless VPC Access connector, and the egress mode."""

    connector: Optional[str] = None
    egress: Optional[Egress] = None
    network_interfaces: tuple[NetworkInterface, ...] = ()


class SecretItem(SettingsModel):
    path: str
    version: Optional[str] = None
    mode: Optional[int] = None


class Volume(SettingsModel):
    """A revision volume: a Secret Manager secret as files, or an in-memory/disk scratch directory."""

    name: str
    kind: Literal["secret", "empty_dir"]
    secret: Optional[str] = None
    items: tuple[SecretItem, ...] = ()
    default_mode: Optional[int] = None
    medium: Optional[str] = None
    size_limit: Optional[str] = None


class VolumeMount(SettingsModel):
    name: str
    mount_path: str
    sub_path: Optional[str] = None


class Probe(SettingsModel):
    """A liveness, startup or readiness probe (exactly one of http/tcp/grpc is set; readiness has no tcp and
    no initial delay, only readiness has a success threshold)."""

    kind: Literal["http", "tcp", "grpc"]
    path: Optional[str] = None
    port: Optional[int] = None
    service: Optional[str] = None
    initial_delay_seconds: Optional[int] = None
    period_seconds: Optional[int] = None
    timeout_seconds: Optional[int] = None
    failure_threshold: Optional[int] = None
    success_threshold: Optional[int] = None


class ContainerPort(SettingsModel):
    container_port: Optional[int] = None
    name: Optional[str] = None


class ServiceSettings(SettingsModel):
    """Every Cloud Run setting the program does not own, in the provider's (v2) vocabulary.

    None / empty means "not set on the service" (Cloud Run's default applies). Both live readers (gcloud's
    v1 JSON and the v2 invoke) produce this model, so the same service reads the same from either. Values
    are held verbatim (`1000m` stays `1000m`: the provider compares strings, so a rewritten equal value is
    a template change and a new revision); `comparable()` is the normalised view every comparison uses.
    Each field's rule is in `components/service_fields.py`.
    """

    service_account: Optional[str] = None
    ingress: Optional[Ingress] = None
    vpc_access: Optional[VpcAccess] = None
    min_instances: Optional[int] = None
    max_instances: Optional[int] = None
    cpu: Optional[str] = None
    memory: Optional[str] = None
    # None = CPU only during requests (Cloud Run's default); False = always allocated.
    cpu_idle: Optional[bool] = None
    startup_cpu_boost: Optional[bool] = None
    concurrency: Optional[int] = None
    timeout: Optional[str] = None
    volumes: tuple[Volume, ...] = ()
    volume_mounts: tuple[VolumeMount, ...] = ()
    liveness_probe: Optional[Probe] = None
    startup_probe: Optional[Probe] = None
    command: tuple[str, ...] = ()
    args: tuple[str, ...] = ()
    ports: tuple[ContainerPort, ...] = ()
    execution_environment: Optional[ExecutionEnvironment] = None
    session_affinity: Optional[bool] = None
    description: Optional[str] = None
    iap_enabled: Optional[bool] = None
    # The template's own revision name, when a deploy named it: held while the template does not change.
    revision: Optional[str] = None
    health_check_disabled: Optional[bool] = None
    container_name: Optional[str] = None
    depends_on: tuple[str, ...] = ()
    base_image_uri: Optional[str] = None
    readiness_probe: Optional[Probe] = None
    labels: dict[str, str] = Field(default_factory=dict)
    annotations: dict[str, str] = Field(default_factory=dict)
    template_labels: dict[str, str] = Field(default_factory=dict)
    template_annotations: dict[str, str] = Field(default_factory=dict)

    def comparable(self) -> "ServiceSettings":
        """The normalised view that comparisons use (`1000m` == `1`, `512Mi` == `0.5Gi`); never registered."""
        return self.model_copy(update={"cpu": normalize_cpu(self.cpu), "memory": normalize_memory(self.memory)})


# The settings diff names fields as an operator writes them; the order is the order `plan` lists them in.
FIELD_NAMES: Mapping[str, str] = {
    "service_account": "serviceAccount",
    "ingress": "ingress",
    "vpc_access": "vpcAccess",
    "min_instances": "scaling.minInstances",
    "max_instances": "scaling.maxInstances",
    "cpu": "resources.cpu",
    "memory": "resources.memory",
    "cpu_idle": "resources.cpuIdle",
    "startup_cpu_boost": "resources.startupCpuBoost",
    "concurrency": "concurrency",
    "timeout": "timeout",
    "volumes": "volumes",
    "volume_mounts": "volumeMounts",
    "liveness_probe": "livenessProbe",
    "startup_probe": "startupProbe",
    "command": "command",
    "args": "args",
    "ports": "ports",
    "execution_environment": "executionEnvironment",
    "session_affinity": "sessionAffinity",
    "description": "description",
    "iap_enabled": "iapEnabled",
    "revision": "template.revision",
    "health_check_disabled": "template.healthCheckDisabled",
    "container_name": "container.name",
    "depends_on": "container.dependsOn",
    "base_image_uri": "container.baseImageUri",
    "readiness_probe": "readinessProbe",
    "labels": "labels",
    "annotations": "annotations",
    "template_labels": "template.labels",
    "template_annotations": "template.annotations",
}


def is_system_key(key: str) -> bool:
    return key.startswith(SYSTEM_PREFIXES)


def user_entries(entries: Mapping[str, str], owned: frozenset[str] = frozenset()) -> dict[str, str]:
    """Labels/annotations as held settings: without Cloud Run's own keys and without the owned ones."""
    return {key: value for key, value in sorted(entries.items()) if not is_system_key(key) and key not in owned}


def default_settings(spec: ServiceSpec) -> ServiceSettings:
    """docs/platform-facts.md §2 for a service that does not exist yet (never applied over a live value)."""
    platform = PLATFORMS[spec.platform]
    vpc = None
    if spec.platform == "ibkr":
        # How IBKR reaches its IB Gateway; without it the service cannot trade.
        vpc = VpcAccess(
            egress="PRIVATE_RANGES_ONLY",
            network_interfaces=(NetworkInterface(network=IBKR_DEFAULT_NETWORK, subnetwork=IBKR_DEFAULT_SUBNETWORK),),
        )
    return ServiceSettings(
        service_account=platform.default_service_account(spec.project),
        ingress=DEFAULT_INGRESS,
        vpc_access=vpc,
        max_instances=DEFAULT_MAX_INSTANCES,
        cpu=DEFAULT_CPU,
        memory=DEFAULT_MEMORY,
        concurrency=platform.concurrency,
        timeout=DEFAULT_TIMEOUT,
    )


def configured_settings(spec: ServiceSpec) -> dict[str, Any]:
    """The settings the stack config sets for this service (field -> value); absent fields are not here."""
    values: dict[str, Any] = {}
    if spec.service_account is not None:
        values["service_account"] = spec.service_account
    if spec.ingress is not None:
        values["ingress"] = INGRESS_BY_WORD[spec.ingress]
    if spec.vpc_access is not None:
        vpc = spec.vpc_access
        interfaces: tuple[NetworkInterface, ...] = ()
        if vpc.network is not None or vpc.subnetwork is not None:
            interfaces = (NetworkInterface(network=vpc.network, subnetwork=vpc.subnetwork, tags=tuple(vpc.tags)),)
        values["vpc_access"] = VpcAccess(connector=vpc.connector, egress=EGRESS_BY_WORD[vpc.egress], network_interfaces=interfaces)
    if spec.scaling is not None:
        if spec.scaling.min_instances is not None:
            values["min_instances"] = spec.scaling.min_instances or None
        if spec.scaling.max_instances is not None:
            values["max_instances"] = spec.scaling.max_instances
    if spec.resources is not None:
        resources = spec.resources
        if resources.cpu is not None:
            values["cpu"] = resources.cpu
        if resources.memory is not None:
            values["memory"] = resources.memory
        if resources.cpu_idle is not None:
            values["cpu_idle"] = normalize_cpu_idle(resources.cpu_idle)
        if resources.startup_cpu_boost is not None:
            values["startup_cpu_boost"] = resources.startup_cpu_boost or None
    if spec.concurrency is not None:
        values["concurrency"] = spec.concurrency
    if spec.timeout_seconds is not None:
        values["timeout"] = f"{spec.timeout_seconds}s"
    return values


def desired_settings(spec: ServiceSpec, live: Optional[ServiceSettings]) -> ServiceSettings:
    """THE rule: the live settings (the defaults only for a new service), with what the config sets on top.

    A configured value equal to the live one once normalised (`cpu: "1"` over a live `1000m`) keeps the
    live spelling: registering the other would be a template change in the provider, a new revision.
    """
    base = live if live is not None else default_settings(spec)
    configured = configured_settings(spec)
    if live is not None:
        for name, normalise in (("cpu", normalize_cpu), ("memory", normalize_memory)):
            if name in configured and normalise(configured[name]) == normalise(getattr(live, name)):
                configured[name] = getattr(live, name)
    return base.model_copy(update=configured)


def normalize_cpu(cpu: Optional[str]) -> Optional[str]:
    """`1000m` and `1` are the same CPU limit: whole CPUs compare as whole numbers. For comparing only."""
    if cpu is not None and cpu.endswith("m") and cpu[:-1].isdigit() and int(cpu[:-1]) % 1000 == 0:
        return str(int(cpu[:-1]) // 1000)
    return cpu


_MEMORY_UNITS = {"Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40, "k": 10**3, "M": 10**6, "G": 10**9, "T": 10**12}


def normalize_memory(memory: Optional[str]) -> Optional[str]:
    """A memory limit as a number of bytes where it parses (`512Mi` == `0.5Gi`), else as written. For comparing only."""
    if memory is None:
        return None
    for unit, factor in _MEMORY_UNITS.items():
        number = memory[: -len(unit)]
        if memory.endswith(unit) and number.replace(".", "", 1).isdigit() and len(number) <= 12:
            value = float(number) * factor
            return str(int(value)) if value.is_integer() else memory
    return memory


def normalize_cpu_idle(value: Optional[bool]) -> Optional[bool]:
    """True is Cloud Run's default (CPU only during requests), so it reads as "not set"."""
    return False if value is False else None


@dataclass(frozen=True)
class SettingChange:
    """One setting this update changes: live -> desired, as JSON-able values (None = not set)."""

    field: str
    live: Any
    desired: Any

    def to_json(self) -> dict[str, Any]:
        return {"field": self.field, "live": self.live, "desired": self.desired}


def _shown(value: Any) -> Any:
    if isinstance(value, BaseModel):
        return value.model_dump(mode="json", by_alias=True, exclude_none=True, exclude_defaults=True)
    if isinstance(value, tuple):
        return [_shown(item) for item in value]
    if isinstance(value, dict):
        return dict(sorted(value.items()))
    return value


def settings_diff(live: Optional[ServiceSettings], desired: ServiceSettings) -> tuple[SettingChange, ...]:
    """Every setting that differs, in `FIELD_NAMES` order. A held field is equal by construction, so it
    never appears; for a new service every field that will be set is listed against None."""
    before = live if live is not None else ServiceSettings()
    compared_before, compared_desired = before.comparable(), desired.comparable()
    changes = []
    for name, shown_name in FIELD_NAMES.items():
        if getattr(compared_before, name) != getattr(compared_desired, name):
            changes.append(SettingChange(shown_name, _shown(getattr(before, name)), _shown(getattr(desired, name))))
    return tuple(changes)


def release_record(commit: str, release: Optional[Mapping[str, str]]) -> Optional[str]:
    """The record written with an image: its commit and the release it was built with; None when the
    release is unknown (never a guess). The seed's two-package release keeps its form
    (`<commit> <qpk ref> <ues ref>`); any other lists every package (`<commit> <name>@<ref> ...`)."""
    if not commit or not release:
        return None
    if set(release) == {QPK_PACKAGE, UES_PACKAGE}:
        return f"{commit} {release[QPK_PACKAGE]} {release[UES_PACKAGE]}"
    return " ".join([commit, *(f"{name}@{release[name]}" for name in sorted(release))])


RECORD_REF = re.compile(r"[A-Za-z0-9][A-Za-z0-9._/+-]{0,99}")


def parse_release_record(text: Optional[str]) -> Optional[tuple[str, dict[str, str]]]:
    """(commit, distribution name -> ref) of a record, or None when it is absent or not a record: a live
    annotation is data, so only known packages with ref-shaped values, each once, are read."""
    if not text or len(text) > 2000:
        return None
    parts = text.split()
    if len(parts) == 3 and "@" not in parts[1] + parts[2]:
        refs = {QPK_PACKAGE: parts[1], UES_PACKAGE: parts[2]}
    else:
        pairs = [part.partition("@") for part in parts[1:]]
        refs = {name: ref for name, _, ref in pairs}
        if not pairs or len(refs) != len(pairs) or any(not at or name not in BY_NAME for name, at, _ in pairs):
            return None
    if not all(RECORD_REF.fullmatch(ref) for ref in refs.values()):
        return None
    return parts[0], refs


@dataclass(frozen=True)
class OwnedMetadata:
    """The label/annotation values this program owns, as it registers them beside the held ones."""

    template_labels: Mapping[str, str]
    template_annotations: Mapping[str, str]
    labels: Mapping[str, str]
    annotations: Mapping[str, str]


def owned_metadata(
    commit: str,
    record: Optional[str],
    live_service_labels: Mapping[str, str],
    new_image: Optional[str] = None,
    live_settings: Optional[ServiceSettings] = None,
) -> OwnedMetadata:
    """What a changing update writes: the commit label, the release record; legacy annotations dropped.

    A service-level `commit-sha` (gcloud's `--labels` sets one) is kept in step only where the live
    service has one; the template label is what "confirmed live" reads. When the update deploys another
    image (`new_image`), gcloud's `client.knative.dev/user-image` follows it wherever live has one (held
    as it is otherwise): gcloud shows that annotation as the service's image.
    """
    template_annotations = {RELEASE_RECORD_ANNOTATION: record} if record else {}
    annotations = {}
    if new_image is not None and live_settings is not None:
        if USER_IMAGE_ANNOTATION in live_settings.template_annotations:
            template_annotations[USER_IMAGE_ANNOTATION] = new_image
        if USER_IMAGE_ANNOTATION in live_settings.annotations:
            annotations[USER_IMAGE_ANNOTATION] = new_image
    return OwnedMetadata(
        template_labels={COMMIT_LABEL: commit} if commit else {},
        template_annotations=template_annotations,
        labels={COMMIT_LABEL: commit} if commit and COMMIT_LABEL in live_service_labels else {},
        annotations=annotations,
    )


@dataclass(frozen=True)
class Metadata:
    """Labels and annotations exactly as registered: held settings merged with the owned values."""

    labels: dict[str, str]
    annotations: dict[str, str]
    template_labels: dict[str, str]
    template_annotations: dict[str, str]


def registered_metadata(settings: ServiceSettings, owned: OwnedMetadata) -> Metadata:
    return Metadata(
        labels=dict(sorted({**settings.labels, **owned.labels}.items())),
        annotations=dict(sorted({**settings.annotations, **owned.annotations}.items())),
        template_labels=dict(sorted({**settings.template_labels, **owned.template_labels}.items())),
        template_annotations=dict(sorted({**settings.template_annotations, **owned.template_annotations}.items())),
    )
