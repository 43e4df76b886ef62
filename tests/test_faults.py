"""Refire and friends under real faults, through tests/faultproxy.py in front of moto:
signals while requests are stalled, bounded waits, lost responses raced by deletes."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.faultproxy import FaultProxy, Mix
from tests.test_refire import TABLE, count_of, modify_counts, seed

CLI = [sys.executable, "-c", "from streamq.cli.app import main; main()"]


def spawn(*args: str, cwd: Path, env: dict[str, str] | None = None) -> subprocess.Popen[str]:
    """``streamq ARGS`` in its own process (signals go to it alone)."""
    return subprocess.Popen([*CLI, *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, cwd=str(cwd), env={**os.environ, **(env or {})})


def wait_until(cond: Callable[[], bool], timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        assert time.monotonic() < deadline, "timed out waiting"
        time.sleep(0.02)


def finish(proc: subprocess.Popen[str], timeout: float) -> tuple[str, str]:
    try:
        return proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        _out, err = proc.communicate()
        raise AssertionError(f"still running after {timeout}s; stderr:\n{err}") from None


def _ids(tmp_path: Path, keys: list[str]) -> str:
    path = tmp_path / "ids.txt"
    path.write_text("\n".join(keys) + "\n")
    return str(path)


# --------------------------------------------------------------------------- signals


@pytest.mark.slow
def test_second_ctrl_c_stops_waiting_on_stalled_requests(ddb, endpoint, cli,
                                                          tmp_path) -> None:
    """Requests stalled on a silent endpoint: the first Ctrl-C waits for them, the second
    ends the run within seconds, with the summary and the resume hint (exit 130); the
    resumed run fires every record once."""
    keys = seed(ddb, endpoint, 30)
    journal = tmp_path / "run.jsonl"
    with FaultProxy(endpoint, mix=Mix(blackhole=1.0)) as proxy:
        proc = spawn("refire", "-t", TABLE, "--endpoint-url", proxy.url, "--ids-from",
                     _ids(tmp_path, keys), "--yes", "--rate", "0", "--concurrency", "4",
                     "--journal", str(journal), cwd=tmp_path)
        wait_until(lambda: proxy.inflight >= 4)
        proc.send_signal(signal.SIGINT)
        time.sleep(1.0)
        assert proc.poll() is None  # waiting for the 4 writes in flight
        start = time.monotonic()
        proc.send_signal(signal.SIGINT)
        _out, err = finish(proc, 15)
        elapsed = time.monotonic() - start
    assert proc.returncode == 130, err
    assert elapsed < 5, f"took {elapsed:.1f}s after the second Ctrl-C"
    assert "Traceback" not in err
    assert "refired 0, missing 0, skipped 0, failed 0" in err
    assert "not reached 30 (4 abandoned in flight)" in err
    assert f"--resume {journal} --yes" in err
    before = modify_counts(endpoint)
    res = cli("refire", "-t", TABLE, "--resume", str(journal), "--yes")
    assert res.code == 0, res.err
    assert modify_counts(endpoint) - before == Counter(dict.fromkeys(keys, 1))
    assert all(count_of(ddb, k) == 1 for k in keys)


@pytest.mark.slow
def test_sigterm_stops_like_ctrl_c(ddb, endpoint, cli, tmp_path) -> None:
    """SIGTERM (a supervisor, a timeout, kill): the same clean stop as Ctrl-C, with every
    outcome journaled and the summary, not a dead process with a torn journal."""
    keys = seed(ddb, endpoint, 60)
    journal = tmp_path / "run.jsonl"
    proc = spawn("refire", "-t", TABLE, "--ids-from", _ids(tmp_path, keys), "--yes",
                 "--rate", "40", "--journal", str(journal), cwd=tmp_path)
    wait_until(lambda: journal.exists() and journal.read_text().count('"outcome"') >= 5)
    proc.send_signal(signal.SIGTERM)
    _out, err = finish(proc, 20)
    assert proc.returncode == 130, err
    assert "Traceback" not in err and "not reached" in err and "--resume" in err
    res = cli("refire", "-t", TABLE, "--resume", str(journal), "--yes", "--rate", "0")
    assert res.code == 0, res.err
    assert all(count_of(ddb, k) == 1 for k in keys)
