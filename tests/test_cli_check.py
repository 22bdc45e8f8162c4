import json

import pytest

from release.cli import main
from release.gate.lock import read_lock
from tests.fixtures.git_repos import prod_stack_text
from tests.fixtures.github_fake import OWNER, prod_seed_repos, running

TOKEN = "ghp_cli_token_never_printed_9876543210"


@pytest.fixture
def stack(tmp_path, seed_repos):
    """A copy of Pulumi.prod.yaml whose platform commits are the seed clones' target commits."""
    path = tmp_path / "Pulumi.prod.yaml"
    path.write_text(prod_stack_text(seed_repos.target))
    return path


def run(capsys, *argv):
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_check_passes_over_git_clones(capsys, stack, seed_repos):
    code, out, _ = run(capsys, "check", "--config-file", str(stack), "--source", "git", "--git-root", str(seed_repos.root))
    assert code == 0 and "Release gate: PASS" in out and "platform-ci" in out


def test_check_fails_with_exit_1_and_json_names_the_stale_pins(capsys, tmp_path, seed_repos):
    path = tmp_path / "Pulumi.prod.yaml"
    path.write_text(prod_stack_text(seed_repos.baseline))
    code, out, _ = run(
        capsys, "check", "--config-file", str(path), "--source", "git", "--git-root", str(seed_repos.root), "--format", "json"
    )
    data = json.loads(out)
    assert code == 1 and data["ok"] is False
    failed = {c["id"] for c in data["checks"] if not c["ok"]}
    assert {"platform-pins:ibkr", "platform-pins:schwab", "platform-pins:longbridge-hk", "platform-pins:longbridge-sg"} <= failed
    # The baseline commits' allowlists still use the old names: Schwab's and LongBridge-SG's profiles are
    # there as aliases, IBKR's and LongBridge-HK's are not.
    assert failed - {c for c in failed if c.startswith("platform-pins:")} == {"profile-facts:ibkr", "profile-facts:longbridge-hk"}


def test_git_without_root_is_bad_input(capsys, stack):
    code, _, err = run(capsys, "check", "--config-file", str(stack), "--source", "git")
    assert code == 2 and "--git-root" in err


def test_lock_writes_only_when_the_gate_passes(capsys, stack, tmp_path, seed_repos):
    lock_file = tmp_path / "Pulumi.prod.lock.json"
    bad = tmp_path / "Pulumi.bad.yaml"
    bad.write_text(prod_stack_text(seed_repos.baseline))
    code, out, _ = run(capsys, "lock", "--config-file", str(bad), "--source", "git", "--git-root", str(seed_repos.root))
    assert code == 1 and "lock NOT written" in out and not (tmp_path / "Pulumi.bad.lock.json").exists()
    code, out, _ = run(capsys, "lock", "--config-file", str(stack), "--source", "git", "--git-root", str(seed_repos.root))
    assert code == 0 and f"wrote {lock_file}" in out
    assert read_lock(lock_file).release.packages["quant-platform-kit"].ref == "v0.7.10"
    # the next check compares tags against the lock
    code, out, _ = run(capsys, "check", "--config-file", str(stack), "--source", "git", "--git-root", str(seed_repos.root))
    assert code == 0 and "tag(s) match the lock" in out


def test_malformed_lock_is_bad_input(capsys, stack, tmp_path, seed_repos):
    (tmp_path / "Pulumi.prod.lock.json").write_text("[]")
    code, _, err = run(capsys, "check", "--config-file", str(stack), "--source", "git", "--git-root", str(seed_repos.root))
    assert code == 2 and "not a valid lock" in err


def test_github_unreachable_is_exit_1_with_the_failed_call_and_no_token(capsys, monkeypatch):
    repos = prod_seed_repos()
    with running(repos) as fake:
        fake.add_fault("/git/ref/tags/v0.7.10", "ratelimit")
        monkeypatch.setenv("GITHUB_API_URL", fake.base_url)
        monkeypatch.setenv("GITHUB_TOKEN", TOKEN)
        code, out, err = run(capsys, "check", "--stack", "prod")
    assert code == 1 and "UNVERIFIED" in out
    assert f"GET /repos/{OWNER}/QuantPlatformKit/git/ref/tags/v0.7.10" in out and "rate limit" in out
    assert TOKEN not in out + err and "Traceback" not in out + err


def test_a_config_the_proved_facts_refuse_is_never_locked(capsys, tmp_path, seed_repos):
    # longbridge-hk runs qqq_tech_enhancement, whose adapter (read at UES v0.7.13) requires a manifest path.
    text = prod_stack_text(seed_repos.target)
    manifest_line = next(line for line in text.splitlines() if "manifestPath:" in line)
    path = tmp_path / "Pulumi.prod.yaml"
    path.write_text(text.replace(manifest_line + "\n", ""))
    git = ["--config-file", str(path), "--source", "git", "--git-root", str(seed_repos.root)]
    code, _, err = run(capsys, "lock", *git)
    assert code == 2 and not (tmp_path / "Pulumi.prod.lock.json").exists()
    assert "services.longbridge-hk.snapshot.manifestPath: qqq_tech_enhancement requires a snapshot manifest" in err
    assert run(capsys, "check", *git)[0] == 2
