"""Reading the QPK / UES pins a repository declares, from the files that can declare them (docs/platform-facts.md §1).

Pure: every function takes file text and returns `Pin`s; fetching the text is a source's job. Requirement
strings go through `packaging.requirements.Requirement`; only the URL part of a direct reference
(`git+https://github.com/<owner>/<repo>.git@<ref>`) is taken apart, with `urllib.parse`.
"""

from __future__ import annotations

import re
import tomllib
import urllib.parse
from typing import Any, Iterable, Literal, Optional

from packaging.requirements import InvalidRequirement, Requirement
from packaging.utils import canonicalize_name
from pydantic import BaseModel, ConfigDict

from release.config import COMMIT_PATTERN, release_version

QPK_PACKAGE = "quant-platform-kit"
UES_PACKAGE = "us-equity-strategies"
TRACKED_PACKAGES = (QPK_PACKAGE, UES_PACKAGE)

REQUIREMENTS_TXT = "requirements.txt"
PYPROJECT_TOML = "pyproject.toml"
UV_LOCK = "uv.lock"
# Every file that can pin a package, in the order a report lists them.
PIN_FILES = (REQUIREMENTS_TXT, PYPROJECT_TOML, UV_LOCK)

GITHUB_HOSTS = frozenset({"github.com", "www.github.com"})
SHORT_SHA_PATTERN = re.compile(r"[0-9a-f]{7,39}")

PinKind = Literal["tag", "sha", "short-sha", "branch", "no-ref", "not-git", "invalid"]
# Kinds a release may carry; everything else is refused by the `pin-refs` check.
RELEASE_KINDS = frozenset({"tag", "sha"})


class Pin(BaseModel):
    """One declaration of a tracked package: where (`file`), pointing at which repository and ref."""

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

    def describe(self) -> str:
        """`quant-platform-kit @v0.7.7` as messages write it."""
        if self.kind in ("invalid", "not-git"):
            return f"{self.package} as {self.ref!r}"
        return f"{self.package} @{self.ref}" if self.ref else f"{self.package} (no ref)"

    def is_canonical(self, owner: str, repo: str) -> bool:
        # GitHub owner and repository names are case-insensitive; any other owner is a fork.
        return (self.owner or "").lower() == owner.lower() and (self.repo or "").lower() == repo.lower()


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
    parts = urllib.parse.urlsplit(url)
    if not parts.scheme.startswith("git+"):
        return Pin(package=package, file=file, kind="not-git", ref=url)
    path, _, ref = parts.path.rpartition("@") if "@" in parts.path else (parts.path, "", "")
    host = (parts.hostname or "").lower()
    owner, repo = _github_repo(path) if host in GITHUB_HOSTS else (None, None)
    return Pin(package=package, file=file, kind=classify_ref(ref), ref=ref, owner=owner, repo=repo)


def pin_from_requirement(text: str, file: str) -> Optional[Pin]:
    """The pin a requirement string declares, or None when it is not about a tracked package."""
    try:
        requirement = Requirement(text)
    except InvalidRequirement:
        # Unparseable text that names a tracked package must not be skipped silently: it fails closed.
        lowered = text.lower().replace("_", "-")
        named = next((package for package in TRACKED_PACKAGES if package in lowered), None)
        return None if named is None else Pin(package=named, file=file, kind="invalid", ref=text.strip())
    package = canonicalize_name(requirement.name)
    if package not in TRACKED_PACKAGES:
        return None
    if requirement.url is None:
        return Pin(package=package, file=file, kind="not-git", ref=str(requirement))
    return pin_from_url(package, requirement.url, file)


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


def pins_from_requirements_txt(text: str, file: str = REQUIREMENTS_TXT) -> list[Pin]:
    pins = []
    for line in _logical_lines(text):
        if line.startswith("-"):
            # Options (-r, -c, --index-url, ...) pin nothing; `-e <url>` editable installs are not releases.
            if line.startswith(("-e", "--editable")) and any(package in line.lower() for package in TRACKED_PACKAGES):
                package = next(package for package in TRACKED_PACKAGES if package in line.lower())
                pins.append(Pin(package=package, file=file, kind="invalid", ref=line))
            continue
        pin = pin_from_requirement(line, file)
        if pin is not None:
            pins.append(pin)
    return pins


class PinFileError(ValueError):
    """A pin file that cannot be read as what its name says (bad TOML, wrong shapes)."""


def _load_toml(text: str, file: str) -> dict[str, Any]:
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as error:
        raise PinFileError(f"{file} is not valid TOML ({error})") from None


def _string_list(value: object, where: str) -> list[str]:
    if value is None:
        return []
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        raise PinFileError(f"{where} is not a list of requirement strings")
    return value


def pins_from_pyproject(text: str, file: str = PYPROJECT_TOML) -> list[Pin]:
    """Pins in `[project].dependencies` and `[tool.uv] override-dependencies`."""
    data = _load_toml(text, file)
    project = data.get("project", {})
    uv = data.get("tool", {}).get("uv", {}) if isinstance(data.get("tool"), dict) else {}
    if not isinstance(project, dict) or not isinstance(uv, dict):
        raise PinFileError(f"{file}: [project] / [tool.uv] are not tables")
    pins = []
    for section, label, values in (
        ("[project].dependencies", f"{file} [project].dependencies", project.get("dependencies")),
        ("[tool.uv] override-dependencies", f"{file} [tool.uv] override-dependencies", uv.get("override-dependencies")),
    ):
        for requirement in _string_list(values, f"{file} {section}"):
            pin = pin_from_requirement(requirement, label)
            if pin is not None:
                pins.append(pin)
    return pins


def pins_from_uv_lock(text: str, file: str = UV_LOCK) -> list[Pin]:
    """Pins in `[[package]]` entries: `source = { git = "https://github.com/o/r.git?rev=<ref>#<sha>" }`."""
    data = _load_toml(text, file)
    packages = data.get("package", [])
    if not isinstance(packages, list):
        raise PinFileError(f"{file}: [[package]] is not an array of tables")
    pins = []
    for entry in packages:
        if not isinstance(entry, dict) or not isinstance(entry.get("name"), str):
            raise PinFileError(f"{file}: a [[package]] entry has no name")
        package = canonicalize_name(entry["name"])
        if package not in TRACKED_PACKAGES:
            continue
        source = entry.get("source")
        git_url = source.get("git") if isinstance(source, dict) else None
        if not isinstance(git_url, str):
            pins.append(Pin(package=package, file=file, kind="not-git", ref=str(source)))
            continue
        parts = urllib.parse.urlsplit(git_url)
        query = urllib.parse.parse_qs(parts.query)
        # uv writes the requested ref as ?rev= / ?tag= / ?branch= and the commit it resolved as the fragment.
        ref = next((query[key][0] for key in ("tag", "rev", "branch") if key in query), "")
        kind = "branch" if "branch" in query else classify_ref(ref)
        host = (parts.hostname or "").lower()
        owner, repo = _github_repo(parts.path) if host in GITHUB_HOSTS else (None, None)
        resolved = parts.fragment or None
        pins.append(Pin(package=package, file=file, kind=kind, ref=ref, owner=owner, repo=repo, resolved=resolved))
    return pins


def pins_from_file(file: str, text: str) -> list[Pin]:
    """Pins of one of PIN_FILES; PinFileError when the file is malformed."""
    if file == REQUIREMENTS_TXT:
        return pins_from_requirements_txt(text, file)
    if file == PYPROJECT_TOML:
        return pins_from_pyproject(text, file)
    if file == UV_LOCK:
        return pins_from_uv_lock(text, file)
    raise ValueError(f"{file} is not a pin file; known: {', '.join(PIN_FILES)}")
