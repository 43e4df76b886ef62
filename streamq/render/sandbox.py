"""Rendering for ``streamq sandbox``: the status view and plain lines."""

from __future__ import annotations

import sys
from typing import IO, Any

from ..durations import humanize
from . import _console


def print_line(text: str, out: IO[str] | None = None) -> None:
    out = out or sys.stdout
    out.write(text + "\n")
    out.flush()


def show_status(doc: dict[str, Any], out: IO[str] | None = None) -> None:
    from rich.markup import escape
    from rich.table import Table

    console = _console(out or sys.stdout)
    if not doc["running"]:
        console.print("[bold]sandbox[/bold]: [yellow]not running[/yellow] "
                      "(start it with: streamq sandbox up)")
        if doc.get("stale_state"):
            console.print(f"[dim]stale state of pid {doc['stale_state'].get('pid')} in "
                          f"{escape(doc['state_dir'])}[/dim]")
        return
    console.print(f"[bold]sandbox[/bold]: [green]running[/green] at {escape(doc['endpoint'])}"
                  f" (pid {doc['pid']}, up {humanize(doc['uptime_seconds'])})")
    rows = [("table", doc["table"]), ("history table", doc["history_table"]),
            ("function", doc["function"]), ("handler", doc["handler"]),
            ("on-failure queue", doc["queue_url"]), ("region", doc["region"]),
            ("state dir", doc["state_dir"]), ("log", doc["log"])]
    poller = doc.get("poller") or {}
    if poller:
        settings = poller.get("settings") or {}
        rows += [
            ("poller", str(poller.get("state"))),
            ("trigger", f"batch {settings.get('BatchSize')}, window "
                        f"{settings.get('MaximumBatchingWindowInSeconds')}s, retries "
                        f"{settings.get('MaximumRetryAttempts')}, bisect "
                        f"{settings.get('BisectBatchOnFunctionError')}, max age "
                        f"{settings.get('MaximumRecordAgeInSeconds')}"),
            ("invocations", f"{poller.get('invocations', 0)} "
                            f"({poller.get('function_errors', 0)} function errors)"),
            ("records", f"{poller.get('records_delivered', 0)} handled, "
                        f"{poller.get('records_filtered', 0)} filtered out, "
                        f"{poller.get('records_discarded', 0)} discarded"),
            ("retries / bisects", f"{poller.get('retries', 0)} / {poller.get('bisects', 0)}"),
            ("on-failure messages", str(poller.get("dlq_messages", 0))),
            ("checkpoint", str(poller.get("checkpoint") or "-")),
        ]
        if poller.get("last_error"):
            rows.append(("last error", str(poller["last_error"])))
    t = Table(box=None, pad_edge=False, show_header=False)
    t.add_column(style="bold")
    t.add_column(overflow="fold")
    for k, v in rows:
        t.add_row(escape(k), escape(str(v)))
    console.print(t)
