"""release/cutover/plan.py: the plan over every service, its verdict, and steps from the first unmet release step."""

from __future__ import annotations

import json

from components.platforms import PLATFORMS
from release.cutover.live import from_knative_json
from release.cutover.plan import build_plan, gate_stage, render_text, to_json
from release.stack import load_stack_file
from tests.fixtures.gate_doubles import Check, Gate
from tests.fixtures.live_json import knative_for_spec, present_images, release_annotations
from tests.fixtures.profile_sources import profile_facts
from tests.fixtures.projects import SEED_STACK_FILE

CONFIG = load_stack_file(SEED_STACK_FILE)
FACTS = profile_facts(CONFIG)
OLD = "1111111111111111111111111111111111111111"
IMAGES = present_images(CONFIG.services)


PASSED = Gate(ok=True, checks=(Check("qpk-tag", True, "v0.7.10 -> abc"),))


def old_live(key: str, profile: str, tags=("v0.7.8", "v0.7.11")):
    spec = CONFIG.services[key]
    document = knative_for_spec(
        spec,
        {"STRATEGY_PROFILE": profile, "NOTIFY_LANG": "zh", "LEAKED_PASSWORD": "hunter2", PLATFORMS[spec.platform].dry_run_env: "false"},
        commit=OLD,
        image=spec.image.rsplit(":", 1)[0] + ":" + OLD,
        secrets={"TELEGRAM_TOKEN": "old-telegram-token:2"},
        annotations=release_annotations(*tags),
    )
    return from_knative_json(document, spec.service_name)


def test_without_live_every_service_is_created_and_the_plan_proceeds():
    plan = build_plan(CONFIG, PASSED, {}, FACTS, images=IMAGES)
    assert [s.phase for s in plan.services] == ["create"] * len(CONFIG.services)
    assert plan.ok
    data = to_json(plan)
    assert [s["key"] for s in data["services"]] == list(CONFIG.services)
    assert data["steps"][0]["action"].startswith("pulumi up: create ")


def test_forward_release_steps_deploy_first_then_switch():
    live = {"ibkr": old_live("ibkr", "global_etf_rotation")}
    data = to_json(build_plan(CONFIG, PASSED, live, FACTS, images=IMAGES))
    ibkr_steps = [step for step in data["steps"] if step["service"] == "ibkr"]
    assert ibkr_steps[0]["action"].startswith("pulumi up: deploy image ca6cae8 to interactive-brokers-quant-service")
    assert ibkr_steps[1]["action"].startswith("pulumi up again")
    assert "STRATEGY_PROFILE global_etf_rotation -> soxl_soxx_trend_income" in ibkr_steps[1]["action"]
    # Without the proved facts of the old image (its commit with UES v0.7.11) the old profile cannot be named
    # canonically: no guessed edit.
    assert ibkr_steps[0]["rollback"].startswith("revert the stack commit")
    assert "without the proved facts of the image that will run it" in ibkr_steps[0]["rollback"]
    assert ibkr_steps[0]["rollback_edits"] == []
    assert ibkr_steps[1]["rollback"] == "set services.ibkr.strategyProfile: global_etf_rotation and pulumi up"
    # All first updates come before any second update.
    stages = [step["stage"] for step in data["steps"]]
    assert stages.index("switch-env") > max(
        i for i, s in enumerate(stages) if s == "deploy-image" and data["steps"][i]["action"].startswith("pulumi up:")
    )


def test_json_has_the_documented_keys_and_never_secret_values():
    live = {"ibkr": old_live("ibkr", "global_etf_rotation")}
    data = to_json(build_plan(CONFIG, PASSED, live, FACTS, images=IMAGES))
    assert set(data) >= {"bundle", "gate", "services", "steps"}
    assert data["gate"]["ok"] is True and {"id", "ok", "message"} <= set(data["gate"]["checks"][0])
    ibkr = data["services"][0]
    assert {"key", "service", "phase", "strategy_profile", "input_mode"} <= set(ibkr)
    assert "TELEGRAM_TOKEN" in ibkr["env_diff"]["changed"] and "LEAKED_PASSWORD" in ibkr["env_diff"]["removed"]
    details = {d["name"]: d for d in ibkr["env_diff"]["details"]}
    assert details["TELEGRAM_TOKEN"]["after"] == "secret:interactive-brokers-telegram-token:latest"
    text = json.dumps(data) + render_text(build_plan(CONFIG, PASSED, live, FACTS, images=IMAGES))
    assert "hunter2" not in text


def test_failed_gate_blocks_and_steps_start_at_the_first_unmet_release_step():
    gate = Gate(
        ok=False,
        checks=(
            Check("qpk-tag", True, "ok"),
            Check("platform-pins-ibkr", False, "requirements.txt pins UES v0.7.7", "failed", "platform-pins"),
            Check("ues-pins-qpk", False, "UES v0.7.13 pins QPK v0.7.9", "failed", "tag-ues"),
        ),
    )
    plan = build_plan(CONFIG, gate, {}, FACTS)
    assert not plan.ok
    stages = [step.stage for step in plan.steps]
    assert stages[:2] == ["tag-ues", "platform-pins"]
    assert "UES v0.7.13 pins QPK v0.7.9" in plan.steps[0].action


def test_unverified_gate_names_what_would_verify_it():
    gate = Gate(ok=False, unverified=True, unreachable=True, checks=(Check("qpk-tag", False, "no network", "error"),))
    plan = build_plan(CONFIG, gate, {}, FACTS, gate_note="GitHub unreachable and no lock")
    assert not plan.ok and len(plan.services) == len(CONFIG.services)
    assert "GITHUB_TOKEN" in plan.steps[0].action and "--git-root" in plan.steps[0].action and "lock" in plan.steps[0].action
    assert "UNVERIFIED" in render_text(plan)


def test_blocked_service_blocks_the_plan_even_with_a_passing_gate():
    live = {"ibkr": old_live("ibkr", "tech_pullback_cash_buffer")}
    plan = build_plan(CONFIG, PASSED, live, FACTS, images=IMAGES)
    assert not plan.ok and [s.key for s in plan.blocked] == ["ibkr"]
    assert plan.steps[0].stage == "resolve" and plan.steps[0].service == "ibkr"


def test_rollback_is_labelled_and_env_first():
    spec = CONFIG.services["schwab"]
    live = from_knative_json(
        knative_for_spec(
            spec,
            {"STRATEGY_PROFILE": "tqqq_growth_income", "SCHWAB_DRY_RUN_ONLY": "true"},
            annotations=release_annotations("v0.7.10", "v0.7.13"),
        ),
        spec.service_name,
    )
    older = CONFIG.model_copy(
        update={
            "release": CONFIG.release.model_copy(update={"shorthand_qpk": "v0.7.8", "shorthand_ues": "v0.7.11"}),
            "services": {
                "schwab": spec.model_copy(
                    update={"commit": OLD, "image": spec.image.rsplit(":", 1)[0] + ":" + OLD, "strategy_profile": "hybrid_growth_income"}
                )
            },
        }
    )
    data = to_json(build_plan(older, PASSED, {"schwab": live}, FACTS, images=present_images(older.services)))
    service = data["services"][0]
    assert service["rollback"] is True and service["phase"] == "switch-env" and service["next_phase"] == "deploy-image"
    assert "rollback, env first" in data["steps"][0]["action"]
    assert data["steps"][1]["action"].startswith("pulumi up again") and "deploy image 1111111" in data["steps"][1]["action"]
    assert "(rollback)" in render_text(build_plan(older, PASSED, {"schwab": live}, FACTS, images=present_images(older.services)))


def test_services_absent_from_live_input_are_noted():
    plan = build_plan(CONFIG, PASSED, {}, FACTS, new_services=("schwab",))
    assert (
        "charles-schwab-quant-service is planned as new: --new schwab says it does not exist yet" in render_text(plan) and not plan.warnings
    )


def test_the_step_names_the_stage_the_gate_recorded_not_one_guessed_from_the_id():
    # pin-refs refused UES's own QPK pin: the cause is UES's release, whatever the check is called;
    # a platform's CI is the platform's step even though its id names no stage
    gate = Gate(
        ok=False,
        checks=(
            Check("platform-ci:schwab", False, "CharlesSchwabPlatform@a81a360 CI failed", "failed", "platform-pins"),
            Check("pin-refs", False, "UsEquityStrategies@v0.7.13 pins quant-platform-kit @main", "failed", "tag-ues"),
            Check("a-check-of-tomorrow", False, "no stage recorded", "failed"),
        ),
    )
    assert [gate_stage(check) for check in gate.checks] == ["platform-pins", "tag-ues", "verify-gate"]
    steps = build_plan(CONFIG, gate, {}, FACTS).steps
    assert [step.stage for step in steps[:3]] == ["verify-gate", "tag-ues", "platform-pins"]
    assert steps[1].action.startswith("pin QPK v0.7.10 in UES and tag UES v0.7.13: pin-refs: UsEquityStrategies@v0.7.13 pins")


def test_the_plan_shows_the_dry_run_flag_live_and_desired_raw_values():
    spec = CONFIG.services["ibkr"]
    unset = from_knative_json(knative_for_spec(spec, {"STRATEGY_PROFILE": "global_etf_rotation"}, commit=OLD), spec.service_name)
    plan = build_plan(CONFIG, PASSED, {"ibkr": unset, "schwab": old_live("schwab", "tqqq_growth_income")}, FACTS)
    services = {s["key"]: s for s in to_json(plan)["services"]}
    assert services["ibkr"]["dry_run"] == {"env": "IBKR_DRY_RUN_ONLY", "config": "keep", "live": None, "desired": None}
    assert services["ibkr"]["phase"] == "blocked" and "set `dryRunOnly: true` or `false`" in services["ibkr"]["reason"]
    assert services["schwab"]["dry_run"] == {"env": "SCHWAB_DRY_RUN_ONLY", "config": "keep", "live": "false", "desired": "false"}
    assert services["longbridge-hk"]["dry_run"]["live"] is None and services["longbridge-hk"]["dry_run"]["desired"] == "true"
    text = render_text(plan)
    assert "dry run: IBKR_DRY_RUN_ONLY live (unset) -> (unset) (dryRunOnly: keep)" in text
    assert 'dry run: SCHWAB_DRY_RUN_ONLY live "false" -> "false" (dryRunOnly: keep)' in text
    assert 'dry run: LONGBRIDGE_DRY_RUN_ONLY live (unset) -> "true" (dryRunOnly: keep)' in text


def test_without_images_a_plan_that_changes_an_image_is_blocked_and_says_how_to_verify():
    plan = build_plan(CONFIG, PASSED, {}, FACTS)
    assert not plan.ok and {s.key for s in plan.image_blocked} == set(CONFIG.services)
    data = to_json(plan)
    assert {s["image_check"]["status"] for s in data["services"]} == {"unverified"}
    resolve = [step for step in data["steps"] if step["stage"] == "resolve"]
    assert len(resolve) == len(CONFIG.services) and "--images" in resolve[0]["action"]
    assert "UNVERIFIED (blocks this plan: the image changes)" in render_text(plan)


def test_an_in_sync_service_needs_no_image_check():
    from components.env import desired_env

    spec = CONFIG.services["schwab"]
    env = desired_env(spec, FACTS.requirements(spec.strategy_profile, "schwab"), "true")
    tags = release_annotations(CONFIG.release.quant_platform_kit, CONFIG.release.us_equity_strategies)
    live = from_knative_json(knative_for_spec(spec, env, annotations=tags), spec.service_name)
    config = CONFIG.model_copy(update={"services": {"schwab": spec.model_copy(update={"dry_run_only": True})}})
    plan = build_plan(config, PASSED, {"schwab": live}, FACTS)
    assert plan.services[0].phase == "in-sync" and plan.ok


def test_a_missing_image_blocks_and_names_image_and_commit():
    images = dict(IMAGES)
    schwab = CONFIG.services["schwab"]
    from release.cutover.images import missing

    images["schwab"] = missing("schwab", schwab, "no describe document")
    plan = build_plan(CONFIG, PASSED, {}, FACTS, images=images)
    assert not plan.ok and [s.key for s in plan.image_blocked] == ["schwab"]
    step = plan.steps[0]
    assert step.stage == "resolve" and schwab.image in step.action and schwab.commit in step.action


def test_present_image_shows_digest_beside_tag_and_pruning_warning():
    plan = build_plan(CONFIG, PASSED, {}, FACTS, images=IMAGES)
    ibkr = to_json(plan)["services"][0]
    assert ibkr["image_check"]["deployed"] == IMAGES["ibkr"].resolved.deployed
    assert ibkr["image_check"]["tag"] == CONFIG.services["ibkr"].commit
    text = render_text(plan)
    assert f"digest:  {IMAGES['ibkr'].resolved.deployed} (tag {CONFIG.services['ibkr'].commit})" in text
    assert "prunes after every deploy" in text


def test_plan_shows_the_managed_job_and_lists_companion_jobs_as_held():
    from release.config import SchedulerSpec

    hk = CONFIG.services["longbridge-hk"].model_copy(update={"scheduler": SchedulerSpec(time_zone="Asia/Hong_Kong")})
    config = CONFIG.model_copy(update={"services": {**CONFIG.services, "longbridge-hk": hk}})
    plan = build_plan(config, PASSED, {}, FACTS, images=IMAGES)
    services = {s["key"]: s for s in to_json(plan)["services"]}
    ibkr = services["ibkr"]["scheduler"]
    assert ibkr["job"] == "interactive-brokers-quant-scheduler"
    assert ibkr["companions_held"] == ["interactive-brokers-quant-warmup-scheduler", "interactive-brokers-quant-precheck-scheduler"]
    assert ibkr["settings"]["attemptDeadline"] == {"config": None, "default": "330s"}
    assert services["longbridge-hk"]["scheduler"]["settings"]["timeZone"]["config"] == "Asia/Hong_Kong"
    text = render_text(plan)
    assert 'timeZone "Asia/Hong_Kong" (config)' in text
    assert 'schedule held from the live job, else "45 15 * * 1-5"' in text
    assert (
        "companion jobs held, not managed: charles-schwab-quant-probe-scheduler, charles-schwab-quant-precheck-scheduler, schwab-monitor-dispatcher-scheduler"
        in text
    )


def test_settings_diff_lists_what_this_up_changes_and_never_a_held_field():
    spec = CONFIG.services["ibkr"]
    document = knative_for_spec(spec, {"STRATEGY_PROFILE": "global_etf_rotation", "IBKR_DRY_RUN_ONLY": "true", "LEAKED_PASSWORD": "hunter2"}, commit=OLD,
                                image=spec.image.rsplit(":", 1)[0] + ":" + OLD)  # fmt: skip
    document["metadata"]["annotations"]["run.googleapis.com/ingress"] = "all"
    document["spec"]["template"]["spec"]["serviceAccountName"] = "hand@interactivebrokersquant.iam.gserviceaccount.com"
    live = {"ibkr": from_knative_json(document, spec.service_name)}
    # Nothing set in the config: ingress and account are held, so the diff is empty.
    held = to_json(build_plan(CONFIG, PASSED, live, FACTS, images=IMAGES))["services"][0]
    assert held["key"] == "ibkr" and held["settings_diff"] == []
    # The config sets ingress: exactly that field shows, live -> desired; the account stays held.
    services = {**CONFIG.services, "ibkr": spec.model_copy(update={"ingress": "internal"})}
    config = CONFIG.model_copy(update={"services": services})
    plan = build_plan(config, PASSED, live, FACTS, images=IMAGES)
    data = to_json(plan)["services"][0]
    assert data["settings_diff"] == [{"field": "ingress", "live": "INGRESS_TRAFFIC_ALL", "desired": "INGRESS_TRAFFIC_INTERNAL_ONLY"}]
    # The same function feeds the program: what the plan shows is what it registers.
    assert plan.services[0].applied_settings.ingress == "INGRESS_TRAFFIC_INTERNAL_ONLY"
    assert plan.services[0].applied_settings.service_account == "hand@interactivebrokersquant.iam.gserviceaccount.com"
    text = render_text(plan)
    assert '~ ingress: "INGRESS_TRAFFIC_ALL" -> "INGRESS_TRAFFIC_INTERNAL_ONLY"' in text
    # A credential-looking plain value is warned about, never printed.
    assert any("LEAKED_PASSWORD" in w and "Secret Manager" in w for w in data["warnings"])
    assert "hunter2" not in text and "hunter2" not in json.dumps(to_json(plan))


def test_a_service_still_deployed_by_its_platform_workflow_is_warned_about():
    spec = CONFIG.services["schwab"]
    document = knative_for_spec(spec, {"STRATEGY_PROFILE": "tqqq_growth_income", "SCHWAB_DRY_RUN_ONLY": "true"}, commit=OLD,
                                image=spec.image.rsplit(":", 1)[0] + ":" + OLD)  # fmt: skip
    document["spec"]["template"]["metadata"]["labels"]["managed-by"] = "github-actions"
    plan = build_plan(CONFIG, PASSED, {"schwab": from_knative_json(document, spec.service_name)}, FACTS, images=IMAGES)
    warnings = next(s for s in to_json(plan)["services"] if s["key"] == "schwab")["warnings"]
    warning = next(w for w in warnings if "managed-by=github-actions" in w)
    assert "QuantStrategyLab/CharlesSchwabPlatform" in warning
    assert "ENABLE_GITHUB_CLOUD_RUN_DEPLOY" in warning and "ENABLE_GITHUB_ENV_SYNC" in warning


def test_strategy_config_source_is_planned_from_the_facts_bundled_env_or_module_defaults():
    hk = CONFIG.services["longbridge-hk"]
    without_path = hk.snapshot.model_copy(update={"strategy_config_path": None})
    ibkr = CONFIG.services["ibkr"].model_copy(
        update={
            "strategy_profile": "qqq_tech_enhancement",
            "snapshot": without_path.model_copy(update={"feature_snapshot_path": "gs://b/s.csv"}),
        }
    )
    services = {**CONFIG.services, "longbridge-hk": hk.model_copy(update={"snapshot": without_path}), "ibkr": ibkr}
    config = CONFIG.model_copy(update={"services": services})
    plan = build_plan(config, PASSED, {}, profile_facts(config), images=IMAGES, facts_source="proved now from test")
    data = {s["key"]: s for s in to_json(plan)["services"]}
    # LongBridge's commit bundles no config: nothing is required, and without a path it runs module defaults.
    assert data["longbridge-hk"]["strategy_config"].startswith("module defaults")
    hk_plan = next(s for s in plan.services if s.key == "longbridge-hk")
    assert "LONGBRIDGE_STRATEGY_CONFIG_PATH" not in hk_plan.desired.env.plain and hk_plan.phase == "create"
    # IBKR's commit has the file the catalog names: the bundled config is what runs.
    assert data["ibkr"]["strategy_config"] == "bundled research/configs/growth_pullback_tech_pullback_cash_buffer.json"
    assert data["schwab"]["strategy_config"] is None and data["schwab"]["input_mode"] == "direct_runtime"
    # The prod stack sets a path on longbridge-hk: that is what the plan says it reads.
    prod = {s["key"]: s for s in to_json(build_plan(CONFIG, PASSED, {}, FACTS, images=IMAGES))["services"]}
    assert prod["longbridge-hk"]["strategy_config"].startswith("config path gs://")
    text = render_text(plan)
    assert "Profile facts: proved now from test" in text
    assert "profile: qqq_tech_enhancement (snapshot_backed), strategy config: module defaults" in text


def test_without_facts_every_service_is_blocked_and_the_plan_says_why():
    plan = build_plan(CONFIG, PASSED, {}, None, images=IMAGES)
    assert {s.phase for s in plan.services} == {"blocked"} and not plan.ok
    assert all("with QPK v0.7.10, UES v0.7.13 are not proved" in s.reason for s in plan.services)
    assert "Profile facts: NOT PROVED" in render_text(plan)


def test_with_the_live_jobs_the_plan_shows_what_this_update_changes_on_each():
    from release.cutover.scheduling import from_job_json
    from tests.fixtures.live_json import scheduler_job

    ibkr, schwab = CONFIG.services["ibkr"], CONFIG.services["schwab"]
    live = {"ibkr": old_live("ibkr", "global_etf_rotation"), "schwab": old_live("schwab", "tqqq_growth_income")}
    jobs = {
        # IBKR's job still calls an old URL: this update retargets it, its schedule is held.
        "ibkr": from_job_json(scheduler_job(ibkr, url="https://old.a.run.app", schedule="50 15 * * 1-5", deadline="330s"), "j"),
        "schwab": from_job_json(scheduler_job(schwab, url=live["schwab"].url), "j"),
    }
    plan = build_plan(CONFIG, PASSED, live, FACTS, images=IMAGES, jobs=jobs)
    services = {s["key"]: s["scheduler"]["this_update"] for s in to_json(plan)["services"]}
    assert services["ibkr"]["action"] == "update"
    assert {c["field"]: (c["live"], c["desired"]) for c in services["ibkr"]["changes"]} == {
        "uri": ("https://old.a.run.app/run", f"{live['ibkr'].url}/run"),
        "audience": ("https://old.a.run.app", live["ibkr"].url),
    }
    assert services["schwab"] == {"action": "no change", "changes": []}
    created = services["longbridge-hk"]
    assert created["action"] == "create" and {"field": "schedule", "live": None, "desired": "45 15 * * 1-5"} in created["changes"]
    text = render_text(plan)
    assert "job this update: update" in text and '~ uri: "https://old.a.run.app/run" ->' in text
    assert "not shown (pass --scheduler" in render_text(build_plan(CONFIG, PASSED, live, FACTS, images=IMAGES))


def test_a_blocked_services_job_is_held():
    from release.cutover.scheduling import from_job_json
    from tests.fixtures.live_json import scheduler_job

    live = {"ibkr": old_live("ibkr", "tech_pullback_cash_buffer")}
    jobs = {"ibkr": from_job_json(scheduler_job(CONFIG.services["ibkr"], state="PAUSED"), "j")}
    plan = build_plan(CONFIG, PASSED, live, FACTS, images=IMAGES, jobs=jobs)
    assert plan.services[0].phase == "blocked"
    assert to_json(plan)["services"][0]["scheduler"]["this_update"] == {"action": "held", "changes": []}
