"""``streamq refire``: touch records so the trigger runs the Lambda on them again."""

from __future__ import annotations

import contextlib
import enum
import signal
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, Annotated, Any

import typer

from ..config import Settings
from ..durations import parse_duration
from ..errors import BadInput, Refused
from .common import outbox_command
from .queue_cmds import OlderOpt, RefireStatusOpt, WhereOpt

if TYPE_CHECKING:
    from ..api import RefirePlan

SELECT = "Selection"
SAFETY = "Safety"
SPEED = "Throughput"

#: Kept in step with streamq.refire (not imported: the CLI starts without the library).
DEFAULT_RATE = 10.0
DEFAULT_CONCURRENCY = 16


class OnlyIf(str, enum.Enum):
    failed = "failed"
    stuck = "stuck"
    due = "due"
    dead = "dead"
    selected = "selected"
    any = "any"


class RefireOutput(str, enum.Enum):
    summary = "summary"
    json = "json"
    jsonl = "jsonl"


#: --ids-from reads at most this much (about 5 million ids, or 250,000 jsonl records).
MAX_IDS_BYTES = 256 * 1024 * 1024


def _read_id_lines(source: str) -> list[str]:
    """The lines of FILE or stdin (``-``): UTF-8 checked the same way for both."""
    from ..inputs import read_input

    return read_input(source, what=f"--ids-from {source}", max_bytes=MAX_IDS_BYTES).split("\n")


def _stdin_is_tty() -> bool:
    from .. import render

    return render.is_tty(sys.stdin) and render.is_tty(sys.stderr)


def refire_cmd(
    settings: Settings,
    ids: Annotated[list[str] | None, typer.Option(
        "--id", help="A record's key, as `list -o ids` prints it (JSON for a composite key); "
        "repeatable.", rich_help_panel=SELECT, show_default=False)] = None,
    ids_from: Annotated[str | None, typer.Option(
        "--ids-from", help="Read keys from FILE, or - for stdin: `list -o ids` lines, JSON "
        "key objects or `list -o jsonl` records.", rich_help_panel=SELECT,
        show_default=False)] = None,
    due: Annotated[bool, typer.Option(
        "--due", help="The failed records whose backoff has passed (not dead): --status due, "
        "each write re-checking that the record is still due (--only-if due). See --backoff "
        "and --max-attempts.", rich_help_panel=SELECT)] = False,
    status: RefireStatusOpt = None,
    older_than: OlderOpt = None,
    where: WhereOpt = None,
    limit: Annotated[int | None, typer.Option(
        "--limit", "-n", min=1, help="With filters: refire at most this many records.",
        rich_help_panel=SELECT, show_default=False)] = None,
    every: Annotated[str | None, typer.Option(
        "--every", help="With --due: run rounds at this interval (e.g. 5m) until stopped: "
        "Ctrl-C (exit 130) or SIGTERM (exit 0) end it between rounds (a round in progress "
        "stops as a refire does); one journal per round in --journal DIR; one summary line "
        "per round on stderr (-o jsonl: one JSON line per round on stdout).",
        rich_help_panel=SELECT, show_default=False)] = None,
    only_if: Annotated[OnlyIf | None, typer.Option(
        "--only-if", help="Condition re-checked atomically in each write: failed (error still "
        "set), stuck (still no error, same created time), due (still failed with the same "
        "attempts, last attempt and refires as read: no other run fired it meanwhile), dead "
        "(same attempts), selected (each record keeps the status it was selected with), any "
        "(it still exists) [default: any for ids, selected for filters].",
        rich_help_panel=SAFETY, show_default=False)] = None,
    rate: Annotated[float, typer.Option(
        "--rate", min=0, help="Writes per second, retries included; 0 = unlimited. Each "
        "refire makes the Lambda call the downstream API again, and that API's rate limit "
        "is often what failed the records: the default of 10/s stays under typical "
        "per-account API limits.", rich_help_panel=SPEED)] = DEFAULT_RATE,
    concurrency: Annotated[int, typer.Option(
        "--concurrency", min=1, max=256, help="Requests in flight (16 keeps 10/s and more "
        "flowing through 10-100 ms of latency).", rich_help_panel=SPEED)
    ] = DEFAULT_CONCURRENCY,
    deadline: Annotated[str, typer.Option(
        "--deadline", help="Give a record up (failed; --resume retries it) once this long "
        "has passed since its first attempt, retries included (90s, 2m). Each attempt "
        "also has its own timeouts (connect 3.1s, read 10s).", rich_help_panel=SPEED)
    ] = "60s",
    dry_run: Annotated[bool, typer.Option(
        "--dry-run", help="Print the plan (and the pre-flight verdict) and write nothing.",
        rich_help_panel=SAFETY)] = False,
    yes: Annotated[bool, typer.Option(
        "--yes", "-y", help="Do not ask; required when stdin is not a terminal.",
        rich_help_panel=SAFETY)] = False,
    exclusive: Annotated[bool, typer.Option(
        "--exclusive", help="Refuse (exit 5) while another refire on the same table runs on "
        "this machine, instead of warning.", rich_help_panel=SAFETY)] = False,
    force: Annotated[bool, typer.Option(
        "--force", help="Go ahead although the pre-flight refuses (no stream, no trigger, "
        "a filter that drops the refire record).", rich_help_panel=SAFETY)] = False,
    uuid: Annotated[str | None, typer.Option(
        "--uuid", help="The trigger's event source mapping UUID, when the stream has several.",
        rich_help_panel=SAFETY, show_default=False)] = None,
    journal: Annotated[Path | None, typer.Option(
        "--journal", help="Record the plan and every outcome in FILE (JSON lines) as they "
        "happen. With --every: a directory, one <run token>.jsonl per round [default: "
        "$XDG_STATE_HOME/streamq/rounds].", rich_help_panel=SAFETY, show_default=False)
    ] = None,
    resume: Annotated[Path | None, typer.Option(
        "--resume", help="Continue the run journaled in FILE: same run token, only the ids "
        "not done yet; appends to FILE.", rich_help_panel=SAFETY, show_default=False)] = None,
    output: Annotated[RefireOutput | None, typer.Option(
        "--output", "-o", help="summary (stderr only), json or jsonl: one result per id "
        "on stdout [default: summary].", show_default=False)] = None,
) -> None:
    """Refire records: touch them (conditional UpdateItem) so a MODIFY record flows
    through the stream and the trigger runs the Lambda on them again.

    Select by --id / --ids-from, or by the filters of `list` (--status, --older-than,
    --where), or --due (the failed records whose backoff since their last attempt
    has passed, never the dead ones); with none, nothing is refired. Each write
    only succeeds if the record still exists (a missing id is never created) and was
    not already refired in this run; --only-if re-checks its status in the same write.
    Before any write the pre-flight checks the table's stream, the trigger and its
    state, and that the trigger's FilterCriteria pass the MODIFY record; --force
    overrides.

    Outcomes: refired, missing, skipped (--only-if no longer holds), failed, unknown
    (an attempt's answer was lost and the item was deleted before the retry). A run
    fires a record at most once, with its --resume runs; a second run on the same
    table is warned about (--exclusive refuses). Exit 0 when every id was refired or
    skipped, 3 if any was missing, failed or unknown, 5 when refused (pre-flight, no
    --yes without a terminal, --exclusive), 130 on Ctrl-C or SIGTERM (a second Ctrl-C
    stops waiting for the writes in flight).

    For schedulers: --due --every 5m runs rounds until stopped (SIGTERM: exit 0;
    Ctrl-C: 130), one journal per round and one summary line per round; an AWS
    error fails its round, not the loop.

    Examples:

      streamq refire --id msg-000042 --dry-run

      streamq list --status failed -o ids | streamq refire --ids-from - --yes

      streamq refire --status failed --where 'last_error~429' --rate 5 --yes

      streamq refire --due --yes                     # from cron: what is due now

      streamq refire --due --every 5m --yes --journal /var/lib/streamq/rounds

      streamq refire --status dead --where 'last_error~550' --dry-run

      streamq refire --id '{"tenant": "acme", "seq": 17}' --only-if failed --yes

      streamq refire --ids-from ids.txt --journal run.jsonl --yes -o jsonl

      streamq refire --resume run.jsonl --yes
    """
    from .. import refire as lib
    from .. import render
    from ..render import refire as view

    has_ids = bool(ids) or ids_from is not None
    if due and status:
        raise BadInput("--due selects --status due: drop --status")
    if every is not None:
        from .schedule_cmd import every_cmd

        every_cmd(settings, every=every, due=due, ids=has_ids, resume=resume, dry_run=dry_run,
                  only_if=only_if.value if only_if is not None else None,
                  output=output.value if output is not None else None,
                  older_than=older_than, where=where, limit=limit, rate=rate,
                  concurrency=concurrency, yes=yes, force=force, uuid=uuid, journal=journal)
        return
    if due:
        status = ["due"]
    has_filters = bool(status or older_than or where or limit)
    mode = only_if.value if only_if is not None else ("due" if due else None)
    lib.check_selection(ids=has_ids, filters=has_filters, resume=resume, journal=journal,
                        only_if=mode)
    fmt = output.value if output is not None else "summary"
    deadline_s = parse_duration(deadline, what="--deadline")
    if deadline_s <= 0:
        raise BadInput("--deadline must be more than 0s")
    id_lines = _read_id_lines(ids_from) if ids_from is not None else None

    from ..api import Outbox

    # The selection flags are parsed by the library once the table is described (errors
    # keep their order); the writes' client is made while the pre-flight's requests are
    # in flight.
    plan = Outbox.from_settings(settings).plan_refire(
        ids or None, id_lines=id_lines, status=status or None, older_than=older_than or None,
        where=where or None, limit=limit, resume=resume, journal=journal,
        only_if=mode,  # type: ignore[arg-type]
        uuid=uuid, rate=rate, concurrency=concurrency, deadline=deadline_s, dry_run=dry_run,
        force=force, progress=render.progress)
    refusal = plan.refusal()
    if dry_run:
        if fmt in ("json", "jsonl"):
            view.print_plan_json(plan.to_json(), jsonl=fmt == "jsonl")
        else:
            view.print_plan(plan.to_json(), sys.stdout)
        for w in plan.warnings:
            render.warn(w)
        if refusal is not None:
            raise refusal
        for p in plan.problems:
            render.warn(f"{p} (--force given)")
        _overlap(plan, plan.others_running(), exclusive)
        return
    if refusal is not None:
        view.print_plan(plan.to_json())
        raise refusal
    for w in plan.warnings:
        render.warn(w)
    for p in plan.problems:
        render.warn(f"{p} (going ahead: --force)")
    if not plan.records:
        render.info("nothing to refire" + (f" ({plan.already_done} already done)"
                                           if plan.already_done else ""))
        view.ResultSink(fmt).close()
        return
    view.print_plan(plan.to_json())
    with plan.lock() as others:
        _overlap(plan, others, exclusive)
        if not yes:
            if not _stdin_is_tty():
                raise Refused(f"refusing to refire {plan.records} record(s) without "
                              "--yes: stdin is not a terminal, so nobody can confirm (review "
                              "with --dry-run)")
            state_text = (f"trigger {plan.trigger_function} is {plan.trigger_state}"
                          if plan.trigger_function is not None else "no trigger")
            if not view.confirm(f"Refire {plan.records} record(s) in {plan.table} "
                                f"({state_text})?"):
                raise Refused("not confirmed: nothing was written")
        _run(plan, fmt)


def _overlap(plan: RefirePlan, others: list[dict[str, Any]], exclusive: bool) -> None:
    """Other refires on the same table on this machine: a warning, or with --exclusive
    a refusal (exit 5)."""
    from .. import render

    if not others:
        return
    text = plan.overlap_message(others)
    if exclusive:
        raise Refused(f"refusing to refire: {text}; --exclusive does not overlap another run "
                      "(wait for it to end, or drop --exclusive)")
    render.warn(f"{text}; --exclusive refuses instead")


@dataclass
class _Stops:
    stop: threading.Event = field(default_factory=threading.Event)  # no new write starts
    abandon: threading.Event = field(default_factory=threading.Event)  # stop waiting too
    interrupted: threading.Event = field(default_factory=threading.Event)  # by the user
    signals: int = 0
    first: int | None = None  # the first signal's number (SIGINT or SIGTERM)


@contextlib.contextmanager
def _ctrl_c_stops() -> Iterator[_Stops]:
    """The first Ctrl-C (or SIGTERM) stops the run: no new write starts, the writes in
    flight finish (each within its timeouts). The second stops waiting for them: their
    outcomes are unknown and ``--resume`` settles them. A third raises KeyboardInterrupt
    wherever the run is. Off the main thread: no handler."""
    from ..render import waiting

    stops = _Stops()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stops.signals += 1
        if stops.first is None:
            stops.first = signum
        if stops.signals >= 3:
            raise KeyboardInterrupt
        stops.interrupted.set()
        stops.stop.set()
        if stops.signals == 2:
            stops.abandon.set()  # the summary says how many were abandoned
        else:
            what = "Ctrl-C" if signum == signal.SIGINT else "SIGTERM"
            waiting.notice(f"stopping ({what}): no new write starts; the writes in flight "
                           "finish first (Ctrl-C again to stop waiting for them)")

    old: dict[signal.Signals, Any] = {}
    if threading.current_thread() is threading.main_thread():
        for sig in (signal.SIGINT, signal.SIGTERM):
            old[sig] = signal.signal(sig, on_signal)
    try:
        yield stops
    finally:
        for sig, handler in old.items():
            signal.signal(sig, handler)


def _run(plan: RefirePlan, fmt: str) -> None:
    from ..render import refire as view

    shown = view.RunView(fmt, plan.records)
    with _ctrl_c_stops() as stops:
        try:
            summary = plan.run(stop=stops.stop, abandon=stops.abandon, on_start=shown.start,
                               on_result=shown.result)
        finally:
            shown.close()
    shown.print_summary(summary)
    error = summary.error(interrupted=stops.interrupted.is_set())
    if error is not None:
        raise error


def register(app: typer.Typer) -> None:
    app.command("refire")(outbox_command(refire_cmd))

