"""YAML 1.2 core schema: the CLI reads a stack file the way the Pulumi CLI hands it to the program."""

from __future__ import annotations

import json
import math

import pulumi
import pytest

from release.cli import main
from release.config import PROJECT_NAME
from release.yaml_core import load_core
from tests.fixtures.pulumi_mocks import PROD_STACK_FILE, run_main


@pytest.mark.parametrize("word", ["off", "no", "on", "yes", "y", "n", "Off", "NO"])
def test_yaml_1_1_boolean_words_are_strings(word):
    assert load_core(f"flag: {word}\n") == {"flag": word}


@pytest.mark.parametrize(
    ("text", "value"),
    [("true", True), ("False", False), ("012", 12), ("0o17", 15), ("0x1F", 31), ("1.5", 1.5), ("~", None), ("", None)],
)
def test_core_schema_scalars(text, value):
    assert load_core(f"v: {text}\n") == {"v": value}


@pytest.mark.parametrize("text", ["1:20", "2026-04-01", "1_000", "0b101", ".5.5"])
def test_yaml_1_1_only_forms_are_strings(text):
    assert load_core(f"v: {text}\n") == {"v": text}


def test_infinity_and_nan_are_floats():
    document = load_core("a: .inf\nb: -.INF\nc: .nan\n")
    assert document["a"] == math.inf and document["b"] == -math.inf and math.isnan(document["c"])


def _prod_with_ibkr_dry_run(word: str) -> str:
    text = PROD_STACK_FILE.read_text(encoding="utf-8")
    first = "      dryRunOnly: keep\n"
    assert first in text
    return text.replace(first, f"      dryRunOnly: {word}\n", 1)


def _program_config(text: str) -> dict[str, str]:
    # What the Pulumi CLI hands the program: each project key, objects as JSON (YAML 1.2: `off` is a string).
    document = load_core(text)
    return {key: value if isinstance(value, str) else json.dumps(value) for key, value in document["config"].items()}


@pytest.mark.parametrize("word", ["off", "no", "on", "yes", '"true"', '"false"', "1"])
def test_an_ambiguous_dry_run_flag_gets_the_same_refusal_from_the_cli_and_the_program(tmp_path, capsys, monkeypatch, word):
    text = _prod_with_ibkr_dry_run(word)
    path = tmp_path / "Pulumi.test.yaml"
    path.write_text(text, encoding="utf-8")

    assert main(["plan", "--config-file", str(path)]) == 2
    cli_error = capsys.readouterr().err
    assert "services.ibkr.dryRunOnly:" in cli_error and "use true, false or keep" in cli_error

    for name in ("CUTOVER_SOURCE", "CUTOVER_GIT_ROOT", "GITHUB_TOKEN", "GITHUB_API_URL"):
        monkeypatch.delenv(name, raising=False)
    run = run_main(_program_config(text))
    assert isinstance(run.error, pulumi.RunError) and run.resources == []
    program_lines = [line for line in str(run.error).splitlines() if "dryRunOnly" in line]
    cli_lines = [line for line in cli_error.splitlines() if "dryRunOnly" in line]
    assert program_lines == cli_lines and len(cli_lines) == 1


@pytest.mark.parametrize(("word", "value"), [("true", True), ("false", False), ("keep", "keep")])
def test_an_explicit_dry_run_flag_reads_the_same_both_ways(tmp_path, word, value):
    from release.stack import load_stack_file, parse_stack

    text = _prod_with_ibkr_dry_run(word)
    path = tmp_path / "Pulumi.test.yaml"
    path.write_text(text, encoding="utf-8")
    from_file = load_stack_file(path).services["ibkr"].dry_run_only
    raw = _program_config(text)
    from_program = (
        parse_stack(json.loads(raw[f"{PROJECT_NAME}:release"]), json.loads(raw[f"{PROJECT_NAME}:services"])).services["ibkr"].dry_run_only
    )
    assert from_file == from_program == value
