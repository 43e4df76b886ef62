"""Files that hold user data (record keys, ARNs, logs): private to the user.

Files are created 0600 and directories 0700, whatever the umask; a file or a
directory of ours that already exists with wider permissions is narrowed when it is
written again. Writes that replace a file go through a temporary file and a rename,
so a reader never sees half of one.

Use these for every file streamq writes that holds user data: refire journals,
config-trigger backups, the sandbox's state, status and logs.
"""

from __future__ import annotations

import contextlib
import os
import stat
from pathlib import Path
from typing import IO, Any

FILE_MODE = 0o600
DIR_MODE = 0o700


def private_dir(path: str | os.PathLike[str]) -> Path:
    """Create ``path`` (and missing parents) as 0700 directories; narrow ``path`` itself to
    0700 when it exists with wider permissions and belongs to this user. Returns it."""
    path = Path(path)
    missing: list[Path] = []
    here = path
    while not here.exists() and here != here.parent:
        missing.append(here)
        here = here.parent
    for d in reversed(missing):
        with contextlib.suppress(FileExistsError):  # created meanwhile by another process
            d.mkdir(mode=DIR_MODE)
        _narrow(d, DIR_MODE)
    _narrow(path, DIR_MODE)
    return path


def _narrow(path: Path, mode: int) -> None:
    """chmod ``path`` to ``mode`` if it is ours and allows more (the umask may have widened
    nothing, but an older streamq, or a copy, may have)."""
    try:
        st = path.stat()
    except OSError:
        return
    if st.st_uid == os.getuid() and stat.S_IMODE(st.st_mode) & ~mode:
        with contextlib.suppress(OSError):
            path.chmod(mode)


def open_private(path: str | os.PathLike[str], mode: str = "a", *,
                 encoding: str | None = "utf-8") -> IO[Any]:
    """Open ``path`` for writing as a 0600 file: ``mode`` is ``"w"``, ``"a"`` or ``"x"``
    (exclusive create: FileExistsError if it exists), text unless it ends in ``"b"``.
    An existing file of ours is narrowed to 0600."""
    base = mode.replace("b", "")
    flags = {"w": os.O_WRONLY | os.O_CREAT | os.O_TRUNC,
             "a": os.O_WRONLY | os.O_CREAT | os.O_APPEND,
             "x": os.O_WRONLY | os.O_CREAT | os.O_EXCL}.get(base)
    if flags is None:
        raise ValueError(f"open_private: mode {mode!r} is not w, a or x (text or binary)")
    fd = os.open(os.fspath(path), flags | getattr(os, "O_CLOEXEC", 0), FILE_MODE)
    try:
        st = os.fstat(fd)
        if st.st_uid == os.getuid() and stat.S_IMODE(st.st_mode) & ~FILE_MODE:
            os.fchmod(fd, FILE_MODE)
        if "b" in mode:
            return os.fdopen(fd, base + "b")
        return os.fdopen(fd, base, encoding=encoding)
    except BaseException:
        os.close(fd)
        raise


def write_private(path: str | os.PathLike[str], text: str | bytes, *,
                  fsync: bool = False) -> Path:
    """Replace ``path`` with ``text`` as a 0600 file, whole or not at all (a temporary
    file in the same directory, then a rename). Its directory must exist."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with open_private(tmp, "wb" if isinstance(text, bytes) else "w") as fh:
            fh.write(text)
            if fsync:
                fh.flush()
                os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise
    return path
