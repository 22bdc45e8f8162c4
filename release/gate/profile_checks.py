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

import functools
from dataclasses import dataclass
from typing import Callable, Literal, Optional, TypeVar

from components.profiles import PlatformFacts, ProfileFacts, UesFacts, judge, platform_key
from release.config import PlatformId, ReleaseBundle, StackConfig
from release.gate.profile_source import (
    ADAPTERS_MODULE,
    REGISTRY_PATH,
    UES_PACKAGE_DIRS,
    FactsReadError,
    RepoFiles,
    bundled_config_paths,
    read_platform_facts,
    read_ues_facts,
)
from release.gate.sources import Answers, NotFound, Pending, ReleaseSource, SourceError, exploring

T = TypeVar("T")

CHECK = "profile-facts"
UNKNOWN_COMMIT = "0" * 40
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


def _files(source: ReleaseSource, repo: str, ref: str, commit: str, read_at: Optional[str] = None) -> RepoFiles:
    """`repo`'s files at `commit`, read through the source at `read_at` (default: the commit itself)."""
    at = read_at or commit
    return RepoFiles(
        repo=repo,
        ref=ref,
        commit=commit,
        read_text=lambda path: source.read_file(repo, at, path),
        blob_of=lambda path: source.blob_id(repo, at, path),
        present=lambda paths: source.list_files(repo, at, paths),
    )


def _ask_ahead(config: StackConfig, source: ReleaseSource, ues_at: str) -> None:
    """Only while the gate explores its questions concurrently (the UES read is still pending; `ues_at` is
    UES's commit, or the tag's name while it resolves): ask now
    for the files whose paths do not depend on UES's answers, so they arrive in the same round trips:
    UES's runtime adapters module beside its catalog, and each platform's registry at its commit. The
    outcomes are thrown away here; the real pass reads them from the source's answers."""
    repos = config.release.repositories
    ues_files = _files(source, repos.us_equity_strategies, config.release.us_equity_strategies, ues_at)
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


def _derived(source: ReleaseSource, key: tuple[object, ...], compute: Callable[[], T]) -> T:
    """Facts parsed once per run from a source that keeps its answers (they cannot change within it)."""
    answers = getattr(source, "answers", None)
    return answers.derived(key, compute) if isinstance(answers, Answers) else compute()


def _read_platform(source: ReleaseSource, repo: str, commit: str, platform: PlatformId, bundled: tuple[str, ...]) -> PlatformFacts:
    return read_platform_facts(_files(source, repo, commit, commit), platform, bundled)


def _read_ahead_at_tag(config: StackConfig, source: ReleaseSource) -> None:
    """Only while exploring, with UES's tag still resolving: read UES's facts by the tag's name (a source
    that can list a tree by tag name answers now; the others raise Pending), and ask ahead for the rest,
    so the chain tag -> tree -> catalog -> the module it names does not wait for the tag's commit."""
    tag = config.release.us_equity_strategies
    try:
        # the commit is not known yet: a placeholder for the provenance these throw-away facts record
        read_ues_facts(_files(source, config.release.repositories.us_equity_strategies, tag, UNKNOWN_COMMIT, read_at=tag))
    except (SourceError, FactsReadError):
        pass
    _ask_ahead(config, source, tag)


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
        if exploring(source):
            _read_ahead_at_tag(config, source)
        reason = ues_blocked or "ues-tag did not resolve"
        return [ProfileCheck(f"{CHECK}:{key}", "failed" if "failed" in reason else "error", f"not checked: {reason}") for key in keys], None
    try:
        ues = _derived(
            source,
            ("ues-facts", repos.us_equity_strategies, tag, ues_commit),
            lambda: read_ues_facts(_files(source, repos.us_equity_strategies, tag, ues_commit)),
        )
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
    enabled_by_platform: dict[str, str] = {}
    for key in keys:
        spec = config.services[key]
        check_id = f"{CHECK}:{key}"
        repo = repos.for_platform(spec.platform)
        label = platform_key(repo, spec.commit)
        where = f"{repo}@{spec.commit[:7]} (services.{key}.commit)"
        if label not in platforms and label not in failures:
            try:
                bundled = bundled_config_paths(ues)
                platforms[label] = _derived(
                    source,
                    ("platform-facts", repo, spec.commit, spec.platform, bundled),
                    functools.partial(_read_platform, source, repo, spec.commit, spec.platform, bundled),
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
        checks.append(_judge_service(check_id, key, spec.strategy_profile, platform, ues, enabled_by_platform))
    facts = None
    if not failures:
        facts = ProfileFacts(ues_tag=tag, ues={tag: ues}, platforms=platforms, services=services)
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
        result = _judge_service(check_id, key, spec.strategy_profile, platform, facts.bundle, enabled_by_platform)
        checks.append(ProfileCheck(result.id, result.status, f"{result.message.split('; read from ')[0]} ({when})"))
    return checks


def read_bundle_catalog(source: ReleaseSource, bundle: ReleaseBundle) -> UesFacts:
    """UES's catalog and adapter facts at the bundle's tag alone (no platform): what `adopt` needs to name
    profiles canonically. Raises FactsReadError or SourceError."""
    repo, tag = bundle.repositories.us_equity_strategies, bundle.us_equity_strategies
    return read_ues_facts(_files(source, repo, tag, source.resolve_tag(repo, tag)))
