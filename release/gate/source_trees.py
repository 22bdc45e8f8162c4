"""Source trees on disk: one repository at one commit, written into a directory for the profile-facts
probe to run, and proved to be exactly that commit's tree.

Two ways to get a tree, one interface (`materialise(repo, commit, destination, deadline)`):

- `GitTrees`: `git archive` from a local clone (`--source git --git-root DIR`; no network);
- `GitHubTrees`: the tarball endpoint `GET /repos/{owner}/{repo}/tarball/{commit}` (redirects followed
  within bounds; the token is sent to the API's own host only, never to the host a redirect names).

Either way the archive is data: `extract_tar` writes regular files and directories only (symlinks only
when they stay inside the tree; no absolute paths, no `..`, no hard links or devices), within a member
count and a byte bound. Then `verify_tree` checks every file against the commit's tree listing (path ->
git blob id, from `git ls-tree` or the GitHub trees API): `git archive` applies `export-ignore` and
`export-subst` attributes, so an archive can differ from the tree the platform's image is built from,
and a tree that differs is refused rather than run. Every failure is `TreeError` naming the step.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import hashlib
import io
import os
import posixpath
import shutil
import stat
import tarfile
import time
import urllib.parse
from pathlib import Path
from typing import Mapping, Optional, Protocol

import httpx

from release.config import COMMIT_PATTERN
from release.control_chars import escape_controls
from release.local_files import ProcessOutputError, run_bounded

MAX_ARCHIVE_BYTES = 128 * 1024 * 1024  # compressed or not, as received
MAX_TREE_BYTES = 512 * 1024 * 1024  # the files written
MAX_MEMBERS = 50_000
MAX_REDIRECTS = 3
GIT_ENV = {"GIT_TERMINAL_PROMPT": "0", "GIT_CONFIG_NOSYSTEM": "1", "GIT_CONFIG_GLOBAL": os.devnull, "GIT_NO_REPLACE_OBJECTS": "1"}


class TreeError(Exception):
    def __init__(self, step: str, reason: str) -> None:
        self.step, self.reason = step, escape_controls(reason)
        super().__init__(f"{step}: {self.reason}")


class TreeMaterialiser(Protocol):
    def materialise(self, repo: str, commit: str, destination: Path, deadline: float) -> None:
        """Write `repo` at `commit` into the empty directory `destination`, or raise TreeError."""
        ...


# -- safe extraction and verification ------------------------------------------------------------------


def _member_path(name: str, strip: int, step: str) -> Optional[str]:
    if name.startswith("/") or "\\" in name or "\0" in name:
        raise TreeError(step, f"archive member {name[:120]!r} is not a relative POSIX path")
    parts = [part for part in name.split("/") if part not in ("", ".")]
    if ".." in parts:
        raise TreeError(step, f"archive member {name[:120]!r} leaves the tree")
    if len(parts) <= strip:
        return None  # the top directory of a GitHub tarball
    return "/".join(parts[strip:])


def extract_tar(data: bytes, destination: Path, *, strip: int = 0, step: str = "extract the archive") -> None:
    """Write the archive's files under `destination` (created empty), within the bounds above."""
    destination.mkdir(parents=True, exist_ok=False)
    root = destination.resolve()
    written = 0
    try:
        archive = tarfile.open(fileobj=io.BytesIO(data), mode="r:*")
    except (tarfile.TarError, OSError, EOFError) as error:
        raise TreeError(step, f"not a tar archive ({type(error).__name__})") from None
    with archive:
        links: list[tuple[Path, str, str]] = []
        for count, member in enumerate(_members(archive, step), start=1):
            if count > MAX_MEMBERS:
                raise TreeError(step, f"more than {MAX_MEMBERS} members")
            relative = _member_path(member.name, strip, step)
            if relative is None:
                continue
            target = root / relative
            if member.isdir():
                target.mkdir(parents=True, exist_ok=True)
            elif member.isreg():
                written += member.size
                if written > MAX_TREE_BYTES:
                    raise TreeError(step, f"the files add up to more than {MAX_TREE_BYTES} bytes")
                source = archive.extractfile(member)
                if source is None:
                    raise TreeError(step, f"archive member {relative!r} has no content")
                target.parent.mkdir(parents=True, exist_ok=True)
                if target.is_symlink() or target.exists():
                    raise TreeError(step, f"archive member {relative!r} appears twice")
                with source, open(target, "xb") as out:
                    shutil.copyfileobj(source, out)
                os.chmod(target, 0o755 if member.mode & stat.S_IXUSR else 0o644)
            elif member.issym():
                links.append((target, member.linkname, relative))
            else:
                raise TreeError(step, f"archive member {relative!r} is a {_kind(member)}, not a file or directory")
        for target, link, relative in links:
            resolved = posixpath.normpath(posixpath.join(posixpath.dirname(relative), link))
            if link.startswith("/") or resolved == ".." or resolved.startswith("../"):
                raise TreeError(step, f"symlink {relative!r} points outside the tree")
            target.parent.mkdir(parents=True, exist_ok=True)
            os.symlink(link, target)


def _members(archive: tarfile.TarFile, step: str) -> list[tarfile.TarInfo]:
    """The members, stopping before reading past the bounds (a declared size is checked before the
    archive is read past that member, so a compressed bomb is refused, not decompressed)."""
    members = []
    declared = 0
    try:
        for member in archive:
            members.append(member)
            declared += max(member.size, 0)
            if len(members) > MAX_MEMBERS or declared > MAX_TREE_BYTES:
                break
    except (tarfile.TarError, OSError, EOFError, ValueError) as error:
        raise TreeError(step, f"the archive is damaged ({type(error).__name__})") from None
    return members


def _kind(member: tarfile.TarInfo) -> str:
    if member.islnk():
        return "hard link"
    if member.ischr() or member.isblk():
        return "device"
    if member.isfifo():
        return "FIFO"
    return "special member"


def git_blob_id(data: bytes) -> str:
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


def verify_tree(destination: Path, listing: Mapping[str, str], step: str = "verify the tree") -> None:
    """Every file (and symlink) written is in `listing` (path -> blob id) with that id, and every listed
    file was written: the directory is exactly the commit's tree."""
    found: dict[str, str] = {}
    for directory, subdirectories, files in os.walk(destination):
        for name in [*files, *(d for d in subdirectories if os.path.islink(os.path.join(directory, d)))]:
            path = os.path.join(directory, name)
            relative = os.path.relpath(path, destination).replace(os.sep, "/")
            data = os.readlink(path).encode() if os.path.islink(path) else Path(path).read_bytes()
            found[relative] = git_blob_id(data)
    missing = sorted(set(listing) - set(found))
    extra = sorted(set(found) - set(listing))
    changed = sorted(path for path in set(found) & set(listing) if found[path] != listing[path])
    for what, paths in (("missing from the archive", missing), ("not in the commit's tree", extra), ("not as committed", changed)):
        if paths:
            shown = ", ".join(paths[:5]) + (f" and {len(paths) - 5} more" if len(paths) > 5 else "")
            raise TreeError(step, f"{len(paths)} file(s) {what}: {shown} (export-ignore/export-subst or a tampered archive)")


# -- git --------------------------------------------------------------------------------------------------


class GitTrees:
    """Trees from local clones, `<root>/<repo>[.git]` (the same clones `GitSource` reads and checks)."""

    def __init__(self, clone_of: "CloneLookup", timeout: float = 60.0) -> None:
        self._clone_of, self._timeout = clone_of, timeout

    def materialise(self, repo: str, commit: str, destination: Path, deadline: float) -> None:
        _check_commit(commit)
        git_dir = self._clone_of(repo)
        step = f"git archive {repo}@{commit[:7]}"
        data = _git(git_dir, step, deadline, "archive", "--format=tar", commit)
        extract_tar(data, destination, step=step)
        verify_tree(destination, _git_listing(git_dir, commit, deadline), step=f"verify {repo}@{commit[:7]}")


class CloneLookup(Protocol):
    def __call__(self, repo: str) -> Path: ...


def _git(git_dir: Path, step: str, deadline: float, *args: str) -> bytes:
    left = deadline - time.monotonic()
    if left <= 0:
        raise TreeError(step, "not started: the deadline had passed")
    env = {**{k: v for k, v in os.environ.items() if not k.startswith("GIT_")}, **GIT_ENV}
    try:
        # The shared bounded process reader: the archive is refused as it passes the bound, never held whole first.
        done = run_bounded(["git", "--no-replace-objects", "--git-dir", str(git_dir), *args], MAX_ARCHIVE_BYTES, left, env=env)
    except ProcessOutputError as error:
        raise TreeError(step, "git did not finish before the deadline" if error.kind == "deadline" else error.what) from None
    except OSError as error:
        raise TreeError(step, f"could not run git ({error.strerror or error})") from None
    if done.returncode != 0:
        raise TreeError(step, f"git exited {done.returncode}: {done.stderr.decode('utf-8', 'replace').strip()[:300]}")
    return done.stdout


def _git_listing(git_dir: Path, commit: str, deadline: float) -> dict[str, str]:
    """path -> blob id of every file and symlink of the commit's tree (submodules are not in archives)."""
    data = _git(git_dir, f"git ls-tree {commit[:7]}", deadline, "ls-tree", "-r", "-z", "--full-tree", commit)
    listing = {}
    for entry in data.split(b"\0"):
        if not entry:
            continue
        meta, _, path = entry.partition(b"\t")
        mode, kind, sha = meta.decode().split()
        if kind == "blob":
            listing[path.decode("utf-8", "surrogateescape")] = sha
    return listing


def _check_commit(commit: str) -> None:
    if not COMMIT_PATTERN.fullmatch(commit):
        raise TreeError("materialise a tree", f"{commit[:60]!r} is not a full commit id")


# -- GitHub -----------------------------------------------------------------------------------------------


class Listing(Protocol):
    def __call__(self, repo: str, commit: str) -> Mapping[str, str]: ...


class GitHubTrees:
    """Trees from GitHub's tarball endpoint, verified against the commit's tree listing (`listing`, the
    gate's own source answers the trees API)."""

    def __init__(self, api_url: str, owner: str, token: Optional[str], listing: Listing) -> None:
        self._api, self._owner, self._token, self._listing = api_url.rstrip("/"), owner, token, listing

    def materialise(self, repo: str, commit: str, destination: Path, deadline: float) -> None:
        _check_commit(commit)
        step = f"download {self._owner}/{repo}@{commit[:7]}"
        data = fetch_tarball(f"{self._api}/repos/{self._owner}/{repo}/tarball/{commit}", self._token, deadline, step)
        extract_tar(data, destination, strip=1, step=step)
        verify_tree(destination, self._listing(repo, commit), step=f"verify {repo}@{commit[:7]}")


def fetch_tarball(url: str, token: Optional[str], deadline: float, step: str) -> bytes:
    """The body at `url` after at most MAX_REDIRECTS redirects, within `deadline` and MAX_ARCHIVE_BYTES.
    Blocking; `fetch_tarball_async` is the same for a caller that has an event loop. Runs on a private
    event loop (never the thread's current one, which `asyncio.run` would unset for the Pulumi runtime)."""

    def on_private_loop() -> bytes:
        loop = asyncio.new_event_loop()
        try:
            return loop.run_until_complete(fetch_tarball_async(url, token, deadline, step))
        finally:
            loop.close()

    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return on_private_loop()
    with concurrent.futures.ThreadPoolExecutor(max_workers=1) as worker:
        return worker.submit(on_private_loop).result()


async def fetch_tarball_async(url: str, token: Optional[str], deadline: float, step: str) -> bytes:
    left = deadline - time.monotonic()
    if left <= 0:
        raise TreeError(step, "not started: the deadline had passed")
    try:
        return await asyncio.wait_for(_download(url, token, step), timeout=left)
    except asyncio.TimeoutError:
        raise TreeError(step, "did not finish before the deadline") from None
    except httpx.HTTPError as error:
        raise TreeError(step, f"{type(error).__name__}: {str(error)[:200]}") from None


async def _download(url: str, token: Optional[str], step: str) -> bytes:
    origin = urllib.parse.urlsplit(url)
    async with httpx.AsyncClient(follow_redirects=False, trust_env=False, timeout=httpx.Timeout(30.0)) as client:
        for _ in range(MAX_REDIRECTS + 1):
            here = urllib.parse.urlsplit(url)
            same_host = (here.scheme, here.hostname, here.port) == (origin.scheme, origin.hostname, origin.port)
            headers = {"Accept": "application/vnd.github+json", "User-Agent": "us-equity-cutover"}
            if token and same_host:
                headers["Authorization"] = f"Bearer {token}"
            async with client.stream("GET", url, headers=headers) as response:
                if response.status_code in (301, 302, 303, 307, 308):
                    url = _redirect_target(url, response.headers.get("location", ""), step)
                    continue
                if response.status_code != 200:
                    raise TreeError(step, f"HTTP {response.status_code}")
                declared = response.headers.get("content-length")
                if declared is not None and declared.isdigit() and int(declared) > MAX_ARCHIVE_BYTES:
                    raise TreeError(step, f"the archive is larger than {MAX_ARCHIVE_BYTES} bytes")
                body = bytearray()
                async for chunk in response.aiter_raw():
                    body += chunk
                    if len(body) > MAX_ARCHIVE_BYTES:
                        raise TreeError(step, f"the archive is larger than {MAX_ARCHIVE_BYTES} bytes")
                return bytes(body)
    raise TreeError(step, f"more than {MAX_REDIRECTS} redirects")


def _redirect_target(current: str, location: str, step: str) -> str:
    target = urllib.parse.urljoin(current, location)
    parts = urllib.parse.urlsplit(target)
    loopback = parts.hostname in ("127.0.0.1", "localhost", "::1")
    if parts.scheme != "https" and not (parts.scheme == "http" and loopback):
        raise TreeError(step, "a redirect to a non-https URL")
    if parts.username or parts.password:
        raise TreeError(step, "a redirect to a URL with credentials")
    return target
