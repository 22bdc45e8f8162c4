"""The program bench builds what it uses itself (never the tests' fixtures) and still runs the program."""

from __future__ import annotations

import ast
import importlib.util
import json
import os
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[1] / "bench"
# The scripts this project's benches are made of; facts_bench.py is the profile-facts bench's own.
OWN_BUILDERS = ("program_bench.py", "program_stand_ins.py", "gate_bench.py", "github_stub.py")


@pytest.mark.parametrize("name", OWN_BUILDERS)
def test_a_bench_script_imports_nothing_from_the_tests(name):
    tree = ast.parse((BENCH / name).read_text(encoding="utf-8"))
    imported = [node.module or "" for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)]
    imported += [alias.name for node in ast.walk(tree) if isinstance(node, ast.Import) for alias in node.names]
    assert not [module for module in imported if module == "tests" or module.startswith("tests.")]


def test_the_program_bench_registers_the_seed_stack_with_its_own_stand_ins():
    spec = importlib.util.spec_from_file_location("program_bench", BENCH / "program_bench.py")
    assert spec is not None and spec.loader is not None
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    from tests.fixtures.projects import SEED_STACK_FILE

    config = bench.stack_config(SEED_STACK_FILE)
    _, detail = bench.run_child(config, dict(os.environ))
    # Four services, three projects' providers; each service a component, a Cloud Run service, a job and an invoker.
    assert (detail["services"], detail["providers"], detail["resources"]) == (4, 3, 19), json.dumps(detail)
