"""Profile facts of one (platform commit, release), proved by running the platform's own registry over
exactly the pinned sources, with their provenance.

`prove_platform_facts(requests, trees, cache_root=..., deadline=...)` is the entry point the gate calls:
each request names a platform commit and the release's package commits (QPK, UES, HK: distribution
name, repository, ref, commit). For each, the trees are written to disk (`source_trees`: git archive or
GitHub tarball, verified against the commit's tree), the probe runs in its isolated child
(`facts_runner`), building the platform commit's environment from its own lock only when an import
needs it (`facts_environment`), and the probe's document becomes `PlatformProfiles`: per profile the
platform shows, its display name, domain, eligible/enabled on this commit, and what it requires
(`PlatformRequirements`), plus the catalog's aliases and how the facts were run. A request that cannot be
proved gets a `FactsFailure` naming the step and the escaped tail of stderr: its facts are unverified.

Trees a materialiser downloads are cached under `<cache_root>/trees/<repo>/<commit>` (written to a scratch
directory, verified, then renamed; content-addressed by commit, so a cached tree is exactly that commit's);
trees the gate already holds verified in memory are written for the one run (`cache_trees=False`).
Environments are cached under `<cache_root>/environments` by (platform commit, lock sha256). The probe
itself always runs again: its answer is never cached.
"""

from __future__ import annotations

import shutil
import tempfile
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Sequence, cast

from components.profiles import (
    Isolation,
    PackageCommit,
    PlatformProfiles,
    PlatformRequirements,
    ProvedProfile,
    ReconciliationPolicy,
    RunProvenance,
    StrategyConfigSource,
)
from release.config import PlatformId
from release.gate.facts_environment import ProbeResult, probe_platform
from release.gate.facts_runner import FactsRunError, ProbeProfile, network_isolation, probe_sha256
from release.gate.source_trees import TreeError, TreeMaterialiser

SNAPSHOT_INPUT = "feature_snapshot"
MAX_WORKERS = 4  # probes in flight at once (each a Python process; 2 shared cores here)


@dataclass(frozen=True)
class FactsRequest:
    platform: PlatformId
    repo: str
    commit: str
    packages: tuple[PackageCommit, ...]


@dataclass(frozen=True)
class FactsFailure:
    request: FactsRequest
    step: str
    message: str


# -- the probe's document as facts ------------------------------------------------------------------------


def requirements_of(row: ProbeProfile) -> PlatformRequirements:
    """What one profile requires, from `describe_platform_runtime_requirements` where the release has it,
    else from the catalog and runtime adapter (the seed's releases).

    The strategy config source, read as the platforms' own switch scripts read it: `env_only` is a config
    path only (required when `requires_strategy_config_path`, else optional); `bundled_or_env` is the
    bundled file when this platform tree has it (else a path or the module defaults). Releases that state
    no policy yet (describe without `config_source_policy`) say only whether a path is required: with a
    bundled config declared it is read as at the seed (bundled, else module defaults), without one the
    path is required."""
    describe, adapter = row.describe, row.adapter
    inputs = tuple(row.required_inputs or ())
    bundled_source: StrategyConfigSource = "bundled_or_env" if row.bundled_config_present else "env_or_module_defaults"
    required = False
    reconciliation: Optional[ReconciliationPolicy] = None
    if describe is not None:
        snapshot = describe.requires_snapshot_artifacts
        if snapshot is None:
            snapshot = describe.profile_group == "snapshot_backed" if describe.profile_group else SNAPSHOT_INPUT in inputs
        manifest = bool(describe.requires_snapshot_manifest_path) and snapshot
        contract = describe.snapshot_contract_version if snapshot else None
        policy = describe.config_source_policy
        path_required = bool(describe.requires_strategy_config_path)
        config: StrategyConfigSource
        if policy == "env_only":
            config, required = "env_only", path_required
        elif policy == "bundled_or_env":
            config = bundled_source
        elif policy is None and path_required:
            config, required = (bundled_source, False) if row.bundled_config else ("env_only", True)
        elif policy in (None, "none"):
            config = "none"
        else:
            raise UnknownPolicy(f"config_source_policy {policy!r} is not one this program knows (none, env_only, bundled_or_env)")
        reconciliation = _reconciliation_policy(describe.reconciliation_output_policy)
    else:
        snapshot = SNAPSHOT_INPUT in inputs
        manifest = snapshot and adapter is not None and adapter.require_snapshot_manifest
        contract = adapter.snapshot_contract_version if (snapshot and adapter is not None) else None
        config = bundled_source if (snapshot and row.bundled_config) else "none"
    return PlatformRequirements(
        profile=row.canonical_profile,
        display_name=row.display_name,
        input_mode="snapshot_backed" if snapshot else "direct_runtime",
        requires_snapshot_manifest_path=manifest,
        manifest_contract=contract if manifest else None,
        strategy_config=config,
        strategy_config_required=required,
        bundled_config=row.bundled_config if config == "bundled_or_env" else None,
        reconciliation_output=reconciliation,
    )


def _reconciliation_policy(text: Optional[str]) -> Optional[ReconciliationPolicy]:
    if text is None:
        return None
    if text in ("none", "optional", "required"):
        return cast(ReconciliationPolicy, text)
    raise UnknownPolicy(f"reconciliation_output_policy {text!r} is not one this program knows (none, optional, required)")


class UnknownPolicy(ValueError):
    """A policy value a later release may add: the profile's requirements are unproved, never guessed."""


def facts_of(request: FactsRequest, result: ProbeResult, isolation: Isolation) -> PlatformProfiles:
    output = result.output
    profiles: dict[str, ProvedProfile] = {}
    for row in output.profiles:
        requirements, unproved = None, row.error
        if row.error is None and row.describe is None and row.adapter is None:
            unproved = "the registry gave neither requirements nor an adapter"
        elif row.error is None:
            try:
                requirements = requirements_of(row)
            except UnknownPolicy as error:
                unproved = str(error)
        profiles[row.canonical_profile] = ProvedProfile(
            display_name=row.display_name,
            domain=row.domain,
            eligible=row.eligible,
            enabled=row.enabled,
            requirements=requirements,
            unproved=unproved,
        )
    functions = ("get_platform_profile_status_matrix", "STRATEGY_CATALOG") + (
        ("describe_platform_runtime_requirements",) if output.method == "describe" else ("get_platform_runtime_adapter",)
    )
    return PlatformProfiles(
        platform=request.platform,
        repo=request.repo,
        commit=request.commit,
        packages=request.packages,
        aliases=dict(sorted((output.aliases or {}).items())),
        profiles=dict(sorted(profiles.items())),
        run=RunProvenance(
            functions=functions,
            environment=result.environment,
            lock_sha256=result.lock_sha256,
            isolation=isolation,
            probe_sha256=probe_sha256(),
        ),
    )


# -- proving ------------------------------------------------------------------------------------------------


def cached_tree(trees: TreeMaterialiser, tree_root: Path, repo: str, commit: str, deadline: float) -> Path:
    """`repo` at `commit` on disk under `tree_root`: already there, or materialised (and verified) first."""
    target = tree_root / repo / commit
    if (target / ".complete").is_file():
        return target / "tree"
    target.parent.mkdir(parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp(prefix=f".{commit}-", dir=target.parent))
    try:
        trees.materialise(repo, commit, scratch / "tree", deadline)
        (scratch / ".complete").write_text(commit, encoding="utf-8")
        try:
            scratch.rename(target)
        except OSError:
            if not (target / ".complete").is_file():  # another run finished it first; else a real fault
                raise
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return target / "tree"


def source_root(tree: Path) -> Path:
    """Where a package's modules are importable from: `src/` (every release so far), else the tree."""
    return tree / "src" if (tree / "src").is_dir() else tree


def prove_one(
    request: FactsRequest, trees: TreeMaterialiser, tree_root: Path, cache_root: Path, deadline: float
) -> PlatformProfiles | FactsFailure:
    isolation = network_isolation()
    try:
        platform_root = cached_tree(trees, tree_root, request.repo, request.commit, deadline)
        roots = [source_root(cached_tree(trees, tree_root, package.repo, package.commit, deadline)) for package in request.packages]
        result = probe_platform(
            request.platform,
            platform_root,
            roots,
            platform_commit=request.commit,
            excluded=[package.name for package in request.packages],
            cache_root=cache_root / "environments",
            deadline=deadline,
            isolation=isolation,
        )
        return facts_of(request, result, isolation)
    except (TreeError, FactsRunError) as error:
        step = error.step
        return FactsFailure(request=request, step=step, message=str(error))


def prove_platform_facts(
    requests: Sequence[FactsRequest], trees: TreeMaterialiser, *, cache_root: Path, deadline: float, cache_trees: bool = True
) -> list[PlatformProfiles | FactsFailure]:
    """Facts for every request (in order), proved concurrently; none is ever a guess.

    `cache_trees`: keep the trees under `cache_root` for the next run (a materialiser that downloads), or
    write them for this call only (trees already fetched and verified in memory, as the gate's are: the
    probe then runs exactly the bytes verified in this run, never a file left on disk before)."""
    if not requests:
        return []
    with tempfile.TemporaryDirectory(prefix="cutover-trees-") as scratch:
        tree_root = cache_root / "trees" if cache_trees else Path(scratch)
        with ThreadPoolExecutor(max_workers=min(MAX_WORKERS, len(requests))) as pool:
            return list(pool.map(lambda request: prove_one(request, trees, tree_root, cache_root, deadline), requests))
