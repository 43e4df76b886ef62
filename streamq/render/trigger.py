"""Rendering for ``config-trigger``: the settings view, the diff and the lint list."""

from __future__ import annotations

import sys
from collections.abc import Sequence
from typing import IO, Any

from . import _console, err_console, is_tty

SEVERITY_STYLE = {"error": "bold red", "warning": "yellow", "info": "cyan"}


def show_trigger(doc: dict[str, Any], out: IO[str] | None = None) -> None:
    """The read view: identifiers and status, then every setting, then the lints."""
    from rich.markup import escape
    from rich.table import Table

    console = _console(out or sys.stdout)
    head = Table.grid(padding=(0, 2))
    head.add_column(style="bold")
    head.add_column(overflow="fold")
    for name in ("UUID", "FunctionArn", "EventSourceArn", "StartingPosition", "State",
                 "StateTransitionReason", "LastProcessingResult", "LastModified"):
        value = doc.get(name)
        head.add_row(name, escape("-" if value in (None, "") else str(value)))
    console.print(head)
    console.print()
    t = Table(box=None, pad_edge=False, header_style="bold")
    t.add_column("SETTING")
    t.add_column("VALUE", overflow="fold")
    t.add_column("")
    for row in doc["settings"]:
        mark = "default (unset)" if row["unset"] else "default" if row["default"] else ""
        t.add_row(row["field"], escape(row["display"]), f"[dim]{mark}[/dim]" if mark else "")
    console.print(t)
    show_lints(doc["lints"], out=out or sys.stdout)


def show_diff(rows: Sequence[tuple[str, str, str]], out: IO[str] | None = None) -> None:
    """Rows of (field, current, new)."""
    from rich.markup import escape
    from rich.table import Table

    t = Table(box=None, pad_edge=False, header_style="bold")
    t.add_column("FIELD")
    t.add_column("CURRENT", overflow="fold")
    t.add_column("NEW", overflow="fold")
    for field, cur, new in rows:
        t.add_row(field, f"[red]{escape(cur)}[/red]", f"[green]{escape(new)}[/green]")
    _console(out or sys.stdout).print(t)


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
            console.print(f"[{style}]{escape(tag)}[/{style}] {escape(lint['message'])}",
                          soft_wrap=True)
        else:
            stream.write(f"{tag} {lint['message']}\n")
    stream.flush()


def show_target(uuid: str, function_arn: str, table: str, out: IO[str] | None = None) -> None:
    """Which mapping a change applies to, above its diff: UUID and full function ARN
    (never folded mid-value: a long line wraps as the terminal wraps it)."""
    from rich.markup import escape

    console = _console(out or sys.stdout)
    console.print(f"trigger   {escape(uuid)} (table {escape(table)})", soft_wrap=True)
    console.print(f"function  {escape(function_arn)}", soft_wrap=True)


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
