"""The ``streamq`` command: global options, sub-commands, and the one error handler."""

from __future__ import annotations

import os
import sys
import traceback
from typing import Annotated, Any

import typer

from .. import __version__
from ..errors import ExitCode, StreamqError
from . import common, usage

app = typer.Typer(
    name="streamq",
    help=(
        "Operate a DynamoDB-stream outbox: see the queue, re-fire records safely, "
        "tune the Lambda trigger.\n\n"
        "Examples:\n\n"
        "  streamq --table mail_outbox list\n\n"
        "  streamq list --status failed -o ids | "
        "streamq refire --ids-from - --yes\n\n"
        "  streamq config-trigger --retry-attempts 3 --bisect --dry-run\n\n"
        "Piped (stdout not a terminal), list, tail and watch print JSON lines and show, "
        "stats, config-trigger, doctor, config show and sandbox status print JSON; -o "
        "table keeps the table. streamq schema NAME prints each document's JSON "
        "Schema.\n\n"
        "Exit codes: 0 ok, 1 AWS/runtime error, 2 usage or bad input, 3 partial failure, "
        "4 not found, 5 refused for safety, 130 interrupted."
    ),
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
    # One way to install completions: `streamq completion SHELL` (typer's
    # --install-completion edited ~/.bashrc, and its --show-completion printed another
    # script than completions/ holds).
    add_completion=False,
    # Help wraps at the terminal's width (click's default stops at 80), up to 160.
    context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 160},
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"streamq {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    ctx: typer.Context,
    version: Annotated[bool, typer.Option("--version", callback=_version, is_eager=True,
                                          help="Show the version and exit.")] = False,
    **flags: Any,
) -> None:
    ctx.obj = {k: v for k, v in flags.items() if v is not None and v is not False}


# The root callback takes the same shared options as every command.
common.with_common_params(_root, _root)


def _register() -> None:
    from . import completion_cmd, config_cmd, queue_cmds

    queue_cmds.register(app)
    config_cmd.register(app)
    completion_cmd.register(app)
    for name in ("refire_cmd", "redrive_cmd", "trigger_cmd", "sandbox_cmd", "doctor_cmd",
                 "tail_cmd", "watch_cmd", "iam_cmd", "schema_cmd"):
        try:
            module = __import__(f"streamq.cli.{name}", fromlist=["register"])
        except ModuleNotFoundError as exc:
            if exc.name != f"streamq.cli.{name}":
                raise
            continue
        module.register(app)


_register()


_argv: list[str] | None = None


def command() -> Any:
    """The click command typer builds from ``app``, with readable metavars."""
    from typer.completion import completion_init  # type: ignore[attr-defined]

    # Registers bash/zsh/fish for `_STREAMQ_COMPLETE` (add_completion=True would do it,
    # together with the options that are not wanted).
    completion_init()
    cmd = typer.main.get_command(app)
    usage.name_metavars(cmd)
    return cmd


def main(argv: list[str] | None = None) -> None:
    """Console-script entry point: expected failures print one line, never a traceback.

    typer runs in non-standalone mode, so its usage errors, Ctrl-C and aborts come here
    and leave in streamq's one style (`streamq: error: ...`, the documented exit codes)."""
    global _argv
    _argv = argv
    root = command()
    try:
        code = root.main(args=argv, prog_name="streamq", standalone_mode=False)
        if code == ExitCode.INTERRUPTED:
            # typer turns a Ctrl-C outside a command (while parsing) into Exit(130).
            _fail(KeyboardInterrupt(), "interrupted", ExitCode.INTERRUPTED, None)
        if isinstance(code, int) and not isinstance(code, bool) and code:
            sys.exit(code)
    except usage.UsageError as exc:
        if type(exc).__name__ == "NoArgsIsHelpError":
            # `streamq` or `streamq sandbox` alone: the help itself (on stderr, exit 2,
            # as click does: no command is a usage error).
            sys.stderr.write(str(getattr(exc, "format_message", exc.__str__)()).rstrip() + "\n")
            sys.exit(int(ExitCode.USAGE))
        args = sys.argv[1:] if argv is None else argv
        _fail(exc, usage.usage_line(exc, root, args), ExitCode.USAGE, None)
    except usage.ClickException as exc:
        _fail(exc, usage.message(exc), int(getattr(exc, "exit_code", 1)) or 1, None)
    except typer.Abort as exc:
        # typer's prompts turn Ctrl-C into Abort (streamq's own confirm does not).
        _fail(exc, "interrupted", ExitCode.INTERRUPTED, None)
    except StreamqError as exc:
        _fail(exc, exc.message, exc.exit_code, exc.hint)
    except KeyboardInterrupt as exc:
        _fail(exc, "interrupted", ExitCode.INTERRUPTED, None)
    except (BrokenPipeError, common.ReaderGone):
        # The reader went away (`streamq list | head`): not our failure.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        sys.exit(0)
    except Exception as exc:
        from ..aws import translate

        mapped = translate(exc)
        if mapped is None:
            raise
        _fail(exc, mapped.message, mapped.exit_code, mapped.hint)


def _fail(exc: BaseException, message: str, code: int, hint: str | None) -> None:
    from .. import render

    if _debugging():
        traceback.print_exception(exc)
    render.error(message)
    if hint and _debugging():
        render.info(hint)
    sys.exit(int(code))


def _debugging() -> bool:
    argv = _argv if _argv is not None else sys.argv[1:]
    return "--debug" in argv or os.environ.get("STREAMQ_DEBUG", "") not in ("", "0")
