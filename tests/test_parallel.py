"""A scan spread over processes (streamq.parallel, ``--processes``): the same records,
counts and stats as one process, errors from a worker are the command's, and no worker
outlives the command. Against moto's server over HTTP (the fault proxy for the error)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import pytest

from streamq import parallel
from streamq.errors import BadInput
from streamq.outbox import KeyAttr, ScanPlan, TableInfo
from tests.faultproxy import FaultProxy
from tests.helpers import batch_put, create_table, outbox_items

pytestmark = pytest.mark.slow


def _table(ddb: Any, n: int = 1500) -> dict[str, set[str]]:
    create_table(ddb, "outbox")
    items, truth = outbox_items(n)
    batch_put(ddb, "outbox", items)
    return truth


def _comparable(line: str) -> tuple[str, str, str]:
    """A jsonl record without what depends on when it was read (its age)."""
    rec = json.loads(line)
    rec.pop("age_seconds")
    return rec["key"]["id"], rec["status"], json.dumps(rec, sort_keys=True)


def test_processes_print_what_one_process_prints(ddb, cli) -> None:
    truth = _table(ddb)
    base = ("-t", "outbox", "--segments", "5")
    one = cli("list", *base, "-o", "ids", "--processes", "1")
    assert one.code == 0, one.err
    assert set(one.out.split()) == truth["failed"] | truth["stuck"]
    for n in ("2", "3"):
        many = cli("list", *base, "-o", "ids", "--processes", n)
        assert many.code == 0, many.err
        lines = many.out.split()
        assert len(lines) == len(set(lines)) == len(one.out.split())  # each record once
        assert set(lines) == set(one.out.split())

        a = cli("list", *base, "--status", "all", "-o", "jsonl", "--processes", "1")
        b = cli("list", *base, "--status", "all", "-o", "jsonl", "--processes", n)
        assert a.code == b.code == 0, (a.err, b.err)
        assert sorted(map(_comparable, a.out.splitlines())) == sorted(
            map(_comparable, b.out.splitlines()))
        assert len(b.out.splitlines()) == 1500

        c1 = cli("list", *base, "--count", "--status", "failed,stuck", "--processes", "1")
        cn = cli("list", *base, "--count", "--status", "failed,stuck", "--processes", n)
        assert c1.out == cn.out == f"{len(truth['failed'] | truth['stuck'])}\n"

        s1 = cli("stats", *base, "-o", "json", "--processes", "1").json()
        sn = cli("stats", *base, "-o", "json", "--processes", n).json()
        for doc in (s1, sn):
            doc.pop("oldest_age_seconds")  # read a moment apart
            doc["retry"].pop("next_due_in_seconds")
        assert s1 == sn
        assert sn["total"] == 1500 and sn["counts"]["failed"] == len(truth["failed"])


def test_the_api_counts_the_same_in_processes(endpoint, ddb) -> None:
    truth = _table(ddb, 600)
    from streamq import Outbox

    box = Outbox("outbox", endpoint_url=endpoint, region="us-east-1")
    want = len(truth["failed"] | truth["stuck"])
    assert box.count(segments=4) == box.count(segments=4, processes=2) == want
    one, two = box.stats(segments=4), box.stats(segments=4, processes=2)
    assert one.counts == two.counts and one.total == two.total == 600
    with pytest.raises(BadInput, match="--processes"):
        box.count(processes=0)


def test_how_many_processes() -> None:
    small = TableInfo("t", KeyAttr("id", "S"), size_bytes=10 * 1024 * 1024)
    large = TableInfo("t", KeyAttr("id", "S"), size_bytes=parallel.AUTO_MIN_BYTES)
    scan8 = ScanPlan("Scan", None, list(range(8)), 8)
    assert parallel.how_many(None, small, scan8) == 1  # a worker's start costs more
    assert parallel.how_many(None, large, scan8) == min(parallel.cores(), parallel.AUTO_MAX)
    assert parallel.how_many(3, small, scan8) == 3  # asked for: given
    assert parallel.how_many(16, small, scan8) == 8  # never more than the segments
    assert parallel.how_many(4, large, ScanPlan("Scan", None, [2], 8)) == 1  # --segment 2/8
    assert parallel.how_many(4, large, ScanPlan("Query", "ix", [0], 1)) == 1


def _survivors(marker: str) -> list[int]:
    """Processes whose environment carries ``marker`` (this test's children)."""
    found = []
    for pid in os.listdir("/proc"):
        if not pid.isdigit() or int(pid) == os.getpid():
            continue
        try:
            env = Path(f"/proc/{pid}/environ").read_bytes()
        except OSError:
            continue
        if marker.encode() in env:
            found.append(int(pid))
    return found


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_a_worker_error_is_the_commands_and_no_worker_is_left(endpoint, ddb) -> None:
    _table(ddb, 300)

    def segment_one(req: Any) -> str | None:  # only the worker process's share fails
        return "throttle" if req.json().get("Segment") == 1 else None

    marker = f"STREAMQ_TEST_MARK={uuid.uuid4().hex}"
    with FaultProxy(endpoint, ops={"Scan"}, rule=segment_one) as proxy:
        env = {**os.environ, "AWS_ENDPOINT_URL": proxy.url, "AWS_MAX_ATTEMPTS": "1",
               marker.split("=")[0]: marker.split("=")[1]}
        argv = [sys.executable, "-m", "streamq.cli", "list", "-t", "outbox", "-o", "ids",
                "--segments", "2"]
        one = subprocess.run([*argv, "--processes", "1"], capture_output=True, text=True,
                             env=env, timeout=120)
        two = subprocess.run([*argv, "--processes", "2"], capture_output=True, text=True,
                             env=env, timeout=120)
    assert one.returncode == two.returncode != 0
    assert "Traceback" not in two.stderr
    # The same error line (the proxy picks one of AWS's three throttling codes per request).
    same = "streamq: error: throttled by AWS ("
    assert one.stderr.startswith(same) and two.stderr.startswith(same), two.stderr
    assert "after retries during Scan" in two.stderr
    deadline = time.monotonic() + 10
    while _survivors(marker) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert _survivors(marker) == []


def test_a_reader_going_away_stops_the_workers(ddb) -> None:
    """`streamq list --processes 2 | head -1` under pipefail: exit 0, nothing on stderr,
    no worker left behind."""
    _table(ddb, 3000)
    marker = f"STREAMQ_TEST_MARK={uuid.uuid4().hex}"
    env = {**os.environ, marker.split("=")[0]: marker.split("=")[1]}
    proc = subprocess.run(
        ["bash", "-o", "pipefail", "-c",
         f"{sys.executable} -m streamq.cli list -t outbox --status all -o jsonl "
         "--segments 4 --processes 2 | head -1"],
        capture_output=True, text=True, timeout=120, env=env)
    assert proc.returncode == 0, proc.stderr
    assert len(proc.stdout.splitlines()) == 1 and proc.stderr == ""
    deadline = time.monotonic() + 10
    while _survivors(marker) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert _survivors(marker) == []


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_ctrl_c_stops_the_workers_and_is_130(endpoint, ddb) -> None:
    """Ctrl-C (SIGINT to the process group, as a terminal sends it) while the workers
    wait on a stalled endpoint: exit 130 within seconds, no worker left."""
    import signal

    _table(ddb, 300)
    marker = f"STREAMQ_TEST_MARK={uuid.uuid4().hex}"

    def stall_all(req: Any) -> str | None:
        return "stall"

    from tests.faultproxy import Mix

    with FaultProxy(endpoint, ops={"Scan"}, rule=stall_all,
                    mix=Mix(stall_seconds=60)) as proxy:
        env = {**os.environ, "AWS_ENDPOINT_URL": proxy.url,
               marker.split("=")[0]: marker.split("=")[1]}
        proc = subprocess.Popen(
            [sys.executable, "-m", "streamq.cli", "list", "-t", "outbox", "-o", "ids",
             "--segments", "4", "--processes", "2"],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
            start_new_session=True)
        deadline = time.monotonic() + 60
        while proxy.calls["Scan"] < 4 and time.monotonic() < deadline:
            time.sleep(0.1)  # every segment, the worker process's too, is waiting
        assert proxy.calls["Scan"] >= 4
        os.killpg(proc.pid, signal.SIGINT)
        out, err = proc.communicate(timeout=20)
    assert proc.returncode == 130, err
    assert "Traceback" not in err and out == ""
    deadline = time.monotonic() + 10
    while _survivors(marker) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert _survivors(marker) == []


def test_workers_use_the_credentials_this_process_resolved(ddb, tmp_path) -> None:
    """A profile whose credentials come from a credential_process (as an MFA prompt or
    an assume-role call would): resolved once, by this process; the workers reuse them
    instead of running the process (or prompting) again each."""
    _table(ddb, 600)
    calls = tmp_path / "calls"
    helper = tmp_path / "creds.sh"
    helper.write_text("#!/bin/sh\necho run >> " + str(calls) + "\n"
                      'echo \'{"Version": 1, "AccessKeyId": "testing", '
                      '"SecretAccessKey": "testing"}\'\n')
    helper.chmod(0o755)
    config = tmp_path / "config"
    config.write_text(f"[profile ops]\nregion = us-east-1\ncredential_process = {helper}\n")
    env = {k: v for k, v in os.environ.items()
           if k not in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN")}
    env.update(AWS_CONFIG_FILE=str(config), AWS_SHARED_CREDENTIALS_FILE=str(tmp_path / "none"))
    argv = [sys.executable, "-m", "streamq.cli", "--profile", "ops", "list", "-t", "outbox",
            "-o", "ids", "--segments", "4"]
    one = subprocess.run([*argv, "--processes", "1"], capture_output=True, text=True,
                         env=env, timeout=120)
    assert one.returncode == 0, one.stderr
    assert calls.read_text().count("run") == 1
    calls.unlink()
    three = subprocess.run([*argv, "--processes", "3"], capture_output=True, text=True,
                           env=env, timeout=120)
    assert three.returncode == 0, three.stderr
    assert sorted(three.stdout.split()) == sorted(one.stdout.split())
    assert calls.read_text().count("run") == 1  # not once more per worker
