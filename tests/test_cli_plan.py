"""`python -m release plan` end to end through the CLI.

The gate's verdicts are the gate's own tests' business; here the gate entry points are replaced by
doubles returning fixed reports, so each test pins what the plan does with one kind of verdict. One
test runs the real gate offline, the way `make plan` runs on a fresh machine.
"""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from release.cli import main
from release.stack import load_stack_file, stack_file
from tests.fixtures.gate_doubles import Check, Gate
from tests.fixtures.live_json import image_describe, knative_for_spec, release_annotations, write_images_dir, write_json, write_live_dir
from tests.fixtures.projects import SEED_STACK_FILE

gate_module = pytest.importorskip("release.gate.checks")
selection_module = pytest.importorskip("release.gate.selection")
lock_module = pytest.importorskip("release.gate.lock")

PROJECT_ROOT = Path(__file__).resolve().parent.parent
CONFIG = load_stack_file(SEED_STACK_FILE)
OLD = "1111111111111111111111111111111111111111"


@dataclass(frozen=True)
class FakeLock:
    locked_at: str = "2026-04-20T09:00:00+00:00"
    source: str = "github"
    profile_facts: object = "(carried by the offline gate double)"


PASSED = Gate(ok=True, checks=(Check("qpk-tag", True, "v0.7.10 resolves"),))
UNREACHABLE = Gate(ok=False, checks=(Check("qpk-tag", False, "github.com unreachable", "error"),), unverified=True, unreachable=True)


@pytest.fixture
def gate(monkeypatch):
    """Point the CLI's gate at a fixed report; `gate.lock` stands in for the stack's lock file (None: none)."""

    class Control:
        online = PASSED
        from_lock = Gate(ok=True, checks=(Check("qpk-tag", True, "from lock"),), verified_from="lock")
        lock = None

    monkeypatch.setattr(selection_module, "make_source", lambda kind, bundle, git_root, environ: object())
    monkeypatch.setattr(gate_module, "run_gate", lambda config, source, lock=None: Control.online)
    # the lock answers what the source could not: here, the whole verdict of the double
    monkeypatch.setattr(gate_module, "with_lock", lambda online, config, lock: Control.from_lock if online.unverified and lock else online)
    monkeypatch.setattr(lock_module, "read_lock", lambda path: Control.lock)
    return Control


def old_live_dir(directory: Path) -> Path:
    documents = []
    for spec in CONFIG.services.values():
        env = {
            "STRATEGY_PROFILE": "semiconductor_rotation_income" if spec.platform != "ibkr" else "global_etf_rotation",
            f"{spec.platform.upper()}_DRY_RUN_ONLY": "false",
        }
        documents.append(
            knative_for_spec(
                spec,
                env,
                commit=OLD,
                image=spec.image.rsplit(":", 1)[0] + ":" + OLD,
                secrets=dict(spec.secrets),
                annotations=release_annotations("v0.7.8", "v0.7.11"),
            )
        )
    return write_live_dir(directory, documents)


def images_dir(directory: Path) -> Path:
    return write_images_dir(directory, [spec.image for spec in CONFIG.services.values()])


def test_forward_release_plan_text(gate, tmp_path, capsys):
    code = main(["plan", "--live", str(old_live_dir(tmp_path / "live")), "--images", str(images_dir(tmp_path / "images"))])
    out = capsys.readouterr().out
    assert code == 0, out
    for spec in CONFIG.services.values():
        assert spec.service_name in out
    assert "1. pulumi up: deploy image ca6cae8 to interactive-brokers-quant-service" in out
    assert "pulumi up again" in out and "STRATEGY_PROFILE global_etf_rotation -> soxl_soxx_trend_income" in out
    assert "phase:   deploy-image, then switch-env" in out


def test_json_output_keys(gate, tmp_path, capsys):
    code = main(
        ["plan", "--format", "json", "--live", str(old_live_dir(tmp_path / "live")), "--images", str(images_dir(tmp_path / "images"))]
    )
    data = json.loads(capsys.readouterr().out)
    assert code == 0
    assert data["gate"]["ok"] is True and data["gate"]["checks"][0]["id"] == "qpk-tag"
    assert {s["key"]: s["phase"] for s in data["services"]} == {key: "deploy-image" for key in CONFIG.services}
    hk = next(s for s in data["services"] if s["key"] == "longbridge-hk")
    assert hk["input_mode"] == "snapshot_backed"
    assert "LONGBRIDGE_FEATURE_SNAPSHOT_PATH" in hk["env_diff"]["added"]
    assert data["steps"] and all({"action", "rollback"} <= set(step) for step in data["steps"])


def test_offline_with_a_lock_says_so(gate, capsys, tmp_path):
    gate.online, gate.lock = UNREACHABLE, FakeLock()
    code = main(["plan", "--images", str(images_dir(tmp_path / "images"))])
    out = capsys.readouterr().out
    assert code == 0, out
    assert "verified from lock at 2026-04-20T09:00:00+00:00; `pulumi up` re-verifies online" in out


def test_offline_without_a_lock_renders_every_service_and_exits_1(gate, capsys):
    gate.online = UNREACHABLE
    code = main(["plan", "--format", "json"])
    data = json.loads(capsys.readouterr().out)
    assert code == 1
    assert data["gate"]["ok"] is False and data["gate"]["unverified"] is True
    assert len(data["services"]) == len(CONFIG.services)
    assert "GITHUB_TOKEN" in data["steps"][0]["action"] and "--git-root" in data["steps"][0]["action"]


def test_failed_gate_exits_1(gate, capsys):
    gate.online = Gate(ok=False, checks=(Check("ues-pins-qpk", False, "UES v0.7.13 pins QPK v0.7.9", "failed"),))
    assert main(["plan"]) == 1
    assert "UES v0.7.13 pins QPK v0.7.9" in capsys.readouterr().out


def test_blocked_service_exits_1(gate, tmp_path, capsys):
    spec = CONFIG.services["ibkr"]
    split = knative_for_spec(
        spec,
        {"STRATEGY_PROFILE": "soxl_soxx_trend_income"},
        traffic=[{"revisionName": "rev-00001", "percent": 50}, {"revisionName": "rev-00002", "percent": 50}],
    )
    new = ["--new", "schwab", "--new", "longbridge-hk", "--new", "longbridge-sg"]
    assert main(["plan", "--live", str(write_json(tmp_path / "ibkr.json", split)), *new]) == 1
    assert "phase:   blocked" in capsys.readouterr().out


@pytest.mark.parametrize(
    "document, message",
    [
        ("{", "not valid JSON"),
        (
            json.dumps(
                {
                    "kind": "Service",
                    "metadata": {"name": "not-configured"},
                    "spec": {"template": {"spec": {"containers": [{"image": "x"}]}}},
                }
            ),
            "not a configured service",
        ),
    ],
)
def test_bad_live_input_exits_2(gate, tmp_path, capsys, document, message):
    path = tmp_path / "live.json"
    path.write_text(document, encoding="utf-8")
    assert main(["plan", "--live", str(path)]) == 2
    assert message in capsys.readouterr().err


def test_missing_explicit_lock_exits_2(gate, tmp_path, capsys):
    assert main(["plan", "--lock", str(tmp_path / "nope.lock.json")]) == 2


@pytest.mark.project_files
def test_make_plan_offline_renders_every_service_without_a_traceback(tmp_path):
    """The real gate, as `make plan` runs it on this machine: no network, no token, the stack's lock if any."""
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "HTTPS_PROXY": "http://127.0.0.1:9", "HTTP_PROXY": "http://127.0.0.1:9"}
    done = subprocess.run(
        [sys.executable, "-m", "release", "plan", "--stack", "prod"],
        cwd=PROJECT_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert "Traceback" not in done.stderr, done.stderr
    assert done.returncode in (0, 1), done.stderr
    for spec in CONFIG.services.values():
        assert spec.service_name in done.stdout
    if not lock_module.lock_path(stack_file("prod")).exists():
        assert done.returncode == 1 and "UNVERIFIED" in done.stdout


def test_plan_with_an_image_missing_from_the_images_dir_exits_1(gate, tmp_path, capsys):
    ibkr = CONFIG.services["ibkr"]
    directory = write_images_dir(tmp_path / "images", [ibkr.image])
    code = main(["plan", "--format", "json", "--images", str(directory)])
    data = json.loads(capsys.readouterr().out)
    assert code == 1
    status = {s["key"]: s["image_check"]["status"] for s in data["services"]}
    assert status == {"ibkr": "present", "schwab": "missing", "longbridge-hk": "missing", "longbridge-sg": "missing"}
    assert data["images_source"] == str(directory)


@pytest.mark.parametrize(
    "document, message",
    [
        ("not json", "not valid JSON"),
        (json.dumps({"image_summary": {}}), "fully_qualified_digest"),
        (json.dumps(image_describe("us-central1-docker.pkg.dev/interactivebrokersquant/other/cloud-run:x")), "no service's image"),
    ],
)
def test_malformed_images_input_exits_2(gate, tmp_path, capsys, document, message):
    path = tmp_path / "image.json"
    path.write_text(document, encoding="utf-8")
    assert main(["plan", "--images", str(path)]) == 2
    assert message in capsys.readouterr().err


def test_malformed_image_reference_in_the_stack_exits_2_naming_service_and_field(gate, tmp_path, capsys):
    text = SEED_STACK_FILE.read_text(encoding="utf-8")
    bad = text.replace(CONFIG.services["schwab"].image, CONFIG.services["schwab"].image.rsplit(":", 1)[0] + "@sha256:abc", 1)
    path = tmp_path / "Pulumi.bad.yaml"
    path.write_text(bad, encoding="utf-8")
    assert main(["plan", "--config-file", str(path)]) == 2
    assert "services.schwab.image" in capsys.readouterr().err


def test_bad_scheduler_config_exits_2_naming_service_and_field(gate, tmp_path, capsys):
    text = SEED_STACK_FILE.read_text(encoding="utf-8")
    block = (
        "      scheduler:\n"
        '        schedule: "45 15 * * 1-8"\n'
        "        timeZone: Asia/HongKong\n"
        "        serviceAccount: longbridge-platform-scheduler@interactivebrokersquant.iam.gserviceaccount.com\n"
    )
    bad = text.replace("      accountRegion: HK\n", "      accountRegion: HK\n" + block, 1)
    path = tmp_path / "Pulumi.bad.yaml"
    path.write_text(bad, encoding="utf-8")
    assert main(["plan", "--config-file", str(path)]) == 2
    err = capsys.readouterr().err
    for field in ("schedule", "timeZone", "serviceAccount"):
        assert f"services.longbridge-hk.scheduler.{field}" in err


def test_plan_reads_live_jobs_with_scheduler(gate, tmp_path, capsys):
    from tests.fixtures.live_json import write_scheduling

    jobs, _ = write_scheduling(tmp_path / "scheduling", CONFIG.services, jobs={"schwab": None})
    argv = ["plan", "--format", "json", "--live", str(old_live_dir(tmp_path / "live")), "--images", str(images_dir(tmp_path / "images"))]
    code = main([*argv, "--scheduler", str(jobs)])
    data = json.loads(capsys.readouterr().out)
    assert code == 0
    actions = {s["key"]: s["scheduler"]["this_update"]["action"] for s in data["services"]}
    assert actions == {"ibkr": "no change", "schwab": "create", "longbridge-hk": "no change", "longbridge-sg": "no change"}
    (jobs / "junk.json").write_text("[1]", encoding="utf-8")
    assert main([*argv, "--scheduler", str(jobs)]) == 2
