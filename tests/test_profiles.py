"""components/profiles.py: the proved profile facts and the lookups every rule uses (no hand-written matrix)."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from components.profiles import ProfileFacts, UesFacts, platform_key
from release.stack import load_stack_file
from tests.fixtures.profile_sources import (
    PLATFORM_REPOS,
    UES_REPO,
    V11_PROFILES,
    fake_commit,
    platform_source_files,
    profile_facts,
    registry_py,
    repo_files,
    ues_source_files,
)
from tests.fixtures.projects import SEED_STACK_FILE

CONFIG = load_stack_file(SEED_STACK_FILE)
FACTS = profile_facts(CONFIG)


def test_no_hand_written_matrix_ships_with_the_program():
    from pathlib import Path

    assert not (Path(__file__).resolve().parent.parent / "components" / "profile_matrices.json").exists()


@pytest.mark.parametrize(
    "key, enabled",
    [
        ("ibkr", ["global_etf_rotation", "qqq_tech_enhancement", "russell_1000_multi_factor_defensive", "soxl_soxx_trend_income"]),
        ("schwab", ["soxl_soxx_trend_income", "tqqq_growth_income"]),
        ("longbridge-hk", ["qqq_tech_enhancement", "soxl_soxx_trend_income", "tqqq_growth_income"]),
    ],
)
def test_profiles_enabled_per_service_commit(key, enabled):
    assert FACTS.enabled_on(key) == enabled


@pytest.mark.parametrize(
    "profile, key, mode, manifest, config",
    [
        ("global_etf_rotation", "ibkr", "direct_runtime", False, "none"),
        ("tqqq_growth_income", "longbridge-sg", "direct_runtime", False, "none"),
        ("russell_1000_multi_factor_defensive", "ibkr", "snapshot_backed", False, "none"),
        ("qqq_tech_enhancement", "ibkr", "snapshot_backed", True, "bundled_or_env"),
        # LongBridge bundles no config: nothing is required, the runtime runs module defaults without one.
        ("qqq_tech_enhancement", "longbridge-hk", "snapshot_backed", True, "env_or_module_defaults"),
    ],
)
def test_requirements(profile, key, mode, manifest, config):
    requirements = FACTS.requirements(profile, key)
    assert requirements.input_mode == mode
    assert requirements.requires_snapshot_manifest_path is manifest
    assert requirements.strategy_config == config
    assert requirements.profile_group == ("snapshot_backed" if mode == "snapshot_backed" else "direct_runtime_inputs")


def test_requirements_are_none_off_platform_unknown_or_unproved():
    assert FACTS.requirements("qqq_tech_enhancement", "schwab") is None
    assert FACTS.requirements("no_such_profile", "ibkr") is None
    assert FACTS.requirements("tqqq_growth_income", "no-such-service") is None
    assert "no profile facts were proved for services.no-such-service" in FACTS.judge_service("x", "no-such-service").why


def test_aliases_display_names_and_names():
    assert FACTS.canonical("r1000_multifactor_defensive") == "russell_1000_multi_factor_defensive"
    assert FACTS.canonical("global_macro_etf_rotation") == "global_etf_rotation"
    assert FACTS.display_name("hybrid_growth_income") == "TQQQ Growth Income"
    assert FACTS.requirements("semiconductor_trend_income", "schwab").profile == "soxl_soxx_trend_income"
    assert len(FACTS.bundle.aliases) == 7
    assert {"qqq_tqqq_growth_income", "tqqq_growth_income"} <= FACTS.names()


def _older_facts() -> ProfileFacts:
    """UES v0.7.11 and the platforms' baseline commits, as an earlier lock proved them."""
    from release.gate.profile_source import bundled_config_paths, read_platform_facts, read_ues_facts

    ues = read_ues_facts(repo_files(UES_REPO, "v0.7.11", fake_commit(UES_REPO, "v0.7.11"), ues_source_files("v0.7.11")))
    commit = fake_commit("schwab", "baseline")
    schwab = read_platform_facts(
        repo_files(PLATFORM_REPOS["schwab"], commit, commit, platform_source_files("schwab", "baseline")),
        "schwab",
        bundled_config_paths(ues),
    )
    return ProfileFacts(ues_tag="v0.7.11", ues={"v0.7.11": ues}, platforms={schwab.label: schwab}, services={"schwab": schwab.label})


def test_an_older_image_is_judged_by_the_facts_a_lock_kept():
    older = _older_facts()
    merged = FACTS.with_history(older)
    assert merged.ues_tag == "v0.7.13" and set(merged.ues) == {"v0.7.11", "v0.7.13"}
    commit = fake_commit("schwab", "baseline")
    repo = PLATFORM_REPOS["schwab"]
    on_old = merged.judge_image("hybrid_growth_income", "schwab", repo, commit, "v0.7.11")
    assert on_old.requirements is not None and on_old.requirements.display_name == "QQQ/TQQQ Growth Income"
    assert merged.judge_image("tqqq_growth_income", "schwab", repo, commit, "v0.7.11").requirements is None
    # Without that history the old image cannot be judged: not proved, never guessed.
    unproved = FACTS.judge_image("hybrid_growth_income", "schwab", repo, commit, "v0.7.11")
    assert unproved.requirements is None and "no proved profile facts for UES v0.7.11" in unproved.why
    # A hand-deployed image (release unknown) is judged by the bundle's facts of the service's commit.
    assert "judged by the bundle" in FACTS.judge_image("tqqq_growth_income", "schwab", repo, None, None).why
    assert "hybrid_growth_income" in merged.names() and len(V11_PROFILES) == 5


def test_facts_refuse_inconsistent_shapes():
    ues = FACTS.bundle
    with pytest.raises(ValidationError, match="no UES facts for the bundle tag"):
        ProfileFacts(ues_tag="v0.7.99", ues={"v0.7.13": ues}, platforms={}, services={})
    with pytest.raises(ValidationError, match="points at"):
        ProfileFacts(ues_tag="v0.7.13", ues={"v0.7.13": ues}, platforms={}, services={"ibkr": platform_key("X", "0" * 40)})
    data = ues.model_dump()
    data["profiles"]["global_etf_rotation"]["aliases"] = ("tqqq_growth_income",)
    with pytest.raises(ValidationError, match="also a profile"):
        UesFacts.model_validate(data)


def test_a_platform_commit_that_pins_the_same_ues_can_enable_a_different_set():
    narrow = {"strategy_registry.py": registry_py("schwab", ("tqqq_growth_income",))}
    facts = profile_facts(
        CONFIG, platform_files=lambda platform, commit: narrow if platform == "schwab" else platform_source_files(platform)
    )
    assert facts.enabled_on("schwab") == ["tqqq_growth_income"]
    assert FACTS.enabled_on("schwab") == ["soxl_soxx_trend_income", "tqqq_growth_income"]
