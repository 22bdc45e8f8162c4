"""`GitHubSource`: the gate's facts from the GitHub REST API, over a small bounded HTTP client.

Round trips per question (each answer cached for the source's lifetime, per (repo, object)):
  resolve_tag   GET git/ref/tags/<tag> (+ GET git/tags/<sha> per annotated level)
  list_files    GET git/trees/<commit>?recursive=1 - proves the commit exists and lists all its files at once;
                while exploring, files at a tag still resolving: GET git/trees/<tag>?recursive=1, taken as
                the commit's tree once GET git/commits/<commit> names the same tree id (see `_tree`)
  read_file     GET git/blobs/<blob sha> - only for files the tree listed; identical files are fetched once
  ci_status     GET commits/<sha>/status + GET commits/<sha>/check-runs (pages followed, capped)

Every answer is checked against the question: the ref GitHub names is the tag asked for, a tag object
or blob has the id asked for (a blob's content must hash to its id), statuses and check runs are for the
commit asked about. Anything else is a malformed answer, never a fact.

Bounded time, whatever the server does (the client is ours, not PyGithub's, because these bounds need
the socket): each request attempt ends by a wall-clock deadline (`timeout`, and never later than the
run's `total_timeout`) enforced by a watchdog that shuts the socket down, so a body or headers sent a
byte at a time cannot stretch it; 5xx and 202 are retried `retries` times with a short capped backoff;
redirects are followed only to the same scheme, host and port (so the token never leaves it), at most
MAX_REDIRECTS; `Link: rel=next` pages likewise, at most MAX_PAGES; a body is at most MAX_BODY_BYTES.
Every fault names the endpoint. Rate limits and a rejected token are not waited out: they fail closed
at once, and questions not yet asked are not asked.

Concurrency: every answer goes through `self.answers` (release/gate/sources.py `Answers`), which the gate
explores with up to `concurrency` requests in flight (`release.gate.sources.explore`); the HTTP client keeps one
connection per pool thread. With a token, `group_questions` lets one GraphQL query answer the CI, commit
tree id and blob questions of up to GRAPHQL_OBJECTS objects while exploring; REST answers whatever GraphQL
did not, cleanly. When the pool is full, `question_priority` orders what starts next.
"""

from __future__ import annotations

import base64
import binascii
import functools
import hashlib
import http.client
import json
import socket
import ssl
import threading
import time
import urllib.parse
import urllib.request
from typing import Any, Callable, Hashable, Optional, TypeVar

from release.config import COMMIT_PATTERN
from release.gate.sources import (
    Answers,
    CiStatus,
    Job,
    MalformedResponse,
    NotFound,
    Pending,
    Pendings,
    SourceError,
    TagNotFound,
    TreeSource,
    Unreachable,
    one_job_each,
    server_text,
    shown_url,
    validate_api_url,
    validate_token,
)

T = TypeVar("T")

PUBLIC_API_URL = "https://api.github.com"
RETRY_STATUSES = frozenset({202, 500, 502, 503, 504})  # 202: GitHub is still preparing the answer
REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})
SUCCESS_CONCLUSIONS = frozenset({"success"})
NEUTRAL_CONCLUSIONS = frozenset({"neutral", "skipped"})  # ran or chose not to: neither green nor red
MAX_TAG_DEPTH = 5  # annotated tags can point at tags; a deeper chain is treated as malformed
MAX_REDIRECTS = 3
MAX_PAGES = 10  # 100 items a page: 1000 statuses or check runs on one commit is not a real CI
MAX_BODY_BYTES = 8 << 20
DEFAULT_CONCURRENCY = 8  # requests in flight at once; GitHub's secondary limits start well above this
MAX_CONCURRENCY = 32
GRAPHQL_OBJECTS = 20  # commits or blobs per GraphQL query: well inside GitHub's node limits
BACKOFF_MAX = 2.0
USER_AGENT = "us-equity-cutover-release-gate"


class GitHubSource(TreeSource):
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
        clock: Callable[[], float] = time.monotonic,
        max_pages: int = MAX_PAGES,
        max_redirects: int = MAX_REDIRECTS,
        concurrency: int = DEFAULT_CONCURRENCY,
        graphql: bool = True,
    ) -> None:
        if not 1 <= concurrency <= MAX_CONCURRENCY:
            raise ValueError(f"concurrency must be 1..{MAX_CONCURRENCY}")
        self.owner = owner
        self.concurrency = concurrency
        self.base_url = validate_api_url(base_url or PUBLIC_API_URL)
        self._token = validate_token(token)
        self._http = BoundedHTTP(
            self.base_url, self._token, timeout=timeout, retries=retries, backoff=backoff,
            total_timeout=total_timeout, clock=clock, max_pages=max_pages, max_redirects=max_redirects,
        )  # fmt: skip
        self.answers = Answers()
        # GraphQL only with a token (GitHub refuses it anonymously) and only until it first fails; until
        # one query has worked, only one is in flight (a broken endpoint costs one query, not one per round).
        self._graphql = graphql and bool(self._token)
        self._graphql_proven = False
        self._graphql_probing = False
        self._graphql_asked: set[Hashable] = set()  # each question goes to GraphQL at most once
        self._blob_repos: dict[str, str] = {}
        self._tags_at: dict[tuple[str, str], frozenset[str]] = {}  # (repo, commit) -> tags resolved to it
        self._named_asked: set[tuple[str, str]] = set()  # (repo, tag) whose tree was asked by name

    def describe(self) -> str:
        return f"github ({shown_url(self.base_url)}, {'token from GITHUB_TOKEN' if self._token else 'no token'})"

    def close(self) -> None:
        self._http.close()

    def deadline(self) -> float:
        """When the run's time budget ends (monotonic clock); starts the budget if nothing was asked yet."""
        return self._http.run_deadline()

    # -- the protocol -------------------------------------------------------------------------------

    def resolve_tag(self, repo: str, tag: str) -> str:
        call = f"GET {self._path(repo, 'git', 'ref', 'tags', tag)}"
        try:
            kind, sha = self._ask(("ref", repo, tag), call, lambda: self._tag_ref(repo, tag, call))
        except NotFound as error:
            raise TagNotFound(
                call,
                f"tag {tag} not found in {self.owner}/{repo}" + ("" if self._token else " (no GITHUB_TOKEN: a private repo looks missing)"),
                f"push the tag {tag} to {self.owner}/{repo} or fix the bundle",
            ) from error
        for _ in range(MAX_TAG_DEPTH):
            if kind == "commit":
                # a new frozenset each time: pool threads read this while a pass may add to it
                self._tags_at[(repo, sha)] = self._tags_at.get((repo, sha), frozenset()) | {tag}
                return sha
            if kind != "tag":
                raise MalformedResponse(call, f"tag {tag} points at a {kind}, not a commit", "tag a commit")
            call = f"GET {self._path(repo, 'git', 'tags', sha)}"

            def read_tag(sha: str = sha, call: str = call) -> tuple[str, str]:
                return self._tag_object(repo, sha, call)

            kind, sha = self._ask(("tag", repo, sha), call, read_tag)
        raise MalformedResponse(call, f"tag {tag} is nested more than {MAX_TAG_DEPTH} levels deep", "tag the commit directly")

    def _read_blob(self, repo: str, blob: str, path: str, ref: str) -> str:
        # Blob ids are content hashes: the same requirements.txt in three platform repos is fetched once,
        # by whichever file's question reaches it first. A fault is the blob's, reported under the call of
        # each file that needs it, so the report does not depend on which question fetched it.
        call = f"GET {self._path(repo, 'git', 'blobs', blob)} ({path} at {ref})"
        self._blob_repos.setdefault(blob, repo)
        try:
            return self._ask(("blob", blob), call, lambda: self._blob(repo, blob, call))
        except Pending:
            raise
        except SourceError as error:
            if error.call == call:
                raise
            own = type(error).__new__(type(error))
            own.__dict__.update(error.__dict__, call=call)
            Exception.__init__(own, str(own))
            raise own from None

    def commit_exists(self, repo: str, sha: str) -> bool:
        if not COMMIT_PATTERN.fullmatch(sha):
            return False
        try:
            self._tree(repo, sha)
        except NotFound:
            return False
        return True

    def ci_status(self, repo: str, sha: str) -> Optional[CiStatus]:
        status_call = f"GET {self._path(repo, 'commits', sha, 'status')}"
        runs_call = f"GET {self._path(repo, 'commits', sha, 'check-runs')}"
        try:
            statuses = self._ask(("status", repo, sha), status_call, lambda: self._statuses(repo, sha, status_call))
        except Pending:
            # both questions only need the commit: while exploring, ask the second one in the same round
            try:
                self._ask(("check-runs", repo, sha), runs_call, lambda: self._check_runs(repo, sha, runs_call))
            except SourceError:
                pass
            raise
        runs = self._ask(("check-runs", repo, sha), runs_call, lambda: self._check_runs(repo, sha, runs_call))
        return ci_verdict(statuses, runs)

    # -- several questions in one request (GraphQL) -----------------------------------------------------

    def group_questions(self, pending: Pendings) -> list[Job]:
        """While the gate explores: CI, commit tree id and blob questions go to GitHub's GraphQL API, up to
        GRAPHQL_OBJECTS a query; everything else (refs, tags, recursive trees) is asked over REST. An
        answer GraphQL does not give cleanly (an error, a missing or truncated part, another object's
        id, content that does not hash to the blob) is not taken: the question stays open, and the next
        pass asks it over REST. After one failed query GraphQL is not used again in this run."""
        if not self._graphql:
            return one_job_each(self.answers, pending)
        if self._graphql_probing:
            # wait for the first query's fate; these questions are pending again at the next pass
            waiting = {key for key in pending if _graphql_kind(key) and key not in self._graphql_asked}
            return one_job_each(self.answers, {key: asked for key, asked in pending.items() if key not in waiting})
        objects: dict[tuple[str, str, str], list[tuple[Hashable, str]]] = {}
        singles: Pendings = {}
        for key, (call, fetch) in pending.items():
            kind = key[0] if isinstance(key, tuple) and key not in self._graphql_asked else None
            if kind in ("status", "check-runs", "commit-tree") and isinstance(key, tuple):
                objects.setdefault(("Commit", str(key[1]), str(key[2])), []).append((key, call))
            elif kind == "blob" and isinstance(key, tuple) and str(key[1]) in self._blob_repos:
                objects.setdefault(("Blob", self._blob_repos[str(key[1])], str(key[1])), []).append((key, call))
            else:
                singles[key] = (call, fetch)
        jobs = one_job_each(self.answers, singles)
        items = sorted(objects.items())
        if items and not self._graphql_proven:
            self._graphql_probing = True
            items = items[:GRAPHQL_OBJECTS]
        for start in range(0, len(items), GRAPHQL_OBJECTS):
            chunk = items[start : start + GRAPHQL_OBJECTS]
            questions = tuple(question for _, asked in chunk for question in asked)
            self._graphql_asked.update(key for key, _ in questions)
            jobs.append((questions, functools.partial(self._graphql_job, [target for target, _ in chunk])))
        return jobs

    def _graphql_job(self, targets: list[tuple[str, str, str]]) -> None:
        fields = {
            "Commit": "tree { oid } status { contexts { context state } } checkSuites(first: 20) { totalCount nodes { "
            "checkRuns(first: 100, filterBy: {checkType: LATEST}) { totalCount nodes { name status conclusion } } } }",
            "Blob": "text isBinary isTruncated",
        }
        parts = [
            f"o{index}: repository(owner: {json.dumps(self.owner)}, name: {json.dumps(repo)}) "
            f'{{ object(oid: "{oid}") {{ __typename oid ... on {kind} {{ {fields[kind]} }} }} }}'
            for index, (kind, repo, oid) in enumerate(targets)
        ]
        call = f"POST {self._http.graphql_path} ({len(targets)} objects)"
        try:
            data = self._http.post_json(call, self._http.graphql_path, {"query": "query { " + " ".join(parts) + " }"})
            answers = data.get("data") if isinstance(data, dict) and not data.get("errors") else None
        except SourceError:
            answers = None
        if not isinstance(answers, dict):
            self._graphql, self._graphql_probing = False, False
            return
        self._graphql_proven, self._graphql_probing = True, False
        for index, (kind, repo, oid) in enumerate(targets):
            node = answers.get(f"o{index}")
            found = node.get("object") if isinstance(node, dict) else None
            if not isinstance(found, dict) or found.get("oid") != oid or found.get("__typename") != kind:
                continue
            try:
                if kind == "Commit":
                    tree = found.get("tree")
                    if isinstance(tree, dict) and isinstance(tree.get("oid"), str) and COMMIT_PATTERN.fullmatch(tree["oid"]):
                        self.answers.provide(("commit-tree", repo, oid), tree["oid"])
                    statuses, runs = _graphql_ci(found)
                    self.answers.provide(("status", repo, oid), statuses)
                    self.answers.provide(("check-runs", repo, oid), runs)
                else:
                    self.answers.provide(("blob", oid), _graphql_blob(found, oid))
            except (ValueError, KeyError, TypeError, AttributeError):
                continue  # asked again over REST, which says what is wrong with it

    # -- one question each ----------------------------------------------------------------------------

    def _ask(self, key: tuple[str, ...], call: str, fetch: Callable[[], T]) -> T:
        def checked() -> T:
            try:
                return fetch()
            except (ValueError, KeyError, TypeError, AttributeError) as error:
                raise MalformedResponse(
                    call,
                    f"malformed response ({server_text(error, self._http.secrets, 120)})",
                    "check GITHUB_API_URL points at a GitHub API",
                ) from None

        return self.answers.ask(key, call, checked)

    def _path(self, repo: str, *parts: str) -> str:
        return _api_path(self.owner, repo, *parts)

    def _commit_of(self, repo: str, ref: str) -> str:
        return ref if COMMIT_PATTERN.fullmatch(ref) else self.resolve_tag(repo, ref)

    def _listing(self, repo: str, ref: str) -> dict[str, str]:
        commit = ref if COMMIT_PATTERN.fullmatch(ref) else None
        try:
            commit = commit or self.resolve_tag(repo, ref)
            return self._tree(repo, commit)
        except Pending:
            # Exploring, and the tag's commit or its tree is still on its way (ref, tag object, tree:
            # three round trips). GitHub also lists a tree by tag name, so ask that in the first round and
            # let the exploring passes go on to the files it lists. Only throw-away passes see this
            # listing: the real pass reads the commit's own tree, which `_tree` takes from here only
            # after checking that it is that commit's tree.
            if commit is None:
                listing = self._named_tree(repo, ref)[1]
            else:
                named = self._named_listing(repo, commit)
                tree_id = self.answers.value(("commit-tree", repo, commit))
                if named is None or (tree_id is not None and tree_id != named[0]):
                    raise
                listing = named[1]
            self.answers.guessed()  # facts read through this listing are not kept for the real pass
            return listing

    def _tree(self, repo: str, sha: str) -> dict[str, str]:
        call = f"GET {self._path(repo, 'git', 'trees', sha)}?recursive=1"
        key = ("tree", repo, sha)
        named = None if self.answers.known(key) else self._named_listing(repo, sha)
        if named is not None:
            # A tag's tree was listed by name while the tag resolved: it is this commit's tree when the
            # commit's own tree id (a smaller question, batched into GraphQL with a token) says so. Then it
            # becomes the tree's answer, and is asked below like any other, so a report built this way is
            # the one asking by sha gives. A fault, a mismatch (the tag moved since, a branch of the same
            # name) or a question not asked while exploring falls through to asking by sha.
            tree_id = self._commit_tree_id(repo, sha)
            if tree_id == named[0]:
                self.answers.provide(key, dict(named[1]))
        return self._ask(key, call, lambda: self._tree_entries(repo, sha, call))

    def _named_tree(self, repo: str, tag: str) -> tuple[str, dict[str, str]]:
        call = f"GET {self._path(repo, 'git', 'trees', tag)}?recursive=1"
        self._named_asked.add((repo, tag))
        return self._ask(("named-tree", repo, tag), call, lambda: self._tree_by_name(repo, tag, call))

    def _named_listing(self, repo: str, sha: str) -> Optional[tuple[str, dict[str, str]]]:
        """The tree listed by name for a tag that resolved to `sha`, if it was asked and answered; while
        exploring, Pending when it is still on its way (asking by sha meanwhile would ask twice)."""
        for tag in sorted(self._tags_at.get((repo, sha), frozenset())):
            key = ("named-tree", repo, tag)
            if self.answers.known(key):
                named = self.answers.value(key)
                if isinstance(named, tuple):
                    return named
            elif self.answers.speculating and (repo, tag) in self._named_asked:
                return self._named_tree(repo, tag)  # raises Pending
        return None

    def _commit_tree_id(self, repo: str, sha: str) -> Optional[str]:
        """The commit's tree id, asked only while exploring (and then cached); None when unknown or a
        fault. Never asked in the real pass, so it cannot change that pass's outcomes."""
        key = ("commit-tree", repo, sha)
        if self.answers.speculating and not self.answers.known(key):
            call = f"GET {self._path(repo, 'git', 'commits', sha)}"
            self._ask(key, call, lambda: self._commit_object_tree(repo, sha, call))  # raises Pending
        value = self.answers.value(key)
        return value if isinstance(value, str) else None

    def question_priority(self, key: Hashable) -> int:
        """While exploring with a full pool: what opens further questions first, leaves (CI) last."""
        if self._graphql and key in self._graphql_asked:
            return -1  # one query answers up to GRAPHQL_OBJECTS questions: worth a slot before any single one
        kind = key[0] if isinstance(key, tuple) and key else None
        # a tag's chain (ref, tag object, tree by name, commit's tree id) is the longest: 0
        return {"tree": 1, "blob": 2, "status": 3, "check-runs": 3}.get(str(kind), 0)

    def _tag_ref(self, repo: str, tag: str, call: str) -> tuple[str, str]:
        data = self._http.get_json(call, self._path(repo, "git", "ref", "tags", tag))
        wanted = f"refs/tags/{tag}"
        if isinstance(data, list):
            # The old refs API matches by prefix (v0.7.1 answers with v0.7.10, v0.7.11...): only an exact name counts.
            exact = [item for item in data if isinstance(item, dict) and item.get("ref") == wanted]
            if not exact:
                raise NotFound(call, f"no ref named exactly {wanted}", "push the tag")
            data = exact[0]
        ref = _field(data, "ref", str)
        if ref != wanted:
            raise MalformedResponse(
                call, f"asked for {wanted}, GitHub answered for {server_text(ref, limit=80)}", "check GITHUB_API_URL points at a GitHub API"
            )
        return _object_of(_field(data, "object", dict))

    def _tag_object(self, repo: str, sha: str, call: str) -> tuple[str, str]:
        data = self._http.get_json(call, self._path(repo, "git", "tags", sha))
        if _field(data, "sha", str) != sha:
            raise MalformedResponse(call, f"asked for tag object {sha}, got another object", "check GITHUB_API_URL points at a GitHub API")
        return _object_of(_field(data, "object", dict))

    def _tree_entries(self, repo: str, sha: str, call: str) -> dict[str, str]:
        try:
            data = self._http.get_json(call, self._path(repo, "git", "trees", sha) + "?recursive=1")
        except NotFound as error:
            raise NotFound(call, f"commit {sha} not found in {self.owner}/{repo}", "push it or fix the commit") from error
        if _field(data, "sha", str) == sha:
            # The trees API also accepts a tree's own id; a commit's tree always has a different id.
            raise NotFound(call, f"{sha} is a tree in {self.owner}/{repo}, not a commit", "use the commit sha")
        return _blobs_listed(data, call)

    def _tree_by_name(self, repo: str, tag: str, call: str) -> tuple[str, dict[str, str]]:
        """(tree id, path -> blob id) of the tree GitHub lists for a ref name; a guess until checked."""
        data = self._http.get_json(call, self._path(repo, "git", "trees", tag) + "?recursive=1")
        tree = _field(data, "sha", str)
        if not COMMIT_PATTERN.fullmatch(tree):
            raise ValueError("the tree id is not a 40-hex sha")
        return tree, _blobs_listed(data, call)

    def _commit_object_tree(self, repo: str, sha: str, call: str) -> str:
        data = self._http.get_json(call, self._path(repo, "git", "commits", sha))
        tree = _field(data, "tree", dict).get("sha")
        if _field(data, "sha", str) != sha or not isinstance(tree, str) or not COMMIT_PATTERN.fullmatch(tree):
            raise MalformedResponse(call, f"asked for commit {sha}, got another object", "check GITHUB_API_URL points at a GitHub API")
        return tree

    def _blob(self, repo: str, blob: str, call: str) -> str:
        data = self._http.get_json(call, self._path(repo, "git", "blobs", blob))
        if data.get("encoding") != "base64" or not isinstance(data.get("content"), str):
            raise MalformedResponse(
                call,
                f"malformed response (blob encoding {server_text(data.get('encoding'), limit=40)})",
                "check GITHUB_API_URL points at a GitHub API",
            )
        try:
            content = base64.b64decode(data["content"])
        except (binascii.Error, ValueError):
            raise MalformedResponse(
                call, "malformed response (blob content is not base64)", "check GITHUB_API_URL points at a GitHub API"
            ) from None
        # A blob id is the hash of its content: an answer whose content hashes to another id is not this file.
        if hashlib.sha1(b"blob %d\0" % len(content) + content).hexdigest() != blob:
            raise MalformedResponse(
                call, f"the content GitHub sent does not hash to blob {blob}", "check GITHUB_API_URL points at a GitHub API"
            )
        try:
            return content.decode("utf-8")
        except UnicodeDecodeError:
            raise MalformedResponse(call, "the file is not UTF-8 text", "save it as UTF-8") from None

    def _statuses(self, repo: str, sha: str, call: str) -> list[tuple[str, str]]:
        result = []
        for page in self._http.get_pages(call, self._path(repo, "commits", sha, "status")):
            if page.get("sha") not in (None, sha):
                raise MalformedResponse(call, f"statuses are for another commit than {sha}", "check GITHUB_API_URL points at a GitHub API")
            for status in _field(page, "statuses", list):
                context, state = (status.get("context"), status.get("state")) if isinstance(status, dict) else (None, None)
                if not isinstance(context, str) or state not in ("success", "pending", "failure", "error"):
                    raise MalformedResponse(
                        call,
                        f"malformed response (commit status {server_text(context, limit=60)!r} has state {server_text(state, limit=20)!r})",
                        "check GITHUB_API_URL points at a GitHub API",
                    )
                result.append((server_text(context, limit=80), state))
        return result

    def _check_runs(self, repo: str, sha: str, call: str) -> list[tuple[str, Optional[str], Optional[str]]]:
        runs, total = [], None
        for page in self._http.get_pages(call, self._path(repo, "commits", sha, "check-runs")):
            total = page.get("total_count", total)
            for run in _field(page, "check_runs", list):
                if not isinstance(run, dict) or not isinstance(run.get("name"), str) or not isinstance(run.get("status"), str):
                    raise MalformedResponse(
                        call, "malformed response (check run without name or status)", "check GITHUB_API_URL points at a GitHub API"
                    )
                if run.get("head_sha") not in (None, sha):
                    raise MalformedResponse(
                        call,
                        f"check run {server_text(run['name'], limit=60)} is for another commit than {sha}",
                        "check GITHUB_API_URL points at a GitHub API",
                    )
                conclusion = run.get("conclusion")
                runs.append((server_text(run["name"], limit=80), run["status"], conclusion if isinstance(conclusion, str) else None))
        if isinstance(total, int) and total != len(runs):
            # A list that says it is longer than what was sent would hide a failing run.
            raise MalformedResponse(
                call, f"GitHub counted {total} check runs but listed {len(runs)}", "retry; the gate fails closed meanwhile"
            )
        return runs


@functools.lru_cache(maxsize=4096)
def _api_path(*parts: str) -> str:
    # Every segment quoted: a name or ref can never add a path segment, a query or a fragment.
    return "/repos/" + "/".join(urllib.parse.quote(part, safe="") for part in parts)


def _graphql_kind(key: Hashable) -> bool:
    return isinstance(key, tuple) and bool(key) and key[0] in ("status", "check-runs", "commit-tree", "blob")


def _graphql_ci(commit: dict[str, Any]) -> tuple[list[tuple[str, str]], list[tuple[str, Optional[str], Optional[str]]]]:
    """The REST shapes of a commit's statuses and latest check runs from a GraphQL Commit, or ValueError
    when GraphQL did not send all of them."""
    status = commit.get("status")
    contexts = [] if status is None else status["contexts"]
    statuses = []
    for context in contexts:
        state = {"expected": "pending"}.get(str(context["state"]).lower(), str(context["state"]).lower())
        if not isinstance(context["context"], str) or state not in ("success", "pending", "failure", "error"):
            raise ValueError("a status without context or with an unknown state")
        statuses.append((server_text(context["context"], limit=80), state))
    suites = commit["checkSuites"]
    if suites["totalCount"] != len(suites["nodes"]):
        raise ValueError("more check suites than one page")
    runs: list[tuple[str, Optional[str], Optional[str]]] = []
    for suite in suites["nodes"]:
        listed = suite["checkRuns"]
        if listed["totalCount"] != len(listed["nodes"]):
            raise ValueError("more check runs than one page")
        for run in listed["nodes"]:
            if not isinstance(run["name"], str) or not isinstance(run["status"], str):
                raise ValueError("a check run without name or status")
            conclusion = run.get("conclusion")
            runs.append(
                (server_text(run["name"], limit=80), run["status"].lower(), conclusion.lower() if isinstance(conclusion, str) else None)
            )
    return statuses, runs


def _graphql_blob(blob: dict[str, Any], oid: str) -> str:
    text = blob["text"]
    if blob.get("isBinary") is not False or blob.get("isTruncated") is not False or not isinstance(text, str):
        raise ValueError("binary or truncated")
    content = text.encode("utf-8")
    if hashlib.sha1(b"blob %d\0" % len(content) + content).hexdigest() != oid:
        raise ValueError("content does not hash to its id")
    return text


def ci_verdict(statuses: list[tuple[str, str]], runs: list[tuple[str, Optional[str], Optional[str]]]) -> CiStatus:
    """Green only when at least one status or check run succeeded and none failed or is still running.

    `neutral` and `skipped` runs neither fail nor count: a commit whose only run was skipped ran nothing.
    """
    failing = [f"status {context}={state}" for context, state in statuses if state in ("failure", "error")]
    failing += [
        f"check {name}={conclusion}" for name, status, conclusion in runs
        if status == "completed" and conclusion not in SUCCESS_CONCLUSIONS | NEUTRAL_CONCLUSIONS
    ]  # fmt: skip
    pending = [f"status {context}=pending" for context, state in statuses if state == "pending"]
    pending += [f"check {name}={status}" for name, status, _ in runs if status != "completed"]
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


def _blobs_listed(data: dict[str, Any], call: str) -> dict[str, str]:
    """path -> blob id of a recursive tree listing; a partial listing is refused."""
    if data.get("truncated") is True:
        # A partial listing would make a present file look absent (a pin file, a bundled config).
        raise MalformedResponse(call, "GitHub truncated the recursive tree listing", "check the repository's size")
    entries = {}
    for element in _field(data, "tree", list):
        if not isinstance(element, dict) or not isinstance(element.get("path"), str) or not isinstance(element.get("sha"), str):
            raise MalformedResponse(
                call, "malformed response (tree entry without path or sha)", "check GITHUB_API_URL points at a GitHub API"
            )
        if element.get("type") == "blob":
            entries[element["path"]] = element["sha"]
    return entries


def _object_of(obj: dict[str, Any]) -> tuple[str, str]:
    kind, sha = obj.get("type"), obj.get("sha")
    if not isinstance(kind, str) or not isinstance(sha, str) or not COMMIT_PATTERN.fullmatch(sha):
        raise ValueError("the object is not a type and a 40-hex sha")
    return kind, sha


def _field(data: object, name: str, kind: type) -> Any:
    if not isinstance(data, dict) or not isinstance(data.get(name), kind):
        raise ValueError(f"no {name} ({kind.__name__}) in the answer")
    return data[name]


# -- the bounded HTTP client ------------------------------------------------------------------------------


class BoundedHTTP:
    """GETs to one origin (scheme, host, port) with a total deadline per attempt and per run.

    One keep-alive connection per thread (the gate's pool threads each reuse theirs). A watchdog shuts
    an attempt's socket down at its deadline, which is the only way to bound a server that sends its
    headers or body a byte at a time: a socket timeout only bounds each read.
    """

    def __init__(
        self, base_url: str, token: Optional[str], *, timeout: float, retries: int, backoff: float, total_timeout: float,
        clock: Callable[[], float], max_pages: int, max_redirects: int,
    ) -> None:  # fmt: skip
        self.base_url = base_url
        parts = urllib.parse.urlsplit(base_url)
        self._scheme, self._host, self._port = parts.scheme, parts.hostname or "", parts.port or (443 if parts.scheme == "https" else 80)
        self._base_path = parts.path.rstrip("/")
        # GitHub Enterprise serves REST under /api/v3 and GraphQL at /api/graphql; github.com at /graphql.
        self.graphql_path = (
            self._base_path.removesuffix("/v3") + "/graphql" if self._base_path.endswith("/api/v3") else self._base_path + "/graphql"
        )
        self._token = token
        self._timeout, self._retries, self._backoff = timeout, retries, backoff
        self._total_timeout, self._clock = total_timeout, clock
        self._max_pages, self._max_redirects = max_pages, max_redirects
        self._deadline: Optional[float] = None
        self._deadline_lock = threading.Lock()
        self._local = threading.local()
        self._connections: list[http.client.HTTPConnection] = []
        self._connections_lock = threading.Lock()
        self.secrets = tuple(filter(None, (token, parts.password, parts.username)))

    # -- budget ---------------------------------------------------------------------------------------

    def run_deadline(self) -> float:
        """The run's deadline, started by its first request."""
        with self._deadline_lock:
            if self._deadline is None:
                self._deadline = self._clock() + self._total_timeout
            return self._deadline

    def spent(self, call: str) -> Unreachable:
        return Unreachable(
            call, f"the gate's {self._total_timeout:g}s budget for GitHub was spent before an answer", "retry when GitHub responds faster"
        )

    # -- requests -------------------------------------------------------------------------------------

    def get_json(self, call: str, path: str) -> Any:
        data, _ = self._get(call, self._base_path + path)
        return data

    def get_pages(self, call: str, path: str) -> list[dict[str, Any]]:
        """Every page of a list endpoint (`?per_page=100`, then `Link: rel=next`), at most max_pages."""
        pages: list[dict[str, Any]] = []
        target: Optional[str] = self._base_path + path + "?per_page=100"
        while target is not None:
            if len(pages) >= self._max_pages:
                raise MalformedResponse(
                    call, f"more than {self._max_pages} pages of results", "this is not a real CI; check GITHUB_API_URL"
                )
            data, headers = self._get(call, target)
            if not isinstance(data, dict):
                raise MalformedResponse(call, "malformed response (a page is not an object)", "check GITHUB_API_URL points at a GitHub API")
            pages.append(data)
            target = self._next_link(call, headers.get("link"))
        return pages

    def _next_link(self, call: str, header: Optional[str]) -> Optional[str]:
        if not header:
            return None
        for part in header.split(","):
            url, _, params = part.partition(";")
            if 'rel="next"' in params.replace(" ", "") or "rel=next" in params.replace(" ", ""):
                return self._same_origin(call, url.strip().strip("<>"), "a next-page link")
        return None

    def _same_origin(self, call: str, url: str, what: str) -> str:
        """The path and query of `url` (absolute or relative) when it is on the API's own origin."""
        target = urllib.parse.urlsplit(urllib.parse.urljoin(f"{self._scheme}://{self._host}:{self._port}/", url))
        port = target.port or (443 if target.scheme == "https" else 80)
        if (target.scheme, (target.hostname or "").lower(), port) != (self._scheme, self._host.lower(), self._port):
            shown = server_text(shown_url(f"{target.scheme}://{target.hostname}:{port}"), self.secrets, 80)
            raise SourceError(
                call,
                f"refused {what} to another origin ({shown}); the token is only ever sent to {shown_url(self.base_url)}",
                "check GITHUB_API_URL points at the GitHub API itself",
            )
        return target.path + (f"?{target.query}" if target.query else "")

    def post_json(self, call: str, path: str, payload: dict[str, Any]) -> Any:
        """A read-only POST (GraphQL): same bounds and retries as a GET; a redirect is refused."""
        data, _ = self._get(call, path, body=json.dumps(payload).encode())
        return data

    def _get(self, call: str, target: str, body: Optional[bytes] = None) -> tuple[Any, dict[str, str]]:
        """One logical GET (or, with a body, a POST): retries for 5xx/202/connection faults, redirects on
        the same origin only and only for a GET."""
        run_deadline = self.run_deadline()
        redirects = 0
        attempt = 0
        while True:
            if self._clock() >= run_deadline:
                raise self.spent(call)
            try:
                status, headers, answer = self._attempt(call, target, run_deadline, body)
            except _ConnectFailed as failed:
                if attempt < self._retries and self._clock() < run_deadline:
                    attempt += 1
                    time.sleep(min(self._backoff * 2 ** (attempt - 1), BACKOFF_MAX, max(0.0, run_deadline - self._clock())))
                    continue
                raise Unreachable(
                    call,
                    f"cannot connect ({type(failed.error).__name__}) after {attempt + 1} tries",
                    "check connectivity to GitHub (GITHUB_API_URL)",
                    source_wide=True,
                ) from None
            if status in REDIRECT_STATUSES:
                if body is not None:
                    raise SourceError(call, f"GitHub redirected a query ({status})", "check GITHUB_API_URL points at the GitHub API itself")
                redirects += 1
                if redirects > self._max_redirects:
                    raise SourceError(call, f"more than {self._max_redirects} redirects", "check GITHUB_API_URL")
                target = self._same_origin(call, headers.get("location", ""), "a redirect")
                continue
            if status in RETRY_STATUSES:
                if attempt < self._retries:
                    attempt += 1
                    pause = min(self._backoff * 2 ** (attempt - 1), BACKOFF_MAX, max(0.0, run_deadline - self._clock()))
                    time.sleep(pause)
                    continue
                if status == 202:
                    raise Unreachable(
                        call,
                        f"GitHub kept answering 202 Accepted (still preparing) after {attempt + 1} tries",
                        "retry later; the gate fails closed meanwhile",
                    )
                raise Unreachable(
                    call,
                    f"GitHub answered {status}{self._message(answer)} after {attempt + 1} tries",
                    "retry later; the gate fails closed meanwhile",
                )
            return self._answer(call, status, headers, answer), headers

    def _answer(self, call: str, status: int, headers: dict[str, str], body: bytes) -> Any:
        if status == 200:
            try:
                return json.loads(body.decode("utf-8"))
            except (UnicodeDecodeError, ValueError, RecursionError):  # RecursionError: JSON nested too deep
                raise MalformedResponse(call, "malformed response (not JSON)", "check GITHUB_API_URL points at a GitHub API") from None
        message = self._message(body)
        if status == 404:
            raise NotFound(call, "not found (404)", "check the owner, repository and ref")
        if status == 401:
            raise Unreachable(
                call, f"GitHub rejected GITHUB_TOKEN (401 bad credentials){message}", "set a valid GITHUB_TOKEN", source_wide=True
            )
        if status in (403, 429) and (headers.get("x-ratelimit-remaining") == "0" or "rate limit" in message.lower()):
            reset = headers.get("x-ratelimit-reset")
            fix = "set GITHUB_TOKEN for a higher limit, or wait" + (f" until {_utc(reset)}" if reset else "")
            raise Unreachable(call, f"GitHub rate limit exhausted ({status})", fix, source_wide=True)
        if status in (403, 429) or status >= 500:
            raise Unreachable(call, f"GitHub answered {status}{message}", "retry later; the gate fails closed meanwhile")
        raise MalformedResponse(call, f"GitHub answered {status}{message}", "check GITHUB_API_URL and the request")

    def _message(self, body: bytes) -> str:
        try:
            message = json.loads(body.decode("utf-8")).get("message")
        except (UnicodeDecodeError, ValueError, AttributeError, RecursionError):
            return ""
        return f" ({server_text(message, self.secrets, 160)})" if isinstance(message, str) and message else ""

    def _attempt(self, call: str, target: str, run_deadline: float, body: Optional[bytes] = None) -> tuple[int, dict[str, str], bytes]:
        """One request, finished (headers and body) by min(now + timeout, run deadline), or failed."""
        deadline = min(self._clock() + self._timeout, run_deadline)
        budget_bound = deadline == run_deadline
        headers = {"Accept": "application/vnd.github+json", "X-GitHub-Api-Version": "2022-11-28", "User-Agent": USER_AGENT}
        if self._token:
            headers["Authorization"] = f"Bearer {self._token}"
        for _ in range(2):  # a kept-alive connection the server closed meanwhile gets one fresh retry
            connection = self._connection()
            reused = connection.sock is not None
            remaining = max(0.05, deadline - self._clock())
            if not reused:
                connection.timeout = remaining
                try:
                    connection.connect()
                except OSError as error:
                    self._drop(connection)
                    raise _ConnectFailed(error) from None
            assert connection.sock is not None
            connection.sock.settimeout(remaining)
            watchdog = _Watchdog(connection, remaining)
            try:
                try:
                    if body is None:
                        connection.request("GET", target, headers=headers)
                    else:
                        connection.request("POST", target, body=body, headers={**headers, "Content-Type": "application/json"})
                    response = connection.getresponse()
                except (http.client.RemoteDisconnected, BrokenPipeError, ConnectionResetError):
                    if reused and not watchdog.fired:
                        self._drop(connection)
                        continue
                    raise
                length = response.getheader("content-length")
                if length is not None and length.isdigit() and int(length) > MAX_BODY_BYTES:
                    raise _TooLarge()
                received = bytearray()
                while chunk := response.read1(65536):
                    received += chunk
                    if len(received) > MAX_BODY_BYTES:
                        raise _TooLarge()
                    if self._clock() >= deadline:
                        raise TimeoutError()
                if watchdog.fired:
                    raise TimeoutError()  # the socket was shut at the deadline: what came is not the answer
                if response.length:
                    raise http.client.IncompleteRead(bytes(received), response.length)
                response.close()  # the body is read whole: the connection can carry the next request
                if response.will_close:
                    self._drop(connection)
                return response.status, {name.lower(): value for name, value in response.getheaders()}, bytes(received)
            except _TooLarge:
                self._drop(connection)
                raise MalformedResponse(
                    call, f"the answer is larger than {MAX_BODY_BYTES >> 20} MiB", "check GITHUB_API_URL points at a GitHub API"
                ) from None
            except (OSError, http.client.HTTPException, ValueError) as error:
                self._drop(connection)
                if watchdog.fired or isinstance(error, TimeoutError) or self._clock() >= deadline:
                    if budget_bound:
                        raise self.spent(call) from None
                    raise Unreachable(
                        call,
                        f"timed out: no complete answer within {remaining:.3g}s",
                        "check connectivity to GitHub (GITHUB_API_URL) and retry",
                    ) from None
                raise Unreachable(
                    call, f"the connection failed ({type(error).__name__})", "check connectivity to GitHub (GITHUB_API_URL) and retry"
                ) from None
            finally:
                watchdog.cancel()
        raise Unreachable(call, "the server closed the connection twice", "check connectivity to GitHub (GITHUB_API_URL) and retry")

    def _connection(self) -> http.client.HTTPConnection:
        connection = getattr(self._local, "connection", None)
        self._local.fresh = connection is None
        if connection is None:
            connection = self._new_connection()
            self._local.connection = connection
            with self._connections_lock:
                self._connections.append(connection)
        return connection

    def _new_connection(self) -> http.client.HTTPConnection:
        proxy = _proxy_for(self._scheme, self._host)
        if self._scheme == "https":
            if proxy is not None:
                connection = http.client.HTTPSConnection(proxy[0], proxy[1], timeout=self._timeout, context=ssl.create_default_context())
                connection.set_tunnel(self._host, self._port)
                return connection
            return http.client.HTTPSConnection(self._host, self._port, timeout=self._timeout, context=ssl.create_default_context())
        return http.client.HTTPConnection(self._host, self._port, timeout=self._timeout)

    def _drop(self, connection: http.client.HTTPConnection) -> None:
        connection.close()
        if getattr(self._local, "connection", None) is connection:
            self._local.connection = None

    def close(self) -> None:
        with self._connections_lock:
            for connection in self._connections:
                connection.close()
            self._connections.clear()


class _TooLarge(Exception):
    pass


class _ConnectFailed(Exception):
    def __init__(self, error: OSError) -> None:
        super().__init__(type(error).__name__)
        self.error = error


class _Watchdog:
    """Shuts a connection's socket down after `seconds`: a blocked read returns at once."""

    def __init__(self, connection: http.client.HTTPConnection, seconds: float) -> None:
        self.fired = False
        self.started = time.monotonic()
        self._connection = connection
        self._timer = threading.Timer(seconds, self._fire)
        self._timer.daemon = True
        self._timer.start()

    def _fire(self) -> None:
        self.fired = True
        sock = self._connection.sock
        if sock is not None:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def cancel(self) -> None:
        self._timer.cancel()


def _proxy_for(scheme: str, host: str) -> Optional[tuple[str, int]]:
    """An https proxy from HTTPS_PROXY (honouring NO_PROXY); plain http is loopback only and never proxied."""
    if scheme != "https" or urllib.request.proxy_bypass(host):
        return None
    proxy = urllib.request.getproxies().get("https")
    if not proxy:
        return None
    parts = urllib.parse.urlsplit(proxy if "://" in proxy else f"http://{proxy}")
    return (parts.hostname, parts.port or 8080) if parts.hostname else None


def _utc(reset: str) -> str:
    try:
        return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(int(reset)))
    except (TypeError, ValueError, OverflowError):
        return "the reset time"
