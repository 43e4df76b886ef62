"""moto's server on loopback, patched so it behaves like AWS for a stream trigger.

Where moto and AWS differ in ways streamq depends on, :func:`patch_moto` makes moto
behave like AWS:

* moto 5.x, when an event source mapping exists on a table's stream, invokes the
  Lambda on every write (through Docker, absent here) and then empties the
  stream. Real DynamoDB leaves the stream alone and the trigger reads it. The
  patch turns that off, so the stream keeps its records for our own readers (the
  sandbox poller, the tests).
* moto writes a MODIFY stream record for a PutItem or UpdateItem that changes
  nothing. DynamoDB does not: "If you perform a PutItem or UpdateItem operation that
  does not change any data in an item, DynamoDB Streams does not write a stream
  record for that operation" (DynamoDB Developer Guide, "Change data capture for
  DynamoDB Streams", https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/
  Streams.html). The patch drops such records.

Run as ``python -m streamq.sandbox.server [--port N]``: prints ``PORT <n>`` on
stdout once it listens (``--port 0`` picks a free port).
"""

from __future__ import annotations

import argparse
import contextlib
import sys
from typing import Any


def patch_moto() -> None:
    import moto.awslambda.models as lm
    import moto.dynamodb.models.table as dt

    def _no_invoke(self: Any, *args: Any, **kwargs: Any) -> None:
        return None

    lm.LambdaBackend.send_dynamodb_items = _no_invoke  # type: ignore[method-assign,assignment]

    if not getattr(dt.StreamShard.add, "_streamq_patched", False):
        record = dt.StreamShard.add

        def _add_if_changed(self: Any, old: Any, new: Any) -> None:
            # A write that leaves the item exactly as it was writes no stream record
            # (DynamoDB compares values: the number 1 and 1.0 are the same value).
            if old is not None and new is not None and old == new:
                return None
            return record(self, old, new)

        _add_if_changed._streamq_patched = True  # type: ignore[attr-defined]
        dt.StreamShard.add = _add_if_changed  # type: ignore[method-assign]


def make_server(host: str = "127.0.0.1", port: int = 0) -> Any:
    """A threaded werkzeug server running moto's app (not started)."""
    patch_moto()
    import logging

    from moto.moto_server.werkzeug_app import DomainDispatcherApplication, create_backend_app
    from werkzeug.serving import make_server as _make

    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    app = DomainDispatcherApplication(create_backend_app)
    return _make(host, port, app, threaded=True)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    args = parser.parse_args(argv)
    if args.host not in ("127.0.0.1", "localhost", "::1"):
        parser.error("the local endpoint listens on loopback only")
    server = make_server(args.host, args.port)
    sys.stdout.write(f"PORT {server.server_address[1]}\n")
    sys.stdout.flush()
    with contextlib.suppress(KeyboardInterrupt):
        server.serve_forever()


if __name__ == "__main__":
    main()
