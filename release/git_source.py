"""`GitSource`: the gate's facts from plain git, over a directory holding one clone per repository.

`<root>/<repo>` or `<root>/<repo>.git`, bare or not (sibling checkouts, mirrors, clones of any URL). Only
local git commands run: no token, no network. CI status is not visible to git, so `ci_status` is None and
the gate reports the CI check as skipped.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path
from typing import Optional

from release.config import COMMIT_PATTERN
from release.sources import CiStatus, MalformedResponse, NotFound, SourceError, TagNotFound, TreeSource, Unreachable

# Keep git from reading the operator's config or prompting: the answers must depend on the clones only.
GIT_ENV = {"GIT_TERMINAL_PROMPT": "0", "GIT_CONFIG_NOSYSTEM": "1", "GIT_CONFIG_GLOBAL": os.devnull, "LC_ALL": "C"}


class GitSource(TreeSource):
    kind = "git"

    def __init__(self, root: Path, *, timeout: float = 30.0) -> None:
        self.root = Path(root)
        self._timeout = timeout
        self._dirs: dict[str, Path] = {}
        self._tags: dict[tuple[str, str], str] = {}
        self._commits: dict[tuple[str, str], bool] = {}
        self._trees: dict[tuple[str, str], dict[str, str]] = {}
        self._blobs: dict[tuple[str, str], str] = {}

    def describe(self) -> str:
        return f"git (clones under {self.root})"

    def resolve_tag(self, repo: str, tag: str) -> str:
        key = (repo, tag)
        if key not in self._tags:
            directory = self._dir(repo)
            if tag.startswith("-") or not tag:
                raise TagNotFound(f"git tag {tag!r}", "is not a tag name", "fix the bundle")
            # refs/tags/ keeps a branch of the same name from answering; ^{commit} peels annotated tags.
            spec = f"refs/tags/{tag}^{{commit}}"
            call = f"git rev-parse {spec} in {directory}"
            result = self._git(directory, call, "rev-parse", "--verify", "--quiet", spec)
            sha = result.stdout.strip()
            if result.returncode != 0 or not sha:
                raise TagNotFound(call, f"tag {tag} not found in {directory.name}", f"fetch tags into {directory} (git fetch --tags) or fix the bundle")
            if not COMMIT_PATTERN.fullmatch(sha):
                raise MalformedResponse(call, f"git printed {sha[:80]!r}, not a commit id", "check the clone")
            self._tags[key] = sha
        return self._tags[key]

    def commit_exists(self, repo: str, sha: str) -> bool:
        if not COMMIT_PATTERN.fullmatch(sha):
            return False
        key = (repo, sha)
        if key not in self._commits:
            directory = self._dir(repo)
            call = f"git cat-file -e {sha}^{{commit}} in {directory}"
            self._commits[key] = self._git(directory, call, "cat-file", "-e", f"{sha}^{{commit}}").returncode == 0
        return self._commits[key]

    def _read_blob(self, repo: str, blob: str, path: str, ref: str) -> str:
        key = (repo, blob)
        if key not in self._blobs:
            directory = self._dir(repo)
            call = f"git cat-file blob {blob} ({path} at {ref}) in {directory}"
            result = self._git(directory, call, "cat-file", "blob", blob)
            if result.returncode != 0:
                raise MalformedResponse(call, f"cannot read the blob ({_first_line(result.stderr)})", "repair the clone (git fsck)")
            self._blobs[key] = result.stdout
        return self._blobs[key]

    def ci_status(self, repo: str, sha: str) -> Optional[CiStatus]:
        return None

    # -- plumbing -----------------------------------------------------------------------------------

    def _commit_of(self, repo: str, ref: str) -> str:
        if COMMIT_PATTERN.fullmatch(ref):
            if not self.commit_exists(repo, ref):
                raise NotFound(f"git cat-file -e {ref}^{{commit}} in {self._dir(repo)}", f"commit {ref} not found in {repo}", "fetch it into the clone or fix the commit")
            return ref
        return self.resolve_tag(repo, ref)

    def _tree(self, repo: str, sha: str) -> dict[str, str]:
        key = (repo, sha)
        if key not in self._trees:
            directory = self._dir(repo)
            call = f"git ls-tree {sha} in {directory}"
            result = self._git(directory, call, "ls-tree", "-z", sha)
            if result.returncode != 0:
                raise NotFound(call, f"commit {sha} not found in {repo}", "fetch it into the clone or fix the commit")
            entries = {}
            for record in filter(None, result.stdout.split("\0")):
                meta, _, name = record.partition("\t")
                fields = meta.split()
                if len(fields) != 3:
                    raise MalformedResponse(call, f"unexpected ls-tree line {record[:80]!r}", "check the clone")
                if fields[1] == "blob":
                    entries[name] = fields[2]
            self._trees[key] = entries
        return self._trees[key]

    def _dir(self, repo: str) -> Path:
        if repo not in self._dirs:
            candidates = [self.root / repo, self.root / f"{repo}.git"]
            found = next((path for path in candidates if path.is_dir()), None)
            if found is None:
                raise Unreachable(
                    f"open clone of {repo} under {self.root}",
                    f"no directory {repo} or {repo}.git",
                    f"clone it there (git clone --mirror <url> {self.root / (repo + '.git')}) or fix --git-root / CUTOVER_GIT_ROOT",
                )
            self._dirs[repo] = found
        return self._dirs[repo]

    def _git(self, directory: Path, call: str, *args: str) -> subprocess.CompletedProcess[str]:
        try:
            result = subprocess.run(
                ["git", "--git-dir", str(_git_dir(directory)), *args],
                capture_output=True,
                text=True,
                timeout=self._timeout,
                env={**os.environ, **GIT_ENV},
                check=False,
            )
        except FileNotFoundError:
            raise Unreachable(call, "git is not installed", "install git") from None
        except subprocess.TimeoutExpired:
            raise Unreachable(call, f"git took longer than {self._timeout:g}s", "check the clone and the disk") from None
        except UnicodeDecodeError:
            raise MalformedResponse(call, "git printed non-UTF-8 text", "check the file's encoding") from None
        if result.returncode not in (0, 1, 128):
            raise SourceError(call, f"git exited {result.returncode} ({_first_line(result.stderr)})", "check the clone", unreachable=True)
        if result.returncode == 128 and "not a git repository" in result.stderr:
            raise Unreachable(call, f"{directory} is not a git repository", "clone the repository there")
        return result


def _git_dir(directory: Path) -> Path:
    """The git directory of a clone: `<dir>/.git` for a work tree, the directory itself when bare."""
    dot_git = directory / ".git"
    return dot_git if dot_git.exists() else directory


def _first_line(text: str) -> str:
    return (text.strip().splitlines() or ["no output"])[0][:200]
