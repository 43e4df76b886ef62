"""Rendering for ``streamq doctor``: one screen of checks, worst news first in the tally."""

from __future__ import annotations

import sys
from typing import IO, Any

from . import _console

STATUS_STYLE = {"ok": "green", "warn": "yellow", "fail": "bold red", "skip": "dim"}


def show_doctor(doc: dict[str, Any], out: IO[str] | None = None) -> None:
    """The checks as a table (status, check, detail with its hint below it)."""
    from rich.markup import escape

    console = _console(out or sys.stdout)
    head = f"[bold]{escape(doc['table'])}[/bold]"
    if doc.get("function"):
        head += f" · function {escape(doc['function'])}"
    since = doc.get("since_seconds")
    if since:
        from ..durations import humanize

        head += f" · metrics over the last {humanize(since)}"
    console.print(head)
    # Laid out by hand (render/layout.py): the detail wraps at spaces only, so a hint's
    # command (a JSON filter pattern, an ARN) is never cut inside a word and stays
    # copyable; a word longer than the column runs on, as the terminal wraps it.
    from rich.text import Text

    from . import RAW
    from .layout import GAP, wrap_words

    checks = doc["checks"]
    sw = max([len("STATUS"), *(len(c["status"]) for c in checks)])
    cw = max([len("CHECK"), *(len(c["name"]) for c in checks)])
    dw = max(console.width - sw - cw - 2 * GAP, 20)
    pad = " " * (sw + cw + 2 * GAP)
    console.print(Text(f"{'STATUS'.ljust(sw)}  {'CHECK'.ljust(cw)}  DETAIL", style="bold"),
                  **RAW)
    for check in checks:
        style = STATUS_STYLE.get(check["status"], "")
        lines = [(part, "") for part in wrap_words(check["detail"], dw)]
        if check.get("hint") and check["status"] != "ok":
            hint = wrap_words(f"→ {check['hint']}", dw - 2)
            lines += [(("" if i == 0 else "  ") + part, "cyan") for i, part in enumerate(hint)]
        for i, (part, part_style) in enumerate(lines):
            line = Text()
            if i == 0:
                line.append(check["status"].ljust(sw), style=style)
                line.append(" " * GAP + check["name"].ljust(cw) + " " * GAP)
            else:
                line.append(pad)
            line.append(part, style=part_style)
            console.print(line, **RAW)
    summary = doc["summary"]
    parts = [f"[{STATUS_STYLE[s]}]{summary[s]} {s}[/{STATUS_STYLE[s]}]"
             for s in ("fail", "warn", "ok", "skip") if summary.get(s)]
    verdict = {"ok": "[green]healthy[/green]", "warn": "[yellow]healthy, with warnings"
               "[/yellow]", "fail": "[bold red]unhealthy[/bold red]"}[doc["status"]]
    console.print(f"{verdict}: " + ", ".join(parts))
