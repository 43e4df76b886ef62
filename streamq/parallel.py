"""A scan spread over processes, for when one core is the limit.

A parallel Scan's pages arrive faster than one Python interpreter can turn them into
records: parsing, classifying and printing cost a few microseconds an item, under one
interpreter lock whatever the number of segment threads. On a machine with more than one
core the segments are shared: this process, which described the table and planned the
scan once, reads the first share on a thread with the clients it already has, and N-1
worker processes read the others, classify (and, for ``list``, render) their own records
and send text (``list -o ids``/``jsonl``), a count (``--count``) or a share of the stats
to merge (``stats``); this process writes them out. Every share is classified against
one clock (one ``now``), so a record's status does not depend on which process read it.

Workers are spawned, not forked: this process has threads and botocore clients, and
"safely forking a multithreaded process is problematic" (Python's multiprocessing docs,
"Contexts and start methods"). They use the credentials this process resolved (never a
second MFA prompt, assume-role call or credential_process run; the profile still gives
the rest of the configuration), ignore SIGINT (this process stops them on Ctrl-C or an
error) and send an expected failure back as (type, message, hint), raised here as our
own. Records come out in the order their pages arrive, as with threads. Memory grows by
one interpreter per worker (60-90 MB each), and stays flat in the table's size.
"""

from __future__ import annotations

import dataclasses
import gc
import io
import multiprocessing
import os
import queue as _queue
import signal
import threading
from collections.abc import Callable
from typing import Any

from . import outbox as ob
from .aws import Aws
from .config import Settings
from .errors import AwsError, StreamqError

#: A table at least this large (DescribeTable's TableSizeBytes) is scanned in processes
#: unless told otherwise: below it, a worker's start (a third of a second of CPU,
#: importing botocore and making a client) costs more than its share of the work saves
#: (benchmarks/README.md). An estimate: "DynamoDB updates this value approximately every
#: six hours" (API Reference, TableDescription); moto reports 0, so tests ask for workers.
AUTO_MIN_BYTES = 128 * 1024 * 1024
#: At most this many workers unless asked for more.
AUTO_MAX = 4
#: A worker sends its text in pieces of about this many characters.
CHUNK = 1 << 16

TASKS = ("lines", "count", "stats")


def cores() -> int:
    """The cores this process may run on (its affinity, where the OS tells)."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # pragma: no cover - macOS, Windows
        return os.cpu_count() or 1


def how_many(requested: int | None, info: ob.TableInfo, plan: ob.ScanPlan) -> int:
    """Processes for this scan: ``requested`` (1: this one only), or ``None`` for the
    default: one per core up to AUTO_MAX when the table is large and the scan has several
    segments; never more than the segments it reads, and none for a Query."""
    if plan.operation != "Scan" or len(plan.segments) < 2:
        return 1
    if requested is not None:
        return max(1, min(requested, len(plan.segments)))
    if info.size_bytes < AUTO_MIN_BYTES:
        return 1
    return max(1, min(cores(), AUTO_MAX, len(plan.segments)))


@dataclasses.dataclass
class Job:
    """What a worker needs (pickled to it): no clients, no callbacks but ``sink``, which
    is a module-level function (pickled by reference)."""

    settings: Settings
    info: ob.TableInfo
    plan: ob.ScanPlan
    sel: ob.Selection
    now: float
    task: str  # lines | count | stats
    fmt: str = ""
    #: (fmt, key_names, out) -> a sink with write(streamq.api.Record): the CLI's renderer
    sink: Callable[..., Any] | None = None
    #: the parent's resolved credentials: a worker never resolves its own (no second
    #: MFA prompt, assume-role call or credential_process run per worker)
    credentials: tuple[str, str, str | None] | None = None


def run(aws: Aws, settings: Settings, info: ob.TableInfo, plan: ob.ScanPlan,
        sel: ob.Selection, *, processes: int, task: str, now: float, fmt: str = "",
        sink: Callable[..., Any] | None = None, write: Callable[[str], Any] | None = None,
        on_page: Callable[[int], None] | None = None) -> int | ob.Stats:
    """Scan ``plan``'s segments in ``processes`` shares: this process reads the first
    (with ``aws``), worker processes the others. ``lines``: each record as
    ``sink`` renders it, handed to ``write``, and the number of records returned;
    ``count``: the number of records; ``stats``: the merged :class:`~streamq.outbox.Stats`."""
    if task not in TASKS:  # pragma: no cover - internal
        raise ValueError(task)
    if settings.session is not None:  # pragma: no cover - the API keeps this at 1
        raise ValueError("a caller's boto3 session cannot cross into a worker process")
    if sel.observe is not None or sel.limit is not None:  # pragma: no cover - internal
        raise ValueError("an observed or limited selection is read in one process")
    shares = [s for s in (plan.segments[i::processes] for i in range(processes)) if s]
    credentials = aws.frozen_credentials()
    jobs = [Job(settings, info, dataclasses.replace(plan, segments=share), sel, now, task, fmt,
                sink, credentials) for share in shares]
    ctx = multiprocessing.get_context("spawn")
    q: Any = ctx.Queue(maxsize=8 * len(shares))
    # This process scans the first share itself, on a thread, with its own clients (made
    # already: describing the table made them): only the other shares pay a worker's start.
    procs = [ctx.Process(target=work, name=f"streamq-scan-{i}", daemon=True, args=(job, q))
             for i, job in enumerate(jobs[1:], 1)]
    for proc in procs:
        proc.start()
    stop = threading.Event()
    local = threading.Thread(target=work, name="streamq-scan-0", daemon=True,
                             args=(jobs[0], q), kwargs={"aws": aws, "stop": stop})
    local.start()
    total = 0
    stats = ob.Stats(now=now)
    remaining = len(jobs)
    try:
        while remaining:
            try:
                kind, payload = q.get(timeout=0.5)
            except _queue.Empty:
                gone = [p for p in procs if p.exitcode is not None]
                if any(p.exitcode for p in gone):
                    code = next(p.exitcode for p in gone if p.exitcode)
                    raise AwsError(f"a scan worker process ended without finishing "
                                   f"(exit code {code})") from None
                continue
            if kind == "page":
                if on_page is not None:
                    on_page(payload)
            elif kind == "text":
                if write is not None:
                    write(payload)
            elif kind == "count":
                total += payload
            elif kind == "stats":
                stats.merge(payload)
            elif kind == "error":
                cls, message, hint = payload
                raise cls(message, hint=hint)
            elif kind == "done":
                remaining -= 1
    finally:
        stop.set()
        for proc in procs:
            if proc.is_alive():
                proc.terminate()
        for proc in procs:
            proc.join(timeout=5)
        local.join(timeout=0.5)  # a daemon: it ends with the process if it is stuck
        q.close()
        q.cancel_join_thread()
    return stats if task == "stats" else total


def work(job: Job, q: Any, *, aws: Aws | None = None,
         stop: threading.Event | None = None) -> None:
    """A worker's whole life: scan its segments, send what the task asks, then ``done``.
    ``aws``: run on a thread of the parent, with its clients (else a worker process)."""
    if aws is None:
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent decides when to stop
        # Its own process: the collector kept off the items' way (cli.common.bulk_reading).
        gc.freeze()
        gc.set_threshold(100_000, *gc.get_threshold()[1:])
    try:
        if aws is None:
            aws = Aws(job.settings, max_pool_connections=max(16, len(job.plan.segments)),
                      credentials=job.credentials)
        records = ob.select(aws, job.info, job.settings, job.sel, now=job.now, stop=stop,
                            plan=job.plan, on_page=lambda n: q.put(("page", n)))
        if job.task == "count":
            q.put(("count", sum(1 for _ in records)))
        elif job.task == "stats":
            stats = ob.Stats(now=job.now)
            for raw in records:
                stats.add(raw)
            q.put(("stats", stats))
        else:
            _lines(job, records, q)
    except StreamqError as exc:
        q.put(("error", (type(exc), exc.message, exc.hint)))
    except BaseException as exc:  # reported to the parent, then done
        q.put(("error", (AwsError, f"scan worker: {type(exc).__name__}: {exc}", None)))
    finally:
        q.put(("done", None))


def _lines(job: Job, records: Any, q: Any) -> None:
    from .api import Record

    assert job.sink is not None
    buf = io.StringIO()
    sink = job.sink(job.fmt, job.info.key_names, buf)
    info, statuses, count = job.info, job.sel.statuses, 0
    for raw in records:
        sink.write(Record(raw, info, statuses))
        count += 1
        if buf.tell() >= CHUNK:
            q.put(("text", buf.getvalue()))
            buf.seek(0)
            buf.truncate()
    if buf.tell():
        q.put(("text", buf.getvalue()))
    q.put(("count", count))

