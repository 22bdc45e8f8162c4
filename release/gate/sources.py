"""Where the gate's facts come from: the source protocol, its errors, redaction, and choosing a source.

Two implementations answer the same questions: `release/gate/github_source.py` (GitHub's REST API over
httpx) and `release/gate/git_source.py` (plain git over a directory of clones). Every fault is a
`SourceError` that names the call, the reason and the fix; the fetch stage keeps it as that question's
outcome and the checks turn it into a failed or "error" check, so a fault always fails closed.
"""

from __future__ import annotations

import asyncio
import ipaddress
import re
import urllib.parse
from dataclasses import dataclass
from typing import Any, Literal, Optional, Protocol, runtime_checkable

from release.gate.trees import Tree

SOURCE_KINDS: tuple[str, ...] = ("github", "git")
DEFAULT_SOURCE = "github"

ENV_SOURCE = "CUTOVER_SOURCE"
ENV_GIT_ROOT = "CUTOVER_GIT_ROOT"
ENV_TOKEN = "GITHUB_TOKEN"
ENV_API_URL = "GITHUB_API_URL"
ENV_CONCURRENCY = "CUTOVER_GATE_CONCURRENCY"

Relation = Literal["same", "ahead", "behind", "diverged"]
"""How `head` stands to `base`: the same commit, a descendant (ahead), an ancestor (behind), or neither."""


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
    """The questions the fetch stage asks (release/gate/fetch.py). `repo` is a repository name under the
    release's owner. Each is asked once per run; the answers become the run's immutable facts."""

    kind: str

    async def resolve_tag(self, repo: str, tag: str) -> str:
        """The commit the tag points at (annotated tags peeled, at most 5 levels); TagNotFound when there
        is no tag of exactly that name."""
        ...

    async def tree(self, repo: str, commit: str, early: Optional["asyncio.Future[Optional[bytes]]"] = None) -> Tree:
        """Every file of the commit, verified against its listing; NotFound when there is no such commit.
        `early` is an archive fetched by a name of the commit (`early_archive`): used only when it is
        exactly this commit's tree, else the archive is fetched by the commit."""
        ...

    async def early_archive(self, repo: str, ref: str) -> Optional[bytes]:
        """An archive of whatever `ref` names now, fetched while the ref resolves (None: this source has
        no use for one); nothing is taken from it until `tree` has checked it against the commit's listing."""
        ...

    async def default_head(self, repo: str) -> tuple[str, str]:
        """(default branch name, the commit it points at)."""
        ...

    async def released(self, repo: str, commit: str) -> tuple[bool, str]:
        """(whether `commit` is on the default branch, that branch's name); NotFound when there is no
        such commit."""
        ...

    async def relation(self, repo: str, base: str, head: str) -> Relation:
        """How commit `head` stands to commit `base` in history."""
        ...

    async def ci_status(self, repo: str, commit: str) -> Optional["CiStatus"]:
        """The commit's CI verdict, or None when this source cannot see CI (git)."""
        ...

    def describe(self) -> str:
        """Where the facts come from, for the report (never a token)."""
        ...

    async def __aenter__(self) -> Any: ...

    async def __aexit__(self, *exc: object) -> None: ...


# -- what may be shown --------------------------------------------------------------------------------

REDACTED = "[redacted]"
# Token shapes GitHub issues (classic and fine-grained), and any credential after an auth scheme word.
# No word boundary before them: `deploy_ghp_...` is a token glued to a word, and still a token.
TOKEN_SHAPES = re.compile(r"(?:gh[pousr]_[A-Za-z0-9]{16,}|github_pat_[A-Za-z0-9_]{16,})")
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


def redacted(text: str, secrets: tuple[str, ...] = ()) -> str:
    """`text` with every secret redacted: the exact secrets first (a token of any shape), then anything
    token-shaped (also glued to a word), then a credential after an auth scheme word."""
    for secret in secrets:
        if secret:
            text = text.replace(secret, REDACTED)
    text = TOKEN_SHAPES.sub(REDACTED, text)
    return CREDENTIAL_AFTER_SCHEME.sub(lambda match: match.group(1) + match.group(2) + REDACTED, text)


def redacted_json(value: Any, secrets: tuple[str, ...] = ()) -> Any:
    """A decoded answer with every string (keys too) redacted: done once, where an answer enters, so no
    later path (a ref name, a status context, a check run's name, an error message) can show a token."""
    stack: list[Any] = [value]
    while stack:  # iterative: the decoder's own depth bound already holds, this adds no recursion
        item = stack.pop()
        if isinstance(item, dict):
            for key in list(item):
                child = item.pop(key)
                item[redacted(key, secrets) if isinstance(key, str) else key] = (
                    redacted(child, secrets) if isinstance(child, str) else child
                )
                stack.append(child)
        elif isinstance(item, list):
            for index, child in enumerate(item):
                if isinstance(child, str):
                    item[index] = redacted(child, secrets)
                else:
                    stack.append(child)
    return value


def server_text(text: object, secrets: tuple[str, ...] = (), limit: int = 200) -> str:
    """Text a server sent, fit for a report line: secrets and token-shaped strings redacted, control
    characters escaped (a newline must not forge a report line), and cut to `limit` characters."""
    shown = redacted(str(text), secrets)
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
