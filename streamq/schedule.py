"""Scheduled retries: rounds of ``refire --due``, one journal per round.

A round selects the failed records that are due now (streamq.retry), re-fires them with
``--only-if due`` (each write re-checks that the record is still due, so rounds of two
schedulers never fire a record twice) and reports what it did, how many records wait
and are dead, and when the next one is due. :func:`run_round` is one round (what cron,
or a Lambda function invoked by EventBridge Scheduler, runs); :func:`run_every` runs
rounds at a fixed cadence until ``stop`` is set.

Nothing here touches signals, terminals or stdout: it runs from any thread.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .aws import Aws
from .config import Settings, user_state_dir
from .errors import AwsError, StreamqError
from .outbox import Condition, Item, Record, Selection, iso, key_plain
from .refire import (
    DEFAULT_CONCURRENCY,
    DEFAULT_RATE,
    OUTCOMES,
    Summary,
    prepare,
    run,
    writer_aws,
)


def default_journal_dir() -> Path:
    """Where ``--every`` keeps its journals without ``--journal DIR``."""
    return user_state_dir() / "rounds"


class _Census:
    """Counts the failed records a round's selection reads (``Selection.observe``)."""

    def __init__(self) -> None:
        self.waiting = 0
        self.dead = 0
        self.next_due_at: float | None = None
        self.next_due_key: Item | None = None
        self.fallbacks = 0  # backoff counted from the created time
        self.created_attr: str | None = None

    def __call__(self, rec: Record) -> None:
        if rec.retry == "dead":
            self.dead += 1
        elif rec.retry == "waiting":
            self.waiting += 1
            if rec.next_due_at is not None and (self.next_due_at is None
                                                or rec.next_due_at < self.next_due_at):
                self.next_due_at, self.next_due_key = rec.next_due_at, rec.key
        if rec.retry is not None and rec.last_attempt_from == self.created_attr:
            self.fallbacks += 1


@dataclass
class Round:
    """What one round did. ``due``: records chosen (due when read); ``summary``: their
    outcomes (None when nothing was due); ``error``: why the round failed (an AWS error
    that a later round may not meet again), else None."""

    number: int
    table: str
    started: float
    due: int = 0
    run: str | None = None
    summary: Summary | None = None
    journal: Path | None = None
    waiting: int = 0
    dead: int = 0
    next_due_at: float | None = None
    next_due_key: dict[str, Any] | None = None
    fallbacks: int = 0
    warnings: list[str] = field(default_factory=list)
    error: str | None = None
    elapsed: float = 0.0

    def to_json(self) -> dict[str, Any]:
        from .schemas import REFIRE_ROUND

        s = self.summary
        return {
            "schema_version": REFIRE_ROUND,
            "round": self.number,
            "table": self.table,
            "started": iso(self.started),
            "due": self.due,
            **(s.to_json() if s is not None else
               {**dict.fromkeys(OUTCOMES, 0), "not_reached": 0}),
            "waiting": self.waiting,
            "dead": self.dead,
            "next_due_at": None if self.next_due_at is None else iso(self.next_due_at),
            "next_due_key": self.next_due_key,
            "run": self.run,
            "journal": None if self.journal is None else str(self.journal),
            "error": self.error,
            "round_seconds": round(self.elapsed, 3),
        }


def run_round(settings: Settings, *, number: int = 1, journal_dir: Path | None = None,
              where: tuple[Condition, ...] = (), older_than: float | None = None,
              limit: int | None = None, rate: float = DEFAULT_RATE,
              concurrency: int = DEFAULT_CONCURRENCY, uuid: str | None = None,
              force: bool = False, stop: threading.Event | None = None,
              abandon: threading.Event | None = None, aws: Aws | None = None) -> Round:
    """One round: select the due records (narrowed by ``where``/``older_than``/``limit``
    as ``refire`` is), re-fire them with ``--only-if due``, journaled in
    ``journal_dir/<run token>.jsonl`` (None: no journal; a round with nothing due writes
    none). Raises what a refire raises before its first write (BadInput, NotFound, the
    pre-flight's Refused); an AWS error during the round is caught into ``error``."""
    started = time.time()
    t0 = time.monotonic()
    info_name = settings.require_table()
    census = _Census()
    census.created_attr = settings.created_attr
    sel = Selection(statuses=("due",), where=where, older_than=older_than, limit=limit,
                    observe=census)
    rnd = Round(number=number, table=info_name, started=started)
    try:
        plan = prepare(aws or Aws(settings), settings, selection=sel, only_if="due",
                       uuid=uuid, rate=rate, concurrency=concurrency, force=force)
    except StreamqError as exc:
        if not _passing(exc):
            raise
        rnd.error = exc.message
        rnd.elapsed = time.monotonic() - t0
        return rnd
    refusal = plan.refusal()
    if refusal is not None:
        raise refusal
    rnd.warnings = list(plan.preflight.warnings)
    rnd.waiting, rnd.dead, rnd.fallbacks = census.waiting, census.dead, census.fallbacks
    rnd.next_due_at = census.next_due_at
    if census.next_due_key is not None:
        rnd.next_due_key = key_plain(census.next_due_key, plan.info)
    rnd.due = len(plan.targets)
    if plan.targets:
        rnd.run = plan.run
        if journal_dir is not None:
            plan.journal = journal_dir / f"{plan.run}.jsonl"
            rnd.journal = plan.journal
        try:
            summary = run(plan, writer_aws(settings, plan.concurrency), stop=stop,
                          abandon=abandon)
        except StreamqError as exc:
            if not _passing(exc):
                raise
            rnd.error = exc.message
        else:
            rnd.summary = summary
            if summary.fatal is not None:
                rnd.error = summary.fatal
    # A record refired this round is due again only after its backoff, counted from now.
    rnd.elapsed = time.monotonic() - t0
    return rnd


def _passing(exc: StreamqError) -> bool:
    """An error a later round may not meet (AWS or runtime: throttled after retries, an
    endpoint down for a while, expired credentials about to be refreshed), as opposed to
    bad input, a missing table or a refusing pre-flight, which a person has to fix."""
    return isinstance(exc, AwsError) or type(exc) is StreamqError


def run_every(settings: Settings, interval: float, *, stop: threading.Event,
              on_round: Callable[[Round], None],
              abandon: threading.Event | None = None, **round_kw: Any) -> int:
    """Rounds every ``interval`` seconds (start to start; a round that overruns is
    followed at once by the next, never overlapped), until ``stop`` is set. ``stop``
    set during a round ends it as a refire stops (in-flight writes finish, the rest are
    not reached and stay due); set during the wait, it ends the wait. Returns the number
    of rounds. Errors raised before a round's first write (bad input, a refusing
    pre-flight) end the loop."""
    if interval <= 0:
        raise StreamqError("--every needs an interval above 0")
    number = 0
    next_start = time.monotonic()
    while not stop.is_set():
        number += 1
        on_round(run_round(settings, number=number, stop=stop, abandon=abandon, **round_kw))
        next_start = max(next_start + interval, time.monotonic())
        delay = next_start - time.monotonic()
        if delay > 0 and stop.wait(delay):
            break
    return number
