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
from tests.test_refire import TABLE, count_of, modify_counts, seed, stream_events

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


# --------------------------------------------------------------------------- bounded waits


def test_timeouts_are_sized_for_dynamodb(monkeypatch) -> None:
    from streamq.aws import Aws
    from streamq.config import resolve

    aws = Aws(resolve({"table": TABLE}))
    writes, scans = aws.client("dynamodb").meta.config, aws.client("dynamodb", scan=True
                                                                     ).meta.config
    assert (writes.connect_timeout, writes.read_timeout) == (3.1, 10.0)
    assert (scans.connect_timeout, scans.read_timeout) == (3.1, 120.0)
    assert aws.client("lambda").meta.config.read_timeout == 10.0
    monkeypatch.setenv("STREAMQ_READ_TIMEOUT", "2.5")
    monkeypatch.setenv("STREAMQ_SCAN_TIMEOUT", "30")
    aws = Aws(resolve({"table": TABLE}))
    assert aws.client("dynamodb").meta.config.read_timeout == 2.5
    assert aws.client("dynamodb", scan=True).meta.config.read_timeout == 30.0


def test_silent_endpoint_ends_each_record_failed_by_its_deadline(ddb, endpoint, cli,
                                                                 tmp_path, monkeypatch
                                                                 ) -> None:
    """An endpoint that never answers: each record ends `failed` once its deadline has
    passed (here 2 s, with 0.5 s read timeouts), not after 8 attempts x 120 s."""
    keys = seed(ddb, endpoint, 3)
    journal = tmp_path / "run.jsonl"
    monkeypatch.setenv("STREAMQ_READ_TIMEOUT", "0.5")
    with FaultProxy(endpoint, mix=Mix(blackhole=1.0)) as proxy:
        start = time.monotonic()
        res = cli("refire", "-t", TABLE, "--endpoint-url", proxy.url,
                  *(a for k in keys for a in ("--id", k)), "--yes", "--rate", "0",
                  "--deadline", "2s", "--journal", str(journal), "-o", "jsonl")
        elapsed = time.monotonic() - start
    assert res.code == 3, res.err
    assert elapsed < 2 + 0.5 + 2.0, f"{elapsed:.1f}s"
    results = res.jsonl()
    assert {r["outcome"] for r in results} == {"failed"}
    assert all("no answer within the 2s deadline" in r["error"] for r in results)
    assert all("may have been written" in r["error"] for r in results)  # a read timeout
    assert all(count_of(ddb, k) == 0 for k in keys)
    res = cli("refire", "-t", TABLE, "--resume", str(journal), "--yes", "--rate", "0")
    assert res.code == 0, res.err
    assert all(count_of(ddb, k) == 1 for k in keys)


def _on_terminal(args: list[str], cwd: Path, env: dict[str, str] | None = None,
                 stdout_tty: bool = False, timeout: float = 60) -> tuple[int, str, str]:
    """Run streamq with stderr (and optionally stdout) on a pseudo-terminal, as a person
    at a terminal would; returns (exit code, what the terminal showed, piped stdout)."""
    import pty
    import threading

    master, slave = pty.openpty()
    env = {**os.environ, "TERM": "xterm-256color", "COLUMNS": "200", "LINES": "50",
           **(env or {})}
    env.pop("NO_COLOR", None)
    proc = subprocess.Popen([*CLI, *args], stdin=subprocess.DEVNULL,
                            stdout=slave if stdout_tty else subprocess.PIPE, stderr=slave,
                            cwd=str(cwd), env=env, text=True)
    os.close(slave)
    shown: list[bytes] = []

    def read() -> None:
        while True:
            try:
                data = os.read(master, 65536)
            except OSError:
                return
            if not data:
                return
            shown.append(data)

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    try:
        out = proc.stdout.read() if proc.stdout is not None else ""
        proc.wait(timeout=timeout)
    finally:
        if proc.poll() is None:
            proc.kill()
        reader.join(timeout=5)
        os.close(master)
    return proc.returncode, b"".join(shown).decode("utf-8", "replace"), out


@pytest.mark.slow
def test_waiting_on_the_endpoint_is_shown_on_a_terminal(ddb, endpoint, tmp_path) -> None:
    """A Scan page or a write the endpoint sits on: the terminal says so within seconds
    (the spinner of stats, a line between list's records, the refire progress bar),
    instead of minutes of silence."""
    keys = seed(ddb, endpoint, 4)
    with FaultProxy(endpoint, mix=Mix(stall=1.0, stall_seconds=5),
                    ops={"Scan", "UpdateItem"}) as proxy:
        code, shown, out = _on_terminal(["stats", "-t", TABLE, "--endpoint-url", proxy.url],
                                        tmp_path)
        assert code == 0, shown
        assert "waiting on the endpoint for" in shown and "(Scan, timeout 120s)" in shown
        code, shown, _ = _on_terminal(["list", "-t", TABLE, "--endpoint-url", proxy.url,
                                       "-o", "jsonl"], tmp_path, stdout_tty=True)
        assert code == 0, shown
        assert "streamq: waiting on the endpoint for" in shown and keys[0] in shown
        code, shown, out = _on_terminal(["refire", "-t", TABLE, "--endpoint-url", proxy.url,
                                         "--id", keys[0], "--yes"], tmp_path)
        assert code == 0, shown
        assert "waiting on the endpoint for" in shown
        assert "(UpdateItem, timeout 10s)" in shown
    assert "waiting" not in out


# --------------------------------------------------------------------------- lost answers


def test_lost_answer_then_deleted_is_unknown_not_missing(ddb, endpoint, cli) -> None:
    """The write of msg-0 happens, its answer is lost (HTTP 500), and the item is deleted
    before the retry: its MODIFY is on the stream, so `missing` would be false. msg-1's
    attempt is throttled (certainly not written), then it is deleted: `missing`."""
    keys = seed(ddb, endpoint, 2)

    def delete(req, fault) -> None:  # type: ignore[no-untyped-def]
        key = req.json()["Key"]
        ddb.delete_item(TableName=TABLE, Key=key)

    with FaultProxy(endpoint, script=["lose500", "", "throttle", ""], on_fault=delete,
                    ops={"UpdateItem"}) as proxy:
        before = len(stream_events(endpoint))
        res = cli("refire", "-t", TABLE, "--endpoint-url", proxy.url, "--id", keys[0],
                  "--id", keys[1], "--yes", "--rate", "0", "--concurrency", "1",
                  "-o", "jsonl")
    assert res.code == 3, res.err
    out = {r["key"]["id"]: r for r in res.jsonl()}
    assert out[keys[0]]["outcome"] == "unknown"
    assert "answer was lost" in out[keys[0]]["error"]
    assert out[keys[1]]["outcome"] == "missing" and out[keys[1]]["error"] is None
    events = stream_events(endpoint)[before:]
    assert events == [("MODIFY", keys[0]), ("REMOVE", keys[0]), ("REMOVE", keys[1])]
    assert ddb.scan(TableName=TABLE, Select="COUNT")["Count"] == 0  # nothing created
    assert "unknown 1" in res.err
    assert "(missing 1, failed 0, unknown 1: deleted after an attempt whose answer was " \
           "lost)" in res.err


# --------------------------------------------------------------------------- other runs


def test_another_run_on_the_table_is_warned_or_refused(ddb, endpoint, cli,
                                                        tmp_path) -> None:
    """Two runs have two tokens: a record in both is fired by each. A second run warns
    (the first is found through its lock file, not through any item in the table);
    --exclusive refuses; once the first is gone (SIGKILL), nothing is left to warn of."""
    keys = seed(ddb, endpoint, 4)
    stall_first = lambda req: "blackhole" if keys[0] in req.key else ""  # noqa: E731
    with FaultProxy(endpoint, rule=stall_first) as proxy:
        first = spawn("refire", "-t", TABLE, "--endpoint-url", proxy.url, "--id", keys[0],
                      "--yes", "--journal", str(tmp_path / "first.jsonl"), cwd=tmp_path,
                      env={"XDG_STATE_HOME": os.environ["XDG_STATE_HOME"]})
        try:
            wait_until(lambda: proxy.inflight >= 1)
            res = cli("refire", "-t", TABLE, "--endpoint-url", proxy.url, "--id", keys[1],
                      "--yes", "--exclusive")
            assert res.code == 5, res.err
            assert "another streamq refire on table 'outbox' is running on this machine" \
                in res.err
            assert f"pid {first.pid}" in res.err and "first.jsonl" in res.err
            assert count_of(ddb, keys[1]) == 0
            before = modify_counts(endpoint)
            res = cli("refire", "-t", TABLE, "--endpoint-url", proxy.url, "--id", keys[1],
                      "--yes")
            assert res.code == 0, res.err
            assert "warning: another streamq refire on table 'outbox'" in res.err
            assert "--exclusive refuses instead" in res.err
            assert modify_counts(endpoint) - before == Counter({keys[1]: 1})
        finally:
            first.kill()
            first.communicate()
        assert ddb.scan(TableName=TABLE, Select="COUNT")["Count"] == 4  # no lock item
        res = cli("refire", "-t", TABLE, "--endpoint-url", proxy.url, "--id", keys[2],
                  "--yes", "--exclusive")
    assert res.code == 0, res.err
    assert "another streamq refire" not in res.err
    runs = Path(os.environ["XDG_STATE_HOME"]) / "streamq" / "refire-runs"
    assert list(runs.iterdir()) == []  # the killed run's file was cleaned up
