"""What a commit installs: every pin of a shared package in every file that can declare one (docs/platform-facts.md
§1 and §8).

Pure: the functions take the text of a commit's files (through a `read` callback over the fetched tree)
and return `Pin`s; fetching is the source's job. Requirement strings go through
`packaging.requirements.Requirement`; only the URL part of a direct reference
(`git+https://github.com/<owner>/<repo>.git@<ref>`) is taken apart, with `urllib.parse`.

The install files of a commit, each read when present:
  requirements.txt          every requirement, and the files it includes (-r/-c, relative, inside the tree)
  pyproject.toml            [project] dependencies and optional-dependencies, [dependency-groups],
                            [tool.uv] override-, constraint- and dev-dependencies, [tool.uv.sources]
  uv.lock                   [[package]] sources (requested ref and resolved commit), the root package's
                            requires-dist/requires-dev, [manifest] overrides and constraints
  qsl.toml                  [qsl.requires] (import name -> ref) and [qsl.compat] bundle
Every file is data: a size bound, strict UTF-8, TOML's own refusal of duplicate keys, nesting bounded,
an include cannot leave the tree, and a malformed file is a `PinFileError` naming it (never a traceback).
"""

from __future__ import annotations

import posixpath
import re
import tomllib
import urllib.parse
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Literal, Optional

from packaging.requirements import InvalidRequirement, Requirement
from packaging.utils import canonicalize_name
from pydantic import BaseModel, ConfigDict

from release.config import COMMIT_PATTERN, release_version
from release.packages import BY_NAME, PACKAGES, QPK_PACKAGE, TRACKED_PACKAGES, UES_PACKAGE

__all__ = ["QPK_PACKAGE", "UES_PACKAGE", "TRACKED_PACKAGES"]

REQUIREMENTS_TXT = "requirements.txt"
PYPROJECT_TOML = "pyproject.toml"
UV_LOCK = "uv.lock"
QSL_TOML = "qsl.toml"
# Every root file that can pin a package, in the order a report lists them.
PIN_FILES = (REQUIREMENTS_TXT, PYPROJECT_TOML, UV_LOCK, QSL_TOML)
OVERRIDES = f"{PYPROJECT_TOML} [tool.uv] override-dependencies"

MAX_INSTALL_FILE_CHARS = 4 << 20  # uv.lock of a platform is ~300 KB today
MAX_INCLUDES = 32  # requirement files one commit may chain with -r/-c
MAX_INCLUDE_DEPTH = 8

GITHUB_HOSTS = frozenset({"github.com", "www.github.com"})
SHORT_SHA_PATTERN = re.compile(r"[0-9a-f]{7,39}")

PinKind = Literal["tag", "sha", "short-sha", "branch", "no-ref", "not-git", "invalid"]
# Kinds a release may carry; everything else is refused by the `pin-refs` check.
RELEASE_KINDS = frozenset({"tag", "sha"})
ReadFile = Callable[[str], Optional[str]]
"""path in the commit's tree -> its text, None when the tree has no such file."""


class Pin(BaseModel):
    """One declaration of a package: where (`file`), pointing at which repository and ref."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    package: str
    file: str  # e.g. "requirements.txt", "pyproject.toml [tool.uv] override-dependencies"
    kind: PinKind
    ref: str = ""  # the tag, sha or branch as written; for "invalid"/"not-git" the requirement text
    owner: Optional[str] = None
    repo: Optional[str] = None
    # uv.lock records the commit it resolved the ref to; a pin whose resolution is known carries it.
    resolved: Optional[str] = None

    @property
    def where(self) -> str:
        return f"{self.owner}/{self.repo}" if self.owner and self.repo else "(no GitHub repository)"

    @property
    def tracked(self) -> bool:
        return self.package in BY_NAME

    def describe(self) -> str:
        """`quant-platform-kit @v0.7.7` as messages write it."""
        if self.kind in ("invalid", "not-git"):
            return f"{self.package} as {self.ref!r}"
        return f"{self.package} @{self.ref}" if self.ref else f"{self.package} (no ref)"

    def is_canonical(self, owner: str, repo: str) -> bool:
        # GitHub owner and repository names are case-insensitive; any other owner is a fork.
        return (self.owner or "").lower() == owner.lower() and (self.repo or "").lower() == repo.lower()


class PinFileError(ValueError):
    """An install file that cannot be read as what its name says (bad TOML, wrong shapes, an include
    outside the tree)."""


@dataclass(frozen=True)
class InstallFiles:
    """What one commit installs, as its files declare it."""

    pins: tuple[Pin, ...] = ()  # every pin of a tracked package, and every git pin of any other package
    files: tuple[str, ...] = ()  # the install files read, includes too
    overridden: frozenset[str] = frozenset()  # packages in [tool.uv] override-dependencies
    bundle: Optional[str] = None  # qsl.toml [qsl.compat] bundle
    bundle_problem: Optional[str] = None  # a [qsl.compat] bundle that is not a string
    notes: tuple[str, ...] = field(default=())

    def of(self, package: str) -> list[Pin]:
        return [pin for pin in self.pins if pin.package == package]


USERINFO = re.compile(r"//[^/@\s]*@")


def without_userinfo(text: str) -> str:
    """A requirement or URL as a pin may quote it: without `user:password@`, which is often a credential."""
    return USERINFO.sub("//", text)


def classify_ref(ref: str) -> PinKind:
    """tag (v<version>), full sha, short sha, or anything else (a branch as far as a release is concerned)."""
    if not ref:
        return "no-ref"
    if COMMIT_PATTERN.fullmatch(ref):
        return "sha"
    if SHORT_SHA_PATTERN.fullmatch(ref):
        return "short-sha"
    try:
        release_version(ref)
    except ValueError:
        return "branch"
    return "tag"


def _github_repo(path: str) -> tuple[Optional[str], Optional[str]]:
    parts = [part for part in path.split("/") if part]
    if len(parts) != 2:
        return None, None
    owner, repo = parts
    return owner, repo[: -len(".git")] if repo.endswith(".git") else repo


def pin_from_url(package: str, url: str, file: str) -> Pin:
    """A pin from the URL of a PEP 508 direct reference: `git+https://github.com/<owner>/<repo>.git@<ref>`."""
    try:
        parts = urllib.parse.urlsplit(url)
    except ValueError:
        return Pin(package=package, file=file, kind="invalid", ref=without_userinfo(url))
    if not parts.scheme.startswith("git+"):
        return Pin(package=package, file=file, kind="not-git", ref=without_userinfo(url))
    path, _, ref = parts.path.rpartition("@") if "@" in parts.path else (parts.path, "", "")
    owner, repo = _repository(parts.hostname, path)
    return Pin(package=package, file=file, kind=classify_ref(ref), ref=ref, owner=owner, repo=repo)


def _repository(hostname: Optional[str], path: str) -> tuple[Optional[str], Optional[str]]:
    return _github_repo(path) if (hostname or "").lower() in GITHUB_HOSTS else (None, None)


def pin_from_requirement(text: str, file: str) -> Optional[Pin]:
    """The pin a requirement string declares: a tracked package in any form, any package from git; None
    for anything else (a PyPI dependency of no concern)."""
    try:
        requirement = Requirement(text)
    except InvalidRequirement:
        # Unparseable text that names a tracked package must not be skipped silently: it fails closed.
        named = _named_package(text)
        return None if named is None else Pin(package=named, file=file, kind="invalid", ref=without_userinfo(text.strip()))
    package = canonicalize_name(requirement.name)
    if requirement.url is None:
        return Pin(package=package, file=file, kind="not-git", ref=without_userinfo(str(requirement))) if package in BY_NAME else None
    pin = pin_from_url(package, requirement.url, file)
    return pin if package in BY_NAME or pin.kind != "not-git" else None


def _named_package(text: str) -> Optional[str]:
    lowered = text.lower().replace("_", "-")
    return next((package for package in TRACKED_PACKAGES if package in lowered), None)


# -- requirements.txt and the files it includes -------------------------------------------------------


def _logical_lines(text: str) -> Iterable[str]:
    """requirements.txt lines with continuations joined and comments removed (pip's own rules)."""
    pending = ""
    for raw in text.splitlines():
        line = raw.rstrip()
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        line, pending = pending + line, ""
        # pip treats ` #` (whitespace then hash) as a comment; a `#` inside a URL fragment is not one.
        line = re.split(r"(?:^|\s)#", line, maxsplit=1)[0].strip()
        if line:
            yield line
    if pending.strip():
        yield pending.strip()


INCLUDE_OPTIONS = {"-r": "-r", "--requirement": "-r", "-c": "-c", "--constraint": "-c"}


def _include(line: str) -> Optional[tuple[str, str]]:
    """(-r or -c, the path) when the line includes another requirements file."""
    option, _, rest = line.partition(" ")
    name, equals, glued = option.partition("=")
    if name in INCLUDE_OPTIONS:
        return INCLUDE_OPTIONS[name], (glued if equals else rest).strip()
    for short in ("-r", "-c"):
        if option.startswith(short) and len(option) > 2 and not option.startswith("--"):
            return short, line[2:].strip()
    return None


def _include_path(current: str, target: str) -> str:
    if not target:
        raise PinFileError(f"{current} has an include without a file")
    if "://" in target or target.startswith(("/", "~")) or "\\" in target:
        raise PinFileError(f"{current} includes {target!r}, which is not a file of the commit; include a relative path")
    resolved = posixpath.normpath(posixpath.join(posixpath.dirname(current), target))
    if resolved == ".." or resolved.startswith("../"):
        raise PinFileError(f"{current} includes {target!r}, which is outside the repository")
    return resolved


def pins_from_requirements_txt(text: str, file: str = REQUIREMENTS_TXT) -> list[Pin]:
    """The pins of one requirements file (its includes are followed by `read_install_files`)."""
    pins = []
    for line in _logical_lines(text):
        if line.startswith("-"):
            # Options (--index-url, ...) pin nothing; `-e <url>` editable installs are not releases.
            if line.startswith(("-e", "--editable")):
                named = _named_package(line)
                if named is not None:
                    pins.append(Pin(package=named, file=file, kind="invalid", ref=without_userinfo(line)))
            continue
        pin = pin_from_requirement(line, file)
        if pin is not None:
            pins.append(pin)
    return pins


def _requirement_files(read: ReadFile, root: str) -> tuple[list[Pin], list[str]]:
    """`root` and every file it includes (-r/-c), breadth first, each once, within the bounds."""
    pins: list[Pin] = []
    seen: list[str] = []
    queue: list[tuple[str, str, int]] = [(root, root, 0)]
    while queue:
        path, label, depth = queue.pop(0)
        if path in seen:
            continue
        if len(seen) >= MAX_INCLUDES:
            raise PinFileError(f"{root} includes more than {MAX_INCLUDES} requirement files")
        text = read(path)
        if text is None:
            if path == root:
                return [], []
            raise PinFileError(f"{label}: the file is not in the commit's tree")
        seen.append(path)
        pins += pins_from_requirements_txt(text, label)
        for line in _logical_lines(text):
            included = _include(line)
            if included is None:
                continue
            if depth + 1 > MAX_INCLUDE_DEPTH:
                raise PinFileError(f"{path} nests includes deeper than {MAX_INCLUDE_DEPTH}")
            target = _include_path(path, included[1])
            queue.append((target, f"{target} ({included[0]} from {path})", depth + 1))
    return pins, seen


# -- TOML files ---------------------------------------------------------------------------------------


def load_toml(text: str, file: str) -> dict[str, Any]:
    """A TOML document, or PinFileError: too large, duplicate keys (TOML forbids them), nested too deep."""
    if len(text) > MAX_INSTALL_FILE_CHARS:
        raise PinFileError(f"{file} is larger than {MAX_INSTALL_FILE_CHARS >> 20} MiB")
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as error:
        raise PinFileError(f"{file} is not valid TOML ({error})") from None
    except RecursionError:
        raise PinFileError(f"{file} nests arrays or tables too deeply") from None


def _table(data: dict[str, Any], *path: str, where: str) -> dict[str, Any]:
    value: Any = data
    for key in path:
        value = value.get(key, {}) if isinstance(value, dict) else None
        if not isinstance(value, dict):
            raise PinFileError(f"{where} is not a table")
    return dict(value)


def _string_list(value: object, where: str) -> list[str]:
    if value is None:
        return []
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        raise PinFileError(f"{where} is not a list of requirement strings")
    return value


def pins_from_pyproject(text: str, file: str = PYPROJECT_TOML) -> list[Pin]:
    """Pins in every requirement list of pyproject.toml, and in [tool.uv.sources]."""
    data = load_toml(text, file)
    project = _table(data, "project", where=f"{file} [project]")
    uv = _table(data, "tool", "uv", where=f"{file} [tool.uv]")
    lists: list[tuple[str, object]] = [(f"{file} [project].dependencies", project.get("dependencies"))]
    extras = project.get("optional-dependencies", {})
    if not isinstance(extras, dict):
        raise PinFileError(f"{file} [project.optional-dependencies] is not a table")
    lists += [(f"{file} [project.optional-dependencies] {name}", values) for name, values in sorted(extras.items())]
    groups = data.get("dependency-groups", {})
    if not isinstance(groups, dict):
        raise PinFileError(f"{file} [dependency-groups] is not a table")
    for name, values in sorted(groups.items()):
        # PEP 735: a group lists requirement strings and {include-group = "other"} tables (followed there)
        if not isinstance(values, list):
            raise PinFileError(f"{file} [dependency-groups] {name} is not a list")
        lists.append((f"{file} [dependency-groups] {name}", [value for value in values if not isinstance(value, dict)]))
    for key in ("override-dependencies", "constraint-dependencies", "dev-dependencies"):
        lists.append((f"{file} [tool.uv] {key}", uv.get(key)))
    pins = []
    for label, values in lists:
        for requirement in _string_list(values, label):
            pin = pin_from_requirement(requirement, label)
            if pin is not None:
                pins.append(pin)
    sources = uv.get("sources", {})
    if not isinstance(sources, dict):
        raise PinFileError(f"{file} [tool.uv.sources] is not a table")
    for name, source in sorted(sources.items()):
        package = canonicalize_name(str(name))
        # uv allows one source or a list of them (by marker); each is a way the package can be installed.
        for entry in source if isinstance(source, list) else [source]:
            pin = _uv_source_pin(package, entry, f"{file} [tool.uv.sources]")
            if pin is not None:
                pins.append(pin)
    return pins


def _uv_source_pin(package: str, entry: object, label: str) -> Optional[Pin]:
    """A [tool.uv.sources] entry: {git = url, rev|tag|branch = ...}, or a path/url/index/workspace source."""
    if not isinstance(entry, dict):
        raise PinFileError(f"{label} {package} is not a table")
    git = entry.get("git")
    if not isinstance(git, str):
        # any other kind of source installs the package from somewhere that is not a release
        return Pin(package=package, file=label, kind="not-git", ref=without_userinfo(_described(entry))) if package in BY_NAME else None
    parts = urllib.parse.urlsplit(git)
    owner, repo = _repository(parts.hostname, parts.path)
    if "branch" in entry:
        return Pin(package=package, file=label, kind="branch", ref=str(entry["branch"]), owner=owner, repo=repo)
    ref = next((entry[key] for key in ("tag", "rev") if key in entry), "")
    if not isinstance(ref, str):
        raise PinFileError(f"{label} {package} has a ref that is not a string")
    return Pin(package=package, file=label, kind=classify_ref(ref), ref=ref, owner=owner, repo=repo)


def _described(entry: dict[str, Any]) -> str:
    return ", ".join(f"{key} = {value!r}" for key, value in sorted(entry.items()))[:200]


def _lock_git_pin(package: str, git_url: str, label: str) -> Pin:
    parts = urllib.parse.urlsplit(git_url)
    query = urllib.parse.parse_qs(parts.query)
    # uv writes the requested ref as ?rev= / ?tag= / ?branch= and the commit it resolved as the fragment.
    ref = next((query[key][0] for key in ("tag", "rev", "branch") if key in query), "")
    kind: PinKind = "branch" if "branch" in query else classify_ref(ref)
    owner, repo = _repository(parts.hostname, parts.path)
    return Pin(package=package, file=label, kind=kind, ref=ref, owner=owner, repo=repo, resolved=parts.fragment or None)


def pins_from_uv_lock(text: str, file: str = UV_LOCK) -> list[Pin]:
    """Pins in `[[package]]` sources (`git = "https://github.com/o/r.git?rev=<ref>#<sha>"`), in the root
    package's requires-dist/requires-dev and in `[manifest]` overrides and constraints."""
    data = load_toml(text, file)
    packages = data.get("package", [])
    if not isinstance(packages, list):
        raise PinFileError(f"{file}: [[package]] is not an array of tables")
    pins = []
    for entry in packages:
        if not isinstance(entry, dict) or not isinstance(entry.get("name"), str):
            raise PinFileError(f"{file}: a [[package]] entry has no name")
        package = canonicalize_name(entry["name"])
        source = entry.get("source")
        git_url = source.get("git") if isinstance(source, dict) else None
        if isinstance(git_url, str):
            pins.append(_lock_git_pin(package, git_url, file))
        elif package in BY_NAME:
            pins.append(Pin(package=package, file=file, kind="not-git", ref=without_userinfo(str(source)[:200])))
        metadata = entry.get("metadata", {})
        if not isinstance(metadata, dict):
            raise PinFileError(f"{file}: [package.metadata] of {package} is not a table")
        requires = [("requires-dist", metadata.get("requires-dist", []))]
        dev = metadata.get("requires-dev", {})
        requires += [(f"requires-dev {group}", values) for group, values in sorted(dev.items())] if isinstance(dev, dict) else []
        for what, values in requires:
            pins += _lock_requirements(values, f"{file} {what} of {package}")
    manifest = _table(data, "manifest", where=f"{file} [manifest]")
    for key in ("overrides", "constraints"):
        pins += _lock_requirements(manifest.get(key, []), f"{file} [manifest] {key}")
    return pins


def _lock_requirements(values: object, label: str) -> list[Pin]:
    """uv.lock's requirement tables: {name = "...", git = "<url>?rev=<ref>"} (or a specifier, a path...)."""
    if not isinstance(values, list):
        raise PinFileError(f"{label} is not a list")
    pins = []
    for value in values:
        if not isinstance(value, dict) or not isinstance(value.get("name"), str):
            raise PinFileError(f"{label} has an entry without a name")
        package = canonicalize_name(value["name"])
        git = value.get("git")
        if isinstance(git, str):
            pins.append(_lock_git_pin(package, git, label))
        elif package in BY_NAME and any(key in value for key in ("path", "url", "editable", "directory")):
            pins.append(Pin(package=package, file=label, kind="not-git", ref=without_userinfo(_described(value))))
    return pins


def read_qsl_toml(text: str, owner: str, file: str = QSL_TOML) -> tuple[list[Pin], Optional[str], Optional[str]]:
    """(pins of [qsl.requires], the [qsl.compat] bundle, a problem with that bundle's value).

    [qsl.requires] maps import names (`quant_platform_kit`) to refs; a name of the package table pins that
    package (at its repository under `owner`), any other names a QuantStrategyLab package as well."""
    data = load_toml(text, file)
    qsl = _table(data, "qsl", where=f"{file} [qsl]")
    requires = _table(qsl, "requires", where=f"{file} [qsl.requires]")
    by_key = {package.qsl_key: package for package in PACKAGES}
    pins = []
    label = f"{file} [qsl.requires]"
    for key, ref in sorted(requires.items()):
        package = by_key.get(key)
        name = package.name if package is not None else canonicalize_name(key)
        if not isinstance(ref, str):
            pins.append(Pin(package=name, file=label, kind="invalid", ref=repr(ref)[:80]))
            continue
        pins.append(
            Pin(package=name, file=label, kind=classify_ref(ref), ref=ref, owner=owner, repo=package.repository if package else None)
        )
    compat = _table(qsl, "compat", where=f"{file} [qsl.compat]")
    bundle = compat.get("bundle")
    if bundle is not None and not isinstance(bundle, str):
        return pins, None, f"{file} [qsl.compat] bundle is not a string"
    return pins, bundle, None


def read_install_files(read: ReadFile, owner: str) -> InstallFiles:
    """Everything a commit installs, from its install files; PinFileError for a malformed one."""
    pins, files = _requirement_files(read, REQUIREMENTS_TXT)
    overridden: frozenset[str] = frozenset()
    for name, parse in ((PYPROJECT_TOML, pins_from_pyproject), (UV_LOCK, pins_from_uv_lock)):
        text = read(name)
        if text is None:
            continue
        files.append(name)
        found = parse(text, name)
        pins += found
        if name == PYPROJECT_TOML:
            overridden = frozenset(pin.package for pin in found if pin.file == OVERRIDES)
    bundle = bundle_problem = None
    text = read(QSL_TOML)
    if text is not None:
        files.append(QSL_TOML)
        qsl_pins, bundle, bundle_problem = read_qsl_toml(text, owner)
        pins += qsl_pins
    return InstallFiles(tuple(pins), tuple(files), overridden, bundle, bundle_problem)


def kit_pins(read: ReadFile) -> list[Pin]:
    """A strategy package's own requirement on the kit: what pip resolves when the platform installs it
    ([project].dependencies of its pyproject.toml)."""
    text = read(PYPROJECT_TOML)
    if text is None:
        return []
    return [
        pin for pin in pins_from_pyproject(text) if pin.package == QPK_PACKAGE and pin.file == f"{PYPROJECT_TOML} [project].dependencies"
    ]


def pins_from_file(file: str, text: str) -> list[Pin]:
    """Pins of one root install file, read alone (no includes followed); PinFileError when malformed."""
    if file == REQUIREMENTS_TXT:
        return pins_from_requirements_txt(text, file)
    if file == PYPROJECT_TOML:
        return pins_from_pyproject(text, file)
    if file == UV_LOCK:
        return pins_from_uv_lock(text, file)
    raise ValueError(f"{file} is not a pin file; known: {', '.join(PIN_FILES)}")
