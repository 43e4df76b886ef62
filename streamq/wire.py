"""Scan and Query pages straight from the wire, through botocore's own event hooks.

botocore turns a 1 MB Scan page into Python objects by walking the service model for
every attribute of every item (a few thousand items a page): that walk, not the network,
bounds a Python client reading a parallel scan. streamq keeps items in DynamoDB's
low-level JSON form (``{"S": "x"}``) anyway, which is the wire format, so for Scan and
Query the page is parsed with a plain JSON parser and handed on as it is.

Everything else stays botocore's: signing, credentials, endpoint resolution, retries
(throttling, 5xx, the ``x-amz-crc32`` check, which reads the raw response), and error
responses, which are left to botocore's parser (so they still become ``ClientError`` with
the same codes). The hook is registered on ``before-parse.dynamodb.{Scan,Query}``
(botocore >= 1.35.16) of streamq's own client only: botocore emits it with the raw
``response_dict`` and a ``customized_response_dict`` that it merges over what its parser
returns. A 2xx JSON body is parsed here into that dict and replaced by ``{}``, so
botocore's parser only adds ``ResponseMetadata``.

What botocore does and this must match: binary values (``B``, ``BS``, at any depth) are
base64 text on the wire and ``bytes`` after botocore's parse; they are decoded here too,
only when the page can contain one (the token ``"B"`` or ``"BS"`` appears in the body).
Numbers stay strings (``N``), as botocore leaves them. Anything unexpected (not JSON, not
an object, another protocol such as CBOR) falls back to botocore's parser untouched.

``orjson`` is used when installed (``pip install 'streamq[fast]'``) and ``json``
otherwise; the results are identical (tests/test_wire.py runs both).
"""

from __future__ import annotations

import base64
import functools
import json
import os
from collections.abc import Callable
from typing import Any

OPERATIONS = ("Scan", "Query")
_HANDLER_ID = "streamq-wire-page"

_orjson: Any
try:  # optional: a faster JSON parser with the same results
    import orjson as _orjson
except ImportError:  # pragma: no cover - depends on the environment
    _orjson = None


def _json_loads(body: bytes) -> Any:
    return json.loads(body)


def _orjson_loads(body: bytes) -> Any:
    assert _orjson is not None
    try:
        return _orjson.loads(body)
    except _orjson.JSONDecodeError:
        # orjson is stricter than json (e.g. lone surrogates): let json decide.
        return json.loads(body)


loads = _orjson_loads if _orjson is not None else _json_loads


def mode() -> str:
    """``STREAMQ_FAST_PAGES``: ``0``/``off`` leaves every page to botocore, ``json`` uses
    the standard library's parser even when orjson is installed; anything else (the
    default) the fastest available. For comparisons and as an escape hatch."""
    value = os.environ.get("STREAMQ_FAST_PAGES", "").strip().lower()
    if value in ("0", "false", "no", "off"):
        return "off"
    return "json" if value == "json" or _orjson is None else "orjson"


def install(client: Any) -> bool:
    """Register the raw page path on ``client`` (a botocore DynamoDB client). Returns
    whether it was registered."""
    chosen = mode()
    if chosen == "off":
        return False
    handler = functools.partial(parse_page,
                                loader=_json_loads if chosen == "json" else _orjson_loads)
    events = client.meta.events
    for op in OPERATIONS:
        events.register(f"before-parse.dynamodb.{op}", handler,
                        unique_id=f"{_HANDLER_ID}-{op}")
    return True


def parse_page(response_dict: dict[str, Any], customized_response_dict: dict[str, Any],
               loader: Callable[[bytes], Any] = loads, **_: Any) -> None:
    """botocore's ``before-parse`` handler: parse a successful JSON page ourselves."""
    status = response_dict.get("status_code") or 0
    if not 200 <= status < 300:
        return  # errors: botocore's parser (codes, messages, modeled fields)
    headers = response_dict.get("headers") or {}
    ctype = str(headers.get("content-type", "application/x-amz-json-1.0"))
    if "json" not in ctype:
        return
    body = response_dict.get("body")
    if not isinstance(body, bytes) or not body:
        return
    try:
        doc = loader(body)
    except (ValueError, UnicodeDecodeError):
        return
    if not isinstance(doc, dict):
        return
    if b'"B"' in body or b'"BS"' in body:
        for item in doc.get("Items") or ():
            decode_binary_item(item)
        for key in ("LastEvaluatedKey",):
            if isinstance(doc.get(key), dict):
                decode_binary_item(doc[key])
    customized_response_dict.update(doc)
    response_dict["body"] = b"{}"


def decode_binary_item(item: dict[str, Any]) -> None:
    """In place: base64 text of every ``B``/``BS`` value (nested too) -> bytes."""
    for av in item.values():
        _decode(av)


def _decode(av: Any) -> None:
    if not isinstance(av, dict):
        return
    for kind, value in av.items():
        if kind == "B" and isinstance(value, str):
            av["B"] = base64.b64decode(value)
        elif kind == "BS" and isinstance(value, list):
            av["BS"] = [base64.b64decode(v) if isinstance(v, str) else v for v in value]
        elif kind == "M" and isinstance(value, dict):
            for v in value.values():
                _decode(v)
        elif kind == "L" and isinstance(value, list):
            for v in value:
                _decode(v)
