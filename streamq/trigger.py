"""The stream trigger: the Lambda event source mapping (ESM) on the outbox's stream.

Finding it is shared by ``refire`` (pre-flight), ``config-trigger`` and the sandbox.
"""

from __future__ import annotations

from typing import Any

from .aws import Aws, aws_errors
from .errors import BadInput, NotFound
from .outbox import TableInfo


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
