"""The seed's story end to end, on the sandbox: a burst of mail meets a rate-limited API.
The rate-limited sends (429) come back due after their backoff and are delivered by
scheduled rounds (``refire --due --every``, a real subprocess stopped with SIGTERM) that
stay under the API's rate; the undeliverable ones (550) become dead after
``max_attempts`` and are never fired again by ``--due``; the fake API's own log proves
that no mail was sent twice.

Bounded: a small policy (base 4s: longer than the trigger's batching window, so a
refire is handled before the record can be due again) and 30 records."""

from __future__ import annotations

import itertools
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections import Counter, defaultdict
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from tests.helpers import CliRunner, running_sandbox

pytestmark = pytest.mark.slow

cli = CliRunner()
ROOT = Path(__file__).resolve().parents[1]
API_RATE = 10  # sends per sliding second
REFIRE_RATE = 3  # per second: a 2 s batching window carries ~6 refires, under API_RATE
BACKOFF = "base=4s,factor=2,jitter=0.2,cap=16s"
MAX_ATTEMPTS = 3
COUNT, UNDELIVERABLE_EVERY = 30, 5


@pytest.fixture(scope="module")
def sandbox_dir(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    directory = tmp_path_factory.mktemp("retry-sandbox")
    with running_sandbox(directory, "--api-rate", str(API_RATE)) as d:
        yield d


def api_log(directory: Path) -> list[dict[str, Any]]:
    """The fake mail API's calls, each ``time`` (ISO-8601 UTC, in milliseconds, as the
    sandbox logs it) as epoch seconds."""
    path = directory / "fake-mail-api.jsonl"
    entries = [json.loads(x) for x in path.read_text().splitlines() if x.strip()]
    for e in entries:
        e["time"] = datetime.fromisoformat(e["time"].replace("Z", "+00:00")).timestamp()
    return entries


def outbox(ddb: Any) -> dict[str, dict[str, Any]]:
    items: dict[str, dict[str, Any]] = {}
    kwargs: dict[str, Any] = {"TableName": "mail_outbox", "ConsistentRead": True}
    while True:
        page = ddb.scan(**kwargs)
        items.update({it["id"]["S"]: it for it in page["Items"]})
        if "LastEvaluatedKey" not in page:
            return items
        kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]


def test_scheduled_rounds_deliver_the_rate_limited_and_bury_the_undeliverable(
        sandbox_dir: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    import boto3

    from streamq.outbox import key_id
    from streamq.retry import parse_backoff

    monkeypatch.setenv("STREAMQ_SANDBOX_DIR", str(sandbox_dir))
    monkeypatch.setenv("STREAMQ_BACKOFF", BACKOFF)
    monkeypatch.setenv("STREAMQ_MAX_ATTEMPTS", str(MAX_ATTEMPTS))
    state = json.loads((sandbox_dir / "state.json").read_text())
    ddb = boto3.client("dynamodb", endpoint_url=state["endpoint"], region_name="us-east-1",
                       aws_access_key_id="x", aws_secret_access_key="x")

    # The burst: every record is sent at once; the API refuses what is over its rate.
    res = cli("sandbox", "seed", "--count", str(COUNT), "--undeliverable-every",
              str(UNDELIVERABLE_EVERY), "--yes", "--wait")
    assert res.code == 0, res.err
    first = outbox(ddb)
    limited = {k for k, it in first.items() if it["last_error"]["S"].startswith("429")}
    undeliverable = {k for k, it in first.items() if it["last_error"]["S"].startswith("550")}
    assert len(undeliverable) == COUNT // UNDELIVERABLE_EVERY and limited
    assert limited | undeliverable == set(first)
    res = cli("--sandbox", "list", "--status", "failed", "-o", "jsonl")
    assert {r["retry"] for r in res.jsonl()} <= {"waiting", "due"}

    # The scheduler: rounds every second until SIGTERM.
    rounds_dir = tmp_path / "rounds"
    scheduled_at = time.time()
    proc = subprocess.Popen(
        [sys.executable, "-m", "streamq.cli", "--sandbox", "refire", "--due", "--every",
         "1s", "--rate", str(REFIRE_RATE), "--yes", "-o", "jsonl", "--journal",
         str(rounds_dir)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT,
        env={**os.environ})
    rounds: list[dict[str, Any]] = []
    errs: list[str] = []
    readers = [threading.Thread(target=lambda: rounds.extend(
                   json.loads(line) for line in proc.stdout or ()), daemon=True),
               threading.Thread(target=lambda: errs.extend(proc.stderr or ()), daemon=True)]
    for r in readers:
        r.start()
    try:
        deadline = time.monotonic() + 60
        while True:
            items = outbox(ddb)
            settled = (not (limited & set(items)) and set(items) == undeliverable and all(
                it["attempts"]["N"] == str(MAX_ATTEMPTS) and "refired_at" not in it
                for it in items.values()))
            if settled:
                break
            assert proc.poll() is None and time.monotonic() < deadline, (
                f"not settled: {len(limited & set(items))} rate-limited left, attempts "
                f"{Counter(it['attempts']['N'] for it in items.values())}")
            time.sleep(0.5)
        settled_rounds = len(rounds)
        while len(rounds) < settled_rounds + 3:  # a few more rounds: the dead stay dead
            assert time.monotonic() < deadline + 10
            time.sleep(0.2)
        calls_before = len(api_log(sandbox_dir))
        time.sleep(2.5)  # the poller's batching window: anything fired would be sent now
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        finally:
            if proc.poll() is None:
                proc.kill()
        for r in readers:
            r.join(timeout=5)
    err = "".join(errs)
    assert proc.returncode == 0, err
    assert "(SIGTERM)" in err and "Traceback" not in err

    log = api_log(sandbox_dir)
    assert len(log) == calls_before  # the last rounds fired nothing
    calls: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for e in log:
        calls[e["message_id"]].append(e)

    # No mail was sent twice; every deliverable one was delivered.
    sends = Counter(e["message_id"] for e in log if e["outcome"] == "sent")
    assert max(sends.values()) == 1
    assert set(sends) == {k for k in calls if k not in undeliverable}
    assert limited <= set(sends)
    history = {it["id"]["S"] for it in ddb.scan(TableName="mail_history")["Items"]}
    assert history == set(sends)

    # The scheduled rounds stayed under the API's rate: nothing throttled after they began.
    after = [e for e in log if e["time"] >= scheduled_at]
    assert not [e for e in after if e["outcome"] == "throttled"]
    assert {e["message_id"] for e in after if e["outcome"] == "sent"} == limited

    # Each retry came after the record's own backoff (its jitter from its key).
    backoff = parse_backoff(BACKOFF)
    for key in limited | undeliverable:
        times = [e["time"] for e in calls[key]]
        seed = key_id({"id": {"S": key}})
        for n, (t1, t2) in enumerate(itertools.pairwise(times), 1):
            assert t2 - t1 >= backoff.delay(n, seed) - 0.05, (key, n, t2 - t1)

    # The undeliverable: exactly max_attempts calls, all refused; then dead, never fired.
    for key in undeliverable:
        assert [e["outcome"] for e in calls[key]] == ["rejected"] * MAX_ATTEMPTS
    last = rounds[-1]
    assert (last["due"], last["waiting"], last["dead"]) == (0, 0, len(undeliverable))
    res = cli("--sandbox", "list", "--status", "dead", "-o", "ids")
    assert set(res.out.split()) == undeliverable
    assert cli("--sandbox", "list", "--status", "due", "--count").out.strip() == "0"
    # ...unless on purpose.
    res = cli("--sandbox", "refire", "--status", "dead", "--dry-run", "-o", "json")
    assert res.code == 0 and json.loads(res.out)["records"] == len(undeliverable)

    # One journal per round that fired, one line per round.
    fired = [r for r in rounds if r["due"]]
    assert sorted(p.name for p in rounds_dir.iterdir()) == sorted(
        r["run"] + ".jsonl" for r in fired)
    assert sum(r["refired"] for r in rounds) == sum(len(v) for v in calls.values()) - COUNT
    assert err.count("round ") >= len(rounds)
