"""release/gate/profile_source.py: profile facts read from source files with `ast`, never by importing them."""

from __future__ import annotations

import pytest

from components.profiles import judge
from release.gate.profile_source import (
    FactsReadError,
    PackageSource,
    bundled_config_paths,
    read_catalog,
    read_platform_facts,
    read_registry,
    read_ues_facts,
)
from tests.fixtures.profile_sources import (
    BUNDLED_CONFIG,
    CAPABILITIES,
    MANIFEST_CONTRACT,
    PACKAGE_DIR,
    SEED_ALLOWLISTS,
    catalog_py,
    fake_commit,
    platform_source_files,
    registry_py,
    repo_files,
    runtime_adapters_py,
    strategy_module_py,
    ues_source_files,
)

CATALOG = f"{PACKAGE_DIR}/catalog.py"
ADAPTERS = f"{PACKAGE_DIR}/runtime_adapters.py"
STRATEGY = f"{PACKAGE_DIR}/strategies/tech_pullback_cash_buffer.py"


def ues(files=None, tag="v0.7.13"):
    return read_ues_facts(repo_files("UsEquityStrategies", tag, fake_commit("ues", tag), files or ues_source_files(tag)))


def platform(name, files=None, facts=None):
    facts = facts or ues()
    commit = fake_commit(name, "target")
    return read_platform_facts(
        repo_files(f"{name}-repo", commit, commit, files or platform_source_files(name)), name, bundled_config_paths(facts)
    )


def enabled(name, platform_facts=None, facts=None):
    facts = facts or ues()
    platform_facts = platform_facts or platform(name, facts=facts)
    return sorted(profile for profile in facts.profiles if judge(profile, platform_facts, facts).requirements is not None)


def test_seed_catalog_has_every_alias_display_name_and_status():
    facts = ues()
    assert facts.aliases == {
        "global_macro_etf_rotation": "global_etf_rotation",
        "hybrid_growth_income": "tqqq_growth_income",
        "qqq_tqqq_growth_income": "tqqq_growth_income",
        "semiconductor_rotation_income": "soxl_soxx_trend_income",
        "semiconductor_trend_income": "soxl_soxx_trend_income",
        "tech_pullback_cash_buffer": "qqq_tech_enhancement",
        "r1000_multifactor_defensive": "russell_1000_multi_factor_defensive",
    }
    assert facts.profiles["soxl_soxx_trend_income"].display_name == "SOXL/SOXX Semiconductor Trend Income"
    assert facts.profiles["russell_1000_multi_factor_defensive"].input_mode == "snapshot_backed"
    assert facts.profiles["tqqq_growth_income"].input_mode == "direct_runtime"
    assert {profile.status for profile in facts.profiles.values()} == {"runtime_enabled"}
    assert facts.domain == "quant_platform_kit.common.strategies.US_EQUITY_DOMAIN"
    # The manifest facts come from constants of a sibling module the adapters import.
    adapter = facts.adapters["longbridge"]["qqq_tech_enhancement"]
    assert adapter.requires_snapshot_manifest is True and adapter.manifest_contract == MANIFEST_CONTRACT
    assert facts.adapters["ibkr"]["russell_1000_multi_factor_defensive"].requires_snapshot_manifest is False
    assert [source.path for source in facts.files] == [CATALOG, ADAPTERS, STRATEGY]
    assert all(len(source.blob) == 40 and source.ref == "v0.7.13" for source in facts.files)


def test_the_older_catalog_has_its_own_names():
    facts = ues(tag="v0.7.11")
    assert facts.profiles["hybrid_growth_income"].display_name == "QQQ/TQQQ Growth Income"
    assert facts.canonical("qqq_tqqq_growth_income") == "hybrid_growth_income"
    assert facts.profiles["tech_pullback_cash_buffer"].status == "paper_dry_run"


def test_enablement_is_allowlist_and_compatibility_and_capability():
    assert enabled("ibkr") == [
        "global_etf_rotation",
        "qqq_tech_enhancement",
        "russell_1000_multi_factor_defensive",
        "soxl_soxx_trend_income",
    ]
    assert enabled("schwab") == ["soxl_soxx_trend_income", "tqqq_growth_income"]
    assert enabled("longbridge") == ["qqq_tech_enhancement", "soxl_soxx_trend_income", "tqqq_growth_income"]


def test_allowlisted_but_incompatible_or_unsupported_is_not_enabled():
    facts = ues()
    wide = registry_py("schwab", (*SEED_ALLOWLISTS["schwab"], "qqq_tech_enhancement", "global_etf_rotation"))
    schwab = platform("schwab", {"strategy_registry.py": wide}, facts)
    assert enabled("schwab", schwab, facts) == ["soxl_soxx_trend_income", "tqqq_growth_income"]
    why = judge("qqq_tech_enhancement", schwab, facts).why
    assert "UES lists it for ibkr, longbridge only" in why
    assert "does not support its inputs feature_snapshot" in why and "target mode weight" in why
    # Capability alone: LongBridge without feature_snapshot among its inputs cannot run the snapshot profile.
    modes, inputs = CAPABILITIES["longbridge"]
    narrow = registry_py("longbridge", SEED_ALLOWLISTS["longbridge"], (modes, tuple(i for i in inputs if i != "feature_snapshot")))
    assert enabled("longbridge", platform("longbridge", {"strategy_registry.py": narrow}, facts), facts) == [
        "soxl_soxx_trend_income", "tqqq_growth_income",
    ]  # fmt: skip


def test_a_widened_allowlist_at_a_later_platform_commit_changes_the_enabled_set():
    earlier = platform("longbridge", {"strategy_registry.py": registry_py("longbridge", ("soxl_soxx_trend_income", "tqqq_growth_income"))})
    later = platform("longbridge")
    assert "qqq_tech_enhancement" not in enabled("longbridge", earlier)
    assert "qqq_tech_enhancement" in enabled("longbridge", later)
    assert "not in longbridge-repo's rollout allowlist" in judge("qqq_tech_enhancement", earlier, ues()).why


def test_aliases_judge_as_their_canonical_profile():
    facts = ues()
    judgement = judge("semiconductor_rotation_income", platform("schwab", facts=facts), facts)
    assert judgement.requirements is not None and judgement.requirements.profile == "soxl_soxx_trend_income"


def test_bundled_config_present_on_ibkr_absent_on_longbridge():
    facts = ues()
    ibkr = platform("ibkr", facts=facts)
    longbridge = platform("longbridge", facts=facts)
    assert ibkr.bundled_configs == (BUNDLED_CONFIG,) and longbridge.bundled_configs == ()
    assert BUNDLED_CONFIG in [source.path for source in ibkr.files]
    on_ibkr = judge("qqq_tech_enhancement", ibkr, facts).requirements
    on_longbridge = judge("qqq_tech_enhancement", longbridge, facts).requirements
    assert on_ibkr.strategy_config == "bundled_or_env" and on_ibkr.bundled_config == BUNDLED_CONFIG
    assert on_longbridge.strategy_config == "env_or_module_defaults" and on_longbridge.bundled_config is None
    assert on_longbridge.requires_snapshot_manifest_path and on_longbridge.manifest_contract == MANIFEST_CONTRACT


def test_domain_is_compared_by_name():
    facts = ues()
    literal = registry_py("schwab", SEED_ALLOWLISTS["schwab"]).replace("frozenset({US_EQUITY_DOMAIN})", 'frozenset({"us_equity"})')
    schwab = platform("schwab", {"strategy_registry.py": literal}, facts)
    assert enabled("schwab", schwab, facts) == []
    assert "does not support domain quant_platform_kit.common.strategies.US_EQUITY_DOMAIN" in judge("tqqq_growth_income", schwab, facts).why


def _with(path, text):
    files = ues_source_files("v0.7.13")
    files[path] = text
    return files


@pytest.mark.parametrize(
    ("path", "text", "line", "words"),
    [
        # Later UES releases compute their adapters: fail closed, naming the construct.
        (
            ADAPTERS,
            runtime_adapters_py().replace("PLATFORM_RUNTIME_ADAPTERS = {", "PLATFORM_RUNTIME_ADAPTERS = {p: {} for p in ()}\nUNUSED = {"),
            "PLATFORM_RUNTIME_ADAPTERS",
            ["cannot evaluate DictComp", "{p: {} for p in ()}"],
        ),
        (
            ADAPTERS,
            runtime_adapters_py(manifest_expr="legacy_tech_pullback.requires_manifest()"),
            None,
            ["require_snapshot_manifest=a call to requires_manifest(...)", "True or False"],
        ),
        (STRATEGY, strategy_module_py(require_manifest="not False"), None, ["cannot evaluate UnaryOp `not False`"]),
        (
            STRATEGY,
            strategy_module_py().replace("REQUIRE_SNAPSHOT_MANIFEST = True\n", ""),
            None,
            ["REQUIRE_SNAPSHOT_MANIFEST is not bound at module level"],
        ),
        (CATALOG, catalog_py() + "def broken(:\n", None, ["does not parse"]),
        (
            CATALOG,
            catalog_py().replace('    QQQ_TECH_ENHANCEMENT_PROFILE: "weight",\n', ""),
            "STRATEGY_TARGET_MODES",
            ["no entry for profile 'qqq_tech_enhancement'"],
        ),
        (
            CATALOG,
            catalog_py().replace(
                "STRATEGY_TARGET_MODES: dict[str, str] = {", 'STRATEGY_TARGET_MODES: dict[str, str] = {\n    "mystery_profile": "value",'
            ),
            "STRATEGY_TARGET_MODES",
            ["names mystery_profile, which STRATEGY_METADATA does not"],
        ),
        (CATALOG, catalog_py().replace('display_name="TQQQ Growth Income"', "display_name=NAMES[0]"), None, ["NAMES is not bound"]),
    ],
)
def test_an_unevaluable_or_malformed_source_fails_closed_with_file_and_line(path, text, line, words):
    with pytest.raises(FactsReadError) as caught:
        ues(_with(path, text))
    error = caught.value
    assert error.path == path
    if isinstance(line, str):
        assert text.splitlines()[error.line - 1].startswith(line)
    else:
        assert error.line >= 1
    for word in words:
        assert word in str(error)


def test_an_adapter_for_an_unknown_profile_fails_closed():
    text = runtime_adapters_py().replace('"global_etf_rotation": StrategyRuntimeAdapter', '"mystery": StrategyRuntimeAdapter', 1)
    with pytest.raises(FactsReadError, match="adapter for 'mystery', a profile the catalog does not know"):
        ues(_with(ADAPTERS, text))


def test_missing_catalog_fails_closed():
    files = {path: text for path, text in ues_source_files("v0.7.13").items() if not path.endswith("catalog.py")}
    with pytest.raises(FactsReadError, match="no catalog.py"):
        ues(files)


@pytest.mark.parametrize(
    ("expr", "words"),
    [
        ("frozenset(name for name in BASE)", "cannot evaluate GeneratorExp"),
        ("BASE | {'x'}", "cannot evaluate BinOp"),
        ("set(compute())", "of a literal container"),
    ],
)
def test_a_computed_allowlist_fails_closed_with_its_line(expr, words):
    text = registry_py("ibkr", (), allowlist_expr=expr)
    with pytest.raises(FactsReadError) as caught:
        read_registry("ibkr", text)
    assert caught.value.path == "strategy_registry.py" and words in str(caught.value)
    assert text.splitlines()[caught.value.line - 1].startswith("IBKR_ROLLOUT_ALLOWLIST")


def test_registry_must_name_its_own_platform_and_exist():
    with pytest.raises(FactsReadError, match="platform_id 'schwab'"):
        read_registry("schwab", registry_py("ibkr", SEED_ALLOWLISTS["ibkr"]).replace("IBKR_ROLLOUT", "SCHWAB_ROLLOUT"))
    with pytest.raises(FactsReadError, match="no strategy_registry.py"):
        platform("ibkr", {"main.py": ""})


def test_relative_imports_and_module_imports_resolve_inside_the_package():
    files = {
        "pkg/__init__.py": "",
        "pkg/catalog.py": (
            "from . import names\nimport pkg.more as more\nfrom .sub.deep import ANSWER as A\n"
            "VALUES = {names.FIRST: more.SECOND, 'a': A}\nSELF = SELF\n"
        ),
        "pkg/names.py": "FIRST = 'first'\n",
        "pkg/more.py": "SECOND = ('x', 'y')\n",
        "pkg/sub/__init__.py": "",
        "pkg/sub/deep.py": "from ..names import FIRST\nANSWER = FIRST\n",
    }
    package = PackageSource("pkg", "pkg", files.get)
    module = package.module("pkg.catalog")
    assert module.value("VALUES") == {"first": ("x", "y"), "a": "first"}
    with pytest.raises(FactsReadError, match="SELF refers to itself"):
        module.value("SELF")


def test_the_catalog_reader_never_needs_the_computed_tables():
    # STRATEGY_DEFINITIONS and PROFILE_ALIASES are comprehensions in the fixture, like UES's; only the
    # literal tables are evaluated, so the read succeeds.
    facts = read_catalog(PackageSource("us_equity_strategies", PACKAGE_DIR, ues_source_files("v0.7.13").get))
    assert "PROFILE_ALIASES" in catalog_py() and len(facts.profiles) == 5
