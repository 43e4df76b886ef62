"""Usage errors that typer raises, in streamq's one error style; metavars for help.

typer (0.29 and later) bundles its own copy of click, and older typer uses the ``click``
package: this module never imports either. It finds click's exception classes through
the one typer exports (``typer.BadParameter``), and reads exceptions and parameters by
duck typing, so it works with both.

A usage error becomes one line, ``streamq: error: invalid --limit '0': must be at least
1 (see: streamq list --help)``, with exit code 2: no usage block, no ``Value error,``
prefix from pydantic (which typer 0.29 validates with), no internal type names.
"""

from __future__ import annotations

import enum
import re
from typing import Any

import typer


def _click_class(name: str) -> type[BaseException]:
    for cls in typer.BadParameter.__mro__:
        if cls.__name__ == name:
            return cls  # type: ignore[no-any-return]
    raise RuntimeError(f"typer.BadParameter does not derive from {name}")  # pragma: no cover


#: click's base of every error it shows to the user (exit_code 1, or 2 for usage errors).
ClickException = _click_class("ClickException")
#: click's usage errors: bad option value, unknown option, missing argument (exit 2).
UsageError = _click_class("UsageError")

# pydantic error types (typer 0.29 validates values through pydantic) -> our wording.
_BOUNDS = {"greater_than_equal": ("ge", "must be at least {}"),
           "less_than_equal": ("le", "must be at most {}"),
           "greater_than": ("gt", "must be more than {}"),
           "less_than": ("lt", "must be less than {}")}
_KINDS = {"int_parsing": "not a whole number", "int_type": "not a whole number",
          "int_from_float": "not a whole number", "float_parsing": "not a number",
          "float_type": "not a number", "bool_parsing": "not true or false",
          "bool_type": "not true or false"}


def _flat(text: str) -> str:
    """One line: whitespace runs collapsed, no trailing period, lower-case start."""
    text = " ".join(str(text).split()).rstrip(".")
    text = re.sub(r"^Value error, ", "", text)
    return text[:1].lower() + text[1:] if text[1:2].islower() else text


def _choices(param: Any) -> list[str] | None:
    for holder in (getattr(param, "type_descriptor", None), getattr(param, "type", None)):
        choices = getattr(holder, "choices", None)
        if choices:
            return [str(c.value) if isinstance(c, enum.Enum) else str(c) for c in choices]
    return None


def _one_of(choices: list[str]) -> str:
    return choices[0] if len(choices) == 1 else ", ".join(choices[:-1]) + " or " + choices[-1]


def param_name(param: Any) -> str:
    """``--output`` for an option (its longest name), ``KEY`` for an argument."""
    if getattr(param, "param_type_name", "") == "argument":
        return str(param.metavar or param.name or "argument").upper()
    opts = [*getattr(param, "opts", []), *getattr(param, "secondary_opts", [])]
    return max(opts, key=len) if opts else str(getattr(param, "name", "value"))


def _pydantic_detail(exc: BaseException, param: Any) -> tuple[str | None, Any]:
    """(detail, the value given) from the pydantic error typer raised from, if any."""
    cause = exc.__cause__
    errors = getattr(cause, "errors", None)
    if not callable(errors):
        return None, None
    try:
        first = errors()[0]
    except (IndexError, TypeError, ValueError):
        return None, None
    kind, value, ctx = first.get("type"), first.get("input"), first.get("ctx") or {}
    if kind in _BOUNDS:
        key, text = _BOUNDS[kind]
        if key in ctx:
            bound = ctx[key]
            return text.format(f"{bound:g}" if isinstance(bound, float) else bound), value
    if kind in _KINDS:
        return _KINDS[kind], value
    if kind == "value_error" and _choices(param):
        return f"use {_one_of(_choices(param) or [])}", value
    return _flat(str(first.get("msg", ""))), value


def _shown(value: Any) -> str:
    if isinstance(value, (list, tuple)):
        value = " ".join(str(v) for v in value)
    return repr(str(value)) if value is not None else ""


def message(exc: BaseException) -> str:
    """The one line (without ``streamq: error:``) for a click/typer exception."""
    param = getattr(exc, "param", None)
    name = type(exc).__name__
    text: str
    if name == "MissingParameter" and param is not None:
        what = "argument" if getattr(param, "param_type_name", "") == "argument" else "option"
        text = f"missing {what} {param_name(param)}"
        if _choices(param):
            text += f" ({_one_of(_choices(param) or [])})"
    elif name == "NoSuchOption":
        text = f"no such option {getattr(exc, 'option_name', '')}".rstrip()
        maybe = sorted(getattr(exc, "possibilities", None) or [])
        if maybe:
            text += f" (did you mean {_one_of(maybe)}?)"
    elif isinstance(exc, typer.BadParameter) and param is not None:
        detail, value = _pydantic_detail(exc, param)
        if detail is None:
            detail = _flat(getattr(exc, "message", str(exc)))
            if _choices(param) and "not one of" in detail:
                detail = f"use {_one_of(_choices(param) or [])}"
        shown = _shown(value)
        text = f"invalid {param_name(param)}{' ' + shown if shown else ''}: {detail}"
    else:
        fmt = getattr(exc, "format_message", None)
        text = _flat(fmt() if callable(fmt) else str(exc))
    return text


def command_path(root: Any, argv: list[str], prog: str = "streamq") -> str:
    """The sub-command named in ``argv`` (``streamq sandbox seed``), for errors that
    click raises without a context (an option missing its value)."""
    path, cmd = [prog], root
    for token in argv:
        sub = (getattr(cmd, "commands", None) or {}).get(token)
        if sub is not None:
            path.append(token)
            cmd = sub
        elif not token.startswith("-") and getattr(cmd, "commands", None) is None:
            break
    return " ".join(path)


def usage_line(exc: BaseException, root: Any = None, argv: list[str] | None = None) -> str:
    ctx = getattr(exc, "ctx", None)
    path = getattr(ctx, "command_path", None)
    if not path:
        path = command_path(root, argv or []) if root is not None else "streamq"
    return f"{message(exc)} (see: {path} --help)"


# ---------------------------------------------------------------------------- metavars


def _keep_examples(command: Any) -> None:
    """Example command lines in help are never re-wrapped (a wrapped example breaks at a
    hyphen and cannot be copied): click's ``\\b`` marks those paragraphs."""
    import inspect

    text = getattr(command, "help", None)
    if not text or "Examples:" not in text:
        return
    paragraphs = inspect.cleandoc(text).split("\n\n")
    seen = False
    for i, para in enumerate(paragraphs):
        if para.strip() == "Examples:":
            seen = True
        elif seen and para.lstrip().startswith("streamq ") and "\b" not in para:
            paragraphs[i] = f"\b\n{para}"
    command.help = "\n\n".join(paragraphs)



#: Metavars by parameter name, shared by every command that has the option.
METAVARS = {
    "table": "NAME", "outbox": "NAME", "function": "NAME", "index": "NAME",
    "created_attr": "NAME", "error_attr": "NAME", "attempts_attr": "NAME",
    "refired_attr": "NAME", "refire_count_attr": "NAME", "refire_run_attr": "NAME",
    "profile": "NAME", "region": "REGION", "endpoint_url": "URL",
    "status": "STATUS", "older_than": "AGE", "stuck_after": "AGE", "where": "COND",
    "limit": "N", "segments": "N", "segment": "I/N", "ids": "KEY", "ids_from": "FILE",
    "journal": "FILE", "resume": "FILE", "uuid": "UUID", "rate": "N", "concurrency": "N",
    "batch_size": "N", "batching_window": "SECONDS", "retry_attempts": "N",
    "max_record_age": "AGE", "parallelization": "N", "event_filter": "EVENTS",
    "filter_pattern": "JSON", "on_failure": "ARN", "tumbling_window": "SECONDS",
    "starting_position": "POSITION", "from_file": "FILE", "wait_timeout": "AGE",
    "port": "PORT", "handler": "MODULE:FUNCTION", "api_rate": "N", "undeliverable": "REGEX",
    "timeout": "SECONDS", "count": "N", "undeliverable_every": "N", "poison": "N",
    "lines": "N", "every": "INTERVAL", "backoff": "SPEC", "last_attempt_attr": "NAME",
    "max_attempts": "N",
}


def _metavar(param: Any) -> str:
    choices = _choices(param)
    if choices:
        return "[" + "|".join(choices) + "]"
    if param.name in METAVARS:
        return METAVARS[param.name]
    annotation = getattr(getattr(param, "type_descriptor", None), "annotation", None)
    for arg in (*getattr(annotation, "__args__", ()), annotation):
        if arg in (int, float):
            return "N"
        if isinstance(arg, type) and arg.__name__.endswith("Path"):
            return "FILE"
    kind = str(getattr(getattr(param, "type", None), "name", ""))
    return {"integer": "N", "float": "N", "path": "FILE"}.get(kind, "TEXT")


def name_metavars(command: Any) -> None:
    """Give every option and argument of ``command`` (and its sub-commands) that has no
    metavar a readable one (``[table|json]``, ``AGE``, ``KEY``), so help never
    shows typer's internal type names (``<list[str]>``, ``<int range>``)."""
    _keep_examples(command)
    for param in getattr(command, "params", []):
        if getattr(param, "metavar", None) is not None:
            continue
        if getattr(param, "param_type_name", "") == "argument":
            param.metavar = str(param.name).upper()
            if hasattr(param, "display_type_rich"):  # typer 0.29: `KEY <str>` otherwise
                choices = _choices(param)
                shown = "[" + "|".join(choices) + "]" if choices else None
                param.display_type_rich = lambda ctx, shown=shown: shown
        elif not (getattr(param, "is_flag", False) or getattr(param, "count", False)):
            param.metavar = _metavar(param)
    for sub in (getattr(command, "commands", None) or {}).values():
        name_metavars(sub)
