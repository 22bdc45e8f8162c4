"""The release gate's GitHub cost: requests, wall time and round trips waited for, at an injected latency.

Runs `run_gate` through `GitHubSource` against bench/github_stub.py (127.0.0.1 only; every request,
the tarball's codeload redirect included, waits `--latency-ms`), with and without a token, for:
  seed   Pulumi.prod.yaml as it is: QPK v0.7.10 (lightweight tag), UES v0.7.13 (annotated), three
         platform commits pinning them in requirements.txt, four services
  today  the shape of the repositories' HEAD commits (docs/platform-facts.md §8): three packages by commit
         (QPK, UES, HK), four services at three platform commits pinning them in pyproject.toml (QPK also
         overridden), uv.lock and qsl.toml; Schwab on its own release (another QPK and UES); with a lock
         of the previous commits, so each package is also ordered by history
The fetch stages are timed apart from the judge: fetch wall / latency is the number of round trips the run
waited for; `judge s` is the checks plus the profile-facts probe (a local child process, no request; see
bench/facts_bench.py for its cost over runnable registries). The trees hold install files only (no catalog
or registry), so `profile-facts` fails (unverified: the probe finds no registry) in every row; the round
trips are the same either way.

    .venv/bin/python bench/gate_bench.py [--latency-ms 200] [--repeat 3] [--pools 8,16]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any, Optional

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from github_stub import StubRepo, serving  # noqa: E402  (the bench runs as a script from any directory)

OWNER = "QuantStrategyLab"
QPK, UES, HK = "QuantPlatformKit", "UsEquityStrategies", "HkEquityStrategies"
PLATFORMS = {"ibkr": "InteractiveBrokersPlatform", "schwab": "CharlesSchwabPlatform", "longbridge": "LongBridgePlatform"}


def requirement(package: str, repo: str, ref: str) -> str:
    return f"{package} @ git+https://github.com/{OWNER}/{repo}.git@{ref}"


def seed_repos(config: Any) -> dict[str, StubRepo]:
    qpk, ues = StubRepo(), StubRepo()
    qpk.tags["v0.7.10"] = (qpk.commit("qpk v0.7.10", {"pyproject.toml": '[project]\nname = "quant-platform-kit"\n'}), False)
    ues_pyproject = f'[project]\nname = "us-equity-strategies"\ndependencies = ["{requirement("quant-platform-kit", QPK, "v0.7.10")}"]\n'
    ues.tags["v0.7.13"] = (ues.commit("ues v0.7.13", {"pyproject.toml": ues_pyproject}), True)
    repos = {f"{OWNER}/{QPK}": qpk, f"{OWNER}/{UES}": ues}
    pins = requirement("quant-platform-kit", QPK, "v0.7.10") + "\n" + requirement("us-equity-strategies", UES, "v0.7.13") + "\n"
    for spec in config.services.values():
        repo = repos.setdefault(f"{OWNER}/{PLATFORMS[spec.platform]}", StubRepo())
        repo.commits[spec.commit] = {"requirements.txt": "flask==3.0.3\n" + pins, "main.py": "print('target')\n"}
        repo.parents[spec.commit] = ()
        repo.branches["main"] = spec.commit
    return repos


def today(prod: Any) -> tuple[Any, dict[str, StubRepo], Any]:
    """Today's shape: the stack, the repositories, and a lock of the release before it."""
    from release.gate.lock import Lock, LockedRef, LockedRelease

    qpk, ues, hk = StubRepo(), StubRepo(), StubRepo()
    q_old = qpk.commit("qpk 37c8190", {"pyproject.toml": "[project]\n"})
    q_schwab = qpk.commit("qpk 3acab19", {"pyproject.toml": "[project]\n"}, parent=q_old)
    q = qpk.commit("qpk ff09c88", {"pyproject.toml": "[project]\n"}, parent=q_schwab)

    def strategy(repo: StubRepo, name: str, kit: str, parent: Optional[str] = None) -> str:
        text = f'[project]\nname = "{name}"\ndependencies = ["pandas>=2.0", "{requirement("quant-platform-kit", QPK, kit)}"]\n'
        return repo.commit(f"{name} {kit}", {"pyproject.toml": text, "qsl.toml": '[compat]\nbundle = "2026.07.2"\n'}, parent)

    u_schwab = strategy(ues, "us-equity-strategies", q_schwab)
    u_old = strategy(ues, "us-equity-strategies", q_old, parent=u_schwab)
    u = ues.commit("ues 17ddb86", dict(ues.commits[u_old], **{"README.md": "17ddb86\n"}), parent=u_old)  # still pins QPK 37c8190
    h = strategy(hk, "hk-equity-strategies", q_old)
    repos = {f"{OWNER}/{QPK}": qpk, f"{OWNER}/{UES}": ues, f"{OWNER}/{HK}": hk}
    commits = {}
    for platform, repo_name in PLATFORMS.items():
        repo = repos[f"{OWNER}/{repo_name}"] = StubRepo()
        kit, us, hk_ref = (q_schwab, u_schwab, None) if platform == "schwab" else (q, u, h)
        deps = [requirement("quant-platform-kit", QPK, kit), requirement("us-equity-strategies", UES, us)]
        deps += [] if hk_ref is None else [requirement("hk-equity-strategies", HK, hk_ref)]
        pyproject = (
            f'[project]\nname = "{platform}-platform"\ndependencies = [\n' + "".join(f'  "{dep}",\n' for dep in ["flask", *deps]) + "]\n"
            f'[tool.uv]\noverride-dependencies = ["{requirement("quant-platform-kit", QPK, kit)}"]\n'
        )
        locked = [("quant-platform-kit", QPK, kit), ("us-equity-strategies", UES, us)] + (
            [] if hk_ref is None else [("hk-equity-strategies", HK, hk_ref)]
        )
        uv_lock = "version = 1\n" + "".join(
            f'[[package]]\nname = "{name}"\nversion = "0"\nsource = {{ git = "https://github.com/{OWNER}/{r}.git?rev={ref}#{ref}" }}\n'
            for name, r, ref in locked
        )
        requires = "".join(f'{name.replace("-", "_")} = "{ref}"\n' for name, _, ref in locked)
        qsl = f'[qsl]\nrepo = "{repo_name}"\n[qsl.requires]\n{requires}[qsl.compat]\nbundle = "{"2026.08.0" if platform == "schwab" else "2026.07.4"}"\n'
        commits[platform] = repo.commit(
            f"{platform} head", {"pyproject.toml": pyproject, "uv.lock": uv_lock, "qsl.toml": qsl, "main.py": "\n"}
        )
    services = {}
    for key, spec in prod.services.items():
        commit = commits[spec.platform]
        update: dict[str, Any] = {"commit": commit, "image": spec.image.rsplit(":", 1)[0] + ":" + commit}
        if spec.platform == "schwab":
            update["release"] = prod.release.model_validate(
                {"packages": {"quant-platform-kit": q_schwab, "us-equity-strategies": u_schwab}}
            )
        services[key] = spec.model_copy(update=update)
    release = prod.release.model_copy(
        update={
            "shorthand_qpk": None,
            "shorthand_ues": None,
            "packages": {"quant-platform-kit": q, "us-equity-strategies": u, "hk-equity-strategies": h},
        }
    )
    config = prod.model_copy(update={"release": release, "services": services})
    previous = LockedRelease(
        packages={
            "quant-platform-kit": LockedRef(repo=QPK, ref=q_old, commit=q_old),
            "us-equity-strategies": LockedRef(repo=UES, ref=u_old, commit=u_old),
            "hk-equity-strategies": LockedRef(repo=HK, ref=h, commit=h),
        }
    )
    lock = Lock(locked_at="2026-07-01T00:00:00Z", source="github", github_owner=OWNER, release=previous, services={})
    return config, repos, lock


def measure(
    config: Any, repos: dict[str, StubRepo], lock: Any, latency: float, token: Optional[str], pool: int, repeat: int
) -> tuple[float, float, int, list[str]]:
    """The fastest run's fetch wall time (what waits for GitHub), its judge time (the checks and the
    profile-facts probe, no request), its request count and failing checks."""
    from release.gate.checks import judge
    from release.gate.fetch import fetch_snapshot
    from release.gate.github_source import GitHubSource

    best, judged, requests, failing = float("inf"), 0.0, 0, []
    for _ in range(repeat):
        with serving(repos, latency) as stub:
            source = GitHubSource(config.release.github_owner, token, stub.base_url, concurrency=pool)
            started = time.perf_counter()
            snapshot = fetch_snapshot(config, source, lock)
            fetched = time.perf_counter()
            report = judge(snapshot, lock)
            wall = fetched - started
            if wall < best:
                best, judged, requests = wall, time.perf_counter() - fetched, len(stub.requests)
                failing = sorted({check.id.split(":")[0] for check in report.checks if not check.ok})
    return best, judged, requests, failing


def main(argv: Optional[list[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--latency-ms", type=float, default=200.0, help="injected latency per request")
    parser.add_argument("--repeat", type=int, default=3, help="runs; the fastest counts")
    parser.add_argument("--pools", default="32", help="requests in flight at once, comma-separated (the gate's default is 32)")
    args = parser.parse_args(argv)
    from release.stack import load_stack_file, stack_file

    latency = args.latency_ms / 1000
    prod = load_stack_file(stack_file("prod", ROOT))
    now, now_repos, now_lock = today(prod)
    stacks = [("seed (Pulumi.prod.yaml)", prod, seed_repos(prod), None), ("today's shape (3 packages, a lock)", now, now_repos, now_lock)]
    print(f"latency {args.latency_ms:g} ms/request, best of {args.repeat}")
    print(f"{'stack':<36} {'token':>5} {'pool':>4} {'requests':>8} {'fetch s':>7} {'round trips':>11} {'judge s':>7}  failing checks")
    worst = 0.0
    for name, config, repos, lock in stacks:
        for token in (None, "bench-token"):
            for pool in (int(size) for size in args.pools.split(",") if size):
                wall, judged, requests, failing = measure(config, repos, lock, latency, token, pool, args.repeat)
                worst = max(worst, wall / latency)
                shown = ", ".join(failing) or "none"
                print(
                    f"{name:<36} {'yes' if token else 'no':>5} {pool:>4} {requests:>8} {wall:>7.3f} {wall / latency:>11.1f} "
                    f"{judged:>7.3f}  {shown}"
                )
    print(f"most round trips waited for: {worst:.1f} (goal: at most 4)")
    return 0 if worst <= 4.5 else 1


if __name__ == "__main__":
    sys.exit(main())
