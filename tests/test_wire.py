"""The raw Scan/Query page path (streamq/wire.py) against moto over HTTP: it agrees with
botocore's own parse item for item on every attribute type, and keeps botocore's error
mapping and retries (through a fault-injecting proxy)."""

from __future__ import annotations

import base64
import http.server
import json
import threading
import urllib.error
import urllib.request
import zlib
from collections.abc import Iterator
from typing import Any

import pytest

from streamq import wire
from tests.helpers import CliRunner, batch_put, create_table

# Both parsers, when orjson is installed (the test extra installs it); json always.
LOADERS = ["json", pytest.param("orjson", marks=pytest.mark.skipif(
    wire._orjson is None, reason="orjson not installed"))]


def _items() -> list[dict[str, Any]]:
    big = "9" * 38  # 38 significant digits: beyond float precision
    out = []
    for i in range(40):
        out.append({
            "id": {"S": f"k{i:03d}"},
            "r": {"B": bytes([i, 0, 255, 10]) + b'"B":'},
            "s": {"S": f"ünï©ødé ✓ 日本 \"quoted\" \\ \n{i}"},
            "n": {"N": big if i % 2 else f"-{i}.{i}E-12"},
            "b": {"B": bytes(range(i % 7, 40))},
            "t": {"BOOL": i % 3 == 0},
            "z": {"NULL": True},
            "ss": {"SS": [f"a{i}", "b", "ç"]},
            "ns": {"NS": ["1", "0.5", "-123456789012345678901234567890"]},
            "bs": {"BS": [b"\x00\x01", b"B", bytes([i])]},
            "l": {"L": [{"S": "x"}, {"N": "1"}, {"B": b"\xff"},
                        {"M": {"deep": {"L": [{"BS": [b"q"]}, {"NULL": True}]}}}]},
            "m": {"M": {"B": {"B": b"key named B"}, "e": {"M": {}}, "u": {"S": "ŝ"},
                        "nested": {"M": {"n": {"N": "1e-130"}, "ss": {"SS": ["x"]}}}}},
        })
    return out


def _client(url: str) -> Any:
    import boto3

    return boto3.client("dynamodb", endpoint_url=url, region_name="us-east-1")


def _pages(client: Any, op: str, **kw: Any) -> list[dict[str, Any]]:
    pages = []
    for page in client.get_paginator(op.lower()).paginate(**kw):
        page = dict(page)
        page.pop("ResponseMetadata")
        pages.append(page)
    return pages


@pytest.mark.parametrize("loader", LOADERS)
def test_fast_path_agrees_with_botocore_on_every_type(
        endpoint: str, ddb: Any, monkeypatch: pytest.MonkeyPatch, loader: str) -> None:
    monkeypatch.setenv("STREAMQ_FAST_PAGES", loader)
    assert wire.mode() == loader
    create_table(ddb, "wire", range_key=("r", "B"), stream=False)
    batch_put(ddb, "wire", _items())
    plain, fast = _client(endpoint), _client(endpoint)
    assert wire.install(fast)
    calls = []
    fast.meta.events.register("before-parse.dynamodb.Scan",
                              lambda response_dict, **kw: calls.append(response_dict["body"]))
    for op, kw in (("Scan", {"Limit": 7}),
                   ("Scan", {"Limit": 5, "Segment": 1, "TotalSegments": 2}),
                   ("Query", {"KeyConditionExpression": "id = :k",
                              "ExpressionAttributeValues": {":k": {"S": "k007"}}})):
        want = _pages(plain, op, TableName="wire", **kw)
        got = _pages(fast, op, TableName="wire", **kw)
        assert got == want
        assert len(want) > 1 or op == "Query"
        assert any("LastEvaluatedKey" in p and isinstance(p["LastEvaluatedKey"]["r"]["B"],
                                                          bytes) for p in want) or op == "Query"
    # The hook really ran and botocore's parser saw only "{}" after it.
    assert calls and all(body == b"{}" for body in calls)
    item = next(it for p in _pages(fast, "Scan", TableName="wire") for it in p["Items"])
    assert isinstance(item["bs"]["BS"][0], bytes) and item["n"]["N"] in ("9" * 38, "-0.0E-12")


def test_parse_page_leaves_errors_and_odd_bodies_to_botocore() -> None:
    for status, body, ctype in ((400, b'{"__type":"x#ResourceNotFoundException"}', "json"),
                                (200, b"not json", "json"), (200, b"[1]", "json"),
                                (200, b'{"Items":[]}', "application/cbor")):
        rd = {"status_code": status, "body": body, "headers": {"content-type": ctype}}
        custom: dict[str, Any] = {}
        wire.parse_page(rd, custom)
        assert custom == {} and rd["body"] == body
    rd = {"status_code": 200, "headers": {"content-type": "application/x-amz-json-1.0"},
          "body": json.dumps({"Items": [{"b": {"B": base64.b64encode(b"\x00").decode()}}],
                              "Count": 1}).encode()}
    custom = {}
    wire.parse_page(rd, custom)
    assert custom == {"Items": [{"b": {"B": b"\x00"}}], "Count": 1} and rd["body"] == b"{}"


def test_switch_off(monkeypatch: pytest.MonkeyPatch) -> None:
    import boto3

    monkeypatch.setenv("STREAMQ_FAST_PAGES", "0")
    assert not wire.install(boto3.client("dynamodb", region_name="us-east-1"))


# --------------------------------------------------------------------------- faults


class ScanFaults(http.server.ThreadingHTTPServer):
    """Forwards to moto; the first ``throttle`` Scans get a throttling error, the next
    ``corrupt`` a body whose x-amz-crc32 does not match, then ``deny`` AccessDenied."""

    daemon_threads = True

    def __init__(self, upstream: str, throttle: int = 0, corrupt: int = 0,
                 deny: int = 0) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.upstream, self.throttle, self.corrupt, self.deny = upstream, throttle, corrupt, deny
        self.scans = 0
        self.lock = threading.Lock()

    @property
    def server_url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"


class _Handler(http.server.BaseHTTPRequestHandler):
    server: ScanFaults

    def log_message(self, *args: Any) -> None:
        pass

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length", 0) or 0))
        fault = None
        if self.headers.get("X-Amz-Target", "").endswith(".Scan"):
            with self.server.lock:
                self.server.scans += 1
                for name in ("throttle", "corrupt", "deny"):
                    if getattr(self.server, name) > 0:
                        setattr(self.server, name, getattr(self.server, name) - 1)
                        fault = name
                        break
        if fault == "throttle":
            return self._reply(400, b'{"__type":"com.amazonaws.dynamodb.v20120810#'
                               b'ProvisionedThroughputExceededException","message":"slow"}')
        if fault == "deny":
            return self._reply(400, b'{"__type":"com.amazon.coral.service#AccessDeniedException'
                               b'","message":"User: x is not authorized to perform: '
                               b'dynamodb:Scan on resource: t"}')
        headers = {k: v for k, v in self.headers.items()
                   if k.lower() not in ("host", "content-length", "connection")}
        req = urllib.request.Request(self.server.upstream + self.path, data=body,
                                     headers=headers, method="POST")
        try:
            with urllib.request.urlopen(req, timeout=30) as resp:
                status, data = resp.status, resp.read()
        except urllib.error.HTTPError as exc:  # moto's own errors pass through
            status, data = exc.code, exc.read()
        crc = zlib.crc32(data) & 0xFFFFFFFF
        self._reply(status, data, crc + 1 if fault == "corrupt" else crc)

    def _reply(self, status: int, body: bytes, crc: int | None = None) -> None:
        self.send_response(status)
        self.send_header("Content-Type", "application/x-amz-json-1.0")
        self.send_header("Content-Length", str(len(body)))
        if crc is not None:
            self.send_header("x-amz-crc32", str(crc))
        self.end_headers()
        self.wfile.write(body)


@pytest.fixture()
def faults(endpoint: str) -> Iterator[ScanFaults]:
    server = ScanFaults(endpoint)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()


def test_throttling_and_bad_checksums_are_retried_errors_still_map(
        endpoint: str, ddb: Any, faults: ScanFaults, cli: CliRunner) -> None:
    create_table(ddb, "outbox", stream=False)
    batch_put(ddb, "outbox", [{"id": {"S": f"m{i}"}, "last_error": {"S": "550"}}
                              for i in range(30)])
    faults.throttle, faults.corrupt = 1, 1
    res = cli("--table", "outbox", "--endpoint-url", faults.server_url, "list", "-o", "ids",
              "--segments", "1")
    assert res.code == 0, res.err
    assert sorted(res.out.split()) == sorted(f"m{i}" for i in range(30))
    assert faults.scans == 3  # one throttled, one bad checksum, then the page
    faults.deny = 1
    res = cli("--table", "outbox", "--endpoint-url", faults.server_url, "list", "-o", "ids")
    assert res.code == 1
    assert "access denied: dynamodb:Scan" in res.err and "Traceback" not in res.err
    res = cli("--table", "outbox", "--endpoint-url", faults.server_url, "stats")
    assert res.code == 0
    fast = _client(faults.server_url)
    wire.install(fast)
    from botocore.exceptions import ClientError

    with pytest.raises(ClientError) as err:
        fast.scan(TableName="missing")
    assert err.value.response["Error"]["Code"] == "ResourceNotFoundException"
