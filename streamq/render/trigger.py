"""Rendering for ``config-trigger``: the settings view, the diff and the lint list."""

from __future__ import annotations

import sys
from collections.abc import Sequence
from typing import IO, Any

from . import _console, err_console, is_tty

SEVERITY_STYLE = {"error": "bold red", "warning": "yellow", "info": "cyan"}


def show_trigger(doc: dict[str, Any], out: IO[str] | None = None) -> None:
    """The read view: identifiers and status, then every setting, then the lints.

    Nothing is broken inside a word: an ARN that does not fit beside its name goes on
    its own line below it (render/layout.py)."""
    from . import print_fold, text_value

    console = _console(out or sys.stdout)
    head = [(name, text_value(doc.get(name)), "") for name in (
        "UUID", "FunctionArn", "EventSourceArn", "StartingPosition", "State",
        "StateTransitionReason", "LastProcessingResult", "LastModified")]
    print_fold(console, head)
    console.print()
    rows = []
    for row in doc["settings"]:
        mark = "default (unset)" if row["unset"] else "default" if row["default"] else ""
        rows.append((row["field"], row["display"], mark))
    print_fold(console, rows, headers=("SETTING", "VALUE"), name_style="")
    show_lints(doc["lints"], out=out or sys.stdout)


def show_diff(rows: Sequence[tuple[str, str, str]], out: IO[str] | None = None) -> None:
    """Rows of (field, current, new): three columns when every word fits beside the
    others; otherwise each field folds into `current` and `new` lines below it. An ARN
    is never broken."""
    from rich.text import Text

    from . import RAW
    from .layout import GAP, diff_widths, wrap_words

    console = _console(out or sys.stdout)
    widths = diff_widths(rows, console.width)
    if widths is not None:
        fw, cw, nw = widths
        console.print(Text(f"{'FIELD'.ljust(fw)}  {'CURRENT'.ljust(cw)}  NEW".rstrip(),
                           style="bold"), **RAW)
        for field, cur, new in rows:
            left, right = wrap_words(cur, cw), wrap_words(new, nw)
            for i in range(max(len(left), len(right))):
                line = Text((field if i == 0 else "").ljust(fw) + " " * GAP)
                line.append((left[i] if i < len(left) else "").ljust(cw), style="red")
                line.append(" " * GAP)
                line.append(right[i] if i < len(right) else "", style="green")
                line.rstrip()
                console.print(line, **RAW)
        return
    console.print(Text("FIELD / CURRENT / NEW", style="bold"), **RAW)
    for field, cur, new in rows:
        console.print(Text(field), **RAW)
        for label, value, style in (("current", cur, "red"), ("new", new, "green")):
            for i, part in enumerate(wrap_words(value, console.width - 12)):
                line = Text(f"    {label}".ljust(12) if i == 0 else " " * 12)
                line.append(part, style=style)
                console.print(line, **RAW)


def show_lints(lints: Sequence[dict[str, str]], out: IO[str] | None = None,
               title: str = "") -> None:
    """One line per lint: severity, code, message."""
    from rich.markup import escape

    stream = out or sys.stderr
    if not lints:
        return
    console = _console(stream) if stream is not sys.stderr else err_console()
    if title:
        console.print(f"[bold]{escape(title)}[/bold]")
    for lint in lints:
        style = SEVERITY_STYLE.get(lint["severity"], "")
        tag = f"{lint['severity']}[{lint['code']}]"
        if is_tty(stream):
            from rich.text import Text

            from . import RAW
            from .layout import wrap_words

            # Wrapped at spaces, continuation lines indented (never cut inside a word).
            lines = wrap_words(f"{tag} {lint['message']}", console.width - 2)
            first = Text(tag, style=style)
            first.append(lines[0][len(tag):])
            console.print(first, **RAW)
            for part in lines[1:]:
                console.print(Text("  " + part), **RAW)
        else:
            stream.write(f"{tag} {lint['message']}\n")
    stream.flush()


def show_target(uuid: str, function_arn: str, table: str, out: IO[str] | None = None) -> None:
    """Which mapping a change applies to, above its diff: UUID and full function ARN
    (never broken mid-value: an ARN that does not fit beside its name goes on its own
    line, as in the read view)."""
    from . import print_fold

    print_fold(_console(out or sys.stdout),
               [("trigger", f"{uuid} (table {table})", ""), ("function", function_arn, "")],
               name_style="")


def show_drift(doc: dict[str, Any], out: IO[str] | None = None) -> None:
    """``--check``: which trigger, then one row per field that differs from the file (or
    cannot be read), the file's value beside the live one; the fields not checked."""
    from rich.markup import escape
    from rich.table import Table

    console = _console(out or sys.stdout)
    console.print(f"trigger   {escape(str(doc['UUID']))} (state {escape(str(doc['State']))})",
                  soft_wrap=True)
    console.print(f"function  {escape(str(doc['FunctionArn']))}", soft_wrap=True)
    console.print(f"saved     {escape(str(doc['file']))}", soft_wrap=True)
    if doc["differences"]:
        t = Table(box=None, pad_edge=False, header_style="bold")
        t.add_column("FIELD")
        t.add_column("SAVED", overflow="fold")
        t.add_column("LIVE", overflow="fold")
        for row in doc["differences"]:
            live = escape(row["live_display"])
            t.add_row(row["field"], f"[green]{escape(row['saved_display'])}[/green]",
                      f"[yellow]{live}[/yellow]" if row["status"] == "unknown"
                      else f"[red]{live}[/red]")
        console.print(t)
    else:
        console.print(f"no differences in the {len(doc['checked'])} checked field(s)")
    if doc["unchecked"]:
        console.print(f"not in the file, not checked: {escape(', '.join(doc['unchecked']))}",
                      soft_wrap=True)
