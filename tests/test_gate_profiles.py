"""release/gate/profile_checks.py: the gate's `profile-facts:<key>` checks, over real git clones and the GitHub fake."""

from __future__ import annotations

from datetime import datetime, timezone

from release.gate.checks import gate_from_lock, run_gate
from release.gate.git_source import GitSource
from release.gate.github_source import GitHubSource
from release.gate.lock import lock_from_report
from tests.fixtures.git_repos import prod_config
from tests.fixtures.github_fake import LONGBRIDGE, OWNER, SCHWAB, SEED_TARGET_COMMITS, UES, prod_seed_repos, running
from tests.fixtures.profile_sources import BUNDLED_CONFIG, PACKAGE_DIR, SEED_ALLOWLISTS, registry_py, runtime_adapters_py

NOW = datetime(2026, 4, 20, 9, 30, tzinfo=timezone.utc)
KEYS = ("ibkr", "longbridge-hk", "longbridge-sg", "schwab")


def check(report, check_id):
    return next(c for c in report.checks if c.id == check_id)


def git_gate(seed, commits=None, config=None):
    config = config or prod_config({**seed.target, **(commits or {})})
    return run_gate(config, GitSource(seed.root))


def test_seed_facts_are_proved_over_git_with_their_provenance(seed_repos):
    report = git_gate(seed_repos)
    assert report.ok, report.render_text()
    for key in KEYS:
        assert check(report, f"profile-facts:{key}").status == "passed"
    hk = check(report, "profile-facts:longbridge-hk").message
    assert "qqq_tech_enhancement (QQQ Tech Enhancement; snapshot_backed, manifest tech_pullback_cash_buffer.feature_snapshot.v1" in hk
    assert "no bundled config (module defaults unless a config path is set)" in hk
    assert f"read from {UES}@v0.7.13:{PACKAGE_DIR}/catalog.py (blob " in hk and "strategy_registry.py" in hk
    facts = report.facts.profiles
    assert facts.ues_tag == "v0.7.13" and facts.bundle.commit == seed_repos.ues_tags["v0.7.13"]
    assert facts.enabled_on("schwab") == ["soxl_soxx_trend_income", "tqqq_growth_income"]
    assert facts.requirements("qqq_tech_enhancement", "ibkr").strategy_config == "bundled_or_env"
    assert facts.requirements("qqq_tech_enhancement", "longbridge-hk").strategy_config == "env_or_module_defaults"
    assert facts.display_name("semiconductor_trend_income") == "SOXL/SOXX Semiconductor Trend Income"


def test_a_profile_outside_the_platform_commits_enabled_set_fails_the_check(seed_repos):
    config = prod_config(seed_repos.target)
    schwab = config.services["schwab"].model_copy(update={"strategy_profile": "qqq_tech_enhancement"})
    report = git_gate(seed_repos, config=config.model_copy(update={"services": {**config.services, "schwab": schwab}}))
    result = check(report, "profile-facts:schwab")
    assert result.status == "failed" and not report.ok
    assert "services.schwab.strategyProfile: qqq_tech_enhancement is not runtime-enabled on schwab" in result.message
    assert "UES lists it for ibkr, longbridge only" in result.message
    assert "enabled there: soxl_soxx_trend_income, tqqq_growth_income" in result.message
    # Facts are facts: they were read, so they are recorded even though the config is refused.
    assert report.facts.profiles is not None


def test_an_alias_or_unknown_name_in_the_config_fails_naming_the_catalog(seed_repos):
    config = prod_config(seed_repos.target)
    services = {
        **config.services,
        "schwab": config.services["schwab"].model_copy(update={"strategy_profile": "qqq_tqqq_growth_income"}),
        "ibkr": config.services["ibkr"].model_copy(update={"strategy_profile": "mystery_rotation"}),
    }
    report = git_gate(seed_repos, config=config.model_copy(update={"services": services}))
    assert (
        "qqq_tqqq_growth_income is an old alias in src/us_equity_strategies/catalog.py at UES v0.7.13; write tqqq_growth_income"
        in check(report, "profile-facts:schwab").message
    )
    unknown = check(report, "profile-facts:ibkr").message
    assert "mystery_rotation is not a profile of src/us_equity_strategies/catalog.py at UES v0.7.13" in unknown


def test_a_widened_allowlist_at_a_later_platform_commit_changes_what_passes(seed_repos):
    repo = seed_repos.repos[LONGBRIDGE]
    narrow = repo.commit({"strategy_registry.py": registry_py("longbridge", ("soxl_soxx_trend_income", "tqqq_growth_income"))}, "narrow")
    wide = repo.commit({"strategy_registry.py": registry_py("longbridge", SEED_ALLOWLISTS["longbridge"])}, "widen")
    before = git_gate(seed_repos, {LONGBRIDGE: narrow})
    assert check(before, "profile-facts:longbridge-hk").status == "failed"
    assert "not in LongBridgePlatform's rollout allowlist" in check(before, "profile-facts:longbridge-hk").message
    assert check(before, "profile-facts:longbridge-sg").status == "passed"
    after = git_gate(seed_repos, {LONGBRIDGE: wide})
    assert check(after, "profile-facts:longbridge-hk").status == "passed"
    assert after.facts.profiles.enabled_on("longbridge-hk") == ["qqq_tech_enhancement", "soxl_soxx_trend_income", "tqqq_growth_income"]


def _fake_with_ues_adapters(text):
    repos = prod_seed_repos()
    ues = repos[f"{OWNER}/{UES}"]
    ues.commits[ues.tags["v0.7.13"].commit][f"{PACKAGE_DIR}/runtime_adapters.py"] = text
    return repos


def test_an_unevaluable_adapter_fails_every_service_closed_through_github():
    text = runtime_adapters_py().replace("PLATFORM_RUNTIME_ADAPTERS = {", "PLATFORM_RUNTIME_ADAPTERS = {p: {} for p in ()}\nUNUSED = {")
    line = 1 + text.splitlines().index("PLATFORM_RUNTIME_ADAPTERS = {p: {} for p in ()}")
    with running(_fake_with_ues_adapters(text)) as fake:
        report = run_gate(prod_config(), GitHubSource(OWNER, base_url=fake.base_url))
    assert not report.ok and report.facts.profiles is None
    for key in KEYS:
        result = check(report, f"profile-facts:{key}")
        assert result.status == "failed"
        assert f"{UES}@v0.7.13 {PACKAGE_DIR}/runtime_adapters.py:{line}: cannot evaluate DictComp" in result.message
        assert "reads only literal module-level data" in result.message


def test_seed_facts_through_github_match_git_and_read_each_file_once():
    with running(prod_seed_repos()) as fake:
        report = run_gate(prod_config(), GitHubSource(OWNER, base_url=fake.base_url))
        assert report.ok, report.render_text()
        # The two LongBridge services share a commit: its tree is fetched once, as is UES's.
        archives = [line for line in fake.requests if "/_codeload/" in line]
        assert len(archives) == len(set(archives)) == 5
    facts = report.facts.profiles
    assert facts.for_service("longbridge-hk") == facts.for_service("longbridge-sg")
    assert facts.for_service("ibkr").bundled_configs == (BUNDLED_CONFIG,)
    assert facts.for_service("schwab").commit == SEED_TARGET_COMMITS[SCHWAB]


def test_a_source_fault_on_a_facts_file_is_unverified_not_failed():
    with running(prod_seed_repos()) as fake:
        fake.add_fault(f"/_codeload/{OWNER}/{SCHWAB}/", "500")  # the archive of Schwab's commit, where its registry is
        report = run_gate(prod_config(), GitHubSource(OWNER, base_url=fake.base_url, backoff=0.0))
    result = check(report, "profile-facts:schwab")
    assert result.status == "error" and "could not verify" in result.message and report.unverified


def test_the_lock_carries_the_facts_and_the_offline_gate_judges_from_them(seed_repos):
    report = git_gate(seed_repos)
    lock = lock_from_report(report, NOW)
    offline = gate_from_lock(prod_config(seed_repos.target), lock)
    assert offline.ok, offline.render_text()
    assert "verified from lock" in check(offline, "profile-facts:longbridge-hk").message
    assert offline.facts.profiles.requirements("tqqq_growth_income", "schwab") is not None
    # The config moves Schwab to a profile its locked commit does not enable: the lock says no, offline.
    config = prod_config(seed_repos.target)
    schwab = config.services["schwab"].model_copy(update={"strategy_profile": "global_etf_rotation"})
    moved = gate_from_lock(config.model_copy(update={"services": {**config.services, "schwab": schwab}}), lock)
    assert check(moved, "profile-facts:schwab").status == "failed"
