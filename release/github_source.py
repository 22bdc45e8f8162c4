"""`GitHubSource`: the gate's facts from the GitHub REST API, through PyGithub.

Round trips per question (each answer cached for the source's lifetime):
  resolve_tag   GET git/ref/tags/<tag> (+ GET git/tags/<sha> per annotated level)
  list_files    GET git/trees/<commit>   - proves the commit exists and lists its top-level files at once
  read_file     GET git/blobs/<blob sha> - only for files the tree listed; identical files are fetched once
  ci_status     GET commits/<sha>/status + GET commits/<sha>/check-runs

Bounded time: PyGithub's default retry sleeps until a rate limit resets (up to an hour), so it is replaced
by a urllib3 Retry that only retries 5xx a few times with a short, capped backoff; every request has a
timeout; and a total budget stops the source from starting calls once it is spent. After the first call
that finds GitHub unreachable, later calls fail at once with that cause instead of waiting again.
"""

from __future__ import annotations

import base64
import binascii
import time
from typing import Any, Callable, Optional, TypeVar

import requests
import urllib3
from github import Auth, Github, GithubException
from github.GithubException import (
    BadAttributeException,
    BadCredentialsException,
    RateLimitExceededException,
    UnknownObjectException,
)

from release.config import COMMIT_PATTERN
from release.sources import CiStatus, MalformedResponse, NotFound, SourceError, TagNotFound, TreeSource, Unreachable

PUBLIC_API_URL = "https://api.github.com"
RETRY_STATUSES = (500, 502, 503, 504)
GREEN_CONCLUSIONS = frozenset({"success", "neutral", "skipped"})
MAX_TAG_DEPTH = 5  # annotated tags can point at tags; a deeper chain is treated as malformed

T = TypeVar("T")


class GitHubSource(TreeSource):
    kind = "github"

    def __init__(
        self,
        owner: str,
        token: Optional[str] = None,
        base_url: Optional[str] = None,
        *,
        timeout: int = 10,
        retries: int = 2,
        backoff: float = 0.25,
        total_timeout: float = 60.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.owner = owner
        self.base_url = (base_url or PUBLIC_API_URL).rstrip("/")
        self._has_token = bool(token)
        self._total_timeout = total_timeout
        self._clock = clock
        self._deadline: Optional[float] = None
        self._down: Optional[SourceError] = None
        retry = urllib3.util.Retry(
            total=retries,
            connect=retries,
            read=0,  # a server that hung once will hang again; do not double the wait
            status=retries,
            other=0,
            status_forcelist=RETRY_STATUSES,
            allowed_methods=frozenset({"GET"}),
            backoff_factor=backoff,
            backoff_max=2.0,
            respect_retry_after_header=False,  # a Retry-After of an hour must not hold the gate
            raise_on_status=False,  # hand the last 5xx to PyGithub so it becomes a GithubException
        )
        self._github = Github(
            auth=Auth.Token(token) if token else None,
            base_url=self.base_url,
            timeout=timeout,
            retry=retry,
            per_page=100,
            seconds_between_requests=None,
            seconds_between_writes=None,
            lazy=True,
        )
        self._repos: dict[str, Any] = {}
        self._tags: dict[tuple[str, str], str] = {}
        self._trees: dict[tuple[str, str], dict[str, str]] = {}
        self._missing_commits: set[tuple[str, str]] = set()
        self._blobs: dict[str, str] = {}
        self._ci: dict[tuple[str, str], CiStatus] = {}

    def describe(self) -> str:
        return f"github ({self.base_url}, {'token from GITHUB_TOKEN' if self._has_token else 'no token'})"

    def close(self) -> None:
        self._github.close()

    # -- the protocol -------------------------------------------------------------------------------

    def resolve_tag(self, repo: str, tag: str) -> str:
        key = (repo, tag)
        if key in self._tags:
            return self._tags[key]
        call = f"GET /repos/{self.owner}/{repo}/git/ref/tags/{tag}"
        try:
            kind, sha = self._call(call, lambda: self._object_of(self._repo(repo).get_git_ref(f"tags/{tag}")))
        except NotFound as error:
            raise TagNotFound(
                call,
                f"tag {tag} not found in {self.owner}/{repo}" + ("" if self._has_token else " (no GITHUB_TOKEN: a private repo looks missing)"),
                f"push the tag {tag} to {self.owner}/{repo} or fix the bundle",
            ) from error
        for _ in range(MAX_TAG_DEPTH):
            if kind == "commit":
                self._tags[key] = sha
                return sha
            if kind != "tag":
                raise MalformedResponse(call, f"tag {tag} points at a {kind}, not a commit", "tag a commit")
            call = f"GET /repos/{self.owner}/{repo}/git/tags/{sha}"
            kind, sha = self._call(call, lambda sha=sha: self._object_of(self._repo(repo).get_git_tag(sha)))
        raise MalformedResponse(call, f"tag {tag} is nested more than {MAX_TAG_DEPTH} levels deep", "tag the commit directly")

    def _read_blob(self, repo: str, blob: str, path: str, ref: str) -> str:
        # Blob ids are content hashes: the same requirements.txt in three platform repos is fetched once.
        if blob not in self._blobs:
            call = f"GET /repos/{self.owner}/{repo}/git/blobs/{blob} ({path} at {ref})"
            self._blobs[blob] = self._call(call, lambda: _blob_text(self._repo(repo).get_git_blob(blob)))
        return self._blobs[blob]

    def commit_exists(self, repo: str, sha: str) -> bool:
        if not COMMIT_PATTERN.fullmatch(sha):
            return False
        try:
            self._tree(repo, sha)
        except NotFound:
            return False
        return True

    def ci_status(self, repo: str, sha: str) -> Optional[CiStatus]:
        key = (repo, sha)
        if key not in self._ci:
            commit = self._repo(repo).get_commit(sha)
            status_call = f"GET /repos/{self.owner}/{repo}/commits/{sha}/status"
            statuses = self._call(status_call, lambda: _statuses(commit.get_combined_status()))
            runs_call = f"GET /repos/{self.owner}/{repo}/commits/{sha}/check-runs"
            runs = self._call(runs_call, lambda: [(run.name, run.status, run.conclusion) for run in commit.get_check_runs()])
            self._ci[key] = ci_verdict(statuses, runs)
        return self._ci[key]

    # -- plumbing -----------------------------------------------------------------------------------

    def _repo(self, repo: str) -> Any:
        if repo not in self._repos:
            # lazy: no request until something is read from the repository
            self._repos[repo] = self._github.get_repo(f"{self.owner}/{repo}")
        return self._repos[repo]

    def _commit_of(self, repo: str, ref: str) -> str:
        return ref if COMMIT_PATTERN.fullmatch(ref) else self.resolve_tag(repo, ref)

    def _tree(self, repo: str, sha: str) -> dict[str, str]:
        key = (repo, sha)
        if key in self._trees:
            return self._trees[key]
        call = f"GET /repos/{self.owner}/{repo}/git/trees/{sha}"
        if key in self._missing_commits:
            raise NotFound(call, f"commit {sha} not found in {self.owner}/{repo}", "push it or fix the commit")
        try:
            tree_sha, entries = self._call(call, lambda: _tree_entries(self._repo(repo).get_git_tree(sha)))
        except NotFound as error:
            self._missing_commits.add(key)
            raise NotFound(call, f"commit {sha} not found in {self.owner}/{repo}", "push it or fix the commit") from error
        if tree_sha == sha:
            # The trees API also accepts a tree's own id; a commit's tree always has a different id.
            self._missing_commits.add(key)
            raise NotFound(call, f"{sha} is a tree in {self.owner}/{repo}, not a commit", "use the commit sha")
        self._trees[key] = entries
        return entries

    @staticmethod
    def _object_of(ref_or_tag: Any) -> tuple[str, str]:
        obj = ref_or_tag.object
        kind, sha = obj.type, obj.sha
        if not isinstance(kind, str) or not isinstance(sha, str) or not COMMIT_PATTERN.fullmatch(sha):
            raise ValueError(f"object is {kind!r} {sha!r}, not a type and a 40-hex sha")
        return kind, sha

    def _call(self, call: str, fn: Callable[[], T]) -> T:
        """Run one API call under the budget, mapping every fault to a SourceError."""
        if self._down is not None:
            raise Unreachable(call, f"not attempted: {self._down.call} already failed ({self._down.reason})", self._down.fix)
        now = self._clock()
        if self._deadline is None:
            self._deadline = now + self._total_timeout
        elif now >= self._deadline:
            self._down = Unreachable(
                call, f"the gate's {self._total_timeout:g}s budget for GitHub is spent", "retry when GitHub responds faster"
            )
            raise self._down
        try:
            return fn()
        except SourceError:
            raise
        except RateLimitExceededException as error:
            reset = (error.headers or {}).get("x-ratelimit-reset") or (error.headers or {}).get("X-RateLimit-Reset")
            fix = "set GITHUB_TOKEN for a higher limit, or wait" + (f" until {_utc(reset)}" if reset else "")
            raise self._unreachable(call, "GitHub rate limit exhausted (403)", fix) from None
        except BadCredentialsException:
            raise self._unreachable(call, "GitHub rejected GITHUB_TOKEN (401 bad credentials)", "set a valid GITHUB_TOKEN") from None
        except UnknownObjectException:
            raise NotFound(call, "not found (404)", "check the owner, repository and ref") from None
        except BadAttributeException as error:
            raise MalformedResponse(call, f"malformed response ({_short(error)})", "check GITHUB_API_URL points at a GitHub API") from None
        except GithubException as error:
            status = error.status
            if status == 404:
                raise NotFound(call, "not found (404)", "check the owner, repository and ref") from None
            if status in (403, 429) or (isinstance(status, int) and status >= 500):
                raise self._unreachable(call, f"GitHub answered {status}{_message(error)}", "retry later; the gate fails closed meanwhile") from None
            raise MalformedResponse(call, f"GitHub answered {status}{_message(error)}", "check GITHUB_API_URL and the request") from None
        except requests.exceptions.Timeout:
            raise self._unreachable(call, "timed out", "check connectivity to GitHub (GITHUB_API_URL) and retry") from None
        except requests.exceptions.RetryError:
            raise self._unreachable(call, "server errors persisted after retries", "retry later; the gate fails closed meanwhile") from None
        except requests.exceptions.ConnectionError as error:
            # requests reports a read timeout whose retries are spent as a ConnectionError wrapping it.
            reason = getattr(error.args[0], "reason", None) if error.args else None
            if isinstance(reason, urllib3.exceptions.ReadTimeoutError):
                raise self._unreachable(call, "timed out", "check connectivity to GitHub (GITHUB_API_URL) and retry") from None
            raise self._unreachable(call, f"cannot connect ({type(error).__name__})", "check connectivity to GitHub (GITHUB_API_URL)") from None
        except requests.exceptions.RequestException as error:
            raise self._unreachable(call, f"request failed ({type(error).__name__})", "check GITHUB_API_URL") from None
        except (ValueError, KeyError, TypeError, AttributeError, binascii.Error, UnicodeDecodeError) as error:
            raise MalformedResponse(call, f"malformed response ({type(error).__name__}: {_short(error)})", "check GITHUB_API_URL points at a GitHub API") from None

    def _unreachable(self, call: str, reason: str, fix: str) -> Unreachable:
        self._down = Unreachable(call, reason, fix)
        return self._down


def ci_verdict(statuses: list[tuple[str, str]], runs: list[tuple[str, Optional[str], Optional[str]]]) -> CiStatus:
    """Green only when every commit status succeeded and every check run completed green."""
    failing = [f"status {context}={state}" for context, state in statuses if state in ("failure", "error")]
    failing += [f"check {name}={conclusion}" for name, status, conclusion in runs if status == "completed" and conclusion not in GREEN_CONCLUSIONS]
    pending = [f"status {context}=pending" for context, state in statuses if state == "pending"]
    pending += [f"check {name}={status}" for name, status, _ in runs if status != "completed"]
    if failing:
        return CiStatus("failure", ", ".join(sorted(failing)))
    if pending:
        return CiStatus("pending", ", ".join(sorted(pending)))
    if not statuses and not runs:
        return CiStatus("none", "no commit status or check run reported")
    return CiStatus("success", f"{len(statuses)} status(es), {len(runs)} check run(s) green")


def _statuses(combined: Any) -> list[tuple[str, str]]:
    result = []
    for status in combined.statuses:
        if not isinstance(status.context, str) or status.state not in ("success", "pending", "failure", "error"):
            raise ValueError(f"commit status {status.context!r} has state {status.state!r}")
        result.append((status.context, status.state))
    return result


def _tree_entries(tree: Any) -> tuple[str, dict[str, str]]:
    entries = {}
    for element in tree.tree:
        if not isinstance(element.path, str) or not isinstance(element.sha, str):
            raise ValueError("tree entry without path or sha")
        if element.type == "blob":
            entries[element.path] = element.sha
    return tree.sha, entries


def _blob_text(blob: Any) -> str:
    if blob.encoding != "base64" or not isinstance(blob.content, str):
        raise ValueError(f"blob encoding {blob.encoding!r}")
    return base64.b64decode(blob.content).decode("utf-8")


def _message(error: GithubException) -> str:
    data = error.data if isinstance(error.data, dict) else {}
    message = data.get("message")
    return f" ({_short(message)})" if isinstance(message, str) and message else ""


def _short(value: object, limit: int = 160) -> str:
    text = str(value)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _utc(reset: str) -> str:
    try:
        return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(int(reset)))
    except (TypeError, ValueError, OverflowError):
        return "the reset time"
