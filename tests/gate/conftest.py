"""The gate's own fixtures: today's release shape over both sources."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any, Optional

import pytest

from release.gate.checks import GateReport, run_gate
from release.gate.git_source import GitSource
from release.gate.github_source import GitHubSource
from release.stack import load_stack_file
from tests.fixtures.github_fake import OWNER, running
from tests.fixtures.projects import SEED_STACK_FILE
from tests.fixtures.today_shape import FakeWorld, GitWorld, Today, build_today

SEED = load_stack_file(SEED_STACK_FILE)


@pytest.fixture(scope="session")
def git_today(tmp_path_factory: pytest.TempPathFactory) -> Today:
    """Today's shape as git repositories, shared by the session: tests add commits, never move refs."""
    return build_today(GitWorld(tmp_path_factory.mktemp("today-git")))


@pytest.fixture(params=["git", "github"])
def today(request: pytest.FixtureRequest, git_today: Today) -> Today:
    """Today's shape for each source: the session's git repositories, or fresh GitHub-fake data."""
    return git_today if request.param == "git" else build_today(FakeWorld())


Gate = Callable[..., GateReport]


@pytest.fixture
def gate(today: Today) -> Iterator[Gate]:
    """Run the gate over `today`'s repositories through its source (the GitHub fake is started per run)."""

    def run(config: Any, lock: Optional[Any] = None) -> GateReport:
        world = today.world
        if isinstance(world, GitWorld):
            return run_gate(config, GitSource(world.root), lock)
        with running(world.repos) as fake:
            return run_gate(config, GitHubSource(OWNER, base_url=fake.base_url, backoff=0.0), lock)

    yield run


def check(report: GateReport, check_id: str) -> Any:
    found = [c for c in report.checks if c.id == check_id]
    assert found, f"no check {check_id}: {[c.id for c in report.checks]}"
    return found[0]
