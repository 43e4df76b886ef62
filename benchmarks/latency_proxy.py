"""A loopback TCP proxy that adds a fixed delay to every request.

Bytes from the client are held ``delay_ms`` before they are forwarded upstream (in
order, per connection); replies flow back undelayed. With HTTP keep-alive that adds
``delay_ms`` to every request, as a network round trip to a real AWS endpoint would.

CLI (prints ``PORT <n>`` once listening, then serves until Ctrl-C)::

    python benchmarks/latency_proxy.py --target http://127.0.0.1:5000 --delay-ms 10

Library::

    from benchmarks.latency_proxy import start_proxy
    proxy = start_proxy("http://127.0.0.1:5000", delay_ms=10)
    ... boto3.client("dynamodb", endpoint_url=proxy.url) ...
    proxy.close()
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import sys
import threading
from dataclasses import dataclass, field
from urllib.parse import urlsplit


def _target(url: str) -> tuple[str, int]:
    parts = urlsplit(url if "://" in url else "http://" + url)
    if parts.hostname is None or parts.port is None:
        raise ValueError(f"target must be host:port or http://host:port, got {url!r}")
    return parts.hostname, parts.port


async def _forward(reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                   delay: float) -> None:
    """Copy reader -> writer, each chunk held until ``delay`` after it arrived."""
    loop = asyncio.get_running_loop()
    queue: asyncio.Queue[tuple[float, bytes]] = asyncio.Queue()

    async def receive() -> None:
        try:
            while True:
                data = await reader.read(65536)
                queue.put_nowait((loop.time() + delay, data))
                if not data:
                    return
        except (ConnectionError, OSError):
            queue.put_nowait((loop.time(), b""))

    receiver = asyncio.create_task(receive())
    try:
        while True:
            due, data = await queue.get()
            wait = due - loop.time()
            if wait > 0:
                await asyncio.sleep(wait)
            if not data:
                break
            writer.write(data)
            await writer.drain()
    except (ConnectionError, OSError):
        pass
    finally:
        receiver.cancel()
        with contextlib.suppress(Exception):
            writer.close()


async def _handle(client_r: asyncio.StreamReader, client_w: asyncio.StreamWriter,
                  host: str, port: int, delay: float) -> None:
    try:
        up_r, up_w = await asyncio.open_connection(host, port)
    except OSError:
        client_w.close()
        return
    await asyncio.gather(_forward(client_r, up_w, delay), _forward(up_r, client_w, 0.0),
                         return_exceptions=True)


async def serve(target: str, delay_ms: float, host: str = "127.0.0.1",
                port: int = 0) -> asyncio.base_events.Server:
    up_host, up_port = _target(target)
    delay = max(0.0, delay_ms) / 1000.0

    async def handler(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        # Cancelled on shutdown: end quietly (asyncio's stream callback would log it).
        with contextlib.suppress(asyncio.CancelledError):
            await _handle(r, w, up_host, up_port, delay)

    return await asyncio.start_server(handler, host, port)


@dataclass
class Proxy:
    host: str
    port: int
    _loop: asyncio.AbstractEventLoop = field(repr=False)
    _thread: threading.Thread = field(repr=False)
    _server: asyncio.base_events.Server = field(repr=False)

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def close(self) -> None:
        """Stop listening, drop open connections, stop the thread."""

        async def shutdown() -> None:
            self._server.close()
            tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
            for t in tasks:
                t.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

        if self._loop.is_running():
            fut = asyncio.run_coroutine_threadsafe(shutdown(), self._loop)
            with contextlib.suppress(Exception):
                fut.result(timeout=5)
            self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=5)


def start_proxy(target: str, delay_ms: float, host: str = "127.0.0.1", port: int = 0) -> Proxy:
    """Start the proxy on a background thread; returns once it listens."""
    if host not in ("127.0.0.1", "localhost", "::1"):
        raise ValueError("the latency proxy listens on loopback only")
    loop = asyncio.new_event_loop()
    ready: dict[str, object] = {}
    started = threading.Event()

    def run() -> None:
        asyncio.set_event_loop(loop)
        try:
            server = loop.run_until_complete(serve(target, delay_ms, host, port))
            ready["port"] = server.sockets[0].getsockname()[1]
            ready["server"] = server
        except BaseException as exc:
            ready["error"] = exc
            started.set()
            return
        started.set()
        loop.run_forever()
        server.close()
        with contextlib.suppress(Exception):
            loop.run_until_complete(server.wait_closed())
        loop.close()

    thread = threading.Thread(target=run, name="latency-proxy", daemon=True)
    thread.start()
    started.wait(10)
    if "error" in ready:
        raise RuntimeError(f"latency proxy failed to start: {ready['error']}")
    return Proxy(host, int(ready["port"]), loop, thread,  # type: ignore[call-overload]
                 ready["server"])  # type: ignore[arg-type]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Loopback TCP proxy adding latency.")
    parser.add_argument("--target", required=True, help="upstream URL or host:port")
    parser.add_argument("--delay-ms", type=float, default=10.0,
                        help="delay added to every request (default 10)")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0, help="listen port (0: a free one)")
    args = parser.parse_args(argv)
    if args.host not in ("127.0.0.1", "localhost", "::1"):
        parser.error("the latency proxy listens on loopback only")

    async def run() -> None:
        server = await serve(args.target, args.delay_ms, args.host, args.port)
        sys.stdout.write(f"PORT {server.sockets[0].getsockname()[1]}\n")
        sys.stdout.flush()
        async with server:
            await server.serve_forever()

    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(run())


if __name__ == "__main__":
    main()
