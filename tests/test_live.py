"""release/cutover/live.py: the two readers agree on one model, and bad input is an error, never "not live"."""

from __future__ import annotations

import json
import subprocess
from types import SimpleNamespace

import pytest

from components.platforms import QPK_TAG_ANNOTATION, UES_TAG_ANNOTATION
from release.config import SecretRef
from release.cutover.live import LiveStateError, from_cloud_run_v2, from_knative_json, read_cloud_run_v2, read_live_gcloud, read_live_path
from release.stack import load_stack_file
from tests.fixtures.cloud_run_v2 import get_service_result
from tests.fixtures.live_json import knative_for_spec, knative_service, release_annotations, v2_service, write_json, write_live_dir
from tests.fixtures.projects import SEED_STACK_FILE

V2_LATEST = "TRAFFIC_TARGET_ALLOCATION_TYPE_LATEST"

SHA = "ca6cae89db0a62ae5a6e7508a47a80ffdcc0efe4"
OLD = "1111111111111111111111111111111111111111"
IMAGE = f"us-central1-docker.pkg.dev/p/r/img:{SHA}"


@pytest.fixture(scope="module")
def services():
    return load_stack_file(SEED_STACK_FILE).services


def test_knative_reads_every_field():
    doc = knative_service(
        "svc-a",
        IMAGE,
        SHA,
        env={"STRATEGY_PROFILE": "global_etf_rotation", "NOTIFY_LANG": "zh"},
        secrets={"TELEGRAM_TOKEN": "tg-token:3"},
        annotations=release_annotations("v0.7.8", "v0.7.11"),
    )
    live = from_knative_json(doc, "svc-a")
    assert live.service_name == "svc-a" and live.image == IMAGE and live.commit == SHA
    assert live.region == "us-central1"
    assert live.env == {"STRATEGY_PROFILE": "global_etf_rotation", "NOTIFY_LANG": "zh"}
    assert live.secrets == {"TELEGRAM_TOKEN": SecretRef(secret="tg-token", version="3")}
    assert live.profile == "global_etf_rotation"
    assert (live.release_tags.qpk, live.release_tags.ues) == ("v0.7.8", "v0.7.11")
    assert live.confirmed_commit == SHA
    assert "serves 100% of traffic" in live.confirmation().reason


def test_profile_is_read_in_the_runtimes_precedence():
    target = {"platform_id": "schwab", "strategy_profile": "tqqq_growth_income", "dry_run_only": True}
    doc = knative_service("svc-a", IMAGE, SHA, env={"RUNTIME_TARGET_JSON": json.dumps(target), "STRATEGY_PROFILE": "global_etf_rotation"})
    assert from_knative_json(doc).profile == "tqqq_growth_income"
    # A target the runtime refuses (no platform_id, no dry_run_only) names nothing that runs.
    doc = knative_service("svc-a", IMAGE, SHA, env={"RUNTIME_TARGET_JSON": json.dumps({"strategy_profile": "tqqq_growth_income"})})
    assert from_knative_json(doc).profile is None


def test_never_deployed_by_this_program_has_unknown_release():
    tags = from_knative_json(knative_service("svc-a", IMAGE, SHA)).release_tags
    assert tags.qpk is None and tags.ues is None


@pytest.mark.parametrize(
    "bend, reason_part",
    [
        ({"ready": False}, "not Ready"),
        ({"latest_ready": "rev-00001"}, "is not ready"),
        ({"traffic": [{"revisionName": "rev-00001", "percent": 90}, {"revisionName": "rev-00002", "percent": 10}]}, "serves 10%"),
        ({"traffic": [{"revisionName": "rev-00001", "percent": 100}]}, "serves 0%"),
        ({"commit": None}, "no commit-sha label"),
    ],
)
def test_not_confirmed_live(bend, reason_part):
    kwargs = {"commit": SHA, **bend}
    live = from_knative_json(knative_service("svc-a", IMAGE, **kwargs))
    assert live.confirmed_commit is None
    assert reason_part in live.confirmation().reason


def test_traffic_to_the_named_latest_revision_counts():
    doc = knative_service("svc-a", IMAGE, SHA, traffic=[{"revisionName": "rev-00002", "percent": 100}])
    assert from_knative_json(doc).confirmed_commit == SHA


@pytest.mark.parametrize(
    "document, message",
    [
        ([], "is not a JSON object"),
        ({"metadata": {}}, "no metadata.name"),
        ({"kind": "Revision", "metadata": {"name": "svc-a"}}, "not 'Service'"),
        ({"metadata": {"name": "svc-a"}, "spec": {"template": {"spec": {"containers": []}}}}, "containers[0]"),
    ],
)
def test_malformed_knative_is_an_error(document, message):
    with pytest.raises(LiveStateError, match=message.replace("[", r"\[").replace("]", r"\]")):
        from_knative_json(document)


def test_wrong_service_name_is_an_error():
    with pytest.raises(LiveStateError, match="describes svc-b, not svc-a"):
        from_knative_json(knative_service("svc-b", IMAGE, SHA), "svc-a")


def test_non_secret_value_from_is_refused():
    doc = knative_service("svc-a", IMAGE, SHA)
    doc["spec"]["template"]["spec"]["containers"][0]["env"] = [{"name": "X", "valueFrom": {"configMapKeyRef": {"name": "c"}}}]
    with pytest.raises(LiveStateError, match="other than a Secret Manager secret"):
        from_knative_json(doc)


def test_read_directory_matches_by_name_and_leaves_absent_services_new(tmp_path, services):
    ibkr = services["ibkr"]
    write_live_dir(tmp_path, [knative_for_spec(ibkr, {"STRATEGY_PROFILE": "global_etf_rotation"})])
    live = read_live_path(tmp_path, services)
    assert set(live) == set(services)
    assert live["ibkr"] is not None and live["ibkr"].service_name == ibkr.service_name
    assert live["ibkr"].project == ibkr.project
    assert live["schwab"] is None


def test_read_file_holding_a_list(tmp_path, services):
    path = write_json(
        tmp_path / "all.json",
        [knative_for_spec(services[key], {}) for key in ("schwab", "longbridge-sg")],
    )
    live = read_live_path(path, services)
    assert live["schwab"] is not None and live["longbridge-sg"] is not None
    assert live["ibkr"] is None


def test_unknown_service_in_input_is_an_error(tmp_path, services):
    path = write_json(tmp_path / "x.json", knative_service("some-other-service", IMAGE, SHA))
    with pytest.raises(LiveStateError, match="not a configured service"):
        read_live_path(path, services)


def test_duplicate_service_in_input_is_an_error(tmp_path, services):
    doc = knative_for_spec(services["ibkr"], {})
    path = write_json(tmp_path / "x.json", [doc, doc])
    with pytest.raises(LiveStateError, match="again"):
        read_live_path(path, services)


def test_wrong_region_is_an_error(tmp_path, services):
    path = write_json(tmp_path / "x.json", knative_for_spec(services["longbridge-hk"], {}, region="asia-southeast1"))
    with pytest.raises(LiveStateError, match="in asia-southeast1"):
        read_live_path(path, services)


def test_unparsable_json_names_the_file(tmp_path, services):
    bad = tmp_path / "broken.json"
    bad.write_text("{not json", encoding="utf-8")
    with pytest.raises(LiveStateError) as caught:
        read_live_path(tmp_path, services)
    assert str(bad) in str(caught.value) and "not valid JSON" in str(caught.value)


def test_missing_path_and_empty_directory_are_errors(tmp_path, services):
    with pytest.raises(LiveStateError, match="does not exist"):
        read_live_path(tmp_path / "nope.json", services)
    with pytest.raises(LiveStateError, match="no \\*.json"):
        read_live_path(tmp_path, services)


class FakeGcloud:
    """Answers `gcloud run services describe` from a table of name -> (returncode, stdout, stderr)."""

    def __init__(self, answers):
        self.answers = answers
        self.commands = []

    def __call__(self, command, **kwargs):
        self.commands.append(command)
        code, out, err = self.answers[command[4]]
        return subprocess.CompletedProcess(command, code, out, err)


def test_gcloud_reader_runs_describe_per_service(services):
    answers = {spec.service_name: (1, "", f"ERROR: Service [{spec.service_name}] could not be found.") for spec in services.values()}
    ibkr = services["ibkr"]
    answers[ibkr.service_name] = (0, json.dumps(knative_for_spec(ibkr, {"STRATEGY_PROFILE": "x"})), "")
    fake = FakeGcloud(answers)
    live = read_live_gcloud(services, runner=fake)
    assert live["ibkr"] is not None and live["ibkr"].profile == "x"
    assert all(live[key] is None for key in services if key != "ibkr")
    assert ["--project", ibkr.project, "--region", ibkr.region, "--format=json"] == fake.commands[0][5:]


def test_gcloud_failure_is_an_error_not_new(services):
    fake = FakeGcloud({spec.service_name: (1, "", "ERROR: (gcloud.run) PERMISSION_DENIED") for spec in services.values()})
    with pytest.raises(LiveStateError, match="PERMISSION_DENIED"):
        read_live_gcloud(services, runner=fake)


def test_gcloud_describing_another_service_is_an_error(services):
    other = json.dumps(knative_service("another-service", IMAGE, SHA))
    fake = FakeGcloud({spec.service_name: (0, other, "") for spec in services.values()})
    with pytest.raises(LiveStateError, match="not interactive-brokers-quant-service"):
        read_live_gcloud(services, runner=fake)


def test_v2_reads_the_same_model_as_knative():
    env = {"STRATEGY_PROFILE": "global_etf_rotation"}
    notes = release_annotations("v0.7.8", "v0.7.11")
    v1 = from_knative_json(knative_service("svc-a", IMAGE, SHA, env=env, secrets={"TELEGRAM_TOKEN": "t:latest"}, annotations=notes))
    v2 = from_cloud_run_v2(v2_service("svc-a", IMAGE, SHA, env=env, secrets={"TELEGRAM_TOKEN": "t:latest"}, annotations=notes))
    for field in ("service_name", "image", "commit", "env", "secrets", "latest_ready_revision", "ready", "profile"):
        assert getattr(v1, field) == getattr(v2, field), field
    assert v2.release_tags == v1.release_tags
    assert v2.confirmed_commit == SHA == v1.confirmed_commit


def test_v2_attribute_shape_is_read():
    # Output types expose fields as attributes; label and annotation maps stay plain mappings.
    def ns(value):
        if isinstance(value, dict):
            return SimpleNamespace(**{k: v if k in ("labels", "annotations") else ns(v) for k, v in value.items()})
        if isinstance(value, list):
            return [ns(v) for v in value]
        return value

    result = v2_service("svc-a", IMAGE, SHA, env={"A": "1"}, secrets={"S": "sec:2"})
    live = from_cloud_run_v2(ns(result))
    assert live.commit == SHA
    assert live.env == {"A": "1"} and live.secrets == {"S": SecretRef(secret="sec", version="2")}


@pytest.mark.parametrize(
    "bend, confirmed",
    [
        ({}, True),
        ({"ready": False}, False),
        ({"reconciling": True}, False),
        ({"latest_ready": "rev-00001"}, False),
        ({"traffic": [{"type": "TRAFFIC_TARGET_ALLOCATION_TYPE_REVISION", "revision": "rev-00001", "percent": 100}]}, False),
    ],
)
def test_v2_confirmation(bend, confirmed):
    live = from_cloud_run_v2(v2_service("svc-a", IMAGE, SHA, **bend))
    assert (live.confirmed_commit == SHA) is confirmed


def _spec(services, key="ibkr"):
    return services[key]


@pytest.mark.parametrize(
    "message",
    [
        "invoke of gcp:cloudrunv2/getService:getService failed: "
        "projects/interactivebrokersquant/locations/us-central1/services/interactive-brokers-quant-service not found",
        "projects/interactivebrokersquant/locations/us-central1/services/interactive-brokers-quant-service not found \n",
    ],
)
def test_v2_exact_not_found_means_new(services, message):
    def missing():
        raise Exception(message)

    assert read_cloud_run_v2(missing, _spec(services)) is None


def _bent_knative(path: list, value):
    """The healthy describe of svc-a with one value (found by path) replaced."""
    doc = knative_service("svc-a", IMAGE, SHA, env={"NOTIFY_LANG": "zh"})
    node = doc
    for part in path[:-1]:
        node = node[part]
    node[path[-1]] = value
    return doc


CREDENTIAL = "123456789:AAHsecretbotTOKENvalue"


# Booleans are booleans, numbers numbers; two Ready conditions that disagree are a contradiction, not "ready".
@pytest.mark.parametrize(
    "path, value, field",
    [
        (["status", "traffic", 0, "latestRevision"], "false", "status.traffic[0].latestRevision is not a boolean"),
        (["status", "traffic", 0, "latestRevision"], 1, "status.traffic[0].latestRevision is not a boolean"),
        (["status", "traffic", 0, "percent"], "100", "status.traffic[0].percent is not an integer"),
        (["status", "traffic", 0, "percent"], True, "status.traffic[0].percent is not an integer"),
        (["status", "traffic", 0, "revisionName"], 7, "status.traffic[0].revisionName is not a string"),
        (["status", "latestReadyRevisionName"], ["rev-00002"], "status.latestReadyRevisionName is not a string"),
        (["status", "conditions"], [{"type": "Ready", "status": "False"}, {"type": "Ready", "status": "True"}], "contradictory Ready"),
        (["status", "conditions"], [{"type": "Ready", "status": True}], "unknown status"),
        (["metadata", "labels"], {"cloud.googleapis.com/location": {"nested": CREDENTIAL}}, "metadata.labels"),
        (["spec", "template", "spec", "containers", 0, "env"], [{"value": CREDENTIAL}], "env entry [0] has no valid name"),
        (["spec", "template", "spec", "containers", 0, "env"], [{"name": "X", "value": 5}], "env X.value is not a string"),
        (
            ["spec", "template", "spec", "containers", 0, "env"],
            [{"name": "TOKEN", "valueFrom": {"secretKeyRef": {"name": CREDENTIAL, "key": "latest"}}}],
            "secretKeyRef is not a Secret",
        ),
        (["metadata", "name"], "svc\nPlan: can proceed", "metadata.name is not a Cloud Run service name"),
    ],
)
def test_knative_values_of_the_wrong_type_are_malformed_and_never_echoed(path, value, field):
    with pytest.raises(LiveStateError) as caught:
        from_knative_json(_bent_knative(path, value), source="live.json")
    message = str(caught.value)
    assert field in message and message.startswith("live.json: ")
    assert "AAHsecret" not in message and "input_value" not in message and "\n" not in message


def _bent_v2(key: str, value):
    result = v2_service("svc-a", IMAGE, SHA, env={"NOTIFY_LANG": "zh"})
    result[key] = value
    return result


@pytest.mark.parametrize(
    "key, value, field",
    [
        ("reconciling", "false", "reconciling is not a boolean"),
        ("traffic_statuses", [{"type": V2_LATEST, "percent": "100"}], "traffic_statuses[0].percent is not an integer"),
        ("traffic_statuses", [{"type": True, "percent": 100}], "traffic_statuses[0].type is not a string"),
        (
            "terminal_conditions",
            [{"type": "Ready", "state": "CONDITION_SUCCEEDED"}, {"type": "Ready", "state": "CONDITION_FAILED"}],
            "contradictory Ready",
        ),
        ("terminal_conditions", [{"type": "Ready", "state": "SUCCEEDED!"}], "unknown status"),
        ("labels", {"a": 5}, "labels: a is not a string"),
        ("latest_ready_revision", 3, "latest_ready_revision is not a string"),
        ("name", "svc-a\x1b[2J", "name is not a Cloud Run service name"),
    ],
)
def test_v2_values_of_the_wrong_type_are_malformed(key, value, field):
    with pytest.raises(LiveStateError, match=field.replace("[", r"\[").replace("]", r"\]")):
        from_cloud_run_v2(_bent_v2(key, value))


def test_v2_env_entry_without_a_name_is_not_echoed():
    result = v2_service("svc-a", IMAGE, SHA)
    result["templates"][0]["containers"][0]["envs"].append({"value": CREDENTIAL})
    with pytest.raises(LiveStateError) as caught:
        from_cloud_run_v2(result)
    assert "env entry [0] has no valid name" in str(caught.value) and "AAHsecret" not in str(caught.value)


def test_pydantic_errors_from_live_input_never_print_the_input_value():
    doc = knative_service("svc-a", IMAGE, SHA, traffic=[{"latestRevision": True, "percent": 250}])
    with pytest.raises(LiveStateError) as caught:
        from_knative_json(doc)
    assert "percent" in str(caught.value) and "input_value" not in str(caught.value) and "250" not in str(caught.value)


def test_v2_project_not_found_or_permission_denied_is_an_error_not_a_new_service(services):
    def no_project():
        raise Exception("googleapi: Error 403: Project 'interactivebrokersquant' not found or permission denied.")

    with pytest.raises(LiveStateError, match="permission denied"):
        read_cloud_run_v2(no_project, _spec(services))


@pytest.mark.parametrize(
    "message",
    [
        "googleapi: Error 403: permission denied on run.services.get",
        # "not found" about something else (the project, another service, a region) is not "the service is new".
        "Cloud Run v2 service not found",
        "projects/interactivebrokersquant not found",
        "projects/interactivebrokersquant/locations/us-east1/services/interactive-brokers-quant-service not found",
        "projects/123456789/locations/us-central1/services/interactive-brokers-quant-service not found",
        "projects/interactivebrokersquant/locations/us-central1/services/interactive-brokers-quant-service not found; retrying",
        "context deadline exceeded",
    ],
)
def test_v2_any_other_invoke_error_is_an_error(services, message):
    def failing():
        raise Exception(message)

    with pytest.raises(LiveStateError) as raised:
        read_cloud_run_v2(failing, _spec(services))
    assert "nothing was registered" in str(raised.value) and "gcp-interactivebrokersquant" in str(raised.value)


def test_v2_an_empty_answer_or_another_service_is_an_error(services):
    spec = _spec(services)
    with pytest.raises(LiveStateError, match="without a service"):
        read_cloud_run_v2(lambda: {"name": "", "templates": []}, spec)
    with pytest.raises(LiveStateError, match="not interactive-brokers-quant-service"):
        read_cloud_run_v2(lambda: v2_service("svc-b", IMAGE, SHA), spec)


def test_release_record_is_trusted_only_for_the_commit_it_names():
    record = release_annotations("v0.7.10", "v0.7.13")
    live = from_cloud_run_v2(v2_service("svc-a", IMAGE, SHA, annotations=record))
    assert (live.release_tags.qpk, live.release_tags.ues) == ("v0.7.10", "v0.7.13")
    # A hand deploy of another image keeps the old record: it no longer describes what runs.
    stale = release_annotations("v0.7.10", "v0.7.13", commit=OLD)
    assert from_cloud_run_v2(v2_service("svc-a", IMAGE, SHA, annotations=stale)).release_tags.ues is None
    assert from_knative_json(knative_service("svc-a", IMAGE, SHA, annotations=stale)).release_tags.ues is None
    # The service-level annotations of earlier versions carry no commit: never trusted.
    legacy = {QPK_TAG_ANNOTATION: "v0.7.10", UES_TAG_ANNOTATION: "v0.7.13"}
    assert from_knative_json(knative_service("svc-a", IMAGE, SHA, annotations=legacy)).release_tags.ues is None


def hand_deployed_ibkr_v1() -> dict:
    """A gcloud describe of IBKR as deployed by hand: Direct VPC egress, own account, ingress all, a secret
    volume, min 1 instance, extra template labels, CPU always allocated."""
    doc = knative_service("svc-a", IMAGE, SHA, env={"NOTIFY_LANG": "zh"})
    doc["metadata"]["annotations"].update({"run.googleapis.com/ingress": "all", "serving.knative.dev/creator": "me@x"})
    template = doc["spec"]["template"]
    template["metadata"]["labels"].update({"team": "trading", "run.googleapis.com/startupProbeType": "Default"})
    template["metadata"]["annotations"].update(
        {
            "autoscaling.knative.dev/minScale": "1",
            "autoscaling.knative.dev/maxScale": "2",
            "run.googleapis.com/network-interfaces": json.dumps(
                [{"network": "default", "subnetwork": "cloudrun-direct-egress", "tags": ["ib"]}]
            ),
            "run.googleapis.com/vpc-access-egress": "private-ranges-only",
            "run.googleapis.com/cpu-throttling": "false",
            "run.googleapis.com/startup-cpu-boost": "true",
            "run.googleapis.com/execution-environment": "gen2",
        }
    )
    spec = template["spec"]
    spec.update(
        {
            "serviceAccountName": "ib-runner@interactivebrokersquant.iam.gserviceaccount.com",
            "timeoutSeconds": 600,
            "volumes": [{"name": "cfg", "secret": {"secretName": "ibkr-account-groups", "items": [{"key": "3", "path": "g.json"}]}}],
        }
    )
    container = spec["containers"][0]
    container.update(
        {
            "resources": {"limits": {"cpu": "1000m", "memory": "1Gi"}},
            "volumeMounts": [{"name": "cfg", "mountPath": "/etc/ib"}],
            "ports": [{"containerPort": 8080, "name": "http1"}],
            "startupProbe": {"tcpSocket": {"port": 8080}, "timeoutSeconds": 240, "periodSeconds": 240, "failureThreshold": 1},
        }
    )
    return doc


def hand_deployed_ibkr_v2() -> dict:
    """The same service as the provider's getService returns it (camelCase, nested lists)."""
    return get_service_result(
        ("p-project", "us-central1", "svc-a"), IMAGE, SHA, {"NOTIFY_LANG": "zh"}, {}, "rev-00002",
        ingress="INGRESS_TRAFFIC_ALL",
        service_account="ib-runner@interactivebrokersquant.iam.gserviceaccount.com",
        vpc_accesses=[{"connector": "", "egress": "PRIVATE_RANGES_ONLY",
                       "networkInterfaces": [{"network": "default", "subnetwork": "cloudrun-direct-egress", "tags": ["ib"]}]}],
        scalings=[{"minInstanceCount": 1, "maxInstanceCount": 2}],
        resources=[{"limits": {"cpu": "1000m", "memory": "1Gi"}, "cpuIdle": False, "startupCpuBoost": True}],
        concurrency=1, timeout="600s", execution_environment="EXECUTION_ENVIRONMENT_GEN2",
        volumes=[{"name": "cfg", "secrets": [{"secret": "ibkr-account-groups", "defaultMode": 0,
                                              "items": [{"path": "g.json", "version": "3", "mode": 0}]}], "emptyDirs": []}],
        volume_mounts=[{"name": "cfg", "mountPath": "/etc/ib"}],
        template_labels={"team": "trading", "client.knative.dev/nonce": "abc"},
    )  # fmt: skip


def test_both_shapes_read_the_same_settings():
    v1 = from_knative_json(hand_deployed_ibkr_v1()).settings
    v2 = from_cloud_run_v2(hand_deployed_ibkr_v2()).settings
    assert v1 == v2
    assert v1.ingress == "INGRESS_TRAFFIC_ALL" and v1.cpu_idle is False and v1.startup_cpu_boost is True
    assert v1.vpc_access is not None and v1.vpc_access.network_interfaces[0].subnetwork == "cloudrun-direct-egress"
    # Verbatim as live has it ("1000m" is never rewritten as "1"), equal to "1" only when compared.
    assert (v1.min_instances, v1.max_instances, v1.concurrency, v1.timeout, v1.cpu) == (1, 2, 1, "600s", "1000m")
    assert v1.comparable().cpu == "1" and v1.comparable() == v1.model_copy(update={"cpu": "1", "memory": str(2**30)})
    assert v1.volumes[0].secret == "ibkr-account-groups" and v1.volumes[0].items[0].version == "3"
    assert v1.execution_environment == "EXECUTION_ENVIRONMENT_GEN2"
    # Cloud Run's own labels and annotations are not settings; the user's are, gcloud's client.knative.dev/ too.
    assert v1.template_labels == {"team": "trading", "client.knative.dev/nonce": "abc"}
    assert v1.annotations == {} and v1.labels == {}
    assert v1.startup_probe is not None and v1.startup_probe.kind == "tcp"


@pytest.mark.parametrize(
    "annotation, value, says",
    [
        ("run.googleapis.com/vpc-access-egress", "private-only", "private-only"),
        ("run.googleapis.com/execution-environment", "gen3", "gen3"),
        ("run.googleapis.com/network-interfaces", "not json", "not JSON"),
    ],
)
def test_unknown_v1_setting_values_are_errors(annotation, value, says):
    doc = hand_deployed_ibkr_v1()
    doc["spec"]["template"]["metadata"]["annotations"][annotation] = value
    with pytest.raises(LiveStateError, match=says):
        from_knative_json(doc)


def test_unknown_ingress_and_unholdable_volumes_are_errors():
    doc = hand_deployed_ibkr_v1()
    doc["metadata"]["annotations"]["run.googleapis.com/ingress"] = "everywhere"
    with pytest.raises(LiveStateError, match="everywhere"):
        from_knative_json(doc)
    doc = hand_deployed_ibkr_v1()
    doc["spec"]["template"]["spec"]["volumes"] = [{"name": "bucket", "csi": {"driver": "gcsfuse.run.googleapis.com"}}]
    with pytest.raises(LiveStateError, match="volume bucket is of a kind this program cannot hold"):
        from_knative_json(doc)
    v2 = hand_deployed_ibkr_v2()
    v2["ingress"] = "INGRESS_TRAFFIC_EVERYWHERE"
    with pytest.raises(LiveStateError, match="cannot express \\(ingress: Input should be"):
        from_cloud_run_v2(v2)


def test_declared_traffic_is_read_from_both_shapes():
    doc = knative_service("svc-a", IMAGE, SHA)
    doc["spec"]["traffic"] = [{"revisionName": "rev-00001", "percent": 90}, {"latestRevision": True, "percent": 10, "tag": "canary"}]
    v1 = from_knative_json(doc).declared_traffic
    v2_doc = v2_service("svc-a", IMAGE, SHA)
    v2_doc["traffics"] = [
        {"type": "TRAFFIC_TARGET_ALLOCATION_TYPE_REVISION", "revision": "rev-00001", "percent": 90, "tag": ""},
        {"type": "TRAFFIC_TARGET_ALLOCATION_TYPE_LATEST", "revision": "", "percent": 10, "tag": "canary"},
    ]
    assert v1 == from_cloud_run_v2(v2_doc).declared_traffic
    assert [(t.revision, t.latest, t.percent, t.tag) for t in v1] == [("rev-00001", False, 90, None), (None, True, 10, "canary")]


@pytest.mark.parametrize(
    "bend, says",
    [
        (lambda d: d["spec"]["template"]["spec"]["containers"].append({"image": "sidecar"}), "more than one container"),
        (lambda d: d["spec"]["template"]["spec"]["containers"][0].update(workingDir="/srv"), "working directory"),
        (lambda d: d["metadata"]["annotations"].update({"run.googleapis.com/custom-audiences": '["x"]'}), "custom-audiences"),
    ],
)
def test_settings_the_program_cannot_hold_are_refused_not_stripped(bend, says):
    doc = hand_deployed_ibkr_v1()
    bend(doc)
    with pytest.raises(LiveStateError, match=f"uses .*{says}.*cannot hold"):
        from_knative_json(doc)


@pytest.mark.parametrize(
    "field, value, says",
    [
        ("customAudiences", ["https://x"], "custom audiences"),
        ("binaryAuthorizations", [{"useDefault": True}], "Binary Authorization"),
        ("invokerIamDisabled", True, "invoker IAM disabled"),
    ],
)
def test_v2_settings_the_program_cannot_hold_are_refused(field, value, says):
    result = hand_deployed_ibkr_v2()
    result[field] = value
    with pytest.raises(LiveStateError, match=f"uses {says}, which this program cannot hold"):
        from_cloud_run_v2(result)
    result = hand_deployed_ibkr_v2()
    result["templates"][0]["containers"].append({"image": "sidecar"})
    with pytest.raises(LiveStateError, match="more than one container"):
        from_cloud_run_v2(result)


def test_v1_secret_aliases_resolve_to_the_other_projects_secret():
    # gcloud shows another project's secret under a local alias; v2 (and the config) name it in full.
    doc = hand_deployed_ibkr_v1()
    template = doc["spec"]["template"]
    template["metadata"]["annotations"]["run.googleapis.com/secrets"] = (
        "tg:projects/123456789/secrets/telegram-token,grp:projects/sharedsecrets/secrets/ibkr-account-groups"
    )
    template["spec"]["containers"][0]["env"].append({"name": "TELEGRAM_TOKEN", "valueFrom": {"secretKeyRef": {"name": "tg", "key": "2"}}})
    template["spec"]["volumes"][0]["secret"]["secretName"] = "grp"
    live = from_knative_json(doc)
    assert live.secrets["TELEGRAM_TOKEN"] == SecretRef(secret="projects/123456789/secrets/telegram-token", version="2")
    assert live.settings.volumes[0].secret == "projects/sharedsecrets/secrets/ibkr-account-groups"
    template["metadata"]["annotations"]["run.googleapis.com/secrets"] = "tg:not-a-path"
    with pytest.raises(LiveStateError, match="alias:projects"):
        from_knative_json(doc)


def test_a_v2_env_entry_with_both_a_value_and_a_secret_source_is_malformed():
    from tests.fixtures.live_json import v2_service

    result = v2_service("interactive-brokers-quant-service", "r/x:1", "a" * 40, env={"TELEGRAM_TOKEN": "123:AAHsecret"})
    entry = result["templates"][0]["containers"][0]["envs"][0]
    entry["value_sources"] = [{"secret_key_reves": [{"secret": "t", "version": "latest"}]}]
    with pytest.raises(LiveStateError, match="env TELEGRAM_TOKEN has both a value and a value source") as caught:
        from_cloud_run_v2(result)
    assert "AAHsecret" not in str(caught.value)


def test_v2_ready_while_routes_ready_has_failed_is_malformed():
    result = v2_service("interactive-brokers-quant-service", "r/x:1", "a" * 40)
    result["conditions"] = [{"type": "RoutesReady", "state": "CONDITION_FAILED"}]
    with pytest.raises(LiveStateError, match="says Ready while RoutesReady has failed"):
        from_cloud_run_v2(result)
