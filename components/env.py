"""The env rules of a strategy service: what a spec may say, and the exact env it produces.

Pure functions over the config models, the platform table and the proved profile facts; the Pulumi component,
the plan and verify all call these, so there is one copy of every rule.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Mapping, Optional

from components.platforms import (
    ACCOUNT_PREFIX,
    ACCOUNT_REGION,
    LONGPORT_SECRET_NAME,
    OWNED_ENV_NAMES,
    PLATFORMS,
    QSL_RUNTIME_TARGET_JSON,
    RECONCILIATION_OUTPUT_PATH,
    RUNTIME_TARGET_ENABLED,
    RUNTIME_TARGET_JSON,
    STRATEGY_PROFILE,
    Platform,
    is_dry_run,
    is_legacy_env,
    is_unset_flag,
    looks_secret,
)
from components.profiles import PlatformRequirements, ProfileFacts
from components.runtime_target import target_json, target_problems
from release.config import ConfigProblem, ReleaseBundle, SecretRef, ServiceSpec, SnapshotPaths, split_image
from release.packages import QPK_PACKAGE, UES_PACKAGE

# Which config field the operator should use instead of setting an owned name directly.
_OWNED_HINTS = {
    STRATEGY_PROFILE: "strategyProfile",
    RUNTIME_TARGET_JSON: "strategyProfile, dryRunOnly and the target fields (executionMode, deploymentSelector, accountSelector, accountScope, market...)",
    # The runtime reads this one first: whatever it says would replace the target the program derives.
    QSL_RUNTIME_TARGET_JSON: "strategyProfile, dryRunOnly and the target fields (executionMode, deploymentSelector, accountSelector, accountScope, market...)",
    RUNTIME_TARGET_ENABLED: "enabled (false pauses the service's scheduler job too)",
    ACCOUNT_PREFIX: "accountRegion",
    ACCOUNT_REGION: "accountRegion",
    LONGPORT_SECRET_NAME: "longportSecretName",
    RECONCILIATION_OUTPUT_PATH: "snapshot.reconciliationOutputPath",
}


def _owned_hint(name: str) -> str:
    if name in _OWNED_HINTS:
        return _OWNED_HINTS[name]
    if name.endswith("_DRY_RUN_ONLY"):
        return "dryRunOnly"
    if name.endswith("_FEATURE_SNAPSHOT_MANIFEST_PATH"):
        return "snapshot.manifestPath"
    if name.endswith("_FEATURE_SNAPSHOT_PATH"):
        return "snapshot.featureSnapshotPath"
    return "snapshot.strategyConfigPath"


@dataclass(frozen=True)
class ServiceEnv:
    """The env of one service revision: plain values and Secret Manager refs, both sorted by name."""

    plain: Mapping[str, str]
    secrets: Mapping[str, SecretRef] = field(default_factory=dict)

    def names(self) -> list[str]:
        return sorted({*self.plain, *self.secrets})


@dataclass(frozen=True)
class ServiceRevision:
    """What one `pulumi up` gives a service: image, the commit it was built from, env, and its release.

    `release` names the release the image was built with (distribution name -> ref); None means unknown
    (a live service this program never deployed).
    """

    image: str
    commit: str
    env: ServiceEnv
    release: Optional[Mapping[str, str]]

    @property
    def qpk_tag(self) -> Optional[str]:
        return None if self.release is None else self.release.get(QPK_PACKAGE)

    @property
    def ues_tag(self) -> Optional[str]:
        return None if self.release is None else self.release.get(UES_PACKAGE)


def input_mode_problems(key: str, spec: ServiceSpec, requirements: Optional[PlatformRequirements]) -> list[ConfigProblem]:
    """Input-mode paths exactly where the profile reads them (from the proved facts); reconciliation output
    only on IBKR.

    Snapshot paths only for a snapshot-backed profile. A strategy config path wherever the profile reads
    one (`strategy_config` is not `none`, a direct-runtime `env_only` profile included): required when the
    facts say so, else optional (it overrides a bundled config, replaces the module defaults, or names a
    shadow config). IBKR's reconciliation output follows the release's policy where it states one.
    """
    snapshot = spec.snapshot
    problems: list[ConfigProblem] = []

    def problem(field_name: str, message: str) -> None:
        problems.append(ConfigProblem(path=f"services.{key}.snapshot.{field_name}", message=message))

    if snapshot is not None and snapshot.reconciliation_output_path is not None and spec.platform != "ibkr":
        problem("reconciliationOutputPath", f"only IBKR reads a reconciliation output path, not {spec.platform}; remove it")
    if requirements is None:
        return problems
    profile = spec.strategy_profile
    snapshot = snapshot or SnapshotPaths()
    reads_config = requirements.strategy_config != "none"
    if requirements.strategy_config_required and snapshot.strategy_config_path is None:
        problem("strategyConfigPath", f"{profile} reads its strategy config only from a config path on {spec.platform}; set it")
    if not reads_config and snapshot.strategy_config_path is not None:
        problem("strategyConfigPath", f"{profile} reads no strategy config path; remove it")
    if not requirements.requires_snapshot_artifacts:
        given = sorted(snapshot.model_dump(by_alias=True, exclude_none=True))
        for field_name in given:
            if field_name == "strategyConfigPath" or (field_name == "reconciliationOutputPath" and spec.platform != "ibkr"):
                continue
            problem(field_name, f"{profile} is a direct-runtime profile and reads no snapshot input; remove it")
        return problems

    if snapshot.feature_snapshot_path is None:
        problem("featureSnapshotPath", f"{profile} is snapshot-backed; set the gs:// path of its feature snapshot")
    if requirements.requires_snapshot_manifest_path and snapshot.manifest_path is None:
        contract = f" ({requirements.manifest_contract})" if requirements.manifest_contract else ""
        problem("manifestPath", f"{profile} requires a snapshot manifest{contract}; set its gs:// path")
    if not requirements.requires_snapshot_manifest_path and snapshot.manifest_path is not None:
        problem("manifestPath", f"{profile} reads no snapshot manifest on {spec.platform}; remove it")
    if spec.platform == "ibkr":
        # Without a stated policy (the seed's releases) IBKR's reconciliation output is optional for every
        # snapshot-backed profile: a platform rule, UES said nothing about it.
        policy = requirements.reconciliation_output
        if policy == "required" and snapshot.reconciliation_output_path is None:
            problem("reconciliationOutputPath", f"{profile} requires a reconciliation output path on ibkr; set its gs:// path")
        if policy == "none" and snapshot.reconciliation_output_path is not None:
            problem("reconciliationOutputPath", f"{profile} writes no reconciliation output on ibkr; remove it")
    return problems


def region_problems(key: str, spec: ServiceSpec, platform: Platform) -> list[ConfigProblem]:
    where = f"services.{key}"
    if platform.account_regions is None:
        return [
            ConfigProblem(path=f"{where}.{name}", message=f"only LongBridge services take {name}; remove it")
            for name, value in (("accountRegion", spec.account_region), ("longportSecretName", spec.longport_secret_name))
            if value is not None
        ]
    problems = []
    regions = platform.account_regions
    if spec.account_region is None:
        choices = ", ".join(f"{code} ({region or 'any region'})" for code, region in regions.items())
        problems.append(ConfigProblem(path=f"{where}.accountRegion", message=f"required for {platform.id}; one of {choices}"))
    elif regions[spec.account_region] is not None and regions[spec.account_region] != spec.region:
        problems.append(
            ConfigProblem(
                path=f"{where}.accountRegion",
                message=f"{spec.account_region} services run in {regions[spec.account_region]}, but region is "
                f"{spec.region}; fix region or accountRegion",
            )
        )
    if spec.longport_secret_name is None:
        problems.append(
            ConfigProblem(
                path=f"{where}.longportSecretName",
                message="required for longbridge; name the region's token secret, e.g. longport_token_hk",
            )
        )
    return problems


# Names Cloud Run sets in every container and refuses as env or secret env: a config naming one would
# pass review and fail mid-`pulumi up`.
CLOUD_RUN_RESERVED_ENV = frozenset({"PORT", "K_SERVICE", "K_REVISION", "K_CONFIGURATION"})


def env_map_problems(key: str, spec: ServiceSpec, platform: Platform) -> list[ConfigProblem]:
    """The plain `env` and `secrets` maps: no owned or legacy names, no plain credentials, nothing missing."""
    problems = []
    for map_name, names in (("env", spec.env), ("secrets", spec.secrets)):
        for name in sorted(names):
            where = f"services.{key}.{map_name}.{name}"
            if name in OWNED_ENV_NAMES:
                problems.append(ConfigProblem(path=where, message=f"is set by the program; use {_owned_hint(name)} instead"))
            elif name in CLOUD_RUN_RESERVED_ENV:
                problems.append(
                    ConfigProblem(path=where, message="is set by Cloud Run itself and refused by its API (mid-update); delete it")
                )
            elif is_legacy_env(name):
                problems.append(ConfigProblem(path=where, message="is legacy env that a sync removes; delete it"))
            elif map_name == "env" and looks_secret(name):
                problems.append(
                    ConfigProblem(
                        path=where,
                        message=f"looks like a credential and may not be a plain value; move it to secrets as "
                        f"{name}: <Secret Manager secret name>",
                    )
                )
            elif map_name == "env" and name in spec.secrets:
                problems.append(ConfigProblem(path=where, message="is also in secrets; keep only the secret"))
    for name in platform.required_env:
        if name not in spec.env:
            problems.append(ConfigProblem(path=f"services.{key}.env", message=f"{platform.id} needs {name}; add it"))
    for name in platform.required_secrets:
        if name not in spec.secrets:
            problems.append(ConfigProblem(path=f"services.{key}.secrets", message=f"{platform.id} needs {name}; add {name}: <secret>"))
    return problems


def image_problems(key: str, spec: ServiceSpec) -> list[ConfigProblem]:
    """An image tag names the commit it was built from; a digest is checked against the live label instead."""
    tag = spec.image_tag
    if tag is None or tag == spec.commit:
        return []
    repository = split_image(spec.image)[0]
    return [
        ConfigProblem(
            path=f"services.{key}.image",
            message=f"tag {tag} does not match commit {spec.commit}; images are tagged with the full commit they "
            f"were built from, so write {repository}:{spec.commit}",
        )
    ]


def service_problems(key: str, spec: ServiceSpec) -> list[ConfigProblem]:
    """Every rule of one service beyond field formats that needs no profile facts (checked at load)."""
    platform = PLATFORMS[spec.platform]
    return [
        *image_problems(key, spec),
        *input_mode_problems(key, spec, None),
        *region_problems(key, spec, platform),
        *env_map_problems(key, spec, platform),
        *target_problems(key, spec),
    ]


def stack_problems(services: Mapping[str, ServiceSpec]) -> list[ConfigProblem]:
    """Rules across services: each service name belongs to one key."""
    problems = []
    owner_of: dict[str, str] = {}
    for key in sorted(services):
        name = services[key].service_name
        if name in owner_of:
            problems.append(
                ConfigProblem(
                    path=f"services.{key}.serviceName",
                    message=f"{name} is already the service of {owner_of[name]}; each key deploys its own service",
                )
            )
        owner_of.setdefault(name, key)
    return problems


def strategy_name_problems(services: Mapping[str, ServiceSpec], profile_names: frozenset[str]) -> list[ConfigProblem]:
    """No profile name or alias of the proved releases in a service name (a switch keeps the name)."""
    problems = []
    for key in sorted(services):
        name = services[key].service_name
        for profile in sorted(profile_names):
            if profile.replace("_", "-") in name:
                problems.append(
                    ConfigProblem(
                        path=f"services.{key}.serviceName",
                        message=f"{name} contains the strategy name {profile}; service names never encode a strategy "
                        "(a strategy switch keeps the name), so use the platform's service name",
                    )
                )
    return problems


def profile_config_problems(services: Mapping[str, ServiceSpec], facts: ProfileFacts) -> list[ConfigProblem]:
    """The rules that need the proved profile facts: input-mode paths and strategy names in service names.

    Whether the profile is runtime-enabled at all is the gate's `profile-facts:<key>` check; a service
    whose profile is not enabled is skipped here (the gate already failed it).
    """
    problems = strategy_name_problems(services, facts.names())
    for key in sorted(services):
        spec = services[key]
        requirements = facts.requirements(spec.strategy_profile, key)
        if requirements is not None:
            problems += [p for p in input_mode_problems(key, spec, requirements) if p not in input_mode_problems(key, spec, None)]
    return problems


DRY_RUN_UNSET = (
    "the live flag is unset and its meaning depends on the image (the seed-era images trade live); "
    "set `dryRunOnly: true` or `false` explicitly"
)


def dry_run_value(spec: ServiceSpec, live_value: Optional[str], live_exists: bool) -> Optional[str]:
    """The `{P}_DRY_RUN_ONLY` value to write. `keep` holds the live value exactly; a new service starts dry.

    None when `keep` meets an unset or empty live flag: there is no explicit value to hold (its meaning
    depends on the image), so the caller blocks the service instead of guessing (DRY_RUN_UNSET).
    """
    if spec.dry_run_only is True:
        return "true"
    if spec.dry_run_only is False:
        return "false"
    if not live_exists:
        return "true"
    return None if is_unset_flag(live_value) else live_value


def desired_env(spec: ServiceSpec, requirements: PlatformRequirements, dry_run: str) -> ServiceEnv:
    """The env a service runs with once its strategy is switched; `spec` must already be validated.

    `dry_run` is an explicit flag value: RUNTIME_TARGET_JSON is never derived from an unset one.
    """
    platform = PLATFORMS[spec.platform]
    if is_unset_flag(dry_run):
        raise ValueError(f"{spec.service_name}: no explicit dry-run value; {DRY_RUN_UNSET}")
    plain: dict[str, str] = dict(spec.env)
    plain[STRATEGY_PROFILE] = spec.strategy_profile
    plain[RUNTIME_TARGET_JSON] = target_json(spec, is_dry_run(dry_run))
    plain[RUNTIME_TARGET_ENABLED] = "true" if spec.enabled else "false"
    plain[platform.dry_run_env] = dry_run
    if spec.snapshot is not None:
        paths: dict[str, Optional[str]] = {}
        if requirements.requires_snapshot_artifacts:
            paths = {
                platform.feature_snapshot_env: spec.snapshot.feature_snapshot_path,
                platform.manifest_env: spec.snapshot.manifest_path,
                RECONCILIATION_OUTPUT_PATH: spec.snapshot.reconciliation_output_path,
            }
        if requirements.strategy_config != "none":
            paths[platform.strategy_config_env] = spec.snapshot.strategy_config_path
        plain.update({name: value for name, value in paths.items() if value is not None})
    if spec.account_region is not None:
        plain[ACCOUNT_PREFIX] = spec.account_region
        plain[ACCOUNT_REGION] = spec.account_region
    if spec.longport_secret_name is not None:
        plain[LONGPORT_SECRET_NAME] = spec.longport_secret_name
    return ServiceEnv(
        plain=dict(sorted(plain.items())),
        secrets=dict(sorted(spec.secrets.items())),
    )


def config_problems(services: Mapping[str, ServiceSpec]) -> list[ConfigProblem]:
    """Every rule beyond field formats that needs no profile facts, across and within services."""
    problems = stack_problems(services)
    for key in sorted(services):
        problems.extend(service_problems(key, services[key]))
    return problems


def desired_revision(spec: ServiceSpec, bundle: ReleaseBundle, requirements: PlatformRequirements, dry_run: str) -> ServiceRevision:
    """The end state of a cutover for one service: the bundle's image with the switched env."""
    return ServiceRevision(
        image=spec.image,
        commit=spec.commit,
        env=desired_env(spec, requirements, dry_run),
        release=bundle.refs,
    )
