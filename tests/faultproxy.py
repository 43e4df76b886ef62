"""A fault-injecting HTTP proxy in front of moto's server, for the fault suite.

Every request is forwarded to the upstream endpoint unless a fault says otherwise:

========== ==================================================================== =========
fault      what the client sees                                                 upstream
========== ==================================================================== =========
drop       the connection reset before any response (nothing was forwarded)     no write
lose       the connection reset after the upstream answered (response lost)     written
lose500    HTTP 500 InternalServerError after the upstream answered             written
error5xx   HTTP 500 InternalServerError or 503 ServiceUnavailable               no write
throttle   HTTP 400 with DynamoDB's throttling error body (three kinds)         no write
stall      nothing for ``stall_seconds``, then forwarded and answered           late write
blackhole  nothing, ever (until the proxy closes); never forwarded              no write
outage     every request in a time window is reset (``outage(start, length)``)  no write
========== ==================================================================== =========

Error bodies are the real services': DynamoDB's JSON 1.0 ``{"__type": "com.amazonaws.
dynamodb.v20120810#ProvisionedThroughputExceededException", "message": ...}`` (DynamoDB
Developer Guide, "Error handling with DynamoDB"), Lambda's REST-JSON
``x-amzn-ErrorType`` + ``{"Type": ..., "message": ...}``.

Faults are chosen per request from a seeded generator keyed on (seed, operation, item key,
how many times that key was seen), so a run reproduces the same faults for the same keys
whatever the thread interleaving; ``script`` forces faults on the next matching requests.
Only the operations in ``ops`` get faults (``None``: all); outages hit every request.
"""

from __future__ import annotations

import contextlib
import hashlib
import http.client
import http.server
import json
import random
import socket
import struct
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

FAULTS = ("drop", "lose", "lose500", "error5xx", "throttle", "stall", "blackhole")
#: The faults after which a write may have happened (the client cannot tell).
WRITTEN = {"lose", "lose500", "stall"}

DDB = "com.amazonaws.dynamodb.v20120810#"
THROTTLES = [
    (f"{DDB}ProvisionedThroughputExceededException",
     "The level of configured provisioned throughput for the table was exceeded. "
     "Consider increasing your provisioning level with the UpdateTable API."),
    ("com.amazon.coral.availability#ThrottlingException",
     "Rate of requests exceeds the allowed throughput."),
    (f"{DDB}RequestLimitExceeded",
     "Throughput exceeds the current throughput limit for your account. Please contact "
     "AWS Support at https://aws.amazon.com/support request a limit increase"),
]


@dataclass
class Mix:
    """Probability of each fault per matching request (the rest are forwarded)."""

    drop: float = 0.0
    lose: float = 0.0
    lose500: float = 0.0
    error5xx: float = 0.0
    throttle: float = 0.0
    stall: float = 0.0
    blackhole: float = 0.0
    stall_seconds: float = 1.5

    @property
    def total(self) -> float:
        return sum(getattr(self, f) for f in FAULTS)

    def describe(self) -> str:
        parts = [f"{f} {getattr(self, f):.0%}" for f in FAULTS if getattr(self, f)]
        return ", ".join(parts) + f" (total {self.total:.0%}; stalls {self.stall_seconds:g}s)"


@dataclass
class Request:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes
    service: str  # dynamodb, streams, lambda, other
    op: str
    key: str  # the item key (JSON) for item operations, else ""

    def json(self) -> Any:
        try:
            return json.loads(self.body or b"{}")
        except ValueError:
            return {}


@dataclass
class Event:
    at: float
    op: str
    key: str
    fault: str


@dataclass
class FaultProxy:
    upstream: str
    seed: int = 0
    mix: Mix = field(default_factory=Mix)
    ops: set[str] | None = field(default_factory=lambda: {"UpdateItem"})
    #: Forced faults for the next matching requests, in order (then the mix applies).
    script: list[str] = field(default_factory=list)
    #: A fault chosen by the test for a request (None: no say), before script and mix.
    rule: Callable[[Request], str | None] | None = None
    #: Called after a request was forwarded and answered upstream, before the answer
    #: goes back (or is lost): e.g. delete the item to race the client's retry.
    after_forward: Callable[[Request, int, bytes], None] | None = None
    #: Called just before the client gets a fault (after the upstream write for lose,
    #: lose500 and stall): e.g. delete the item before the client's retry.
    on_fault: Callable[[Request, str], None] | None = None

    def __post_init__(self) -> None:
        parts = urlsplit(self.upstream)
        self._up = (parts.hostname or "127.0.0.1", parts.port or 80)
        self.lock = threading.Lock()
        self.seen: Counter[tuple[str, str]] = Counter()
        self.counts: Counter[str] = Counter()  # fault -> times injected
        self.calls: Counter[str] = Counter()  # op -> requests received
        self.events: list[Event] = []
        self.inflight = 0
        self._outages: list[tuple[float, float]] = []
        self._closing = threading.Event()
        self._local = threading.local()
        proxy = self

        class Handler(_Handler):
            owner = proxy

        self._server = _Server(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True,
                                        name="fault-proxy")
        self._thread.start()

    # ------------------------------------------------------------------ control

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def outage(self, start: float, seconds: float) -> None:
        """Reset every request from ``start`` seconds from now, for ``seconds``."""
        t0 = time.monotonic() + start
        with self.lock:
            self._outages.append((t0, t0 + seconds))

    def close(self) -> None:
        self._closing.set()
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)

    def __enter__(self) -> FaultProxy:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def summary(self) -> str:
        faults = ", ".join(f"{k} {v}" for k, v in sorted(self.counts.items())) or "none"
        calls = ", ".join(f"{k} {v}" for k, v in sorted(self.calls.items()))
        return f"requests: {calls}; faults injected: {faults}"

    # ------------------------------------------------------------------ decisions

    def decide(self, req: Request) -> str | None:
        now = time.monotonic()
        with self.lock:
            self.calls[req.op] += 1
            if any(a <= now < b for a, b in self._outages):
                fault: str | None = "outage"
            elif self.ops is not None and req.op not in self.ops:
                fault = None
            elif self.rule is not None and (ruled := self.rule(req)) is not None:
                fault = ruled or None
            elif self.script:
                fault = self.script.pop(0) or None
            else:
                n = self.seen[(req.op, req.key)]
                self.seen[(req.op, req.key)] += 1
                fault = self._draw(req, n)
            if fault is not None:
                self.counts[fault] += 1
                self.events.append(Event(now, req.op, req.key, fault))
            return fault

    def _draw(self, req: Request, n: int) -> str | None:
        h = hashlib.sha256(f"{self.seed}|{req.op}|{req.key}|{n}".encode()).digest()
        x = random.Random(h).random()
        acc = 0.0
        for name in FAULTS:
            acc += getattr(self.mix, name)
            if x < acc:
                return name
        return None

    # ------------------------------------------------------------------ upstream

    def forward(self, req: Request) -> tuple[int, list[tuple[str, str]], bytes]:
        for attempt in range(2):
            conn = getattr(self._local, "conn", None)
            if conn is None:
                conn = http.client.HTTPConnection(*self._up, timeout=300)
                self._local.conn = conn
            try:
                headers = {k: v for k, v in req.headers.items()
                           if k.lower() not in ("host", "connection", "content-length")}
                conn.request(req.method, req.path, body=req.body, headers=headers)
                resp = conn.getresponse()
                return resp.status, resp.getheaders(), resp.read()
            except (OSError, http.client.HTTPException):
                conn.close()
                self._local.conn = None
                if attempt:
                    raise
        raise AssertionError("unreachable")  # pragma: no cover


def _operation(method: str, path: str, headers: dict[str, str], body: bytes) -> tuple[
        str, str, str]:
    target = headers.get("x-amz-target", "")
    if target:
        prefix, _, op = target.partition(".")
        service = "streams" if prefix.startswith("DynamoDBStreams") else "dynamodb"
        key = ""
        if op in ("UpdateItem", "GetItem", "DeleteItem", "PutItem"):
            try:
                doc = json.loads(body or b"{}")
                key = json.dumps(doc.get("Key") or doc.get("Item"), sort_keys=True)
            except ValueError:
                pass
        return service, op, key
    p = urlsplit(path).path
    if "/event-source-mappings" in p:
        tail = p.split("/event-source-mappings", 1)[1].strip("/")
        op = {("GET", ""): "ListEventSourceMappings", ("POST", ""): "CreateEventSourceMapping",
              ("GET", "x"): "GetEventSourceMapping", ("PUT", "x"): "UpdateEventSourceMapping",
              ("DELETE", "x"): "DeleteEventSourceMapping"}.get(
                  (method, "x" if tail else ""), method)
        return "lambda", op, tail
    if p.startswith("/20"):
        return "lambda", f"{method} {p}", ""
    return "other", f"{method} {p}", ""


class _Server(http.server.ThreadingHTTPServer):
    def handle_error(self, request: Any, client_address: Any) -> None:
        """A client that goes away (a killed streamq, a reset) is part of the campaign, not
        an error worth a traceback on stderr; anything else still gets one."""
        if not isinstance(sys.exc_info()[1], OSError):
            super().handle_error(request, client_address)


class _Handler(http.server.BaseHTTPRequestHandler):
    owner: FaultProxy
    protocol_version = "HTTP/1.1"  # keep-alive, as botocore uses it

    def log_message(self, *args: Any) -> None:
        pass

    def do_GET(self) -> None:
        self._handle("GET")

    def do_POST(self) -> None:
        self._handle("POST")

    def do_PUT(self) -> None:
        self._handle("PUT")

    def do_DELETE(self) -> None:
        self._handle("DELETE")

    def _handle(self, method: str) -> None:
        px = self.owner
        length = int(self.headers.get("Content-Length", 0) or 0)
        body = self.rfile.read(length) if length else b""
        headers = {k.lower(): v for k, v in self.headers.items()}
        service, op, key = _operation(method, self.path, headers, body)
        req = Request(method, self.path, dict(self.headers.items()), body, service, op, key)
        fault = px.decide(req)
        with px.lock:
            px.inflight += 1
        try:
            self._serve(px, req, fault)
        finally:
            with px.lock:
                px.inflight -= 1

    def _serve(self, px: FaultProxy, req: Request, fault: str | None) -> None:
        if fault is not None and px.on_fault is not None and fault not in WRITTEN:
            px.on_fault(req, fault)
        if fault in ("drop", "outage"):
            self._reset()
            return
        if fault == "blackhole":
            px._closing.wait()
            self._reset()
            return
        if fault == "throttle":
            kind, message = THROTTLES[px.counts["throttle"] % len(THROTTLES)]
            self._error(req, 400, kind, message, 429)
            return
        if fault == "error5xx":
            if px.counts["error5xx"] % 2:
                self._error(req, 503, f"{DDB}ServiceUnavailableException",
                            "The service is currently unavailable or busy.", 503)
            else:
                self._error(req, 500, f"{DDB}InternalServerError", "Internal server error",
                            500)
            return
        if fault == "stall" and px._closing.wait(px.mix.stall_seconds):
            self._reset()
            return
        try:
            status, headers, data = px.forward(req)
        except (OSError, http.client.HTTPException):
            self._reset()
            return
        if px.after_forward is not None:
            px.after_forward(req, status, data)
        if fault is not None and px.on_fault is not None:
            px.on_fault(req, fault)
        if fault == "lose":
            self._reset()
            return
        if fault == "lose500":
            self._error(req, 500, f"{DDB}InternalServerError", "Internal server error", 500)
            return
        self.send_response(status)
        for k, v in headers:
            if k.lower() not in ("content-length", "connection", "transfer-encoding", "date",
                                 "server"):
                self.send_header(k, v)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _error(self, req: Request, status: int, kind: str, message: str,
               lambda_status: int) -> None:
        if req.service == "lambda":
            name = kind.rsplit("#", 1)[-1]
            if status == 400:
                name, status = "TooManyRequestsException", lambda_status
            elif name == "InternalServerError":
                name = "ServiceException"
            body = json.dumps({"Type": "Service" if status >= 500 else "User",
                               "message": message}).encode()
            self.send_response(status)
            self.send_header("x-amzn-ErrorType", name)
            self.send_header("Content-Type", "application/json")
        else:
            body = json.dumps({"__type": kind, "message": message}).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/x-amz-json-1.0")
        self.send_header("x-amzn-RequestId", hashlib.md5(body).hexdigest().upper())
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _reset(self) -> None:
        """Close with a TCP reset: the client sees the connection die, no response."""
        self.close_connection = True
        with contextlib.suppress(OSError):
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER,
                                       struct.pack("ii", 1, 0))
