"""release/cutover/plan_comment.py: the PR comment a reviewer reads, on a blocked and on a passing plan of the four prod services."""

from __future__ import annotations

import dataclasses

from components.ownership import SettingChange
from components.platforms import PLATFORMS
from release.cli import main
from release.cutover.images import ImageCheck
from release.cutover.live import LiveService, from_knative_json
from release.cutover.plan import CutoverPlan, build_plan, render_text
from release.cutover.plan_comment import MARKER, MAX_COMMENT_CHARS, render_comment
from release.stack import load_stack_file
from tests.fixtures.gate_doubles import Check, Gate
from tests.fixtures.live_json import knative_for_spec, present_images, release_annotations, write_images_dir
from tests.fixtures.profile_sources import profile_facts
from tests.fixtures.projects import SEED_STACK_FILE

CONFIG = load_stack_file(SEED_STACK_FILE)
FACTS = profile_facts(CONFIG)
OLD = "1111111111111111111111111111111111111111"
PASSED = Gate(ok=True, checks=(Check("qpk-tag", True, "v0.7.10 -> abc"),))
IMAGES = present_images(CONFIG.services)
# One screen of a pull request page: what the reviewer sees without scrolling or expanding.
SCREEN_LINES = 30
SCREEN_WIDTH = 220


def previous_release(key: str, profile: str, **bend: object) -> LiveService:
    """The service live on an older image and profile: the forward release is image first, then env."""
    spec = CONFIG.services[key]
    document = knative_for_spec(
        spec,
        {"STRATEGY_PROFILE": profile, "NOTIFY_LANG": "zh", PLATFORMS[spec.platform].dry_run_env: "false"},
        commit=OLD,
        image=spec.image.rsplit(":", 1)[0] + ":" + OLD,
        annotations=release_annotations("v0.7.8", "v0.7.11"),
        **bend,
    )
    return from_knative_json(document, spec.service_name)


def visible(comment: str) -> list[str]:
    """The lines shown before the collapsed full plan."""
    return comment.split("<details>", 1)[0].rstrip("\n").splitlines()


def passing_plan() -> CutoverPlan:
    live = {"ibkr": previous_release("ibkr", "global_etf_rotation"), "schwab": previous_release("schwab", "semiconductor_rotation_income")}
    return build_plan(CONFIG, PASSED, live, FACTS, live_source="gcloud", images=IMAGES)


def blocked_plan() -> CutoverPlan:
    gate = Gate(
        ok=False,
        checks=(
            Check("qpk-tag", True, "ok"),
            Check("platform-pins-ibkr", False, "requirements.txt pins UES v0.7.7 | @octocat <b>", "failed"),
        ),
    )
    # Same commit as configured but not ready: held as live, nothing changes on it.
    spec = CONFIG.services["schwab"]
    unready = from_knative_json(knative_for_spec(spec, {"STRATEGY_PROFILE": spec.strategy_profile}, ready=False), spec.service_name)
    live = {"ibkr": previous_release("ibkr", "global_etf_rotation"), "schwab": unready}
    # The longbridge-sg image was not proved to exist: creating it is blocked too.
    images = {
        **IMAGES,
        "longbridge-sg": ImageCheck("longbridge-sg", CONFIG.services["longbridge-sg"].image, "missing", "not in the registry"),
    }
    return build_plan(CONFIG, gate, live, FACTS, live_source="gcloud", images=images)


def test_passing_plan_verdict_first_then_a_row_per_service_with_phase_and_changes():
    plan = passing_plan()
    assert plan.ok and len(plan.services) == 4
    comment = render_comment(plan, render_text(plan))
    lines = visible(comment)
    assert lines[0] == MARKER and "✅ can proceed" in lines[1] and "BLOCKED" not in comment.split("<details>")[0]
    rows = {line.split(" ")[1]: line for line in lines if line.startswith("| ") and "(" in line.split("|")[1]}
    assert set(rows) == {"ibkr", "schwab", "longbridge-hk", "longbridge-sg"}
    assert "deploy-image, then switch-env" in rows["ibkr"] and "image 1111111 → ca6cae8; strategy env held" in rows["ibkr"]
    assert "| create |" in rows["longbridge-hk"] and "new service" in rows["longbridge-hk"]
    assert "A second `pulumi up` follows for ibkr, schwab" in comment
    assert len(lines) <= SCREEN_LINES and max(map(len, lines)) <= SCREEN_WIDTH
    # The full text plan is all there, collapsed below the summary.
    assert render_text(plan).rstrip() in comment and comment.rstrip().endswith("</details>")


def test_blocked_plan_says_why_before_the_table_and_holds_the_blocked_service():
    plan = blocked_plan()
    assert not plan.ok
    lines = visible(render_comment(plan, render_text(plan)))
    assert "❌ BLOCKED" in lines[1]
    table = lines.index("| service | phase | this `pulumi up` changes |")
    why = lines[2:table]
    assert any("gate FAIL: platform-pins-ibkr" in line for line in why)
    assert any(line.startswith("- schwab blocked:") for line in why)
    assert "- longbridge-sg image missing: not in the registry" in why
    schwab = next(line for line in lines[table:] if line.startswith("| schwab "))
    assert "| blocked |" in schwab and "nothing: held as live" in schwab
    assert len(lines) <= SCREEN_LINES and max(map(len, lines)) <= SCREEN_WIDTH


def test_untrusted_text_cannot_break_the_table_or_mention_anyone():
    comment = render_comment(blocked_plan())
    reason = next(line for line in comment.splitlines() if "platform-pins-ibkr" in line)
    assert "\\|" in reason and "@\u200boctocat" in reason and "&lt;b&gt;" in reason and "<b>" not in reason


def test_a_huge_full_plan_is_cut_below_githubs_limit_and_the_fence_holds():
    hostile = "```\n</details>\n" + "x" * 200_000
    comment = render_comment(passing_plan(), hostile)
    assert len(comment) <= MAX_COMMENT_CHARS and "(cut; run `python -m release plan`" in comment
    fence = comment.split("<details><summary>Full plan</summary>\n\n", 1)[1].split("text\n", 1)[0]
    assert len(fence) >= 4 and comment.rstrip().endswith(f"{fence}\n\n</details>")


def test_cli_markdown_format_prints_the_comment_and_exits_with_the_verdict(capsys, monkeypatch, tmp_path):
    import release.gate.checks
    import release.gate.lock
    import release.gate.selection

    verdicts = iter([PASSED, Gate(ok=False, checks=(Check("qpk-tag", False, "unreachable", "error"),), unverified=True, unreachable=True)])
    monkeypatch.setattr(release.gate.selection, "make_source", lambda kind, bundle, git_root, environ: object())
    monkeypatch.setattr(release.gate.checks, "run_gate", lambda config, source, lock=None: next(verdicts))
    monkeypatch.setattr(release.gate.lock, "read_lock", lambda path: None)
    images = str(write_images_dir(tmp_path / "images", [spec.image for spec in CONFIG.services.values()]))
    assert main(["plan", "--format", "markdown", "--images", images]) == 0
    out = capsys.readouterr().out
    # No --live: every service planned as new, which the verdict carries as a warning.
    assert out.startswith(MARKER) and "⚠️ can proceed, with 1 warning" in out.splitlines()[1] and "<details>" in out
    assert "no live state was read (no --live)" in out.split("<details>")[0]
    assert main(["plan", "--format", "markdown", "--images", images]) == 1
    out = capsys.readouterr().out
    assert "❌ BLOCKED" in out.splitlines()[1] and "gate unverified" in out
    # Markdown is the plan's format only.
    assert main(["check", "--format", "markdown"]) == 2


def test_a_row_names_the_settings_this_up_changes():
    # The config sets ingress; the live service runs with ingress=all: the row says so beside the image.
    spec = CONFIG.services["ibkr"]
    document = knative_for_spec(
        spec,
        {**spec.env, "STRATEGY_PROFILE": "global_etf_rotation", "IBKR_DRY_RUN_ONLY": "false"},
        commit=OLD,
        image=spec.image.rsplit(":", 1)[0] + ":" + OLD,
        secrets=dict(spec.secrets),
    )
    document["metadata"]["annotations"]["run.googleapis.com/ingress"] = "all"
    live = {"ibkr": from_knative_json(document, CONFIG.services["ibkr"].service_name)}
    services = {**CONFIG.services, "ibkr": CONFIG.services["ibkr"].model_copy(update={"ingress": "internal"})}
    plan = build_plan(CONFIG.model_copy(update={"services": services}), PASSED, live, FACTS, images=IMAGES)
    row = next(line for line in visible(render_comment(plan)) if line.startswith("| ibkr"))
    assert "image 1111111 → ca6cae8" in row and "settings ~ingress" in row


def test_settings_the_update_changes_are_named_in_the_row():
    plan = passing_plan()
    ibkr = next(s for s in plan.services if s.key == "ibkr")
    moved = dataclasses.replace(
        ibkr, settings_diff=(SettingChange("max_instances", 3, 1), SettingChange("traffic", "split", "latest 100%"))
    )
    rows = [
        line
        for line in render_comment(dataclasses.replace(plan, services=(moved, *plan.services[1:]))).splitlines()
        if line.startswith("| ibkr ")
    ]
    assert len(rows) == 1 and "strategy env held; settings ~max_instances ~traffic; env +ACCOUNT_GROUP" in rows[0]


def test_a_row_names_the_scheduler_job_fields_this_up_changes():
    from release.cutover.scheduling import from_job_json
    from tests.fixtures.live_json import scheduler_job

    live = {"ibkr": previous_release("ibkr", "global_etf_rotation"), "schwab": previous_release("schwab", "semiconductor_rotation_income")}
    jobs = {
        # IBKR's job still calls an old URL: this update retargets it; Schwab's job is already right.
        "ibkr": from_job_json(scheduler_job(CONFIG.services["ibkr"], url="https://old.a.run.app"), "j"),
        "schwab": from_job_json(scheduler_job(CONFIG.services["schwab"], url=live["schwab"].url), "j"),
    }
    plan = build_plan(CONFIG, PASSED, live, FACTS, live_source="gcloud", images=IMAGES, jobs=jobs)
    rows = {line.split(" ")[1]: line for line in visible(render_comment(plan)) if line.startswith("| ")}
    assert "strategy env held; job ~uri ~audience; env +" in rows["ibkr"]
    assert "job" not in rows["schwab"].split("|")[3]
    # Without the live jobs read, the row claims nothing about them.
    assert "job" not in render_comment(passing_plan()).split("<details>")[0].split("| ibkr", 1)[1].split("|")[2]
