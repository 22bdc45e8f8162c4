"""The review leads with what matters: warnings above the fold and in the verdict, one status vocabulary
(skipped shown as skipped), this `pulumi up` apart from the end state, counts, a versioned JSON, and a fault
that stops the whole source reported once."""

from __future__ import annotations

import json

from release.cutover.plan import build_plan, render_text, to_json
from release.cutover.plan_comment import render_comment
from release.gate.checks import CheckResult, GateReport
from release.report_words import STATUS_LABELS, counts_text, verdict_text
from tests.fixtures.gate_doubles import Check, Gate
from tests.test_plan_comment import CONFIG, FACTS, IMAGES, PASSED, previous_release, visible


def managed_previous_release(key: str, profile: str):
    live = previous_release(key, profile)
    return live.model_copy(update={"labels": {**live.labels, "managed-by": "github-actions"}})


def plan_with_a_competing_deployer():
    live = {
        "ibkr": managed_previous_release("ibkr", "global_etf_rotation"),
        "schwab": previous_release("schwab", "semiconductor_rotation_income"),
    }
    return build_plan(CONFIG, PASSED, live, FACTS, live_source="gcloud", images=IMAGES)


def test_a_warning_changes_the_verdict_and_leads_the_comment_above_the_fold():
    plan = plan_with_a_competing_deployer()
    assert plan.ok and plan.verdict == "can proceed, with 1 warning"
    comment = render_comment(plan, render_text(plan))
    shown = visible(comment)
    assert shown[1].endswith("⚠️ can proceed, with 1 warning")
    warning = next(
        i for i, line in enumerate(shown) if "a push to QuantStrategyLab/InteractiveBrokersPlatform will revert this cutover" in line
    )
    table = shown.index("| service | phase | this `pulumi up` changes |")
    assert 1 < warning < table
    assert "✅" not in comment.split("<details>")[0]


def test_a_warning_leads_the_text_plan_and_the_json_says_the_verdict_and_counts():
    plan = plan_with_a_competing_deployer()
    text = render_text(plan)
    lines = text.splitlines()
    assert lines[1] == "Verdict: can proceed, with 1 warning"
    warnings_at = lines.index("Warnings (act on these before pulumi up):")
    assert warnings_at < next(i for i, line in enumerate(lines) if line.startswith("Gate:"))
    assert lines[warnings_at + 1].startswith("  - ibkr: interactive-brokers-quant-service is labelled managed-by=github-actions")
    assert lines[-1] == "Plan: can proceed, with 1 warning"
    data = to_json(plan)
    assert data["schemaVersion"] == 1 and data["verdict"] == "can proceed, with 1 warning" and len(data["warnings"]) == 1
    assert data["summary"] == {
        "services": 4,
        "phases": {"create": 2, "deploy-image": 2},
        "second_up": 2,
        "env_changes_this_update": 4,
        "env_changes_end_state": 4,
        "settings_changes_this_update": data["summary"]["settings_changes_this_update"],
        "warnings": 1,
    }
    assert "Summary: 4 services (2 create, 2 deploy-image, 2 with a second pulumi up to follow)" in text
    # The sequencing of a two-step release is a note, not a warning: it does not change the verdict.
    quiet = build_plan(
        CONFIG, PASSED, {"ibkr": previous_release("ibkr", "global_etf_rotation")}, FACTS, live_source="gcloud", images=IMAGES
    )
    assert quiet.verdict == "can proceed" and render_text(quiet).splitlines()[-1] == "Plan: can proceed"
    assert "note: switch deferred until image" in render_text(quiet)


def test_this_pulumi_up_is_shown_apart_from_the_end_state():
    plan = plan_with_a_competing_deployer()
    text = render_text(plan)
    ibkr = text.split("\nibkr: ", 1)[1].split("\nschwab: ", 1)[0]
    this_update = ibkr.split("  this pulumi up (deploy-image):\n", 1)[1].split("  end state (after the next pulumi up, switch-env):\n", 1)
    assert len(this_update) == 2, ibkr
    now, end = this_update
    # The image step holds the strategy env: its diff never shows the profile switch; the end state does.
    assert "STRATEGY_PROFILE" not in now.split("    settings (live")[0]
    assert "~ STRATEGY_PROFILE: global_etf_rotation -> soxl_soxx_trend_income" in end
    created = text.split("\nlongbridge-hk: ", 1)[1].split("\nlongbridge-sg: ", 1)[0]
    assert "  end state: reached by this pulumi up" in created and "end state (after" not in created


def test_skipped_is_shown_as_skipped_and_one_vocabulary_serves_check_plan_and_comment():
    checks = (
        Check("qpk-tag", True, "v0.7.10 resolves"),
        Check("platform-ci:ibkr", True, "the git source cannot see CI", "skipped"),
        Check("ues-pins-qpk", False, "UES pins QPK v0.7.9", "failed"),
        Check("order", False, "not checked: a fault", "error"),
    )
    plan = build_plan(CONFIG, Gate(ok=False, checks=checks), {}, FACTS, live_source="gcloud", images=IMAGES)
    text = render_text(plan)
    assert "  SKIPPED platform-ci:ibkr: the git source cannot see CI" in text
    assert "  PASS qpk-tag:" in text and "  FAIL ues-pins-qpk:" in text and "  UNVERIFIED order:" in text
    assert "[ok]" not in text and "PASS platform-ci" not in text
    comment = visible(render_comment(plan, text))
    assert any("gate FAIL: ues-pins-qpk" in line for line in comment) and any("gate UNVERIFIED: order" in line for line in comment)
    report = GateReport(
        CONFIG.release,
        [CheckResult(c.id, c.status, c.message) for c in checks],
        "git",
        "git",
    )
    rendered = report.render_text()
    for check in checks:
        assert f"  {STATUS_LABELS[check.status]} {check.id}: {check.message}" in rendered
    assert counts_text(["passed", "skipped", "failed", "error"]) in rendered
    assert "4 checks: 1 passed, 1 failed, 1 unverified, 1 skipped" in rendered


def test_a_fault_that_stops_the_whole_source_is_reported_once():
    fault = "GET /repos/QuantStrategyLab/QuantPlatformKit/git/ref/tags/v0.7.10: cannot connect after 3 tries"
    checks = (
        Check("qpk-tag", False, f"could not verify: {fault}", "error"),
        Check("ues-tag", False, f"could not verify: not attempted: {fault} already failed", "error"),
        *(Check(f"platform-pins:{key}", False, f"not attempted: {fault} already failed", "error") for key in CONFIG.services),
        Check("tag-immutable", True, "no lock yet", "skipped"),
    )
    gate = Gate(ok=False, checks=checks, unverified=True, unreachable=True)
    plan = build_plan(CONFIG, gate, {}, None, live_source="gcloud", images=IMAGES)
    text = render_text(plan)
    assert text.count("cannot connect after 3 tries") == 1
    assert "  UNVERIFIED 6 checks (qpk-tag, ues-tag, platform-pins:ibkr" in text and "  SKIPPED tag-immutable" in text
    comment = visible(render_comment(plan, text))
    assert sum("cannot connect" in line for line in comment) == 1
    # The JSON keeps every check: the data is complete, only the rendering groups them.
    assert len(json.loads(json.dumps(to_json(plan)))["gate"]["checks"]) == len(checks)


def test_verdict_words():
    assert verdict_text(False, 3) == "blocked"
    assert verdict_text(True, 0) == "can proceed" and verdict_text(True, 2) == "can proceed, with 2 warnings"
