"""The real `__main__.py` against a hand-deployed IBKR service: everything the program does not own is
registered at its live value in every phase, and a blocked service is registered exactly as live.

Live state comes from a mocked `getService` in the provider's own shape (camelCase, nested lists); what a
run registered is turned back into that shape (`live_from_registered`) and read by the same reader, so
"held" is checked as "the live service after this update reads the same".
"""

from __future__ import annotations

from typing import Any

import pulumi

from components.ownership import RELEASE_RECORD_ANNOTATION
from components.platforms import COMMIT_LABEL
from release.cutover.live import from_cloud_run_v2
from tests.fixtures.cloud_run_v2 import BY_REVISION, LATEST, get_service_result, live_from_registered
from tests.fixtures.pulumi_mocks import CutoverMocks, ProgramRun, ProviderInvokeError, deployed_image, run_main, service_env
from tests.test_program import SERVICES

IBKR = SERVICES["ibkr"]
KEY = (IBKR["project"], IBKR["region"], IBKR["serviceName"])
OLD = "f4496da" + "0" * 33
OLD_IMAGE = IBKR["image"].rsplit(":", 1)[0] + f":{OLD}"
TOKEN = ("interactive-brokers-telegram-token", "latest")
SECRET_SIG = "4dabf18193072939515e22adb298388d"

# What the hand deploy left behind, none of it in the stack config.
HAND_SETTINGS: dict[str, Any] = {
    "service_account": "ib-runner@interactivebrokersquant.iam.gserviceaccount.com",
    "ingress": "INGRESS_TRAFFIC_ALL",
    "vpc_accesses": [
        {
            "connector": "",
            "egress": "PRIVATE_RANGES_ONLY",
            "networkInterfaces": [{"network": "default", "subnetwork": "cloudrun-direct-egress", "tags": ["ib-gateway"]}],
        }
    ],
    "scalings": [{"minInstanceCount": 1, "maxInstanceCount": 2}],
    "volumes": [
        {
            "name": "ib-config",
            "secrets": [{"secret": "ibkr-account-groups", "defaultMode": 0, "items": [{"path": "groups.json", "version": "3", "mode": 0}]}],
            "emptyDirs": [],
        }
    ],
    "volume_mounts": [{"name": "ib-config", "mountPath": "/etc/ib"}],
    "template_labels": {"managed-by": "hand", "team": "trading"},
    "concurrency": 1,
}
LIVE_ENV = {
    "ACCOUNT_GROUP": "default",
    "IB_ACCOUNT_GROUP_CONFIG_SECRET_NAME": "ibkr-account-groups",
    "GLOBAL_TELEGRAM_CHAT_ID": IBKR["env"]["GLOBAL_TELEGRAM_CHAT_ID"],
    "NOTIFY_LANG": "zh",
    "STRATEGY_PROFILE": "global_etf_rotation",
    "IBKR_DRY_RUN_ONLY": "true",
}


def hand_deployed(commit: str = OLD, image: str = OLD_IMAGE, env: dict = LIVE_ENV, **bend: Any) -> dict[str, Any]:
    return get_service_result(KEY, image, commit, env, {"TELEGRAM_TOKEN": TOKEN}, "ibq-00041-abc", **{**HAND_SETTINGS, **bend})


def run_with(live: dict[str, Any]) -> ProgramRun:
    run = run_main(mocks=CutoverMocks(live={KEY: live}))
    assert run.error is None, run.error
    return run


def read(document: dict[str, Any]):
    return from_cloud_run_v2(document, source="test")


def assert_settings_held(run: ProgramRun, live: dict[str, Any]) -> None:
    registered = run.services()["ibkr"].inputs
    after = read(live_from_registered(registered, "ibq-00099-new"))
    assert after.settings == read(live).settings
    template = registered["template"]
    # The facts behind that equality, as the provider receives them.
    assert template["serviceAccount"] == HAND_SETTINGS["service_account"]
    assert registered["ingress"] == "INGRESS_TRAFFIC_ALL"
    assert template["vpcAccess"] == {
        "egress": "PRIVATE_RANGES_ONLY",
        "networkInterfaces": [{"network": "default", "subnetwork": "cloudrun-direct-egress", "tags": ["ib-gateway"]}],
    }
    assert template["scaling"] == {"minInstanceCount": 1, "maxInstanceCount": 2}
    assert template["volumes"] == [
        {"name": "ib-config", "secret": {"secret": "ibkr-account-groups", "items": [{"path": "groups.json", "version": "3"}]}}
    ]
    assert template["containers"][0]["volumeMounts"] == [{"name": "ib-config", "mountPath": "/etc/ib"}]
    assert {k: v for k, v in template["labels"].items() if k != COMMIT_LABEL} == {"managed-by": "hand", "team": "trading"}


def test_every_live_setting_is_held_through_deploy_image_switch_env_and_in_sync(github_api):
    live = hand_deployed()
    first = run_with(live)
    assert first.outputs["ibkr"]["phase"] == "deploy-image"
    assert first.services()["ibkr"].inputs["template"]["containers"][0]["image"] == deployed_image(IBKR["image"])
    assert_settings_held(first, live)

    second_live = live_from_registered(first.services()["ibkr"].inputs, "ibq-00042-img")
    second = run_with(second_live)
    assert second.outputs["ibkr"]["phase"] == "switch-env"
    assert service_env(second.services()["ibkr"].inputs)["STRATEGY_PROFILE"] == "soxl_soxx_trend_income"
    assert_settings_held(second, live)

    third_live = live_from_registered(second.services()["ibkr"].inputs, "ibq-00043-env")
    third = run_with(third_live)
    assert third.outputs["ibkr"]["phase"] == "in-sync"
    assert third.services()["ibkr"].inputs == second.services()["ibkr"].inputs
    assert_settings_held(third, live)


def test_a_canary_split_at_the_config_commit_is_blocked_and_registered_exactly_as_live(github_api):
    # The new revision serves 10%, the old one 90%: not confirmed live, so nothing may change, least of
    # all the split (registering "latest 100" would promote the unverified revision).
    split = [
        {"type": BY_REVISION, "revision": "ibq-00040-old", "percent": 90, "tag": ""},
        {"type": LATEST, "revision": "", "percent": 10, "tag": "canary"},
    ]
    env = {**LIVE_ENV, "STRATEGY_PROFILE": "soxl_soxx_trend_income"}
    live = hand_deployed(
        commit=IBKR["commit"], image=IBKR["image"], env=env, traffics=split, traffic_statuses=split,
        template_annotations={"note": "canary"}, annotations={"owner": "ops"}, labels={"cost-center": "7"},
    )  # fmt: skip
    run = run_with(live)
    assert run.outputs["ibkr"]["phase"] == "blocked"
    registered = run.services()["ibkr"].inputs
    assert registered["traffics"] == [
        {"type": BY_REVISION, "revision": "ibq-00040-old", "percent": 90},
        {"type": LATEST, "percent": 10, "tag": "canary"},
    ]
    before, after = read(live), read(live_from_registered(registered, "ibq-00042-xyz", latest_ready="ibq-00042-xyz"))
    for field in ("image", "commit", "env", "secrets", "settings", "declared_traffic", "release_record"):
        assert getattr(after, field) == getattr(before, field), field
    # No release record or label invented for a service the program could not verify.
    assert registered["template"]["labels"] == {COMMIT_LABEL: IBKR["commit"], "managed-by": "hand", "team": "trading"}
    assert registered["template"]["annotations"] == {"note": "canary"}
    assert registered["annotations"] == {"owner": "ops"} and registered["labels"] == {"cost-center": "7"}


def test_blocked_without_a_commit_label_gets_no_empty_label(github_api):
    live = hand_deployed(commit=None, image=IBKR["image"], latest_ready="ibq-00040-old")
    run = run_with(live)
    assert run.outputs["ibkr"]["phase"] == "blocked"
    assert COMMIT_LABEL not in run.services()["ibkr"].inputs["template"]["labels"]


def test_a_credential_in_live_plain_env_is_held_only_as_a_pulumi_secret(github_api):
    live = hand_deployed(
        commit=IBKR["commit"], image=IBKR["image"], env={**LIVE_ENV, "IB_PASSWORD": "hunter2"}, latest_ready="ibq-00040-old"
    )
    run = run_with(live)
    assert run.outputs["ibkr"]["phase"] == "blocked"
    template = run.services()["ibkr"].inputs["template"]
    # The engine receives the template as a secret: encrypted in state, masked in the preview.
    assert SECRET_SIG in template
    envs = {e["name"]: e.get("value") for e in template["value"]["containers"][0]["envs"]}
    assert envs["IB_PASSWORD"] == "hunter2"


def test_a_release_record_of_another_commit_is_replaced_and_legacy_annotations_dropped(github_api):
    live = hand_deployed(
        template_annotations={RELEASE_RECORD_ANNOTATION: f"{'9' * 40} v0.7.8 v0.7.11"},
        annotations={"us-equity-cutover/ues-tag": "v0.7.11", "owner": "ops"},
    )
    run = run_with(live)
    registered = run.services()["ibkr"].inputs
    assert run.outputs["ibkr"]["phase"] == "deploy-image"
    assert registered["template"]["annotations"] == {RELEASE_RECORD_ANNOTATION: f"{IBKR['commit']} v0.7.10 v0.7.13"}
    assert registered["annotations"] == {"owner": "ops"}


def test_an_invoke_error_that_is_not_the_exact_not_found_stops_the_run(github_api):
    class Failing(CutoverMocks):
        def call(self, args):
            if args.token.endswith("getService"):
                # Mentions "not found", but about the project: no proof the service is absent.
                raise ProviderInvokeError("googleapi: Error 404: project interactivebrokersquant not found")
            return super().call(args)

    run = run_main(mocks=Failing())
    assert isinstance(run.error, pulumi.RunError), run.error
    assert "live state" in str(run.error) and "nothing was registered" in str(run.error)
    assert run.services() == {}


def test_nothing_registers_on_a_default_provider(github_api):
    run = run_with(hand_deployed())
    custom = [r for r in run.resources if r.custom and not r.type.startswith("pulumi:providers:")]
    assert custom and all(r.provider_urn.endswith(f"::gcp-{r.inputs['project']}") for r in custom)
