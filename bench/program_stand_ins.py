"""The benchmark's own stand-ins for what the Pulumi program reaches outside itself (never the tests'):

- `seed_facts(config)`: the profile facts of the seed release (UES v0.7.13's catalog and adapters, each
  platform commit's allowlist and capability, docs/platform-facts.md §4) as plain data, in place of the gate,
  whose cost bench/gate_bench.py measures;
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
    Capability,
    CatalogProfile,
    PlatformFacts,
    ProfileFacts,
    RuntimeAdapter,
    SourceFile,
    UesFacts,
    platform_key,
)
from release.config import PROJECT_NAME, StackConfig

DOMAIN = "quant_platform_kit.common.strategies.US_EQUITY_DOMAIN"
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
    tag = config.release.us_equity_strategies
    ues_repo = config.release.repositories.us_equity_strategies
    ues_commit = object_id(ues_repo, tag)
    ues = UesFacts(
        repo=ues_repo,
        tag=tag,
        commit=ues_commit,
        domain=DOMAIN,
        profiles={
            name: CatalogProfile(
                display_name=display,
                status="runtime_enabled",
                aliases=aliases,
                compatible_platforms=platforms,
                required_inputs=inputs,
                target_mode=mode,
                bundled_config=BUNDLED_CONFIG if name == "qqq_tech_enhancement" else None,
            )  # fmt: skip
            for name, (display, aliases, platforms, inputs, mode) in PROFILES.items()
        },
        adapters={
            platform: {
                name: RuntimeAdapter(
                    requires_snapshot_manifest=name == "qqq_tech_enhancement",
                    manifest_contract=MANIFEST_CONTRACT if name == "qqq_tech_enhancement" else None,
                )
                for name, (_, _, platforms, _, _) in PROFILES.items()
                if platform in platforms
            }
            for platform in ALLOWLISTS
        },
        files=(SourceFile(repo=ues_repo, ref=tag, commit=ues_commit, path="catalog.py", blob=object_id("catalog", tag)),),
    )
    platforms: dict[str, PlatformFacts] = {}
    services: dict[str, str] = {}
    for key, spec in config.services.items():
        repo = config.release.repositories.for_platform(spec.platform)
        label = platform_key(repo, spec.commit)
        modes, inputs = CAPABILITIES[spec.platform]
        platforms[label] = PlatformFacts(
            platform=spec.platform,
            repo=repo,
            commit=spec.commit,
            rollout_allowlist=ALLOWLISTS[spec.platform],
            capability=Capability(supported_domains=(DOMAIN,), supported_target_modes=modes, supported_inputs=inputs),
            bundled_configs=(BUNDLED_CONFIG,) if spec.platform == "ibkr" else (),
            files=(SourceFile(repo=repo, ref=spec.commit, commit=spec.commit, path="strategy_registry.py", blob=object_id(repo)),),
        )
        services[key] = label
    return ProfileFacts(ues_tag=tag, ues={tag: ues}, platforms=platforms, services=services)


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
