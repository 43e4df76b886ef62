"""``refire --due --every``: rounds until stopped, against moto's server over HTTP; the
signals are real (a subprocess, SIGTERM and SIGINT)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from tests.helpers import assert_schema, batch_put, create_table, create_trigger
from tests.test_due import TABLE, failed
from tests.test_refire import count_of

ROOT = Path(__file__).resolve().parents[1]
#: a refired record waits an hour: a second round finds nothing due
POLICY = ("--backoff", "base=1h,jitter=0", "--max-attempts", "3")


def seed_due(ddb: Any, endpoint: str, n: int) -> list[str]:
    create_table(ddb, TABLE)
    keys = [f"k{i:03d}" for i in range(n)]
    # due: attempted 2 h ago; plus a dead one and a waiting one that no round touches
    batch_put(ddb, TABLE, [failed(k, 1, 7200) for k in keys]
              + [failed("dead", 3, 7200), failed("waiting", 2, 60)])
    create_trigger(endpoint, TABLE)
    return keys


class Scheduler:
    """``streamq refire --due --every ...`` in a subprocess; its stdout lines collected."""

    def __init__(self, endpoint: str, *args: str) -> None:
        env = {**os.environ, "AWS_ENDPOINT_URL": endpoint}
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "streamq.cli", "refire", "-t", TABLE, *POLICY, "--due",
             "--yes", "-o", "jsonl", *args],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, cwd=ROOT)
        self.lines: list[dict[str, Any]] = []
        self.err: list[str] = []
        self._readers = [threading.Thread(target=self._read, daemon=True),
                         threading.Thread(target=self._read_err, daemon=True)]
        for t in self._readers:
            t.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.append(json.loads(line))

    def _read_err(self) -> None:
        assert self.proc.stderr is not None
        self.err.extend(self.proc.stderr)

    def wait_rounds(self, n: int, timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        while len(self.lines) < n:
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.proc.kill()
                self.proc.wait()
                raise AssertionError(f"{len(self.lines)} round(s) seen; stderr: "
                                     f"{''.join(self.err)}")
            time.sleep(0.05)

    def stop(self, sig: int, timeout: float = 20) -> tuple[int, str, float]:
        started = time.monotonic()
        self.proc.send_signal(sig)
        try:
            self.proc.wait(timeout=timeout)
        finally:
            if self.proc.poll() is None:
                self.proc.kill()
                self.proc.wait()
        took = time.monotonic() - started
        for t in self._readers:
            t.join(timeout=5)
        return self.proc.returncode, "".join(self.err), took


def test_rounds_until_sigterm_exit_0(ddb, endpoint, tmp_path) -> None:
    keys = seed_due(ddb, endpoint, 5)
    rounds_dir = tmp_path / "rounds"
    sched = Scheduler(endpoint, "--every", "1s", "--rate", "0", "--journal", str(rounds_dir))
    sched.wait_rounds(3)
    code, err, took = sched.stop(signal.SIGTERM)
    assert code == 0, err
    assert took < 5 and "Traceback" not in err
    assert "stopped after" in err and "(SIGTERM)" in err
    first, *later = sched.lines
    for line in sched.lines:
        assert_schema("refire-round", line)
    assert first["round"] == 1 and first["due"] == 5 and first["refired"] == 5
    assert (first["waiting"], first["dead"]) == (1, 1)  # never the dead one
    assert all(r["due"] == 0 and r["journal"] is None for r in later)  # refired: waiting now
    assert [r["round"] for r in sched.lines] == list(range(1, len(sched.lines) + 1))
    # one journal per round that fired, named by its run token
    (journal,) = sorted(rounds_dir.iterdir())
    assert journal.name == first["run"] + ".jsonl" and str(journal) == first["journal"]
    assert journal.read_text().count('"outcome":"refired"') == 5
    # one summary line per round on stderr
    assert err.count("\nround ") + err.startswith("round ") == len(sched.lines)
    assert "round 1 at " in err and "5 due: refired 5 in " in err
    assert "1 waiting (next due in 1h5" in err and f"journal {journal.name}\n" in err
    assert "round 2 at " in err and "nothing due; 6 waiting (next due in 59m)" in err
    assert [count_of(ddb, k) for k in [*keys, "dead", "waiting"]] == [1] * 5 + [0, 0]


def test_ctrl_c_between_rounds_exit_130(ddb, endpoint, tmp_path) -> None:
    seed_due(ddb, endpoint, 2)
    sched = Scheduler(endpoint, "--every", "1h", "--journal", str(tmp_path / "j"))
    sched.wait_rounds(1)  # then it waits an hour for the next one
    code, err, took = sched.stop(signal.SIGINT)
    assert code == 130, err
    assert took < 5 and "interrupted after 1 round(s)" in err and "Traceback" not in err
    assert sched.lines[0]["refired"] == 2


def test_sigterm_during_a_round_stops_it_cleanly(ddb, endpoint, tmp_path) -> None:
    """The round in progress stops as a refire does: in-flight writes finish, the rest
    are not reached (still due, for the next scheduler), the journal has every write."""
    keys = seed_due(ddb, endpoint, 40)
    rounds_dir = tmp_path / "rounds"
    sched = Scheduler(endpoint, "--every", "5m", "--rate", "10", "--journal", str(rounds_dir))
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        journals = list(rounds_dir.glob("*.jsonl")) if rounds_dir.exists() else []
        if journals and journals[0].read_text().count('"outcome"') >= 5:
            break
        time.sleep(0.05)
    code, err, took = sched.stop(signal.SIGTERM)
    assert code == 0, err
    assert took < 5, err
    (rnd,) = sched.lines
    assert 5 <= rnd["refired"] < 40 and rnd["refired"] + rnd["not_reached"] == 40
    touched = {k for k in keys if count_of(ddb, k) == 1}
    (journal,) = rounds_dir.iterdir()
    journaled = {json.loads(x)["key"]["id"] for x in journal.read_text().splitlines()
                 if '"outcome":"refired"' in x}
    assert touched == journaled and len(touched) == rnd["refired"]
    assert "not reached" in err


@pytest.mark.parametrize(("args", "code", "needle"), [
    (("--every", "5m"), 2, "--every runs rounds of --due: add --due"),
    (("--due", "--every", "0"), 2, "at least 1s"),
    (("--due", "--every", "soon"), 2, "invalid --every"),
    (("--due", "--every", "5m", "--dry-run"), 2, "drop --every"),
    (("--due", "--every", "5m", "-o", "json"), 2, "use -o jsonl"),
    (("--due", "--every", "5m", "--only-if", "failed"), 2, "drop --only-if failed"),
    (("--due", "--every", "5m", "--id", "k1"), 2, "drop --id, --ids-from and --resume"),
    (("--due", "--every", "5m"), 5, "refusing to refire rounds without --yes"),
])
def test_every_flag_checks(cli, args: tuple[str, ...], code: int, needle: str) -> None:
    res = cli("refire", "-t", TABLE, *args)
    assert res.code == code and needle in res.err, res.err


def test_every_journal_must_be_a_directory(cli, tmp_path) -> None:
    (tmp_path / "file").write_text("")
    res = cli("refire", "-t", TABLE, "--due", "--every", "5m", "--yes", "--journal",
              str(tmp_path / "file"))
    assert res.code == 2 and "with --every it is a directory" in res.err


def test_a_round_that_meets_an_aws_error_does_not_end_the_loop(ddb, endpoint) -> None:
    """An AWS error in one round (here the endpoint is unreachable) is that round's
    error; the loop goes on. Library level: run_every with a stop after 2 rounds."""
    from streamq.config import resolve
    from streamq.schedule import Round, run_every

    settings = resolve({"endpoint_url": "http://127.0.0.1:9", "table": TABLE,
                        "region": "us-east-1"})
    stop = threading.Event()
    seen: list[Round] = []

    def on_round(rnd: Round) -> None:
        seen.append(rnd)
        if len(seen) == 2:
            stop.set()

    assert run_every(settings, 1, stop=stop, on_round=on_round) == 2
    assert all(r.error and r.due == 0 for r in seen), [r.error for r in seen]

