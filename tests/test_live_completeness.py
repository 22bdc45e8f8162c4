"""With `--live FILE|DIR`, a configured service the input lacks is bad input (exit 2 naming it) unless the
operator names it new (`--new KEY`) or `--live gcloud` proved it absent: a missing describe document never
plans a create over a running service."""

from __future__ import annotations

import json

import pytest

from release.cli import main
from release.cutover.live import LiveInput, LiveStateError, read_live, require_complete
from release.gate import checks as gate_module
from release.gate import lock as lock_module
from release.gate import selection as sources_module
from release.stack import load_stack_file
from tests.fixtures.gate_doubles import Check, Gate
from tests.fixtures.live_json import knative_for_spec, release_annotations, write_images_dir, write_live_dir
from tests.fixtures.projects import SEED_STACK_FILE
from tests.test_cli_verify import fake_gcloud  # noqa: F401 - a fixture, requested by name below

CONFIG = load_stack_file(SEED_STACK_FILE)
OLD = "1111111111111111111111111111111111111111"


@pytest.fixture
def gate(monkeypatch):
    """The CLI's gate answers a fixed passing report with the seed's proved facts."""
    monkeypatch.setattr(sources_module, "make_source", lambda kind, bundle, git_root, environ: object())
    monkeypatch.setattr(gate_module, "run_gate", lambda config, source, lock=None: Gate(ok=True, checks=(Check("qpk-tag", True, "ok"),)))
    monkeypatch.setattr(lock_module, "read_lock", lambda path: None)


def running(key: str) -> dict:
    spec = CONFIG.services[key]
    env = {"STRATEGY_PROFILE": "global_etf_rotation" if spec.platform == "ibkr" else "semiconductor_rotation_income"}
    env[f"{spec.platform.upper()}_DRY_RUN_ONLY"] = "false"
    return knative_for_spec(
        spec, env, commit=OLD, image=spec.image.rsplit(":", 1)[0] + ":" + OLD, secrets=dict(spec.secrets),
        annotations=release_annotations("v0.7.8", "v0.7.11"),
    )  # fmt: skip


def plan(tmp_path, capsys, live: str, *extra: str) -> tuple[int, str, str]:
    images = write_images_dir(tmp_path / "images", [spec.image for spec in CONFIG.services.values()])
    code = main(["plan", "--live", live, "--images", str(images), "--format", "json", *extra])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_a_service_missing_from_a_live_directory_is_bad_input_naming_it(gate, tmp_path, capsys):
    live = write_live_dir(tmp_path / "live", [running(key) for key in ("ibkr", "schwab", "longbridge-sg")])
    code, out, err = plan(tmp_path, capsys, str(live))
    assert code == 2 and out == ""
    assert "lacks longbridge-hk (longbridge-quant-hk-service)" in err and "--new KEY" in err and "--live gcloud" in err


def test_new_names_the_service_that_does_not_exist_yet(gate, tmp_path, capsys):
    live = write_live_dir(tmp_path / "live", [running(key) for key in ("ibkr", "schwab", "longbridge-sg")])
    code, out, _ = plan(tmp_path, capsys, str(live), "--new", "longbridge-hk")
    data = json.loads(out)
    assert code == 0
    phases = {s["key"]: s["phase"] for s in data["services"]}
    assert phases == {"ibkr": "deploy-image", "schwab": "deploy-image", "longbridge-hk": "create", "longbridge-sg": "deploy-image"}
    assert data["notes"] == ["longbridge-quant-hk-service is planned as new: --new longbridge-hk says it does not exist yet"]
    assert data["warnings"] == [] and data["verdict"] == "can proceed"


@pytest.mark.parametrize(
    "extra, message",
    [
        (["--new", "ibkr"], "names ibkr, but the live input describes it: not new"),
        (["--new", "nope"], "names nope, which is not a configured service key"),
    ],
)
def test_new_for_a_described_or_unknown_service_is_bad_input(gate, tmp_path, capsys, extra, message):
    live = write_live_dir(tmp_path / "live", [running(key) for key in CONFIG.services])
    code, out, err = plan(tmp_path, capsys, str(live), *extra)
    assert code == 2 and message in err and out == ""


def test_new_without_live_is_bad_input_and_no_live_at_all_is_a_warning(gate, tmp_path, capsys):
    assert main(["plan", "--new", "ibkr"]) == 2
    assert "--new: only applies with --live" in capsys.readouterr().err
    images = write_images_dir(tmp_path / "images", [spec.image for spec in CONFIG.services.values()])
    assert main(["plan", "--images", str(images), "--format", "json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["verdict"] == "can proceed, with 1 warning" and "no live state was read (no --live)" in data["warnings"][0]


def test_gcloud_proves_absence_itself(gate, fake_gcloud, tmp_path, capsys):  # noqa: F811 - the fixture imported above
    write_live_dir(fake_gcloud, [running(key) for key in ("ibkr", "schwab", "longbridge-sg")])
    code, out, _ = plan(tmp_path, capsys, "gcloud")
    assert code == 0
    assert {s["key"]: s["phase"] for s in json.loads(out)["services"]}["longbridge-hk"] == "create"
    # ... and a --new service gcloud finds running is refused: it is not new.
    write_live_dir(fake_gcloud, [running("longbridge-hk")])
    code, _, err = plan(tmp_path, capsys, "gcloud", "--new", "longbridge-hk")
    assert code == 2 and "not new" in err


def test_the_rule_in_one_function():
    services = CONFIG.services
    complete = LiveInput(dict.fromkeys(services), (), "gcloud run services describe")
    assert require_complete(complete, services) is complete
    partial = LiveInput(dict.fromkeys(services), ("schwab",), "dir")
    with pytest.raises(LiveStateError, match="lacks schwab"):
        require_complete(partial, services)
    assert require_complete(partial, services, ["schwab"]) is partial
    assert read_live(None, services).absent == ()
