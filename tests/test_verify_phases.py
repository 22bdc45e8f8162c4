"""`verify` judges each service against the phase its last update applied: the image step (commit live,
strategy env held) or the env step (the end state), chosen by the plan the update was applied from
(`--plan`), `--phase`, or the end state by default; `--wait` polls until the image is confirmed live.

The journey runs through the CLI with the real gate over git clones: lock, plan (JSON), the live state the
image-first update leaves, verify, plan again, the live state after the env switch, verify.
"""

from __future__ import annotations

import contextlib
import copy
import io
import json
import os
import threading
from pathlib import Path

import pytest

from components.env import ServiceEnv
from release.cli import main
from release.cutover import verify as verify_module
from release.cutover.live import from_knative_json
from release.cutover.ordering import plan_service
from release.cutover.plan import bundle_json
from release.cutover.verify import PlanInputError, phases_from_plan
from release.stack import load_stack_file
from tests.fixtures.git_repos import prod_stack_text
from tests.fixtures.live_json import knative_for_spec, release_annotations, write_images_dir, write_json, write_live_dir, write_scheduling
from tests.fixtures.profile_sources import profile_facts

OLD = "1111111111111111111111111111111111111111"
OLD_PROFILES = {"ibkr": "global_etf_rotation", "schwab": "semiconductor_rotation_income", "longbridge": "semiconductor_rotation_income"}


@pytest.fixture(scope="module")
def stack(tmp_path_factory, seed_repos):
    """The seed stack at the clones' commits, locked by the real gate (once per module: verify reads the lock)."""
    path = tmp_path_factory.mktemp("stack") / "Pulumi.prod.yaml"
    path.write_text(prod_stack_text(seed_repos.target))
    with contextlib.redirect_stdout(io.StringIO()):
        assert main(["lock", *git_args(path, seed_repos)]) == 0
    return path


@pytest.fixture(scope="module")
def first_plan(stack, seed_repos, tmp_path_factory) -> dict:
    """The plan (JSON) of the forward release over the old services: image first, env next."""
    directory = tmp_path_factory.mktemp("first-plan")
    with contextlib.redirect_stdout(io.StringIO()) as out:
        code = plan_main(stack, seed_repos, write_live(directory / "before", old_documents(load_stack_file(stack))), directory / "images")
    assert code == 0, out.getvalue()
    return json.loads(out.getvalue())


def git_args(stack: Path, seed_repos) -> list[str]:
    return ["--config-file", str(stack), "--source", "git", "--git-root", str(seed_repos.root)]


def old_documents(config) -> dict[str, dict]:
    """Every service before the cutover: the old image and a profile the new image runs too."""
    documents = {}
    for key, spec in config.services.items():
        env = {"STRATEGY_PROFILE": OLD_PROFILES[spec.platform], f"{spec.platform.upper()}_DRY_RUN_ONLY": "false"}
        documents[key] = knative_for_spec(
            spec, env, commit=OLD, image=spec.image.rsplit(":", 1)[0] + ":" + OLD, secrets=dict(spec.secrets),
            annotations=release_annotations("v0.7.8", "v0.7.11"),
        )  # fmt: skip
    return documents


def applied_documents(config, before: dict[str, dict], **doc_kwargs) -> dict[str, dict]:
    """What one `pulumi up` of the plan leaves live: each service's applied revision, Ready and serving."""
    facts = profile_facts(config)
    documents = {}
    for key, spec in config.services.items():
        plan = plan_service(key, spec, config.release, from_knative_json(before[key]), facts)
        applied = plan.applied
        documents[key] = knative_for_spec(
            spec,
            ServiceEnv(applied.env.plain, applied.env.secrets),
            commit=applied.commit,
            image=applied.image,
            annotations=release_annotations(applied.qpk_tag, applied.ues_tag),
            **doc_kwargs.get(key, {}),
        )
    return documents


def write_live(directory: Path, documents: dict[str, dict]) -> str:
    return str(write_live_dir(directory, documents.values()))


def plan_main(stack, seed_repos, live: str, images: Path) -> int:
    config = load_stack_file(stack)
    write_images_dir(images, [spec.image for spec in config.services.values()])
    return main(["plan", *git_args(stack, seed_repos), "--live", live, "--images", str(images), "--format", "json"])


def plan_json(capsys, stack, seed_repos, live: str, images: Path) -> dict:
    code = plan_main(stack, seed_repos, live, images)
    out = capsys.readouterr().out
    assert code == 0, out
    return json.loads(out)


def verify(capsys, stack, live: str, *extra: str) -> tuple[int, str, str]:
    jobs, iam = write_scheduling(stack.parent / "scheduling", load_stack_file(stack).services)
    code = main(["verify", "--config-file", str(stack), "--live", live, "--scheduler", str(jobs), "--iam", str(iam), *extra])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_the_image_step_then_the_env_step_each_verified_against_what_it_applied(capsys, stack, seed_repos, first_plan, tmp_path):
    config = load_stack_file(stack)
    before, first = old_documents(config), first_plan
    assert {s["key"]: (s["phase"], s["next_phase"]) for s in first["services"]} == dict.fromkeys(
        config.services, ("deploy-image", "switch-env")
    )
    assert first["schemaVersion"] == 1
    plan_file = write_json(tmp_path / "plan-1.json", first)
    after_image = applied_documents(config, before)
    image_live = write_live(tmp_path / "after-image", after_image)

    code, out, _ = verify(capsys, stack, image_live, "--plan", str(plan_file))
    assert code == 0, out
    assert out.count(f"(judged: the image step, from the plan {plan_file})") == len(config.services)
    assert "PASS strategy-held: STRATEGY_PROFILE=global_etf_rotation held (as the plan saw it live)" in out
    assert "FAIL" not in out and "verify: all checks pass" in out

    # Without the plan, verify judges the end state: it fails, and says the image step is live and what to run.
    code, out, _ = verify(capsys, stack, image_live)
    assert code == 1
    assert "FAIL strategy-profile: runs global_etf_rotation" in out
    assert "STRATEGY_PROFILE=global_etf_rotation; expected soxl_soxx_trend_income" in out
    assert out.count("note: the image step is confirmed live and the env step is not applied yet") == len(config.services)
    assert "on 4 service(s): ibkr against the env step (end state)" in out
    code, out, _ = verify(capsys, stack, image_live, "--phase", "image")
    assert code == 0, out

    # The second update: the plan now switches env; verify judges the end state it applied.
    second = plan_json(capsys, stack, seed_repos, image_live, tmp_path / "images")
    assert {s["key"]: (s["phase"], s["next_phase"]) for s in second["services"]} == dict.fromkeys(config.services, ("switch-env", None))
    second_file = write_json(tmp_path / "plan-2.json", second)
    switched = write_live(tmp_path / "switched", applied_documents(config, after_image))
    code, out, _ = verify(capsys, stack, switched, "--plan", str(second_file))
    assert code == 0, out
    assert out.count(f"(judged: the env step (end state), from the plan {second_file})") == len(config.services)

    # Judged by the first plan, the switched env breaks the image step's hold: each failure names the phase.
    code, out, _ = verify(capsys, stack, switched, "--plan", str(plan_file), "--format", "json")
    data = json.loads(out)
    assert code == 1 and data["schemaVersion"] == 1 and data["counts"]["services_passed"] == 0
    ibkr = next(s for s in data["services"] if s["key"] == "ibkr")
    assert ibkr["phase"] == "image"
    held = next(c for c in ibkr["checks"] if c["id"] == "strategy-held")
    assert not held["ok"] and "but the image step holds global_etf_rotation" in held["message"]


def test_an_image_step_not_yet_live_fails_naming_the_phase(capsys, stack, first_plan, tmp_path):
    config = load_stack_file(stack)
    before = old_documents(config)
    plan_file = write_json(tmp_path / "plan.json", first_plan)
    not_ready = applied_documents(config, before, ibkr={"ready": False})
    code, out, _ = verify(capsys, stack, write_live(tmp_path / "live", not_ready), "--plan", str(plan_file))
    assert code == 1
    assert "FAIL commit-live: interactive-brokers-quant-service is not Ready" in out
    assert out.rstrip().endswith("on 1 service(s): ibkr against the image step")


def test_wait_polls_until_the_image_is_confirmed_live_with_a_line_per_poll(capsys, stack, first_plan, tmp_path, monkeypatch):
    monkeypatch.setattr(verify_module, "POLL_SECONDS", 0.2)
    config = load_stack_file(stack)
    before = old_documents(config)
    plan_file = write_json(tmp_path / "plan.json", first_plan)
    live = Path(write_live(tmp_path / "live", applied_documents(config, before, ibkr={"ready": False})))
    ready = applied_documents(config, before)["ibkr"]
    # The revision becomes ready while verify waits (as Cloud Run does a few seconds after pulumi up).
    timer = threading.Timer(0.5, lambda: write_json(live / f"{ready['metadata']['name']}.json", ready))
    timer.start()
    try:
        code, out, err = verify(capsys, stack, str(live), "--plan", str(plan_file), "--wait", "20")
    finally:
        timer.cancel()
    assert code == 0, out + err
    polls = [line for line in err.splitlines() if line.startswith("verify: waiting for the image to be confirmed live")]
    assert polls and "ibkr: interactive-brokers-quant-service is not Ready" in polls[0]
    assert all("schwab" not in line for line in polls)


def test_wait_is_bounded_and_the_failure_stands(capsys, stack, first_plan, tmp_path, monkeypatch):
    monkeypatch.setattr(verify_module, "POLL_SECONDS", 0.2)
    config = load_stack_file(stack)
    before = old_documents(config)
    plan_file = write_json(tmp_path / "plan.json", first_plan)
    live = write_live(tmp_path / "live", applied_documents(config, before, ibkr={"ready": False}))
    code, out, err = verify(capsys, stack, live, "--plan", str(plan_file), "--wait", "1")
    polls = [line for line in err.splitlines() if line.startswith("verify: waiting")]
    assert code == 1 and "FAIL commit-live" in out
    assert 2 <= len(polls) <= 6, polls


def test_wait_is_bad_input_when_not_a_bounded_number(capsys, stack, tmp_path):
    for value in ("soon", "-1", "nan", "999999"):
        code, _, err = verify(capsys, stack, str(tmp_path / "none"), "--wait", value)
        assert code == 2 and "--wait" in err


def test_a_rollbacks_env_first_update_is_judged_on_the_image_that_stays(stack, first_plan):
    config = load_stack_file(stack)
    document = copy.deepcopy(first_plan)
    ibkr = next(s for s in document["services"] if s["key"] == "ibkr")
    ibkr.update(phase="switch-env", next_phase="deploy-image")
    applied = phases_from_plan(document, config, bundle_json(config.release), "the plan p.json")
    assert (applied["ibkr"].phase, applied["ibkr"].commit, applied["ibkr"].release) == (
        "env",
        OLD,
        {"quant-platform-kit": "v0.7.8", "us-equity-strategies": "v0.7.11"},
    )
    assert "env first" in applied["ibkr"].origin
    assert (applied["schwab"].phase, applied["schwab"].commit) == ("image", config.services["schwab"].commit)
    assert applied["schwab"].held_profile == "semiconductor_rotation_income" and applied["schwab"].held_dry_run == "false"


@pytest.mark.parametrize(
    "edit, message",
    [
        (lambda d: d.update(schemaVersion=2), "is not a plan of this version"),
        (lambda d: d.pop("services"), "is not a plan of this version"),
        (lambda d: d["bundle"].update(us_equity_strategies="v0.7.12"), "plan of another release"),
        (lambda d: d["services"].pop(), "the stack configures"),
        (lambda d: d["services"].append(dict(d["services"][0])), "the stack configures"),
        (lambda d: d["services"][0].update(commit="2" * 40), "plans ibkr at commit 2222222, the stack configures"),
        (lambda d: d["services"][0].update(phase="deploy"), "is not a plan of this version"),
    ],
)
def test_a_plan_of_another_config_or_version_is_bad_input(capsys, stack, first_plan, tmp_path, edit, message):
    document = copy.deepcopy(first_plan)
    edit(document)
    config = load_stack_file(stack)
    with pytest.raises(PlanInputError, match=message):
        phases_from_plan(document, config, bundle_json(config.release), "p")
    plan = write_json(tmp_path / "plan.json", document)
    code, _, err = verify(capsys, stack, str(tmp_path / "none"), "--plan", str(plan))
    assert code == 2 and message in err


def test_plan_files_that_cannot_be_a_plan_are_bad_input(capsys, stack, tmp_path):
    duplicated = tmp_path / "dup.json"
    duplicated.write_text('{"schemaVersion": 1, "schemaVersion": 1}', encoding="utf-8")
    for path, message in ((tmp_path / "missing.json", "no such file"), (duplicated, "names schemaVersion twice"), (tmp_path, "")):
        code, _, err = verify(capsys, stack, str(tmp_path / "none"), "--plan", str(path))
        assert code == 2 and message in err and "Traceback" not in err
    code, _, err = verify(capsys, stack, str(tmp_path / "none"), "--plan", str(duplicated), "--phase", "image")
    assert code == 2 and "pass one" in err


def test_plan_json_out_writes_the_plan_verify_reads_beside_any_format(capsys, stack, seed_repos, first_plan, tmp_path):
    config = load_stack_file(stack)
    write_images_dir(tmp_path / "images", [spec.image for spec in config.services.values()])
    live = write_live(tmp_path / "before", old_documents(config))
    argv = ["plan", *git_args(stack, seed_repos), "--live", live, "--images", str(tmp_path / "images")]
    out_file = tmp_path / "cutover-plan.json"
    assert main([*argv, "--format", "markdown", "--json-out", str(out_file)]) == 0
    assert capsys.readouterr().out.startswith("<!--")
    written = json.loads(out_file.read_text(encoding="utf-8"))

    def phases(plan: dict) -> list:
        return [(s["key"], s["commit"], s["phase"], s["next_phase"], s["live"], s["dry_run"]) for s in plan["services"]]

    assert phases(written) == phases(first_plan) and written["schemaVersion"] == 1
    # A FIFO would block the write for ever, the stack file is what the plan reads: both refused, exit 2.
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    for target, message in ((fifo, "not a regular file"), (stack, "which this command reads")):
        assert main([*argv, "--json-out", str(target)]) == 2
        assert message in capsys.readouterr().err
