"""``streamq list``, ``show`` and ``stats``: the visible queue."""

from __future__ import annotations

import sys
import time
from typing import Annotated

import typer

from ..config import Settings
from .common import Output, SortOrder, TableOrJson, bulk_reading, outbox_command, value_of

STATUS_CHOICES = ("failed", "stuck", "pending", "due", "waiting", "dead", "all")
FILTERS = "Selection"


StatusOpt = Annotated[list[str] | None, typer.Option(
    "--status", "-s", help="failed, stuck, pending or all; or a failed record's retry state: "
    "due (its backoff has passed), waiting, dead (max attempts reached); repeatable or "
    "comma-separated [default: failed,stuck].", rich_help_panel=FILTERS, show_default=False,
    autocompletion=lambda: list(STATUS_CHOICES))]
#: refire's --status: no default (with no selection flag, refire selects nothing).
RefireStatusOpt = Annotated[list[str] | None, typer.Option(
    "--status", "-s", help="failed, stuck, pending or all; or a failed record's retry state: "
    "due, waiting, dead; repeatable or comma-separated. No default: without a selection "
    "flag nothing is refired.", rich_help_panel=FILTERS,
    show_default=False, autocompletion=lambda: list(STATUS_CHOICES))]
OlderOpt = Annotated[str | None, typer.Option(
    "--older-than", help="Only records at least this old (90s, 15m, 1h, 2d).",
    rich_help_panel=FILTERS, show_default=False)]
WhereOpt = Annotated[list[str] | None, typer.Option(
    "--where", "-w", help="Condition on an attribute, repeatable (AND): NAME=V, NAME!=V, "
    "NAME>=N, NAME<N, NAME~TEXT (contains), NAME? (exists), NAME!? (absent).",
    rich_help_panel=FILTERS, show_default=False)]
SegmentsOpt = Annotated[int | None, typer.Option(
    "--segments", min=1, max=1000, help="Parallel scan segments [default: 1 per MiB, up to 8].",
    rich_help_panel=FILTERS, show_default=False)]
ProcessesOpt = Annotated[int | None, typer.Option(
    "--processes", min=1, max=64,
    help="Processes sharing the segments, for when one core is the limit (1: this one only) "
    "[default: 1 per core, up to 4, for a table of 128 MiB or more].",
    rich_help_panel=FILTERS, show_default=False)]
SegmentOpt = Annotated[str | None, typer.Option(
    "--segment", help="Scan only segment I of N (I/N, from 0), to split a scan across machines.",
    rich_help_panel=FILTERS, show_default=False)]
IndexOpt = Annotated[str | None, typer.Option(
    "--index", help="Read this GSI instead of the table (detected when one fits).",
    rich_help_panel=FILTERS, show_default=False)]


def list_cmd(
    settings: Settings,
    status: StatusOpt = None,
    older_than: OlderOpt = None,
    where: WhereOpt = None,
    limit: Annotated[int | None, typer.Option("--limit", "-n", min=1,
                                              help="Stop after this many records.")] = None,
    sort: Annotated[SortOrder | None, typer.Option(
        "--sort",
        help="age: youngest first; -age: oldest first (reads the whole selection first).")
    ] = None,
    output: Annotated[Output | None, typer.Option(
        "--output", "-o",
        help="table on a terminal, jsonl when piped [default: auto].", show_default=False)
    ] = None,
    count: Annotated[bool, typer.Option("--count", help="Print only the number of records.")
                     ] = False,
    segments: SegmentsOpt = None,
    segment: SegmentOpt = None,
    index: IndexOpt = None,
    processes: ProcessesOpt = None,
) -> None:
    """List stuck and failed records: the part of the queue that needs you.

    failed: the error attribute is present and non-empty. stuck: no error, older
    than --stuck-after (or no readable created time). pending: younger. A failed
    record is also due (its backoff since the last attempt has passed), waiting, or
    dead (--max-attempts reached); the DUE column says when it is due.

    The table fits the terminal's width (COLUMNS when piped): KEY stays whole (up to
    64 characters, then head…tail); LAST ERROR is shortened first, then REFIRES,
    ATTEMPTS, DUE and LAST ERROR are left out, in that order (an empty column goes
    first), and named under the table. Piped without -o: JSON lines.

    Examples:

      streamq list --table mail_outbox

      streamq list --status failed --older-than 1h --where 'last_error~429'

      streamq list -o ids | streamq refire --ids-from - --yes

      streamq list --where 'tenant=acme' --where 'attempts>=3' -o csv > stuck.csv

      streamq list --status dead --backoff base=30s --max-attempts 5

      streamq list -o ids --segments 8 --processes 2 > stuck.txt
    """
    from .. import render
    from ..api import Outbox

    fmt = value_of(output) or render.default_output()
    outbox = Outbox.from_settings(settings)
    started = time.monotonic()
    streams = not count and fmt != "table"
    counted: int | None = None
    with render.progress("scanning", render.progress_allowed(streams)) as prog, \
            bulk_reading():
        if sort is None and limit is None and (count or fmt in ("ids", "jsonl")):
            # The whole selection, streamed: the scan may be spread over processes.
            if count:
                counted = outbox.count(status, older_than, where, segments=segments,
                                       segment=segment, index=index, on_page=prog.advance,
                                       processes=processes)
            else:
                outbox._write_lines(fmt, sys.stdout, render.open_sink, status, older_than,
                                    where, segments=segments, segment=segment, index=index,
                                    on_page=prog.advance, processes=processes)
                return
        else:
            records = outbox.records(status, older_than, where, limit,
                                     sort=None if sort is None else sort.value,  # type: ignore[arg-type]
                                     keys_only=(value_of(output) == "ids" or count),
                                     segments=segments, segment=segment, index=index,
                                     on_page=prog.advance)
            if count:
                counted = sum(1 for _ in records)
            else:
                footer = {"text": ""}
                sink = render.open_sink(fmt, records.key_names, footer=footer)
                for rec in records:
                    sink.write(rec)
    if counted is not None:
        # After the progress line is gone: printed under it, the number would stay glued
        # to the spinner's last frame on the terminal.
        typer.echo(counted)
        return
    footer["text"] = f"scanned {prog.count:,} items in {time.monotonic() - started:.1f}s"
    sink.close()


def show_cmd(
    settings: Settings,
    key: Annotated[str, typer.Argument(
        help="The record's key: the value for a simple key, JSON for a composite key "
        "(as `list -o ids` prints it).", show_default=False)],
    output: Annotated[TableOrJson | None, typer.Option(
        "--output", "-o",
        help="table on a terminal, json when piped [default: auto].", show_default=False)
    ] = None,
) -> None:
    """Show one record, whole, with its derived status and age.

    Examples:

      streamq show msg-000042

      streamq show '{"tenant": "acme", "seq": 17}' -o json
    """
    from .. import render
    from ..api import Outbox

    doc = Outbox.from_settings(settings).show(key).to_json()
    if render.table_or_json(value_of(output)) == "json":
        render.print_json(doc)
    else:
        render.show_record(doc)


def stats_cmd(
    settings: Settings,
    where: WhereOpt = None,
    output: Annotated[TableOrJson | None, typer.Option(
        "--output", "-o",
        help="table on a terminal, json when piped [default: auto].", show_default=False)
    ] = None,
    segments: SegmentsOpt = None,
    segment: SegmentOpt = None,
    index: IndexOpt = None,
    processes: ProcessesOpt = None,
) -> None:
    """Count the queue by status, with the oldest record and an age histogram; failed
    records also by retry state (due, waiting, dead), with when the next one is due.

    Examples:

      streamq stats

      streamq stats --where tenant=acme -o json
    """
    from .. import render
    from ..api import Outbox

    outbox = Outbox.from_settings(settings)
    with render.progress("counting") as prog, bulk_reading():
        doc = outbox.stats(where, segments=segments, segment=segment, index=index,
                           on_page=prog.advance, processes=processes).to_json()
    if render.table_or_json(value_of(output)) == "json":
        render.print_json(doc)
    else:
        render.show_stats(doc)


def register(app: typer.Typer) -> None:
    app.command("list")(outbox_command(list_cmd))
    app.command("show")(outbox_command(show_cmd))
    app.command("stats")(outbox_command(stats_cmd))
