"""Running the probe: one isolated, bounded child process per platform commit and release, whose output
is data validated here.

The child (release/gate/facts_probe.py, copied into a fresh work directory and run as a script) runs the
platform's own registry over exactly the trees it is given. Isolation and bounds:

- environment built from nothing (`scrubbed_environment`): PATH, a temporary HOME and TMPDIR, locale and
  Python's I/O settings; no GITHUB_TOKEN, GOOGLE_*, CLOUDSDK_*, AWS_*, no ADC file (HOME is empty), no proxy
  or index settings of ours;
- `python -I` (no PYTHON* variables, no user site, no script directory on the path) and, with the
  sources alone, `-S` (no site-packages: the standard library and the given trees only);
- no network: `unshare --net --pid --fork --kill-child` (a new network namespace with no interface up and a
  PID namespace whose processes all die with the probe) when the kernel allows it, else every proxy
  variable pointed at a closed loopback port (`network_isolation` says which);
- `prlimit`: at most `FILE_SIZE_LIMIT` per written file and `ADDRESS_SPACE_LIMIT` of memory;
- a total deadline for the process, a bound on stdout (the document) and on stderr (only its tail is kept);
  past any of them the whole process group is killed.

Every failure raises `FactsRunError` naming the step and the escaped tail of stderr: the caller fails that
platform's facts closed.
"""

from __future__ import annotations

import functools
import hashlib
import json
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Literal, Optional, Sequence

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, ValidationError

from components.profiles import Isolation
from release.control_chars import escape_controls
from release.local_files import ProcessOutputError
from release.local_files import run_bounded as bounded_process

PROBE_SCRIPT = Path(__file__).with_name("facts_probe.py")
MISSING_MODULE_EXIT = 3  # facts_probe.MISSING_MODULE_EXIT (the probe is a script; it is never imported here)
STDOUT_LIMIT = 4 * 1024 * 1024  # the document: a few hundred profiles are well under 1 MiB
STDERR_LIMIT = 16 * 1024 * 1024  # total stderr before the child is killed as printing without end
STDERR_TAIL = 2000  # characters of stderr kept for the message
FILE_SIZE_LIMIT = 256 * 1024 * 1024  # per file the child writes (wheels of an environment build included)
ADDRESS_SPACE_LIMIT = 4 * 1024 * 1024 * 1024
CLOSED_PORT_PROXY = "http://127.0.0.1:9"  # the discard port: nothing listens there, so a connection fails at once
SAFE_PATH = "/usr/local/bin:/usr/bin:/bin"


class FactsRunError(Exception):
    """A step of proving facts that did not give a fact: which step, why, and the tail of stderr."""

    def __init__(self, step: str, reason: str, stderr: str = "") -> None:
        self.step, self.reason, self.stderr = step, reason, escape_controls(stderr[-STDERR_TAIL:].strip())
        super().__init__(str(self))

    def __str__(self) -> str:
        tail = f"; stderr ends: {self.stderr}" if self.stderr else ""
        return f"{self.step}: {self.reason}{tail}"


# -- the probe's document -----------------------------------------------------------------------------

Name = Annotated[str, StringConstraints(min_length=1, max_length=200)]
Text = Annotated[str, StringConstraints(max_length=500)]


class ProbeModel(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)


class ProbeDescribe(ProbeModel):
    """The keys of `describe_platform_runtime_requirements(...)` the gate reads; each absent at releases
    that predate it."""

    input_mode: Optional[Text] = None
    profile_group: Optional[Text] = None
    requires_snapshot_artifacts: Optional[bool] = None
    requires_snapshot_manifest_path: Optional[bool] = None
    requires_strategy_config_path: Optional[bool] = None
    snapshot_contract_version: Optional[Text] = None
    config_source_policy: Optional[Text] = None
    reconciliation_output_policy: Optional[Text] = None


class ProbeAdapter(ProbeModel):
    """What the runtime adapter says, at releases without `describe_platform_runtime_requirements`."""

    require_snapshot_manifest: bool
    snapshot_contract_version: Optional[Text] = None


class ProbeProfile(ProbeModel):
    canonical_profile: Name
    display_name: Text
    domain: Name
    eligible: bool
    enabled: bool
    platform: Name
    required_inputs: Optional[list[Name]] = Field(default=None, max_length=100)
    bundled_config: Optional[Text] = None
    bundled_config_present: Optional[bool] = None
    describe: Optional[ProbeDescribe] = None
    adapter: Optional[ProbeAdapter] = None
    error: Optional[Text] = None


class ProbeOutput(ProbeModel):
    probe: Literal[1]
    platform: Name
    method: Literal["describe", "catalog"]
    aliases: Optional[dict[Name, Name]] = Field(max_length=2000)
    profiles: list[ProbeProfile] = Field(max_length=2000)


class MissingModule(ProbeModel):
    probe: Literal[1]
    missing_module: Name


def parse_output(data: bytes, platform: str) -> ProbeOutput | MissingModule:
    """The child's stdout as a document, or FactsRunError naming what is wrong with it (never its text)."""
    step = "read the probe's output"
    try:
        value = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError) as error:
        raise FactsRunError(step, f"not one JSON document ({type(error).__name__}, {len(data)} bytes)") from None
    try:
        if isinstance(value, dict) and "missing_module" in value:
            return MissingModule.model_validate(value)
        output = ProbeOutput.model_validate(value)
    except ValidationError as error:
        problems = "; ".join(f"{'.'.join(str(p) for p in item['loc'])}: {item['msg']}" for item in error.errors()[:3])
        raise FactsRunError(step, f"not the probe's document ({escape_controls(problems)[:400]})") from None
    if output.platform != platform:
        raise FactsRunError(step, f"document is for platform {output.platform!r}, asked {platform!r}")
    for profile in output.profiles:
        if profile.platform != platform:
            raise FactsRunError(step, f"{profile.canonical_profile}: row is for platform {profile.platform!r}, asked {platform!r}")
    names = [profile.canonical_profile for profile in output.profiles]
    if len(set(names)) != len(names):
        raise FactsRunError(step, "a profile appears twice in the status matrix")
    return output


# -- isolation ------------------------------------------------------------------------------------------


@functools.lru_cache(maxsize=1)
def network_isolation() -> Isolation:
    """`unshare` when this machine can give a child its own empty network and PID namespaces, else `proxy`."""
    unshare = shutil.which("unshare")
    if unshare is None:
        return "proxy"
    try:
        done = subprocess.run(
            [unshare, "--net", "--pid", "--fork", "--kill-child", "true"], capture_output=True, timeout=10, env={"PATH": SAFE_PATH}
        )
    except (OSError, subprocess.SubprocessError):
        return "proxy"
    return "unshare" if done.returncode == 0 else "proxy"


def scrubbed_environment(home: Path, isolation: Isolation, extra: Optional[dict[str, str]] = None) -> dict[str, str]:
    """The child's whole environment, built from nothing (nothing of the parent's is copied)."""
    env = {
        "PATH": SAFE_PATH,
        "HOME": str(home),
        "TMPDIR": str(home),
        "LANG": "C.UTF-8",
        "LC_ALL": "C.UTF-8",
        "PYTHONIOENCODING": "utf-8",
        "PYTHONDONTWRITEBYTECODE": "1",
        "PYTHONHASHSEED": "0",
        "NO_COLOR": "1",
    }
    if isolation == "proxy":
        for name in ("http_proxy", "https_proxy", "all_proxy", "HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY"):
            env[name] = CLOSED_PORT_PROXY
        env["no_proxy"] = env["NO_PROXY"] = ""
    env.update(extra or {})
    return env


def isolated_argv(argv: Sequence[str], isolation: Isolation, network: bool, address_space: Optional[int]) -> list[str]:
    """`argv` under prlimit and, without `network`, in its own network namespace."""
    prefix: list[str] = []
    prlimit = shutil.which("prlimit")
    if prlimit is not None:
        prefix += [prlimit, f"--fsize={FILE_SIZE_LIMIT}"]
        if address_space is not None:
            prefix.append(f"--as={address_space}")
        prefix.append("--")
    if isolation == "unshare":
        unshare = shutil.which("unshare") or "unshare"
        prefix += [unshare, "--pid", "--fork", "--kill-child", *([] if network else ["--net"])]
    return [*prefix, *argv]


@dataclass(frozen=True)
class Finished:
    returncode: int
    stdout: bytes
    stderr: str  # the tail, decoded with replacement


def run_bounded(
    argv: Sequence[str], *, env: dict[str, str], cwd: Path, deadline: float, step: str, stdout_limit: int = STDOUT_LIMIT
) -> Finished:
    """Run `argv` until it exits, or kill its process group at `deadline` (time.monotonic()) or when it
    prints more than the bounds: the shared bounded process reader (release/local_files.py), with this
    step's words. Raises FactsRunError for a timeout, an overflow or a start failure."""
    left = deadline - time.monotonic()
    if left <= 0:
        raise FactsRunError(step, "not started: the deadline had passed")
    try:
        done = bounded_process(argv, stdout_limit, left, env=env, cwd=cwd, stderr_max_bytes=STDERR_LIMIT, stderr_keep=4 * STDERR_TAIL)
    except ProcessOutputError as error:
        problem = "did not finish before its deadline" if error.kind == "deadline" else error.what
        raise FactsRunError(step, f"{problem} (killed)", error.stderr.decode("utf-8", errors="replace")) from None
    except OSError as error:
        raise FactsRunError(step, f"could not start {Path(argv[0]).name}: {error.strerror or error}") from None
    return Finished(returncode=done.returncode, stdout=done.stdout, stderr=done.stderr.decode("utf-8", errors="replace"))


# -- one probe run --------------------------------------------------------------------------------------


def probe_sha256() -> str:
    """Identifies the probe that proved a fact (recorded with the facts)."""
    return hashlib.sha256(PROBE_SCRIPT.read_bytes()).hexdigest()


def run_probe(
    platform: str,
    platform_root: Path,
    package_roots: Sequence[Path],
    *,
    deadline: float,
    python: Optional[Path] = None,
    isolation: Optional[Isolation] = None,
) -> ProbeOutput | MissingModule:
    """Run the probe for `platform` over the platform tree and the package source roots (in order).

    `python` is an environment's interpreter (its site-packages visible); without it the interpreter
    running this code is used with `-S`, so only the standard library and the trees are importable."""
    isolation = isolation or network_isolation()
    with tempfile.TemporaryDirectory(prefix="cutover-probe-") as work:
        home = Path(work) / "home"
        home.mkdir()
        script = Path(work) / "facts_probe.py"
        shutil.copyfile(PROBE_SCRIPT, script)
        interpreter = [str(python), "-I"] if python is not None else [sys.executable, "-I", "-S"]
        argv = [*interpreter, str(script), "--platform", platform, "--root", str(platform_root)]
        for root in package_roots:
            argv += ["--path", str(root)]
        finished = run_bounded(
            isolated_argv(argv, isolation, network=False, address_space=ADDRESS_SPACE_LIMIT),
            env=scrubbed_environment(home, isolation),
            cwd=home,
            deadline=deadline,
            step=f"run {platform}'s registry",
        )
    if finished.returncode not in (0, MISSING_MODULE_EXIT):
        raise FactsRunError(f"run {platform}'s registry", f"exited with status {finished.returncode}", finished.stderr)
    output = parse_output(finished.stdout, platform)
    if isinstance(output, MissingModule) != (finished.returncode == MISSING_MODULE_EXIT):
        raise FactsRunError(f"run {platform}'s registry", f"exit status {finished.returncode} does not match its document", finished.stderr)
    return output
