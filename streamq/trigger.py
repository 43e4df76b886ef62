"""The stream trigger: the Lambda event source mapping (ESM) on the outbox's stream.

Finding it is shared by ``refire`` (pre-flight), ``config-trigger`` and the sandbox.
"""

from __future__ import annotations

import base64
from typing import Any

from .aws import Aws, aws_errors
from .config import Settings
from .errors import BadInput, NotFound
from .outbox import AV, Item, TableInfo, iso, key_of


def function_name_of(arn_or_name: str) -> str:
    """``arn:aws:lambda:r:a:function:NAME[:qualifier]`` or ``NAME`` -> ``NAME``."""
    parts = arn_or_name.split(":")
    if len(parts) >= 7 and parts[5] == "function":
        return parts[6]
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


def find_trigger(aws: Aws, info: TableInfo, *, function: str | None = None,
                 uuid: str | None = None) -> dict[str, Any]:
    """The one ESM on the table's current stream (chosen by function or UUID when several)."""
    if not info.stream_enabled or not info.stream_arn:
        raise NotFound(f"table {info.name!r} has no stream enabled, so it has no trigger")
    mappings = list_mappings(aws, info.stream_arn)
    if uuid:
        mappings = [m for m in mappings if m.get("UUID") == uuid]
    if function:
        want = function_name_of(function)
        mappings = [m for m in mappings
                    if function_name_of(m.get("FunctionArn", "")) == want]
    if not mappings:
        chosen = " ".join(x for x in (f"function {function}" if function else "",
                                      f"uuid {uuid}" if uuid else "") if x)
        raise NotFound(f"no trigger (event source mapping) on the stream of table "
                       f"{info.name!r}{' for ' + chosen if chosen else ''}")
    if len(mappings) > 1:
        names = ", ".join(f"{function_name_of(m.get('FunctionArn', '?'))} ({m.get('UUID')})"
                          for m in mappings)
        raise BadInput(f"the stream of table {info.name!r} has {len(mappings)} triggers: "
                       f"{names}; choose one with --function or --uuid")
    return mappings[0]


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


def filter_patterns(mapping: dict[str, Any]) -> list[str]:
    return [f.get("Pattern", "") for f in
            (mapping.get("FilterCriteria") or {}).get("Filters", []) or []]


def refire_verdict(mapping: dict[str, Any], info: TableInfo, settings: Settings,
                   item: Item | None = None) -> tuple[bool, list[tuple[str, str]]]:
    """Would the trigger's FilterCriteria pass the MODIFY a refire of ``item`` produces?
    Returns (passes, [(pattern, why it drops the record), ...])."""
    from .filters import evaluate_criteria

    event = simulate_refire_event(info, settings, item)
    return evaluate_criteria(filter_patterns(mapping), event)
