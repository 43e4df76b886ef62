"""``streamq refire``: touch records so the trigger runs the Lambda on them again."""

from __future__ import annotations

import enum
import signal
import sys
import threading
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, Annotated, Any

import typer

from ..config import Settings
from ..errors import AwsError, BadInput, Interrupted, PartialFailure, Refused
from .common import outbox_command
from .queue_cmds import OlderOpt, StatusOpt, WhereOpt, build_selection

if TYPE_CHECKING:
    from ..aws import Aws
    from ..outbox import Item, TableInfo
    from ..refire import Target

SELECT = "Selection"
SAFETY = "Safety"
SPEED = "Throughput"

#: Kept in step with streamq.refire (not imported: the CLI starts without the library).
DEFAULT_RATE = 10.0
DEFAULT_CONCURRENCY = 16


class OnlyIf(str, enum.Enum):
    failed = "failed"
    stuck = "stuck"
    selected = "selected"
    any = "any"


class RefireOutput(str, enum.Enum):
    summary = "summary"
    json = "json"
    jsonl = "jsonl"


def _read_id_lines(source: str) -> list[str]:
    if source == "-":
        if sys.stdin is None:
            raise BadInput("--ids-from -: no standard input")
        return sys.stdin.read().splitlines()
    try:
        return Path(source).read_text(encoding="utf-8").splitlines()
    except FileNotFoundError:
        raise BadInput(f"--ids-from {source}: no such file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise BadInput(f"--ids-from {source}: cannot read: {exc}") from None


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
    status: StatusOpt = None,
    older_than: OlderOpt = None,
    where: WhereOpt = None,
    limit: Annotated[int | None, typer.Option(
        "--limit", "-n", min=1, help="With filters: refire at most this many records.",
        rich_help_panel=SELECT, show_default=False)] = None,
    only_if: Annotated[OnlyIf | None, typer.Option(
        "--only-if", help="Condition re-checked atomically in each write: failed (error still "
        "set), stuck (still no error, same created time), selected (each record keeps the "
        "status it was selected with), any (it still exists) [default: any for ids, selected "
        "for filters].", rich_help_panel=SAFETY, show_default=False)] = None,
    rate: Annotated[float, typer.Option(
        "--rate", min=0, help="Writes per second, retries included; 0 = unlimited. Each "
        "refire makes the Lambda call the downstream API again, and that API's rate limit "
        "is often what failed the records: the default of 10/s stays under typical "
        "per-account API limits.", rich_help_panel=SPEED)] = DEFAULT_RATE,
    concurrency: Annotated[int, typer.Option(
        "--concurrency", min=1, max=256, help="Requests in flight (16 keeps 10/s and more "
        "flowing through 10-100 ms of latency).", rich_help_panel=SPEED)
    ] = DEFAULT_CONCURRENCY,
    dry_run: Annotated[bool, typer.Option(
        "--dry-run", help="Print the plan (and the pre-flight verdict) and write nothing.",
        rich_help_panel=SAFETY)] = False,
    yes: Annotated[bool, typer.Option(
        "--yes", "-y", help="Do not ask; required when stdin is not a terminal.",
        rich_help_panel=SAFETY)] = False,
    force: Annotated[bool, typer.Option(
        "--force", help="Go ahead although the pre-flight refuses (no stream, no trigger, "
        "a filter that drops the refire record).", rich_help_panel=SAFETY)] = False,
    uuid: Annotated[str | None, typer.Option(
        "--uuid", help="The trigger's event source mapping UUID, when the stream has several.",
        rich_help_panel=SAFETY, show_default=False)] = None,
    journal: Annotated[Path | None, typer.Option(
        "--journal", help="Record the plan and every outcome in FILE (JSON lines) as they "
        "happen.", rich_help_panel=SAFETY, show_default=False)] = None,
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
    --where); with none, nothing is refired. Each write only succeeds if the record
    still exists (a missing id is never created) and was not already refired in this
    run; --only-if re-checks its status in the same write. Before any write the
    pre-flight checks the table's stream, the trigger and its state, and that the
    trigger's FilterCriteria pass the MODIFY record; --force overrides.

    Outcomes: refired, missing, skipped (--only-if no longer holds), failed. Exit 0
    when every id was refired or skipped, 3 if any was missing or failed, 5 when
    refused (pre-flight, or no --yes without a terminal), 130 on Ctrl-C.

    Examples:

      streamq refire --id msg-000042 --dry-run

      streamq list --status failed -o ids | streamq refire --ids-from - --yes

      streamq refire --status failed --older-than 1h --where 'last_error~429' --rate 5

      streamq refire --id '{"tenant": "acme", "seq": 17}' --only-if failed --yes

      streamq refire --ids-from ids.txt --journal run.jsonl --yes -o jsonl

      streamq refire --resume run.jsonl --yes
    """
    from .. import render
    from ..render import refire as view

    has_ids = bool(ids) or ids_from is not None
    has_filters = bool(status or older_than or where or limit)
    if resume is not None and (has_ids or has_filters):
        raise BadInput("--resume takes its ids from the journal: drop --id/--ids-from and "
                       "the selection filters")
    if resume is not None and journal is not None:
        raise BadInput("--resume appends to its own journal: drop --journal")
    if has_ids and has_filters:
        raise BadInput("choose ids (--id, --ids-from) or filters (--status, --older-than, "
                       "--where, --limit), not both")
    if resume is None and not has_ids and not has_filters:
        raise BadInput("nothing selected: give --id, --ids-from FILE|-, or filters such as "
                       "--status failed (refire never touches the whole table by default)")
    mode = only_if.value if only_if is not None else None
    if mode == "selected" and (has_ids or resume is not None):
        raise BadInput("--only-if selected needs filters (--status ...): ids carry no status")
    if mode is None:
        mode = "selected" if has_filters else "any"
    fmt = output.value if output is not None else "summary"
    raw_lines = _read_id_lines(ids_from) if ids_from is not None else []

    from ..aws import Aws
    from ..outbox import Classifier, describe_table, iter_key_lines, key_id, parse_key_text
    from ..refire import (
        dedupe,
        inspect_trigger,
        new_run_token,
        presettle,
        read_items,
        read_journal,
        targets_for_keys,
    )

    if resume is not None:
        head = read_journal(resume)  # check the file before touching AWS
        if only_if is not None and mode != head.only_if:
            raise BadInput(f"--only-if {mode} differs from the journal's ({head.only_if})")
    aws = Aws(settings)
    info = describe_table(aws, settings.require_table())
    classifier = Classifier(settings, info)

    duplicates = 0
    already_done = 0
    targets: list[Target]
    keys: list[Item] = []
    if resume is not None:
        state = read_journal(resume, info)
        run, mode, targets, already_done = state.run, state.only_if, state.targets, state.done
    else:
        run = new_run_token()
        if has_ids:
            parsed = [parse_key_text(text, info) for text in ids or []]
            parsed.extend(iter_key_lines(raw_lines, info))
            keys, duplicates = dedupe(parsed)
            targets = targets_for_keys(keys, mode, None, classifier)
        else:
            targets = _select(aws, info, settings, status, older_than, where, limit, mode)

    pf = inspect_trigger(aws, info, settings, uuid=uuid)
    # Read the items when the filter needs them, when --only-if stuck needs the created
    # time, and for a dry run (to count the missing ones). Filter-selected ones are read.
    unread = [t for t in targets if not t.read]
    if unread and (pf.patterns or mode == "stuck" or dry_run):
        items = read_items(aws, info, [t.key for t in unread])
        for t in unread:
            t.item, t.read = items.get(key_id(t.key)), True
            if t.cond == "stuck" and resume is None and t.item is not None:
                t.created = t.item.get(settings.created_attr)
    from ..refire import check_filters, refusals, refuse

    check_filters(pf, info, settings, targets)
    todo, settled = presettle(targets, classifier)
    known_missing = (sum(1 for t in targets if t.read and t.item is None)
                     if all(t.read for t in targets) else None)
    plan = {
        "table": info.name,
        "records": len(targets),
        "duplicates": duplicates,
        "already_done": already_done,
        "known_missing": known_missing,
        "trigger": (f"{pf.function} ({pf.state}, uuid {pf.trigger.get('UUID')})"
                    if pf.trigger is not None else
                    "none: " + (pf.trigger_error or "the table has no stream")),
        "filter": pf.verdict,
        "only_if": mode,
        "rate": rate,
        "concurrency": concurrency,
        "run": run,
        "journal": str(resume or journal or ""),
        "dry_run": dry_run,
        "problems": pf.problems,
        "warnings": pf.warnings,
    }
    blocking = refusals(pf, force)
    if dry_run:
        if fmt in ("json", "jsonl"):
            view.print_plan_json(plan)
        else:
            view.print_plan(plan, sys.stdout)
        for w in pf.warnings:
            render.warn(w)
        if blocking:
            raise refuse(blocking)
        for p in pf.problems:
            render.warn(f"{p} (--force given)")
        return
    if blocking:
        view.print_plan(plan)
        raise refuse(blocking)
    for w in pf.warnings:
        render.warn(w)
    for p in pf.problems:
        render.warn(f"{p} (going ahead: --force)")
    if not targets:
        render.info("nothing to refire" + (f" ({already_done} already done)"
                                           if already_done else ""))
        view.ResultSink(fmt, info).close()
        return
    view.print_plan(plan)
    if not yes:
        if not _stdin_is_tty():
            raise Refused(f"refusing to refire {len(targets)} record(s) without --yes: stdin "
                          "is not a terminal, so nobody can confirm (review with --dry-run)")
        state_text = f"trigger {pf.function} is {pf.state}" if pf.trigger else "no trigger"
        if not view.confirm(f"Refire {len(targets)} record(s) in {info.name} ({state_text})?"):
            raise Refused("not confirmed: nothing was written")

    _run(settings, info, todo, settled, run=run, rate=rate, concurrency=concurrency,
         fmt=fmt, journal=journal, resume=resume, mode=mode, all_targets=targets)


def _select(aws: Aws, info: TableInfo, settings: Settings, status: list[str] | None,
            older_than: str | None, where: list[str] | None, limit: int | None,
            mode: str) -> list[Target]:
    from .. import render
    from ..outbox import select
    from ..refire import targets_for_records

    sel = build_selection(status, older_than, where, limit)
    with render.progress("selecting") as prog:
        records = list(select(aws, info, settings, sel, on_page=prog.advance))
    return targets_for_records(records, mode, settings, info)


def _run(settings: Settings, info: TableInfo, todo: list[Target], settled: list[Any], *,
         run: str, rate: float, concurrency: int, fmt: str, journal: Path | None,
         resume: Path | None, mode: str, all_targets: list[Target]) -> None:
    from ..aws import Aws
    from ..outbox import key_text
    from ..refire import Journal, execute
    from ..render import refire as view

    # Our own retries (each waits for a token, so retries respect --rate); botocore's are
    # off: its retries={"max_attempts": N} counts retries after the first try, so 0.
    writer = Aws(settings, max_pool_connections=concurrency + 2, max_attempts=0)
    jrn = (Journal.append(resume) if resume is not None else
           Journal.create(journal, run=run, info=info, targets=all_targets, only_if=mode)
           if journal is not None else None)
    sink = view.ResultSink(fmt, info)
    failures: list[tuple[str, str, str]] = []
    stop = threading.Event()
    interrupted = threading.Event()

    def on_sigint(signum: int, frame: FrameType | None) -> None:
        if stop.is_set():
            raise KeyboardInterrupt  # a second Ctrl-C: stop waiting
        interrupted.set()
        stop.set()

    old = None
    if threading.current_thread() is threading.main_thread():
        old = signal.signal(signal.SIGINT, on_sigint)
    try:
        with view.RefireProgress(len(todo) + len(settled)) as prog:
            def on_result(res: Any) -> None:
                if jrn is not None:
                    jrn.record(res, info)
                sink.write(res)
                prog.advance(res.outcome)
                if res.outcome in ("missing", "failed"):
                    failures.append((key_text(res.key, info), res.outcome, res.error or ""))

            summary = execute(writer, info, settings, todo, run=run, rate=rate,
                              concurrency=concurrency, stop=stop, settled=settled,
                              on_result=on_result)
    finally:
        if old is not None:
            signal.signal(signal.SIGINT, old)
        sink.close()
        if jrn is not None:
            jrn.close()
    view.print_summary(summary, failures)
    where = resume or journal
    if summary.fatal is not None:
        hint = (f"; fix it, then continue with: streamq refire --resume {where} --yes"
                if where else "")
        raise AwsError(f"stopped after an error every write would hit: {summary.fatal} "
                       f"({summary.not_reached} record(s) not reached){hint}")
    if interrupted.is_set():
        hint = (f"; continue with: streamq refire --resume {where} --yes" if where else
                "; next time use --journal FILE to be able to --resume")
        raise Interrupted(f"interrupted: {summary.not_reached} record(s) not reached{hint}")
    if not summary.ok:
        bad = summary.counts["missing"] + summary.counts["failed"]
        hint = (f"; retry the failed ones with --resume {where} --yes"
                if where and summary.counts["failed"] else "")
        raise PartialFailure(f"{bad} of {summary.total} record(s) not refired "
                             f"(missing {summary.counts['missing']}, failed "
                             f"{summary.counts['failed']}){hint}")


def register(app: typer.Typer) -> None:
    app.command("refire")(outbox_command(refire_cmd))

