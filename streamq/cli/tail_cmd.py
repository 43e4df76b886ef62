"""``streamq tail``: follow the outbox's stream live."""

from __future__ import annotations

import enum
from typing import Annotated

import typer

from ..config import Settings
from .common import outbox_command, value_of
from .queue_cmds import WhereOpt


class TailOutput(str, enum.Enum):
    table = "table"
    jsonl = "jsonl"


def tail_cmd(
    settings: Settings,
    start: Annotated[str, typer.Option(
        "--from", help="latest (only new records), trim-horizon (all the stream holds, up "
        "to 24 h), a time (2026-11-27T10:00:00Z) or how long ago (10m) [default: latest].",
        show_default=False)] = "latest",
    event: Annotated[str | None, typer.Option(
        "--event", help="Only these events: insert, modify, remove (comma-separated).",
        show_default=False)] = None,
    where: WhereOpt = None,
    limit: Annotated[int | None, typer.Option(
        "--limit", "-n", min=1, help="Stop after this many records.",
        show_default=False)] = None,
    duration: Annotated[str | None, typer.Option(
        "--duration", help="Stop after this long (30s, 5m).", show_default=False)] = None,
    output: Annotated[TailOutput | None, typer.Option(
        "--output", "-o", help="table: a line per record (on a terminal); jsonl: a JSON "
        "object per record (when piped) [default: auto].", show_default=False)] = None,
) -> None:
    """Follow the table's stream live: one line per record, and whether the trigger's
    current filter passes it (and which pattern decides).

    Each line: time (UTC), INSERT/MODIFY/REMOVE, the key, the filter's verdict
    ("passes #2", or "DROPPED by #1 PATTERN: why"), and what changed (new image against
    old). Reads every shard, a parent before its children, and picks up new shards.
    The filter is the trigger's, re-read every few seconds. --where holds on the new
    image (the old one for a REMOVE).

    tail is an extra reader of the stream: a shard serves at most two readers at once
    before they are throttled, and the trigger is one. Ctrl-C stops (exit 130).

    Examples:

      streamq tail

      streamq tail --event modify --where 'refired_at?'

      streamq tail --from 10m -o jsonl | jq -c 'select(.filter.passes == false)'

      streamq tail --from trim-horizon --duration 30s --limit 100
    """
    import sys
    import threading

    from .. import render
    from ..aws import Aws
    from ..durations import parse_duration
    from ..errors import ExitCode
    from ..outbox import describe_table, parse_where
    from ..render.tail import TailPrinter
    from ..tail import (
        TailStats,
        TriggerFilter,
        describe_filter,
        describe_start,
        parse_events,
        parse_start,
        tail,
    )

    mode, at = parse_start(start)
    events = parse_events(event)
    conditions = tuple(parse_where(w) for w in where or ())
    seconds = None if duration is None else parse_duration(duration, what="--duration")
    fmt = value_of(output) or ("table" if render.is_tty(sys.stdout) else "jsonl")
    aws = Aws(settings)
    info = describe_table(aws, settings.require_table())

    def started(shards: int, filt: TriggerFilter) -> None:
        # Stated up front, on stderr: tail adds load to the stream the trigger reads.
        render.info(f"tail: following the stream of {info.name} ({shards} shard(s)) "
                    f"{describe_start(mode, at)}, as an extra reader: a shard serves at "
                    "most 2 readers at once and the trigger is one; Ctrl-C stops")
        render.info(f"tail: {describe_filter(filt)}")

    stats = TailStats()
    stop = threading.Event()
    timer = None
    if seconds is not None:
        timer = threading.Timer(seconds, stop.set)
        timer.daemon = True
        timer.start()
    printer = TailPrinter(fmt, info)
    try:
        for rec in tail(aws, info, settings, start=mode, at=at, events=events,
                        where=conditions, stop=stop, stats=stats, on_start=started):
            printer.write(rec)
            if limit is not None and stats.shown >= limit:
                break
    except KeyboardInterrupt:
        stop.set()
        render.info(stats.summary())
        # Ctrl-C is how tail is meant to stop: exit 130 for scripts, and no error line.
        raise SystemExit(int(ExitCode.INTERRUPTED)) from None
    finally:
        stop.set()
        if timer is not None:
            timer.cancel()
    render.info(stats.summary())


def register(app: typer.Typer) -> None:
    app.command("tail")(outbox_command(tail_cmd))
