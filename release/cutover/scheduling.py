"""What calls a strategy service: its Cloud Scheduler job and the invoker binding that lets the job call.

A Cloud Run strategy service does nothing by itself: a job `<service name without -service>-scheduler`
POSTs `<service url>/run` with an OIDC token of `{platform}-platform-scheduler@<project>` (audience = the
service URL), and that account needs `roles/run.invoker` on the service (docs/platform-facts.md §2).

Pure: the config rules (cron, time zone, account, deadline), the job the program registers (each field
from the stack config, else the live job, else the default), the live job and IAM policy models with their
readers (gcloud JSON, a file/directory of it, or the REST answer, which has the same shape), and the
checks `verify` runs.
"""

from __future__ import annotations

import functools
import json
import re
import time
import zoneinfo
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Optional

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from components.platforms import looks_secret
from release.config import ConfigProblem, ServiceSpec
from release.cutover import gcloud
from release.local_files import InputFileError, input_files, json_items, load_json, read_text

DEFAULT_SCHEDULE = "45 15 * * 1-5"
DEFAULT_TIME_ZONE = "America/New_York"
# The platforms' own deploy scripts give IBKR's job a longer deadline (its run waits on the IB Gateway).
DEFAULT_ATTEMPT_DEADLINES: Mapping[str, str] = {"ibkr": "330s"}
RUN_PATH = "/run"
HTTP_METHOD = "POST"
INVOKER_ROLE = "roles/run.invoker"
JOB_SUFFIX = "-scheduler"
# Jobs the platforms run beside the main one; held, never managed here (plan lists them).
COMPANION_SUFFIXES: Mapping[str, tuple[str, ...]] = {
    "ibkr": ("-warmup-scheduler", "-precheck-scheduler"),
    "schwab": ("-probe-scheduler", "-precheck-scheduler"),
    "longbridge": ("-probe-scheduler", "-precheck-scheduler"),
}
EXTRA_COMPANIONS: Mapping[str, tuple[str, ...]] = {"schwab": ("schwab-monitor-dispatcher-scheduler",)}
DEADLINE_PATTERN = re.compile(r"([1-9][0-9]{1,3})s")
MIN_DEADLINE_SECONDS, MAX_DEADLINE_SECONDS = 15, 1800
ACCOUNT_NAME_PATTERN = re.compile(r"[a-z][a-z0-9-]{4,28}[a-z0-9]")
MAX_DOCUMENT_BYTES = 1_000_000

# --- unix-cron, as Cloud Scheduler reads it ------------------------------------------------------

_MONTHS = {
    name: number for number, name in enumerate(("JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC"), 1)
}
_DAYS = {name: number for number, name in enumerate(("SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"))}
_CRON_FIELDS: tuple[tuple[str, int, int, dict[str, int]], ...] = (
    ("minute", 0, 59, {}),
    ("hour", 0, 23, {}),
    ("day of month", 1, 31, {}),
    ("month", 1, 12, _MONTHS),
    ("day of week", 0, 7, _DAYS),
)
_CRON_ITEM = re.compile(r"(?P<range>\*|[A-Za-z0-9]+(?:-[A-Za-z0-9]+)?)(?:/(?P<step>[0-9]+))?")


def cron_problem(expression: str) -> Optional[str]:
    """Why `expression` is not a five-field unix-cron schedule; None when it is one."""
    fields = expression.split()
    if len(fields) != 5 or len(expression) > 200:
        return f"{expression[:80]!r} is not a cron schedule: write five fields (minute hour day-of-month month day-of-week), e.g. {DEFAULT_SCHEDULE}"
    for text, (label, low, high, names) in zip(fields, _CRON_FIELDS, strict=True):
        for item in text.split(","):
            match = _CRON_ITEM.fullmatch(item)
            if match is None:
                return f"{label} field {text!r} is not valid cron; use *, a number, a range a-b, a list a,b or a step */n"
            if match["step"] is not None and not 1 <= int(match["step"]) <= high:
                return f"{label} field {text!r} has step {match['step']}; use 1 to {high}"
            if match["range"] == "*":
                continue
            bounds = []
            for value in match["range"].split("-"):
                number = names.get(value.upper()) if not value.isdigit() else int(value)
                if number is None or not low <= number <= high:
                    return f"{label} field {text!r}: {value!r} is outside {low}-{high}"
                bounds.append(number)
            if len(bounds) == 2 and bounds[0] > bounds[1]:
                return f"{label} field {text!r} has a backwards range"
    return None


@functools.lru_cache(maxsize=1)
def _time_zones() -> frozenset[str]:
    # Reading the zone database walks the filesystem; once per process is enough.
    return frozenset(zoneinfo.available_timezones())


def time_zone_problem(name: str) -> Optional[str]:
    if name not in _time_zones():
        return f"{name[:80]!r} is not an IANA time zone; write e.g. {DEFAULT_TIME_ZONE} or Asia/Hong_Kong"
    return None


def deadline_problem(value: str) -> Optional[str]:
    match = DEADLINE_PATTERN.fullmatch(value)
    if match is None or not MIN_DEADLINE_SECONDS <= int(match[1]) <= MAX_DEADLINE_SECONDS:
        return f"{value[:40]!r} is not an attempt deadline; write whole seconds from {MIN_DEADLINE_SECONDS}s to {MAX_DEADLINE_SECONDS}s, e.g. 330s"
    return None


def default_account(spec: ServiceSpec) -> str:
    return f"{spec.platform}-platform-scheduler@{spec.project}.iam.gserviceaccount.com"


def account_problem(account: str, spec: ServiceSpec) -> Optional[str]:
    """The job's OIDC account must be a service account of the service's own project."""
    name, _, domain = account.partition("@")
    if domain != f"{spec.project}.iam.gserviceaccount.com" or not ACCOUNT_NAME_PATTERN.fullmatch(name):
        return f"{account[:120]!r} is not a service account of project {spec.project}; write <name>@{spec.project}.iam.gserviceaccount.com (default {default_account(spec)})"
    return None


def scheduler_problems(key: str, spec: ServiceSpec) -> list[ConfigProblem]:
    """Every problem of a service's `scheduler` block, one per field."""
    scheduler = spec.scheduler
    if scheduler is None:
        return []
    where = f"services.{key}.scheduler"
    checks = (
        ("schedule", scheduler.schedule, cron_problem),
        ("timeZone", scheduler.time_zone, time_zone_problem),
        ("attemptDeadline", scheduler.attempt_deadline, deadline_problem),
        ("serviceAccount", scheduler.service_account, lambda value: account_problem(value, spec)),
    )
    problems = []
    for field_name, value, check in checks:
        message = None if value is None else check(value)
        if message is not None:
            problems.append(ConfigProblem(path=f"{where}.{field_name}", message=message))
    if scheduler.paused is False and not spec.enabled:
        problems.append(
            ConfigProblem(
                path=f"{where}.paused",
                message="false contradicts enabled: false, which pauses the job; remove scheduler.paused or set enabled: true",
            )
        )
    return problems


# --- names ---------------------------------------------------------------------------------------


def job_base(spec: ServiceSpec) -> str:
    name = spec.service_name
    return name[: -len("-service")] if name.endswith("-service") else name


def job_name(spec: ServiceSpec) -> str:
    """The real jobs' naming: `<service name without -service>-scheduler`."""
    return job_base(spec) + JOB_SUFFIX


def job_id(spec: ServiceSpec) -> str:
    return f"projects/{spec.project}/locations/{spec.region}/jobs/{job_name(spec)}"


def companion_jobs(spec: ServiceSpec) -> tuple[str, ...]:
    """The platform's other jobs for this service: held as they are, listed by `plan`, never registered."""
    base = job_base(spec)
    return tuple(base + suffix for suffix in COMPANION_SUFFIXES[spec.platform]) + EXTRA_COMPANIONS.get(spec.platform, ())


def scheduler_account(spec: ServiceSpec) -> str:
    configured = None if spec.scheduler is None else spec.scheduler.service_account
    return configured or default_account(spec)


def run_uri(service_url: str) -> str:
    return service_url.rstrip("/") + RUN_PATH


# --- live state ----------------------------------------------------------------------------------


class SchedulingInputError(ValueError):
    """A scheduler job or IAM policy document that cannot be trusted: bad input, exit 2."""


class LiveModel(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class LiveSchedulerJob(LiveModel):
    """A Cloud Scheduler job as it runs now (gcloud describe JSON and the REST answer share this shape)."""

    name: str
    project: str
    region: str
    state: str
    schedule: Optional[str] = None
    time_zone: Optional[str] = None
    attempt_deadline: Optional[str] = None
    uri: Optional[str] = None
    http_method: Optional[str] = None
    oidc_service_account: Optional[str] = None
    audience: Optional[str] = None
    # An OAuth token instead of OIDC (never what this program registers; read so headers are judged right).
    oauth_service_account: Optional[str] = None
    # As the API answers them, API-added ones included; `provider_headers` is what the provider keeps.
    headers: dict[str, str] = Field(default_factory=dict)
    body: Optional[str] = None
    description: Optional[str] = None
    # camelCase as the API writes it (retryCount, maxRetryDuration, ...): held as is, never decided here.
    retry_config: dict[str, Any] = Field(default_factory=dict)
    source: str = ""

    @property
    def paused(self) -> bool:
        return self.state == "PAUSED"

    @property
    def sends_token(self) -> bool:
        """The job sends an OIDC or OAuth token (the API then injects `Authorization`)."""
        return self.oidc_service_account is not None or self.oauth_service_account is not None


# --- job headers as the provider reads them back ---------------------------------------------------
#
# terraform-provider-google's `flattenCloudSchedulerJobHttpTargetHeaders` (what pulumi-gcp stores after
# every read) drops what the Cloud Scheduler API adds to a job's headers: registering one of these would be
# a diff on every preview (an update of every job on every run, a failing drift check), and an injected
# `Authorization` would land in state, plan files and comments.
APP_ENGINE_USER_AGENT = "AppEngine-Google; (+http://code.google.com/appengine)"
SCHEDULER_USER_AGENT = "Google-Cloud-Scheduler"
DEFAULT_CONTENT_TYPE = "application/octet-stream"
AUTHORIZATION = "Authorization"
# Go's `regexp.MatchString`: a search anywhere in the name, case-sensitive, as the provider runs it.
PROVIDER_DROPPED_HEADER = re.compile(r"(X-Google-|X-AppEngine-|Content-Length).*")
# Go's `strings.TrimSpace` (Unicode White_Space), which is not Python's `str.strip()` (that also strips \x1c-\x1f).
GO_SPACE = "\t\n\v\f\r \x85\xa0\u1680\u2000\u2001\u2002\u2003\u2004\u2005\u2006\u2007\u2008\u2009\u200a\u2028\u2029\u202f\u205f\u3000"
# A header that carries a credential is never registered or shown in plain text.
CREDENTIAL_HEADERS = frozenset({"authorization", "proxy-authorization", "cookie"})


def provider_headers(headers: Mapping[str, str], token_set: bool) -> dict[str, str]:
    """A job's headers exactly as the provider's reader keeps them: the API's `User-Agent` (scheduler or App
    Engine; App Engine's suffix is cut from a custom one), `Content-Type: application/octet-stream`, every
    name containing `X-Google-`, `X-AppEngine-` or `Content-Length`, and `Authorization` when the job
    sends an OIDC or OAuth token (the API injects one then) are dropped; everything else is kept verbatim."""
    kept = dict(headers)
    agent = kept.get("User-Agent")
    if agent is not None:
        if agent in (APP_ENGINE_USER_AGENT, SCHEDULER_USER_AGENT):
            del kept["User-Agent"]
        else:
            kept["User-Agent"] = agent.replace(APP_ENGINE_USER_AGENT, "").strip(GO_SPACE)
    if kept.get("Content-Type") == DEFAULT_CONTENT_TYPE:
        del kept["Content-Type"]
    kept = {name: value for name, value in kept.items() if not PROVIDER_DROPPED_HEADER.search(name)}
    if token_set:
        kept.pop(AUTHORIZATION, None)
    return kept


def is_credential_header(name: str) -> bool:
    """A header whose value is a credential: registered as a Pulumi secret, shown masked."""
    return name.lower() in CREDENTIAL_HEADERS or looks_secret(name.upper().replace("-", "_"))


def shown_headers(headers: Mapping[str, str]) -> dict[str, str]:
    """Headers as a plan shows them: credential values masked."""
    return {name: "(secret)" if is_credential_header(name) else value for name, value in sorted(headers.items())}


RETRY_FIELDS = ("retryCount", "maxRetryDuration", "minBackoffDuration", "maxBackoffDuration", "maxDoublings")
_JOB_NAME = re.compile(r"projects/(?P<project>[^/]+)/locations/(?P<region>[^/]+)/jobs/(?P<job>[^/]+)")


def _text(value: Any, where: str, field: str) -> Optional[str]:
    if value is None:
        return None
    if not isinstance(value, str):
        raise SchedulingInputError(f"{where}: {field} is not a string; pass gcloud's JSON unchanged")
    return value


def from_job_json(document: Any, source: str) -> LiveSchedulerJob:
    """A `gcloud scheduler jobs describe --format=json` document (or the v1 REST Job) as a LiveSchedulerJob."""
    if not isinstance(document, Mapping):
        raise SchedulingInputError(f"{source}: is not a JSON object; write it with gcloud scheduler jobs describe JOB --format=json")
    match = _JOB_NAME.fullmatch(_text(document.get("name"), source, "name") or "")
    if match is None:
        raise SchedulingInputError(f"{source}: name is not projects/<project>/locations/<region>/jobs/<job>; pass gcloud's JSON unchanged")
    target = document.get("httpTarget")
    if target is not None and not isinstance(target, Mapping):
        raise SchedulingInputError(f"{source}: httpTarget is not an object; pass gcloud's JSON unchanged")
    target = target or {}
    oidc = target.get("oidcToken") or {}
    oauth = target.get("oauthToken") or {}
    headers = target.get("headers") or {}
    retry = document.get("retryConfig") or {}
    if not all(isinstance(part, Mapping) for part in (oidc, oauth, headers, retry)):
        raise SchedulingInputError(f"{source}: httpTarget.oidcToken/oauthToken/headers is not an object; pass gcloud's JSON unchanged")
    if not all(isinstance(name, str) and isinstance(value, str) for name, value in headers.items()):
        # Never quoted: a header value may be a credential.
        raise SchedulingInputError(f"{source}: httpTarget.headers holds a name or value that is not a string; pass gcloud's JSON unchanged")
    try:
        return LiveSchedulerJob(
            name=match["job"],
            project=match["project"],
            region=match["region"],
            state=_text(document.get("state"), source, "state") or "STATE_UNSPECIFIED",
            schedule=_text(document.get("schedule"), source, "schedule"),
            time_zone=_text(document.get("timeZone"), source, "timeZone"),
            attempt_deadline=_text(document.get("attemptDeadline"), source, "attemptDeadline"),
            uri=_text(target.get("uri"), source, "httpTarget.uri"),
            http_method=_text(target.get("httpMethod"), source, "httpTarget.httpMethod"),
            oidc_service_account=_text(oidc.get("serviceAccountEmail"), source, "httpTarget.oidcToken.serviceAccountEmail"),
            audience=_text(oidc.get("audience"), source, "httpTarget.oidcToken.audience"),
            oauth_service_account=_text(oauth.get("serviceAccountEmail"), source, "httpTarget.oauthToken.serviceAccountEmail"),
            headers=dict(headers),
            body=_text(target.get("body"), source, "httpTarget.body"),
            description=_text(document.get("description"), source, "description"),
            retry_config={
                str(k): v for k, v in retry.items() if k in RETRY_FIELDS and isinstance(v, (str, int)) and not isinstance(v, bool)
            },
            source=source,
        )
    except ValidationError:
        raise SchedulingInputError(f"{source}: is malformed; pass gcloud's JSON unchanged") from None


class IamPolicy(LiveModel):
    """A service's IAM policy: role -> members (conditional bindings are not unconditional access)."""

    bindings: dict[str, tuple[str, ...]] = Field(default_factory=dict)
    source: str = ""

    def has(self, role: str, member: str) -> bool:
        return member in self.bindings.get(role, ())


def from_policy_json(document: Any, source: str) -> IamPolicy:
    """`gcloud run services get-iam-policy --format=json` output (or the invoke's `policy_data`)."""
    if not isinstance(document, Mapping):
        raise SchedulingInputError(
            f"{source}: is not a JSON object; write it with gcloud run services get-iam-policy SERVICE --format=json"
        )
    raw = document.get("bindings") or []
    if not isinstance(raw, list):
        raise SchedulingInputError(f"{source}: bindings is not a list; pass gcloud's JSON unchanged")
    bindings: dict[str, tuple[str, ...]] = {}
    for index, binding in enumerate(raw):
        if not isinstance(binding, Mapping) or not isinstance(binding.get("role"), str) or not isinstance(binding.get("members", []), list):
            raise SchedulingInputError(f"{source}: bindings[{index}] has no role/members; pass gcloud's JSON unchanged")
        if binding.get("condition"):
            continue
        members = tuple(str(member) for member in binding.get("members", []))
        bindings[binding["role"]] = bindings.get(binding["role"], ()) + members
    return IamPolicy(bindings=bindings, source=source)


def _load(path: Path, fix: str) -> Any:
    # The shared operator-file reader: a FIFO or /dev/zero is refused, not read; non-UTF-8 and deep
    # nesting are bad input naming the file.
    try:
        return load_json(read_text(path, MAX_DOCUMENT_BYTES, fix), str(path), fix)
    except FileNotFoundError as error:
        raise SchedulingInputError(f"{path}: cannot be read ({error.strerror}); {fix}") from None
    except InputFileError as error:
        raise SchedulingInputError(str(error)) from None


def _files(path: Path, option: str, what: str) -> list[Path]:
    # The shared lister: a directory's listing stops past the file cap instead of listing it all first.
    try:
        return input_files(path, f"write one {what} per file into it", f"pass a {what} file, a directory of them, or 'gcloud' to {option}")
    except InputFileError as error:
        raise SchedulingInputError(str(error)) from None


def read_jobs_path(path: Path, services: Mapping[str, ServiceSpec]) -> dict[str, Optional[LiveSchedulerJob]]:
    """Scheduler jobs from describe JSON (a file, a list, or a directory), matched to services by job id.

    A document for a job no service owns is bad input (a companion job or another service's); a service
    with no document has no job (verify fails it, the program would create one).
    """
    by_id = {job_id(spec): key for key, spec in services.items()}
    found: dict[str, LiveSchedulerJob] = {}
    for file in _files(path, "--scheduler", "gcloud scheduler jobs describe JSON"):
        document = _load(file, "write it with gcloud scheduler jobs describe JOB --location REGION --format=json")
        for item, where in json_items(document, file):
            job = from_job_json(item, where)
            ident = f"projects/{job.project}/locations/{job.region}/jobs/{job.name}"
            key = by_id.get(ident)
            if key is None:
                expected = ", ".join(f"services.{k}: {job_id(services[k])}" for k in sorted(services))
                raise SchedulingInputError(
                    f"{where}: describes {ident}, which is no service's scheduler job ({expected}); remove it or check --stack"
                )
            if key in found:
                raise SchedulingInputError(f"{where}: describes {ident} again (also in {found[key].source}); keep one per job")
            found[key] = job
    return {key: found.get(key) for key in services}


def read_iam_path(path: Path, services: Mapping[str, ServiceSpec]) -> dict[str, Optional[IamPolicy]]:
    """IAM policies from `<service name>.json` files: a policy does not name its service, so the file does."""
    by_name = {spec.service_name: key for key, spec in services.items()}
    found: dict[str, IamPolicy] = {}
    for file in _files(path, "--iam", "gcloud run services get-iam-policy JSON named <service name>.json"):
        key = by_name.get(file.stem)
        if key is None:
            names = ", ".join(sorted(by_name))
            raise SchedulingInputError(f"{file}: name the file after the service whose policy it holds ({names}).json")
        found[key] = from_policy_json(_load(file, "write it with gcloud run services get-iam-policy SERVICE --format=json"), str(file))
    return {key: found.get(key) for key in services}


def _gcloud(command: list[str], runner: gcloud.Runner) -> Optional[Any]:
    try:
        return gcloud.describe(command, runner, "check gcloud auth login and the project/region", MAX_DOCUMENT_BYTES)
    except gcloud.GcloudError as error:
        raise SchedulingInputError(str(error)) from None


def job_describe_command(spec: ServiceSpec) -> list[str]:
    return [
        "gcloud", "scheduler", "jobs", "describe", job_name(spec),
        "--project", spec.project, "--location", spec.region, "--format=json",
    ]  # fmt: skip


def iam_policy_command(spec: ServiceSpec) -> list[str]:
    return [
        "gcloud", "run", "services", "get-iam-policy", spec.service_name,
        "--project", spec.project, "--region", spec.region, "--format=json",
    ]  # fmt: skip


def read_jobs_gcloud(
    services: Mapping[str, ServiceSpec], runner: gcloud.Runner = gcloud.run_gcloud
) -> dict[str, Optional[LiveSchedulerJob]]:
    jobs: dict[str, Optional[LiveSchedulerJob]] = {}
    for key, spec in services.items():
        command = job_describe_command(spec)
        document = _gcloud(command, runner)
        job = None if document is None else from_job_json(document, " ".join(command))
        if job is not None and job.name != job_name(spec):
            raise SchedulingInputError(f"{' '.join(command)}: describes {job.name}, not {job_name(spec)}")
        jobs[key] = job
    return jobs


def read_iam_gcloud(services: Mapping[str, ServiceSpec], runner: gcloud.Runner = gcloud.run_gcloud) -> dict[str, Optional[IamPolicy]]:
    policies: dict[str, Optional[IamPolicy]] = {}
    for key, spec in services.items():
        command = iam_policy_command(spec)
        document = _gcloud(command, runner)
        policies[key] = None if document is None else from_policy_json(document, " ".join(command))
    return policies


def read_jobs(
    arg: Optional[str], services: Mapping[str, ServiceSpec], runner: gcloud.Runner = gcloud.run_gcloud
) -> Optional[dict[str, Optional[LiveSchedulerJob]]]:
    """`--scheduler`: None when not given (the checks then fail as unverified), 'gcloud', or a file/directory."""
    if arg is None:
        return None
    return read_jobs_gcloud(services, runner) if arg == gcloud.ARGUMENT else read_jobs_path(Path(arg), services)


def read_iam(
    arg: Optional[str], services: Mapping[str, ServiceSpec], runner: gcloud.Runner = gcloud.run_gcloud
) -> Optional[dict[str, Optional[IamPolicy]]]:
    """`--iam`: None when not given, 'gcloud', or a `<service name>.json` file / directory of them."""
    if arg is None:
        return None
    return read_iam_gcloud(services, runner) if arg == gcloud.ARGUMENT else read_iam_path(Path(arg), services)


# --- the job the program registers ---------------------------------------------------------------


@dataclass(frozen=True)
class JobInputs:
    """The `gcp.cloudscheduler.Job` inputs for one service, and where each configurable one came from.

    `uri`/`audience` None mean "the service's URL" (known to the component only as an output); a held
    job carries the live values instead. The job always sends an OIDC token, so `headers` are the live ones
    as the provider reads them with a token set (`provider_headers`): what the provider will read back.
    """

    name: str
    project: str
    region: str
    schedule: str
    time_zone: str
    paused: bool
    attempt_deadline: Optional[str]
    service_account: str
    http_method: str = HTTP_METHOD
    uri: Optional[str] = None
    audience: Optional[str] = None
    headers: Mapping[str, str] = field(default_factory=dict)
    body: Optional[str] = None
    description: Optional[str] = None
    retry_config: Mapping[str, Any] = field(default_factory=dict)
    # Field -> "config" | "live" | "default": what plan shows beside each value.
    origins: Mapping[str, str] = field(default_factory=dict)

    @property
    def account_member(self) -> str:
        return f"serviceAccount:{self.service_account}"


def _pick(configured: Any, live: Any, default: Any) -> tuple[Any, str]:
    if configured is not None:
        return configured, "config"
    if live is not None:
        return live, "live"
    return default, "default"


def job_paused(spec: ServiceSpec) -> tuple[bool, str]:
    """Whether the job is paused, and why: a disabled target's job is paused, an enabled one's runs (the
    platforms' workflows resume it) unless `scheduler.paused: true` keeps it paused."""
    if not spec.enabled:
        return True, "enabled: false"
    configured = None if spec.scheduler is None else spec.scheduler.paused
    if configured is not None:
        return configured, "config"
    return False, "enabled: true"


def job_inputs(spec: ServiceSpec, live: Optional[LiveSchedulerJob]) -> JobInputs:
    """The job this update registers: each setting from the stack config, else held from the live job,
    else the default. The target (URL, method, OIDC identity) is always the service's own."""
    config = spec.scheduler
    schedule, schedule_from = _pick(config and config.schedule, live and live.schedule, DEFAULT_SCHEDULE)
    time_zone, zone_from = _pick(config and config.time_zone, live and live.time_zone, DEFAULT_TIME_ZONE)
    paused, paused_from = job_paused(spec)
    deadline, deadline_from = _pick(
        config and config.attempt_deadline, live and live.attempt_deadline, DEFAULT_ATTEMPT_DEADLINES.get(spec.platform)
    )
    return JobInputs(
        name=job_name(spec),
        project=spec.project,
        region=spec.region,
        schedule=schedule,
        time_zone=time_zone,
        paused=bool(paused),
        attempt_deadline=deadline,
        service_account=scheduler_account(spec),
        headers={} if live is None else provider_headers(live.headers, token_set=True),
        body=None if live is None else live.body,
        description=None if live is None else live.description,
        retry_config={} if live is None else dict(live.retry_config),
        origins={"schedule": schedule_from, "timeZone": zone_from, "paused": paused_from, "attemptDeadline": deadline_from},
    )


def held_job_inputs(spec: ServiceSpec, live: LiveSchedulerJob) -> JobInputs:
    """A blocked service's job exactly as live: nothing about what calls the service changes."""
    return JobInputs(
        name=live.name,
        project=live.project,
        region=live.region,
        schedule=live.schedule or DEFAULT_SCHEDULE,
        time_zone=live.time_zone or DEFAULT_TIME_ZONE,
        paused=live.paused,
        attempt_deadline=live.attempt_deadline,
        service_account=live.oidc_service_account or scheduler_account(spec),
        http_method=live.http_method or HTTP_METHOD,
        uri=live.uri,
        audience=live.audience,
        headers=provider_headers(live.headers, token_set=True),
        body=live.body,
        description=live.description,
        retry_config=dict(live.retry_config),
        origins=dict.fromkeys(("schedule", "timeZone", "paused", "attemptDeadline"), "live"),
    )


# --- verify --------------------------------------------------------------------------------------


def service_urls(live: Any) -> tuple[str, ...]:
    """Every URL the live service answers on: `status.url`, plus the URLs Cloud Run lists for the
    service (`LiveService.urls`: a service has a hashed and a deterministic URL; a job may target either)."""
    if live is None:
        return ()
    urls = ([live.url] if live.url else []) + list(live.urls)
    return tuple(dict.fromkeys(url.rstrip("/") for url in urls))


def scheduler_checks(
    spec: ServiceSpec,
    live: Any,
    jobs: Optional[Mapping[str, Optional[LiveSchedulerJob]]],
    policies: Optional[Mapping[str, Optional[IamPolicy]]],
    key: str,
) -> list[Any]:
    """What must hold for the strategy to run at all: its job exists, is enabled, targets the service's
    current URL `/run` with OIDC for the expected account, and that account may invoke the service.
    Not given (`--scheduler`/`--iam` absent) is a failed check, not a pass."""
    from release.cutover.verify import VerifyCheck

    name, account = job_name(spec), scheduler_account(spec)
    checks = []
    job = None if jobs is None else jobs.get(key)
    if jobs is None:
        checks.append(
            VerifyCheck("scheduler-job", False, f"{name} not verified: pass --scheduler gcloud, or its gcloud scheduler jobs describe JSON")
        )
    elif job is None:
        checks.append(
            VerifyCheck(
                "scheduler-job",
                False,
                f"{name} does not exist in {spec.project}/{spec.region}: nothing triggers the service; create it (pulumi up)",
            )
        )
    elif not spec.enabled:
        paused_ok = job.state == "PAUSED"
        checks.append(
            VerifyCheck(
                "scheduler-job",
                paused_ok,
                f"{name} is PAUSED, as enabled: false wants"
                if paused_ok
                else f"{name} is {job.state}, but the service is enabled: false, so its job must be PAUSED; pulumi up pauses it",
            )
        )
    elif job.state != "ENABLED":
        checks.append(
            VerifyCheck(
                "scheduler-job",
                False,
                f"{name} is {job.state}, not ENABLED: the strategy will not run; resume it with gcloud scheduler jobs resume "
                f"{name} --location {spec.region} --project {spec.project} (or set scheduler.paused: false)",
            )
        )
    else:
        checks.append(VerifyCheck("scheduler-job", True, f"{name} is ENABLED ({job.schedule} {job.time_zone})"))

    if job is not None:
        urls = service_urls(live)
        problems = []
        if not urls:
            problems.append("the service's URL is unknown (no live status.url)")
        elif job.uri is None or job.uri.rstrip("/") not in {run_uri(url) for url in urls}:
            problems.append(f"targets {job.uri or '(no HTTP target)'}, not {run_uri(urls[0])}")
        if (job.http_method or "").upper() != HTTP_METHOD:
            problems.append(f"uses {job.http_method or 'no method'}, not {HTTP_METHOD}")
        if job.oidc_service_account != account:
            problems.append(f"sends OIDC for {job.oidc_service_account or '(no OIDC token)'}, not {account}")
        if urls and (job.audience or "").rstrip("/") not in urls:
            problems.append(f"OIDC audience {job.audience or '(unset)'} is not the service URL {urls[0]}")
        checks.append(
            VerifyCheck(
                "scheduler-target",
                not problems,
                f"{name} POSTs {job.uri} with OIDC for {account}" if not problems else f"{name} " + "; ".join(problems),
            )
        )

    member = f"serviceAccount:{account}"
    policy = None if policies is None else policies.get(key)
    if policies is None:
        checks.append(
            VerifyCheck(
                "invoker-binding",
                False,
                f"not verified: pass --iam gcloud, or {spec.service_name}.json from gcloud run services get-iam-policy",
            )
        )
    elif policy is None:
        checks.append(
            VerifyCheck(
                "invoker-binding", False, f"no IAM policy for {spec.service_name}; describe it with gcloud run services get-iam-policy"
            )
        )
    else:
        ok = policy.has(INVOKER_ROLE, member)
        checks.append(
            VerifyCheck(
                "invoker-binding",
                ok,
                f"{member} holds {INVOKER_ROLE} on {spec.service_name}"
                if ok
                else f"{member} lacks {INVOKER_ROLE} on {spec.service_name}: the job's calls are refused (403); pulumi up adds it",
            )
        )
    return checks


# --- the program's read of the live job (Cloud Scheduler has no Pulumi data source) ---------------

SCHEDULER_API_URL = "https://cloudscheduler.googleapis.com/v1"
API_DEADLINE_SECONDS = 30.0
API_CONNECT_TIMEOUT, API_READ_TIMEOUT = 5.0, 10.0


class JobReadError(Exception):
    """The live job could not be read: the program stops, nothing registered."""


def read_job_api(
    spec: ServiceSpec,
    session: Any = None,
    api_url: str = SCHEDULER_API_URL,
    deadline_seconds: float = API_DEADLINE_SECONDS,
) -> Optional[LiveSchedulerJob]:
    """The service's job from the Cloud Scheduler v1 API (the same JSON gcloud prints); 404 = no job.

    Application Default Credentials, like the provider's; a total deadline over connect, headers and body,
    and a size bound. Any other answer stops the run: an unreadable job is never "no job", which would
    register defaults over a live schedule.
    """
    url = f"{api_url.rstrip('/')}/{job_id(spec)}"
    started = time.monotonic()
    try:
        if session is None:
            import google.auth
            from google.auth.transport.requests import AuthorizedSession

            credentials, _ = google.auth.default(scopes=["https://www.googleapis.com/auth/cloud-platform"])
            # google-auth ships no annotations for this class; the session is used through `Any` below.
            authorized: Any = AuthorizedSession
            session = authorized(credentials)
        with session.get(url, timeout=(API_CONNECT_TIMEOUT, API_READ_TIMEOUT), stream=True, allow_redirects=False) as response:
            status = response.status_code
            body = bytearray()
            for chunk in response.iter_content(64 * 1024):
                body += chunk
                if len(body) > MAX_DOCUMENT_BYTES:
                    raise JobReadError(f"{url}: answer larger than {MAX_DOCUMENT_BYTES} bytes; nothing was changed")
                if time.monotonic() - started > deadline_seconds:
                    raise JobReadError(f"{url}: no complete answer within {deadline_seconds:.0f}s; check the network and retry")
    except JobReadError:
        raise
    except Exception as error:  # requests and google-auth failures alike: the job is unknown, so stop
        raise JobReadError(
            f"{url}: cannot be read ({type(error).__name__}); check Application Default Credentials "
            "(gcloud auth application-default login) and cloudscheduler.jobs.get. Nothing was changed."
        ) from None
    if status == 404:
        return None
    if status != 200:
        raise JobReadError(f"{url}: HTTP {status}; check credentials and cloudscheduler.jobs.get on {spec.project}. Nothing was changed.")
    fix = "the Cloud Scheduler API answered something that is not a job"
    try:
        document = load_json(bytes(body).decode("utf-8"), url, fix)
        job = from_job_json(document, url)
    except (UnicodeDecodeError, InputFileError, SchedulingInputError) as error:
        raise JobReadError(f"{url}: {error}. Nothing was changed.") from None
    if job.name != job_name(spec) or job.project != spec.project or job.region != spec.region:
        raise JobReadError(f"{url}: answered for {job.project}/{job.region}/{job.name}, not {job_id(spec)}. Nothing was changed.")
    return job


def scheduler_summary(spec: ServiceSpec) -> dict[str, Any]:
    """What `plan` shows of a service's scheduling: the managed job, where each setting comes from (the
    config, else the live job, else the default), and the companion jobs it holds but never manages."""
    config = spec.scheduler
    defaults = {
        "schedule": DEFAULT_SCHEDULE,
        "timeZone": DEFAULT_TIME_ZONE,
        "paused": False,
        "attemptDeadline": DEFAULT_ATTEMPT_DEADLINES.get(spec.platform),
    }
    paused, paused_from = job_paused(spec)
    configured = {
        "schedule": config and config.schedule,
        "timeZone": config and config.time_zone,
        "paused": paused,
        "attemptDeadline": config and config.attempt_deadline,
    }
    origins = {"paused": paused_from}
    return {
        "job": job_name(spec),
        "target": f"<service url>{RUN_PATH}",
        "account": scheduler_account(spec),
        "invoker": f"serviceAccount:{scheduler_account(spec)} {INVOKER_ROLE} (added, never a policy)",
        "settings": {
            name: {"config": configured[name], "default": defaults[name], **({"from": origins[name]} if name in origins else {})}
            for name in defaults
        },
        "companions_held": list(companion_jobs(spec)),
    }


def scheduler_text(summary: Mapping[str, Any]) -> list[str]:
    parts = []
    for name, setting in summary["settings"].items():
        if setting["config"] is not None:
            parts.append(f"{name} {json.dumps(setting['config'])} ({setting.get('from', 'config')})")
        else:
            parts.append(f"{name} held from the live job, else {json.dumps(setting['default'])}")
    return [
        f"  scheduler: {summary['job']} POSTs {summary['target']} as {summary['account']}; {summary['invoker']}",
        f"    {'; '.join(parts)}",
        f"    companion jobs held, not managed: {', '.join(summary['companions_held'])}",
    ]


# --- adoption: the stack entry and the import file entries for an existing job --------------------

JOB_TYPE = "gcp:cloudscheduler/job:Job"
INVOKER_MEMBER_TYPE = "gcp:cloudrunv2/serviceIamMember:ServiceIamMember"


def adopted_scheduler(spec: ServiceSpec, live: Optional[LiveSchedulerJob]) -> Optional[dict[str, Any]]:
    """The `scheduler:` block an adopted service's stack entry carries: the live job's settings wherever
    they differ from the defaults (None when there is nothing to say), so the first `pulumi up` after
    adoption keeps the live schedule even if the job is later read as absent."""
    if live is None:
        return None
    defaults = {
        "schedule": DEFAULT_SCHEDULE,
        "timeZone": DEFAULT_TIME_ZONE,
        "paused": False,
        "attemptDeadline": DEFAULT_ATTEMPT_DEADLINES.get(spec.platform),
    }
    values = {"schedule": live.schedule, "timeZone": live.time_zone, "paused": live.paused, "attemptDeadline": live.attempt_deadline}
    block = {name: value for name, value in values.items() if value is not None and value != defaults[name]}
    account = live.oidc_service_account
    if account is not None and account != default_account(spec) and account_problem(account, spec) is None:
        block["serviceAccount"] = account
    return block or None


def import_resources(
    key: str, spec: ServiceSpec, live: Optional[LiveSchedulerJob], policy: Optional[IamPolicy], parent: str, provider: str
) -> list[dict[str, Any]]:
    """`pulumi import --file` entries for the job (when it exists) and the invoker member (only when the live
    policy grants it: the provider reads nothing for a member that is not bound, and `pulumi import` then
    fails after importing the rest), named exactly as the program registers them (`<key>-scheduler`,
    `<key>-invoker`) under the same parent and provider. A member left out is created by the first
    `pulumi up`, an additive binding."""
    account = scheduler_account(spec)
    entries = []
    if live is not None:
        entries.append({"type": JOB_TYPE, "name": f"{key}-scheduler", "id": job_id(spec), "parent": parent, "provider": provider})
    if policy is not None and policy.has(INVOKER_ROLE, f"serviceAccount:{account}"):
        entries.append(
            {
                "type": INVOKER_MEMBER_TYPE,
                "name": f"{key}-invoker",
                # The provider's import id for one member: "<service id> <role> <member>".
                "id": f"projects/{spec.project}/locations/{spec.region}/services/{spec.service_name} {INVOKER_ROLE} serviceAccount:{account}",
                "parent": parent,
                "provider": provider,
            }
        )
    return entries


# --- plan: what this `pulumi up` does to the job --------------------------------------------------

NEW_SERVICE_URL = "<the new service's URL>"


def job_changes(spec: ServiceSpec, blocked: bool, service_url: Optional[str], live: Optional[LiveSchedulerJob]) -> dict[str, Any]:
    """The job's fields this update changes, live -> registered (the same `job_inputs` the program
    registers): `create` (no live job), `update`, `no change`, or `held` (blocked: registered as live)."""
    if blocked:
        return {"action": "held" if live is not None else "none (blocked, no live job)", "changes": []}
    desired = job_inputs(spec, live)
    url = service_url.rstrip("/") if service_url else NEW_SERVICE_URL
    want: dict[str, Any] = {
        "schedule": desired.schedule,
        "timeZone": desired.time_zone,
        "paused": desired.paused,
        "attemptDeadline": desired.attempt_deadline,
        "uri": run_uri(url),
        "httpMethod": HTTP_METHOD,
        "serviceAccount": desired.service_account,
        "audience": url,
    }
    if live is None:
        return {"action": "create", "changes": [{"field": f, "live": None, "desired": v} for f, v in want.items() if v is not None]}
    # Headers as the provider's state holds them after its refresh, against what the program registers:
    # compared by value, shown with credentials masked.
    live_headers = provider_headers(live.headers, token_set=live.sends_token)
    header_change = (
        [{"field": "headers", "live": shown_headers(live_headers), "desired": shown_headers(desired.headers)}]
        if live_headers != dict(desired.headers)
        else []
    )
    have: dict[str, Any] = {
        "schedule": live.schedule,
        "timeZone": live.time_zone,
        "paused": live.paused,
        "attemptDeadline": live.attempt_deadline,
        "uri": live.uri,
        "httpMethod": live.http_method,
        "serviceAccount": live.oidc_service_account,
        "audience": live.audience,
    }
    changes = [{"field": f, "live": have[f], "desired": v} for f, v in want.items() if v is not None and v != have[f]] + header_change
    return {"action": "update" if changes else "no change", "changes": changes}


def job_changes_text(changes: Mapping[str, Any]) -> list[str]:
    lines = [f"    job this update: {changes['action']}"]
    for change in changes["changes"]:
        before = "(none)" if change["live"] is None else json.dumps(change["live"])
        why = ""
        if change["field"] == "paused":
            why = (
                " (enabled: true resumes it; scheduler.paused: true keeps it paused)"
                if change["desired"] is False
                else " (the service is paused: enabled: false or scheduler.paused: true)"
            )
        lines.append(f"      ~ {change['field']}: {before} -> {json.dumps(change['desired'])}{why}")
    return lines
