"""``streamq list``, ``show`` and ``stats``: the visible queue."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Annotated

import typer

from ..config import Settings
from ..durations import parse_duration
from ..errors import BadInput

if TYPE_CHECKING:
    from ..outbox import Record, Selection, TableInfo

from .common import Output, SortOrder, TableOrJson, outbox_command, value_of

STATUS_CHOICES = ("failed", "stuck", "pending", "due", "waiting", "dead", "all")
FILTERS = "Selection"


def _statuses(values: list[str] | None) -> tuple[str, ...]:
    from ..outbox import DEFAULT_STATUSES, SELECTABLE, STATUSES

    if not values:
        return DEFAULT_STATUSES
    out: list[str] = []
    for v in values:
        for part in v.split(","):
            part = part.strip()
            if part == "all":
                return STATUSES
            if part not in SELECTABLE:
                raise BadInput(f"invalid --status {part!r}: use {', '.join(SELECTABLE)} or all")
            if part not in out:
                out.append(part)
    return tuple(out)


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
SegmentOpt = Annotated[str | None, typer.Option(
    "--segment", help="Scan only segment I of N (I/N, from 0), to split a scan across machines.",
    rich_help_panel=FILTERS, show_default=False)]
IndexOpt = Annotated[str | None, typer.Option(
    "--index", help="Read this GSI instead of the table (detected when one fits).",
    rich_help_panel=FILTERS, show_default=False)]


def build_selection(status: list[str] | None, older_than: str | None, where: list[str] | None,
                    limit: int | None = None, segments: int | None = None,
                    segment: str | None = None, index: str | None = None,
                    keys_only: bool = False) -> Selection:
    """Parse the shared selection flags (also used by ``refire``)."""
    from ..outbox import Selection, parse_segment, parse_where

    if segment is not None and segments is not None:
        raise BadInput("--segment I/N scans one slice; it does not combine with --segments")

    return Selection(
        statuses=_statuses(status),
        older_than=None if older_than is None else parse_duration(older_than,
                                                                  what="--older-than"),
        where=tuple(parse_where(w) for w in where or ()),
        limit=limit,
        index=index,
        segments=segments,
        segment=None if segment is None else parse_segment(segment),
        keys_only=keys_only,
    )


def _debug_plan(settings: Settings, info: TableInfo, sel: Selection) -> None:
    from .. import render
    from ..outbox import plan_scan
    from ..retry import describe

    if settings.debug:
        render.debug(f"access path: {plan_scan(info, settings, sel).describe()}")
        render.debug(f"retry policy: {describe(settings.retry_policy)}; last attempt from "
                     f"{settings.last_attempt_attr} (or {settings.refired_attr} when later, "
                     f"{settings.created_attr} when both are absent)")


class FallbackCount:
    """Counts failed records whose backoff counts from the created time (no last-attempt
    attribute), to say so under --debug."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.count = 0

    def __call__(self, rec: Record) -> None:
        if rec.retry is not None and rec.last_attempt_from == self.settings.created_attr:
            self.count += 1

    def report(self) -> None:
        from .. import render

        if self.settings.debug and self.count:
            s = self.settings
            render.debug(f"{self.count} failed record(s) have no {s.last_attempt_attr}: their "
                         f"backoff counts from {s.created_attr}")


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
    """
    from .. import render
    from ..aws import Aws
    from ..outbox import describe_table, select, sort_records

    sel = build_selection(status, older_than, where, None if sort else limit, segments,
                          segment, index, keys_only=(value_of(output) == "ids" or count))
    fmt = value_of(output) or render.default_output()
    aws = Aws(settings, max_pool_connections=max(16, sel.segments or 8))
    info = describe_table(aws, settings.require_table())
    _debug_plan(settings, info, sel)
    fallbacks = FallbackCount(settings)
    sel.observe = fallbacks
    started = time.monotonic()
    streams = not count and fmt != "table"
    with render.progress("scanning", render.progress_allowed(streams)) as prog:
        records = select(aws, info, settings, sel, on_page=prog.advance)
        if sort:
            records = iter(sort_records(records, str(sort.value), limit))
        if count:
            n = sum(1 for _ in records)
            fallbacks.report()
            typer.echo(n)
            return
        footer = {"text": ""}
        sink = render.open_sink(fmt, info, footer=footer)
        for rec in records:
            sink.write(rec)
    footer["text"] = f"scanned {prog.count:,} items in {time.monotonic() - started:.1f}s"
    fallbacks.report()
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
    from ..aws import Aws
    from ..outbox import Classifier, describe_table, get_item, parse_key_text

    aws = Aws(settings)
    info = describe_table(aws, settings.require_table())
    item = get_item(aws, info, parse_key_text(key, info))
    doc = Classifier(settings, info).classify(item).to_json(info)
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
) -> None:
    """Count the queue by status, with the oldest record and an age histogram; failed
    records also by retry state (due, waiting, dead), with when the next one is due.

    Examples:

      streamq stats

      streamq stats --where tenant=acme -o json
    """
    from .. import render
    from ..aws import Aws
    from ..outbox import Stats, describe_table, select

    sel = build_selection(["all"], None, where, None, segments, segment, index, keys_only=True)
    sel.retry_counts = True  # stats counts due, waiting and dead
    aws = Aws(settings, max_pool_connections=max(16, sel.segments or 8))
    info = describe_table(aws, settings.require_table())
    _debug_plan(settings, info, sel)
    fallbacks = FallbackCount(settings)
    sel.observe = fallbacks
    stats = Stats()
    with render.progress("counting") as prog:
        for rec in select(aws, info, settings, sel, on_page=prog.advance):
            stats.add(rec)
    fallbacks.report()
    doc = stats.to_json(info)
    if render.table_or_json(value_of(output)) == "json":
        render.print_json(doc)
    else:
        render.show_stats(doc)


def register(app: typer.Typer) -> None:
    app.command("list")(outbox_command(list_cmd))
    app.command("show")(outbox_command(show_cmd))
    app.command("stats")(outbox_command(stats_cmd))
