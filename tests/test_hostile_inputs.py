"""Hostile and careless input against the CLI, one table row per case (issue 9).

Each row builds its input under a temporary directory, runs `python -m release ...` as a subprocess and
states: the exit code, what the output must say, what it must never say (a traceback, a credential,
pydantic's `input_value=`, a forged report line), and a time bound enforced by the subprocess timeout,
so a hang fails the row instead of the suite. The rows run a few at a time (each is a fresh interpreter,
~0.3 s) before the tests assert on them.

No row reaches the network: the gate's GitHub URL points at a closed port on 127.0.0.1, and every row
that is bad input fails before the gate runs.
"""

from __future__ import annotations

import copy
import os
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import pytest
import yaml

from release.config import PROJECT_NAME
from release.stack import load_stack_file
from tests.fixtures.live_json import image_describe, knative_for_spec, write_json
from tests.fixtures.prod_lock import prod_lock_path
from tests.fixtures.projects import SEED_STACK_FILE

PROJECT_ROOT = Path(__file__).resolve().parent.parent
PROD_TEXT = SEED_STACK_FILE.read_text(encoding="utf-8")
PROD = yaml.safe_load(PROD_TEXT)
CONFIG = load_stack_file(SEED_STACK_FILE)
SERVICES_KEY = f"{PROJECT_NAME}:services"
CREDENTIAL = "123456789:AAHsecretBotTokenValue"
ALWAYS_FORBIDDEN = ("Traceback", "input_value")


@dataclass(frozen=True)
class Case:
    """One hostile input: `build(tmp)` writes it and returns the CLI arguments."""

    name: str
    build: Callable[[Path], list[str]]
    exit_code: int
    must: tuple[str, ...] = ()
    must_not: tuple[str, ...] = ()
    # Generous for a loaded 2-core machine (a row takes ~0.5 s); each hang this guards against was forever.
    seconds: float = 30.0


# --- builders ----------------------------------------------------------------------------------------


def stack_text(tmp: Path, text: str | bytes, name: str = "Pulumi.hostile.yaml") -> Path:
    path = tmp / name
    path.write_bytes(text if isinstance(text, bytes) else text.encode("utf-8"))
    return path


def stack_with(tmp: Path, change: Callable[[dict[str, Any]], None]) -> Path:
    """Pulumi.prod.yaml with one change to its services map."""
    document = copy.deepcopy(PROD)
    change(document["config"][SERVICES_KEY])
    return stack_text(tmp, yaml.safe_dump(document, sort_keys=False))


def plan_of(text: str | bytes) -> Callable[[Path], list[str]]:
    return lambda tmp: ["plan", "--config-file", str(stack_text(tmp, text))]


def plan_with(change: Callable[[dict[str, Any]], None]) -> Callable[[Path], list[str]]:
    return lambda tmp: ["plan", "--config-file", str(stack_with(tmp, change))]


def fifo(path: Path) -> Path:
    os.mkfifo(path)
    return path


def healthy_live(tmp: Path, **bend: Any) -> Path:
    """A --live directory describing the ibkr service, with `bend(document)` applied."""
    document = knative_for_spec(CONFIG.services["ibkr"], {"NOTIFY_LANG": "zh"})
    for change in bend.values():
        change(document)
    return write_json(tmp / "live" / "ibkr.json", document).parent


def verify_live(**bend: Callable[[dict[str, Any]], None]) -> Callable[[Path], list[str]]:
    return lambda tmp: ["verify", "--lock", prod_lock_path(), "--live", str(healthy_live(tmp, **bend))]


def check_with_fifo_lock(tmp: Path) -> list[str]:
    """`check` on a stack whose lock (beside the stack file) is a FIFO."""
    fifo(tmp / "Pulumi.f.lock.json")
    return ["check", "--config-file", str(stack_text(tmp, PROD_TEXT, "Pulumi.f.yaml"))]


def many_json_files(directory: Path, count: int) -> Path:
    directory.mkdir()
    for index in range(count):
        (directory / f"{index:04d}.json").write_text("{}")
    return directory


def nested_json(depth: int) -> str:
    return "[" * depth + "]" * depth


def set_env_entry(entry: dict[str, Any]) -> Callable[[dict[str, Any]], None]:
    return lambda document: document["spec"]["template"]["spec"]["containers"][0]["env"].append(entry)


def set_traffic(**fields: Any) -> Callable[[dict[str, Any]], None]:
    return lambda document: document["status"]["traffic"][0].update(fields)


ALIAS_BOMB = (
    PROD_TEXT
    + "\n".join(
        ["bomb:", "  a: &a [x, x, x, x, x, x, x, x, x]"]
        + [f"  {chr(98 + i)}: &{chr(98 + i)} [{', '.join([f'*{chr(97 + i)}'] * 9)}]" for i in range(12)]
    )
    + "\n"
)
SELF_ALIAS = PROD_TEXT + "loop: &loop [*loop]\n"
DEEP_YAML = PROD_TEXT.replace("      dryRunOnly: keep\n", "      dryRunOnly: keep\n      deep: " + nested_json(5000) + "\n", 1)


# --- the table ---------------------------------------------------------------------------------------

CASES = [
    # 7. aliases: a bomb anywhere in the file, a self-reference
    Case("alias bomb outside our keys", plan_of(ALIAS_BOMB), 2, ("YAML alias", "line")),
    Case("self-referencing alias", plan_of(SELF_ALIAS), 2, ("YAML alias (*loop)",), ("RecursionError",)),
    # 8. nesting bounds
    Case("deeply nested stack file", plan_of(DEEP_YAML), 2, ("nests deeper than 64 levels", "Pulumi.hostile.yaml"), ("RecursionError",)),
    Case(
        "deeply nested --live file",
        lambda tmp: ["verify", "--lock", prod_lock_path(), "--live", str(stack_text(tmp, nested_json(100000), "deep.json"))],
        2,
        ("deep.json", "nests deeper than 64 levels"),
        ("RecursionError",),
    ),  # fmt: skip
    # 9. not a regular file, sizes
    Case(
        "FIFO as --config-file",
        lambda tmp: ["plan", "--config-file", str(fifo(tmp / "Pulumi.fifo.yaml"))],
        2,
        ("Pulumi.fifo.yaml", "is a FIFO, not a regular file"),
    ),  # fmt: skip
    Case("directory as --config-file", lambda tmp: ["plan", "--config-file", str(tmp)], 2, ("is a directory, not a regular file",)),
    Case(
        "FIFO inside a --live directory",
        lambda tmp: ["verify", "--lock", prod_lock_path(), "--live", str(fifo(healthy_live(tmp) / "zz.json").parent)],
        2,
        ("zz.json", "is a FIFO"),
    ),  # fmt: skip
    Case("/dev/zero as --live", lambda tmp: ["verify", "--lock", prod_lock_path(), "--live", "/dev/zero"], 2, ("/dev/zero", "is a device")),
    Case(
        "FIFO as --lock",
        lambda tmp: ["plan", "--lock", str(fifo(tmp / "x.lock.json"))],
        2,
        ("x.lock.json", "is a FIFO"),
    ),  # fmt: skip
    Case("FIFO as the stack's lock", check_with_fifo_lock, 2, ("Pulumi.f.lock.json", "is a FIFO")),
    Case(
        "FIFO as --record",
        lambda tmp: ["verify", "--lock", prod_lock_path(), "--live", str(healthy_live(tmp)), "--record", str(fifo(tmp / "ops.jsonl"))],
        2,
        ("ops.jsonl", "is a FIFO"),
    ),  # fmt: skip
    Case("FIFO as --images", lambda tmp: ["plan", "--images", str(fifo(tmp / "img.json"))], 2, ("img.json", "is a FIFO")),
    Case("/dev/zero as --images", lambda tmp: ["plan", "--images", "/dev/zero"], 2, ("/dev/zero", "is a device")),
    Case(
        "deeply nested --images file",
        lambda tmp: ["plan", "--images", str(stack_text(tmp, nested_json(100000), "img.json"))],
        2,
        ("img.json", "nests deeper than 64 levels"),
        ("RecursionError",),
    ),  # fmt: skip
    Case(
        "lock nested past the recursion limit",
        lambda tmp: ["plan", "--lock", str(stack_text(tmp, nested_json(200000), "deep.lock.json"))],
        2,
        ("deep.lock.json", "nests deeper than 64 levels"),
        ("RecursionError",),
    ),
    Case(
        "--images directory of too many files",
        lambda tmp: ["plan", "--images", str(many_json_files(tmp / "img", 300))],
        2,
        ("holds more than 256 *.json files",),
    ),  # fmt: skip
    Case(
        "/dev/zero as --scheduler",
        lambda tmp: ["verify", "--live", str(healthy_live(tmp)), "--scheduler", "/dev/zero"],
        2,
        ("/dev/zero", "is a device"),
    ),  # fmt: skip
    Case(
        "FIFO as --iam",
        lambda tmp: ["verify", "--live", str(healthy_live(tmp)), "--iam", str(fifo(tmp / "interactive-brokers-quant-service.json"))],
        2,
        ("interactive-brokers-quant-service.json", "is a FIFO"),
    ),  # fmt: skip
    Case("stack file over the size bound", plan_of(PROD_TEXT + "#" * (1024 * 1024) + "\n"), 2, ("larger than 1 MiB",)),
    Case(
        "--live file over the size bound",
        lambda tmp: ["verify", "--lock", prod_lock_path(), "--live", str(stack_text(tmp, " " * (4 * 1024 * 1024 + 1), "big.json"))],
        2,
        ("big.json", "larger than 4 MiB"),
    ),  # fmt: skip
    # 11. not UTF-8
    Case("non-UTF-8 stack file", plan_of(PROD_TEXT.encode() + b"# \xff\xfe\n"), 2, ("Pulumi.hostile.yaml", "not UTF-8")),
    Case(
        "non-UTF-8 --live file",
        lambda tmp: ["verify", "--lock", prod_lock_path(), "--live", str(stack_text(tmp, b'{"kind": "Service\xc3"}', "bad.json"))],
        2,
        ("bad.json", "not UTF-8"),
    ),  # fmt: skip
    Case(
        "non-UTF-8 lock",
        lambda tmp: ["plan", "--lock", str(stack_text(tmp, b"{\xff}", "x.lock.json"))],
        2,
        ("x.lock.json", "not UTF-8"),
    ),  # fmt: skip
    Case(
        "non-UTF-8 --record",
        lambda tmp: [
            "verify",
            "--lock",
            prod_lock_path(),
            "--live",
            str(healthy_live(tmp)),
            "--record",
            str(stack_text(tmp, b"\xff\n", "ops.jsonl")),
        ],
        2,
        ("ops.jsonl", "not UTF-8"),
    ),  # fmt: skip
    # 5. and 16. live input: booleans are booleans; errors name the field, never the value
    Case(
        "latestRevision is the string false",
        verify_live(t=set_traffic(latestRevision="false")),
        2,
        ("status.traffic[0].latestRevision is not a boolean",),
    ),  # fmt: skip
    Case(
        "contradictory Ready conditions",
        verify_live(c=lambda d: d["status"]["conditions"].append({"type": "Ready", "status": "False"})),
        2,
        ("contradictory Ready conditions",),
    ),  # fmt: skip
    Case(
        "live env entry with a credential and no name",
        verify_live(e=set_env_entry({"value": CREDENTIAL})),
        2,
        ("env entry [1] has no valid name",),
        (CREDENTIAL, "AAHsecret"),
    ),  # fmt: skip
    Case(
        "100k-deep JSON inside the network-interfaces annotation",
        verify_live(
            n=lambda d: d["spec"]["template"]["metadata"]["annotations"].update(
                {"run.googleapis.com/network-interfaces": nested_json(100000)}
            )
        ),
        2,
        ("run.googleapis.com/network-interfaces nests deeper than 64 levels",),
        ("RecursionError",),
    ),  # fmt: skip
    Case(
        "deeply nested line in --record",
        lambda tmp: [
            "verify",
            "--lock",
            prod_lock_path(),
            "--live",
            str(healthy_live(tmp)),
            "--record",
            str(stack_text(tmp, nested_json(100000) + "\n", "ops.jsonl")),
        ],
        1,
        ("commit-live",),
        ("RecursionError",),
    ),  # fmt: skip
    Case(
        "live env entry with both a value and a secret ref",
        verify_live(
            e=set_env_entry({"name": "TELEGRAM_TOKEN", "value": CREDENTIAL, "valueFrom": {"secretKeyRef": {"name": "t", "key": "latest"}}})
        ),
        2,
        ("env TELEGRAM_TOKEN has both a value and valueFrom",),
        (CREDENTIAL, "AAHsecret"),
    ),  # fmt: skip
    Case(
        "latestRevision entry naming an old revision",
        verify_live(t=set_traffic(revisionName="interactive-brokers-quant-service-00001-old")),
        1,
        ("names interactive-brokers-quant-service-00001-old, not the latest ready revision",),
    ),  # fmt: skip
    Case(
        "traffic percentages summing past 100",
        verify_live(t=lambda d: d["status"]["traffic"].append({"revisionName": "x-00001-old", "percent": 50})),
        2,
        ("status.traffic percentages sum past 100",),
    ),  # fmt: skip
    Case(
        "Ready while RoutesReady is False",
        verify_live(c=lambda d: d["status"]["conditions"].append({"type": "RoutesReady", "status": "False"})),
        2,
        ("says Ready while RoutesReady is False",),
    ),  # fmt: skip
    Case(
        "live document with a duplicate key",
        lambda tmp: [
            "verify",
            "--lock",
            prod_lock_path(),
            "--live",
            str(stack_text(tmp, '{"kind": "Service", "kind": "Service"}', "dup.json")),
        ],
        2,
        ("dup.json", "names kind twice in one object"),
    ),  # fmt: skip
    Case(
        "live image of another project under the configured commit-sha label",
        verify_live(
            i=lambda d: d["spec"]["template"]["spec"]["containers"][0].update(
                image=CONFIG.services["ibkr"].image.replace("/interactivebrokersquant/", "/someoneelse/")
            )
        ),
        1,
        ("commit-live", "the live image is from us-central1-docker.pkg.dev/someoneelse/"),
    ),  # fmt: skip
    Case(
        "plan --images with a describe document of another tag",
        lambda tmp: [
            "plan",
            "--images",
            str(write_json(tmp / "img" / "other.json", image_describe(CONFIG.services["ibkr"].image.rsplit(":", 1)[0] + ":" + "f" * 40))),
        ],
        1,
        ("names no tag, so it does not prove",),
    ),  # fmt: skip
    # A value no temporary path can contain: pytest's base directory is numbered (pytest-250/...).
    Case("live traffic percent out of range", verify_live(t=set_traffic(percent=730461)), 2, ("percent",), ("730461",)),
    # 19. control characters: refused in config, escaped when live state is printed
    Case(
        "newline in a config env value",
        plan_with(lambda services: services["ibkr"]["env"].update(NOTIFY_LANG="zh\nPlan: can proceed")),
        2,
        ("services.ibkr.env.NOTIFY_LANG: contains a control character (U+000A)",),
        ("\nPlan: can proceed",),
    ),  # fmt: skip
    Case(
        "ESC in a config value",
        plan_with(lambda services: services["ibkr"].update(serviceName="ibkr\x1b[2J")),
        2,
        ("services.ibkr.serviceName: contains a control character (U+001B)",),
        ("\x1b",),
    ),  # fmt: skip
    Case(
        "newline and ESC in a live env value",
        lambda tmp: [
            "plan",
            "--lock",  # the lock's profile facts let the plan judge the service and show its env diff
            prod_lock_path(),
            "--live",
            str(
                healthy_live(
                    tmp,
                    e=set_env_entry({"name": "IBKR_DRY_RUN_ONLY", "value": "true"}),
                    f=lambda d: d["spec"]["template"]["spec"]["containers"][0]["env"][0].update(value="zh\nPlan: can proceed\x1b[2J"),
                )
            ),
            *("--new", "schwab", "--new", "longbridge-hk", "--new", "longbridge-sg"),  # only ibkr is described
        ],
        1,
        ("zh\\nPlan: can proceed\\x1b[2J", "Plan: BLOCKED"),
        ("\nPlan: can proceed", "\x1b"),
    ),  # fmt: skip
    # 15. and 18. secrets: a pasted credential is never echoed; the mapping form is checked like the string form
    Case(
        "credential pasted into secrets",
        plan_with(lambda services: services["ibkr"]["secrets"].update(TELEGRAM_TOKEN=CREDENTIAL)),
        2,
        ("services.ibkr.secrets", "TELEGRAM_TOKEN has a version that is neither latest nor a version number"),
        ("AAHsecret", "123456789"),
    ),  # fmt: skip
    Case(
        "mapping-form secret with a path and a negative version",
        plan_with(lambda services: services["ibkr"]["secrets"].update(TELEGRAM_TOKEN={"secret": "../../bad name!", "version": -7})),
        2,
        ("TELEGRAM_TOKEN is not a Secret Manager secret name",),
    ),  # fmt: skip
    # 21. serviceAccount
    Case(
        "serviceAccount that is not an email",
        plan_with(lambda services: services["ibkr"].update(serviceAccount="runtime")),
        2,
        ("services.ibkr.serviceAccount: is not a service account email",),
    ),  # fmt: skip
    Case(
        "serviceAccount of another project, not said explicitly",
        plan_with(lambda services: services["ibkr"].update(serviceAccount="x-runtime@someoneelse.iam.gserviceaccount.com")),
        2,
        ("belongs to project someoneelse", "serviceAccountProject"),
    ),  # fmt: skip
    # 24. dryRunOnly is true, false or keep: YAML 1.1's off/no are strings, and refused
    Case(
        "dryRunOnly: off",
        plan_of(PROD_TEXT.replace("dryRunOnly: keep", "dryRunOnly: off", 1)),
        2,
        ("services.ibkr.dryRunOnly", "use true, false or keep"),
    ),  # fmt: skip
    Case(
        "dryRunOnly: no",
        plan_of(PROD_TEXT.replace("dryRunOnly: keep", "dryRunOnly: no", 1)),
        2,
        ("services.ibkr.dryRunOnly", "use true, false or keep"),
    ),  # fmt: skip
    # 25. one spelling per key
    Case(
        "snake_case strategy_profile",
        plan_of(PROD_TEXT.replace("strategyProfile:", "strategy_profile:", 1)),
        2,
        ("services.ibkr.strategy_profile: is not a known field; did you mean strategyProfile?",),
        ("strategyProfile: is required",),
    ),  # fmt: skip
    Case(
        "snake_case release key",
        plan_of(PROD_TEXT.replace("quantPlatformKit:", "quant_platform_kit:", 1)),
        2,
        ("release.quant_platform_kit: is not a known field; did you mean quantPlatformKit?",),
    ),  # fmt: skip
    # 22. verify reads no source (it judges by the profile facts of a lock), and a missing lock is bad input
    Case(
        "verify --lock missing",
        lambda tmp: ["verify", "--live", str(healthy_live(tmp)), "--lock", str(tmp / "missing.json")],
        2,
        ("missing.json: no lock",),
    ),  # fmt: skip
    Case(
        "verify --source git",
        lambda tmp: ["verify", "--lock", prod_lock_path(), "--live", str(healthy_live(tmp)), "--source", "git"],
        2,
        ("unrecognized arguments: --source",),
    ),  # fmt: skip
    # An error quoting a path (or a gcloud line) stays one paragraph.
    Case(
        "newline in a --live path",
        lambda tmp: ["verify", "--live", str(tmp / "x\nPlan: can proceed")],
        2,
        ("x\\nPlan: can proceed: does not exist",),
        ("\nPlan: can proceed",),
    ),  # fmt: skip
    # Numbers, tags and characters two YAML readers see differently; errors never quote the offending line.
    Case(
        "5000-digit integer in the stack file",
        plan_of(PROD_TEXT.replace("      dryRunOnly: keep\n", "      dryRunOnly: keep\n      big: " + "9" * 5000 + "\n", 1)),
        2,
        ("an integer of 5000 digits is too long to read",),
    ),  # fmt: skip
    Case(
        "service keyed by a number",
        plan_of(PROD_TEXT.replace("    ibkr:\n", "    123:\n", 1)),
        2,
        ("services.123: service keys are strings",),
    ),  # fmt: skip
    Case(
        "YAML syntax error on a line holding a credential",
        plan_of(PROD_TEXT.replace("      dryRunOnly: keep\n", f'      dryRunOnly: keep\n      token: "{CREDENTIAL}\n  x: [\n', 1)),
        2,
        ("is not valid YAML", "line"),
        ("AAHsecret", "123456789"),
    ),  # fmt: skip
    Case("!!binary value", plan_of(PROD_TEXT.replace("dryRunOnly: keep", "dryRunOnly: !!binary aGVsbG8=", 1)), 2, ("YAML tag !!binary",)),
    Case(
        "U+0085 in a stack value",
        plan_of(PROD_TEXT.replace("NOTIFY_LANG: zh", "NOTIFY_LANG: z\u0085h", 1)),
        2,
        ("holds U+0085 at line",),
    ),  # fmt: skip
    Case(
        "bidi mark U+061C in a stack value",
        plan_of(PROD_TEXT.replace("NOTIFY_LANG: zh", "NOTIFY_LANG: z\u061ch", 1)),
        2,
        ("contains a control character (U+061C)",),
        ("\u061c",),
    ),  # fmt: skip
    Case(
        "Cloud Run reserved env names",
        plan_with(lambda services: (services["ibkr"]["env"].update(PORT="8081"), services["ibkr"]["secrets"].update(K_REVISION="x"))),
        2,
        ("services.ibkr.env.PORT: is set by Cloud Run itself", "services.ibkr.secrets.K_REVISION: is set by Cloud Run itself"),
    ),  # fmt: skip
    Case(
        "ESC in a --config-file path",
        lambda tmp: ["plan", "--config-file", str(stack_text(tmp, "config: [", "Pulumi.\x1b[2Jx.yaml"))],
        2,
        ("Pulumi.\\x1b[2Jx.yaml",),
        ("\x1b",),
    ),  # fmt: skip
    Case(
        "Cyrillic look-alike bucket in a snapshot path",
        plan_of(PROD_TEXT.replace("gs://qsl-runtime-logs-shared/", "gs://qsl-runtime-l\u043egs-shared/", 1)),
        2,
        ("does not name a Cloud Storage bucket",),
    ),  # fmt: skip
    Case(
        "unknown region",
        plan_of(PROD_TEXT.replace("region: us-central1", "region: mars-north1", 1)),
        2,
        ("'mars-north1' is not a Cloud Run region",),
    ),  # fmt: skip
    Case(
        "image path with ..",
        plan_of(PROD_TEXT.replace("/cloud-run-source-deploy/", "/cloud-run-source-deploy/../", 1)),
        2,
        ("is not an image reference",),
    ),  # fmt: skip
    Case(
        "--stack and --config-file together",
        lambda tmp: ["plan", "--stack", "staging", "--config-file", str(stack_text(tmp, PROD_TEXT))],
        2,
        ("--stack and --config-file name the stack twice",),
    ),  # fmt: skip
    # A stack name becomes a file name: it must not steer the path.
    Case("--stack with a path", lambda tmp: ["plan", "--stack", "../../etc/passwd"], 2, ("--stack is not a stack name",)),
]


def _run(case: Case, tmp: Path) -> tuple[Any, str, float]:
    argv = case.build(tmp)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("GITHUB_", "CUTOVER_"))}
    env["GITHUB_API_URL"] = "http://127.0.0.1:9"  # discard port: refused at once, never the network
    started = time.monotonic()
    try:
        done = subprocess.run(
            [sys.executable, "-m", "release", *argv], cwd=PROJECT_ROOT, env=env, capture_output=True, text=True,
            timeout=case.seconds, stdin=subprocess.DEVNULL,
        )  # fmt: skip
    except subprocess.TimeoutExpired:
        return None, f"timed out after {case.seconds}s", case.seconds
    return done.returncode, done.stdout + done.stderr, time.monotonic() - started


@pytest.fixture(scope="module")
def outcomes(tmp_path_factory) -> dict[str, tuple[Any, str, float]]:
    def one(case: Case) -> tuple[str, tuple[Any, str, float]]:
        return case.name, _run(case, tmp_path_factory.mktemp("hostile"))

    with ThreadPoolExecutor(max_workers=3) as pool:
        return dict(pool.map(one, CASES))


@pytest.mark.parametrize("case", CASES, ids=[case.name for case in CASES])
def test_hostile_input(case: Case, outcomes) -> None:
    code, output, _ = outcomes[case.name]
    assert code == case.exit_code, output
    for text in case.must:
        assert text in output, output
    for text in (*ALWAYS_FORBIDDEN, *case.must_not):
        assert text not in output, output


def test_case_names_are_unique() -> None:
    assert len({case.name for case in CASES}) == len(CASES)
