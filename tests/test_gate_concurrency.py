"""The gate asks GitHub concurrently (issue 13): same report as one question at a time, bounded pool,
per-run cache, and a slow branch that only un-verifies its own checks within the deadline."""

from __future__ import annotations

import json
import re
import time

import pytest

from release.gate.checks import run_gate
from release.gate.github_source import GitHubSource
from tests.fixtures.generated_stack import generated_stack
from tests.fixtures.git_repos import prod_config
from tests.fixtures.github_fake import IBKR, OWNER, QPK, SCHWAB, SEED_TARGET_COMMITS, UES, fake_sha, prod_seed_repos, running

IBKR_TARGET = SEED_TARGET_COMMITS[IBKR]
UES_TAG = prod_config().release.us_equity_strategies


def source(fake, concurrency: int, token=None, **kwargs) -> GitHubSource:
    kwargs.setdefault("timeout", 1)
    return GitHubSource(OWNER, token, fake.base_url, backoff=0.0, concurrency=concurrency, **kwargs)


def outcome(report) -> tuple[str, str]:
    return report.render_text(), json.dumps(report.to_json(), sort_keys=True)


# (scenario, faults [(URL substring, kind)], config overrides)
SCENARIOS = [
    ("healthy", [], {}),
    ("unknown QPK tag", [], {"qpk": "v0.7.9"}),
    ("UES tag 404", [("UsEquityStrategies/git/ref/tags/v0.7.13", "404")], {}),
    ("persistent 500 on a tree", [(f"git/trees/{IBKR_TARGET}", "500")], {}),
    ("malformed blob", [("/git/blobs/", "malformed")], {}),
    ("rate limit on one tag", [("QuantPlatformKit/git/ref", "ratelimit")], {}),
    ("rate limit on CI", [("/check-runs", "ratelimit")], {}),
    ("202 forever on CI status", [("/status", "202")], {}),
    ("stale platform commits", [], {"commits": "baseline"}),
    ("unknown platform commit", [], {"commits": {IBKR: "1" * 40}}),
    ("wrong ref answer", [("QuantPlatformKit/git/ref", "wrong-ref")], {}),
]


def config_for(overrides: dict):
    commits = overrides.get("commits")
    if commits == "baseline":
        from tests.fixtures.github_fake import seed_baseline_commit

        commits = {repo: seed_baseline_commit(repo) for repo in SEED_TARGET_COMMITS}
    return prod_config(commits, qpk=overrides.get("qpk"))


@pytest.mark.parametrize("scenario, faults, overrides", SCENARIOS, ids=[row[0] for row in SCENARIOS])
def test_the_concurrent_report_equals_the_sequential_one(scenario, faults, overrides):
    results = {}
    with running(prod_seed_repos(), latency=0.005, hang_seconds=2.0) as fake:  # one fake: one URL in both reports
        for match, kind in faults:
            fake.add_fault(match, kind)
        for concurrency in (1, 8):
            before = len(fake.requests)
            results[concurrency] = (outcome(run_gate(config_for(overrides), source(fake, concurrency))), fake.requests[before:])
    (sequential, asked_one_by_one), (concurrent, asked_together) = results[1], results[8]
    assert concurrent == sequential
    if not faults and "Release gate: PASS" in sequential[0]:
        assert blobs_by_id(asked_together) == blobs_by_id(by_tag_name(asked_one_by_one))  # only the tree asked another way


def blobs_by_id(asked: list[str]) -> list[str]:
    """`asked`, sorted, with each blob named by its id alone: a blob several repositories hold (the same
    requirements.txt) is fetched once, through whichever repository's question reached it first."""
    return sorted(re.sub(r"^GET /repos/[^/]+/[^/]+/git/blobs/", "GET git/blobs/", line) for line in asked)


def by_tag_name(asked: list[str]) -> list[str]:
    """What a concurrent run asks instead of a sequential run's `asked` (sorted): UES's tree by the tag's
    name, while the tag resolves, plus the tag commit's tree id that proves it, instead of by the commit."""
    tree_by_sha = next(line for line in asked if f"/{UES}/git/trees/" in line)
    commit = tree_by_sha.split("/git/trees/")[1].split("?")[0]
    instead = [
        f"GET /repos/{OWNER}/{UES}/git/trees/{UES_TAG}?recursive=1",
        f"GET /repos/{OWNER}/{UES}/git/commits/{commit}",
    ]
    return sorted([line for line in asked if line != tree_by_sha] + instead)


def test_the_generated_stack_report_equals_the_sequential_one_and_asks_each_object_once():
    config, repos = generated_stack(services=60, commits=12)
    results = {}
    with running(repos) as fake:
        for concurrency in (1, 8):
            before = len(fake.requests)
            report = run_gate(config, source(fake, concurrency))
            asked = fake.requests[before:]
            results[concurrency] = (outcome(report), sorted(asked))
            assert report.ok, report.render_text()
            assert len(set(asked)) == len(asked)  # per (repo, object), once per run
    assert results[8][0] == results[1][0]  # the same report
    assert blobs_by_id(results[8][1]) == blobs_by_id(by_tag_name(results[1][1]))  # the same requests but for UES's tree
    # per platform commit at least its tree, its own requirements.txt blob, CI status and check runs
    assert sum(1 for line in results[8][1] if "Platform/" in line) >= 12 * 4


@pytest.mark.parametrize("bound", [2, 5])
def test_the_pool_never_exceeds_its_bound(bound):
    config, repos = generated_stack(services=24, commits=8)
    with running(repos, latency=0.015) as fake:
        report = run_gate(config, source(fake, bound))
        assert report.ok
        assert fake.max_in_flight == bound  # reached (so the test can fail) and never exceeded


def test_a_slow_branch_past_the_deadline_unverifies_only_its_checks():
    budget, request_timeout = 0.6, 5.0
    with running(prod_seed_repos(), latency=0.01, hang_seconds=4.0) as fake:
        fake.slow_paths[f"{IBKR}/git/trees/{IBKR_TARGET}"] = 3.0  # answers long after the run's deadline
        started = time.monotonic()
        report = run_gate(prod_config(), source(fake, 8, timeout=request_timeout, total_timeout=budget))
        elapsed = time.monotonic() - started
    assert elapsed < budget + request_timeout  # the bound
    assert elapsed < budget + 1.0  # and in fact: outstanding requests are cut at the deadline (slack for a loaded machine)
    statuses = {check.id: check.status for check in report.checks}
    # the IBKR service's own checks, and pin-refs, which needs every pin
    unverified = {key for key in statuses if key.endswith(":ibkr")} | {"pin-refs"}
    assert {"platform-pins:ibkr", "platform-ci:ibkr"} <= unverified
    assert {key for key, status in statuses.items() if status == "error"} == unverified, report.render_text()
    assert all(status in ("passed", "skipped") for key, status in statuses.items() if key not in unverified)
    slow = next(check for check in report.checks if check.id == "platform-pins:ibkr")
    assert f"/repos/{OWNER}/{IBKR}/git/trees/{IBKR_TARGET}" in slow.message and "budget" in slow.message
    assert not report.ok and report.unverified


def test_a_commit_shared_by_services_is_asked_once_concurrently_too():
    with running(prod_seed_repos()) as fake:
        assert run_gate(prod_config(), source(fake, 8)).ok
        longbridge = SEED_TARGET_COMMITS["LongBridgePlatform"]
        assert fake.count(f"git/trees/{longbridge}") == 1 and fake.count(f"commits/{longbridge}/status") == 1
        assert fake.count(f"{QPK}/git/ref/tags/v0.7.10") == 1 and fake.count(f"{UES}/git/ref/tags/v0.7.13") == 1
        assert fake.count(f"{SCHWAB}/git/trees") == 1


@pytest.mark.parametrize("value, words", [("0", "1..32"), ("x", "a whole number"), ("99", "1..32")])
def test_the_pool_size_setting_is_validated(value, words):
    from release.gate.sources import SourceSelectionError, make_source

    with pytest.raises(SourceSelectionError, match=words):
        make_source("github", prod_config().release, None, {"CUTOVER_GATE_CONCURRENCY": value})


def test_the_pool_size_setting_is_used():
    from release.gate.sources import make_source

    assert make_source("github", prod_config().release, None, {"CUTOVER_GATE_CONCURRENCY": "3"}).concurrency == 3
    assert make_source("github", prod_config().release, None, {}).concurrency == 8


# -- GraphQL: several CI and blob questions in one query, REST as the fallback ---------------------------

GRAPHQL_TOKEN = "ghp_graphqlTokenForTheFake0123456789abcd"


@pytest.mark.parametrize("stack", ["prod", "generated"])
def test_graphql_answers_give_the_rest_report_with_fewer_requests(stack):
    config, repos = (prod_config(), prod_seed_repos()) if stack == "prod" else generated_stack(services=40, commits=10)
    with running(repos) as fake:
        rest = run_gate(config, source(fake, 8, token=GRAPHQL_TOKEN, graphql=False))
        asked_over_rest = len(fake.requests)
        graphql = run_gate(config, source(fake, 8, token=GRAPHQL_TOKEN))
        asked_with_graphql = fake.requests[asked_over_rest:]
    assert rest.ok and outcome(graphql) == outcome(rest)
    assert any(line.startswith("POST /graphql") for line in asked_with_graphql)
    assert not any("/commits/" in line or "/git/blobs/" in line for line in asked_with_graphql)  # all through GraphQL
    assert len(asked_with_graphql) < asked_over_rest


@pytest.mark.parametrize("fault", ["500", "404", "malformed", "wrong-blob", "ratelimit"])
def test_a_failing_graphql_endpoint_falls_back_to_rest_with_the_same_report(fault):
    with running(prod_seed_repos()) as fake:
        rest = run_gate(prod_config(), source(fake, 8, token=GRAPHQL_TOKEN, graphql=False))
        before = len(fake.requests)
        fake.add_fault("/graphql", fault)
        fallback = run_gate(prod_config(), source(fake, 8, token=GRAPHQL_TOKEN))
        asked = fake.requests[before:]
    assert outcome(fallback) == outcome(rest) and fallback.ok
    # one query (tried 3 times on a 500), never again after it failed
    assert sum(line.startswith("POST /graphql") for line in asked) == (3 if fault == "500" else 1)
    assert any("/check-runs" in line for line in asked) and any("/git/blobs/" in line for line in asked)


def test_an_anonymous_run_never_asks_graphql():
    with running(prod_seed_repos()) as fake:
        assert run_gate(prod_config(), source(fake, 8)).ok
        assert not any(line.startswith("POST") for line in fake.requests)


def test_a_graphql_answer_that_does_not_match_its_question_is_asked_again_over_rest():
    repos = prod_seed_repos()
    with running(repos) as fake:
        original = fake.graphql

        def tampered(query, authorization, path):  # every blob's text replaced: it no longer hashes to its id
            status, body = original(query, authorization, path)
            for node in body.get("data", {}).values():
                if node and node.get("object") and node["object"].get("__typename") == "Blob":
                    node["object"]["text"] += "# tampered\n"
            return status, body

        fake.graphql = tampered
        report = run_gate(prod_config(), source(fake, 8, token=GRAPHQL_TOKEN))
        assert report.ok  # the REST answers, verified, stand in for the tampered ones
        assert any("/git/blobs/" in line for line in fake.requests)
        assert not any("/check-runs" in line for line in fake.requests)  # CI answers matched and were kept


# -- UES's tree listed by the tag's name while the tag resolves -------------------------------------------

UES_TREE_BY_NAME = f"{UES}/git/trees/{UES_TAG}?"
UES_TREE_BY_SHA = f"{UES}/git/trees/{fake_sha(UES, UES_TAG)}?"


def reports_and_requests(setup) -> tuple[tuple[str, str], tuple[str, str], list[str]]:
    """The sequential and the concurrent report on one fake prepared by `setup`, and what the concurrent run asked."""
    with running(prod_seed_repos(), latency=0.002) as fake:
        setup(fake)
        sequential = outcome(run_gate(prod_config(), source(fake, 1)))
        before = len(fake.requests)
        concurrent = outcome(run_gate(prod_config(), source(fake, 8)))
        return sequential, concurrent, fake.requests[before:]


def test_the_tree_listed_by_name_stands_for_the_commit_tree_only_when_its_id_matches():
    def moved(fake) -> None:  # the by-name listing shows another commit's tree (a tag moved since, a branch preferred)
        fake.trees_by_name[(UES, UES_TAG)] = fake_sha(UES, "v0.7.12")

    sequential, concurrent, asked = reports_and_requests(moved)
    assert concurrent == sequential and "Release gate: PASS" in sequential[0]
    assert sum(UES_TREE_BY_NAME in line for line in asked) == 1
    assert sum(f"{UES}/git/commits/{fake_sha(UES, UES_TAG)}" in line for line in asked) == 1
    assert sum(UES_TREE_BY_SHA in line for line in asked) == 1  # the mismatch sent it back to the commit's sha


def test_when_the_tree_listed_by_name_matches_the_commit_tree_is_not_asked_by_sha():
    sequential, concurrent, asked = reports_and_requests(lambda fake: None)
    assert concurrent == sequential
    assert sum(UES_TREE_BY_NAME in line for line in asked) == 1 and not any(UES_TREE_BY_SHA in line for line in asked)


@pytest.mark.parametrize(
    "match, kind",
    [
        (UES_TREE_BY_NAME.rstrip("?"), "404"),
        (UES_TREE_BY_NAME.rstrip("?"), "500"),
        (UES_TREE_BY_NAME.rstrip("?"), "malformed"),
        (f"{UES}/git/commits/", "404"),
        (f"{UES}/git/commits/", "malformed"),
        (f"{UES}/git/commits/", "ratelimit"),
    ],
)
def test_a_fault_on_the_by_name_path_only_costs_its_request(match, kind):
    sequential, concurrent, asked = reports_and_requests(lambda fake: fake.add_fault(match, kind))
    assert concurrent == sequential and "Release gate: PASS" in sequential[0]
    assert sum(UES_TREE_BY_SHA in line for line in asked) == 1


def test_a_fault_only_on_the_tree_by_sha_is_not_met_when_the_name_answered():
    """The one way the two modes' reports can differ: the concurrent run never asks that URL. It does not
    pass on less: the tree it used is the one whose id the tag's commit names."""
    sequential, concurrent, asked = reports_and_requests(lambda fake: fake.add_fault(UES_TREE_BY_SHA.rstrip("?"), "500"))
    assert "Release gate: PASS" not in sequential[0] and "Release gate: PASS" in concurrent[0]
    assert not any(UES_TREE_BY_SHA in line for line in asked)


def test_a_tree_listed_by_name_that_arrives_late_is_waited_for_not_asked_again_by_sha():
    def late(fake) -> None:  # the listing by name lands after the tag object: the commit is known first
        fake.slow_paths[UES_TREE_BY_NAME.rstrip("?")] = 0.3

    sequential, concurrent, asked = reports_and_requests(late)
    assert concurrent == sequential and "Release gate: PASS" in sequential[0]
    assert sum(UES_TREE_BY_NAME in line for line in asked) == 1 and not any(UES_TREE_BY_SHA in line for line in asked)


def test_facts_read_through_a_listing_not_yet_checked_are_not_kept_for_the_real_pass():
    """The commit's tree id arrives late: meanwhile the passes read UES's facts through the listing by name
    (another commit's tree here). Those facts may open questions, but the real pass must not reuse them."""

    def moved_and_slow(fake) -> None:
        fake.trees_by_name[(UES, UES_TAG)] = fake_sha(UES, "v0.7.12")
        fake.slow_paths[f"{UES}/git/commits/"] = 0.3

    sequential, concurrent, asked = reports_and_requests(moved_and_slow)
    assert concurrent == sequential and "Release gate: PASS" in sequential[0]
    assert sum(UES_TREE_BY_SHA in line for line in asked) == 1
