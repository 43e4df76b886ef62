"""The stream trigger: the Lambda event source mapping (ESM) on the outbox's stream.

Finding it is shared by ``refire`` (pre-flight), ``config-trigger`` and the sandbox.
"""

from __future__ import annotations

import base64
import json as _json
import re as _re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .aws import Aws, aws_errors
from .config import Settings
from .errors import BadInput, NotFound, StreamqError
from .outbox import AV, Item, TableInfo, iso, key_of


def function_name_of(arn_or_name: str) -> str:
    """``arn:aws:lambda:r:a:function:NAME[:qualifier]`` or ``NAME`` -> ``NAME``."""
    parts = arn_or_name.split(":")
    if len(parts) >= 7 and parts[5] == "function":
        return parts[6]
    return arn_or_name


def function_label(arn_or_name: str) -> str:
    """``arn:aws:lambda:r:a:function:NAME[:QUALIFIER]`` -> ``NAME[:QUALIFIER]``: the
    function as people name it, keeping the version or alias a trigger invokes (a
    mapping on ``NAME:prod`` is not one on ``NAME``)."""
    parts = arn_or_name.split(":")
    if len(parts) >= 7 and parts[5] == "function":
        return ":".join(parts[6:8])
    return arn_or_name


def list_mappings(aws: Aws, stream_arn: str) -> list[dict[str, Any]]:
    client = aws.client("lambda")
    out: list[dict[str, Any]] = []
    kwargs: dict[str, Any] = {"EventSourceArn": stream_arn}
    while True:
        with aws_errors():
            page = client.list_event_source_mappings(**kwargs)
        out.extend(page.get("EventSourceMappings", []))
        marker = page.get("NextMarker")
        if not marker:
            return out
        kwargs["Marker"] = marker


#: ``--function`` as Lambda's FunctionName takes it (botocore's lambda model, shape
#: FunctionName: ``(arn:(aws[a-zA-Z-]*)?:lambda:)?(REGION:)?(\d{12}:)?(function:)?
#: ([a-zA-Z0-9-_]+)(:(\$LATEST|[a-zA-Z0-9-_]+))?``): a name, ``name:qualifier``, a
#: partial ARN (``ACCOUNT:function:name``) or a full ARN.
_FUNCTION = _re.compile(
    r"^(?:arn:(?P<partition>aws[a-zA-Z-]*):lambda:)?"
    r"(?:(?P<region>[a-z]{2}(?:-gov|-iso[a-z]?)?-[a-z]+-\d):)?"
    r"(?:(?P<account>\d{12}):)?"
    r"(?:(?P<kw>function):)?"
    r"(?P<name>[a-zA-Z0-9_-]{1,64})"
    r"(?::(?P<qualifier>\$LATEST|[a-zA-Z0-9_-]{1,128}))?$")
_STREAM_ARN = _re.compile(r"^arn:(?P<partition>[^:]+):dynamodb:(?P<region>[^:]+):"
                          r"(?P<account>\d{12}):table/")


def function_arn_for(function: str, stream_arn: str) -> str:
    """The full ARN ``--function`` names, for a trigger on ``stream_arn``.

    What the user leaves out comes from the stream's ARN, that is from the session (the
    table was described by name in the session's region and account): a bare name is the
    *unqualified* function there, ``name:prod`` its alias ``prod``, ``name:1`` version 1.
    A mapping's FunctionArn carries the qualifier it was created with, so matching the
    full ARN exactly keeps ``alfn:prod`` from ever choosing the mapping of ``alfn:1``."""
    m = _FUNCTION.match(function.strip())
    if m is None:
        raise BadInput(f"invalid --function {function!r}: expected a function name, "
                       "NAME:QUALIFIER (an alias or version), or a function ARN "
                       "(arn:aws:lambda:REGION:ACCOUNT:function:NAME[:QUALIFIER])")
    if m.group("partition") is not None and not (m.group("region") and m.group("account")
                                                 and m.group("kw")):
        raise BadInput(f"invalid --function {function!r}: a function ARN is "
                       "arn:aws:lambda:REGION:ACCOUNT:function:NAME[:QUALIFIER]")
    s = _STREAM_ARN.match(stream_arn)
    here = s.groupdict() if s else {"partition": "aws", "region": "", "account": ""}
    arn = (f"arn:{m.group('partition') or here['partition']}:lambda:"
           f"{m.group('region') or here['region']}:{m.group('account') or here['account']}:"
           f"function:{m.group('name')}")
    return f"{arn}:{m.group('qualifier')}" if m.group("qualifier") else arn


def find_trigger(aws: Aws, info: TableInfo, *, function: str | None = None,
                 uuid: str | None = None) -> dict[str, Any]:
    """The one ESM on the table's current stream, chosen by ``function`` (resolved to a
    full function ARN by :func:`function_arn_for` and matched exactly) and/or ``uuid``
    when given. NotFound when none matches, BadInput when several do (naming each
    mapping's function ARN and UUID)."""
    if not info.stream_enabled or not info.stream_arn:
        raise NotFound(f"table {info.name!r} has no stream enabled, so it has no trigger")
    want = function_arn_for(function, info.stream_arn) if function else None
    every = list_mappings(aws, info.stream_arn)
    mappings = [m for m in every
                if (uuid is None or m.get("UUID") == uuid)
                and (want is None or m.get("FunctionArn") == want)]
    if not mappings:
        chosen = " and ".join(x for x in (f"function {want}" if want else "",
                                          f"uuid {uuid}" if uuid else "") if x)
        msg = (f"no trigger (event source mapping) on the stream of table {info.name!r}"
               + (f" for {chosen}" if chosen else ""))
        if want and want.count(":") == 6:
            msg += (" (a name without a qualifier means the unqualified function; for an "
                    "alias or a version add :ALIAS or :VERSION)")
        if every and (want or uuid):
            msg += f"; the stream's triggers: {describe_mappings(every)}"
        raise NotFound(msg)
    if len(mappings) > 1:
        what = f"for function {want}" if want else "on its stream"
        raise BadInput(f"table {info.name!r} has {len(mappings)} triggers {what}: "
                       f"{describe_mappings(mappings)}; choose one with "
                       + ("--uuid" if want else "--function or --uuid"))
    return mappings[0]


def describe_mappings(mappings: list[dict[str, Any]]) -> str:
    return ", ".join(f"{m.get('FunctionArn', '?')} (uuid {m.get('UUID')})" for m in mappings)


def simulate_refire_event(info: TableInfo, settings: Settings, item: Item | None = None, *,
                          now: float | None = None, run: str = "preview",
                          region: str = "us-east-1") -> dict[str, Any]:
    """The stream record, as the trigger's filter sees it, that a refire of ``item``
    produces: a MODIFY whose NewImage carries the touched attributes.

    Which images it has follows the stream's view type (KEYS_ONLY: none). With no
    ``item``, the images hold only the key of a placeholder record.
    """
    import time as _time

    ts = _time.time() if now is None else now
    if item is None:
        item = {k.name: ({"S": "x"} if k.type == "S" else {"N": "0"} if k.type == "N"
                         else {"B": b"x"}) for k in info.key_attrs}
    old = dict(item)
    new = dict(item)
    count = old.get(settings.refire_count_attr, {}).get("N", "0")
    try:
        new_count = str(int(count) + 1)
    except ValueError:
        new_count = "1"
    new[settings.refired_attr] = {"S": iso(ts)}
    new[settings.refire_run_attr] = {"S": run}
    new[settings.refire_count_attr] = {"N": new_count}
    view = info.stream_view_type or "NEW_AND_OLD_IMAGES"
    ddb: dict[str, Any] = {
        "ApproximateCreationDateTime": int(ts),
        "Keys": {k: _wire(v) for k, v in key_of(item, info).items()},
        "SequenceNumber": "0",
        "SizeBytes": 1,
        "StreamViewType": view,
    }
    if view in ("NEW_IMAGE", "NEW_AND_OLD_IMAGES"):
        ddb["NewImage"] = {k: _wire(v) for k, v in new.items()}
    if view in ("OLD_IMAGE", "NEW_AND_OLD_IMAGES"):
        ddb["OldImage"] = {k: _wire(v) for k, v in old.items()}
    return {
        "eventID": "preview",
        "eventName": "MODIFY",
        "eventVersion": "1.1",
        "eventSource": "aws:dynamodb",
        "awsRegion": region,
        "dynamodb": ddb,
        "eventSourceARN": info.stream_arn or "",
    }


def _wire(av: AV) -> Any:
    """Attribute value as it appears in a Lambda event (binary as base64 text)."""
    (kind, value), = av.items()
    if kind == "B":
        return {"B": base64.b64encode(value).decode() if isinstance(value, bytes) else value}
    if kind == "BS":
        return {"BS": [base64.b64encode(v).decode() if isinstance(v, bytes) else v
                       for v in value]}
    if kind == "M":
        return {"M": {k: _wire(v) for k, v in value.items()}}
    if kind == "L":
        return {"L": [_wire(v) for v in value]}
    return {kind: value}


def filter_patterns(mapping: Mapping[str, Any]) -> list[str]:
    return [f.get("Pattern", "") for f in
            (mapping.get("FilterCriteria") or {}).get("Filters", []) or []]


def filter_hidden(mapping: Mapping[str, Any]) -> str | None:
    """Why the mapping's filter cannot be read (a phrase: "encrypted with KMS key K, and
    AWS did not return it (...)"), or None when what came back is the filter.

    A filter encrypted with a customer KMS key (``KMSKeyArn``) comes back as null from
    ListEventSourceMappings, and from GetEventSourceMapping in plain text only to a caller
    with kms:Decrypt on that key; otherwise ``FilterCriteriaError`` says why (botocore's
    lambda model, ``EventSourceMappingConfiguration``: ``FilterCriteria``, ``KMSKeyArn``,
    ``FilterCriteriaError`` {``ErrorCode``, ``Message``}). So with ``KMSKeyArn`` or
    ``FilterCriteriaError`` set and no plain-text pattern, "no filter" is unknown, never
    "none"."""
    error = mapping.get("FilterCriteriaError") or {}
    key = mapping.get("KMSKeyArn")
    if not (key or error) or filter_patterns(mapping):
        return None
    why = f"encrypted with KMS key {key}" if key else "encrypted"
    if error:
        code = error.get("ErrorCode") or "FilterCriteriaError"
        message = error.get("Message") or ""
        return (f"{why}, and AWS did not return it ({code}"
                + (f": {message}" if message else "") + ")")
    return (f"{why}, and AWS did not return it in plain text (reading it needs kms:Decrypt "
            "on the key)")


def refire_verdict(mapping: dict[str, Any], info: TableInfo, settings: Settings,
                   item: Item | None = None) -> tuple[bool, list[tuple[str, str]]]:
    """Would the trigger's FilterCriteria pass the MODIFY a refire of ``item`` produces?
    Returns (passes, [(pattern, why it drops the record), ...])."""
    from .filters import evaluate_criteria

    event = simulate_refire_event(info, settings, item)
    return evaluate_criteria(filter_patterns(mapping), event)


# =========================================================================== config-trigger
#
# Read, validate, diff, lint, apply and verify the settings of the trigger.
#
# AWS documentation relied on (Lambda Developer Guide "Lambda parameters for Amazon
# DynamoDB event source mappings" (services-ddb-params), the UpdateEventSourceMapping
# API reference, the GetEventSourceMapping ``State`` field, "Retain discarded records
# for a DynamoDB event source" (services-dynamodb-errors) and the CloudFormation
# ``OnFailure.Destination`` pattern):
#
# * defaults for a DynamoDB stream: BatchSize 100, MaximumBatchingWindowInSeconds 0,
#   MaximumRetryAttempts -1, MaximumRecordAgeInSeconds -1, BisectBatchOnFunctionError
#   false, ParallelizationFactor 1, TumblingWindowInSeconds 0 (the table says N/A,
#   i.e. no tumbling window), Enabled true, no FilterCriteria, no DestinationConfig.
# * ranges: BatchSize 1-10000; MaximumBatchingWindowInSeconds 0-300;
#   MaximumRetryAttempts -1 or 0-10000; MaximumRecordAgeInSeconds -1 or 60-604800
#   ("values less than 60 and greater than -1 fall within the parameter's absolute
#   range, they are not allowed"); ParallelizationFactor 1-10; TumblingWindowInSeconds
#   0-900; FilterCriteria: 5 filters by default, up to 10 with a quota increase
#   (filters.py), pattern <= 4096 chars.
# * on-failure destination for DynamoDB: an SNS topic, an SQS queue or an S3 bucket
#   (services-dynamodb-errors; the older parameter table says "standard" SQS / SNS, so
#   FIFO queues and topics are rejected). The ARN is at most 350 characters: botocore's
#   lambda model (service-2.json, 2015-03-31), shape ``DestinationArn``: "max": 350 (the
#   CloudFormation reference's 1024 is not what the API accepts).
# * State: Creating, Enabling, Enabled, Disabling, Disabled, Updating, Deleting.
# * StartingPosition is set at creation only (it is not a parameter of
#   UpdateEventSourceMapping).

#: The settable fields, in display order, with AWS's default for a DynamoDB stream.
DEFAULTS: dict[str, Any] = {
    "BatchSize": 100,
    "MaximumBatchingWindowInSeconds": 0,
    "MaximumRetryAttempts": -1,
    "MaximumRecordAgeInSeconds": -1,
    "BisectBatchOnFunctionError": False,
    "ParallelizationFactor": 1,
    "FilterCriteria": {"Filters": []},
    "KMSKeyArn": None,
    "DestinationConfig": {},
    "FunctionResponseTypes": [],
    "TumblingWindowInSeconds": 0,
    "MetricsConfig": {"Metrics": []},
    "Enabled": True,
}
SETTABLE: tuple[str, ...] = tuple(DEFAULTS)
#: Informational identifiers in the export format (checked by --from-file, never applied).
IDENTIFIERS: tuple[str, ...] = ("UUID", "FunctionArn", "EventSourceArn")
EXPORT_FORMAT = "streamq.trigger-config/1"
STATUS_FIELDS: tuple[str, ...] = ("State", "StateTransitionReason", "LastProcessingResult",
                                  "LastModified")
TRANSITIONAL = frozenset({"Creating", "Enabling", "Disabling", "Updating", "Deleting"})
REPORT_BATCH_ITEM_FAILURES = "ReportBatchItemFailures"
STARTING_POSITION_MESSAGE = (
    "StartingPosition cannot be changed on an existing event source mapping "
    "(UpdateEventSourceMapping has no such parameter); to start from TRIM_HORIZON or "
    "LATEST, create a new mapping with that StartingPosition and delete the old one "
    "(mind the overlap: both read the stream until the old one is gone)"
)

RANGES: dict[str, tuple[int, int]] = {
    "BatchSize": (1, 10000),
    "MaximumBatchingWindowInSeconds": (0, 300),
    "MaximumRetryAttempts": (-1, 10000),
    "MaximumRecordAgeInSeconds": (-1, 604800),
    "ParallelizationFactor": (1, 10),
    "TumblingWindowInSeconds": (0, 900),
}
FLAG_OF: dict[str, str] = {
    "BatchSize": "--batch-size",
    "MaximumBatchingWindowInSeconds": "--batching-window",
    "MaximumRetryAttempts": "--retry-attempts",
    "MaximumRecordAgeInSeconds": "--max-record-age",
    "BisectBatchOnFunctionError": "--bisect/--no-bisect",
    "ParallelizationFactor": "--parallelization",
    "FilterCriteria": "--filter/--filter-pattern/--no-filter",
    "DestinationConfig": "--on-failure",
    "FunctionResponseTypes": "--report-batch-item-failures",
    "TumblingWindowInSeconds": "--tumbling-window",
    "MetricsConfig": "--metrics",
    "Enabled": "--enable/--disable",
}
#: EventSourceMappingMetricsConfig.Metrics (botocore's lambda model, enum
#: EventSourceMappingMetric: EventCount, ErrorCount, KafkaMetrics). ErrorCount and
#: KafkaMetrics are for Amazon MSK and self-managed Kafka only, so a DynamoDB stream
#: takes EventCount or nothing.
STREAM_METRICS: tuple[str, ...] = ("EventCount",)
KAFKA_ONLY_METRICS: tuple[str, ...] = ("ErrorCount", "KafkaMetrics")
#: The read view's FilterCriteria when it cannot be read (see filter_hidden).
HIDDEN_FILTER_TEXT = "unknown: encrypted, not returned (see filter-encrypted)"
STREAM_RETENTION_SECONDS = 86400
#: botocore's lambda model, shape DestinationArn: "max": 350.
MAX_DESTINATION_ARN = 350

_ARN = _re.compile(r"^arn:(aws[a-zA-Z0-9-]*):([a-zA-Z0-9-]+):([a-z0-9-]*):(\d{12})?:(.+)$")


# ------------------------------------------------------------------ normalized config


def _filters_of(value: Any) -> dict[str, Any]:
    patterns = [f.get("Pattern", "") for f in ((value or {}).get("Filters") or [])
                if isinstance(f, dict)]
    return {"Filters": [{"Pattern": p} for p in patterns]}


def _destination_of(value: Any) -> dict[str, Any]:
    """Only OnFailure applies to a stream; AWS returns an empty ``OnFailure: {}`` husk
    when none is set, which means none."""
    dest = ((value or {}).get("OnFailure") or {}).get("Destination")
    return {"OnFailure": {"Destination": dest}} if dest else {}


def enabled_of(mapping: Mapping[str, Any]) -> bool:
    """Enabled as the State says (GetEventSourceMapping has no Enabled field)."""
    return mapping.get("State") not in ("Disabled", "Disabling")


def _metrics_of(value: Any) -> dict[str, Any]:
    metrics = (value or {}).get("Metrics") or [] if isinstance(value, dict) else []
    return {"Metrics": sorted({str(m) for m in metrics})}


def current_config(mapping: Mapping[str, Any]) -> dict[str, Any]:
    """Every settable field, normalized, with AWS's default for what is unset.

    ``FilterCriteria`` is None when the filter is encrypted and was not returned
    (:func:`filter_hidden`): unknown, not "no filter"."""
    cfg: dict[str, Any] = {}
    for name, default in DEFAULTS.items():
        value = mapping.get(name)
        if name == "FilterCriteria":
            cfg[name] = None if filter_hidden(mapping) else _filters_of(value)
        elif name == "KMSKeyArn":
            cfg[name] = str(value) if value else None
        elif name == "MetricsConfig":
            cfg[name] = _metrics_of(value)
        elif name == "DestinationConfig":
            cfg[name] = _destination_of(value)
        elif name == "FunctionResponseTypes":
            cfg[name] = sorted(value or [])
        elif name == "Enabled":
            cfg[name] = enabled_of(mapping)
        else:
            cfg[name] = default if value is None else value
    return cfg


def unset_fields(mapping: Mapping[str, Any]) -> set[str]:
    """Fields the mapping does not report (so AWS's default applies). A filter that was
    not returned because it is encrypted is not unset: it is unknown."""
    hidden = {"FilterCriteria"} if filter_hidden(mapping) else set()
    return {n for n in SETTABLE
            if n != "Enabled" and mapping.get(n) is None and n not in hidden}


def patterns_of(cfg: Mapping[str, Any]) -> list[str]:
    """The patterns of a normalized config ([] when the filter is unknown)."""
    return [f["Pattern"] for f in (cfg["FilterCriteria"] or {"Filters": []})["Filters"]]


def destination_arn(cfg: Mapping[str, Any]) -> str | None:
    arn = (cfg.get("DestinationConfig") or {}).get("OnFailure", {}).get("Destination")
    return str(arn) if arn else None


def display_value(field: str, value: Any) -> str:
    """One field's value for people."""
    from .durations import humanize

    if field == "FilterCriteria":
        if value is None:
            return HIDDEN_FILTER_TEXT
        pats = [f["Pattern"] for f in value["Filters"]]
        return " | ".join(pats) if pats else "none (every record)"
    if field == "KMSKeyArn":
        return str(value) if value else "none"
    if field == "MetricsConfig":
        return ", ".join(value.get("Metrics") or []) or "none"
    if field == "DestinationConfig":
        return str(value.get("OnFailure", {}).get("Destination") or "none")
    if field == "FunctionResponseTypes":
        return ", ".join(value) if value else "none"
    if isinstance(value, bool):
        return "true" if value else "false"
    if field in ("MaximumRetryAttempts", "MaximumRecordAgeInSeconds") and value == -1:
        return "-1 (infinite)"
    if field in ("MaximumRecordAgeInSeconds", "MaximumBatchingWindowInSeconds",
                 "TumblingWindowInSeconds") and isinstance(value, int) and value >= 60:
        return f"{value} ({humanize(value)})"
    return str(value)


# ------------------------------------------------------------------------- validation


def _int_value(field: str, value: Any, where: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise BadInput(f"{where}: {field} must be an integer, got {_json.dumps(value)}")
    return value


def check_range(field: str, value: int, where: str) -> None:
    lo, hi = RANGES[field]
    if field == "MaximumRecordAgeInSeconds":
        if value != -1 and not 60 <= value <= hi:
            raise BadInput(f"{where}: {value} is out of range: MaximumRecordAgeInSeconds is "
                           f"-1 (infinite) or 60 to {hi} seconds (7 days)")
        return
    if field == "MaximumRetryAttempts":
        if not lo <= value <= hi:
            raise BadInput(f"{where}: {value} is out of range: MaximumRetryAttempts is "
                           f"-1 (infinite) or 0 to {hi}")
        return
    if not lo <= value <= hi:
        raise BadInput(f"{where}: {value} is out of range: {field} is {lo} to {hi}")


def check_destination(arn: str, where: str) -> None:
    """The on-failure destination of a DynamoDB stream: a standard SQS queue, a standard
    SNS topic or an S3 bucket."""
    if len(arn) > MAX_DESTINATION_ARN:
        raise BadInput(f"{where}: the destination ARN is {len(arn)} characters; "
                       f"UpdateEventSourceMapping takes at most {MAX_DESTINATION_ARN}")
    if len(arn) < 12:
        raise BadInput(f"{where}: {arn!r} is not an ARN (too short)")
    m = _ARN.match(arn)
    if not m:
        raise BadInput(f"{where}: {arn!r} is not an ARN "
                       "(arn:PARTITION:SERVICE:REGION:ACCOUNT:RESOURCE)")
    service, region, account, resource = m.group(2), m.group(3), m.group(4), m.group(5)
    if service in ("sqs", "sns"):
        if not region or not account or ":" in resource or "/" in resource:
            raise BadInput(f"{where}: {arn!r} is not a {service.upper()} ARN "
                           f"(arn:aws:{service}:REGION:ACCOUNT:NAME)")
        if resource.endswith(".fifo"):
            raise BadInput(f"{where}: {arn!r} is a FIFO {service.upper()} "
                           "destination; a DynamoDB stream trigger needs a standard one")
        return
    if service == "s3":
        if region or account or "/" in resource:
            raise BadInput(f"{where}: {arn!r} is not an S3 bucket ARN (arn:aws:s3:::BUCKET)")
        return
    raise BadInput(f"{where}: {arn!r} is a {service} ARN; the on-failure destination of a "
                   "DynamoDB stream trigger is an SQS queue, an SNS topic or an S3 bucket")


def check_patterns(patterns: list[str], where: str) -> None:
    """Up to 10 filters are valid: 5 is the default quota, 10 the most a quota increase
    gives (Lambda DG, invocation-eventfiltering: "up to 5 different filters ... you can
    request a quota increase for up to 10"). More than 5 is a lint warning, not an error,
    so an exported mapping that has them can be applied again."""
    from .filters import MAX_FILTERS_WITH_QUOTA, FilterPatternError, validate_criteria

    try:
        validate_criteria(patterns, max_filters=MAX_FILTERS_WITH_QUOTA)
    except FilterPatternError as exc:
        raise BadInput(f"{where}: {exc}") from None


def validate_config(values: Mapping[str, Any], where: str = "configuration") -> dict[str, Any]:
    """Check normalized values (any subset of SETTABLE) against AWS's documented rules
    for a DynamoDB stream; return them normalized. Raises BadInput naming the field."""
    out: dict[str, Any] = {}
    for field, value in values.items():
        here = f"invalid {FLAG_OF.get(field, field)}" if where == "flags" else where
        if field in RANGES:
            v = _int_value(field, value, here)
            check_range(field, v, here)
            out[field] = v
        elif field in ("BisectBatchOnFunctionError", "Enabled"):
            if not isinstance(value, bool):
                raise BadInput(f"{here}: {field} must be true or false")
            out[field] = value
        elif field == "FilterCriteria":
            if value is None:
                value = {"Filters": []}
            if not isinstance(value, dict) or set(value) - {"Filters"} or not isinstance(
                    value.get("Filters", []), list):
                raise BadInput(f'{here}: FilterCriteria must be {{"Filters": [{{"Pattern": '
                               '"..."}, ...]}')
            filters = value.get("Filters", [])
            for f in filters:
                if not isinstance(f, dict) or set(f) != {"Pattern"} or not isinstance(
                        f["Pattern"], str):
                    raise BadInput(f'{here}: each filter must be {{"Pattern": "JSON text"}}')
            check_patterns([f["Pattern"] for f in filters], here)
            out[field] = {"Filters": [{"Pattern": f["Pattern"]} for f in filters]}
        elif field == "DestinationConfig":
            if value is None:
                value = {}
            if not isinstance(value, dict) or set(value) - {"OnFailure"}:
                raise BadInput(f'{here}: DestinationConfig must be {{"OnFailure": '
                               '{"Destination": "ARN"}} (OnSuccess does not apply to a '
                               "DynamoDB stream)")
            on_failure = value.get("OnFailure") or {}
            if not isinstance(on_failure, dict) or set(on_failure) - {"Destination"}:
                raise BadInput(f'{here}: OnFailure must be {{"Destination": "ARN"}}')
            arn = on_failure.get("Destination")
            if arn:
                if not isinstance(arn, str):
                    raise BadInput(f"{here}: the destination must be an ARN string")
                check_destination(arn, here)
                out[field] = {"OnFailure": {"Destination": arn}}
            else:
                out[field] = {}
        elif field == "MetricsConfig":
            if value is None:
                value = {"Metrics": []}
            if not isinstance(value, dict) or set(value) - {"Metrics"} or not isinstance(
                    value.get("Metrics", []), list):
                raise BadInput(f'{here}: MetricsConfig must be {{"Metrics": ["EventCount"]}} '
                               'or {"Metrics": []}')
            metrics = value.get("Metrics", [])
            for m in metrics:
                if m in KAFKA_ONLY_METRICS:
                    raise BadInput(f"{here}: the {m} metric applies to Kafka event sources "
                                   "only; a DynamoDB stream trigger takes EventCount")
                if m not in STREAM_METRICS:
                    raise BadInput(f"{here}: unknown metric {_json.dumps(m)} (a DynamoDB "
                                   "stream trigger takes EventCount)")
            out[field] = {"Metrics": sorted(set(metrics))}
        elif field == "KMSKeyArn":
            if value in (None, ""):
                out[field] = None
                continue
            if not isinstance(value, str):
                raise BadInput(f"{here}: KMSKeyArn must be a KMS key ARN string or null")
            m = _ARN.match(value)
            if not m or m.group(2) != "kms" or not m.group(3) or not m.group(4) \
                    or not m.group(5).startswith("key/"):
                raise BadInput(f"{here}: {value!r} is not a KMS key ARN "
                               "(arn:aws:kms:REGION:ACCOUNT:key/KEY-ID)")
            out[field] = value
        elif field == "FunctionResponseTypes":
            if value is None:
                value = []
            if not isinstance(value, list) or any(v != REPORT_BATCH_ITEM_FAILURES
                                                  for v in value):
                raise BadInput(f'{here}: FunctionResponseTypes must be [] or '
                               f'["{REPORT_BATCH_ITEM_FAILURES}"]')
            out[field] = sorted(set(value))
        else:
            raise BadInput(f"{where}: unknown field {field!r}")
    return out


# --------------------------------------------------------------------- flags -> values


def _parse_int(text: str, flag: str) -> int:
    try:
        return int(str(text).strip())
    except ValueError:
        raise BadInput(f"invalid {flag} {text!r}: expected an integer") from None


def _parse_seconds(text: str, flag: str, *, infinite: bool) -> int:
    from .durations import parse_duration

    s = str(text).strip().lower()
    if infinite and s in ("-1", "infinite", "inf", "unlimited"):
        return -1
    if s.startswith("-"):
        raise BadInput(f"invalid {flag} {text!r}: "
                       + ("use -1 (infinite) or " if infinite else "use ")
                       + "a number of seconds or a duration like 90s, 5m, 1h")
    seconds = parse_duration(s, what=flag)
    if seconds != int(seconds):
        raise BadInput(f"invalid {flag} {text!r}: whole seconds only")
    return int(seconds)


def parse_event_names(text: str) -> list[str]:
    names = [p.strip().upper() for p in text.split(",") if p.strip()]
    if not names:
        raise BadInput("invalid --filter '': use insert, modify and/or remove, "
                       "comma-separated")
    for n in names:
        if n not in ("INSERT", "MODIFY", "REMOVE"):
            raise BadInput(f"invalid --filter event {n.lower()!r}: use insert, modify, remove")
    return names


def changes_from_flags(
    *, batch_size: str | None = None, batching_window: str | None = None,
    retry_attempts: str | None = None, max_record_age: str | None = None,
    bisect: bool | None = None, parallelization: str | None = None,
    event_filter: str | None = None, filter_patterns: list[str] | None = None,
    no_filter: bool = False, on_failure: str | None = None,
    report_batch_item_failures: bool | None = None, tumbling_window: str | None = None,
    enabled: bool | None = None, metrics: str | None = None,
) -> dict[str, Any]:
    """The change flags, parsed and validated (BadInput, exit 2): only the fields asked."""
    from .filters import event_name_pattern

    asked: dict[str, Any] = {}
    if batch_size is not None:
        asked["BatchSize"] = _parse_int(batch_size, "--batch-size")
    if batching_window is not None:
        asked["MaximumBatchingWindowInSeconds"] = _parse_seconds(
            batching_window, "--batching-window", infinite=False)
    if retry_attempts is not None:
        s = retry_attempts.strip().lower()
        asked["MaximumRetryAttempts"] = (-1 if s in ("infinite", "inf", "unlimited")
                                         else _parse_int(retry_attempts, "--retry-attempts"))
    if max_record_age is not None:
        asked["MaximumRecordAgeInSeconds"] = _parse_seconds(
            max_record_age, "--max-record-age", infinite=True)
    if bisect is not None:
        asked["BisectBatchOnFunctionError"] = bisect
    if parallelization is not None:
        asked["ParallelizationFactor"] = _parse_int(parallelization, "--parallelization")
    chosen = [f for f, on in (("--filter", event_filter is not None),
                              ("--filter-pattern", bool(filter_patterns)),
                              ("--no-filter", no_filter)) if on]
    if len(chosen) > 1 and no_filter:
        raise BadInput(f"{chosen[0]} and --no-filter contradict each other: use one")
    if len(chosen) > 1:
        raise BadInput(f"{' and '.join(chosen)} are alternatives (filters are ORed, so "
                       "mixing them would widen the filter): use one; put an eventName "
                       "rule inside a --filter-pattern to combine both")
    if event_filter is not None:
        asked["FilterCriteria"] = {"Filters": [
            {"Pattern": event_name_pattern(parse_event_names(event_filter))}]}
    elif filter_patterns:
        asked["FilterCriteria"] = {"Filters": [{"Pattern": p} for p in filter_patterns]}
    elif no_filter:
        asked["FilterCriteria"] = {"Filters": []}
    if on_failure is not None:
        none = on_failure.strip().lower() in ("none", "")
        asked["DestinationConfig"] = ({} if none else
                                      {"OnFailure": {"Destination": on_failure.strip()}})
    if report_batch_item_failures is not None:
        asked["FunctionResponseTypes"] = ([REPORT_BATCH_ITEM_FAILURES]
                                          if report_batch_item_failures else [])
    if tumbling_window is not None:
        asked["TumblingWindowInSeconds"] = _parse_seconds(
            tumbling_window, "--tumbling-window", infinite=False)
    if enabled is not None:
        asked["Enabled"] = enabled
    if metrics is not None:
        switch = metrics.strip().lower()
        if switch not in ("on", "off"):
            raise BadInput(f"invalid --metrics {metrics!r}: use on or off")
        asked["MetricsConfig"] = {"Metrics": list(STREAM_METRICS) if switch == "on" else []}
    return validate_config(asked, "flags")


# --------------------------------------------------------------------- export / import


def export_doc(mapping: Mapping[str, Any]) -> dict[str, Any]:
    """The ``--export`` format: identifiers plus every settable field (defaults filled).

    A filter that was not returned (encrypted, :func:`filter_hidden`) is left out, so
    applying the document (or a backup) leaves the filter as it is: writing "no filter"
    would clear it."""
    doc: dict[str, Any] = {"Format": EXPORT_FORMAT}
    for name in IDENTIFIERS:
        doc[name] = mapping.get(name)
    cfg = current_config(mapping)
    if cfg["FilterCriteria"] is None:
        del cfg["FilterCriteria"]
    doc.update(cfg)
    return doc


def _table_of_stream(arn: str | None) -> str | None:
    m = _re.match(r"^arn:[^:]+:dynamodb:[^:]*:[^:]*:table/([^/]+)/stream/", arn or "")
    return m.group(1) if m else None


def read_saved_config(path: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """Read an ``--export`` document (``-``: stdin): (the document, its settable fields
    validated and normalized). Only the fields the document has are returned. Unknown
    keys, another ``Format`` or bad values: BadInput naming the file."""
    from .inputs import MiB, loads, read_input

    # An export is about 2 KB; 10 filters of 4096 characters stay far below 1 MiB.
    text = read_input(path, what=str(path), max_bytes=MiB)
    doc = loads(text, what=str(path), max_chars=MiB)
    return saved_config(doc, str(path))


def saved_config(doc: Any, path: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """:func:`read_saved_config` of a document already read (the Python API's
    ``Outbox.check_trigger(trigger.export())``); ``path`` names it in errors."""
    if not isinstance(doc, dict):
        raise BadInput(f"{path}: expected a JSON object as printed by --export")
    known = {"Format", *IDENTIFIERS, *SETTABLE}
    unknown = sorted(set(doc) - known)
    if unknown:
        raise BadInput(f"{path}: unknown key(s) {', '.join(unknown)} (known: "
                       f"{', '.join(sorted(known))})")
    for name in IDENTIFIERS:
        if doc.get(name) is not None and not isinstance(doc[name], str):
            raise BadInput(f"{path}: {name} must be a string, as --export prints it")
    if doc.get("Format") not in (None, EXPORT_FORMAT):
        raise BadInput(f"{path}: Format {doc.get('Format')!r} is not {EXPORT_FORMAT!r}")
    values = {k: doc[k] for k in SETTABLE if k in doc}
    return doc, validate_config(values, str(path))


def changes_from_file(path: str, mapping: Mapping[str, Any], *,
                      force: bool = False) -> tuple[dict[str, Any], list[str]]:
    """Read an ``--export`` document; return (fields to set, notes). Unknown keys or bad
    values: BadInput. A file from another table's or function's trigger: Refused unless
    ``force``."""
    from .errors import Refused

    doc, values = read_saved_config(path)
    notes: list[str] = []
    here_table = _table_of_stream(mapping.get("EventSourceArn"))
    file_table = _table_of_stream(doc.get("EventSourceArn"))
    problems: list[str] = []
    if doc.get("EventSourceArn") and file_table != here_table:
        problems.append(f"table {file_table or doc.get('EventSourceArn')!r}, not "
                        f"{here_table!r}")
    # The whole function ARN: another qualifier (alfn:prod vs alfn:1), region or account
    # is another trigger.
    if doc.get("FunctionArn") and str(doc["FunctionArn"]) != str(mapping.get("FunctionArn")):
        problems.append(f"function {doc['FunctionArn']}, not {mapping.get('FunctionArn')}")
    if problems:
        msg = f"{path} was exported from another trigger ({'; '.join(problems)})"
        if not force:
            raise Refused(msg + ": pass --force to apply it to this one anyway")
        notes.append(msg + "; applying anyway (--force)")
    if doc.get("UUID") and doc["UUID"] != mapping.get("UUID"):
        notes.append(f"{path} names mapping {doc['UUID']}; applying to {mapping.get('UUID')}")
    return values, notes


def write_backup(mapping: Mapping[str, Any], directory: Path | None = None) -> Path:
    """Save the mapping's current configuration (export format) before a change;
    written to a temporary name and renamed, so a backup is whole or absent; 0600 in a
    0700 directory (it names the function, the stream and the destination)."""
    from datetime import datetime, timezone

    from .config import user_state_dir
    from .files import private_dir, write_private

    folder = private_dir(directory or (user_state_dir() / "backups"))
    stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%S%fZ")
    fn = function_name_of(str(mapping.get("FunctionArn") or "function"))
    path = folder / f"{fn}-{mapping.get('UUID')}-{stamp}.json"
    return write_private(path, _json.dumps(export_doc(mapping), indent=2, default=str) + "\n")


# ------------------------------------------------------------------------------ diff


@dataclass(frozen=True)
class Change:
    field: str
    current: Any
    new: Any

    def to_json(self) -> dict[str, Any]:
        return {"field": self.field, "current": self.current, "new": self.new}


def diff(current: Mapping[str, Any], asked: Mapping[str, Any]) -> list[Change]:
    """(field, current, new) for the asked fields that differ, in display order."""
    return [Change(f, current[f], asked[f]) for f in SETTABLE
            if f in asked and asked[f] != current[f]]


def update_request(uuid: str, changes: list[Change]) -> dict[str, Any]:
    """UpdateEventSourceMapping arguments for the changed fields only. Clearing uses the
    empty values AWS takes: FilterCriteria {}, DestinationConfig {}, FunctionResponseTypes
    [], MetricsConfig {"Metrics": []}, KMSKeyArn "" (the model's pattern allows the empty
    string). A field that did not change is never sent, so an encrypted filter nobody
    asked to change is left alone."""
    req: dict[str, Any] = {"UUID": uuid}
    for ch in changes:
        value = ch.new
        if ch.field == "FilterCriteria" and not value["Filters"]:
            value = {}
        if ch.field == "KMSKeyArn" and not value:
            value = ""  # the model's KMSKeyArn pattern allows "": no customer key
        req[ch.field] = value
    return req


# ------------------------------------------------------------------------------ lint


@dataclass(frozen=True)
class Lint:
    code: str
    severity: str  # error | warning | info
    message: str

    def to_json(self) -> dict[str, str]:
        return {"code": self.code, "severity": self.severity, "message": self.message}


def simulate_insert_event(info: TableInfo) -> dict[str, Any]:
    """An INSERT record of a placeholder item (key only), as the filter sees it."""
    item: Item = {k.name: ({"S": "x"} if k.type == "S" else {"N": "0"} if k.type == "N"
                           else {"B": b"x"}) for k in info.key_attrs}
    view = info.stream_view_type or "NEW_AND_OLD_IMAGES"
    ddb: dict[str, Any] = {"ApproximateCreationDateTime": 0,
                           "Keys": {k: _wire(v) for k, v in item.items()},
                           "SequenceNumber": "0", "SizeBytes": 1, "StreamViewType": view}
    if view in ("NEW_IMAGE", "NEW_AND_OLD_IMAGES"):
        ddb["NewImage"] = {k: _wire(v) for k, v in item.items()}
    return {"eventID": "preview", "eventName": "INSERT", "eventVersion": "1.1",
            "eventSource": "aws:dynamodb", "awsRegion": "us-east-1", "dynamodb": ddb,
            "eventSourceARN": info.stream_arn or ""}


def lint_config(cfg: Mapping[str, Any], info: TableInfo, settings: Settings, *,
                filter_unreadable: str | None = None) -> list[Lint]:
    """Warnings about a (resulting) trigger configuration. ``filter_unreadable``: why the
    filter was not returned (:func:`filter_hidden`), when cfg's FilterCriteria is None."""
    from .filters import (
        DEFAULT_MAX_FILTERS,
        MAX_FILTERS_WITH_QUOTA,
        FilterPatternError,
        evaluate_criteria,
    )

    out: list[Lint] = []
    retries, age = cfg["MaximumRetryAttempts"], cfg["MaximumRecordAgeInSeconds"]
    if retries == -1 and (age == -1 or age >= STREAM_RETENTION_SECONDS):
        out.append(Lint("infinite-retries", "warning",
                        "MaximumRetryAttempts and MaximumRecordAgeInSeconds are both infinite: "
                        "one poison record blocks its shard and is retried (and billed) until "
                        "it leaves the stream after 24 h; set --retry-attempts and/or "
                        "--max-record-age"))
    elif age > STREAM_RETENTION_SECONDS:
        out.append(Lint("record-age-beyond-retention", "info",
                        f"MaximumRecordAgeInSeconds {age} is longer than the stream keeps "
                        "records (24 h), so it never discards anything"))
    if destination_arn(cfg) is None:
        out.append(Lint("no-on-failure", "warning",
                        "no on-failure destination: a batch discarded after its retries or "
                        "record age leaves no trace; set --on-failure ARN (SQS, SNS or S3)"))
    if not cfg["BisectBatchOnFunctionError"] and cfg["BatchSize"] > 1:
        out.append(Lint("bisect-off", "warning",
                        f"BisectBatchOnFunctionError is off with BatchSize {cfg['BatchSize']}: "
                        "one bad record fails (and retries) its whole batch; --bisect splits "
                        "the batch to isolate it"))
    if cfg["FilterCriteria"] is None:
        key = cfg.get("KMSKeyArn")
        unreadable = filter_unreadable or (
            (f"encrypted with KMS key {key}" if key else "encrypted")
            + ", and AWS did not return it in plain text (reading it needs kms:Decrypt on "
            "the key)")
        out.append(Lint("filter-encrypted", "warning",
                        f"the filter is {unreadable}: streamq cannot check that it passes refires "
                        "(refire refuses without --force), and never treats it as no filter"))
    patterns = patterns_of(cfg)
    if len(patterns) > DEFAULT_MAX_FILTERS:
        out.append(Lint("filters-over-default-quota", "warning",
                        f"{len(patterns)} filters: the default quota is "
                        f"{DEFAULT_MAX_FILTERS} per event source mapping; AWS rejects more "
                        "unless the account has a quota increase (up to "
                        f"{MAX_FILTERS_WITH_QUOTA})"))
    if patterns:
        try:
            passes, why = refire_verdict({"FilterCriteria": cfg["FilterCriteria"]}, info,
                                         settings)
            if not passes:
                reason = why[0][1] if why else "no filter matches it"
                out.append(Lint("filter-drops-refire", "error",
                                "the filter drops MODIFY records: `streamq refire` stops "
                                f"working (a refire arrives as a MODIFY; {reason}); records "
                                "a filter drops are never retried"))
            ins_passes, ins_why = evaluate_criteria(patterns, simulate_insert_event(info))
            if not ins_passes:
                reason = ins_why[0][1] if ins_why else "no filter matches it"
                out.append(Lint("filter-drops-insert", "warning",
                                "the filter drops an INSERT of a new outbox record "
                                f"({reason}): new records may never reach the function"))
        except FilterPatternError as exc:
            out.append(Lint("filter-invalid", "error", f"the filter is invalid: {exc}"))
    if cfg["ParallelizationFactor"] > 1:
        out.append(Lint("parallelization", "info",
                        f"ParallelizationFactor {cfg['ParallelizationFactor']}: records with "
                        "the same key stay in order, records with different keys may be "
                        "processed out of order"))
    if not cfg["Enabled"]:
        out.append(Lint("disabled", "warning",
                        "the trigger is disabled: nothing is delivered, and records older "
                        "than 24 h leave the stream (only a refire sends them again)"))
    return out


# --------------------------------------------------------------------- read / apply


def get_mapping(aws: Aws, uuid: str) -> dict[str, Any]:
    with aws_errors():
        return dict(aws.client("lambda").get_event_source_mapping(UUID=uuid))


def describe_trigger(mapping: Mapping[str, Any], info: TableInfo,
                     settings: Settings) -> dict[str, Any]:
    """The read view: identifiers, status, every setting (default or set), lints."""
    cfg = current_config(mapping)
    unset = unset_fields(mapping)
    settings_rows = [{"field": f, "value": cfg[f], "display": display_value(f, cfg[f]),
                      "default": f in unset or cfg[f] == DEFAULTS[f], "unset": f in unset}
                     for f in SETTABLE]
    from .schemas import TRIGGER

    return {
        "schema_version": TRIGGER,
        "UUID": mapping.get("UUID"),
        "FunctionArn": mapping.get("FunctionArn"),
        "EventSourceArn": mapping.get("EventSourceArn"),
        "StartingPosition": mapping.get("StartingPosition"),
        **{f: mapping.get(f) for f in STATUS_FIELDS},
        "FilterCriteriaError": mapping.get("FilterCriteriaError"),
        "filter_unreadable": filter_hidden(mapping),
        "settings": settings_rows,
        "config": export_doc(mapping),
        "lints": [x.to_json() for x in lint_config(
            cfg, info, settings, filter_unreadable=filter_hidden(mapping))],
    }


def wait_settled(get: Callable[[], dict[str, Any]], *, timeout: float,
                 sleep: Callable[[float], None] | None = None,
                 clock: Callable[[], float] | None = None) -> dict[str, Any]:
    """Poll until State leaves Creating/Enabling/Disabling/Updating; raise AwsError
    after ``timeout`` seconds. Returns the last mapping read."""
    import time as _time

    from .errors import AwsError

    sleep = sleep or _time.sleep
    clock = clock or _time.monotonic
    deadline = clock() + timeout
    delay = 0.5
    while True:
        mapping = get()
        state = mapping.get("State")
        if state not in TRANSITIONAL:
            return mapping
        if state == "Deleting":
            raise AwsError(f"the trigger {mapping.get('UUID')} is being deleted")
        if clock() >= deadline:
            raise AwsError(f"the trigger is still {state} after {timeout:g}s: the change was "
                           "sent; check it later with `streamq config-trigger`")
        sleep(min(delay, max(deadline - clock(), 0.05)))
        delay = min(delay * 2, 5.0)


def apply_changes(aws: Aws, mapping: Mapping[str, Any], changes: list[Change], *,
                  wait: bool = True, timeout: float = 120.0) -> dict[str, Any]:
    """Send UpdateEventSourceMapping with the changed fields, wait for State to settle
    (unless ``wait`` is false), read the mapping back and verify it holds what was asked
    (AwsError naming the first field that differs). Returns the mapping read back."""
    uuid = str(mapping["UUID"])
    check_settled(mapping)
    try:
        with aws_errors():
            aws.client("lambda").update_event_source_mapping(**update_request(uuid, changes))
    except StreamqError as exc:
        # An update whose answer was lost (a 5xx, a reset, a timeout) may have been
        # applied, and a retry of it may then fail ("in use") although the first one
        # took effect: whatever the last error says, the outcome is unknown.
        raise ApplyFailed(exc, accepted=False) from exc
    try:
        if wait:
            after = wait_settled(lambda: get_mapping(aws, uuid), timeout=timeout)
        else:
            after = get_mapping(aws, uuid)
        verify(after, changes)
    except StreamqError as exc:
        raise ApplyFailed(exc, accepted=True) from exc
    return after


class ApplyFailed(StreamqError):
    """Applying a change failed after the backup was written: ``accepted`` says whether
    UpdateEventSourceMapping answered (the change was taken) or not (it may or may not
    have been). Keeps the exit code of the error behind it."""

    def __init__(self, cause: StreamqError, *, accepted: bool) -> None:
        super().__init__(cause.message, hint=cause.hint)
        self.exit_code = cause.exit_code
        self.accepted = accepted


def check_settled(mapping: Mapping[str, Any]) -> None:
    """AWS refuses an update while the mapping is changing (ResourceInUseException):
    say so before asking or writing anything."""
    from .errors import AwsError

    state = mapping.get("State")
    if state in TRANSITIONAL:
        raise AwsError(f"the trigger {mapping.get('UUID')} is {state}: another change is in "
                       "progress; retry when its State is Enabled or Disabled")


def verify(after: Mapping[str, Any], changes: list[Change]) -> None:
    from .errors import AwsError

    got = current_config(after)
    settled = after.get("State") not in TRANSITIONAL
    for ch in changes:
        if ch.field == "Enabled" and not settled:
            continue  # Updating says nothing about Enabled yet
        if ch.field == "FilterCriteria" and got[ch.field] is None:
            continue  # encrypted and not returned: unverifiable (the caller says so)
        if got[ch.field] != ch.new:
            raise AwsError(f"verification failed: {ch.field} reads back as "
                           f"{display_value(ch.field, got[ch.field])}, not "
                           f"{display_value(ch.field, ch.new)}")
