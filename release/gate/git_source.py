"""`GitSource`: the gate's facts from plain git, over a directory holding one clone per repository.

`<root>/<repo>` or `<root>/<repo>.git`, bare or not (sibling checkouts, mirrors). A clone only answers for
`<owner>/<repo>` when its `origin` remote names that repository, so a copy of UES placed as QPK is refused
instead of answering with UES's commits. Only local git commands run: no token, no network. CI status is
not visible to git, so `ci_status` is None and the gate reports the CI check as skipped.
"""

from __future__ import annotations

import os
import select
import subprocess
import time
from pathlib import Path
from typing import Optional

from release.config import COMMIT_PATTERN, DEFAULT_GITHUB_OWNER, github_repo_problem
from release.gate.sources import (
    CiStatus,
    MalformedResponse,
    NotFound,
    SourceError,
    TagNotFound,
    TreeSource,
    Unreachable,
    server_text,
    shown_url,
)
from release.local_files import ProcessOutputError, run_bounded

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
        self._tag_lists: dict[str, dict[str, str]] = {}
        self._batches: dict[str, _CatFileBatch] = {}
        self._commits: dict[tuple[str, str], Optional[str]] = {}
        self._trees: dict[tuple[str, str], dict[str, str]] = {}
        self._blobs: dict[tuple[str, str], str] = {}

    def describe(self) -> str:
        return f"git (clones under {self.root})"

    def resolve_tag(self, repo: str, tag: str) -> str:
        key = (repo, tag)
        if key not in self._tags:
            directory = self._dir(repo)
            call = f"git for-each-ref refs/tags/{tag} in {directory}"
            # The exact ref name only: rev-parse would let refs/heads/refs/tags/<tag> (a branch named like
            # the tag's full name) answer when the tag itself is missing.
            target = self._tag_refs(repo, directory).get(f"refs/tags/{tag}")
            if target is None:
                raise TagNotFound(
                    call, f"tag {tag} not found in {directory.name}", f"fetch tags into {directory} (git fetch --tags) or fix the bundle"
                )
            peeled = self._batch(repo, directory).object(f"{target}^{{commit}}", call)
            if peeled is None or peeled[1] != "commit" or not COMMIT_PATTERN.fullmatch(peeled[0]):
                raise MalformedResponse(call, f"tag {tag} does not point at a commit", "tag a commit")
            self._tags[key] = peeled[0]
        return self._tags[key]

    def commit_exists(self, repo: str, sha: str) -> bool:
        if not COMMIT_PATTERN.fullmatch(sha):
            return False
        return self._commit_tree(repo, sha) is not None

    def _read_blob(self, repo: str, blob: str, path: str, ref: str) -> str:
        key = (repo, blob)
        if key not in self._blobs:
            directory = self._dir(repo)
            call = f"git cat-file blob {blob} ({path} at {ref}) in {directory}"
            found = self._batch(repo, directory).object(blob, call)
            if found is None or found[1] != "blob":
                raise MalformedResponse(call, "cannot read the blob", "repair the clone (git fsck)")
            try:
                self._blobs[key] = found[2].decode("utf-8")
            except UnicodeDecodeError:
                raise MalformedResponse(call, "the file is not UTF-8 text", "save it as UTF-8") from None
        return self._blobs[key]

    def ci_status(self, repo: str, sha: str) -> Optional[CiStatus]:
        return None

    def close(self) -> None:
        for batch in self._batches.values():
            batch.close()
        self._batches.clear()

    # -- plumbing -----------------------------------------------------------------------------------

    def _commit_of(self, repo: str, ref: str) -> str:
        if COMMIT_PATTERN.fullmatch(ref):
            if not self.commit_exists(repo, ref):
                raise NotFound(
                    f"git cat-file commit {ref} in {self._dir(repo)}",
                    f"commit {ref} not found in {repo}",
                    "fetch it into the clone or fix the commit",
                )
            return ref
        return self.resolve_tag(repo, ref)

    def _commit_tree(self, repo: str, sha: str) -> Optional[str]:
        """The tree id of commit `sha`, None when the clone has no such commit."""
        key = (repo, sha)
        if key not in self._commits:
            directory = self._dir(repo)
            call = f"git cat-file commit {sha} in {directory}"
            found = self._batch(repo, directory).object(sha, call)
            tree = None
            if found is not None and found[1] == "commit":
                first = found[2].split(b"\n", 1)[0].decode("ascii", "replace")
                if not first.startswith("tree ") or not COMMIT_PATTERN.fullmatch(first[5:]):
                    raise MalformedResponse(call, "the commit object has no tree line", "repair the clone (git fsck)")
                tree = first[5:]
            self._commits[key] = tree
        return self._commits[key]

    def _tree(self, repo: str, sha: str) -> dict[str, str]:
        key = (repo, sha)
        if key not in self._trees:
            directory = self._dir(repo)
            call = f"git cat-file --batch (the tree of {sha}, recursively) in {directory}"
            tree = self._commit_tree(repo, sha) if COMMIT_PATTERN.fullmatch(sha) else None
            if tree is None:
                raise NotFound(call, f"commit {sha} not found in {repo}", "fetch it into the clone or fix the commit")
            self._trees[key] = self._files_under(repo, directory, tree, call)
        return self._trees[key]

    def _files_under(self, repo: str, directory: Path, tree: str, call: str) -> dict[str, str]:
        """Every file (and symlink) of a tree, recursively, as path -> blob id (what `ls-tree -r` lists)."""
        files: dict[str, str] = {}
        stack: list[tuple[str, str, int]] = [(tree, "", 0)]
        batch = self._batch(repo, directory)
        while stack:
            tree_id, prefix, depth = stack.pop()
            found = batch.object(tree_id, call)
            if found is None or found[1] != "tree":
                raise MalformedResponse(call, f"cannot read the tree {prefix or '/'}", "repair the clone (git fsck)")
            for mode, name, object_id in _tree_entries(found[2], call):
                if mode == b"40000":
                    if depth + 1 > MAX_TREE_DEPTH:
                        raise MalformedResponse(call, f"directories nested deeper than {MAX_TREE_DEPTH}", "check the clone")
                    stack.append((object_id, f"{prefix}{name}/", depth + 1))
                elif mode.startswith(b"10") or mode == b"120000":
                    files[prefix + name] = object_id
                if len(files) + len(stack) > MAX_TREE_ENTRIES:
                    raise MalformedResponse(call, f"more than {MAX_TREE_ENTRIES} files", "check the clone")
        return files

    def _tag_refs(self, repo: str, directory: Path) -> dict[str, str]:
        """Every tag ref of the clone (full name -> object id), read once."""
        if repo not in self._tag_lists:
            call = f"git for-each-ref refs/tags/ in {directory}"
            result = self._git(directory, call, "for-each-ref", "--format=%(objectname) %(refname)", "refs/tags/")
            if result.returncode != 0:
                raise MalformedResponse(call, f"cannot list tags ({_first_line(result.stderr)})", "repair the clone (git fsck)")
            refs = {}
            for line in result.stdout.splitlines():
                sha, _, name = line.partition(" ")
                refs[name] = sha
            self._tag_lists[repo] = refs
        return self._tag_lists[repo]

    def _batch(self, repo: str, directory: Path) -> "_CatFileBatch":
        if repo not in self._batches:
            argv = ["git", "--no-replace-objects", "--git-dir", str(_git_dir(directory)), "cat-file", "--batch"]
            self._batches[repo] = _CatFileBatch(argv, self._timeout)
        return self._batches[repo]

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
            # The URL is the clone's data: shown without userinfo and with control characters escaped.
            raise SourceError(call, f"the clone {directory} is a clone of {server_text(shown_url(url), limit=160)}, not of {expected}", fix)

    def _git(self, directory: Path, call: str, *args: str) -> subprocess.CompletedProcess[str]:
        # The shared bounded process reader: a clone with a million tags is refused as its listing passes
        # the bound, never read whole first.
        try:
            done = run_bounded(
                ["git", "--no-replace-objects", "--git-dir", str(_git_dir(directory)), *args],
                MAX_OBJECT_BYTES,
                self._timeout,
                env=git_environment(),
            )
        except FileNotFoundError:
            raise Unreachable(call, "git is not installed", "install git") from None
        except ProcessOutputError as error:
            if error.kind == "deadline":
                raise Unreachable(call, f"git took longer than {self._timeout:g}s", "check the clone and the disk") from None
            raise MalformedResponse(call, f"git {error.what}", "check the clone") from None
        try:
            result = subprocess.CompletedProcess(list(args), done.returncode, done.stdout.decode("utf-8"), done.stderr.decode("utf-8"))
        except UnicodeDecodeError:
            raise MalformedResponse(call, "git printed non-UTF-8 text", "check the file's encoding") from None
        if result.returncode not in (0, 1, 128):
            raise SourceError(call, f"git exited {result.returncode} ({_first_line(result.stderr)})", "check the clone", unreachable=True)
        if result.returncode == 128 and "not a git repository" in result.stderr:
            raise Unreachable(call, f"{directory} is not a git repository", "clone the repository there")
        return result


MAX_OBJECT_BYTES = 8 << 20


class _CatFileBatch:
    """One `git cat-file --batch` process per clone: every object the gate reads from that clone goes
    through it, so a run costs a process per repository instead of one per question. Each answer must
    arrive within `timeout` seconds (a select() deadline on the pipe), or the process is killed."""

    def __init__(self, argv: list[str], timeout: float) -> None:
        self._argv, self._timeout = argv, timeout
        self._process: Optional[subprocess.Popen[bytes]] = None
        self._buffer = bytearray()

    def object(self, name: str, call: str) -> Optional[tuple[str, str, bytes]]:
        """(object id, type, content) of `name`, or None when the clone has no such object."""
        if "\n" in name or not name:
            raise MalformedResponse(call, "an object name with a newline", "fix the ref")
        process = self._start(call)
        deadline = time.monotonic() + self._timeout
        try:
            assert process.stdin is not None
            process.stdin.write(name.encode() + b"\n")
            process.stdin.flush()
            header = self._read_until_newline(process, deadline, call).decode("utf-8", "replace")
            fields = header.split()
            if len(fields) == 2 and fields[1] in ("missing", "ambiguous"):
                return None
            if len(fields) != 3 or not fields[2].isdigit():
                raise MalformedResponse(call, f"git cat-file printed {header[:80]!r}", "check the clone")
            size = int(fields[2])
            if size > MAX_OBJECT_BYTES:
                self.close()
                raise MalformedResponse(
                    call, f"the object is larger than {MAX_OBJECT_BYTES >> 20} MiB", "pin files are small; check the clone"
                )
            content = self._read_exactly(process, size + 1, deadline, call)[:-1]
        except (BrokenPipeError, OSError) as error:
            self.close()
            raise Unreachable(call, f"git cat-file failed ({type(error).__name__})", "check the clone and git") from None
        return fields[0], fields[1], content

    def _start(self, call: str) -> subprocess.Popen[bytes]:
        if self._process is None or self._process.poll() is not None:
            try:
                self._process = subprocess.Popen(
                    self._argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env=git_environment()
                )
            except FileNotFoundError:
                raise Unreachable(call, "git is not installed", "install git") from None
            self._buffer = bytearray()
        return self._process

    def _fill(self, process: subprocess.Popen[bytes], deadline: float, call: str) -> None:
        assert process.stdout is not None
        remaining = deadline - time.monotonic()
        ready, _, _ = select.select([process.stdout], [], [], max(0.0, remaining))
        if not ready:
            self.close()
            raise Unreachable(call, f"git took longer than {self._timeout:g}s", "check the clone and the disk")
        chunk = os.read(process.stdout.fileno(), 65536)
        if not chunk:
            self.close()
            raise Unreachable(call, "git cat-file ended early (is this a git repository?)", "clone the repository there")
        self._buffer += chunk

    def _read_until_newline(self, process: subprocess.Popen[bytes], deadline: float, call: str) -> bytes:
        while b"\n" not in self._buffer:
            self._fill(process, deadline, call)
        line, _, rest = bytes(self._buffer).partition(b"\n")
        self._buffer = bytearray(rest)
        return line

    def _read_exactly(self, process: subprocess.Popen[bytes], size: int, deadline: float, call: str) -> bytes:
        while len(self._buffer) < size:
            self._fill(process, deadline, call)
        data = bytes(self._buffer[:size])
        del self._buffer[:size]
        return data

    def close(self) -> None:
        if self._process is not None:
            self._process.kill()
            self._process.wait()
            for pipe in (self._process.stdin, self._process.stdout):
                if pipe is not None:
                    pipe.close()
            self._process = None

    def __del__(self) -> None:
        try:
            self.close()
        except Exception:  # at interpreter shutdown; the process ends with our stdin anyway
            pass


MAX_TREE_DEPTH = 64
MAX_TREE_ENTRIES = 100_000


def _tree_entries(data: bytes, call: str) -> list[tuple[bytes, str, str]]:
    """(mode, name, object id) of each entry of a raw tree object: `<mode> <name>\\0<20-byte id>`..."""
    entries, position = [], 0
    while position < len(data):
        space = data.find(b" ", position)
        nul = data.find(b"\0", space + 1)
        if space < 0 or nul < 0 or nul + 21 > len(data):
            raise MalformedResponse(call, "a malformed tree object", "repair the clone (git fsck)")
        entries.append((data[position:space], data[space + 1 : nul].decode("utf-8", "replace"), data[nul + 1 : nul + 21].hex()))
        position = nul + 21
    return entries


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
    return server_text((text.strip().splitlines() or ["no output"])[0], limit=200)
