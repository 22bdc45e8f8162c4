"""The shipped UES profile matrices (CONTRACT.md section 4) and the lookups the rules use."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from components.profiles import (
    PlatformRequirements,
    ProfileMatrix,
    UnknownMatrixError,
    all_profile_names,
    load_matrices,
    matrix_for,
)

V13 = matrix_for("v0.7.13")


@pytest.mark.parametrize(
    "platform, enabled",
    [
        ("ibkr", ["global_etf_rotation", "qqq_tech_enhancement", "russell_1000_multi_factor_defensive", "soxl_soxx_trend_income"]),
        ("schwab", ["soxl_soxx_trend_income", "tqqq_growth_income"]),
        ("longbridge", ["qqq_tech_enhancement", "soxl_soxx_trend_income", "tqqq_growth_income"]),
    ],
)
def test_profiles_enabled_per_platform_at_v0_7_13(platform, enabled):
    assert V13.enabled_on(platform) == enabled


@pytest.mark.parametrize(
    "profile, platform, mode, manifest, config_policy, recon",
    [
        ("global_etf_rotation", "ibkr", "direct_runtime", False, "none", "none"),
        ("tqqq_growth_income", "longbridge", "direct_runtime", False, "none", "none"),
        ("russell_1000_multi_factor_defensive", "ibkr", "snapshot_backed", False, "none", "optional"),
        ("qqq_tech_enhancement", "ibkr", "snapshot_backed", True, "bundled_or_env", "optional"),
        ("qqq_tech_enhancement", "longbridge", "snapshot_backed", True, "bundled_or_env", "none"),
    ],
)
def test_requirements(profile, platform, mode, manifest, config_policy, recon):
    requirements = V13.requirements(profile, platform)
    assert requirements.input_mode == mode
    assert requirements.requires_snapshot_manifest_path is manifest
    assert requirements.config_source_policy == config_policy
    assert requirements.reconciliation_output_policy == recon
    # A bundled default config exists, so the config path is optional for qqq_tech_enhancement.
    assert requirements.requires_strategy_config_path is False
    assert requirements.profile_group == ("snapshot_backed" if mode == "snapshot_backed" else "direct_runtime_inputs")


def test_requirements_are_none_off_platform_or_when_not_runtime_enabled():
    assert V13.requirements("qqq_tech_enhancement", "schwab") is None
    assert V13.requirements("no_such_profile", "ibkr") is None
    # At v0.7.11 the tech profile was paper_dry_run only.
    assert matrix_for("v0.7.11").requirements("tech_pullback_cash_buffer", "ibkr") is None


def test_aliases_resolve_to_canonical_profiles():
    assert V13.canonical("hybrid_growth_income") == "tqqq_growth_income"
    assert V13.canonical("semiconductor_rotation_income") == "soxl_soxx_trend_income"
    assert V13.canonical("tech_pullback_cash_buffer") == "qqq_tech_enhancement"
    assert V13.canonical("global_etf_rotation") == "global_etf_rotation"


def test_all_profile_names_include_every_release_and_alias():
    names = all_profile_names()
    assert {"tqqq_growth_income", "hybrid_growth_income", "tech_pullback_cash_buffer", "global_etf_rotation"} <= names
    assert names == frozenset().union(*(matrix.names() for matrix in load_matrices().values()))


def test_unknown_release_names_the_shipped_ones_and_the_fix():
    with pytest.raises(UnknownMatrixError) as caught:
        matrix_for("v0.7.99")
    assert "v0.7.11, v0.7.13" in str(caught.value)
    assert "profile_matrices.json" in str(caught.value)


def test_a_direct_profile_cannot_require_snapshot_inputs():
    with pytest.raises(ValidationError):
        PlatformRequirements.model_validate({"inputMode": "direct_runtime", "requiresSnapshotManifestPath": True})


def test_an_alias_must_point_at_a_profile_of_its_matrix():
    profile = {"displayName": "X", "status": "runtime_enabled", "platforms": {"ibkr": {"inputMode": "direct_runtime"}}}
    with pytest.raises(ValidationError):
        ProfileMatrix.model_validate({"profiles": {"x": profile}, "aliases": {"old": "missing"}})
    with pytest.raises(ValidationError):
        ProfileMatrix.model_validate({"profiles": {"x": profile}, "aliases": {"x": "x"}})
