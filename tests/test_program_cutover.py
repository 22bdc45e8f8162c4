"""The real `__main__.py` as a cutover: live state comes from a mocked `getService`, and each `pulumi up`
changes only what the phase rule allows.

A forward release takes two runs: the first deploys the new image with the live strategy env held, the
second (live now at the new commit, confirmed) switches the env; a third finds the service in sync.
"""

from __future__ import annotations

from typing import Any, Mapping

from components.ownership import RELEASE_RECORD_ANNOTATION
from components.platforms import COMMIT_LABEL
from tests.fixtures.cloud_run_v2 import get_service_result, live_from_registered
from tests.fixtures.projects import SEED_STACK_FILE
from tests.fixtures.pulumi_mocks import CutoverMocks, ProgramRun, deployed_image, run_main, service_env
from tests.test_env import target
from tests.test_program import SERVICES, expected_registered_env

IBKR = SERVICES["ibkr"]
BASELINE = "f4496da" + "0" * 33

BASELINE_IMAGE = IBKR["image"].rsplit(":", 1)[0] + f":{BASELINE}"
SNAPSHOT = "gs://qsl-runtime-logs-interactivebrokersquant/strategy-artifacts/us_equity/russell/snapshot.csv"

# The IBKR service as the hand-run deploy scripts left it: older image, a snapshot-backed profile, no
# release annotations (this program never deployed it), trading live.
BASELINE_ENV = {
    "ACCOUNT_GROUP": "default",
    "IB_ACCOUNT_GROUP_CONFIG_SECRET_NAME": "ibkr-account-groups",
    "GLOBAL_TELEGRAM_CHAT_ID": IBKR["env"]["GLOBAL_TELEGRAM_CHAT_ID"],
    "NOTIFY_LANG": "zh",
    "STRATEGY_PROFILE": "russell_1000_multi_factor_defensive",
    "IBKR_FEATURE_SNAPSHOT_PATH": SNAPSHOT,
    "IBKR_DRY_RUN_ONLY": "false",
}


def live_after(run: ProgramRun, key: str, revision: str) -> dict[str, Any]:
    """The live service once Cloud Run has rolled out what `run` registered for `key`, ready at 100%."""
    return live_from_registered(run.services()[key].inputs, revision)


def ibkr_key() -> tuple[str, str, str]:
    return (IBKR["project"], IBKR["region"], IBKR["serviceName"])


def baseline_live(env: Mapping[str, str] = BASELINE_ENV, **settings: Any) -> dict[str, Any]:
    return get_service_result(
        ibkr_key(),
        BASELINE_IMAGE,
        BASELINE,
        env,
        {"TELEGRAM_TOKEN": ("interactive-brokers-telegram-token", "latest")},
        revision="interactive-brokers-quant-service-00041-abc",
        **settings,
    )


def run_with_live(live: Mapping[tuple[str, str, str], dict]) -> ProgramRun:
    run = run_main(mocks=CutoverMocks(live=live))
    assert run.error is None, run.error
    return run


def test_forward_release_deploys_the_image_first_then_switches_env(github_api):
    # Run 1: the image changes; every strategy, input-mode and dry-run var stays exactly as live.
    first = run_with_live({ibkr_key(): baseline_live()})
    ibkr = first.services()["ibkr"].inputs
    assert first.outputs["ibkr"]["phase"] == "deploy-image"
    assert ibkr["template"]["containers"][0]["image"] == deployed_image(IBKR["image"])
    assert ibkr["template"]["labels"] == {COMMIT_LABEL: IBKR["commit"]}
    env = service_env(ibkr)
    assert env["STRATEGY_PROFILE"] == "russell_1000_multi_factor_defensive"
    assert env["IBKR_FEATURE_SNAPSHOT_PATH"] == SNAPSHOT
    assert "RUNTIME_TARGET_JSON" not in env and env["IBKR_DRY_RUN_ONLY"] == "false"
    assert env["TELEGRAM_TOKEN"] == ("secret", "interactive-brokers-telegram-token", "latest")
    assert ibkr["template"]["annotations"] == {RELEASE_RECORD_ANNOTATION: f"{IBKR['commit']} v0.7.10 v0.7.13"}
    # The services with no live state are created whole in the same run.
    assert {key: first.outputs[key]["phase"] for key in ("schwab", "longbridge-hk", "longbridge-sg")} == {
        "schwab": "create",
        "longbridge-hk": "create",
        "longbridge-sg": "create",
    }

    # Run 2: live now runs the new commit, ready at 100%: the env switches, the image stays.
    second = run_with_live({ibkr_key(): live_after(first, "ibkr", "interactive-brokers-quant-service-00042-new")})
    ibkr = second.services()["ibkr"].inputs
    assert second.outputs["ibkr"]["phase"] == "switch-env"
    assert ibkr["template"]["containers"][0]["image"] == deployed_image(IBKR["image"])
    env = service_env(ibkr)
    # keep: the live flag "false" is held exactly, and RUNTIME_TARGET_JSON says live from that explicit value.
    expected = {
        **expected_registered_env("ibkr"),
        "IBKR_DRY_RUN_ONLY": "false",
        "RUNTIME_TARGET_JSON": target("ibkr", "soxl_soxx_trend_income", IBKR["serviceName"], dry=False),
    }
    assert env == expected
    assert not any(name.startswith("IBKR_FEATURE_SNAPSHOT") for name in env)

    # Run 3: nothing left to change.
    third = run_with_live({ibkr_key(): live_after(second, "ibkr", "interactive-brokers-quant-service-00043-env")})
    assert third.outputs["ibkr"]["phase"] == "in-sync"
    assert third.services()["ibkr"].inputs == second.services()["ibkr"].inputs


def test_keep_over_an_unset_live_flag_blocks_the_service_and_changes_nothing_about_it(github_api):
    unset = baseline_live({name: value for name, value in BASELINE_ENV.items() if name != "IBKR_DRY_RUN_ONLY"})
    run = run_with_live({ibkr_key(): unset})
    assert run.outputs["ibkr"]["phase"] == "blocked"
    ibkr = run.services()["ibkr"].inputs
    assert ibkr["template"]["containers"][0]["image"] == BASELINE_IMAGE  # not even the image moves
    env = service_env(ibkr)
    assert "IBKR_DRY_RUN_ONLY" not in env and "RUNTIME_TARGET_JSON" not in env
    assert env["STRATEGY_PROFILE"] == "russell_1000_multi_factor_defensive"
    # The other services, all new, still start dry.
    for key in ("schwab", "longbridge-hk", "longbridge-sg"):
        assert run.outputs[key]["phase"] == "create"
        created = service_env(run.services()[key].inputs)
        assert created[f"{SERVICES[key]['platform'].upper()}_DRY_RUN_ONLY"] == "true"
        assert '"dry_run_only":true' in created["RUNTIME_TARGET_JSON"]


def test_new_image_not_yet_serving_holds_the_service_as_live(github_api):
    first = run_with_live({ibkr_key(): baseline_live()})
    rolled_out = live_after(first, "ibkr", "interactive-brokers-quant-service-00042-new")
    # The new revision exists but is not ready: the old one still takes the traffic.
    rolled_out["latestReadyRevision"] = rolled_out["latestReadyRevision"].replace("00042-new", "00041-abc")
    run = run_with_live({ibkr_key(): rolled_out})
    assert run.outputs["ibkr"]["phase"] == "blocked"
    env = service_env(run.services()["ibkr"].inputs)
    assert env["STRATEGY_PROFILE"] == "russell_1000_multi_factor_defensive"
    assert env["IBKR_FEATURE_SNAPSHOT_PATH"] == SNAPSHOT


def test_a_live_read_that_fails_for_another_reason_stops_the_run(github_api):
    class BrokenLive(CutoverMocks):
        def call(self, args):
            if args.token.endswith("getService"):
                from tests.fixtures.pulumi_mocks import ProviderInvokeError

                raise ProviderInvokeError("googleapi: Error 403: permission denied on run.services.get")
            return super().call(args)

    run = run_main(mocks=BrokenLive())
    assert run.error is not None
    assert "permission denied" in str(run.error)
    assert run.services() == {}


def test_exported_phase_matches_the_offline_plan(github_api):
    # The program and `python -m release plan` share plan_service: the same live state gives the same phase.
    from release.cutover.live import from_cloud_run_v2
    from release.cutover.ordering import plan_service
    from release.stack import load_stack_file
    from tests.fixtures.profile_sources import profile_facts

    config = load_stack_file(SEED_STACK_FILE)
    live_doc = baseline_live()
    run = run_with_live({ibkr_key(): live_doc})
    snake = {
        "name": live_doc["name"],
        "project": live_doc["project"],
        "location": live_doc["location"],
        "annotations": {},
        "templates": [
            {
                "labels": {COMMIT_LABEL: BASELINE},
                "containers": [
                    {
                        "image": BASELINE_IMAGE,
                        "envs": [{"name": k, "value": v} for k, v in BASELINE_ENV.items()],
                    }
                ],
            }
        ],
        "latest_created_revision": live_doc["latestCreatedRevision"],
        "latest_ready_revision": live_doc["latestReadyRevision"],
        "terminal_conditions": [{"type": "Ready", "state": "CONDITION_SUCCEEDED"}],
        "traffic_statuses": [{"type": "TRAFFIC_TARGET_ALLOCATION_TYPE_LATEST", "percent": 100}],
    }
    offline = plan_service("ibkr", config.services["ibkr"], config.release, from_cloud_run_v2(snake), profile_facts(config))
    assert run.outputs["ibkr"]["phase"] == offline.phase == "deploy-image"


def test_project_not_found_or_denied_is_not_a_missing_service(github_api):
    # GCP's access error contains "not found"; reading it as "no such service" would plan a create.
    class NoProject(CutoverMocks):
        def call(self, args):
            if args.token.endswith("getService"):
                from tests.fixtures.pulumi_mocks import ProviderInvokeError

                raise ProviderInvokeError("googleapi: Error 403: Project 'interactivebrokersquant' not found or permission denied.")
            return super().call(args)

    run = run_main(mocks=NoProject())
    assert run.error is not None and "not found or permission denied" in str(run.error)
    assert run.services() == {}


def test_a_malformed_get_service_answer_is_a_run_error_not_a_traceback(github_api):
    import pulumi

    live = baseline_live()
    # Well-typed for the SDK, malformed for the reader: an env entry with a value and no name.
    live["templates"][0]["containers"][0]["envs"].append({"value": "123456789:AAHsecretbotTOKEN"})
    run = run_main(mocks=CutoverMocks({ibkr_key(): live}))
    assert isinstance(run.error, pulumi.RunError), repr(run.error)
    assert "get_service(projects/interactivebrokersquant/locations/us-central1/services/interactive-brokers-quant-service)" in str(
        run.error
    )
    assert "AAHsecretbotTOKEN" not in str(run.error)
    assert run.services() == {}


def test_a_missing_image_stops_the_run_before_anything_is_registered(github_api):
    schwab = SERVICES["schwab"]
    run = run_main(mocks=CutoverMocks(live={ibkr_key(): baseline_live()}, missing_images=frozenset({schwab["image"]})))
    assert run.error is not None
    message = str(run.error)
    assert schwab["image"] in message and schwab["commit"] in message and "services.schwab.image" in message
    # Only the providers the lookups ran on exist; no service of any key was registered.
    assert {resource.type for resource in run.resources} == {"pulumi:providers:gcp"}


def test_any_other_image_lookup_error_stops_the_run_too(github_api):
    class Denied(CutoverMocks):
        def call(self, args):
            if args.token.endswith("getDockerImage"):
                from tests.fixtures.pulumi_mocks import ProviderInvokeError

                self.calls.append(args)
                raise ProviderInvokeError("googleapi: Error 403: artifactregistry.dockerimages.get denied")
            return super().call(args)

    run = run_main(mocks=Denied())
    assert run.error is not None and "403" in str(run.error)
    assert run.services() == {}


def test_a_present_image_is_deployed_by_digest_with_its_tag_beside_it(github_api):
    run = run_with_live({ibkr_key(): baseline_live()})
    lookups = [call.args for call in run.calls if call.token.endswith("getDockerImage")]
    assert {args["imageName"] for args in lookups} >= {f"interactivebrokersplatform/cloud-run:{IBKR['commit']}"}
    ibkr_lookup = next(args for args in lookups if args["project"] == IBKR["project"])
    assert (ibkr_lookup["location"], ibkr_lookup["repositoryId"]) == ("us-central1", "cloud-run-source-deploy")
    image = run.services()["ibkr"].inputs["template"]["containers"][0]["image"]
    assert image == deployed_image(IBKR["image"]) and "@sha256:" in image
    assert run.outputs["ibkr"]["image"] == image and run.outputs["ibkr"]["imageTag"] == IBKR["commit"]


def test_another_image_under_the_configured_commit_label_is_replaced_not_kept(github_api):
    # The label names the configured commit, but the live image comes from another project's registry:
    # the program deploys the configured image (by digest) first, env held, instead of keeping what runs.
    foreign = IBKR["image"].replace("/interactivebrokersquant/", "/someoneelse/")
    first = run_with_live({ibkr_key(): baseline_live()})
    live = live_after(first, "ibkr", "interactive-brokers-quant-service-00042-new")
    live["templates"][0]["containers"][0]["image"] = foreign
    run = run_with_live({ibkr_key(): live})
    assert run.outputs["ibkr"]["phase"] == "deploy-image"
    assert run.services()["ibkr"].inputs["template"]["containers"][0]["image"] == deployed_image(IBKR["image"])
