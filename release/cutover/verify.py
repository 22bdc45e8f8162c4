"""The runbook checks after `pulumi up` (docs/platform-facts.md §6), and the operator record.

Pure: `verify_service` compares one live service against what its last update was to apply, nothing is
fetched here. A cutover is one or two updates per service (ordering.py), so verify judges each service
against a phase:

- `image`: the image step of a forward release. The configured commit is confirmed live (Ready, all
  traffic on the latest ready revision, its commit label), every env name outside the strategy env is the
  config's, and the strategy env is as it was (the profile and dry-run flag the plan saw live, and a
  profile the new image runs).
- `env`: the end state (or, for a rollback's env-first update, the end state's env on the image that
  stays): every check.

The phase comes from the plan the update was applied from (`verify --plan`), an explicit `--phase`, or
defaults to the end state. A check that cannot be evaluated (no live service) fails: verify answers "yes"
only when every check passed.
"""

from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Callable, Iterable, Literal, Mapping, Optional, TextIO

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from components.env import DRY_RUN_UNSET, ServiceEnv, desired_env, dry_run_value
from components.platforms import (
    OWNED_ENV_NAMES,
    PLATFORMS,
    QSL_RUNTIME_TARGET_JSON,
    RUNTIME_TARGET_ENABLED,
    RUNTIME_TARGET_JSON,
    STRATEGY_PROFILE,
    Platform,
    is_legacy_env,
    looks_secret,
)
from components.profiles import ProfileFacts
from components.runtime_target import shown_name, shown_value
from release.config import ReleaseBundle, ServiceSpec, StackConfig
from release.control_chars import escape_controls
from release.cutover.live import LiveService, confirm_live
from release.cutover.ordering import Phase, env_diff, profile_validity
from release.local_files import InputFileError, load_json
from release.packages import BY_NAME, QPK_PACKAGE, UES_PACKAGE

VerifyPhase = Literal["image", "env"]
PHASE_TITLES: Mapping[VerifyPhase, str] = {"image": "the image step", "env": "the env step (end state)"}


@dataclass(frozen=True)
class UpdateApplied:
    """What the last `pulumi up` was to apply on one service: the phase verify judges it against.

    `commit` and `image` must be live after it (`image_is_configured`: it is the stack's image, whose
    digest `verify --images` resolves); `release` is the release record it writes (distribution name ->
    ref; None: no record). For the image step,
    `held_profile`/`held_dry_run` are the strategy profile and dry-run flag live had before (None: not
    known, then only the profile's validity on the new image is judged). `origin` says where the phase
    came from, for the report.
    """

    phase: VerifyPhase
    commit: str
    image: str
    release: Optional[Mapping[str, str]]
    origin: str
    held_profile: Optional[str] = None
    held_dry_run: Optional[str] = None
    image_is_configured: bool = True

    @property
    def title(self) -> str:
        return PHASE_TITLES[self.phase]


def end_state(spec: ServiceSpec, bundle: ReleaseBundle, origin: str) -> UpdateApplied:
    return UpdateApplied("env", spec.commit, spec.image, bundle.refs, origin)


def image_step(
    spec: ServiceSpec, bundle: ReleaseBundle, origin: str, profile: Optional[str] = None, dry_run: Optional[str] = None
) -> UpdateApplied:
    return UpdateApplied("image", spec.commit, spec.image, bundle.refs, origin, profile, dry_run)


class PlanInputError(ValueError):
    """A `--plan` document verify cannot judge by: what is wrong and what to pass instead."""


class _PlanModel(BaseModel):
    # The plan is this project's own output, versioned by schemaVersion: verify reads the fields below and
    # leaves the others (env diffs, images, steps) to the plan, so a new plan field never breaks verify.
    model_config = ConfigDict(extra="ignore", frozen=True)


class _PlannedRelease(_PlanModel):
    qpk: Optional[str] = None
    ues: Optional[str] = None
    packages: Optional[dict[str, str]] = None  # every package's ref (plans before it: qpk and ues only)

    def refs(self) -> Optional[dict[str, str]]:
        if self.packages is not None:
            return dict(self.packages)
        if self.qpk is None or self.ues is None:
            return None
        return {QPK_PACKAGE: self.qpk, UES_PACKAGE: self.ues}


class _PlannedLive(_PlanModel):
    commit: Optional[str] = None
    image: Optional[str] = None
    profile: Optional[str] = None
    release: _PlannedRelease = _PlannedRelease()


class _PlannedDryRun(_PlanModel):
    live: Optional[str] = None


class _PlannedService(_PlanModel):
    key: str
    commit: str
    phase: Phase
    next_phase: Optional[Phase] = None
    live: Optional[_PlannedLive] = None
    dry_run: _PlannedDryRun = _PlannedDryRun()


class _PlanDocument(_PlanModel):
    schema_version: Literal[1] = Field(alias="schemaVersion")
    bundle: dict[str, Any]
    services: list[_PlannedService]


def phases_from_plan(document: Any, config: StackConfig, bundle_json: Mapping[str, Any], origin: str) -> dict[str, UpdateApplied]:
    """What the update applied per service, from the plan (`plan --format json`) it was applied from.

    The plan must be of this config (same bundle, same services at the same commits): a plan of another
    config says nothing about this update, so it is refused (PlanInputError) rather than half used.
    """
    try:
        plan = _PlanDocument.model_validate(document)
    except ValidationError as error:
        first = error.errors()[0]
        where = ".".join(str(part) for part in first["loc"]) or "the document"
        raise PlanInputError(
            f"is not a plan of this version ({where}: {first['msg']}); pass the output of `python -m release plan --format json`"
        ) from None
    if plan.bundle != dict(bundle_json):
        raise PlanInputError(
            "is a plan of another release (its bundle differs from the stack's); pass the plan this update was applied from"
        )
    planned = {service.key: service for service in plan.services}
    if len(planned) != len(plan.services) or set(planned) != set(config.services):
        raise PlanInputError(
            f"plans services {', '.join(sorted(planned)) or 'none'}, the stack configures {', '.join(sorted(config.services))}; "
            "pass the plan this update was applied from"
        )
    applied: dict[str, UpdateApplied] = {}
    for key, spec in config.services.items():
        service = planned[key]
        if service.commit != spec.commit:
            raise PlanInputError(
                f"plans {key} at commit {service.commit[:7]}, the stack configures {spec.commit[:7]}; pass the plan this update was applied from"
            )
        applied[key] = _applied_by(service, spec, config.release, origin)
    return applied


def _applied_by(service: _PlannedService, spec: ServiceSpec, bundle: ReleaseBundle, origin: str) -> UpdateApplied:
    live = service.live
    if service.phase == "deploy-image":
        return image_step(spec, bundle, origin, None if live is None else live.profile, service.dry_run.live)
    if service.phase == "switch-env" and service.next_phase == "deploy-image" and live is not None and live.commit and live.image:
        # A rollback's env-first update: the end state's env on the image that stays, with its record.
        return UpdateApplied(
            "env", live.commit, live.image, live.release.refs(), f"{origin} (env first, the image follows)",
            image_is_configured=False,
        )  # fmt: skip
    if service.phase == "blocked":
        return end_state(spec, bundle, f"{origin} (blocked there: the update changed nothing, so the end state is judged)")
    return end_state(spec, bundle, origin)


@dataclass(frozen=True)
class VerifyCheck:
    id: str
    ok: bool
    message: str
    # The object the check read (a gs:// URI), when it read one.
    object: Optional[str] = None


def _names(names: Iterable[str]) -> str:
    return ", ".join(sorted(names)) or "none"


def expected_env(key: str, spec: ServiceSpec, live: LiveService, facts: ProfileFacts) -> Optional[ServiceEnv]:
    """The env the config gives this service, with `keep` read from the live flag; None if the profile is
    not runtime-enabled on the service's commit (by the proved facts) or the live flag is unset."""
    requirements = facts.requirements(spec.strategy_profile, key)
    if requirements is None:
        return None
    platform = PLATFORMS[spec.platform]
    dry_run = dry_run_value(spec, live.env.get(platform.dry_run_env), True)
    return None if dry_run is None else desired_env(spec, requirements, dry_run)


def verify_service(
    key: str,
    spec: ServiceSpec,
    bundle: ReleaseBundle,
    live: Optional[LiveService],
    facts: ProfileFacts,
    image_digest: Optional[str] = None,
    applied: Optional[UpdateApplied] = None,
) -> list[VerifyCheck]:
    """Every runbook check of the phase the last update applied (default: the end state), in runbook order.
    `image_digest`: what the configured image's tag resolves to (`verify --images`), so commit-live compares
    the live image by digest."""
    applied = applied or end_state(spec, bundle, "the end state")
    if live is None:
        return [VerifyCheck("service", False, f"{spec.service_name} has no live state; it was not found in --live input")]
    platform = PLATFORMS[spec.platform]
    checks: list[VerifyCheck] = [_place_check(spec, live)]
    live_flag = live.env.get(platform.dry_run_env)
    if applied.phase == "image":
        checks.append(_held_strategy_check(key, spec, bundle, live, facts, applied))
        if dry_run_value(spec, live_flag, True) is None:
            checks.append(VerifyCheck("dry-run", False, f"{platform.dry_run_env}: {DRY_RUN_UNSET}"))
        checks.append(_stale_env_check(platform, live, expected_env(key, spec, live, facts)))
        checks.append(_env_outside_strategy_check(key, spec, live, facts))
    else:
        checks += _end_state_env_checks(key, spec, live, facts)
    checks.append(_commit_check(live, applied, image_digest))
    checks.append(_secret_refs_check(spec, live))
    checks.append(_release_check(live, applied.release))
    return checks


def _place_check(spec: ServiceSpec, live: LiveService) -> VerifyCheck:
    place_ok = live.service_name == spec.service_name and live.project in (None, spec.project) and live.region in (None, spec.region)
    return VerifyCheck(
        "service",
        place_ok,
        f"{live.service_name} in {live.project or '?'}/{live.region or '?'}"
        + ("" if place_ok else f"; expected {spec.service_name} in {spec.project}/{spec.region}"),
    )


def _end_state_env_checks(key: str, spec: ServiceSpec, live: LiveService, facts: ProfileFacts) -> list[VerifyCheck]:
    platform = PLATFORMS[spec.platform]
    expected = expected_env(key, spec, live, facts)
    checks: list[VerifyCheck] = []
    # What the runtime runs (QSL_RUNTIME_TARGET_JSON, then RUNTIME_TARGET_JSON, then STRATEGY_PROFILE), and
    # STRATEGY_PROFILE itself, which the seed-era images read: both must name the configured profile.
    running = live.running(spec.platform)
    profile = live.env.get(STRATEGY_PROFILE)
    profile_ok = running.profile == spec.strategy_profile and profile == spec.strategy_profile
    checks.append(
        VerifyCheck(
            "strategy-profile",
            profile_ok,
            f"runs {running.describe()}; {STRATEGY_PROFILE}={shown_name(profile) if profile is not None else '(unset)'}"
            + ("" if profile_ok else f"; expected {spec.strategy_profile}"),
        )
    )
    live_flag = live.env.get(platform.dry_run_env)
    if dry_run_value(spec, live_flag, True) is None:
        checks.append(VerifyCheck("dry-run", False, f"{platform.dry_run_env}: {DRY_RUN_UNSET}"))
    if expected is None:
        checks.append(
            VerifyCheck(
                "runtime-target",
                False,
                f"not checked: {facts.judge_service(spec.strategy_profile, key).why}"
                if facts.requirements(spec.strategy_profile, key) is None
                else f"not checked: no explicit {platform.dry_run_env} to derive it from",
            )
        )
    else:
        target = live.env.get(RUNTIME_TARGET_JSON)
        want = expected.plain[RUNTIME_TARGET_JSON]
        override = live.env.get(QSL_RUNTIME_TARGET_JSON)
        problems = []
        if target != want:
            problems.append(f"{RUNTIME_TARGET_JSON}={target or '(unset)'}; expected {want}")
        if override is not None:
            problems.append(
                f"{QSL_RUNTIME_TARGET_JSON} is set and the runtime reads it first (it runs {running.describe()}); pulumi up removes it"
            )
        enabled = live.env.get(RUNTIME_TARGET_ENABLED)
        if enabled != expected.plain[RUNTIME_TARGET_ENABLED]:
            problems.append(
                f"{RUNTIME_TARGET_ENABLED}={shown_value(enabled) if enabled is not None else '(unset)'}; expected {expected.plain[RUNTIME_TARGET_ENABLED]}"
            )
        checks.append(
            VerifyCheck(
                "runtime-target",
                not problems,
                f"{RUNTIME_TARGET_JSON} matches, no {QSL_RUNTIME_TARGET_JSON} override, {RUNTIME_TARGET_ENABLED}={enabled}"
                if not problems
                else "; ".join(problems),
            )
        )

    if expected is not None:
        want_input = {n: v for n, v in expected.plain.items() if n in platform.input_mode_env}
        have_input = {n: v for n, v in live.env.items() if n in platform.input_mode_env}
        missing = sorted(set(want_input) - set(have_input))
        stale = sorted(set(have_input) - set(want_input))
        wrong = sorted(n for n in set(want_input) & set(have_input) if want_input[n] != have_input[n])
        ok = not (missing or stale or wrong)
        message = (
            f"input-mode env as the profile needs ({_names(want_input)})"
            if ok
            else "; ".join(
                part
                for part in (
                    f"missing {_names(missing)}" if missing else "",
                    f"stale {_names(stale)}" if stale else "",
                    f"wrong value {_names(wrong)}" if wrong else "",
                )
                if part
            )
        )
        checks.append(VerifyCheck("input-mode", ok, message))

    checks.append(_stale_env_check(platform, live, expected))

    if expected is not None:
        diff = env_diff(ServiceEnv(live.env, live.secrets), expected)
        checks.append(
            VerifyCheck(
                "env-matches-config",
                diff.empty,
                "env equals the config's"
                if diff.empty
                else f"live env differs from config: extra {_names(diff.removed)}; missing {_names(diff.added)}; "
                f"changed {_names(diff.changed)}",
            )
        )
    return checks


def _stale_env_check(platform: Platform, live: LiveService, expected: Optional[ServiceEnv]) -> VerifyCheck:
    other_platform = sorted(
        n for n in live.env if n in OWNED_ENV_NAMES and n not in platform.strategy_env and (expected is None or n not in expected.plain)
    )
    legacy = sorted(n for n in {*live.env, *live.secrets} if is_legacy_env(n))
    stale_ok = not (other_platform or legacy)
    return VerifyCheck(
        "no-stale-env",
        stale_ok,
        "no stale or legacy env"
        if stale_ok
        else "; ".join(
            p
            for p in (
                f"legacy {_names(legacy)}" if legacy else "",
                f"not this platform's {_names(other_platform)}" if other_platform else "",
            )
            if p
        ),
    )


def _held_strategy_check(
    key: str, spec: ServiceSpec, bundle: ReleaseBundle, live: LiveService, facts: ProfileFacts, applied: UpdateApplied
) -> VerifyCheck:
    """The image step holds the strategy env: as the plan saw it live, and a profile the new image runs."""
    platform = PLATFORMS[spec.platform]
    profile, flag = live.profile, live.env.get(platform.dry_run_env)
    problems = []
    if applied.held_profile is not None and profile != applied.held_profile:
        problems.append(f"{STRATEGY_PROFILE}={profile or '(unset)'}, but the image step holds {applied.held_profile}")
    if applied.held_dry_run is not None and flag != applied.held_dry_run:
        problems.append(
            f"{platform.dry_run_env}={flag if flag is not None else '(unset)'}, but the image step holds {applied.held_dry_run}"
        )
    repo = bundle.repositories.for_platform(spec.platform)
    validity = profile_validity(profile, spec.commit, bundle.refs, key, repo, ServiceEnv(live.env, live.secrets), facts)
    if not validity.ok:
        problems.append(f"the held profile cannot run on image {spec.commit[:7]}: {validity.why}")
    if problems:
        return VerifyCheck("strategy-held", False, "; ".join(problems))
    how = "as the plan saw it live" if applied.held_profile is not None else "its value before the update is known only with --plan"
    return VerifyCheck("strategy-held", True, f"{STRATEGY_PROFILE}={profile} held ({how}); {validity.why}")


def _env_outside_strategy_check(key: str, spec: ServiceSpec, live: LiveService, facts: ProfileFacts) -> VerifyCheck:
    """The image step applies the config's env to every name outside the strategy env."""
    expected = expected_env(key, spec, live, facts)
    if expected is None:
        return VerifyCheck("env-matches-config", False, f"not checked: {facts.judge_service(spec.strategy_profile, key).why}")
    held = PLATFORMS[spec.platform].strategy_env

    def outside(env: ServiceEnv) -> ServiceEnv:
        return ServiceEnv(
            {n: v for n, v in env.plain.items() if n not in held}, {n: ref for n, ref in env.secrets.items() if n not in held}
        )

    diff = env_diff(outside(ServiceEnv(live.env, live.secrets)), outside(expected))
    return VerifyCheck(
        "env-matches-config",
        diff.empty,
        "env outside the strategy env equals the config's"
        if diff.empty
        else f"live env differs from config outside the strategy env: extra {_names(diff.removed)}; missing {_names(diff.added)}; "
        f"changed {_names(diff.changed)}",
    )


def _commit_check(live: LiveService, applied: UpdateApplied, digest: Optional[str]) -> VerifyCheck:
    confirmation = confirm_live(live, applied.commit, applied.image, digest if applied.image_is_configured else None)
    return VerifyCheck("commit-live", confirmation.commit == applied.commit, confirmation.reason)


def _secret_refs_check(spec: ServiceSpec, live: LiveService) -> VerifyCheck:
    platform = PLATFORMS[spec.platform]
    plain_secrets = sorted(n for n in live.env if n in spec.secrets or n in platform.required_secrets or looks_secret(n))
    wrong_refs = sorted(n for n, ref in spec.secrets.items() if n in live.secrets and live.secrets[n] != ref)
    refs_ok = not (plain_secrets or wrong_refs)
    return VerifyCheck(
        "secrets-are-refs",
        refs_ok,
        f"secrets are Secret Manager refs ({_names(live.secrets)})"
        if refs_ok
        else "; ".join(
            p
            for p in (
                f"plain value for {_names(plain_secrets)}" if plain_secrets else "",
                f"wrong ref for {_names(wrong_refs)}" if wrong_refs else "",
            )
            if p
        ),
    )


def _release_check(live: LiveService, release: Optional[Mapping[str, str]]) -> VerifyCheck:
    recorded = live.release_tags.refs
    release_ok = (dict(recorded) if recorded else None) == (dict(release) if release else None)
    return VerifyCheck(
        "release-recorded",
        release_ok,
        f"service records {_release_text(recorded)}" + ("" if release_ok else f"; expected {_release_text(release)}"),
    )


def _release_text(refs: Optional[Mapping[str, str]]) -> str:
    if not refs:
        return "no release"
    return " / ".join(f"{BY_NAME[name].short if name in BY_NAME else name} {escape_controls(ref)}" for name, ref in sorted(refs.items()))


def env_fingerprint(live: LiveService) -> dict[str, str]:
    """Name -> short hash of the value (or of the secret ref): enough to tell what changed, never the value."""

    def digest(text: str) -> str:
        return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]

    prints = {name: digest(f"plain:{value}") for name, value in live.env.items()}
    prints.update({name: digest(f"secret:{ref}") for name, ref in live.secrets.items()})
    return dict(sorted(prints.items()))


def last_records(lines: Iterable[str]) -> dict[str, dict[str, Any]]:
    """The latest record per service from a record file's lines (malformed lines are skipped)."""
    latest: dict[str, dict[str, Any]] = {}
    for line in lines:
        try:
            # The shared JSON reader: a line nested 100k deep is malformed like any other, not a RecursionError.
            record = load_json(line, "--record", "")
        except InputFileError:
            continue
        if isinstance(record, dict) and isinstance(record.get("service"), str):
            latest[record["service"]] = record
    return latest


def operator_record(
    key: str,
    spec: ServiceSpec,
    bundle: ReleaseBundle,
    live: Optional[LiveService],
    checks: list[VerifyCheck],
    previous: Optional[Mapping[str, Any]],
    now: datetime,
) -> dict[str, Any]:
    """One operator record: service, old profile (from the previous record), new profile, env changed, time."""
    fingerprint = env_fingerprint(live) if live is not None else {}
    if previous is None or not isinstance(previous.get("env_fingerprint"), dict):
        changed: Optional[list[str]] = None  # first record for this service: nothing to compare with
    else:
        before = previous["env_fingerprint"]
        changed = sorted(n for n in {*before, *fingerprint} if before.get(n) != fingerprint.get(n))
    return {
        "time": now.isoformat(),
        "key": key,
        "service": spec.service_name,
        "project": spec.project,
        "region": spec.region,
        "old_profile": None if previous is None else previous.get("new_profile"),
        "new_profile": None if live is None else live.profile,
        "env_changed": changed,
        # The commit only when commit-live passed: the label alone is a claim, not what runs.
        "commit": spec.commit if any(check.id == "commit-live" and check.ok for check in checks) else None,
        "bundle": {"qpk": bundle.quant_platform_kit, "ues": bundle.us_equity_strategies},
        "verified": all(check.ok for check in checks),
        "env_fingerprint": fingerprint,
    }


@dataclass(frozen=True)
class ServiceVerification:
    key: str
    service: str
    checks: tuple[VerifyCheck, ...]
    # The phase the checks judged (None: the service had no live state to judge).
    applied: Optional[UpdateApplied] = None
    # What the operator should know beside the checks (e.g. the image step is live, the env step is not).
    note: str = ""

    @property
    def ok(self) -> bool:
        return bool(self.checks) and all(check.ok for check in self.checks)

    @property
    def phase_text(self) -> str:
        return "" if self.applied is None else f"{self.applied.title}, from {self.applied.origin}"


def verify_json(results: Iterable[ServiceVerification]) -> dict[str, Any]:
    results = list(results)
    return {
        "schemaVersion": VERIFY_SCHEMA_VERSION,
        "ok": bool(results) and all(result.ok for result in results),
        "counts": _counts(results),
        "services": [
            {
                "key": result.key,
                "service": result.service,
                "ok": result.ok,
                "phase": None if result.applied is None else result.applied.phase,
                "phase_origin": None if result.applied is None else result.applied.origin,
                "note": result.note or None,
                "checks": [
                    {"id": c.id, "ok": c.ok, "message": c.message, **({"object": c.object} if c.object else {})} for c in result.checks
                ],
            }
            for result in results
        ],
    }


VERIFY_SCHEMA_VERSION = 1


def _counts(results: list[ServiceVerification]) -> dict[str, int]:
    return {
        "services": len(results),
        "services_passed": sum(1 for r in results if r.ok),
        "checks": sum(len(r.checks) for r in results),
        "checks_failed": sum(1 for r in results for c in r.checks if not c.ok),
    }


def render_verify_text(results: Iterable[ServiceVerification]) -> str:
    results = list(results)
    lines = []
    for result in results:
        lines.append(f"{result.key}: {result.service}" + (f" (judged: {result.phase_text})" if result.applied is not None else ""))
        lines += [f"  {'PASS' if c.ok else 'FAIL'} {c.id}: {c.message}" + (f" [{c.object}]" if c.object else "") for c in result.checks]
        if result.note:
            lines.append(f"  note: {result.note}")
    passed = bool(results) and all(result.ok for result in results)
    counts = _counts(results)
    if passed:
        lines.append(f"verify: all checks pass ({counts['services']} service(s), {counts['checks']} checks)")
    else:
        failing = "; ".join(
            f"{r.key} against {r.applied.title if r.applied is not None else 'its live state'}" for r in results if not r.ok
        )
        lines.append(
            f"verify: {counts['checks_failed']} check(s) failed on {len(results) - counts['services_passed']} service(s): {failing}"
        )
    # Messages quote live values: a newline in one must not forge a PASS line.
    return "\n".join(escape_controls(line) for line in lines) + "\n"


# How often `verify --wait` reads live state again while an image is not yet confirmed live.
POLL_SECONDS = 10.0
# `verify --wait` is bounded like the first-run wait: a cutover window, never an open-ended loop.
MAX_WAIT_SECONDS = 6 * 3600.0


def unconfirmed(
    live: Mapping[str, Optional[LiveService]], applied: Mapping[str, UpdateApplied], digests: Mapping[str, Optional[str]]
) -> dict[str, str]:
    """Key -> why, for every service whose phase needs a commit and image that are not confirmed live yet
    (the same rule as commit-live)."""
    waiting = {}
    for key, expected in applied.items():
        service = live.get(key)
        if service is None:
            waiting[key] = "no live state yet"
            continue
        check = _commit_check(service, expected, digests.get(key))
        if not check.ok:
            waiting[key] = check.message
    return waiting


def wait_until_confirmed(
    live: Mapping[str, Optional[LiveService]],
    applied: Mapping[str, UpdateApplied],
    read: Callable[[list[str]], Mapping[str, Optional[LiveService]]],
    wait_seconds: float,
    progress: Optional[TextIO],
    digests: Mapping[str, Optional[str]] = {},
    poll_seconds: Optional[float] = None,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> dict[str, Optional[LiveService]]:
    """Read the services whose commit is not confirmed live again, every `poll_seconds`, until each is or
    `wait_seconds` are over; one progress line per poll. Returns the latest live state of every service."""
    latest = dict(live)
    poll = POLL_SECONDS if poll_seconds is None else poll_seconds
    deadline = clock() + max(0.0, wait_seconds)
    polls = 0
    while True:
        waiting = unconfirmed(latest, applied, digests)
        left = deadline - clock()
        if not waiting or left <= 0:
            return latest
        polls += 1
        if progress is not None:
            reasons = "; ".join(f"{key}: {why}" for key, why in sorted(waiting.items()))
            print(
                f"verify: waiting for the image to be confirmed live (poll {polls}, {left:.0f}s left): {escape_controls(reasons)}",
                file=progress,
                flush=True,
            )
        sleep(min(poll, left))
        latest.update(read(sorted(waiting)))
