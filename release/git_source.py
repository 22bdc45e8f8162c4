"""`GitSource`: the gate's facts from plain git, over a directory holding one clone per repository.

`<root>/<repo>` or `<root>/<repo>.git`, bare or not (sibling checkouts, mirrors). A clone only answers for
`<owner>/<repo>` when its `origin` remote names that repository, so a copy of UES placed as QPK is refused
instead of answering with UES's commits. Only local git commands run: no token, no network. CI status is
not visible to git, so `ci_status` is None and the gate reports the CI check as skipped.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path
from typing import Optional

from release.config import COMMIT_PATTERN, DEFAULT_GITHUB_OWNER, github_repo_problem
from release.sources import CiStatus, MalformedResponse, NotFound, SourceError, TagNotFound, TreeSource, Unreachable, shown_url

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


class GitSource(TreeSource):
    kind = "git"

    def __init__(self, root: Path, owner: str = DEFAULT_GITHUB_OWNER, *, timeout: float = 30.0) -> None:
        self.root = Path(root)
        self.owner = owner
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
                raise TagNotFound(
                    call, f"tag {tag} not found in {directory.name}", f"fetch tags into {directory} (git fetch --tags) or fix the bundle"
                )
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
                raise NotFound(
                    f"git cat-file -e {ref}^{{commit}} in {self._dir(repo)}",
                    f"commit {ref} not found in {repo}",
                    "fetch it into the clone or fix the commit",
                )
            return ref
        return self.resolve_tag(repo, ref)

    def _tree(self, repo: str, sha: str) -> dict[str, str]:
        key = (repo, sha)
        if key not in self._trees:
            directory = self._dir(repo)
            call = f"git ls-tree -r {sha} in {directory}"
            result = self._git(directory, call, "ls-tree", "-r", "-z", sha)
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
        result = self._git(directory, call, "config", "--get", "remote.origin.url")
        url = result.stdout.strip()
        expected = f"{self.owner}/{repo}"
        fix = f"put a clone of {expected} there, or set its origin: git -C {directory} remote set-url origin https://github.com/{expected}.git"
        if result.returncode != 0 or not url:
            raise SourceError(
                call, f"the clone {directory} has no origin remote, so nothing shows it is {expected}", fix.replace("set-url", "add")
            )
        if origin_repository(url) != (self.owner.lower(), repo.lower()):
            raise SourceError(call, f"the clone {directory} is a clone of {shown_url(url)}, not of {expected}", fix)

    def _git(self, directory: Path, call: str, *args: str) -> subprocess.CompletedProcess[str]:
        try:
            result = subprocess.run(
                ["git", "--no-replace-objects", "--git-dir", str(_git_dir(directory)), *args],
                capture_output=True,
                text=True,
                timeout=self._timeout,
                env=git_environment(),
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


def _first_line(text: str) -> str:
    return (text.strip().splitlines() or ["no output"])[0][:200]
