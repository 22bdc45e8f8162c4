"""The runtime target: what today's images read to know which strategy to run, in which mode, for whom.

Two directions, both pure:

- `derived_target`: the target the program writes (compact, sorted keys) into `RUNTIME_TARGET_JSON`. It
  holds only the fields of QuantRuntimeSettings `schemas/runtime-target.schema.json` (`runtime_target`),
  every required one present; what the stack leaves out is derived as the platforms derive it
  (`target_name` and `selectors`).
- `running_target`: what a live service runs, read in the runtime's own precedence: a non-empty
  `QSL_RUNTIME_TARGET_JSON`, else `RUNTIME_TARGET_JSON` (QPK `resolve_runtime_target_from_env`), else
  `STRATEGY_PROFILE` (the seed-era images, which read no target). A target the runtime would refuse (not
  JSON, not an object, another platform, no strategy, a mode that contradicts its dry-run flag) is
  reported as such, never read as "probably this strategy".

Live values are data: a target is read under a size bound with the shared JSON reader's nesting bound and
duplicate keys refused (which copy would the runtime use?), and a strategy name that is not a profile name
is never taken as one.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any, Mapping, Optional

from components.platforms import ACCOUNT_GROUP, QSL_RUNTIME_TARGET_JSON, RUNTIME_TARGET_JSON, STRATEGY_PROFILE, TRUTHY
from release.config import TARGET_NAME_PATTERN, ConfigProblem, ServiceSpec
from release.control_chars import escape_controls
from release.local_files import InputFileError, load_json

# The schema's `runtime_target` properties (QuantRuntimeSettings schemas/runtime-target.schema.json):
# what the program may write, and what it must.
REQUIRED_FIELDS = (
    "platform_id",
    "strategy_profile",
    "dry_run_only",
    "deployment_selector",
    "account_selector",
    "account_scope",
    "service_name",
    "execution_mode",
)
OPTIONAL_FIELDS = ("market", "market_calendar", "market_timezone", "scheduler", "execution_windows")
MARKET_FIELDS = ("market", "market_calendar", "market_timezone")

# How the runtime reads a string flag as false (QPK `_coerce_optional_bool`); true is components.platforms.TRUTHY.
FALSY = frozenset({"0", "false", "no", "n", "off"})
# QuantRuntimeSettings' switch upper-cases these target names into selectors (`_deployment_selector_default`).
UPPERCASE_TARGET_NAMES = frozenset({"hk", "sg", "paper"})
# The service name around the target name, per platform (QuantRuntimeSettings `_default_service_name`).
SERVICE_NAME_AFFIXES: Mapping[str, tuple[str, str]] = {
    "ibkr": ("interactive-brokers-", "-service"),
    "schwab": ("charles-schwab-", "-service"),
    "longbridge": ("longbridge-quant-", "-service"),
}
# A live target longer than this is not a target (they are a few hundred bytes); it is refused unread.
MAX_TARGET_CHARS = 16 * 1024
# What a profile name looks like; a live value outside it (control characters, spaces, a 10 kB string)
# names no strategy this program could judge.
PROFILE_NAME_PATTERN = re.compile(r"[a-z0-9][a-z0-9_]{0,79}")


def target_name(spec: ServiceSpec) -> str:
    """The name the platforms derive a target's selectors from: IBKR's account group (its targets set
    `ACCOUNT_GROUP` = account_scope), LongBridge's account region (its Environments PAPER/HK/SG), else the
    service name without the platform's affixes (`charles-schwab-primary-service` -> `primary`)."""
    if spec.platform == "ibkr" and spec.env.get(ACCOUNT_GROUP):
        return spec.env[ACCOUNT_GROUP]
    if spec.platform == "longbridge" and spec.account_region is not None:
        return spec.account_region
    prefix, suffix = SERVICE_NAME_AFFIXES[spec.platform]
    name = spec.service_name
    middle = name.removeprefix(prefix).removesuffix(suffix)
    return middle or name


@dataclass(frozen=True)
class Selectors:
    deployment_selector: str
    account_selector: tuple[str, ...]
    account_scope: str


def selectors(spec: ServiceSpec) -> Selectors:
    """deployment_selector, account_selector, account_scope: the stack's, else derived as QuantRuntimeSettings'
    switch derives them: selector = target name (HK/SG/PAPER upper-cased), scope = selector, accounts = [scope]."""
    name = target_name(spec)
    deployment = spec.deployment_selector or (name.upper() if name.lower() in UPPERCASE_TARGET_NAMES else name)
    scope = spec.account_scope or deployment
    accounts = spec.account_selector or (scope,)
    return Selectors(deployment, tuple(accounts), scope)


def execution_mode(spec: ServiceSpec, dry_run: bool) -> str:
    """The stack's executionMode, else the one the runtime expects for the flag: paper when dry, else live."""
    return spec.execution_mode or ("paper" if dry_run else "live")


def derived_target(spec: ServiceSpec, dry_run: bool) -> dict[str, Any]:
    """The complete runtime target of a validated spec, for an explicit dry-run value."""
    mode = execution_mode(spec, dry_run)
    if (mode == "live") == dry_run:
        raise ValueError(
            f"{spec.service_name}: executionMode {mode} contradicts dry_run_only {dry_run}; the config must be validated first"
        )
    chosen = selectors(spec)
    target: dict[str, Any] = {
        "platform_id": spec.platform,
        "strategy_profile": spec.strategy_profile,
        "dry_run_only": dry_run,
        "deployment_selector": chosen.deployment_selector,
        "account_selector": list(chosen.account_selector),
        "account_scope": chosen.account_scope,
        "service_name": spec.service_name,
        "execution_mode": mode,
    }
    if spec.market is not None and spec.market_calendar is not None and spec.market_timezone is not None:
        target.update(market=spec.market, market_calendar=spec.market_calendar, market_timezone=spec.market_timezone)
    if spec.execution_windows is not None:
        windows = spec.execution_windows.model_dump(exclude_none=True)
        if windows:
            target["execution_windows"] = windows
    return target


def target_json(spec: ServiceSpec, dry_run: bool) -> str:
    """`RUNTIME_TARGET_JSON` as written: compact, keys sorted (at every level)."""
    return json.dumps(derived_target(spec, dry_run), sort_keys=True, separators=(",", ":"))


def target_problems(key: str, spec: ServiceSpec) -> list[ConfigProblem]:
    """The target fields' rules across fields (checked at load, before anything is registered)."""
    from release.cutover.scheduling import time_zone_problem

    where = f"services.{key}"
    problems: list[ConfigProblem] = []

    def problem(field_name: str, message: str) -> None:
        problems.append(ConfigProblem(path=f"{where}.{field_name}", message=message))

    mode, dry = spec.execution_mode, spec.dry_run_only
    if mode is not None and dry == "keep":
        problem(
            "executionMode",
            "says whether the service trades, but dryRunOnly: keep leaves that to the live flag; set dryRunOnly: true "
            "(paper) or false (live) beside it, or remove executionMode (it follows dryRunOnly)",
        )
    elif mode == "live" and dry is True:
        problem(
            "executionMode", "live contradicts dryRunOnly: true; a live target trades, so set dryRunOnly: false or executionMode: paper"
        )
    elif mode == "paper" and dry is False:
        problem("executionMode", "paper contradicts dryRunOnly: false; set dryRunOnly: true, or executionMode: live to trade")
    window = None if spec.execution_windows is None else spec.execution_windows.execution
    if window is not None and window.mode is not None:
        if dry == "keep":
            problem(
                "executionWindows.execution.mode",
                "needs an explicit dryRunOnly (true or false) to agree with; dryRunOnly: keep leaves the mode to the live flag",
            )
        elif (window.mode == "live") == dry:
            wanted = "paper" if dry else "live"
            problem("executionWindows.execution.mode", f"{window.mode} contradicts dryRunOnly: {str(dry).lower()}; write {wanted}")
    market = {name: getattr(spec, name) for name in MARKET_FIELDS}
    given = [name for name, value in market.items() if value is not None]
    if given and len(given) < len(MARKET_FIELDS):
        camel = {"market": "market", "market_calendar": "marketCalendar", "market_timezone": "marketTimezone"}
        for name in MARKET_FIELDS:
            if market[name] is None:
                problem(camel[name], "is required with " + " and ".join(camel[n] for n in given) + " (all three or none)")
    if spec.market_timezone is not None:
        zone = time_zone_problem(spec.market_timezone)
        if zone is not None:
            problem("marketTimezone", zone)
    chosen = selectors(spec)
    if spec.deployment_selector is None and not TARGET_NAME_PATTERN.fullmatch(chosen.deployment_selector):
        source = f"env.{ACCOUNT_GROUP}" if spec.platform == "ibkr" else "serviceName"
        problem(
            source,
            "is not usable as the target's deployment selector (1-64 letters, digits, '.', '-' or '_'); fix it or set deploymentSelector",
        )
    return problems


# --- what a live service runs --------------------------------------------------------------------


@dataclass(frozen=True)
class RunningTarget:
    """The strategy and mode a live service runs, and where that was read.

    `source` is the env name the runtime reads it from (None: nothing names a strategy); `problem` says why
    the runtime would refuse it (the service does not start, so no strategy runs); `dry_run_only` is the
    target's own flag (None when the source is STRATEGY_PROFILE, which carries none).
    """

    source: Optional[str]
    profile: Optional[str] = None
    dry_run_only: Optional[bool] = None
    execution_mode: Optional[str] = None
    problem: Optional[str] = None
    fields: Mapping[str, Any] = field(default_factory=dict)

    @property
    def overridden(self) -> bool:
        return self.source == QSL_RUNTIME_TARGET_JSON

    def describe(self) -> str:
        """One line: `tqqq_growth_income, dry run (RUNTIME_TARGET_JSON)`."""
        if self.source is None:
            return "nothing: no QSL_RUNTIME_TARGET_JSON, RUNTIME_TARGET_JSON or STRATEGY_PROFILE"
        if self.problem is not None:
            return f"nothing readable: {self.source} {self.problem}"
        mode = {True: "dry run", False: "LIVE trading", None: "mode from the dry-run flag"}[self.dry_run_only]
        return f"{self.profile}, {mode} ({self.source})"


def shown_value(value: Any, limit: int = 64) -> str:
    """A live value quoted in a message: control characters escaped, cut to `limit` characters."""
    text = value if isinstance(value, str) else json.dumps(value) if isinstance(value, (int, float, bool)) else type(value).__name__
    text = escape_controls(text)
    return repr(text if len(text) <= limit else text[:limit] + "...")


def shown_name(value: str) -> str:
    """A live profile name as is when it is one, else quoted and escaped (`shown_value`)."""
    return value if PROFILE_NAME_PATTERN.fullmatch(value) else shown_value(value)


def _coerce_bool(value: Any) -> Optional[bool]:
    """The runtime's reading of a target's dry_run_only; None = absent or empty; ValueError = refused."""
    if value is None:
        return None
    if isinstance(value, bool):
        return value
    if isinstance(value, (int, float)):
        return bool(value)
    if not isinstance(value, str):
        raise ValueError("is not a boolean")
    text = value.strip().lower()
    if not text:
        return None
    if text in TRUTHY:
        return True
    if text in FALSY:
        return False
    raise ValueError("is not a boolean")


def parse_target(raw: str, source: str, platform_id: Optional[str]) -> RunningTarget:
    """One live target as the runtime reads it (QPK `resolve_runtime_target_from_env`), under this
    program's bounds. `platform_id` None skips the platform check (the caller does not know it)."""

    def refused(problem: str, fields: Mapping[str, Any] = {}) -> RunningTarget:
        return RunningTarget(source, problem=problem, fields=fields)

    text = raw.strip()
    if len(text) > MAX_TARGET_CHARS:
        return refused(f"is longer than {MAX_TARGET_CHARS} characters, far more than any target")
    try:
        # The shared reader: nesting bound, one key per object (which copy would the runtime use?), no
        # number too long to convert.
        payload = load_json(text, source, "")
    except InputFileError as error:
        return refused(f"is not readable JSON: it {error.what}")
    if not isinstance(payload, dict):
        return refused("is not a JSON object (the runtime refuses to start)")
    platform = payload.get("platform_id")
    if not isinstance(platform, str) or not platform.strip():
        return refused("has no platform_id (the runtime refuses to start)", payload)
    if platform_id is not None and platform.strip() != platform_id:
        return refused(f"names platform {shown_value(platform)}, not {platform_id} (the runtime refuses to start)", payload)
    profile = payload.get("strategy_profile")
    if not isinstance(profile, str) or not profile.strip():
        return refused("names no strategy_profile (the runtime refuses to start)", payload)
    profile = profile.strip()
    if not PROFILE_NAME_PATTERN.fullmatch(profile):
        return refused(f"names a strategy that is not a profile name: {shown_value(profile)}", payload)
    try:
        dry_run = _coerce_bool(payload.get("dry_run_only"))
    except ValueError:
        return refused("has a dry_run_only that is not a boolean (the runtime refuses to start)", payload)
    if dry_run is None:
        return refused("has no dry_run_only (the runtime refuses to start)", payload)
    mode = payload.get("execution_mode")
    expected = "paper" if dry_run else "live"
    if mode is not None and (not isinstance(mode, str) or (mode.strip() and mode.strip().lower() != expected)):
        return refused(
            f"says execution_mode {shown_value(mode)} with dry_run_only {str(dry_run).lower()} (the runtime refuses to start)", payload
        )
    return RunningTarget(source, profile=profile, dry_run_only=dry_run, execution_mode=expected, fields=payload)


def running_target(env: Mapping[str, str], platform_id: Optional[str] = None) -> RunningTarget:
    """What the live env makes the runtime run, in its precedence (see the module docstring)."""
    qsl, target = env.get(QSL_RUNTIME_TARGET_JSON), env.get(RUNTIME_TARGET_JSON)
    # The runtime takes `QSL or RTJ` by truthiness, so an empty override falls through to RUNTIME_TARGET_JSON.
    if qsl:
        return parse_target(qsl, QSL_RUNTIME_TARGET_JSON, platform_id)
    if target:
        return parse_target(target, RUNTIME_TARGET_JSON, platform_id)
    profile = (env.get(STRATEGY_PROFILE) or "").strip()
    if not profile:
        return RunningTarget(None)
    if not PROFILE_NAME_PATTERN.fullmatch(profile):
        return RunningTarget(STRATEGY_PROFILE, problem=f"is not a profile name: {shown_value(profile)}")
    return RunningTarget(STRATEGY_PROFILE, profile=profile)
