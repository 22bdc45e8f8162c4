"""The release gate's GitHub cost: requests, wall time and wall ÷ latency against the local fake.

Runs `run_gate` through `GitHubSource` against tests/fixtures/github_fake.py (127.0.0.1 only) with an
injected per-request latency standing in for GitHub's round trip, for the prod stack (Pulumi.prod.yaml
over the seed release) and for a generated stack of 200 services over 20 distinct platform commits,
asking one question at a time (pool 1) and with the gate's bounded pool. wall ÷ latency is the number of
round trips the run waited for: the depth of the question tree when the pool is wide enough, the
request count when asked one by one. Also times `--source git` over the seed release's clones.

    .venv/bin/python bench/gate_bench.py [--latency-ms 50] [--repeat 3] [--pools 1,8,16]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def endpoint(request: str) -> str:
    """`GET /repos/o/r/git/trees/<sha>` -> `git/trees`; `.../commits/<sha>/status` -> `commits/status`."""
    if request.startswith("POST "):
        return "graphql"
    parts = request.split("?")[0].split("/")[4:]
    return f"{parts[0]}/{parts[1]}" if parts[0] == "git" else f"{parts[0]}/{parts[-1]}"


def measure(config, repos_factory, latency: float, pool: int, repeat: int, graphql: bool):
    from release.gate.checks import run_gate
    from release.gate.github_source import GitHubSource
    from tests.fixtures.github_fake import running

    best, requests, endpoints, ok, in_flight = float("inf"), 0, Counter(), False, 0
    for _ in range(repeat):
        with running(repos_factory(), latency=latency) as fake:
            # a token only the fake sees: GitHub's GraphQL API needs one, so it switches GraphQL on
            token = "bench-token-for-the-local-fake" if graphql else None
            source = GitHubSource(config.release.github_owner, token, fake.base_url, concurrency=pool, graphql=graphql)
            started = time.perf_counter()
            report = run_gate(config, source)
            wall = time.perf_counter() - started
            source.close()
            if wall < best:
                best, requests, ok, in_flight = wall, len(fake.requests), report.ok, fake.max_in_flight
                endpoints = Counter(endpoint(line) for line in fake.requests)
    return best, requests, endpoints, ok, in_flight


def git_wall(repeat: int) -> float:
    from release.gate.checks import run_gate
    from release.gate.git_source import GitSource
    from tests.fixtures.git_repos import prod_config, seed_git_root

    with tempfile.TemporaryDirectory() as directory:
        seed = seed_git_root(Path(directory))
        best = float("inf")
        for _ in range(repeat):
            source = GitSource(seed.root)
            started = time.perf_counter()
            assert run_gate(prod_config(seed.target), source).ok
            best = min(best, time.perf_counter() - started)
            source.close()
    return best


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--latency-ms", type=float, default=50.0, help="injected latency per request")
    parser.add_argument("--repeat", type=int, default=3, help="runs; the fastest counts")
    parser.add_argument("--pools", default="1,8", help="REST pool sizes to compare (1 = one question at a time)")
    parser.add_argument("--graphql-pools", default="8", help="pool sizes to run with GraphQL (CI and blobs batched)")
    args = parser.parse_args(argv)
    sys.path.insert(0, str(ROOT))
    from release.stack import load_stack_file, stack_file
    from tests.fixtures.generated_stack import generated_stack
    from tests.fixtures.github_fake import prod_seed_repos

    latency = args.latency_ms / 1000
    prod = load_stack_file(stack_file("prod", ROOT))
    big, _ = generated_stack(200, 20)
    stacks = [
        ("prod", prod, prod_seed_repos),
        ("generated", big, lambda: generated_stack(200, 20)[1]),
    ]
    all_ok = True
    print(f"latency {args.latency_ms:g} ms/request, best of {args.repeat}")
    print(f"{'stack':<38} {'mode':>7} {'pool':>4} {'requests':>8} {'max in flight':>13} {'wall s':>7} {'wall/latency':>12}  gate")
    modes = [(False, int(size)) for size in args.pools.split(",") if size] + [
        (True, int(size)) for size in args.graphql_pools.split(",") if size
    ]
    for name, config, factory in stacks:
        commits = len({spec.commit for spec in config.services.values()})
        label = f"{name} ({len(config.services)} services, {commits} commits)"
        for graphql, pool in modes:
            wall, requests, endpoints, ok, in_flight = measure(config, factory, latency, pool, args.repeat, graphql)
            all_ok = all_ok and ok
            mode = "graphql" if graphql else "rest"
            print(
                f"{label:<38} {mode:>7} {pool:>4} {requests:>8} {in_flight:>13} {wall:>7.3f} {wall / latency:>12.1f}  {'PASS' if ok else 'FAIL'}"
            )
            print("    requests per endpoint: " + ", ".join(f"{count} {what}" for what, count in sorted(endpoints.items())))
    print(f"--source git over the seed clones (prod): {git_wall(args.repeat) * 1000:.0f} ms")
    return 0 if all_ok else 1


if __name__ == "__main__":
    sys.exit(main())
