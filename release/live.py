"""Live state of a Cloud Run service: one typed model, read from gcloud JSON or the Pulumi invoke.

Two shapes reach this module: `gcloud run services describe --format=json` (Knative serving v1) for the
CLI, and `gcp.cloudrunv2.get_service` (Cloud Run v2) for the Pulumi program. Both become `LiveService`;
every rule downstream (ordering, plan, verify) reads only that model.

Malformed or mismatched input is a `LiveStateError`, never "no live state": treating an unreadable
service as new would plan a create over a service that is running real orders.
"""

from __future__ import annotations

import json
import re
import subprocess
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable, Mapping, Optional, Sequence

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from components.platforms import COMMIT_LABEL, QPK_TAG_ANNOTATION, RUNTIME_TARGET_JSON, STRATEGY_PROFILE, UES_TAG_ANNOTATION
from release.config import SECRET_VERSION_PATTERN, SERVICE_NAME_PATTERN, SecretRef, ServiceSpec
from release.local_files import LIVE_FILE_MAX_BYTES, InputFileError, json_files, load_json, read_text

# Knative v1 puts the region in this label; a describe of the right name in the wrong region is a mismatch.
LOCATION_LABEL = "cloud.googleapis.com/location"
V2_LATEST_TRAFFIC = "TRAFFIC_TARGET_ALLOCATION_TYPE_LATEST"
V2_CONDITION_SUCCEEDED = "CONDITION_SUCCEEDED"
V2_CONDITION_STATES = (
    "STATE_UNSPECIFIED", "CONDITION_PENDING", "CONDITION_RECONCILING", "CONDITION_FAILED", V2_CONDITION_SUCCEEDED,
)  # fmt: skip
# What gcloud prints when the service does not exist; any other failure is an error, not "new".
GCLOUD_NOT_FOUND_MARKERS = ("could not be found", "NOT_FOUND")
GCLOUD_TIMEOUT_SECONDS = 120
# Words that make a "not found" invoke error something other than a missing service.
NOT_MISSING_WORDS = ("permission", "denied", "forbidden", "403", "project '", "unauthenticated")
# What a field name in a live document may look like to be named in a message; anything else is "an entry".
SAFE_NAME = re.compile(r"[A-Za-z0-9_.:/-]{1,128}")
# Env names as Cloud Run accepts them; a name outside this is malformed input, not something to print.
ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_.-]{0,255}")
# A live secret ref: a secret id, or (another project's secret) its full resource name.
LIVE_SECRET_PATTERN = re.compile(r"(?:projects/[a-z0-9-]{1,63}/secrets/)?[A-Za-z0-9_-]{1,255}")
_JSON_TYPE_NAMES = {bool: "a boolean", int: "an integer", str: "a string", list: "a list"}


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
    source: str = Field("", description="where this state was read from, for messages")

    @property
    def profile(self) -> Optional[str]:
        """The profile the service runs: STRATEGY_PROFILE, else RUNTIME_TARGET_JSON's strategy_profile."""
        if self.env.get(STRATEGY_PROFILE):
            return self.env[STRATEGY_PROFILE]
        try:
            target = json.loads(self.env.get(RUNTIME_TARGET_JSON, ""))
        except (ValueError, RecursionError):  # deep nesting is as unreadable as bad JSON
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
                f"latest created revision {self.latest_created_revision} is not ready (latest ready is {self.latest_ready_revision})",
            )
        if not self.commit:
            return Confirmation(None, f"revision {self.latest_ready_revision} has no {COMMIT_LABEL} label")
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
    ready_since = next(
        (
            _transition_time(c.get("lastTransitionTime"))
            for c in conditions
            if isinstance(c, Mapping) and c.get("type") == "Ready" and c.get("status") == "True"
        ),
        None,
    )
    traffic_raw = status.get("traffic") or []
    if not isinstance(traffic_raw, list):
        raise LiveStateError("status.traffic is not a list", source, "pass gcloud's JSON unchanged")
    traffic = []
    for index, entry in enumerate(traffic_raw):
        entry = _mapping(entry, source, f"status.traffic[{index}]")
        traffic.append(
            TrafficTarget(
                revision=_typed(entry.get("revisionName"), str, source, f"status.traffic[{index}].revisionName"),
                latest=_typed(entry.get("latestRevision"), bool, source, f"status.traffic[{index}].latestRevision", False),
                percent=_typed(entry.get("percent"), int, source, f"status.traffic[{index}].percent", 0),
            )
        )
    labels = _str_map(metadata.get("labels"), source, "metadata.labels")
    return LiveService(
        service_name=name,
        region=labels.get(LOCATION_LABEL),
        image=image,
        commit=template_labels.get(COMMIT_LABEL),
        latest_ready_revision=_typed(status.get("latestReadyRevisionName"), str, source, "status.latestReadyRevisionName"),
        latest_created_revision=_typed(status.get("latestCreatedRevisionName"), str, source, "status.latestCreatedRevisionName"),
        ready=ready,
        ready_since=ready_since,
        traffic=tuple(traffic),
        env=plain,
        secrets=secrets,
        labels=labels,
        # Release tags are recorded on the service; a template-level copy is accepted when the service has none.
        annotations={
            **_str_map(_mapping(template.get("metadata"), source, "spec.template.metadata").get("annotations"), source, "annotations"),
            **_str_map(metadata.get("annotations"), source, "metadata.annotations"),
        },
        url=_typed(status.get("url"), str, source, "status.url") or None,
        source=source,
    )


def _transition_time(value: Any) -> Optional[datetime]:
    """A condition's RFC 3339 time as aware UTC; anything else is None (unknown, never guessed)."""
    if not isinstance(value, str):
        return None
    try:
        parsed = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed.astimezone(timezone.utc) if parsed.tzinfo else None


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
    fix = "write it with gcloud run services describe NAME --format=json"
    try:
        return load_json(read_text(path, LIVE_FILE_MAX_BYTES, fix), str(path), fix)
    except FileNotFoundError as error:
        raise LiveStateError(f"cannot be read ({error.strerror})", str(path), "check the --live path") from None
    except InputFileError as error:
        raise LiveStateError(error.what, error.where, error.fix) from None


def read_live_path(path: Path, services: Mapping[str, ServiceSpec]) -> dict[str, Optional[LiveService]]:
    """Live state from a describe JSON file (one service or a list) or a directory of *.json files.

    Every document must describe a configured service (matched by service name). A configured service
    with no document is reported as None, i.e. not live: planned as new (the plan warns about it).
    """
    if path.is_dir():
        try:
            files = json_files(path)
        except InputFileError as error:
            raise LiveStateError(error.what, error.where, error.fix) from None
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
            if len(done.stdout) > LIVE_FILE_MAX_BYTES:
                raise InputFileError(
                    f"printed more than {LIVE_FILE_MAX_BYTES} characters", where, "run it by hand to see what gcloud prints"
                )
            document = load_json(done.stdout, where, "run it by hand to see what gcloud prints")
        except InputFileError as error:
            raise LiveStateError(error.what.replace("is not valid JSON", "printed invalid JSON"), where, error.fix) from None
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
        if ref is not None and _field(ref, "secret"):
            secrets[env_name] = _live_secret_ref(_field(ref, "secret"), _field(ref, "version"), source, f"env {env_name}.value_sources")
        else:
            plain[env_name] = _typed(_field(env, "value"), str, source, f"env {env_name}.value", "")
    traffic = []
    for index, status in enumerate(_field(result, "traffic_statuses", []) or []):
        where = f"traffic_statuses[{index}]"
        traffic.append(
            TrafficTarget(
                revision=_typed(_field(status, "revision"), str, source, f"{where}.revision", "").rsplit("/", 1)[-1] or None,
                latest=_typed(_field(status, "type"), str, source, f"{where}.type", "") == V2_LATEST_TRAFFIC,
                percent=_typed(_field(status, "percent"), int, source, f"{where}.percent", 0),
            )
        )
    terminal = [c for c in _field(result, "terminal_conditions", []) or [] if _field(c, "type") == "Ready"]
    ready = _ready([_field(c, "state") for c in terminal], source, "terminal_conditions", V2_CONDITION_SUCCEEDED, V2_CONDITION_STATES)
    ready = ready and not _typed(_field(result, "reconciling"), bool, source, "reconciling", False)
    template_labels = _str_map(_field(template, "labels"), source, "templates[0].labels")
    return LiveService(
        service_name=name,
        url=_typed(_field(result, "uri"), str, source, "uri") or None,
        project=_typed(_field(result, "project"), str, source, "project") or None,
        region=_typed(_field(result, "location"), str, source, "location") or None,
        image=str(image),
        commit=template_labels.get(COMMIT_LABEL),
        latest_ready_revision=_revision(_field(result, "latest_ready_revision"), source, "latest_ready_revision"),
        latest_created_revision=_revision(_field(result, "latest_created_revision"), source, "latest_created_revision"),
        ready=ready,
        traffic=tuple(traffic),
        env=plain,
        secrets=secrets,
        labels=_str_map(_field(result, "labels"), source, "labels"),
        annotations={
            **_str_map(_field(template, "annotations"), source, "templates[0].annotations"),
            **_str_map(_field(result, "annotations"), source, "annotations"),
        },
        source=source,
    )


def _revision(value: Any, source: str, field: str) -> Optional[str]:
    """A v2 revision field (a full resource name) as its short name, None when unset."""
    return _typed(value, str, source, field, "").rsplit("/", 1)[-1] or None


def read_cloud_run_v2(fetch: Callable[[], Any], expected_name: str) -> Optional[LiveService]:
    """Call the get_service invoke; a "not found" answer (error or empty result) means the service is new."""
    try:
        result = fetch()
    except Exception as error:  # the provider reports a missing service as an invoke error
        text = str(error).lower()
        # "Project 'x' not found or permission denied" is about access, not the service: reading it as
        # "missing" would plan a create (image and env in one update) over a running service.
        if ("not found" in text or "notfound" in text) and not any(word in text for word in NOT_MISSING_WORDS):
            return None
        raise LiveStateError(f"get_service failed: {error}", expected_name, "check provider credentials and region") from error
    if is_v2_not_found(result):
        return None
    return from_cloud_run_v2(result, expected_name=expected_name, source=f"getService {expected_name}")


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
