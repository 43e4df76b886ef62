"""streamq's public Python API: the outbox as objects, with the CLI's engines underneath.

The CLI is built on this module (``streamq list`` is :meth:`Outbox.records`, ``streamq
refire`` is :meth:`Outbox.plan_refire` then :meth:`RefirePlan.run`, ...), so a runbook
in Python gets what the command line does: the same selection, the same conditional and
journaled refire, the same trigger checks, and the same errors (:mod:`streamq.errors`,
each with the CLI's exit code)::

    from streamq import Outbox

    outbox = Outbox("mail_outbox", region="eu-west-1")
    stuck = list(outbox.records(status="failed", older_than="1h", limit=100))
    summary = outbox.refire(stuck, rate=5)
    summary.raise_for_outcome()  # PartialFailure (exit code 3) if some were not refired

The library never prints, prompts or exits: it returns values and raises
:class:`~streamq.errors.StreamqError` subclasses. Diagnostics go to the ``streamq``
logger (``logging.getLogger("streamq")``, DEBUG: the access path a scan takes).
Documented in ``docs/api.md``; its surface is pinned by ``tests/test_api_surface.py``.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any, Literal, TypeAlias

from . import config
from . import outbox as _outbox  # loaded with .health anyway; per-record calls below
from .drift import DriftReport, FieldCheck
from .errors import BadInput, Refused, StreamqError
from .health import Check
from .health import Report as DoctorReport
from .trigger import Change as FieldChange
from .trigger import Lint

if TYPE_CHECKING:  # pragma: no cover
    import boto3

    from .aws import Aws
    from .outbox import Record as _Raw
    from .outbox import Selection, TableInfo
    from .refire import RefirePlan as _RawPlan
    from .refire import Result as _RawResult
    from .refire import Summary as _RawSummary

__all__ = [
    "Check",
    "DoctorReport",
    "DriftReport",
    "FieldChange",
    "FieldCheck",
    "Lint",
    "Outbox",
    "Record",
    "Records",
    "RefirePlan",
    "RefireResult",
    "RefireSummary",
    "Stats",
    "TriggerChange",
    "TriggerChangePlan",
    "TriggerConfig",
    "trigger_changes",
]

log = logging.getLogger("streamq")

#: A duration: seconds (a number), a :class:`~datetime.timedelta`, or text as the CLI
#: takes it (``90s``, ``15m``, ``1h``, ``2d``).
Duration: TypeAlias = float | int | str | timedelta
#: Statuses to select: ``failed``, ``stuck``, ``pending``, a failed record's retry state
#: (``due``, ``waiting``, ``dead``) or ``all``; one, several (a sequence, or text
#: separated by commas), or None for the CLI's default (failed and stuck).
Statuses: TypeAlias = str | Iterable[str] | None
#: ``--where`` conditions in the CLI's syntax (``last_error~429``, ``attempts>=3``), ANDed.
Where: TypeAlias = str | Iterable[str] | None
OnlyIf: TypeAlias = Literal["failed", "stuck", "due", "dead", "selected", "any"]
Key: TypeAlias = str | Mapping[str, Any]

DEFAULT_RATE = 10.0
DEFAULT_CONCURRENCY = 16


# --------------------------------------------------------------------------- parsing


def _seconds(value: Duration | None, what: str) -> float | None:
    from .durations import parse_duration

    if value is None:
        return None
    if isinstance(value, timedelta):
        return value.total_seconds()
    if isinstance(value, bool):
        raise BadInput(f"invalid {what} {value!r}: a duration (seconds, or text like 15m)")
    if isinstance(value, (int, float)):
        if value != value or value < 0:  # NaN or negative
            raise BadInput(f"invalid {what} {value!r}: a duration is 0 or more seconds")
        return float(value)
    if isinstance(value, str):
        return parse_duration(value, what=what)
    raise BadInput(f"invalid {what} {value!r}: a duration (seconds, or text like 15m)")


def _strings(value: str | Iterable[str] | None, what: str) -> list[str]:
    if value is None:
        return []
    if isinstance(value, str):
        return [value]
    out = list(value)
    for v in out:
        if not isinstance(v, str):
            raise BadInput(f"invalid {what} {v!r}: expected text")
    return out


def parse_statuses(value: Statuses) -> tuple[str, ...]:
    """``--status`` values (repeated and/or comma-separated) as the statuses selected."""
    from .outbox import DEFAULT_STATUSES, SELECTABLE, STATUSES

    values = _strings(value, "status")
    if not values:
        return DEFAULT_STATUSES
    out: list[str] = []
    for v in values:
        for part in v.split(","):
            part = part.strip()
            if part == "all":
                return STATUSES
            if part not in SELECTABLE:
                raise BadInput(f"invalid --status {part!r}: use {', '.join(SELECTABLE)} or all")
            if part not in out:
                out.append(part)
    return tuple(out)


def build_selection(status: Statuses = None, older_than: Duration | None = None,
                    where: Where = None, limit: int | None = None, *,
                    segments: int | None = None, segment: str | tuple[int, int] | None = None,
                    index: str | None = None, keys_only: bool = False) -> Selection:
    """The selection the CLI's filters (and :meth:`Outbox.records`) describe; BadInput
    for a bad value, before anything is read."""
    from .outbox import Selection, parse_segment, parse_where

    if segment is not None and segments is not None:
        raise BadInput("--segment I/N scans one slice; it does not combine with --segments")
    if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int)
                              or limit < 1):
        raise BadInput(f"invalid --limit {limit!r}: must be at least 1")
    if segments is not None and (isinstance(segments, bool) or not isinstance(segments, int)
                                 or not 1 <= segments <= 1000):
        raise BadInput(f"invalid --segments {segments!r}: 1 to 1000")
    part: tuple[int, int] | None
    if segment is None or isinstance(segment, tuple):
        part = segment
        if part is not None:
            part = parse_segment(f"{part[0]}/{part[1]}")
    else:
        part = parse_segment(segment)
    return Selection(
        statuses=parse_statuses(status),
        older_than=_seconds(older_than, "--older-than"),
        where=tuple(parse_where(w) for w in _strings(where, "--where")),
        limit=limit,
        index=index,
        segments=segments,
        segment=part,
        keys_only=keys_only,
    )


def _utc(ts: float | None) -> datetime | None:
    return None if ts is None else datetime.fromtimestamp(ts, tz=timezone.utc)


def _key_json(key: Mapping[str, Any]) -> str:
    """A key given as a mapping, as the JSON text ``--id`` takes (bytes as base64)."""
    import base64
    from decimal import Decimal

    def default(value: Any) -> Any:
        if isinstance(value, (bytes, bytearray)):
            return base64.b64encode(bytes(value)).decode()
        if isinstance(value, Decimal):
            return str(value)
        raise BadInput(f"invalid key value {value!r}: a key is text, a number or bytes")

    return json.dumps(dict(key), default=default)


# --------------------------------------------------------------------------- records


class Record:
    """One outbox record, as ``streamq list`` sees it (read-only).

    ``status`` is ``failed`` (the error attribute is present and non-empty), ``stuck``
    (no error, older than ``stuck_after``, or no readable created time) or ``pending``.
    A failed record also has a ``retry`` state from the retry policy: ``due``,
    ``waiting`` or ``dead``. Keys and items are plain Python values (numbers as int or
    float, binary as base64 text), as ``-o json`` prints them; the values are converted
    when read, so iterating over many records stays as cheap as the CLI's scan."""

    __slots__ = ("_info", "_raw", "_selected_by")

    def __init__(self, raw: _Raw, info: TableInfo, selected_by: tuple[str, ...] = ()) -> None:
        self._raw = raw
        self._info = info
        self._selected_by = selected_by

    @property
    def key(self) -> dict[str, Any]:
        """The key attributes as plain values (``{"id": "msg-1"}``)."""
        return _outbox.key_plain(self._raw.key, self._info)

    @property
    def key_text(self) -> str:
        """The key as ``list -o ids`` prints it and ``refire --id`` reads it."""
        return _outbox.key_text(self._raw.key, self._info)

    @property
    def status(self) -> str:
        return self._raw.status

    @property
    def age_seconds(self) -> float | None:
        return self._raw.age_seconds

    @property
    def created_at(self) -> datetime | None:
        return _utc(self._raw.created_at)

    @property
    def attempts(self) -> int | None:
        return self._raw.attempts

    @property
    def error(self) -> str | None:
        return self._raw.error

    @property
    def refire_count(self) -> int | None:
        return self._raw.refire_count

    @property
    def retry(self) -> str | None:
        """A failed record's retry state: ``due``, ``waiting`` or ``dead`` (else None)."""
        return self._raw.retry

    @property
    def next_due_at(self) -> datetime | None:
        """When a failed record is (or became) due; None when dead or not known."""
        return _utc(self._raw.next_due_at)

    @property
    def last_attempt_at(self) -> datetime | None:
        """The time its backoff counts from (failed records only)."""
        return _utc(self._raw.last_attempt_at)

    @property
    def last_attempt_from(self) -> str | None:
        """The attribute ``last_attempt_at`` came from: the last-attempt attribute, the
        refire timestamp when later, or the created time when both are absent."""
        return self._raw.last_attempt_from

    @property
    def item(self) -> dict[str, Any]:
        """The whole item as plain values (only the key, created time and error when
        read with ``keys_only``)."""
        return _outbox.item_to_plain(self._raw.item)

    def to_json(self) -> dict[str, Any]:
        """The record as ``list -o json`` prints it (schema ``record``)."""
        return self._raw.to_json(self._info)

    def __repr__(self) -> str:
        return f"Record({self.key_text!r}, status={self.status!r})"

    def __eq__(self, other: object) -> bool:
        """Records are equal when they hold the same item (key and attributes), whenever
        they were read."""
        if not isinstance(other, Record):
            return NotImplemented
        return self._raw.item == other._raw.item

    __hash__ = None  # type: ignore[assignment]


class Records(Iterator[Record]):
    """The records a selection matches, streamed as the table is read (a scan stops once
    ``limit`` records matched, or when closed). Usable as a context manager."""

    def __init__(self, info: TableInfo, access_path: str, it: Iterator[Record],
                 counter: list[int]) -> None:
        self._info = info
        #: The table's name, and its key attribute names (hash key first).
        self.table = info.name
        self.key_names: tuple[str, ...] = info.key_names
        #: How the records are read: ``Scan on table, 4 parallel segments: ...`` or a
        #: Query on an index (what ``--debug`` prints).
        self.access_path = access_path
        self._it = it
        self._counter = counter

    @property
    def scanned(self) -> int:
        """Items read from the table so far (selected or not)."""
        return self._counter[0]

    def __iter__(self) -> Records:
        return self

    def __next__(self) -> Record:
        return next(self._it)

    def close(self) -> None:
        """Stop reading (the scan's threads stop; nothing more is fetched)."""
        close = getattr(self._it, "close", None)
        if close is not None:
            close()

    def __enter__(self) -> Records:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()


@dataclass(frozen=True)
class Stats:
    """What ``streamq stats`` counts: records by status, the oldest, an age histogram,
    and failed records by retry state with the next one due."""

    table: str
    total: int
    counts: dict[str, int]
    oldest_age_seconds: float | None
    oldest_key: dict[str, Any] | None
    unknown_age: int
    age_histogram: dict[str, int]
    due: int
    waiting: int
    dead: int
    next_due_at: datetime | None
    next_due_in_seconds: float | None
    next_due_key: dict[str, Any] | None

    def to_json(self) -> dict[str, Any]:
        """The document ``stats -o json`` prints (schema ``stats``)."""
        from .outbox import iso
        from .schemas import STATS

        return {
            "schema_version": STATS,
            "table": self.table,
            "total": self.total,
            "counts": dict(self.counts),
            "oldest_age_seconds": self.oldest_age_seconds,
            "oldest_key": self.oldest_key,
            "unknown_age": self.unknown_age,
            "age_histogram": dict(self.age_histogram),
            "retry": {
                "due": self.due, "waiting": self.waiting, "dead": self.dead,
                "next_due_at": (None if self.next_due_at is None
                                else iso(self.next_due_at.timestamp())),
                "next_due_in_seconds": self.next_due_in_seconds,
                "next_due_key": self.next_due_key,
            },
        }

    @classmethod
    def _from_doc(cls, doc: Mapping[str, Any]) -> Stats:
        retry = doc["retry"]
        due_at = retry["next_due_at"]
        return cls(table=doc["table"], total=doc["total"], counts=dict(doc["counts"]),
                   oldest_age_seconds=doc["oldest_age_seconds"], oldest_key=doc["oldest_key"],
                   unknown_age=doc["unknown_age"], age_histogram=dict(doc["age_histogram"]),
                   due=retry["due"], waiting=retry["waiting"], dead=retry["dead"],
                   next_due_at=(None if due_at is None else
                                datetime.fromisoformat(due_at.replace("Z", "+00:00"))),
                   next_due_in_seconds=retry["next_due_in_seconds"],
                   next_due_key=retry["next_due_key"])


# --------------------------------------------------------------------------- refire


@dataclass(frozen=True)
class RefireResult:
    """One record's outcome: ``refired``, ``missing`` (no such item: never created),
    ``skipped`` (``only_if`` no longer held), ``failed`` (gave up; a resumed run retries
    it) or ``unknown`` (an attempt's answer was lost and the item was gone at the retry)."""

    key: dict[str, Any]
    key_text: str
    outcome: str
    error: str | None

    def to_json(self) -> dict[str, Any]:
        """As ``refire -o jsonl`` prints it (schema ``refire-result``)."""
        from .schemas import REFIRE_RESULT

        return {"schema_version": REFIRE_RESULT, "key": self.key, "outcome": self.outcome,
                "error": self.error}

    @classmethod
    def _of(cls, res: _RawResult, info: TableInfo) -> RefireResult:
        from .outbox import key_plain, key_text

        return cls(key_plain(res.key, info), key_text(res.key, info), res.outcome, res.error)


@dataclass(frozen=True)
class RefireSummary:
    """How a refire ended: one count per outcome, and what was not reached."""

    table: str
    run: str
    dry_run: bool
    counts: dict[str, int]
    not_reached: int
    abandoned: int
    elapsed: float
    attempts: int
    retries: int
    interrupted: bool
    fatal: str | None
    journal: Path | None
    warnings: tuple[str, ...] = ()
    _plan: Any = field(default=None, repr=False, compare=False)

    @property
    def refired(self) -> int:
        return self.counts.get("refired", 0)

    @property
    def missing(self) -> int:
        return self.counts.get("missing", 0)

    @property
    def skipped(self) -> int:
        return self.counts.get("skipped", 0)

    @property
    def failed(self) -> int:
        return self.counts.get("failed", 0)

    @property
    def unknown(self) -> int:
        return self.counts.get("unknown", 0)

    @property
    def total(self) -> int:
        """Records with an outcome (``not_reached`` ones excluded)."""
        return sum(self.counts.values())

    @property
    def ok(self) -> bool:
        """Every record was refired or skipped (and every one was reached)."""
        return self.error() is None

    def error(self, *, interrupted: bool | None = None) -> StreamqError | None:
        """The error the CLI exits with for this run (None when it exits 0): AwsError
        (an error every write would hit), Interrupted (stopped early), PartialFailure
        (some missing, failed or unknown); each says how to continue."""
        plan: _RawPlan | None = self._plan
        if plan is None or self.dry_run:
            return None
        return plan.outcome_error(_raw_summary(self),
                                  interrupted=self.interrupted if interrupted is None
                                  else interrupted)

    def raise_for_outcome(self) -> None:
        """Raise :meth:`error` if there is one (a runbook's ``set -e``)."""
        err = self.error()
        if err is not None:
            raise err

    def to_json(self) -> dict[str, Any]:
        """Counts and timings (schema ``refire-summary``)."""
        from .schemas import REFIRE_SUMMARY

        return {"schema_version": REFIRE_SUMMARY, "table": self.table, "run": self.run,
                "dry_run": self.dry_run,
                **{k: self.counts.get(k, 0) for k in _outcomes()},
                "not_reached": self.not_reached, "abandoned": self.abandoned,
                "elapsed_seconds": round(self.elapsed, 3), "attempts": self.attempts,
                "retries": self.retries, "interrupted": self.interrupted,
                "fatal": self.fatal,
                "journal": None if self.journal is None else str(self.journal),
                "warnings": list(self.warnings)}


def _outcomes() -> tuple[str, ...]:
    from .refire import OUTCOMES

    return OUTCOMES


def _raw_summary(s: RefireSummary) -> _RawSummary:
    from .refire import Summary

    return Summary(counts=dict(s.counts), not_reached=s.not_reached, abandoned=s.abandoned,
                   elapsed=s.elapsed, attempts=s.attempts, retries=s.retries,
                   interrupted=s.interrupted, fatal=s.fatal)


class RefirePlan:
    """A refire decided and not yet run: the records, the pre-flight's verdict on the
    table's stream and trigger (and its filter, evaluated on the MODIFY record each
    refire produces), and the run token. :meth:`run` carries it out."""

    def __init__(self, raw: _RawPlan, aws: Aws, writer: Aws | None) -> None:
        self._raw = raw
        self._aws = aws
        self._writer = writer

    @property
    def table(self) -> str:
        return self._raw.info.name

    @property
    def records(self) -> int:
        """Records in the run (a resumed run: the ones not done yet)."""
        return len(self._raw.targets)

    @property
    def run_token(self) -> str:
        return self._raw.run

    @property
    def only_if(self) -> str:
        return self._raw.only_if

    @property
    def dry_run(self) -> bool:
        return self._raw.dry_run

    @property
    def already_done(self) -> int:
        """A resumed run: records its journal already settled (not in ``records``)."""
        return self._raw.already_done

    @property
    def trigger_function(self) -> str | None:
        """The trigger's function name (None: the pre-flight found no trigger)."""
        return self._raw.preflight.function if self._raw.preflight.trigger else None

    @property
    def trigger_state(self) -> str | None:
        """The trigger's State (``Enabled``, ``Disabled``, ...), None without a trigger."""
        return self._raw.preflight.state if self._raw.preflight.trigger else None

    @property
    def problems(self) -> list[str]:
        """What the pre-flight refuses (unless forced): no stream, no trigger, a filter
        that drops the refire record."""
        return list(self._raw.preflight.problems)

    @property
    def warnings(self) -> list[str]:
        return list(self._raw.preflight.warnings)

    @property
    def journal(self) -> Path | None:
        return self._raw.journal_path

    def to_json(self) -> dict[str, Any]:
        """The plan as ``refire --dry-run -o json`` prints it (schema ``refire-plan``)."""
        return self._raw.to_json()

    def refusal(self) -> StreamqError | None:
        """The Refused error the pre-flight raises (None: the run may go ahead)."""
        return self._raw.refusal()

    def others_running(self) -> list[dict[str, Any]]:
        """Other refires of this table running on this machine (their lock files)."""
        from . import refire, runlock

        return runlock.running(refire.run_identity(self._raw, self._aws.region))

    @contextmanager
    def lock(self) -> Iterator[list[dict[str, Any]]]:
        """Hold this machine's lock for the table while running (other refires see this
        one); yields the other refires already running."""
        from . import refire, runlock

        with runlock.acquire(refire.run_identity(self._raw, self._aws.region),
                             refire.lock_about(self._raw)) as held:
            yield list(held.others)

    def overlap_message(self, others: Sequence[dict[str, Any]]) -> str:
        from .refire import overlap_message

        return overlap_message(self._raw, others)

    def run(self, *, stop: threading.Event | None = None,
            abandon: threading.Event | None = None,
            on_start: Callable[[], None] | None = None,
            on_result: Callable[[RefireResult], None] | None = None,
            warnings: Sequence[str] = ()) -> RefireSummary:
        """Touch the records: at most ``rate`` writes a second and ``concurrency`` in
        flight; the journal (if any) is created (or appended to, when resuming) before
        the first write and holds every outcome. ``on_result`` is called in this thread
        for each outcome. Set ``stop`` (from any thread) to end early: writes in flight
        finish, the rest are not reached; set ``abandon`` too to stop waiting for them.
        Raises Refused when the pre-flight refuses (unless the plan was forced) and
        BadInput for a dry-run plan; partial failure is in the summary
        (:meth:`RefireSummary.raise_for_outcome`)."""
        from . import refire

        info = self._raw.info

        def each(res: _RawResult) -> None:
            if on_result is not None:
                on_result(RefireResult._of(res, info))

        writer = self._writer or refire.writer_aws(self._raw.settings, self._raw.concurrency,
                                                   share=self._aws)
        raw = refire.run(self._raw, writer, stop=stop, abandon=abandon, on_start=on_start,
                         on_result=each if on_result is not None else None)
        return self._summary(raw, warnings)

    def _summary(self, raw: _RawSummary | None, warnings: Sequence[str] = ()) -> RefireSummary:
        from .refire import OUTCOMES

        counts = dict(raw.counts) if raw is not None else dict.fromkeys(OUTCOMES, 0)
        summary = RefireSummary(
            table=self.table, run=self.run_token, dry_run=self.dry_run, counts=counts,
            not_reached=raw.not_reached if raw else 0, abandoned=raw.abandoned if raw else 0,
            elapsed=raw.elapsed if raw else 0.0, attempts=raw.attempts if raw else 0,
            retries=raw.retries if raw else 0, interrupted=raw.interrupted if raw else False,
            fatal=raw.fatal if raw else None, journal=self.journal,
            warnings=(*self.warnings, *(f"{p} (going ahead: forced)" for p in self.problems
                                        if self._raw.force), *warnings),
            _plan=self._raw)
        return summary


# --------------------------------------------------------------------------- trigger


@dataclass(frozen=True)
class TriggerConfig:
    """The trigger (the Lambda event source mapping on the outbox's stream) as
    ``streamq config-trigger`` shows it: every setting, with AWS's default for what is
    unset, its State, and the lints. ``filter_patterns`` is None when the filter is
    encrypted with a customer KMS key and AWS did not return it (``filter_unreadable``
    says why): unknown, never "no filter"."""

    uuid: str
    function_arn: str
    event_source_arn: str
    state: str | None
    state_transition_reason: str | None
    last_processing_result: str | None
    starting_position: str | None
    batch_size: int
    batching_window: int
    retry_attempts: int
    max_record_age: int
    bisect: bool
    parallelization: int
    filter_patterns: list[str] | None
    filter_unreadable: str | None
    kms_key_arn: str | None
    on_failure: str | None
    report_batch_item_failures: bool
    tumbling_window: int
    metrics: bool
    enabled: bool
    lints: list[Lint]
    _doc: dict[str, Any] = field(repr=False, compare=False)
    _mapping: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)

    def to_json(self) -> dict[str, Any]:
        """The document ``config-trigger -o json`` prints (schema ``trigger``)."""
        from .jsonable import json_default

        return json.loads(json.dumps(self._doc, default=json_default))  # type: ignore[no-any-return]

    def export(self) -> dict[str, Any]:
        """The ``--export`` document (what ``--from-file`` and ``from_file`` apply)."""
        return dict(self._doc["config"])

    def export_text(self, fmt: str = "json") -> str:
        """``config-trigger --export --format FMT``: ``json`` (what :meth:`export`
        returns, as text), ``cloudformation`` (an ``AWS::Lambda::EventSourceMapping``
        resource, YAML) or ``terraform`` (an ``aws_lambda_event_source_mapping``
        resource, HCL); see :mod:`streamq.iac`."""
        from .iac import export_text

        return export_text(self._mapping, fmt)

    @classmethod
    def _of(cls, mapping: Mapping[str, Any], info: TableInfo,
            settings: config.Settings) -> TriggerConfig:
        from .trigger import current_config, describe_trigger, destination_arn, lint_config

        doc = describe_trigger(mapping, info, settings)
        cfg = current_config(mapping)
        patterns = (None if cfg["FilterCriteria"] is None
                    else [f["Pattern"] for f in cfg["FilterCriteria"]["Filters"]])
        return cls(
            uuid=str(mapping.get("UUID")), function_arn=str(mapping.get("FunctionArn")),
            event_source_arn=str(mapping.get("EventSourceArn")),
            state=mapping.get("State"),
            state_transition_reason=mapping.get("StateTransitionReason"),
            last_processing_result=mapping.get("LastProcessingResult"),
            starting_position=mapping.get("StartingPosition"),
            batch_size=cfg["BatchSize"], batching_window=cfg["MaximumBatchingWindowInSeconds"],
            retry_attempts=cfg["MaximumRetryAttempts"],
            max_record_age=cfg["MaximumRecordAgeInSeconds"],
            bisect=cfg["BisectBatchOnFunctionError"],
            parallelization=cfg["ParallelizationFactor"], filter_patterns=patterns,
            filter_unreadable=doc["filter_unreadable"], kms_key_arn=cfg["KMSKeyArn"],
            on_failure=destination_arn(cfg),
            report_batch_item_failures=bool(cfg["FunctionResponseTypes"]),
            tumbling_window=cfg["TumblingWindowInSeconds"],
            metrics=bool(cfg["MetricsConfig"]["Metrics"]), enabled=cfg["Enabled"],
            lints=lint_config(cfg, info, settings, filter_unreadable=doc["filter_unreadable"]),
            _doc=doc, _mapping=dict(mapping))


@dataclass(frozen=True)
class TriggerChange:
    """A change to the trigger: what differs (``changes``), the lints of the result, and
    whether it was applied (with the backup of the previous configuration and the
    configuration read back)."""

    uuid: str
    function_arn: str
    event_source_arn: str
    changes: list[FieldChange]
    lints: list[Lint]
    dry_run: bool
    applied: bool
    backup: Path | None = None
    config: dict[str, Any] | None = None
    warnings: tuple[str, ...] = ()
    #: The trigger's State as read back after the change (None: not applied).
    state: str | None = None

    @property
    def blocking(self) -> list[Lint]:
        """Error-level lints: the change is refused unless forced."""
        return [x for x in self.lints if x.severity == "error"]

    def to_json(self) -> dict[str, Any]:
        """The document ``config-trigger --dry-run -o json`` (or a change) prints
        (schema ``trigger-change``)."""
        from .schemas import TRIGGER_CHANGE

        doc: dict[str, Any] = {"schema_version": TRIGGER_CHANGE, "UUID": self.uuid,
                               "FunctionArn": self.function_arn,
                               "EventSourceArn": self.event_source_arn,
                               "changes": [c.to_json() for c in self.changes],
                               "lints": [x.to_json() for x in self.lints],
                               "dry_run": self.dry_run, "applied": self.applied,
                               "backup": None if self.backup is None else str(self.backup)}
        if self.config is not None:
            doc["config"] = self.config
        return doc


def trigger_changes(*, batch_size: int | str | None = None,
                    batching_window: Duration | None = None,
                    retry_attempts: int | str | None = None,
                    max_record_age: Duration | None = None, bisect: bool | None = None,
                    parallelization: int | str | None = None,
                    filter_events: str | Sequence[str] | None = None,
                    filter_patterns: Sequence[str] | None = None, no_filter: bool = False,
                    on_failure: str | None = None,
                    report_batch_item_failures: bool | None = None,
                    tumbling_window: Duration | None = None, metrics: bool | str | None = None,
                    enabled: bool | None = None) -> dict[str, Any]:
    """The trigger fields these changes set (the ``--export`` names: ``BatchSize``, ...),
    checked against AWS's documented ranges without any AWS call (BadInput otherwise),
    as ``config-trigger``'s change flags are. ``retry_attempts`` and ``max_record_age``
    take -1 (or ``"infinite"``) for infinite; durations are seconds or text (``1h``)."""
    from .trigger import changes_from_flags

    def text(value: Any) -> str | None:
        if value is None:
            return None
        if isinstance(value, timedelta):
            seconds = value.total_seconds()
            return str(int(seconds)) if seconds == int(seconds) else str(seconds)
        if isinstance(value, bool):
            raise BadInput(f"invalid value {value!r}: a number")
        return str(value)

    events = (filter_events if filter_events is None or isinstance(filter_events, str)
              else ",".join(filter_events))
    switch = (None if metrics is None else metrics if isinstance(metrics, str)
              else "on" if metrics else "off")
    return changes_from_flags(
        batch_size=text(batch_size), batching_window=text(batching_window),
        retry_attempts=text(retry_attempts), max_record_age=text(max_record_age),
        bisect=bisect, parallelization=text(parallelization), event_filter=events,
        filter_patterns=list(filter_patterns) if filter_patterns else None,
        no_filter=no_filter, on_failure=on_failure,
        report_batch_item_failures=report_batch_item_failures,
        tumbling_window=text(tumbling_window), enabled=enabled, metrics=switch)


class TriggerChangePlan:
    """A trigger change decided and not yet applied: the diff against the trigger as
    read, and the lints of the result. :meth:`apply` sends it."""

    def __init__(self, aws: Aws, info: TableInfo, settings: config.Settings,
                 mapping: dict[str, Any], asked: Mapping[str, Any], notes: list[str],
                 force: bool) -> None:
        from .trigger import current_config, diff, filter_hidden, lint_config

        self._aws, self._info, self._settings = aws, info, settings
        self._mapping = mapping
        self._force = force
        #: the fields asked to change (``--export`` names), validated
        self.asked: dict[str, Any] = dict(asked)
        #: notes about a saved configuration from another trigger (applied: forced)
        self.notes = list(notes)
        #: why the trigger's filter cannot be read (encrypted), or None
        self.filter_unreadable = filter_hidden(mapping)
        current = current_config(mapping)
        self.changes: list[FieldChange] = diff(current, asked)
        self.lints: list[Lint] = lint_config({**current, **asked}, info, settings,
                                             filter_unreadable=self.filter_unreadable)

    @property
    def uuid(self) -> str:
        return str(self._mapping.get("UUID"))

    @property
    def function_arn(self) -> str:
        return str(self._mapping.get("FunctionArn"))

    @property
    def event_source_arn(self) -> str:
        return str(self._mapping.get("EventSourceArn"))

    @property
    def table(self) -> str:
        return self._info.name

    @property
    def blocking(self) -> list[Lint]:
        return [x for x in self.lints if x.severity == "error"]

    def preview(self, *, dry_run: bool = True) -> TriggerChange:
        return TriggerChange(self.uuid, self.function_arn, self.event_source_arn,
                             list(self.changes), list(self.lints), dry_run, False)

    def refusal(self) -> Refused | None:
        """The change is refused when its result has an error-level lint (unless
        forced), as ``config-trigger`` refuses it with or without ``--yes``."""
        blocking = self.blocking
        if not blocking or self._force:
            return None
        names = ", ".join(f"{x.severity}[{x.code}]" for x in blocking)
        return Refused(f"not applied: the result has {names}: {blocking[0].message} "
                       "(--force applies it anyway)")

    def check_settled(self) -> None:
        """AwsError when the trigger is changing (Updating...): AWS would refuse."""
        from .trigger import check_settled

        check_settled(self._mapping)

    def apply(self, *, wait: bool = True, timeout: Duration = 120.0,
              backup_dir: str | Path | None = None,
              on_backup: Callable[[Path], None] | None = None) -> TriggerChange:
        """Save the current configuration to a backup file (``on_backup`` is told where,
        before anything changes), send the change, wait until the State settles (unless
        ``wait`` is false), read the trigger back and verify it holds what was asked
        (AwsError naming the first field that does not)."""
        from .trigger import apply_changes, export_doc, filter_hidden, write_backup

        refusal = self.refusal()
        if refusal is not None:
            raise refusal
        seconds = _seconds(timeout, "--wait-timeout") or 0.0
        self.check_settled()
        backup = write_backup(self._mapping, None if backup_dir is None else Path(backup_dir))
        if on_backup is not None:
            on_backup(backup)
        after = apply_changes(self._aws, self._mapping, self.changes, wait=wait,
                              timeout=seconds)
        warnings: list[str] = []
        unreadable = filter_hidden(after)
        if unreadable and any(c.field == "FilterCriteria" for c in self.changes):
            warnings.append(f"the new filter was sent but cannot be read back to check it: "
                            f"it is {unreadable}")
        return TriggerChange(self.uuid, self.function_arn, self.event_source_arn,
                             list(self.changes), list(self.lints), False, True, backup,
                             export_doc(after), tuple(warnings), after.get("State"))


# --------------------------------------------------------------------------- the outbox


class Outbox:
    """One outbox table, its stream and its trigger.

    ``session``: a boto3 Session to use (an assumed role, SSO, your own credentials
    chain); otherwise one is made from ``profile`` and ``region`` (or the environment,
    as boto3 does). ``endpoint_url``: a local endpoint (moto, the sandbox, a proxy).
    ``function``: the trigger's function, when the stream has several triggers (a name,
    ``NAME:QUALIFIER`` or an ARN). The other arguments are the outbox's conventions,
    with the CLI's defaults: the attribute names and when a record counts as stuck,
    and the retry policy (``backoff`` as ``base=1m,factor=2,jitter=0.2,cap=6h``).

    Every method talks to AWS when called (nothing is cached but the boto3 clients), and
    raises :class:`~streamq.errors.StreamqError` subclasses: BadInput (exit code 2),
    NotFound (4), Refused (5), AwsError (1), as the CLI does."""

    def __init__(self, table: str, *, session: boto3.session.Session | None = None,
                 region: str | None = None, endpoint_url: str | None = None,
                 profile: str | None = None, function: str | None = None,
                 stuck_after: Duration = "5m", backoff: str | None = None,
                 max_attempts: int | None = None, created_attr: str = "created_at",
                 error_attr: str = "last_error", attempts_attr: str = "attempts",
                 refired_attr: str = "refired_at", refire_count_attr: str = "refire_count",
                 refire_run_attr: str = "refire_run",
                 last_attempt_attr: str = "last_attempt_at") -> None:
        if not isinstance(table, str) or not table:
            raise BadInput("no table: Outbox(table) takes the outbox table's name")
        if session is not None and profile is not None:
            raise BadInput("give a session or a profile, not both (a session already has "
                           "its credentials)")
        stuck = _seconds(stuck_after, "stuck_after")
        values: dict[str, Any] = {
            "table": table, "function": function, "region": region,
            "endpoint_url": endpoint_url, "profile": profile,
            "stuck_after": stuck, "backoff": backoff, "max_attempts": max_attempts,
            "created_attr": created_attr, "error_attr": error_attr,
            "attempts_attr": attempts_attr, "refired_attr": refired_attr,
            "refire_count_attr": refire_count_attr, "refire_run_attr": refire_run_attr,
            "last_attempt_attr": last_attempt_attr,
        }
        self._init(config.from_values(values, session=session))

    @classmethod
    def from_settings(cls, settings: config.Settings) -> Outbox:
        """An Outbox for settings already resolved (the CLI's flags, STREAMQ_* and
        streamq.toml: :func:`streamq.config.resolve`; the sandbox's). Without a table in
        them, the first call that needs it raises BadInput (as the CLI says "no table")."""
        self = cls.__new__(cls)
        self._init(settings)
        return self

    def _init(self, settings: config.Settings) -> None:
        from .aws import Aws

        self._settings = settings
        self._base = Aws(settings)
        self._wider: dict[int, Aws] = {}

    @property
    def table(self) -> str:
        return self._settings.require_table()

    @property
    def region(self) -> str | None:
        """The region the outbox's calls go to (given, or the session's)."""
        return self._base.region

    @property
    def settings(self) -> config.Settings:
        """The resolved settings (attribute names, retry policy, connection)."""
        return self._settings

    def __repr__(self) -> str:
        return f"Outbox({self._settings.table!r})"

    # ----------------------------------------------------------------- internals

    def _aws(self, pool: int = 16) -> Aws:
        from .aws import Aws

        if pool <= self._base.max_pool_connections:
            return self._base
        # One per pool size: describing the table and scanning it share the clients.
        wide = self._wider.get(pool)
        if wide is None:
            wide = self._wider[pool] = Aws(self._settings, max_pool_connections=pool,
                                           share=self._base)
        return wide

    def _describe(self, aws: Aws | None = None) -> TableInfo:
        from .outbox import describe_table

        return describe_table(aws or self._base, self.table)

    def _records(self, sel: Selection, *, on_page: Callable[[int], None] | None = None,
                 sort: str | None = None, limit: int | None = None,
                 info: TableInfo | None = None) -> Records:
        from .outbox import plan_scan, select, sort_records
        from .retry import describe

        aws = self._aws(max(16, sel.segments or 8))
        info = info or self._describe(aws)
        s = self._settings
        path = plan_scan(info, s, sel).describe()
        log.debug("access path: %s", path)
        log.debug("retry policy: %s; last attempt from %s (or %s when later, %s when both "
                  "are absent)", describe(s.retry_policy), s.last_attempt_attr,
                  s.refired_attr, s.created_attr)
        fallbacks = [0]
        observe = sel.observe

        def count(rec: _Raw) -> None:
            if rec.retry is not None and rec.last_attempt_from == s.created_attr:
                fallbacks[0] += 1

        if observe is not None:
            # Every record read is observed anyway: count them all. Without an observer
            # only the selected records are built (and counted).
            def observed(rec: _Raw) -> None:
                count(rec)
                observe(rec)

            sel.observe = observed
        scanned = [0]

        def page(n: int) -> None:
            scanned[0] += n
            if on_page is not None:
                on_page(n)

        statuses = sel.statuses

        def gen() -> Iterator[Record]:
            raw = select(aws, info, s, sel, on_page=page)
            try:
                it = iter(sort_records(raw, sort, limit)) if sort is not None else raw
                for rec in it:
                    if observe is None:
                        count(rec)
                    yield Record(rec, info, statuses)
            finally:
                raw.close()  # type: ignore[attr-defined]  # select() is a generator
            if fallbacks[0]:
                log.debug("%d failed record(s) have no %s: their backoff counts from %s",
                          fallbacks[0], s.last_attempt_attr, s.created_attr)

        return Records(info, path, gen(), scanned)

    # ----------------------------------------------------------------- the queue

    def records(self, status: Statuses = None, older_than: Duration | None = None,
                where: Where = None, limit: int | None = None, *,
                sort: Literal["age", "-age"] | None = None, keys_only: bool = False,
                segments: int | None = None, segment: str | tuple[int, int] | None = None,
                index: str | None = None,
                on_page: Callable[[int], None] | None = None) -> Records:
        """The records the selection matches, streamed (``streamq list``).

        ``status``: default failed and stuck; ``older_than``: at least this old;
        ``where``: the CLI's conditions (``"last_error~429"``, ``"attempts>=3"``), ANDed;
        ``limit``: stop after this many; ``sort``: ``age`` (youngest first) or ``-age``
        (oldest first; reads the whole selection first); ``keys_only``: read only the
        key, the created time and the error (cheaper; ``item`` holds only those).
        ``segments``/``segment``/``index``: the scan's parallelism, one slice (``"0/4"``)
        of it, or a GSI to read. ``on_page(n)`` is called with each page's item count.
        The table is described (and the arguments checked) now; it is read as you
        iterate."""
        if sort not in (None, "age", "-age"):
            raise BadInput(f"invalid --sort {sort!r}: use age or -age")
        sel = build_selection(status, older_than, where, None if sort else limit,
                              segments=segments, segment=segment, index=index,
                              keys_only=keys_only)
        if sort is not None and limit is not None:
            build_selection(limit=limit)  # checks the value
        return self._records(sel, on_page=on_page, sort=sort, limit=limit)

    def count(self, status: Statuses = None, older_than: Duration | None = None,
              where: Where = None, *, segments: int | None = None,
              segment: str | tuple[int, int] | None = None, index: str | None = None,
              on_page: Callable[[int], None] | None = None, processes: int | None = 1,
              ) -> int:
        """How many records the selection matches (``streamq list --count``).
        ``processes``: processes that share the scan's segments (1: this one only; N:
        this one and N-1 workers, which use the credentials this one resolved; None: one
        per core, up to 4, for a table of 128 MiB or more; streamq.parallel)."""
        sel = build_selection(status, older_than, where, None, segments=segments,
                              segment=segment, index=index, keys_only=True)
        info, workers = self._workers(sel, processes)
        if workers is not None:
            return int(workers(task="count", on_page=on_page))
        with self._records(sel, on_page=on_page, info=info) as recs:
            return sum(1 for _ in recs)

    def stats(self, where: Where = None, *, segments: int | None = None,
              segment: str | tuple[int, int] | None = None, index: str | None = None,
              on_page: Callable[[int], None] | None = None, processes: int | None = 1,
              ) -> Stats:
        """Counts by status and retry state, the oldest record, an age histogram
        (``streamq stats``). ``processes``: as for :meth:`count`."""
        from .outbox import Stats as Counter

        sel = build_selection("all", None, where, None, segments=segments, segment=segment,
                              index=index, keys_only=True)
        sel.retry_counts = True  # stats counts due, waiting and dead
        info, workers = self._workers(sel, processes)
        if workers is not None:
            counter = workers(task="stats", on_page=on_page)
        else:
            counter = Counter()
            with self._records(sel, on_page=on_page, info=info) as recs:
                for rec in recs:
                    counter.add(rec._raw)
                info = recs._info
        assert info is not None and isinstance(counter, Counter)
        return Stats._from_doc(counter.to_json(info))

    def _write_lines(self, fmt: str, out: Any, sink: Callable[..., Any],
                     status: Statuses = None, older_than: Duration | None = None,
                     where: Where = None, *, segments: int | None = None,
                     segment: str | tuple[int, int] | None = None, index: str | None = None,
                     on_page: Callable[[int], None] | None = None,
                     processes: int | None = 1) -> int:
        """``list -o ids|jsonl`` without --sort or --limit: every selected record as
        ``sink(fmt, key_names, out)`` writes it, in worker processes when ``processes``
        says so (they render their own lines). Returns the number of records."""
        sel = build_selection(status, older_than, where, None, segments=segments,
                              segment=segment, index=index, keys_only=fmt == "ids")
        info, workers = self._workers(sel, processes)
        if workers is not None:
            return int(workers(task="lines", on_page=on_page, fmt=fmt, sink=sink,
                               write=out.write))
        count = 0
        with self._records(sel, on_page=on_page, info=info) as recs:
            writer = sink(fmt, recs.key_names, out)
            for rec in recs:
                writer.write(rec)
                count += 1
        writer.close()
        return count

    def _workers(self, sel: Selection, processes: int | None) -> tuple[
            TableInfo | None, Callable[..., Any] | None]:
        """Whether this scan runs in worker processes (streamq.parallel): the table's
        description (described once, for either way) and, when it does, the run."""
        if processes == 1:
            return None, None
        if processes is not None and (isinstance(processes, bool)
                                      or not isinstance(processes, int)
                                      or not 1 <= processes <= 64):
            raise BadInput(f"invalid --processes {processes!r}: 1 to 64")
        from . import parallel
        from .outbox import plan_scan

        aws = self._aws(max(16, sel.segments or 8))
        info = self._describe(aws)
        plan = plan_scan(info, self._settings, sel)
        n = parallel.how_many(processes, info, plan)
        if (n <= 1 or plan.index is not None or sel.observe is not None
                or sel.limit is not None or self._settings.session is not None):
            return info, None
        log.debug("access path: %s; %d worker processes", plan.describe(), n)
        settings, now = self._settings, time.time()

        def run(**kw: Any) -> Any:
            return parallel.run(aws, settings, info, plan, sel, processes=n, now=now, **kw)

        return info, run

    def show(self, key: Key) -> Record:
        """One record, whole, read with a consistent read (``streamq show``): ``key`` as
        ``list -o ids`` prints it, or a mapping of the key attributes. NotFound when
        there is no such item."""
        from .outbox import STATUSES, Classifier, get_item, parse_key_object, parse_key_text

        info = self._describe()
        typed = (parse_key_text(key, info) if isinstance(key, str)
                 else parse_key_object(dict(key), info))
        item = get_item(self._base, info, typed)
        return Record(Classifier(self._settings, info).classify(item), info, STATUSES)

    # ----------------------------------------------------------------- refire

    def plan_refire(self, targets: Iterable[Record | Key] | None = None, *,
                    status: Statuses = None, older_than: Duration | None = None,
                    where: Where = None, limit: int | None = None, due: bool = False,
                    id_lines: Iterable[str] | None = None, resume: str | Path | None = None,
                    only_if: OnlyIf | None = None, rate: float = DEFAULT_RATE,
                    concurrency: int = DEFAULT_CONCURRENCY, deadline: Duration = 60.0,
                    journal: str | Path | None = None, uuid: str | None = None,
                    dry_run: bool = False, force: bool = False,
                    progress: Callable[[str], AbstractContextManager[Any]] | None = None,
                    ) -> RefirePlan:
        """Decide a refire without writing (see :meth:`refire` for the arguments):
        the records, the pre-flight (stream, trigger, its state and filter), the outcomes
        known without a write. ``id_lines``: key lines as ``refire --ids-from`` reads
        them; ``progress(label)``: a context manager whose value has ``advance(n)``,
        around the selecting scan. The refusal is left to :meth:`RefirePlan.refusal`."""
        from . import refire

        recs: list[Record] | None = None
        keys: list[str] = []
        if targets is not None:
            given = list(targets)
            for t in given:
                if not isinstance(t, (Record, str, Mapping)):
                    raise BadInput(f"cannot refire {t!r}: give Records (from "
                                   "Outbox.records), key texts or key mappings")
            keys = [t if isinstance(t, str) else _key_json(t) for t in given
                    if not isinstance(t, Record)]
            picked = [t for t in given if isinstance(t, Record)]
            if picked and keys:
                raise BadInput("give records (from Outbox.records) or keys, not both")
            if not keys and id_lines is None:
                recs = picked  # records (possibly none): each keeps its selected status
        filters = bool(status or older_than is not None or where or limit is not None)
        if due and status:
            raise BadInput("--due selects --status due: drop --status")
        if recs is not None and (filters or due or id_lines is not None):
            raise BadInput("give records, or filters (status, older_than, where, limit, due)"
                           ", not both: records carry the status they were selected by")
        if due:
            status, filters = "due", True
            only_if = only_if or "due"
        if isinstance(rate, bool) or not isinstance(rate, (int, float)) or not rate >= 0:
            raise BadInput(f"invalid --rate {rate!r}: 0 (unlimited) or more writes a second")
        if isinstance(concurrency, bool) or not isinstance(concurrency, int) or not (
                1 <= concurrency <= 256):
            raise BadInput(f"invalid --concurrency {concurrency!r}: 1 to 256")
        seconds = _seconds(deadline, "--deadline")
        if not seconds or seconds <= 0:
            raise BadInput("--deadline must be more than 0s")
        jpath = None if journal is None else Path(journal)
        rpath = None if resume is None else Path(resume)
        ids_given = bool(keys) or id_lines is not None
        refire.check_selection(ids=ids_given, filters=filters or recs is not None,
                               resume=rpath, journal=jpath, only_if=only_if)

        def selection() -> Selection:
            return build_selection(status, older_than, where, limit)

        settings, aws = self._settings, self._base
        if rpath is not None:
            # The journal says which table, where, and with which attribute names (a
            # differing one given here is BadInput).
            settings = refire.settings_for_resume(settings, refire.read_journal(rpath), rpath)
            if settings != self._settings:
                from .aws import Aws

                aws = Aws(settings)
        writer = None if dry_run else refire.writer_aws(settings, concurrency, share=aws)
        if writer is not None:
            # The writes' client is made while the pre-flight's requests are in flight.
            writer.prefetch("dynamodb")
        statuses = tuple(dict.fromkeys(s for r in recs or () for s in r._selected_by))
        raw = refire.prepare(
            aws, settings, ids=keys, id_lines=id_lines,
            selection=selection if filters else None, resume=rpath, journal=jpath,
            only_if=only_if, uuid=uuid, rate=float(rate), concurrency=concurrency,
            deadline=seconds, dry_run=dry_run, force=force, progress=progress,
            records=[r._raw for r in recs] if recs is not None else None,
            statuses=statuses)
        return RefirePlan(raw, aws, writer)

    def refire(self, targets: Iterable[Record | Key] | None = None, *,
               status: Statuses = None, older_than: Duration | None = None,
               where: Where = None, limit: int | None = None, due: bool = False,
               only_if: OnlyIf | None = None, rate: float = DEFAULT_RATE,
               concurrency: int = DEFAULT_CONCURRENCY, deadline: Duration = 60.0,
               journal: str | Path | None = None, resume: str | Path | None = None,
               uuid: str | None = None, dry_run: bool = False, force: bool = False,
               exclusive: bool = False, stop: threading.Event | None = None,
               on_result: Callable[[RefireResult], None] | None = None) -> RefireSummary:
        """Refire records: one conditional UpdateItem each, so the trigger runs the Lambda
        on them again (``streamq refire``).

        Choose the records by ``targets`` (Records from :meth:`records`, each refired
        only if it still has the status it was selected with; or keys: text as ``list
        -o ids`` prints it, or mappings), by filters (``status``, ``older_than``,
        ``where``, ``limit``, or ``due``: the failed records whose backoff has passed),
        or continue the run journaled in ``resume``. ``only_if`` re-checks a status in
        each write (failed, stuck, due, dead, selected, any). ``rate`` (writes a second,
        retries included; 0: unlimited) and ``concurrency`` bound the load; a record is
        given up ``deadline`` after its first attempt. ``journal``: record the plan and
        every outcome in this file (then ``resume`` it).

        Before any write the pre-flight checks the stream, the trigger and its filter:
        a problem raises Refused (exit code 5) unless ``force``. Another refire of the
        table on this machine is a warning in the summary (``exclusive``: Refused).
        ``dry_run``: decide and read, write nothing (the summary counts nothing).
        Missing, failed or unknown records do not raise: see
        :attr:`RefireSummary.ok` and :meth:`RefireSummary.raise_for_outcome`."""
        plan = self.plan_refire(targets, status=status, older_than=older_than, where=where,
                                limit=limit, due=due, resume=resume, only_if=only_if,
                                rate=rate, concurrency=concurrency, deadline=deadline,
                                journal=journal, uuid=uuid, dry_run=dry_run, force=force)
        refusal = plan.refusal()
        if refusal is not None:
            raise refusal
        if dry_run:
            return plan._summary(None)
        if not plan.records:
            return plan._summary(None)
        with plan.lock() as others:
            notes: list[str] = []
            if others:
                text = plan.overlap_message(others)
                if exclusive:
                    raise Refused(f"refusing to refire: {text}; exclusive=True does not "
                                  "overlap another run")
                log.warning("%s", text)
                notes.append(text)
            return plan.run(stop=stop, on_result=on_result, warnings=notes)

    # ----------------------------------------------------------------- trigger

    def _mapping(self, uuid: str | None) -> tuple[TableInfo, dict[str, Any]]:
        from .trigger import find_trigger, get_mapping

        info = self._describe()
        found = find_trigger(self._base, info, function=self._settings.function, uuid=uuid)
        # List results may hide an encrypted FilterCriteria; Get shows it.
        return info, get_mapping(self._base, str(found["UUID"]))

    def trigger(self, *, uuid: str | None = None) -> TriggerConfig:
        """The trigger's settings, State and lints (``streamq config-trigger``). NotFound
        when the table has no stream or no trigger; BadInput when there are several
        (choose with ``function`` or ``uuid``)."""
        info, mapping = self._mapping(uuid)
        return TriggerConfig._of(mapping, info, self._settings)

    def check_trigger(self, saved: str | Path | Mapping[str, Any], *,
                      uuid: str | None = None) -> DriftReport:
        """Compare the trigger with a configuration saved by ``--export`` (a file, ``-``
        for stdin, or the document itself, e.g. ``trigger.export()``), as
        ``config-trigger --check`` does: only the fields it has are checked; an
        encrypted filter AWS did not return is ``unknown``, never equal. The report's
        ``status`` is ``in_sync``, ``drift`` or ``unknown``. The file is read (and
        checked: BadInput) before any AWS call."""
        from .drift import check_drift
        from .trigger import read_saved_config, saved_config

        if isinstance(saved, Mapping):
            source = "the saved configuration"
            doc, values = saved_config(dict(saved), source)
        else:
            source = str(saved)
            doc, values = read_saved_config(source)
        _, mapping = self._mapping(uuid)
        return check_drift(mapping, doc, values, source=source)

    def plan_trigger_change(self, changes: Mapping[str, Any] | None = None, *,
                            from_file: str | Path | None = None, uuid: str | None = None,
                            force: bool = False) -> TriggerChangePlan:
        """Read the trigger and diff it with ``changes`` (``--export`` field names, e.g.
        from :func:`trigger_changes`) or with the configuration saved in ``from_file``
        (an ``--export`` or a backup; a file exported from another trigger is Refused
        unless ``force``)."""
        from .trigger import changes_from_file, validate_config

        if changes and from_file is not None:
            raise BadInput("--from-file applies a whole configuration; combine it with no "
                           "change flag (edit the file instead)")
        asked = validate_config(dict(changes or {}), "changes") if changes else {}
        info, mapping = self._mapping(uuid)
        notes: list[str] = []
        if from_file is not None:
            asked, notes = changes_from_file(str(from_file), mapping, force=force)
        return TriggerChangePlan(self._base, info, self._settings, mapping, asked, notes,
                                 force)

    def change_trigger(self, *, batch_size: int | str | None = None,
                       batching_window: Duration | None = None,
                       retry_attempts: int | str | None = None,
                       max_record_age: Duration | None = None, bisect: bool | None = None,
                       parallelization: int | str | None = None,
                       filter_events: str | Sequence[str] | None = None,
                       filter_patterns: Sequence[str] | None = None, no_filter: bool = False,
                       on_failure: str | None = None,
                       report_batch_item_failures: bool | None = None,
                       tumbling_window: Duration | None = None,
                       metrics: bool | None = None, enabled: bool | None = None,
                       from_file: str | Path | None = None, uuid: str | None = None,
                       dry_run: bool = False, force: bool = False, wait: bool = True,
                       wait_timeout: Duration = 120.0,
                       backup_dir: str | Path | None = None) -> TriggerChange:
        """Change the trigger (``streamq config-trigger`` with change flags): every value
        is checked before any AWS call (BadInput); the change is diffed and linted; a
        result with an error-level lint (a filter that drops refires) is Refused unless
        ``force``; then the current configuration is backed up, the change applied,
        waited for and read back. ``dry_run``: only the diff and the lints. No change
        needed: returns with ``changes`` empty and ``applied`` False."""
        asked = trigger_changes(
            batch_size=batch_size, batching_window=batching_window,
            retry_attempts=retry_attempts, max_record_age=max_record_age, bisect=bisect,
            parallelization=parallelization, filter_events=filter_events,
            filter_patterns=filter_patterns, no_filter=no_filter, on_failure=on_failure,
            report_batch_item_failures=report_batch_item_failures,
            tumbling_window=tumbling_window, metrics=metrics, enabled=enabled)
        if not asked and from_file is None:
            raise BadInput("no change: give at least one setting to change (or from_file)")
        seconds = _seconds(wait_timeout, "--wait-timeout")
        plan = self.plan_trigger_change(asked, from_file=from_file, uuid=uuid, force=force)
        if dry_run or not plan.changes:
            return plan.preview(dry_run=dry_run)
        return plan.apply(wait=wait, timeout=seconds or 0.0, backup_dir=backup_dir)

    # ----------------------------------------------------------------- doctor

    def doctor(self, *, since: Duration = "1h", max_iterator_age: Duration = "5m",
               scan_budget: Duration = "30s", timeout: Duration = "30s") -> DoctorReport:
        """Check the whole pipeline (``streamq doctor``): table, stream, trigger,
        function, destination, CloudWatch metrics over ``since``, the outbox. Each
        :class:`Check` is ok, warn, fail or skip; ``report.status`` is the worst."""
        from .aws import Aws
        from .health import DoctorOptions, run_doctor
        from .waits import Timeouts

        opts = DoctorOptions(
            since=_seconds(since, "--since") or 0.0,
            max_iterator_age=_seconds(max_iterator_age, "--max-iterator-age") or 0.0,
            scan_budget=_seconds(scan_budget, "--scan-budget") or 0.0,
            step_timeout=_seconds(timeout, "--timeout") or 0.0)
        if opts.since < 60:
            raise BadInput("--since must be at least 1m (CloudWatch keeps Lambda metrics "
                           "per minute)")
        if opts.step_timeout <= 0:
            raise BadInput("--timeout must be more than 0s")
        self._settings.require_table()
        # Bounded calls: streamq's timeouts (streamq.waits), never longer than a step's
        # deadline, and few retries; each step also has its deadline.
        base = Timeouts.from_env()
        aws = Aws(self._settings, max_attempts=2, share=self._base, timeouts=Timeouts(
            connect=min(base.connect, opts.step_timeout),
            read=min(base.read, opts.step_timeout),
            scan=min(base.scan, opts.scan_budget + opts.step_timeout)))
        return run_doctor(aws, self._settings, opts)

