"""Which refires are running on this machine, per table: lock files in the state dir.

A refire fires each record at most once per run (its run token; ``--resume`` keeps the
token). Two separate runs have separate tokens, so a record in both selections is fired
once by each. To say so before it happens, every run holds a lock file while it writes::

    $XDG_STATE_HOME/streamq/refire-runs/<table id>.<pid>.lock   (0600, in a 0700 dir)

holding an exclusive ``flock`` and a JSON description of the run. A run looks at the
other files of its table: a file whose lock it can take belongs to a process that is
gone (killed, even by SIGKILL: the kernel drops the lock) and is removed; the others
are runs in progress. The table id is a digest of the endpoint, region and table name.

Never a lock item in the outbox table: every write there reaches the trigger.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from .config import user_state_dir
from .files import open_private, private_dir

try:  # POSIX; elsewhere runs are not tracked
    import fcntl
except ImportError:  # pragma: no cover
    fcntl = None  # type: ignore[assignment]


def runs_dir() -> Path:
    return user_state_dir() / "refire-runs"


def table_id(table: str, region: str | None, endpoint: str | None) -> str:
    text = json.dumps([endpoint or "aws", region or "", table])
    return hashlib.sha256(text.encode()).hexdigest()[:20]


@dataclass
class RunLock:
    """This run's lock file (held until :meth:`release`) and the other runs found."""

    path: Path | None
    others: list[dict[str, Any]] = field(default_factory=list)
    _fh: IO[str] | None = None

    def release(self) -> None:
        if self._fh is not None:
            if self.path is not None:
                with contextlib.suppress(OSError):
                    self.path.unlink()
            self._fh.close()
            self._fh = None

    def __enter__(self) -> RunLock:
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


def running(ident: str, *, exclude: Path | None = None) -> list[dict[str, Any]]:
    """The other refires on this table that are running on this machine (what their
    lock files say); stale files of processes that are gone are removed."""
    if fcntl is None:  # pragma: no cover
        return []
    out: list[dict[str, Any]] = []
    try:
        paths = sorted(runs_dir().glob(f"{ident}.*.lock"))
    except OSError:
        return []
    for path in paths:
        if exclude is not None and path == exclude:
            continue
        try:
            fh = path.open("r", encoding="utf-8")
        except OSError:
            continue
        with fh:
            try:
                fcntl.flock(fh.fileno(), fcntl.LOCK_SH | fcntl.LOCK_NB)
            except BlockingIOError:  # held: a run in progress
                try:
                    doc = json.loads(fh.read() or "{}")
                except ValueError:
                    doc = {}
                out.append(doc if isinstance(doc, dict) else {})
                continue
            except OSError:
                continue
            with contextlib.suppress(OSError):  # nobody holds it: its process is gone
                path.unlink()
    return out


def acquire(ident: str, about: dict[str, Any]) -> RunLock:
    """Take this run's lock file (``about`` describes the run to others) and list the
    other runs on the same table. Never fails the run: without a usable state dir the
    lock is simply not taken (``path`` None)."""
    if fcntl is None:  # pragma: no cover
        return RunLock(None)
    pid = os.getpid()
    final = runs_dir() / f"{ident}.{pid}.lock"
    tmp = runs_dir() / f".{ident}.{pid}.tmp"
    try:
        private_dir(runs_dir())
        fh = open_private(tmp, "w")
        fcntl.flock(fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        fh.write(json.dumps({**about, "pid": pid, "since": time.time()}))
        fh.flush()
        os.replace(tmp, final)  # appears already locked: never taken for a stale file
    except OSError:
        return RunLock(None, running(ident))
    return RunLock(final, running(ident, exclude=final), fh)


def describe(doc: dict[str, Any]) -> str:
    """One run as a warning shows it."""
    parts = [f"pid {doc.get('pid', '?')}"]
    since = doc.get("since")
    if isinstance(since, (int, float)):
        parts.append("started " + time.strftime("%H:%M:%S", time.localtime(since)))
    if doc.get("records") is not None:
        parts.append(f"{doc['records']} record(s)")
    if doc.get("run"):
        parts.append(f"run {doc['run']}")
    if doc.get("journal"):
        parts.append(f"journal {doc['journal']}")
    return ", ".join(parts)
