"""Reading what users and files give streamq, bounded in size and nesting depth.

Every input path (``--id``, ``--ids-from`` files and stdin, journals, ``--from-file``,
streamq.toml, filter patterns) goes through these, so hostile or broken input ends in
one :class:`~streamq.errors.BadInput` line (exit 2), never a ``RecursionError``, a
``UnicodeDecodeError`` or an unbounded read.

Limits and why:

* JSON nesting: :data:`MAX_DEPTH` levels. A DynamoDB item nests at most 32 levels
  (DynamoDB Developer Guide, "Service, account, and table quotas": "DynamoDB supports
  nested attributes up to 32 levels deep"), so a key, a ``list -o jsonl`` record or a
  journal line never needs more; Python's JSON decoder recurses once per level and fails
  at about 1000 (less on a deeper stack).
* One JSON line (a key, a jsonl record, a journal line): :data:`MAX_LINE_CHARS`. An
  item is at most 400 KB; as JSON with every byte escaped it stays under 4 MiB.
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path
from typing import Any, Final

from .errors import BadInput

MAX_DEPTH: Final = 64
MAX_LINE_CHARS: Final = 4 * 1024 * 1024
MiB: Final = 1024 * 1024

# A string (closed, or running to the end of the text) or a bracket: one pass, linear.
_TOKEN = re.compile(r'"(?:[^"\\]|\\.)*"?|[\[\]{}]', re.DOTALL)


class NotJson(BadInput, ValueError):
    """Text that is not valid JSON (a ValueError too, as ``json.loads`` raises)."""


def clip(text: str, limit: int = 80) -> str:
    """``repr`` of ``text``, shortened in the middle for a one-line message."""
    r = repr(text)
    return r if len(r) <= limit else r[: limit // 2 - 2] + "..." + r[-(limit // 2 - 2):]


def nesting(text: str, *, stop_above: int | None = None) -> int:
    """How deep the arrays and objects in JSON ``text`` nest (brackets inside strings do
    not count). For text a JSON parser accepts, at least as deep as the parser recurses
    before it fails or finishes. Stops counting once past ``stop_above``."""
    if text.count("[") + text.count("{") <= (stop_above or 0):
        return text.count("[") + text.count("{")  # cannot be deeper than this
    depth = deepest = 0
    for m in _TOKEN.finditer(text):
        ch = text[m.start()]
        if ch in "[{":
            depth += 1
            if depth > deepest:
                deepest = depth
                if stop_above is not None and deepest > stop_above:
                    break
        elif ch in "]}":
            depth -= 1
    return deepest


def loads(text: str, *, what: str, max_depth: int = MAX_DEPTH,
          max_chars: int = MAX_LINE_CHARS, **kwargs: Any) -> Any:
    """``json.loads`` with bounds. Too long or too deep: :class:`BadInput`; not JSON:
    :class:`NotJson` (a BadInput and a ValueError). ``what`` starts each message."""
    if len(text) > max_chars:
        raise BadInput(f"{what}: {len(text)} characters, more than the {max_chars} streamq "
                       "reads")
    if nesting(text, stop_above=max_depth) > max_depth:
        raise BadInput(f"{what}: JSON nested deeper than {max_depth} levels")
    try:
        return json.loads(text, **kwargs)
    except RecursionError:  # pragma: no cover - the depth check comes first
        raise BadInput(f"{what}: JSON nested too deeply") from None
    except ValueError as exc:
        if isinstance(exc, BadInput):
            raise
        raise NotJson(f"{what}: not valid JSON: {exc}") from None


def decode_utf8(data: bytes, what: str) -> str:
    """Strict UTF-8 (a leading BOM dropped); :class:`BadInput` naming the first bad byte."""
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise BadInput(f"{what}: not UTF-8 text (byte 0x{data[exc.start]:02x} at offset "
                       f"{exc.start})") from None


def read_input(source: str | Path, *, what: str, max_bytes: int) -> str:
    """The whole text of a file, or of standard input for ``-``: UTF-8 checked the same
    way for both, at most ``max_bytes``."""
    limit = f"{what}: more than {max_bytes // MiB} MiB; streamq reads at most that"
    if str(source) == "-":
        stream = sys.stdin
        if stream is None:
            raise BadInput(f"{what}: no standard input")
        buffer = getattr(stream, "buffer", None)
        if buffer is None:  # a text stream without bytes underneath (embedding, tests)
            text = stream.read(max_bytes + 1)
            if len(text.encode("utf-8", "surrogatepass")) > max_bytes:
                raise BadInput(limit)
            try:
                text.encode("utf-8")
            except UnicodeEncodeError as exc:
                raise BadInput(f"{what}: not UTF-8 text (character {exc.start})") from None
            return text.removeprefix("\ufeff")
        data = buffer.read(max_bytes + 1)
    else:
        try:
            with open(source, "rb") as fh:
                data = fh.read(max_bytes + 1)
        except FileNotFoundError:
            raise BadInput(f"{what}: no such file") from None
        except IsADirectoryError:
            raise BadInput(f"{what}: is a directory") from None
        except OSError as exc:
            raise BadInput(f"{what}: cannot read: {exc.strerror or exc}") from None
    if len(data) > max_bytes:
        raise BadInput(limit)
    return decode_utf8(data, what)
