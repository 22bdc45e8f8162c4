"""Hostile input for the gate: what a server, a clone, an archive or an install file sends is data, bounded
and checked; a failure proved online is never replaced by a lock's pass; no token is ever printed."""

from __future__ import annotations

import io
import json
import re
import tarfile
from datetime import datetime, timezone

import pytest

from release.gate.checks import run_gate, with_lock
from release.gate.github_source import GitHubSource
from release.gate.lock import lock_from_report
from release.gate.sources import redacted, server_text
from release.gate.trees import MAX_TREE_BYTES, MAX_TREE_FILES, TreeError, git_blob_id, tree_from_archive
from tests.fixtures.git_repos import GitRepo, prod_config
from tests.fixtures.github_fake import IBKR, OWNER, QPK, SEED_TARGET_COMMITS, FakeTag, prod_seed_repos, running, tarball_of
from tests.fixtures.today_shape import bundle_toml, platform_pyproject, today_config
from tests.gate.conftest import SEED, check

NOW = datetime(2026, 4, 20, 9, 30, tzinfo=timezone.utc)
TOKEN = "ghp_hostileGateTokenNeverPrinted0123456789"


def github(fake, token=None, **kwargs):
    return GitHubSource(OWNER, token, fake.base_url, timeout=2, backoff=0.0, **kwargs)


# -- 22.1: the lock answers only what was not asked ------------------------------------------------------


def test_a_failure_proved_online_is_never_replaced_by_the_locks_pass():
    repos = prod_seed_repos()
    with running(repos) as fake:
        lock = lock_from_report(run_gate(prod_config(), github(fake)), NOW)
        qpk = repos[f"{OWNER}/{QPK}"]
        qpk.tags["v0.7.10"] = FakeTag(qpk.tags["v0.7.9"].commit)  # the tag moved since the lock
        fake.add_fault("/check-runs", "500")  # and CI cannot be read: those checks are the lock's to answer
        online = run_gate(prod_config(), github(fake, retries=0), lock)
    assert check(online, "tag-immutable").status == "failed" and check(online, "platform-ci:ibkr").status == "error"
    judged = with_lock(online, prod_config(), lock)
    assert check(judged, "tag-immutable").status == "failed"  # proved online: stands
    assert check(judged, "qpk-tag").message == check(online, "qpk-tag").message  # answered online: stands
    ci = check(judged, "platform-ci:ibkr")
    assert ci.status == "passed" and "verified from lock" in ci.message and "not verifiable online now" in ci.message
    assert not judged.ok and judged.failed_definitely


def test_without_a_lock_the_online_verdict_is_the_verdict():
    online = type("Report", (), {"unverified": True})()
    assert with_lock(online, prod_config(), None) is online


# -- 22.2: one redaction, for every server string ---------------------------------------------------------

GLUED = f"deploy_{TOKEN}"


def test_redaction_takes_the_exact_token_first_and_a_token_glued_to_a_word():
    assert redacted(f"ctx {GLUED} end") == "ctx deploy_[redacted] end"
    odd = "s3cr3t-token-of-another-shape"
    assert redacted(f"x{odd}y", (odd,)) == "x[redacted]y"  # not token-shaped: only the exact match knows it
    assert TOKEN not in server_text({"message": TOKEN})


def test_no_server_string_reaches_the_report_with_the_token():
    repos = prod_seed_repos()
    repo = repos[f"{OWNER}/{IBKR}"]
    sha = SEED_TARGET_COMMITS[IBKR]
    repo.statuses[sha] = [(f"ci/{GLUED}", "failure"), (TOKEN, "success")]
    repo.check_runs[sha] = [(f"tests {TOKEN}", "completed", "failure")]
    with running(repos) as fake:
        fake.add_fault("UsEquityStrategies/git/ref", "echo-auth")
        report = run_gate(prod_config(), github(fake, TOKEN))
    printed = report.render_text() + json.dumps(report.to_json())
    assert TOKEN not in printed and TOKEN[4:] not in printed
    assert "ci/deploy_[redacted]=failure" in check(report, "platform-ci:ibkr").message


# -- 22.3: a status list shorter than its count ------------------------------------------------------------


def test_ci_on_a_truncated_status_list_is_unverified_not_green():
    repos = prod_seed_repos()
    sha = SEED_TARGET_COMMITS[IBKR]
    repos[f"{OWNER}/{IBKR}"].status_counts[sha] = 2  # one green status listed, two counted
    with running(repos) as fake:
        report = run_gate(prod_config(), github(fake))
    result = check(report, "platform-ci:ibkr")
    assert result.status == "error" and "counted 2 statuses but listed 1" in result.message


# -- annotated tag chains: the same bound on both sources -----------------------------------------------------


def test_a_git_tag_chain_deeper_than_five_is_refused_like_on_github(seed_repos, tmp_path):
    repo = GitRepo.init(tmp_path / QPK)
    commit = repo.commit({"VERSION": "1\n"})
    for level in range(1, 8):
        repo.git("tag", "-a", "-m", f"level {level}", f"chain-{level}", commit if level == 1 else f"chain-{level - 1}")
    from release.gate.fetch import run_sync
    from release.gate.git_source import GitSource

    async def resolve(tag):
        async with GitSource(tmp_path) as source:
            return await source.resolve_tag(QPK, tag)

    assert run_sync(lambda: resolve("chain-5")) == commit  # five levels: peeled
    with pytest.raises(Exception, match="nested more than 5 levels deep"):
        run_sync(lambda: resolve("chain-6"))
    repos = prod_seed_repos()
    qpk = repos[f"{OWNER}/{QPK}"]
    qpk.tags["v0.7.10"].annotated = True
    qpk.tag_chains["v0.7.10"] = 6
    with running(repos) as fake:
        result = check(run_gate(prod_config(), github(fake)), "qpk-tag")
    assert result.status == "error" and "nested more than 5 levels deep" in result.message


# -- archives ---------------------------------------------------------------------------------------------------

FILES = {"pyproject.toml": "[project]\n", "pkg/mod.py": "X = 1\n"}
LISTING = {path: ("100644", git_blob_id(text.encode())) for path, text in FILES.items()}


def member(name, kind=tarfile.REGTYPE, size=0, link=""):
    info = tarfile.TarInfo(name)
    info.type, info.size, info.linkname = kind, size, link
    return info


@pytest.mark.parametrize(
    "archive, listing, words",
    [
        (tarball_of("top", FILES), LISTING, None),
        (tarball_of("top", {**FILES, "extra.py": "1\n"}), LISTING, "which the commit's tree does not list"),
        (tarball_of("top", {"pyproject.toml": FILES["pyproject.toml"]}), LISTING, "missing from the archive: pkg/mod.py (export-ignore?)"),
        (
            tarball_of("top", {**FILES, "pkg/mod.py": "X = 2\n"}),
            LISTING,
            "pkg/mod.py in the archive is not the file the commit's tree lists",
        ),
        (tarball_of("top", FILES, [member("top/dev", tarfile.CHRTYPE)]), LISTING, "is a link or device"),
        (tarball_of("top", FILES, [member("top/out", tarfile.SYMTYPE, link="../../etc/passwd")]), LISTING, "points outside the tree"),
        (tarball_of("top", FILES, [member("top/../escape.py", size=1)]), LISTING, "leaves the tree"),
        (tarball_of("top", FILES, [member("top/pkg/mod.py", size=6)]), LISTING, "appears twice"),
        (b"\x1f\x8b" + b"not gzip at all", LISTING, "not valid gzip"),
        (b"not a tar", LISTING, "not a tar archive"),
    ],
    ids=["exact", "extra file", "export-ignore", "export-subst", "device", "symlink out", "dot-dot", "twice", "bad gzip", "not tar"],
)
def test_an_archive_is_taken_only_when_it_is_the_listed_tree(archive, listing, words):
    if words is None:
        tree = tree_from_archive("Repo", "a" * 40, archive, listing, strip=1)
        assert tree.text("pkg/mod.py") == "X = 1\n" and tree.blob("pyproject.toml") == LISTING["pyproject.toml"][1]
        return
    with pytest.raises(TreeError, match=re.escape(words)):
        tree_from_archive("Repo", "a" * 40, archive, listing, strip=1)


def test_a_decompression_bomb_is_refused_at_the_inflation_bound():
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz", compresslevel=1) as archive:
        big = member("top/zeros.bin", size=MAX_TREE_BYTES + (MAX_TREE_FILES << 10) + 1)
        archive.addfile(big, io.BytesIO(b"\0" * big.size))
    data = buffer.getvalue()
    assert len(data) < MAX_TREE_BYTES // 100  # small on the wire
    with pytest.raises(TreeError, match="inflates to more than"):
        tree_from_archive("Repo", "a" * 40, data, {"zeros.bin": ("100644", "0" * 40)}, strip=1)


# -- install files and bundles are data ------------------------------------------------------------------------

HOSTILE_PYPROJECT = [
    ("duplicate key", lambda text: text.replace('version = "0.3.0"', 'version = "0.3.0"\nversion = "9"'), "is not valid TOML"),
    ("nested arrays", lambda text: text + "deep = " + "[" * 5000 + "]" * 5000 + "\n", "nests arrays or tables too deeply"),
    ("huge file", lambda text: text + "#" * (5 << 20) + "\n", "larger than 4 MiB"),
    ("project is not a table", lambda text: text.replace("[project]", "project = 1\n[other]"), "[project] is not a table"),
]


@pytest.mark.parametrize("what, edit, words", HOSTILE_PYPROJECT, ids=[row[0] for row in HOSTILE_PYPROJECT])
def test_a_hostile_install_file_fails_its_platform_naming_the_file(today, gate, what, edit, words):
    pyproject = edit(
        platform_pyproject({"QuantPlatformKit": today.q, "UsEquityStrategies": today.u, "HkEquityStrategies": today.h}, today.q)
    )
    commit = today.platform_commit("ibkr", {"pyproject.toml": pyproject})
    report = gate(today_config(SEED, today, {"ibkr": commit}))
    result = check(report, "platform-pins:ibkr")
    assert result.status == "failed" and "pyproject.toml" in result.message and words in result.message, result.message
    assert check(report, "pin-refs").status == "failed"  # its pins could not all be read
    assert check(report, "platform-pins:schwab").status == "passed"


def test_requirement_includes_are_bounded(today, gate):
    loop = {
        "pyproject.toml": None,
        "uv.lock": None,
        "qsl.toml": None,
        "requirements.txt": "-r a.txt\n",
        "a.txt": "-r b.txt\n",
        "b.txt": "-r a.txt\n",
    }
    result = check(gate(today_config(SEED, today, {"ibkr": today.platform_commit("ibkr", loop)})), "platform-pins:ibkr")
    assert result.status == "failed" and "does not pin quant-platform-kit" in result.message  # read once each, then done
    chain = {f"r{i}.txt": f"-r r{i + 1}.txt\n" for i in range(40)}
    many = {"pyproject.toml": None, "uv.lock": None, "qsl.toml": None, "requirements.txt": "-r r0.txt\n", **chain}
    result = check(gate(today_config(SEED, today, {"ibkr": today.platform_commit("ibkr", many)})), "platform-pins:ibkr")
    assert result.status == "failed" and "nests includes deeper than 8" in result.message


@pytest.mark.parametrize(
    "text, words",
    [
        ('name = "2026.09.1"\n[repos]\nQuantPlatformKit = "abc1234"\n', "not a full commit"),
        ('name = "2026.09.1"\nname = "again"\n', "is not valid TOML"),
        ('name = "2026.01.0"\n[repos]\n', "names itself '2026.01.0', not 2026.09.1"),
        ('name = "2026.09.1"\nrepos = "none"\n', "has no [repos] table"),
    ],
    ids=["short commit", "duplicate key", "another bundle's name", "no repos"],
)
def test_a_hostile_bundle_file_fails_the_bundle_check(tmp_path, text, words):
    from tests.fixtures.today_shape import QRS, FakeWorld, build_today

    today = build_today(FakeWorld())
    world = today.world
    head = world.repos[f"{OWNER}/{QRS}"].branches["main"]
    world.commit(QRS, {**world.repos[f"{OWNER}/{QRS}"].commits[head], "compat/bundles/2026.09.1.toml": text}, parent=head)
    with running(world.repos) as fake:
        report = run_gate(today_config(SEED, today, release={"bundle": "2026.09.1"}), github(fake))
    result = check(report, "release-bundle")
    assert result.status == "failed" and result.stage == "release-bundle" and words in result.message, result.message


def test_a_bundle_naming_no_qpk_fails(tmp_path):
    from tests.fixtures.today_shape import QRS, UES, FakeWorld, build_today

    today = build_today(FakeWorld())
    world = today.world
    head = world.repos[f"{OWNER}/{QRS}"].branches["main"]
    files = {**world.repos[f"{OWNER}/{QRS}"].commits[head], "compat/bundles/2026.09.2.toml": bundle_toml("2026.09.2", {UES: today.u})}
    world.commit(QRS, files, parent=head)
    with running(world.repos) as fake:
        result = check(run_gate(today_config(SEED, today, release={"bundle": "2026.09.2"}), github(fake)), "release-bundle")
    assert result.status == "failed" and "names no QuantPlatformKit" in result.message


def test_a_compare_answer_whose_merge_base_contradicts_its_status_is_malformed():
    from release.gate.github_source import _relation
    from release.gate.sources import MalformedResponse

    with pytest.raises(MalformedResponse, match="names another merge base"):
        _relation("GET compare", {"status": "behind", "merge_base_commit": {"sha": "b" * 40}}, "main", "a" * 40)
    assert _relation("GET compare", {"status": "behind", "merge_base_commit": {"sha": "a" * 40}}, "main", "a" * 40) == "behind"


def test_a_credential_quoted_from_an_install_file_is_never_shown(today, gate):
    pins = {"QuantPlatformKit": today.q, "UsEquityStrategies": today.u, "HkEquityStrategies": today.h}
    leaky = (
        f'  "quant-strategy-plugins @ https://bot:hunter2secret@files.example.com/plugins.whl",\n'
        f'  "hk-equity-strategies @ git+https://{TOKEN}@github.com/QuantStrategyLab/HkEquityStrategies.git@main",\n'
    )
    pyproject = platform_pyproject(pins, today.q).replace('  "flask",\n', '  "flask",\n' + leaky)
    pyproject = pyproject.replace('"quant-strategy-plugins @', '"quant-platform-kit @', 1)
    report = gate(today_config(SEED, today, {"ibkr": today.platform_commit("ibkr", {"pyproject.toml": pyproject})}))
    printed = report.render_text() + json.dumps(report.to_json())
    assert check(report, "pin-refs").status == "failed" and "files.example.com/plugins.whl" in check(report, "pin-refs").message
    assert "hunter2secret" not in printed and TOKEN not in printed and TOKEN[4:] not in printed
