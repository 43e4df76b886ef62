"""``streamq redrive``: re-fire the batches the trigger gave up on, from its on-failure
destination (SQS queue or S3 bucket)."""

from __future__ import annotations

import enum
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from ..config import Settings
from ..errors import Refused
from .common import outbox_command
from .refire_cmd import DEFAULT_CONCURRENCY, DEFAULT_RATE, SAFETY, SPEED

if TYPE_CHECKING:
    from ..redrive import Job

SOURCE = "Destination"

#: Kept in step with streamq.redrive (the CLI starts without it).
DEFAULT_MAX_MESSAGES = 100


class RedriveOutput(str, enum.Enum):
    table = "table"
    json = "json"
    jsonl = "jsonl"


def redrive_cmd(
    settings: Settings,
    queue: Annotated[str | None, typer.Option(
        "--queue", help="Read this SQS queue (URL or ARN) [default: the trigger's "
        "on-failure destination]. For an SNS destination, subscribe a queue to the topic "
        "and give it here.", rich_help_panel=SOURCE, show_default=False)] = None,
    bucket: Annotated[str | None, typer.Option(
        "--bucket", help="Read this S3 bucket (name, s3://NAME or ARN) [default: the "
        "trigger's on-failure destination].", rich_help_panel=SOURCE,
        show_default=False)] = None,
    prefix: Annotated[str | None, typer.Option(
        "--prefix", help="With --bucket: read the records under this prefix [default: "
        "aws/lambda/; the trigger's own: aws/lambda/<ESM-UUID>/].", rich_help_panel=SOURCE,
        show_default=False)] = None,
    max_messages: Annotated[int, typer.Option(
        "--max-messages", "-n", min=1, max=100_000, help="Read at most this many messages "
        "(SQS messages or S3 records) in this run.", rich_help_panel=SOURCE)
    ] = DEFAULT_MAX_MESSAGES,
    rate: Annotated[float, typer.Option(
        "--rate", min=0, help="Refire writes per second, retries included; 0 = unlimited "
        "(see `refire --help`).", rich_help_panel=SPEED)] = DEFAULT_RATE,
    concurrency: Annotated[int, typer.Option(
        "--concurrency", min=1, max=256, help="Refire requests in flight.",
        rich_help_panel=SPEED)] = DEFAULT_CONCURRENCY,
    dry_run: Annotated[bool, typer.Option(
        "--dry-run", help="Show each message (condition, shard, sequence range, arrival "
        "times, batch size) and each key with its status in the outbox; write nothing, "
        "delete nothing.", rich_help_panel=SAFETY)] = False,
    yes: Annotated[bool, typer.Option(
        "--yes", "-y", help="Do not ask; required when stdin is not a terminal.",
        rich_help_panel=SAFETY)] = False,
    keep: Annotated[bool, typer.Option(
        "--keep", help="Refire, but never delete or mark a message.",
        rich_help_panel=SAFETY)] = False,
    drop_expired: Annotated[bool, typer.Option(
        "--drop-expired", help="Also remove a message whose records the stream no longer "
        "holds (they cannot be recovered from it) once its other keys are handled.",
        rich_help_panel=SAFETY)] = False,
    delete: Annotated[bool, typer.Option(
        "--delete", help="S3: delete a fully handled record instead of tagging it "
        "streamq-redrive=done.", rich_help_panel=SAFETY)] = False,
    force: Annotated[bool, typer.Option(
        "--force", help="Go ahead although the refire pre-flight refuses.",
        rich_help_panel=SAFETY)] = False,
    uuid: Annotated[str | None, typer.Option(
        "--uuid", help="The trigger's event source mapping UUID, when the stream has several.",
        rich_help_panel=SAFETY, show_default=False)] = None,
    journal: Annotated[Path | None, typer.Option(
        "--journal", help="Record the refire plan and every key's outcome in FILE (a refire "
        "journal).", rich_help_panel=SAFETY, show_default=False)] = None,
    resume: Annotated[Path | None, typer.Option(
        "--resume", help="Continue the run journaled in FILE: same run token, so a key it "
        "refired is not refired twice; appends to FILE.", rich_help_panel=SAFETY,
        show_default=False)] = None,
    output: Annotated[RedriveOutput | None, typer.Option(
        "--output", "-o", help="table (one row per message, counts on stderr), json (one "
        "document) or jsonl (one line per message, with its keys) [default: table].",
        show_default=False)] = None,
) -> None:
    """Redrive: re-fire the records of the batches the trigger gave up on, read from its
    on-failure destination, and remove each message once all its records are handled.

    Reads up to --max-messages messages from the trigger's on-failure destination (or
    --queue / --bucket): an SQS message (held hidden while the run lasts) or an S3 record
    under aws/lambda/<ESM-UUID>/. An S3 record carries the batch itself (payload); an SQS
    message only points into the stream, which is read back from the start to the end
    sequence number (what the stream no longer holds is reported as expired). Each key is
    re-fired once, through the same engine as `refire` (pre-flight, conditional write,
    --rate, --journal); a key no longer in the outbox was delivered since ("already
    delivered"). A message is deleted (S3: tagged, or --delete) only when every key in it
    ended refired or already delivered; one with expired records stays unless
    --drop-expired. A message that is not an invocation record, or is for another table,
    is left in place.

    Exit 0 when every message read was handled (or left for another table), 3 when one
    stays (a key failed, records expired, a malformed message), 5 when refused (pre-flight,
    no --yes without a terminal), 130 on Ctrl-C.

    Examples:

      streamq redrive --dry-run

      streamq redrive --yes --rate 5

      streamq redrive --queue "$QUEUE_URL" --yes

      streamq redrive --bucket my-failures --delete --yes -o jsonl

      streamq redrive --max-messages 10 --journal redrive.jsonl --yes

      streamq redrive --resume redrive.jsonl --yes
    """
    from .. import redrive as lib
    from .. import render
    from ..aws import Aws
    from ..render import redrive as view

    fmt = output.value if output is not None else "table"
    job = lib.prepare(Aws(settings), settings, queue=queue, bucket=bucket, prefix=prefix,
                      uuid=uuid, max_messages=max_messages, rate=rate,
                      concurrency=concurrency, dry_run=dry_run, force=force, keep=keep,
                      delete=delete, drop_expired=drop_expired, journal=journal,
                      resume=resume)
    go = False
    try:
        for w in job.warnings:
            render.warn(w)
        refusal = job.refusal()
        pf = job.plan.preflight if job.plan is not None else None
        if dry_run:
            view.show(job, fmt)
            if pf is not None:
                for w in pf.warnings:
                    render.warn(w)
            if refusal is not None:
                raise refusal
            return
        if refusal is not None:
            view.print_plan(job)
            raise refusal
        if pf is not None:
            for w in pf.warnings:
                render.warn(w)
            for p in pf.problems:
                render.warn(f"{p} (going ahead: --force)")
        if not job.entries:
            render.info(f"nothing to redrive: no message in {job.source.where}")
            view.show(job, fmt)
            return
        view.print_plan(job)
        if not yes:
            _confirm(job)
        go = True
    finally:
        if not go:
            job.release()  # every message stays, visible again at once
    _run(job, fmt)


def _confirm(job: Job) -> None:
    from .. import render
    from ..render import refire as refire_view

    keys = job.unique_keys
    removing = "keep every message" if job.keep else "remove the messages fully handled"
    if not (render.is_tty(sys.stdin) and render.is_tty(sys.stderr)):
        raise Refused(f"refusing to redrive {len(job.ours)} message(s) ({keys} record(s)) "
                      "without --yes: stdin is not a terminal, so nobody can confirm "
                      "(review with --dry-run)")
    if not refire_view.confirm(f"Refire {keys} record(s) of {len(job.ours)} message(s) in "
                               f"{job.info.name} and {removing}?"):
        raise Refused("not confirmed: nothing was written, no message removed")


def _run(job: Job, fmt: str) -> None:
    from .. import redrive as lib
    from ..render import redrive as view
    from .refire_cmd import _ctrl_c_stops

    with _ctrl_c_stops() as stops:
        progress = view.Progress(job)
        try:
            lib.execute(job, stop=stops.stop, abandon=stops.abandon, on_start=progress.start,
                        on_result=progress.result)
        finally:
            progress.close()
        job.interrupted = job.interrupted or stops.interrupted.is_set()
    view.show(job, fmt)
    error = job.outcome_error()
    if error is not None:
        raise error


def register(app: typer.Typer) -> None:
    app.command("redrive")(outbox_command(redrive_cmd))
