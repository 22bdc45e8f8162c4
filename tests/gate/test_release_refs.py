"""The release's shape in a stack file: `packages:` (tag or full commit per distribution name), the seed's
two keys as a shorthand, a QSL bundle, and a service's own `release`. Every bad input names the field and
the fix (exit 2), before anything is asked of a source."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
import yaml

from release.cli import main as cli_main
from release.config import ConfigError
from release.packages import PACKAGES
from release.stack import parse_stack
from tests.fixtures.projects import SEED_STACK_FILE

PROD_RAW = yaml.safe_load(SEED_STACK_FILE.read_text(encoding="utf-8"))["config"]
SERVICES = PROD_RAW["us-equity-cutover:services"]
QPK, UES, HK = (
    "ff09c889ed21e2eb6fcb37f6cdaa159190ec82da",
    "17ddb86c72d44b2c7b78ba7a10d8f71b21180166",
    "b6a8ac2ad3c8110b5ea74fb059c8206388d63bcd",
)
TODAY = {"packages": {"quant-platform-kit": QPK, "us-equity-strategies": UES, "hk-equity-strategies": HK}}


def parsed(release: Any, services: Any = None):
    return parse_stack(release, copy.deepcopy(services or SERVICES))


def refused(release: Any, services: Any = None) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        parsed(release, services)
    return [str(problem) for problem in caught.value.problems]


def test_the_packages_form_names_each_package_by_distribution_name():
    config = parsed(TODAY)
    assert config.release.form == "packages"
    assert config.release.refs == TODAY["packages"]
    assert config.release.quant_platform_kit == QPK and config.release.us_equity_strategies == UES
    assert config.release.describe() == "QPK ff09c88, UES 17ddb86, HK b6a8ac2"


def test_the_seed_keys_are_a_shorthand_for_packages():
    config = parsed({"quantPlatformKit": "v0.7.10", "usEquityStrategies": "v0.7.13"})
    assert config.release.form == "shorthand"
    assert config.release.refs == {"quant-platform-kit": "v0.7.10", "us-equity-strategies": "v0.7.13"}
    assert config.release == parsed(PROD_RAW["us-equity-cutover:release"]).release


def test_a_bundle_names_no_refs_until_the_gate_read_it():
    config = parsed({"bundle": "2026.07.4"})
    assert config.release.form == "bundle" and config.release.refs == {} and config.bundles() == ["2026.07.4"]
    # never a usable ref: what is shown before the bundle is read
    assert config.release.quant_platform_kit == "(bundle 2026.07.4)"
    read = config.with_bundles({"2026.07.4": TODAY["packages"]})
    assert read.release.refs == TODAY["packages"] and read.release.bundle == "2026.07.4"
    assert read.release.describe() == "bundle 2026.07.4 (QPK ff09c88, UES 17ddb86, HK b6a8ac2)"


def test_a_service_release_overrides_the_stacks_for_that_service_only():
    services = copy.deepcopy(SERVICES)
    services["schwab"]["release"] = {"packages": {"quant-platform-kit": "3" * 40, "us-equity-strategies": "b" * 40}}
    config = parsed(TODAY, services)
    assert config.release_for("schwab").refs == {"quant-platform-kit": "3" * 40, "us-equity-strategies": "b" * 40}
    assert config.release_for("ibkr").refs == TODAY["packages"]
    assert config.release_for("schwab").github_owner == config.release.github_owner


def test_the_table_names_every_package_once_with_a_repositories_key():
    from release.config import RepositoryNames

    names = RepositoryNames()
    assert len({package.name for package in PACKAGES}) == len(PACKAGES)
    for package in PACKAGES:
        assert names.for_package(package.name) == package.repository


ROWS = [
    # (what, release, path, words)
    (
        "unknown package",
        {"packages": {**TODAY["packages"], "cn-equity-strategies": HK}},
        "release.packages.cn-equity-strategies",
        ["not a package this project releases", "release/packages.py"],
    ),
    (
        "short commit",
        {"packages": {**TODAY["packages"], "quant-platform-kit": QPK[:12]}},
        "release.packages.quant-platform-kit",
        ["short commit", "all 40 hex digits"],
    ),
    (
        "branch name",
        {"packages": {**TODAY["packages"], "hk-equity-strategies": "hk-low-vol-dividend-quality-20260603"}},
        "release.packages.hk-equity-strategies",
        ["not a release tag or a full commit", "branch"],
    ),
    (
        "empty ref",
        {"packages": {**TODAY["packages"], "us-equity-strategies": ""}},
        "release.packages.us-equity-strategies",
        ["is empty", "v<version>", "40-hex commit"],
    ),
    (
        "uppercase commit",
        {"packages": {**TODAY["packages"], "quant-platform-kit": QPK.upper()}},
        "release.packages.quant-platform-kit",
        ["lowercase", QPK],
    ),
    (
        "a non-canonical tag",
        {"packages": {**TODAY["packages"], "quant-platform-kit": "v0.7.010"}},
        "release.packages.quant-platform-kit",
        ["write it as v0.7.10"],
    ),
    (
        "a ref that is not a string",
        {"packages": {**TODAY["packages"], "quant-platform-kit": 7}},
        "release.packages.quant-platform-kit",
        ["not a string"],
    ),
    ("both forms", {**TODAY, "quantPlatformKit": "v0.7.10"}, "release", ["mixes packages and the two keys"]),
    ("packages beside a bundle", {**TODAY, "bundle": "2026.07.4"}, "release", ["mixes packages and bundle"]),
    ("no QPK", {"packages": {"us-equity-strategies": UES}}, "release", ["lacks quant-platform-kit"]),
    ("half a shorthand", {"quantPlatformKit": "v0.7.10"}, "release", ["usEquityStrategies missing"]),
    ("nothing", {}, "release", ["names no release"]),
    ("a bundle id that is a path", {"bundle": "../../etc/passwd"}, "release.bundle", ["not a bundle id"]),
]


@pytest.mark.parametrize("what, release, path, words", ROWS, ids=[row[0] for row in ROWS])
def test_a_bad_release_names_the_field_and_the_fix(what, release, path, words):
    problems = refused(release)
    assert len(problems) == 1, problems
    assert problems[0].startswith(f"{path}: "), problems
    for word in words:
        assert word in problems[0], (word, problems[0])


def test_a_bad_service_release_names_the_service():
    services = copy.deepcopy(SERVICES)
    services["schwab"]["release"] = {"packages": {"quant-platform-kit": "main", "us-equity-strategies": UES}}
    services["ibkr"]["release"] = {"githubOwner": "someone"}
    problems = refused(TODAY, services)
    assert any(p.startswith("services.schwab.release.packages.quant-platform-kit: 'main' is not a release tag") for p in problems)
    assert any(p.startswith("services.ibkr.release.githubOwner: is not a known field") for p in problems)


def test_a_bad_release_is_exit_2_before_any_source_is_asked(tmp_path: Path, capsys, monkeypatch):
    text = SEED_STACK_FILE.read_text(encoding="utf-8").replace(
        "    quantPlatformKit: v0.7.10\n    usEquityStrategies: v0.7.13\n",
        f"    packages:\n      quant-platform-kit: {QPK[:7]}\n      us-equity-strategies: {UES}\n",
    )
    stack = tmp_path / "Pulumi.today.yaml"
    stack.write_text(text, encoding="utf-8")
    monkeypatch.setenv("GITHUB_API_URL", "http://127.0.0.1:9")  # nothing listens: a question asked would show as unverified
    assert cli_main(["check", "--config-file", str(stack)]) == 2
    err = capsys.readouterr().err
    assert "release.packages.quant-platform-kit: 'ff09c88' is a short commit" in err and "could not verify" not in err
