"""Where the gate's facts come from: the source protocol, its errors, and choosing a source.

Two implementations answer the same questions: `release/github_source.py` (the GitHub API through
PyGithub) and `release/git_source.py` (plain git over a directory of clones). Every fault is a
`SourceError` that names the call, the reason and the fix; the gate turns it into a failed or "error"
check instead of a traceback, so a fault always fails closed.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal, Mapping, Optional, Protocol, runtime_checkable

from release.config import ReleaseBundle

SourceKind = Literal["github", "git"]
SOURCE_KINDS: tuple[str, ...] = ("github", "git")
DEFAULT_SOURCE = "github"

ENV_SOURCE = "CUTOVER_SOURCE"
ENV_GIT_ROOT = "CUTOVER_GIT_ROOT"
ENV_TOKEN = "GITHUB_TOKEN"
ENV_API_URL = "GITHUB_API_URL"


class SourceError(Exception):
    """A question the source could not answer with a fact.

    `unreachable` is True when the source could not be reached at all (connection refused, timeout,
    5xx after retries, rate limit exhausted, missing clone): the answer is unknown. It is False for a
    definite answer that is not a fact the gate can use (malformed data) or a definite "no" (NotFound).
    """

    def __init__(self, call: str, reason: str, fix: str, unreachable: bool = False) -> None:
        self.call = call
        self.reason = reason
        self.fix = fix
        self.unreachable = unreachable
        super().__init__(str(self))

    def __str__(self) -> str:
        return f"{self.call}: {self.reason}; {self.fix}"


class NotFound(SourceError):
    """A definite answer: the tag, commit or repository does not exist (or is invisible to this source)."""


class TagNotFound(NotFound):
    pass


class Unreachable(SourceError):
    def __init__(self, call: str, reason: str, fix: str) -> None:
        super().__init__(call, reason, fix, unreachable=True)


class MalformedResponse(SourceError):
    pass


class SourceSelectionError(ValueError):
    """Bad source selection (unknown kind, git without a root): bad input, exit 2."""


@dataclass(frozen=True)
class CiStatus:
    """The CI verdict for one commit: `state` is success, pending, failure or none (nothing reported)."""

    state: Literal["success", "pending", "failure", "none"]
    detail: str  # which contexts / check runs are not green, or how many are


@runtime_checkable
class ReleaseSource(Protocol):
    """The questions the gate asks. `repo` is a repository name; the owner comes from the bundle.

    Implementations cache every answer for their lifetime, so asking twice costs nothing.
    """

    kind: str

    def resolve_tag(self, repo: str, tag: str) -> str:
        """The commit sha the tag points at (annotated tags peeled); TagNotFound when there is no such tag."""
        ...

    def read_file(self, repo: str, ref: str, path: str) -> Optional[str]:
        """The text of `path` at `ref` (a commit sha or tag); None when the file does not exist there.

        NotFound when `ref` itself does not exist.
        """
        ...

    def commit_exists(self, repo: str, sha: str) -> bool:
        ...

    def list_files(self, repo: str, ref: str, paths: tuple[str, ...]) -> frozenset[str]:
        """Which of `paths` (top-level files) exist at `ref`; NotFound when `ref` does not exist."""
        ...

    def ci_status(self, repo: str, sha: str) -> Optional[CiStatus]:
        """The commit's CI verdict, or None when this source cannot see CI (git)."""
        ...

    def describe(self) -> str:
        """Where the facts come from, for the report (never a token)."""
        ...


class TreeSource:
    """What both sources share: a commit's top-level tree says which pin files exist, and a file is
    read through its blob id (content-addressed, so identical files in several repos are read once)."""

    def _commit_of(self, repo: str, ref: str) -> str:
        raise NotImplementedError

    def _tree(self, repo: str, commit: str) -> dict[str, str]:
        raise NotImplementedError

    def _read_blob(self, repo: str, blob: str, path: str, ref: str) -> str:
        raise NotImplementedError

    def list_files(self, repo: str, ref: str, paths: tuple[str, ...]) -> frozenset[str]:
        tree = self._tree(repo, self._commit_of(repo, ref))
        return frozenset(path for path in paths if path in tree)

    def read_file(self, repo: str, ref: str, path: str) -> Optional[str]:
        if "/" in path:
            raise ValueError(f"{path}: only top-level files are read")
        blob = self._tree(repo, self._commit_of(repo, ref)).get(path)
        return None if blob is None else self._read_blob(repo, blob, path, ref)


def make_source(
    kind: str, bundle: ReleaseBundle, git_root: Optional[Path], environ: Mapping[str, str]
) -> ReleaseSource:
    """The source a command or the program asked for; SourceSelectionError for a bad choice."""
    if kind == "github":
        if git_root is not None:
            raise SourceSelectionError(f"a git root ({git_root}) only applies to the git source; drop it or use git")
        from release.github_source import GitHubSource

        return GitHubSource(
            owner=bundle.github_owner,
            token=environ.get(ENV_TOKEN) or None,
            base_url=environ.get(ENV_API_URL) or None,
        )
    if kind == "git":
        if git_root is None:
            raise SourceSelectionError(
                f"the git source needs a directory of clones: pass --git-root DIR or set {ENV_GIT_ROOT}"
            )
        from release.git_source import GitSource

        return GitSource(git_root)
    raise SourceSelectionError(f"unknown source {kind!r}; use one of: {', '.join(SOURCE_KINDS)}")


def source_from_env(bundle: ReleaseBundle, environ: Mapping[str, str]) -> ReleaseSource:
    """The Pulumi program's source: CUTOVER_SOURCE (default github), CUTOVER_GIT_ROOT, GITHUB_TOKEN, GITHUB_API_URL."""
    kind = (environ.get(ENV_SOURCE) or DEFAULT_SOURCE).strip()
    root_text = (environ.get(ENV_GIT_ROOT) or "").strip()
    if kind not in SOURCE_KINDS:
        raise SourceSelectionError(f"{ENV_SOURCE}={kind!r} is not a source; set it to one of: {', '.join(SOURCE_KINDS)}")
    if kind == "github" and root_text:
        raise SourceSelectionError(f"{ENV_GIT_ROOT} is set but {ENV_SOURCE} is github; set {ENV_SOURCE}=git or unset {ENV_GIT_ROOT}")
    return make_source(kind, bundle, Path(root_text) if root_text else None, environ)
