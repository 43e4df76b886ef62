"""Rendering for ``streamq tail``: one line per record (a terminal), or JSON lines."""

from __future__ import annotations

import json
import sys
from typing import IO, TYPE_CHECKING, Any

from . import _console, dumps, is_tty

if TYPE_CHECKING:  # pragma: no cover
    from ..outbox import TableInfo
    from ..tail import Change, TailRecord, Verdict

EVENT_STYLE = {"INSERT": "cyan", "MODIFY": "yellow", "REMOVE": "magenta"}


def _short(value: Any, limit: int = 24) -> str:
    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False,
                                                             default=str)
    text = " ".join(str(text).split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def change_text(changes: list[Change]) -> str:
    from ..outbox import to_plain

    parts = []
    for c in changes:
        if c.kind == "added":
            assert c.new is not None
            parts.append(f"+{c.name}={_short(to_plain(c.new))}")
        elif c.kind == "removed":
            parts.append(f"-{c.name}")
        else:
            assert c.old is not None and c.new is not None
            parts.append(f"{c.name} {_short(to_plain(c.old))}→{_short(to_plain(c.new))}")
    return ", ".join(parts)


def verdict_text(v: Verdict) -> tuple[str, str]:
    """(text, style)."""
    if v.passes is None:
        return f"filter ? ({v.note})", "dim"
    if v.passes:
        if v.pattern is None:
            return "passes (no filter)", "green"
        return f"passes #{v.pattern}", "green"
    if len(v.drops) == 1:
        pattern, reason = v.drops[0]
        return f"DROPPED by #1 {_compact(pattern)}: {reason}", "bold red"
    # The telling reason: a pattern that got past eventName and failed deeper.
    index = next((i for i, (_, r) in enumerate(v.drops) if not r.startswith("eventName ")), 0)
    return (f"DROPPED by all {len(v.drops)} patterns (#{index + 1}: {v.drops[index][1]})",
            "bold red")


def _compact(pattern: str) -> str:
    try:
        return json.dumps(json.loads(pattern), separators=(",", ":"))
    except ValueError:
        return pattern


def record_parts(rec: TailRecord, info: TableInfo) -> dict[str, Any]:
    """The pieces of one record's line: time, event, key, verdict (and its style), what
    changed."""
    from datetime import datetime, timezone

    from ..outbox import key_text

    verdict, vstyle = verdict_text(rec.verdict)
    if rec.event_name == "MODIFY":
        what = change_text(rec.changes) if rec.changes else (
            "(no images: KEYS_ONLY stream)" if rec.new_image is None else "(no change)")
    elif rec.event_name == "INSERT":
        n = len(rec.new_image or {})
        what = f"new item, {n} attribute(s)" if rec.new_image is not None else ""
    else:
        what = "deleted"
    return {"time": datetime.fromtimestamp(rec.created, tz=timezone.utc).strftime("%H:%M:%S"),
            "event": rec.event_name, "key": key_text(rec.key, info), "verdict": verdict,
            "verdict_style": vstyle, "what": what}


def record_line(rec: TailRecord, info: TableInfo) -> str:
    """One line per record (for a pipe or a file)."""
    p = record_parts(rec, info)
    line = f"{p['time']} {p['event']:<6} {p['key']}  {p['verdict']}"
    return line + (f"  {p['what']}" if p["what"] else "")


class TailPrinter:
    """Writes each record as it comes: ``table`` (a line for people) or ``jsonl``."""

    def __init__(self, fmt: str, info: TableInfo, out: IO[str] | None = None) -> None:
        self.fmt, self.info = fmt, info
        self.out = out or sys.stdout
        self._console = _console(self.out) if fmt == "table" and is_tty(self.out) else None

    def write(self, rec: TailRecord) -> None:
        if self.fmt == "jsonl":
            self.out.write(dumps(rec.to_json(self.info)) + "\n")
        elif self._console is not None:
            # A terminal: the time in its own column, the record folded beside it and what
            # changed on a line of its own, so an 80-column screen stays readable.
            from rich.markup import escape
            from rich.table import Table

            p = record_parts(rec, self.info)
            ev = EVENT_STYLE.get(p["event"], "")
            body = (f"[{ev}]{p['event']:<6}[/{ev}] [bold]{escape(p['key'])}[/bold]  "
                    f"[{p['verdict_style']}]{escape(p['verdict'])}[/{p['verdict_style']}]")
            if p["what"]:
                body += "\n" + escape(p["what"])
            grid = Table.grid(padding=(0, 1))
            grid.add_column(no_wrap=True, style="dim")
            grid.add_column(overflow="fold")
            grid.add_row(p["time"], body)
            self._console.print(grid)
        else:
            self.out.write(record_line(rec, self.info) + "\n")
        self.out.flush()
