"""The benchmark's own stand-ins for what the Pulumi program reaches outside itself (never the tests'):

- `seed_facts(config)`: the profile facts of the seed release (what each platform commit's registry gives
  with UES v0.7.13, docs/platform-facts.md §4) as plain data, in place of the gate, whose cost
  bench/gate_bench.py and bench/facts_bench.py measure;
- `run_program(program, config)`: the program under `pulumi.runtime.set_mocks`, every service absent
  (the create path registers every resource), every image present, every scheduler job absent; it returns
  what was registered, by type.
"""

from __future__ import annotations

import hashlib
from collections import Counter
from pathlib import Path
from typing import Any, Callable, Mapping, Optional

import grpc
import pulumi
from pulumi.runtime import mocks as pulumi_mocks
from pulumi.runtime import settings as pulumi_settings
from pulumi.runtime.stack import run_pulumi_func
from pulumi.runtime.sync_await import _sync_await

from components.profiles import (
    PackageCommit,
    PlatformProfiles,
    PlatformRequirements,
    ProfileFacts,
    ProvedProfile,
    RunProvenance,
)
from release.config import PROJECT_NAME, StackConfig

MANIFEST_CONTRACT = "tech_pullback_cash_buffer.feature_snapshot.v1"
BUNDLED_CONFIG = "research/configs/growth_pullback_tech_pullback_cash_buffer.json"
# canonical profile -> (display name, aliases, platforms, required inputs, target mode)
PROFILES = {
    "global_etf_rotation": ("Global ETF Rotation", ("global_macro_etf_rotation",), ("ibkr",), ("market_history",), "weight"),
    "tqqq_growth_income": (
        "TQQQ Growth Income",
        ("hybrid_growth_income", "qqq_tqqq_growth_income"),
        ("schwab", "longbridge"),
        ("benchmark_history", "portfolio_snapshot"),
        "value",
    ),
    "soxl_soxx_trend_income": (
        "SOXL/SOXX Semiconductor Trend Income",
        ("semiconductor_rotation_income", "semiconductor_trend_income"),
        ("ibkr", "longbridge", "schwab"),
        ("derived_indicators", "portfolio_snapshot"),
        "value",
    ),
    "russell_1000_multi_factor_defensive": (
        "Russell 1000 Multi-Factor",
        ("r1000_multifactor_defensive",),
        ("ibkr",),
        ("feature_snapshot",),
        "weight",
    ),
    "qqq_tech_enhancement": (
        "QQQ Tech Enhancement",
        ("tech_pullback_cash_buffer",),
        ("ibkr", "longbridge"),
        ("feature_snapshot",),
        "weight",
    ),
}
ALLOWLISTS = {
    "ibkr": ("qqq_tech_enhancement", "global_etf_rotation", "russell_1000_multi_factor_defensive", "soxl_soxx_trend_income"),
    "schwab": ("tqqq_growth_income", "soxl_soxx_trend_income"),
    "longbridge": ("soxl_soxx_trend_income", "tqqq_growth_income", "qqq_tech_enhancement"),
}
CAPABILITIES = {
    "ibkr": (("weight", "value"), ("market_history", "feature_snapshot", "derived_indicators", "portfolio_snapshot")),
    "schwab": (("value",), ("benchmark_history", "portfolio_snapshot", "derived_indicators", "indicators")),
    "longbridge": (("weight", "value"), ("benchmark_history", "portfolio_snapshot", "derived_indicators", "feature_snapshot")),
}


def object_id(*parts: str) -> str:
    return hashlib.sha1("\0".join(parts).encode()).hexdigest()


def seed_facts(config: StackConfig) -> ProfileFacts:
    """What the probe proves for the seed stack (one run per platform commit), written out as data."""
    release = config.release
    packages = tuple(
        PackageCommit(name=name, repo=release.repositories.for_package(name), ref=ref, commit=object_id(name, ref))
        for name, ref in sorted(release.refs.items())
    )
    aliases = {alias: name for name, (_, names, _, _, _) in PROFILES.items() for alias in names}
    runs: dict[str, PlatformProfiles] = {}
    services: dict[str, str] = {}
    for key, spec in config.services.items():
        modes, inputs = CAPABILITIES[spec.platform]
        profiles = {}
        for name, (display, _, platforms, needs, mode) in PROFILES.items():
            if spec.platform not in platforms or mode not in modes or not set(needs) <= set(inputs):
                continue
            snapshot = "feature_snapshot" in needs
            manifest = name == "qqq_tech_enhancement"
            config_source = "bundled_or_env" if spec.platform == "ibkr" else "env_or_module_defaults"
            profiles[name] = ProvedProfile(
                display_name=display,
                domain="us_equity",
                eligible=True,
                enabled=name in ALLOWLISTS[spec.platform],
                requirements=PlatformRequirements(
                    profile=name,
                    display_name=display,
                    input_mode="snapshot_backed" if snapshot else "direct_runtime",
                    requires_snapshot_manifest_path=manifest,
                    manifest_contract=MANIFEST_CONTRACT if manifest else None,
                    strategy_config=config_source if manifest else "none",
                    bundled_config=BUNDLED_CONFIG if manifest and spec.platform == "ibkr" else None,
                ),
            )
        run = PlatformProfiles(
            platform=spec.platform,
            repo=release.repositories.for_platform(spec.platform),
            commit=spec.commit,
            packages=packages,
            aliases=aliases,
            profiles=profiles,
            run=RunProvenance(
                functions=("get_platform_profile_status_matrix", "STRATEGY_CATALOG", "get_platform_runtime_adapter"),
                environment="sources",
                isolation="unshare",
                probe_sha256=object_id("probe"),
            ),
        )
        runs[run.key] = run
        services[key] = run.key
    return ProfileFacts(runs=runs, services=services)


class _InvokeError(grpc.RpcError):
    """A provider's invoke error as the SDK receives it (a gRPC error from the engine)."""

    def __init__(self, details: str) -> None:
        super().__init__(details)
        self._details = details

    def code(self) -> grpc.StatusCode:
        return grpc.StatusCode.UNKNOWN

    def details(self) -> str:
        return self._details


class _Mocks(pulumi.runtime.Mocks):
    def new_resource(self, args: pulumi_mocks.MockResourceArgs) -> tuple[Optional[str], dict]:
        state = dict(args.inputs)
        if "location" in state and "name" in state and args.typ.startswith("gcp:cloudrunv2/service:"):
            state["uri"] = f"https://{state['name']}-bench.a.run.app"
        return f"{args.name}-id", state

    def call(self, args: pulumi_mocks.MockCallArgs) -> tuple[dict, Optional[list[tuple[str, str]]]]:
        given = args.args
        if args.token.endswith("getService:getService"):
            raise _InvokeError(f"projects/{given.get('project')}/locations/{given.get('location')}/services/{given.get('name')} not found")
        if args.token.endswith("getDockerImage:getDockerImage"):
            location, project, repository, image = (given.get(k) for k in ("location", "project", "repositoryId", "imageName"))
            package, _, tag = str(image).rpartition(":")
            digest = "sha256:" + hashlib.sha256(str(image).encode()).hexdigest()
            return {
                "name": f"projects/{project}/locations/{location}/repositories/{repository}/dockerImages/{package}@{digest}",
                "selfLink": f"{location}-docker.pkg.dev/{project}/{repository}/{package}@{digest}",
                "imageName": image, "location": location, "project": project, "repositoryId": repository, "tags": [tag],
            }, []  # fmt: skip
        if args.token.endswith("getServiceIamPolicy:getServiceIamPolicy"):
            return {"policyData": '{"bindings": []}', "etag": "BwY=", **given}, []
        raise RuntimeError(f"bench mocks: no invoke {args.token}")


def run_program(program: Callable[[], Any], config: Mapping[str, str], root: Path) -> Counter[str]:
    """Run `program` under the mocks with `config`; the registered resource types, counted."""
    import components.program

    monitor = pulumi_mocks.MockMonitor(_Mocks())
    pulumi.runtime.set_all_config(dict(config), [])
    pulumi_settings.ROOT.set(None)
    pulumi.runtime.set_mocks(monitor.mocks, project=PROJECT_NAME, stack="prod", preview=False, monitor=monitor)
    pulumi_settings.SETTINGS.root_directory = str(root)
    reader = components.program.read_scheduler_job
    components.program.read_scheduler_job = lambda spec: None  # no job exists yet: the create path
    try:
        _sync_await(run_pulumi_func(program))
    finally:
        components.program.read_scheduler_job = reader
    # A URN ends in `::<parent types>$<type>::<name>`: the registered type is the last of those.
    types = (urn.split("::")[-2].split("$")[-1] for urn in monitor.resources)
    return Counter(kind for kind in types if kind != "pulumi:pulumi:Stack")
