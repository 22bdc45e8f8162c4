import pytest

from release.gate.fetch import run_sync
from release.gate.git_source import GitSource
from release.gate.sources import NotFound, TagNotFound, Unreachable
from tests.fixtures.git_repos import GitRepo
from tests.fixtures.github_fake import IBKR, QPK, UES


def ask(source, method: str, *args):
    """One question through the source's protocol, blocking."""

    async def run():
        async with source:
            return await getattr(source, method)(*args)

    return run_sync(run)


def test_lightweight_and_annotated_tags_resolve_to_their_commits(seed_repos):
    source = GitSource(seed_repos.root)
    # v0.7.8 and v0.7.10 are annotated in the seed, v0.7.7 and v0.7.9 lightweight.
    for tag, commit in seed_repos.qpk_tags.items():
        assert ask(source, "resolve_tag", QPK, tag) == commit


def test_a_branch_named_like_a_tag_is_not_a_tag(tmp_path):
    repo = GitRepo.init(tmp_path / QPK)
    repo.commit({"a": "1"})
    repo.branch("v0.7.99")
    with pytest.raises(TagNotFound, match="tag v0.7.99 not found"):
        ask(GitSource(tmp_path), "resolve_tag", QPK, "v0.7.99")


def test_a_tree_holds_every_file_and_a_missing_commit_is_not_found(seed_repos):
    source = GitSource(seed_repos.root)
    target = seed_repos.target[IBKR]
    tree = ask(source, "tree", IBKR, target)
    assert "v0.7.13" in tree.text("requirements.txt") and tree.text("uv.lock") is None and tree.commit == target
    ues = ask(source, "tree", UES, seed_repos.ues_tags["v0.7.13"])
    assert "v0.7.10" in ues.text("pyproject.toml")
    with pytest.raises(NotFound):
        ask(source, "tree", IBKR, "f" * 40)
    with pytest.raises(NotFound):
        ask(source, "tree", IBKR, target[:7])


def test_bare_mirror_named_repo_dot_git_works(seed_repos, tmp_path):
    GitRepo.init(tmp_path / f"{QPK}.git", bare_clone_of=seed_repos.repos[QPK])
    assert ask(GitSource(tmp_path), "resolve_tag", QPK, "v0.7.10") == seed_repos.qpk_tags["v0.7.10"]


def test_missing_clone_is_unreachable_and_says_where(tmp_path):
    with pytest.raises(Unreachable) as caught:
        ask(GitSource(tmp_path), "resolve_tag", QPK, "v0.7.10")
    assert caught.value.unreachable and str(tmp_path) in str(caught.value) and "git clone" in caught.value.fix


def test_ci_is_not_visible_to_git(seed_repos):
    assert ask(GitSource(seed_repos.root), "ci_status", IBKR, seed_repos.target[IBKR]) is None


def test_the_default_branch_and_history_come_from_the_clone(seed_repos):
    source = GitSource(seed_repos.root)
    qpk = seed_repos.qpk_tags
    assert ask(source, "default_head", QPK) == ("main", seed_repos.repos[QPK].head())
    assert ask(source, "released", QPK, qpk["v0.7.8"]) == (True, "main")
    assert ask(source, "relation", QPK, qpk["v0.7.8"], qpk["v0.7.10"]) == "ahead"
    assert ask(source, "relation", QPK, qpk["v0.7.10"], qpk["v0.7.8"]) == "behind"
    assert ask(source, "relation", QPK, qpk["v0.7.10"], qpk["v0.7.10"]) == "same"


@pytest.mark.parametrize(
    "environ, words",
    [
        ({"CUTOVER_SOURCE": "svn"}, "CUTOVER_SOURCE='svn'"),
        ({"CUTOVER_SOURCE": "git"}, "CUTOVER_GIT_ROOT"),
        ({"CUTOVER_GIT_ROOT": "/x"}, "CUTOVER_SOURCE=git"),
    ],
)
def test_bad_source_selection_is_a_clear_error(environ, words):
    from release.config import ReleaseBundle
    from release.gate.selection import source_from_env
    from release.gate.sources import SourceSelectionError

    with pytest.raises(SourceSelectionError, match=words.replace("(", r"\(")):
        source_from_env(ReleaseBundle(quantPlatformKit="v0.7.10", usEquityStrategies="v0.7.13"), environ)


def test_source_from_env_selects_git_and_github(tmp_path):
    from release.config import ReleaseBundle
    from release.gate.github_source import GitHubSource
    from release.gate.selection import source_from_env

    bundle = ReleaseBundle(quantPlatformKit="v0.7.10", usEquityStrategies="v0.7.13", githubOwner="Fork")
    assert isinstance(source_from_env(bundle, {"CUTOVER_SOURCE": "git", "CUTOVER_GIT_ROOT": str(tmp_path)}), GitSource)
    github = source_from_env(bundle, {"GITHUB_API_URL": "http://127.0.0.1:9/api"})
    assert isinstance(github, GitHubSource) and github.owner == "Fork" and github.base_url == "http://127.0.0.1:9/api"


def test_a_tag_listing_over_the_bound_is_refused_as_it_arrives(seed_repos, monkeypatch):
    from release.gate import git_source
    from release.gate.sources import MalformedResponse

    # The seed's tag listing is a few hundred bytes; with a bound below it, git is stopped, not read whole.
    monkeypatch.setattr(git_source, "LISTING_OUTPUT", 100)
    with pytest.raises(MalformedResponse, match="printed more than 100 bytes on stdout"):
        ask(GitSource(seed_repos.root), "resolve_tag", QPK, "v0.7.10")
