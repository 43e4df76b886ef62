"""Rendering: the only package that imports ``rich``.

Data goes to stdout; messages, warnings, progress and errors go to stderr.
Colour and tables only on a terminal; ``NO_COLOR`` is respected.
"""

from __future__ import annotations

import csv
import json
import os
import sys
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import IO, TYPE_CHECKING, Any, Protocol

from ..durations import humanize
from ..jsonable import iso_time
from ..jsonable import json_default as _json_default

if TYPE_CHECKING:  # pragma: no cover
    from rich.console import Console

    from ..api import Record

OUTPUTS = ("table", "json", "jsonl", "csv", "ids")
STATUS_STYLE = {"failed": "bold red", "stuck": "yellow", "pending": "dim", "dead": "red",
                "due": "bold", "waiting": "dim",
                "refired": "green", "missing": "magenta", "skipped": "cyan"}


def is_tty(stream: IO[str]) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False


def default_output(out: IO[str] | None = None) -> str:
    """A table for people at a terminal, JSON lines for pipes."""
    return "table" if is_tty(out or sys.stdout) else "jsonl"


def table_or_json(chosen: str | None) -> str:
    """For commands that print one document: a view on a terminal, JSON when piped."""
    return chosen or ("table" if is_tty(sys.stdout) else "json")


def _console(stream: IO[str]) -> Console:
    from rich.console import Console

    return Console(file=stream, no_color=bool(os.environ.get("NO_COLOR")) or None,
                   highlight=False, soft_wrap=False, width=piped_width(stream))


def piped_width(stream: IO[str]) -> int | None:
    """The width of a view written to a file or a pipe: COLUMNS, or 80 (as the README
    says); None on a terminal (its own width). Rich alone would take the width of
    whichever of stdin, stdout and stderr is a terminal, so ``doctor -o table > f`` in a
    wide terminal wrote lines as wide as it."""
    if is_tty(stream):
        return None
    try:
        columns = int(os.environ.get("COLUMNS", ""))
    except ValueError:
        columns = 0
    return columns if columns > 0 else 80


def err_console() -> Console:
    return _console(sys.stderr)


def out_console() -> Console:
    return _console(sys.stdout)


# --------------------------------------------------------------------------- messages


def _say(prefix: str, style: str, text: str) -> None:
    if is_tty(sys.stderr) and not os.environ.get("NO_COLOR"):
        from rich.markup import escape

        # One logical line: the terminal wraps it; rich must not cut it into lines (a
        # message stays one line for copy, grep and the "one error line" contract).
        err_console().print(f"[{style}]{prefix}[/{style}]{escape(text)}", soft_wrap=True)
    else:
        sys.stderr.write(f"{prefix}{text}\n")
        sys.stderr.flush()


def one_line(text: str) -> str:
    """``text`` with every non-printable character escaped (``\\n``, ``\\x1b``, ``\\u2028``):
    an error or a warning is one line, and text from input (a key, a pattern, a file
    name, an AWS message) can neither break it nor send escape sequences to the
    terminal."""
    if text.isprintable():
        return text
    return "".join(c if c.isprintable() else c.encode("unicode_escape").decode("ascii")
                   for c in text)


def error(text: str) -> None:
    _say("streamq: error: ", "bold red", one_line(text))


def warn(text: str) -> None:
    _say("warning: ", "yellow", one_line(text))


def info(text: str) -> None:
    _say("", "dim", text)


def debug(text: str) -> None:
    _say("debug: ", "dim", text)


@contextmanager
def debug_logging(enabled: bool) -> Iterator[None]:
    """While a command runs with --debug: what the library logs to the ``streamq``
    logger (the access path of a scan, the retry policy, ...) is printed as ``debug:``
    lines on stderr (above a progress line, when one shows)."""
    if not enabled:
        yield
        return
    import logging

    class ToStderr(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            from . import waiting

            text = record.getMessage()
            display = waiting.current()
            if display is not None:
                display.print_line(f"debug: {text}")
            else:
                debug(text)

    logger = logging.getLogger("streamq")
    handler: logging.Handler = ToStderr(logging.DEBUG)
    old = logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG)
    try:
        yield
    finally:
        logger.removeHandler(handler)
        logger.setLevel(old)


def confirm(question: str) -> bool:
    """Ask on the terminal (the caller has checked stdin is one): ``y``/``yes`` is yes;
    anything else, or the end of input, is no. Ctrl-C raises KeyboardInterrupt (the
    command ends with exit 130), after ending the prompt's line."""
    sys.stderr.write(f"{question} [y/N] ")
    sys.stderr.flush()
    try:
        answer = _read_answer(sys.stdin)
    except KeyboardInterrupt:
        sys.stderr.write("\n")
        raise
    if not answer:
        sys.stderr.write("\n")
    return answer.strip().lower() in ("y", "yes")


def _read_answer(stream: IO[str]) -> str:
    """One line from the terminal, waiting in short slices: in a process with other
    threads, the kernel may deliver Ctrl-C's SIGINT to one of them, and a blocking read
    in the main thread would then sit there until the next key; between slices Python
    runs the pending handler (KeyboardInterrupt)."""
    import select

    try:
        fd = stream.fileno()
    except (AttributeError, ValueError, OSError):
        return stream.readline()
    while True:
        ready, _, _ = select.select([fd], [], [], 0.1)
        if ready:
            return stream.readline()


# --------------------------------------------------------------------------- JSON




def text_value(value: Any) -> str:
    """A value for people, the same way everywhere: booleans ``true``/``false`` (as in
    JSON), nothing as ``-``, times as ISO-8601."""
    import datetime as dt

    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None or value == "":
        return "-"
    if isinstance(value, dt.datetime):
        return iso_time(value)
    return str(value)


def dumps(obj: Any) -> str:
    return json.dumps(obj, ensure_ascii=False, separators=(",", ":"), default=_json_default)


def print_json(obj: Any, out: IO[str] | None = None) -> None:
    out = out or sys.stdout
    out.write(json.dumps(obj, ensure_ascii=False, indent=2, default=_json_default) + "\n")
    out.flush()


# --------------------------------------------------------------------------- records


class RecordSink(Protocol):
    def write(self, record: Record) -> None: ...
    def close(self) -> None: ...


class _StreamSink:
    """json / jsonl / csv / ids: one record at a time, nothing kept in memory."""

    def __init__(self, fmt: str, key_names: Sequence[str], out: IO[str]) -> None:
        self.fmt, self.out = fmt, out
        self.count = 0
        self._csv: Any = None
        if fmt == "csv":
            self._csv = csv.writer(out, lineterminator="\n")
            self._csv.writerow([*key_names, "status", "age_seconds", "created_at",
                                "attempts", "error", "refire_count", "retry", "next_due_at"])
        elif fmt == "json":
            out.write("[")

    def write(self, record: Record) -> None:
        fmt = self.fmt
        if fmt == "ids":
            self.out.write(record.key_text + "\n")
        elif fmt == "csv":
            doc = record.to_json()
            self._csv.writerow([*(_cell(v) for v in doc["key"].values()), doc["status"],
                                _cell(doc["age_seconds"]), _cell(doc["created_at"]),
                                _cell(doc["attempts"]), _cell(doc["error"]),
                                _cell(doc["refire_count"]), _cell(doc["retry"]),
                                _cell(doc["next_due_at"])])
        else:
            line = dumps(record.to_json())
            if fmt == "json":
                self.out.write(("\n" if self.count == 0 else ",\n") + line)
            else:
                self.out.write(line + "\n")
        self.count += 1

    def close(self) -> None:
        if self.fmt == "json":
            self.out.write("\n]\n" if self.count else "]\n")
        self.out.flush()


def _cell(value: Any) -> str:
    if value is None:
        return ""
    return value if isinstance(value, str) else dumps(value)


class _TableSink:
    """A table for people: buffered (column widths), so meant for a terminal."""

    def __init__(self, out: IO[str], footer: dict[str, Any] | None) -> None:
        self.out = out
        self.records: list[Record] = []
        self.footer = footer if footer is not None else {}

    def write(self, record: Record) -> None:
        self.records.append(record)

    def close(self) -> None:
        """Lay the rows out within the console's width (see render/layout.py: KEY whole,
        then LAST ERROR truncated, then REFIRES, ATTEMPTS, DUE, LAST ERROR dropped)."""
        from rich.text import Text

        from .layout import GAP, fit_cell, record_columns

        console = _console(self.out)
        counts: dict[str, int] = {}
        now = time.time()
        rows: list[tuple[dict[str, str], dict[str, str]]] = []
        for r in self.records:
            counts[r.status] = counts.get(r.status, 0) + 1
            due_at = r.next_due_at
            due, due_style = due_cell(
                r.retry, None if due_at is None else due_at.timestamp(), now)
            rows.append(({"KEY": r.key_text, "AGE": humanize(r.age_seconds),
                          "STATUS": r.status, "DUE": due,
                          "ATTEMPTS": "" if r.attempts is None else str(r.attempts),
                          "REFIRES": "" if r.refire_count is None else str(r.refire_count),
                          "LAST ERROR": _one_line(r.error or "", 400)},
                         {"STATUS": STATUS_STYLE.get(r.status, ""), "DUE": due_style}))
        dropped: list[str] = []
        if rows:
            natural = {h: max(len(cells[h]) for cells, _ in rows) for h in rows[0][0]}
            columns, dropped = record_columns(console.width, natural)
            header = Text((" " * GAP).join(fit_cell(c.header, c) for c in columns).rstrip(),
                          style="bold")
            console.print(header, **RAW)
            for cells, styles in rows:
                line = Text()
                for i, col in enumerate(columns):
                    if i:
                        line.append(" " * GAP)
                    line.append(fit_cell(cells[col.header], col), style=styles.get(col.header, ""))
                line.rstrip()
                console.print(line, **RAW)
        summary = ", ".join(f"{n} {s}" for s, n in sorted(counts.items())) or "nothing"
        extra = self.footer.get("text")
        if dropped:
            console.print(Text(f"left out at {console.width} columns: {', '.join(dropped)} "
                               "(-o jsonl has every field)", style="dim"), **RAW)
        console.print(Text(f"{len(self.records)} record(s): {summary}"
                           f"{' · ' + extra if extra else ''}", style="dim"), **RAW)


#: console.print() arguments for a line laid out already: never wrapped or cropped.
RAW: dict[str, Any] = {"no_wrap": True, "overflow": "ignore", "crop": False,
                       "soft_wrap": False}


def due_cell(retry: str | None, next_due_at: float | None, now: float) -> tuple[str, str]:
    """A failed record's DUE cell and its style: ``now``, ``in 4m`` or ``dead`` (empty
    otherwise)."""
    if retry is None:
        return "", ""
    if retry == "dead":
        return "dead", STATUS_STYLE["dead"]
    if retry == "due" or next_due_at is None:
        return "now", "bold"
    return f"in {humanize(max(next_due_at - now, 1.0))}", ""


def due_text(retry: str | None, next_due_at: float | None, now: float) -> str:
    """:func:`due_cell` as rich markup."""
    text, style = due_cell(retry, next_due_at, now)
    return f"[{style}]{text}[/{style}]" if style else text


def _one_line(text: str, width: int = 60) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= width else flat[: width - 1] + "…"


def open_sink(fmt: str, key_names: Sequence[str], out: IO[str] | None = None,
              footer: dict[str, Any] | None = None) -> RecordSink:
    """Where ``list`` writes its records (streamq.api.Record): ``key_names`` head the
    CSV's key columns."""
    out = out or sys.stdout
    if fmt == "table":
        return _TableSink(out, footer)
    return _StreamSink(fmt, key_names, out)


# --------------------------------------------------------------------------- show / stats


def show_record(doc: dict[str, Any], out: IO[str] | None = None) -> None:
    """One record for a person: derived fields, then the whole item."""
    from rich.json import JSON
    from rich.table import Table

    console = _console(out or sys.stdout)
    head = Table.grid(padding=(0, 2))
    head.add_column(style="bold")
    head.add_column()
    status = doc["status"]
    style = STATUS_STYLE.get(status, "")
    head.add_row("key", dumps(doc["key"]))
    head.add_row("status", f"[{style}]{status}[/{style}]" if style else status)
    head.add_row("age", f"{humanize(doc['age_seconds'])}"
                 + (f"  (created {doc['created_at']})" if doc.get("created_at") else ""))
    head.add_row("attempts", "-" if doc["attempts"] is None else str(doc["attempts"]))
    head.add_row("refires", "-" if doc["refire_count"] is None else str(doc["refire_count"]))
    if doc.get("retry"):
        head.add_row("retry", _retry_line(doc["retry"], doc.get("next_due_at")))
    if doc.get("error"):
        from rich.markup import escape

        head.add_row("last error", escape(doc["error"]))
    console.print(head)
    console.print(JSON(json.dumps(doc["item"], ensure_ascii=False, default=str)))


def _retry_line(retry: str, next_due_at: str | None) -> str:
    if retry == "dead":
        return "[red]dead[/red]: max attempts reached (`refire --status dead` retries it)"
    if retry == "due":
        return "[bold]due[/bold]" + (f" since {next_due_at}" if next_due_at else " (no known "
                                                                                "attempt time)")
    from datetime import datetime

    when = ""
    if next_due_at:
        left = datetime.fromisoformat(next_due_at.replace("Z", "+00:00")).timestamp()
        when = f" until {next_due_at} (in {humanize(max(left - time.time(), 1.0))})"
    return f"waiting{when}"


def show_stats(doc: dict[str, Any], out: IO[str] | None = None) -> None:
    from rich.table import Table

    console = _console(out or sys.stdout)
    counts = doc["counts"]
    console.print(f"[bold]{doc['table']}[/bold]: {doc['total']} record(s) in the outbox")
    t = Table(box=None, pad_edge=False, header_style="bold")
    t.add_column("STATUS")
    t.add_column("COUNT", justify="right")
    retry = doc.get("retry") or {}
    for status, n in counts.items():
        style = STATUS_STYLE.get(status, "")
        t.add_row(f"[{style}]{status}[/{style}]" if style else status, str(n))
        if status == "failed" and retry:
            for state in ("due", "waiting", "dead"):
                st = STATUS_STYLE.get(state, "")
                t.add_row(f"  [{st}]{state}[/{st}]", str(retry.get(state, 0)))
    console.print(t)
    if retry.get("next_due_at"):
        console.print(f"next due: in {humanize(max(retry['next_due_in_seconds'], 1.0))} "
                      f"({retry['next_due_at']}, {dumps(retry['next_due_key'])})")
    if doc["oldest_age_seconds"] is not None:
        console.print(f"oldest: {humanize(doc['oldest_age_seconds'])} "
                      f"({dumps(doc['oldest_key'])})")
    if doc.get("unknown_age"):
        console.print(f"[yellow]{doc['unknown_age']} record(s) have no readable created time"
                      "[/yellow]")
    hist = doc["age_histogram"]
    top = max(hist.values(), default=0) or 1
    h = Table(box=None, pad_edge=False, header_style="bold")
    h.add_column("AGE")
    h.add_column("COUNT", justify="right")
    h.add_column("")
    for bucket, n in hist.items():
        h.add_row(bucket, str(n), "█" * max(1 if n else 0, round(30 * n / top)))
    console.print(h)
    if hist.get(">24h"):
        console.print("[yellow]records older than 24h have left the stream: "
                      "only a refire sends them to the trigger again[/yellow]")


# --------------------------------------------------------------------------- progress


class Progress:
    """A scan counter on stderr, only on a terminal; silent otherwise. While a request
    goes unanswered, the line says so (streamq.render.waiting)."""

    def __init__(self, label: str, enabled: bool) -> None:
        self.label, self.enabled = label, enabled
        self.count = 0
        self._live: Any = None
        self._spinner: Any = None
        self._waiting = ""
        self._start = time.monotonic()

    def advance(self, n: int) -> None:
        self.count += n
        self._show()

    def set_waiting(self, text: str) -> None:
        self._waiting = text
        self._show()

    def print_line(self, text: str) -> None:
        if self._live is not None:
            self._live.console.print(text, markup=False, highlight=False)
        else:
            info(text)

    def _show(self) -> None:
        if self._live is None:
            return
        if self.count:
            rate = self.count / max(time.monotonic() - self._start, 1e-6)
            text = f"{self.label}: {self.count:,} items ({rate:,.0f}/s)"
        else:
            text = self.label
        self._spinner.update(text=text + (f" · {self._waiting}" if self._waiting else ""))

    def __enter__(self) -> Progress:
        if self.enabled:
            from rich.live import Live
            from rich.spinner import Spinner

            from . import waiting

            self._spinner = Spinner("dots", self.label)
            # Never redirect stdout: data written meanwhile must stay on stdout.
            self._live = Live(self._spinner, console=err_console(), transient=True,
                              redirect_stdout=False, redirect_stderr=False,
                              refresh_per_second=8)
            self._live.start()
            waiting.attach(self)
        return self

    def __exit__(self, *exc: object) -> None:
        if self._live is not None:
            from . import waiting

            waiting.detach(self)
            self._live.stop()


def progress_allowed(streams_to_stdout: bool) -> bool:
    """A live progress line on stderr only when stderr is a terminal, and not while data
    streams to that same terminal on stdout (the two would garble each other), directly
    or through a pipe (``list -o ids | head`` prints to it too); into a file it shows."""
    return is_tty(sys.stderr) and not (streams_to_stdout and _may_reach_a_terminal(sys.stdout))


def _may_reach_a_terminal(stream: IO[str]) -> bool:
    """A terminal, or a pipe or socket whose reader may print to one; not a regular file
    or a device such as /dev/null."""
    import stat

    if is_tty(stream):
        return True
    try:
        mode = os.fstat(stream.fileno()).st_mode
    except (AttributeError, ValueError, OSError):
        return False
    return stat.S_ISFIFO(mode) or stat.S_ISSOCK(mode)


@contextmanager
def progress(label: str, enabled: bool | None = None) -> Iterator[Progress]:
    with Progress(label, progress_allowed(False) if enabled is None else enabled) as p:
        yield p


def print_fold(console: Console, rows: Sequence[tuple[str, str, str]],
               headers: tuple[str, str] | None = None, name_style: str = "bold") -> None:
    """Rows of (name, value, note) as aligned columns within the console's width; a row
    whose value has a word (an ARN, a URL) too long to sit beside its name folds: the
    name alone, the value on its own line below. A value is never broken in a word."""
    from rich.text import Text

    from .layout import GAP, fold_rows

    folded = fold_rows(rows, console.width)
    nw, vw = folded.name_width, folded.value_width
    if headers is not None:
        console.print(Text(headers[0].ljust(nw + GAP) + headers[1], style="bold"), **RAW)
    for name, lines, note, is_folded in folded.rows:
        if is_folded:
            first = Text(name, style=name_style)
            if note:
                first.append("  " + note, style="dim")
            console.print(first, **RAW)
            for part in lines:
                console.print(Text("    " + part), **RAW)
            continue
        for i, part in enumerate(lines):
            line = Text((name if i == 0 else "").ljust(nw), style=name_style)
            line.append(" " * GAP + (part.ljust(vw) if note and i == 0 else part))
            if note and i == 0:
                line.append(" " * GAP + note, style="dim")
            line.rstrip()
            console.print(line, **RAW)


def kv_table(rows: Sequence[tuple[str, str, str]], headers: Sequence[str],
             out: IO[str] | None = None) -> None:
    """A plain three-column table (e.g. ``config show``: setting, value, source)."""
    from rich.markup import escape
    from rich.table import Table

    t = Table(box=None, pad_edge=False, header_style="bold")
    for h in headers:
        t.add_column(h)
    for row in rows:
        t.add_row(*(escape(c) for c in row))
    _console(out or sys.stdout).print(t)
