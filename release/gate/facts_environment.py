"""The third-party environment a platform commit's registry needs, built from that commit's own lock.

Used only when the pinned sources alone do not import (the probe names the missing module). The
environment is built from the platform commit's files, never from ours:

- `uv.lock` beside `pyproject.toml`: `uv sync --frozen --no-dev --no-install-project`, with every package
  whose pinned source the probe puts on `sys.path` (QPK, UES, HK) left out (`--no-install-package`), so the
  release's commits are what runs, not whatever the lock would fetch;
- else `requirements.txt` (older commits): `uv venv` then `uv pip install` of its lines without those
  packages' pins. Options (`-r`, `--index-url`, ...) are refused: the file must say what it installs.

The build may reach the package registry, so it runs without `--net` isolation but with the same scrubbed
environment (no credentials, HOME a temporary directory, uv's config files ignored), the same process
bounds and the caller's deadline. Environments are cached under `cache_root` by (platform commit, sha256
of the lock file): a finished one is marked complete and reused; a half-built one is never used (built in
a scratch directory, renamed into place when done). Nothing built for one commit serves another.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import shutil
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Literal, Optional, Sequence

from packaging.requirements import InvalidRequirement, Requirement
from packaging.utils import canonicalize_name

from components.profiles import FactsEnvironment, Isolation
from release.gate.facts_runner import (
    FactsRunError,
    MissingModule,
    ProbeOutput,
    isolated_argv,
    network_isolation,
    run_bounded,
    run_probe,
    scrubbed_environment,
)

LockKind = Literal["uv.lock", "requirements.txt"]
MAX_LOCK_BYTES = 4 * 1024 * 1024
COMPLETE = "environment.json"
ENV_CACHE = "CUTOVER_FACTS_CACHE"


@dataclass(frozen=True)
class Environment:
    python: Path
    kind: LockKind
    lock_sha256: str


def default_cache_root(environ: Optional[dict[str, str]] = None) -> Path:
    environ = dict(os.environ if environ is None else environ)
    if environ.get(ENV_CACHE):
        return Path(environ[ENV_CACHE])
    base = Path(environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return base / "us-equity-cutover" / "facts"


def find_lock(platform_root: Path) -> Optional[tuple[LockKind, Path]]:
    """The lock the platform commit installs from: uv.lock (with its pyproject.toml), else requirements.txt."""
    if (platform_root / "uv.lock").is_file() and (platform_root / "pyproject.toml").is_file():
        return "uv.lock", platform_root / "uv.lock"
    if (platform_root / "requirements.txt").is_file():
        return "requirements.txt", platform_root / "requirements.txt"
    return None


def _read_lock(path: Path, step: str) -> bytes:
    if path.is_symlink() or path.stat().st_size > MAX_LOCK_BYTES:
        raise FactsRunError(step, f"{path.name} is a link or larger than {MAX_LOCK_BYTES} bytes")
    return path.read_bytes()


def filtered_requirements(text: str, excluded: Iterable[str]) -> str:
    """requirements.txt without the packages whose sources are pinned on the path; FactsRunError for options."""
    skip = {canonicalize_name(name) for name in excluded}
    kept = []
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.split(" #", 1)[0].strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("-"):
            raise FactsRunError("read requirements.txt", f"line {number}: option {line.split()[0]!r} is not supported; list packages only")
        try:
            requirement = Requirement(line)
        except InvalidRequirement as error:
            raise FactsRunError("read requirements.txt", f"line {number}: not a requirement ({error})") from None
        if canonicalize_name(requirement.name) not in skip:
            kept.append(str(requirement))
    return "\n".join(kept) + "\n"


def _uv() -> str:
    from uv import find_uv_bin  # the pinned uv of requirements.txt

    return str(find_uv_bin())


def build_environment(
    platform_root: Path,
    platform_commit: str,
    *,
    cache_root: Path,
    excluded: Iterable[str],
    deadline: float,
    isolation: Optional[Isolation] = None,
) -> Environment:
    """The cached environment for (platform commit, lock), building it first when needed."""
    step = "build the environment"
    found = find_lock(platform_root)
    if found is None:
        raise FactsRunError(step, "the platform commit has neither uv.lock (with pyproject.toml) nor requirements.txt to build from")
    kind, lock_path = found
    lock = _read_lock(lock_path, step)
    digest = hashlib.sha256(lock).hexdigest()
    target = cache_root / f"{platform_commit}-{digest[:16]}"
    cache_root.mkdir(parents=True, exist_ok=True)
    with open(cache_root / f"{target.name}.lock", "w") as guard:
        fcntl.flock(guard, fcntl.LOCK_EX)  # one build per key at a time; a waiting run then finds it complete
        ready = _complete(target, kind, digest)
        if ready is not None:
            return ready
        shutil.rmtree(target, ignore_errors=True)
        scratch = Path(tempfile.mkdtemp(prefix=f".{target.name}-", dir=cache_root))
        try:
            _build(kind, platform_root, lock, scratch, excluded, deadline, isolation or network_isolation(), step)
            (scratch / COMPLETE).write_text(json.dumps({"kind": kind, "lock_sha256": digest}), encoding="utf-8")
            scratch.rename(target)
        finally:
            shutil.rmtree(scratch, ignore_errors=True)
    ready = _complete(target, kind, digest)
    if ready is None:
        raise FactsRunError(step, "the environment was built but is not usable")
    return ready


def _complete(target: Path, kind: LockKind, digest: str) -> Optional[Environment]:
    try:
        marker = json.loads((target / COMPLETE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    python = target / "venv" / "bin" / "python"
    if marker != {"kind": kind, "lock_sha256": digest} or not python.exists():
        return None
    return Environment(python=python, kind=kind, lock_sha256=digest)


def _build(
    kind: LockKind,
    platform_root: Path,
    lock: bytes,
    scratch: Path,
    excluded: Iterable[str],
    deadline: float,
    isolation: Isolation,
    step: str,
) -> None:
    home = scratch / "home"
    home.mkdir()
    venv = scratch / "venv"
    uv = _uv()
    env = scrubbed_environment(
        home,
        isolation,
        {
            "UV_CACHE_DIR": str(scratch.parent / "uv-cache"),
            "UV_NO_CONFIG": "1",
            "UV_PYTHON_DOWNLOADS": "never",
            "UV_NO_PROGRESS": "1",
        },
    )
    if isolation == "proxy":
        # the registry must be reachable for a build: drop the closed-port proxies the probe gets
        for name in [key for key in env if key.lower().endswith("_proxy")]:
            del env[name]
    project = scratch / "project"
    project.mkdir()
    names = sorted({canonicalize_name(name) for name in excluded})
    if kind == "uv.lock":
        shutil.copyfile(platform_root / "pyproject.toml", project / "pyproject.toml")
        (project / "uv.lock").write_bytes(lock)
        argv = [uv, "sync", "--frozen", "--no-dev", "--no-install-project", "--python", sys.executable]
        for name in names:
            argv += ["--no-install-package", name]
        env["UV_PROJECT_ENVIRONMENT"] = str(venv)
        _run(argv, env, project, deadline, isolation, f"{step} (uv sync --frozen)")
        return
    try:
        text = lock.decode("utf-8")
    except UnicodeDecodeError:
        raise FactsRunError(step, "requirements.txt is not UTF-8") from None
    requirements = filtered_requirements(text, names)
    (project / "requirements.txt").write_text(requirements, encoding="utf-8")
    _run([uv, "venv", "--python", sys.executable, str(venv)], env, project, deadline, isolation, f"{step} (uv venv)")
    argv = [uv, "pip", "install", "--python", str(venv / "bin" / "python"), "-r", "requirements.txt"]
    _run(argv, env, project, deadline, isolation, f"{step} (uv pip install -r requirements.txt)")


def _run(argv: list[str], env: dict[str, str], cwd: Path, deadline: float, isolation: Isolation, step: str) -> None:
    finished = run_bounded(isolated_argv(argv, isolation, network=True, address_space=None), env=env, cwd=cwd, deadline=deadline, step=step)
    if finished.returncode != 0:
        raise FactsRunError(step, f"exited with status {finished.returncode}", finished.stderr)


@dataclass(frozen=True)
class ProbeResult:
    """The probe's document and the environment it ran in: the sources alone, or built from the lock."""

    output: ProbeOutput
    environment: FactsEnvironment
    lock_sha256: Optional[str] = None


def probe_platform(
    platform: str,
    platform_root: Path,
    package_roots: Sequence[Path],
    *,
    platform_commit: str,
    excluded: Iterable[str],
    cache_root: Path,
    deadline: float,
    isolation: Optional[Isolation] = None,
) -> ProbeResult:
    """Run the probe over the sources alone; when the registry needs a module they do not hold, build (or
    reuse) the environment from the platform commit's lock and run it again there."""
    first = run_probe(platform, platform_root, package_roots, deadline=deadline, isolation=isolation)
    if isinstance(first, ProbeOutput):
        return ProbeResult(output=first, environment="sources")
    environment = build_environment(
        platform_root, platform_commit, cache_root=cache_root, excluded=excluded, deadline=deadline, isolation=isolation
    )
    second = run_probe(platform, platform_root, package_roots, deadline=deadline, python=environment.python, isolation=isolation)
    if isinstance(second, MissingModule):
        raise FactsRunError(
            f"run {platform}'s registry",
            f"needs module {second.missing_module!r}, which neither the pinned sources nor the environment built from "
            f"its {environment.kind} provide",
        )
    return ProbeResult(output=second, environment=environment.kind, lock_sha256=environment.lock_sha256)
