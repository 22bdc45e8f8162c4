"""Where the gate's facts come from: the source protocol, its errors, and choosing a source.

Two implementations answer the same questions: `release/gate/github_source.py` (the GitHub REST API
over a bounded HTTP client) and `release/gate/git_source.py` (plain git over a directory of clones). Every fault is a
`SourceError` that names the call, the reason and the fix; the gate turns it into a failed or "error"
check instead of a traceback, so a fault always fails closed.
"""

from __future__ import annotations

import functools
import heapq
import ipaddress
import re
import threading
import time
import urllib.parse
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Hashable, Literal, Mapping, Optional, Protocol, TypeVar, cast, runtime_checkable

from release.config import ReleaseBundle

T = TypeVar("T")

SourceKind = Literal["github", "git"]
SOURCE_KINDS: tuple[str, ...] = ("github", "git")
DEFAULT_SOURCE = "github"

ENV_SOURCE = "CUTOVER_SOURCE"
ENV_GIT_ROOT = "CUTOVER_GIT_ROOT"
ENV_TOKEN = "GITHUB_TOKEN"
ENV_API_URL = "GITHUB_API_URL"
ENV_CONCURRENCY = "CUTOVER_GATE_CONCURRENCY"


class SourceError(Exception):
    """A question the source could not answer with a fact.

    `unreachable` is True when the source could not be reached at all (connection refused, timeout,
    5xx after retries, rate limit exhausted, missing clone): the answer is unknown. It is False for a
    definite answer that is not a fact the gate can use (malformed data) or a definite "no" (NotFound).
    """

    def __init__(self, call: str, reason: str, fix: str, unreachable: bool = False, source_wide: bool = False) -> None:
        self.call = call
        self.reason = reason
        self.fix = fix
        self.unreachable = unreachable
        # True when every further question would meet the same fault (cannot connect, rate limit, bad
        # token): later questions are then not asked at all.
        self.source_wide = source_wide
        super().__init__(str(self))

    def __str__(self) -> str:
        return f"{self.call}: {self.reason}; {self.fix}"


class NotFound(SourceError):
    """A definite answer: the tag, commit or repository does not exist (or is invisible to this source)."""


class TagNotFound(NotFound):
    pass


class Unreachable(SourceError):
    def __init__(self, call: str, reason: str, fix: str, source_wide: bool = False) -> None:
        super().__init__(call, reason, fix, unreachable=True, source_wide=source_wide)


class Pending(SourceError):
    """Only while the gate explores its questions concurrently: the answer is being fetched. The
    exploring passes' reports are thrown away, so this never reaches a report."""

    def __init__(self, call: str) -> None:
        super().__init__(call, "answer pending", "wait", unreachable=True)


class MalformedResponse(SourceError):
    pass


class SourceSelectionError(ValueError):
    """Bad source selection (unknown kind, git without a root): bad input, exit 2."""


@dataclass(frozen=True)
class CiStatus:
    """The CI verdict for one commit: `state` is success, pending, failure or none (nothing reported)."""

    state: Literal["success", "pending", "failure", "none"]
    detail: str  # which contexts / check runs are not green, or how many are


@runtime_checkable
class ReleaseSource(Protocol):
    """The questions the gate asks. `repo` is a repository name; the owner comes from the bundle.

    Implementations cache every answer for their lifetime, so asking twice costs nothing.
    """

    kind: str

    def resolve_tag(self, repo: str, tag: str) -> str:
        """The commit sha the tag points at (annotated tags peeled); TagNotFound when there is no such tag."""
        ...

    def read_file(self, repo: str, ref: str, path: str) -> Optional[str]:
        """The text of `path` at `ref` (a commit sha or tag); None when the file does not exist there.

        NotFound when `ref` itself does not exist.
        """
        ...

    def commit_exists(self, repo: str, sha: str) -> bool: ...

    def list_files(self, repo: str, ref: str, paths: tuple[str, ...]) -> frozenset[str]:
        """Which of `paths` (repository-relative file paths) exist at `ref`; NotFound when `ref` does not exist."""
        ...

    def blob_id(self, repo: str, ref: str, path: str) -> Optional[str]:
        """The git blob id of `path` at `ref` (provenance of a fact read from it); None when absent."""
        ...

    def ci_status(self, repo: str, sha: str) -> Optional[CiStatus]:
        """The commit's CI verdict, or None when this source cannot see CI (git)."""
        ...

    def describe(self) -> str:
        """Where the facts come from, for the report (never a token)."""
        ...


class TreeSource:
    """What both sources share: a commit's tree (every file, recursively, path -> blob id) says which
    files exist, and a file is read through its blob id (content-addressed, so identical files in several
    repos are read once). A path is only ever a key into that tree, never a filesystem path."""

    def _commit_of(self, repo: str, ref: str) -> str:
        raise NotImplementedError

    def _tree(self, repo: str, commit: str) -> dict[str, str]:
        raise NotImplementedError

    def _read_blob(self, repo: str, blob: str, path: str, ref: str) -> str:
        raise NotImplementedError

    def _listing(self, repo: str, ref: str) -> dict[str, str]:
        """The tree of the commit `ref` names (a sha, or a tag resolved first)."""
        return self._tree(repo, self._commit_of(repo, ref))

    def list_files(self, repo: str, ref: str, paths: tuple[str, ...]) -> frozenset[str]:
        tree = self._listing(repo, ref)
        return frozenset(path for path in paths if path in tree)

    def read_file(self, repo: str, ref: str, path: str) -> Optional[str]:
        blob = self.blob_id(repo, ref, path)
        return None if blob is None else self._read_blob(repo, blob, path, ref)

    def blob_id(self, repo: str, ref: str, path: str) -> Optional[str]:
        return self._listing(repo, ref).get(path)


# -- what may be shown --------------------------------------------------------------------------------

REDACTED = "[redacted]"
# Token shapes GitHub issues (classic and fine-grained), and any credential after an auth scheme word.
TOKEN_SHAPES = re.compile(r"\b(?:gh[pousr]_[A-Za-z0-9]{16,}|github_pat_[A-Za-z0-9_]{16,})")
CREDENTIAL_AFTER_SCHEME = re.compile(r"(?i)\b(bearer|token|basic)(\s+)[A-Za-z0-9._~+/=-]{8,}")
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")


def shown_url(url: str) -> str:
    """A URL fit to print: without its userinfo (`user:password@`), which is often a credential."""
    if "://" not in url:
        # scp-like git remotes (git@host:owner/repo): drop what is before the @ of the host part
        host, sep, rest = url.partition(":")
        return (host.rpartition("@")[2] + sep + rest) if sep else url
    try:
        parts = urllib.parse.urlsplit(url)
    except ValueError:
        return "<a URL that cannot be parsed>"
    return urllib.parse.urlunsplit(parts._replace(netloc=parts.netloc.rpartition("@")[2]))


def server_text(text: object, secrets: tuple[str, ...] = (), limit: int = 200) -> str:
    """Text a server sent, fit for a report line: secrets and token-shaped strings redacted, control
    characters escaped (a newline must not forge a report line), and cut to `limit` characters."""
    shown = str(text)
    for secret in secrets:
        if secret:
            shown = shown.replace(secret, REDACTED)
    shown = TOKEN_SHAPES.sub(REDACTED, shown)
    shown = CREDENTIAL_AFTER_SCHEME.sub(lambda match: match.group(1) + match.group(2) + REDACTED, shown)
    shown = _CONTROL.sub(lambda match: f"\\x{ord(match.group(0)):02x}", shown)
    return shown if len(shown) <= limit else shown[: limit - 1] + "…"


def validate_api_url(url: str) -> str:
    """GITHUB_API_URL, checked: https, or http only to a loopback host (a local fake); no query or
    fragment (they would rewrite every API path). Returns it without a trailing slash."""
    fix = f"set {ENV_API_URL} to https://<host>[/api/v3] (http:// only for 127.0.0.1 or localhost), or unset it"
    if _CONTROL.search(url) or " " in url:
        raise SourceSelectionError(f"{ENV_API_URL} contains spaces or control characters; {fix}")
    try:
        parts = urllib.parse.urlsplit(url)
        parts.port  # noqa: B018  (raises ValueError for a port that is not a number)
    except ValueError:
        raise SourceSelectionError(f"{ENV_API_URL} ({shown_url(url)}) is not a URL; {fix}") from None
    if parts.scheme not in ("https", "http") or not parts.hostname:
        raise SourceSelectionError(f"{ENV_API_URL} ({shown_url(url)}) needs an https:// scheme and a host; {fix}")
    if parts.scheme == "http" and not is_loopback(parts.hostname):
        raise SourceSelectionError(
            f"{ENV_API_URL} ({shown_url(url)}) is plain http to a host that is not loopback, which would send "
            f"GITHUB_TOKEN in the clear; {fix}"
        )
    if parts.query or parts.fragment or "?" in url or "#" in url:
        raise SourceSelectionError(f"{ENV_API_URL} ({shown_url(url)}) has a query or fragment; {fix}")
    return url.rstrip("/")


def is_loopback(host: str) -> bool:
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def validate_token(token: Optional[str]) -> Optional[str]:
    """GITHUB_TOKEN as an HTTP header value: printable ASCII without spaces (never echoed)."""
    if not token:
        return None
    if not all(33 <= ord(char) <= 126 for char in token):
        raise SourceSelectionError(f"{ENV_TOKEN} contains spaces, control or non-ASCII characters; paste the token alone")
    return token


# -- answers for one run ---------------------------------------------------------------------------------


class Answers:
    """Every question's outcome (a value or a SourceError) for the source's lifetime, keyed by
    (kind, repo, object), so a commit shared by services is asked once.

    The gate's logic runs in passes over these answers. A pass asks its questions in a fixed order;
    after a source-wide fault, questions not yet asked in that pass fail at once ("not attempted"), so
    the outcome of each question depends only on the logic's order, never on which request finished
    first: a report built from answers fetched concurrently equals the one built sequentially.
    While exploring (`speculate`), an unknown answer is recorded as pending instead of fetched.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._outcomes: dict[Hashable, tuple[bool, object]] = {}
        self._asked: set[Hashable] = set()
        self._latch: Optional[SourceError] = None
        self._derived: dict[Hashable, tuple[object, frozenset[Hashable]]] = {}
        self._recording = threading.local()  # the questions a `derived` computation asks, per thread
        self.speculating = False
        self.pending: dict[Hashable, tuple[str, Callable[[], object]]] = {}

    def begin_pass(self, speculate: bool) -> None:
        self._asked, self._latch, self.speculating, self.pending = set(), None, speculate, {}
        self._recording.guessed = False

    def known(self, key: Hashable) -> bool:
        with self._lock:
            return key in self._outcomes

    def settle(self, key: Hashable, fetch: Callable[[], object]) -> None:
        """Fetch one answer and keep its outcome (called from the exploring pool too)."""
        try:
            outcome = (True, fetch())
        except SourceError as error:
            outcome = (False, error)
        with self._lock:
            self._outcomes.setdefault(key, outcome)

    def record(self, key: Hashable, error: SourceError) -> None:
        with self._lock:
            self._outcomes.setdefault(key, (False, error))

    def value(self, key: Hashable) -> Optional[object]:
        """The answer to `key` when it is known and is a fact (not a fault); None otherwise. Asks nothing."""
        with self._lock:
            outcome = self._outcomes.get(key)
        return outcome[1] if outcome is not None and outcome[0] else None

    def provide(self, key: Hashable, value: object) -> None:
        """An answer fetched together with others (one GraphQL query for several questions)."""
        with self._lock:
            self._outcomes.setdefault(key, (True, value))

    def derived(self, key: Hashable, compute: Callable[[], T]) -> T:
        """A value computed from answers alone (facts parsed from files the source sent), kept for the
        run, so passes over the same answers do not parse the same files again.

        Kept only when `compute` finished: a pending or failed question raises through and it is
        computed again next time. A kept value stands for computing it again exactly: its questions all
        had answers, so they are counted as asked in this pass, and after a source-wide fault in this
        pass it is computed again (its questions may now be "not attempted")."""
        with self._lock:
            kept = self._derived.get(key)
        if kept is not None and self._latch is None:
            self._asked |= kept[1]
            return cast(T, kept[0])
        outer: Optional[set[Hashable]] = getattr(self._recording, "keys", None)
        outer_guessed: bool = getattr(self._recording, "guessed", False)
        self._recording.keys, self._recording.guessed = set(), False
        try:
            value = compute()
            asked, guessed = frozenset(self._recording.keys), self._recording.guessed
        finally:
            inner, inner_guessed = self._recording.keys, self._recording.guessed
            self._recording.keys = None if outer is None else outer | inner
            self._recording.guessed = outer_guessed or inner_guessed
        if not guessed:
            with self._lock:
                self._derived.setdefault(key, (value, asked))
        return value

    def guessed(self) -> None:
        """While exploring, a source answered with something that is not yet an answer (a tree listed by
        name before its id is checked): what is being derived from it now is not kept, only used to find
        questions."""
        self._recording.guessed = True

    def ask(self, key: Hashable, call: str, fetch: Callable[[], T]) -> T:
        first_time = key not in self._asked
        self._asked.add(key)
        recording = getattr(self._recording, "keys", None)
        if recording is not None:
            recording.add(key)
        if self._latch is not None and first_time:
            down = self._latch
            raise Unreachable(call, f"not attempted: {down.call} already failed ({down.reason})", down.fix, source_wide=True)
        with self._lock:
            outcome = self._outcomes.get(key)
        if outcome is None:
            if self.speculating:
                self.pending.setdefault(key, (call, fetch))
                raise Pending(call)
            self.settle(key, fetch)
            with self._lock:
                outcome = self._outcomes[key]
        ok, value = outcome
        if ok:
            # The outcome stored under a key is what that key's fetch returned: a T.
            return cast(T, value)
        assert isinstance(value, SourceError)
        if value.source_wide and self._latch is None:
            self._latch = value
        raise value


def exploring(source: object) -> bool:
    """True only inside a throw-away pass of `explore`: pure work that asks no question may be skipped."""
    answers = getattr(source, "answers", None)
    return isinstance(answers, Answers) and answers.speculating


MAX_PASSES = 10_000  # each pass follows at least one new answer; a cap all the same


Pendings = dict[Hashable, tuple[str, Callable[[], object]]]
Job = tuple[tuple[tuple[Hashable, str], ...], Callable[[], None]]  # ((key, call)...), what settles them


def one_job_each(answers: Answers, pending: Pendings) -> list[Job]:
    """The default grouping: each question its own request."""
    return [(((key, call),), functools.partial(answers.settle, key, fetch)) for key, (call, fetch) in pending.items()]


def explore(
    answers: Answers,
    run_pass: Callable[[], object],
    pool_size: int,
    deadline: Callable[[], Optional[float]],
    clock: Callable[[], float] = time.monotonic,
    grace: float = 0.5,
    group: Optional[Callable[[Pendings], list[Job]]] = None,
    priority: Optional[Callable[[Hashable], int]] = None,
) -> None:
    """Fetch every question the logic reaches, up to `pool_size` at once, before the real pass.

    The logic runs as a speculative pass: questions with known answers are answered, unknown ones are
    recorded as pending (and their checks come out as faults, in a report that is thrown away). Pending
    questions go to the pool; as soon as any answer arrives the pass runs again to find the questions
    that answer opened (a tag's commit opens its tree, a tree its blobs), so the run takes about the
    depth of the question tree in round trips, not their count. When no pass finds an unknown question,
    the caller runs the logic once more for real, from the answers alone: the same report as asking one
    question at a time. At the deadline (plus `grace` for requests ending on their own watchdogs),
    questions still outstanding are recorded as unverified and abandoned; queued ones never start.
    `group` may answer several pending questions with one request (GraphQL); a job that leaves some of
    its questions unanswered has them asked again by the next pass.

    When more questions are open than the pool has room for, the lowest `priority(key)` starts first
    (then the order the logic reached them): a question that opens further questions (a tag, a tree)
    should not wait behind a leaf (a CI status), or the run pays a round trip more than its depth.
    """
    pool = ThreadPoolExecutor(max_workers=pool_size, thread_name_prefix="gate-request")
    in_flight: dict[Future[None], tuple[tuple[Hashable, str], ...]] = {}
    queued: list[tuple[int, int, tuple[tuple[Hashable, str], ...], Callable[[], None]]] = []  # a heap
    order = 0
    try:
        for _ in range(MAX_PASSES):
            answers.begin_pass(speculate=True)
            started = clock()
            run_pass()
            pass_time = clock() - started
            outstanding = {key for questions in in_flight.values() for key, _ in questions}
            outstanding |= {key for _, _, questions, _ in queued for key, _ in questions}
            new = {key: asked for key, asked in answers.pending.items() if key not in outstanding and not answers.known(key)}
            for questions, job in (group or functools.partial(one_job_each, answers))(new):
                rank = min((priority(key) for key, _ in questions), default=0) if priority is not None else 0
                heapq.heappush(queued, (rank, order, questions, job))
                order += 1
            while queued and len(in_flight) < pool_size:
                _, _, questions, job = heapq.heappop(queued)
                in_flight[pool.submit(job)] = questions
            if not in_flight:
                return
            end = deadline()
            timeout = None if end is None else max(0.0, end + grace - clock())
            done, _ = wait(list(in_flight), timeout=timeout, return_when=FIRST_COMPLETED)
            if not done:
                for future in in_flight:
                    future.cancel()
                abandoned = [questions for questions in in_flight.values()] + [questions for _, _, questions, _ in queued]
                for questions in abandoned:
                    for key, call in questions:
                        answers.record(
                            key,
                            Unreachable(
                                call, "cancelled: the run's time budget ended before an answer", "retry when the source responds faster"
                            ),
                        )
                return
            if len(done) < len(in_flight) and pass_time > 0.002:
                # A pass costs time the pool could use: let answers that are about to land join this one
                # (at most one pass's time), so large stacks run fewer passes, not later requests.
                more, _ = wait([future for future in in_flight if future not in done], timeout=min(pass_time, 0.02))
                done = done | more if len(more) else done
            for future in done:
                del in_flight[future]
                future.result()  # a bug (not a SourceError) surfaces as it would asked sequentially
    finally:
        answers.begin_pass(speculate=False)
        pool.shutdown(wait=False, cancel_futures=True)


def make_source(kind: str, bundle: ReleaseBundle, git_root: Optional[Path], environ: Mapping[str, str]) -> ReleaseSource:
    """The source a command or the program asked for; SourceSelectionError for a bad choice."""
    if kind == "github":
        if git_root is not None:
            raise SourceSelectionError(f"a git root ({git_root}) only applies to the git source; drop it or use git")
        from release.gate.github_source import DEFAULT_CONCURRENCY, MAX_CONCURRENCY, GitHubSource

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
        from release.gate.git_source import GitSource

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
