"""Rendering for ``streamq redrive``: the plan, the dry-run detail per message, the
per-message table, JSON/JSONL, progress."""

from __future__ import annotations

import sys
from typing import IO, TYPE_CHECKING, Any

from . import dumps

if TYPE_CHECKING:  # pragma: no cover
    from ..redrive import Entry, Job
    from ..refire import Result

STATUS_STYLE = {"failed": "bold red", "stuck": "yellow", "pending": "dim", "gone": "magenta",
                "refired": "green", "already delivered": "cyan", "not reached": "yellow"}


def _short(entry: Entry) -> str:
    ident = entry.message.ident
    if entry.message.source == "s3":
        return ident.rsplit("/", 1)[-1][:19]  # YYYY-MM-DDTHH.MM.SS
    return ident[:8]


def print_plan(job: Job, out: IO[str] | None = None) -> None:
    """What is about to happen, as ``name: value`` lines (stderr by default)."""
    from .refire import plan_lines

    out = out or sys.stderr
    c = job.counts()
    rows = [("source", f"{job.source.kind} {job.source.where}"),
            ("messages", f"{c['messages']} read: {c['redrive']} for {job.info.name}, "
                         f"{c['malformed']} malformed, {c['other_table']} for other tables"),
            ("keys", f"{c['keys']} in the messages, {job.unique_keys} distinct"
                     + (f", {c['expired_records']} record(s) expired"
                        if c["expired_records"] else ""))]
    if job.plan is not None:
        rows += [("gone now" if k == "missing now" else k, v)
                 for k, v in plan_lines(job.plan.to_json())
                 if k not in ("table", "records", "only if")]
    after = ("kept (--keep)" if job.keep else
             "S3 records deleted" if job.delete else
             "tagged streamq-redrive=done" if job.source.kind == "s3" else "deleted")
    rows.append(("handled ones", after))
    width = max(len(k) for k, _ in rows)
    title = ("redrive plan (dry run: nothing written, no message removed)" if job.dry_run
             else "redrive plan")
    out.write(title + "\n")
    for k, v in rows:
        out.write(f"  {k.ljust(width)}  {v}\n")
    out.flush()


def _message_lines(n: int, total: int, e: Entry, job: Job) -> list[str]:
    from ..outbox import key_text

    msg = e.message
    head = f"message {n} of {total}  {msg.source} {msg.ident}"
    seen = []
    if msg.receive_count:
        seen.append(f"received {msg.receive_count} time(s)")
    if msg.sent_at is not None:
        from ..outbox import iso

        seen.append(f"{'sent' if msg.source == 'sqs' else 'written'} {iso(msg.sent_at)}")
    if e.kind != "redrive":
        return [head, f"  left in place: {e.reason}"]
    rec = msg.record
    assert rec is not None
    b = rec.batch
    invoked = (f"{rec.invoke_count} invocation(s)" if rec.invoke_count is not None
               else "invocations unknown")
    err = f", function error {rec.function_error}" if rec.function_error else ""
    lines = [head]
    if seen:
        lines.append(f"  message      {', '.join(seen)}")
    lines += [f"  condition    {rec.condition_text} ({invoked}{err})",
              f"  failed at    {rec.timestamp}",
              f"  shard        {b.shard_id}",
              f"  sequence     {b.start} .. {b.end}",
              f"  arrival      {b.first_arrival or '?'} .. {b.last_arrival or '?'}",
              f"  batch size   {b.batch_size if b.batch_size is not None else '?'}",
              f"  keys         {len(e.keys)} (from the {e.key_source})"]
    if e.expired:
        lines.append(f"  expired      {e.expired} record(s): {e.expired_reason}")
    lines += [f"  note         {note}" for note in e.notes]
    width = max((len(key_text(k.key, job.info)) for k in e.keys), default=0)
    for k in e.keys:
        state = k.outcome or k.status or "?"
        extra = f"  {k.error}" if k.error else ""
        lines.append(f"    {key_text(k.key, job.info).ljust(width)}  {state}{extra}")
    label = "would be   " if job.dry_run else "result     "
    lines.append(f"  {label}  {e.result}" + (f": {e.result_reason}" if e.result_reason
                                            else ""))
    return lines


def print_details(job: Job, out: IO[str] | None = None) -> None:
    out = out or sys.stdout
    total = len(job.entries)
    for n, e in enumerate(job.entries, 1):
        out.write("\n" + "\n".join(_message_lines(n, total, e, job)) + "\n")
    out.flush()


def print_table(job: Job, out: IO[str] | None = None) -> None:
    """One row per message, for people."""
    from rich.markup import escape
    from rich.table import Table

    from . import _console

    t = Table(box=None, header_style="bold", pad_edge=False)
    t.add_column("MESSAGE", no_wrap=True)
    t.add_column("CONDITION", overflow="fold")
    t.add_column("KEYS", justify="right")
    t.add_column("REFIRED", justify="right")
    t.add_column("DELIVERED", justify="right")
    t.add_column("FAILED", justify="right")
    t.add_column("EXPIRED", justify="right")
    t.add_column("RESULT", overflow="fold")
    for e in job.entries:
        outcomes = [k.outcome for k in e.keys]
        rec = e.message.record
        result = e.result + (f": {e.result_reason}" if e.result_reason else "")
        style = {"deleted": "green", "marked": "green", "kept": "yellow", "left": "dim"}.get(
            e.result, "")
        if e.kind != "redrive":
            t.add_row(escape(_short(e)), "-", "-", "-", "-", "-", "-",
                      f"[{style}]{escape(result)}[/{style}]")
            continue
        t.add_row(escape(_short(e)), escape(rec.condition_text if rec else "-"),
                  str(len(e.keys)), str(outcomes.count("refired")),
                  str(outcomes.count("already delivered")),
                  str(sum(o not in ("refired", "already delivered") for o in outcomes)),
                  str(e.expired), f"[{style}]{escape(result)}[/{style}]")
    _console(out or sys.stdout).print(t)


def summary_line(job: Job) -> str:
    c = job.counts()
    removed = c["deleted"] + c["marked"]
    verb = "marked done" if job.source.kind == "s3" and not job.delete else "deleted"
    text = (f"{c['messages']} message(s): {removed} {verb}, {c['kept']} kept, {c['left']} "
            f"left in place; keys: refired {c['refired']}, already delivered "
            f"{c['already_delivered']}, failed {c['failed']}")
    if c["not_reached"]:
        text += f", not reached {c['not_reached']}"
    if c["expired_records"]:
        text += f"; {c['expired_records']} record(s) expired"
    if job.summary is not None:
        text += f" in {job.summary.elapsed:.2f}s"
    return text


def show(job: Job, fmt: str, out: IO[str] | None = None) -> None:
    """The result (or, for a dry run, the preview) in ``fmt``."""
    from . import info, print_json

    out = out or sys.stdout
    if fmt == "json":
        print_json(job.to_json(), out)
    elif fmt == "jsonl":
        for e in job.entries:
            out.write(dumps(e.to_json(job.info)) + "\n")
        out.flush()
    elif job.dry_run:
        print_plan(job, out)
        if job.entries:
            print_details(job, out)
    elif job.entries:
        print_table(job, out)
    if not job.dry_run or fmt != "table":
        info(summary_line(job) if job.entries else
             f"nothing to redrive: no message in {job.source.where}")
    elif not job.entries:
        info(f"nothing to redrive: no message in {job.source.where}")


class Progress:
    """A progress bar of the refire writes on stderr, only on a terminal."""

    def __init__(self, job: Job) -> None:
        self.total = job.plan.total if job.plan is not None else 0
        self._bar: Any = None

    def start(self) -> None:
        from .refire import RefireProgress

        self._bar = RefireProgress(self.total).__enter__()

    def result(self, res: Result) -> None:
        if self._bar is not None:
            self._bar.advance(res.outcome)

    def close(self) -> None:
        bar, self._bar = self._bar, None
        if bar is not None:
            bar.__exit__(None, None, None)
