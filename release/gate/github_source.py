"""`GitHubSource`: the gate's questions answered by GitHub's REST API, over httpx.

One request per question, each answer checked against its question:
  resolve_tag    GET git/ref/tags/<tag> (+ GET git/tags/<sha> per annotated level, at most 5): the ref
                 GitHub names must be exactly the tag asked for, a tag object the one asked for
  tree           GET git/trees/<commit>?recursive=1 (the listing; proves the commit exists) and, at the
                 same time, GET tarball/<commit> (302 to codeload, followed without the token): the archive
                 is taken only when it is the listed tree file for file (release/gate/trees.py)
  default_head   GET /repos/o/r (the default branch), GET git/ref/heads/<branch>
  released       GET compare/<default branch>...<commit>: the commit is on the default branch when it is
                 that branch's head or behind it (and the merge base GitHub names is the commit itself)
  relation       GET compare/<base>...<head>
  ci_status      GET commits/<sha>/status + GET commits/<sha>/check-runs (pages followed, counts compared)

Bounds, whatever the server does: each request attempt ends by a deadline (`timeout`, and never later
than the run's `total_timeout` from the first request), enforced by cancelling it (an asyncio timeout
scope around connecting, sending and reading the whole body), so headers or a body sent a byte at a time
cannot stretch it; at most `concurrency` requests are in flight; 5xx, 202 and refused connections are
retried `retries` times with a short capped backoff; an API redirect is followed only on the API's own
origin, an archive's to an https host (http only from a loopback API) and never with the token; a body is
at most MAX_BODY_BYTES (an archive MAX_ARCHIVE_BYTES); `Link: rel=next` pages on the same origin, at most
`max_pages`. A rate limit, a rejected token or a host that cannot be reached stops the run: requests in
flight are cancelled and none is started after it ("not attempted"). Every string of every answer is
redacted (`redacted_json`) as it is decoded. PyGithub, which the project's design names, could not hold
the first of these bounds: its `requests` transport bounds each socket read, not a request's whole time.
"""

from __future__ import annotations

import asyncio
import json
import ssl
import time
import urllib.parse
import urllib.request
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Optional, TypeVar

import httpx

from release.config import COMMIT_PATTERN
from release.gate.sources import (
    CiStatus,
    MalformedResponse,
    NotFound,
    Relation,
    SourceError,
    TagNotFound,
    Unreachable,
    is_loopback,
    redacted_json,
    server_text,
    shown_url,
    validate_api_url,
    validate_token,
)
from release.gate.trees import MAX_ARCHIVE_BYTES, Tree, TreeError, checked_listing, tree_from_archive

T = TypeVar("T")

PUBLIC_API_URL = "https://api.github.com"
RETRY_STATUSES = frozenset({202, 500, 502, 503, 504})  # 202: GitHub is still preparing the answer
REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})
SUCCESS_CONCLUSIONS = frozenset({"success"})
NEUTRAL_CONCLUSIONS = frozenset({"neutral", "skipped"})  # ran or chose not to: neither green nor red
MAX_TAG_DEPTH = 5  # annotated tags can point at tags; a deeper chain is malformed
MAX_REDIRECTS = 3
MAX_PAGES = 10  # 100 items a page: 1000 statuses or check runs on one commit is not a real CI
MAX_BODY_BYTES = 8 << 20
# GitHub refuses more than 100 concurrent requests (its secondary limit); today's shape asks ~30 at once in
# its first stage, so 32 keeps every stage one round trip.
DEFAULT_CONCURRENCY = 32
MAX_CONCURRENCY = 64
BACKOFF_MAX = 2.0
USER_AGENT = "us-equity-cutover-release-gate"
API_FIX = "check GITHUB_API_URL points at a GitHub API"


class GitHubSource:
    kind = "github"

    def __init__(
        self,
        owner: str,
        token: Optional[str] = None,
        base_url: Optional[str] = None,
        *,
        timeout: float = 10.0,
        retries: int = 2,
        backoff: float = 0.25,
        total_timeout: float = 60.0,
        max_pages: int = MAX_PAGES,
        max_redirects: int = MAX_REDIRECTS,
        concurrency: int = DEFAULT_CONCURRENCY,
    ) -> None:
        if not 1 <= concurrency <= MAX_CONCURRENCY:
            raise ValueError(f"concurrency must be 1..{MAX_CONCURRENCY}")
        self.owner = owner
        self.concurrency = concurrency
        self.base_url = validate_api_url(base_url or PUBLIC_API_URL)
        self._token = validate_token(token)
        self._bounds = _Bounds(timeout, retries, backoff, total_timeout, max_pages, max_redirects)
        self._http: Optional[_Session] = None
        self._once: dict[tuple[str, ...], asyncio.Task[Any]] = {}

    def describe(self) -> str:
        return f"github ({shown_url(self.base_url)}, {'token from GITHUB_TOKEN' if self._token else 'no token'})"

    async def __aenter__(self) -> "GitHubSource":
        self._http = _Session(self.base_url, self._token, self.concurrency, self._bounds)
        self._once = {}
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._http is not None:
            await self._http.close()
        self._http = None

    @property
    def http(self) -> "_Session":
        if self._http is None:
            raise RuntimeError("GitHubSource is used outside `async with source:`")
        return self._http

    # -- the protocol -------------------------------------------------------------------------------

    async def resolve_tag(self, repo: str, tag: str) -> str:
        call = f"GET {self._path(repo, 'git', 'ref', 'tags', tag)}"
        try:
            data = await self.http.get_json(call, self._path(repo, "git", "ref", "tags", tag))
        except NotFound as error:
            raise TagNotFound(
                call,
                f"tag {tag} not found in {self.owner}/{repo}" + ("" if self._token else " (no GITHUB_TOKEN: a private repo looks missing)"),
                f"push the tag {tag} to {self.owner}/{repo} or fix the release",
            ) from error
        kind, sha = _checked(call, _tag_ref, call, data, tag)
        for depth in range(MAX_TAG_DEPTH + 1):
            if kind == "commit":
                return sha
            if kind != "tag":
                raise MalformedResponse(call, f"tag {tag} points at a {kind}, not a commit", "tag a commit")
            if depth == MAX_TAG_DEPTH:
                break
            call = f"GET {self._path(repo, 'git', 'tags', sha)}"
            tag_object = await self.http.get_json(call, self._path(repo, "git", "tags", sha))
            kind, sha = _checked(call, _tag_object, call, tag_object, sha)
        raise MalformedResponse(call, f"tag {tag} is nested more than {MAX_TAG_DEPTH} levels deep", "tag the commit directly")

    async def early_archive(self, repo: str, ref: str) -> Optional[bytes]:
        try:
            return await self.http.get_archive(f"GET {self._path(repo, 'tarball', ref)}", self._path(repo, "tarball", ref))
        except SourceError:
            return None  # the archive by the commit is asked instead (a source-wide fault stops that too)

    async def tree(self, repo: str, commit: str, early: Optional["asyncio.Future[Optional[bytes]]"] = None) -> Tree:
        listing_call = f"GET {self._path(repo, 'git', 'trees', commit)}?recursive=1"
        archive_call = f"GET {self._path(repo, 'tarball', commit)}"
        archive_source: asyncio.Future[Optional[bytes]] = (
            early if early is not None else asyncio.ensure_future(self.http.get_archive(archive_call, self._path(repo, "tarball", commit)))
        )
        listing, archive = await asyncio.gather(self._listing(repo, commit, listing_call), archive_source, return_exceptions=True)
        for outcome in (listing, archive):  # the listing's fault (a missing commit) comes first
            if isinstance(outcome, BaseException):
                raise outcome
        assert isinstance(listing, dict)
        if isinstance(archive, bytes) and early is not None:
            try:
                return tree_from_archive(repo, commit, archive, listing, strip=1)
            except TreeError:
                pass  # the name meant another commit by the time it was archived (a moved tag): ask by the commit
        if early is not None:
            archive = await self.http.get_archive(archive_call, self._path(repo, "tarball", commit))
        assert isinstance(archive, bytes)
        try:
            return tree_from_archive(repo, commit, archive, listing, strip=1)
        except TreeError as error:
            raise MalformedResponse(
                archive_call, server_text(error, self.http.secrets), "the archive must be the commit's tree; " + API_FIX
            ) from None

    async def default_head(self, repo: str) -> tuple[str, str]:
        branch = await self._default_branch(repo)
        call = f"GET {self._path(repo, 'git', 'ref', 'heads', branch)}"
        data = await self.http.get_json(call, self._path(repo, "git", "ref", "heads", branch))
        return branch, _checked(call, _head_of, call, data, branch)

    async def released(self, repo: str, commit: str) -> tuple[bool, str]:
        branch = await self._default_branch(repo)
        relation = await self._compare(repo, branch, commit, what=f"commit {commit}")
        return relation in ("same", "behind"), branch

    async def relation(self, repo: str, base: str, head: str) -> Relation:
        return await self._compare(repo, base, head, what=f"commits {base} and {head}")

    async def ci_status(self, repo: str, commit: str) -> Optional[CiStatus]:
        status_call = f"GET {self._path(repo, 'commits', commit, 'status')}"
        runs_call = f"GET {self._path(repo, 'commits', commit, 'check-runs')}"
        statuses, runs = await asyncio.gather(
            self._statuses(repo, commit, status_call), self._check_runs(repo, commit, runs_call), return_exceptions=True
        )
        for outcome in (statuses, runs):
            if isinstance(outcome, BaseException):
                raise outcome
        assert isinstance(statuses, list) and isinstance(runs, list)
        return ci_verdict(statuses, runs)

    # -- one request each -----------------------------------------------------------------------------

    def _path(self, repo: str, *parts: str) -> str:
        return _api_path(self.owner, repo, *parts)

    async def _memo(self, key: tuple[str, ...], make: Callable[[], Awaitable[T]]) -> T:
        """One request per key per run, however many questions need it (a repository's default branch)."""
        if key not in self._once:
            self._once[key] = asyncio.ensure_future(make())
        task: asyncio.Task[T] = self._once[key]
        return await asyncio.shield(task)

    async def _default_branch(self, repo: str) -> str:
        async def ask() -> str:
            call = f"GET {self._path(repo)}"
            data = await self.http.get_json(call, self._path(repo))
            return _checked(call, _branch_name, data)

        return await self._memo(("repo", repo), ask)

    async def _listing(self, repo: str, commit: str, call: str) -> dict[str, tuple[str, str]]:
        try:
            data = await self.http.get_json(call, self._path(repo, "git", "trees", commit) + "?recursive=1")
        except NotFound as error:
            raise NotFound(call, f"commit {commit} not found in {self.owner}/{repo}", "push it or fix the commit") from error
        return _checked(call, _listed, call, data, commit, f"{self.owner}/{repo}")

    async def _compare(self, repo: str, base: str, head: str, what: str) -> Relation:
        call = f"GET {self._path(repo, 'compare', f'{base}...{head}')}"
        try:
            data = await self.http.get_json(call, self._path(repo, "compare", f"{base}...{head}") + "?per_page=1")
        except NotFound as error:
            raise NotFound(call, f"{what} not found in {self.owner}/{repo}", "push it or fix the ref") from error
        return _checked(call, _relation, call, data, base, head)

    async def _statuses(self, repo: str, commit: str, call: str) -> list[tuple[str, str]]:
        result: list[tuple[str, str]] = []
        total: Optional[int] = None
        for page in await self.http.get_pages(call, self._path(repo, "commits", commit, "status")):
            if page.get("sha") not in (None, commit):
                raise MalformedResponse(call, f"statuses are for another commit than {commit}", API_FIX)
            count = page.get("total_count")
            total = count if isinstance(count, int) and not isinstance(count, bool) else total
            for status in _checked(call, _field, page, "statuses", list):
                context, state = (status.get("context"), status.get("state")) if isinstance(status, dict) else (None, None)
                if not isinstance(context, str) or state not in ("success", "pending", "failure", "error"):
                    raise MalformedResponse(
                        call,
                        f"malformed response (commit status {server_text(context, limit=60)!r} has state {server_text(state, limit=20)!r})",
                        API_FIX,
                    )
                result.append((context, state))
        if total is not None and total != len(result):
            # A list that says it is longer than what was sent would hide a failing status.
            raise MalformedResponse(
                call, f"GitHub counted {total} statuses but listed {len(result)}", "retry; the gate fails closed meanwhile"
            )
        return result

    async def _check_runs(self, repo: str, commit: str, call: str) -> list[tuple[str, Optional[str], Optional[str]]]:
        runs: list[tuple[str, Optional[str], Optional[str]]] = []
        total: Optional[int] = None
        for page in await self.http.get_pages(call, self._path(repo, "commits", commit, "check-runs")):
            count = page.get("total_count")
            total = count if isinstance(count, int) and not isinstance(count, bool) else total
            for run in _checked(call, _field, page, "check_runs", list):
                if not isinstance(run, dict) or not isinstance(run.get("name"), str) or not isinstance(run.get("status"), str):
                    raise MalformedResponse(call, "malformed response (check run without name or status)", API_FIX)
                if run.get("head_sha") not in (None, commit):
                    raise MalformedResponse(
                        call, f"check run {server_text(run['name'], limit=60)} is for another commit than {commit}", API_FIX
                    )
                conclusion = run.get("conclusion")
                runs.append((run["name"], run["status"], conclusion if isinstance(conclusion, str) else None))
        if total is not None and total != len(runs):
            raise MalformedResponse(
                call, f"GitHub counted {total} check runs but listed {len(runs)}", "retry; the gate fails closed meanwhile"
            )
        return runs


def _api_path(*parts: str) -> str:
    # Every segment quoted: a name or ref can never add a path segment, a query or a fragment.
    return "/repos/" + "/".join(urllib.parse.quote(part, safe="") for part in parts)


def _checked(call: str, read: Callable[..., T], *args: Any) -> T:
    """An answer's shape, read: anything missing or of the wrong type is a malformed answer, never a fact."""
    try:
        return read(*args)
    except (ValueError, KeyError, TypeError, AttributeError) as error:
        raise MalformedResponse(call, f"malformed response ({server_text(error, limit=120)})", API_FIX) from None


def _field(data: object, name: str, kind: type) -> Any:
    if not isinstance(data, dict) or not isinstance(data.get(name), kind):
        raise ValueError(f"no {name} ({kind.__name__}) in the answer")
    return data[name]


def _object_of(obj: dict[str, Any]) -> tuple[str, str]:
    kind, sha = obj.get("type"), obj.get("sha")
    if not isinstance(kind, str) or not isinstance(sha, str) or not COMMIT_PATTERN.fullmatch(sha):
        raise ValueError("the object is not a type and a 40-hex sha")
    return kind, sha


def _exact_ref(call: str, data: Any, wanted: str) -> dict[str, Any]:
    if isinstance(data, list):
        # The old refs API matches by prefix (v0.7.1 answers with v0.7.10, v0.7.11...): only an exact name counts.
        exact = [item for item in data if isinstance(item, dict) and item.get("ref") == wanted]
        if not exact:
            raise NotFound(call, f"no ref named exactly {wanted}", "push it")
        data = exact[0]
    ref = _field(data, "ref", str)
    if ref != wanted:
        raise MalformedResponse(call, f"asked for {wanted}, GitHub answered for {server_text(ref, limit=80)}", API_FIX)
    return dict(data)


def _tag_ref(call: str, data: Any, tag: str) -> tuple[str, str]:
    return _object_of(_field(_exact_ref(call, data, f"refs/tags/{tag}"), "object", dict))


def _tag_object(call: str, data: Any, sha: str) -> tuple[str, str]:
    if _field(data, "sha", str) != sha:
        raise MalformedResponse(call, f"asked for tag object {sha}, got another object", API_FIX)
    return _object_of(_field(data, "object", dict))


def _head_of(call: str, data: Any, branch: str) -> str:
    kind, sha = _object_of(_field(_exact_ref(call, data, f"refs/heads/{branch}"), "object", dict))
    if kind != "commit":
        raise ValueError(f"the branch points at a {kind}")
    return sha


def _branch_name(data: Any) -> str:
    branch = _field(data, "default_branch", str)
    if not branch or len(branch) > 255 or any(ord(char) < 33 or char in "~^:?*[\\" for char in branch) or ".." in branch:
        raise ValueError("the default branch is not a branch name")
    return str(branch)


def _listed(call: str, data: Any, commit: str, where: str) -> dict[str, tuple[str, str]]:
    """path -> (mode, blob id) of a recursive tree listing; a partial listing is refused."""
    if _field(data, "sha", str) == commit:
        # The trees API also accepts a tree's own id; a commit's tree always has a different id.
        raise NotFound(call, f"{commit} is a tree in {where}, not a commit", "use the commit sha")
    if data.get("truncated") is True:
        # A partial listing would make a present file look absent (an install file, a bundled config).
        raise MalformedResponse(call, "GitHub truncated the recursive tree listing", "check the repository's size")
    entries = {}
    for element in _field(data, "tree", list):
        if not isinstance(element, dict) or not isinstance(element.get("path"), str) or not isinstance(element.get("sha"), str):
            raise ValueError("a tree entry without path or sha")
        if element.get("type") == "blob":
            if not COMMIT_PATTERN.fullmatch(element["sha"]) or not isinstance(element.get("mode"), str):
                raise ValueError("a blob entry without a 40-hex id and a mode")
            entries[element["path"]] = (element["mode"], element["sha"])
    return dict(checked_listing(entries))


_RELATIONS: dict[str, Relation] = {"identical": "same", "ahead": "ahead", "behind": "behind", "diverged": "diverged"}


def _relation(call: str, data: Any, base: str, head: str) -> Relation:
    status = _field(data, "status", str)
    if status not in _RELATIONS:
        raise ValueError(f"unknown comparison status {server_text(status, limit=20)}")
    relation = _RELATIONS[status]
    merge_base = _field(_field(data, "merge_base_commit", dict), "sha", str)
    # The merge base must say what the status says: head itself when head is behind base (or is base),
    # base itself when head is ahead, and neither when they diverged.
    if (relation in ("same", "behind") and merge_base != head) or (
        relation == "ahead" and COMMIT_PATTERN.fullmatch(base) and merge_base != base
    ):
        raise MalformedResponse(call, f"GitHub says {head[:7]} is {status} of {base[:12]} but names another merge base", API_FIX)
    if relation == "diverged" and merge_base in (head, base):
        raise MalformedResponse(call, "GitHub says the commits diverged but names one of them as their merge base", API_FIX)
    return relation


def ci_verdict(statuses: list[tuple[str, str]], runs: list[tuple[str, Optional[str], Optional[str]]]) -> CiStatus:
    """Green only when at least one status or check run succeeded and none failed or is still running.

    `neutral` and `skipped` runs neither fail nor count: a commit whose only run was skipped ran nothing.
    """
    failing = [f"status {server_text(context, limit=80)}={state}" for context, state in statuses if state in ("failure", "error")]
    failing += [
        f"check {server_text(name, limit=80)}={conclusion}" for name, status, conclusion in runs
        if status == "completed" and conclusion not in SUCCESS_CONCLUSIONS | NEUTRAL_CONCLUSIONS
    ]  # fmt: skip
    pending = [f"status {server_text(context, limit=80)}=pending" for context, state in statuses if state == "pending"]
    pending += [f"check {server_text(name, limit=80)}={status}" for name, status, _ in runs if status != "completed"]
    succeeded = sum(1 for _, state in statuses if state == "success")
    succeeded += sum(1 for _, status, conclusion in runs if status == "completed" and conclusion in SUCCESS_CONCLUSIONS)
    if failing:
        return CiStatus("failure", ", ".join(sorted(failing)))
    if pending:
        return CiStatus("pending", ", ".join(sorted(pending)))
    if not succeeded:
        if not statuses and not runs:
            return CiStatus("none", "no commit status or check run reported")
        return CiStatus("none", f"nothing succeeded: {len(runs)} check run(s) all neutral or skipped, {len(statuses)} status(es)")
    return CiStatus("success", f"{len(statuses)} status(es), {len(runs)} check run(s), {succeeded} succeeded, none failed")


# -- the bounded HTTP session ------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Bounds:
    timeout: float
    retries: int
    backoff: float
    total_timeout: float
    max_pages: int
    max_redirects: int


class _Session:
    """GETs to the API's origin (and an archive's redirect target) for one run, with its bounds."""

    def __init__(self, base_url: str, token: Optional[str], concurrency: int, bounds: _Bounds) -> None:
        timeout, retries, backoff = bounds.timeout, bounds.retries, bounds.backoff
        total_timeout, max_pages, max_redirects = bounds.total_timeout, bounds.max_pages, bounds.max_redirects
        parts = urllib.parse.urlsplit(base_url)
        self._origin = (parts.scheme, (parts.hostname or "").lower(), parts.port or (443 if parts.scheme == "https" else 80))
        self._base_path = parts.path.rstrip("/")
        self.base_url = base_url
        self._token = token
        self.secrets = tuple(filter(None, (token, parts.password, parts.username)))
        self._timeout, self._retries, self._backoff = timeout, retries, backoff
        self._total_timeout, self._max_pages, self._max_redirects = total_timeout, max_pages, max_redirects
        self._slots = asyncio.Semaphore(concurrency)
        loop = asyncio.get_running_loop()
        self._deadline = loop.time() + total_timeout
        self._down: Optional[SourceError] = None
        self._down_event = asyncio.Event()
        proxy = _proxy_for(parts.scheme, parts.hostname or "")
        # The system's trust store takes ~0.1 s to load: only an https API needs it (a plain-http API is a
        # loopback fake, whose archives stay on loopback too).
        verify: ssl.SSLContext | bool = ssl.create_default_context() if parts.scheme == "https" else False
        self._client = httpx.AsyncClient(
            follow_redirects=False, trust_env=False, verify=verify, proxy=proxy,
            timeout=httpx.Timeout(timeout), limits=httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency),
        )  # fmt: skip

    async def close(self) -> None:
        await self._client.aclose()

    # -- the three kinds of answer ----------------------------------------------------------------------

    async def get_json(self, call: str, path: str) -> Any:
        _, body = await self._get(call, self._base_path + path, archive=False)
        return self._decoded(call, body)

    async def get_pages(self, call: str, path: str) -> list[dict[str, Any]]:
        """Every page of a list endpoint (`?per_page=100`, then `Link: rel=next`), at most max_pages."""
        pages: list[dict[str, Any]] = []
        target: Optional[str] = self._base_path + path + "?per_page=100"
        while target is not None:
            if len(pages) >= self._max_pages:
                raise MalformedResponse(call, f"more than {self._max_pages} pages of results", "this is not a real CI; " + API_FIX)
            headers, body = await self._get(call, target, archive=False)
            data = self._decoded(call, body)
            if not isinstance(data, dict):
                raise MalformedResponse(call, "malformed response (a page is not an object)", API_FIX)
            pages.append(data)
            target = self._next_link(call, headers.get("link"))
        return pages

    async def get_archive(self, call: str, path: str) -> bytes:
        _, body = await self._get(call, self._base_path + path, archive=True)
        return body

    def _decoded(self, call: str, body: bytes) -> Any:
        try:
            data = json.loads(body.decode("utf-8"))
        except (UnicodeDecodeError, ValueError, RecursionError):  # RecursionError: JSON nested too deep
            raise MalformedResponse(call, "malformed response (not JSON)", API_FIX) from None
        return redacted_json(data, self.secrets)

    # -- one logical GET: retries, redirects, the run's latch -------------------------------------------

    async def _get(self, call: str, target: str, archive: bool) -> tuple[httpx.Headers, bytes]:
        url = self._url(target)
        redirects = attempt = 0
        while True:
            self._check_running(call)
            try:
                status, headers, body = await self._guarded(call, url, archive)
            except _ConnectFailed as failed:
                if attempt < self._retries and self._left() > 0:
                    attempt += 1
                    await self._pause(attempt)
                    continue
                raise self._latched(
                    Unreachable(
                        call, f"cannot connect ({failed}) after {attempt + 1} tries", "check connectivity to GitHub (GITHUB_API_URL)", True
                    )
                ) from None
            if status in REDIRECT_STATUSES:
                redirects += 1
                if redirects > self._max_redirects:
                    raise SourceError(call, f"more than {self._max_redirects} redirects", "check GITHUB_API_URL")
                url = self._redirect(call, url, headers.get("location", ""), archive)
                continue
            if status in RETRY_STATUSES:
                if attempt < self._retries:
                    attempt += 1
                    await self._pause(attempt)
                    continue
                if status == 202:
                    raise Unreachable(
                        call,
                        f"GitHub kept answering 202 Accepted (still preparing) after {attempt + 1} tries",
                        "retry later; the gate fails closed meanwhile",
                    )
                raise Unreachable(
                    call,
                    f"GitHub answered {status}{self._message(body)} after {attempt + 1} tries",
                    "retry later; the gate fails closed meanwhile",
                )
            if status == 200:
                return headers, body
            raise self._fault(call, status, headers, body)

    def _fault(self, call: str, status: int, headers: httpx.Headers, body: bytes) -> SourceError:
        message = self._message(body)
        if status == 404:
            return NotFound(call, "not found (404)", "check the owner, repository and ref")
        if status == 401:
            return self._latched(
                Unreachable(call, f"GitHub rejected GITHUB_TOKEN (401 bad credentials){message}", "set a valid GITHUB_TOKEN", True)
            )
        if status in (403, 429) and (headers.get("x-ratelimit-remaining") == "0" or "rate limit" in message.lower()):
            reset = headers.get("x-ratelimit-reset")
            fix = "set GITHUB_TOKEN for a higher limit, or wait" + (f" until {_utc(reset)}" if reset else "")
            return self._latched(Unreachable(call, f"GitHub rate limit exhausted ({status})", fix, True))
        if status in (403, 429) or status >= 500:
            return Unreachable(call, f"GitHub answered {status}{message}", "retry later; the gate fails closed meanwhile")
        return MalformedResponse(call, f"GitHub answered {status}{message}", "check GITHUB_API_URL and the request")

    def _latched(self, error: SourceError) -> SourceError:
        """A fault every further request would meet: remembered, and the requests in flight are stopped."""
        if error.source_wide and self._down is None:
            self._down = error
            self._down_event.set()
        return error

    def _check_running(self, call: str) -> None:
        if self._down is not None:
            down = self._down
            raise Unreachable(call, f"not attempted: {down.call} already failed ({down.reason})", down.fix, source_wide=True)
        if self._left() <= 0:
            raise self._spent(call)

    def _left(self) -> float:
        return self._deadline - asyncio.get_running_loop().time()

    def _spent(self, call: str) -> Unreachable:
        return Unreachable(
            call, f"the gate's {self._total_timeout:g}s budget for GitHub was spent before an answer", "retry when GitHub responds faster"
        )

    async def _pause(self, attempt: int) -> None:
        await asyncio.sleep(max(0.0, min(self._backoff * 2 ** (attempt - 1), BACKOFF_MAX, self._left())))

    async def _guarded(self, call: str, url: str, archive: bool) -> tuple[int, httpx.Headers, bytes]:
        """One attempt, stopped at once when another request meets a source-wide fault."""
        attempt = asyncio.ensure_future(self._attempt(call, url, archive))
        down = asyncio.ensure_future(self._down_event.wait())
        try:
            await asyncio.wait([attempt, down], return_when=asyncio.FIRST_COMPLETED)
        finally:
            down.cancel()
            if not attempt.done():
                attempt.cancel()
                await asyncio.gather(attempt, return_exceptions=True)
        if attempt.cancelled():
            self._check_running(call)
            raise self._spent(call)
        return attempt.result()

    async def _attempt(self, call: str, url: str, archive: bool) -> tuple[int, httpx.Headers, bytes]:
        """One request: headers and the whole body within min(now + timeout, the run's deadline)."""
        loop = asyncio.get_running_loop()
        budget_bound = False
        limit = MAX_ARCHIVE_BYTES if archive else MAX_BODY_BYTES
        headers = {"Accept": "application/vnd.github+json", "X-GitHub-Api-Version": "2022-11-28", "User-Agent": USER_AGENT}
        if self._token and self._same_origin(url):
            headers["Authorization"] = f"Bearer {self._token}"  # never to another host: an archive's redirect target
        try:
            async with asyncio.timeout_at(self._deadline):
                async with self._slots:
                    self._check_running(call)  # a fault met while this request waited for its slot
                    ends = min(loop.time() + self._timeout, self._deadline)
                    budget_bound = ends >= self._deadline
                    async with asyncio.timeout_at(ends):
                        async with self._client.stream("GET", url, headers=headers) as response:
                            length = response.headers.get("content-length")
                            if length is not None and length.isdigit() and int(length) > limit:
                                raise _TooLarge(limit)
                            received = bytearray()
                            async for chunk in response.aiter_bytes():
                                received += chunk
                                if len(received) > limit:
                                    raise _TooLarge(limit)
                            if response.status_code in (401, 403, 429):
                                # judged before the slot is given up, so no request waiting for it starts
                                self._fault(call, response.status_code, response.headers, bytes(received))
                            return response.status_code, response.headers, bytes(received)
        except _TooLarge as large:
            raise MalformedResponse(call, f"the answer is larger than {large.limit >> 20} MiB", API_FIX) from None
        except TimeoutError:
            if budget_bound or self._left() <= 0:
                raise self._spent(call) from None
            raise Unreachable(
                call, f"timed out: no complete answer within {self._timeout:g}s", "check connectivity to GitHub (GITHUB_API_URL) and retry"
            ) from None
        except (httpx.ConnectError, httpx.ConnectTimeout) as error:
            raise _ConnectFailed(type(error).__name__) from None
        except (httpx.HTTPError, httpx.InvalidURL, OSError) as error:
            raise Unreachable(
                call, f"the connection failed ({type(error).__name__})", "check connectivity to GitHub (GITHUB_API_URL) and retry"
            ) from None

    # -- where a request may go ----------------------------------------------------------------------------

    def _url(self, target: str) -> str:
        scheme, host, port = self._origin
        return f"{scheme}://{host}:{port}{target}"

    def _same_origin(self, url: str) -> bool:
        parts = urllib.parse.urlsplit(url)
        return (parts.scheme, (parts.hostname or "").lower(), parts.port or (443 if parts.scheme == "https" else 80)) == self._origin

    def _redirect(self, call: str, current: str, location: str, archive: bool) -> str:
        """Where a redirect may lead: the API's own origin; for an archive also another host (GitHub's
        codeload), over https, or plain http only when the API itself is on loopback (a local fake)."""
        target = urllib.parse.urljoin(current, location)
        parts = urllib.parse.urlsplit(target)
        if self._same_origin(target) and not parts.username and not parts.password:
            return target
        shown = server_text(shown_url(f"{parts.scheme}://{parts.hostname}:{parts.port or ''}"), self.secrets, 80)
        allowed_scheme = parts.scheme == "https" or (
            parts.scheme == "http" and self._origin[0] == "http" and is_loopback(parts.hostname or "")
        )
        if archive and allowed_scheme and parts.hostname and not parts.username and not parts.password:
            return target
        raise SourceError(
            call,
            f"refused a redirect to another origin ({shown}); the token is only ever sent to {shown_url(self.base_url)}",
            "check GITHUB_API_URL points at the GitHub API itself",
        )

    def _next_link(self, call: str, header: Optional[str]) -> Optional[str]:
        if not header:
            return None
        for part in header.split(","):
            url, _, params = part.partition(";")
            if 'rel="next"' in params.replace(" ", "") or "rel=next" in params.replace(" ", ""):
                target = urllib.parse.urljoin(self._url("/"), url.strip().strip("<>"))
                if not self._same_origin(target):
                    shown = server_text(shown_url(target), self.secrets, 80)
                    raise SourceError(
                        call,
                        f"refused a next-page link to another origin ({shown}); the token is only ever sent to {shown_url(self.base_url)}",
                        "check GITHUB_API_URL points at the GitHub API itself",
                    )
                parts = urllib.parse.urlsplit(target)
                return parts.path + (f"?{parts.query}" if parts.query else "")
        return None

    def _message(self, body: bytes) -> str:
        try:
            message = json.loads(body.decode("utf-8")).get("message")
        except (UnicodeDecodeError, ValueError, AttributeError, RecursionError):
            return ""
        return f" ({server_text(message, self.secrets, 160)})" if isinstance(message, str) and message else ""


class _TooLarge(Exception):
    def __init__(self, limit: int) -> None:
        super().__init__(limit)
        self.limit = limit


class _ConnectFailed(Exception):
    pass


def _proxy_for(scheme: str, host: str) -> Optional[str]:
    """An https proxy from HTTPS_PROXY (honouring NO_PROXY); plain http is loopback only and never proxied."""
    if scheme != "https" or urllib.request.proxy_bypass(host):
        return None
    proxy = urllib.request.getproxies().get("https")
    if not proxy:
        return None
    return proxy if "://" in proxy else f"http://{proxy}"


def _utc(reset: str) -> str:
    try:
        return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(int(reset)))
    except (TypeError, ValueError, OverflowError):
        return "the reset time"
