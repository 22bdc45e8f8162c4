"""The gate's `profile-facts:<key>` checks: each platform commit's own registry, run with the release's
packages on its path, says which profiles it can run and what each needs; the config is held against it.

For every (platform commit, release) the stack uses, one request (release/gate/platform_facts.py): the
platform's repository and commit, and every package of the service's release that commit installs (name,
repository, ref, the commit the fetch stage proved). The probe runs over the trees the fetch stage
verified (`SnapshotTrees`: the same bytes the pin checks read), in its isolated, bounded child. A check
passes when the configured profile is enabled there and its requirements were read; it fails for an
alias, a name the registry does not show, a profile not enabled on that commit or whose requirements the
registry could not give; it is "error" (unverified: fail closed) when its facts could not be proved at
all (the probe failed, timed out, printed something else, or a tree or environment could not be had),
naming the step and the escaped tail of stderr.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, Mapping, Optional, Sequence, Union

from components.profiles import PackageCommit, PlatformProfiles, ProfileFacts, environment_text
from release.config import PlatformId, ReleaseBundle, StackConfig
from release.gate.facts_environment import default_cache_root
from release.gate.fetch import SnapshotTrees, fetch_trees
from release.gate.platform_facts import FactsFailure, FactsRequest, prove_platform_facts
from release.gate.source_trees import TreeMaterialiser
from release.gate.sources import ReleaseSource

CHECK = "profile-facts"
BlockedStatus = Literal["failed", "error", "unreachable"]
# Build (a cold `uv sync --frozen` of a platform's lock) and run, for every request at once.
FACTS_DEADLINE_SECONDS = 300.0


@dataclass(frozen=True)
class ProfileCheck:
    id: str
    status: Literal["passed", "failed", "error"]
    message: str
    unreachable: bool = False


Proved = Union[PlatformProfiles, FactsFailure]


def prove_requests(
    requests: Sequence[FactsRequest], trees: TreeMaterialiser, *, cache_root: Optional[Path] = None, deadline: Optional[float] = None
) -> dict[FactsRequest, Proved]:
    """Each distinct request proved once (concurrently), within one total deadline."""
    unique = list(dict.fromkeys(requests))
    results = prove_platform_facts(
        unique,
        trees,
        cache_root=cache_root or default_cache_root(),
        deadline=deadline if deadline is not None else time.monotonic() + FACTS_DEADLINE_SECONDS,
        cache_trees=False,
    )
    return dict(zip(unique, results, strict=True))


def profile_checks(
    config: StackConfig,
    requests: Mapping[str, Optional[FactsRequest]],
    proved: Mapping[FactsRequest, Proved],
    blocked: Mapping[str, tuple[BlockedStatus, str]],
) -> tuple[list[ProfileCheck], Optional[ProfileFacts]]:
    """One check per service, and the facts when every service's were proved (None otherwise).

    `requests`: per service key, its (platform commit, release) request, None when a package of its
    release did not resolve; `blocked`: services whose release could not be proved at all (key -> (status,
    why)), whose checks say so instead."""
    checks: list[ProfileCheck] = []
    runs: dict[str, PlatformProfiles] = {}
    services: dict[str, str] = {}
    for key in sorted(config.services):
        check_id = f"{CHECK}:{key}"
        request = requests.get(key)
        if key in blocked or request is None:
            status, why = blocked.get(key, ("error", "a package of its release did not resolve"))
            checks.append(
                ProfileCheck(check_id, "failed" if status == "failed" else "error", f"not checked: {why}", status == "unreachable")
            )
            continue
        result = proved.get(request)
        if not isinstance(result, PlatformProfiles):
            where = f"{request.repo}@{request.commit[:7]} (services.{key}.commit)"
            why = "it was not run" if result is None else f"{result.step}: {result.message}"
            checks.append(
                ProfileCheck(
                    check_id,
                    "error",
                    f"the profile facts of {where} with its release are not proved ({why}); fix what the message names and check again",
                )
            )
            continue
        runs[result.key] = result
        services[key] = result.key
        checks.append(judge_service(check_id, key, config.services[key].strategy_profile, result))
    facts = ProfileFacts(runs=runs, services=services) if len(services) == len(config.services) else None
    return checks, facts


def judge_service(check_id: str, key: str, profile: str, facts: PlatformProfiles, when: str = "") -> ProfileCheck:
    """One service's verdict from its platform commit's registry run with its release."""
    field = f"services.{key}.strategyProfile"
    where = f"{facts.platform} at {facts.label}"
    enabled = ", ".join(facts.enabled()) or "none"
    how = (
        when
        or f"proved by running {', '.join(facts.run.functions)} ({environment_text(facts.run.environment)}, isolated: {facts.run.isolation})"
    )
    if profile in facts.aliases:
        return ProfileCheck(
            check_id, "failed", f"{field} {profile} is an old alias in the registry of {where}; write {facts.aliases[profile]} ({how})"
        )
    if profile not in facts.profiles:
        return ProfileCheck(
            check_id,
            "failed",
            f"{field} {profile} is not a profile the registry of {where} shows; enabled there: {enabled} ({how})",
        )
    judgement = facts.judge(profile)
    if judgement.requirements is None:
        return ProfileCheck(
            check_id,
            "failed",
            f"{field}: {judgement.why} (enabled there: {enabled}); pick an enabled profile or a platform commit that enables it ({how})",
        )
    needs = judgement.requirements
    mode = needs.input_mode + (f", manifest {needs.manifest_contract}" if needs.requires_snapshot_manifest_path else "")
    config_note = {
        "bundled_or_env": f", bundled config {needs.bundled_config}",
        "env_or_module_defaults": ", no bundled config (module defaults unless a config path is set)",
        "env_only": ", config from a config path only" + (" (required)" if needs.strategy_config_required else " (optional)"),
    }.get(needs.strategy_config, "")
    domain = facts.profiles[profile].domain
    return ProfileCheck(
        check_id,
        "passed",
        f"{profile} ({needs.display_name}; {domain}; {mode}{config_note}) is runtime-enabled on {where} (enabled: {enabled}); {how}",
    )


def lock_profile_checks(config: StackConfig, facts: ProfileFacts, when: str) -> tuple[list[ProfileCheck], dict[str, str]]:
    """The same verdicts from the facts a lock recorded (the offline plan), each service by the facts of
    exactly its commit and release; and which facts each service is judged by (service key -> facts key)."""
    checks, services = [], {}
    for key in sorted(config.services):
        spec = config.services[key]
        check_id = f"{CHECK}:{key}"
        release = config.release_for(key)
        repo = release.repositories.for_platform(spec.platform)
        run = facts.image_facts(repo, spec.commit, release.refs)
        if run is None:
            checks.append(
                ProfileCheck(
                    check_id,
                    "failed",
                    f"the lock has no profile facts for {repo}@{spec.commit[:7]} with {release.describe()}; run `python -m release lock` again",
                )
            )
            continue
        services[key] = run.key
        checks.append(judge_service(check_id, key, spec.strategy_profile, run, f"{when}, {environment_text(run.run.environment)}"))
    return checks, services


def service_request(
    config: StackConfig, key: str, commits: Mapping[tuple[str, str], str], installed: Optional[frozenset[str]]
) -> Optional[FactsRequest]:
    """The request that proves service `key`'s facts: its platform commit with every package of its
    release the platform installs (`installed`; None: not known, so every package), each at the commit its
    ref resolved to (`commits`: (repository, ref) -> commit). None when a ref did not resolve."""
    spec = config.services[key]
    release = config.release_for(key)
    packages = []
    for name, ref in sorted(release.refs.items()):
        if installed is not None and name not in installed:
            continue
        repo = release.repositories.for_package(name)
        commit = commits.get((repo, ref))
        if commit is None:
            return None
        packages.append(PackageCommit(name=name, repo=repo, ref=ref, commit=commit))
    return FactsRequest(spec.platform, release.repositories.for_platform(spec.platform), spec.commit, tuple(packages))


class FactsUnproved(ValueError):
    """Facts a command needs that could not be proved: the message names what and the fix."""


def facts_for_release(
    release: ReleaseBundle,
    wanted: Mapping[str, tuple[PlatformId, str]],
    source: ReleaseSource,
    lock_facts: Optional[ProfileFacts] = None,
) -> dict[str, PlatformProfiles]:
    """Per service key, the facts of its (platform, platform commit) with `release`: the lock's when it
    proved exactly that pair, else proved now (refs resolved and trees fetched through `source`, the probe
    run over them). FactsUnproved when any cannot be."""
    found: dict[str, PlatformProfiles] = {}
    for key, (platform, commit) in wanted.items():
        run = None if lock_facts is None else lock_facts.image_facts(release.repositories.for_platform(platform), commit, release.refs)
        if run is not None:
            found[key] = run
    missing = {key: pair for key, pair in wanted.items() if key not in found}
    if not missing:
        return found
    if not release.refs:
        raise FactsUnproved(
            f"the release names bundle {release.bundle}, whose packages are known once read: write a lock first (python -m release lock)"
        )
    packages = [(release.repositories.for_package(name), ref) for name, ref in sorted(release.refs.items())]
    platforms = [(release.repositories.for_platform(platform), commit) for platform, commit in missing.values()]
    commits, trees = fetch_trees(source, packages + platforms)
    resolved: dict[tuple[str, str], str] = {}
    for (repo, ref), outcome in commits.items():
        if not isinstance(outcome, str):
            raise FactsUnproved(f"{repo} {ref} did not resolve ({outcome})")
        resolved[(repo, ref)] = outcome
    requests = {}
    for key, (platform, commit) in missing.items():
        packages_of = tuple(
            PackageCommit(
                name=name,
                repo=release.repositories.for_package(name),
                ref=ref,
                commit=resolved[(release.repositories.for_package(name), ref)],
            )
            for name, ref in sorted(release.refs.items())
        )
        requests[key] = FactsRequest(platform, release.repositories.for_platform(platform), commit, packages_of)
    proved = prove_requests(list(requests.values()), SnapshotTrees(trees))
    for key, request in requests.items():
        result = proved[request]
        if not isinstance(result, PlatformProfiles):
            raise FactsUnproved(
                f"services.{key}: the profile facts of {request.repo}@{request.commit[:7]} are not proved ({result.step}: {result.message})"
            )
        found[key] = result
    return found
