"""Profile facts of today's shape, over both sources: registries that compute their answers (set algebra over
functions of UES, HK and QPK, HK's catalog merged in) proved by running them, HK profiles, and the config
sources they report (tests/fixtures/today_shape.py)."""

from __future__ import annotations

from components.env import desired_env
from release.first_run.run_facts import run_facts
from release.stack import raise_profile_problems
from tests.fixtures.today_shape import today_config
from tests.gate.conftest import SEED, check

HK_PROFILE = "hk_global_etf_tactical_rotation"


def with_profile(config, key, profile, **update):
    spec = config.services[key].model_copy(update={"strategy_profile": profile, **update})
    return config.model_copy(update={"services": {**config.services, key: spec}})


def test_todays_computed_registries_are_proved_with_the_packages_each_platform_installs(today, gate):
    report = gate(today_config(SEED, today))
    assert report.ok, report.render_text()
    facts = report.facts.profiles
    ibkr, schwab = facts.for_service("ibkr"), facts.for_service("schwab")
    assert [p.name for p in ibkr.packages] == ["hk-equity-strategies", "quant-platform-kit", "us-equity-strategies"]
    assert [(p.name, p.commit) for p in schwab.packages] == [
        ("quant-platform-kit", today.q_schwab),
        ("us-equity-strategies", today.u_schwab),
    ]  # Schwab installs no HK: its registry ran without it, at Schwab's own release
    assert ibkr.run.functions[-1] == "describe_platform_runtime_requirements" and ibkr.run.environment == "sources"
    assert ibkr.profiles[HK_PROFILE].domain == "hk_equity" and HK_PROFILE not in schwab.profiles
    # IBKR's registry leaves one UES profile out by set algebra; LongBridge's does not
    assert "tech_communication_pullback_enhancement" not in ibkr.enabled()
    assert "tech_communication_pullback_enhancement" in facts.for_service("longbridge-hk").enabled()
    assert "research_only_rotation" not in ibkr.profiles  # UES's status keeps it out of every allowlist


def test_a_service_may_run_an_hk_profile_its_platform_commit_enables(today, gate):
    report = gate(with_profile(today_config(SEED, today), "ibkr", HK_PROFILE))
    result = check(report, "profile-facts:ibkr")
    assert result.status == "passed" and f"{HK_PROFILE} (HK Global ETF Tactical Rotation; hk_equity; direct_runtime" in result.message
    # verify's expected display name comes from the same facts
    expected = run_facts(report.facts.profiles, HK_PROFILE, "ibkr")
    assert expected is not None and expected.display_name == "HK Global ETF Tactical Rotation"
    assert expected.names == {HK_PROFILE, "hk_etf_tactical"} and "InteractiveBrokersPlatform@" in expected.proved_from


def test_an_hk_profile_on_a_platform_without_hk_or_by_its_alias_fails(today, gate):
    config = with_profile(with_profile(today_config(SEED, today), "schwab", HK_PROFILE), "longbridge-sg", "hk_etf_tactical")
    report = gate(config)
    schwab = check(report, "profile-facts:schwab")
    assert schwab.status == "failed" and f"{HK_PROFILE} is not a profile the registry of schwab" in schwab.message
    alias = check(report, "profile-facts:longbridge-sg")
    assert alias.status == "failed" and "hk_etf_tactical is an old alias in the registry of longbridge" in alias.message
    assert f"write {HK_PROFILE}" in alias.message


def test_an_env_only_direct_runtime_profile_takes_its_config_path_into_the_env(today, gate):
    from release.config import SnapshotPaths

    shadow = "package://us_equity_strategies/configs/shadow.json"
    config = with_profile(
        today_config(SEED, today), "ibkr", "us_equity_combo_leveraged", snapshot=SnapshotPaths(strategy_config_path=shadow)
    )
    report = gate(config)
    result = check(report, "profile-facts:ibkr")
    assert result.status == "passed" and "config from a config path only (optional)" in result.message
    facts = report.facts.profiles
    raise_profile_problems(report.config, facts)  # the env rules accept the path for this direct-runtime profile
    needs = facts.requirements("us_equity_combo_leveraged", "ibkr")
    assert desired_env(config.services["ibkr"], needs, "true").plain["IBKR_STRATEGY_CONFIG_PATH"] == shadow


def test_an_image_built_with_todays_commits_is_judged_by_exactly_their_facts(today, gate):
    report = gate(today_config(SEED, today))
    facts = report.facts.profiles
    ibkr = report.config.services["ibkr"]
    repo = "InteractiveBrokersPlatform"
    release = report.config.release_for("ibkr").refs
    assert facts.judge_image(HK_PROFILE, "ibkr", repo, ibkr.commit, release).requirements is not None
    older_ues = {**release, "us-equity-strategies": today.u_schwab}
    assert "no proved profile facts" in facts.judge_image(HK_PROFILE, "ibkr", repo, ibkr.commit, older_ues).why
