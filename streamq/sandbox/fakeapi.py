"""A fake mail API for the sandbox: rate limited, with undeliverable addresses, and an
append-only log of every call (JSON lines) that proves what was sent and how often.

Outcomes: ``sent``; ``429 Too Many Requests`` (transient: more than ``rate`` sends in the
last second); ``550 mailbox unavailable`` (permanent: the recipient matches the
undeliverable pattern).
"""

from __future__ import annotations

import collections
import json
import re
import threading
import time
from pathlib import Path
from typing import Any

from ..files import open_private, private_dir

DEFAULT_RATE = 50.0
DEFAULT_UNDELIVERABLE = r"@invalid\.example$"


def _iso_now() -> str:
    now = time.time()
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(now)) + f".{int(now * 1000) % 1000:03d}Z"


class SendError(Exception):
    """A send the API refused; ``transient`` says whether a later retry may succeed."""

    def __init__(self, message: str, *, transient: bool) -> None:
        super().__init__(message)
        self.transient = transient


class FakeMailApi:
    def __init__(self, log_path: Path, *, rate: float = DEFAULT_RATE,
                 undeliverable: str = DEFAULT_UNDELIVERABLE) -> None:
        self.log_path = log_path
        self.rate = rate
        self.undeliverable = re.compile(undeliverable)
        self._sent_times: collections.deque[float] = collections.deque()
        self._lock = threading.Lock()

    def send(self, message_id: str, recipient: str, subject: str) -> str:
        """Send one message; returns the provider's id, raises :class:`SendError`."""
        with self._lock:
            now = time.monotonic()
            while self._sent_times and now - self._sent_times[0] >= 1.0:
                self._sent_times.popleft()
            if self.undeliverable.search(recipient):
                outcome, error = "rejected", SendError("550 mailbox unavailable",
                                                       transient=False)
            elif self.rate > 0 and len(self._sent_times) >= self.rate:
                outcome, error = "throttled", SendError("429 Too Many Requests",
                                                        transient=True)
            else:
                self._sent_times.append(now)
                outcome, error = "sent", None
            self._log({"message_id": message_id, "recipient": recipient, "subject": subject,
                       "outcome": outcome, "error": None if error is None else str(error),
                       "time": _iso_now()})
        if error is not None:
            raise error
        return f"fake-{message_id}"

    def _log(self, entry: dict[str, Any]) -> None:
        private_dir(self.log_path.parent)
        with open_private(self.log_path, "a") as fh:
            fh.write(json.dumps(entry) + "\n")


def read_log(path: Path) -> list[dict[str, Any]]:
    """Every call the fake API logged (an empty list when there is no log yet)."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return []
    return [json.loads(line) for line in text.splitlines() if line.strip()]


_instances: dict[str, FakeMailApi] = {}
_instances_lock = threading.Lock()


def shared_api(log_path: Path, *, rate: float, undeliverable: str) -> FakeMailApi:
    """One API per log file in a process, so its rate limit spans invocations."""
    key = f"{log_path}|{rate}|{undeliverable}"
    with _instances_lock:
        api = _instances.get(key)
        if api is None:
            api = _instances[key] = FakeMailApi(log_path, rate=rate, undeliverable=undeliverable)
        return api
