"""`python -m release verify` end to end: live JSON in, a pass/fail line per check, exit codes, the record."""

from __future__ import annotations

import json
import os
import stat
import sys
from pathlib import Path

import pytest

from release.cli import main
from release.cutover.live import from_knative_json
from release.cutover.verify import expected_env
from release.stack import load_stack_file
from tests.fixtures.live_json import (
    invoker_policy,
    knative_for_spec,
    release_annotations,
    scheduler_job,
    service_url,
    write_json,
    write_live_dir,
    write_scheduling,
)
from tests.fixtures.prod_lock import prod_lock_path
from tests.fixtures.profile_sources import profile_facts
from tests.fixtures.projects import SEED_STACK_FILE

CONFIG = load_stack_file(SEED_STACK_FILE)
FACTS = profile_facts(CONFIG)
KEY_OF = {spec.service_name: key for key, spec in CONFIG.services.items()}
TAGS = release_annotations(CONFIG.release.quant_platform_kit, CONFIG.release.us_equity_strategies)
FLAG = {"ibkr": "IBKR_DRY_RUN_ONLY", "schwab": "SCHWAB_DRY_RUN_ONLY", "longbridge": "LONGBRIDGE_DRY_RUN_ONLY"}


def switched_document(key: str, **env_update) -> dict:
    spec = CONFIG.services[key]
    env = expected_env(KEY_OF[spec.service_name], spec, from_knative_json(knative_for_spec(spec, {FLAG[spec.platform]: "false"})), FACTS)
    return knative_for_spec(spec, {**env.plain, **env_update}, secrets=dict(env.secrets), annotations=TAGS)


def all_switched(directory: Path, **overrides) -> Path:
    return write_live_dir(directory, [overrides.get(key) or switched_document(key) for key in CONFIG.services])


def scheduling_args(directory: Path, **overrides) -> list[str]:
    jobs, iam = write_scheduling(directory, CONFIG.services, **overrides)
    return ["--scheduler", str(jobs), "--iam", str(iam)]


def test_all_switched_passes(tmp_path, capsys):
    code = main(["verify", "--lock", prod_lock_path(), "--live", str(all_switched(tmp_path / "live")), *scheduling_args(tmp_path)])
    out = capsys.readouterr().out
    assert code == 0, out
    assert "FAIL" not in out and out.count("PASS commit-live") == len(CONFIG.services)


def test_one_stale_var_fails_with_exit_1(tmp_path, capsys):
    stale = switched_document("ibkr", IBKR_FEATURE_SNAPSHOT_PATH="gs://b/old.csv")
    code = main(["verify", "--lock", prod_lock_path(), "--live", str(all_switched(tmp_path / "live", ibkr=stale))])
    out = capsys.readouterr().out
    assert code == 1
    assert "FAIL input-mode: stale IBKR_FEATURE_SNAPSHOT_PATH" in out


def test_json_format(tmp_path, capsys):
    code = main(
        [
            "verify",
            "--lock",
            prod_lock_path(),
            "--format",
            "json",
            "--live",
            str(all_switched(tmp_path / "live")),
            *scheduling_args(tmp_path),
        ]
    )
    data = json.loads(capsys.readouterr().out)
    assert code == 0 and data["ok"] is True
    assert [s["key"] for s in data["services"]] == list(CONFIG.services)


def test_service_missing_from_live_fails(tmp_path, capsys):
    write_live_dir(tmp_path / "live", [switched_document("ibkr")])
    assert main(["verify", "--lock", prod_lock_path(), "--live", str(tmp_path / "live")]) == 1
    assert "FAIL service: charles-schwab-quant-service has no live state" in capsys.readouterr().out


def test_bad_live_input_is_exit_2(tmp_path, capsys):
    (tmp_path / "x.json").write_text("{", encoding="utf-8")
    assert main(["verify", "--lock", prod_lock_path(), "--live", str(tmp_path / "x.json")]) == 2
    assert "not valid JSON" in capsys.readouterr().err


def test_live_is_required(capsys):
    assert main(["verify"]) == 2


def test_a_failed_verification_is_recorded_marked_verified_false(tmp_path, capsys):
    stale = switched_document("ibkr", IBKR_FEATURE_SNAPSHOT_PATH="gs://b/old.csv")
    record = tmp_path / "ops.jsonl"
    code = main(
        [
            "verify",
            "--lock",
            prod_lock_path(),
            "--live",
            str(all_switched(tmp_path / "live", ibkr=stale)),
            "--record",
            str(record),
            *scheduling_args(tmp_path),
        ]
    )
    assert code == 1
    lines = {line["key"]: line for line in map(json.loads, record.read_text().splitlines())}
    assert lines["ibkr"]["verified"] is False
    assert lines["schwab"]["verified"] is True


def test_a_record_that_cannot_be_used_stops_verify_before_any_check(tmp_path, capsys):
    record = tmp_path / "ops.jsonl"
    record.write_bytes(b"\xff\n")
    assert main(["verify", "--lock", prod_lock_path(), "--live", str(all_switched(tmp_path / "live")), "--record", str(record)]) == 2
    captured = capsys.readouterr()
    assert captured.out == "" and "ops.jsonl: is not UTF-8 text" in captured.err


def test_verify_needs_a_lock_that_proved_the_profile_facts(tmp_path, capsys):
    # verify reads no source: it judges by the profile facts the stack's lock (or --lock) proved.
    assert main(["verify", "--live", str(all_switched(tmp_path / "live")), "--lock", str(tmp_path / "missing.json")]) == 2
    assert "missing.json: no lock; verify judges by the profile facts a lock proved" in capsys.readouterr().err


def test_record_appends_one_line_per_service(tmp_path, capsys):
    live = all_switched(tmp_path / "live")
    record = tmp_path / "ops.jsonl"
    scheduling = scheduling_args(tmp_path)
    assert main(["verify", "--lock", prod_lock_path(), "--live", str(live), "--record", str(record), *scheduling]) == 0
    assert main(["verify", "--lock", prod_lock_path(), "--live", str(live), "--record", str(record), *scheduling]) == 0
    lines = [json.loads(line) for line in record.read_text().splitlines()]
    assert len(lines) == 2 * len(CONFIG.services)
    second_ibkr = [line for line in lines if line["key"] == "ibkr"][1]
    assert second_ibkr["old_profile"] == second_ibkr["new_profile"] == "soxl_soxx_trend_income"
    assert second_ibkr["env_changed"] == [] and second_ibkr["verified"] is True


@pytest.fixture
def fake_gcloud(tmp_path, monkeypatch):
    """A `gcloud` on PATH that prints the fixture JSON for the service it is asked to describe."""
    answers = tmp_path / "answers"
    answers.mkdir()
    script = tmp_path / "bin" / "gcloud"
    script.parent.mkdir()
    script.write_text(
        f"#!{sys.executable}\n"
        "import pathlib, sys\n"
        f"answers = pathlib.Path({str(answers)!r})\n"
        "answer = (answers / 'iam' if sys.argv[3] == 'get-iam-policy' else answers) / (sys.argv[4] + '.json')\n"
        "if not answer.exists():\n"
        "    sys.stderr.write(f'ERROR: (gcloud.run.services.describe) Cannot find service [{sys.argv[4]}]; it could not be found.\\n')\n"
        "    sys.exit(1)\n"
        "sys.stdout.write(answer.read_text())\n",
        encoding="utf-8",
    )
    script.chmod(script.stat().st_mode | stat.S_IEXEC)
    monkeypatch.setenv("PATH", f"{script.parent}{os.pathsep}{os.environ['PATH']}")
    return answers


def gcloud_answers(answers: Path) -> None:
    """Service, job and IAM answers for every configured service, as the fake gcloud serves them."""
    all_switched(answers)
    for spec in CONFIG.services.values():
        from release.cutover.scheduling import job_name

        write_json(answers / f"{job_name(spec)}.json", scheduler_job(spec))
        write_json(answers / "iam" / f"{spec.service_name}.json", invoker_policy(spec))


GCLOUD_ALL = ["verify", "--lock", prod_lock_path(), "--live", "gcloud", "--scheduler", "gcloud", "--iam", "gcloud"]


def test_live_from_gcloud(fake_gcloud, capsys):
    gcloud_answers(fake_gcloud)
    assert main(GCLOUD_ALL) == 0, capsys.readouterr().out
    write_live_dir(fake_gcloud, [switched_document("schwab", STRATEGY_PROFILE="hybrid_growth_income")])
    assert main(GCLOUD_ALL) == 1
    assert "STRATEGY_PROFILE=hybrid_growth_income; expected tqqq_growth_income" in capsys.readouterr().out


def verify_out(tmp_path, capsys, **overrides) -> tuple[int, str]:
    code = main(
        ["verify", "--lock", prod_lock_path(), "--live", str(all_switched(tmp_path / "live")), *scheduling_args(tmp_path, **overrides)]
    )
    return code, capsys.readouterr().out


def test_a_paused_job_fails_and_says_how_to_resume(tmp_path, capsys):
    code, out = verify_out(tmp_path, capsys, jobs={"schwab": scheduler_job(CONFIG.services["schwab"], state="PAUSED")})
    assert code == 1
    assert "FAIL scheduler-job: charles-schwab-quant-scheduler is PAUSED, not ENABLED" in out
    assert "gcloud scheduler jobs resume charles-schwab-quant-scheduler --location us-central1" in out
    assert out.count("FAIL") == 1


def test_a_job_targeting_an_old_url_fails(tmp_path, capsys):
    old = scheduler_job(CONFIG.services["ibkr"], url="https://interactive-brokers-quant-service-old.a.run.app")
    code, out = verify_out(tmp_path, capsys, jobs={"ibkr": old})
    assert code == 1
    ibkr_url = service_url(CONFIG.services["ibkr"])
    assert (
        f"FAIL scheduler-target: interactive-brokers-quant-scheduler targets https://interactive-brokers-quant-service-old.a.run.app/run, not {ibkr_url}/run"
        in out
    )
    assert "OIDC audience" in out


def test_a_job_with_the_wrong_identity_fails(tmp_path, capsys):
    spec = CONFIG.services["longbridge-hk"]
    wrong = scheduler_job(spec, account=f"someone@{spec.project}.iam.gserviceaccount.com")
    code, out = verify_out(tmp_path, capsys, jobs={"longbridge-hk": wrong})
    assert code == 1 and "sends OIDC for someone@longbridgequant.iam.gserviceaccount.com, not longbridge-platform-scheduler@" in out


def test_a_missing_job_or_binding_fails(tmp_path, capsys):
    spec = CONFIG.services["longbridge-sg"]
    from tests.fixtures.live_json import iam_policy

    runtime_only = iam_policy({"roles/run.invoker": [f"serviceAccount:longbridge-platform-runtime@{spec.project}.iam.gserviceaccount.com"]})
    code, out = verify_out(tmp_path, capsys, jobs={"longbridge-sg": None}, policies={"longbridge-sg": runtime_only})
    assert code == 1
    assert "FAIL scheduler-job: longbridge-quant-sg-scheduler does not exist in longbridgequant/asia-southeast1" in out
    assert (
        "FAIL invoker-binding: serviceAccount:longbridge-platform-scheduler@longbridgequant.iam.gserviceaccount.com lacks roles/run.invoker"
        in out
    )


def test_without_scheduler_and_iam_input_the_checks_fail_as_not_verified(tmp_path, capsys):
    code = main(["verify", "--lock", prod_lock_path(), "--format", "json", "--live", str(all_switched(tmp_path / "live"))])
    data = json.loads(capsys.readouterr().out)
    assert code == 1
    failed = {check["id"] for service in data["services"] for check in service["checks"] if not check["ok"]}
    assert failed == {"scheduler-job", "invoker-binding"}
    assert "--scheduler" in data["services"][0]["checks"][-2]["message"]


@pytest.mark.parametrize(
    "which, document, message",
    [
        (
            "jobs",
            {"name": "projects/p/locations/us-central1/jobs/interactive-brokers-quant-warmup-scheduler", "state": "ENABLED"},
            "is no service's scheduler job",
        ),
        ("jobs", {"name": "not a job name"}, "projects/<project>/locations/<region>/jobs/<job>"),
        ("iam", {"bindings": "everyone"}, "bindings is not a list"),
    ],
)
def test_bad_scheduler_or_iam_input_is_exit_2(tmp_path, capsys, which, document, message):
    jobs, iam = write_scheduling(tmp_path, CONFIG.services)
    target = (jobs / "extra.json") if which == "jobs" else (iam / f"{CONFIG.services['ibkr'].service_name}.json")
    write_json(target, document)
    code = main(
        ["verify", "--lock", prod_lock_path(), "--live", str(all_switched(tmp_path / "live")), "--scheduler", str(jobs), "--iam", str(iam)]
    )
    assert code == 2
    assert message in capsys.readouterr().err
