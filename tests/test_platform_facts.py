"""release/gate/platform_facts.py: facts per (platform commit, release) proved by running the platform's
registry over trees from real git clones and the GitHub fake; today's computed registries with HK, the
seed's literal ones, provenance, caching and per-request failure."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from release.gate.facts_runner import ProbeDescribe, ProbeProfile
from release.gate.platform_facts import (
    FactsFailure,
    FactsRequest,
    PackageCommit,
    PlatformProfiles,
    UnknownPolicy,
    prove_platform_facts,
    requirements_of,
)
from release.gate.source_trees import GitHubTrees, GitTrees, git_blob_id
from tests.fixtures.git_repos import GitRepo
from tests.fixtures.github_fake import OWNER, FakeRepo, running
from tests.fixtures.profile_sources import ADAPTERS, BUNDLED_CONFIG, CAPABILITIES, SEED_ALLOWLISTS, V13_PROFILES
from tests.fixtures.strategy_packages import (
    hk_files,
    platform_today_files,
    qpk_files,
    registry_seed,
    registry_today,
    ues_seed_files,
    ues_today_files,
)

REPOS = {"ibkr": "InteractiveBrokersPlatform", "schwab": "CharlesSchwabPlatform", "longbridge": "LongBridgePlatform"}


class Clones:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.repos: dict[str, GitRepo] = {}

    def commit(self, repo: str, files: dict[str, str]) -> str:
        if repo not in self.repos:
            self.repos[repo] = GitRepo.init(self.root / repo)
        return self.repos[repo].commit(files)

    def trees(self) -> GitTrees:
        return GitTrees(lambda repo: self.root / repo / ".git")


@pytest.fixture(scope="module")
def today(tmp_path_factory: pytest.TempPathFactory) -> tuple[Clones, dict[str, str], tuple[PackageCommit, ...]]:
    clones = Clones(tmp_path_factory.mktemp("clones"))
    packages = (
        PackageCommit(name="quant-platform-kit", repo="QuantPlatformKit", ref="a" * 40, commit=clones.commit("QuantPlatformKit", qpk_files())),
        PackageCommit(name="us-equity-strategies", repo="UsEquityStrategies", ref="b" * 40, commit=clones.commit("UsEquityStrategies", ues_today_files())),
        PackageCommit(name="hk-equity-strategies", repo="HkEquityStrategies", ref="c" * 40, commit=clones.commit("HkEquityStrategies", hk_files())),
    )  # fmt: skip
    commits = {platform: clones.commit(REPOS[platform], platform_today_files(platform, hk=platform != "schwab")) for platform in REPOS}
    return clones, commits, packages


def request(platform: str, commit: str, packages: tuple[PackageCommit, ...]) -> FactsRequest:
    return FactsRequest(platform=platform, repo=REPOS[platform], commit=commit, packages=packages)


def proved(results: list[PlatformProfiles | FactsFailure]) -> list[PlatformProfiles]:
    assert all(isinstance(result, PlatformProfiles) for result in results), results
    return results


def test_today_facts_with_hk_and_provenance(today: tuple[Clones, dict[str, str], tuple[PackageCommit, ...]], tmp_path: Path) -> None:
    clones, commits, packages = today
    requests = [request(platform, commits[platform], packages if platform != "schwab" else packages[:2]) for platform in REPOS]
    ibkr, schwab, longbridge = proved(prove_platform_facts(requests, clones.trees(), cache_root=tmp_path, deadline=time.monotonic() + 60))
    hk = ibkr.judge("hk_etf_tactical")  # an alias from the HK catalog the registry merged in
    assert hk.requirements is not None and hk.requirements.profile == "hk_global_etf_tactical_rotation"
    assert (
        hk.requirements.display_name == "HK Global ETF Tactical Rotation"
        and ibkr.profiles["hk_global_etf_tactical_rotation"].domain == "hk_equity"
    )
    assert "hk_global_etf_tactical_rotation" not in schwab.profiles and schwab.judge("hk_global_etf_tactical_rotation").requirements is None
    assert ibkr.judge("tech_communication_pullback_enhancement").requirements is None  # excluded on IBKR by set algebra
    on_lb = longbridge.judge("tech_communication_pullback_enhancement").requirements
    assert on_lb is not None and (on_lb.input_mode, on_lb.strategy_config, on_lb.manifest_contract) == (
        "snapshot_backed", "env_or_module_defaults", "tech_communication.feature_snapshot.v1")  # fmt: skip
    rotation = ibkr.judge("global_etf_rotation").requirements
    assert rotation is not None and rotation.requires_snapshot_manifest_path and rotation.input_mode == "snapshot_backed"
    combo = ibkr.judge("us_equity_combo_leveraged").requirements
    assert combo is not None and combo.strategy_config == "env_only" and combo.input_mode == "direct_runtime"
    assert ibkr.run.environment == "sources" and ibkr.run.functions[-1] == "describe_platform_runtime_requirements"
    assert ibkr.release == " ".join(f"{p.name}@{p.commit}" for p in sorted(packages, key=lambda p: p.name))
    assert "research_only_rotation" not in ibkr.profiles and ibkr.judge("research_only_rotation").requirements is None


def test_trees_are_cached_by_commit_and_the_probe_runs_again(
    today: tuple[Clones, dict[str, str], tuple[PackageCommit, ...]], tmp_path: Path
) -> None:
    clones, commits, packages = today
    requests = [request("ibkr", commits["ibkr"], packages)]
    first = proved(prove_platform_facts(requests, clones.trees(), cache_root=tmp_path, deadline=time.monotonic() + 60))
    # without the clones, the cached trees still serve the same commits
    gone = GitTrees(lambda repo: tmp_path / "nowhere" / repo)
    assert proved(prove_platform_facts(requests, gone, cache_root=tmp_path, deadline=time.monotonic() + 60)) == first
    # a commit not in the cache needs its clone: fails closed naming the step, other requests unaffected
    other = request("ibkr", "e" * 40, packages)
    failure, again = prove_platform_facts([other, requests[0]], gone, cache_root=tmp_path, deadline=time.monotonic() + 60)
    assert isinstance(failure, FactsFailure) and failure.step.startswith("git archive InteractiveBrokersPlatform@eeeeeee")
    assert again == first[0]


def test_a_failing_registry_fails_its_request_only(today: tuple[Clones, dict[str, str], tuple[PackageCommit, ...]], tmp_path: Path) -> None:
    clones, commits, packages = today
    broken = clones.commit(REPOS["longbridge"], {"strategy_registry.py": registry_today("longbridge") + "raise RuntimeError('boom')\n"})
    results = prove_platform_facts(
        [request("ibkr", commits["ibkr"], packages), request("longbridge", broken, packages)],
        clones.trees(),
        cache_root=tmp_path,
        deadline=time.monotonic() + 60,
    )
    assert isinstance(results[0], PlatformProfiles)
    assert isinstance(results[1], FactsFailure) and results[1].step == "run longbridge's registry"
    assert "RuntimeError: boom" in results[1].message


def test_seed_facts_read_through_the_catalog(tmp_path: Path) -> None:
    clones = Clones(tmp_path / "clones")
    bundled = {"qqq_tech_enhancement": BUNDLED_CONFIG}
    packages = (
        PackageCommit(name="quant-platform-kit", repo="QuantPlatformKit", ref="v0.7.10", commit=clones.commit("QuantPlatformKit", qpk_files())),
        PackageCommit(name="us-equity-strategies", repo="UsEquityStrategies", ref="v0.7.13",
                      commit=clones.commit("UsEquityStrategies", ues_seed_files(V13_PROFILES, ADAPTERS["v0.7.13"], bundled))),
    )  # fmt: skip
    requests = []
    for platform in REPOS:
        modes, inputs = CAPABILITIES[platform]
        files = {"strategy_registry.py": registry_seed(platform, SEED_ALLOWLISTS[platform], modes, inputs)}
        if platform == "ibkr":
            files[BUNDLED_CONFIG] = "{}\n"
        requests.append(request(platform, clones.commit(REPOS[platform], files), packages))
    ibkr, schwab, longbridge = proved(
        prove_platform_facts(requests, clones.trees(), cache_root=tmp_path / "cache", deadline=time.monotonic() + 60)
    )
    assert ibkr.enabled() == sorted(SEED_ALLOWLISTS["ibkr"]) and schwab.enabled() == sorted(SEED_ALLOWLISTS["schwab"])
    assert ibkr.run.functions[-1] == "get_platform_runtime_adapter"
    tech_ibkr, tech_lb = ibkr.judge("tech_pullback_cash_buffer").requirements, longbridge.judge("qqq_tech_enhancement").requirements
    assert tech_ibkr is not None and tech_lb is not None
    assert (tech_ibkr.strategy_config, tech_ibkr.bundled_config) == ("bundled_or_env", BUNDLED_CONFIG)
    assert (
        tech_lb.strategy_config == "env_or_module_defaults" and tech_lb.manifest_contract == "tech_pullback_cash_buffer.feature_snapshot.v1"
    )
    assert schwab.judge("qqq_tech_enhancement").requirements is None  # not in Schwab's allowlist nor its inputs


def test_facts_from_the_github_fake_match_the_clones(
    today: tuple[Clones, dict[str, str], tuple[PackageCommit, ...]], tmp_path: Path
) -> None:
    clones, commits, packages = today
    repos: dict[str, FakeRepo] = {}
    files_of: dict[tuple[str, str], dict[str, str]] = {}
    for name, repo in clones.repos.items():
        fake_repo = repos.setdefault(f"{OWNER}/{name}", FakeRepo())
        for commit in repo.git("rev-list", "--all").split():
            listed = repo.git("ls-tree", "-r", "--name-only", commit).split("\n")
            files = {path: repo.git("show", f"{commit}:{path}") + "\n" for path in listed if path}
            fake_repo.add_commit(commit, files)
            files_of[(name, commit)] = files
    wanted = request("ibkr", commits["ibkr"], packages)
    with running(repos) as fake:
        listing = lambda repo, commit: {path: git_blob_id(text.encode()) for path, text in files_of[(repo, commit)].items()}  # noqa: E731 - one-line adapter
        github = GitHubTrees(fake.base_url, OWNER, None, listing)
        from_github = proved(prove_platform_facts([wanted], github, cache_root=tmp_path / "gh", deadline=time.monotonic() + 60))
    from_git = proved(prove_platform_facts([wanted], clones.trees(), cache_root=tmp_path / "git", deadline=time.monotonic() + 60))
    assert from_github == from_git and fake.count("/tarball/") == 4  # the platform and three packages, once each


def _row(describe: dict[str, object], bundled: str | None = None, present: bool | None = None) -> ProbeProfile:
    return ProbeProfile(
        canonical_profile="combo", display_name="Combo", domain="us_equity", eligible=True, enabled=True, platform="ibkr",
        required_inputs=["market_data"], bundled_config=bundled, bundled_config_present=present, describe=ProbeDescribe(**describe),
    )  # fmt: skip


@pytest.mark.parametrize(
    "describe, bundled, present, expected",
    [
        # today's policies, as the platforms' switch scripts read them
        ({"config_source_policy": "env_only"}, None, None, ("env_only", False)),
        ({"config_source_policy": "env_only", "requires_strategy_config_path": True}, None, None, ("env_only", True)),
        ({"config_source_policy": "bundled_or_env", "requires_strategy_config_path": True}, "c.json", True, ("bundled_or_env", False)),
        ({"config_source_policy": "bundled_or_env"}, "c.json", False, ("env_or_module_defaults", False)),
        ({"config_source_policy": "none"}, None, None, ("none", False)),
        # releases before the policy field: only whether a path is required
        ({"requires_strategy_config_path": True, "requires_snapshot_artifacts": True}, "c.json", True, ("bundled_or_env", False)),
        ({"requires_strategy_config_path": True, "requires_snapshot_artifacts": True}, None, None, ("env_only", True)),
        ({"requires_strategy_config_path": False}, None, None, ("none", False)),
    ],
)
def test_config_sources_from_describe(describe, bundled, present, expected) -> None:
    needs = requirements_of(_row(describe, bundled, present))
    assert (needs.strategy_config, needs.strategy_config_required) == expected


def test_policies_this_program_does_not_know_leave_the_profile_unproved() -> None:
    for describe in ({"config_source_policy": "remote_only"}, {"reconciliation_output_policy": "sometimes"}):
        with pytest.raises(UnknownPolicy):
            requirements_of(_row(describe))
    assert requirements_of(_row({"reconciliation_output_policy": "required"})).reconciliation_output == "required"
    assert requirements_of(_row({})).reconciliation_output is None
