"""`GitSource`: the gate's questions answered by plain git, over a directory holding one clone per repository.

`<root>/<repo>` or `<root>/<repo>.git`, bare or not (sibling checkouts, mirrors). A clone only answers for
`<owner>/<repo>` when its `origin` remote names that repository, so a copy of UES placed as QPK is refused
instead of answering with UES's commits. Only local git commands run, each through the one bounded
process reader (`release.local_files.run_bounded`: an output bound and a total deadline, killed with its
group past either): no token, no network. CI status is not visible to git, so `ci_status` is None and
the gate reports the CI check as skipped.

  resolve_tag    the exact ref refs/tags/<tag>, peeled one annotated level at a time (at most 5, as on GitHub)
  tree           `git ls-tree -r` (the listing) and `git archive` of the commit, verified file for file
  default_head   refs/remotes/origin/HEAD (a clone) or HEAD (a mirror): the default branch and its commit
  released       `git merge-base --is-ancestor <commit> <default branch>`
  relation       the same, both ways
"""

from __future__ import annotations

import asyncio
import os
from pathlib import Path
from typing import Optional

from release.config import COMMIT_PATTERN, DEFAULT_GITHUB_OWNER, github_repo_problem
from release.gate.sources import (
    CiStatus,
    MalformedResponse,
    NotFound,
    Relation,
    SourceError,
    TagNotFound,
    Unreachable,
    server_text,
    shown_url,
)
from release.gate.trees import MAX_ARCHIVE_BYTES, Tree, TreeError, checked_listing, tree_from_archive
from release.local_files import ProcessOutput, ProcessOutputError, run_bounded

MAX_TAG_DEPTH = 5  # the same bound as GitHubSource: a deeper annotated chain is malformed
SMALL_OUTPUT = 1 << 20  # a ref, a tag object, a listing of refs
LISTING_OUTPUT = 16 << 20  # `ls-tree -r` of a large tree

# Keep git from reading the operator's config or prompting: the answers must depend on the clones only.
# Replace objects are off for every command: git honours refs/replace/* by default (and `clone --mirror`
# copies them), so one replace ref would make a commit id answer with another commit's tree: the gate
# would read pins that commit never had. GIT_NO_REPLACE_OBJECTS and --no-replace-objects both say so.
GIT_ENV = {
    "GIT_TERMINAL_PROMPT": "0",
    "GIT_CONFIG_NOSYSTEM": "1",
    "GIT_CONFIG_GLOBAL": os.devnull,
    "GIT_NO_REPLACE_OBJECTS": "1",
    "LC_ALL": "C",
}


def git_environment() -> dict[str, str]:
    """The environment for git: the operator's, minus every GIT_* variable (GIT_OBJECT_DIRECTORY,
    GIT_CONFIG_PARAMETERS, GIT_NAMESPACE... would answer from somewhere other than the clone), plus GIT_ENV."""
    return {**{name: value for name, value in os.environ.items() if not name.startswith("GIT_")}, **GIT_ENV}


class GitSource:
    kind = "git"

    def __init__(self, root: Path, owner: str = DEFAULT_GITHUB_OWNER, *, timeout: float = 30.0) -> None:
        self.root = Path(root)
        self.owner = owner
        self._timeout = timeout
        self._dirs: dict[str, Path] = {}
        self._tag_lists: dict[str, dict[str, str]] = {}

    def describe(self) -> str:
        return f"git (clones under {self.root})"

    async def __aenter__(self) -> "GitSource":
        return self

    async def __aexit__(self, *exc: object) -> None:
        return None

    # -- the protocol (each answer from local commands; nothing to wait on concurrently) ----------------

    async def resolve_tag(self, repo: str, tag: str) -> str:
        directory = self._dir(repo)
        call = f"git for-each-ref refs/tags/{tag} in {directory}"
        # The exact ref name only: rev-parse would let refs/heads/refs/tags/<tag> (a branch named like the
        # tag's full name) answer when the tag itself is missing.
        target = self._tag_refs(repo, directory).get(f"refs/tags/{tag}")
        if target is None:
            raise TagNotFound(
                call, f"tag {tag} not found in {directory.name}", f"fetch tags into {directory} (git fetch --tags) or fix the release"
            )
        for depth in range(MAX_TAG_DEPTH + 1):
            kind = self._type(directory, target, call)
            if kind == "commit":
                return target
            if kind != "tag":
                raise MalformedResponse(call, f"tag {tag} points at a {kind or 'missing object'}, not a commit", "tag a commit")
            if depth == MAX_TAG_DEPTH:
                break
            target = self._tag_target(directory, target, call)
        raise MalformedResponse(call, f"tag {tag} is nested more than {MAX_TAG_DEPTH} levels deep", "tag the commit directly")

    async def early_archive(self, repo: str, ref: str) -> Optional[bytes]:
        return None  # a local archive costs no round trip: it is made from the commit itself

    async def tree(self, repo: str, commit: str, early: "Optional[asyncio.Future[Optional[bytes]]]" = None) -> Tree:
        directory = self._dir(repo)
        self._commit(directory, repo, commit)
        call = f"git archive {commit} in {directory}"
        listing = self._listing(directory, commit)
        archive = self._git(directory, call, MAX_ARCHIVE_BYTES, "archive", "--format=tar", commit).stdout
        try:
            return tree_from_archive(repo, commit, archive, listing, strip=0)
        except TreeError as error:
            raise MalformedResponse(
                call, server_text(error), "the archive must be the commit's tree; check the clone's attributes"
            ) from None

    async def default_head(self, repo: str) -> tuple[str, str]:
        directory = self._dir(repo)
        ref, name = self._default_ref(directory)
        call = f"git rev-parse {ref} in {directory}"
        head = self._git(directory, call, SMALL_OUTPUT, "rev-parse", "--verify", "--quiet", f"{ref}^{{commit}}").stdout.decode().strip()
        if not COMMIT_PATTERN.fullmatch(head):
            raise MalformedResponse(call, f"the default branch {name} does not point at a commit", "repair the clone (git fetch)")
        return name, head

    async def released(self, repo: str, commit: str) -> tuple[bool, str]:
        directory = self._dir(repo)
        self._commit(directory, repo, commit)
        ref, name = self._default_ref(directory)
        return self._is_ancestor(directory, commit, ref), name

    async def relation(self, repo: str, base: str, head: str) -> Relation:
        directory = self._dir(repo)
        for commit in (base, head):
            self._commit(directory, repo, commit)
        if base == head:
            return "same"
        if self._is_ancestor(directory, base, head):
            return "ahead"
        if self._is_ancestor(directory, head, base):
            return "behind"
        return "diverged"

    async def ci_status(self, repo: str, commit: str) -> Optional[CiStatus]:
        return None

    # -- plumbing -----------------------------------------------------------------------------------

    def _type(self, directory: Path, name: str, call: str) -> Optional[str]:
        """The object's type, None when the clone has no such object."""
        result = self._git(directory, call, SMALL_OUTPUT, "cat-file", "-t", name, allow=(0, 128))
        return result.stdout.decode("ascii", "replace").strip() if result.returncode == 0 else None

    def _commit(self, directory: Path, repo: str, commit: str) -> None:
        """NotFound unless `commit` is a full id of a commit in the clone."""
        call = f"git cat-file -t {commit} in {directory}"
        if not COMMIT_PATTERN.fullmatch(commit) or self._type(directory, commit, call) != "commit":
            raise NotFound(call, f"commit {commit} not found in {repo}", "fetch it into the clone or fix the commit")

    def _tag_target(self, directory: Path, tag_object: str, call: str) -> str:
        text = self._git(directory, call, SMALL_OUTPUT, "cat-file", "tag", tag_object).stdout.decode("utf-8", "replace")
        first = text.split("\n", 1)[0]
        if not first.startswith("object ") or not COMMIT_PATTERN.fullmatch(first[7:]):
            raise MalformedResponse(call, "a tag object without an object line", "repair the clone (git fsck)")
        return first[7:]

    def _listing(self, directory: Path, commit: str) -> dict[str, tuple[str, str]]:
        """path -> (mode, blob id) of every file and symlink of the commit's tree."""
        call = f"git ls-tree -r {commit} in {directory}"
        output = self._git(directory, call, LISTING_OUTPUT, "ls-tree", "-r", "-z", "--full-tree", commit).stdout
        entries = {}
        for entry in output.split(b"\0"):
            if not entry:
                continue
            meta, _, path = entry.partition(b"\t")
            fields = meta.decode("ascii", "replace").split()
            if len(fields) != 3:
                raise MalformedResponse(call, "git printed a malformed tree entry", "repair the clone (git fsck)")
            mode, kind, blob = fields
            if kind == "blob":
                entries[path.decode("utf-8", "surrogateescape")] = (mode, blob)
        return dict(checked_listing(entries))

    def _default_ref(self, directory: Path) -> tuple[str, str]:
        """(full ref, branch name) of the default branch: origin's HEAD in a clone, HEAD in a mirror."""
        call = f"git symbolic-ref refs/remotes/origin/HEAD in {directory}"
        for ref, prefix in (("refs/remotes/origin/HEAD", "refs/remotes/origin/"), ("HEAD", "refs/heads/")):
            result = self._git(directory, call, SMALL_OUTPUT, "symbolic-ref", "--quiet", ref, allow=(0, 1, 128))
            target = result.stdout.decode("utf-8", "replace").strip()
            if result.returncode == 0 and target.startswith(prefix):
                return target, target[len(prefix) :]
        raise MalformedResponse(
            call, "the clone names no default branch (neither origin/HEAD nor HEAD)", "git remote set-head origin --auto"
        )

    def _is_ancestor(self, directory: Path, ancestor: str, descendant: str) -> bool:
        call = f"git merge-base --is-ancestor {ancestor} {descendant} in {directory}"
        return self._git(directory, call, SMALL_OUTPUT, "merge-base", "--is-ancestor", ancestor, descendant, allow=(0, 1)).returncode == 0

    def _tag_refs(self, repo: str, directory: Path) -> dict[str, str]:
        """Every tag ref of the clone (full name -> object id), read once."""
        if repo not in self._tag_lists:
            call = f"git for-each-ref refs/tags/ in {directory}"
            output = self._git(directory, call, LISTING_OUTPUT, "for-each-ref", "--format=%(objectname) %(refname)", "refs/tags/").stdout
            refs = {}
            for line in output.decode("utf-8", "replace").splitlines():
                sha, _, name = line.partition(" ")
                refs[name] = sha
            self._tag_lists[repo] = refs
        return self._tag_lists[repo]

    def _dir(self, repo: str) -> Path:
        if repo not in self._dirs:
            problem = github_repo_problem(repo)
            if problem:
                # The name becomes a path under the root: never let `../x` read a clone outside it.
                raise SourceError(f"open clone of {repo!r} under {self.root}", f"the name {problem}", "fix release.repositories")
            candidates = [self.root / repo, self.root / f"{repo}.git"]
            found = next((path for path in candidates if path.is_dir()), None)
            if found is None:
                raise Unreachable(
                    f"open clone of {repo} under {self.root}",
                    f"no directory {repo} or {repo}.git",
                    f"clone it there (git clone --mirror <url> {self.root / (repo + '.git')}) or fix --git-root / CUTOVER_GIT_ROOT",
                )
            self._check_identity(repo, found)
            self._dirs[repo] = found
        return self._dirs[repo]

    def _check_identity(self, repo: str, directory: Path) -> None:
        """The clone must say it is `<owner>/<repo>`: its origin remote's last two path parts, any host."""
        call = f"git config --get remote.origin.url in {directory}"
        result = self._git(directory, call, SMALL_OUTPUT, "config", "--get", "remote.origin.url", allow=(0, 1))
        url = result.stdout.decode("utf-8", "replace").strip()
        expected = f"{self.owner}/{repo}"
        fix = f"put a clone of {expected} there, or set its origin: git -C {directory} remote set-url origin https://github.com/{expected}.git"
        if result.returncode != 0 or not url:
            raise SourceError(
                call, f"the clone {directory} has no origin remote, so nothing shows it is {expected}", fix.replace("set-url", "add")
            )
        if origin_repository(url) != (self.owner.lower(), repo.lower()):
            # The URL is the clone's data: shown without userinfo and with control characters escaped.
            raise SourceError(call, f"the clone {directory} is a clone of {server_text(shown_url(url), limit=160)}, not of {expected}", fix)

    def _git(self, directory: Path, call: str, max_bytes: int, *args: str, allow: tuple[int, ...] = (0,)) -> ProcessOutput:
        try:
            result = run_bounded(
                ["git", "--no-replace-objects", "--git-dir", str(_git_dir(directory)), *args],
                max_bytes,
                self._timeout,
                env=git_environment(),
            )
        except FileNotFoundError:
            raise Unreachable(call, "git is not installed", "install git") from None
        except ProcessOutputError as error:
            if error.kind == "deadline":
                raise Unreachable(call, f"git took longer than {self._timeout:g}s", "check the clone and the disk") from None
            raise MalformedResponse(call, f"git {error.what}", "check the clone") from None
        if result.returncode == 128 and b"not a git repository" in result.stderr:
            raise Unreachable(call, f"{directory} is not a git repository", "clone the repository there")
        if result.returncode not in allow:
            raise SourceError(call, f"git exited {result.returncode} ({_first_line(result.stderr)})", "check the clone", unreachable=True)
        return result


def origin_repository(url: str) -> tuple[str, str]:
    """(owner, repo), lower-cased, from a remote URL: https://host/o/r.git, git@host:o/r, /srv/o/r.git."""
    path = url.strip().rstrip("/")
    path = path.removesuffix(".git")
    parts = [part for part in path.replace(":", "/").split("/") if part]
    return (parts[-2].lower(), parts[-1].lower()) if len(parts) >= 2 else ("", "")


def _git_dir(directory: Path) -> Path:
    """The git directory of a clone: `<dir>/.git` for a work tree, the directory itself when bare."""
    dot_git = directory / ".git"
    return dot_git if dot_git.exists() else directory


def _first_line(text: bytes) -> str:
    return server_text((text.decode("utf-8", "replace").strip().splitlines() or ["no output"])[0], limit=200)
