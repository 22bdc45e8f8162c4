"""Progress lines for waits an operator would otherwise sit through in silence.

Every wait that may last more than a second (a gcloud call, the release gate's reads of GitHub or the
clones, the profile facts it builds, a GCS read) runs inside `waiting(what)`: after a second a line says
what is being waited for, again every few seconds while it lasts, and how long it took once it is done.
The lines go to stderr, only when stderr is a terminal or `--progress` is given (`configure`), so a
script's stdout and a quiet run stay clean. What a line quotes is escaped: a path or a name cannot forge
a line or drive the terminal.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from typing import Optional, TextIO

from release.control_chars import escape_controls

# A wait is worth a line once it passes this, and again every REPEAT_SECONDS while it lasts.
AFTER_SECONDS = 1.0
REPEAT_SECONDS = 5.0


class Progress:
    def __init__(self, stream: Optional[TextIO] = None, after: float = AFTER_SECONDS, repeat: float = REPEAT_SECONDS) -> None:
        self.stream = stream
        self.after = after
        self.repeat = repeat
        self._lock = threading.Lock()

    def _line(self, text: str) -> None:
        assert self.stream is not None
        with self._lock:  # concurrent waits print whole lines
            print(escape_controls(text), file=self.stream, flush=True)

    @contextmanager
    def waiting(self, what: str) -> Iterator[None]:
        """Run the body; while it lasts longer than `after` seconds, say so (silent when not configured)."""
        if self.stream is None:
            yield
            return
        started = time.monotonic()
        done = threading.Event()
        shown = threading.Event()

        def watch() -> None:
            delay = self.after
            while not done.wait(delay):
                shown.set()
                self._line(f"... {what} ({time.monotonic() - started:.0f}s)")
                delay = self.repeat

        watcher = threading.Thread(target=watch, name="progress", daemon=True)
        watcher.start()
        try:
            yield
        finally:
            done.set()
            watcher.join()
            if shown.is_set():
                self._line(f"... {what}: done in {time.monotonic() - started:.1f}s")


PROGRESS = Progress()


def configure(stream: Optional[TextIO]) -> None:
    """Where progress lines go for this process (None: nowhere)."""
    PROGRESS.stream = stream


def waiting(what: str) -> AbstractContextManager[None]:
    """`PROGRESS.waiting(what)`: the process's progress lines."""
    return PROGRESS.waiting(what)
