"""Progress lines for waits over a second (stderr, when it is a terminal or --progress is given), and a
`--help` that says what each command does, its exit codes and examples, with `--version`."""

from __future__ import annotations

import io
import os
import re
import stat
import sys
import time

import pytest

from release import __version__
from release import progress as progress_module
from release.cli import main
from release.progress import Progress
from release.stack import load_stack_file
from tests.fixtures.live_json import knative_for_spec, write_live_dir
from tests.fixtures.projects import SEED_STACK_FILE

CONFIG = load_stack_file(SEED_STACK_FILE)


def test_a_wait_over_the_threshold_gets_lines_and_a_done_line():
    stream = io.StringIO()
    watch = Progress(stream, after=0.05, repeat=0.05)
    with watch.waiting("gcloud run services describe x\nforged"):
        # Waits as long as it takes for two lines, however loaded the machine (bounded).
        deadline = time.monotonic() + 10
        while stream.getvalue().count("\n") < 2 and time.monotonic() < deadline:
            time.sleep(0.01)
    lines = stream.getvalue().splitlines()
    assert re.fullmatch(r"\.\.\. gcloud run services describe x\\nforged \(\d+s\)", lines[0]), lines
    assert len(lines) >= 3 and re.fullmatch(r"\.\.\. gcloud run services describe x\\nforged: done in \d+\.\ds", lines[-1])
    quiet = io.StringIO()
    with Progress(quiet, after=0.5).waiting("fast"):
        pass
    assert quiet.getvalue() == ""
    with Progress(None, after=0.0).waiting("nowhere"):
        time.sleep(0.01)


def test_a_body_that_raises_still_ends_its_watch():
    stream = io.StringIO()
    with pytest.raises(RuntimeError):
        with Progress(stream, after=0.01).waiting("boom"):
            deadline = time.monotonic() + 10
            while not stream.getvalue() and time.monotonic() < deadline:
                time.sleep(0.01)
            raise RuntimeError("x")
    assert stream.getvalue().splitlines()[-1].startswith("... boom: done in")


@pytest.fixture
def slow_gcloud(tmp_path, monkeypatch):
    """A gcloud on PATH that answers each describe after 0.3 s."""
    answers = tmp_path / "answers"
    write_live_dir(answers, [knative_for_spec(spec, {"STRATEGY_PROFILE": spec.strategy_profile}) for spec in CONFIG.services.values()])
    script = tmp_path / "bin" / "gcloud"
    script.parent.mkdir()
    script.write_text(
        f"#!{sys.executable}\nimport pathlib, sys, time\ntime.sleep(0.3)\n"
        f"sys.stdout.write((pathlib.Path({str(answers)!r}) / (sys.argv[4] + '.json')).read_text())\n",
        encoding="utf-8",
    )
    script.chmod(script.stat().st_mode | stat.S_IEXEC)
    monkeypatch.setenv("PATH", f"{script.parent}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setattr(progress_module.PROGRESS, "after", 0.1)


def test_progress_reports_each_slow_gcloud_call_only_when_asked(slow_gcloud, capsys, tmp_path):
    out = tmp_path / "services.yaml"
    assert main(["adopt", "--live", "gcloud", "--output", str(out), "--progress"]) in (0, 2)
    err = capsys.readouterr().err
    for spec in CONFIG.services.values():
        assert f"... gcloud run services describe {spec.service_name}" in err
        assert any(
            line.startswith(f"... gcloud run services describe {spec.service_name}") and ": done in" in line for line in err.splitlines()
        )
    # stderr is not a terminal here: without --progress the same waits are silent.
    main(["adopt", "--live", "gcloud", "--output", str(out)])
    assert "... gcloud" not in capsys.readouterr().err


def test_help_names_exit_codes_and_examples_for_every_command(capsys):
    with pytest.raises(SystemExit) as done:
        from release.cli import build_parser

        build_parser().parse_args(["--help"])
    assert done.value.code == 0
    top = capsys.readouterr().out
    assert "exit codes:" in top and "  2  bad input" in top and "examples:" in top
    assert "argument parsing and output only" not in top
    for command in ("check", "lock", "plan", "verify", "adopt"):
        assert main([command, "--help"]) == 0
        text = capsys.readouterr().out
        assert "exit codes:" in text and f"python -m release {command}" in text.split("examples:", 1)[1], command
        assert "--progress" in text


def test_version(capsys):
    assert main(["--version"]) == 0
    out = capsys.readouterr().out
    assert out.startswith(f"python -m release {__version__} (pulumi 3.") and "pulumi-gcp " in out
