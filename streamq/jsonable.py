"""JSON-ready values, the same for the CLI's output and the Python API's ``to_json()``:
times as ISO-8601 in UTC (``2026-11-27T09:56:46Z``), never ``str()`` of a datetime
(``2026-11-27 09:56:46+00:00``) or an epoch float."""

from __future__ import annotations

import datetime as dt
from typing import Any


def iso_time(value: Any) -> str:
    """A datetime (or epoch seconds) as ISO-8601 in UTC, with milliseconds only when it
    has a fraction of a second."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        value = dt.datetime.fromtimestamp(value, tz=dt.timezone.utc)
    if isinstance(value, dt.datetime):
        if value.tzinfo is None:
            value = value.replace(tzinfo=dt.timezone.utc)
        value = value.astimezone(dt.timezone.utc)
        text = value.isoformat(timespec="milliseconds" if value.microsecond else "seconds")
        return str(text).replace("+00:00", "Z")
    return str(value)


def json_default(obj: Any) -> Any:
    """``json.dumps(default=...)``: a datetime as :func:`iso_time`, anything else as str."""
    return iso_time(obj) if isinstance(obj, dt.datetime) else str(obj)
