"""``streamq sandbox up|down|status|seed|logs``: a local outbox world, no AWS account."""

from __future__ import annotations

import enum
from typing import Annotated

import typer

from ..errors import StreamqError
from .common import TableOrJson, run_guarded, value_of

sandbox_app = typer.Typer(
    help=(
        "A local outbox world without an AWS account: moto's server on 127.0.0.1 with an "
        "outbox table, its stream, a Lambda function, an on-failure queue and a trigger, "
        "plus a poller that runs the trigger for real against a demo mail-sender handler "
        "(or yours).\n\n"
        "Examples:\n\n"
        "  streamq sandbox up && streamq sandbox seed --count 200 --wait\n\n"
        "  streamq --sandbox list --status failed\n\n"
        "  streamq sandbox down"
    ),
    no_args_is_help=True,
    rich_markup_mode=None,
)

DebugOpt = Annotated[bool, typer.Option("--debug", help="Show tracebacks.")]
# The sandbox's data is throwaway and local: seed and down act without asking. --yes is
# still accepted (older scripts and runbooks pass it) and does nothing.
YesOpt = Annotated[bool, typer.Option("--yes", "-y", hidden=True,
                                      help="Accepted and ignored: the sandbox never asks.")]


class OnFailure(str, enum.Enum):
    sqs = "sqs"
    s3 = "s3"


def up(
    port: Annotated[int, typer.Option("--port", help="Port on 127.0.0.1 (0: a free port).")
                    ] = 0,
    handler: Annotated[str | None, typer.Option(
        "--handler", help="Your handler, called like Lambda calls it: FILE.py:FUNCTION, "
        "PACKAGE_DIR:FUNCTION, or MODULE:FUNCTION for ./MODULE.py; only your own file or "
        "package, never an installed module [default: the demo mail sender].",
        show_default=False)] = None,
    api_rate: Annotated[float, typer.Option(
        "--api-rate", help="Fake mail API limit: sends per second before 429s (0: none).")
    ] = 50.0,
    undeliverable: Annotated[str | None, typer.Option(
        "--undeliverable", help="Regex of recipients the fake API rejects with 550 "
        "[default: @invalid\\.example$].", show_default=False)] = None,
    on_failure: Annotated[OnFailure, typer.Option(
        "--on-failure", help="Where the trigger sends the batches it gives up on: the SQS "
        "queue, or the S3 bucket (the invocation record plus the whole event as payload, "
        "under aws/lambda/<ESM-UUID>/<shard>/...).")] = OnFailure.sqs,
    timeout: Annotated[float, typer.Option("--timeout", min=1,
                                           help="Seconds to wait for it to be ready.")] = 60.0,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Say what would start; start "
                                                            "nothing.")] = False,
    output: Annotated[TableOrJson | None, typer.Option(
        "--output", "-o", help="json: a JSON document [default: the endpoint alone, one "
        "line].", show_default=False)] = None,
    debug: DebugOpt = False,
) -> None:
    """Start the sandbox in the background (idempotent) and print its endpoint.

    Starts moto's server on 127.0.0.1 and provisions: table mail_outbox (stream
    NEW_AND_OLD_IMAGES), table mail_history, a role, function mail-sender, queue and
    bucket mail-sender-failures (the on-failure destination: the queue, or the bucket
    with --on-failure s3) and a trigger (batch 100, window 2s, 2 retries, bisect,
    ReportBatchItemFailures, filter: INSERT, or MODIFY with refired_at). Data lives in
    memory only: `sandbox down` loses it.

    The sandbox process never imports from the current directory (a ./moto.py there is
    not moto); --handler names your own file or package, whose directory is added at the
    end of the import path (its sibling modules import as from a Lambda task root).

    Examples:

      streamq sandbox up

      streamq sandbox up --on-failure s3

      streamq sandbox up --port 4566 --api-rate 20

      streamq sandbox up --handler src/mail_sender/handler.py:handler
    """
    del debug  # read from argv by the error handler
    run_guarded(_up, port=port, handler=handler, api_rate=api_rate,
                undeliverable=undeliverable, timeout=timeout, dry_run=dry_run,
                output=value_of(output), on_failure=on_failure.value)


def _up(port: int, handler: str | None, api_rate: float, undeliverable: str | None,
        timeout: float, dry_run: bool, output: str | None, on_failure: str = "sqs") -> None:
    from .. import render
    from ..render import sandbox as view
    from ..sandbox import control
    from ..sandbox.run import DEMO_HANDLER
    from ..sandbox.state import state_dir

    resolved = control.check_up_args(port, handler, api_rate)
    if dry_run:
        current = control.running()
        if current is not None:
            render.info(f"dry run: the sandbox already runs at {current.endpoint} "
                        f"(pid {current.pid}); nothing would start")
        else:
            render.info(f"dry run: would start the sandbox on 127.0.0.1:{port or 'a free port'}"
                        f" with handler {resolved or DEMO_HANDLER}, on-failure destination "
                        f"{on_failure}, state in {state_dir()}")
        return
    state, already = control.up(port=port, handler=handler, api_rate=api_rate,
                                undeliverable=undeliverable, timeout=timeout,
                                on_failure=on_failure)
    if already:
        render.info(f"the sandbox is already running (pid {state.pid}, on-failure "
                    f"destination {state.on_failure})")
    else:
        render.info(f"sandbox started (pid {state.pid}); try: streamq sandbox seed --count 200"
                    " --wait && streamq --sandbox list --status all")
    if output == "json":
        from ..schemas import SANDBOX_UP

        render.print_json({"schema_version": SANDBOX_UP, "endpoint": state.endpoint,
                           "pid": state.pid,
                           "already_running": already, "table": state.table,
                           "function": state.function, "region": state.region,
                           "on_failure": state.on_failure, "queue_url": state.queue_url,
                           "bucket": state.bucket})
    else:
        view.print_line(state.endpoint)


def down(
    yes: YesOpt = False,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Say what would stop; stop "
                                                            "nothing.")] = False,
    debug: DebugOpt = False,
) -> None:
    """Stop the sandbox (only its own recorded process) and forget its state.

    Everything in it (tables, records, queue messages) lives in memory and is lost:
    it is throwaway local data, so this does not ask. A state file whose process is
    gone, or whose pid now belongs to another program, is cleared without signalling
    anything.

    Examples:

      streamq sandbox down

      streamq sandbox down --dry-run
    """
    del debug, yes  # debug is read from argv by the error handler
    run_guarded(_down, dry_run=dry_run)


def _down(dry_run: bool) -> None:
    from .. import render
    from ..sandbox import control

    what, state = control.down_plan()
    if what == "none":
        render.info("the sandbox is not running")
        return
    assert state is not None
    if what == "stale":
        msg = f"the sandbox (pid {state.pid}) is gone; its stale state is cleared"
    elif what == "foreign":
        msg = (f"pid {state.pid} is not a streamq sandbox any more: not signalling it; "
               "the stale state is cleared")
    else:
        msg = ""
    if dry_run:
        render.info("dry run: " + (msg.replace(" is cleared", " would be cleared") if msg else
                                   f"would stop the sandbox (pid {state.pid}, "
                                   f"{state.endpoint}) and lose its data"))
        return
    what, state = control.down()
    if what == "stopped" and state is not None:
        render.info(f"sandbox stopped (pid {state.pid}); its data is gone")
    elif msg:
        render.info(msg)
    else:
        render.info("the sandbox is not running")


def status(
    output: Annotated[TableOrJson | None, typer.Option(
        "--output", "-o", help="table on a terminal, json when piped [default: auto].",
        show_default=False)] = None,
    debug: DebugOpt = False,
) -> None:
    """Say whether the sandbox runs, where, and what its poller has done.

    Exit code 0 when it runs, 4 when it does not (the document is printed either way).

    Examples:

      streamq sandbox status

      streamq sandbox status -o json | jq .poller.invocations
    """
    del debug  # read from argv by the error handler
    run_guarded(_status, output=value_of(output))


def _status(output: str | None) -> None:
    from .. import render
    from ..render import sandbox as view
    from ..sandbox import control

    doc = control.status()
    if render.table_or_json(output) == "json":
        render.print_json(doc)
    else:
        view.show_status(doc)
    if not doc["running"]:
        raise typer.Exit(4)


def seed(
    count: Annotated[int, typer.Option("--count", "-n", min=1, max=100_000,
                                       help="Records to insert.")] = 200,
    undeliverable_every: Annotated[int, typer.Option(
        "--undeliverable-every", min=0, help="One record in N goes to an undeliverable "
        "address (0: none).")] = 10,
    poison: Annotated[int, typer.Option(
        "--poison", min=0, help="Extra records without a recipient: the demo handler fails "
        "on them (shows retries, bisect, the on-failure queue).")] = 0,
    wait: Annotated[bool, typer.Option(
        "--wait", help="Return once the handler has delivered or failed every record "
        "(poison records excepted), and say how it went.")] = False,
    timeout: Annotated[float, typer.Option("--timeout", min=1,
                                           help="With --wait: give up after this many "
                                                "seconds (exit 1).")] = 60.0,
    yes: YesOpt = False,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Print one sample record; "
                                                            "insert nothing.")] = False,
    debug: DebugOpt = False,
) -> None:
    """Insert realistic outbox records into the running sandbox's table.

    Each record: id, recipient, subject, body, tenant, created_at (ISO-8601), attempts 0.
    It always writes to the sandbox, never to AWS, and does not ask (throwaway local
    data). Prints how many were inserted.

    Examples:

      streamq sandbox seed --count 200 --wait && streamq --sandbox list

      streamq sandbox seed --count 50 --poison 1

      streamq sandbox seed --dry-run
    """
    del debug, yes  # debug is read from argv by the error handler
    run_guarded(_seed, count=count, undeliverable_every=undeliverable_every, poison=poison,
                wait=wait, timeout=timeout, dry_run=dry_run)


def _seed(count: int, undeliverable_every: int, poison: int, wait: bool, timeout: float,
          dry_run: bool) -> None:
    from .. import render
    from ..outbox import item_to_plain
    from ..sandbox import control

    state = control.require_running()
    items = control.seed_items(count, undeliverable_every=undeliverable_every, poison=poison)
    if dry_run:
        render.info(f"dry run: would insert {len(items)} record(s) into {state.table} at "
                    f"{state.endpoint}; the first:")
        render.print_json(item_to_plain(items[0]))
        return
    n = control.seed(items, state)
    render.info(f"inserted {n} record(s) into {state.table}")
    if wait:
        from ..render.sandbox import SeedProgress

        with SeedProgress(sum(1 for it in items if "recipient" in it)) as shown:
            delivered, failed, waiting = control.wait_handled(items, state, timeout=timeout,
                                                              on_progress=shown.update)
        render.info(f"handled: {delivered} delivered, {failed} failed"
                    + (f", {waiting} not handled after {timeout:.0f}s" if waiting else ""))
        if waiting:
            typer.echo(n)
            raise StreamqError(f"{waiting} record(s) not handled within {timeout:.0f}s: "
                               "see `streamq sandbox status` and `streamq sandbox logs`")
    typer.echo(n)


def logs(
    lines: Annotated[int, typer.Option("--lines", "-n", min=0,
                                       help="How many of the last lines to show.")] = 50,
    follow: Annotated[bool, typer.Option("--follow", "-f",
                                         help="Keep printing new lines (Ctrl-C to stop).")
                      ] = False,
    api: Annotated[bool, typer.Option("--api", help="Show the fake mail API's call log "
                                                    "(JSON lines) instead.")] = False,
    debug: DebugOpt = False,
) -> None:
    """Show what the poller and the handler did (the sandbox's log).

    Examples:

      streamq sandbox logs -n 20

      streamq sandbox logs --follow

      streamq sandbox logs --api -n 1000 | jq -r .outcome | sort | uniq -c
    """
    del debug  # read from argv by the error handler
    run_guarded(_logs, lines=lines, follow=follow, api=api)


def _logs(lines: int, follow: bool, api: bool) -> None:
    from ..render import sandbox as view
    from ..sandbox import control

    path = control.api_log_path() if api else control.log_path()
    if api and not path.exists() and control.log_path().exists():
        path.touch()  # started, nothing sent yet
    for line in control.tail(path, lines):
        view.print_line(line)
    if follow:
        for line in control.follow(path):
            view.print_line(line)


def register(app: typer.Typer) -> None:
    sandbox_app.command("up")(up)
    sandbox_app.command("down")(down)
    sandbox_app.command("status")(status)
    sandbox_app.command("seed")(seed)
    sandbox_app.command("logs")(logs)
    app.add_typer(sandbox_app, name="sandbox")
