"""The runbook checks after `pulumi up` (CONTRACT.md section 6), and the operator record.

Pure: `verify_service` compares one live service against the env the config produces; nothing is
fetched here. A check that cannot be evaluated (no live service) fails: verify answers "yes" only when
every check passed.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Iterable, Mapping, Optional

from components.env import DRY_RUN_UNSET, ServiceEnv, desired_env, dry_run_value
from components.platforms import (
    OWNED_ENV_NAMES,
    PLATFORMS,
    RUNTIME_TARGET_JSON,
    STRATEGY_PROFILE,
    is_legacy_env,
    looks_secret,
)
from components.profiles import ProfileFacts
from release.config import ReleaseBundle, ServiceSpec
from release.control_chars import escape_controls
from release.cutover.live import LiveService, confirm_live
from release.cutover.ordering import env_diff
from release.local_files import InputFileError, load_json


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
) -> list[VerifyCheck]:
    """Every runbook check for one service, in runbook order. `image_digest`: what the configured image's
    tag resolves to (`verify --images`), so commit-live compares the live image by digest."""
    if live is None:
        return [VerifyCheck("service", False, f"{spec.service_name} has no live state; it was not found in --live input")]
    platform = PLATFORMS[spec.platform]
    expected = expected_env(key, spec, live, facts)
    checks: list[VerifyCheck] = []

    place_ok = live.service_name == spec.service_name and live.project in (None, spec.project) and live.region in (None, spec.region)
    checks.append(
        VerifyCheck(
            "service",
            place_ok,
            f"{live.service_name} in {live.project or '?'}/{live.region or '?'}"
            + ("" if place_ok else f"; expected {spec.service_name} in {spec.project}/{spec.region}"),
        )
    )

    profile = live.env.get(STRATEGY_PROFILE)
    checks.append(
        VerifyCheck(
            "strategy-profile",
            profile == spec.strategy_profile,
            f"{STRATEGY_PROFILE}={profile or '(unset)'}"
            + ("" if profile == spec.strategy_profile else f"; expected {spec.strategy_profile}"),
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
        checks.append(
            VerifyCheck(
                "runtime-target",
                target == want,
                f"{RUNTIME_TARGET_JSON} matches" if target == want else f"{RUNTIME_TARGET_JSON}={target or '(unset)'}; expected {want}",
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

    other_platform = sorted(
        n for n in live.env if n in OWNED_ENV_NAMES and n not in platform.strategy_env and (expected is None or n not in expected.plain)
    )
    legacy = sorted(n for n in {*live.env, *live.secrets} if is_legacy_env(n))
    stale_ok = not (other_platform or legacy)
    checks.append(
        VerifyCheck(
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
    )

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

    confirmation = confirm_live(live, spec.commit, spec.image, image_digest)
    checks.append(VerifyCheck("commit-live", confirmation.commit == spec.commit, confirmation.reason))

    plain_secrets = sorted(n for n in live.env if n in spec.secrets or n in platform.required_secrets or looks_secret(n))
    wrong_refs = sorted(n for n, ref in spec.secrets.items() if n in live.secrets and live.secrets[n] != ref)
    refs_ok = not (plain_secrets or wrong_refs)
    checks.append(
        VerifyCheck(
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
    )

    tags = live.release_tags
    release_ok = (tags.qpk, tags.ues) == (bundle.quant_platform_kit, bundle.us_equity_strategies)
    checks.append(
        VerifyCheck(
            "release-recorded",
            release_ok,
            f"service records QPK {tags.qpk or '(none)'} / UES {tags.ues or '(none)'}"
            + ("" if release_ok else f"; expected {bundle.quant_platform_kit} / {bundle.us_equity_strategies}"),
        )
    )
    return checks


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

    @property
    def ok(self) -> bool:
        return bool(self.checks) and all(check.ok for check in self.checks)


def verify_json(results: Iterable[ServiceVerification]) -> dict[str, Any]:
    results = list(results)
    return {
        "ok": bool(results) and all(result.ok for result in results),
        "services": [
            {
                "key": result.key,
                "service": result.service,
                "ok": result.ok,
                "checks": [
                    {"id": c.id, "ok": c.ok, "message": c.message, **({"object": c.object} if c.object else {})} for c in result.checks
                ],
            }
            for result in results
        ],
    }


def render_verify_text(results: Iterable[ServiceVerification]) -> str:
    results = list(results)
    lines = []
    for result in results:
        lines.append(f"{result.key}: {result.service}")
        lines += [f"  {'PASS' if c.ok else 'FAIL'} {c.id}: {c.message}" + (f" [{c.object}]" if c.object else "") for c in result.checks]
    passed = bool(results) and all(result.ok for result in results)
    failed = sum(1 for result in results for c in result.checks if not c.ok)
    lines.append("verify: all checks pass" if passed else f"verify: {failed} check(s) failed")
    # Messages quote live values: a newline in one must not forge a PASS line.
    return "\n".join(escape_controls(line) for line in lines) + "\n"
