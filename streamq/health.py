"""``streamq doctor``: the pipeline's health as data, and ``watch``'s snapshot.

Each check is a small function returning :class:`Check` rows (name, status, one-line
detail, a hint naming the fix, numbers for scripts). Status is ``ok``, ``warn``,
``fail`` or ``skip`` (not evaluated: a check it depends on did not pass, or CloudWatch
has no metrics to judge). A check that cannot run (access denied, no answer in time)
is a ``warn`` saying why, naming the IAM action, and the others still run. Every AWS
call is bounded: the client's connect/read timeouts and few retries, plus a deadline
per step (a step that overruns is reported, never waited for).

The checks, in order (``docs/doctor.md`` documents each and the JSON format):
``table``, ``stream``, ``stream.view``, ``trigger``, ``trigger.state``,
``trigger.config``, ``trigger.refire-filter``, ``function``, ``function.concurrency``,
``function.timeout``, ``destination``, ``destination.backlog``,
``metrics.iterator-age``, ``metrics.errors``, ``metrics.throttles``,
``metrics.delivery``, ``metrics.trigger``, ``outbox``, ``outbox.retention``,
``scale.error-index``.
"""

from __future__ import annotations

import importlib.util
import json
import shlex
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

from . import hints
from .aws import Aws, aws_errors, error_code
from .config import Settings
from .durations import humanize
from .errors import AwsError, BadInput, NotFound, StreamqError
from .metrics import MetricsReport, mapping_metrics_enabled
from .outbox import STATUSES, Selection, Stats, TableInfo, describe_table, select
from .schemas import DOCTOR as SCHEMA_VERSION  # the doctor -o json document

CHECK_NAMES: tuple[str, ...] = (
    "table", "stream", "stream.view", "trigger", "trigger.state", "trigger.config",
    "trigger.refire-filter", "function", "function.concurrency", "function.timeout",
    "destination", "destination.backlog", "metrics.iterator-age", "metrics.errors",
    "metrics.throttles", "metrics.delivery", "metrics.trigger", "outbox",
    "outbox.retention", "scale.error-index")
SEVERITY = {"ok": 0, "skip": 0, "warn": 1, "fail": 2}
STREAM_RETENTION = 86400.0
LARGE_TABLE_BYTES = 100 * 1024 * 1024
LARGE_TABLE_ITEMS = 100_000
#: Lints shown by their own checks rather than under trigger.config.
_OWN_CHECK_LINTS = {"filter-drops-refire", "filter-invalid", "filter-encrypted", "disabled",
                    "no-on-failure"}
_DENIED = {"AccessDeniedException", "AccessDenied", "UnauthorizedOperation"}

T = TypeVar("T")


@dataclass
class Check:
    name: str
    status: str  # ok | warn | fail | skip
    detail: str
    hint: str | None = None
    data: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "status": self.status, "detail": self.detail,
                "hint": self.hint, "data": self.data}


@dataclass(frozen=True)
class DoctorOptions:
    since: float = 3600.0  # CloudWatch window
    max_iterator_age: float = 300.0  # metrics.iterator-age fails above this
    scan_budget: float = 30.0  # seconds the outbox count may take
    step_timeout: float = 30.0  # deadline of one step (its AWS calls)


@dataclass
class Report:
    table: str
    checks: list[Check]
    since: float
    generated_at: float
    function: str | None = None
    mapping_uuid: str | None = None

    @property
    def status(self) -> str:
        worst = max((SEVERITY[c.status] for c in self.checks), default=0)
        return {0: "ok", 1: "warn", 2: "fail"}[worst]

    @property
    def summary(self) -> dict[str, int]:
        out = dict.fromkeys(("ok", "warn", "fail", "skip"), 0)
        for c in self.checks:
            out[c.status] += 1
        return out

    def to_json(self) -> dict[str, Any]:
        from .outbox import iso

        return {"schema_version": SCHEMA_VERSION, "table": self.table,
                "function": self.function, "trigger_uuid": self.mapping_uuid,
                "generated_at": iso(self.generated_at), "since_seconds": self.since,
                "status": self.status, "summary": self.summary,
                "checks": [c.to_json() for c in self.checks]}


# ------------------------------------------------------------------------ bounded steps


class StepTimeout(StreamqError):
    pass


class _Step:
    """Runs ``fn`` in a daemon thread; :meth:`result` waits until the deadline at most
    (a thread that overruns is abandoned, never joined)."""

    def __init__(self, fn: Callable[[], Any], timeout: float) -> None:
        self.timeout = timeout
        self._value: Any = None
        self._error: BaseException | None = None
        self._done = threading.Event()
        self._deadline = time.monotonic() + timeout
        threading.Thread(target=self._run, args=(fn,), daemon=True).start()

    def _run(self, fn: Callable[[], Any]) -> None:
        try:
            self._value = fn()
        except BaseException as exc:
            self._error = exc
        finally:
            self._done.set()

    def result(self) -> Any:
        if not self._done.wait(max(0.0, self._deadline - time.monotonic())):
            raise StepTimeout(f"no answer within {self.timeout:g}s")
        if self._error is not None:
            raise self._error
        return self._value


def _why(exc: BaseException, action: str) -> str:
    """Why a check could not run, naming the IAM action when access was denied."""
    if isinstance(exc, StepTimeout):
        return f"{action}: {exc}"
    code = error_code(exc.__cause__) if exc.__cause__ is not None else error_code(exc)
    if code in _DENIED or (isinstance(exc, AwsError) and exc.message.startswith(
            "access denied")):
        return f"access denied: {action} is not allowed for these credentials"
    return str(exc)


def _cannot(name: str, exc: BaseException, action: str) -> Check:
    return Check(name, "warn", f"cannot check: {_why(exc, action)}",
                 hint=f"grant {action}" if "access denied" in _why(exc, action) else None,
                 data={"error": _why(exc, action)})


def _skip(names: tuple[str, ...], why: str) -> list[Check]:
    return [Check(n, "skip", why) for n in names]


# ------------------------------------------------------------------------ the doctor


class Doctor:
    """Runs every check for one outbox; :meth:`run` returns the :class:`Report`."""

    def __init__(self, aws: Aws, settings: Settings, options: DoctorOptions | None = None,
                 *, now: float | None = None) -> None:
        self.aws, self.settings = aws, settings
        self.opt = options or DoctorOptions()
        self.now = time.time() if now is None else now
        self.checks: dict[str, list[Check]] = {}
        self.info: TableInfo | None = None
        self.mapping: dict[str, Any] | None = None
        self.function: str | None = None
        self.open_shards: int | None = None
        self.metrics: MetricsReport | None = None
        self.metrics_error: BaseException | None = None

    def _step(self, fn: Callable[[], T]) -> T:
        return _Step(fn, self.opt.step_timeout).result()  # type: ignore[no-any-return]

    def _put(self, *checks: Check) -> None:
        for c in checks:
            if c.hint and "streamq " in c.hint:
                # A hint is pasted into another shell: it must reach this outbox.
                c.hint = hints.with_connection(c.hint, self.settings, region=self._region())
            if c.hint and "aws " in c.hint:
                c.hint = hints.with_aws_connection(c.hint, self.settings,
                                                   region=self._region())
            self.checks.setdefault(c.name, []).append(c)

    def _region(self) -> str | None:
        try:
            return self.aws.region
        except Exception:  # the table check reports it; a hint goes without the region
            return None

    def run(self) -> Report:
        table = self.settings.require_table()
        self._check_table(table)
        if self.info is not None:
            info = self.info
            outbox = _Step(lambda: outbox_counts(self.aws, info, self.settings,
                                                 budget=self.opt.scan_budget),
                           self.opt.scan_budget + self.opt.step_timeout)
            self._check_stream()
            self._check_trigger()
            self._check_function_and_destination()
            self._check_outbox(outbox)
            self._check_scale()
        else:
            self._put(*_skip(CHECK_NAMES[1:], "no table"))
        ordered = [c for name in CHECK_NAMES for c in self.checks.get(name, [])]
        return Report(table, ordered, self.opt.since, self.now, self.function,
                      str(self.mapping["UUID"]) if self.mapping else None)

    # ------------------------------------------------------------------ table, stream

    def _check_table(self, table: str) -> None:
        try:
            self.info = self._step(lambda: describe_table(self.aws, table))
        except NotFound as exc:
            self._put(Check("table", "fail", exc.message,
                            hint="check --table, --region and --profile (or "
                                 "`streamq config show`)"))
            return
        except StepTimeout as exc:
            # Without the table nothing can be checked: that is doctor's failure (exit 1),
            # not a verdict on the pipeline.
            raise AwsError(f"cannot read table {table!r}: DescribeTable: {exc}") from None
        info = self.info
        self._put(Check("table", "ok", f"{info.name}: ~{info.item_count:,} items, "
                        f"{_size(info.size_bytes)} (DescribeTable's estimate, updated about "
                        "every 6 h)",
                        data={"item_count": info.item_count, "size_bytes": info.size_bytes}))

    def _check_stream(self) -> None:
        from .stream import describe_stream

        info = self.info
        assert info is not None
        if not info.stream_enabled or not info.stream_arn:
            self._put(Check(
                "stream", "fail",
                "no stream enabled: no write reaches a trigger, so nothing is delivered",
                hint=f"aws dynamodb update-table --table-name {info.name} --stream-specification "
                     "StreamEnabled=true,StreamViewType=NEW_AND_OLD_IMAGES (then recreate the "
                     "trigger on the new stream)"))
            self._put(*_skip(("stream.view", "trigger", "trigger.state", "trigger.config",
                              "trigger.refire-filter", "function", "function.concurrency",
                              "function.timeout", "destination", "destination.backlog",
                              "metrics.iterator-age", "metrics.errors", "metrics.throttles",
                              "metrics.delivery", "metrics.trigger"),
                             "no stream"))
            return
        arn = info.stream_arn
        try:
            stream = self._step(lambda: describe_stream(self.aws, arn))
        except StreamqError as exc:
            self._put(_cannot("stream", exc, "dynamodb:DescribeStream"))
        else:
            self.open_shards = sum(1 for s in stream.shards if s.is_open)
            status = "ok" if stream.status == "ENABLED" else "warn"
            self._put(Check("stream", status,
                            f"{stream.status}, {len(stream.shards)} shard(s), "
                            f"{self.open_shards} open",
                            data={"arn": arn, "status": stream.status,
                                  "shards": len(stream.shards),
                                  "open_shards": self.open_shards}))
        self._put(_view_check(info, self.settings))

    # ------------------------------------------------------------------ trigger

    def _check_trigger(self) -> None:
        from .trigger import find_trigger, function_name_of, get_mapping

        info = self.info
        assert info is not None
        if not info.stream_enabled:
            return
        dependents = ("trigger.state", "trigger.config", "trigger.refire-filter", "function",
                      "function.concurrency", "function.timeout", "destination",
                      "destination.backlog", "metrics.iterator-age", "metrics.errors",
                      "metrics.throttles", "metrics.delivery", "metrics.trigger")
        try:
            found = self._step(lambda: find_trigger(self.aws, info,
                                                    function=self.settings.function))
            # ListEventSourceMappings hides a KMS-encrypted filter; Get shows it to a
            # caller allowed kms:Decrypt (botocore's lambda model: FilterCriteriaError).
            self.mapping = self._step(lambda: get_mapping(self.aws, str(found["UUID"])))
        except NotFound as exc:
            self._put(Check("trigger", "fail", f"{exc.message}: nothing invokes a function",
                            hint="create one: aws lambda create-event-source-mapping "
                                 f"--event-source-arn {info.stream_arn} --function-name "
                                 "FUNCTION --starting-position LATEST"))
            self._put(*_skip(dependents, "no trigger"))
            return
        except BadInput as exc:
            self._put(Check("trigger", "fail", exc.message,
                            hint="name the function: --function NAME (or STREAMQ_FUNCTION)"))
            self._put(*_skip(dependents, "several triggers"))
            return
        except StreamqError as exc:
            self._put(_cannot("trigger", exc, "lambda:ListEventSourceMappings"))
            self._put(*_skip(dependents, "the trigger could not be read"))
            return
        mapping = self.mapping
        self.function = function_name_of(str(mapping.get("FunctionArn", "")))
        self._put(Check("trigger", "ok", f"{self.function} (uuid {mapping.get('UUID')})",
                        data={"uuid": mapping.get("UUID"), "function": self.function,
                              "function_arn": mapping.get("FunctionArn")}))
        self._put(_state_check(mapping))
        self._put(_config_check(mapping, info, self.settings))
        self._put(_refire_filter_check(mapping, info, self.settings))

    # ------------------------------------------------------------- function, destination

    def _check_function_and_destination(self) -> None:
        mapping = self.mapping
        if mapping is None or self.function is None:
            return
        function, arn = self.function, str(mapping.get("FunctionArn") or self.function)
        uuid = str(mapping.get("UUID"))
        since = self.opt.since
        with_esm = mapping_metrics_enabled(mapping)
        # Independent reads, in parallel, each with its own deadline.
        fn_step = _Step(lambda: read_function(self.aws, arn), self.opt.step_timeout)
        conc_step = _Step(lambda: read_concurrency(self.aws, arn), self.opt.step_timeout)
        dest = destination_of(mapping)
        dest_step = (_Step(lambda: read_destination(self.aws, str(dest), uuid),
                           self.opt.step_timeout) if dest else None)
        met_step = _Step(lambda: _read_metrics(self.aws, function, uuid if with_esm else None,
                                               since, self.now), self.opt.step_timeout)
        try:
            self.metrics = met_step.result()
        except StreamqError as exc:
            self.metrics_error = exc
        # function
        config: dict[str, Any] | None = None
        try:
            config = fn_step.result()
        except NotFound:
            self._put(Check("function", "fail",
                            f"the trigger's function {function} does not exist: nothing "
                            "processes the stream",
                            hint="deploy the function, or point the trigger at one that "
                                 "exists"))
            self._put(*_skip(("function.concurrency", "function.timeout"), "no function"))
        except StreamqError as exc:
            self._put(_cannot("function", exc, "lambda:GetFunction"))
        if config is not None:
            self._put(_function_check(function, config))
            try:
                self._put(_concurrency_check(function, conc_step.result(), mapping,
                                             self.open_shards))
            except StreamqError as exc:
                self._put(_cannot("function.concurrency", exc,
                                  "lambda:GetFunctionConcurrency"))
            self._put(_timeout_check(config, mapping, self.metrics))
        elif "function.timeout" not in self.checks:
            self._put(*_skip(("function.concurrency", "function.timeout"),
                             "the function could not be read"))
        # destination
        if dest_step is None:
            self._put(Check("destination", "warn",
                            "no on-failure destination: a batch the trigger gives up on "
                            "(retries or record age exhausted) leaves no trace",
                            hint="streamq config-trigger --on-failure ARN (an SQS queue, SNS "
                                 "topic or S3 bucket)"))
            self._put(*_skip(("destination.backlog",), "no destination"))
        else:
            try:
                self._put(*_destination_checks(dest_step.result(), self.settings))
            except StreamqError as exc:
                self._put(_cannot("destination", exc, _destination_action(str(dest))))
                self._put(*_skip(("destination.backlog",), "the destination could not be "
                                  "read"))
        # metrics
        if self.metrics is None:
            err = self.metrics_error or StreamqError("no metrics")
            for name in ("metrics.iterator-age", "metrics.errors", "metrics.throttles",
                         "metrics.delivery", "metrics.trigger"):
                self._put(_cannot(name, err, "cloudwatch:GetMetricData"))
        else:
            self._put(*_metric_checks(self.metrics, mapping, self.opt,
                                      sandbox=self.settings.sandbox))

    # ------------------------------------------------------------------ outbox, scale

    def _check_outbox(self, step: _Step) -> None:
        try:
            counted: OutboxCount = step.result()
        except StreamqError as exc:
            self._put(_cannot("outbox", exc, "dynamodb:Scan"))
            self._put(*_skip(("outbox.retention",), "the outbox could not be counted"))
            return
        self._put(*_outbox_checks(counted))

    def _check_scale(self) -> None:
        assert self.info is not None
        self._put(_scale_check(self.info, self.settings))


def run_doctor(aws: Aws, settings: Settings, options: DoctorOptions | None = None) -> Report:
    return Doctor(aws, settings, options).run()


# =========================================================================== readers
#
# Small readers shared by doctor and watch. Each is one or two AWS calls.


def read_function(aws: Aws, function_arn: str) -> dict[str, Any]:
    """GetFunction's Configuration (State, Timeout, ...)."""
    with aws_errors():
        resp = aws.client("lambda").get_function(FunctionName=function_arn)
    return dict(resp.get("Configuration") or {})


def read_concurrency(aws: Aws, function_arn: str) -> int | None:
    """The function's reserved concurrency, None when it has none (GetFunctionConcurrency:
    moto's GetFunction omits a reserved concurrency of 0, AWS's does not)."""
    with aws_errors():
        resp = aws.client("lambda").get_function_concurrency(FunctionName=function_arn)
    value = resp.get("ReservedConcurrentExecutions")
    return None if value is None else int(value)


def destination_of(mapping: dict[str, Any]) -> str | None:
    dest = ((mapping.get("DestinationConfig") or {}).get("OnFailure") or {}).get(
        "Destination")
    return str(dest) if dest else None


def _destination_action(arn: str) -> str:
    kind = arn.split(":")[2] if arn.count(":") >= 5 else ""
    return {"sqs": "sqs:GetQueueAttributes", "sns": "sns:GetTopicAttributes",
            "s3": "s3:ListBucket"}.get(kind, "the destination's read action")


@dataclass
class Destination:
    arn: str
    kind: str  # sqs | sns | s3 | other
    name: str
    exists: bool
    backlog: int | None = None  # messages (SQS) or objects (S3) waiting; None: n/a
    backlog_more: bool = False  # S3: more objects than were counted
    in_flight: int | None = None  # SQS: received but not deleted
    url: str | None = None
    prefix: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {"arn": self.arn, "kind": self.kind, "name": self.name, "exists": self.exists,
                "backlog": self.backlog, "backlog_more": self.backlog_more,
                "in_flight": self.in_flight, "url": self.url, "prefix": self.prefix}


S3_COUNT_LIMIT = 1000
_SQS_MISSING = {"AWS.SimpleQueueService.NonExistentQueue", "QueueDoesNotExist"}


def read_destination(aws: Aws, arn: str, mapping_uuid: str) -> Destination:
    """Does the on-failure destination exist, and what waits in it: SQS
    ``ApproximateNumberOfMessages`` (and ``…NotVisible``: in flight), the S3 objects
    under ``aws/lambda/<mapping UUID>/`` (counted up to 1000; Lambda DG
    services-dynamodb-errors), nothing for SNS (it keeps no backlog)."""
    parts = arn.split(":")
    kind = parts[2] if len(parts) >= 6 else "other"
    name = parts[5] if len(parts) >= 6 else arn
    if kind == "sqs":
        sqs = aws.client("sqs")
        try:
            with aws_errors():
                url = sqs.get_queue_url(QueueName=name, QueueOwnerAWSAccountId=parts[4])[
                    "QueueUrl"]
                attrs = sqs.get_queue_attributes(
                    QueueUrl=url, AttributeNames=["ApproximateNumberOfMessages",
                                                  "ApproximateNumberOfMessagesNotVisible"])[
                    "Attributes"]
        except StreamqError as exc:
            if _cause_code(exc) in _SQS_MISSING or isinstance(exc, NotFound):
                return Destination(arn, kind, name, exists=False)
            raise
        return Destination(arn, kind, name, True,
                           backlog=int(attrs.get("ApproximateNumberOfMessages", 0)),
                           in_flight=int(attrs.get("ApproximateNumberOfMessagesNotVisible", 0)),
                           url=url)
    if kind == "sns":
        try:
            with aws_errors():
                aws.client("sns").get_topic_attributes(TopicArn=arn)
        except StreamqError as exc:
            if _cause_code(exc) in ("NotFound", "NotFoundException") or isinstance(
                    exc, NotFound):
                return Destination(arn, kind, name, exists=False)
            raise
        return Destination(arn, kind, name, True)
    if kind == "s3":
        bucket = parts[5]
        prefix = f"aws/lambda/{mapping_uuid}/"
        try:
            with aws_errors():
                page = aws.client("s3").list_objects_v2(Bucket=bucket, Prefix=prefix,
                                                        MaxKeys=S3_COUNT_LIMIT)
        except StreamqError as exc:
            if _cause_code(exc) in ("NoSuchBucket", "404") or isinstance(exc,
                                                                                 NotFound):
                return Destination(arn, kind, bucket, exists=False, prefix=prefix)
            raise
        return Destination(arn, kind, bucket, True, backlog=int(page.get("KeyCount", 0)),
                           backlog_more=bool(page.get("IsTruncated")), prefix=prefix)
    return Destination(arn, "other", name, True)


def _read_metrics(aws: Aws, function: str, uuid: str | None, since: float,
                  now: float) -> MetricsReport:
    from .metrics import read

    return read(aws, function=function, mapping_uuid=uuid, since=since, now=now)


@dataclass
class OutboxCount:
    stats: Stats
    partial: bool
    seconds: float

    def to_json(self, info: TableInfo) -> dict[str, Any]:
        return {**self.stats.to_json(info), "partial": self.partial,
                "seconds": round(self.seconds, 3)}


def outbox_counts(aws: Aws, info: TableInfo, settings: Settings, *,
                  budget: float | None = None, now: float | None = None) -> OutboxCount:
    """Count the outbox by status (the same scan as ``streamq stats``); with a budget,
    stop after that many seconds and say the count is partial."""
    started = time.monotonic()
    sel = Selection(statuses=STATUSES, keys_only=True)
    stats = Stats()
    partial = False
    stop = threading.Event()
    for rec in select(aws, info, settings, sel, stop=stop, now=now):
        stats.add(rec)
        if budget is not None and time.monotonic() - started > budget:
            partial = True
            break
    stop.set()
    return OutboxCount(stats, partial, time.monotonic() - started)


# =========================================================================== checks


def _size(n: int) -> str:
    for unit, scale in (("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if n >= scale:
            return f"{n / scale:.1f} {unit}"
    return f"{n} B"


def _view_check(info: TableInfo, settings: Settings) -> Check:
    """What the stream records carry (DynamoDB DG, StreamViewType): what handlers and the
    trigger's filter can see."""
    view = info.stream_view_type or "?"
    data = {"view_type": view}
    if view == "NEW_AND_OLD_IMAGES":
        return Check("stream.view", "ok", "NEW_AND_OLD_IMAGES: handlers and filters see the "
                     "item before and after each write", data=data)
    if view == "NEW_IMAGE":
        return Check("stream.view", "ok", "NEW_IMAGE: handlers and filters see the item after "
                     "each write (not what changed)", data=data)
    fix = (f"a stream's view type cannot be changed: disable the stream and enable it with "
           f"NEW_AND_OLD_IMAGES (aws dynamodb update-table --table-name {info.name} "
           "--stream-specification ...), then recreate the trigger on the new stream")
    if view == "KEYS_ONLY":
        return Check("stream.view", "warn",
                     "KEYS_ONLY: records carry only the key; a filter on NewImage never "
                     "matches and the handler must read each item", hint=fix, data=data)
    return Check("stream.view", "warn",
                 f"{view}: records carry no new image; a filter on NewImage (such as the "
                 f"refire marker {settings.refired_attr}) never matches", hint=fix, data=data)


def _state_check(mapping: dict[str, Any]) -> Check:
    state = str(mapping.get("State") or "?")
    result = mapping.get("LastProcessingResult")
    data = {"state": state, "last_processing_result": result,
            "state_transition_reason": mapping.get("StateTransitionReason")}
    tail = f"; last processing result: {result}" if result else ""
    if state in ("Disabled", "Disabling"):
        return Check("trigger.state", "fail",
                     f"{state}: nothing is delivered; records older than 24 h leave the "
                     f"stream (only a refire sends them again){tail}",
                     hint="streamq config-trigger --enable --yes", data=data)
    if state != "Enabled":
        return Check("trigger.state", "warn", f"{state}: a change is in progress{tail}",
                     hint="check again in a minute: streamq config-trigger", data=data)
    if isinstance(result, str) and result.upper().startswith("PROBLEM"):
        return Check("trigger.state", "warn", f"Enabled{tail}",
                     hint="the trigger reports a problem reaching the function or the "
                          "stream: check the function's permissions and logs", data=data)
    return Check("trigger.state", "ok", f"Enabled{tail}", data=data)


_LINT_FLAGS = {
    "infinite-retries": "--retry-attempts 3 --max-record-age 1h",
    "bisect-off": "--bisect",
    "filter-drops-insert": "--filter insert,modify",
    "record-age-beyond-retention": "--max-record-age 1h",
}


def _config_check(mapping: dict[str, Any], info: TableInfo, settings: Settings) -> Check:
    """config-trigger's lints on the current settings (those with a check of their own
    excepted): an error fails, a warning warns."""
    from .trigger import current_config, filter_hidden, lint_config

    lints = [x.to_json() for x in lint_config(current_config(mapping), info, settings,
                                              filter_unreadable=filter_hidden(mapping))
             if x.code not in _OWN_CHECK_LINTS]
    shown = [x for x in lints if x["severity"] in ("error", "warning")]
    data = {"lints": lints}
    if not shown:
        notes = "; ".join(x["message"] for x in lints)
        return Check("trigger.config", "ok", "no lint" + (f" ({notes})" if notes else ""),
                     data=data)
    status = "fail" if any(x["severity"] == "error" for x in shown) else "warn"
    flags = " ".join(dict.fromkeys(_LINT_FLAGS[x["code"]] for x in shown
                                   if x["code"] in _LINT_FLAGS))
    detail = "; ".join(f"{x['code']}: {x['message']}" for x in shown)
    return Check("trigger.config", status, detail,
                 hint=(f"streamq config-trigger {flags} --dry-run" if flags
                       else "streamq config-trigger"), data=data)


def _refire_filter_check(mapping: dict[str, Any], info: TableInfo,
                         settings: Settings) -> Check:
    """Would the trigger's current filter pass the MODIFY record a refire produces
    (trigger.refire_verdict: the matcher refire's pre-flight uses)?"""
    from .filters import FilterPatternError
    from .trigger import filter_hidden, filter_patterns, refire_verdict

    hidden = filter_hidden(mapping)
    if hidden is not None:
        return Check("trigger.refire-filter", "warn",
                     f"cannot tell whether refires pass: the filter is {hidden}",
                     hint=f"allow kms:Decrypt on {mapping.get('KMSKeyArn') or 'the key'} to "
                          "these credentials", data={"kms_key_arn": mapping.get("KMSKeyArn"),
                                                     "unreadable": hidden})
    patterns = filter_patterns(mapping)
    if not patterns:
        return Check("trigger.refire-filter", "ok",
                     "no filter: every record, a refire's MODIFY included, reaches the "
                     "function", data={"patterns": []})
    try:
        passes, why = refire_verdict(mapping, info, settings)
    except FilterPatternError as exc:
        return Check("trigger.refire-filter", "fail", f"the filter is invalid: {exc}",
                     hint="streamq config-trigger --filter-pattern JSON", data={
                         "patterns": patterns})
    if passes:
        which = _first_match(patterns, mapping, info, settings)
        return Check("trigger.refire-filter", "ok",
                     f"a refire's MODIFY passes pattern {which} of {len(patterns)}",
                     data={"patterns": patterns, "pattern": which})
    pattern, reason = why[0]
    marker = json.dumps({"eventName": ["MODIFY"], "dynamodb": {"NewImage": {
        settings.refired_attr: {"S": [{"exists": True}]}}}}, separators=(",", ":"))
    return Check("trigger.refire-filter", "fail",
                 f"the filter drops a refire's MODIFY record ({pattern}: {reason}): "
                 "`streamq refire` reaches nothing, and filtered records are never retried",
                 hint="let refires through: streamq config-trigger " + " ".join(
                     f"--filter-pattern {shlex.quote(_compact(p))}" for p in [*patterns, marker])
                 + " --dry-run",
                 data={"patterns": patterns, "drops": [{"pattern": p, "reason": r}
                                                       for p, r in why]})


def _compact(pattern: str) -> str:
    try:
        return json.dumps(json.loads(pattern), separators=(",", ":"))
    except ValueError:
        return pattern


def _first_match(patterns: list[str], mapping: dict[str, Any], info: TableInfo,
                 settings: Settings) -> int:
    from .filters import matches, parse_pattern
    from .trigger import simulate_refire_event

    event = simulate_refire_event(info, settings)
    for i, text in enumerate(patterns, start=1):
        if matches(parse_pattern(text), event):
            return i
    return 0


def _function_check(function: str, config: dict[str, Any]) -> Check:
    state = str(config.get("State") or "Active")
    update = config.get("LastUpdateStatus")
    data = {"state": state, "last_update_status": update, "runtime": config.get("Runtime"),
            "timeout": config.get("Timeout"), "memory": config.get("MemorySize")}
    reason = config.get("StateReason")
    if state == "Failed" or update == "Failed":
        return Check("function", "fail", f"{function}: {state}"
                     + (f" ({reason})" if reason else "")
                     + (f"; last update {update}" if update == "Failed" else ""),
                     hint="see the reason in the Lambda console, fix and redeploy", data=data)
    if state in ("Pending", "Inactive"):
        return Check("function", "warn", f"{function}: {state}"
                     + (f" ({reason})" if reason else "")
                     + ("; the next invocation waits while Lambda reactivates it"
                        if state == "Inactive" else ""), data=data)
    return Check("function", "ok", f"{function}: {state}, {config.get('Runtime') or '?'}, "
                 f"timeout {config.get('Timeout')}s, {config.get('MemorySize') or '?'} MB",
                 data=data)


def _concurrency_check(function: str, reserved: int | None, mapping: dict[str, Any],
                       open_shards: int | None) -> Check:
    """Reserved concurrency 0 throttles every invocation; below shards x parallelization,
    some batches wait (Lambda runs up to ParallelizationFactor batches per shard at
    once: Lambda DG, services-ddb-params)."""
    factor = int(mapping.get("ParallelizationFactor") or 1)
    data = {"reserved": reserved, "parallelization": factor, "open_shards": open_shards}
    if reserved is None:
        return Check("function.concurrency", "ok", "no reserved concurrency (the account's "
                     "unreserved pool)", data=data)
    if reserved == 0:
        return Check("function.concurrency", "fail",
                     "reserved concurrency is 0: Lambda throttles every invocation; records "
                     "wait in the stream and leave it after 24 h",
                     hint=f"aws lambda delete-function-concurrency --function-name {function}"
                          " (or put-function-concurrency with the number it needs)", data=data)
    needed = (open_shards or 1) * factor
    if open_shards is not None and reserved < needed:
        return Check("function.concurrency", "warn",
                     f"reserved concurrency {reserved} is below what the trigger can use "
                     f"({open_shards} open shard(s) x ParallelizationFactor {factor} = "
                     f"{needed}): the rest is throttled",
                     hint=f"aws lambda put-function-concurrency --function-name {function} "
                          f"--reserved-concurrent-executions {needed}", data=data)
    return Check("function.concurrency", "ok", f"reserved concurrency {reserved}", data=data)


def _timeout_check(config: dict[str, Any], mapping: dict[str, Any],
                   metrics: MetricsReport | None) -> Check:
    """The function's timeout against what a batch asks of it: up to BatchSize records
    gathered for up to MaximumBatchingWindowInSeconds, and how long invocations really
    took (Duration, when CloudWatch has it). A timed-out invocation is a function error:
    the whole batch is retried."""
    timeout = float(config.get("Timeout") or 3)
    batch = int(mapping.get("BatchSize") or 100)
    window = float(mapping.get("MaximumBatchingWindowInSeconds") or 0)
    data: dict[str, Any] = {"timeout": timeout, "batch_size": batch,
                            "batching_window": window, "max_duration_ms": None}
    base = (f"timeout {timeout:g}s for batches of up to {batch} record(s) "
            f"({timeout * 1000 / batch:.0f} ms a record), window {window:g}s")
    longest = metrics.get("duration").peak if metrics is not None else None
    if longest is not None:
        data["max_duration_ms"] = longest
        base += f"; longest invocation {longest / 1000:.2f}s"
        if longest >= 0.9 * timeout * 1000:
            return Check("function.timeout", "warn",
                         base + ": invocations reach the timeout, and a timed-out batch is "
                         "retried whole",
                         hint="raise the function's timeout or lower --batch-size "
                              "(streamq config-trigger --batch-size N)", data=data)
    if timeout < window:
        return Check("function.timeout", "warn",
                     base + ": the timeout is shorter than the batching window, so a full "
                     "batch has less time to run than it waited to gather",
                     hint="raise the function's timeout or shorten --batching-window",
                     data=data)
    return Check("function.timeout", "ok", base, data=data)


def _redrive_hint() -> str | None:
    """`streamq redrive --dry-run` once that command exists (issue 10)."""
    try:
        found = importlib.util.find_spec("streamq.redrive") is not None
    except (ImportError, ValueError):
        found = False
    return "streamq redrive --dry-run" if found else None


def _destination_checks(dest: Destination, settings: Settings) -> list[Check]:
    data = dest.to_json()
    if not dest.exists:
        return [Check("destination", "fail",
                      f"the on-failure destination {dest.kind.upper()} {dest.name} does not "
                      "exist: batches the trigger gives up on are lost "
                      "(DestinationDeliveryFailures)",
                      hint="recreate it, or point the trigger elsewhere: streamq "
                           "config-trigger --on-failure ARN", data=data),
                Check("destination.backlog", "skip", "no destination")]
    out = [Check("destination", "ok", f"{dest.kind.upper()} {dest.name}", data=data)]
    if dest.backlog is None:
        out.append(Check("destination.backlog", "skip",
                         f"{dest.kind.upper()} keeps no backlog to count", data=data))
        return out
    count = f"{dest.backlog}{'+' if dest.backlog_more else ''}"
    what = "message(s)" if dest.kind == "sqs" else f"object(s) under {dest.prefix}"
    if dest.backlog == 0:
        flight = (f" ({dest.in_flight} in flight)" if dest.in_flight else "")
        out.append(Check("destination.backlog", "ok", f"empty{flight}", data=data))
        return out
    redrive = _redrive_hint()
    if redrive:
        hint = redrive
    elif dest.kind == "sqs":
        hint = (f"read them: aws sqs receive-message --queue-url {dest.url}; each names a "
                "shard and sequence range (DDBStreamBatchInfo) readable from the stream for "
                "24 h")
    else:
        hint = (f"read them: aws s3 ls s3://{dest.name}/{dest.prefix} --recursive; each "
                "object holds the failed batch (payload)")
    out.append(Check("destination.backlog", "warn",
                     f"{count} batch(es) were given up on ({count} {what} in {dest.name})",
                     hint=hint, data=data))
    return out


def _metric_checks(m: MetricsReport, mapping: dict[str, Any],
                   opt: DoctorOptions, *, sandbox: bool = False) -> list[Check]:
    window = humanize(opt.since)
    nodata = (f"no metrics: CloudWatch has no {{}} for {m.function} in the last {window}")
    out: list[Check] = []
    # iterator age
    age = m.get("iterator_age")
    if not age.has_data:
        out.append(Check("metrics.iterator-age", "skip",
                         nodata.format("IteratorAge") + " (nothing was invoked)",
                         data=age.to_json()))
    else:
        peak = float(age.peak or 0) / 1000
        latest = float(age.latest or 0) / 1000
        trend = ", rising" if age.rising() else ""
        text = (f"max {_secs(peak)} over the last {window} (latest {_secs(latest)}{trend}); "
                f"limit {_secs(opt.max_iterator_age)}")
        if peak > opt.max_iterator_age:
            out.append(Check("metrics.iterator-age", "fail", text,
                             hint="the trigger is behind: a failing batch blocks its shard "
                                  "(see metrics.errors), or the function is too slow or "
                                  "throttled; records leave the stream after 24 h",
                             data=age.to_json()))
        else:
            out.append(Check("metrics.iterator-age", "ok", text, data=age.to_json()))
    # errors against invocations
    inv, err = m.get("invocations"), m.get("errors")
    data = {"invocations": inv.to_json(), "errors": err.to_json()}
    if not inv.has_data and not err.has_data:
        out.append(Check("metrics.errors", "skip",
                         nodata.format("Invocations or Errors") + " (nothing was invoked)",
                         data=data))
    else:
        n_inv, n_err = int(inv.total or 0), int(err.total or 0)
        rate = n_err / n_inv if n_inv else (1.0 if n_err else 0.0)
        per_min = n_inv / max(m.window / 60, 1)
        text = (f"{n_err} error(s) in {n_inv} invocation(s) over the last {window} "
                f"({rate:.0%}; {_rate(per_min)} invocations/min)")
        hint = ("the handler raised: a raised error retries the whole batch and blocks its "
                "shard; " + ("see its logs: streamq sandbox logs" if sandbox else
                   f"see its logs: aws logs tail /aws/lambda/{m.function} --since {window}"))
        if n_err == 0:
            out.append(Check("metrics.errors", "ok", text, data=data))
        else:
            out.append(Check("metrics.errors", "fail" if rate >= 0.5 else "warn", text,
                             hint=hint, data=data))
    # throttles
    thr = m.get("throttles")
    n_thr = int(thr.total or 0)
    if n_thr == 0:
        out.append(Check("metrics.throttles", "ok",
                         "no throttles" + ("" if thr.has_data else
                                           f" (no metrics in the last {window})"),
                         data=thr.to_json()))
    else:
        status = "fail" if not int(inv.total or 0) else "warn"
        out.append(Check("metrics.throttles", status,
                         f"{n_thr} throttled invocation(s) over the last {window}",
                         hint="the function has too little concurrency: see "
                              "function.concurrency", data=thr.to_json()))
    # destination delivery
    ddf = m.get("destination_delivery_failures")
    n_ddf = int(ddf.total or 0)
    if n_ddf == 0:
        out.append(Check("metrics.delivery", "ok",
                         "no destination delivery failures" + (
                             "" if ddf.has_data else f" (no metrics in the last {window})"),
                         data=ddf.to_json()))
    else:
        out.append(Check("metrics.delivery", "fail",
                         f"{n_ddf} failure(s) to deliver to the on-failure destination over "
                         f"the last {window}: those batches are lost",
                         hint="check the destination exists and the function's role may "
                              "send to it", data=ddf.to_json()))
    # the mapping's own metrics
    if not mapping_metrics_enabled(mapping):
        out.append(Check("metrics.trigger", "skip",
                         "the trigger's own metrics are off (MetricsConfig)",
                         hint="streamq config-trigger --metrics on --yes"))
    else:
        keys = ("polled", "filtered_out", "invoked", "failed_invoke", "dropped",
                "destination_delivered")
        series = {k: m.get(k) for k in keys}
        jdata = {k: s.to_json() for k, s in series.items()}
        if not any(s.has_data for s in series.values()):
            out.append(Check("metrics.trigger", "skip",
                             nodata.format("event source mapping metrics").replace(
                                 f"for {m.function}", f"for trigger {mapping.get('UUID')}")
                             + " (it emits none while disabled)", data=jdata))
        else:
            n = {k: int(s.total or 0) for k, s in series.items()}
            text = (f"{n['polled']} polled, {n['filtered_out']} filtered out, "
                    f"{n['invoked']} invoked, {n['failed_invoke']} failed, "
                    f"{n['destination_delivered']} sent to the destination, "
                    f"{n['dropped']} dropped over the last {window}")
            if n["dropped"]:
                out.append(Check("metrics.trigger", "fail",
                                 text + ": dropped records reached no destination and are "
                                 "lost", hint="set an on-failure destination that works: "
                                 "streamq config-trigger --on-failure ARN", data=jdata))
            else:
                out.append(Check("metrics.trigger", "ok", text, data=jdata))
    return out


def _rate(per_min: float) -> str:
    return f"{per_min:.1f}" if per_min >= 0.1 or per_min == 0 else f"{per_min:.2g}"


def _secs(seconds: float) -> str:
    return f"{seconds:.1f}s" if seconds < 60 else humanize(seconds)


def _outbox_checks(counted: OutboxCount) -> list[Check]:
    stats = counted.stats
    c = stats.counts
    oldest = ("" if stats.oldest_age is None
              else f"; oldest {humanize(stats.oldest_age)}")
    partial = (f" (partial: counted for {counted.seconds:.0f}s; `streamq stats` counts all)"
               if counted.partial else "")
    data = {"counts": dict(c), "total": stats.total,
            "oldest_age_seconds": None if stats.oldest_age is None else round(
                stats.oldest_age, 3),
            "unknown_age": stats.unknown_age, "partial": counted.partial,
            "scan_seconds": round(counted.seconds, 3)}
    text = (f"{stats.total} record(s): {c['failed']} failed, {c['stuck']} stuck, "
            f"{c['pending']} pending{oldest}{partial}")
    out: list[Check] = []
    if c["failed"] or c["stuck"]:
        out.append(Check("outbox", "warn", text,
                         hint="see them: streamq list; send them again: streamq refire "
                              "--status failed --dry-run", data=data))
    else:
        out.append(Check("outbox", "ok", text, data=data))
    old = stats.histogram.get(">24h", 0)
    rdata = {"older_than_24h": old}
    if old:
        out.append(Check("outbox.retention", "warn",
                         f"{old} record(s) older than the stream's 24 h retention: the "
                         "stream no longer holds them, so only a refire sends them again",
                         hint="streamq refire --older-than 24h --status failed,stuck "
                              "--dry-run", data=rdata))
    else:
        out.append(Check("outbox.retention", "ok", "no record older than 24 h", data=rdata))
    return out


def error_index_definition(info: TableInfo, settings: Settings) -> dict[str, Any]:
    """A sparse GSI of failed records: the table's hash key, the error attribute as range
    key (only items that have it are indexed; a high-cardinality hash key keeps index
    writes spread), projecting what classification reads."""
    name = f"{settings.error_attr}-index"
    include = [a for a in dict.fromkeys((settings.created_attr, settings.attempts_attr,
                                         settings.refire_count_attr))
               if a not in info.key_names and a != settings.error_attr]
    return {"Create": {"IndexName": name, "KeySchema": [
        {"AttributeName": info.hash_key.name, "KeyType": "HASH"},
        {"AttributeName": settings.error_attr, "KeyType": "RANGE"}],
        "Projection": {"ProjectionType": "INCLUDE", "NonKeyAttributes": include}}}


def _scale_check(info: TableInfo, settings: Settings) -> Check:
    keyed = [ix for ix in info.indexes
             if settings.error_attr in (ix.hash_key.name,
                                        ix.range_key.name if ix.range_key else None)]
    data: dict[str, Any] = {"item_count": info.item_count, "size_bytes": info.size_bytes,
                            "index": keyed[0].name if keyed else None}
    if keyed:
        return Check("scale.error-index", "ok",
                     f"index {keyed[0].name} is keyed on {settings.error_attr}: `list "
                     "--status failed` reads only failed records", data=data)
    large = info.size_bytes >= LARGE_TABLE_BYTES or info.item_count >= LARGE_TABLE_ITEMS
    if not large:
        return Check("scale.error-index", "ok",
                     f"small table ({info.item_count:,} items, {_size(info.size_bytes)}): a "
                     "full scan for `list --status failed` is cheap", data=data)
    definition = error_index_definition(info, settings)
    data["definition"] = definition
    return Check("scale.error-index", "warn",
                 f"{info.item_count:,} items, {_size(info.size_bytes)} and no index on "
                 f"{settings.error_attr}: `list --status failed` scans the whole table (the "
                 "error attribute must always be a string once it keys an index)",
                 hint=f"aws dynamodb update-table --table-name {info.name} "
                      f"--attribute-definitions AttributeName={settings.error_attr},"
                      f"AttributeType=S --global-secondary-index-updates "
                      f"'{json.dumps([definition], separators=(',', ':'))}'", data=data)


def _cause_code(exc: BaseException) -> str:
    """The AWS error code behind a translated StreamqError."""
    return error_code(exc.__cause__) if exc.__cause__ is not None else error_code(exc)
