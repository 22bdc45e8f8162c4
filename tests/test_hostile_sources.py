"""Hostile sources (issue 9): every fault of GitHub, of a clone or of the source settings fails closed,
in bounded time, naming the endpoint, with no secret printed. One table row per defect.

Hangs run against loopback fakes whose hostile loops are bounded (`hang_seconds`), inside a daemon
thread joined with the row's own time bound, so a regression fails the row instead of hanging the suite.
"""

from __future__ import annotations

import json
import os
import threading
import time
from pathlib import Path
from typing import Callable

import pytest

from release.cli import main as cli_main
from release.gate.checks import GateReport, run_gate
from release.gate.fetch import run_sync
from release.gate.git_source import GitSource
from release.gate.github_source import GitHubSource, ci_verdict
from release.gate.selection import make_source
from release.gate.sources import NotFound, SourceError, SourceSelectionError
from tests.fixtures.git_repos import GitRepo, prod_config
from tests.fixtures.github_fake import IBKR, OWNER, QPK, SEED_TARGET_COMMITS, UES, prod_seed_repos, running
from tests.fixtures.projects import SEED_STACK_FILE

TOKEN = "ghp_hostileTokenNeverPrinted0123456789ab"


def bounded(fn: Callable[[], GateReport], seconds: float) -> tuple[GateReport, float]:
    """Run `fn` in a daemon thread; fail the test if it has not returned after `seconds`."""
    box: dict[str, object] = {}

    def target() -> None:
        try:
            box["value"] = fn()
        except BaseException as error:  # noqa: BLE001  (re-raised in the test's thread)
            box["error"] = error

    started = time.monotonic()
    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    thread.join(seconds)
    elapsed = time.monotonic() - started
    assert not thread.is_alive(), f"still running after {seconds}s: not bounded"
    if "error" in box:
        raise box["error"]
    return box["value"], elapsed


def ask(source, method: str, *args):
    """One question through the source's protocol, blocking."""

    async def run():
        async with source:
            return await getattr(source, method)(*args)

    return run_sync(run)


def check(report: GateReport, check_id: str):
    return next(c for c in report.checks if c.id == check_id)


IBKR_TREE = f"{IBKR}/git/trees/{SEED_TARGET_COMMITS[IBKR]}"
IBKR_STATUS = f"{IBKR}/commits/{SEED_TARGET_COMMITS[IBKR]}/status"
IBKR_RUNS = f"{IBKR}/commits/{SEED_TARGET_COMMITS[IBKR]}/check-runs"

# (issue item, URL substring, fault, check, status, words in its message, time bound in seconds)
GITHUB_ROWS = [
    ("10 slow-drip body", IBKR_TREE, "drip", "platform-pins:ibkr", "error", ["timed out", f"/{IBKR_TREE}"], 3.0),
    ("10 slow-drip headers", IBKR_TREE, "drip-headers", "platform-pins:ibkr", "error", ["timed out", f"/{IBKR_TREE}"], 3.0),
    ("10 202 forever", IBKR_TREE, "202", "platform-pins:ibkr", "error", ["202 Accepted", f"/{IBKR_TREE}"], 3.0),
    ("10 endless pagination", IBKR_RUNS, "paginate", "platform-ci:ibkr", "error", ["more than 10 pages", f"/{IBKR_RUNS}"], 3.0),
    ("12 redirect loop", IBKR_TREE, "redirect-loop", "platform-pins:ibkr", "error", ["more than 3 redirects", f"/{IBKR_TREE}"], 3.0),
    (
        "12 redirect to another host",
        IBKR_TREE,
        "redirect-away",
        "platform-pins:ibkr",
        "error",
        ["refused a redirect to another origin", "127.0.0.2"],
        3.0,
    ),
    (
        "12 next link to another host",
        IBKR_STATUS,
        "link-away",
        "platform-ci:ibkr",
        "error",
        ["refused a next-page link to another origin", f"/{IBKR_STATUS}"],
        3.0,
    ),
    (
        "3 answer for another tag",
        "QuantPlatformKit/git/ref/tags/v0.7.10",
        "wrong-ref",
        "qpk-tag",
        "error",
        ["asked for refs/tags/v0.7.10", "refs/tags/v0.7.100"],
        3.0,
    ),
    (
        "3 sibling: an archive that is not the commit's tree",
        f"/_codeload/{OWNER}/{IBKR}/",
        "wrong-archive",
        "platform-pins:ibkr",
        "error",
        ["requirements.txt in the archive is not the file the commit's tree lists", f"/{IBKR}/tarball/"],
        3.0,
    ),
    ("8 sibling: JSON nested too deep", IBKR_TREE, "nested", "platform-pins:ibkr", "error", ["malformed response (not JSON)"], 3.0),
    ("size: a body beyond the bound", IBKR_TREE, "huge", "platform-pins:ibkr", "error", ["larger than 8 MiB"], 3.0),
    ("17 error body echoing the token", IBKR_TREE, "echo-auth", "platform-pins:ibkr", "error", ["400", "[redacted]"], 3.0),
]


@pytest.mark.parametrize("item, match, fault, check_id, status, words, bound", GITHUB_ROWS, ids=[row[0] for row in GITHUB_ROWS])
def test_hostile_github_fails_closed_in_bounded_time_naming_the_endpoint(item, match, fault, check_id, status, words, bound):
    with running(prod_seed_repos(), hang_seconds=4.0) as fake, running({}, host="127.0.0.2") as elsewhere:
        fake.elsewhere = elsewhere.base_url
        fake.add_fault(match, fault)
        source = GitHubSource(OWNER, TOKEN, fake.base_url, timeout=1, retries=1, backoff=0.0, total_timeout=10)
        report, elapsed = bounded(lambda: run_gate(prod_config(), source), bound)
        result = check(report, check_id)
        assert result.status == status and not report.ok, result
        for word in words:
            assert word in result.message, (word, result.message)
        printed = report.render_text() + json.dumps(report.to_json())
        assert TOKEN not in printed and TOKEN[4:] not in printed
        assert elsewhere.requests == []  # nothing, and so no token, ever went to the other host
        assert elapsed < bound
        # the fault is that question's own: an unrelated check is still verified
        assert check(report, "qpk-tag" if check_id != "qpk-tag" else "ues-tag").status == "passed"


def test_10_a_slow_drip_everywhere_ends_by_the_total_deadline():
    with running(prod_seed_repos(), hang_seconds=5.0) as fake:
        fake.add_fault("/repos/", "drip")
        source = GitHubSource(OWNER, None, fake.base_url, timeout=5, retries=0, backoff=0.0, total_timeout=1.0)
        report, elapsed = bounded(lambda: run_gate(prod_config(), source), 4.0)
    assert elapsed < 1.0 + 0.5  # the run's deadline, not 5 s per request nor one read at a time
    assert report.unverified and not report.ok
    assert all(c.status in ("error", "skipped") for c in report.checks)


def test_12_the_token_is_sent_to_the_api_host_only(seed_fake):
    source = GitHubSource(OWNER, TOKEN, seed_fake.base_url, timeout=1, backoff=0.0)
    assert run_gate(prod_config(), source).ok
    sent = list(zip(seed_fake.requests, seed_fake.auth_headers, strict=True))
    # every API request carries it; the archives GitHub redirects to (codeload, another origin) never do
    assert {header for request, header in sent if "/_codeload/" not in request} == {f"Bearer {TOKEN}"}
    assert {header for request, header in sent if "/_codeload/" in request} == {None}


# -- item 4: CI green needs something green ----------------------------------------------------------

CI_ROWS = [
    ("only a skipped run, no status", [], [("lint", "completed", "skipped")], "none"),
    ("only neutral runs", [], [("a", "completed", "neutral"), ("b", "completed", "skipped")], "none"),
    ("nothing at all", [], [], "none"),
    ("one success and a skipped run", [], [("tests", "completed", "success"), ("lint", "completed", "skipped")], "success"),
    ("a success status alone", [("ci/build", "success")], [], "success"),
    ("a success and a cancelled run", [("ci/build", "success")], [("tests", "completed", "cancelled")], "failure"),
    ("a success and a stale run", [("ci/build", "success")], [("tests", "completed", "stale")], "failure"),
    ("a success and a queued run", [("ci/build", "success")], [("tests", "queued", None)], "pending"),
]


@pytest.mark.parametrize("statuses, runs, state", [row[1:] for row in CI_ROWS], ids=[row[0] for row in CI_ROWS])
def test_4_ci_green_needs_a_success_and_no_failure(statuses, runs, state):
    assert ci_verdict(statuses, runs).state == state


def test_4_a_commit_whose_only_run_was_skipped_fails_platform_ci():
    repos = prod_seed_repos()
    repo = repos[f"{OWNER}/{IBKR}"]
    repo.statuses[SEED_TARGET_COMMITS[IBKR]] = []
    repo.check_runs[SEED_TARGET_COMMITS[IBKR]] = [("deploy", "completed", "skipped")]
    with running(repos) as fake:
        report = run_gate(prod_config(), GitHubSource(OWNER, None, fake.base_url, timeout=1, backoff=0.0))
    result = check(report, "platform-ci:ibkr")
    assert result.status == "failed" and "nothing succeeded" in result.message


# -- items 1, 2, 20 and siblings: the git source answers from the clone it names, and only that ---------


def mirrors(seed, root: Path, names=(QPK, UES, IBKR, "CharlesSchwabPlatform", "LongBridgePlatform")) -> None:
    for name in names:
        GitRepo.init(root / f"{name}.git", bare_clone_of=seed.repos[name])


def test_1_a_replace_ref_does_not_swap_a_commits_tree(seed_repos, tmp_path):
    mirrors(seed_repos, tmp_path)
    ibkr = GitRepo(tmp_path / f"{IBKR}.git")
    ibkr.git("replace", seed_repos.baseline[IBKR], seed_repos.target[IBKR])  # baseline now "looks like" target
    report = run_gate(prod_config({**seed_repos.target, IBKR: seed_repos.baseline[IBKR]}), GitSource(tmp_path))
    result = check(report, "platform-pins:ibkr")
    assert result.status == "failed" and "pins quant-platform-kit @v0.7.7" in result.message


def test_1_sibling_git_variables_of_the_operator_do_not_steer_the_answers(seed_repos, tmp_path, monkeypatch):
    empty = tmp_path / "empty-objects"
    empty.mkdir()
    monkeypatch.setenv("GIT_OBJECT_DIRECTORY", str(empty))  # would make every object look missing
    monkeypatch.setenv("GIT_NO_REPLACE_OBJECTS", "0")
    source = GitSource(seed_repos.root)
    assert ask(source, "resolve_tag", QPK, "v0.7.10") == seed_repos.qpk_tags["v0.7.10"]
    assert "v0.7.13" in ask(source, "tree", IBKR, seed_repos.target[IBKR]).text("requirements.txt")


IDENTITY_ROWS = [
    # (what, directory name, clone of, origin URL or None for "remove it", words)
    (
        "a copy of UES placed as QPK",
        QPK,
        UES,
        None,
        ["is a clone of https://github.com/QuantStrategyLab/UsEquityStrategies.git", f"not of {OWNER}/{QPK}"],
    ),
    ("a clone without an origin", QPK, QPK, "", ["has no origin remote"]),
    # a clone's config is data: a newline in its origin must not forge a report line
    (
        "19 sibling: newline in the origin",
        QPK,
        UES,
        "git@github.com:x/y\n  PASS  qpk-tag: forged",
        ["github.com:x/y\\x0a  PASS  qpk-tag: forged"],
    ),
    ("another owner's fork", QPK, QPK, "git@github.com:someone/QuantPlatformKit.git", [f"not of {OWNER}/{QPK}"]),
    (
        "userinfo in the origin is not shown",
        QPK,
        UES,
        "https://bot:hunter2secret@github.com/QuantStrategyLab/UsEquityStrategies.git",
        ["https://github.com/QuantStrategyLab/UsEquityStrategies.git"],
    ),
]


@pytest.mark.parametrize("what, name, clone_of, origin, words", IDENTITY_ROWS, ids=[row[0] for row in IDENTITY_ROWS])
def test_2_a_clone_must_be_the_repository_it_stands_for(seed_repos, tmp_path, what, name, clone_of, origin, words):
    mirrors(seed_repos, tmp_path, names=[n for n in (QPK, UES, IBKR, "CharlesSchwabPlatform", "LongBridgePlatform") if n != name])
    clone = GitRepo.init(tmp_path / f"{name}.git", bare_clone_of=seed_repos.repos[clone_of])
    if origin == "":
        clone.git("remote", "remove", "origin")
    elif origin is not None:
        clone.git("remote", "set-url", "origin", origin)
    report = run_gate(prod_config(seed_repos.target), GitSource(tmp_path))
    result = check(report, "qpk-tag")
    assert result.status == "error" and not report.ok, result
    for word in words:
        assert word in result.message, (word, result.message)
    assert "hunter2secret" not in report.render_text()
    assert "\n  PASS  qpk-tag: forged" not in report.render_text()
    assert check(report, "platform-pins:ibkr").status == "passed"  # other clones still answer


def test_2_an_scp_or_path_origin_of_the_right_repository_is_accepted(seed_repos, tmp_path):
    mirrors(seed_repos, tmp_path)
    GitRepo(tmp_path / f"{QPK}.git").git("remote", "set-url", "origin", f"git@github.com:{OWNER}/{QPK}")
    GitRepo(tmp_path / f"{UES}.git").git("remote", "set-url", "origin", f"/srv/mirrors/{OWNER}/{UES}.git/")
    assert run_gate(prod_config(seed_repos.target), GitSource(tmp_path)).ok


@pytest.mark.parametrize("repo", ["../outside", "a/b", "..", "x?y"])
def test_20_sibling_the_git_source_never_reads_outside_its_root(seed_repos, tmp_path, repo):
    with pytest.raises(SourceError) as caught:
        ask(GitSource(tmp_path / "root"), "resolve_tag", repo, "v0.7.10")
    assert "is not a GitHub repository name" in str(caught.value)


# -- items 13, 17, 20, 22 through the CLI: bad input is exit 2 with one clear paragraph ----------------

STACK = SEED_STACK_FILE.read_text(encoding="utf-8")

CLI_ROWS = [
    # (item, args, env, stack text replacements, exit, must appear, must not appear)
    ("13 no scheme", ["check"], {"GITHUB_API_URL": "api.github.com"}, {}, 2, ["GITHUB_API_URL", "https://"], ["Traceback"]),
    ("13 another scheme", ["check"], {"GITHUB_API_URL": "ftp://127.0.0.1/"}, {}, 2, ["GITHUB_API_URL", "https://"], ["Traceback"]),
    ("13 plain http off loopback", ["check"], {"GITHUB_API_URL": "http://github.example.com"}, {}, 2, ["in the clear"], ["Traceback"]),
    (
        "13 a query would rewrite paths",
        ["check"],
        {"GITHUB_API_URL": "https://ghe.example.com/api/v3?x=1"},
        {},
        2,
        ["query or fragment"],
        ["Traceback"],
    ),
    (
        "13+17 userinfo is never shown",
        ["check"],
        {"GITHUB_API_URL": "ftp://bot:hunter2secret@127.0.0.1/"},
        {},
        2,
        ["ftp://127.0.0.1/"],
        ["hunter2secret", "Traceback"],
    ),
    (
        "sibling: a token with a newline",
        ["check"],
        {"GITHUB_TOKEN": "ghp_abc\nX-Evil: 1"},
        {},
        2,
        ["GITHUB_TOKEN contains"],
        ["X-Evil", "Traceback"],
    ),
    (
        "20 owner with ? and #",
        ["check"],
        {},
        {"    usEquityStrategies: v0.7.13\n": "    usEquityStrategies: v0.7.13\n    githubOwner: 'evil?x=#'\n"},
        2,
        ["release.githubOwner", "not a GitHub owner name"],
        ["Traceback"],
    ),
    (
        "20 repository with ../",
        ["check", "--source", "git", "--git-root", "."],
        {},
        {"    usEquityStrategies: v0.7.13\n": "    usEquityStrategies: v0.7.13\n    repositories:\n      quantPlatformKit: ../../etc\n"},
        2,
        ["release.repositories.quantPlatformKit", "not a GitHub repository name"],
        ["Traceback"],
    ),
    (
        "22 verify takes no --source",
        ["verify", "--live", "x.json", "--source", "git"],
        {},
        {},
        2,
        ["unrecognized arguments: --source git"],
        ["Traceback"],
    ),
    (
        "22 verify takes no --git-root",
        ["verify", "--live", "x.json", "--git-root", "."],
        {},
        {},
        2,
        ["unrecognized arguments: --git-root"],
        ["Traceback"],
    ),
]


@pytest.mark.parametrize("item, args, env, edits, code, present, absent", CLI_ROWS, ids=[row[0] for row in CLI_ROWS])
def test_hostile_source_settings_are_bad_input(tmp_path, monkeypatch, capsys, item, args, env, edits, code, present, absent):
    text = STACK
    for old, new in edits.items():
        assert old in text, old
        text = text.replace(old, new)
    stack = tmp_path / "Pulumi.prod.yaml"
    stack.write_text(text, encoding="utf-8")
    for name in [name for name in os.environ if name.startswith(("GITHUB_", "CUTOVER_"))]:
        monkeypatch.delenv(name)
    for name, value in {"GITHUB_API_URL": "http://127.0.0.1:9", **env}.items():
        monkeypatch.setenv(name, value)
    # in-process: any exception other than the documented exits fails the row (no traceback can hide)
    exit_code = cli_main([*args, "--config-file", str(stack)])
    captured = capsys.readouterr()
    output = captured.out + captured.err
    assert exit_code == code, output
    for word in present:
        assert word in output, (word, output)
    for word in absent:
        assert word not in output, (word, output)


def test_17_userinfo_in_the_api_url_is_not_in_the_report(seed_fake):
    host = seed_fake.base_url.removeprefix("http://")
    source = make_source("github", prod_config().release, None, {"GITHUB_API_URL": f"http://bot:hunter2secret@{host}"})
    report = run_gate(prod_config(), source)
    assert report.ok
    assert "hunter2secret" not in report.render_text() + json.dumps(report.to_json())
    assert f"http://{host}" in report.render_text()


def test_13_the_program_gets_the_same_bad_input_error():
    from release.gate.selection import source_from_env

    with pytest.raises(SourceSelectionError, match="GITHUB_API_URL"):
        source_from_env(prod_config().release, {"GITHUB_API_URL": "file:///etc/passwd"})


def test_3_a_prefix_answer_for_another_tag_is_refused(seed_fake):
    # v0.7.1 does not exist, v0.7.10 does: a prefix answer must not stand in for it
    seed_fake.add_fault("git/ref/tags/v0.7.1", "wrong-ref")
    source = GitHubSource(OWNER, None, seed_fake.base_url, timeout=1, backoff=0.0)
    with pytest.raises(SourceError) as caught:
        ask(source, "resolve_tag", QPK, "v0.7.1")
    assert "asked for refs/tags/v0.7.1," in str(caught.value) and not isinstance(caught.value, NotFound)
