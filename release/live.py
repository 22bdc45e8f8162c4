"""Live state of a Cloud Run service: one typed model, read from gcloud JSON or the Pulumi invoke.

Two shapes reach this module: `gcloud run services describe --format=json` (Knative serving v1) for the
CLI, and `gcp.cloudrunv2.get_service` (Cloud Run v2) for the Pulumi program. Both become `LiveService`;
every rule downstream (ordering, plan, verify) reads only that model.

Malformed or mismatched input is a `LiveStateError`, never "no live state": treating an unreadable
service as new would plan a create over a service that is running real orders.
"""

from __future__ import annotations

import json
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Mapping, Optional, Sequence

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from components.platforms import COMMIT_LABEL, QPK_TAG_ANNOTATION, RUNTIME_TARGET_JSON, STRATEGY_PROFILE, UES_TAG_ANNOTATION
from release.config import SecretRef, ServiceSpec

# Knative v1 puts the region in this label; a describe of the right name in the wrong region is a mismatch.
LOCATION_LABEL = "cloud.googleapis.com/location"
V2_LATEST_TRAFFIC = "TRAFFIC_TARGET_ALLOCATION_TYPE_LATEST"
V2_CONDITION_SUCCEEDED = "CONDITION_SUCCEEDED"
# What gcloud prints when the service does not exist; any other failure is an error, not "new".
GCLOUD_NOT_FOUND_MARKERS = ("could not be found", "NOT_FOUND")
GCLOUD_TIMEOUT_SECONDS = 120


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


@dataclass(frozen=True)
class Confirmation:
    """Whether a commit is confirmed live, and why (or why not) in words an operator can act on."""

    commit: Optional[str]
    reason: str


@dataclass(frozen=True)
class ReleaseTags:
    """The bundle this program recorded on a service; None fields mean it never deployed the service."""

    qpk: Optional[str]
    ues: Optional[str]


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
    traffic: tuple[TrafficTarget, ...] = ()
    env: dict[str, str] = Field(default_factory=dict)
    secrets: dict[str, SecretRef] = Field(default_factory=dict)
    labels: dict[str, str] = Field(default_factory=dict)
    annotations: dict[str, str] = Field(default_factory=dict)
    source: str = Field("", description="where this state was read from, for messages")

    @property
    def profile(self) -> Optional[str]:
        """The profile the service runs: STRATEGY_PROFILE, else RUNTIME_TARGET_JSON's strategy_profile."""
        if self.env.get(STRATEGY_PROFILE):
            return self.env[STRATEGY_PROFILE]
        try:
            target = json.loads(self.env.get(RUNTIME_TARGET_JSON, ""))
        except ValueError:
            return None
        profile = target.get("strategy_profile") if isinstance(target, dict) else None
        return profile if isinstance(profile, str) and profile else None

    @property
    def release_tags(self) -> ReleaseTags:
        return ReleaseTags(qpk=self.annotations.get(QPK_TAG_ANNOTATION), ues=self.annotations.get(UES_TAG_ANNOTATION))

    def confirmation(self) -> Confirmation:
        """Confirmed live = the latest ready revision carries `commit-sha=<sha>` and serves 100% of traffic."""
        if not self.ready:
            return Confirmation(None, f"{self.service_name} is not Ready (its latest revision has not become ready)")
        if not self.latest_ready_revision:
            return Confirmation(None, f"{self.service_name} has no ready revision")
        if self.latest_created_revision and self.latest_created_revision != self.latest_ready_revision:
            return Confirmation(
                None,
                f"latest created revision {self.latest_created_revision} is not ready "
                f"(latest ready is {self.latest_ready_revision})",
            )
        if not self.commit:
            return Confirmation(None, f"revision {self.latest_ready_revision} has no {COMMIT_LABEL} label")
        serving = sum(
            target.percent
            for target in self.traffic
            if target.latest or target.revision == self.latest_ready_revision
        )
        if serving != 100:
            split = ", ".join(
                f"{'latest' if t.latest else t.revision}={t.percent}%" for t in self.traffic
            ) or "no traffic entries"
            return Confirmation(
                None, f"latest ready revision {self.latest_ready_revision} serves {serving}% of traffic ({split})"
            )
        return Confirmation(
            self.commit,
            f"latest ready revision {self.latest_ready_revision} carries {COMMIT_LABEL}={self.commit} "
            "and serves 100% of traffic",
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
    return {str(k): str(v) for k, v in _mapping(value, where, field).items()}


def _knative_env(entries: Any, where: str) -> tuple[dict[str, str], dict[str, SecretRef]]:
    if entries is None:
        entries = []
    if not isinstance(entries, list):
        raise LiveStateError("spec.template.spec.containers[0].env is not a list", where, "pass gcloud's JSON unchanged")
    plain: dict[str, str] = {}
    secrets: dict[str, SecretRef] = {}
    for entry in entries:
        if not isinstance(entry, Mapping) or not isinstance(entry.get("name"), str):
            raise LiveStateError(f"env entry {entry!r} has no name", where, "pass gcloud's JSON unchanged")
        name = entry["name"]
        if name in plain or name in secrets:
            raise LiveStateError(f"env {name} appears twice", where, "fix the service so each name is set once")
        value_from = entry.get("valueFrom")
        if value_from is None:
            plain[name] = str(entry.get("value", ""))
            continue
        ref = _mapping(value_from, where, f"env {name}.valueFrom").get("secretKeyRef")
        if not isinstance(ref, Mapping) or not ref.get("name"):
            raise LiveStateError(
                f"env {name} reads something other than a Secret Manager secret", where, "use secretKeyRef{name,key}"
            )
        secrets[name] = SecretRef(secret=str(ref["name"]), version=str(ref.get("key") or "latest"))
    return plain, secrets


def from_knative_json(data: Any, expected_name: Optional[str] = None, source: str = "live JSON") -> LiveService:
    """A `gcloud run services describe --format=json` document as a LiveService.

    `expected_name` guards against describing the wrong service: a mismatch is an error.
    """
    try:
        return _from_knative_json(data, expected_name, source)
    except LiveStateError:
        raise
    except (ValidationError, TypeError, ValueError) as error:
        raise LiveStateError(f"is malformed ({error})", source, "pass gcloud's JSON unchanged") from None


def _from_knative_json(data: Any, expected_name: Optional[str], source: str) -> LiveService:
    if not isinstance(data, Mapping):
        raise LiveStateError("is not a JSON object", source, "pass the output of gcloud run services describe --format=json")
    kind = data.get("kind")
    if kind is not None and kind != "Service":
        raise LiveStateError(f"kind is {kind!r}, not 'Service'", source, "describe the service, not a revision")
    metadata = _mapping(data.get("metadata"), source, "metadata")
    name = metadata.get("name")
    if not isinstance(name, str) or not name:
        raise LiveStateError("has no metadata.name", source, "pass the output of gcloud run services describe --format=json")
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
    template_labels = _str_map(_mapping(template.get("metadata"), source, "spec.template.metadata").get("labels"), source, "labels")
    status = _mapping(data.get("status"), source, "status")
    conditions = status.get("conditions") or []
    if not isinstance(conditions, list):
        raise LiveStateError("status.conditions is not a list", source, "pass gcloud's JSON unchanged")
    ready = any(
        isinstance(c, Mapping) and c.get("type") == "Ready" and c.get("status") == "True" for c in conditions
    )
    traffic_raw = status.get("traffic") or []
    if not isinstance(traffic_raw, list):
        raise LiveStateError("status.traffic is not a list", source, "pass gcloud's JSON unchanged")
    traffic = []
    for entry in traffic_raw:
        entry = _mapping(entry, source, "status.traffic[]")
        traffic.append(
            TrafficTarget(
                revision=entry.get("revisionName"),
                latest=bool(entry.get("latestRevision", False)),
                percent=int(entry.get("percent") or 0),
            )
        )
    labels = _str_map(metadata.get("labels"), source, "metadata.labels")
    return LiveService(
        service_name=name,
        region=labels.get(LOCATION_LABEL),
        image=image,
        commit=template_labels.get(COMMIT_LABEL),
        latest_ready_revision=status.get("latestReadyRevisionName"),
        latest_created_revision=status.get("latestCreatedRevisionName"),
        ready=ready,
        traffic=tuple(traffic),
        env=plain,
        secrets=secrets,
        labels=labels,
        # Release tags are recorded on the service; a template-level copy is accepted when the service has none.
        annotations={
            **_str_map(_mapping(template.get("metadata"), source, "spec.template.metadata").get("annotations"), source, "annotations"),
            **_str_map(metadata.get("annotations"), source, "metadata.annotations"),
        },
        source=source,
    )


def _check_place(live: LiveService, spec: ServiceSpec, where: str) -> LiveService:
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
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as error:
        raise LiveStateError(f"cannot be read ({error.strerror})", str(path), "check the --live path") from None
    try:
        return json.loads(text)
    except ValueError as error:
        raise LiveStateError(f"is not valid JSON ({error})", str(path), "write it with gcloud run services describe NAME --format=json") from None


def read_live_path(path: Path, services: Mapping[str, ServiceSpec]) -> dict[str, Optional[LiveService]]:
    """Live state from a describe JSON file (one service or a list) or a directory of *.json files.

    Every document must describe a configured service (matched by service name). A configured service
    with no document is reported as None, i.e. not live: planned as new (the plan warns about it).
    """
    if path.is_dir():
        files = sorted(path.glob("*.json"))
        if not files:
            raise LiveStateError("holds no *.json files", str(path), "write one gcloud describe JSON per service into it")
    elif path.exists():
        files = [path]
    else:
        raise LiveStateError("does not exist", str(path), "pass a describe JSON file, a directory of them, or 'gcloud'")
    key_by_name = {spec.service_name: key for key, spec in services.items()}
    found: dict[str, LiveService] = {}
    for file in files:
        document = _load_json(file)
        items = document if isinstance(document, list) else [document]
        for index, item in enumerate(items):
            where = f"{file}[{index}]" if isinstance(document, list) else str(file)
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


Runner = Callable[..., "subprocess.CompletedProcess[str]"]


def gcloud_describe_command(spec: ServiceSpec) -> list[str]:
    return [
        "gcloud", "run", "services", "describe", spec.service_name,
        "--project", spec.project, "--region", spec.region, "--format=json",
    ]  # fmt: skip


def read_live_gcloud(services: Mapping[str, ServiceSpec], runner: Runner = subprocess.run) -> dict[str, Optional[LiveService]]:
    """Live state by running gcloud per configured service; "could not be found" means the service is new."""
    result: dict[str, Optional[LiveService]] = {}
    for key, spec in services.items():
        command = gcloud_describe_command(spec)
        where = " ".join(command)
        try:
            done = runner(command, capture_output=True, text=True, timeout=GCLOUD_TIMEOUT_SECONDS, check=False)
        except FileNotFoundError:
            raise LiveStateError("gcloud is not installed", where, "install the Google Cloud SDK or pass --live DIR") from None
        except subprocess.TimeoutExpired:
            raise LiveStateError(f"timed out after {GCLOUD_TIMEOUT_SECONDS}s", where, "check gcloud auth and network") from None
        if done.returncode != 0:
            stderr = (done.stderr or "").strip()
            if any(marker in stderr for marker in GCLOUD_NOT_FOUND_MARKERS):
                result[key] = None
                continue
            raise LiveStateError(
                f"failed (exit {done.returncode}): {stderr.splitlines()[-1] if stderr else 'no output'}",
                where,
                "check gcloud auth login and the project/region in the stack",
            )
        try:
            document = json.loads(done.stdout)
        except ValueError as error:
            raise LiveStateError(f"printed invalid JSON ({error})", where, "run it by hand to see what gcloud prints") from None
        result[key] = _check_place(from_knative_json(document, expected_name=spec.service_name, source=where), spec, where)
    return result


# --- Cloud Run v2 (gcp.cloudrunv2.get_service) --------------------------------------------------


def _field(obj: Any, name: str, default: Any = None) -> Any:
    """Read a field from the invoke result: an output object (attributes) or a plain dict (mocks)."""
    if obj is None:
        return default
    if isinstance(obj, Mapping):
        value = obj.get(name, default)
    else:
        value = getattr(obj, name, default)
    return default if value is None else value


def _first(items: Any) -> Any:
    return items[0] if isinstance(items, Sequence) and not isinstance(items, str) and items else None


def is_v2_not_found(result: Any) -> bool:
    """A get_service result with neither name nor templates: the data source found no service."""
    return not _field(result, "name") and not _field(result, "templates") and not _field(result, "uid")


def from_cloud_run_v2(result: Any, expected_name: Optional[str] = None, source: str = "gcp.cloudrunv2.get_service") -> LiveService:
    """The result of `gcp.cloudrunv2.get_service` (attribute or dict shape) as a LiveService."""
    try:
        return _from_cloud_run_v2(result, expected_name, source)
    except LiveStateError:
        raise
    except (ValidationError, TypeError, ValueError, AttributeError) as error:
        raise LiveStateError(f"is malformed ({error})", source, "pass the invoke result unchanged") from None


def _from_cloud_run_v2(result: Any, expected_name: Optional[str], source: str) -> LiveService:
    raw_name = _field(result, "name")
    if not raw_name:
        raise LiveStateError("has no name", source, "pass the invoke result unchanged; use read_cloud_run_v2 for a missing service")
    name = str(raw_name).rsplit("/", 1)[-1]
    if expected_name is not None and name != expected_name:
        raise LiveStateError(f"describes {name}, not {expected_name}", source, f"look up {expected_name}")
    template = _first(_field(result, "templates"))
    container = _first(_field(template, "containers"))
    image = _field(container, "image")
    if not image:
        raise LiveStateError("has no templates[0].containers[0].image", source, "pass the invoke result unchanged")
    plain: dict[str, str] = {}
    secrets: dict[str, SecretRef] = {}
    for env in _field(container, "envs", []) or []:
        env_name = _field(env, "name")
        if not env_name:
            raise LiveStateError("an env entry has no name", source, "pass the invoke result unchanged")
        if env_name in plain or env_name in secrets:
            raise LiveStateError(f"env {env_name} appears twice", source, "fix the service so each name is set once")
        # The provider names the secret ref list `secret_key_reves` (its plural of secretKeyRef).
        ref = _first(_field(_first(_field(env, "value_sources", [])), "secret_key_reves", []))
        if ref is not None and _field(ref, "secret"):
            secrets[env_name] = SecretRef(secret=str(_field(ref, "secret")), version=str(_field(ref, "version") or "latest"))
        else:
            plain[env_name] = str(_field(env, "value", ""))
    traffic = []
    for status in _field(result, "traffic_statuses", []) or []:
        traffic.append(
            TrafficTarget(
                revision=str(_field(status, "revision", "")).rsplit("/", 1)[-1] or None,
                latest=_field(status, "type") == V2_LATEST_TRAFFIC,
                percent=int(_field(status, "percent", 0)),
            )
        )
    terminal = [c for c in _field(result, "terminal_conditions", []) or [] if _field(c, "type") == "Ready"]
    ready = bool(terminal) and all(_field(c, "state") == V2_CONDITION_SUCCEEDED for c in terminal)
    ready = ready and not _field(result, "reconciling", False)
    template_labels = {str(k): str(v) for k, v in (_field(template, "labels", {}) or {}).items()}
    return LiveService(
        service_name=name,
        project=_field(result, "project") or None,
        region=_field(result, "location") or None,
        image=str(image),
        commit=template_labels.get(COMMIT_LABEL),
        latest_ready_revision=str(_field(result, "latest_ready_revision", "")).rsplit("/", 1)[-1] or None,
        latest_created_revision=str(_field(result, "latest_created_revision", "")).rsplit("/", 1)[-1] or None,
        ready=ready,
        traffic=tuple(traffic),
        env=plain,
        secrets=secrets,
        labels={str(k): str(v) for k, v in (_field(result, "labels", {}) or {}).items()},
        annotations={
            **{str(k): str(v) for k, v in (_field(template, "annotations", {}) or {}).items()},
            **{str(k): str(v) for k, v in (_field(result, "annotations", {}) or {}).items()},
        },
        source=source,
    )


def read_cloud_run_v2(fetch: Callable[[], Any], expected_name: str) -> Optional[LiveService]:
    """Call the get_service invoke; a "not found" answer (error or empty result) means the service is new."""
    try:
        result = fetch()
    except Exception as error:  # the provider reports a missing service as an invoke error
        if "not found" in str(error).lower() or "notfound" in str(error).lower():
            return None
        raise LiveStateError(f"get_service failed: {error}", expected_name, "check provider credentials and region") from error
    if is_v2_not_found(result):
        return None
    return from_cloud_run_v2(result, expected_name=expected_name)


@dataclass(frozen=True)
class LiveInput:
    """Live state for every configured service, which ones the input did not mention, and where it came from."""

    services: Mapping[str, Optional[LiveService]]
    absent: tuple[str, ...]
    source: str


GCLOUD = "gcloud"


def read_live(arg: Optional[str], services: Mapping[str, ServiceSpec], runner: Runner = subprocess.run) -> LiveInput:
    """`--live`: None (every service planned as new), 'gcloud', or a describe JSON file / directory."""
    if arg is None:
        return LiveInput({key: None for key in services}, (), "none given (planned as if every service were new; pass --live)")
    if arg == GCLOUD:
        live = read_live_gcloud(services, runner=runner)
        return LiveInput(live, (), "gcloud run services describe")
    live = read_live_path(Path(arg), services)
    absent = tuple(key for key, value in live.items() if value is None)
    return LiveInput(live, absent, arg)
