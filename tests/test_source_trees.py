"""release/gate/source_trees.py: a repository at one commit written to disk from a local clone (git
archive) or GitHub's tarball endpoint (the fake), extracted safely and proved equal to the commit's tree."""

from __future__ import annotations

import tarfile
import time
from pathlib import Path

import pytest

from release.gate import source_trees
from release.gate.source_trees import GitHubTrees, GitTrees, TreeError, extract_tar, git_blob_id
from tests.fixtures.git_repos import GitRepo
from tests.fixtures.github_fake import OWNER, FakeRepo, running, tarball_of

FILES = {"strategy_registry.py": "X = 1\n", "research/configs/a.json": "{}\n", "scripts/run.sh": "echo hi\n"}
SHA = "1" * 40


def listing(files: dict[str, str]) -> dict[str, str]:
    return {path: git_blob_id(text.encode()) for path, text in files.items()}


def read_tree(root: Path) -> dict[str, str]:
    return {str(path.relative_to(root)): path.read_text() for path in root.rglob("*") if path.is_file()}


def test_git_archive_of_a_commit_is_its_tree(tmp_path: Path) -> None:
    repo = GitRepo.init(tmp_path / "clones" / "Platform")
    first = repo.commit(FILES)
    repo.commit({"strategy_registry.py": "X = 2\n"})
    trees = GitTrees(lambda name: tmp_path / "clones" / name / ".git")
    trees.materialise("Platform", first, tmp_path / "out", time.monotonic() + 30)
    assert read_tree(tmp_path / "out") == FILES  # the commit asked for, not the branch head


def test_git_archive_that_differs_from_the_tree_is_refused(tmp_path: Path) -> None:
    repo = GitRepo.init(tmp_path / "clones" / "Platform")
    commit = repo.commit({**FILES, ".gitattributes": "research/** export-ignore\nstrategy_registry.py export-subst\n"})
    trees = GitTrees(lambda name: tmp_path / "clones" / name / ".git")
    with pytest.raises(TreeError, match=r"verify Platform@.{7}: 1 file\(s\) missing from the archive: research/configs/a.json"):
        trees.materialise("Platform", commit, tmp_path / "out", time.monotonic() + 30)
    with pytest.raises(TreeError, match="is not a full commit id"):
        trees.materialise("Platform", commit[:7], tmp_path / "out2", time.monotonic() + 30)
    with pytest.raises(TreeError, match="git exited"):
        trees.materialise("Platform", "f" * 40, tmp_path / "out3", time.monotonic() + 30)


def test_github_tarball_follows_the_redirect_without_the_token(tmp_path: Path) -> None:
    repos = {f"{OWNER}/Platform": FakeRepo()}
    repos[f"{OWNER}/Platform"].add_commit(SHA, FILES)
    with running(repos) as fake:
        fake.tarball_redirect_host = "localhost"  # another host than the API's 127.0.0.1, as codeload is
        trees = GitHubTrees(fake.base_url, OWNER, "ghp_" + "t" * 36, lambda repo, commit: listing(FILES))
        trees.materialise("Platform", SHA, tmp_path / "out", time.monotonic() + 30)
        assert read_tree(tmp_path / "out") == FILES
        api, codeload = (
            fake.requests.index(f"GET /repos/{OWNER}/Platform/tarball/{SHA}"),
            fake.requests.index(f"GET /_codeload/{OWNER}/Platform/{SHA}"),
        )
        assert fake.auth_headers[api] == "Bearer ghp_" + "t" * 36 and fake.auth_headers[codeload] is None


def test_github_tarball_faults_fail_closed_within_the_deadline(tmp_path: Path) -> None:
    repos = {f"{OWNER}/Platform": FakeRepo()}
    repos[f"{OWNER}/Platform"].add_commit(SHA, FILES)
    with running(repos, hang_seconds=10) as fake:
        trees = GitHubTrees(fake.base_url, OWNER, None, lambda repo, commit: listing(FILES))
        with pytest.raises(TreeError, match="HTTP 404"):
            trees.materialise("Platform", "2" * 40, tmp_path / "a", time.monotonic() + 30)
        fake.add_fault("/tarball/", "hang", times=1)
        start = time.monotonic()
        with pytest.raises(TreeError, match="did not finish before the deadline"):
            trees.materialise("Platform", SHA, tmp_path / "b", start + 1)
        assert time.monotonic() - start < 5
        # an archive whose content is not the commit's (a tampered or stale tarball)
        repos[f"{OWNER}/Platform"].tarballs[SHA] = tarball_of("top", {**FILES, "strategy_registry.py": "X = 'evil'\n"})
        with pytest.raises(TreeError, match="1 file\\(s\\) not as committed: strategy_registry.py"):
            trees.materialise("Platform", SHA, tmp_path / "c", time.monotonic() + 30)
        fake.tarball_redirect_host = "localhost"
        fake.add_fault("/_codeload/", "redirect-loop")
        with pytest.raises(TreeError):
            trees.materialise("Platform", SHA, tmp_path / "d", time.monotonic() + 30)


def member(name: str, kind: bytes = tarfile.REGTYPE, size: int = 1, link: str = "") -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type, info.size, info.linkname = kind, size if kind == tarfile.REGTYPE else 0, link
    return info


@pytest.mark.parametrize(
    "extra, message",
    [
        (member("/etc/passwd"), "is not a relative POSIX path"),
        (member("top/../../escape.py"), "leaves the tree"),
        (member("top/hard", tarfile.LNKTYPE, link="top/strategy_registry.py"), "is a hard link"),
        (member("top/dev", tarfile.CHRTYPE), "is a device"),
        (member("top/fifo", tarfile.FIFOTYPE), "is a FIFO"),
        (member("top/out", tarfile.SYMTYPE, link="../../etc/passwd"), "points outside the tree"),
        (member("top/abs", tarfile.SYMTYPE, link="/etc/passwd"), "points outside the tree"),
        (member("top/strategy_registry.py"), "appears twice"),
    ],
)
def test_hostile_archive_members_are_refused(tmp_path: Path, extra: tarfile.TarInfo, message: str) -> None:
    with pytest.raises(TreeError, match=message):
        extract_tar(tarball_of("top", FILES, [extra]), tmp_path / "out", strip=1)
    assert not (tmp_path / "escape.py").exists() and not (tmp_path.parent / "escape.py").exists()


def test_archive_bounds(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(TreeError, match="not a tar archive"):
        extract_tar(b"<html>rate limited</html>", tmp_path / "a")
    monkeypatch.setattr(source_trees, "MAX_MEMBERS", 3)
    with pytest.raises(TreeError, match="more than 3 members"):
        extract_tar(tarball_of("top", {f"f{i}.py": "" for i in range(10)}), tmp_path / "b", strip=1)
    monkeypatch.setattr(source_trees, "MAX_MEMBERS", 1000)
    monkeypatch.setattr(source_trees, "MAX_TREE_BYTES", 1000)
    # a member that declares more than the bound is refused before its content is read
    with pytest.raises(TreeError, match="more than 1000 bytes"):
        extract_tar(tarball_of("top", {"big.bin": "0" * 5000}), tmp_path / "c", strip=1)
    # links inside the tree are kept as links
    extract_tar(tarball_of("top", FILES, [member("top/alias.py", tarfile.SYMTYPE, link="strategy_registry.py")]), tmp_path / "d", strip=1)
    assert (tmp_path / "d" / "alias.py").is_symlink() and (tmp_path / "d" / "alias.py").read_text() == "X = 1\n"


def test_a_git_archive_over_the_bound_is_stopped_as_it_arrives(tmp_path: Path, monkeypatch) -> None:
    repo = GitRepo.init(tmp_path / "clones" / "Platform")
    commit = repo.commit({"big.txt": "x" * 200_000})
    monkeypatch.setattr(source_trees, "MAX_ARCHIVE_BYTES", 50_000)
    trees = GitTrees(lambda name: tmp_path / "clones" / name / ".git")
    with pytest.raises(TreeError, match="printed more than 50000 bytes on stdout"):
        trees.materialise("Platform", commit, tmp_path / "out", time.monotonic() + 30)
