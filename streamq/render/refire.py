"""Rendering for ``streamq refire``: the plan, the progress bar, results and the summary."""

from __future__ import annotations

import contextlib
import os
import sys
import time
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from . import dumps

if TYPE_CHECKING:  # pragma: no cover
    from ..api import RefireResult as Result
    from ..api import RefireSummary as Summary


def plan_lines(plan: dict[str, Any]) -> list[tuple[str, str]]:
    rate = plan["rate"]
    rows = [
        ("table", plan["table"]),
        ("records", f"{plan['records']}"
         + (f" ({plan['duplicates']} duplicate id(s) dropped)" if plan.get("duplicates") else "")
         + (f", {plan['already_done']} already done in the journal"
            if plan.get("already_done") else "")),
        ("trigger", plan["trigger"]),
        ("filter", plan["filter"]),
        ("only if", plan["only_if"]),
        *([("retry policy", plan["retry_policy"])] if plan.get("retry_policy") else []),
        ("rate", "unlimited" if not rate else f"{rate:g}/s"
         + (f" (about {_secs(plan['records'] / rate)})" if plan["records"] else "")),
        ("concurrency", str(plan["concurrency"])),
        ("run token", plan["run"]),
    ]
    if plan.get("known_missing") is not None:
        rows.insert(2, ("missing now", str(plan["known_missing"])))
    if plan.get("journal"):
        rows.append(("journal", plan["journal"]))
    return rows


def _secs(seconds: float) -> str:
    if seconds < 10:
        return f"{seconds:.1f}s"
    if seconds < 3600:
        return f"{seconds / 60:.0f}m" if seconds >= 90 else f"{seconds:.0f}s"
    return f"{seconds / 3600:.1f}h"


def print_plan(plan: dict[str, Any], out: IO[str] | None = None) -> None:
    """The plan as aligned ``name: value`` lines (plain text, also on a terminal)."""
    out = out or sys.stderr
    rows = plan_lines(plan)
    width = max(len(k) for k, _ in rows)
    title = "refire plan (dry run: nothing written)" if plan.get("dry_run") else "refire plan"
    out.write(title + "\n")
    for k, v in rows:
        out.write(f"  {k.ljust(width)}  {v}\n")
    out.flush()


def print_plan_json(plan: dict[str, Any], out: IO[str] | None = None, *,
                    jsonl: bool = False) -> None:
    """The plan as one JSON document (``-o json``: indented; ``-o jsonl``: one line)."""
    from . import print_json

    if jsonl:
        stream = out or sys.stdout
        stream.write(dumps(plan) + "\n")
        stream.flush()
    else:
        print_json(plan, out)


class ResultSink:
    """json (one array) or jsonl (one line per result, as it happens) on stdout;
    ``summary``: nothing on stdout."""

    def __init__(self, fmt: str, out: IO[str] | None = None) -> None:
        self.fmt = fmt
        self.out = out or sys.stdout
        self.count = 0
        self.broken = False
        if fmt == "json":
            self._emit("[")

    def write(self, result: Result) -> None:
        if self.fmt == "summary":
            return
        line = dumps(result.to_json())
        if self.fmt == "json":
            self._emit(("\n" if self.count == 0 else ",\n") + line)
        else:
            self._emit(line + "\n", flush=True)
        self.count += 1

    def close(self) -> None:
        if self.fmt == "json":
            self._emit("\n]\n" if self.count else "]\n")
        self._emit("", flush=True)

    def _emit(self, text: str, flush: bool = False) -> None:
        """The reader went away (`| head`): stop printing results, never stop the run
        half-way (the outcomes still reach the journal and the summary)."""
        if self.broken:
            return
        try:
            self.out.write(text)
            if flush:
                self.out.flush()
        except BrokenPipeError:
            self.broken = True
            with contextlib.suppress(OSError, ValueError, AttributeError):
                devnull = os.open(os.devnull, os.O_WRONLY)
                os.dup2(devnull, self.out.fileno())


class RefireProgress:
    """A progress bar with per-outcome counts on stderr, only on a terminal."""

    def __init__(self, total: int, enabled: bool | None = None, *,
                 streams_to_stdout: bool = False) -> None:
        from . import progress_allowed

        self.total = total
        self.enabled = progress_allowed(streams_to_stdout) if enabled is None else enabled
        self.counts: dict[str, int] = {}
        self.waiting = ""
        self._progress: Any = None
        self._task: Any = None

    def __enter__(self) -> RefireProgress:
        if self.enabled:
            from rich.progress import (
                BarColumn,
                MofNCompleteColumn,
                Progress,
                TextColumn,
                TimeElapsedColumn,
                TimeRemainingColumn,
            )

            from . import err_console, waiting

            view = self

            class WithWaiting(Progress):
                """The bar, and under it what the endpoint keeps us waiting for."""

                def get_renderables(self) -> Any:
                    yield from super().get_renderables()
                    if view.waiting:
                        yield waiting.style_waiting(view.waiting)

            # Each time says what it is: "eta 0:00:15", "elapsed 0:00:03".
            self._progress = WithWaiting(TextColumn("refire"), BarColumn(),
                                         MofNCompleteColumn(),
                                         TextColumn("{task.fields[counts]}"),
                                         TextColumn("eta"), TimeRemainingColumn(),
                                         TextColumn("elapsed"), TimeElapsedColumn(),
                                         console=err_console(), transient=True,
                                         redirect_stdout=False, redirect_stderr=False)
            self._progress.start()
            self._task = self._progress.add_task("refire", total=self.total, counts="")
            waiting.attach(self)
        return self

    def set_waiting(self, text: str) -> None:
        self.waiting = text
        if self._progress is not None:
            self._progress.refresh()

    def print_line(self, text: str) -> None:
        if self._progress is not None:
            self._progress.console.print(text, markup=False, highlight=False)
        else:
            from . import info

            info(text)

    def advance(self, outcome: str) -> None:
        self.counts[outcome] = self.counts.get(outcome, 0) + 1
        if self._progress is not None:
            text = " ".join(f"{k} {v}" for k, v in sorted(self.counts.items()))
            self._progress.update(self._task, advance=1, counts=text)

    def __exit__(self, *exc: object) -> None:
        if self._progress is not None:
            from . import waiting

            waiting.detach(self)
            self._progress.stop()


class RunView:
    """What a run shows as it goes: results on stdout (:class:`ResultSink`, opened by
    :meth:`start`, i.e. once the journal exists), the progress bar on stderr, and the ids
    not refired, for :meth:`print_summary`. :meth:`close` ends what :meth:`start` began."""

    def __init__(self, fmt: str, total: int) -> None:
        self.fmt, self.total = fmt, total
        self.failures: list[tuple[str, str, str]] = []
        self._sink: ResultSink | None = None
        self._progress: RefireProgress | None = None

    def start(self) -> None:
        self._sink = ResultSink(self.fmt)
        self._progress = RefireProgress(
            self.total, streams_to_stdout=self.fmt in ("json", "jsonl")).__enter__()

    def result(self, res: Result) -> None:
        if self._sink is not None:
            self._sink.write(res)
        if self._progress is not None:
            self._progress.advance(res.outcome)
        if res.outcome in ("missing", "failed", "unknown"):
            self.failures.append((res.key_text, res.outcome, res.error or ""))

    def close(self) -> None:
        progress, self._progress = self._progress, None
        sink, self._sink = self._sink, None
        try:
            if progress is not None:
                progress.__exit__(None, None, None)
        finally:
            if sink is not None:
                sink.close()

    def print_summary(self, summary: Summary) -> None:
        print_summary(summary, self.failures)


def summary_line(summary: Summary) -> str:
    c = summary.counts
    rate = summary.total / summary.elapsed if summary.elapsed > 0 else 0.0
    text = (f"refired {c['refired']}, missing {c['missing']}, skipped {c['skipped']}, "
            f"failed {c['failed']}")
    if c.get("unknown"):
        text += f", unknown {c['unknown']}"
    if summary.not_reached:
        text += f", not reached {summary.not_reached}"
        if summary.abandoned:
            text += f" ({summary.abandoned} abandoned in flight)"
    text += f" in {summary.elapsed:.2f}s ({rate:,.0f}/s"
    if summary.retries:
        text += f", {summary.retries} retried request(s)"
    return text + ")"


def print_summary(summary: Summary, failures: list[tuple[str, str, str]]) -> None:
    """Counts per outcome to stderr, then up to 10 ids that were not refired and why."""
    from . import info, warn

    info(summary_line(summary))
    for key, outcome, why in failures[:10]:
        warn(f"{outcome}: {key}{': ' + why if why else ''}")
    if len(failures) > 10:
        warn(f"... and {len(failures) - 10} more (use -o jsonl or --journal for all)")


def confirm(question: str) -> bool:
    """Ask on the terminal (the caller has checked it is one)."""
    from . import confirm as ask

    return ask(question)


def elapsed_since(start: float) -> float:
    return time.monotonic() - start


def round_line(doc: dict[str, Any]) -> str:
    """One line per scheduled round (``refire --due --every``), from ``Round.to_json``:
    ``round 3 at …Z: 12 due: refired 11, missing 1 in 1.3s; 5 waiting (next due in
    45s), 20 dead; journal r-….jsonl`` (outcomes that did not happen are left out)."""
    from datetime import datetime

    from ..durations import humanize

    head = f"round {doc['round']} at {doc['started']}: "
    if doc.get("error"):
        head += f"failed: {doc['error']}"
        if doc["due"]:
            head += f" ({doc['refired']} of {doc['due']} due refired)"
        return head
    if not doc["due"]:
        body = "nothing due"
    else:
        counts = [f"{name.replace('_', ' ')} {doc[name]}" for name in
                  ("refired", "skipped", "missing", "failed", "unknown", "not_reached")
                  if doc.get(name) or name == "refired"]
        body = f"{doc['due']} due: {', '.join(counts)} in {doc.get('elapsed_seconds', 0):.1f}s"
    rest = f"{doc['waiting']} waiting"
    if doc.get("next_due_at"):
        at = datetime.fromisoformat(doc["next_due_at"].replace("Z", "+00:00")).timestamp()
        rest += f" (next due in {humanize(max(at - time.time(), 1.0))})"
    rest += f", {doc['dead']} dead"
    journal = f"; journal {Path(doc['journal']).name}" if doc.get("journal") else ""
    return head + body + "; " + rest + journal


def print_round(doc: dict[str, Any], *, jsonl: bool, out: IO[str] | None = None) -> None:
    """The round's line on stderr; with ``jsonl`` also its JSON line on stdout."""
    from . import info

    info(round_line(doc))
    if jsonl:
        stream = out or sys.stdout
        stream.write(dumps(doc) + "\n")
        stream.flush()
