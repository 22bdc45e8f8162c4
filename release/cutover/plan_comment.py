"""The cutover plan as the pull-request comment a reviewer reads: the verdict first, then one row per service.

Pure: `render_comment` formats a `CutoverPlan`; the review workflow posts its output as one comment that
it edits in place on every push (found again by `MARKER`). The visible part stays within one screen for the
four prod services; the full text plan follows, collapsed, so nothing the reviewer may need is cut.

Every string that came from a server or a file (check messages, reasons, names) is data: it is escaped for
markdown, kept on one line and capped, so it can neither break the table nor grow the comment unbounded.
"""

from __future__ import annotations

import re
from typing import Any, Mapping, Optional

from release.cutover.ordering import EnvDiff, ServicePlan, short
from release.cutover.plan import CutoverPlan, gate_json, stopped_checks, summary_json, summary_text, to_json
from release.report_words import status_label

# Hidden in the rendered comment; the workflow finds the comment to update by it.
MARKER = "<!-- us-equity-cutover:plan -->"
# GitHub refuses comment bodies over 65,536 characters; the collapsed full plan is cut to stay below.
MAX_COMMENT_CHARS = 60_000
MAX_CELL_CHARS = 160
MAX_REASONS = 6
MAX_NAMES = 5
# The line naming the services a second `pulumi up` follows for (the workflow reads that from the JSON).
SECOND_UP = "A second `pulumi up` follows for"
MAX_WARNINGS = 8


def _inline(text: str, limit: int = MAX_CELL_CHARS) -> str:
    """One line of untrusted text, safe inside a table cell: no newlines, pipes, HTML or mentions."""
    flat = " ".join(str(text).split())
    if len(flat) > limit:
        flat = flat[: limit - 1] + "…"
    flat = flat.replace("\\", "\\\\").replace("|", "\\|").replace("`", "'")
    flat = flat.replace("<", "&lt;").replace(">", "&gt;")
    # A reason quoting "@someone" must not notify anyone.
    return flat.replace("@", "@\u200b")


def _names(diff: EnvDiff) -> str:
    marked = [f"+{n}" for n in diff.added] + [f"~{n}" for n in diff.changed] + [f"-{n}" for n in diff.removed]
    more = len(marked) - MAX_NAMES
    return " ".join(marked[:MAX_NAMES]) + (f" (+{more} more)" if more > 0 else "")


def _phase(service: ServicePlan) -> str:
    label = service.phase + (" (rollback)" if service.rollback else "")
    return label + (f", then {service.next_phase}" if service.next_phase else "")


def _changes(service: ServicePlan, job: Optional[Mapping[str, Any]] = None) -> str:
    """What this `pulumi up` changes on the service, in a few words (values are in the full plan).

    The main change first, then the Cloud Run settings it also changes (scaling, resources, traffic, ...),
    then the scheduler job, then env names: the cell is capped, and a settings or job change must not be
    the part that is cut. `job` is the plan's `scheduler.this_update` (None when the live jobs were not read).
    """
    applied = service.applied_env_diff
    env = [] if applied.empty else [f"env {_names(applied)}"]
    if service.phase == "create":
        return f"new service: image {short(service.spec.commit)}, {service.spec.strategy_profile}"
    if service.phase == "blocked":
        return "nothing: held as live"
    if service.phase == "deploy-image":
        before = short(service.live.commit) if service.live is not None else "unknown"
        parts = [f"image {before} → {short(service.spec.commit)}", "strategy env held"]
    elif service.phase == "switch-env":
        before_profile = service.live_profile or "(unset)"
        moved = before_profile != service.spec.strategy_profile
        parts = [f"env only: {before_profile} → {service.spec.strategy_profile}" if moved else "env only"]
        env = [_names(applied)] if not applied.empty else []
    else:
        parts = []
    if service.settings_diff:
        fields = [f"~{change.field}" for change in service.settings_diff]
        more = len(fields) - MAX_NAMES
        parts.append("settings " + " ".join(fields[:MAX_NAMES]) + (f" (+{more} more)" if more > 0 else ""))
    if job is not None and job.get("action") == "create":
        parts.append("job created")
    elif job is not None and job.get("action") == "update":
        fields = [f"~{change['field']}" for change in job.get("changes", [])]
        more = len(fields) - MAX_NAMES
        parts.append("job " + " ".join(fields[:MAX_NAMES]) + (f" (+{more} more)" if more > 0 else ""))
    return "; ".join(parts + env) or "nothing"


def _reasons(plan: CutoverPlan) -> list[str]:
    """Why the plan cannot proceed, most basic first: the gate, then each blocked service."""
    gate = gate_json(plan)
    reasons: list[str] = []
    if plan.gate is None or gate["unverified"]:
        reasons.append(f"gate unverified: {gate['note'] or 'no gate report'}")
    stopped = stopped_checks(gate)
    if len(stopped) > 1:
        # One fault that stopped the whole source: once, not once per check it stopped.
        reasons.append(f"gate {status_label('error')}: {len(stopped)} checks: the source could not be reached: {stopped[0]['message']}")
    for check in gate["checks"]:
        if not check["ok"] and not (len(stopped) > 1 and check in stopped):
            reasons.append(f"gate {status_label(check['status'])}: {check['id']}: {check['message']}")
    if plan.gate is not None and not gate["ok"] and not gate["unverified"] and not any(not c["ok"] for c in gate["checks"]):
        reasons.append("gate failed without a failing check; run `python -m release check` for the report")
    for service in plan.blocked:
        reasons.append(f"{service.key} blocked: {service.reason}")
    for service in plan.image_blocked:
        check = plan.images.get(service.key)
        why = f"{check.status}: {check.message}" if check is not None else "not checked"
        reasons.append(f"{service.key} image {why}")
    return reasons


def _fence(text: str) -> str:
    """A code fence longer than any backtick run in the text, so the text cannot close it early."""
    longest = max((len(run) for run in re.findall(r"`+", text)), default=0)
    return "`" * max(3, longest + 1)


def render_comment(plan: CutoverPlan, full_text: str = "", stack: str = "prod") -> str:
    """The comment body: verdict, why (when blocked), one row per service, the second-run note, the full plan."""
    bundle = plan.config.release
    gate = gate_json(plan)
    jobs = {s["key"]: s["scheduler"]["this_update"] for s in to_json(plan)["services"] if "scheduler" in s}
    gate_word = "PASS" if gate["ok"] else ("UNVERIFIED" if gate["unverified"] else "FAIL")
    warnings = plan.warnings
    if not plan.ok:
        verdict = "❌ BLOCKED" + (f" (and {len(warnings)} warning{'s' if len(warnings) != 1 else ''})" if warnings else "")
    else:
        verdict = ("⚠️ " if warnings else "✅ ") + plan.verdict
    lines = [MARKER, f"### Cutover plan `{_inline(stack, 40)}`: {verdict}"]
    reasons = _reasons(plan)
    if reasons:
        lines.append("")
        lines += [f"- {_inline(reason, 200)}" for reason in reasons[:MAX_REASONS]]
        if len(reasons) > MAX_REASONS:
            lines.append(f"- … and {len(reasons) - MAX_REASONS} more (full plan below)")
    if warnings:
        # Above the fold: each one changes what the operator must do, whatever the verdict.
        lines += ["", "**Warnings: act on these before `pulumi up`**", ""]
        lines += [f"- ⚠️ {_inline(warning, 300)}" for warning in warnings[:MAX_WARNINGS]]
        if len(warnings) > MAX_WARNINGS:
            lines.append(f"- … and {len(warnings) - MAX_WARNINGS} more (full plan below)")
    lines += [
        "",
        f"QPK `{_inline(bundle.quant_platform_kit, 40)}` · UES `{_inline(bundle.us_equity_strategies, 40)}` · "
        f"gate {gate_word} · live: {_inline(plan.live_source, 80)}",
        "",
        f"Summary: {_inline(summary_text(summary_json(plan)), 300)}",
        "",
        "| service | phase | this `pulumi up` changes |",
        "|---|---|---|",
    ]
    for service in plan.services:
        name = f"{_inline(service.key, 40)} ({_inline(service.spec.service_name, 60)})"
        job = jobs.get(service.key)
        lines.append(f"| {name} | {_inline(_phase(service))} | {_inline(_changes(service, job))} |")
    second = [service.key for service in plan.services if service.next_phase]
    if second:
        lines += [
            "",
            f"{SECOND_UP} {_inline(', '.join(second))}: run the cutover again once `python -m release verify --plan` "
            "confirms the first update live (the cutover workflow does it and says so in its summary).",
        ]
    if full_text:
        head = "\n".join(lines) + "\n\n<details><summary>Full plan</summary>\n\n"
        tail = "</details>\n"
        room = MAX_COMMENT_CHARS - len(head) - len(tail) - 200
        body = full_text if len(full_text) <= room else full_text[:room] + "\n… (cut; run `python -m release plan` for all of it)\n"
        fence = _fence(body)
        return f"{head}{fence}text\n{body.rstrip()}\n{fence}\n\n{tail}"
    return "\n".join(lines) + "\n"
