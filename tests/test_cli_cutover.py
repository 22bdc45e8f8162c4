"""The whole operator loop through the CLI with the real gate over real git clones: check, lock, plan
online, plan offline from the lock, and verify against gcloud-shaped live JSON."""

from __future__ import annotations

import json

import pytest

from components.env import desired_env
from release.cli import main
from release.stack import load_stack_file
from tests.fixtures.git_repos import prod_stack_text
from tests.fixtures.live_json import knative_for_spec, release_annotations, write_images_dir, write_live_dir, write_scheduling
from tests.fixtures.old_locks import old_schema
from tests.fixtures.profile_sources import profile_facts


@pytest.fixture
def stack(tmp_path, seed_repos):
    path = tmp_path / "Pulumi.prod.yaml"
    path.write_text(prod_stack_text(seed_repos.target))
    return path


def run(capsys, *argv: str) -> tuple[int, str]:
    code = main(list(argv))
    return code, capsys.readouterr().out


def git_args(stack, seed_repos) -> list[str]:
    return ["--config-file", str(stack), "--source", "git", "--git-root", str(seed_repos.root)]


def images_args(stack, directory) -> list[str]:
    images = [spec.image for spec in load_stack_file(stack).services.values()]
    return ["--images", str(write_images_dir(directory, images))]


def test_plan_with_a_passing_gate_and_no_live_state_can_proceed(capsys, stack, seed_repos, tmp_path):
    code, out = run(capsys, "plan", *git_args(stack, seed_repos), *images_args(stack, tmp_path / "images"), "--format", "json")
    plan = json.loads(out)
    assert code == 0
    assert plan["gate"]["ok"] is True
    assert {check["id"] for check in plan["gate"]["checks"]} >= {"qpk-tag", "ues-tag", "ues-pins-qpk", "pin-refs", "order"}
    assert {service["key"]: service["phase"] for service in plan["services"]} == dict.fromkeys(
        ("ibkr", "schwab", "longbridge-hk", "longbridge-sg"), "create"
    )


def test_plan_offline_reads_the_lock_and_says_pulumi_up_re_verifies(capsys, stack, seed_repos, monkeypatch):
    code, _ = run(capsys, "lock", *git_args(stack, seed_repos))
    assert code == 0 and stack.with_name("Pulumi.prod.lock.json").is_file()
    # Offline: the GitHub source points at a closed loopback port, so it cannot be reached.
    monkeypatch.setenv("GITHUB_API_URL", "http://127.0.0.1:9")
    code, out = run(capsys, "plan", "--config-file", str(stack), *images_args(stack, stack.parent / "images"))
    assert code == 0, out
    assert "verified from lock at" in out and "pulumi up` re-verifies online" in out
    # The plan judges every profile by the facts the lock proved, and says so.
    assert "Profile facts: from the lock at " in out and "(proved then from git)" in out
    assert "PASS profile-facts:longbridge-hk: qqq_tech_enhancement (QQQ Tech Enhancement; us_equity; snapshot_backed" in out
    assert "pinned sources only" in out  # the environment the registry ran in, as the lock recorded it
    assert "profile: qqq_tech_enhancement (snapshot_backed), strategy config: config path gs://" in out


def _offline_plan(capsys, stack, monkeypatch) -> tuple[int, str]:
    monkeypatch.setenv("GITHUB_API_URL", "http://127.0.0.1:9")
    code = main(["plan", "--config-file", str(stack), *images_args(stack, stack.parent / "images")])
    return code, capsys.readouterr().err


def test_plan_offline_refuses_a_lock_from_before_profile_facts(capsys, stack, seed_repos, monkeypatch):
    assert run(capsys, "lock", *git_args(stack, seed_repos))[0] == 0
    path = stack.with_name("Pulumi.prod.lock.json")
    path.write_text(json.dumps(old_schema(json.loads(path.read_text()), 1)))
    code, err = _offline_plan(capsys, stack, monkeypatch)
    assert (
        code == 2
        and "written before profile facts were proved by running the platforms' registries; run `python -m release lock` again" in err
    )
    # `lock` itself still reads it (its tags are the immutability record) and replaces it.
    assert run(capsys, "lock", *git_args(stack, seed_repos))[0] == 0
    assert json.loads(path.read_text())["schema_version"] == 4


def test_plan_offline_refuses_tampered_facts_with_exit_2(capsys, stack, seed_repos, monkeypatch):
    assert run(capsys, "lock", *git_args(stack, seed_repos))[0] == 0
    path = stack.with_name("Pulumi.prod.lock.json")
    data = json.loads(path.read_text())
    schwab = data["profile_facts"]["runs"][data["profile_facts"]["services"]["schwab"]]
    schwab["profiles"]["soxl_soxx_trend_income"]["enabled"] = False  # narrow what Schwab may run, by hand
    path.write_text(json.dumps(data))
    code, err = _offline_plan(capsys, stack, monkeypatch)
    assert code == 2 and "does not match its own digests and provenance" in err and "do not match profile_facts_sha256" in err


def test_plan_of_stale_platform_pins_is_blocked_at_the_pin_step(capsys, tmp_path, seed_repos):
    path = tmp_path / "Pulumi.prod.yaml"
    path.write_text(prod_stack_text(seed_repos.baseline))
    code, out = run(capsys, "plan", *git_args(path, seed_repos), "--format", "json")
    plan = json.loads(out)
    assert code == 1 and plan["gate"]["ok"] is False
    failed = {check["id"] for check in plan["gate"]["checks"] if not check["ok"]}
    assert {"platform-pins:ibkr", "platform-pins:schwab", "platform-pins:longbridge-hk"} <= failed
    assert "pin the bundle in each platform repo" in plan["steps"][0]["action"]


def test_verify_passes_on_the_switched_services_and_records_the_switch(capsys, stack, seed_repos, tmp_path):
    config = load_stack_file(stack)
    facts = profile_facts(config)
    tags = release_annotations(config.release.quant_platform_kit, config.release.us_equity_strategies)
    documents = []
    for key, spec in config.services.items():
        env = desired_env(spec, facts.requirements(spec.strategy_profile, key), "true")
        documents.append(knative_for_spec(spec, env, annotations=tags))
    live = write_live_dir(tmp_path / "live", documents)
    record = tmp_path / "ops.jsonl"
    jobs, iam = write_scheduling(tmp_path / "scheduling", config.services)
    scheduling = ["--scheduler", str(jobs), "--iam", str(iam)]
    assert run(capsys, "lock", *git_args(stack, seed_repos))[0] == 0  # verify judges by the facts the lock proved
    code, out = run(capsys, "verify", "--config-file", str(stack), "--live", str(live), "--record", str(record), *scheduling)
    assert code == 0, out
    lines = [json.loads(line) for line in record.read_text().splitlines()]
    assert sorted(line["service"] for line in lines) == sorted(spec.service_name for spec in config.services.values())
    assert all(line["new_profile"] == config.services[line["key"]].strategy_profile for line in lines)

    # A stale snapshot var left on the IBKR service fails verify.
    ibkr = next(document for document in documents if document["metadata"]["name"] == config.services["ibkr"].service_name)
    ibkr["spec"]["template"]["spec"]["containers"][0]["env"].append(
        {"name": "IBKR_FEATURE_SNAPSHOT_PATH", "value": "gs://old/snapshot.csv"}
    )
    live = write_live_dir(tmp_path / "live-stale", documents)
    code, out = run(capsys, "verify", "--config-file", str(stack), "--live", str(live), *scheduling)
    assert code == 1
    assert "IBKR_FEATURE_SNAPSHOT_PATH" in out
