"""`Pulumi.fleet.yaml`, the example of today's fleet: it loads, it has the shape the platforms run today, and
`python -m release plan --stack fleet` renders every service offline without a traceback."""

from __future__ import annotations

import json
import subprocess
import sys
from collections import Counter

import pytest

from components.runtime_target import selectors
from release.config import split_image
from release.stack import load_stack_file
from tests.fixtures.working_tree_guard import PROJECT_ROOT

FLEET_FILE = PROJECT_ROOT / "Pulumi.fleet.yaml"
# The platforms' latest commits in the mirrored repositories (InteractiveBrokersPlatform, CharlesSchwabPlatform,
# LongBridgePlatform), with the releases they install.
LATEST = {
    "ibkr": "4705b7a635c9d96c1d198a14d795b31b52371d54",
    "schwab": "b7db63ff2e19d74c509c9b1489169207b4ccd528",
    "longbridge": "a2d517cd1761b1638353c6d890f52de611b0f373",
}
IBKR_LONGBRIDGE_RELEASE = {
    "quant-platform-kit": "ff09c889ed21e2eb6fcb37f6cdaa159190ec82da",
    "us-equity-strategies": "17ddb86c72d44b2c7b78ba7a10d8f71b21180166",
    "hk-equity-strategies": "b6a8ac2ad3c8110b5ea74fb059c8206388d63bcd",
}
SCHWAB_RELEASE = {
    "quant-platform-kit": "3acab1923a97b805b077c85c6c19657be0143bac",
    "us-equity-strategies": "be1a2c9f7c388d4dd78bda6c2dd7ccad0d4b13b4",
}


@pytest.mark.project_files
def test_the_fleet_is_todays_shape():
    config = load_stack_file(FLEET_FILE)
    services = config.services
    assert Counter(spec.platform for spec in services.values()) == {"ibkr": 4, "schwab": 2, "longbridge": 4}
    assert config.release.refs == IBKR_LONGBRIDGE_RELEASE
    for key, spec in services.items():
        assert spec.commit == LATEST[spec.platform], key
        refs = spec.release.refs if spec.release is not None else config.release.refs
        assert refs == (SCHWAB_RELEASE if spec.platform == "schwab" else IBKR_LONGBRIDGE_RELEASE), key
        repository, tag = split_image(spec.image)
        assert tag == spec.commit
        # The platforms' deploy workflows name images: IBKR one for all, Schwab and LongBridge per service name.
        package = {
            "ibkr": "interactivebrokersplatform/cloud-run",
            "schwab": f"charlesschwabplatform/{spec.service_name}",
            "longbridge": f"longbridgeplatform/{spec.service_name}",
        }[spec.platform]
        assert repository == f"{spec.region}-docker.pkg.dev/{spec.project}/cloud-run-source-deploy/{package}", key
    ibkr = {key: spec for key, spec in services.items() if spec.platform == "ibkr"}
    groups = {spec.env["ACCOUNT_GROUP"] for spec in ibkr.values()}
    assert {"live-a", "live-b", "shadow", "hk-verify"} == groups
    assert services["ibkr-shadow"].dry_run_only is True and services["ibkr-shadow"].execution_mode == "paper"
    assert {spec.account_region for spec in services.values() if spec.platform == "longbridge"} == {"PAPER", "HK", "SG"}
    assert selectors(services["longbridge-hk-verify"]).deployment_selector == "hk-verify"
    assert services["schwab-secondary"].enabled is False


@pytest.mark.project_files
def test_plan_stack_fleet_renders_every_service_offline(tmp_path):
    # No network here: the proxies point at a closed loopback port, so nothing leaves the machine.
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "HTTPS_PROXY": "http://127.0.0.1:9", "HTTP_PROXY": "http://127.0.0.1:9"}
    done = subprocess.run(
        [sys.executable, "-m", "release", "plan", "--stack", "fleet", "--format", "json"],
        cwd=PROJECT_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert "Traceback" not in done.stderr, done.stderr
    assert done.returncode == 1, done.stderr
    plan = json.loads(done.stdout)
    config = load_stack_file(FLEET_FILE)
    rendered = {service["key"]: service for service in plan["services"]}
    assert set(rendered) == set(config.services)
    for key, spec in config.services.items():
        service = rendered[key]
        assert service["service"] == spec.service_name and service["platform"] == spec.platform
        chosen = selectors(spec)
        assert service["target"]["deployment_selector"] == chosen.deployment_selector
        assert service["target"]["account_selector"] == list(chosen.account_selector)
        assert service["target"]["enabled"] is spec.enabled
    assert rendered["ibkr-live-b"]["target"]["account_selector"] == ["live-b-main", "live-b-ira"]
    assert rendered["ibkr-hk-verify"]["target"]["market"] == ["HK", "XHKG", "Asia/Hong_Kong"]
