"""The refire journal under kills: torn tails, journals cut short while being created,
header-only journals, file modes, and two runs on one journal."""

from __future__ import annotations

import json
import os
import stat
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from streamq.refire import Journal, Target, new_run_token
from tests.test_refire import TABLE, count_of, lib, modify_counts, seed


def _journal(endpoint: str, path: Path, keys: list[str]) -> str:
    """A journal planning ``keys`` (as a run creates it), no outcome yet; its token."""
    _aws, info, _settings = lib(endpoint)
    run = new_run_token()
    Journal.create(path, run=run, info=info, targets=[Target(key={"id": {"S": k}})
                                                      for k in keys],
                   only_if="any").close()
    return run


def _lines(path: Path) -> list[Any]:
    return [json.loads(x) for x in path.read_text().splitlines() if x.strip()]


def test_torn_tail_is_cut_off_not_appended_onto(ddb, endpoint, cli, tmp_path) -> None:
    """Killed while writing an outcome: the fragment is ignored, and cut off before the
    resumed run appends (appending onto it made the journal unreadable from then on)."""
    keys = seed(ddb, endpoint, 5)
    path = tmp_path / "run.jsonl"
    run = _journal(endpoint, path, keys)
    with path.open("a") as fh:  # one outcome written, the next torn
        fh.write(json.dumps({"key": {"id": keys[0]}, "outcome": "missing"}) + "\n")
        fh.write('{"key":{"id":"')
    before = modify_counts(endpoint)
    res = cli("refire", "-t", TABLE, "--resume", str(path), "--yes", "-o", "jsonl")
    assert res.code == 0, res.err
    assert {r["key"]["id"] for r in res.jsonl()} == set(keys[1:])
    assert modify_counts(endpoint) - before == Counter(dict.fromkeys(keys[1:], 1))
    docs = _lines(path)  # every line whole: the fragment is gone, nothing glued onto it
    assert docs[0]["run"] == run and sum(1 for d in docs if "resumed" in d) == 1
    assert {d["key"]["id"] for d in docs if d.get("outcome") == "refired"} == set(keys[1:])
    # A whole last line without its newline (killed between the two) is kept.
    text = path.read_text()
    path.write_text(text.rstrip("\n"))
    res = cli("refire", "-t", TABLE, "--resume", str(path), "--yes")
    assert res.code == 0 and "nothing to refire (5 already done)" in res.err, res.err
    assert len(_lines(path)) == len(docs)


@pytest.mark.parametrize("keep", [0, 1, 37, 59])
def test_journal_cut_short_while_created_is_refused(ddb, endpoint, cli, tmp_path,
                                                     keep) -> None:
    """A kill while a large selection is being journaled leaves its first lines only:
    resuming it would refire a silently smaller selection."""
    keys = seed(ddb, endpoint, 60)
    path = tmp_path / "run.jsonl"
    _journal(endpoint, path, keys)
    lines = path.read_text().splitlines(keepends=True)
    assert len(lines) == 61
    path.write_text("".join(lines[:1 + keep]) + lines[1 + keep][:7])  # torn mid-line too
    res = cli("refire", "-t", TABLE, "--resume", str(path), "--yes")
    assert res.code == 2, res.err
    assert "incomplete" in res.err and "start the run again" in res.err
    assert f"plans 60 record(s) but holds {keep}" in res.err
    assert all(count_of(ddb, k) == 0 for k in keys)


def test_header_only_journal_is_not_nothing_to_do(ddb, endpoint, cli, tmp_path) -> None:
    keys = seed(ddb, endpoint, 3)
    path = tmp_path / "run.jsonl"
    _journal(endpoint, path, keys)
    path.write_text(path.read_text().splitlines(keepends=True)[0])
    res = cli("refire", "-t", TABLE, "--resume", str(path), "--yes")
    assert res.code == 2, res.err
    assert "incomplete" in res.err and "nothing to refire" not in res.err
    path.write_text(path.read_text()[:20])  # even the header torn
    res = cli("refire", "-t", TABLE, "--resume", str(path), "--yes")
    assert res.code == 2 and "incomplete" in res.err, res.err
    # An edited plan (a key swapped) no longer matches the header's digest.
    _journal(endpoint, tmp_path / "edited.jsonl", keys)
    edited = tmp_path / "edited.jsonl"
    edited.write_text(edited.read_text().replace(keys[1], keys[2]))
    res = cli("refire", "-t", TABLE, "--resume", str(edited), "--yes")
    assert res.code == 2 and "digest" in res.err, res.err
    assert all(count_of(ddb, k) == 0 for k in keys)


def test_journal_is_private(ddb, endpoint, cli, tmp_path) -> None:
    keys = seed(ddb, endpoint, 2)
    old = os.umask(0o022)
    try:
        path = tmp_path / "new" / "dir" / "run.jsonl"
        res = cli("refire", "-t", TABLE, "--id", keys[0], "--yes", "--journal", str(path))
    finally:
        os.umask(old)
    assert res.code == 0, res.err
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    assert stat.S_IMODE((tmp_path / "new").stat().st_mode) == 0o700


def test_a_journal_in_use_is_refused(ddb, endpoint, cli, tmp_path) -> None:
    import fcntl

    keys = seed(ddb, endpoint, 3)
    path = tmp_path / "run.jsonl"
    _journal(endpoint, path, keys)
    with path.open("r") as fh:  # another run holds it
        fcntl.flock(fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        res = cli("refire", "-t", TABLE, "--resume", str(path), "--yes")
    assert res.code == 5, res.err
    assert "in use by another streamq refire" in res.err
    assert all(count_of(ddb, k) == 0 for k in keys)
    res = cli("refire", "-t", TABLE, "--resume", str(path), "--yes")  # released: fine
    assert res.code == 0, res.err
