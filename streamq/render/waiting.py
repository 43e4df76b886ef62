""""Waiting on the endpoint": what a command shows while a request goes unanswered.

A command runs inside :func:`watch`: a background thread looks at the requests in
flight (streamq.waits.INFLIGHT) four times a second. When one has gone unanswered for
a few seconds:

* a live display on stderr (the scan spinner, the refire progress bar) that
  :func:`attach`-ed itself shows the wait in its own line;
* otherwise, on a terminal, a line goes to stderr, repeated every 15 s while the wait
  lasts.

Nothing is shown when stderr is not a terminal (logs and pipes stay quiet). Messages
queued with :func:`notice` (safe from a signal handler) are printed by the same thread,
through the live display's console when there is one, so they never garble it.
"""

from __future__ import annotations

import contextlib
import queue
import sys
import threading
import time
from collections.abc import Iterator
from typing import Any, Protocol

from ..waits import INFLIGHT, InFlight

REPEAT = 15.0  # seconds between repeated lines while a wait lasts
TICK = 0.25


class Display(Protocol):
    def set_waiting(self, text: str) -> None: ...
    def print_line(self, text: str) -> None: ...


_notices: queue.SimpleQueue[str] = queue.SimpleQueue()
_display: Display | None = None
_lock = threading.Lock()


def notice(text: str) -> None:
    """Print ``text`` on stderr soon (from any thread, and from a signal handler)."""
    _notices.put(text)


def attach(display: Display) -> None:
    global _display
    with _lock:
        _display = display


def current() -> Display | None:
    """The display attached now (a progress line), or None."""
    with _lock:
        return _display


def detach(display: Display) -> None:
    global _display
    with _lock:
        if _display is display:
            _display = None


def _stderr_is_tty() -> bool:
    from . import is_tty

    return is_tty(sys.stderr)


def _say(text: str) -> None:
    with _lock:
        display = _display
    if display is not None:
        display.print_line(text)
        return
    from . import info

    info(text)


class _Watch:
    def __init__(self, inflight: InFlight) -> None:
        self.inflight = inflight
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, name="stall-watch", daemon=True)
        self._last_line = 0.0
        self._shown = ""

    def _run(self) -> None:
        while not self.stop.wait(TICK):
            with contextlib.suppress(Exception):  # feedback must never break a command
                self.tick()

    def tick(self) -> None:
        while True:
            try:
                _say(_notices.get_nowait())
            except queue.Empty:
                break
        stall = self.inflight.stalled()
        text = stall.text() if stall is not None else ""
        with _lock:
            display = _display
        if display is not None:
            if text != self._shown:
                display.set_waiting(text)
                self._shown = text
            return
        self._shown = ""
        now = time.monotonic()
        if stall is None:
            self._last_line = 0.0
        elif _stderr_is_tty() and now - self._last_line >= REPEAT:
            self._last_line = now
            _say(f"streamq: {text}")

    def flush(self) -> None:
        while True:
            try:
                _say(_notices.get_nowait())
            except queue.Empty:
                return


@contextlib.contextmanager
def watch(inflight: InFlight = INFLIGHT) -> Iterator[None]:
    """Run the body with the watcher thread on (see the module docstring)."""
    w = _Watch(inflight)
    w.thread.start()
    try:
        yield
    finally:
        w.stop.set()
        w.thread.join(timeout=1)
        with contextlib.suppress(Exception):
            w.flush()


def style_waiting(text: str) -> Any:
    """The waiting text as a live display shows it (yellow, or nothing)."""
    from rich.text import Text

    return Text(text, style="yellow") if text else Text("")
