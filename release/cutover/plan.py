"""The offline cutover plan: the gate verdict, each service's phase and env diff, and the ordered next steps.

Pure: `build_plan` takes the config, a gate report (or None when there is none), live state and the
profile facts the gate proved, and calls the same `plan_service` the Pulumi program calls. The renderers only format.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, Mapping, Optional, Protocol, Sequence

from components.platforms import PLATFORMS, RUNTIME_TARGET_ENABLED, RUNTIME_TARGET_JSON, STRATEGY_PROFILE
from components.profiles import ProfileFacts, environment_text
from components.runtime_target import selectors
from release.config import COMMIT_PATTERN, ReleaseBundle, StackConfig
from release.control_chars import escape_controls
from release.cutover.images import NOT_GIVEN, ImageCheck, pruned_repository_warning
from release.cutover.live import LiveService, confirm_live
from release.cutover.ordering import EnvDiff, ServicePlan, env_diff, plan_service, short
from release.cutover.rollback import Edit, Rollback, image_facts, image_rollback, strategy_edits
from release.cutover.scheduling import LiveSchedulerJob, job_changes, job_changes_text, scheduler_summary, scheduler_text
from release.report_words import status_label, verdict_text

# The release order (README "Release order"); a step's stage says where in it the step belongs.
STAGES = ("verify-gate", "release-bundle", "tag-qpk", "tag-ues", "platform-pins", "deploy-image", "switch-env", "resolve")
STAGE_TITLES = {
    "verify-gate": "verify the release gate",
    "release-bundle": "fix the release's bundle",
    "tag-qpk": "tag QPK",
    "tag-ues": "bump UES's QPK pin and tag UES",
    "platform-pins": "bump platform pins",
}
WHAT_VERIFIES = (
    "network access to GitHub with GITHUB_TOKEN set, `--source git --git-root DIR` over local clones, "
    "or a lock written by `python -m release lock`"
)


class GateCheckLike(Protocol):
    id: str
    ok: bool
    message: str


class GateLike(Protocol):
    """What the plan reads of release.gate.checks.GateReport."""

    ok: bool
    checks: Sequence[Any]


@dataclass(frozen=True)
class Step:
    stage: str
    action: str
    rollback: str
    service: Optional[str] = None
    # The stack edits `rollback` says, as data (release/cutover/rollback.py); empty when it says something else.
    rollback_edits: tuple[Edit, ...] = ()


@dataclass(frozen=True)
class CutoverPlan:
    config: StackConfig
    gate: Optional[Any]
    gate_note: str
    services: tuple[ServicePlan, ...]
    steps: tuple[Step, ...]
    live_source: str
    # About the plan's input: notes inform (a service the operator named new); warnings change what the
    # operator must do (no live state read at all).
    notes: tuple[str, ...] = field(default_factory=tuple)
    input_warnings: tuple[str, ...] = field(default_factory=tuple)
    # The configured image of every service: present (with its digest), missing or unverified.
    images: Mapping[str, ImageCheck] = field(default_factory=dict)
    images_source: str = "none given"
    # The profile facts every phase and env was judged by, and where they came from.
    facts: Optional[ProfileFacts] = None
    facts_source: str = "not proved"
    # The live scheduler jobs by key (None: the service has none); the whole mapping None when not read.
    jobs: Optional[Mapping[str, Optional[LiveSchedulerJob]]] = None

    @property
    def gate_ok(self) -> bool:
        return self.gate is not None and bool(self.gate.ok) and not bool(getattr(self.gate, "unverified", False))

    @property
    def blocked(self) -> tuple[ServicePlan, ...]:
        return tuple(service for service in self.services if service.phase == "blocked")

    @property
    def image_blocked(self) -> tuple[ServicePlan, ...]:
        """Services whose image changes in this or the next update and is not proved to exist."""
        return tuple(
            service
            for service in self.services
            if changes_image(service) and not (service.key in self.images and self.images[service.key].ok)
        )

    @property
    def ok(self) -> bool:
        """The plan can proceed: the gate passed (verified), no service is blocked, every image to deploy exists."""
        return self.gate_ok and not self.blocked and not self.image_blocked

    @property
    def warnings(self) -> tuple[str, ...]:
        """Everything that changes what the operator must do, whatever the verdict: the plan's warnings on
        its input, then each service's warnings, prefixed by its key. They lead every rendering."""
        return (*self.input_warnings, *(f"{service.key}: {warning}" for service in self.services for warning in service.warnings))

    @property
    def verdict(self) -> str:
        """`blocked`, `can proceed`, or `can proceed, with N warnings`."""
        return verdict_text(self.ok, len(self.warnings))


def resolved_digest(check: Optional[ImageCheck]) -> Optional[str]:
    """The digest the configured image resolved to (present images only): what the live image is compared by."""
    return None if check is None or check.resolved is None else check.resolved.digest


def changes_image(service: ServicePlan) -> bool:
    """Does this update, or the one the plan already names after it, deploy the configured image?

    A rollback that switches env first and then finds no image would leave the service half-way, so the
    image is proved before the first of the two updates.
    """
    return service.phase in ("create", "deploy-image") or service.next_phase == "deploy-image"


def image_steps(plan_services: Sequence[ServicePlan], images: Mapping[str, ImageCheck]) -> list[Step]:
    steps = []
    for service in plan_services:
        check = images.get(service.key)
        if not changes_image(service) or (check is not None and check.ok):
            continue
        message = check.message if check is not None else NOT_GIVEN
        steps.append(
            Step(
                "resolve",
                f"resolve {service.spec.service_name}: image {service.spec.image} {message}",
                "nothing deployed yet; nothing to undo",
                service.key,
            )
        )
    return steps


def _check_ok(check: Any) -> bool:
    return bool(getattr(check, "ok", getattr(check, "status", "") == "passed"))


def gate_stage(check: Any) -> str:
    """Where a failed gate check's cause sits in the release order: the stage the gate recorded on it
    (a pin, a ref, a bundle), never guessed from its id; a check without one comes first."""
    stage = str(getattr(check, "stage", "verify-gate"))
    return stage if stage in STAGES else "verify-gate"


def _switch_text(service: ServicePlan, diff: EnvDiff) -> str:
    """The env switch as one line: the profile move first, then the names the update adds/removes/changes."""
    before = service.live_profile or "(unset)"
    parts = [f"{STRATEGY_PROFILE} {before} -> {service.spec.strategy_profile}"] if before != service.spec.strategy_profile else []
    if diff.added:
        parts.append(f"add {', '.join(diff.added)}")
    if diff.removed:
        parts.append(f"remove {', '.join(diff.removed)}")
    others = [name for name in diff.changed if name != STRATEGY_PROFILE]
    if others:
        parts.append(f"change {', '.join(others)}")
    return "; ".join(parts) or "env"


def _service_steps(service: ServicePlan, again: str, config: StackConfig, facts: Optional[ProfileFacts]) -> list[Step]:
    """A service's steps, each with the rollback that puts it back where the step found it (rollback.py):
    edits the gate accepts, or why only reverting the stack commit can."""
    spec, name, live, key = service.spec, service.spec.service_name, service.live, service.key
    release = config.release_for(key)
    # The image that runs through an env step: the live one, whose recorded release names the profile (an
    # unrecorded one is the configured release only when it is the configured commit).
    running = None
    if live is not None:
        recorded = live.release_tags.refs or (release.refs if live.commit == spec.commit else None)
        running = image_facts(facts, release, spec, live.commit, recorded)

    def step(stage: str, action: str, undo: Rollback) -> Step:
        return Step(stage, action, undo.text(), key, undo.edits)

    # After an image-first update only the held strategy env is left to switch; otherwise this update's diff.
    pending = env_diff(service.applied.env, service.desired.env) if service.phase == "deploy-image" else service.applied_env_diff
    deploy_action = f"deploy image {short(spec.commit)} to {name}"
    switch_action = f"switch {_switch_text(service, pending)} on {name}"
    if service.phase == "create":
        undo = Rollback(
            instead=f"remove services.{key} from the stack, `pulumi state unprotect` it, turn off its deletion "
            "protection and pulumi up (deletes the new service)"
        )
        return [step("deploy-image", f"pulumi up: create {name} with image {short(spec.commit)} and {spec.strategy_profile}", undo)]
    if live is None:
        return []
    if service.phase == "deploy-image":
        steps = [step("deploy-image", f"pulumi up: {deploy_action} (strategy env held)", image_rollback(key, spec, release, live, facts))]
        if service.next_phase == "switch-env":
            # Back to after the image step: the new image, the strategy env as it ran before.
            steps.append(
                step(
                    "switch-env",
                    f"{again}: {switch_action}",
                    strategy_edits(key, spec, live, image_facts(facts, release, spec, spec.commit, release.refs)),
                )
            )
        return steps
    if service.phase == "switch-env":
        label = "rollback, env first" if service.rollback else "image already confirmed live"
        if not service.env_diff.empty:
            undo = strategy_edits(key, spec, live, running)
        else:
            undo = Rollback(instead=f"revert the stack commit that set these settings on services.{key} (only settings change)")
        steps = [step("switch-env", f"pulumi up: {switch_action} ({label})", undo)]
        if service.next_phase == "deploy-image":
            # Back to after the env step: the image as it ran, the new strategy env kept.
            steps.append(
                step("deploy-image", f"{again}: {deploy_action}", image_rollback(key, spec, release, live, facts, with_strategy=False))
            )
        return steps
    if service.phase == "blocked":
        return [Step("resolve", f"resolve {name}: {service.reason}", "nothing to undo: the service is held as is", key)]
    return []


def build_steps(
    plan_services: Sequence[ServicePlan], gate: Optional[Any], config: StackConfig, facts: Optional[ProfileFacts] = None
) -> list[Step]:
    """The ordered next steps from the first unmet step of the release order, each with its rollback."""
    bundle = config.release
    steps: list[Step] = []
    if gate is None or getattr(gate, "unverified", False):
        steps.append(Step("verify-gate", f"verify the release gate with {WHAT_VERIFIES}", "nothing to undo"))
    if gate is not None:
        qpk, ues = bundle.quant_platform_kit, bundle.us_equity_strategies
        tags = not any(COMMIT_PATTERN.fullmatch(ref) for ref in bundle.refs.values())
        noun = "release" if bundle.form == "packages" else "bundle"
        hints = {
            "release-bundle": f"fix the bundle {bundle.bundle}" if bundle.bundle else STAGE_TITLES["release-bundle"],
            "tag-qpk": f"tag QPK {qpk}" if tags else "release QPK's commit on its default branch",
            "tag-ues": f"pin QPK {qpk} in UES and tag UES {ues}"
            if tags
            else "release each strategy package's commit, pinning the release's QPK",
            "platform-pins": f"pin the {noun} in each platform repo at the configured commit",
        }
        # Checks that could not be verified ("error") are covered by the verify step above; only a
        # definite failure names an unmet step of the release order.
        failed = [check for check in gate.checks if getattr(check, "status", "failed") == "failed"]
        for check in sorted(failed, key=lambda c: STAGES.index(gate_stage(c))):
            stage = gate_stage(check)
            hint = hints.get(stage, STAGE_TITLES[stage])
            steps.append(Step(stage, f"{hint}: {check.id}: {check.message}", "nothing deployed yet; nothing to undo"))
    again = "pulumi up again (after `python -m release verify` confirms the first update live)"
    first_round: list[Step] = []
    second_round: list[Step] = []
    resolve: list[Step] = []
    for service in plan_services:
        for index, step in enumerate(_service_steps(service, again, config, facts)):
            (resolve if step.stage == "resolve" else first_round if index == 0 else second_round).append(step)
    return steps + resolve + first_round + second_round


def build_plan(
    config: StackConfig,
    gate: Optional[Any],
    live_by_key: Mapping[str, Optional[LiveService]],
    facts: Optional[ProfileFacts],
    lock: Optional[Any] = None,
    gate_note: str = "",
    live_source: str = "none (planned as if every service were new)",
    new_services: Sequence[str] = (),
    images: Optional[Mapping[str, ImageCheck]] = None,
    images_source: str = "none given",
    facts_source: str = "",
    jobs: Optional[Mapping[str, Optional[LiveSchedulerJob]]] = None,
    input_warnings: Sequence[str] = (),
) -> CutoverPlan:
    """The whole plan; `images` None means no image was checked (every image change is blocked).
    `new_services`: the keys the operator named new (`--new`), absent from the live input by their word."""
    if images is None:
        images = {key: ImageCheck(key, spec.image, "unverified", NOT_GIVEN) for key, spec in config.services.items()}
    services = tuple(
        plan_service(key, spec, config.release_for(key), live_by_key.get(key), facts, resolved_digest(images.get(key)))
        for key, spec in config.services.items()
    )
    steps = build_steps(services, gate, config, facts)
    first_service = next((index for index, step in enumerate(steps) if step.service is not None), len(steps))
    steps[first_service:first_service] = image_steps(services, images)
    notes = tuple(f"{config.services[key].service_name} is planned as new: --new {key} says it does not exist yet" for key in new_services)
    return CutoverPlan(
        config=config,
        gate=gate,
        gate_note=gate_note,
        services=services,
        steps=tuple(steps),
        live_source=live_source,
        notes=notes,
        input_warnings=tuple(input_warnings),
        images=dict(images),
        images_source=images_source,
        facts=facts,
        facts_source=facts_source or facts_note(facts),
        jobs=jobs,
    )


def _diff_json(diff: EnvDiff, against: str) -> dict[str, Any]:
    return {
        "against": against,
        "added": list(diff.added),
        "changed": list(diff.changed),
        "removed": list(diff.removed),
        "details": [{"name": c.name, "before": c.before, "after": c.after} for c in diff.details],
    }


def _requirements(plan: CutoverPlan, service: ServicePlan) -> Any:
    return None if plan.facts is None else plan.facts.requirements(service.spec.strategy_profile, service.key)


def _input_mode(plan: CutoverPlan, service: ServicePlan) -> str:
    requirements = _requirements(plan, service)
    return "unproved" if requirements is None else requirements.input_mode


def strategy_config_text(plan: CutoverPlan, service: ServicePlan) -> Optional[str]:
    """Where a profile's strategy config comes from on this platform commit (None: it reads none)."""
    requirements = _requirements(plan, service)
    if requirements is None or requirements.strategy_config == "none":
        return None
    path = service.spec.snapshot.strategy_config_path if service.spec.snapshot is not None else None
    if path is not None:
        return f"config path {path}"
    if requirements.strategy_config == "bundled_or_env":
        return f"bundled {requirements.bundled_config}"
    if requirements.strategy_config == "env_only":
        return "none (the profile reads its config only from a config path, and none is set)"
    return "module defaults (the platform commit bundles no config and no config path is set)"


def dry_run_json(service: ServicePlan) -> dict[str, Any]:
    """The dry-run flag as raw values: what live has, what the config says, what this cutover ends with."""
    name = PLATFORMS[service.spec.platform].dry_run_env
    return {
        "env": name,
        "config": service.spec.dry_run_only,
        "live": None if service.live is None else service.live.env.get(name),
        "desired": service.desired.env.plain.get(name),
    }


def target_json_summary(service: ServicePlan) -> dict[str, Any]:
    """The runtime target this cutover ends with (its fields as derived) and whether it is enabled."""
    spec = service.spec
    chosen = selectors(spec)
    desired = service.desired.env.plain
    return {
        "execution_mode": spec.execution_mode,
        "deployment_selector": chosen.deployment_selector,
        "account_selector": list(chosen.account_selector),
        "account_scope": chosen.account_scope,
        "market": None if spec.market is None else [spec.market, spec.market_calendar, spec.market_timezone],
        "enabled": spec.enabled,
        "json": desired.get(RUNTIME_TARGET_JSON),
        "enabled_env": {
            "live": None if service.live is None else service.live.env.get(RUNTIME_TARGET_ENABLED),
            "desired": desired.get(RUNTIME_TARGET_ENABLED),
        },
    }


def running_json(service: ServicePlan) -> Optional[dict[str, Any]]:
    """What the live service runs, read in the runtime's precedence."""
    if service.live is None:
        return None
    running = service.live.running(service.spec.platform)
    return {
        "source": running.source,
        "profile": running.profile,
        "dry_run_only": running.dry_run_only,
        "problem": running.problem,
        "overridden": running.overridden,
        "text": running.describe(),
    }


def _target_text(target: Mapping[str, Any]) -> str:
    mode = target["execution_mode"] or "from dryRunOnly"
    accounts = ", ".join(target["account_selector"])
    market = f", market {'/'.join(target['market'])}" if target["market"] else ""
    enabled = "enabled" if target["enabled"] else "DISABLED (RUNTIME_TARGET_ENABLED=false, its scheduler job paused)"
    flag = target["enabled_env"]
    change = f"; {RUNTIME_TARGET_ENABLED} live {_raw(flag['live'])} -> {_raw(flag['desired'])}" if flag["desired"] is not None else ""
    return (
        f"{target['deployment_selector']} (accounts [{accounts}], scope {target['account_scope']}{market}), mode {mode}, {enabled}{change}"
    )


def _raw(value: Optional[str]) -> str:
    return "(unset)" if value is None else json.dumps(value)


def gate_json(plan: CutoverPlan) -> dict[str, Any]:
    gate = plan.gate
    if gate is None:
        return {"ok": False, "unverified": True, "note": plan.gate_note, "checks": []}
    checks = [
        {
            "id": str(c.id),
            "ok": _check_ok(c),
            "status": str(getattr(c, "status", "passed" if _check_ok(c) else "failed")),
            "message": str(c.message),
            # The check could not run because the source itself was out of reach: one fault, reported once.
            "unreachable": bool(getattr(c, "unreachable", False)),
        }
        for c in gate.checks
    ]
    return {
        "ok": plan.gate_ok,
        "unverified": bool(getattr(gate, "unverified", False)),
        "unreachable": bool(getattr(gate, "unreachable", False)),
        "verified_from": str(getattr(gate, "verified_from", "") or ""),
        "note": plan.gate_note,
        "checks": checks,
    }


def image_json(plan: CutoverPlan, service: ServicePlan) -> dict[str, Any]:
    check = plan.images.get(service.key)
    resolved = None if check is None else check.resolved
    warning = pruned_repository_warning(service.spec, plan.config.release)
    return {
        "status": "unverified" if check is None else check.status,
        "message": NOT_GIVEN if check is None else check.message,
        "digest": None if resolved is None else resolved.digest,
        "deployed": None if resolved is None else resolved.deployed,
        "tag": None if resolved is None else resolved.tag,
        "needed": changes_image(service),
        "warnings": [warning] if warning else [],
    }


# The version of `plan --format json`; `verify --plan` reads this version back.
PLAN_SCHEMA_VERSION = 1


def summary_json(plan: CutoverPlan) -> dict[str, Any]:
    """The plan in counts: services by phase, how many a second `pulumi up` follows for, env and settings
    changes (this update, and the end state), warnings."""
    phases: dict[str, int] = {}
    for service in plan.services:
        phases[service.phase] = phases.get(service.phase, 0) + 1
    return {
        "services": len(plan.services),
        "phases": dict(sorted(phases.items())),
        "second_up": sum(1 for s in plan.services if s.next_phase),
        "env_changes_this_update": sum(1 for s in plan.services if not s.applied_env_diff.empty),
        "env_changes_end_state": sum(1 for s in plan.services if not s.env_diff.empty),
        "settings_changes_this_update": sum(1 for s in plan.services if s.settings_diff),
        "warnings": len(plan.warnings),
    }


def summary_text(summary: Mapping[str, Any]) -> str:
    phases = ", ".join(f"{count} {phase}" for phase, count in summary["phases"].items())
    second = f", {summary['second_up']} with a second pulumi up to follow" if summary["second_up"] else ""
    return (
        f"{summary['services']} services ({phases}{second}); env changes: {summary['env_changes_this_update']} this update, "
        f"{summary['env_changes_end_state']} by the end state; settings changes: {summary['settings_changes_this_update']}; "
        f"warnings: {summary['warnings']}"
    )


def bundle_json(bundle: ReleaseBundle) -> dict[str, Any]:
    """The release a plan is for, as its JSON names it (verify --plan compares it with the stack's)."""
    return {
        "quant_platform_kit": bundle.quant_platform_kit,
        "us_equity_strategies": bundle.us_equity_strategies,
        "github_owner": bundle.github_owner,
    }


def to_json(plan: CutoverPlan) -> dict[str, Any]:
    bundle = plan.config.release
    services = []
    for s in plan.services:
        live = s.live
        services.append(
            {
                "key": s.key,
                "service": s.spec.service_name,
                "project": s.spec.project,
                "region": s.spec.region,
                "platform": s.spec.platform,
                "commit": s.spec.commit,
                "image": s.spec.image,
                "image_check": image_json(plan, s),
                "scheduler": {
                    **scheduler_summary(s.spec),
                    "this_update": None
                    if plan.jobs is None
                    else job_changes(s.spec, s.phase == "blocked", None if s.live is None else s.live.url, plan.jobs.get(s.key)),
                },
                "strategy_profile": s.spec.strategy_profile,
                "input_mode": _input_mode(plan, s),
                "strategy_config": strategy_config_text(plan, s),
                "dry_run": dry_run_json(s),
                "phase": s.phase,
                "next_phase": s.next_phase,
                "rollback": s.rollback,
                "reason": s.reason,
                "warnings": list(s.warnings),
                "notes": list(s.notes),
                "target": target_json_summary(s),
                "live": None
                if live is None
                else {
                    "profile": live.profile,
                    "runs": running_json(s),
                    "image": live.image,
                    "commit": live.commit,
                    "confirmed_commit": confirm_live(live, s.spec.commit, s.spec.image, resolved_digest(plan.images.get(s.key))).commit,
                    "release": {"qpk": live.release_tags.qpk, "ues": live.release_tags.ues, "packages": live.release_tags.refs},
                },
                "env_diff": _diff_json(s.env_diff, "live -> desired (end state)"),
                "applied_env_diff": _diff_json(s.applied_env_diff, "live -> this pulumi up"),
                # Every Cloud Run setting this pulumi up changes (live -> registered); a held one never appears.
                "settings_diff": [change.to_json() for change in s.settings_diff],
            }
        )
    return {
        "schemaVersion": PLAN_SCHEMA_VERSION,
        "ok": plan.ok,
        "verdict": plan.verdict,
        "summary": summary_json(plan),
        "warnings": list(plan.warnings),
        "bundle": bundle_json(bundle),
        "gate": gate_json(plan),
        "profile_facts": plan.facts_source,
        "live_source": plan.live_source,
        "images_source": plan.images_source,
        "notes": list(plan.notes),
        "services": services,
        "steps": [
            {
                "n": n,
                "stage": step.stage,
                "service": step.service,
                "action": step.action,
                "rollback": step.rollback,
                "rollback_edits": [edit.to_json() for edit in step.rollback_edits],
            }
            for n, step in enumerate(plan.steps, 1)
        ],
    }


def _diff_text(diff: EnvDiff) -> list[str]:
    if diff.empty:
        return ["      (no change)"]
    marks = {**{n: "+" for n in diff.added}, **{n: "~" for n in diff.changed}, **{n: "-" for n in diff.removed}}
    lines = []
    for change in diff.details:
        mark = marks[change.name]
        if mark == "+":
            lines.append(f"      + {change.name}={change.after}")
        elif mark == "-":
            lines.append(f"      - {change.name}")
        else:
            lines.append(f"      ~ {change.name}: {change.before} -> {change.after}")
    return lines


def _image_text(check: dict[str, Any]) -> str:
    if check["status"] == "present":
        return f"{check['deployed']} (tag {check['tag']})" if check["tag"] else str(check["deployed"])
    blocking = " (blocks this plan: the image changes)" if check["needed"] else ""
    return f"{check['status'].upper()}{blocking}: {check['message']}"


def _shown_setting(value: Any) -> str:
    return "(unset)" if value is None else json.dumps(value, sort_keys=True, separators=(",", ":"))


def _settings_text(changes: Sequence[Mapping[str, Any]]) -> list[str]:
    if not changes:
        return ["      (no change)"]
    return [f"      ~ {c['field']}: {_shown_setting(c['live'])} -> {_shown_setting(c['desired'])}" for c in changes]


def stopped_checks(gate: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    """The checks one fault stopped: with the source out of reach, every check that could not be verified
    (directly, or because the check it builds on could not be); else those marked unreachable."""
    unreachable = bool(gate.get("unreachable"))
    return [check for check in gate["checks"] if check["status"] == "error" and (unreachable or check.get("unreachable"))]


def gate_check_lines(gate: Mapping[str, Any], indent: str = "  ") -> list[str]:
    """The gate's checks in the report vocabulary. Checks that could not run because the source itself was
    out of reach are one fault: reported once, with the checks it stopped, not once per check."""
    checks = gate["checks"]
    stopped = stopped_checks(gate)
    lines = []
    if len(stopped) > 1:
        ids = ", ".join(check["id"] for check in stopped)
        lines.append(
            f"{indent}{status_label('error')} {len(stopped)} checks ({ids}): the source could not be reached: {stopped[0]['message']}"
        )
    for check in checks:
        if len(stopped) > 1 and check in stopped:
            continue
        lines.append(f"{indent}{status_label(check['status'])} {check['id']}: {check['message']}")
    return lines


def render_text(plan: CutoverPlan) -> str:
    data = to_json(plan)
    gate = data["gate"]
    lines = [
        f"Cutover plan: bundle QPK {data['bundle']['quant_platform_kit']} / UES {data['bundle']['us_equity_strategies']}",
        f"Verdict: {data['verdict']}",
        f"Summary: {summary_text(data['summary'])}",
    ]
    if data["warnings"]:
        # What changes what the operator must do comes first, before the detail it is buried in.
        lines += ["", "Warnings (act on these before pulumi up):"]
        lines += [f"  - {warning}" for warning in data["warnings"]]
    lines += [
        "",
        f"Gate: {'PASS' if gate['ok'] else ('UNVERIFIED' if gate['unverified'] else 'FAIL')}"
        + (f" ({gate['note']})" if gate["note"] else ""),
    ]
    lines += gate_check_lines(gate)
    lines += ["", f"Profile facts: {plan.facts_source}"]
    lines += ["", f"Live state: {plan.live_source}", f"Images: {plan.images_source}"]
    lines += [f"  note: {note}" for note in plan.notes]
    for service in data["services"]:
        match = next(s for s in plan.services if s.key == service["key"])
        tag = " (rollback)" if service["rollback"] else ""
        lines += [
            "",
            f"{service['key']}: {service['service']} ({service['project']}, {service['region']})",
            f"  phase:   {service['phase']}{tag}" + (f", then {service['next_phase']}" if service["next_phase"] else ""),
            f"  commit:  {service['commit']}",
            f"  image:   {service['image']}",
            f"  digest:  {_image_text(service['image_check'])}",
            f"  profile: {service['strategy_profile']} ({service['input_mode']})"
            + (f", strategy config: {service['strategy_config']}" if service["strategy_config"] else ""),
            f"  dry run: {service['dry_run']['env']} live {_raw(service['dry_run']['live'])} -> "
            f"{_raw(service['dry_run']['desired'])} (dryRunOnly: {str(service['dry_run']['config']).lower()})",
            f"  target:  {_target_text(service['target'])}",
            f"  runs now: {service['live']['runs']['text'] if service['live'] is not None else '(no live service)'}",
            f"  reason:  {service['reason']}",
        ]
        lines += [f"  warning: {warning}" for warning in service["warnings"]]
        lines += [f"  note: {note}" for note in [*service["notes"], *service["image_check"]["warnings"]]]
        lines += scheduler_text(service["scheduler"])
        # This `pulumi up` first, then the end state when another update follows: an image-only step never
        # shows the end state's env as if this update applied it.
        lines.append(f"  this pulumi up ({service['phase']}):")
        lines.append("    env (live -> this update; secrets as refs):")
        lines += ["  " + line for line in _diff_text(match.applied_env_diff)]
        lines.append("    settings (live -> this update; everything else is held at its live value):")
        lines += ["  " + line for line in _settings_text(service["settings_diff"])]
        if service["scheduler"]["this_update"] is not None:
            lines += ["  " + line for line in job_changes_text(service["scheduler"]["this_update"])]
        else:
            lines.append("      job this update: not shown (pass --scheduler to read the live job; pulumi up holds its settings)")
        if service["next_phase"]:
            lines.append(f"  end state (after the next pulumi up, {service['next_phase']}):")
            lines.append("    env (live -> end state; secrets as refs):")
            lines += ["  " + line for line in _diff_text(match.env_diff)]
        elif service["phase"] != "blocked":
            lines.append("  end state: reached by this pulumi up")
    lines += ["", "Next steps:"]
    for step in data["steps"]:
        lines.append(f"  {step['n']}. {step['action']}")
        lines.append(f"     rollback: {step['rollback']}")
    if not data["steps"]:
        lines.append("  none: every service is in sync")
    lines += [
        "",
        f"Summary: {summary_text(data['summary'])}",
        f"Plan: {'can proceed' if plan.ok else 'BLOCKED'}"
        + (f", with {len(data['warnings'])} warning{'s' if len(data['warnings']) != 1 else ''}" if plan.ok and data["warnings"] else ""),
    ]
    # Live env values and server messages are data: a newline in one must not forge a report line.
    return "\n".join(escape_controls(line) for line in lines) + "\n"


def facts_note(facts: Optional[ProfileFacts], origin: str = "") -> str:
    """Where the plan's profile facts come from, e.g. `proved now from github (...)` or `from the lock at ...`."""
    if facts is None:
        return f"NOT PROVED: without them no phase or env can be judged, so every service is blocked; prove them with {WHAT_VERIFIES}"
    runs = sorted(
        {run.key: run for run in (facts.for_service(key) for key in facts.services) if run is not None}.values(), key=lambda r: r.key
    )
    shown = "; ".join(f"{run.label} ({environment_text(run.run.environment)})" for run in runs)
    return f"{origin or 'proved'}: each platform's registry run over its release: {shown or 'no service'}"


def lock_note(lock: Any) -> str:
    return f"verified from lock at {lock.locked_at}; `pulumi up` re-verifies online"


def unverified_note(error: Optional[BaseException] = None) -> str:
    why = f"the source could not be reached ({error})" if error is not None else "the source could not be reached"
    return f"unverified: {why} and there is no lock; verify it with {WHAT_VERIFIES}"
