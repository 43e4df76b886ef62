"""Rendering for ``streamq doctor``: one screen of checks, worst news first in the tally."""

from __future__ import annotations

import sys
from typing import IO, Any

from . import _console

STATUS_STYLE = {"ok": "green", "warn": "yellow", "fail": "bold red", "skip": "dim"}


def show_doctor(doc: dict[str, Any], out: IO[str] | None = None) -> None:
    """The checks as a table (status, check, detail with its hint below it)."""
    from rich.markup import escape
    from rich.table import Table

    console = _console(out or sys.stdout)
    head = f"[bold]{escape(doc['table'])}[/bold]"
    if doc.get("function"):
        head += f" · function {escape(doc['function'])}"
    since = doc.get("since_seconds")
    if since:
        from ..durations import humanize

        head += f" · metrics over the last {humanize(since)}"
    console.print(head)
    t = Table(box=None, pad_edge=False, header_style="bold", show_edge=False)
    t.add_column("STATUS", no_wrap=True)
    t.add_column("CHECK", no_wrap=True)
    t.add_column("DETAIL", overflow="fold", ratio=1)
    for check in doc["checks"]:
        style = STATUS_STYLE.get(check["status"], "")
        detail = escape(check["detail"])
        if check.get("hint") and check["status"] != "ok":
            detail += f"\n[cyan]→ {escape(check['hint'])}[/cyan]"
        t.add_row(f"[{style}]{check['status']}[/{style}]", escape(check["name"]), detail)
    console.print(t)
    summary = doc["summary"]
    parts = [f"[{STATUS_STYLE[s]}]{summary[s]} {s}[/{STATUS_STYLE[s]}]"
             for s in ("fail", "warn", "ok", "skip") if summary.get(s)]
    verdict = {"ok": "[green]healthy[/green]", "warn": "[yellow]healthy, with warnings"
               "[/yellow]", "fail": "[bold red]unhealthy[/bold red]"}[doc["status"]]
    console.print(f"{verdict}: " + ", ".join(parts))
