"""The program under Pulumi mocks: the runtime target it owns, and `enabled` pausing and resuming the job.

Live state comes from the mocked `getService` and the mocked scheduler read; what is asserted is what the
program registers (the Cloud Run service's env, the scheduler job's `paused`).
"""

from __future__ import annotations

import json
from typing import Any, Mapping

import pulumi

from components.program import deploy
from release.config import StackConfig
from release.cutover.live import from_cloud_run_v2
from release.cutover.plan import build_plan, render_text
from release.stack import load_stack_file
from tests.fixtures.cloud_run_v2 import get_service_result
from tests.fixtures.live_json import scheduler_job
from tests.fixtures.profile_sources import profile_facts
from tests.fixtures.projects import SEED_STACK_FILE
from tests.fixtures.pulumi_mocks import CutoverMocks, ProgramRun, program_config, run_main, run_under_mocks, service_env
from tests.test_env import target
from tests.test_runtime_target import RELEASE_RAW, SERVICES_RAW

CONFIG = load_stack_file(SEED_STACK_FILE)
SCHWAB = CONFIG.services["schwab"]
PLACE = (SCHWAB.project, SCHWAB.region, SCHWAB.service_name)
JOB_PLACE = (SCHWAB.project, SCHWAB.region, "charles-schwab-quant-scheduler")
JOB_TYPE = "gcp:cloudscheduler/job:Job"
SECRETS = {name: (ref.secret, ref.version) for name, ref in SCHWAB.secrets.items()}
# The override: another strategy, trading live, in the variable the runtime reads first.
OVERRIDE = json.dumps(
    {"platform_id": "schwab", "strategy_profile": "soxl_soxx_trend_income", "dry_run_only": False, "execution_mode": "live"}
)


def with_schwab(**fields: Any) -> StackConfig:
    return CONFIG.model_copy(update={"services": {**CONFIG.services, "schwab": SCHWAB.model_copy(update=fields)}})


def schwab_live(commit: str = SCHWAB.commit, env: Mapping[str, str] = {}) -> dict[str, Any]:
    """Schwab as its own workflow left it: the configured profile, dry, an old-style target."""
    plain = {
        "GLOBAL_TELEGRAM_CHAT_ID": SCHWAB.env["GLOBAL_TELEGRAM_CHAT_ID"],
        "NOTIFY_LANG": "zh",
        "STRATEGY_PROFILE": "tqqq_growth_income",
        "SCHWAB_DRY_RUN_ONLY": "true",
        "RUNTIME_TARGET_JSON": json.dumps({"platform_id": "schwab", "strategy_profile": "tqqq_growth_income", "dry_run_only": True}),
        **env,
    }
    image = SCHWAB.image.rsplit(":", 1)[0] + f":{commit}"
    return get_service_result(PLACE, image, commit, plain, SECRETS, "charles-schwab-quant-service-00009-abc")


def run(config: StackConfig = CONFIG, **mocks: Any) -> ProgramRun:
    result = run_under_mocks(lambda: deploy(config, profile_facts(config)), mocks=CutoverMocks(**mocks))
    assert result.error is None, result.error
    return result


def schwab_job(result: ProgramRun) -> Mapping[str, Any]:
    return {r.name: r for r in result.of_type(JOB_TYPE)}["schwab-scheduler"].inputs


def test_enabled_false_writes_the_flag_and_registers_the_job_paused():
    result = run(with_schwab(enabled=False), live={PLACE: schwab_live()}, jobs={JOB_PLACE: scheduler_job(SCHWAB)})
    env = service_env(result.services()["schwab"].inputs)
    assert env["RUNTIME_TARGET_ENABLED"] == "false"
    assert schwab_job(result)["paused"] is True
    # The others stay enabled, their jobs running.
    assert service_env(result.services()["ibkr"].inputs)["RUNTIME_TARGET_ENABLED"] == "true"


def test_enabled_true_resumes_a_paused_job_and_plan_says_so():
    paused = scheduler_job(SCHWAB, state="PAUSED")
    live = {PLACE: schwab_live(env={"RUNTIME_TARGET_ENABLED": "false"})}
    result = run(live=live, jobs={JOB_PLACE: paused})
    assert schwab_job(result)["paused"] is False
    assert service_env(result.services()["schwab"].inputs)["RUNTIME_TARGET_ENABLED"] == "true"
    from release.cutover.scheduling import from_job_json

    plan = build_plan(
        CONFIG, None, {"schwab": from_cloud_run_v2(live[PLACE])}, profile_facts(CONFIG), jobs={"schwab": from_job_json(paused, "j")}
    )
    text = render_text(plan)
    assert "~ paused: true -> false (enabled: true resumes it; scheduler.paused: true keeps it paused)" in text
    assert "~ RUNTIME_TARGET_ENABLED: false -> true" in text


def test_the_switch_removes_a_live_override_and_writes_the_complete_target():
    live = {PLACE: schwab_live(env={"QSL_RUNTIME_TARGET_JSON": OVERRIDE})}
    result = run(live=live)
    env = service_env(result.services()["schwab"].inputs)
    assert "QSL_RUNTIME_TARGET_JSON" not in env
    assert env["RUNTIME_TARGET_JSON"] == target("schwab", "tqqq_growth_income", SCHWAB.service_name, dry=True)
    assert result.outputs["schwab"]["phase"] == "switch-env"


def test_plan_shows_what_the_override_really_runs_and_its_removal():
    live = from_cloud_run_v2(schwab_live(env={"QSL_RUNTIME_TARGET_JSON": OVERRIDE}))
    plan = build_plan(CONFIG, None, {"schwab": live}, profile_facts(CONFIG))
    text = render_text(plan)
    assert "runs now: soxl_soxx_trend_income, LIVE trading (QSL_RUNTIME_TARGET_JSON)" in text
    assert (
        "QSL_RUNTIME_TARGET_JSON on charles-schwab-quant-service overrides RUNTIME_TARGET_JSON: the service runs "
        "soxl_soxx_trend_income, LIVE trading (QSL_RUNTIME_TARGET_JSON) (another strategy than strategyProfile "
        "tqqq_growth_income, LIVE trading)"
    ) in text
    assert "      - QSL_RUNTIME_TARGET_JSON" in text
    schwab = next(s for s in plan.services if s.key == "schwab")
    assert schwab.live_profile == "soxl_soxx_trend_income"
    assert "STRATEGY_PROFILE soxl_soxx_trend_income -> tqqq_growth_income" in schwab.reason


def test_an_image_rollout_holds_the_override_until_the_env_switch():
    # Live on an older commit: image first, every strategy name (the override and the enabled flag included) held.
    older = "f" * 40
    live = {PLACE: schwab_live(commit=older, env={"QSL_RUNTIME_TARGET_JSON": OVERRIDE, "RUNTIME_TARGET_ENABLED": "false"})}
    result = run(live=live)
    assert result.outputs["schwab"]["phase"] == "deploy-image"
    env = service_env(result.services()["schwab"].inputs)
    assert env["QSL_RUNTIME_TARGET_JSON"] == OVERRIDE and env["RUNTIME_TARGET_ENABLED"] == "false"


def test_an_override_in_the_stack_registers_nothing():
    services = json.loads(json.dumps(SERVICES_RAW))
    services["schwab"]["env"]["QSL_RUNTIME_TARGET_JSON"] = OVERRIDE
    result = run_main(program_config(RELEASE_RAW, services))
    assert isinstance(result.error, pulumi.RunError)
    assert "services.schwab.env.QSL_RUNTIME_TARGET_JSON: is set by the program" in str(result.error)
    assert result.resources == []


def test_the_deploy_workflow_warning_names_every_switch_and_longbridges_environments():
    hk = CONFIG.services["longbridge-hk"]
    plain = {"STRATEGY_PROFILE": hk.strategy_profile, "LONGBRIDGE_DRY_RUN_ONLY": "true"}
    live = get_service_result(
        (hk.project, hk.region, hk.service_name), hk.image, hk.commit, plain, {}, "rev-1", template_labels={"managed-by": "github-actions"}
    )
    plan = build_plan(CONFIG, None, {"longbridge-hk": from_cloud_run_v2(live)}, profile_facts(CONFIG))
    warning = next(w for s in plan.services if s.key == "longbridge-hk" for w in s.warnings if "managed-by=github-actions" in w)
    for switch in (
        "ENABLE_GITHUB_CLOUD_RUN_DEPLOY",
        "ENABLE_GITHUB_ENV_SYNC",
        "ENABLE_MAIN_PUSH_CLOUD_RUN_AUTOMATION",
        "QSL_ENABLE_CLOUD_RUN_AUTOMATION",
    ):
        assert switch in warning
    assert "QSL_ENABLE_CLOUD_RUN_AUTOMATION, when set, overrides ENABLE_MAIN_PUSH_CLOUD_RUN_AUTOMATION" in warning
    assert "longbridge-paper, longbridge-hk, longbridge-sg" in warning


def test_verify_wants_a_disabled_services_job_paused():
    from release.cutover.scheduling import from_job_json, from_policy_json, scheduler_checks
    from tests.fixtures.live_json import iam_policy

    disabled = SCHWAB.model_copy(update={"enabled": False})
    live = from_cloud_run_v2(schwab_live())
    member = "serviceAccount:schwab-platform-scheduler@charlesschwabquant.iam.gserviceaccount.com"
    policy = {"schwab": from_policy_json(iam_policy({"roles/run.invoker": [member]}), "iam")}
    for state, spec, ok in (("ENABLED", disabled, False), ("PAUSED", disabled, True), ("PAUSED", SCHWAB, False), ("ENABLED", SCHWAB, True)):
        job = from_job_json(scheduler_job(spec, state=state, url=live.url), "job")
        check = scheduler_checks(spec, live, {"schwab": job}, policy, "schwab")[0]
        assert (check.id, check.ok) == ("scheduler-job", ok), (state, spec.enabled, check.message)
        if not ok and not spec.enabled:
            assert "must be PAUSED; pulumi up pauses it" in check.message
