"""Reading Cloud Storage: one small reader over `google-cloud-storage` with Application Default Credentials.

`STORAGE_EMULATOR_HOST` is honoured by the client library itself (anonymous credentials, that endpoint),
which is how the tests run it against a real GCS-compatible server on 127.0.0.1.

Every call has a total deadline and every read a size bound. Whatever goes wrong (403, 404, a timeout,
no credentials, an object too big, bytes that are not JSON) comes back as one `GcsFault` naming the
object, what happened and what to do; callers turn it into a failed check, never a pass or a traceback.
"""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass
from typing import Any, Callable, Iterator, Optional, TypeVar

from release.config import GCS_BUCKET_PATTERN
from release.local_files import InputFileError, decode_utf8, load_json

# A report or manifest is a few KiB; a megabyte means something else was written there.
JSON_MAX_BYTES = 1 << 20
# Feature snapshots are a few MiB; the bound only stops a runaway read.
CSV_MAX_BYTES = 512 << 20
CHUNK_BYTES = 8 << 20
LIST_MAX_OBJECTS = 5000
# Seconds: one HTTP request, and one whole reader call (including the library's own retries).
REQUEST_TIMEOUT = 20.0
CALL_DEADLINE = 60.0
STREAM_DEADLINE = 600.0

T = TypeVar("T")


class GcsFault(Exception):
    """A read that did not give an answer: which object, what happened, what to do."""

    def __init__(self, uri: str, what: str, fix: str) -> None:
        self.uri, self.what, self.fix = uri, what, fix
        super().__init__(f"{uri}: {what}; {fix}")


@dataclass(frozen=True)
class GcsUri:
    bucket: str
    name: str

    def __str__(self) -> str:
        return f"gs://{self.bucket}/{self.name}"

    def child(self, *parts: str) -> "GcsUri":
        """A name under this one; parts come from our own layout rules, never from a server."""
        joined = "/".join(p.strip("/") for p in (self.name, *parts) if p.strip("/"))
        return GcsUri(self.bucket, joined)


def parse_gs_uri(text: str, *, allow_bucket_only: bool = False) -> GcsUri:
    """`gs://bucket/name` (or `gs://bucket[/]` for a prefix); anything else is a ValueError saying why."""
    if not isinstance(text, str) or not text.startswith("gs://"):
        raise ValueError(f"{text!r} is not a gs:// URI")
    bucket, _, name = text[len("gs://") :].partition("/")
    if not GCS_BUCKET_PATTERN.fullmatch(bucket):
        raise ValueError(f"{text!r} has no valid bucket name")
    if any(ord(c) < 32 for c in name) or len(name.encode("utf-8")) > 1024:
        raise ValueError(f"{text!r} is not a valid object name")
    if not name.strip("/") and not allow_bucket_only:
        raise ValueError(f"{text!r} names a bucket, not an object")
    return GcsUri(bucket, name.rstrip("/") if allow_bucket_only else name)


@dataclass(frozen=True)
class ObjectInfo:
    uri: GcsUri
    size: int
    generation: Optional[int]


def shown(value: Any, limit: int = 80) -> str:
    """A value read from GCS, for a message: one short line (an object is data, never printed whole)."""
    try:
        text = value if isinstance(value, str) else json.dumps(value, sort_keys=True, default=str)
    except (TypeError, ValueError):
        text = repr(value)
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _describe(error: BaseException, uri: str, seconds: float) -> GcsFault:
    """A library or transport error as a fault. The server's own message is not echoed: only its status."""
    import requests
    from google.api_core import exceptions as api
    from google.auth import exceptions as auth

    timeout_types = (requests.Timeout, TimeoutError)
    connection_types = (requests.ConnectionError, ConnectionError)

    if isinstance(error, (api.Forbidden, api.Unauthorized)):
        return GcsFault(
            uri,
            f"access denied (HTTP {error.code})",
            "grant the identity running verify roles/storage.objectViewer on the bucket, or check ADC "
            "(gcloud auth application-default login)",
        )
    if isinstance(error, api.NotFound):
        return GcsFault(uri, "does not exist (HTTP 404)", "check the URI in the service's env and that the writer ran")
    if isinstance(error, (api.RetryError, api.DeadlineExceeded, *timeout_types)):
        return GcsFault(uri, f"timed out (deadline {seconds:g}s)", "check network access to Cloud Storage and retry")
    if isinstance(error, auth.DefaultCredentialsError):
        return GcsFault(uri, "no Application Default Credentials", "run gcloud auth application-default login")
    if isinstance(error, auth.GoogleAuthError):
        return GcsFault(uri, f"credentials failed ({type(error).__name__})", "refresh ADC: gcloud auth application-default login")
    if isinstance(error, api.GoogleAPICallError):
        return GcsFault(uri, f"read failed (HTTP {error.code})", "retry; if it persists check the bucket in the console")
    if isinstance(error, connection_types):
        return GcsFault(uri, "cannot reach Cloud Storage", "check network access (or STORAGE_EMULATOR_HOST) and retry")
    return GcsFault(uri, f"read failed ({type(error).__name__})", "retry; if it persists report it with this message")


def _within(seconds: float, uri: str, call: Callable[[], T]) -> T:
    """Run `call` with a hard total deadline: socket timeouts bound each request, this bounds the whole call
    (retries and slow trickles included). A call still running at the deadline is abandoned, not waited for."""
    box: dict[str, Any] = {}

    def run() -> None:
        try:
            box["value"] = call()
        except BaseException as error:  # handed to the caller's thread, which reports it
            box["error"] = error

    worker = threading.Thread(target=run, name=f"gcs-read {uri}", daemon=True)
    worker.start()
    worker.join(seconds)
    if worker.is_alive():
        raise GcsFault(uri, f"timed out (deadline {seconds:g}s)", "check network access to Cloud Storage and retry")
    if "error" in box:
        error = box["error"]
        if isinstance(error, GcsFault):
            raise error
        raise _describe(error, uri, seconds) from None
    value: T = box["value"]
    return value


class GcsReader:
    """Reads objects and lists prefixes. The client is made on first use (ADC or the emulator)."""

    def __init__(
        self,
        client_factory: Optional[Callable[[], Any]] = None,
        call_deadline: float = CALL_DEADLINE,
        stream_deadline: float = STREAM_DEADLINE,
        request_timeout: float = REQUEST_TIMEOUT,
    ) -> None:
        self._factory = client_factory or _default_client
        self._client: Any = None
        self.call_deadline = call_deadline
        self.stream_deadline = stream_deadline
        self.request_timeout = request_timeout

    def _bucket(self, uri: GcsUri) -> Any:
        if self._client is None:
            self._client = _within(self.call_deadline, str(uri), self._factory)
        return self._client.bucket(uri.bucket)

    def _retry(self, seconds: float) -> Any:
        from google.cloud.storage.retry import DEFAULT_RETRY

        return DEFAULT_RETRY.with_timeout(max(seconds, 0.1))

    def _timeout(self, seconds: float) -> float:
        return max(min(self.request_timeout, seconds), 0.1)

    def list_names(self, prefix: GcsUri, limit: int = LIST_MAX_OBJECTS) -> list[str]:
        """Object names under a prefix (a directory-like prefix: pass it with its trailing part)."""
        where = f"gs://{prefix.bucket}/{prefix.name}"
        seconds = self.call_deadline

        def call() -> list[str]:
            blobs = self._bucket(prefix).client.list_blobs(
                prefix.bucket,
                prefix=prefix.name,
                max_results=limit + 1,
                timeout=self._timeout(seconds),
                retry=self._retry(seconds),
            )
            names = [blob.name for blob in blobs]
            if len(names) > limit:
                raise GcsFault(where, f"holds more than {limit} objects", "narrow the prefix (--since) or clean the bucket")
            return names

        return _within(seconds, where, call)

    def read_bytes(self, uri: GcsUri, max_bytes: int = JSON_MAX_BYTES) -> bytes:
        """The whole object, at most `max_bytes` (one byte more is asked for, to tell "too big")."""
        seconds = self.call_deadline

        def call() -> bytes:
            blob = self._bucket(uri).blob(uri.name)
            data: bytes = blob.download_as_bytes(
                start=0, end=max_bytes, checksum=None, timeout=self._timeout(seconds), retry=self._retry(seconds)
            )
            return data

        data = _within(seconds, str(uri), call)
        if len(data) > max_bytes:
            raise GcsFault(str(uri), f"is larger than {max_bytes} bytes", "check that the URI names the intended object")
        return data

    def read_json(self, uri: GcsUri, max_bytes: int = JSON_MAX_BYTES) -> Any:
        data = self.read_bytes(uri, max_bytes)
        fix = "the writer produced a broken object: check its logs"
        # The shared JSON reader: nesting bound, one key per object, no number of thousands of digits.
        try:
            return load_json(decode_utf8(data, str(uri), fix), str(uri), fix)
        except InputFileError as error:
            raise GcsFault(str(uri), error.what, fix) from None

    def info(self, uri: GcsUri) -> ObjectInfo:
        seconds = self.call_deadline

        def call() -> ObjectInfo:
            blob = self._bucket(uri).get_blob(uri.name, timeout=self._timeout(seconds), retry=self._retry(seconds))
            if blob is None:
                raise GcsFault(str(uri), "does not exist (HTTP 404)", "check the URI in the service's env and that the writer ran")
            return ObjectInfo(uri, int(blob.size or 0), blob.generation)

        return _within(seconds, str(uri), call)

    def iter_chunks(
        self,
        uri: GcsUri,
        max_bytes: int = CSV_MAX_BYTES,
        chunk_bytes: int = CHUNK_BYTES,
        progress: Optional[Callable[[int, int], None]] = None,
    ) -> Iterator[bytes]:
        """The object in ranged chunks of one generation (a rewrite mid-read is a 404/412, not a mix), so a
        large CSV is hashed in bounded memory. The stream deadline covers the whole read."""
        started = time.monotonic()
        info = self.info(uri)
        if info.size > max_bytes:
            raise GcsFault(
                str(uri), f"is {info.size} bytes, over the {max_bytes}-byte bound", "check that the URI names the intended object"
            )
        offset = 0
        for _ in range(info.size // chunk_bytes + 2):  # the cap: one more than the chunks the size needs
            if offset >= info.size:
                return
            remaining = self.stream_deadline - (time.monotonic() - started)
            if remaining <= 0:
                raise GcsFault(
                    str(uri), f"timed out (deadline {self.stream_deadline:g}s)", "check network access to Cloud Storage and retry"
                )
            end = min(offset + chunk_bytes, info.size) - 1

            def call(start: int = offset, stop: int = end, seconds: float = remaining) -> bytes:
                blob = self._bucket(uri).blob(uri.name, generation=info.generation)
                data: bytes = blob.download_as_bytes(
                    start=start, end=stop, checksum=None, timeout=self._timeout(seconds), retry=self._retry(seconds)
                )
                return data

            chunk = _within(min(remaining, self.call_deadline), str(uri), call)
            if not chunk:
                raise GcsFault(str(uri), f"ended at byte {offset} of {info.size}", "retry; the object may be being rewritten")
            offset += len(chunk)
            if progress is not None and info.size > chunk_bytes:
                progress(offset, info.size)
            yield chunk
        raise GcsFault(str(uri), f"did not end after {info.size} bytes", "retry; the object may be being rewritten")


def _default_client() -> Any:
    """ADC, or anonymous against STORAGE_EMULATOR_HOST (the library decides from the environment)."""
    from google.cloud import storage

    # project=None: reading needs no project, and ADC of a person often has none.
    return storage.Client(project=None)
