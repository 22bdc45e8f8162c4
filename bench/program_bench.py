"""How the program's cost grows with services: the prod stack against a generated 200-service stack.

Each stack runs the real `__main__.py` under Pulumi mocks in a fresh Python process, as `pulumi preview`
would start it: interpreter, imports, config validation, the release gate, every registration. The
parent prints the wall time of each, their ratio, and the child's own breakdown so the
gate's cost is never mistaken for a registration cost:

    config+gate  load_config() + check_release()  (the gate checks each platform commit once)
    register     providers, components, services and exports, until the last registration resolves

The generated stack repeats the four prod services 50 times (new keys and names, same three projects,
the same three platform commits), so a program that re-checked a commit or built a provider per service
would show up as a larger ratio.

The gate is replaced by the seed's profile facts as plain data (bench/program_stand_ins.py): its cost is
bench/gate_bench.py's to measure, and this ratio measures the program alone. The bench builds everything it
uses itself and never imports the tests' fixtures.

    .venv/bin/python bench/program_bench.py [--services 200]
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Optional

ROOT = Path(__file__).resolve().parent.parent
# The goal is linear growth: registration may not grow faster than the resources registered. (The old goal,
# a wall ratio of at most 5, was set when a service was 2 resources; with its scheduler job and invoker
# member it is 4, and the SDK's per-resource cost under mocks alone puts the ratio near 6.)
GOAL = "registration ratio <= resource ratio"
SERVICE_TYPE = "gcp:cloudrunv2/service:Service"
PROVIDER_TYPE = "pulumi:providers:gcp"


def generated_services(prod_services: dict, count: int) -> dict:
    """`count` services cloned from the prod ones in turn: unique keys and names, shared projects and commits."""
    services = {}
    keys = sorted(prod_services)
    for index in range(count):
        key = keys[index % len(keys)]
        spec = copy.deepcopy(prod_services[key])
        copy_no = f"{index // len(keys):03d}"
        spec["serviceName"] = spec["serviceName"].replace("-service", f"-{copy_no}-service")
        services[f"{key}-{copy_no}"] = spec
    return services


def child(config_path: Path) -> None:
    """Run the program once under mocks and print the breakdown as JSON on the last line."""
    started = time.perf_counter()
    sys.path.insert(0, str(ROOT))
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from program_stand_ins import run_program, seed_facts

    from components import program

    program.check_release = lambda config, environ=None: seed_facts(config)
    imported = time.perf_counter()
    timings: dict[str, float] = {}

    def timed_program() -> None:
        t0 = time.perf_counter()
        config = program.load_config()
        facts = program.check_release(config)
        t1 = time.perf_counter()
        timings["config_gate"] = t1 - t0
        timings["deploy_start"] = t1
        program.deploy(config, facts)

    config = json.loads(config_path.read_text(encoding="utf-8"))
    with tempfile.TemporaryDirectory(prefix="program-bench-") as root:
        (Path(root) / "Pulumi.yaml").write_text("name: us-equity-cutover\nruntime: python\n", encoding="utf-8")
        registered = run_program(timed_program, config, Path(root))
    finished = time.perf_counter()
    print(
        json.dumps(
            {
                "services": registered[SERVICE_TYPE],
                "providers": registered[PROVIDER_TYPE],
                "resources": sum(registered.values()),
                "imports": imported - started,
                "config_gate": timings["config_gate"],
                # From the first registration to the last resolved output (the program's own loop included).
                "register": finished - timings["deploy_start"],
                "gate": "stubbed",
            }
        )
    )


def stack_config(path: Path) -> dict[str, str]:
    """A stack file's config as the Pulumi CLI hands it to a program: objects as JSON strings."""
    sys.path.insert(0, str(ROOT))
    from release.yaml_core import load_core

    document = load_core(path.read_text(encoding="utf-8"))
    return {key: value if isinstance(value, str) else json.dumps(value) for key, value in document["config"].items()}


def run_child(config: dict, env: dict[str, str]) -> tuple[float, dict]:
    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as handle:
        json.dump(config, handle)
    try:
        started = time.perf_counter()
        result = subprocess.run(
            [sys.executable, str(Path(__file__).resolve()), "--child", handle.name],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            check=False,
        )
        wall = time.perf_counter() - started
    finally:
        os.unlink(handle.name)
    if result.returncode != 0:
        raise SystemExit(f"benchmark child failed:\n{result.stdout}\n{result.stderr}")
    return wall, json.loads(result.stdout.strip().splitlines()[-1])


def main(argv: Optional[list[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--services", type=int, default=200)
    parser.add_argument("--repeat", type=int, default=3, help="runs per stack; the fastest counts")
    parser.add_argument("--child", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child is not None:
        child(args.child)
        return 0

    prod = stack_config(ROOT / "Pulumi.prod.yaml")
    services_key = "us-equity-cutover:services"
    big = dict(prod)
    big[services_key] = json.dumps(generated_services(json.loads(prod[services_key]), args.services))
    results = {}
    env = {name: value for name, value in os.environ.items() if name != "GITHUB_TOKEN"}
    for label, config in (("prod", prod), (f"generated-{args.services}", big)):
        runs = [run_child(config, env) for _ in range(args.repeat)]
        results[label] = min(runs, key=lambda run: run[0])

    print(f"{'stack':<16}{'services':>9}{'providers':>10}{'resources':>10}{'wall s':>9}{'imports':>9}{'cfg+gate':>9}{'register':>9}  gate")
    for label, (wall, detail) in results.items():
        print(
            f"{label:<16}{detail['services']:>9}{detail['providers']:>10}{detail['resources']:>10}{wall:>9.3f}"
            f"{detail['imports']:>9.3f}{detail['config_gate']:>9.3f}{detail['register']:>9.3f}  {detail['gate']}"
        )
    (prod_wall, prod_detail), (big_wall, big_detail) = results.values()
    ratio = big_wall / prod_wall
    per_service_ms = (big_detail["register"] - prod_detail["register"]) / (big_detail["services"] - prod_detail["services"]) * 1000
    print(f"ratio (wall, {args.services} services / prod): {ratio:.2f}")
    print(f"ratio (config+gate only): {big_detail['config_gate'] / prod_detail['config_gate']:.2f}")
    service_ratio = big_detail["services"] / prod_detail["services"]
    resource_ratio = big_detail["resources"] / prod_detail["resources"]
    per_service = (big_detail["resources"] - prod_detail["resources"]) / (big_detail["services"] - prod_detail["services"])
    register_ratio = big_detail["register"] / prod_detail["register"]
    print(
        f"ratio (registration only): {register_ratio:.2f}  "
        f"({service_ratio:g}x the services, {resource_ratio:.0f}x the resources; goal: {GOAL})"
    )
    print(f"marginal registration cost: {per_service_ms:.1f} ms per service (Pulumi SDK + mocks, {per_service:g} resources each)")
    print("note: the gate is replaced by the seed's profile facts (bench/gate_bench.py measures the gate)")
    return 0 if register_ratio <= resource_ratio else 1


if __name__ == "__main__":
    sys.exit(main())
