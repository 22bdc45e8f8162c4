"""The fetch stage: every fact in one snapshot, and what it hands the profile-facts probe."""

from __future__ import annotations

from pathlib import Path

from release.gate.fetch import SnapshotTrees, fetch_snapshot
from release.gate.git_source import GitSource
from release.gate.profile_checks import service_request
from release.gate.sources import TagNotFound
from tests.fixtures.git_repos import prod_config
from tests.fixtures.github_fake import IBKR, LONGBRIDGE, QPK, UES


def test_the_snapshot_holds_each_answer_once_and_hands_the_probe_each_platform_release_pair(seed_repos, tmp_path: Path):
    config = prod_config(seed_repos.target)
    snapshot = fetch_snapshot(config, GitSource(seed_repos.root))
    assert snapshot.commits[(QPK, "v0.7.10")] == seed_repos.qpk_tags["v0.7.10"]
    # the two LongBridge services share a commit: one tree; QPK and UES at their commits: one each
    assert len(snapshot.trees) == 3 + 2
    commits = {ref: commit for ref, commit in snapshot.commits.items() if isinstance(commit, str)}
    requests = list(dict.fromkeys(service_request(config, key, commits, None) for key in sorted(config.services)))
    assert [(r.platform, r.repo, r.commit) for r in requests] == [
        ("ibkr", IBKR, seed_repos.target[IBKR]),
        ("longbridge", LONGBRIDGE, seed_repos.target[LONGBRIDGE]),
        ("schwab", "CharlesSchwabPlatform", seed_repos.target["CharlesSchwabPlatform"]),
    ]
    assert [(p.name, p.repo, p.ref, p.commit) for p in requests[0].packages] == [
        ("quant-platform-kit", QPK, "v0.7.10", seed_repos.qpk_tags["v0.7.10"]),
        ("us-equity-strategies", UES, "v0.7.13", seed_repos.ues_tags["v0.7.13"]),
    ]
    # the probe's trees are the bytes the checks read: written out, not downloaded again
    SnapshotTrees(snapshot.trees).materialise(IBKR, seed_repos.target[IBKR], tmp_path / "ibkr", deadline=0.0)
    written = (tmp_path / "ibkr" / "requirements.txt").read_text(encoding="utf-8")
    assert written == snapshot.trees[(IBKR, seed_repos.target[IBKR])].text("requirements.txt")


def test_a_ref_that_does_not_resolve_asks_nothing_that_depends_on_it(seed_repos):
    config = prod_config(seed_repos.target, ues="v0.7.99")
    snapshot = fetch_snapshot(config, GitSource(seed_repos.root))
    assert isinstance(snapshot.commits[(UES, "v0.7.99")], TagNotFound)
    assert not any(repo == UES for repo, _ in snapshot.trees)  # no UES tree was asked
    commits = {ref: commit for ref, commit in snapshot.commits.items() if isinstance(commit, str)}
    # no pair with an unresolved package goes to the probe
    assert [service_request(config, key, commits, None) for key in sorted(config.services)] == [None] * 4
