"""Choosing the gate's source: `--source github|git` and `--git-root` (the CLI), or `CUTOVER_SOURCE`,
`CUTOVER_GIT_ROOT`, `GITHUB_TOKEN`, `GITHUB_API_URL` and `CUTOVER_GATE_CONCURRENCY` (the program). A bad
choice is bad input (`SourceSelectionError`, exit 2), found before anything is asked."""

from __future__ import annotations

from pathlib import Path
from typing import Mapping, Optional

from release.config import ReleaseBundle
from release.gate.git_source import GitSource
from release.gate.github_source import DEFAULT_CONCURRENCY, MAX_CONCURRENCY, GitHubSource
from release.gate.sources import (
    DEFAULT_SOURCE,
    ENV_API_URL,
    ENV_CONCURRENCY,
    ENV_GIT_ROOT,
    ENV_SOURCE,
    ENV_TOKEN,
    SOURCE_KINDS,
    ReleaseSource,
    SourceSelectionError,
    validate_api_url,
    validate_token,
)


def make_source(kind: str, bundle: ReleaseBundle, git_root: Optional[Path], environ: Mapping[str, str]) -> ReleaseSource:
    """The source a command or the program asked for; SourceSelectionError for a bad choice."""
    if kind == "github":
        if git_root is not None:
            raise SourceSelectionError(f"a git root ({git_root}) only applies to the git source; drop it or use git")
        api_url = environ.get(ENV_API_URL) or None
        concurrency_text = (environ.get(ENV_CONCURRENCY) or str(DEFAULT_CONCURRENCY)).strip()
        if not concurrency_text.isdigit():
            raise SourceSelectionError(
                f"{ENV_CONCURRENCY} must be a whole number of requests in flight, 1..{MAX_CONCURRENCY}; unset it for {DEFAULT_CONCURRENCY}"
            )
        concurrency = int(concurrency_text)
        if not 1 <= concurrency <= MAX_CONCURRENCY:
            raise SourceSelectionError(
                f"{ENV_CONCURRENCY}={concurrency} is out of range: use 1..{MAX_CONCURRENCY} (1 asks one question at a time)"
            )
        return GitHubSource(
            owner=bundle.github_owner,
            token=validate_token(environ.get(ENV_TOKEN) or None),
            base_url=None if api_url is None else validate_api_url(api_url),
            concurrency=concurrency,
        )
    if kind == "git":
        if git_root is None:
            raise SourceSelectionError(f"the git source needs a directory of clones: pass --git-root DIR or set {ENV_GIT_ROOT}")
        return GitSource(git_root, bundle.github_owner)
    raise SourceSelectionError(f"unknown source {kind!r}; use one of: {', '.join(SOURCE_KINDS)}")


def source_from_env(bundle: ReleaseBundle, environ: Mapping[str, str]) -> ReleaseSource:
    """The Pulumi program's source: CUTOVER_SOURCE (default github), CUTOVER_GIT_ROOT, GITHUB_TOKEN, GITHUB_API_URL."""
    kind = (environ.get(ENV_SOURCE) or DEFAULT_SOURCE).strip()
    root_text = (environ.get(ENV_GIT_ROOT) or "").strip()
    if kind not in SOURCE_KINDS:
        raise SourceSelectionError(f"{ENV_SOURCE}={kind!r} is not a source; set it to one of: {', '.join(SOURCE_KINDS)}")
    if kind == "github" and root_text:
        raise SourceSelectionError(f"{ENV_GIT_ROOT} is set but {ENV_SOURCE} is github; set {ENV_SOURCE}=git or unset {ENV_GIT_ROOT}")
    return make_source(kind, bundle, Path(root_text) if root_text else None, environ)
