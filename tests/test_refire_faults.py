"""Refire through a fault-injecting HTTP proxy in front of moto's server: throttling is
retried (within --rate), and a write whose response is lost is not fired twice."""

from __future__ import annotations

import http.server
import threading
import time
import urllib.request
from collections.abc import Iterator
from typing import Any

import pytest

from tests.helpers import batch_put, create_table, create_trigger, iso_ago
from tests.test_refire import TABLE, count_of, modify_counts


class FaultProxy(http.server.ThreadingHTTPServer):
    """Forwards to moto. The first ``throttle`` UpdateItems are answered with a DynamoDB
    throttling error without reaching moto; the next ``lose`` are applied by moto but
    answered with HTTP 500 (the response is "lost")."""

    daemon_threads = True

    def __init__(self, upstream: str, throttle: int = 0, lose: int = 0,
                 deny: int = 0) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.upstream = upstream
        self.throttle, self.lose, self.deny = throttle, lose, deny
        self.update_calls = 0
        self.lock = threading.Lock()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"


class _Handler(http.server.BaseHTTPRequestHandler):
    server: FaultProxy

    def log_message(self, *args: Any) -> None:
        pass

    def do_GET(self) -> None:
        self._forward("GET")

    def do_POST(self) -> None:
        self._forward("POST")

    def _forward(self, method: str) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length", 0) or 0)) or None
        target = self.headers.get("X-Amz-Target", "")
        fault = None
        if target.endswith(".UpdateItem"):
            with self.server.lock:
                self.server.update_calls += 1
                if self.server.throttle > 0:
                    self.server.throttle -= 1
                    fault = "throttle"
                elif self.server.lose > 0:
                    self.server.lose -= 1
                    fault = "lose"
                elif self.server.deny > 0:
                    self.server.deny -= 1
                    fault = "deny"
        if fault == "deny":
            self._reply(400, b'{"__type":"com.amazon.coral.service#ExpiredTokenException",'
                        b'"message":"The security token included in the request is expired"}')
            return
        if fault == "throttle":
            self._reply(400, b'{"__type":"com.amazonaws.dynamodb.v20120810#'
                        b'ProvisionedThroughputExceededException","message":"slow down"}')
            return
        headers = {k: v for k, v in self.headers.items()
                   if k.lower() not in ("host", "content-length", "connection")}
        req = urllib.request.Request(self.server.upstream + self.path, data=body,
                                     headers=headers, method=method)
        try:
            with urllib.request.urlopen(req, timeout=30) as resp:
                status, data = resp.status, resp.read()
        except urllib.error.HTTPError as exc:
            status, data = exc.code, exc.read()
        if fault == "lose":
            self._reply(500, b'{"__type":"InternalServerError","message":"lost"}')
            return
        self._reply(status, data)

    def _reply(self, status: int, data: bytes) -> None:
        self.send_response(status)
        self.send_header("Content-Type", "application/x-amz-json-1.0")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


@pytest.fixture()
def faults(endpoint: str) -> Iterator[Any]:
    servers: list[FaultProxy] = []

    def make(**kw: int) -> FaultProxy:
        srv = FaultProxy(endpoint, **kw)
        threading.Thread(target=srv.serve_forever, daemon=True).start()
        servers.append(srv)
        return srv

    yield make
    for srv in servers:
        srv.shutdown()
        srv.server_close()


def _seed(ddb: Any, endpoint: str, n: int) -> list[str]:
    create_table(ddb, TABLE)
    batch_put(ddb, TABLE, [{"id": {"S": f"m{i}"}, "created_at": {"S": iso_ago(3600)},
                            "last_error": {"S": "429"}} for i in range(n)])
    create_trigger(endpoint, TABLE)
    return [f"m{i}" for i in range(n)]


def test_throttling_is_retried_within_the_rate(ddb, endpoint, cli, faults) -> None:
    keys = _seed(ddb, endpoint, 5)
    proxy = faults(throttle=10)
    args = [a for k in keys for a in ("--id", k)]
    start = time.monotonic()
    res = cli("refire", "-t", TABLE, "--endpoint-url", proxy.url, *args, "--yes",
              "--rate", "40", "--concurrency", "8", "-o", "jsonl")
    elapsed = time.monotonic() - start
    assert res.code == 0, res.err
    assert {r["outcome"] for r in res.jsonl()} == {"refired"}
    assert proxy.update_calls == 15  # 10 throttled attempts + 5 that went through
    assert "10 retried" in res.err
    assert elapsed >= 14 / 40  # every attempt, retries included, took a token
    assert all(count_of(ddb, k) == 1 for k in keys)


def test_lost_response_is_not_fired_twice(ddb, endpoint, cli, faults) -> None:
    keys = _seed(ddb, endpoint, 4)
    proxy = faults(lose=4)  # every first write is applied, its answer lost
    before = modify_counts(endpoint)
    args = [a for k in keys for a in ("--id", k)]
    res = cli("refire", "-t", TABLE, "--endpoint-url", proxy.url, *args, "--yes",
              "--rate", "0", "-o", "jsonl")
    assert res.code == 0, res.err
    assert {r["outcome"] for r in res.jsonl()} == {"refired"}
    assert proxy.update_calls == 8  # each retried once
    assert all(count_of(ddb, k) == 1 for k in keys)
    assert dict(modify_counts(endpoint) - before) == dict.fromkeys(keys, 1)


def test_persistent_errors_end_failed_with_exit_3(ddb, endpoint, cli, faults) -> None:
    keys = _seed(ddb, endpoint, 1)
    proxy = faults(throttle=1000)
    res = cli("refire", "-t", TABLE, "--endpoint-url", proxy.url, "--id", keys[0], "--yes",
              "--rate", "0", "-o", "jsonl")
    assert res.code == 3, res.err
    [r] = res.jsonl()
    assert r["outcome"] == "failed" and "gave up after 8 attempts" in r["error"]
    assert "ProvisionedThroughputExceeded" in r["error"]
    assert count_of(ddb, keys[0]) == 0


def test_expired_credentials_stop_the_run(ddb, endpoint, cli, faults, tmp_path) -> None:
    keys = _seed(ddb, endpoint, 30)
    proxy = faults(deny=1000)
    path = tmp_path / "run.jsonl"
    args = [a for k in keys for a in ("--id", k)]
    res = cli("refire", "-t", TABLE, "--endpoint-url", proxy.url, *args, "--yes",
              "--rate", "0", "--concurrency", "2", "--journal", str(path))
    assert res.code == 1, res.err
    assert "ExpiredToken" in res.err and "not reached" in res.err and "--resume" in res.err
    assert proxy.update_calls <= 4  # stopped at once, not 30 failures
    # Credentials fixed: the resumed run refires everything, once.
    res = cli("refire", "-t", TABLE, "--resume", str(path), "--yes", "--rate", "0")
    assert res.code == 0, res.err
    assert all(count_of(ddb, k) == 1 for k in keys)
