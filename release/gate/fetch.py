"""Fetch, then judge: every question the gate needs answered, asked in explicit stages, kept as immutable
facts (`Snapshot`) that the checks (release/gate/checks.py) then read without asking anything.

The stages, each question asked once per run, every independent chain at once:
  0. bundles      a release naming a QSL bundle: QuantRuntimeSettings' default branch head, its tree, and
                  the bundle file in it (`read_bundle`), which gives the release its refs
  1. refs         each package ref of each release: a tag resolved to its commit; a commit checked to be
                  on its repository's default branch
  2. commits      each package commit and each platform commit: the whole tree (install files, the
                  catalog, the registry); each platform commit's CI; each package's history against the
                  ref the lock recorded (forward, rollback, diverged)
An outcome is either the answer or the `SourceError` that stood for it; a question whose prerequisite
failed is not asked (the checks say why). The run's total deadline and its concurrency are the source's.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Awaitable, Callable, Coroutine, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any, Generic, Optional, Sequence, TypeVar, Union, cast

from release.config import COMMIT_PATTERN, ReleaseBundle, StackConfig, ref_kind
from release.gate.lock import Lock, LockedRef
from release.gate.pins import PinFileError, load_toml
from release.gate.source_trees import TreeError as MaterialiseError
from release.gate.sources import CiStatus, Relation, ReleaseSource, SourceError
from release.gate.trees import Tree, TreeError
from release.packages import BY_NAME, bundle_path

T = TypeVar("T")
Outcome = Union[T, SourceError]


@dataclass(frozen=True)
class BundleFacts:
    """A QSL bundle as read: where (repository, commit, path, blob) and the refs of the packages it tracks."""

    bundle: str
    repo: str
    commit: str
    path: str
    blob: str
    refs: Mapping[str, str]  # distribution name -> ref, for the packages of the table it lists


class BundleError(ValueError):
    """A bundle file that is missing or cannot give a release: its message names the file and the fix."""


@dataclass(frozen=True)
class Snapshot:
    """Everything the gate learnt in one run: answers or faults, never a guess."""

    source_kind: str
    verified_from: str
    config: StackConfig  # with every bundle release's refs filled in where the bundle was read
    bundles: Mapping[str, Outcome[BundleFacts]] = field(default_factory=dict)
    bundle_errors: Mapping[str, str] = field(default_factory=dict)  # read, but not a release (BundleError)
    commits: Mapping[tuple[str, str], Outcome[str]] = field(default_factory=dict)  # (repo, ref) -> commit
    released: Mapping[tuple[str, str], Outcome[tuple[bool, str]]] = field(default_factory=dict)  # (repo, commit)
    trees: Mapping[tuple[str, str], Outcome[Tree]] = field(default_factory=dict)  # (repo, commit)
    ci: Mapping[tuple[str, str], Outcome[Optional[CiStatus]]] = field(default_factory=dict)
    relations: Mapping[tuple[str, str, str], Outcome[Relation]] = field(default_factory=dict)  # (repo, base, head)

    def release_trees(self, key: str) -> "ReleaseTrees":
        """What service `key` runs: its platform commit and the commit of every package of its release,
        with the trees fetched for them (the profile-facts probe runs the platform's code over these)."""
        spec = self.config.services[key]
        release = self.config.release_for(key)
        repo = release.repositories.for_platform(spec.platform)
        packages = {}
        for name, ref in release.refs.items():
            package_repo = release.repositories.for_package(name)
            commit = self.commits.get((package_repo, ref))
            packages[name] = (package_repo, commit if isinstance(commit, str) else None)
        return ReleaseTrees(platform=(repo, spec.commit), packages=packages, trees=self.trees)


class SnapshotTrees:
    """The run's fetched trees as the profile-facts probe's `TreeMaterialiser`
    (release/gate/source_trees.py): the probe runs over exactly the bytes the checks read, already
    verified against each commit's listing, with no second download."""

    def __init__(self, trees: Mapping[tuple[str, str], "Outcome[Tree]"]) -> None:
        self._trees = trees

    def materialise(self, repo: str, commit: str, destination: Path, deadline: float) -> None:
        tree = self._trees.get((repo, commit))
        if not isinstance(tree, Tree):
            why = str(tree) if isinstance(tree, SourceError) else "the gate did not fetch it"
            raise MaterialiseError(f"write {repo}@{commit[:7]}", why)
        tree.write_to(destination)


@dataclass(frozen=True)
class ReleaseTrees:
    """One (platform commit, release): the repository and commit of the platform and of each package
    (None when its ref did not resolve), and the run's trees by (repository, commit)."""

    platform: tuple[str, str]
    packages: Mapping[str, tuple[str, Optional[str]]]
    trees: Mapping[tuple[str, str], Outcome[Tree]]

    def tree(self, repo: str, commit: Optional[str]) -> Optional[Tree]:
        found = None if commit is None else self.trees.get((repo, commit))
        return found if isinstance(found, Tree) else None


def read_bundle(tree: Tree, bundle: str) -> BundleFacts:
    """The refs a bundle file gives (`name`, `[repos]`: repository -> commit); BundleError otherwise."""
    path = bundle_path(bundle)
    where = f"{path} at {tree.label}"
    try:
        text = tree.text(path)
        if text is None:
            raise BundleError(f"{where} does not exist; name a bundle of {tree.repo}, or list the packages instead")
        data = load_toml(text, path)
    except (TreeError, PinFileError) as error:
        raise BundleError(f"{where}: {error}") from None
    name, repos = data.get("name"), data.get("repos")
    if name is not None and name != bundle:
        raise BundleError(f"{where} names itself {str(name)[:40]!r}, not {bundle}")
    if not isinstance(repos, dict):
        raise BundleError(f"{where} has no [repos] table (repository -> commit)")
    by_repository = {package.repository.lower(): package.name for package in BY_NAME.values()}
    refs: dict[str, str] = {}
    for repository, commit in repos.items():
        name_of = by_repository.get(str(repository).lower())
        if name_of is None:
            continue  # the bundle tracks packages this project does not release (CnEquityStrategies...)
        if not isinstance(commit, str) or not COMMIT_PATTERN.fullmatch(commit):
            raise BundleError(f"{where} pins {repository} to {str(commit)[:60]!r}, not a full commit")
        refs[name_of] = commit
    return BundleFacts(bundle, tree.repo, tree.commit, path, tree.blob(path) or "", MappingProxyType(refs))


class _Run(Generic[T]):
    """One run's questions: each asked once (by key), its outcome kept."""

    def __init__(self) -> None:
        self.tasks: dict[tuple[Any, ...], asyncio.Task[Any]] = {}

    async def ask(self, key: tuple[Any, ...], make: Callable[[], Awaitable[Any]]) -> Any:
        if key not in self.tasks:
            self.tasks[key] = asyncio.ensure_future(_outcome(make))
        return await asyncio.shield(self.tasks[key])

    def outcomes(self, kind: str) -> dict[Any, Any]:
        return {key[1:] if len(key) > 2 else key[1]: task.result() for key, task in self.tasks.items() if key[0] == kind and task.done()}


async def _outcome(make: Callable[[], Awaitable[T]]) -> Outcome[T]:
    try:
        return await make()
    except SourceError as error:
        return error


@dataclass(frozen=True)
class ReleaseGroup:
    """A release and the services that install it: the stack's (first, suffix ""), then each service's
    own that differs (suffix ":<its first service key>", for check ids)."""

    release: ReleaseBundle
    keys: tuple[str, ...]
    suffix: str


def release_groups(config: StackConfig) -> list[ReleaseGroup]:
    groups: list[tuple[ReleaseBundle, list[str]]] = [(config.release, [])]
    for key in sorted(config.services):
        release = config.release_for(key)
        found = next((keys for known, keys in groups if known == release), None)
        if found is None:
            groups.append((release, [key]))
        else:
            found.append(key)
    return [ReleaseGroup(release, tuple(keys), "" if index == 0 else f":{keys[0]}") for index, (release, keys) in enumerate(groups)]


async def _bundle(
    run: _Run[Any], source: ReleaseSource, repo: str, bundle_id: str, errors: dict[str, str]
) -> Optional[Outcome[BundleFacts]]:
    """Stage 0: the bundle file at the default branch's head of `repo`; None when it was read but gives
    no release (its reason kept in `errors`)."""
    head = await run.ask(("head", repo), _call(source.default_head, repo))
    if isinstance(head, SourceError):
        return head
    tree = await run.ask(("tree", repo, head[1]), _call(source.tree, repo, head[1]))
    if isinstance(tree, SourceError):
        return tree
    try:
        return read_bundle(tree, bundle_id)
    except BundleError as error:
        errors[bundle_id] = str(error)
        return None


async def _fetch(config: StackConfig, source: ReleaseSource, lock: Optional[Lock]) -> Snapshot:
    run: _Run[Any] = _Run()
    bundle_errors: dict[str, str] = {}
    bundles: dict[str, Outcome[BundleFacts]] = {}
    async with source:
        ids = config.bundles()
        if ids:
            repo = config.release.repositories.quant_runtime_settings
            read = await asyncio.gather(*(_bundle(run, source, repo, bundle_id, bundle_errors) for bundle_id in ids))
            bundles = {bundle_id: facts for bundle_id, facts in zip(ids, read, strict=True) if facts is not None}
            config = config.with_bundles({bundle_id: facts.refs for bundle_id, facts in bundles.items() if isinstance(facts, BundleFacts)})
        chains: list[Awaitable[Any]] = []
        asked: set[tuple[str, str, Optional[str]]] = set()
        for group in release_groups(config):
            for name, ref in group.release.refs.items():
                previous = None if lock is None else lock.previous(name, group.keys)
                if (name, ref, None if previous is None else previous.commit) not in asked:
                    asked.add((name, ref, None if previous is None else previous.commit))
                    chains.append(_package_chain(run, source, group.release, name, ref, previous))
        for key in sorted(config.services):
            spec = config.services[key]
            repo = config.release.repositories.for_platform(spec.platform)
            chains.append(run.ask(("tree", repo, spec.commit), _call(source.tree, repo, spec.commit)))
            chains.append(run.ask(("ci", repo, spec.commit), _call(source.ci_status, repo, spec.commit)))
        await asyncio.gather(*chains)
    return Snapshot(
        source_kind=source.kind,
        verified_from=source.describe(),
        config=config,
        bundles=bundles,
        bundle_errors=bundle_errors,
        commits=run.outcomes("ref"),
        released=run.outcomes("released"),
        trees=run.outcomes("tree"),
        ci=run.outcomes("ci"),
        relations=run.outcomes("relation"),
    )


def _call(method: Callable[..., Awaitable[T]], *args: str) -> Callable[[], Awaitable[T]]:
    return lambda: method(*args)


async def _package_chain(
    run: _Run[Any], source: ReleaseSource, release: ReleaseBundle, name: str, ref: str, previous: Optional[LockedRef]
) -> None:
    """One package of one release: its ref to a commit, then its tree, whether a commit ref is on the
    default branch, and its history against the ref the lock recorded."""
    repo = release.repositories.for_package(name)
    early: Optional[asyncio.Future[Optional[bytes]]] = None
    if ref_kind(ref) == "tag":
        # The tag's archive by its name, while the tag resolves: `tree` takes it only if it is the commit's.
        early = asyncio.ensure_future(source.early_archive(repo, ref))
        commit = await run.ask(("ref", repo, ref), _call(source.resolve_tag, repo, ref))
        if isinstance(commit, SourceError):
            early.cancel()
            await asyncio.gather(early, return_exceptions=True)
            return
    else:
        commit = ref
        if ("ref", repo, ref) not in run.tasks:
            run.tasks[("ref", repo, ref)] = _done(ref)
    steps = [run.ask(("tree", repo, commit), lambda: source.tree(repo, commit, early))]
    if ref_kind(ref) == "commit":
        steps.append(run.ask(("released", repo, commit), _call(source.released, repo, commit)))
    # Tags keep version order (no question); a commit on either side is ordered by history.
    if previous is not None and previous.commit != commit and "commit" in (ref_kind(previous.ref), ref_kind(ref)):
        steps.append(run.ask(("relation", repo, previous.commit, commit), _call(source.relation, repo, previous.commit, commit)))
    await asyncio.gather(*steps)


def _done(value: T) -> "asyncio.Task[T]":
    async def same() -> T:
        return value

    return asyncio.ensure_future(same())


def fetch_trees(
    source: ReleaseSource, refs: Sequence[tuple[str, str]]
) -> tuple[dict[tuple[str, str], Outcome[str]], dict[tuple[str, str], Outcome[Tree]]]:
    """Each (repository, ref) resolved to its commit (a tag peeled, a commit as it is) and that commit's
    tree, every chain at once, blocking: (repo, ref) -> commit or fault, (repo, commit) -> tree or fault."""

    async def fetch() -> tuple[dict[tuple[str, str], Outcome[str]], dict[tuple[str, str], Outcome[Tree]]]:
        run: _Run[Any] = _Run()

        async def chain(repo: str, ref: str) -> None:
            if ref_kind(ref) == "commit":
                commit: Outcome[str] = ref
                run.tasks.setdefault(("ref", repo, ref), _done(ref))
            else:
                commit = await run.ask(("ref", repo, ref), _call(source.resolve_tag, repo, ref))
            if isinstance(commit, str):
                await run.ask(("tree", repo, commit), _call(source.tree, repo, commit))

        async with source:
            await asyncio.gather(*(chain(repo, ref) for repo, ref in dict.fromkeys(refs)))
        return run.outcomes("ref"), run.outcomes("tree")

    return run_sync(fetch)


def fetch_ref_tree(source: ReleaseSource, repo: str, ref: str) -> Tree:
    """One repository's tree at a release ref (a tag resolved first), blocking; SourceError otherwise."""

    async def fetch() -> Tree:
        async with source:
            commit = ref if ref_kind(ref) == "commit" else await source.resolve_tag(repo, ref)
            return await source.tree(repo, commit)

    return run_sync(fetch)


def fetch_snapshot(config: StackConfig, source: ReleaseSource, lock: Optional[Lock] = None) -> Snapshot:
    """Run the fetch stages to the end (blocking)."""
    return run_sync(lambda: _fetch(config, source, lock))


def run_sync(make: Callable[[], Coroutine[Any, Any, T]]) -> T:
    """Run a coroutine to the end on a loop of its own, in a thread of its own: the caller's thread keeps
    its event loop as it was (the Pulumi program runs inside one; `asyncio.run` on a thread would unset it)."""
    box: dict[str, Any] = {}

    def target() -> None:
        try:
            box["value"] = asyncio.run(make())
        except BaseException as error:  # noqa: BLE001 (re-raised in the caller's thread)
            box["error"] = error

    thread = threading.Thread(target=target, name="release-gate-fetch")
    thread.start()
    thread.join()
    if "error" in box:
        raise box["error"]
    return cast(T, box["value"])
