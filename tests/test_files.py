"""Files holding user data are 0600, their directories 0700, whatever the umask."""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

from streamq.files import open_private, private_dir, write_private


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.fixture()
def open_umask() -> Iterator[None]:
    """umask 0: without the helper every file would be 0666 and every directory 0777."""
    old = os.umask(0)
    try:
        yield
    finally:
        os.umask(old)


def test_private_dir_creates_every_missing_level_0700(tmp_path: Path, open_umask: None) -> None:
    target = private_dir(tmp_path / "a" / "b" / "c")
    assert target.is_dir()
    for d in (tmp_path / "a", tmp_path / "a" / "b", target):
        assert mode(d) == 0o700, d


def test_private_dir_narrows_an_existing_wide_directory(tmp_path: Path) -> None:
    d = tmp_path / "old"
    d.mkdir()
    d.chmod(0o755)
    private_dir(d)
    assert mode(d) == 0o700


def test_write_private_is_0600_and_replaces_whole(tmp_path: Path, open_umask: None) -> None:
    p = tmp_path / "state.json"
    p.write_text("old")
    p.chmod(0o644)
    write_private(p, "new")
    assert p.read_text() == "new" and mode(p) == 0o600
    write_private(tmp_path / "bin", b"\x00\x01")
    assert (tmp_path / "bin").read_bytes() == b"\x00\x01" and mode(tmp_path / "bin") == 0o600
    assert sorted(x.name for x in tmp_path.iterdir()) == ["bin", "state.json"]  # no temp left


@pytest.mark.parametrize("how", ["a", "ab", "w", "x"])
def test_open_private_creates_0600(tmp_path: Path, open_umask: None, how: str) -> None:
    p = tmp_path / "log"
    with open_private(p, how) as fh:
        fh.write(b"x" if "b" in how else "x")
    assert p.read_text() == "x" and mode(p) == 0o600


def test_open_private_append_narrows_and_keeps(tmp_path: Path) -> None:
    p = tmp_path / "journal.jsonl"
    p.write_text("one\n")
    p.chmod(0o644)
    with open_private(p, "a") as fh:
        fh.write("two\n")
    assert p.read_text() == "one\ntwo\n" and mode(p) == 0o600
    with pytest.raises(FileExistsError):
        open_private(p, "x")


def test_config_trigger_backup_is_private(cli, endpoint: str, ddb, tmp_path: Path,  # type: ignore[no-untyped-def]
                                          open_umask: None) -> None:
    from tests.helpers import create_table, create_trigger

    create_table(ddb, "outbox")
    create_trigger(endpoint, "outbox", function="mail-sender")
    res = cli("config-trigger", "--table", "outbox", "--batch-size", "7", "--yes")
    assert res.code == 0, res.err
    state = tmp_path / "state"
    (backup,) = (state / "streamq" / "backups").glob("*.json")
    assert mode(backup) == 0o600
    for d in (state, state / "streamq", state / "streamq" / "backups"):
        assert mode(d) == 0o700, d
