"""A small GitHub stand-in for the gate bench, on 127.0.0.1: the endpoints the gate asks, each answered
after an injected latency (GitHub's round trip), every request logged.

Repositories are plain data (`StubRepo`): commits with their files and parents, tags, branches. The
tarball endpoint answers 302 to a second server on another port, as GitHub redirects to codeload.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import tarfile
import threading
import time
import urllib.parse
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Iterator, Optional


def sha(*parts: str) -> str:
    return hashlib.sha1("\0".join(parts).encode()).hexdigest()


def blob_id(text: str) -> str:
    data = text.encode()
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


@dataclass
class StubRepo:
    commits: dict[str, dict[str, str]] = field(default_factory=dict)
    parents: dict[str, tuple[str, ...]] = field(default_factory=dict)
    tags: dict[str, tuple[str, bool]] = field(default_factory=dict)  # name -> (commit, annotated)
    branches: dict[str, str] = field(default_factory=dict)

    def commit(self, name: str, files: dict[str, str], parent: Optional[str] = None) -> str:
        commit = sha(name, json.dumps(files, sort_keys=True))
        self.commits[commit] = files
        self.parents[commit] = () if parent is None else (parent,)
        self.branches["main"] = commit
        return commit


class Stub:
    def __init__(self, repos: dict[str, StubRepo], latency: float) -> None:
        self.repos, self.latency = repos, latency
        self.requests: list[str] = []
        self.lock = threading.Lock()
        handler = type("Handler", (_Handler,), {"stub": self})
        self.api = _Server(("127.0.0.1", 0), handler)
        self.codeload = _Server(("127.0.0.1", 0), handler)
        self.base_url = f"http://127.0.0.1:{self.api.server_address[1]}"
        self.codeload_url = f"http://127.0.0.1:{self.codeload.server_address[1]}"

    def answer(self, path: str) -> tuple[int, Any, dict[str, str]]:
        parts = [urllib.parse.unquote(p) for p in path.split("?")[0].strip("/").split("/")]
        if parts[0] == "_codeload":
            repo, commit = self.repos[f"{parts[1]}/{parts[2]}"], parts[3]
            return 200, _tarball(f"{parts[1]}-{parts[2]}-{commit[:7]}", repo.commits[commit]), {}
        repo = self.repos.get(f"{parts[1]}/{parts[2]}")
        if repo is None:
            return 404, {"message": "Not Found"}, {}
        rest = parts[3:]
        if not rest:
            return 200, {"default_branch": "main"}, {}
        if rest[:3] in (["git", "ref", "tags"], ["git", "ref", "heads"]):
            name = "/".join(rest[3:])
            if rest[2] == "heads":
                return 200, {"ref": f"refs/heads/{name}", "object": {"type": "commit", "sha": repo.branches[name]}}, {}
            commit, annotated = repo.tags[name]
            target = {"type": "tag", "sha": sha("tag", name)} if annotated else {"type": "commit", "sha": commit}
            return 200, {"ref": f"refs/tags/{name}", "object": target}, {}
        if rest[:2] == ["git", "tags"]:
            commit = next(c for name, (c, _) in repo.tags.items() if sha("tag", name) == rest[2])
            return 200, {"sha": rest[2], "object": {"type": "commit", "sha": commit}}, {}
        if rest[:2] == ["git", "trees"]:
            files = repo.commits[rest[2]]
            tree = [{"path": p, "mode": "100644", "type": "blob", "sha": blob_id(t)} for p, t in sorted(files.items())]
            return 200, {"sha": sha("tree", rest[2]), "tree": tree, "truncated": False}, {}
        if rest[0] == "tarball":
            name = "/".join(rest[1:])
            commit = repo.tags[name][0] if name in repo.tags else repo.branches.get(name, name)
            return 302, {}, {"Location": f"{self.codeload_url}/_codeload/{parts[1]}/{parts[2]}/{commit}"}
        if rest[0] == "compare":
            base, _, head = rest[1].partition("...")
            base, head = repo.branches.get(base, base), repo.branches.get(head, head)
            above_head, above_base = _ancestors(repo, head), _ancestors(repo, base)
            status = "identical" if base == head else "behind" if head in above_base else "ahead" if base in above_head else "diverged"
            merge_base = {"identical": head, "behind": head, "ahead": base}.get(status, "0" * 40)
            return 200, {"status": status, "merge_base_commit": {"sha": merge_base}, "commits": [], "files": []}, {}
        if rest[0] == "commits" and rest[2] == "status":
            return 200, {"sha": rest[1], "total_count": 1, "statuses": [{"context": "ci", "state": "success"}]}, {}
        if rest[0] == "commits" and rest[2] == "check-runs":
            return 200, {"total_count": 1, "check_runs": [{"name": "tests", "status": "completed", "conclusion": "success"}]}, {}
        return 404, {"message": "Not Found"}, {}


def _ancestors(repo: StubRepo, commit: str) -> set[str]:
    seen, stack = set(), [commit]
    while stack:
        current = stack.pop()
        if current not in seen:
            seen.add(current)
            stack.extend(repo.parents.get(current, ()))
    return seen


def _tarball(top: str, files: dict[str, str]) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as archive:
        for path, text in sorted(files.items()):
            data = text.encode()
            info = tarfile.TarInfo(f"{top}/{path}")
            info.size, info.mode = len(data), 0o644
            archive.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


class _Server(ThreadingHTTPServer):
    # The listen backlog is set when the server binds: the default 5 drops a concurrent client's 6th
    # connection, which then waits a second for TCP's retransmission (a stub's artefact, not GitHub's).
    request_queue_size = 128
    daemon_threads = True


class _Handler(BaseHTTPRequestHandler):
    stub: Stub
    protocol_version = "HTTP/1.1"
    wbufsize = 1 << 16
    disable_nagle_algorithm = True

    def log_message(self, format: str, *args: object) -> None:
        pass

    def do_GET(self) -> None:
        with self.stub.lock:
            self.stub.requests.append(self.path)
        time.sleep(self.stub.latency)
        status, body, headers = self.stub.answer(self.path)
        payload = body if isinstance(body, bytes) else json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Length", str(len(payload)))
        for name, value in headers.items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(payload)


@contextlib.contextmanager
def serving(repos: dict[str, StubRepo], latency: float) -> Iterator[Stub]:
    stub = Stub(repos, latency)
    threads = [
        threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True) for server in (stub.api, stub.codeload)
    ]
    for thread in threads:
        thread.start()
    try:
        yield stub
    finally:
        for server in (stub.api, stub.codeload):
            server.shutdown()
            server.server_close()
