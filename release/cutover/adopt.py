"""`python -m release adopt`: the stack config and the Pulumi import file for services deployed by hand.

Pure functions over live state: `adopt_service` turns one live service into the complete stack entry that
plans as `in-sync` against that same live state (or `switch-env` adding only what the program derives and
the live service lacks), `import_file` names exactly the resources the program registers. The CLI only
reads files and writes the results. Anything that cannot be written faithfully (no `commit-sha` label, an
unset dry-run flag, a credential in plain env, an unknown profile) is an `AdoptError`, exit 2, and nothing
is written.
"""

from __future__ import annotations

import functools
import json
import re
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping, Optional

from pydantic import BaseModel, ConfigDict, ValidationError, field_validator
from pydantic.alias_generators import to_camel

from components.ownership import (
    COMPONENT_TYPE,
    SERVICE_TYPE,
    WORD_BY_EGRESS,
    WORD_BY_INGRESS,
    ServiceSettings,
    default_settings,
    service_logical_name,
)
from components.platforms import (
    ACCOUNT_PREFIX,
    ACCOUNT_REGION,
    LONGPORT_SECRET_NAME,
    OWNED_ENV_NAMES,
    PLATFORMS,
    QSL_RUNTIME_TARGET_JSON,
    RECONCILIATION_OUTPUT_PATH,
    RUNTIME_TARGET_ENABLED,
    RUNTIME_TARGET_JSON,
    TRUTHY,
    is_legacy_env,
    looks_secret,
)
from components.profiles import PlatformProfiles
from components.runtime_target import MARKET_FIELDS, OPTIONAL_FIELDS, REQUIRED_FIELDS, selectors, shown_value
from release.config import (
    PROJECT_NAME,
    SERVICE_ACCOUNT_PATTERN,
    PlatformId,
    ProjectId,
    RegionName,
    SecretRef,
    ServiceName,
    ServiceSpec,
)
from release.cutover.live import LiveService, service_id
from release.gate.pins import InstallFiles, classify_ref
from release.packages import BY_NAME, REQUIRED_IN_RELEASE, TRACKED_PACKAGES

SERVICES_CONFIG_KEY = f"{PROJECT_NAME}:services"
PROVIDER_TYPE = "pulumi:providers:gcp"
# How the platforms' runtimes read an explicit "no" (anything else that is not truthy is not guessed).
FALSY = frozenset({"0", "false", "no", "n", "off"})
TIMEOUT_PATTERN = re.compile(r"([1-9][0-9]{0,3})s")


class AdoptError(ValueError):
    """A service that cannot be adopted as it is: which service, which field, what to do. Exit 2."""


class AdoptTarget(BaseModel):
    """What `adopt` takes from a stack entry: where the service is. Every other field of the entry may be
    stale or absent (it is replaced by what runs), so it is ignored here rather than refused."""

    model_config = ConfigDict(extra="ignore", frozen=True, alias_generator=to_camel, populate_by_name=True)

    platform: PlatformId
    project: ProjectId
    region: RegionName
    service_name: ServiceName

    @field_validator("project", mode="before")
    @classmethod
    def _project_number(cls, value: object) -> object:
        # Before the id check: a number is the likeliest mistake (metadata.namespace holds it), so say so.
        if isinstance(value, str) and value.isdigit():
            raise ValueError(f"{value} is a project number; the import id needs the project id (gcloud projects describe {value})")
        return value


def adopt_targets(services_raw: Any, source: str) -> dict[str, AdoptTarget]:
    """The services of a stack's `us-equity-cutover:services`, reduced to where each one lives."""
    if not isinstance(services_raw, Mapping) or not services_raw:
        raise AdoptError(
            f"{source}: {SERVICES_CONFIG_KEY} is missing or empty; list each service's platform, project, region and serviceName"
        )
    targets: dict[str, AdoptTarget] = {}
    problems: list[str] = []
    for key, raw in services_raw.items():
        try:
            targets[str(key)] = AdoptTarget.model_validate(raw)
        except ValidationError as error:
            for item in error.errors():
                where = ".".join(str(part) for part in item["loc"])
                message = "is required" if item["type"] == "missing" else item["msg"].removeprefix("Value error, ")
                problems.append(f"services.{key}.{where}: {message}")
    if problems:
        raise AdoptError(f"{source} cannot be adopted: " + "; ".join(problems))
    return targets


@dataclass(frozen=True)
class Adopted:
    """One adopted service: its stack entry (camelCase, ready for YAML) and what the operator must know."""

    key: str
    entry: dict[str, Any]
    notes: tuple[str, ...] = field(default_factory=tuple)


def _dry_run(live: LiveService, target: AdoptTarget, key: str) -> bool:
    name = PLATFORMS[target.platform].dry_run_env
    raw = live.env.get(name)
    if raw is None or not raw.strip():
        raise AdoptError(
            f"services.{key}: {name} is unset on {target.service_name}; what unset means depends on the image (the "
            f"seed-era images trade live), so it is not guessed. Set it explicitly on the service (gcloud run "
            f"services update {target.service_name} --update-env-vars {name}=true) and adopt again, or write "
            f"dryRunOnly yourself"
        )
    value = raw.strip().lower()
    if value in TRUTHY:
        return True
    if value in FALSY:
        return False
    raise AdoptError(f"services.{key}: {name} on {target.service_name} is neither a true nor a false value; set it to true or false")


def _profile(live: LiveService, target: AdoptTarget, key: str, facts: Optional[PlatformProfiles], notes: list[str]) -> str:
    running = live.running(target.platform)
    profile = running.profile
    if facts is None:
        raise AdoptError(f"services.{key}: the release {live.service_name} runs is unknown, so its profile cannot be named canonically")
    if profile is None:
        raise AdoptError(
            f"services.{key}: {target.service_name} runs {running.describe()}; adopt needs the profile it runs, read as the "
            f"runtime reads it ({QSL_RUNTIME_TARGET_JSON}, then {RUNTIME_TARGET_JSON}, then STRATEGY_PROFILE)"
        )
    canonical = facts.canonical(profile)
    if canonical != profile:
        notes.append(
            f"{key}: the live profile {profile} is an alias in the registry of {facts.label}; written as its canonical name {canonical}"
        )
    return canonical


def _enabled(live: LiveService, target: AdoptTarget, key: str) -> bool:
    """RUNTIME_TARGET_ENABLED as the runtime reads it: unset or empty is enabled."""
    raw = (live.env.get(RUNTIME_TARGET_ENABLED) or "").strip().lower()
    if not raw or raw in TRUTHY:
        return True
    if raw in FALSY:
        return False
    raise AdoptError(
        f"services.{key}: {RUNTIME_TARGET_ENABLED} on {target.service_name} is neither a true nor a false value; set it to true or false"
    )


def _camel_windows(value: Any) -> Any:
    """The schema's execution_windows in the stack's spelling (offset_minutes -> offsetMinutes)."""
    if isinstance(value, dict):
        return {to_camel(str(name)): _camel_windows(item) for name, item in value.items()}
    return value


def _target_fields(live: LiveService, target: AdoptTarget, key: str, dry_run: bool, notes: list[str]) -> dict[str, Any]:
    """The target fields of what the service runs: its live target (the override when there is one) where it
    says them; the rest is derived (and written out by `adopt_service`, so the entry is complete)."""
    running = live.running(target.platform)
    fields: dict[str, Any] = {"enabled": _enabled(live, target, key), "executionMode": "paper" if dry_run else "live"}
    if running.source not in (QSL_RUNTIME_TARGET_JSON, RUNTIME_TARGET_JSON):
        return fields
    where = f"services.{key}: {running.source} on {target.service_name}"
    if running.dry_run_only is not dry_run:
        raise AdoptError(
            f"{where} says dry_run_only {str(running.dry_run_only).lower()}, but {PLATFORMS[target.platform].dry_run_env} says "
            f"{str(dry_run).lower()}; whether it trades is ambiguous, so it is not guessed. Make them agree on the service and adopt again"
        )
    if running.overridden:
        notes.append(
            f"{key}: {target.service_name} runs its {QSL_RUNTIME_TARGET_JSON} override (adopted as what runs); the env switch writes "
            f"it as {RUNTIME_TARGET_JSON} and removes the override"
        )
    document = running.fields
    for name, camel in (("deployment_selector", "deploymentSelector"), ("account_scope", "accountScope")):
        value = document.get(name)
        if isinstance(value, str) and value.strip():
            fields[camel] = value.strip()
        elif value is not None:
            raise AdoptError(f"{where} has a {name} that is not a name; fix it on the service or write the entry by hand")
    accounts = document.get("account_selector")
    # The runtime reads a single string as a one-account list.
    accounts = [accounts] if isinstance(accounts, str) else accounts
    if accounts is not None:
        if not isinstance(accounts, list) or not all(isinstance(item, str) and item.strip() for item in accounts):
            raise AdoptError(
                f"{where} has an account_selector that is not a list of names; fix it on the service or write the entry by hand"
            )
        if accounts:
            fields["accountSelector"] = [item.strip() for item in accounts]
    market = {name: document.get(name) for name in MARKET_FIELDS}
    if any(value is not None for value in market.values()):
        fields.update(market=market["market"], marketCalendar=market["market_calendar"], marketTimezone=market["market_timezone"])
    if document.get("execution_windows") is not None:
        fields["executionWindows"] = _camel_windows(document["execution_windows"])
    if document.get("scheduler") is not None:
        notes.append(
            f"{key}: the live target's scheduler block is not written; the scheduler job is managed as scheduler: (its schedule held)"
        )
    named = document.get("service_name")
    if isinstance(named, str) and named.strip() and named.strip() != target.service_name:
        notes.append(f"{key}: the live target names service {shown_value(named)}; the program writes {target.service_name}")
    others = sorted(name for name in document if name not in (*REQUIRED_FIELDS, *OPTIONAL_FIELDS))
    if others:
        shown = ", ".join(name if name.isidentifier() and len(name) < 40 else "a key" for name in others)
        notes.append(
            f"{key}: the live target carries {shown}, which the runtime-target schema does not define: not written, so the env switch drops it"
        )
    return fields


def snapshot_block(live: LiveService, platform_id: PlatformId) -> Optional[dict[str, str]]:
    """The input-mode paths the live service runs with, as a stack entry's `snapshot` block (None: none)."""
    platform = PLATFORMS[platform_id]
    pairs = (
        ("featureSnapshotPath", platform.feature_snapshot_env),
        ("manifestPath", platform.manifest_env),
        ("strategyConfigPath", platform.strategy_config_env),
        ("reconciliationOutputPath", RECONCILIATION_OUTPUT_PATH if platform_id == "ibkr" else None),
    )
    snapshot = {field_name: live.env[name] for field_name, name in pairs if name is not None and live.env.get(name)}
    return snapshot or None


def _secret_text(ref: SecretRef) -> str:
    return ref.secret if ref.version == "latest" else f"{ref.secret}:{ref.version}"


def _env_and_secrets(live: LiveService, key: str, notes: list[str]) -> tuple[dict[str, str], dict[str, str]]:
    env: dict[str, str] = {}
    for name in sorted(live.env):
        if name in OWNED_ENV_NAMES:
            continue
        if looks_secret(name):
            # The value is never written anywhere, not even into the error.
            raise AdoptError(
                f"services.{key}: {name} on {live.service_name} is a plain env value that looks like a credential; "
                f"move it to Secret Manager (gcloud secrets create, then --update-secrets {name}=<secret>:latest) and "
                "adopt again; its value was not written anywhere"
            )
        if is_legacy_env(name):
            notes.append(f"{key}: {name} is legacy env that a sync removes; not written, so the next update removes it")
            continue
        env[name] = live.env[name]
    secrets = {name: _secret_text(ref) for name, ref in sorted(live.secrets.items()) if name not in OWNED_ENV_NAMES}
    return env, secrets


def _timeout_seconds(timeout: Optional[str]) -> Optional[int]:
    match = TIMEOUT_PATTERN.fullmatch(timeout or "")
    return int(match.group(1)) if match else None


def settings_entry(live: ServiceSettings, defaults: ServiceSettings, project: str, key: str, notes: list[str]) -> dict[str, Any]:
    """The held settings an operator can write, only where they differ from a new service's defaults.

    A field not written is held at its live value anyway (the ownership rule); writing the differences
    makes the config able to rebuild the service as it runs and shows the hand-made choices in review.
    """
    entry: dict[str, Any] = {}
    if live.service_account is not None and live.service_account != defaults.service_account:
        match = SERVICE_ACCOUNT_PATTERN.fullmatch(live.service_account)
        if match is None:
            notes.append(f"{key}: the service runs as {live.service_account}, which the config cannot name; held, not written")
        else:
            entry["serviceAccount"] = live.service_account
            if match.group(2) != project:
                entry["serviceAccountProject"] = match.group(2)
    if live.ingress is not None and live.ingress != defaults.ingress:
        entry["ingress"] = WORD_BY_INGRESS[live.ingress]
    if live.vpc_access is not None and live.vpc_access != defaults.vpc_access:
        vpc = live.vpc_access
        if vpc.egress is None or len(vpc.network_interfaces) > 1 or (vpc.connector and vpc.network_interfaces):
            notes.append(f"{key}: the live VPC access cannot be written as one vpcAccess entry; held, not written")
        elif vpc.connector:
            entry["vpcAccess"] = {"connector": vpc.connector, "egress": WORD_BY_EGRESS[vpc.egress]}
        else:
            interface = vpc.network_interfaces[0]
            written: dict[str, Any] = {"network": interface.network, "subnetwork": interface.subnetwork}
            if interface.tags:
                written["tags"] = list(interface.tags)
            entry["vpcAccess"] = {**{k: v for k, v in written.items() if v is not None}, "egress": WORD_BY_EGRESS[vpc.egress]}
    elif live.vpc_access is None and defaults.vpc_access is not None:
        notes.append(f"{key}: the live service has no VPC access (a new one would get {defaults.vpc_access.egress} egress); held as it is")
    scaling = {
        name: value
        for name, value, default in (
            ("minInstances", live.min_instances, defaults.min_instances),
            ("maxInstances", live.max_instances, defaults.max_instances),
        )
        if value is not None and value != default
    }
    if scaling:
        entry["scaling"] = scaling
    # Compared normalised (a live `1000m` is the default `1`), written verbatim: either way the program
    # registers the live spelling (`desired_settings`).
    compared_live, compared_defaults = live.comparable(), defaults.comparable()
    resources = {
        name: getattr(live, field_name)
        for name, field_name in (("cpu", "cpu"), ("memory", "memory"), ("cpuIdle", "cpu_idle"), ("startupCpuBoost", "startup_cpu_boost"))
        if getattr(live, field_name) is not None and getattr(compared_live, field_name) != getattr(compared_defaults, field_name)
    }
    if resources:
        entry["resources"] = resources
    if live.concurrency is not None and live.concurrency != defaults.concurrency:
        entry["concurrency"] = live.concurrency
    if live.timeout is not None and live.timeout != defaults.timeout:
        seconds = _timeout_seconds(live.timeout)
        if seconds is None:
            notes.append(f"{key}: the live timeout {live.timeout} is not whole seconds; held, not written")
        else:
            entry["timeoutSeconds"] = seconds
    return entry


def adopt_service(key: str, target: AdoptTarget, live: Optional[LiveService], facts: Optional[PlatformProfiles]) -> Adopted:
    """The complete stack entry for one live service (see the module docstring)."""
    if live is None:
        raise AdoptError(
            f"services.{key}: {target.service_name} is not in the live input; adopt reads what runs, so describe it "
            f"(gcloud run services describe {target.service_name} --project {target.project} --region {target.region} --format=json)"
        )
    if not live.commit:
        raise AdoptError(
            f"services.{key}: {target.service_name} has no commit-sha label on its revision template, so the commit its "
            "image was built from is unknown; deploy it once with --labels commit-sha=<40-hex commit> (or find the "
            "commit and write the entry by hand)"
        )
    notes: list[str] = []
    entry: dict[str, Any] = {
        "platform": target.platform,
        "project": target.project,
        "region": target.region,
        "serviceName": target.service_name,
        "commit": live.commit,
        "image": live.image,
        "strategyProfile": _profile(live, target, key, facts, notes),
        "dryRunOnly": _dry_run(live, target, key),
    }
    entry.update(_target_fields(live, target, key, entry["dryRunOnly"], notes))
    snapshot = snapshot_block(live, target.platform)
    if snapshot is not None:
        entry["snapshot"] = snapshot
    if target.platform == "longbridge":
        region = live.env.get(ACCOUNT_REGION) or live.env.get(ACCOUNT_PREFIX)
        if region:
            entry["accountRegion"] = region
        if live.env.get(LONGPORT_SECRET_NAME):
            entry["longportSecretName"] = live.env[LONGPORT_SECRET_NAME]
    env, secrets = _env_and_secrets(live, key, notes)
    if env:
        entry["env"] = env
    if secrets:
        entry["secrets"] = secrets
    spec = _validated(key, entry)
    # Complete: the selectors the live target leaves out are written as the program derives them.
    chosen = selectors(spec)
    entry.setdefault("deploymentSelector", chosen.deployment_selector)
    entry.setdefault("accountScope", chosen.account_scope)
    entry.setdefault("accountSelector", list(chosen.account_selector))
    entry.update(settings_entry(live.settings, default_settings(spec), target.project, key, notes))
    _validated(key, entry)
    # In the stack reference's order, so a reviewer reads every adopted entry the same way.
    order = [field.alias or name for name, field in ServiceSpec.model_fields.items()]
    entry = {name: entry[name] for name in sorted(entry, key=lambda name: order.index(name) if name in order else len(order))}
    return Adopted(key=key, entry=entry, notes=tuple(notes))


def _validated(key: str, entry: dict[str, Any]) -> ServiceSpec:
    """The entry through the stack's own model: what adopt writes must load."""
    try:
        return ServiceSpec.model_validate(entry)
    except ValidationError as error:
        problems = "; ".join(
            f"services.{key}.{'.'.join(str(p) for p in item['loc'])}: {item['msg'].removeprefix('Value error, ')}"
            for item in error.errors()[:5]
        )
        raise AdoptError(f"the live state of {key} does not make a valid stack entry: {problems}") from None


def import_file(
    targets: Mapping[str, AdoptTarget],
    stack: str,
    gcp_version: Optional[str] = None,
    children: Mapping[str, list[dict[str, Any]]] = {},
) -> dict[str, Any]:
    """`pulumi import --file` input naming exactly what the program registers: per service its component
    (created empty by the import, no id) and the Cloud Run service under it, on its project's provider.

    The providers are referenced through the name table by URN, so they must exist in the stack first
    (README: Adopting hand-deployed services).
    """
    name_table: dict[str, str] = {}
    resources: list[dict[str, Any]] = []
    for key, target in sorted(targets.items()):
        provider = f"gcp-{target.project}"
        name_table[provider] = f"urn:pulumi:{stack}::{PROJECT_NAME}::{PROVIDER_TYPE}::{provider}"
        resources.append({"type": COMPONENT_TYPE, "name": key, "component": True})
        service: dict[str, Any] = {
            "type": SERVICE_TYPE,
            "name": service_logical_name(key),
            "id": service_id(target),
            "parent": key,
            "provider": provider,
        }
        if gcp_version is not None:
            service["version"] = gcp_version
        resources.append(service)
        resources += children.get(key, [])
    return {"nameTable": dict(sorted(name_table.items())), "resources": resources}


def adopt_scheduling(
    services: dict[str, dict[str, Any]],
    specs: Mapping[str, ServiceSpec],
    jobs: Optional[Mapping[str, Optional[Any]]],
    policies: Optional[Mapping[str, Optional[Any]]],
) -> dict[str, list[dict[str, Any]]]:
    """With the live jobs (`--scheduler`): each entry's `scheduler:` block and the job's import entry; with
    the live IAM policies (`--iam`): the invoker member's import entry where the policy grants it
    (release/cutover/scheduling.py names them as the program registers them). Returns the import entries per key."""
    from release.cutover.scheduling import adopted_scheduler, import_resources

    children: dict[str, list[dict[str, Any]]] = {}
    for key, spec in specs.items():
        job = None if jobs is None else jobs.get(key)
        if jobs is not None:
            block = adopted_scheduler(spec, job)
            if block is not None:
                services[key]["scheduler"] = block
        policy = None if policies is None else policies.get(key)
        children[key] = import_resources(key, spec, job, policy, parent=key, provider=f"gcp-{spec.project}")
    return children


def import_urns(document: Mapping[str, Any], stack: str) -> dict[str, str]:
    """The URN each entry of an import file resolves to (name -> URN), as the engine would compute it."""
    by_name = {entry["name"]: entry for entry in document["resources"]}

    def urn(name: str) -> str:
        entry = by_name[name]
        parent = entry.get("parent")
        qualified = entry["type"] if parent is None else f"{by_name[parent]['type']}${entry['type']}"
        return f"urn:pulumi:{stack}::{PROJECT_NAME}::{qualified}::{name}"

    return {name: urn(name) for name in by_name}


def release_block(refs: Mapping[str, str]) -> dict[str, Any]:
    """A release as a stack writes it: QPK and UES tags alone as the seed's two keys, anything else as
    `packages` (distribution name -> tag or full commit)."""
    if set(refs) == set(REQUIRED_IN_RELEASE) and all(classify_ref(ref) == "tag" for ref in refs.values()):
        return {str(BY_NAME[name].shorthand): refs[name] for name in REQUIRED_IN_RELEASE}
    return {"packages": {name: refs[name] for name in TRACKED_PACKAGES if name in refs}}


def running_release(key: str, live: LiveService, installs: Optional[Callable[[], InstallFiles]], owner: str) -> tuple[dict[str, str], str]:
    """The release a live service runs (distribution name -> ref) and where it was read: the release record
    this program wrote beside its image, else the pins of the commit the image was built from. Never a guess:
    a commit that installs a package by two refs, by a ref that is not a release, or not at all, is refused."""
    recorded = live.release_tags.refs
    if recorded:
        return dict(recorded), "its release record"
    if installs is None:
        raise AdoptError(f"services.{key}: {live.service_name} records no release, and its commit's pins were not read; pass a source")
    files = installs()
    refs: dict[str, str] = {}
    for name in TRACKED_PACKAGES:
        package = BY_NAME[name]
        pins = files.of(name)
        if not pins:
            if package.required:
                raise AdoptError(
                    f"services.{key}: commit {live.commit} installs no {package.short} ({', '.join(files.files) or 'no install file'}); "
                    "adopt reads the release from what the commit installs"
                )
            continue
        bad = [pin for pin in pins if pin.kind not in ("tag", "sha") or not pin.is_canonical(owner, package.repository)]
        if bad:
            raise AdoptError(
                f"services.{key}: commit {live.commit} installs {bad[0].describe()} from {bad[0].where} ({bad[0].file}), "
                "which is not a release of the team's repository; the gate refuses it, so there is no release to write"
            )
        seen = sorted({pin.ref for pin in pins})
        if len(seen) > 1:
            where = "; ".join(f"{pin.file}: {pin.ref}" for pin in pins)
            raise AdoptError(f"services.{key}: commit {live.commit} installs {package.short} by two refs ({where}); the gate refuses it")
        refs[name] = seen[0]
    return refs, f"the pins of commit {(live.commit or '')[:7]} ({', '.join(files.files)})"


FactsFor = Callable[[Any, Mapping[str, tuple[PlatformId, str]]], Mapping[str, PlatformProfiles]]
"""`facts_for(release, {key: (platform, commit)})`: each service's proved profile facts at that commit with
that release (a lock's, or proved now); raises AdoptError when they cannot be proved."""


def adopt_all(
    targets: Mapping[str, AdoptTarget],
    live: Mapping[str, Optional[LiveService]],
    release_raw: Any,
    source: str,
    facts_for: "FactsFor",
    installs: Optional[Callable[[AdoptTarget, LiveService], InstallFiles]] = None,
) -> tuple[dict[str, Any], dict[str, dict[str, Any]], tuple[str, ...]]:
    """Every service adopted with the release it runs (`running_release`), then the whole result checked as
    a stack (the same `parse_stack` that loads one), so what is written is ready to paste and plans as it
    runs. The stack's release is the one most services run; a service on another gets its own `release`.
    Every refused service is named, not just the first.

    `release_raw` (the stack's release, which may be missing or name another release) only gives where the
    repositories live (`githubOwner`, `repositories`); its refs are replaced. Profiles are named canonically by
    the registry of each service's commit run with the release it runs (`facts_for`), the facts the gate
    will judge the adopted stack by; it raises AdoptError when they cannot be proved."""
    from release.config import ReleaseBundle
    from release.stack import parse_stack

    place = {k: v for k, v in release_raw.items() if k in ("githubOwner", "repositories")} if isinstance(release_raw, Mapping) else {}
    owner = str(place.get("githubOwner") or ReleaseBundle.model_fields["github_owner"].default)
    runs: dict[str, dict[str, str]] = {}
    notes: list[str] = []
    errors: list[str] = []
    for key, target in targets.items():
        service = live.get(key)
        if service is None or not service.commit:
            continue  # adopt_service names the problem below
        try:
            read = None if installs is None else functools.partial(installs, target, service)
            runs[key], origin = running_release(key, service, read, owner)
            notes.append(f"{key}: release {', '.join(f'{BY_NAME[n].short} {r}' for n, r in runs[key].items())} from {origin}")
        except AdoptError as error:
            errors.append(str(error))
    blocks = {key: json.dumps(release_block(refs), sort_keys=True) for key, refs in runs.items()}
    common = max(blocks.values(), key=list(blocks.values()).count) if blocks else None
    stack_release = {**json.loads(common), **place} if common is not None else release_raw
    adopted: dict[str, dict[str, Any]] = {}
    proved: dict[str, PlatformProfiles] = {}
    by_release: dict[str, dict[str, tuple[PlatformId, str]]] = {}
    for key in runs:
        service = live[key]
        assert service is not None and service.commit
        by_release.setdefault(blocks[key], {})[key] = (targets[key].platform, service.commit)
    for block, wanted in by_release.items():
        try:
            proved.update(facts_for(ReleaseBundle.model_validate({**json.loads(block), **place}), wanted))
        except AdoptError as error:
            errors.append(str(error))
    for key, target in targets.items():
        try:
            if key in runs:
                if key not in proved:
                    continue  # its facts could not be proved (named above)
                facts: Optional[PlatformProfiles] = proved[key]
            elif getattr(live.get(key), "commit", None):
                continue  # its release was refused above
            else:
                facts = None
            result = adopt_service(key, target, live.get(key), facts)
        except AdoptError as error:
            errors.append(str(error))
            continue
        entry = result.entry
        if blocks.get(key) != common:
            entry = {**entry, "release": release_block(runs[key])}
        adopted[key] = entry
        notes += result.notes
    if errors:
        raise AdoptError("; ".join(dict.fromkeys(errors)) + "; nothing was written")
    parse_stack(stack_release, adopted, source="the adopted services")
    return stack_release, adopted, tuple(notes)


def adopted_specs(release_raw: Any, services: Mapping[str, Any]) -> Mapping[str, ServiceSpec]:
    from release.stack import parse_stack

    return parse_stack(release_raw, services, source="the adopted services").services


def render_services(services: Mapping[str, Mapping[str, Any]], release: Optional[Mapping[str, Any]] = None) -> str:
    """One YAML document of the stack's two keys: `us-equity-cutover:release` (the release the services
    run) and `us-equity-cutover:services`."""
    import yaml

    document: dict[str, Any] = {} if release is None else {f"{PROJECT_NAME}:release": dict(release)}
    document[SERVICES_CONFIG_KEY] = dict(services)
    return yaml.safe_dump(document, sort_keys=False, default_flow_style=False, width=200)
