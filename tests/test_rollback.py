"""Every rollback the plan prints is one the gate accepts: applied to the stack, each one passes `check`
(the real gate over git clones) and plans the service back to where its step found it.

The journey: the services run the baseline release (Schwab and LongBridge at their baseline commits, each
on the release it pins, under names that are aliases at UES v0.7.13); the stack was locked there, then
moved to the seed release and locked again (the lock keeps the older facts). The plan's steps are image
first, then env; each step's rollback edits are applied to the new stack and judged.
"""

from __future__ import annotations

import contextlib
import copy
import io
import json

import pytest
import yaml

from release.cli import main
from release.config import PROJECT_NAME
from release.cutover.live import from_knative_json
from release.cutover.rollback import REMOVE, Edit, apply_edits
from release.stack import load_stack_file
from tests.fixtures.git_repos import PROD_TARGET_COMMITS
from tests.fixtures.live_json import knative_for_spec, release_annotations, write_images_dir, write_live_dir
from tests.fixtures.projects import SEED_STACK_FILE

SERVICES_KEY, RELEASE_KEY = f"{PROJECT_NAME}:services", f"{PROJECT_NAME}:release"
# What each service ran on its baseline commit: the platform, the release it pins, the profile (an alias at v0.7.13).
BASELINE = {
    "schwab": ("CharlesSchwabPlatform", ("v0.7.8", "v0.7.10"), "semiconductor_rotation_income"),
    "longbridge-hk": ("LongBridgePlatform", ("v0.7.8", "v0.7.11"), "hybrid_growth_income"),
    "longbridge-sg": ("LongBridgePlatform", ("v0.7.8", "v0.7.11"), "hybrid_growth_income"),
}


def quiet(argv: list[str]) -> tuple[int, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(argv)
    return code, out.getvalue() + err.getvalue()


def new_stack_document(seed_repos) -> dict:
    """The seed stack without IBKR (its baseline release is not among the clones), at the clones' commits."""
    text = SEED_STACK_FILE.read_text(encoding="utf-8")
    for platform, sha in seed_repos.target.items():
        text = text.replace(PROD_TARGET_COMMITS[platform], sha)
    document = yaml.safe_load(text)
    del document["config"][SERVICES_KEY]["ibkr"]
    return document


def old_stack_document(seed_repos, new: dict) -> dict:
    document = copy.deepcopy(new)
    document["config"][RELEASE_KEY] = {"quantPlatformKit": "v0.7.8", "usEquityStrategies": "v0.7.11"}
    for key, (platform, (qpk, ues), profile) in BASELINE.items():
        entry = document["config"][SERVICES_KEY][key]
        old, new_sha = seed_repos.baseline[platform], entry["commit"]
        entry.update(commit=old, image=entry["image"].replace(new_sha, old), strategyProfile=profile)
        entry.pop("snapshot", None)
        if (qpk, ues) != ("v0.7.8", "v0.7.11"):
            entry["release"] = {"quantPlatformKit": qpk, "usEquityStrategies": ues}
    return document


def live_before(old_config) -> dict:
    """The services as the baseline cutover left them: the old image, its recorded release, the old profile."""
    documents = {}
    for key, spec in old_config.services.items():
        release = old_config.release_for(key)
        env = {"STRATEGY_PROFILE": spec.strategy_profile, f"{spec.platform.upper()}_DRY_RUN_ONLY": "false"}
        documents[key] = knative_for_spec(
            spec, env, secrets=dict(spec.secrets), annotations=release_annotations(release.quant_platform_kit, release.us_equity_strategies)
        )
    return documents


@pytest.fixture(scope="module")
def journey(tmp_path_factory, seed_repos):
    directory = tmp_path_factory.mktemp("rollback")
    stack = directory / "Pulumi.prod.yaml"
    git = ["--source", "git", "--git-root", str(seed_repos.root)]
    new = new_stack_document(seed_repos)
    stack.write_text(yaml.safe_dump(old_stack_document(seed_repos, new), sort_keys=False), encoding="utf-8")
    code, out = quiet(["lock", "--config-file", str(stack), *git])
    assert code == 0, out
    old_config = load_stack_file(stack)
    stack.write_text(yaml.safe_dump(new, sort_keys=False), encoding="utf-8")
    code, out = quiet(["lock", "--config-file", str(stack), *git])
    assert code == 0, out
    live = write_live_dir(directory / "live", live_before(old_config).values())
    images = write_images_dir(directory / "images", [spec.image for spec in load_stack_file(stack).services.values()])
    code, out = quiet(["plan", "--config-file", str(stack), *git, "--live", str(live), "--images", str(images), "--format", "json"])
    plan = json.loads(out[: out.rindex("}") + 1])
    assert code == 0, out
    return directory, stack, git, new, plan


def edits_of(step: dict) -> tuple[Edit, ...]:
    return tuple(Edit(edit["path"], REMOVE if edit["remove"] else edit["value"]) for edit in step["rollback_edits"])


def test_each_printed_rollback_passes_the_gate_and_puts_the_service_back(journey):
    directory, stack, git, new, plan = journey
    phases = {s["key"]: (s["phase"], s["next_phase"]) for s in plan["services"]}
    assert phases == dict.fromkeys(BASELINE, ("deploy-image", "switch-env"))
    steps = [step for step in plan["steps"] if step["service"] in BASELINE]
    assert len(steps) == 2 * len(BASELINE)
    for n, step in enumerate(steps):
        edits = edits_of(step)
        platform, (qpk, ues), old_profile = BASELINE[step["service"]]
        if not edits:
            # Only an env step whose old profile is, canonically, the new one: no edit that does nothing.
            assert step["stage"] == "switch-env" and old_profile == "hybrid_growth_income", step
            assert (
                step["rollback"].startswith("nothing in the stack to set back")
                and "is tqqq_growth_income in the registry of LongBridgePlatform@" in step["rollback"]
            )
            continue
        assert step["rollback"].startswith("set ") and step["rollback"].endswith(" and pulumi up") or "(" in step["rollback"]
        ours = {key.removeprefix(f"{PROJECT_NAME}:"): value for key, value in new["config"].items() if key.startswith(PROJECT_NAME)}
        rolled = apply_edits(ours, edits)
        document = copy.deepcopy(new)
        document["config"].update({f"{PROJECT_NAME}:{key}": value for key, value in rolled.items()})
        path = directory / f"Pulumi.rollback{n}.yaml"
        path.write_text(yaml.safe_dump(document, sort_keys=False), encoding="utf-8")
        code, out = quiet(["check", "--config-file", str(path), *git])
        assert code == 0, f"{step['rollback']}\n{out}"
        config = load_stack_file(path)
        spec = config.services[step["service"]]
        if step["stage"] == "deploy-image":
            # The image step undone: the old image on the release it records, the old profile by its name there.
            assert spec.commit != plan_commit(plan, step["service"]) and config.release_for(step["service"]).refs == {
                "quant-platform-kit": qpk,
                "us-equity-strategies": ues,
            }
            assert spec.strategy_profile == old_profile and spec.snapshot is None
        else:
            # The env step undone: the new image, the old profile by its canonical name at v0.7.13.
            assert spec.commit == plan_commit(plan, step["service"])
            assert spec.strategy_profile == {"semiconductor_rotation_income": "soxl_soxx_trend_income"}.get(
                old_profile, "tqqq_growth_income"
            )
            assert spec.snapshot is None


def plan_commit(plan: dict, key: str) -> str:
    return next(s["commit"] for s in plan["services"] if s["key"] == key)


def test_a_rollback_that_cannot_be_named_without_a_guess_says_revert_the_stack_commit(journey):
    directory, stack, git, new, plan = journey
    # The same services without their release record (deployed by hand): the release is unknown.
    old = live_before(load_stack_file(stack))
    for document in old.values():
        document["spec"]["template"]["metadata"]["annotations"].pop("us-equity-cutover/release", None)
    live = write_live_dir(directory / "unrecorded", old.values())
    images = directory / "images"
    code, out = quiet(["plan", "--config-file", str(stack), *git, "--live", str(live), "--images", str(images), "--format", "json"])
    data = json.loads(out[: out.rindex("}") + 1])
    for step in data["steps"]:
        if step["service"] in BASELINE and step["stage"] == "deploy-image":
            assert step["rollback_edits"] == [] and step["rollback"].startswith("revert the stack commit")
            assert "not recorded" in step["rollback"]


def test_edits_apply_and_remove():
    document = {"services": {"a": {"commit": "x", "snapshot": {"p": 1}}}}
    done = apply_edits(
        document, (Edit("services.a.commit", "y"), Edit("services.a.snapshot", REMOVE), Edit("services.a.release", {"q": 1}))
    )
    assert done == {"services": {"a": {"commit": "y", "release": {"q": 1}}}} and document["services"]["a"]["commit"] == "x"
    assert Edit("services.a.release", {"quantPlatformKit": "v0.7.8"}).text() == 'services.a.release: {"quantPlatformKit": "v0.7.8"}'
    assert from_knative_json is not None
