from datetime import datetime, timezone

import pytest

from release.gate.checks import gate_from_lock, run_gate
from release.gate.git_source import GitSource
from release.gate.lock import lock_from_report
from release.gate.pins import PIN_FILES
from tests.fixtures.git_repos import prod_config, seed_git_root
from tests.fixtures.github_fake import (
    IBKR,
    LONGBRIDGE,
    QPK,
    SCHWAB,
    SEED_BASELINE_PINS,
    UES,
    qpk_requirement,
    ues_requirement,
)

NOW = datetime(2026, 4, 20, 9, 30, tzinfo=timezone.utc)


def check(report, check_id):
    return next(c for c in report.checks if c.id == check_id)


def gate(seed, commits=None, lock=None, **bundle):
    commits = {**seed.target, **(commits or {})}
    return run_gate(prod_config(commits, **bundle), GitSource(seed.root), lock)


def with_ibkr_files(seed, files):
    """A new IBKR commit whose pin files are exactly `files` (earlier scenarios' pin files are removed)."""
    return seed.repos[IBKR].commit({**{name: None for name in PIN_FILES}, **files}, "scenario")


def test_seed_with_baseline_commits_fails_naming_each_platforms_stale_pins(seed_repos):
    report = gate(seed_repos, seed_repos.baseline)
    assert not report.ok and not report.unverified
    for key, platform in (("ibkr", IBKR), ("schwab", SCHWAB), ("longbridge-hk", LONGBRIDGE), ("longbridge-sg", LONGBRIDGE)):
        message = check(report, f"platform-pins:{key}").message
        old_qpk, old_ues = SEED_BASELINE_PINS[platform]
        assert (
            f"{platform}@{seed_repos.baseline[platform][:7]} requirements.txt pins quant-platform-kit @{old_qpk}, bundle is v0.7.10"
            in message
        )
        assert f"us-equity-strategies @{old_ues}, bundle is v0.7.13" in message
    assert check(report, "qpk-tag").ok and check(report, "ues-pins-qpk").ok


def test_seed_with_target_commits_passes_and_records_the_facts(seed_repos):
    report = gate(seed_repos)
    assert report.ok, report.render_text()
    assert report.facts.commits[(QPK, "v0.7.10")] == seed_repos.qpk_tags["v0.7.10"]  # annotated tag peeled
    assert report.facts.commits[(UES, "v0.7.13")] == seed_repos.ues_tags["v0.7.13"]
    assert report.facts.release.kit_pins["us-equity-strategies"][0].ref == "v0.7.10"
    assert report.facts.services["ibkr"].commit == seed_repos.target[IBKR]
    assert check(report, "platform-ci").status == "skipped" and "--source github" in check(report, "platform-ci").message


def test_branch_ref_is_refused(seed_repos):
    sha = with_ibkr_files(seed_repos, {"requirements.txt": f"{qpk_requirement('v0.7.10')}\n{ues_requirement('main')}\n"})
    report = gate(seed_repos, {IBKR: sha})
    assert check(report, "platform-pins:ibkr").status == "failed"
    refs = check(report, "pin-refs")
    assert refs.status == "failed" and "us-equity-strategies @main (a branch or unknown ref)" in refs.message and "v0.7.13" in refs.message


def test_short_sha_is_refused(seed_repos):
    short = seed_repos.qpk_tags["v0.7.10"][:10]
    sha = with_ibkr_files(seed_repos, {"requirements.txt": f"{qpk_requirement(short)}\n{ues_requirement('v0.7.13')}\n"})
    assert "a short sha" in check(gate(seed_repos, {IBKR: sha}), "pin-refs").message


def test_fork_url_is_refused(seed_repos):
    fork = qpk_requirement("v0.7.10", owner="someone")
    sha = with_ibkr_files(seed_repos, {"requirements.txt": f"{fork}\n{ues_requirement('v0.7.13')}\n"})
    report = gate(seed_repos, {IBKR: sha})
    assert "someone/QuantPlatformKit, not QuantStrategyLab/QuantPlatformKit" in check(report, "pin-refs").message
    assert check(report, "platform-pins:ibkr").status == "failed"


def _pyproject(qpk_ref, ues_ref, override=None):
    deps = f'"{qpk_requirement(qpk_ref)}", "{ues_requirement(ues_ref)}"'
    text = f'[project]\nname = "platform"\nversion = "1"\ndependencies = [{deps}]\n'
    if override:
        text += f'[tool.uv]\noverride-dependencies = ["{qpk_requirement(override)}"]\n'
    return text


def _uv_lock(qpk_sha, ues_sha):
    return (
        "version = 1\n"
        f'[[package]]\nname = "quant-platform-kit"\nversion = "0"\nsource = {{ git = "https://github.com/QuantStrategyLab/QuantPlatformKit.git?rev={qpk_sha}#{qpk_sha}" }}\n'
        f'[[package]]\nname = "us-equity-strategies"\nversion = "0"\nsource = {{ git = "https://github.com/QuantStrategyLab/UsEquityStrategies.git?rev={ues_sha}#{ues_sha}" }}\n'
    )


def test_sha_pins_that_match_the_tags_pass_in_pyproject_overrides_and_uv_lock(seed_repos):
    qpk, ues = seed_repos.qpk_tags["v0.7.10"], seed_repos.ues_tags["v0.7.13"]
    sha = with_ibkr_files(
        seed_repos, {"requirements.txt": None, "pyproject.toml": _pyproject(qpk, ues, override=qpk), "uv.lock": _uv_lock(qpk, ues)}
    )
    report = gate(seed_repos, {IBKR: sha})
    result = check(report, "platform-pins:ibkr")
    assert result.status == "passed", result.message
    assert "pyproject.toml, uv.lock" in result.message
    assert {pin.file for pin in report.facts.services["ibkr"].pins} == {
        "pyproject.toml [project].dependencies",
        "pyproject.toml [tool.uv] override-dependencies",
        "uv.lock",
    }


def test_sha_pin_of_another_commit_fails_with_expected_and_found(seed_repos):
    old = seed_repos.qpk_tags["v0.7.9"]
    sha = with_ibkr_files(seed_repos, {"requirements.txt": None, "pyproject.toml": _pyproject(old, "v0.7.13")})
    message = check(gate(seed_repos, {IBKR: sha}), "platform-pins:ibkr").message
    expected = seed_repos.qpk_tags["v0.7.10"][:7]
    assert f"pyproject.toml [project].dependencies pins quant-platform-kit @{old[:7]}, bundle is v0.7.10 (= {expected})" in message


def test_pyproject_and_uv_lock_disagreeing_fail(seed_repos):
    qpk_old, ues = seed_repos.qpk_tags["v0.7.9"], seed_repos.ues_tags["v0.7.13"]
    sha = with_ibkr_files(
        seed_repos, {"requirements.txt": None, "pyproject.toml": _pyproject("v0.7.10", "v0.7.13"), "uv.lock": _uv_lock(qpk_old, ues)}
    )
    message = check(gate(seed_repos, {IBKR: sha}), "platform-pins:ibkr").message
    assert "install files disagree on quant-platform-kit" in message and f"uv.lock pins quant-platform-kit @{qpk_old[:7]}" in message


def test_a_platform_that_does_not_pin_ues_fails(seed_repos):
    sha = with_ibkr_files(seed_repos, {"requirements.txt": qpk_requirement("v0.7.10") + "\n"})
    assert "does not pin us-equity-strategies" in check(gate(seed_repos, {IBKR: sha}), "platform-pins:ibkr").message


def test_unknown_commit_fails(seed_repos):
    message = check(gate(seed_repos, {IBKR: "2" * 40}), "platform-pins:ibkr").message
    assert "services.ibkr.commit" in message and "not found" in message


def test_ues_pinning_a_newer_qpk_than_the_bundle_fails_the_order(seed_repos):
    report = gate(seed_repos, qpk="v0.7.9")
    order = check(report, "order")
    assert order.status == "failed" and "v0.7.10, newer than the bundle's QPK v0.7.9" in order.message
    assert check(report, "ues-pins-qpk").status == "failed"


def test_moving_to_older_tags_is_reported_as_a_rollback(seed_repos):
    lock = lock_from_report(gate(seed_repos), NOW)
    report = gate(seed_repos, lock=lock, qpk="v0.7.8", ues="v0.7.11")
    assert report.rollback
    order = check(report, "order")
    assert order.status == "passed" and "ROLLBACK" in order.message and "QPK v0.7.10 -> v0.7.8" in order.message
    assert check(report, "tag-immutable").status == "passed"
    assert not gate(seed_repos, lock=lock).rollback


def test_a_moved_tag_fails_against_the_lock(tmp_path):
    seed = seed_git_root(tmp_path)
    lock = lock_from_report(gate(seed), NOW)
    qpk = seed.repos[QPK]
    qpk.commit({"fix.py": "x = 1\n"}, "hotfix")
    qpk.tag("v0.7.10", force=True)
    report = gate(seed, lock=lock)
    moved = check(report, "tag-immutable")
    assert moved.status == "failed" and "tag v0.7.10 now resolves to" in moved.message
    assert f"recorded {seed.qpk_tags['v0.7.10'][:7]}" in moved.message and "new tag" in moved.message


def test_a_missing_clone_is_an_unreachable_error(tmp_path):
    report = run_gate(prod_config(), GitSource(tmp_path))
    assert not report.ok and report.unverified and report.unreachable
    assert check(report, "qpk-tag").status == "error" and "git clone" in check(report, "qpk-tag").message


def test_gate_from_lock_passes_when_config_matches_and_names_the_lock(seed_repos):
    lock = lock_from_report(gate(seed_repos), NOW)
    report = gate_from_lock(prod_config(seed_repos.target), lock)
    assert report.ok and report.verified_from == "lock at 2026-04-20T09:30:00Z"
    assert all("verified from lock at 2026-04-20T09:30:00Z" in c.message for c in report.checks if c.status == "passed")


@pytest.mark.parametrize(
    "commits, bundle, check_id, words",
    [
        ({IBKR: "3" * 40}, {}, "platform-pins:ibkr", "services.ibkr.commit is 3333333"),
        ({}, {"qpk": "v0.7.9"}, "qpk-tag", "release.quantPlatformKit"),
    ],
)
def test_gate_from_lock_fails_on_any_difference_naming_field_and_fix(seed_repos, commits, bundle, check_id, words):
    lock = lock_from_report(gate(seed_repos), NOW)
    report = gate_from_lock(prod_config({**seed_repos.target, **commits}, **bundle), lock)
    result = check(report, check_id)
    assert result.status == "failed" and words in result.message and "python -m release lock" in result.message
    assert not report.ok


def test_report_text_escapes_control_characters_from_server_messages():
    # A server's message is data: a newline in it must not forge a PASS line, ESC must not reach the terminal.
    from release.config import ReleaseBundle
    from release.gate.checks import CheckResult, GateReport

    bundle = ReleaseBundle(quantPlatformKit="v0.7.10", usEquityStrategies="v0.7.13")
    report = GateReport(bundle, [CheckResult("qpk-tag", "failed", "not found\n  PASS  qpk-tag: fine\x1b[2J")], "github", "github")
    text = report.render_text()
    assert "\n  PASS" not in text and "\x1b" not in text
    assert "not found\\n  PASS  qpk-tag: fine\\x1b[2J" in text


def test_the_seed_stack_keeps_its_check_ids_in_their_order(seed_fake):
    from release.gate.github_source import GitHubSource
    from tests.fixtures.github_fake import OWNER

    report = run_gate(prod_config(), GitHubSource(OWNER, base_url=seed_fake.base_url))
    keys = ("ibkr", "longbridge-hk", "longbridge-sg", "schwab")
    assert [c.id for c in report.checks] == [
        "qpk-tag", "ues-tag", "ues-pins-qpk", *(f"platform-pins:{k}" for k in keys), "pin-refs", "tag-immutable", "order",
        *(f"platform-ci:{k}" for k in keys), *(f"profile-facts:{k}" for k in keys),
    ]  # fmt: skip
    assert report.ok and not any(c.warnings for c in report.checks)
