"""The static checks `make lint` runs keep their promises: strict mypy on components/ and release/, the ruff
rules, and every per-line suppression carries its reason.

The tools themselves run in `make lint`; this guards what a tool cannot see: a weakened configuration, or
an ignore that says nothing about why.
"""

from __future__ import annotations

import io
import re
import subprocess
import tokenize
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# A type-ignore or a no-qa comment with its codes, then whatever follows on the line.
SUPPRESSION = re.compile(r"#\s*(?:type:\s*ignore(?:\[[^\]]*\])?|noqa(?::\s*[A-Z]+[0-9]+(?:\s*,\s*[A-Z]+[0-9]+)*)?)(?P<rest>.*)$")


def python_files() -> list[Path]:
    listed = subprocess.run(["git", "ls-files", "*.py"], cwd=ROOT, capture_output=True, text=True, check=True, timeout=30)
    return [ROOT / name for name in listed.stdout.split()]


def unexplained(text: str) -> list[int]:
    """Lines whose suppression comment is not followed by a reason (a few words, not just punctuation)."""
    lines = []
    for token in tokenize.generate_tokens(io.StringIO(text).readline):
        match = SUPPRESSION.search(token.string) if token.type == tokenize.COMMENT else None
        if match and not re.search(r"[A-Za-z]{3,}", match["rest"]):
            lines.append(token.start[0])
    return lines


def test_every_suppression_says_why():
    missing = [f"{path.relative_to(ROOT)}:{n}" for path in python_files() for n in unexplained(path.read_text(encoding="utf-8"))]
    assert not missing, "a per-line ignore carries its reason (`# noqa: E402 - why`): " + ", ".join(missing)


def test_the_reason_rule_tells_a_reason_from_none():
    assert unexplained("x = f()  # type: ignore[arg-type]\ny = g()  # noqa: E731\n") == [1, 2]
    assert unexplained("x = f()  # type: ignore[arg-type]  # pydantic checks it\ny = 1  # noqa: E402 - after the path setup\n") == []
    assert unexplained("import os  # noqa\n") == [1]


def test_mypy_is_strict_on_components_and_release_and_ruff_keeps_its_rules():
    settings = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["tool"]
    mypy = settings["mypy"]
    assert mypy["strict"] is True and set(mypy["files"]) == {"components", "release"}
    # No module of ours is exempted; only third-party modules without type information may be.
    for override in mypy.get("overrides", []):
        modules = override["module"] if isinstance(override["module"], list) else [override["module"]]
        assert not any(m.split(".")[0] in {"components", "release", "tests"} for m in modules), override
        assert set(override) <= {"module", "ignore_missing_imports"}, override
    lint = settings["ruff"]["lint"]
    assert {"E", "F", "W", "I", "B"} <= set(lint["select"]) and set(lint.get("ignore", [])) <= {"E501"}
    assert "per-file-ignores" not in lint


def test_make_lint_runs_ruff_and_mypy():
    makefile = (ROOT / "Makefile").read_text(encoding="utf-8")
    lint = makefile.split("\nlint:", 1)[1].split("\n\n", 1)[0]
    assert "ruff check ." in lint and "ruff format --check ." in lint and "bin/mypy" in lint
