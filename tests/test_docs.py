"""The project cites its own reference, docs/platform-facts.md, by section, and never a file it lacks."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
FACTS = ROOT / "docs" / "platform-facts.md"
CITATION = re.compile(r"docs/([\w.-]+\.md)(?: (§\d+)(?:-(§\d+)| and (§\d+))?)?")


def tracked_texts() -> dict[str, str]:
    listed = subprocess.run(["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, check=True, timeout=30).stdout.decode()
    texts = {}
    for name in filter(None, listed.split("\0")):
        path = ROOT / name
        if path.suffix in (".py", ".md", ".yaml", ".yml", ".toml", ".ini") and path.is_file():
            texts[name] = path.read_text(encoding="utf-8")
    return texts


# Spelled in two halves so this file does not match itself.
MISSING = ("CONTRACT" + ".md", "CONTRACT" + " §")


@pytest.mark.project_files  # reads every tracked file, the committed stack included
def test_no_file_cites_a_contract_the_repository_lacks():
    offenders = [name for name, text in tracked_texts().items() if any(word in text for word in MISSING)]
    assert offenders == []


@pytest.mark.project_files
def test_every_citation_names_a_doc_and_a_section_that_exist():
    sections = set(re.findall(r"^## (§\d+) ", FACTS.read_text(encoding="utf-8"), re.M))
    assert sections == {f"§{n}" for n in range(1, 9)}
    cited = 0
    for name, text in tracked_texts().items():
        for match in CITATION.finditer(text):
            assert (ROOT / "docs" / match[1]).is_file(), f"{name} cites docs/{match[1]}"
            for section in filter(None, match.groups()[1:]):
                assert section in sections, f"{name} cites {match[0]}"
                cited += 1
    assert cited >= 15  # the code does cite it, section by section


def test_the_readme_points_at_the_reference():
    assert "docs/platform-facts.md" in (ROOT / "README.md").read_text(encoding="utf-8")
