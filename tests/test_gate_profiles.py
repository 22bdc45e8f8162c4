"""release/gate/profile_checks.py: the gate's `profile-facts:<key>` checks, proved by running each platform
commit's registry over the fetched trees, from real git clones and the GitHub fake."""

from __future__ import annotations

import os
from datetime import datetime, timezone

from release.gate.checks import gate_from_lock, run_gate
from release.gate.git_source import GitSource
from release.gate.github_source import GitHubSource
from release.gate.lock import lock_from_report
from tests.fixtures.git_repos import prod_config
from tests.fixtures.github_fake import IBKR, LONGBRIDGE, OWNER, QPK, SCHWAB, SEED_TARGET_COMMITS, UES, prod_seed_repos, running
from tests.fixtures.profile_sources import SEED_ALLOWLISTS, registry_py

NOW = datetime(2026, 4, 20, 9, 30, tzinfo=timezone.utc)
KEYS = ("ibkr", "longbridge-hk", "longbridge-sg", "schwab")


def check(report, check_id):
    return next(c for c in report.checks if c.id == check_id)


def git_gate(seed, commits=None, config=None):
    config = config or prod_config({**seed.target, **(commits or {})})
    return run_gate(config, GitSource(seed.root))


def test_seed_facts_are_proved_by_running_each_registry_over_git(seed_repos):
    report = git_gate(seed_repos)
    assert report.ok, report.render_text()
    for key in KEYS:
        assert check(report, f"profile-facts:{key}").status == "passed"
    hk = check(report, "profile-facts:longbridge-hk").message
    assert (
        "qqq_tech_enhancement (QQQ Tech Enhancement; us_equity; snapshot_backed, manifest tech_pullback_cash_buffer.feature_snapshot.v1"
        in hk
    )
    assert "no bundled config (module defaults unless a config path is set)" in hk
    # how it was proved, in the check's own words: the functions run and the environment they ran in
    assert "proved by running get_platform_profile_status_matrix, STRATEGY_CATALOG, get_platform_runtime_adapter" in hk
    assert "(pinned sources only, isolated: " in hk
    facts = report.facts.profiles
    ibkr = facts.for_service("ibkr")
    assert (ibkr.repo, ibkr.commit) == (IBKR, seed_repos.target[IBKR])
    assert {(p.repo, p.ref, p.commit) for p in ibkr.packages} == {
        (QPK, "v0.7.10", seed_repos.qpk_tags["v0.7.10"]),
        (UES, "v0.7.13", seed_repos.ues_tags["v0.7.13"]),
    }
    assert facts.enabled_on("schwab") == ["soxl_soxx_trend_income", "tqqq_growth_income"]
    assert facts.requirements("qqq_tech_enhancement", "ibkr").strategy_config == "bundled_or_env"
    assert facts.requirements("qqq_tech_enhancement", "longbridge-hk").strategy_config == "env_or_module_defaults"
    assert facts.display_name("semiconductor_trend_income", "schwab") == "SOXL/SOXX Semiconductor Trend Income"


def test_a_profile_outside_the_platform_commits_enabled_set_fails_the_check(seed_repos):
    config = prod_config(seed_repos.target)
    schwab = config.services["schwab"].model_copy(update={"strategy_profile": "russell_1000_multi_factor_defensive"})
    report = git_gate(seed_repos, config=config.model_copy(update={"services": {**config.services, "schwab": schwab}}))
    result = check(report, "profile-facts:schwab")
    assert result.status == "failed" and not report.ok
    assert "russell_1000_multi_factor_defensive is not a profile the registry of schwab at CharlesSchwabPlatform@" in result.message
    assert "enabled there: soxl_soxx_trend_income, tqqq_growth_income" in result.message
    # Facts are facts: they were proved, so they are recorded even though the config is refused.
    assert report.facts.profiles is not None


def test_an_alias_or_unknown_name_in_the_config_fails_naming_the_registry(seed_repos):
    config = prod_config(seed_repos.target)
    services = {
        **config.services,
        "schwab": config.services["schwab"].model_copy(update={"strategy_profile": "qqq_tqqq_growth_income"}),
        "ibkr": config.services["ibkr"].model_copy(update={"strategy_profile": "mystery_rotation"}),
    }
    report = git_gate(seed_repos, config=config.model_copy(update={"services": services}))
    alias = check(report, "profile-facts:schwab").message
    assert "qqq_tqqq_growth_income is an old alias in the registry of schwab at CharlesSchwabPlatform@" in alias
    assert "; write tqqq_growth_income" in alias
    assert "mystery_rotation is not a profile the registry of ibkr" in check(report, "profile-facts:ibkr").message


def test_a_widened_allowlist_at_a_later_platform_commit_changes_what_passes(seed_repos):
    repo = seed_repos.repos[LONGBRIDGE]
    narrow = repo.commit({"strategy_registry.py": registry_py("longbridge", ("soxl_soxx_trend_income", "tqqq_growth_income"))}, "narrow")
    wide = repo.commit({"strategy_registry.py": registry_py("longbridge", SEED_ALLOWLISTS["longbridge"])}, "widen")
    before = git_gate(seed_repos, {LONGBRIDGE: narrow})
    assert check(before, "profile-facts:longbridge-hk").status == "failed"
    assert (
        "qqq_tech_enhancement is not enabled on longbridge at LongBridgePlatform@" in check(before, "profile-facts:longbridge-hk").message
    )
    assert check(before, "profile-facts:longbridge-sg").status == "passed"
    after = git_gate(seed_repos, {LONGBRIDGE: wide})
    assert check(after, "profile-facts:longbridge-hk").status == "passed"
    assert after.facts.profiles.enabled_on("longbridge-hk") == ["qqq_tech_enhancement", "soxl_soxx_trend_income", "tqqq_growth_income"]


def test_a_registry_that_raises_leaves_that_platform_unverified_through_github():
    repos = prod_seed_repos()
    schwab = repos[f"{OWNER}/{SCHWAB}"]
    target = SEED_TARGET_COMMITS[SCHWAB]
    schwab.commits[target]["strategy_registry.py"] += "raise RuntimeError('registry broken at \\x1b[31mthis commit')\n"
    with running(repos) as fake:
        report = run_gate(prod_config(), GitHubSource(OWNER, base_url=fake.base_url))
    assert not report.ok and report.unverified and report.facts.profiles is None
    result = check(report, "profile-facts:schwab")
    assert result.status == "error" and f"{SCHWAB}@{target[:7]} (services.schwab.commit)" in result.message
    assert "run schwab's registry: exited with status 1" in result.message and "RuntimeError: registry broken" in result.message
    assert "\x1b" not in result.message  # its stderr is data: control characters escaped
    assert check(report, "profile-facts:ibkr").status == "passed"  # other platforms are proved as usual


def test_seed_facts_through_github_match_git_and_fetch_each_tree_once(seed_repos):
    with running(prod_seed_repos()) as fake:
        report = run_gate(prod_config(), GitHubSource(OWNER, base_url=fake.base_url, token="ghp_" + "t" * 36))
        assert report.ok, report.render_text()
        # The two LongBridge services share a commit: its tree is fetched once, as are QPK's and UES's; the
        # probe runs over those trees (no second download).
        archives = [line for line in fake.requests if "/_codeload/" in line]
        assert len(archives) == len(set(archives)) == 5
    facts = report.facts.profiles
    assert facts.for_service("longbridge-hk") == facts.for_service("longbridge-sg")
    assert facts.for_service("schwab").commit == SEED_TARGET_COMMITS[SCHWAB]
    from_git = git_gate(seed_repos).facts.profiles
    assert facts.for_service("ibkr").profiles == from_git.for_service("ibkr").profiles


def test_the_token_never_reaches_the_probe(tmp_path, monkeypatch):
    """A registry that writes its whole environment where the test can look: no credential of the gate's."""
    token = "ghp_" + "s" * 36
    spill = tmp_path / "environ.txt"
    repos = prod_seed_repos()
    ibkr = repos[f"{OWNER}/{IBKR}"]
    ibkr.commits[SEED_TARGET_COMMITS[IBKR]]["strategy_registry.py"] += (
        f"import os\nopen({str(spill)!r}, 'w').write(repr(dict(os.environ)))\n"
    )
    monkeypatch.setenv("GITHUB_TOKEN", token)
    monkeypatch.setenv("GOOGLE_APPLICATION_CREDENTIALS", str(tmp_path / "adc.json"))
    with running(repos) as fake:
        report = run_gate(prod_config(), GitHubSource(OWNER, base_url=fake.base_url, token=token))
    written = spill.read_text()
    assert "GITHUB_TOKEN" not in written and token not in written and "GOOGLE_" not in written
    assert check(report, "profile-facts:ibkr").status == "passed"
    assert token not in report.render_text()
    assert os.environ["GITHUB_TOKEN"] == token  # the gate's own environment is untouched


def test_a_source_fault_on_a_tree_is_unverified_not_failed():
    with running(prod_seed_repos()) as fake:
        fake.add_fault(f"/_codeload/{OWNER}/{SCHWAB}/", "500")  # the archive of Schwab's commit, where its registry is
        report = run_gate(prod_config(), GitHubSource(OWNER, base_url=fake.base_url, backoff=0.0))
    result = check(report, "profile-facts:schwab")
    assert result.status == "error" and "are not proved" in result.message and report.unverified


def test_the_lock_carries_the_facts_and_the_offline_gate_judges_from_them(seed_repos):
    report = git_gate(seed_repos)
    lock = lock_from_report(report, NOW)
    offline = gate_from_lock(prod_config(seed_repos.target), lock)
    assert offline.ok, offline.render_text()
    message = check(offline, "profile-facts:longbridge-hk").message
    assert "verified from lock" in message and "pinned sources only" in message
    assert offline.facts.profiles.requirements("tqqq_growth_income", "schwab") is not None
    # The config moves Schwab to a profile its locked commit does not enable: the lock says no, offline.
    config = prod_config(seed_repos.target)
    schwab = config.services["schwab"].model_copy(update={"strategy_profile": "global_etf_rotation"})
    moved = gate_from_lock(config.model_copy(update={"services": {**config.services, "schwab": schwab}}), lock)
    assert check(moved, "profile-facts:schwab").status == "failed"
    # Another platform commit than the lock proved has no facts there: never judged by another commit's.
    other = prod_config({**seed_repos.target, SCHWAB: seed_repos.baseline[SCHWAB]})
    elsewhere = gate_from_lock(other, lock)
    assert check(elsewhere, "profile-facts:schwab").status == "failed"
    assert elsewhere.facts.profiles is None or elsewhere.facts.profiles.for_service("schwab") is None


def test_a_registry_that_hangs_is_killed_at_the_deadline_and_its_services_are_unverified(seed_repos, monkeypatch):
    import time

    from release.gate import profile_checks

    monkeypatch.setattr(profile_checks, "FACTS_DEADLINE_SECONDS", 5.0)
    repo = seed_repos.repos[LONGBRIDGE]
    hanging = repo.commit(
        {"strategy_registry.py": registry_py("longbridge", SEED_ALLOWLISTS["longbridge"], extra="import time\ntime.sleep(600)\n")}, "hang"
    )
    started = time.monotonic()
    report = git_gate(seed_repos, {LONGBRIDGE: hanging})
    assert time.monotonic() - started < 30
    for key in ("longbridge-hk", "longbridge-sg"):
        result = check(report, f"profile-facts:{key}")
        assert result.status == "error" and "did not finish before its deadline (killed)" in result.message
    assert report.facts.profiles is None and not report.ok
