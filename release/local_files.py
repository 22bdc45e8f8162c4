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
import re
import selectors
import signal
import stat
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, Optional, Sequence

import yaml

KIB = 1024
MIB = 1024 * KIB
# A stack file or a lock is a few KiB; a gcloud describe of one service ~10 KiB. The bounds leave two
# orders of magnitude of room and still refuse a runaway file before it is parsed.
STACK_FILE_MAX_BYTES = 1 * MIB
LOCK_MAX_BYTES = 1 * MIB
LIVE_FILE_MAX_BYTES = 4 * MIB
RECORD_MAX_BYTES = 16 * MIB
# `plan --format json` of a few hundred services (verify --plan reads it back).
PLAN_MAX_BYTES = 16 * MIB
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
        data = read_bounded(fd, max_bytes)
        if data is None:
            raise too_big
    except OSError as error:
        raise InputFileError(f"cannot be read ({error.strerror})", where, fix) from None
    finally:
        os.close(fd)
    return decode_utf8(data, where, fix)


def read_bounded(fd: int, max_bytes: int) -> Optional[bytes]:
    """Everything `fd` holds, or None once it holds more than `max_bytes`: at most one byte past the bound
    is ever read, so a file growing while read (or `/dev/zero`) is refused, not read forever."""
    chunks: list[bytes] = []
    total = 0
    while total <= max_bytes:
        chunk = os.read(fd, min(MIB, max_bytes + 1 - total))
        if not chunk:
            return b"".join(chunks)
        chunks.append(chunk)
        total += len(chunk)
    return None


def decode_utf8(data: bytes, where: str, fix: str, what: str = "is not UTF-8 text") -> str:
    """Strict UTF-8; InputFileError naming the offset of the first bad byte (never the bytes)."""
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as error:
        raise InputFileError(f"{what} (invalid byte at offset {error.start})", where, fix) from None


# What a process may print on stderr before it is stopped: enough for any error message, never a flood.
STDERR_MAX_BYTES = 64 * KIB


@dataclass(frozen=True)
class ProcessOutput:
    """A finished process: exit code and its output as bytes (decode with `decode_utf8`)."""

    returncode: int
    stdout: bytes
    stderr: bytes


class ProcessOutputError(Exception):
    """A process stopped for breaking a bound: `kind` says which (`deadline`, `stdout`, `stderr`), `what`
    says it in words; `stderr` is what it printed there (at most the kept tail)."""

    def __init__(self, kind: str, what: str, stderr: bytes = b"") -> None:
        self.kind, self.what, self.stderr = kind, what, stderr
        super().__init__(what)


def run_bounded(
    command: Sequence[str],
    max_bytes: int,
    timeout: float,
    env: Optional[Mapping[str, str]] = None,
    stderr_max_bytes: int = STDERR_MAX_BYTES,
    cwd: Optional[Path] = None,
    stderr_keep: Optional[int] = None,
) -> ProcessOutput:
    """Run `command` with no stdin and read its output under the same bounds as a file: at most
    `max_bytes` of stdout and `stderr_max_bytes` of stderr (of which the last `stderr_keep` bytes are
    kept, all of it by default), all within one total deadline of `timeout` seconds. A process that
    prints more, or runs longer, is killed with its process group and a ProcessOutputError says which
    bound it broke: an endless printer never reaches memory. OSError from starting it passes through
    (FileNotFoundError: the program is not installed)."""
    deadline = time.monotonic() + timeout
    process = subprocess.Popen(
        list(command), stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        env=None if env is None else dict(env), cwd=cwd, start_new_session=True,
    )  # fmt: skip
    assert process.stdout is not None and process.stderr is not None
    out_fd, err_fd = process.stdout.fileno(), process.stderr.fileno()
    stdout, stderr = bytearray(), bytearray()
    stderr_total = 0
    keep = stderr_max_bytes if stderr_keep is None else stderr_keep
    broken: Optional[tuple[str, str]] = None
    with selectors.DefaultSelector() as selector:
        selector.register(out_fd, selectors.EVENT_READ)
        selector.register(err_fd, selectors.EVENT_READ)
        while selector.get_map() and broken is None:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                broken = ("deadline", f"timed out after {timeout:g}s")
                break
            for key, _ in selector.select(remaining):
                fd = int(key.fd)
                chunk = os.read(fd, 64 * KIB)
                if not chunk:
                    selector.unregister(fd)
                elif fd == out_fd:
                    stdout += chunk
                    if len(stdout) > max_bytes:
                        broken = ("stdout", f"printed more than {max_bytes} bytes on stdout")
                        break
                else:
                    stderr_total += len(chunk)
                    stderr = (stderr + chunk)[-keep:] if keep else bytearray()
                    if stderr_total > stderr_max_bytes:
                        broken = ("stderr", f"printed more than {stderr_max_bytes} bytes on stderr")
                        break
    if broken is None:
        try:
            process.wait(max(deadline - time.monotonic(), 0.0))
        except subprocess.TimeoutExpired:
            broken = ("deadline", f"timed out after {timeout:g}s")
    if broken is not None:
        _kill_group(process)
    process.stdout.close()
    process.stderr.close()
    if broken is not None:
        raise ProcessOutputError(*broken, bytes(stderr))
    return ProcessOutput(int(process.returncode), bytes(stdout), bytes(stderr))


def _kill_group(process: "subprocess.Popen[bytes]") -> None:
    """Stop the process and anything it started (it runs in its own session), and reap it."""
    try:
        os.killpg(process.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        process.kill()
    process.wait()


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


def write_outputs(files: Sequence[tuple[Path, str]], inputs: Sequence[Path], fix: str) -> None:
    """Write every file or none: each text goes to a temporary file beside its target first, and only when
    all are written are they renamed into place (one rename each). A target that is not a regular file (a
    FIFO would block the write forever, a device would swallow it) or that is one of the `inputs` being
    read (the stack file) is refused before anything is written."""
    targets: list[Path] = []
    for path, _ in files:
        target = Path(os.path.realpath(path))
        where = str(path)
        try:
            status = os.stat(target)
        except FileNotFoundError:
            status = None
        except OSError as error:
            raise InputFileError(f"cannot be written ({error.strerror})", where, fix) from None
        if status is not None and not stat.S_ISREG(status.st_mode):
            raise InputFileError(f"is {_kind(status.st_mode)}, not a regular file", where, fix)
        for source in inputs:
            if target == Path(os.path.realpath(source)):
                raise InputFileError(f"is {source}, which this command reads", where, "write the output to another file")
        if target in targets:
            raise InputFileError("is named for two outputs", where, fix)
        targets.append(target)
    written: list[tuple[str, Path]] = []
    try:
        for target, (path, text) in zip(targets, files, strict=True):
            try:
                fd, temporary = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
            except OSError as error:
                raise InputFileError(f"cannot be written ({error.strerror})", str(path), fix) from None
            written.append((temporary, target))
            try:
                with os.fdopen(fd, "w", encoding="utf-8") as handle:
                    handle.write(text)
                    handle.flush()
                    os.fsync(handle.fileno())
            except OSError as error:
                raise InputFileError(f"cannot be written ({error.strerror})", str(path), fix) from None
        for temporary, target in written:
            os.replace(temporary, target)
        written = []
    finally:
        for temporary, _ in written:
            try:
                os.unlink(temporary)
            except OSError:
                pass


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


class DuplicateKeyError(ValueError):
    """A JSON object naming the same key twice (the parser would silently keep the last one)."""

    def __init__(self, key: str) -> None:
        self.key = key
        super().__init__(key)


def unique_object(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """`json.loads` hook: an object is a map, so a key given twice is malformed, not "the last one wins"."""
    result: dict[str, Any] = {}
    for key, value in pairs:
        if key in result:
            raise DuplicateKeyError(key)
        result[key] = value
    return result


def load_json(text: str, where: str, fix: str, object_pairs_hook: Optional[Any] = None) -> Any:
    """Parse JSON with the nesting bound and one key per object; InputFileError (naming `where`, never
    quoting the text) for invalid, too-deep or duplicate-key JSON, or a number too long to convert."""
    too_deep = InputFileError(f"nests deeper than {MAX_NESTING} levels", where, fix)
    try:
        value = json.loads(text, object_pairs_hook=object_pairs_hook or unique_object)
    except RecursionError:
        raise too_deep from None
    except DuplicateKeyError as error:
        shown = error.key if SAFE_KEY.fullmatch(error.key) else "a key"
        raise InputFileError(f"names {shown} twice in one object", where, fix) from None
    except json.JSONDecodeError as error:
        raise InputFileError(f"is not valid JSON ({error.msg} at line {error.lineno} column {error.colno})", where, fix) from None
    except ValueError as error:
        if object_pairs_hook is not None and not str(error).startswith("Exceeds the limit"):
            raise  # the caller's own hook speaks for itself
        # Python refuses to convert an integer of thousands of digits; no field of any input is one.
        raise InputFileError(f"holds a number too long to read (over {sys.get_int_max_str_digits()} digits)", where, fix) from None
    if nesting_depth(value) > MAX_NESTING:
        raise too_deep
    return value


# A key that may be named in a message; anything else (a credential, a terminal escape) is "a key".
SAFE_KEY = re.compile(r"[A-Za-z0-9_.:/-]{1,128}")
# Explicit YAML tags a stack file may use: the core schema's own. `!!binary`, `!!timestamp`, `!!set`,
# `!!python/...` and local tags make values the Pulumi CLI reads differently or not at all.
CORE_TAGS = frozenset(
    f"tag:yaml.org,2002:{name}" for name in ("str", "int", "float", "bool", "null", "map", "seq")
)  # fmt: skip
# Characters PyYAML reads as line breaks but YAML 1.2 (the Pulumi CLI) does not: NEL and the Unicode
# line/paragraph separators. The two readers would see different values, so a stack file may not hold them.
YAML_BREAKS = {"\x85": "U+0085", "\u2028": "U+2028", "\u2029": "U+2029"}


def yaml_error_text(error: Exception) -> str:
    """A YAML error as what and where (line, column), without PyYAML's snippet of the offending line:
    that line may hold a credential, and the message reaches logs and pull-request comments."""
    problem = getattr(error, "problem", None) or getattr(error, "context", None) or type(error).__name__
    mark = getattr(error, "problem_mark", None) or getattr(error, "context_mark", None)
    where = f" at line {mark.line + 1} column {mark.column + 1}" if mark is not None else ""
    return f"{problem}{where}"


def check_yaml_shape(text: str, where: str, fix: str) -> None:
    """Refuse what the YAML reader must never meet before anything composes the document.

    An alias is a pointer: a few lines of `&a [*b, *b, ...]` expand to billions of nodes (an alias bomb)
    and a self-reference never ends, so stack files may not use them at all; a stack file never needs one.
    Tags outside the core schema and NEL/LS/PS are refused too (see CORE_TAGS, YAML_BREAKS). The check
    reads parser events, which never recurse and never expand an alias.
    """
    for char, code in YAML_BREAKS.items():
        position = text.find(char)
        if position >= 0:
            raise InputFileError(
                f"holds {code} at line {text.count(chr(10), 0, position) + 1}, which this reader and the Pulumi CLI read differently",
                where,
                "remove it or use a plain newline",
            )
    depth = 0
    try:
        for event in yaml.parse(text, Loader=yaml.SafeLoader):
            line = str(event.start_mark.line + 1) if event.start_mark else "?"
            if isinstance(event, yaml.AliasEvent):
                raise InputFileError(
                    f"uses a YAML alias (*{event.anchor}) at line {line}; aliases and merge keys are not allowed",
                    where,
                    "write the value out in full",
                )
            tag = getattr(event, "tag", None)
            if tag is not None and tag != "!" and tag not in CORE_TAGS:
                short = tag.replace("tag:yaml.org,2002:", "!!", 1)
                shown = short if SAFE_KEY.fullmatch(short.lstrip("!")) else "a tag"
                raise InputFileError(f"uses the YAML tag {shown} at line {line}; only plain values are allowed", where, "remove the tag")
            if isinstance(event, (yaml.MappingStartEvent, yaml.SequenceStartEvent)):
                depth += 1
                if depth > MAX_NESTING:
                    raise InputFileError(f"nests deeper than {MAX_NESTING} levels", where, fix)
            elif isinstance(event, (yaml.MappingEndEvent, yaml.SequenceEndEvent)):
                depth -= 1
    except yaml.YAMLError as error:
        # Reported with the same words as the loader's own parse error would be.
        raise InputFileError(f"is not valid YAML: {yaml_error_text(error)}", where, fix) from None
