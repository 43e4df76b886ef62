"""How long streamq waits on an endpoint, and what is waiting right now.

Timeouts (seconds; each can be overridden by an environment variable):

* ``connect`` 3.1 (``STREAMQ_CONNECT_TIMEOUT``): botocore's own recommended default, the
  "standard" defaults mode (botocore/data/sdk-default-configuration.json:
  ``connectTimeoutInMillis`` 3100). A TCP/TLS handshake to a regional endpoint takes
  milliseconds; 3.1 s covers a lost SYN's retransmission (about 1 s) and still fails fast.
* ``read`` 10 (``STREAMQ_READ_TIMEOUT``): every call except Scan and Query pages. DynamoDB
  answers single-item operations (UpdateItem, GetItem) in single-digit milliseconds on
  average (DynamoDB Developer Guide, "Troubleshooting latency issues"; AWS Knowledge
  Center "dynamodb-high-latency"), and AWS recommends timeouts sized for the
  application's latency budget rather than the SDK's 60 s default (AWS Database Blog,
  "Tuning AWS Java SDK HTTP request settings for latency-aware Amazon DynamoDB
  applications"). 10 s is three orders of magnitude above a normal answer, so it never
  cuts a healthy request, and it lets a refire retry a stalled write several times within
  its per-record deadline.
* ``scan`` 120 (``STREAMQ_SCAN_TIMEOUT``): Scan and Query pages. A page reads up to 1 MB
  and, through a filter, may examine far more before it answers; an emulated endpoint
  (moto, the sandbox) sorts the whole table for every page, so a page of a 100,000-item
  table takes tens of seconds there (commit 42f7e56: a short timeout turned slow pages
  into a retry storm). The long timeout costs nothing while pages come back; while one
  does not, streamq says so on the terminal (see :class:`InFlight`).
* ``deadline`` 60 (``refire --deadline``): a refire gives a record up (``failed``,
  resumable) once this long has passed since its first attempt, retries included: the
  DynamoDB Developer Guide ("Error retries and exponential backoff") advises setting the
  retries "to stop around one minute". No attempt starts after the deadline, so a record
  ends at most ``deadline + connect + read`` (about 73 s) after its first attempt.

Which requests are in flight: every client :class:`~streamq.aws.Aws` builds reports to
:data:`INFLIGHT` (botocore's ``before-send`` and ``response-received`` events), so the
terminal can show "waiting on the endpoint" while a request goes unanswered.

Pure: no boto3, no rich.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass

CONNECT_TIMEOUT = 3.1
READ_TIMEOUT = 10.0
SCAN_TIMEOUT = 120.0
RECORD_DEADLINE = 60.0
#: Unanswered this long: say so on the terminal.
STALL_NOTICE_AFTER = 3.0


@dataclass(frozen=True)
class Timeouts:
    connect: float = CONNECT_TIMEOUT
    read: float = READ_TIMEOUT
    scan: float = SCAN_TIMEOUT

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Timeouts:
        env = os.environ if env is None else env
        return cls(connect=_seconds(env, "STREAMQ_CONNECT_TIMEOUT", CONNECT_TIMEOUT),
                   read=_seconds(env, "STREAMQ_READ_TIMEOUT", READ_TIMEOUT),
                   scan=_seconds(env, "STREAMQ_SCAN_TIMEOUT", SCAN_TIMEOUT))


def _seconds(env: Mapping[str, str], name: str, default: float) -> float:
    from .errors import BadInput

    text = env.get(name, "").strip()
    if not text:
        return default
    try:
        value = float(text)
    except ValueError:
        raise BadInput(f"{name}={text!r}: give a number of seconds") from None
    if not 0 < value <= 3600:
        raise BadInput(f"{name}={text!r}: give a number of seconds between 0 and 3600")
    return value


@dataclass(frozen=True)
class Stall:
    """Requests unanswered for a while: how many, the longest wait, and what it is."""

    count: int
    seconds: float
    operation: str
    timeout: float

    def text(self) -> str:
        """E.g. ``waiting on the endpoint for 12s (4 UpdateItem, timeout 10s)``: short
        enough for a progress line at 80 columns."""
        what = f"{self.count} {self.operation}" if self.count > 1 else self.operation
        return (f"waiting on the endpoint for {self.seconds:.0f}s ({what}, timeout "
                f"{self.timeout:g}s)")


class InFlight:
    """Requests sent and not yet answered. botocore calls are synchronous, so a thread
    has at most one request in flight: the thread is the key."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._open: dict[int, tuple[float, str, float]] = {}

    def begin(self, operation: str, timeout: float) -> None:
        with self._lock:
            self._open[threading.get_ident()] = (time.monotonic(), operation, timeout)

    def end(self) -> None:
        with self._lock:
            self._open.pop(threading.get_ident(), None)

    def stalled(self, after: float = STALL_NOTICE_AFTER) -> Stall | None:
        """The requests unanswered for at least ``after`` seconds, or None."""
        now = time.monotonic()
        with self._lock:
            waiting = [(now - t, op, to) for t, op, to in self._open.values() if now - t >= after]
        if not waiting:
            return None
        seconds, op, timeout = max(waiting)
        return Stall(len(waiting), seconds, op, timeout)


#: Every request of this process (see the module docstring).
INFLIGHT = InFlight()
