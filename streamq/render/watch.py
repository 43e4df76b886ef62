"""Rendering for ``streamq watch``: a live view on a terminal, a JSON line per refresh
otherwise."""

from __future__ import annotations

import sys
from collections.abc import Sequence
from typing import IO, Any

from ..durations import humanize
from . import STATUS_STYLE, _console, dumps

BARS = "▁▂▃▄▅▆▇█"
LABEL_WIDTH = 12


def sparkline(values: Sequence[float], width: int) -> str:
    """The last ``width`` values as bars scaled from 0 to their maximum."""
    tail = list(values)[-width:] if width > 0 else []
    if not tail:
        return ""
    top = max(tail)
    if top <= 0:
        return BARS[0] * len(tail)
    return "".join(BARS[min(len(BARS) - 1, int(v / top * (len(BARS) - 1) + 0.5))]
                   for v in tail)


def _age(ms: float | None) -> str:
    if ms is None:
        return "?"
    seconds = ms / 1000
    return f"{seconds:.1f}s" if seconds < 60 else humanize(seconds)


def view(doc: dict[str, Any], history: Sequence[dict[str, int]], *, width: int,
         interval: float) -> Any:
    """The live view of one snapshot (``Snapshot.to_json``) and the counts' history."""
    from rich.console import Group
    from rich.markup import escape
    from rich.table import Table
    from rich.text import Text

    clock = doc["time"][11:19]
    head = Text.from_markup(f"[bold]{escape(doc['table'])}[/bold] · every {interval:g}s · "
                            f"{clock} UTC · Ctrl-C stops", overflow="fold")
    grid = Table.grid(padding=(0, 1))
    grid.add_column(width=LABEL_WIDTH, no_wrap=True, style="bold")
    grid.add_column(overflow="fold")
    errors = doc.get("errors") or {}

    # The outbox: counts and their history.
    if doc.get("counts") is not None:
        oldest = doc.get("oldest_age_seconds")
        grid.add_row("OUTBOX", f"{doc['total']} record(s)"
                     + (f" · oldest {humanize(oldest)}" if oldest is not None else ""))
        # label, gap, status (8), gap, count (6), gap: what is left is the sparkline's
        spark_width = max(8, min(len(history) or 1, width - LABEL_WIDTH - 1 - 8 - 1 - 6 - 1))
        counts = doc["counts"]
        sub = Table.grid(padding=(0, 1))
        sub.add_column(width=8, no_wrap=True)
        sub.add_column(justify="right", width=6, no_wrap=True)
        sub.add_column(no_wrap=True, overflow="crop")
        for status, n in counts.items():
            style = STATUS_STYLE.get(status, "")
            series = [h.get(status, 0) for h in history] or [n]
            sub.add_row(f"[{style}]{status}[/{style}]" if style else status, str(n),
                        f"[{style}]{sparkline(series, spark_width)}[/{style}]"
                        if style else sparkline(series, spark_width))
        grid.add_row("", sub)
    else:
        grid.add_row("OUTBOX", f"[yellow]{escape(errors.get('outbox', 'not counted'))}"
                     "[/yellow]")

    # The trigger.
    trig = doc.get("trigger")
    if trig is not None:
        state = str(trig.get("state"))
        style = "green" if state == "Enabled" else "bold red" if state.startswith(
            "Disabl") else "yellow"
        last = trig.get("last_processing_result")
        grid.add_row("TRIGGER", f"{escape(str(trig.get('function')))} · [{style}]"
                     f"{escape(state)}[/{style}]"
                     + (f" · last result {escape(str(last))}" if last else ""))
    else:
        grid.add_row("TRIGGER", f"[yellow]{escape(errors.get('trigger', 'none'))}[/yellow]")

    # The function's metrics.
    m = doc.get("metrics")
    if m is not None:
        if m["no_metrics"]:
            grid.add_row("LAMBDA", f"[dim]no metrics in CloudWatch for the last "
                         f"{m['window_minutes']} min (nothing invoked)[/dim]")
        else:
            err_style = "bold red" if m["errors_per_min"] else ""
            errs = f"{m['errors_per_min']:g} errors/min"
            grid.add_row("LAMBDA", f"{m['invocations_per_min']:g} invocations/min · "
                         + (f"[{err_style}]{errs}[/{err_style}]" if err_style else errs)
                         + (f" · {m['throttles_per_min']:g} throttles/min"
                            if m["throttles_per_min"] else "")
                         + f" · iterator age {_age(m['iterator_age_ms'])}"
                         + " [dim](CloudWatch, last 5 min)[/dim]")
    elif "metrics" in errors:
        grid.add_row("LAMBDA", f"[yellow]{escape(errors['metrics'])}[/yellow]")

    # The on-failure destination.
    d = doc.get("destination")
    if d is not None:
        name = f"{d['kind'].upper()} {escape(d['name'])}"
        if not d["exists"]:
            grid.add_row("DESTINATION", f"{name}: [bold red]does not exist[/bold red]")
        elif d["backlog"] is None:
            grid.add_row("DESTINATION", f"{name} (no backlog to count)")
        elif d["backlog"]:
            more = "+" if d.get("backlog_more") else ""
            grid.add_row("DESTINATION", f"{name}: [yellow]{d['backlog']}{more} batch(es) "
                         "given up on[/yellow]")
        else:
            grid.add_row("DESTINATION", f"{name}: empty")
    elif "destination" in errors:
        grid.add_row("DESTINATION", f"[yellow]{escape(errors['destination'])}[/yellow]")
    elif trig is not None:
        grid.add_row("DESTINATION", "[yellow]none[/yellow]")
    foot = Text.from_markup(f"[dim]refreshed in {doc.get('seconds', 0):.1f}s[/dim]")
    return Group(head, grid, foot)


class WatchPrinter:
    """A rich Live view on a terminal (``table``), else one JSON line per refresh."""

    def __init__(self, fmt: str, out: IO[str] | None = None) -> None:
        self.fmt = fmt
        self.out = out or sys.stdout
        self._live: Any = None

    def show(self, doc: dict[str, Any], history: Sequence[dict[str, int]],
             interval: float) -> None:
        if self.fmt == "json":
            self.out.write(dumps(doc) + "\n")
            self.out.flush()
            return
        console = _console(self.out)
        renderable = view(doc, history, width=console.width, interval=interval)
        if self._live is None:
            from rich.live import Live

            self._live = Live(renderable, console=console, auto_refresh=False,
                              redirect_stdout=False, redirect_stderr=False)
            self._live.start(refresh=True)
        else:
            self._live.update(view(doc, history, width=self._live.console.width,
                                   interval=interval), refresh=True)

    def close(self) -> None:
        if self._live is not None:
            self._live.stop()
            self._live = None
