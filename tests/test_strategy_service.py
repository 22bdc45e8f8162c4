"""`StrategyService` and the provider cache under Pulumi mocks, without the release gate.

The mock monitor records each registration request, so resource options (protect, ignoreChanges,
parent, provider) are asserted as the engine would receive them, not just the inputs.
"""

from __future__ import annotations

import pytest

from components.env import ServiceEnv, ServiceRevision, desired_revision, dry_run_value
from components.ownership import RELEASE_RECORD_ANNOTATION
from components.program import Providers, deploy
from components.strategy_service import COMPONENT_TYPE, StrategyService, StrategyServiceArgs, service_logical_name
from release.config import SchedulerSpec, SecretRef
from release.cutover.scheduling import JobReadError
from release.stack import load_stack_file
from tests.fixtures.live_json import scheduler_job as scheduler_job_json
from tests.fixtures.profile_sources import profile_facts
from tests.fixtures.projects import SEED_STACK_FILE
from tests.fixtures.pulumi_mocks import (
    INVOKER_TYPE,
    JOB_TYPE,
    PROVIDER_TYPE,
    SERVICE_TYPE,
    CutoverMocks,
    deployed_image,
    run_under_mocks,
    service_env,
)

CONFIG = load_stack_file(SEED_STACK_FILE)
FACTS = profile_facts(CONFIG)


def build_one(key: str, revision: ServiceRevision, **spec_changes):
    spec = CONFIG.services[key].model_copy(update=spec_changes)

    def program() -> None:
        provider = Providers().for_project(spec.project)
        StrategyService(StrategyServiceArgs(key=key, spec=spec, revision=revision, provider=provider, input_mode="direct_runtime"))

    run = run_under_mocks(program)
    assert run.error is None, run.error
    return run


def revision(key: str) -> ServiceRevision:
    spec = CONFIG.services[key]
    requirements = FACTS.requirements(spec.strategy_profile, key)
    return desired_revision(spec, CONFIG.release, requirements, dry_run_value(spec, None, live_exists=False))


@pytest.fixture(scope="module")
def prod_run():
    run = run_under_mocks(lambda: deploy(CONFIG, FACTS))
    assert run.error is None, run.error
    return run


def test_env_is_sorted_by_name_with_secrets_as_secret_manager_refs(prod_run):
    for key, spec in CONFIG.services.items():
        envs = prod_run.services()[key].inputs["template"]["containers"][0]["envs"]
        names = [entry["name"] for entry in envs]
        assert names == sorted(names)
        for entry in envs:
            if entry["name"] in spec.secrets:
                ref = spec.secrets[entry["name"]]
                assert "value" not in entry
                assert entry["valueSource"] == {"secretKeyRef": {"secret": ref.secret, "version": ref.version}}
            else:
                assert "valueSource" not in entry and isinstance(entry["value"], str)


def test_component_applies_exactly_the_revision_it_is_given():
    # A revision unlike the spec (as a deploy-image phase would pass): the component must not re-derive env.
    held = ServiceRevision(
        image="us-central1-docker.pkg.dev/p/r/img@sha256:" + "a" * 64,
        commit="b" * 40,
        env=ServiceEnv(
            plain={"STRATEGY_PROFILE": "global_etf_rotation", "ZED": "1", "ALPHA": "2"},
            secrets={"TELEGRAM_TOKEN": SecretRef(secret="tok", version="3")},
        ),
        release=None,
    )
    run = build_one("ibkr", held)
    inputs = run.services()["ibkr"].inputs
    container = inputs["template"]["containers"][0]
    assert container["image"] == held.image
    assert service_env(inputs) == {
        "ALPHA": "2",
        "STRATEGY_PROFILE": "global_etf_rotation",
        "TELEGRAM_TOKEN": ("secret", "tok", "3"),
        "ZED": "1",
    }
    assert inputs["template"]["labels"] == {"commit-sha": "b" * 40}
    # An unknown release (no QPK tag) is not recorded as a guess.
    assert "annotations" not in inputs["template"] and "annotations" not in inputs


@pytest.mark.parametrize("key", ["ibkr", "schwab", "longbridge-hk", "longbridge-sg"])
def test_cloud_run_settings_labels_and_annotations(prod_run, key):
    spec = CONFIG.services[key]
    inputs = prod_run.services()[key].inputs
    template = inputs["template"]
    assert (inputs["name"], inputs["project"], inputs["location"]) == (spec.service_name, spec.project, spec.region)
    assert inputs["ingress"] == "INGRESS_TRAFFIC_INTERNAL_ONLY"
    assert inputs["deletionProtection"] is True
    assert inputs["traffics"] == [{"type": "TRAFFIC_TARGET_ALLOCATION_TYPE_LATEST", "percent": 100}]
    # The release record names the commit it describes, on the revision template (a hand deploy of
    # another image replaces it instead of keeping it, as it would a service-level annotation).
    assert template["annotations"] == {RELEASE_RECORD_ANNOTATION: f"{spec.commit} v0.7.10 v0.7.13"}
    assert "annotations" not in inputs
    assert template["labels"] == {"commit-sha": spec.commit}
    assert template["scaling"] == {"maxInstanceCount": 1}
    assert template["timeout"] == "300s"
    assert template["serviceAccount"] == f"{spec.platform}-platform-runtime@{spec.project}.iam.gserviceaccount.com"
    assert template["containers"][0]["resources"] == {"limits": {"cpu": "1", "memory": "512Mi"}, "cpuIdle": True}
    # IBKR reaches its IB Gateway through Direct VPC egress: a new IBKR service starts with it.
    if key == "ibkr":
        assert template["vpcAccess"] == {
            "egress": "PRIVATE_RANGES_ONLY",
            "networkInterfaces": [{"network": "default", "subnetwork": "default"}],
        }
    else:
        assert "vpcAccess" not in template
    assert template["containers"][0]["image"] == deployed_image(spec.image)
    # Only IBKR serves one request at a time.
    assert template.get("maxInstanceRequestConcurrency") == (1 if key == "ibkr" else None)


def test_service_account_from_config_wins():
    account = "custom-runtime@charlesschwabquant.iam.gserviceaccount.com"
    run = build_one("schwab", revision("schwab"), service_account=account)
    assert run.services()["schwab"].inputs["template"]["serviceAccount"] == account


def test_service_is_protected_ignores_gcloud_client_drift_and_sits_under_its_component(prod_run):
    components = {resource.name: resource for resource in prod_run.of_type(COMPONENT_TYPE)}
    assert set(components) == set(CONFIG.services)
    for key, service in prod_run.services().items():
        assert service.protect is True
        assert set(service.ignore_changes) == {"client", "clientVersion"}
        assert service.parent == components[key].urn
        # Its own logical name, not the component's: `pulumi import --file` resolves parents by name.
        assert service.name == service_logical_name(key) == f"{key}-cloud-run"
        assert service.urn.endswith(f"{COMPONENT_TYPE}${SERVICE_TYPE}::{key}-cloud-run")


def test_one_explicit_provider_per_gcp_project(prod_run):
    providers = prod_run.providers()
    assert {resource.inputs["project"] for resource in providers.values()} == {spec.project for spec in CONFIG.services.values()}
    assert len(providers) == 3
    by_urn = {resource.urn: resource.inputs["project"] for resource in providers.values()}
    for key, service in prod_run.services().items():
        assert by_urn[service.provider_urn] == CONFIG.services[key].project


def test_outputs_per_service_key(prod_run):
    assert set(prod_run.outputs) == set(CONFIG.services)
    hk = prod_run.outputs["longbridge-hk"]
    spec = CONFIG.services["longbridge-hk"]
    assert hk == {
        "name": spec.service_name,
        "project": spec.project,
        "region": spec.region,
        "uri": prod_run.services()["longbridge-hk"].state["uri"],
        # Deployed by digest, the configured tag beside it.
        "image": deployed_image(spec.image),
        "imageTag": spec.commit,
        "commit": spec.commit,
        "strategyProfile": "qqq_tech_enhancement",
        "inputMode": "snapshot_backed",
        "phase": "create",  # no live service under these mocks
        "schedulerJob": "longbridge-quant-hk-scheduler",
    }
    assert prod_run.outputs["schwab"]["inputMode"] == "direct_runtime"


def test_each_run_starts_from_a_fresh_runtime():
    first = build_one("schwab", revision("schwab"))
    second = build_one("ibkr", revision("ibkr"))
    assert set(first.services()) == {"schwab"}
    assert set(second.services()) == {"ibkr"}
    assert len(second.of_type(PROVIDER_TYPE)) == 1


# --- the scheduler job and the invoker member ----------------------------------------------------


def by_name(run, type_):
    return {resource.name: resource for resource in run.of_type(type_)}


def test_one_job_and_one_invoker_member_per_service(prod_run):
    jobs, members = by_name(prod_run, JOB_TYPE), by_name(prod_run, INVOKER_TYPE)
    assert sorted(jobs) == sorted(f"{key}-scheduler" for key in CONFIG.services)
    assert sorted(members) == sorted(f"{key}-invoker" for key in CONFIG.services)
    assert not [r for r in prod_run.resources if "IamPolicy" in r.type or "IamBinding" in r.type]
    components = {r.name: r.urn for r in prod_run.of_type(COMPONENT_TYPE)}
    for key, spec in CONFIG.services.items():
        job, member, service = jobs[f"{key}-scheduler"], members[f"{key}-invoker"], prod_run.services()[key]
        account = f"{spec.platform}-platform-scheduler@{spec.project}.iam.gserviceaccount.com"
        url = service.state["uri"]
        inputs = job.inputs
        assert (inputs["name"], inputs["project"], inputs["region"]) == (
            spec.service_name.removesuffix("-service") + "-scheduler",
            spec.project,
            spec.region,
        )
        assert (inputs["schedule"], inputs["timeZone"], inputs["paused"]) == ("45 15 * * 1-5", "America/New_York", False)
        assert inputs.get("attemptDeadline") == ("330s" if spec.platform == "ibkr" else None)
        assert inputs["httpTarget"]["uri"] == f"{url}/run" and inputs["httpTarget"]["httpMethod"] == "POST"
        assert inputs["httpTarget"]["oidcToken"] == {"serviceAccountEmail": account, "audience": url}
        assert job.parent == member.parent == components[key]
        assert job.provider_urn == member.provider_urn == service.provider_urn
        assert job.protect
        assert member.inputs == {
            "project": spec.project,
            "location": spec.region,
            "name": spec.service_name,
            "role": "roles/run.invoker",
            "member": f"serviceAccount:{account}",
        }


SECRET_SIG = "4dabf18193072939515e22adb298388d"  # the engine's marker of a secret value


def hk_live(**kwargs):
    from tests.fixtures.cloud_run_v2 import get_service_result

    spec = CONFIG.services["longbridge-hk"]
    key = (spec.project, spec.region, spec.service_name)
    return key, get_service_result(
        key, spec.image, spec.commit, {"STRATEGY_PROFILE": "qqq_tech_enhancement", "LONGBRIDGE_DRY_RUN_ONLY": "true"},
        {}, "longbridge-quant-hk-service-00007-abc", **kwargs,
    )  # fmt: skip


def hk_job_key():
    spec = CONFIG.services["longbridge-hk"]
    return (spec.project, spec.region, "longbridge-quant-hk-scheduler")


def run_with(config=CONFIG, **mocks):
    run = run_under_mocks(lambda: deploy(config, profile_facts(config)), mocks=CutoverMocks(**mocks))
    assert run.error is None, run.error
    return run


def test_a_live_jobs_settings_are_held_where_config_is_silent():
    spec = CONFIG.services["longbridge-hk"]
    live_job = scheduler_job_json(spec, schedule="35 9 * * 1-5", time_zone="Asia/Hong_Kong", url="https://old.a.run.app", deadline="240s")
    key, live = hk_live()
    run = run_with(live={key: live}, jobs={hk_job_key(): live_job})
    inputs = by_name(run, JOB_TYPE)["longbridge-hk-scheduler"].inputs
    assert (inputs["schedule"], inputs["timeZone"], inputs["attemptDeadline"], inputs["paused"]) == (
        "35 9 * * 1-5",
        "Asia/Hong_Kong",
        "240s",
        False,
    )
    # The target is the service's URL, not the old one the live job carried.
    assert inputs["httpTarget"]["uri"] == run.services()["longbridge-hk"].state["uri"] + "/run"

    configured = CONFIG.model_copy(
        update={
            "services": {
                **CONFIG.services,
                "longbridge-hk": spec.model_copy(update={"scheduler": SchedulerSpec(schedule="40 9 * * 1-5", paused=True)}),
            }
        }
    )
    inputs = by_name(run_with(configured, live={key: live}, jobs={hk_job_key(): live_job}), JOB_TYPE)["longbridge-hk-scheduler"].inputs
    assert (inputs["schedule"], inputs["timeZone"], inputs["paused"]) == ("40 9 * * 1-5", "Asia/Hong_Kong", True)


def test_a_blocked_services_job_and_binding_are_held_exactly_as_live():
    spec = CONFIG.services["longbridge-hk"]
    live_job = scheduler_job_json(spec, url="https://old.a.run.app", state="PAUSED", deadline="240s")
    key, live = hk_live(ready=False)
    run = run_with(live={key: live}, jobs={hk_job_key(): live_job})
    assert run.outputs["longbridge-hk"]["phase"] == "blocked"
    inputs = by_name(run, JOB_TYPE)["longbridge-hk-scheduler"].inputs
    assert inputs["paused"] is True and inputs["attemptDeadline"] == "240s"
    assert inputs["httpTarget"]["uri"] == "https://old.a.run.app/run"
    assert inputs["httpTarget"]["oidcToken"]["audience"] == "https://old.a.run.app"
    # The API's own User-Agent is not registered: the provider's reader drops it, so it would be a diff.
    assert "headers" not in inputs["httpTarget"]
    assert inputs["retryConfig"]["maxDoublings"] == 5
    # The live policy lacks the member: a blocked service gets none (nothing about it changes) ...
    assert "longbridge-hk-invoker" not in by_name(run, INVOKER_TYPE)
    # ... and keeps it registered when live has it (a no-op for the engine).
    from tests.fixtures.live_json import invoker_policy

    run = run_with(live={key: live}, jobs={hk_job_key(): live_job}, iam={key: invoker_policy(spec)})
    assert "longbridge-hk-invoker" in by_name(run, INVOKER_TYPE)


def test_job_headers_are_registered_as_the_provider_reads_them_and_a_credential_only_as_a_secret():
    spec = CONFIG.services["longbridge-hk"]
    token = "Bearer planted-api-token"
    api_added = {"User-Agent": "Google-Cloud-Scheduler", "Authorization": token, "X-Google-Trace": "1", "X-Team": "quant"}
    key, live = hk_live()
    run = run_with(live={key: live}, jobs={hk_job_key(): scheduler_job_json(spec, headers=api_added)})
    registered = by_name(run, JOB_TYPE)["longbridge-hk-scheduler"].inputs["httpTarget"]
    assert registered["headers"] == {"X-Team": "quant"}
    assert token not in repr(run.resources)
    # A job without a token keeps a literal credential header (the provider reads it back): held, as a secret.
    literal = scheduler_job_json(spec, headers={"Proxy-Authorization": token, "X-Team": "quant"})
    run = run_with(live={key: live}, jobs={hk_job_key(): literal})
    target = by_name(run, JOB_TYPE)["longbridge-hk-scheduler"].inputs["httpTarget"]
    # The engine receives the HTTP target as a secret: encrypted in state, masked in the preview.
    assert target[SECRET_SIG] == "1b47061264138c4ac30d75fd1eb44270"
    assert target["value"]["headers"] == {"Proxy-Authorization": token, "X-Team": "quant"}


def test_a_blocked_service_without_a_live_job_gets_none():
    key, live = hk_live(ready=False)
    run = run_with(live={key: live})
    assert "longbridge-hk-scheduler" not in by_name(run, JOB_TYPE) and run.outputs["longbridge-hk"]["schedulerJob"] is None


def test_a_job_that_cannot_be_read_stops_the_run_before_any_service():
    def unreadable(spec):
        raise JobReadError("https://cloudscheduler.googleapis.com/v1/...: HTTP 403")

    run = run_under_mocks(lambda: deploy(CONFIG, FACTS, read_job=unreadable))
    assert run.error is not None and "HTTP 403" in str(run.error)
    assert run.services() == {} and run.of_type(JOB_TYPE) == []


def test_services_sharing_an_image_look_it_up_once():
    ibkr = CONFIG.services["ibkr"]
    twin = ibkr.model_copy(update={"service_name": "interactive-brokers-quant-b-service"})
    config = CONFIG.model_copy(update={"services": {**CONFIG.services, "ibkr-b": twin}})
    run = run_with(config)
    lookups = [call for call in run.calls if call.token.endswith("getDockerImage")]
    assert len(lookups) == len({(spec.project, spec.image) for spec in CONFIG.services.values()}) == 4
    images = {key: service.inputs["template"]["containers"][0]["image"] for key, service in run.services().items()}
    assert images["ibkr-b"] == images["ibkr"] == deployed_image(ibkr.image)


def test_import_entries_resolve_to_the_registered_job_and_member(prod_run):
    from release.cutover.scheduling import from_job_json, from_policy_json, import_resources
    from tests.fixtures.live_json import invoker_policy

    registered = {(r.type, r.name): r for r in prod_run.resources}
    components = {r.name: r.urn for r in prod_run.of_type(COMPONENT_TYPE)}
    providers = {r.urn.rsplit("::", 1)[-1]: r.urn for r in prod_run.of_type(PROVIDER_TYPE)}
    for key, spec in CONFIG.services.items():
        live = from_job_json(scheduler_job_json(spec), "live")
        granted = from_policy_json(invoker_policy(spec), "iam")
        entries = import_resources(key, spec, live, granted, parent=key, provider=f"gcp-{spec.project}")
        assert [entry["name"] for entry in entries] == [f"{key}-scheduler", f"{key}-invoker"]
        for entry in entries:
            resource = registered[(entry["type"], entry["name"])]
            assert resource.parent == components[entry["parent"]]
            assert resource.provider_urn == providers[entry["provider"]]


def test_a_blocked_service_whose_policy_cannot_be_read_stops_the_run():
    from tests.fixtures.pulumi_mocks import ProviderInvokeError

    class Denied(CutoverMocks):
        def call(self, args):
            if args.token.endswith("getServiceIamPolicy"):
                raise ProviderInvokeError("googleapi: Error 403: run.services.getIamPolicy denied")
            return super().call(args)

    key, live = hk_live(ready=False)
    run = run_under_mocks(lambda: deploy(CONFIG, FACTS), mocks=Denied(live={key: live}))
    assert run.error is not None and "could not be read" in str(run.error) and "403" in str(run.error)
    assert run.services() == {}
