"""Profile facts for three platform commits (the prod stack's count), cold and warm.

Builds synthetic clones of the seed's shape (QPK, UES v0.7.13-like, three platform commits with literal
allowlists) and of today's (QPK, UES, HK, three platform commits whose registries compute their
allowlists), then runs `prove_platform_facts` over `--source git`-style trees (git archive) and over the
GitHub fake's tarballs (`--latency-ms` per request):

- cold: an empty cache (every tree archived or downloaded, verified, written; every probe run);
- warm: the same cache again (trees from the cache; the probe always runs again, its answer is never cached).

No third-party import is needed by these registries, so no environment is built (the lock path is
measured by tests/test_facts_runner.py's uv cases, not here: a real build is dominated by the registry).

    .venv/bin/python bench/facts_bench.py [--repeat 3] [--latency-ms 50]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from release.gate.platform_facts import FactsFailure, FactsRequest, PackageCommit, prove_platform_facts  # noqa: E402 - after the path
from release.gate.source_trees import GitHubTrees, GitTrees, git_blob_id  # noqa: E402 - after the path
from tests.fixtures.git_repos import GitRepo  # noqa: E402 - after the path
from tests.fixtures.github_fake import OWNER, FakeRepo, running  # noqa: E402 - after the path
from tests.fixtures.profile_sources import ADAPTERS, BUNDLED_CONFIG, CAPABILITIES, SEED_ALLOWLISTS, V13_PROFILES  # noqa: E402 - after the path
from tests.fixtures.strategy_packages import (  # noqa: E402 - after the path
    hk_files,
    platform_today_files,
    qpk_files,
    registry_seed,
    ues_seed_files,
    ues_today_files,
)

REPOS = {"ibkr": "InteractiveBrokersPlatform", "schwab": "CharlesSchwabPlatform", "longbridge": "LongBridgePlatform"}


def build(root: Path, shape: str) -> tuple[list[FactsRequest], dict[str, dict[str, dict[str, str]]]]:
    files: dict[str, dict[str, dict[str, str]]] = {}

    def commit(repo: str, content: dict[str, str]) -> str:
        sha = GitRepo.init(root / repo).commit(content)
        files.setdefault(repo, {})[sha] = content
        return sha

    packages = [
        PackageCommit(name="quant-platform-kit", repo="QuantPlatformKit", ref="v0.7.10", commit=commit("QuantPlatformKit", qpk_files()))
    ]
    if shape == "seed":
        ues = ues_seed_files(V13_PROFILES, ADAPTERS["v0.7.13"], {"qqq_tech_enhancement": BUNDLED_CONFIG})
    else:
        ues = ues_today_files()
    packages.append(
        PackageCommit(name="us-equity-strategies", repo="UsEquityStrategies", ref="v0.7.13", commit=commit("UsEquityStrategies", ues))
    )
    if shape == "today":
        packages.append(
            PackageCommit(
                name="hk-equity-strategies", repo="HkEquityStrategies", ref="main", commit=commit("HkEquityStrategies", hk_files())
            )
        )
    requests = []
    for platform, repo in REPOS.items():
        if shape == "seed":
            modes, inputs = CAPABILITIES[platform]
            content = {"strategy_registry.py": registry_seed(platform, SEED_ALLOWLISTS[platform], modes, inputs)}
            wanted = tuple(packages)
        else:
            content = platform_today_files(platform, hk=platform != "schwab")
            wanted = tuple(packages) if platform != "schwab" else tuple(packages[:2])
        requests.append(FactsRequest(platform=platform, repo=repo, commit=commit(repo, content), packages=wanted))
    return requests, files


def timed(requests: list[FactsRequest], trees, cache: Path) -> float:
    start = time.monotonic()
    results = prove_platform_facts(requests, trees, cache_root=cache, deadline=start + 120)
    took = time.monotonic() - start
    failures = [result for result in results if isinstance(result, FactsFailure)]
    if failures:
        raise SystemExit(f"facts not proved: {failures[0].message}")
    return took


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--latency-ms", type=float, default=50.0)
    args = parser.parse_args()
    print("| shape | trees from | cold (s) | warm (s) |")
    print("|---|---|---|---|")
    for shape in ("seed", "today"):
        with tempfile.TemporaryDirectory() as work:
            requests, files = build(Path(work) / "clones", shape)
            git = GitTrees(lambda repo, work=work: Path(work) / "clones" / repo / ".git")
            repos = {f"{OWNER}/{repo}": FakeRepo(commits=dict(commits)) for repo, commits in files.items()}

            def listing(repo: str, commit: str, files=files) -> dict[str, str]:
                return {path: git_blob_id(text.encode()) for path, text in files[repo][commit].items()}

            with running(repos, latency=args.latency_ms / 1000) as fake:
                github = GitHubTrees(fake.base_url, OWNER, None, listing)
                for name, trees in (("git archive", git), (f"GitHub tarball, {args.latency_ms:g} ms", github)):
                    cold, warm = [], []
                    for attempt in range(args.repeat):
                        cache = Path(work) / f"cache-{name[:3]}-{attempt}"
                        cold.append(timed(requests, trees, cache))
                        warm.append(timed(requests, trees, cache))
                    print(f"| {shape} | {name} | {statistics.median(cold):.2f} | {statistics.median(warm):.2f} |")


if __name__ == "__main__":
    main()
