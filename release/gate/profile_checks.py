"""The gate's `profile-facts:<key>` checks: profile facts read from the pinned sources, and the config
held against them.

UES is read at the commit its release's ref proved, each platform at its configured commit, from the
trees the fetch stage proved (release/gate/fetch.py), so the same files as the pins. A check passes when
the facts were read and the configured profile is runtime-enabled on that commit; it fails when a file
cannot be evaluated (naming file, line and construct) or the profile is not enabled there (an alias, an
unknown name, outside the allowlist ∩ compatibility ∩ capability); it is "error" when the source could
not answer.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, Mapping, Optional, Union

from components.profiles import PlatformFacts, ProfileFacts, UesFacts, judge, platform_key
from release.config import StackConfig
from release.gate.fetch import Snapshot
from release.gate.profile_source import FactsReadError, RepoFiles, bundled_config_paths, read_platform_facts, read_ues_facts
from release.gate.sources import NotFound, SourceError
from release.gate.trees import Tree, TreeError
from release.packages import UES_PACKAGE

CHECK = "profile-facts"
BlockedStatus = Literal["failed", "error", "unreachable"]
LITERAL_ONLY = (
    "the gate reads only literal module-level data (it never imports UES or the platform); "
    "release a version whose file states it literally, or extend release/gate/profile_source.py for the new form"
)


@dataclass(frozen=True)
class ProfileCheck:
    id: str
    status: Literal["passed", "failed", "error"]
    message: str
    unreachable: bool = False


def _files(tree: Tree, ref: str) -> RepoFiles:
    """A fetched tree as the readers see it: `repo` at `commit`, read by path."""
    return RepoFiles(
        repo=tree.repo,
        ref=ref,
        commit=tree.commit,
        read_text=tree.text,
        blob_of=tree.blob,
        present=lambda paths: frozenset(path for path in paths if tree.has(path)),
    )


def _fault(check_id: str, where: str, error: SourceError) -> ProfileCheck:
    if isinstance(error, NotFound):
        return ProfileCheck(check_id, "failed", f"{where}: {error}")
    return ProfileCheck(check_id, "error", f"could not verify {where}: {error}", error.unreachable)


def enabled_text(platform: PlatformFacts, ues: UesFacts) -> str:
    names = sorted(name for name in ues.profiles if judge(name, platform, ues).requirements is not None)
    return ", ".join(names) or "none"


def profile_checks(
    snapshot: Snapshot, blocked: Mapping[str, tuple[BlockedStatus, str]]
) -> tuple[list[ProfileCheck], Optional[ProfileFacts]]:
    """One check per service, and the facts when every file could be read (None otherwise).

    UES is read at the commit of its release's ref, each platform at its configured commit, both from
    the trees the fetch stage proved. `blocked` names services whose release could not be proved
    (service key -> (status, why)): their checks say so instead."""
    config = snapshot.config
    stack_ues = config.release.us_equity_strategies
    checks: list[ProfileCheck] = []
    ues_read: dict[str, Union[UesFacts, ProfileCheck]] = {}  # UES commit -> facts or the failure
    platforms: dict[str, PlatformFacts] = {}
    failures: dict[str, ProfileCheck] = {}  # per platform commit: read once, reported for each service
    services: dict[str, str] = {}
    service_ues: dict[str, str] = {}
    ues_facts: dict[str, UesFacts] = {}
    enabled_by_platform: dict[str, str] = {}
    for key in sorted(config.services):
        spec = config.services[key]
        check_id = f"{CHECK}:{key}"
        if key in blocked:
            status, why = blocked[key]
            checks.append(
                ProfileCheck(check_id, "failed" if status == "failed" else "error", f"not checked: {why}", status == "unreachable")
            )
            continue
        release = config.release_for(key)
        trees = snapshot.release_trees(key)
        ues_repo, ues_commit = trees.packages[UES_PACKAGE]
        ues_ref = release.us_equity_strategies
        ues_label = f"{ues_repo}@{ues_ref}"
        ues_tree = trees.tree(ues_repo, ues_commit)
        if ues_commit is None or ues_tree is None:
            fault = snapshot.trees.get((ues_repo, ues_commit or ""))
            checks.append(
                _fault(check_id, ues_label, fault)
                if isinstance(fault, SourceError)
                else ProfileCheck(check_id, "failed", f"not checked: {ues_label} did not resolve")
            )
            continue
        if ues_commit not in ues_read:
            try:
                ues_read[ues_commit] = read_ues_facts(_files(ues_tree, ues_ref))
            except (FactsReadError, TreeError) as error:
                ues_read[ues_commit] = ProfileCheck(check_id, "failed", f"{ues_label} {error}; {LITERAL_ONLY}")
        ues = ues_read[ues_commit]
        if isinstance(ues, ProfileCheck):
            checks.append(ProfileCheck(check_id, ues.status, ues.message))
            failures.setdefault(f"ues:{ues_commit}", ues)
            continue
        repo, commit = trees.platform
        label = platform_key(repo, commit)
        where = f"{repo}@{commit[:7]} (services.{key}.commit)"
        if label not in platforms and label not in failures:
            tree = trees.tree(repo, commit)
            fault = snapshot.trees.get((repo, commit))
            if tree is None:
                failures[label] = (
                    _fault(check_id, where, fault)
                    if isinstance(fault, SourceError)
                    else ProfileCheck(check_id, "error", f"could not verify {where}: not read")
                )
            else:
                try:
                    platforms[label] = read_platform_facts(_files(tree, commit), spec.platform, bundled_config_paths(ues))
                except (FactsReadError, TreeError) as error:
                    failures[label] = ProfileCheck(check_id, "failed", f"{where} {error}; {LITERAL_ONLY}")
        if label in failures:
            failure = failures[label]
            checks.append(ProfileCheck(check_id, failure.status, failure.message, failure.unreachable))
            continue
        services[key] = label
        ues_facts[ues_ref] = ues
        if ues_ref != stack_ues:
            service_ues[key] = ues_ref
        checks.append(_judge_service(check_id, key, spec.strategy_profile, platforms[label], ues, enabled_by_platform))
    facts = None
    if not failures and len(services) == len(config.services) and stack_ues in ues_facts:
        facts = ProfileFacts(ues_tag=stack_ues, ues=ues_facts, platforms=platforms, services=services, service_ues=service_ues)
    return checks, facts


def _judge_service(
    check_id: str, key: str, profile: str, platform: PlatformFacts, ues: UesFacts, enabled_by_platform: dict[str, str]
) -> ProfileCheck:
    """One service's verdict; `enabled_by_platform` keeps each platform commit's enabled list for the
    run's other services (judging every profile again per service made 200 services cost 30 ms)."""
    field = f"services.{key}.strategyProfile"
    catalog = next((f.path for f in ues.files if f.path.endswith("catalog.py")), "catalog.py")
    if platform.label not in enabled_by_platform:
        enabled_by_platform[platform.label] = enabled_text(platform, ues)
    enabled = enabled_by_platform[platform.label]
    read_from = ", ".join(f.describe() for f in (*ues.files, *platform.files))
    if profile in ues.aliases:
        return ProfileCheck(
            check_id, "failed", f"{field} {profile} is an old alias in {catalog} at UES {ues.tag}; write {ues.aliases[profile]}"
        )
    if profile not in ues.profiles:
        return ProfileCheck(
            check_id, "failed",
            f"{field} {profile} is not a profile of {catalog} at UES {ues.tag} (STRATEGY_METADATA has "
            f"{', '.join(sorted(ues.profiles))}); enabled on {platform.platform} at {platform.repo}@{platform.commit[:7]}: {enabled}",
        )  # fmt: skip
    judgement = judge(profile, platform, ues)
    if judgement.requirements is None:
        return ProfileCheck(
            check_id,
            "failed",
            f"{field}: {judgement.why} (enabled there: {enabled}); pick an enabled profile or a platform commit that enables it",
        )
    needs = judgement.requirements
    mode = needs.input_mode + (f", manifest {needs.manifest_contract}" if needs.requires_snapshot_manifest_path else "")
    config_note = {
        "bundled_or_env": f", bundled config {needs.bundled_config}",
        "env_or_module_defaults": ", no bundled config (module defaults unless a config path is set)",
    }.get(needs.strategy_config, "")
    return ProfileCheck(
        check_id, "passed",
        f"{profile} ({needs.display_name}; {mode}{config_note}) is runtime-enabled on {platform.platform} at "
        f"{platform.repo}@{platform.commit[:7]} with UES {ues.tag} (enabled: {enabled}); read from {read_from}",
    )  # fmt: skip


def lock_profile_checks(config: StackConfig, facts: ProfileFacts, when: str) -> list[ProfileCheck]:
    """The same verdicts from the facts a lock recorded (the offline plan)."""
    checks = []
    enabled_by_platform: dict[str, str] = {}
    for key in sorted(config.services):
        spec = config.services[key]
        check_id = f"{CHECK}:{key}"
        repo = config.release.repositories.for_platform(spec.platform)
        platform = facts.platforms.get(platform_key(repo, spec.commit))
        if facts.ues_tag != config.release.us_equity_strategies or platform is None:
            checks.append(
                ProfileCheck(
                    check_id,
                    "failed",
                    f"the lock has no profile facts for UES {config.release.us_equity_strategies} and {repo}@{spec.commit[:7]}; run `python -m release lock` again",
                )
            )
            continue
        result = _judge_service(check_id, key, spec.strategy_profile, platform, facts.ues_for(key), enabled_by_platform)
        checks.append(ProfileCheck(result.id, result.status, f"{result.message.split('; read from ')[0]} ({when})"))
    return checks


def read_bundle_catalog(tree: Tree, ref: str) -> UesFacts:
    """UES's catalog and adapter facts from its tree at the release's ref alone (no platform): what
    `adopt` needs to name profiles canonically. Raises FactsReadError or TreeError."""
    return read_ues_facts(_files(tree, ref))
