"""Rendering for ``streamq sandbox``: the status view and plain lines."""

from __future__ import annotations

import sys
from typing import IO, Any

from ..durations import exact_duration, humanize
from . import _console


def print_line(text: str, out: IO[str] | None = None) -> None:
    out = out or sys.stdout
    out.write(text + "\n")
    out.flush()


class SeedProgress:
    """``sandbox seed --wait`` on a terminal: records handled / total, with delivered and
    failed counts and the time elapsed, on stderr (nothing when stderr is not a TTY)."""

    def __init__(self, total: int, enabled: bool | None = None) -> None:
        from . import progress_allowed

        self.total = total
        self.enabled = progress_allowed(False) if enabled is None else enabled
        self._progress: Any = None
        self._task: Any = None

    def __enter__(self) -> SeedProgress:
        if self.enabled:
            from rich.progress import (
                BarColumn,
                MofNCompleteColumn,
                Progress,
                TextColumn,
                TimeElapsedColumn,
            )

            from . import err_console

            self._progress = Progress(
                TextColumn("handled"), BarColumn(), MofNCompleteColumn(),
                TextColumn("{task.fields[detail]}"), TextColumn("elapsed"),
                TimeElapsedColumn(), console=err_console(), transient=True,
                redirect_stdout=False, redirect_stderr=False)
            self._progress.start()
            self._task = self._progress.add_task("seed", total=self.total,
                                                 detail="waiting for the trigger")
        return self

    def update(self, delivered: int, failed: int, waiting: int) -> None:
        if self._progress is not None:
            self._progress.update(self._task, completed=delivered + failed,
                                  detail=f"{delivered} delivered, {failed} failed")

    def __exit__(self, *exc: object) -> None:
        if self._progress is not None:
            self._progress.stop()


def show_status(doc: dict[str, Any], out: IO[str] | None = None) -> None:
    from rich.markup import escape

    from . import print_fold, text_value

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
            (("on-failure bucket", f"s3://{doc.get('bucket')}")
             if doc.get("on_failure") == "s3" else ("on-failure queue", doc["queue_url"])),
            ("region", doc["region"]),
            ("state dir", doc["state_dir"]), ("log", doc["log"])]
    poller = doc.get("poller") or {}
    if poller:
        settings = poller.get("settings") or {}
        api = doc.get("api")
        delivered = ("by the handler: not known (a custom handler)" if not api else
                     f"{api.get('delivered', 0)} delivered by the handler (sent through "
                     f"the fake mail API), {api.get('refused_sends', 0)} send(s) refused")
        rows += [
            ("poller", text_value(poller.get("state"))),
            ("trigger", f"batch {text_value(settings.get('BatchSize'))}, window "
                        f"{text_value(settings.get('MaximumBatchingWindowInSeconds'))}s, "
                        f"retries {text_value(settings.get('MaximumRetryAttempts'))}, bisect "
                        f"{text_value(settings.get('BisectBatchOnFunctionError'))}, max age "
                        f"{_age(settings.get('MaximumRecordAgeInSeconds'))}"),
            ("invocations", f"{poller.get('invocations', 0)} "
                            f"({poller.get('function_errors', 0)} function errors), last "
                            f"{text_value(poller.get('last_invocation_at'))}"),
            ("records", f"{poller.get('records_handled', 0)} handed to the handler, "
                        f"{poller.get('records_filtered', 0)} filtered out, "
                        f"{poller.get('records_discarded', 0)} discarded"),
            ("delivered", delivered),
            ("retries / bisects", f"{poller.get('retries', 0)} / {poller.get('bisects', 0)}"),
            ("on-failure messages", str(poller.get("dlq_messages", 0))),
            ("checkpoint", text_value(poller.get("checkpoint"))),
        ]
        if poller.get("last_error"):
            rows.append(("last error", str(poller["last_error"])))
    print_fold(console, [(k, text_value(v), "") for k, v in rows])


def _age(seconds: Any) -> str:
    """MaximumRecordAgeInSeconds as a duration (1h), -1 as infinite (AWS's meaning)."""
    from . import text_value

    if isinstance(seconds, bool) or not isinstance(seconds, (int, float)):
        return text_value(seconds)
    return "infinite" if seconds == -1 else exact_duration(seconds)
