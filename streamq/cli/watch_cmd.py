"""``streamq watch``: the pipeline at a glance, refreshed."""

from __future__ import annotations

from typing import Annotated

import typer

from ..config import Settings
from .common import TableOrJson, outbox_command, value_of


def watch_cmd(
    settings: Settings,
    interval: Annotated[str, typer.Option(
        "--interval", help="Time between refreshes (at least 1s) [default: 5s].",
        show_default=False)] = "5s",
    count: Annotated[int | None, typer.Option(
        "--count", "-n", min=1, help="Stop after this many refreshes.",
        show_default=False)] = None,
    output: Annotated[TableOrJson | None, typer.Option(
        "--output", "-o", help="table: a live view (on a terminal); json: one JSON line "
        "per refresh (when piped) [default: auto].", show_default=False)] = None,
) -> None:
    """Watch the pipeline live: outbox counts with their history, the oldest record,
    the trigger's state, invocations and errors per minute and the iterator age (when
    CloudWatch has them), the on-failure destination's backlog.

    The counts are those of `streamq stats` (a full count of the table each refresh:
    on a large table, a refresh takes as long as `stats`). Piped, each refresh is one
    JSON line. Ctrl-C stops (exit 130); --count N stops after N refreshes (exit 0).

    Examples:

      streamq watch

      streamq watch --interval 30s

      streamq watch --count 1 -o json | jq .counts
    """
    import time

    from .. import render
    from ..aws import Aws
    from ..durations import parse_duration
    from ..errors import BadInput, ExitCode
    from ..outbox import describe_table
    from ..render.watch import WatchPrinter
    from ..watch import Watcher

    seconds = parse_duration(interval, what="--interval")
    if seconds < 1:
        raise BadInput("--interval must be at least 1s")
    fmt = render.table_or_json(value_of(output))
    aws = Aws(settings, max_attempts=2)
    info = describe_table(aws, settings.require_table())
    watcher = Watcher(aws, settings, info)
    printer = WatchPrinter(fmt)
    done = 0
    try:
        while True:
            started = time.monotonic()
            snap = watcher.snapshot()
            printer.show(snap.to_json(info), list(watcher.history), seconds)
            done += 1
            if count is not None and done >= count:
                break
            time.sleep(max(0.0, seconds - (time.monotonic() - started)))
    except KeyboardInterrupt:
        printer.close()
        # Ctrl-C is how watch is meant to stop: exit 130 for scripts, and no error line.
        raise SystemExit(int(ExitCode.INTERRUPTED)) from None
    finally:
        printer.close()


def register(app: typer.Typer) -> None:
    app.command("watch")(outbox_command(watch_cmd))
