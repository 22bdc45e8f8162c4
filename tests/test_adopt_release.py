"""Adoption without a guess: `adopt` writes the release the live services run (their release record, else
what their commit installs), so adopt then plan is green before the cutover is configured, whatever
release the stack named before."""

from __future__ import annotations

import contextlib
import io
import json

import pytest
import yaml

from release.cli import main
from release.config import PROJECT_NAME
from release.cutover.adopt import AdoptError, release_block, running_release
from release.cutover.live import from_knative_json
from release.gate.pins import InstallFiles, Pin
from release.stack import load_stack_file
from tests.fixtures.git_repos import PROD_TARGET_COMMITS
from tests.fixtures.live_json import knative_for_spec, release_annotations, write_images_dir, write_live_dir
from tests.fixtures.projects import SEED_STACK_FILE

SERVICES_KEY, RELEASE_KEY = f"{PROJECT_NAME}:services", f"{PROJECT_NAME}:release"
# What the hand-deployed services run: their baseline commit (which pins an older release) and an old profile.
RUNNING = {
    "schwab": ("CharlesSchwabPlatform", "semiconductor_rotation_income", {}),
    "longbridge-hk": ("LongBridgePlatform", "hybrid_growth_income", {"ACCOUNT_PREFIX": "HK", "ACCOUNT_REGION": "HK"}),
    "longbridge-sg": ("LongBridgePlatform", "hybrid_growth_income", {"ACCOUNT_PREFIX": "SG", "ACCOUNT_REGION": "SG"}),
}


def quiet(argv: list[str]) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(argv)
    return code, out.getvalue(), err.getvalue()


@pytest.fixture
def adopted(tmp_path, seed_repos):
    """A stack naming only where the services live (and the seed's target release), the services running
    their baseline commits without a release record, and adopt's output over them."""
    config = load_stack_file(SEED_STACK_FILE)
    services, documents = {}, []
    for key, (platform, profile, region_env) in RUNNING.items():
        spec = config.services[key]
        old = seed_repos.baseline[platform]
        image = spec.image.replace(PROD_TARGET_COMMITS[platform], old)
        env = {
            "STRATEGY_PROFILE": profile,
            f"{spec.platform.upper()}_DRY_RUN_ONLY": "true",
            "NOTIFY_LANG": "zh",
            "GLOBAL_TELEGRAM_CHAT_ID": "-1001234567890",
            **region_env,
        }
        if spec.longport_secret_name:
            env["LONGPORT_SECRET_NAME"] = spec.longport_secret_name
        documents.append(
            knative_for_spec(
                spec.model_copy(update={"commit": old, "image": image}), env, secrets={n: str(r) for n, r in spec.secrets.items()}
            )
        )
        services[key] = {"platform": spec.platform, "project": spec.project, "region": spec.region, "serviceName": spec.service_name}
    stack = tmp_path / "Pulumi.prod.yaml"
    stack.write_text(
        yaml.safe_dump({"config": {RELEASE_KEY: {"quantPlatformKit": "v0.7.10", "usEquityStrategies": "v0.7.13"}, SERVICES_KEY: services}}),
        encoding="utf-8",
    )
    live = write_live_dir(tmp_path / "live", documents)
    git = ["--source", "git", "--git-root", str(seed_repos.root)]
    output = tmp_path / "adopted.yaml"
    code, _, err = quiet(["adopt", "--config-file", str(stack), "--live", str(live), "--output", str(output), *git])
    assert code == 0, err
    return tmp_path, live, git, yaml.safe_load(output.read_text(encoding="utf-8")), err


def test_adopt_writes_the_release_each_service_runs(adopted):
    _, _, _, document, err = adopted
    # LongBridge's two services run v0.7.8/v0.7.11: the stack's release; Schwab's commit pins v0.7.10: its own.
    assert document[RELEASE_KEY] == {"quantPlatformKit": "v0.7.8", "usEquityStrategies": "v0.7.11"}
    services = document[SERVICES_KEY]
    assert services["schwab"]["release"] == {"quantPlatformKit": "v0.7.8", "usEquityStrategies": "v0.7.10"}
    assert "release" not in services["longbridge-hk"] and "release" not in services["longbridge-sg"]
    # Profiles by their canonical name at each service's own release (these names are canonical there).
    assert services["schwab"]["strategyProfile"] == "semiconductor_rotation_income"
    assert "schwab: release QPK v0.7.8, UES v0.7.10 from the pins of commit" in err and "requirements.txt" in err


def test_adopt_then_plan_is_green_before_the_cutover_is_configured(adopted):
    tmp_path, live, git, document, _ = adopted
    stack = tmp_path / "adopted" / "Pulumi.prod.yaml"
    stack.parent.mkdir()
    stack.write_text(yaml.safe_dump({"config": document}, sort_keys=False), encoding="utf-8")
    code, out, err = quiet(["check", "--config-file", str(stack), *git])
    assert code == 0, out + err
    images = write_images_dir(tmp_path / "images", [spec.image for spec in load_stack_file(stack).services.values()])
    code, out, err = quiet(["plan", "--config-file", str(stack), *git, "--live", str(live), "--images", str(images), "--format", "json"])
    plan = json.loads(out)
    assert code == 0, out + err
    assert plan["verdict"] == "can proceed"
    for service in plan["services"]:
        # Nothing but what the program derives and the live service lacks: no image, no profile change.
        assert service["phase"] in ("in-sync", "switch-env"), service["reason"]
        changed = {*service["applied_env_diff"]["changed"], *service["applied_env_diff"]["removed"]}
        assert "STRATEGY_PROFILE" not in changed and service["settings_diff"] == [], service["key"]


def pin(package: str, ref: str, file: str = "requirements.txt", kind: str = "tag", repo: str = "") -> Pin:
    repos = {"quant-platform-kit": "QuantPlatformKit", "us-equity-strategies": "UsEquityStrategies"}
    return Pin(package=package, file=file, kind=kind, ref=ref, owner="QuantStrategyLab", repo=repo or repos[package])


def live_service(record: bool = False):
    spec = load_stack_file(SEED_STACK_FILE).services["schwab"]
    annotations = release_annotations("v0.7.10", "v0.7.13") if record else {}
    return from_knative_json(
        knative_for_spec(spec, {"STRATEGY_PROFILE": spec.strategy_profile}, annotations=annotations), spec.service_name
    )


@pytest.mark.parametrize(
    "pins, message",
    [
        ((pin("quant-platform-kit", "v0.7.10"),), "installs no UES"),
        (
            (pin("quant-platform-kit", "v0.7.10"), pin("us-equity-strategies", "main", kind="branch")),
            "not a release of the team's repository",
        ),
        (
            (pin("quant-platform-kit", "v0.7.10"), pin("us-equity-strategies", "v0.7.13", repo="Fork")),
            "not a release of the team's repository",
        ),
        (
            (
                pin("quant-platform-kit", "v0.7.10"),
                pin("us-equity-strategies", "v0.7.13"),
                pin("us-equity-strategies", "v0.7.12", "pyproject.toml"),
            ),
            "installs UES by two refs",
        ),
    ],
)
def test_a_commit_that_installs_no_single_release_is_refused(pins, message):
    with pytest.raises(AdoptError, match=message):
        running_release("schwab", live_service(), lambda: InstallFiles(pins=tuple(pins), files=("requirements.txt",)), "QuantStrategyLab")


def test_the_release_record_wins_and_needs_no_source():
    refs, origin = running_release("schwab", live_service(record=True), None, "QuantStrategyLab")
    assert refs == {"quant-platform-kit": "v0.7.10", "us-equity-strategies": "v0.7.13"} and origin == "its release record"
    with pytest.raises(AdoptError, match="records no release"):
        running_release("schwab", live_service(), None, "QuantStrategyLab")


def test_release_blocks_take_the_stacks_own_forms():
    assert release_block({"quant-platform-kit": "v0.7.10", "us-equity-strategies": "v0.7.13"}) == {
        "quantPlatformKit": "v0.7.10",
        "usEquityStrategies": "v0.7.13",
    }
    sha = "a" * 40
    assert release_block({"quant-platform-kit": sha, "us-equity-strategies": "v0.7.13", "hk-equity-strategies": sha}) == {
        "packages": {"quant-platform-kit": sha, "us-equity-strategies": "v0.7.13", "hk-equity-strategies": sha}
    }
