"""components/ownership.py: held settings stay live, configured ones win, defaults only for a new service."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from components.ownership import (
    NetworkInterface,
    ServiceSettings,
    VpcAccess,
    default_settings,
    desired_settings,
    parse_release_record,
    release_record,
    settings_diff,
)
from release.config import ConfigError, ResourcesConfig
from release.stack import load_stack_file, parse_stack
from tests.fixtures.projects import SEED_STACK_FILE

CONFIG = load_stack_file(SEED_STACK_FILE)
IBKR = CONFIG.services["ibkr"]
ROOT = Path(__file__).resolve().parents[1]

HAND = ServiceSettings(
    service_account="ib-runner@interactivebrokersquant.iam.gserviceaccount.com",
    ingress="INGRESS_TRAFFIC_ALL",
    vpc_access=VpcAccess(
        egress="PRIVATE_RANGES_ONLY",
        network_interfaces=(NetworkInterface(network="default", subnetwork="cloudrun-direct-egress"),),
    ),
    min_instances=1,
    max_instances=2,
    cpu="2",
    memory="1Gi",
    concurrency=4,
    timeout="600s",
    template_labels={"team": "trading"},
)


def test_a_live_service_keeps_every_setting_the_config_does_not_set():
    assert desired_settings(IBKR, HAND) == HAND
    assert settings_diff(HAND, desired_settings(IBKR, HAND)) == ()


def test_defaults_apply_only_to_a_service_that_does_not_exist():
    new = desired_settings(IBKR, None)
    assert new == default_settings(IBKR)
    assert (new.ingress, new.max_instances, new.cpu, new.memory, new.timeout, new.concurrency) == (
        "INGRESS_TRAFFIC_INTERNAL_ONLY", 1, "1", "512Mi", "300s", 1,
    )  # fmt: skip
    assert new.service_account == "ibkr-platform-runtime@interactivebrokersquant.iam.gserviceaccount.com"
    assert new.vpc_access is not None and new.vpc_access.egress == "PRIVATE_RANGES_ONLY"
    # A live service without VPC access is not given the default one: it is held as it is.
    assert desired_settings(IBKR, ServiceSettings()).vpc_access is None
    assert default_settings(CONFIG.services["schwab"]).vpc_access is None


def test_configured_settings_win_and_only_they_change():
    spec = IBKR.model_validate(
        {**IBKR.model_dump(by_alias=True, exclude_none=True), "ingress": "internal", "scaling": {"maxInstances": 3},
         "resources": {"memory": "2Gi", "cpuIdle": True}, "timeoutSeconds": 300}
    )  # fmt: skip
    desired = desired_settings(spec, HAND)
    assert desired.ingress == "INGRESS_TRAFFIC_INTERNAL_ONLY" and desired.max_instances == 3
    assert desired.memory == "2Gi" and desired.timeout == "300s"
    # Untouched: the minimum, the CPU, the VPC, the account.
    assert (desired.min_instances, desired.cpu, desired.vpc_access, desired.service_account) == (
        1, "2", HAND.vpc_access, HAND.service_account,
    )  # fmt: skip
    diff = {change.field: (change.live, change.desired) for change in settings_diff(HAND, desired)}
    assert diff == {
        "ingress": ("INGRESS_TRAFFIC_ALL", "INGRESS_TRAFFIC_INTERNAL_ONLY"),
        "scaling.maxInstances": (2, 3),
        "resources.memory": ("1Gi", "2Gi"),
        "timeout": ("600s", "300s"),
    }


def test_a_vpc_set_in_config_replaces_the_live_one():
    spec = IBKR.model_validate(
        {**IBKR.model_dump(by_alias=True, exclude_none=True),
         "vpcAccess": {"network": "default", "subnetwork": "default", "egress": "all-traffic"}}
    )  # fmt: skip
    desired = desired_settings(spec, HAND)
    assert desired.vpc_access == VpcAccess(
        egress="ALL_TRAFFIC", network_interfaces=(NetworkInterface(network="default", subnetwork="default"),)
    )
    changed = settings_diff(HAND, desired)
    assert [c.field for c in changed] == ["vpcAccess"]
    assert changed[0].live["networkInterfaces"] == [{"network": "default", "subnetwork": "cloudrun-direct-egress"}]


@pytest.mark.parametrize(
    ("live_cpu", "configured", "registered"),
    [
        ("1000m", None, "1000m"),  # held verbatim: "1" would be another string to the provider, a new revision
        ("1000m", "1", "1000m"),  # configured but equal once normalised: the live spelling stays
        ("1", "1000m", "1"),
        ("1000m", "2", "2"),  # a real change is the config's
    ],
)
def test_cpu_is_registered_verbatim_and_compared_normalised(live_cpu, configured, registered):
    live = HAND.model_copy(update={"cpu": live_cpu})
    spec = IBKR if configured is None else IBKR.model_copy(update={"resources": ResourcesConfig(cpu=configured)})
    desired = desired_settings(spec, live)
    assert desired.cpu == registered
    assert [change.field for change in settings_diff(live, desired)] == ([] if registered == live_cpu else ["resources.cpu"])


def test_memory_compares_by_quantity_and_keeps_the_live_spelling():
    # A live service may carry any quantity spelling (the config accepts Mi/Gi only).
    live = HAND.model_copy(update={"memory": "0.5Gi"})
    desired = desired_settings(IBKR.model_copy(update={"resources": ResourcesConfig(memory="512Mi")}), live)
    assert desired.memory == "0.5Gi" and settings_diff(live, desired) == ()
    assert desired_settings(IBKR.model_copy(update={"resources": ResourcesConfig(memory="1Gi")}), live).memory == "1Gi"


SEED_REFS = {"quant-platform-kit": "v0.7.10", "us-equity-strategies": "v0.7.13"}


def test_release_record_round_trip():
    record = release_record("a" * 40, SEED_REFS)
    assert record == f"{'a' * 40} v0.7.10 v0.7.13"  # the seed's two tags keep the record's first form
    assert parse_release_record(record) == ("a" * 40, SEED_REFS)
    assert release_record("a" * 40, None) is None and release_record("a" * 40, {}) is None
    assert parse_release_record("v0.7.10") is None


def test_a_release_of_commits_or_more_packages_records_every_package():
    refs = {"quant-platform-kit": "f" * 40, "us-equity-strategies": "1" * 40, "hk-equity-strategies": "2" * 40}
    record = release_record("a" * 40, refs)
    assert record == f"{'a' * 40} hk-equity-strategies@{'2' * 40} quant-platform-kit@{'f' * 40} us-equity-strategies@{'1' * 40}"
    assert parse_release_record(record) == ("a" * 40, refs)


@pytest.mark.parametrize(
    "record",
    [
        f"{'a' * 40} left-pad@1.0 quant-platform-kit@v1",  # a package this program does not release
        f"{'a' * 40} quant-platform-kit@v1 quant-platform-kit@v2",  # a package twice
        f"{'a' * 40} quant-platform-kit@",  # no ref
        f"{'a' * 40} quant-platform-kit@v1;rm us-equity-strategies@v2",  # not a ref
        f"{'a' * 40} " + " ".join(["quant-platform-kit@v1"] * 500),  # past the bound
    ],
)
def test_a_live_record_that_is_not_a_release_is_none(record):
    assert parse_release_record(record) is None


def _services_with(**changes):
    raw = yaml.safe_load(SEED_STACK_FILE.read_text(encoding="utf-8"))["config"]
    services = raw["us-equity-cutover:services"]
    services["ibkr"].update(changes)
    return raw["us-equity-cutover:release"], services


@pytest.mark.parametrize(
    "change, where, says",
    [
        (
            {"vpcAccess": {"network": "default", "subnetwork": "default", "egress": "private-only"}},
            "services.ibkr.vpcAccess.egress",
            "private-only",
        ),
        ({"vpcAccess": {"egress": "all-traffic"}}, "services.ibkr.vpcAccess", "set network and subnetwork"),
        ({"vpcAccess": {"connector": "c1", "network": "default", "egress": "all-traffic"}}, "services.ibkr.vpcAccess", "not both"),
        ({"scaling": {"maxInstances": "2"}}, "services.ibkr.scaling.maxInstances", "integer"),
        ({"scaling": {"minInstances": 3, "maxInstances": 2}}, "services.ibkr.scaling", "above maxInstances"),
        ({"concurrency": 0}, "services.ibkr.concurrency", "greater than or equal to 1"),
        ({"timeoutSeconds": "300s"}, "services.ibkr.timeoutSeconds", "integer"),
        ({"ingress": "public"}, "services.ibkr.ingress", "'public' is not allowed"),
        ({"resources": {"cpuIdle": "yes"}}, "services.ibkr.resources.cpuIdle", "boolean"),
        ({"resources": {"memory": "512MB"}}, "services.ibkr.resources.memory", "512Mi"),
        ({"serviceAccount": "runner"}, "services.ibkr.serviceAccount", "service account email"),
    ],
)
def test_bad_settings_name_the_service_and_field(change, where, says):
    release, services = _services_with(**change)
    with pytest.raises(ConfigError) as raised:
        parse_stack(release, services)
    lines = [str(problem) for problem in raised.value.problems]
    assert any(line.startswith(f"{where}:") and says in line for line in lines), lines


def test_long_form_secret_refs_are_accepted():
    release, services = _services_with(secrets={"TELEGRAM_TOKEN": "projects/sharedsecrets/secrets/telegram-token:4"})
    ref = parse_stack(release, services).services["ibkr"].secrets["TELEGRAM_TOKEN"]
    assert (ref.secret, ref.version) == ("projects/sharedsecrets/secrets/telegram-token", "4")
    release, services = _services_with(secrets={"TELEGRAM_TOKEN": "projects/x/secrets/"})
    with pytest.raises(ConfigError, match="services.ibkr.secrets"):
        parse_stack(release, services)


@pytest.mark.project_files
def test_the_stack_refreshes_before_diffing_and_has_no_default_gcp_provider():
    project = yaml.safe_load((ROOT / "Pulumi.yaml").read_text(encoding="utf-8"))
    assert project["options"]["refresh"] == "always"
    stack = yaml.safe_load((ROOT / "Pulumi.prod.yaml").read_text(encoding="utf-8"))
    assert stack["config"]["pulumi:disable-default-providers"] == ["gcp"]
