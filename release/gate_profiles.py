"""The gate's `profile-facts:<key>` checks: profile facts read from the pinned sources, and the config
held against them.

UES is read at the bundle's tag (the commit `ues-tag` resolved), each platform at its configured commit,
through the same source as the pins (so the same caching, budget and faults apply). A check passes when
the facts were read and the configured profile is runtime-enabled on that commit; it fails when a file
cannot be evaluated (naming file, line and construct) or the profile is not enabled there (an alias, an
unknown name, outside the allowlist ∩ compatibility ∩ capability); it is "error" when the source could
not answer.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, Optional

from components.profiles import PlatformFacts, ProfileFacts, UesFacts, judge, platform_key
from release.config import ReleaseBundle, StackConfig
from release.profile_source import (
    ADAPTERS_MODULE,
    REGISTRY_PATH,
    UES_PACKAGE_DIRS,
    FactsReadError,
    RepoFiles,
    bundled_config_paths,
    read_platform_facts,
    read_ues_facts,
)
from release.sources import NotFound, Pending, ReleaseSource, SourceError, exploring

CHECK = "profile-facts"
LITERAL_ONLY = (
    "the gate reads only literal module-level data (it never imports UES or the platform); "
    "release a version whose file states it literally, or extend release/profile_source.py for the new form"
)


@dataclass(frozen=True)
class ProfileCheck:
    id: str
    status: Literal["passed", "failed", "error"]
    message: str
    unreachable: bool = False


def _files(source: ReleaseSource, repo: str, ref: str, commit: str) -> RepoFiles:
    return RepoFiles(
        repo=repo,
        ref=ref,
        commit=commit,
        read_text=lambda path: source.read_file(repo, commit, path),
        blob_of=lambda path: source.blob_id(repo, commit, path),
        present=lambda paths: source.list_files(repo, commit, paths),
    )


def _ask_ahead(config: StackConfig, source: ReleaseSource, ues_commit: str) -> None:
    """Only while the gate explores its questions concurrently (the UES read is still pending): ask now
    for the files whose paths do not depend on UES's answers, so they arrive in the same round trips:
    UES's runtime adapters module beside its catalog, and each platform's registry at its commit. The
    outcomes are thrown away here; the real pass reads them from the source's answers."""
    repos = config.release.repositories
    ues_files = _files(source, repos.us_equity_strategies, config.release.us_equity_strategies, ues_commit)
    wanted: list[tuple[RepoFiles, str]] = []
    try:
        directory = next((d for d in UES_PACKAGE_DIRS if ues_files.present((f"{d}/catalog.py",))), None)
        if directory is not None:
            wanted.append((ues_files, f"{directory}/{ADAPTERS_MODULE.rsplit('.', 1)[1]}.py"))
    except SourceError:
        pass
    for repo, commit in sorted({(repos.for_platform(spec.platform), spec.commit) for spec in config.services.values()}):
        wanted.append((_files(source, repo, commit, commit), REGISTRY_PATH))
    for files, path in wanted:
        try:
            files.read_text(path)
        except SourceError:
            pass


def _fault(check_id: str, where: str, error: SourceError) -> ProfileCheck:
    if isinstance(error, NotFound):
        return ProfileCheck(check_id, "failed", f"{where}: {error}")
    return ProfileCheck(check_id, "error", f"could not verify {where}: {error}", error.unreachable)


def enabled_text(platform: PlatformFacts, ues: UesFacts) -> str:
    names = sorted(name for name in ues.profiles if judge(name, platform, ues).requirements is not None)
    return ", ".join(names) or "none"


def profile_checks(
    config: StackConfig, source: ReleaseSource, ues_commit: Optional[str], ues_blocked: Optional[str]
) -> tuple[list[ProfileCheck], Optional[ProfileFacts]]:
    """One check per service, and the facts when every file could be read (None otherwise)."""
    bundle = config.release
    repos = bundle.repositories
    keys = sorted(config.services)
    tag = bundle.us_equity_strategies
    ues_label = f"{repos.us_equity_strategies}@{tag}"
    if ues_commit is None:
        reason = ues_blocked or "ues-tag did not resolve"
        return [ProfileCheck(f"{CHECK}:{key}", "failed" if "failed" in reason else "error", f"not checked: {reason}") for key in keys], None
    try:
        ues = read_ues_facts(_files(source, repos.us_equity_strategies, tag, ues_commit))
    except FactsReadError as error:
        return [ProfileCheck(f"{CHECK}:{key}", "failed", f"{ues_label} {error}; {LITERAL_ONLY}") for key in keys], None
    except SourceError as error:
        if isinstance(error, Pending):
            _ask_ahead(config, source, ues_commit)
        return [_fault(f"{CHECK}:{key}", ues_label, error) for key in keys], None

    checks: list[ProfileCheck] = []
    platforms: dict[str, PlatformFacts] = {}
    failures: dict[str, ProfileCheck] = {}  # per platform commit: read once, reported for each service
    services: dict[str, str] = {}
    for key in keys:
        spec = config.services[key]
        check_id = f"{CHECK}:{key}"
        repo = repos.for_platform(spec.platform)
        label = platform_key(repo, spec.commit)
        where = f"{repo}@{spec.commit[:7]} (services.{key}.commit)"
        if label not in platforms and label not in failures:
            try:
                platforms[label] = read_platform_facts(
                    _files(source, repo, spec.commit, spec.commit), spec.platform, bundled_config_paths(ues)
                )
            except FactsReadError as error:
                failures[label] = ProfileCheck(check_id, "failed", f"{where} {error}; {LITERAL_ONLY}")
            except SourceError as error:
                failures[label] = _fault(check_id, where, error)
        if label in failures:
            failure = failures[label]
            checks.append(ProfileCheck(check_id, failure.status, failure.message, failure.unreachable))
            continue
        platform = platforms[label]
        services[key] = label
        if exploring(source):
            continue  # judging asks no question and this pass's report is thrown away
        checks.append(_judge_service(check_id, key, spec.strategy_profile, platform, ues))
    facts = None
    if not failures:
        facts = ProfileFacts(ues_tag=tag, ues={tag: ues}, platforms=platforms, services=services)
    return checks, facts


def _judge_service(check_id: str, key: str, profile: str, platform: PlatformFacts, ues: UesFacts) -> ProfileCheck:
    field = f"services.{key}.strategyProfile"
    catalog = next((f.path for f in ues.files if f.path.endswith("catalog.py")), "catalog.py")
    enabled = enabled_text(platform, ues)
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
        result = _judge_service(check_id, key, spec.strategy_profile, platform, facts.bundle)
        checks.append(ProfileCheck(result.id, result.status, f"{result.message.split('; read from ')[0]} ({when})"))
    return checks


def read_bundle_catalog(source: ReleaseSource, bundle: ReleaseBundle) -> UesFacts:
    """UES's catalog and adapter facts at the bundle's tag alone (no platform): what `adopt` needs to name
    profiles canonically. Raises FactsReadError or SourceError."""
    repo, tag = bundle.repositories.us_equity_strategies, bundle.us_equity_strategies
    return read_ues_facts(_files(source, repo, tag, source.resolve_tag(repo, tag)))
