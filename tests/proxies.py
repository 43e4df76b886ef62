"""A local HTTP proxy in front of moto's server that breaks chosen AWS calls for real:
answers them with an AWS error (access denied), or never answers (a stall). Everything
else is forwarded unchanged. Used to test that a check which cannot run says why, and
that every call is bounded in time."""

from __future__ import annotations

import http.client
import json
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import urlsplit

#: (method, path, headers) -> None (forward), ("deny", action) or ("stall", seconds)
Rule = Callable[[str, str, dict[str, str]], tuple[str, Any] | None]


class BreakingProxy:
    def __init__(self, upstream: str, rule: Rule) -> None:
        self.upstream = urlsplit(upstream)
        self.rule = rule
        self.hits: list[str] = []
        self.closing = threading.Event()
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:
                pass

            def _any(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                headers = {k: v for k, v in self.headers.items()}
                verdict = proxy.rule(self.command, self.path, headers)
                if verdict is not None:
                    kind, arg = verdict
                    proxy.hits.append(f"{kind} {self.command} {self.path}")
                    if kind == "stall":
                        proxy.closing.wait(arg)
                        self.close_connection = True
                        return
                    self._deny(str(arg), headers)
                    return
                conn = http.client.HTTPConnection(proxy.upstream.hostname,
                                                  proxy.upstream.port, timeout=30)
                try:
                    conn.request(self.command, self.path, body=body, headers=headers)
                    resp = conn.getresponse()
                    data = resp.read()
                    self.send_response(resp.status)
                    for k, v in resp.getheaders():
                        if k.lower() not in ("transfer-encoding", "connection",
                                             "content-length"):
                            self.send_header(k, v)
                    self.send_header("Content-Length", str(len(data)))
                    self.end_headers()
                    self.wfile.write(data)
                finally:
                    conn.close()

            def _deny(self, action: str, headers: dict[str, str]) -> None:
                message = (f"User: arn:aws:iam::123456789012:user/ops is not authorized to "
                           f"perform: {action} because no identity-based policy allows the "
                           f"{action} action")
                target = headers.get("X-Amz-Target") or headers.get("x-amz-target")
                if target:  # awsJson protocols (SQS, DynamoDB)
                    body = json.dumps({"__type": "AccessDeniedException",
                                       "message": message}).encode()
                    ctype = "application/x-amz-json-1.0"
                else:  # restJson (Lambda)
                    body = json.dumps({"Type": "User", "Message": message}).encode()
                    ctype = "application/json"
                self.send_response(403 if not target else 400)
                self.send_header("Content-Type", ctype)
                self.send_header("x-amzn-ErrorType", "AccessDeniedException")
                self.send_header("x-amzn-RequestId", "denied-by-test-proxy")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            do_GET = do_POST = do_PUT = do_DELETE = do_HEAD = _any

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> BreakingProxy:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.closing.set()
        self.server.shutdown()
        self.server.server_close()
        time.sleep(0.05)
