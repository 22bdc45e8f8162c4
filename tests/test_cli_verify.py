"""`python -m release verify` end to end: live JSON in, a pass/fail line per check, exit codes, the record."""

from __future__ import annotations

import json
import os
import stat
import sys
from pathlib import Path

import pytest

from components.profiles import load_matrices, matrix_for
from release.cli import main
from release.live import from_knative_json
from release.stack import load_stack_file, stack_file
from release.verify import expected_env
from tests.fixtures.live_json import knative_for_spec, release_annotations, write_live_dir

CONFIG = load_stack_file(stack_file("prod"))
MATRIX = matrix_for(CONFIG.release.us_equity_strategies, load_matrices())
TAGS = release_annotations(CONFIG.release.quant_platform_kit, CONFIG.release.us_equity_strategies)
FLAG = {"ibkr": "IBKR_DRY_RUN_ONLY", "schwab": "SCHWAB_DRY_RUN_ONLY", "longbridge": "LONGBRIDGE_DRY_RUN_ONLY"}


def switched_document(key: str, **env_update) -> dict:
    spec = CONFIG.services[key]
    env = expected_env(spec, from_knative_json(knative_for_spec(spec, {FLAG[spec.platform]: "false"})), MATRIX)
    return knative_for_spec(spec, {**env.plain, **env_update}, secrets=dict(env.secrets), annotations=TAGS)


def all_switched(directory: Path, **overrides) -> Path:
    return write_live_dir(directory, [overrides.get(key) or switched_document(key) for key in CONFIG.services])


def test_all_switched_passes(tmp_path, capsys):
    code = main(["verify", "--live", str(all_switched(tmp_path / "live"))])
    out = capsys.readouterr().out
    assert code == 0, out
    assert "FAIL" not in out and out.count("PASS commit-live") == len(CONFIG.services)


def test_one_stale_var_fails_with_exit_1(tmp_path, capsys):
    stale = switched_document("ibkr", IBKR_FEATURE_SNAPSHOT_PATH="gs://b/old.csv")
    code = main(["verify", "--live", str(all_switched(tmp_path / "live", ibkr=stale))])
    out = capsys.readouterr().out
    assert code == 1
    assert "FAIL input-mode: stale IBKR_FEATURE_SNAPSHOT_PATH" in out


def test_json_format(tmp_path, capsys):
    code = main(["verify", "--format", "json", "--live", str(all_switched(tmp_path / "live"))])
    data = json.loads(capsys.readouterr().out)
    assert code == 0 and data["ok"] is True
    assert [s["key"] for s in data["services"]] == list(CONFIG.services)


def test_service_missing_from_live_fails(tmp_path, capsys):
    write_live_dir(tmp_path / "live", [switched_document("ibkr")])
    assert main(["verify", "--live", str(tmp_path / "live")]) == 1
    assert "FAIL service: charles-schwab-quant-service has no live state" in capsys.readouterr().out


def test_bad_live_input_is_exit_2(tmp_path, capsys):
    (tmp_path / "x.json").write_text("{", encoding="utf-8")
    assert main(["verify", "--live", str(tmp_path / "x.json")]) == 2
    assert "not valid JSON" in capsys.readouterr().err


def test_live_is_required(capsys):
    assert main(["verify"]) == 2


def test_record_appends_one_line_per_service(tmp_path, capsys):
    live = all_switched(tmp_path / "live")
    record = tmp_path / "ops.jsonl"
    assert main(["verify", "--live", str(live), "--record", str(record)]) == 0
    assert main(["verify", "--live", str(live), "--record", str(record)]) == 0
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
        f"answer = pathlib.Path({str(answers)!r}) / (sys.argv[4] + '.json')\n"
        "if not answer.exists():\n"
        "    sys.stderr.write(f'ERROR: (gcloud.run.services.describe) Cannot find service [{sys.argv[4]}]; it could not be found.\\n')\n"
        "    sys.exit(1)\n"
        "sys.stdout.write(answer.read_text())\n",
        encoding="utf-8",
    )
    script.chmod(script.stat().st_mode | stat.S_IEXEC)
    monkeypatch.setenv("PATH", f"{script.parent}{os.pathsep}{os.environ['PATH']}")
    return answers


def test_live_from_gcloud(fake_gcloud, capsys):
    all_switched(fake_gcloud)
    assert main(["verify", "--live", "gcloud"]) == 0, capsys.readouterr().out
    write_live_dir(fake_gcloud, [switched_document("schwab", STRATEGY_PROFILE="hybrid_growth_income")])
    assert main(["verify", "--live", "gcloud"]) == 1
    assert "FAIL strategy-profile: STRATEGY_PROFILE=hybrid_growth_income; expected tqqq_growth_income" in capsys.readouterr().out
