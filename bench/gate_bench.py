"""The release gate's GitHub cost for the prod stack: requests and wall time against the local fake.

Runs `run_gate` on Pulumi.prod.yaml through `GitHubSource` against tests/fixtures/github_fake.py serving
the seed release (127.0.0.1 only), with an injected per-request latency to stand in for GitHub's round
trip, and prints the request count, the wall time and the requests per endpoint.

    .venv/bin/python bench/gate_bench.py [--latency-ms 50] [--repeat 3]
"""

from __future__ import annotations

import argparse
import sys
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def endpoint(request: str) -> str:
    """`GET /repos/o/r/git/trees/<sha>` -> `git/trees`; `.../commits/<sha>/status` -> `commits/status`."""
    parts = request.split("?")[0].split("/")[4:]
    return f"{parts[0]}/{parts[1]}" if parts[0] == "git" else f"{parts[0]}/{parts[-1]}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--latency-ms", type=float, default=50.0, help="injected latency per request")
    parser.add_argument("--repeat", type=int, default=3, help="runs; the fastest counts")
    args = parser.parse_args(argv)
    sys.path.insert(0, str(ROOT))
    from release.gate import run_gate
    from release.github_source import GitHubSource
    from release.stack import load_stack_file, stack_file
    from tests.fixtures.github_fake import prod_seed_repos, running

    config = load_stack_file(stack_file("prod", ROOT))
    best, requests, endpoints, ok = float("inf"), 0, Counter(), False
    for _ in range(args.repeat):
        with running(prod_seed_repos(), latency=args.latency_ms / 1000) as fake:
            source = GitHubSource(config.release.github_owner, base_url=fake.base_url)
            started = time.perf_counter()
            report = run_gate(config, source)
            wall = time.perf_counter() - started
            if wall < best:
                best, requests, ok = wall, len(fake.requests), report.ok
                endpoints = Counter(endpoint(line) for line in fake.requests)
    services = len(config.services)
    commits = len({spec.commit for spec in config.services.values()})
    print(f"prod stack: {services} services, {commits} distinct platform commits, gate {'PASS' if ok else 'FAIL'}")
    print(f"requests: {requests}   wall: {best:.3f} s   latency: {args.latency_ms:g} ms/request   (best of {args.repeat})")
    for name, count in sorted(endpoints.items()):
        print(f"  {count:>3}  {name}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
