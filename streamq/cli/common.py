"""Options every command takes (outbox + AWS), and the wrapper that resolves them.

``@outbox_command`` appends the shared options to a command's signature, so
``streamq list --region eu-west-1`` works as well as ``streamq --region
eu-west-1 list`` (the AWS CLI accepts both), and hands the command a resolved
:class:`~streamq.config.Settings`.
"""

from __future__ import annotations

import contextlib
import enum
import functools
import gc
import inspect
import typing
from collections.abc import Callable, Iterator
from typing import Annotated, Any, TypeVar

import typer

from .. import config
from ..errors import BadInput, Interrupted

F = TypeVar("F", bound=Callable[..., Any])

OUTBOX = "Outbox"
AWS = "AWS"


def _opt(*decls: str, help: str, panel: str = OUTBOX, **kw: Any) -> Any:
    return typer.Option(*decls, help=help, rich_help_panel=panel, show_default=False, **kw)


#: name -> (annotation, default). Every value defaults to None = "not given".
COMMON: dict[str, Any] = {
    "table": Annotated[str | None, _opt("--table", "-t", help="Outbox table name.",
                                        envvar=None)],
    "outbox": Annotated[str | None, _opt(
        "--outbox", help="Named [outbox.NAME] section of streamq.toml.")],
    "function": Annotated[str | None, _opt(
        "--function", help="Trigger's Lambda function when the stream has several: NAME "
        "(unqualified), NAME:ALIAS, NAME:VERSION or its ARN; matched as the full ARN.")],
    "created_attr": Annotated[str | None, _opt(
        "--created-attr", help="Creation-time attribute [default: created_at].")],
    "error_attr": Annotated[str | None, _opt(
        "--error-attr", help="Last-error attribute [default: last_error].")],
    "attempts_attr": Annotated[str | None, _opt(
        "--attempts-attr", help="Attempt-counter attribute [default: attempts].")],
    "refired_attr": Annotated[str | None, _opt(
        "--refired-attr", help="Attribute refire stamps with the time [default: refired_at].")],
    "refire_count_attr": Annotated[str | None, _opt(
        "--refire-count-attr", help="Attribute refire increments [default: refire_count].")],
    "refire_run_attr": Annotated[str | None, _opt(
        "--refire-run-attr", help="Attribute refire sets to its run token [default: refire_run].")],
    "stuck_after": Annotated[str | None, _opt(
        "--stuck-after", help="Age after which a record without error is stuck [default: 5m].")],
    "last_attempt_attr": Annotated[str | None, _opt(
        "--last-attempt-attr",
        help="Last-attempt time attribute [default: last_attempt_at].")],
    "backoff": Annotated[str | None, _opt(
        "--backoff", help="Retry backoff, any of base, factor, jitter, cap "
        "[default: base=1m,factor=2,jitter=0.2,cap=6h].")],
    "max_attempts": Annotated[int | None, _opt(
        "--max-attempts", help="Attempts after which a failed record is dead [default: 8].")],
    "profile": Annotated[str | None, _opt("--profile", help="AWS profile.", panel=AWS)],
    "region": Annotated[str | None, _opt("--region", help="AWS region.", panel=AWS)],
    "endpoint_url": Annotated[str | None, _opt(
        "--endpoint-url", help="AWS endpoint URL (or AWS_ENDPOINT_URL).", panel=AWS)],
    "sandbox": Annotated[bool, _opt(
        "--sandbox", help="Use the running local sandbox (or STREAMQ_SANDBOX=1).", panel=AWS)],
    "debug": Annotated[bool, _opt("--debug", help="Show tracebacks and the chosen access path.",
                                  panel=AWS)],
}
COMMON_DEFAULTS = {"sandbox": False, "debug": False}


def _root_obj(ctx: typer.Context | None) -> dict[str, Any]:
    if ctx is None:
        return {}
    root = ctx.find_root()
    if not isinstance(root.obj, dict):
        root.obj = {}
    return root.obj  # type: ignore[no-any-return]


def resolve_settings(ctx: typer.Context | None, flags: dict[str, Any]) -> config.Settings:
    """Command flags over the root's (``streamq --region X list`` = ``streamq list --region X``)."""
    root = _root_obj(ctx)
    # "Not given" is None (or False for a switch); 0 is a value (0 == False in Python).
    merged = {k: v for k, v in root.items() if v is not None and v is not False}
    merged.update({k: v for k, v in flags.items() if v is not None and v is not False})
    return config.resolve(merged, sandbox=running_sandbox)


def running_sandbox() -> config.SandboxTarget | None:
    """The running sandbox's endpoint and names, for ``--sandbox`` (imported only then:
    settings resolution does not know the sandbox)."""
    from ..sandbox.state import running_sandbox as lookup

    return lookup()


CTX_PARAM = "streamq_ctx"


def with_common_params(target: Callable[..., Any], source: Callable[..., Any]) -> None:
    """Give ``target`` the signature of ``source`` (less ``settings`` and ``**kw``) plus
    the shared options, so typer builds the options from it."""
    sig = inspect.signature(source)
    hints = {name: _explicit(hint)
             for name, hint in typing.get_type_hints(source, include_extras=True).items()}
    own = [p.replace(annotation=hints.get(p.name, p.annotation))
           for p in sig.parameters.values()
           if p.name != "settings" and p.kind is not p.VAR_KEYWORD]
    extra = [inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, annotation=ann,
                               default=COMMON_DEFAULTS.get(name))
             for name, ann in COMMON.items()]
    if not any(p.annotation is typer.Context for p in own):
        extra.append(inspect.Parameter(CTX_PARAM, inspect.Parameter.KEYWORD_ONLY,
                                       annotation=typer.Context))
    target.__signature__ = sig.replace(parameters=[*own, *extra])  # type: ignore[attr-defined]
    target.__annotations__ = {**{p.name: p.annotation for p in own}, **COMMON,
                              CTX_PARAM: typer.Context}


def _explicit(hint: Any) -> Any:
    """The annotation as written. Python 3.10's get_type_hints wraps the annotation of a
    parameter that defaults to None in Optional[...] (3.11 no longer does): an
    ``Optional[Annotated[T, typer.Option("--id", ...)]]`` hides the option's names and
    help from typer, so on 3.10 ``refire --id`` became ``--ids`` and ``-o`` vanished."""
    if typing.get_origin(hint) is typing.Union:
        args = [a for a in typing.get_args(hint) if a is not type(None)]
        if len(args) == 1 and typing.get_origin(args[0]) is typing.Annotated:
            return args[0]
    return hint


def outbox_command(func: F) -> F:
    """Add the shared options and pass ``settings=`` to the command."""

    @functools.wraps(func)
    def wrapper(**kwargs: Any) -> Any:
        flags = {name: kwargs.pop(name, None) for name in COMMON}
        settings = resolve_settings(kwargs.pop(CTX_PARAM, None), flags)
        from .. import render

        # --debug: the library's `streamq` log (access paths, ...) as debug: lines.
        with render.debug_logging(settings.debug):
            return run_guarded(func, settings=settings, **kwargs)

    with_common_params(wrapper, func)
    return wrapper  # type: ignore[return-value]


def run_guarded(func: Callable[..., Any], **kwargs: Any) -> Any:
    """Ctrl-C inside a command is an :class:`Interrupted` (exit 130), not click's Abort.
    While the command runs, a request the endpoint leaves unanswered for a few seconds is
    shown on the terminal (streamq.render.waiting)."""
    from ..render.waiting import watch

    try:
        with watch():
            return func(**kwargs)
    except KeyboardInterrupt:
        raise Interrupted("interrupted") from None
    except BrokenPipeError:
        # Not an OSError to click (which would exit 1): main() ends quietly with 0.
        raise ReaderGone() from None


class ReaderGone(Exception):
    """The reader of stdout went away (``streamq list | head``): not our failure."""


class Output(str, enum.Enum):
    table = "table"
    json = "json"
    jsonl = "jsonl"
    csv = "csv"
    ids = "ids"


class TableOrJson(str, enum.Enum):
    table = "table"
    json = "json"


class SortOrder(str, enum.Enum):
    age = "age"
    oldest = "-age"


def value_of(choice: enum.Enum | None) -> str | None:
    return None if choice is None else str(choice.value)


def choice(value: str | None, allowed: tuple[str, ...], option: str) -> str | None:
    if value is not None and value not in allowed:
        raise BadInput(f"invalid {option} {value!r}: use one of {', '.join(allowed)}")
    return value


@contextlib.contextmanager
def bulk_reading() -> Iterator[None]:
    """Around a scan: a page is a few thousand small dicts, made and dropped again; at
    the default thresholds the cyclic collector runs every 700 of them and, every few
    runs, walks the whole heap (botocore's service models among it). Items hold no
    cycles (reference counting frees them), so what exists is frozen out of the
    collector's reach and the young generation is collected every 100,000 objects.
    The process is the CLI's own; the library never touches the collector."""
    old = gc.get_threshold()
    gc.freeze()
    gc.set_threshold(100_000, old[1], old[2])
    try:
        yield
    finally:
        gc.set_threshold(*old)
        gc.unfreeze()
