"""The Pulumi program: stack config -> release gate -> one provider per project -> one service per key.

`__main__.py` only calls `run_program()`; tests and the benchmark call the steps directly. Like
`strategy_service.py` this is a Pulumi shell (it imports Pulumi); the rules it applies are the pure
functions of `components/env.py`, `components/profiles.py` and `release/`.

Order matters: nothing is registered until the config is valid and the gate has passed, so a bad
config or an unverified release fails `pulumi preview` with an empty plan, never a partial one.
"""

from __future__ import annotations

import os
from typing import Callable, Mapping, Optional

import pulumi
import pulumi_gcp as gcp

from components.env import ServiceRevision, desired_revision, dry_run_value
from components.platforms import STRATEGY_PROFILE
from components.profiles import matrix_for
from components.strategy_service import StrategyService, StrategyServiceArgs
from release.config import ConfigError, ServiceSpec, StackConfig
from release.stack import load_pulumi_config

RevisionFor = Callable[[str, ServiceSpec, StackConfig], ServiceRevision]
"""What to apply to one service in this run: (service key, its spec, the whole config) -> revision."""


def desired_revision_for(key: str, spec: ServiceSpec, config: StackConfig) -> ServiceRevision:
    """The cutover's end state with no live state known: the bundle's image and the switched env.

    `keep` cannot see a live value here, so it starts dry (the safe default for `{P}_DRY_RUN_ONLY`).
    The ordering rule (deploy the image first, switch env after) replaces this function, not the program.
    """
    matrix = matrix_for(config.release.us_equity_strategies)
    requirements = matrix.requirements(spec.strategy_profile, spec.platform)
    # parse_stack has already refused a profile without requirements; this guards a misuse of the function.
    assert requirements is not None, f"{key}: validate the config before computing revisions"
    return desired_revision(spec, config.release, requirements, dry_run_value(spec, None, live_exists=False))


def load_config() -> StackConfig:
    """The stack's validated config; every problem becomes one line of a failed preview."""
    try:
        return load_pulumi_config()
    except ConfigError as error:
        raise pulumi.RunError(error.report()) from None


def check_release(config: StackConfig, environ: Optional[Mapping[str, str]] = None) -> None:
    """Run the release gate synchronously; a failing gate stops the program before any registration."""
    # Imported here so the component and its tests do not depend on the gate's source adapters.
    from release.gate import run_gate
    from release.sources import SourceSelectionError, source_from_env

    try:
        source = source_from_env(config.release, os.environ if environ is None else environ)
    except SourceSelectionError as error:
        raise pulumi.RunError(f"release gate: {error}") from None
    report = run_gate(config, source)
    if not report.ok:
        raise pulumi.RunError(report.render_text())


class Providers:
    """One explicit `gcp.Provider` per GCP project, created on first use and shared by its services."""

    def __init__(self) -> None:
        self._by_project: dict[str, gcp.Provider] = {}

    def for_project(self, project: str) -> gcp.Provider:
        provider = self._by_project.get(project)
        if provider is None:
            provider = gcp.Provider(f"gcp-{project}", project=project)
            self._by_project[project] = provider
        return provider

    def __len__(self) -> int:
        return len(self._by_project)


def input_mode_of(revision: ServiceRevision, spec: ServiceSpec, config: StackConfig) -> Optional[str]:
    """The input mode of the profile the revision actually runs (it may be the live one during a phase)."""
    profile = revision.env.plain.get(STRATEGY_PROFILE)
    if profile is None:
        return None
    requirements = matrix_for(config.release.us_equity_strategies).requirements(profile, spec.platform)
    return None if requirements is None else requirements.input_mode


def deploy(config: StackConfig, revision_for: RevisionFor = desired_revision_for) -> dict[str, StrategyService]:
    """Register every service of a validated, gated config and export one map per service key."""
    providers = Providers()
    services: dict[str, StrategyService] = {}
    for key in sorted(config.services):
        spec = config.services[key]
        revision = revision_for(key, spec, config)
        service = StrategyService(
            StrategyServiceArgs(
                key=key,
                spec=spec,
                revision=revision,
                provider=providers.for_project(spec.project),
                input_mode=input_mode_of(revision, spec, config),
            )
        )
        pulumi.export(key, service.outputs())
        services[key] = service
    return services


def run_program(
    environ: Optional[Mapping[str, str]] = None, revision_for: RevisionFor = desired_revision_for
) -> dict[str, StrategyService]:
    """The whole program, as `pulumi preview/up` runs it."""
    config = load_config()
    check_release(config, environ)
    return deploy(config, revision_for)
