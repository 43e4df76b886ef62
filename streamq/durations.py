"""Durations as people type them: ``90``, ``90s``, ``5m``, ``1h30m``, ``2d``."""

from __future__ import annotations

import re

from .errors import BadInput

_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, "w": 604800.0}
_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h|d|w)")


def parse_duration(text: str, *, what: str = "duration") -> float:
    """Return seconds. A bare number means seconds. Raise BadInput on anything else."""
    s = str(text).strip().lower()
    if not s:
        raise BadInput(f"empty {what}: use a number of seconds or e.g. 90s, 5m, 1h30m, 2d")
    try:
        value = float(s)
    except ValueError:
        pos, total = 0, 0.0
        for m in _PART.finditer(s):
            if m.start() != pos:
                break
            total += float(m.group(1)) * _UNITS[m.group(2)]
            pos = m.end()
        if pos != len(s) or pos == 0:
            raise BadInput(
                f"invalid {what} {text!r}: use a number of seconds or e.g. 90s, 5m, 1h30m, 2d"
            ) from None
        return total
    if value < 0 or value != value or value in (float("inf"),):
        raise BadInput(f"invalid {what} {text!r}: must be a finite number >= 0")
    return value


def humanize(seconds: float | None) -> str:
    """``42s``, ``7m``, ``3h12m``, ``2d4h``; ``?`` when unknown."""
    if seconds is None:
        return "?"
    s = int(max(seconds, 0))
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m"
    if s < 86400:
        h, m = divmod(s // 60, 60)
        return f"{h}h{m:02d}m" if m else f"{h}h"
    d, h = divmod(s // 3600, 24)
    return f"{d}d{h}h" if h else f"{d}d"


def exact_duration(seconds: float) -> str:
    """A duration as the flags take it, without rounding (:func:`parse_duration` reads it
    back to the same value): ``1h``, ``5m``, ``90s``, ``1.5s``."""
    if seconds == int(seconds):
        s = int(seconds)
        for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
            if s >= size and s % size == 0:
                return f"{s // size}{unit}"
        return f"{s}s"
    return f"{seconds:g}s"
