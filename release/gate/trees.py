"""A commit's whole tree, as an immutable fact: every file's path, mode, git blob id and bytes.

Both sources fetch a tree the same way: the commit's listing (path -> mode and blob id: GitHub's trees
API or `git ls-tree`) and an archive of the commit (GitHub's tarball or `git archive`), and
`tree_from_archive` takes the archive only when it is exactly the listed tree: every file present once,
hashing to its listed blob id, nothing else. An archive is data: decompressed within a bound, a member
count and a byte bound checked before anything is kept, no link or device followed (a symlink is a file
whose content is its target, as git stores it). `git archive` applies `export-ignore`/`export-subst`
attributes, so a repository that uses them gives an archive that is not its tree: refused, never guessed.

`Tree` is what the checks read (install files, bundles, profile facts) and what the profile-facts
probe runs from (`write_to`), so a fact and the code that runs are read from the same bytes.
"""

from __future__ import annotations

import hashlib
import io
import os
import posixpath
import tarfile
import zlib
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import Iterator, Mapping, Optional

MAX_ARCHIVE_BYTES = 64 << 20  # as received (compressed or not); today's largest repository is < 1 MiB compressed
MAX_TREE_BYTES = 64 << 20  # the files, uncompressed (today's largest tree is ~4 MB)
MAX_TREE_FILES = 20_000
MAX_TEXT_BYTES = 4 << 20  # a file read as text (an install file, a bundle, a module)

SYMLINK_MODE = "120000"
Listing = Mapping[str, tuple[str, str]]
"""path -> (git mode, blob id) of every file and symlink of a commit's tree (submodules are not files)."""


class TreeError(ValueError):
    """An archive or listing that is not the commit's tree; the message says what differs."""


def git_blob_id(data: bytes) -> str:
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


@dataclass(frozen=True)
class TreeFile:
    mode: str
    blob: str
    data: bytes


@dataclass(frozen=True)
class Tree:
    """`repo` at `commit`: every file, verified."""

    repo: str
    commit: str
    files: Mapping[str, TreeFile]

    @property
    def label(self) -> str:
        return f"{self.repo}@{self.commit[:7]}"

    def has(self, path: str) -> bool:
        return path in self.files

    def blob(self, path: str) -> Optional[str]:
        found = self.files.get(path)
        return None if found is None else found.blob

    def text(self, path: str) -> Optional[str]:
        """The file as UTF-8 text; None when the tree has no such file; TreeError when it is not text."""
        found = self.files.get(path)
        if found is None:
            return None
        if found.mode == SYMLINK_MODE:
            raise TreeError(f"{path} at {self.label} is a symlink, not a file")
        if len(found.data) > MAX_TEXT_BYTES:
            raise TreeError(f"{path} at {self.label} is larger than {MAX_TEXT_BYTES >> 20} MiB")
        try:
            return found.data.decode("utf-8")
        except UnicodeDecodeError as error:
            raise TreeError(f"{path} at {self.label} is not UTF-8 text (byte {error.start})") from None

    def write_to(self, destination: Path) -> None:
        """Write the tree into the empty (or new) directory `destination`: files with their modes, and
        symlinks whose targets stay inside the tree (checked when the archive was read)."""
        root = destination.resolve()
        root.mkdir(parents=True, exist_ok=True)
        for path, entry in sorted(self.files.items()):
            target = root.joinpath(*path.split("/"))
            target.parent.mkdir(parents=True, exist_ok=True)
            if entry.mode == SYMLINK_MODE:
                os.symlink(entry.data.decode("utf-8", "surrogateescape"), target)
                continue
            with open(target, "xb") as out:
                out.write(entry.data)
            os.chmod(target, 0o755 if entry.mode == "100755" else 0o644)


def _decompressed(data: bytes) -> bytes:
    """A gzip archive's tar bytes (or a plain tar as it is), refusing more than MAX_TREE_BYTES (a bomb)."""
    if not data.startswith(b"\x1f\x8b"):
        return data
    inflater = zlib.decompressobj(16 + zlib.MAX_WBITS)
    try:
        # headers and padding count too: allow a little over the files' own bound
        out = inflater.decompress(data, MAX_TREE_BYTES + (MAX_TREE_FILES << 10))
    except zlib.error as error:
        raise TreeError(f"the archive is not valid gzip ({error})") from None
    if inflater.unconsumed_tail:
        raise TreeError(f"the archive inflates to more than {MAX_TREE_BYTES >> 20} MiB")
    return out


def _path(name: str, strip: int) -> Optional[str]:
    """The member's path in the tree (GitHub's tarball puts everything under one top directory)."""
    if name.startswith("/") or "\0" in name:
        raise TreeError(f"archive member {name[:120]!r} is not a relative path")
    parts = [part for part in name.split("/") if part not in ("", ".")]
    if ".." in parts:
        raise TreeError(f"archive member {name[:120]!r} leaves the tree")
    return "/".join(parts[strip:]) if len(parts) > strip else None


def _members(archive: tarfile.TarFile) -> Iterator[tarfile.TarInfo]:
    count = declared = 0
    try:
        for member in archive:
            count += 1
            declared += max(member.size, 0)
            if count > MAX_TREE_FILES * 2 or declared > MAX_TREE_BYTES:
                raise TreeError(f"the archive holds more than {MAX_TREE_FILES} files or {MAX_TREE_BYTES >> 20} MiB")
            yield member
    except (tarfile.TarError, EOFError, OSError) as error:
        raise TreeError(f"the archive is damaged ({type(error).__name__})") from None


def tree_from_archive(repo: str, commit: str, archive: bytes, listing: Listing, strip: int) -> Tree:
    """The tree `listing` describes, with contents from `archive`; TreeError unless they are the same
    files, byte for byte (blob ids), modes aside from the executable bit that the listing decides."""
    if len(archive) > MAX_ARCHIVE_BYTES:
        raise TreeError(f"the archive is larger than {MAX_ARCHIVE_BYTES >> 20} MiB")
    if len(listing) > MAX_TREE_FILES:
        raise TreeError(f"the tree lists more than {MAX_TREE_FILES} files")
    files: dict[str, TreeFile] = {}
    try:
        opened = tarfile.open(fileobj=io.BytesIO(_decompressed(archive)), mode="r:")
    except (tarfile.TarError, EOFError, OSError) as error:
        raise TreeError(f"the archive is not a tar archive ({type(error).__name__})") from None
    with opened:
        for member in _members(opened):
            path = _path(member.name, strip)
            if path is None or member.isdir():
                continue
            if member.issym():
                data = member.linkname.encode("utf-8", "surrogateescape")
                resolved = posixpath.normpath(posixpath.join(posixpath.dirname(path), member.linkname))
                if member.linkname.startswith("/") or resolved == ".." or resolved.startswith("../"):
                    raise TreeError(f"symlink {path} points outside the tree")
            elif member.isreg():
                extracted = opened.extractfile(member)
                data = b"" if extracted is None else extracted.read(member.size + 1)
                if len(data) != member.size:
                    raise TreeError(f"archive member {path} is shorter or longer than its header says")
            else:
                raise TreeError(f"archive member {path} is a link or device, which no commit's tree holds")
            if path in files:
                raise TreeError(f"archive member {path} appears twice")
            listed = listing.get(path)
            if listed is None:
                raise TreeError(f"the archive has {path}, which the commit's tree does not list")
            mode, blob = listed
            if git_blob_id(data) != blob or (mode == SYMLINK_MODE) != member.issym():
                raise TreeError(f"{path} in the archive is not the file the commit's tree lists (export-subst, or another commit)")
            files[path] = TreeFile(mode, blob, data)
    missing = sorted(set(listing) - set(files))
    if missing:
        shown = ", ".join(missing[:5]) + (f" and {len(missing) - 5} more" if len(missing) > 5 else "")
        raise TreeError(f"{len(missing)} listed file(s) missing from the archive: {shown} (export-ignore?)")
    return Tree(repo, commit, MappingProxyType(files))


def checked_listing(entries: Mapping[str, tuple[str, str]]) -> Listing:
    """A listing's files and symlinks (what an archive holds; submodules are not), read-only."""
    return MappingProxyType({path: entry for path, entry in entries.items() if entry[0] == SYMLINK_MODE or entry[0].startswith("100")})
