"""The refire journal file: JSON lines, written so that any kill leaves a readable file.

Layout (version 2)::

    {"journal": "streamq-refire-journal", "version": 2, "run": ..., "table": ...,
     "planned": N, "digest": "sha256:...", ...}          # the header
    {"planned": {...key...}, "cond": ...}                  # N planned lines
    {"key": {...}, "outcome": "refired", ...}              # then outcomes and markers,
    {"resumed": "...", "pid": 123}                          # one line each, appended

* The header records how many records are planned and a digest of the planned lines, so
  a journal cut short while it was being created (a kill during a large ``--ids-from``)
  is refused, never resumed as a smaller selection. The planned lines are all written,
  flushed and fsynced before the first write to the table.
* Every later line is written whole, then flushed and fsynced. A kill in the middle of a
  write leaves a torn last line: it is ignored when read, and cut off before anything is
  appended (so a resumed run never glues its first line onto a fragment).
* Files are created 0600 (they hold record keys), a directory streamq creates 0700.
* While a run writes a journal it holds an exclusive lock on it (``flock``): a second
  run on the same journal is refused instead of interleaving lines.

This module knows the file format only; what the lines mean is ``refire``'s business.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import threading
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from .errors import BadInput, NotFound, Refused
from .files import open_private, private_dir

try:  # POSIX; elsewhere journals simply are not locked
    import fcntl
except ImportError:  # pragma: no cover
    fcntl = None  # type: ignore[assignment]

FORMAT = "streamq-refire-journal"
VERSION = 2
#: A longer line is not one of ours (a key is at most 2 KB + 1 KB; a line holds one key).
MAX_LINE = 1 << 20


class JournalExists(BadInput):
    """``--journal FILE`` names a file that exists (never overwritten)."""


def dumps(doc: dict[str, Any]) -> str:
    return json.dumps(doc, ensure_ascii=False, separators=(",", ":"), default=_b64)


def _b64(value: Any) -> Any:
    import base64

    if isinstance(value, (bytes, bytearray)):
        return base64.b64encode(bytes(value)).decode()
    raise TypeError(f"not JSON serializable: {type(value).__name__}")


def digest(lines: Iterable[str]) -> str:
    """The digest of the planned lines, as written (without their newlines)."""
    h = hashlib.sha256()
    for line in lines:
        h.update(line.encode("utf-8"))
        h.update(b"\n")
    return "sha256:" + h.hexdigest()


def _lock(fh: IO[Any], path: Path) -> None:
    if fcntl is None:  # pragma: no cover
        return
    try:
        fcntl.flock(fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        fh.close()
        raise Refused(f"journal {path} is in use by another streamq refire running on this "
                      "machine: wait for it to end (or stop it), then resume") from None
    except OSError:  # e.g. a file system without locks: go on unlocked
        pass


@dataclass
class Contents:
    """A journal as read: the header, the planned lines and the later lines (outcomes,
    markers); where its last complete line ends, and whether the tail is torn."""

    path: Path
    header: dict[str, Any]
    planned: list[dict[str, Any]] = field(default_factory=list)
    events: list[dict[str, Any]] = field(default_factory=list)
    size: int = 0  # bytes read
    good_end: int = 0  # offset just after the last complete line
    torn: bool = False  # the last line is a fragment (ignored; cut off on append)
    needs_newline: bool = False  # the last line is whole but lacks its newline


def _incomplete(path: Path, why: str) -> BadInput:
    return BadInput(
        f"journal {path} is incomplete ({why}): the run that created it was stopped while "
        "writing it, before its first write to the table, so nothing was refired by it; "
        "remove the file and start the run again")


def read(path: Path) -> Contents:
    """Read and check a journal (NotFound if absent, BadInput if it is not a whole one)."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise NotFound(f"journal {path} not found") from None
    except IsADirectoryError:
        raise BadInput(f"journal {path} is a directory") from None
    except OSError as exc:
        raise BadInput(f"cannot read journal {path}: {exc.strerror}") from None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise BadInput(f"cannot read journal {path}: not UTF-8 ({exc.reason} at byte "
                       f"{exc.start})") from None
    raw = text.split("\n")
    # raw[-1] is what follows the last newline: "" for a file that ends with one.
    c = Contents(path=path, header={}, size=len(data))
    entries: list[tuple[str, dict[str, Any]]] = []  # (line as written, its document)
    offset = 0
    for n, line in enumerate(raw[:-1], 1):
        offset += len(line.encode("utf-8")) + 1
        if line.strip():
            entries.append((line, _parse(line, path, n)))
    c.good_end = offset
    tail = raw[-1]
    if tail.strip():
        try:
            doc = _loads(tail)
        except ValueError:
            doc = None
        if isinstance(doc, dict):
            c.needs_newline = True  # killed between the line and its newline
            c.good_end = len(data)
            entries.append((tail, doc))
        else:
            c.torn = True  # killed mid-line: ignored, cut off before anything is appended
    elif tail:
        c.good_end = len(data)  # trailing blanks: harmless
    if not entries:
        if c.torn:
            raise _incomplete(path, "its header is torn")
        raise BadInput(f"{path} is not a streamq refire journal (it is empty)")
    head = entries[0][1]
    if head.get("journal") != FORMAT or not isinstance(head.get("run"), str) or not head["run"]:
        raise BadInput(f"{path} is not a streamq refire journal")
    version = head.get("version")
    if version not in (1, 2):
        raise BadInput(f"journal {path} has version {version!r}; this streamq reads 1 and 2")
    c.header = head
    rest = entries[1:]
    if version == 1:  # no planned count: at least refuse a journal that plans nothing
        c.planned = [d for _, d in rest if "planned" in d]
        c.events = [d for _, d in rest if "planned" not in d]
        if not c.planned:
            raise _incomplete(path, "it holds a header and no planned record")
        return c
    expected = head.get("planned")
    if not isinstance(expected, int) or isinstance(expected, bool) or expected < 1:
        raise BadInput(f"journal {path}: invalid planned count {expected!r} in its header")
    held = 0
    while held < min(expected, len(rest)) and "planned" in rest[held][1]:
        held += 1
    if held < expected:
        raise _incomplete(path, f"it plans {expected} record(s) but holds {held}")
    if head.get("digest") != digest(line for line, _ in rest[:expected]):
        raise BadInput(f"journal {path}: its planned records do not match the digest in its "
                       "header (the file was edited or damaged); start a new run")
    c.planned = [d for _, d in rest[:expected]]
    c.events = [d for _, d in rest[expected:]]
    if any("planned" in d for d in c.events):
        raise BadInput(f"journal {path}: more planned records than its header says "
                       f"({expected}); start a new run")
    return c


def _loads(line: str) -> Any:
    from .inputs import MAX_DEPTH, nesting

    if len(line) > MAX_LINE:
        raise _Limit(f"longer than {MAX_LINE} characters")
    # Bounded before parsing: a key nested 900 deep parses, then breaks what reads it.
    if nesting(line, stop_above=MAX_DEPTH) > MAX_DEPTH:
        raise _Limit(f"JSON nested deeper than {MAX_DEPTH} levels")
    try:
        return json.loads(line)
    except RecursionError:
        raise _Limit("JSON nested too deeply") from None


class _Limit(ValueError):
    """A line past streamq's bounds (not a torn or damaged one)."""


def _parse(line: str, path: Path, n: int) -> dict[str, Any]:
    try:
        doc = _loads(line)
    except _Limit as exc:
        raise BadInput(f"journal {path}: line {n} is {exc}; start a new run") from None
    except ValueError:
        raise BadInput(f"journal {path}: line {n} is not JSON (the file was damaged in the "
                       "middle, not at its end); start a new run") from None
    if not isinstance(doc, dict):
        raise BadInput(f"journal {path}: line {n} is not a JSON object")
    return doc


class JournalFile:
    """An open journal, written one whole line at a time (flushed and fsynced)."""

    def __init__(self, fh: IO[str], path: Path) -> None:
        self.fh = fh
        self.path = path
        self._lock = threading.Lock()

    @classmethod
    def create(cls, path: Path, header: dict[str, Any],
               planned: Iterable[dict[str, Any]]) -> JournalFile:
        """A new journal (BadInput if the file exists): the header with the planned count
        and digest, then every planned line, fsynced before this returns."""
        lines = [dumps(doc) for doc in planned]
        head = {"journal": FORMAT, "version": VERSION, **header, "planned": len(lines),
                "digest": digest(lines)}
        try:
            private_dir(path.parent)
            fh = open_private(path, "x")
        except FileExistsError:
            raise JournalExists(f"journal {path} already exists: resume it with --resume "
                                f"{path}, or choose another file") from None
        except OSError as exc:
            raise BadInput(f"cannot create journal {path}: {exc.strerror}") from None
        _lock(fh, path)
        j = cls(fh, path)
        j._write_line(dumps(head), sync=False)
        for line in lines:
            j._write_line(line, sync=False)
        j._sync()
        return j

    @classmethod
    def append(cls, contents: Contents, marker: dict[str, Any]) -> JournalFile:
        """Continue a journal read by :func:`read`: cut off a torn last line (or add the
        missing newline) first, then append ``marker``."""
        path = contents.path
        try:
            fh = path.open("r+", encoding="utf-8", newline="\n")
        except OSError as exc:
            raise BadInput(f"cannot append to journal {path}: {exc.strerror}") from None
        _lock(fh, path)
        size = os.fstat(fh.fileno()).st_size
        if size != contents.size:
            fh.close()
            raise BadInput(f"journal {path} changed since it was read: is another refire "
                           "using it? Try again")
        if contents.torn or contents.needs_newline:
            fh.truncate(contents.good_end)
        fh.seek(contents.good_end)
        j = cls(fh, path)
        if contents.needs_newline:
            j.fh.write("\n")
        j.write(marker)
        return j

    def write(self, doc: dict[str, Any]) -> None:
        self._write_line(dumps(doc))

    def _write_line(self, line: str, sync: bool = True) -> None:
        with self._lock:
            self.fh.write(line + "\n")
            if sync:
                self._sync_locked()

    def _sync(self) -> None:
        with self._lock:
            self._sync_locked()

    def _sync_locked(self) -> None:
        self.fh.flush()
        with contextlib.suppress(OSError):  # e.g. a pipe
            os.fsync(self.fh.fileno())

    def close(self) -> None:
        with self._lock:
            if not self.fh.closed:
                self.fh.flush()
                self.fh.close()
