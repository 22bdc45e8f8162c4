"""components/profiles.py: the proved profile facts and the lookups every rule uses (no hand-written matrix),
over facts proved by running the seed-shaped registries (tests/fixtures/profile_sources.py)."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from components.profiles import MAX_HISTORY_RUNS, PlatformProfiles, ProfileFacts
from release.stack import load_stack_file
from tests.fixtures.profile_sources import PLATFORM_REPOS, platform_source_files, profile_facts, registry_py
from tests.fixtures.projects import SEED_STACK_FILE

CONFIG = load_stack_file(SEED_STACK_FILE)
FACTS = profile_facts(CONFIG)
OLD = "1" * 40
SEED = {"quant-platform-kit": "v0.7.10", "us-equity-strategies": "v0.7.13"}
BASELINE = {"quant-platform-kit": "v0.7.8", "us-equity-strategies": "v0.7.11"}


def test_no_hand_written_matrix_ships_with_the_program():
    from pathlib import Path

    root = Path(__file__).resolve().parent.parent
    assert not (root / "components" / "profile_matrices.json").exists()
    assert not (root / "release" / "gate" / "profile_source.py").exists()  # one way to prove a fact: by running


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


def test_aliases_display_names_and_names_per_service():
    assert FACTS.canonical("r1000_multifactor_defensive", "ibkr") == "russell_1000_multi_factor_defensive"
    assert FACTS.canonical("global_macro_etf_rotation", "ibkr") == "global_etf_rotation"
    assert FACTS.display_name("hybrid_growth_income", "schwab") == "TQQQ Growth Income"
    assert FACTS.requirements("semiconductor_trend_income", "schwab").profile == "soxl_soxx_trend_income"
    assert len(FACTS.for_service("ibkr").aliases) == 7
    assert {"qqq_tqqq_growth_income", "tqqq_growth_income"} <= FACTS.names()


def _older() -> ProfileFacts:
    """UES v0.7.11 at the OLD (baseline) platform commits, as an earlier lock proved them."""
    services = {key: spec.model_copy(update={"commit": OLD}) for key, spec in CONFIG.services.items()}
    config = CONFIG.model_copy(
        update={"release": CONFIG.release.model_copy(update={"shorthand_qpk": "v0.7.8", "shorthand_ues": "v0.7.11"}), "services": services}
    )
    return profile_facts(config, platform_files=lambda platform, commit: platform_source_files(platform, "baseline"))


def test_an_older_image_is_judged_by_the_facts_of_exactly_its_commit_and_release():
    merged = FACTS.with_history(_older())
    repo = PLATFORM_REPOS["schwab"]
    on_old = merged.judge_image("hybrid_growth_income", "schwab", repo, OLD, BASELINE)
    assert on_old.requirements is not None and on_old.requirements.display_name == "QQQ/TQQQ Growth Income"
    assert merged.judge_image("tqqq_growth_income", "schwab", repo, OLD, BASELINE).requirements is None
    # the same commit with another release, or another commit with that release: not proved, never guessed
    assert "no proved profile facts" in merged.judge_image("hybrid_growth_income", "schwab", repo, OLD, SEED).why
    target = CONFIG.services["schwab"].commit
    assert merged.judge_image("hybrid_growth_income", "schwab", repo, target, BASELINE).requirements is None
    # an image records its refs; a commit ref names the same facts as the tag it resolved to
    ues_commit = next(p.commit for p in FACTS.for_service("schwab").packages if p.name == "us-equity-strategies")
    by_commit = {**SEED, "us-equity-strategies": ues_commit}
    assert merged.judge_image("tqqq_growth_income", "schwab", repo, target, by_commit).requirements is not None
    # without that history the old image cannot be judged
    unproved = FACTS.judge_image("hybrid_growth_income", "schwab", repo, OLD, BASELINE)
    assert unproved.requirements is None and "no proved profile facts for CharlesSchwabPlatform@1111111" in unproved.why
    # a hand-deployed image (release unknown) is judged by the service's own facts, and says so
    assert "image release unknown" in FACTS.judge_image("tqqq_growth_income", "schwab", repo, None, None).why
    assert "hybrid_growth_income" in merged.names()


def test_a_package_the_platform_does_not_install_does_not_hide_its_facts():
    """HK on Schwab: the image's release names HK; Schwab's facts ran without it, and still hold."""
    repo, target = PLATFORM_REPOS["schwab"], CONFIG.services["schwab"].commit
    with_hk = {**SEED, "hk-equity-strategies": "a" * 40}
    assert FACTS.judge_image("tqqq_growth_income", "schwab", repo, target, with_hk).requirements is not None
    # a release that lacks a package the facts ran with is not theirs
    assert FACTS.judge_image("tqqq_growth_income", "schwab", repo, target, {"us-equity-strategies": "v0.7.13"}).requirements is None


def test_history_is_bounded_and_keeps_the_previous_services_first():
    older = _older()
    merged = FACTS.with_history(older)
    assert set(merged.runs) == set(FACTS.runs) | set(older.runs) and merged.services == FACTS.services
    run = next(iter(older.runs.values()))
    many = {f"k{i}": run.model_copy(update={"commit": f"{i:040x}"}) for i in range(40)}
    crowded = ProfileFacts(runs={r.key: r for r in many.values()} | older.runs, services=older.services)
    kept = FACTS.with_history(crowded)
    assert len(kept.runs) == len(FACTS.runs) + MAX_HISTORY_RUNS
    assert set(older.services.values()) <= set(kept.runs)  # what ran before this release is kept first


def test_facts_refuse_inconsistent_shapes():
    run = FACTS.for_service("ibkr")
    with pytest.raises(ValidationError, match="were proved for"):
        ProfileFacts(runs={"elsewhere": run}, services={})
    with pytest.raises(ValidationError, match="points at facts that are not here"):
        ProfileFacts(runs={run.key: run}, services={"ibkr": "nowhere"})
    data = run.model_dump()
    data["aliases"]["global_etf_rotation"] = "tqqq_growth_income"
    with pytest.raises(ValidationError, match="both a profile and an alias"):
        PlatformProfiles.model_validate(data)
    data = run.model_dump()
    data["profiles"]["global_etf_rotation"]["requirements"]["profile"] = "tqqq_growth_income"
    with pytest.raises(ValidationError, match="are tqqq_growth_income's"):
        PlatformProfiles.model_validate(data)
    data = run.model_dump()
    data["commit"] = "ca6cae8"
    with pytest.raises(ValidationError, match="not a 40-hex git commit"):
        PlatformProfiles.model_validate(data)


def test_a_platform_commit_with_the_same_release_can_enable_a_different_set():
    narrow = {"strategy_registry.py": registry_py("schwab", ("tqqq_growth_income",))}
    facts = profile_facts(
        CONFIG, platform_files=lambda platform, commit: narrow if platform == "schwab" else platform_source_files(platform)
    )
    assert facts.enabled_on("schwab") == ["tqqq_growth_income"]
    assert FACTS.enabled_on("schwab") == ["soxl_soxx_trend_income", "tqqq_growth_income"]


def test_bound_to_a_config_each_service_has_only_the_facts_of_exactly_its_commit_and_release():
    # a mapping that points Schwab at IBKR's facts (as an edited or buggy source of facts might)
    crossed = FACTS.model_copy(update={"services": {**FACTS.services, "schwab": FACTS.services["ibkr"]}})
    assert crossed.enabled_on("schwab") == FACTS.enabled_on("ibkr")
    bound = crossed.for_config(CONFIG)
    assert bound.services == FACTS.services
    # a config on another commit, or another release, has no facts here at all: nothing to judge by
    moved = CONFIG.model_copy(
        update={"services": {**CONFIG.services, "schwab": CONFIG.services["schwab"].model_copy(update={"commit": OLD})}}
    )
    assert "schwab" not in FACTS.for_config(moved).services and FACTS.for_config(moved).requirements("tqqq_growth_income", "schwab") is None
    newer = CONFIG.model_copy(update={"release": CONFIG.release.model_copy(update={"shorthand_ues": "v0.7.14"})})
    assert FACTS.for_config(newer).services == {}
