"""The files an operator points the CLI or the program at: the stack file, `--live` JSON, the lock, `--record`.

Every one is read through `read_text`, so the same limits hold everywhere (the README's reliability
section lists them): only regular files (a FIFO would block forever, `/dev/zero` would read until memory
runs out), a size bound per kind of file, strict UTF-8, and bounded nesting once parsed. A file that breaks
a limit is an `InputFileError` naming the file, which every caller turns into its own bad-input error.
"""

from __future__ import annotations

import errno
import json
import os
import stat
from pathlib import Path
from typing import Any, Optional

import yaml

KIB = 1024
MIB = 1024 * KIB
# A stack file or a lock is a few KiB; a gcloud describe of one service ~10 KiB. The bounds leave two
# orders of magnitude of room and still refuse a runaway file before it is parsed.
STACK_FILE_MAX_BYTES = 1 * MIB
LOCK_MAX_BYTES = 1 * MIB
LIVE_FILE_MAX_BYTES = 4 * MIB
RECORD_MAX_BYTES = 16 * MIB
# Stack config nests ~5 levels and a describe ~10; anything deeper is not one of them, and the recursive
# walks that follow parsing (duplicate keys, pydantic) must never meet Python's recursion limit.
MAX_NESTING = 64
MAX_LIVE_FILES = 256


class InputFileError(ValueError):
    """A file that cannot be used as input: what is wrong, where, and how to fix it."""

    def __init__(self, what: str, where: str, fix: str) -> None:
        self.what, self.where, self.fix = what, where, fix
        super().__init__(f"{where}: {what}; {fix}")


def size_text(size: int) -> str:
    return f"{size // MIB} MiB" if size % MIB == 0 else f"{size // KIB} KiB"


def _kind(mode: int) -> str:
    if stat.S_ISDIR(mode):
        return "a directory"
    if stat.S_ISFIFO(mode):
        return "a FIFO"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "a device"
    if stat.S_ISSOCK(mode):
        return "a socket"
    return "not a regular file"


def _regular(fd: int, path: Path, fix: str) -> os.stat_result:
    status = os.fstat(fd)
    if not stat.S_ISREG(status.st_mode):
        raise InputFileError(f"is {_kind(status.st_mode)}, not a regular file", str(path), fix)
    return status


def read_text(path: Path, max_bytes: int, fix: str) -> str:
    """A regular file's text, at most `max_bytes`, strict UTF-8. FileNotFoundError passes through (a
    missing lock is not an error); every other failure is an InputFileError naming the file."""
    where = str(path)
    try:
        # O_NONBLOCK: opening a FIFO must not wait for a writer before the type check can refuse it.
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    except FileNotFoundError:
        raise
    except OSError as error:
        raise InputFileError(f"cannot be read ({error.strerror})", where, fix) from None
    try:
        status = _regular(fd, path, fix)
        too_big = InputFileError(f"is larger than {size_text(max_bytes)}, the bound for this file", where, fix)
        if status.st_size > max_bytes:
            raise too_big
        chunks, total = [], 0
        # Read at most one byte past the bound: a file growing while read is refused, not read forever.
        while total <= max_bytes:
            chunk = os.read(fd, min(MIB, max_bytes + 1 - total))
            if not chunk:
                break
            chunks.append(chunk)
            total += len(chunk)
        if total > max_bytes:
            raise too_big
    except OSError as error:
        raise InputFileError(f"cannot be read ({error.strerror})", where, fix) from None
    finally:
        os.close(fd)
    data = b"".join(chunks)
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as error:
        raise InputFileError(f"is not UTF-8 text (invalid byte at offset {error.start})", where, fix) from None


def append_text(path: Path, text: str, fix: str) -> None:
    """Append to a regular file (created when missing); a FIFO or device is refused, never waited on."""
    flags = os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0)
    try:
        fd = os.open(path, flags, 0o644)
    except OSError as error:
        # ENXIO: a FIFO with no reader (opening one to write without O_NONBLOCK would block).
        what = "is a FIFO, not a regular file" if error.errno == errno.ENXIO else f"cannot be written ({error.strerror})"
        raise InputFileError(what, str(path), fix) from None
    try:
        _regular(fd, path, fix)
        data = text.encode("utf-8")
        while data:
            written = os.write(fd, data)
            data = data[written:]
    except OSError as error:
        raise InputFileError(f"cannot be written ({error.strerror})", str(path), fix) from None
    finally:
        os.close(fd)


def json_files(directory: Path, limit: int = MAX_LIVE_FILES) -> list[Path]:
    """The *.json entries of an input directory, sorted; listing stops past `limit` (each file is read whole,
    so a directory of millions is refused rather than listed). Empty means none."""
    files = []
    with os.scandir(directory) as entries:
        for entry in entries:
            if entry.name.endswith(".json"):
                files.append(directory / entry.name)
                if len(files) > limit:
                    raise InputFileError(f"holds more than {limit} *.json files", str(directory), "keep one JSON document per service")
    return sorted(files)


def input_files(path: Path, fix_empty: str, fix_missing: str, limit: int = MAX_LIVE_FILES) -> list[Path]:
    """What an input option names: the file itself, or the *.json files of a directory (listing capped)."""
    if path.is_dir():
        files = json_files(path, limit)
        if not files:
            raise InputFileError("holds no *.json files", str(path), fix_empty)
        return files
    if path.exists():
        return [path]
    raise InputFileError("does not exist", str(path), fix_missing)


def json_items(document: Any, file: Path) -> list[tuple[Any, str]]:
    """The documents one JSON file holds (one, or a list of them), each with where it stands (`file[2]`)."""
    if isinstance(document, list):
        return [(item, f"{file}[{index}]") for index, item in enumerate(document)]
    return [(document, str(file))]


def nesting_depth(value: Any, limit: int = MAX_NESTING) -> int:
    """How deep lists and maps nest in parsed data, counted without recursion; stops past `limit`."""
    deepest = 0
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict):
            children: Any = item.values()
        elif isinstance(item, list):
            children = item
        else:
            continue
        deepest = max(deepest, depth)
        if deepest > limit:
            return deepest
        stack.extend((child, depth + 1) for child in children)
    return deepest


def load_json(text: str, where: str, fix: str, object_pairs_hook: Optional[Any] = None) -> Any:
    """Parse JSON with the nesting bound; InputFileError (naming `where`) for invalid or too-deep JSON."""
    too_deep = InputFileError(f"nests deeper than {MAX_NESTING} levels", where, fix)
    try:
        value = json.loads(text, object_pairs_hook=object_pairs_hook)
    except RecursionError:
        raise too_deep from None
    except ValueError as error:
        if not isinstance(error, json.JSONDecodeError):
            raise
        raise InputFileError(f"is not valid JSON ({error.msg} at line {error.lineno} column {error.colno})", where, fix) from None
    if nesting_depth(value) > MAX_NESTING:
        raise too_deep
    return value


def check_yaml_shape(text: str, where: str, fix: str) -> None:
    """Refuse YAML aliases and deep nesting before anything composes the document.

    An alias is a pointer: a few lines of `&a [*b, *b, ...]` expand to billions of nodes (an alias bomb)
    and a self-reference never ends, so stack files may not use them at all; a stack file never needs one.
    The check reads parser events, which never recurse and never expand an alias.
    """
    depth = 0
    try:
        for event in yaml.parse(text, Loader=yaml.SafeLoader):
            if isinstance(event, yaml.AliasEvent):
                line = event.start_mark.line + 1 if event.start_mark else "?"
                raise InputFileError(
                    f"uses a YAML alias (*{event.anchor}) at line {line}; aliases and merge keys are not allowed",
                    where,
                    "write the value out in full",
                )
            if isinstance(event, (yaml.MappingStartEvent, yaml.SequenceStartEvent)):
                depth += 1
                if depth > MAX_NESTING:
                    raise InputFileError(f"nests deeper than {MAX_NESTING} levels", where, fix)
            elif isinstance(event, (yaml.MappingEndEvent, yaml.SequenceEndEvent)):
                depth -= 1
    except yaml.YAMLError as error:
        # Reported with the same words as the loader's own parse error would be.
        raise InputFileError(f"is not valid YAML: {error}", where, fix) from None
