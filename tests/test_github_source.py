import json
import socket
import time

import pytest

from release.gate.checks import run_gate
from release.gate.fetch import run_sync
from release.gate.github_source import GitHubSource
from release.gate.sources import TagNotFound
from tests.fixtures.git_repos import prod_config
from tests.fixtures.github_fake import IBKR, OWNER, QPK, SEED_TARGET_COMMITS, UES, fake_sha, prod_seed_repos, running

TOKEN = "ghp_test_token_never_printed_0123456789"


def ask(source, method: str, *args):
    async def run():
        async with source:
            return await getattr(source, method)(*args)

    return run_sync(run)


def source_for(fake, **kwargs) -> GitHubSource:
    kwargs.setdefault("backoff", 0.0)
    kwargs.setdefault("timeout", 1)
    return GitHubSource(OWNER, base_url=fake.base_url, **kwargs)


def test_prod_stack_passes_with_few_requests_and_none_repeated(seed_fake):
    source = source_for(seed_fake)
    report = run_gate(prod_config(), source)
    assert report.ok, report.render_text()
    # QPK tag (lightweight) 1 + UES tag (annotated) 2; per package commit and per distinct platform commit
    # (longbridge-hk/-sg share one): the listing, the tarball's redirect and the archive it leads to,
    # 5 trees x 3 = 15; CI status and check runs per platform commit 6: 24, none asked twice.
    assert len(seed_fake.requests) == 24, seed_fake.requests
    assert seed_fake.count("/_codeload/") == 5 and seed_fake.count("/tarball/") == 5 and seed_fake.count("/git/trees/") == 5
    assert len(set(seed_fake.requests)) == len(seed_fake.requests)
    one_at_a_time = source_for(seed_fake, concurrency=1)
    assert run_gate(prod_config(), one_at_a_time).render_text() == report.render_text()  # the same facts, one request at a time
    assert len(seed_fake.requests) == 2 * 24


def test_missing_tag_is_a_definite_failure(seed_fake):
    report = run_gate(prod_config(qpk="v0.7.11"), source_for(seed_fake))
    check = next(c for c in report.checks if c.id == "qpk-tag")
    assert check.status == "failed" and "v0.7.11" in check.message and f"{OWNER}/{QPK}" in check.message
    assert not report.unreachable


def test_a_branch_of_the_tag_name_does_not_count(seed_fake):
    seed_fake.repos[f"{OWNER}/{QPK}"].branches["v0.7.11"] = fake_sha(QPK, "v0.7.10")
    with pytest.raises(TagNotFound):
        ask(source_for(seed_fake), "resolve_tag", QPK, "v0.7.11")


def test_server_error_is_retried_then_succeeds(seed_fake):
    tree = f"{IBKR}/git/trees/{SEED_TARGET_COMMITS[IBKR]}"
    seed_fake.add_fault(tree, "500", times=1)
    report = run_gate(prod_config(), source_for(seed_fake))
    assert report.ok, report.render_text()
    assert seed_fake.count(tree) == 2 and len(seed_fake.requests) == 25


def test_persistent_server_error_is_bounded_and_unreachable(seed_fake):
    seed_fake.add_fault("/git/ref/tags/v0.7.10", "500")
    report = run_gate(prod_config(), source_for(seed_fake, retries=2))
    assert not report.ok and report.unverified and report.unreachable
    assert seed_fake.count("/git/ref/tags/v0.7.10") == 3  # 1 try + 2 retries
    assert "500" in next(c for c in report.checks if c.id == "qpk-tag").message
    # a fault of one question is that question's: the others are still answered
    assert next(c for c in report.checks if c.id == "ues-tag").status == "passed"


@pytest.mark.parametrize("concurrency", [1, 8])
def test_rate_limit_fails_closed_at_once_without_waiting_for_the_reset(seed_fake, concurrency):
    seed_fake.add_fault("/git/ref/tags/", "ratelimit")
    # The first round also asks for platform trees and CI (their commits are in the config): the limit stops
    # them in flight (slowed, so the limit is known first), and nothing is started after it.
    for path in ("/git/trees/", "/tarball/", "/status", "/check-runs"):
        seed_fake.slow_paths[path] = 0.5
    report = run_gate(prod_config(), source_for(seed_fake, concurrency=concurrency))
    qpk = next(c for c in report.checks if c.id == "qpk-tag")
    assert qpk.status == "error" and "rate limit" in qpk.message and "GITHUB_TOKEN" in qpk.message
    assert report.unreachable and not report.ok
    assert all(c.status in ("error", "skipped") for c in report.checks)
    if concurrency == 1:
        # one at a time: QPK's archive by the tag's name, then its ref, which meets the limit; nothing after
        assert seed_fake.requests == [f"GET /repos/{OWNER}/{QPK}/tarball/v0.7.10", f"GET /repos/{OWNER}/{QPK}/git/ref/tags/v0.7.10"]
    else:  # the first round went out together; nothing it would have opened was asked after the limit
        assert seed_fake.count("/_codeload/") == 0 and seed_fake.count("/git/tags/") == 0


def test_hanging_response_times_out_once_and_names_the_call(seed_fake):
    seed_fake.add_fault("UsEquityStrategies/git/ref", "hang")
    report = run_gate(prod_config(), source_for(seed_fake, timeout=1))
    ues = next(c for c in report.checks if c.id == "ues-tag")
    assert ues.status == "error" and "timed out" in ues.message and "/UsEquityStrategies/git/ref/tags/v0.7.13" in ues.message
    assert seed_fake.count("UsEquityStrategies/git/ref") == 1
    assert next(c for c in report.checks if c.id == "qpk-tag").status == "passed"


@pytest.mark.parametrize("concurrency", [1, 8])
def test_total_budget_stops_new_calls(seed_fake, concurrency):
    seed_fake.latency = 0.15
    started = time.monotonic()
    report = run_gate(prod_config(), source_for(seed_fake, total_timeout=0.4, timeout=5, concurrency=concurrency))
    assert time.monotonic() - started < 0.4 + 0.8  # the budget, not 5 s per request, bounds the run
    assert not report.ok and report.unreachable
    assert any("budget" in c.message for c in report.checks)
    if concurrency == 1:
        assert len(seed_fake.requests) <= 3  # 0.4 s holds at most three 0.15 s answers one after another


def test_malformed_response_is_an_error_but_not_unreachable(seed_fake):
    seed_fake.add_fault(f"git/trees/{SEED_TARGET_COMMITS[IBKR]}", "malformed")
    report = run_gate(prod_config(), source_for(seed_fake))
    check = next(c for c in report.checks if c.id == "platform-pins:ibkr")
    assert check.status == "error" and "malformed" in check.message and not check.unreachable
    assert next(c for c in report.checks if c.id == "platform-pins:schwab").status == "passed"


def test_unknown_platform_commit_fails_naming_the_service(seed_fake):
    report = run_gate(prod_config({IBKR: "1" * 40}), source_for(seed_fake))
    check = next(c for c in report.checks if c.id == "platform-pins:ibkr")
    assert check.status == "failed" and "1111111" in check.message and "not found" in check.message


@pytest.mark.parametrize("ci, word", [("red", "failed"), ("pending", "still running"), ("none", "no CI result")])
def test_platform_ci_must_be_green(ci, word):
    repos = prod_seed_repos()
    repo = repos[f"{OWNER}/{IBKR}"]
    repo.add_commit(SEED_TARGET_COMMITS[IBKR], repo.commits[SEED_TARGET_COMMITS[IBKR]], ci=ci)
    if ci == "none":
        del repo.statuses[SEED_TARGET_COMMITS[IBKR]], repo.check_runs[SEED_TARGET_COMMITS[IBKR]]
    with running(repos) as fake:
        report = run_gate(prod_config(), source_for(fake))
    check = next(c for c in report.checks if c.id == "platform-ci:ibkr")
    assert check.status == "failed" and word in check.message
    assert next(c for c in report.checks if c.id == "platform-ci:schwab").status == "passed"


def test_connection_refused_is_unreachable():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # closed again before the gate runs: nothing listens there
    report = run_gate(prod_config(), GitHubSource(OWNER, base_url=f"http://127.0.0.1:{port}", timeout=1, retries=1, backoff=0.0))
    assert report.unreachable and not report.ok
    assert "cannot connect" in next(c for c in report.checks if c.id == "qpk-tag").message


def test_token_is_sent_but_never_printed(seed_fake):
    seed_fake.add_fault("UsEquityStrategies/git/ref", "ratelimit")
    source = source_for(seed_fake, token=TOKEN)
    report = run_gate(prod_config(), source)
    assert any(TOKEN in (header or "") for header in seed_fake.auth_headers)
    printed = report.render_text() + json.dumps(report.to_json()) + source.describe()
    assert TOKEN not in printed and "token from GITHUB_TOKEN" in printed


def test_an_archive_by_the_tags_name_counts_only_when_it_is_the_resolved_commits_tree(seed_fake):
    """A tag's archive is fetched by name while the tag resolves; when the name meant another commit by
    then (a tag moved, a branch of the same name), the archive by the commit is fetched instead."""
    expected = run_gate(prod_config(), source_for(seed_fake)).render_text()
    asked = len(seed_fake.requests)
    seed_fake.archives_by_name[(UES, "v0.7.13")] = fake_sha(UES, "v0.7.12")
    report = run_gate(prod_config(), source_for(seed_fake))
    assert report.render_text() == expected
    again = seed_fake.requests[asked:]
    ues_commit = seed_fake.repos[f"{OWNER}/{UES}"].tags["v0.7.13"].commit
    assert f"GET /repos/{OWNER}/{UES}/tarball/v0.7.13" in again and f"GET /repos/{OWNER}/{UES}/tarball/{ues_commit}" in again
    assert len(again) == asked + 2  # the archive by the commit: its redirect and the archive
