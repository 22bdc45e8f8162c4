"""Live state of a Cloud Run service: one typed model, read from gcloud JSON or the Pulumi invoke.

Two shapes reach this module: `gcloud run services describe --format=json` (Knative serving v1) for the
CLI, and `gcp.cloudrunv2.get_service` (Cloud Run v2) for the Pulumi program. Both become `LiveService`;
every rule downstream (ordering, plan, verify) reads only that model.

Malformed or mismatched input is a `LiveStateError`, never "no live state": treating an unreadable
service as new would plan a create over a service that is running real orders.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable, Literal, Mapping, Optional, Protocol, Sequence

from pydantic import BaseModel, ConfigDict, Field, ValidationError
from pydantic.alias_generators import to_camel

from components.ownership import (
    EGRESS_BY_WORD,
    EXECUTION_ENVIRONMENT_BY_WORD,
    INGRESS_BY_WORD,
    LEGACY_RELEASE_ANNOTATIONS,
    OWNED_SERVICE_LABELS,
    OWNED_TEMPLATE_ANNOTATIONS,
    OWNED_TEMPLATE_LABELS,
    RELEASE_RECORD_ANNOTATION,
    ContainerPort,
    NetworkInterface,
    Probe,
    SecretItem,
    ServiceSettings,
    Volume,
    VolumeMount,
    VpcAccess,
    normalize_cpu_idle,
    parse_release_record,
    user_entries,
)
from components.platforms import COMMIT_LABEL
from components.runtime_target import RunningTarget, running_target
from components.service_fields import refused_in
from release.config import SECRET_VERSION_PATTERN, SERVICE_NAME_PATTERN, SecretRef, ServiceSpec, split_image
from release.cutover import gcloud
from release.local_files import LIVE_FILE_MAX_BYTES, InputFileError, input_files, json_items, load_json, read_text
from release.packages import QPK_PACKAGE, UES_PACKAGE

# Knative v1 puts the region in this label; a describe of the right name in the wrong region is a mismatch.
LOCATION_LABEL = "cloud.googleapis.com/location"
V2_LATEST_TRAFFIC = "TRAFFIC_TARGET_ALLOCATION_TYPE_LATEST"
V2_CONDITION_SUCCEEDED = "CONDITION_SUCCEEDED"
V2_CONDITION_STATES = (
    "STATE_UNSPECIFIED", "CONDITION_PENDING", "CONDITION_RECONCILING", "CONDITION_FAILED", V2_CONDITION_SUCCEEDED,
)  # fmt: skip
# What gcloud prints when the service does not exist; any other failure is an error, not "new".
# What a field name in a live document may look like to be named in a message; anything else is "an entry".
SAFE_NAME = re.compile(r"[A-Za-z0-9_.:/-]{1,128}")
# Env names as Cloud Run accepts them; a name outside this is malformed input, not something to print.
ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_.-]{0,255}")
# A live secret ref: a secret id, or (another project's secret) its full resource name.
LIVE_SECRET_PATTERN = re.compile(r"(?:projects/[a-z0-9-]{1,63}/secrets/)?[A-Za-z0-9_-]{1,255}")
_JSON_TYPE_NAMES = {bool: "a boolean", int: "an integer", str: "a string", list: "a list"}


class ServicePlace(Protocol):
    """Where a service lives: all the live readers need (a `ServiceSpec`, or an adoption target)."""

    @property
    def service_name(self) -> str: ...
    @property
    def project(self) -> str: ...
    @property
    def region(self) -> str: ...


class LiveStateError(ValueError):
    """Live input that cannot be trusted: what is wrong, where, and how to fix it."""

    def __init__(self, what: str, where: str, fix: str) -> None:
        self.what, self.where, self.fix = what, where, fix
        super().__init__(f"{where}: {what}; {fix}")


class LiveModel(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class TrafficTarget(LiveModel):
    """One traffic entry: to the latest ready revision (`latest`) or to a named revision."""

    revision: Optional[str] = None
    latest: bool = False
    percent: int = Field(ge=0, le=100)
    tag: Optional[str] = None


# What the program declares for every service it changes: the latest ready revision serves everything.
LATEST_100 = (TrafficTarget(latest=True, percent=100),)


@dataclass(frozen=True)
class Confirmation:
    """Whether a commit is confirmed live, and why (or why not) in words an operator can act on."""

    commit: Optional[str]
    reason: str


ImageMatchState = Literal["same", "different", "unknown"]


@dataclass(frozen=True)
class ImageMatch:
    """Is the live image the configured one: `same`, `different`, or `unknown` (a digest that cannot be
    compared because the configured tag's digest was not looked up)."""

    state: ImageMatchState
    reason: str


def _image_parts(image: str) -> tuple[str, Optional[str], Optional[str]]:
    """(repository, tag, digest) of `repo`, `repo:tag`, `repo@sha256:..` or `repo:tag@sha256:..`."""
    name, _, digest = image.partition("@")
    repository, tag = split_image(name)
    return repository, tag, digest or None


def match_image(live_image: str, configured: str, digest: Optional[str] = None) -> ImageMatch:
    """The live image against the configured one, by digest where it is known (`configured`'s own digest,
    or `digest`: what its tag resolves to now), else by tag. Another registry, project, repository or
    package is `different` whatever the `commit-sha` label says: the label is a claim, the image is what runs."""
    live_repository, live_tag, live_digest = _image_parts(live_image)
    repository, tag, own_digest = _image_parts(configured)
    expected = own_digest or digest
    if live_repository != repository:
        return ImageMatch("different", f"the live image is from {live_repository}, not {repository}")
    if live_digest is not None:
        if expected is None:
            return ImageMatch(
                "unknown",
                f"the live image is {live_repository}@{live_digest}, and the digest {configured} names now was not looked "
                "up, so they cannot be compared; pass --images gcloud (or describe output)",
            )
        if live_digest != expected:
            return ImageMatch("different", f"the live image is {live_repository}@{live_digest}, not {repository}@{expected}")
        return ImageMatch("same", f"the live image is {repository}@{expected}")
    if tag is None:
        # Configured by digest, live by tag: the tag's digest at deploy time is not in the live state.
        return ImageMatch("different", f"the live image is {live_image}, a tag; the config pins {configured}")
    if (live_tag or "latest") != tag:
        return ImageMatch("different", f"the live image is {live_image}, not {configured}")
    return ImageMatch("same", f"the live image is {configured} (by tag: the live state records no digest)")


def confirm_live(live: "LiveService", commit: str, image: str, digest: Optional[str] = None) -> Confirmation:
    """The one rule for "confirmed live": the latest ready revision serves 100% of traffic, carries
    `commit-sha=<commit>`, and runs the configured image (`match_image`, by digest where known)."""
    serving = live.confirmation()
    if serving.commit is None:
        return serving
    if serving.commit != commit:
        return Confirmation(None, f"{serving.reason}, but the config expects {commit}")
    match = match_image(live.image, image, digest)
    if match.state != "same":
        return Confirmation(None, f"{serving.reason}, but {match.reason}")
    return Confirmation(commit, f"{serving.reason}; {match.reason}")


@dataclass(frozen=True)
class ReleaseTags:
    """The release this program recorded on a service (distribution name -> ref); None means it never
    deployed the service, or the record describes another image."""

    refs: Optional[Mapping[str, str]] = None

    @property
    def qpk(self) -> Optional[str]:
        return None if self.refs is None else self.refs.get(QPK_PACKAGE)

    @property
    def ues(self) -> Optional[str]:
        return None if self.refs is None else self.refs.get(UES_PACKAGE)


class LiveService(LiveModel):
    """A Cloud Run service as it runs now. Env is split into plain values and Secret Manager refs."""

    service_name: str
    project: Optional[str] = None
    region: Optional[str] = None
    image: str
    # The `commit-sha` label of the revision template, i.e. of the latest created revision.
    commit: Optional[str] = None
    latest_ready_revision: Optional[str] = None
    latest_created_revision: Optional[str] = None
    ready: bool = False
    # When the service last became Ready (the Ready condition's lastTransitionTime): the cutover time a
    # post-deploy check matches reports against.
    ready_since: Optional[datetime] = None
    traffic: tuple[TrafficTarget, ...] = ()
    env: dict[str, str] = Field(default_factory=dict)
    secrets: dict[str, SecretRef] = Field(default_factory=dict)
    labels: dict[str, str] = Field(default_factory=dict)
    annotations: dict[str, str] = Field(default_factory=dict)
    # The URL the service answers on (v1 `status.url`, v2 `uri`): what its scheduler job must target.
    url: Optional[str] = None
    # Every other URL Cloud Run says the service answers on (the deterministic one): v1's service-level
    # `run.googleapis.com/urls` annotation, v2's `urls`. Never a template annotation: whoever deploys a
    # revision sets those, and a job must not be steered to another host by one.
    urls: tuple[str, ...] = ()
    # Traffic as the service declares it (v1 spec.traffic, v2 traffics); `traffic` is what actually serves.
    declared_traffic: tuple[TrafficTarget, ...] = ()
    # Every setting the program does not own (components/ownership.py), in the provider's vocabulary.
    settings: ServiceSettings = Field(default_factory=ServiceSettings)
    # The release record on the revision template, verbatim (`components.ownership.release_record`).
    release_record: Optional[str] = None
    source: str = Field("", description="where this state was read from, for messages")

    @property
    def profile(self) -> Optional[str]:
        """The profile the service runs, read in the runtime's precedence (QSL_RUNTIME_TARGET_JSON, then
        RUNTIME_TARGET_JSON, then STRATEGY_PROFILE); None when nothing readable names one."""
        return self.running().profile

    def running(self, platform_id: Optional[str] = None) -> RunningTarget:
        """What the runtime runs on this env (components/runtime_target.py); with `platform_id`, a target
        naming another platform is refused as the runtime refuses it."""
        return running_target(self.env, platform_id)

    @property
    def release_tags(self) -> ReleaseTags:
        """The bundle of the serving image: trusted only when the record names the live `commit-sha`
        (a hand deploy of another image keeps the old record, which then describes nothing live)."""
        record = parse_release_record(self.release_record)
        if record is None or not self.commit or record[0] != self.commit:
            return ReleaseTags()
        return ReleaseTags(dict(record[1]))

    @property
    def legacy_annotations(self) -> dict[str, str]:
        """Release annotations an earlier version wrote at service level (ignored, dropped on update)."""
        return {key: value for key, value in self.annotations.items() if key in LEGACY_RELEASE_ANNOTATIONS}

    def confirmation(self) -> Confirmation:
        """What serves: the latest ready revision's `commit-sha` when it serves 100% of traffic. Half of the
        rule: "confirmed live" also needs the configured image (`confirm_live`)."""
        if not self.ready:
            return Confirmation(None, f"{self.service_name} is not Ready (its latest revision has not become ready)")
        if not self.latest_ready_revision:
            return Confirmation(None, f"{self.service_name} has no ready revision")
        if self.latest_created_revision and self.latest_created_revision != self.latest_ready_revision:
            return Confirmation(
                None,
                f"latest created revision {self.latest_created_revision} is not ready (latest ready is {self.latest_ready_revision})",
            )
        if not self.commit:
            return Confirmation(None, f"revision {self.latest_ready_revision} has no {COMMIT_LABEL} label")
        stale = [t for t in self.traffic if t.latest and t.revision not in (None, self.latest_ready_revision)]
        if stale:
            # "latest" that names another revision contradicts itself: nothing proves what serves.
            return Confirmation(
                None,
                f"a latestRevision traffic entry names {stale[0].revision}, not the latest ready revision {self.latest_ready_revision}",
            )
        serving = sum(target.percent for target in self.traffic if target.latest or target.revision == self.latest_ready_revision)
        if serving != 100:
            split = ", ".join(f"{'latest' if t.latest else t.revision}={t.percent}%" for t in self.traffic) or "no traffic entries"
            return Confirmation(None, f"latest ready revision {self.latest_ready_revision} serves {serving}% of traffic ({split})")
        return Confirmation(
            self.commit,
            f"latest ready revision {self.latest_ready_revision} carries {COMMIT_LABEL}={self.commit} and serves 100% of traffic",
        )

    @property
    def confirmed_commit(self) -> Optional[str]:
        return self.confirmation().commit


# --- Knative v1 (gcloud) ---------------------------------------------------------------------------


def _mapping(value: Any, where: str, field: str) -> Mapping[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise LiveStateError(f"{field} is not an object", where, "pass the output of gcloud ... --format=json unchanged")
    return value


def _str_map(value: Any, where: str, field: str) -> dict[str, str]:
    mapping = _mapping(value, where, field)
    for key, item in mapping.items():
        if not isinstance(key, str) or not isinstance(item, str):
            # The key is named only when it is a string; the value never is (labels can hold anything).
            name = key if isinstance(key, str) and SAFE_NAME.fullmatch(key) else "an entry"
            raise LiveStateError(f"{field}: {name} is not a string", where, "pass the JSON unchanged")
    return dict(mapping)


def _typed(value: Any, kind: type, where: str, field: str, default: Any = None) -> Any:
    """A live field of an exact JSON type (absent -> default). A boolean is a boolean: the string "false"
    is not, and `bool("false")` is True, which once made an unready service look live."""
    if value is None:
        return default
    # bool is a subclass of int: a percent of `true` is as malformed as a latestRevision of "false".
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise LiveStateError(f"{field} is not {_JSON_TYPE_NAMES[kind]}", where, "pass the JSON unchanged")
    return value


def pydantic_summary(error: ValidationError) -> str:
    """A validation error as field paths and messages; pydantic's own text quotes `input_value=`, which
    would print whatever the input held (a credential, a terminal escape)."""
    parts = [f"{'.'.join(str(part) for part in item['loc']) or '(top level)'}: {item['msg']}" for item in error.errors()[:3]]
    more = error.error_count() - len(parts)
    return "; ".join(parts) + (f"; and {more} more" if more > 0 else "")


def _ready(statuses: list[Any], where: str, field: str, ready_value: str, known: tuple[str, ...]) -> bool:
    """Ready only when every Ready condition says so; two Ready conditions that disagree are malformed."""
    for status in statuses:
        if status not in known:
            raise LiveStateError(f"{field}: a Ready condition has an unknown status", where, "pass the JSON unchanged")
    if len(set(statuses)) > 1:
        raise LiveStateError(f"{field} holds contradictory Ready conditions", where, "describe the service again")
    return bool(statuses) and statuses[0] == ready_value


V1_SECRETS = "run.googleapis.com/secrets"
# The conditions Ready summarises: a service is not Ready while one of them has failed.
V1_READY_PARTS = ("ConfigurationsReady", "RoutesReady")


def _secret_aliases(template: Mapping[str, Any], where: str) -> dict[str, str]:
    """v1 names another project's secret by a local alias, resolved in the template annotation
    `run.googleapis.com/secrets` ("alias:projects/<p>/secrets/<name>,..."); v2 names it in full."""
    annotations = _str_map(_mapping(template.get("metadata"), where, "spec.template.metadata").get("annotations"), where, "annotations")
    aliases: dict[str, str] = {}
    for item in filter(None, (part.strip() for part in annotations.get(V1_SECRETS, "").split(","))):
        alias, _, full = item.partition(":")
        if not full or not LIVE_SECRET_PATTERN.fullmatch(full) or not full.startswith("projects/"):
            raise LiveStateError(f"{V1_SECRETS} holds an entry that is not alias:projects/<p>/secrets/<name>", where, GCLOUD_FIX)
        aliases[alias] = full
    return aliases


def _knative_env(entries: Any, where: str) -> tuple[dict[str, str], dict[str, SecretRef]]:
    if entries is None:
        entries = []
    if not isinstance(entries, list):
        raise LiveStateError("spec.template.spec.containers[0].env is not a list", where, "pass gcloud's JSON unchanged")
    plain: dict[str, str] = {}
    secrets: dict[str, SecretRef] = {}
    for index, entry in enumerate(entries):
        # Never echo the entry: it may hold a plain credential.
        if not isinstance(entry, Mapping) or not isinstance(entry.get("name"), str) or not ENV_NAME.fullmatch(entry["name"]):
            raise LiveStateError(f"env entry [{index}] has no valid name", where, "pass gcloud's JSON unchanged")
        name = entry["name"]
        if name in plain or name in secrets:
            raise LiveStateError(f"env {name} appears twice", where, "fix the service so each name is set once")
        value_from = entry.get("valueFrom")
        if value_from is not None and entry.get("value") is not None:
            # Which one Cloud Run would use is not for this program to guess (one may be a credential).
            raise LiveStateError(f"env {name} has both a value and valueFrom", where, "pass gcloud's JSON unchanged")
        if value_from is None:
            plain[name] = _typed(entry.get("value"), str, where, f"env {name}.value", "")
            continue
        ref = _mapping(value_from, where, f"env {name}.valueFrom").get("secretKeyRef")
        if not isinstance(ref, Mapping) or not ref.get("name"):
            raise LiveStateError(f"env {name} reads something other than a Secret Manager secret", where, "use secretKeyRef{name,key}")
        secrets[name] = _live_secret_ref(ref.get("name"), ref.get("key"), where, f"env {name}.valueFrom.secretKeyRef")
    return plain, secrets


def _live_secret_ref(secret: Any, version: Any, where: str, field: str) -> SecretRef:
    """A live secret reference, checked like a configured one; its parts are never echoed (a credential
    pasted where a secret name belongs must not reach a log)."""
    secret = _typed(secret, str, where, f"{field} secret name")
    version = _typed(version, str, where, f"{field} version", "") or "latest"
    if not LIVE_SECRET_PATTERN.fullmatch(secret) or not SECRET_VERSION_PATTERN.fullmatch(version):
        raise LiveStateError(f"{field} is not a Secret Manager secret name and version", where, "pass the JSON unchanged")
    # Checked above against the live form, which may also name another project's secret by resource name.
    return SecretRef.model_construct(secret=secret, version=version)


# Template annotations of the v1 shape that carry settings the v2 shape has fields for.
V1_NETWORK_INTERFACES = "run.googleapis.com/network-interfaces"
V1_VPC_EGRESS = "run.googleapis.com/vpc-access-egress"
V1_VPC_CONNECTOR = "run.googleapis.com/vpc-access-connector"
V1_MIN_SCALE = "autoscaling.knative.dev/minScale"
V1_MAX_SCALE = "autoscaling.knative.dev/maxScale"
V1_CPU_THROTTLING = "run.googleapis.com/cpu-throttling"
V1_STARTUP_CPU_BOOST = "run.googleapis.com/startup-cpu-boost"
V1_EXECUTION_ENVIRONMENT = "run.googleapis.com/execution-environment"
V1_SESSION_AFFINITY = "run.googleapis.com/sessionAffinity"
V1_INGRESS = "run.googleapis.com/ingress"
GCLOUD_FIX = "pass the output of gcloud run services describe --format=json unchanged"


def _word(value: Any, choices: Mapping[str, Any], where: str, field: str) -> Any:
    """A gcloud word (`all`, `private-ranges-only`, `gen2`) as its v2 enum; an unknown word is an error."""
    if value is None or value == "":
        return None
    if value not in choices:
        shown = repr(value) if isinstance(value, str) and SAFE_NAME.fullmatch(value) else "a value"
        raise LiveStateError(
            f"{field} is {shown}, which this program does not know ({', '.join(choices)})",
            where,
            "check the service; the program holds only settings it can express in Cloud Run v2",
        )
    return choices[value]


def _int(value: Any, where: str, field: str) -> Optional[int]:
    if value is None or value == "":
        return None
    if isinstance(value, bool) or not (isinstance(value, int) or (isinstance(value, str) and value.isdigit())):
        raise LiveStateError(f"{field} is not a whole number", where, GCLOUD_FIX)
    return int(value)


def _strings(value: Any, where: str, field: str) -> tuple[str, ...]:
    if value is None:
        return ()
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        raise LiveStateError(f"{field} is not a list of strings", where, GCLOUD_FIX)
    return tuple(value)


def _list(value: Any, where: str, field: str) -> list[Any]:
    if value is None:
        return []
    if not isinstance(value, list):
        raise LiveStateError(f"{field} is not a list", where, GCLOUD_FIX)
    return value


def _knative_probe(value: Any, where: str, field: str) -> Optional[Probe]:
    if value is None:
        return None
    probe = _mapping(value, where, field)
    timing: dict[str, Any] = {
        "initial_delay_seconds": _int(probe.get("initialDelaySeconds"), where, field) or None,
        "period_seconds": _int(probe.get("periodSeconds"), where, field),
        "timeout_seconds": _int(probe.get("timeoutSeconds"), where, field),
        "failure_threshold": _int(probe.get("failureThreshold"), where, field),
        "success_threshold": _int(probe.get("successThreshold"), where, field),
    }
    if probe.get("httpGet") is not None:
        http = _mapping(probe["httpGet"], where, f"{field}.httpGet")
        if http.get("httpHeaders"):
            raise LiveStateError(
                f"{field}.httpGet has headers, which this program cannot hold", where, "remove them or manage the service by hand"
            )
        return Probe(kind="http", path=http.get("path") or None, port=_int(http.get("port"), where, field) or None, **timing)
    if probe.get("tcpSocket") is not None:
        tcp = _mapping(probe["tcpSocket"], where, f"{field}.tcpSocket")
        return Probe(kind="tcp", port=_int(tcp.get("port"), where, field) or None, **timing)
    if probe.get("grpc") is not None:
        grpc = _mapping(probe["grpc"], where, f"{field}.grpc")
        return Probe(kind="grpc", port=_int(grpc.get("port"), where, field) or None, service=grpc.get("service") or None, **timing)
    raise LiveStateError(f"{field} is neither httpGet, tcpSocket nor grpc", where, GCLOUD_FIX)


def _knative_volume(value: Any, where: str) -> Volume:
    volume = _mapping(value, where, "spec.template.spec.volumes[]")
    name = volume.get("name")
    if not isinstance(name, str) or not name:
        raise LiveStateError("a volume has no name", where, GCLOUD_FIX)
    if volume.get("secret") is not None:
        secret = _mapping(volume["secret"], where, f"volume {name}.secret")
        items = tuple(
            SecretItem(
                path=str(_mapping(item, where, f"volume {name}.items[]").get("path", "")),
                version=str(item.get("key")) if item.get("key") else None,
                mode=_int(item.get("mode"), where, f"volume {name} mode") or None,
            )
            for item in _list(secret.get("items"), where, f"volume {name}.secret.items")
        )
        return Volume(
            name=name,
            kind="secret",
            secret=str(secret.get("secretName", "")) or None,
            items=items,
            default_mode=_int(secret.get("defaultMode"), where, f"volume {name} defaultMode") or None,
        )
    if volume.get("emptyDir") is not None:
        empty = _mapping(volume["emptyDir"], where, f"volume {name}.emptyDir")
        return Volume(
            name=name,
            kind="empty_dir",
            medium=str(empty["medium"]).upper() if empty.get("medium") else None,
            size_limit=str(empty["sizeLimit"]) if empty.get("sizeLimit") else None,
        )
    kinds = ", ".join(sorted(key for key in volume if key != "name")) or "no source"
    raise LiveStateError(
        f"volume {name} is of a kind this program cannot hold ({kinds})", where, "manage this service by hand, or remove the volume"
    )


def _knative_vpc(annotations: Mapping[str, str], where: str) -> Optional[VpcAccess]:
    egress = _word(annotations.get(V1_VPC_EGRESS), EGRESS_BY_WORD, where, V1_VPC_EGRESS)
    connector = annotations.get(V1_VPC_CONNECTOR) or None
    interfaces: tuple[NetworkInterface, ...] = ()
    if annotations.get(V1_NETWORK_INTERFACES):
        try:
            raw = load_json(annotations[V1_NETWORK_INTERFACES], where, GCLOUD_FIX)
        except InputFileError as error:
            # The shared JSON reader's bounds: a 100k-deep string is refused, never parsed into a RecursionError.
            raise LiveStateError(
                f"{V1_NETWORK_INTERFACES} {error.what.replace('is not valid JSON', 'is not JSON')}", where, GCLOUD_FIX
            ) from None
        interfaces = tuple(
            NetworkInterface(
                network=_mapping(item, where, V1_NETWORK_INTERFACES).get("network") or None,
                subnetwork=item.get("subnetwork") or None,
                tags=_strings(item.get("tags"), where, f"{V1_NETWORK_INTERFACES} tags"),
            )
            for item in _list(raw, where, V1_NETWORK_INTERFACES)
        )
    if connector is None and not interfaces:
        if egress is not None:
            raise LiveStateError(f"{V1_VPC_EGRESS} is set without a network or connector", where, GCLOUD_FIX)
        return None
    return VpcAccess(connector=connector, egress=egress, network_interfaces=interfaces)


def _true(value: Any) -> Optional[bool]:
    """An annotation flag that defaults to off: only "true" is recorded."""
    return True if str(value).lower() == "true" else None


# Settings the program has no way to register; a service that uses one is refused rather than stripped of it
# (an absent input is a removal in the provider).
V1_UNHOLDABLE_ANNOTATIONS = (
    "run.googleapis.com/binary-authorization",
    "run.googleapis.com/custom-audiences",
    "run.googleapis.com/encryption-key",
    "run.googleapis.com/invoker-iam-disabled",
    "run.googleapis.com/default-url-disabled",
)
UNHOLDABLE_FIX = "manage this service by hand, or remove the setting, then plan again"


def _unholdable(what: str, where: str) -> LiveStateError:
    return LiveStateError(f"uses {what}, which this program cannot hold", where, UNHOLDABLE_FIX)


def knative_settings(metadata: Mapping[str, Any], template: Mapping[str, Any], container: Mapping[str, Any], where: str) -> ServiceSettings:
    """The settings of a v1 (gcloud) document, in the v2 vocabulary of `ServiceSettings`."""
    service_annotations = _str_map(metadata.get("annotations"), where, "metadata.annotations")
    template_meta = _mapping(template.get("metadata"), where, "spec.template.metadata")
    annotations = _str_map(template_meta.get("annotations"), where, "spec.template.metadata.annotations")
    pod = _mapping(template.get("spec"), where, "spec.template.spec")
    aliases = _secret_aliases(template, where)
    for name in V1_UNHOLDABLE_ANNOTATIONS:
        if service_annotations.get(name) or annotations.get(name):
            raise _unholdable(name, where)
    if len(_list(pod.get("containers"), where, "containers")) > 1:
        raise _unholdable("more than one container (sidecars)", where)
    if container.get("workingDir"):
        raise _unholdable("a container working directory", where)
    resources = _mapping(container.get("resources"), where, "containers[0].resources")
    limits = _str_map(resources.get("limits"), where, "containers[0].resources.limits")
    timeout = _int(pod.get("timeoutSeconds"), where, "timeoutSeconds")
    cpu_throttling = annotations.get(V1_CPU_THROTTLING)
    return ServiceSettings(
        service_account=pod.get("serviceAccountName") or None,
        ingress=_word(service_annotations.get(V1_INGRESS), INGRESS_BY_WORD, where, V1_INGRESS),
        vpc_access=_knative_vpc(annotations, where),
        min_instances=_int(annotations.get(V1_MIN_SCALE), where, V1_MIN_SCALE) or None,
        max_instances=_int(annotations.get(V1_MAX_SCALE), where, V1_MAX_SCALE) or None,
        cpu=limits.get("cpu") or None,
        memory=limits.get("memory") or None,
        cpu_idle=normalize_cpu_idle(None if cpu_throttling is None else str(cpu_throttling).lower() != "false"),
        startup_cpu_boost=_true(annotations.get(V1_STARTUP_CPU_BOOST)),
        concurrency=_int(pod.get("containerConcurrency"), where, "containerConcurrency") or None,
        timeout=None if timeout is None else f"{timeout}s",
        volumes=tuple(
            volume.model_copy(update={"secret": aliases.get(volume.secret, volume.secret)}) if volume.secret else volume
            for volume in (_knative_volume(item, where) for item in _list(pod.get("volumes"), where, "volumes"))
        ),
        volume_mounts=tuple(
            VolumeMount(
                name=str(_mapping(m, where, "volumeMounts[]").get("name", "")),
                mount_path=str(m.get("mountPath", "")),
                sub_path=str(m["subPath"]) if m.get("subPath") else None,
            )
            for m in _list(container.get("volumeMounts"), where, "volumeMounts")
        ),
        liveness_probe=_knative_probe(container.get("livenessProbe"), where, "livenessProbe"),
        startup_probe=_knative_probe(container.get("startupProbe"), where, "startupProbe"),
        readiness_probe=_knative_probe(container.get("readinessProbe"), where, "readinessProbe"),
        command=_strings(container.get("command"), where, "command"),
        args=_strings(container.get("args"), where, "args"),
        ports=tuple(
            ContainerPort(
                container_port=_int(_mapping(p, where, "ports[]").get("containerPort"), where, "containerPort") or None,
                name=p.get("name") or None,
            )
            for p in _list(container.get("ports"), where, "ports")
        ),
        execution_environment=_word(
            annotations.get(V1_EXECUTION_ENVIRONMENT), EXECUTION_ENVIRONMENT_BY_WORD, where, V1_EXECUTION_ENVIRONMENT
        ),
        session_affinity=_true(annotations.get(V1_SESSION_AFFINITY)),
        # v1 names the revision in the template's metadata; v2 calls it template.revision.
        revision=_typed(template_meta.get("name"), str, where, "spec.template.metadata.name") or None,
        container_name=_typed(container.get("name"), str, where, "containers[0].name") or None,
        labels=user_entries(_str_map(metadata.get("labels"), where, "metadata.labels"), OWNED_SERVICE_LABELS),
        annotations=user_entries(service_annotations, LEGACY_RELEASE_ANNOTATIONS),
        template_labels=user_entries(_str_map(template_meta.get("labels"), where, "spec.template.metadata.labels"), OWNED_TEMPLATE_LABELS),
        template_annotations=user_entries(annotations, OWNED_TEMPLATE_ANNOTATIONS),
    )


def _knative_traffic(entries: Any, where: str, field: str) -> tuple[TrafficTarget, ...]:
    traffic = []
    for index, entry in enumerate(_list(entries, where, field)):
        entry = _mapping(entry, where, f"{field}[{index}]")
        traffic.append(
            TrafficTarget(
                revision=_typed(entry.get("revisionName"), str, where, f"{field}[{index}].revisionName") or None,
                latest=_typed(entry.get("latestRevision"), bool, where, f"{field}[{index}].latestRevision", False),
                percent=_typed(entry.get("percent"), int, where, f"{field}[{index}].percent", 0),
                tag=_typed(entry.get("tag"), str, where, f"{field}[{index}].tag", "") or None,
            )
        )
    return _within_100(tuple(traffic), where, field)


def _within_100(traffic: tuple[TrafficTarget, ...], where: str, field: str) -> tuple[TrafficTarget, ...]:
    """Traffic percentages are shares of one whole: entries summing past 100 describe no real service."""
    if sum(target.percent for target in traffic) > 100:
        raise LiveStateError(f"{field} percentages sum past 100", where, "pass the JSON unchanged")
    return traffic


def from_knative_json(data: Any, expected_name: Optional[str] = None, source: str = "live JSON") -> LiveService:
    """A `gcloud run services describe --format=json` document as a LiveService.

    `expected_name` guards against describing the wrong service: a mismatch is an error.
    """
    try:
        return _from_knative_json(data, expected_name, source)
    except LiveStateError:
        raise
    except (ValidationError, TypeError, ValueError) as error:
        detail = pydantic_summary(error) if isinstance(error, ValidationError) else type(error).__name__
        raise LiveStateError(f"is malformed ({detail})", source, "pass gcloud's JSON unchanged") from None


def _from_knative_json(data: Any, expected_name: Optional[str], source: str) -> LiveService:
    if not isinstance(data, Mapping):
        raise LiveStateError("is not a JSON object", source, "pass the output of gcloud run services describe --format=json")
    kind = data.get("kind")
    if kind is not None and kind != "Service":
        raise LiveStateError("kind is not 'Service'", source, "describe the service, not a revision")
    metadata = _mapping(data.get("metadata"), source, "metadata")
    name = metadata.get("name")
    if not isinstance(name, str) or not name:
        raise LiveStateError("has no metadata.name", source, "pass the output of gcloud run services describe --format=json")
    if not SERVICE_NAME_PATTERN.fullmatch(name):
        raise LiveStateError("metadata.name is not a Cloud Run service name", source, "pass gcloud's JSON unchanged")
    if expected_name is not None and name != expected_name:
        raise LiveStateError(f"describes {name}, not {expected_name}", source, f"describe {expected_name}")
    spec = _mapping(data.get("spec"), source, "spec")
    template = _mapping(spec.get("template"), source, "spec.template")
    containers = _mapping(template.get("spec"), source, "spec.template.spec").get("containers")
    if not isinstance(containers, list) or not containers or not isinstance(containers[0], Mapping):
        raise LiveStateError("has no spec.template.spec.containers[0]", source, "pass gcloud's JSON unchanged")
    container = containers[0]
    image = container.get("image")
    if not isinstance(image, str) or not image:
        raise LiveStateError("has no container image", source, "pass gcloud's JSON unchanged")
    plain, secrets = _knative_env(container.get("env"), source)
    aliases = _secret_aliases(template, source)
    secrets = {name: ref.model_copy(update={"secret": aliases.get(ref.secret, ref.secret)}) for name, ref in secrets.items()}
    template_labels = _str_map(_mapping(template.get("metadata"), source, "spec.template.metadata").get("labels"), source, "labels")
    status = _mapping(data.get("status"), source, "status")
    conditions = status.get("conditions") or []
    if not isinstance(conditions, list):
        raise LiveStateError("status.conditions is not a list", source, "pass gcloud's JSON unchanged")
    ready_statuses = [
        _mapping(c, source, "status.conditions[]").get("status")
        for c in conditions
        if _mapping(c, source, "status.conditions[]").get("type") == "Ready"
    ]
    ready = _ready(ready_statuses, source, "status.conditions", "True", ("True", "False", "Unknown"))
    failed_parts = [
        c.get("type") for c in conditions if isinstance(c, Mapping) and c.get("type") in V1_READY_PARTS and c.get("status") == "False"
    ]
    if ready and failed_parts:
        raise LiveStateError(f"status.conditions says Ready while {failed_parts[0]} is False", source, "describe the service again")
    ready_since = next(
        (
            _transition_time(c.get("lastTransitionTime"))
            for c in conditions
            if isinstance(c, Mapping) and c.get("type") == "Ready" and c.get("status") == "True"
        ),
        None,
    )
    traffic = _knative_traffic(status.get("traffic"), source, "status.traffic")
    labels = _str_map(metadata.get("labels"), source, "metadata.labels")
    template_annotations = _str_map(
        _mapping(template.get("metadata"), source, "spec.template.metadata").get("annotations"), source, "annotations"
    )
    return LiveService(
        service_name=name,
        region=labels.get(LOCATION_LABEL),
        image=image,
        commit=template_labels.get(COMMIT_LABEL),
        latest_ready_revision=_typed(status.get("latestReadyRevisionName"), str, source, "status.latestReadyRevisionName"),
        latest_created_revision=_typed(status.get("latestCreatedRevisionName"), str, source, "status.latestCreatedRevisionName"),
        ready=ready,
        ready_since=ready_since,
        traffic=traffic,
        declared_traffic=_knative_traffic(spec.get("traffic"), source, "spec.traffic"),
        env=plain,
        secrets=secrets,
        labels=labels,
        annotations={**template_annotations, **_str_map(metadata.get("annotations"), source, "metadata.annotations")},
        settings=knative_settings(metadata, template, container, source),
        release_record=template_annotations.get(RELEASE_RECORD_ANNOTATION),
        url=_typed(status.get("url"), str, source, "status.url") or None,
        urls=_listed_urls(_str_map(metadata.get("annotations"), source, "metadata.annotations").get(V1_URLS), source),
        source=source,
    )


V1_URLS = "run.googleapis.com/urls"


def _listed_urls(value: Optional[str], source: str) -> tuple[str, ...]:
    """The service-level URL list (a JSON string); unreadable or deeply nested means "none listed"."""
    if not value:
        return ()
    try:
        listed = load_json(value, source, GCLOUD_FIX)
    except InputFileError:
        return ()
    return tuple(url for url in listed if isinstance(url, str)) if isinstance(listed, list) else ()


def _transition_time(value: Any) -> Optional[datetime]:
    """A condition's RFC 3339 time as aware UTC; anything else is None (unknown, never guessed)."""
    if not isinstance(value, str):
        return None
    try:
        parsed = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed.astimezone(timezone.utc) if parsed.tzinfo else None


def _check_place(live: LiveService, spec: ServicePlace, where: str) -> LiveService:
    """The same name in another region is another service: refuse it rather than plan against it."""
    if live.region is not None and live.region != spec.region:
        raise LiveStateError(
            f"{live.service_name} is in {live.region}, but the config deploys it in {spec.region}",
            where,
            f"describe it with --region {spec.region}",
        )
    if live.project is not None and live.project != spec.project:
        raise LiveStateError(
            f"{live.service_name} is in project {live.project}, not {spec.project}", where, f"describe it with --project {spec.project}"
        )
    return live.model_copy(update={"project": live.project or spec.project, "region": live.region or spec.region})


def _load_json(path: Path) -> Any:
    fix = "write it with gcloud run services describe NAME --format=json"
    try:
        return load_json(read_text(path, LIVE_FILE_MAX_BYTES, fix), str(path), fix)
    except FileNotFoundError as error:
        raise LiveStateError(f"cannot be read ({error.strerror})", str(path), "check the --live path") from None
    except InputFileError as error:
        raise LiveStateError(error.what, error.where, error.fix) from None


def read_live_path(path: Path, services: Mapping[str, ServicePlace]) -> dict[str, Optional[LiveService]]:
    """Live state from a describe JSON file (one service or a list) or a directory of *.json files.

    Every document must describe a configured service (matched by service name). A configured service
    with no document is reported as None, i.e. not live: planned as new (the plan warns about it).
    """
    try:
        files = input_files(
            path, "write one gcloud describe JSON per service into it", "pass a describe JSON file, a directory of them, or 'gcloud'"
        )
    except InputFileError as error:
        raise LiveStateError(error.what, error.where, error.fix) from None
    key_by_name = {spec.service_name: key for key, spec in services.items()}
    found: dict[str, LiveService] = {}
    for file in files:
        for item, where in json_items(_load_json(file), file):
            live = from_knative_json(item, source=where)
            key = key_by_name.get(live.service_name)
            if key is None:
                configured = ", ".join(sorted(key_by_name))
                raise LiveStateError(
                    f"describes {live.service_name}, which is not a configured service ({configured})",
                    where,
                    "remove it or check --stack",
                )
            if key in found:
                raise LiveStateError(
                    f"describes {live.service_name} again (also in {found[key].source})", where, "keep one description per service"
                )
            found[key] = _check_place(live, services[key], where)
    return {key: found.get(key) for key in services}


def gcloud_describe_command(spec: ServicePlace) -> list[str]:
    return [
        "gcloud", "run", "services", "describe", spec.service_name,
        "--project", spec.project, "--region", spec.region, "--format=json",
    ]  # fmt: skip


def read_live_gcloud(services: Mapping[str, ServicePlace], runner: gcloud.Runner = gcloud.run_gcloud) -> dict[str, Optional[LiveService]]:
    """Live state by running gcloud per configured service; only gcloud's not-found answer means the service is new."""
    result: dict[str, Optional[LiveService]] = {}
    for key, spec in services.items():
        command = gcloud_describe_command(spec)
        where = " ".join(command)
        try:
            document = gcloud.describe(command, runner, "check gcloud auth login and the project/region in the stack", LIVE_FILE_MAX_BYTES)
        except gcloud.GcloudError as error:
            raise LiveStateError(error.what, error.where, error.fix) from None
        if document is None:
            result[key] = None
            continue
        result[key] = _check_place(from_knative_json(document, expected_name=spec.service_name, source=where), spec, where)
    return result


# --- Cloud Run v2 (gcp.cloudrunv2.get_service) --------------------------------------------------


def _field(obj: Any, name: str, default: Any = None) -> Any:
    """Read a field from the invoke result: an output object (attributes) or a plain dict (mocks)."""
    if obj is None:
        return default
    if isinstance(obj, Mapping):
        # The SDK hands back snake_case keys; the engine's own (and a raw mock's) shape is camelCase.
        value = obj.get(name, obj.get(to_camel(name), default))
    else:
        value = getattr(obj, name, default)
    return default if value is None else value


def _first(items: Any) -> Any:
    return items[0] if isinstance(items, Sequence) and not isinstance(items, str) and items else None


def _items(value: Any) -> list[Any]:
    return list(value) if isinstance(value, Sequence) and not isinstance(value, str) else []


def _v2_int(value: Any) -> Optional[int]:
    """The provider reports an unset number as 0."""
    return int(value) if value else None


def _v2_str(value: Any) -> Optional[str]:
    return str(value) if value else None


def _v2_probe(value: Any) -> Optional[Probe]:
    # Probe HTTP headers are refused before this is read (components/service_fields.py).
    probe = _first(value)
    if probe is None:
        return None
    timing: dict[str, Any] = {
        "initial_delay_seconds": _v2_int(_field(probe, "initial_delay_seconds")),
        "period_seconds": _v2_int(_field(probe, "period_seconds")),
        "timeout_seconds": _v2_int(_field(probe, "timeout_seconds")),
        "failure_threshold": _v2_int(_field(probe, "failure_threshold")),
        "success_threshold": _v2_int(_field(probe, "success_threshold")),
    }
    http, tcp, grpc = (_first(_field(probe, name)) for name in ("http_gets", "tcp_sockets", "grpcs"))
    if http is not None:
        return Probe(kind="http", path=_v2_str(_field(http, "path")), port=_v2_int(_field(http, "port")), **timing)
    if tcp is not None:
        return Probe(kind="tcp", port=_v2_int(_field(tcp, "port")), **timing)
    if grpc is not None:
        return Probe(kind="grpc", port=_v2_int(_field(grpc, "port")), service=_v2_str(_field(grpc, "service")), **timing)
    return None


def _v2_volume(value: Any, source: str) -> Volume:
    name = str(_field(value, "name", ""))
    secret = _first(_field(value, "secrets"))
    if secret is not None:
        return Volume(
            name=name,
            kind="secret",
            secret=_v2_str(_field(secret, "secret")),
            items=tuple(
                SecretItem(path=str(_field(item, "path", "")), version=_v2_str(_field(item, "version")), mode=_v2_int(_field(item, "mode")))
                for item in _items(_field(secret, "items"))
            ),
            default_mode=_v2_int(_field(secret, "default_mode")),
        )
    empty = _first(_field(value, "empty_dirs"))
    if empty is not None:
        return Volume(
            name=name,
            kind="empty_dir",
            medium=_v2_str(_field(empty, "medium")),
            size_limit=_v2_str(_field(empty, "size_limit")),
        )
    raise LiveStateError(
        f"volume {name} is of a kind this program cannot hold (not a secret or an empty dir)",
        source,
        "manage this service by hand, or remove the volume",
    )


def _v2_vpc(template: Any) -> Optional[VpcAccess]:
    vpc = _first(_field(template, "vpc_accesses"))
    if vpc is None:
        return None
    interfaces = tuple(
        NetworkInterface(
            network=_v2_str(_field(item, "network")),
            subnetwork=_v2_str(_field(item, "subnetwork")),
            tags=tuple(str(tag) for tag in _items(_field(item, "tags"))),
        )
        for item in _items(_field(vpc, "network_interfaces"))
    )
    connector = _v2_str(_field(vpc, "connector"))
    egress = _v2_str(_field(vpc, "egress"))
    if connector is None and not interfaces:
        return None
    return VpcAccess(connector=connector, egress=egress, network_interfaces=interfaces)  # type: ignore[arg-type]  # a str off the API: pydantic checks it against the Literal at runtime


def _v2_map(value: Any, source: str, field: str) -> dict[str, str]:
    # Output types are dict subclasses; an attribute-shaped test double may hand a plain mapping too.
    return _str_map(dict(value) if isinstance(value, Mapping) else value, source, field)


# Resource limits the program holds; a GPU (or any other) limit is refused rather than dropped.
HELD_LIMITS = ("cpu", "memory")


def cloud_run_v2_settings(result: Any, template: Any, container: Any, source: str) -> ServiceSettings:
    """The settings of a `get_service` result (zero values read as "not set"), every value verbatim.

    A service that sets an input the program cannot hold (`refused` in components/service_fields.py) is
    refused here, before anything is registered: leaving it out would remove it.
    """
    if len(_items(_field(template, "containers"))) > 1:
        raise _unholdable("more than one container (sidecars)", source)
    refused = refused_in(result)
    if refused:
        path, what = refused[0]
        raise LiveStateError(f"uses {what}, which this program cannot hold (Cloud Run v2 field {path})", source, UNHOLDABLE_FIX)
    scaling = _first(_field(template, "scalings"))
    resources = _first(_field(container, "resources"))
    limits = _v2_map(_field(resources, "limits"), source, "resources.limits")
    extra = sorted(name for name, value in limits.items() if name not in HELD_LIMITS and value)
    if extra:
        shown = extra[0] if SAFE_NAME.fullmatch(extra[0]) else "another"
        raise _unholdable(f"a {shown} resource limit (template.containers.resources.limits)", source)
    cpu_idle = _field(resources, "cpu_idle")
    environment = _v2_str(_field(template, "execution_environment"))
    try:
        return ServiceSettings(
            service_account=_v2_str(_field(template, "service_account")),
            ingress=_v2_str(_field(result, "ingress")),  # type: ignore[arg-type]  # a str off the API: pydantic checks it against the Literal at runtime
            vpc_access=_v2_vpc(template),
            min_instances=_v2_int(_field(scaling, "min_instance_count")),
            max_instances=_v2_int(_field(scaling, "max_instance_count")),
            cpu=limits.get("cpu") or None,
            memory=limits.get("memory") or None,
            cpu_idle=None if resources is None else normalize_cpu_idle(bool(cpu_idle)),
            startup_cpu_boost=True if _field(resources, "startup_cpu_boost") else None,
            concurrency=_v2_int(_field(template, "max_instance_request_concurrency")),
            timeout=_v2_str(_field(template, "timeout")),
            volumes=tuple(_v2_volume(item, source) for item in _items(_field(template, "volumes"))),
            volume_mounts=tuple(
                VolumeMount(
                    name=str(_field(m, "name", "")),
                    mount_path=str(_field(m, "mount_path", "")),
                    sub_path=_typed(_field(m, "sub_path"), str, source, "volume_mounts[].sub_path") or None,
                )
                for m in _items(_field(container, "volume_mounts"))
            ),
            liveness_probe=_v2_probe(_field(container, "liveness_probes")),
            startup_probe=_v2_probe(_field(container, "startup_probes")),
            readiness_probe=_v2_probe(_field(container, "readiness_probes")),
            command=tuple(str(item) for item in _items(_field(container, "commands"))),
            args=tuple(str(item) for item in _items(_field(container, "args"))),
            ports=tuple(
                ContainerPort(container_port=_v2_int(_field(p, "container_port")), name=_v2_str(_field(p, "name")))
                for p in _items(_field(container, "ports"))
            ),
            execution_environment=None if environment in (None, "EXECUTION_ENVIRONMENT_UNSPECIFIED") else environment,  # type: ignore[arg-type]  # a str off the API: pydantic checks it against the Literal at runtime
            session_affinity=True if _field(template, "session_affinity") else None,
            # Held verbatim, so typed strictly: a value of another JSON type is malformed, never str()-ed.
            description=_typed(_field(result, "description"), str, source, "description") or None,
            iap_enabled=_typed(_field(result, "iap_enabled"), bool, source, "iap_enabled") or None,
            revision=_typed(_field(template, "revision"), str, source, "templates[0].revision") or None,
            health_check_disabled=_typed(_field(template, "health_check_disabled"), bool, source, "templates[0].health_check_disabled")
            or None,
            container_name=_typed(_field(container, "name"), str, source, "containers[0].name") or None,
            depends_on=tuple(
                _typed(item, str, source, "containers[0].depends_ons[]")
                for item in _typed(_field(container, "depends_ons"), list, source, "containers[0].depends_ons", [])
            ),
            base_image_uri=_typed(_field(container, "base_image_uri"), str, source, "containers[0].base_image_uri") or None,
            labels=user_entries(_v2_map(_field(result, "labels"), source, "labels"), OWNED_SERVICE_LABELS),
            annotations=user_entries(_v2_map(_field(result, "annotations"), source, "annotations"), LEGACY_RELEASE_ANNOTATIONS),
            template_labels=user_entries(_v2_map(_field(template, "labels"), source, "templates[0].labels"), OWNED_TEMPLATE_LABELS),
            template_annotations=user_entries(
                _v2_map(_field(template, "annotations"), source, "templates[0].annotations"), OWNED_TEMPLATE_ANNOTATIONS
            ),
        )
    except ValidationError as error:
        # An enum value this program does not know (a new ingress or egress mode): hold nothing it cannot name.
        raise LiveStateError(f"has settings this program cannot express ({pydantic_summary(error)})", source, "check the service") from None


def _v2_traffic(entries: Any, source: str, field: str) -> tuple[TrafficTarget, ...]:
    traffic = []
    for index, entry in enumerate(_items(entries)):
        where = f"{field}[{index}]"
        traffic.append(
            TrafficTarget(
                revision=_typed(_field(entry, "revision"), str, source, f"{where}.revision", "").rsplit("/", 1)[-1] or None,
                latest=_typed(_field(entry, "type"), str, source, f"{where}.type", "") == V2_LATEST_TRAFFIC,
                percent=_typed(_field(entry, "percent"), int, source, f"{where}.percent", 0),
                tag=_typed(_field(entry, "tag"), str, source, f"{where}.tag", "") or None,
            )
        )
    return _within_100(tuple(traffic), source, field)


def from_cloud_run_v2(result: Any, expected_name: Optional[str] = None, source: str = "gcp.cloudrunv2.get_service") -> LiveService:
    """The result of `gcp.cloudrunv2.get_service` (attribute or dict shape) as a LiveService."""
    try:
        return _from_cloud_run_v2(result, expected_name, source)
    except LiveStateError:
        raise
    except (ValidationError, TypeError, ValueError, AttributeError) as error:
        detail = pydantic_summary(error) if isinstance(error, ValidationError) else type(error).__name__
        raise LiveStateError(f"is malformed ({detail})", source, "pass the invoke result unchanged") from None


def _from_cloud_run_v2(result: Any, expected_name: Optional[str], source: str) -> LiveService:
    raw_name = _field(result, "name")
    if not raw_name:
        raise LiveStateError("has no name", source, "pass the invoke result unchanged; use read_cloud_run_v2 for a missing service")
    name = _typed(raw_name, str, source, "name").rsplit("/", 1)[-1]
    if not SERVICE_NAME_PATTERN.fullmatch(name):
        raise LiveStateError("name is not a Cloud Run service name", source, "pass the invoke result unchanged")
    if expected_name is not None and name != expected_name:
        raise LiveStateError(f"describes {name}, not {expected_name}", source, f"look up {expected_name}")
    template = _first(_field(result, "templates"))
    container = _first(_field(template, "containers"))
    image = _field(container, "image")
    if not image:
        raise LiveStateError("has no templates[0].containers[0].image", source, "pass the invoke result unchanged")
    plain: dict[str, str] = {}
    secrets: dict[str, SecretRef] = {}
    for index, env in enumerate(_field(container, "envs", []) or []):
        env_name = _field(env, "name")
        # Never echo the entry: it may hold a plain credential.
        if not isinstance(env_name, str) or not ENV_NAME.fullmatch(env_name):
            raise LiveStateError(f"env entry [{index}] has no valid name", source, "pass the invoke result unchanged")
        if env_name in plain or env_name in secrets:
            raise LiveStateError(f"env {env_name} appears twice", source, "fix the service so each name is set once")
        # The provider names the secret ref list `secret_key_reves` (its plural of secretKeyRef).
        ref = _first(_field(_first(_field(env, "value_sources", [])), "secret_key_reves", []))
        if ref is not None and _field(env, "value"):
            raise LiveStateError(f"env {env_name} has both a value and a value source", source, "pass the invoke result unchanged")
        if ref is not None and _field(ref, "secret"):
            secrets[env_name] = _live_secret_ref(_field(ref, "secret"), _field(ref, "version"), source, f"env {env_name}.value_sources")
        else:
            plain[env_name] = _typed(_field(env, "value"), str, source, f"env {env_name}.value", "")
    traffic = _v2_traffic(_field(result, "traffic_statuses"), source, "traffic_statuses")
    terminal = [c for c in _field(result, "terminal_conditions", []) or [] if _field(c, "type") == "Ready"]
    ready = _ready([_field(c, "state") for c in terminal], source, "terminal_conditions", V2_CONDITION_SUCCEEDED, V2_CONDITION_STATES)
    ready = ready and not _typed(_field(result, "reconciling"), bool, source, "reconciling", False)
    failed_parts = [
        _field(c, "type")
        for c in _items(_field(result, "conditions"))
        if _field(c, "type") in V1_READY_PARTS and _field(c, "state") == "CONDITION_FAILED"
    ]
    if ready and failed_parts:
        raise LiveStateError(f"terminal_conditions says Ready while {failed_parts[0]} has failed", source, "read the service again")
    template_labels = _str_map(_field(template, "labels"), source, "templates[0].labels")
    return LiveService(
        service_name=name,
        url=_typed(_field(result, "uri"), str, source, "uri") or None,
        urls=tuple(url for url in _items(_field(result, "urls")) if isinstance(url, str)),
        project=_typed(_field(result, "project"), str, source, "project") or None,
        region=_typed(_field(result, "location"), str, source, "location") or None,
        image=str(image),
        commit=template_labels.get(COMMIT_LABEL),
        latest_ready_revision=_revision(_field(result, "latest_ready_revision"), source, "latest_ready_revision"),
        latest_created_revision=_revision(_field(result, "latest_created_revision"), source, "latest_created_revision"),
        ready=ready,
        traffic=traffic,
        declared_traffic=_v2_traffic(_field(result, "traffics"), source, "traffics"),
        env=plain,
        secrets=secrets,
        labels=_str_map(_field(result, "labels"), source, "labels"),
        annotations={
            **_str_map(_field(template, "annotations"), source, "templates[0].annotations"),
            **_str_map(_field(result, "annotations"), source, "annotations"),
        },
        settings=cloud_run_v2_settings(result, template, container, source),
        release_record=_str_map(_field(template, "annotations"), source, "templates[0].annotations").get(RELEASE_RECORD_ANNOTATION),
        source=source,
    )


def _revision(value: Any, source: str, field: str) -> Optional[str]:
    """A v2 revision field (a full resource name) as its short name, None when unset."""
    return _typed(value, str, source, field, "").rsplit("/", 1)[-1] or None


def service_id(spec: ServicePlace) -> str:
    """The provider's id of a service: project **id** (never the number), region, name."""
    return f"projects/{spec.project}/locations/{spec.region}/services/{spec.service_name}"


def is_not_found_error(message: str, spec: ServiceSpec) -> bool:
    """Exactly the provider's answer for a missing service: a message ending in `<service id> not found`.

    Anything else (403, a wrong project, a timeout, a message that merely mentions "not found") is not
    proof that the service is absent, and planning a create over a live trading service is the one
    mistake this must never make.
    """
    return message.rstrip().endswith(f"{service_id(spec)} not found")


def read_cloud_run_v2(fetch: Callable[[], Any], spec: ServiceSpec) -> Optional[LiveService]:
    """Call the get_service invoke: None only for the provider's exact "not found"; any other failure
    (including an empty answer) is a LiveStateError."""
    where = f"gcp.cloudrunv2.get_service({service_id(spec)})"
    try:
        result = fetch()
    except Exception as error:  # the provider reports a missing service as an invoke error
        message = str(error)
        if is_not_found_error(message, spec):
            return None
        raise LiveStateError(
            f"failed: {message.strip().splitlines()[-1][:300] if message.strip() else type(error).__name__}",
            where,
            f"check the credentials of the gcp-{spec.project} provider (roles/run.viewer on {spec.project}), "
            "the project id and region in the stack config, and the network; nothing was registered",
        ) from None
    if not _field(result, "name"):
        raise LiveStateError(
            "answered without a service (no name) instead of not found", where, "check the provider version and the project id"
        )
    return _check_place(from_cloud_run_v2(result, expected_name=spec.service_name, source=where), spec, where)


@dataclass(frozen=True)
class LiveInput:
    """Live state for every configured service, which ones the input did not mention, and where it came from."""

    services: Mapping[str, Optional[LiveService]]
    absent: tuple[str, ...]
    source: str


def require_complete(live: LiveInput, services: Mapping[str, ServicePlace], new: Sequence[str] = ()) -> LiveInput:
    """Live input that speaks for every configured service, or LiveStateError (bad input).

    A file or directory proves nothing about a service it does not describe, and planning that service as
    new would plan a create (dry-run flag, job target and all) over one that may be running. So each one it
    lacks must be named new by the operator (`--new KEY`). `--live gcloud` proves absence itself (the exact
    not-found answer), and a `--new` service that turns out to exist is refused too: it is not new.
    """
    unknown = sorted(set(new) - set(services))
    if unknown:
        raise LiveStateError(
            f"names {', '.join(unknown)}, which {'is' if len(unknown) == 1 else 'are'} not a configured service key",
            "--new",
            f"pass the key of a service in the stack ({', '.join(sorted(services))})",
        )
    if new and live.source == LIVE_NOT_GIVEN:
        raise LiveStateError(
            "only applies with --live", "--new", "pass --live gcloud (or describe files) and --new for a service that does not exist yet"
        )
    existing = sorted(key for key in new if live.services.get(key) is not None)
    if existing:
        raise LiveStateError(
            f"names {', '.join(existing)}, but the live input describes {'it' if len(existing) == 1 else 'them'}: not new",
            "--new",
            "drop --new for a service that exists",
        )
    missing = [key for key in live.absent if key not in new]
    if missing:
        names = ", ".join(f"{key} ({services[key].service_name})" for key in missing)
        raise LiveStateError(
            f"lacks {names}: without its describe document a service would be planned as new (a create) over one that may be running",
            live.source,
            "add each one's `gcloud run services describe <name> --format=json` output, use --live gcloud, or pass --new KEY "
            "for a service that does not exist yet",
        )
    return live


# What `LiveInput.source` says when no --live was given.
LIVE_NOT_GIVEN = "none given (planned as if every service were new; pass --live)"


def read_live(arg: Optional[str], services: Mapping[str, ServicePlace], runner: gcloud.Runner = gcloud.run_gcloud) -> LiveInput:
    """`--live`: None (every service planned as new), 'gcloud', or a describe JSON file / directory."""
    if arg is None:
        return LiveInput({key: None for key in services}, (), LIVE_NOT_GIVEN)
    if arg == gcloud.ARGUMENT:
        live = read_live_gcloud(services, runner=runner)
        return LiveInput(live, (), "gcloud run services describe")
    live = read_live_path(Path(arg), services)
    absent = tuple(key for key, value in live.items() if value is None)
    return LiveInput(live, absent, arg)
