"""``streamq tail`` against moto's server over HTTP: records as they arrive, what changed,
the trigger's filter verdict; a refire seen as a passing MODIFY within 2 s (and as
dropped under an INSERT-only filter); Ctrl-C; shard lineage bookkeeping."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from typing import Any

import pytest

from streamq.outbox import parse_where
from streamq.sandbox.world import INSERT_FILTER, REFIRE_FILTER
from streamq.stream import Shard, ShardTracker
from streamq.tail import condition_matches, parse_events, parse_start
from tests.helpers import CliRunner, create_table, create_trigger

cli = CliRunner()
TABLE = "outbox"
MARKER = {"Filters": [{"Pattern": INSERT_FILTER}, {"Pattern": REFIRE_FILTER}]}


# ------------------------------------------------------------------------ pure parts


def shard(sid: str, parent: str | None = None, closed: bool = False,
          start: str = "1") -> Shard:
    return Shard(sid, parent, start, "9" if closed else None)


def test_shards_parents_before_children_and_new_shards_from_their_start() -> None:
    t = ShardTracker()
    fresh = t.update([shard("b", "a", start="5"), shard("a", closed=True)], from_latest=False)
    assert [(s.shard_id, kind) for s, kind in fresh] == [("a", "START"), ("b", "START")]
    assert t.readable("a") and not t.readable("b")  # the child waits for its parent
    t.finish("a")
    assert t.readable("b")
    # A split later: both children appear, read from their beginning once b is done.
    fresh = t.update([shard("a", closed=True), shard("b", "a", closed=True, start="5"),
                      shard("c", "b", start="7"), shard("d", "b", start="8")],
                     from_latest=False)
    assert [(s.shard_id, kind) for s, kind in fresh] == [("c", "TRIM_HORIZON"),
                                                         ("d", "TRIM_HORIZON")]
    assert not t.readable("c")
    t.finish("b")
    assert t.readable("c") and t.readable("d")
    # a and b are trimmed from the stream: forgotten; their children stay readable
    t.forget_missing({"c", "d"})
    assert set(t.known) == {"c", "d"} and t.readable("c")


def test_from_latest_skips_shards_already_closed() -> None:
    t = ShardTracker()
    fresh = t.update([shard("a", closed=True), shard("b", "a", start="5")], from_latest=True)
    assert [s.shard_id for s, _ in fresh] == ["b"]
    assert t.readable("b")  # its parent is done: nothing new will ever be written there


def test_parse_start_and_events() -> None:
    assert parse_start("latest") == ("LATEST", None)
    assert parse_start("trim-horizon") == ("TRIM_HORIZON", None)
    assert parse_start("2026-11-27T10:00:00Z") == ("AT_TIMESTAMP", 1795773600.0)
    mode, at = parse_start("10m", now=1000.0)
    assert (mode, at) == ("AT_TIMESTAMP", 400.0)
    for bad in ("yesterday", "2999-01-01T00:00:00Z"):
        res = cli("tail", "--table", "t", "--from", bad)
        assert res.code == 2 and "--from" in res.err
    assert parse_events("insert, MODIFY") == {"INSERT", "MODIFY"}
    res = cli("tail", "--table", "t", "--event", "update")
    assert res.code == 2 and "--event" in res.err


def test_where_means_what_it_means_for_list(endpoint: str, ddb: Any) -> None:
    """condition_matches agrees with `streamq list --where` (a DynamoDB expression) on
    every condition form, over the same items."""
    create_table(ddb, TABLE)
    items = [
        {"id": {"S": "a"}, "attempts": {"N": "3"}, "tenant": {"S": "acme"},
         "last_error": {"S": "429 Too Many Requests"}, "tags": {"SS": ["x", "y"]}},
        {"id": {"S": "b"}, "attempts": {"S": "3"}, "tenant": {"S": "globex"}},
        {"id": {"S": "c"}, "attempts": {"N": "10"}, "created_at": {"S": "2026-11-02"}},
        {"id": {"S": "d"}, "attempts": {"N": "2.0"}, "tags": {"L": [{"S": "x"}]}},
    ]
    for item in items:
        ddb.put_item(TableName=TABLE, Item=item)
    conditions = ["attempts=3", 'attempts="3"', "attempts>=3", "attempts<3", "attempts!=3",
                  "tenant=acme", "last_error~429", "tags~x", "last_error?", "last_error!?",
                  'created_at>="2026-11-01"', "attempts=2", "tenant!=acme"]
    outcomes: set[int] = set()
    for text in conditions:
        res = cli("list", "--table", TABLE, "--status", "all", "--where", text, "-o", "ids")
        assert res.code == 0, res.err
        want = set(res.out.split())
        got = {i["id"]["S"] for i in items if condition_matches(parse_where(text), i)}
        assert got == want, text
        outcomes.add(len(got))
    assert len(outcomes - {0, len(items)}) >= 2  # conditions select some items, differently


# ------------------------------------------------------------------------ against moto


def world(endpoint: str, ddb: Any, **esm: Any) -> dict[str, Any]:
    create_table(ddb, TABLE)
    return create_trigger(endpoint, TABLE, FilterCriteria=MARKER, **esm)


def test_tail_shows_what_changed_and_the_filter_verdict(endpoint: str, ddb: Any) -> None:
    world(endpoint, ddb)
    key = {"id": {"S": "m-1"}}
    ddb.put_item(TableName=TABLE, Item={**key, "to": {"S": "a@x"}, "attempts": {"N": "0"}})
    ddb.update_item(TableName=TABLE, Key=key, UpdateExpression="SET attempts = :n, "
                    "last_error = :e", ExpressionAttributeValues={":n": {"N": "1"},
                                                                  ":e": {"S": "429"}})
    ddb.delete_item(TableName=TABLE, Key=key)
    res = cli("tail", "--table", TABLE, "--from", "trim-horizon", "--limit", "3", "-o",
              "jsonl")
    assert res.code == 0, res.err
    ins, mod, rem = res.jsonl()
    assert [r["event"] for r in (ins, mod, rem)] == ["INSERT", "MODIFY", "REMOVE"]
    assert ins["key"] == {"id": "m-1"} and ins["new_image"]["to"] == "a@x"
    assert ins["filter"]["passes"] is True and ins["filter"]["pattern"] == 1
    assert mod["changes"] == {"attempts": {"old": 0, "new": 1, "kind": "changed"},
                              "last_error": {"old": None, "new": "429", "kind": "added"}}
    # the handler's failure write carries no refire marker: dropped, and why
    assert mod["filter"]["passes"] is False
    reasons = [d["reason"] for d in mod["filter"]["drops"]]
    assert any("refired_at is missing" in r for r in reasons), reasons
    assert rem["filter"]["passes"] is False and rem["old_image"]["attempts"] == 1
    # stderr says tail is an extra reader of the stream
    assert "extra reader" in res.err and "2 readers" in res.err
    assert "3 record(s) shown" in res.err

    # --event and --where select; the table view is one line per record
    res = cli("tail", "--table", TABLE, "--from", "trim-horizon", "--duration", "1.5s",
              "--event", "modify,remove", "--where", "attempts>=1", "-o", "table")
    assert res.code == 0, res.err
    lines = res.out.splitlines()
    assert len(lines) == 2 and "MODIFY m-1" in lines[0] and "REMOVE m-1" in lines[1]
    assert "DROPPED" in lines[0] and "attempts 0→1" in lines[0] and "+last_error=429" in lines[0]


def test_tail_from_a_time_skips_what_came_before(endpoint: str, ddb: Any) -> None:
    world(endpoint, ddb)
    ddb.put_item(TableName=TABLE, Item={"id": {"S": "before"}})
    time.sleep(1.1)  # stream record times are whole seconds
    cut = time.time()
    time.sleep(1.1)
    ddb.put_item(TableName=TABLE, Item={"id": {"S": "after"}})
    from datetime import datetime, timezone

    when = datetime.fromtimestamp(cut, tz=timezone.utc).isoformat()
    res = cli("tail", "--table", TABLE, "--from", when, "--duration", "1.5s", "-o", "jsonl")
    assert res.code == 0, res.err
    assert [r["key"]["id"] for r in res.jsonl()] == ["after"]


class Tail:
    """``streamq tail -o jsonl`` as a real process; lines are read as they come."""

    def __init__(self, endpoint: str, *args: str) -> None:
        env = {**os.environ, "AWS_ENDPOINT_URL": endpoint, "PYTHONUNBUFFERED": "1"}
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "streamq.cli", "tail", "--table", TABLE, "-o", "jsonl",
             *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
        self.lines: list[tuple[float, dict[str, Any]]] = []
        self.err: list[str] = []
        self._out = threading.Thread(target=self._read_out, daemon=True)
        self._err = threading.Thread(target=self._read_err, daemon=True)
        self._out.start()
        self._err.start()

    def _read_out(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.append((time.monotonic(), json.loads(line)))

    def _read_err(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            self.err.append(line)

    def wait_for(self, what: str, cond: Any, timeout: float = 20.0) -> None:
        deadline = time.monotonic() + timeout
        while not cond():
            if time.monotonic() > deadline or self.proc.poll() is not None:
                raise AssertionError(f"tail: no {what}; stderr: {''.join(self.err)}")
            time.sleep(0.02)

    def started(self) -> None:
        self.wait_for("start message", lambda: any("extra reader" in e for e in self.err))

    def stop(self) -> int:
        self.proc.send_signal(signal.SIGINT)
        code = self.proc.wait(timeout=20)
        self._err.join(timeout=5)
        return code


@pytest.mark.slow
def test_a_refire_shows_as_a_passing_modify_within_two_seconds_or_dropped(
        endpoint: str, ddb: Any) -> None:
    mapping = world(endpoint, ddb)
    ddb.put_item(TableName=TABLE, Item={"id": {"S": "m-1"}, "last_error": {"S": "429"}})

    def refire_and_see(t: Tail) -> tuple[float, dict[str, Any]]:
        res = cli("refire", "--table", TABLE, "--id", "m-1", "--yes", "--force")
        assert res.code == 0, res.err
        done = time.monotonic()
        t.wait_for("MODIFY", lambda: any(r["event"] == "MODIFY" for _, r in t.lines))
        seen, rec = next((at, r) for at, r in t.lines if r["event"] == "MODIFY")
        print(f"tail saw the refire {seen - done:.2f}s after refire returned")
        return seen - done, rec

    t = Tail(endpoint)
    try:
        t.started()
        latency, rec = refire_and_see(t)
        assert latency < 2.0, latency
        assert rec["key"] == {"id": "m-1"}
        assert rec["filter"]["passes"] is True and rec["filter"]["pattern"] == 2
        assert rec["changes"]["refire_count"]["new"] == 1
    finally:
        code = t.stop()
    assert code == 130
    err = "".join(t.err)
    assert "Traceback" not in err and "error" not in err
    assert "1 record(s) shown (1 pass the filter, 0 dropped)" in err

    # An INSERT-only filter: the same refire is dropped, and tail names the pattern.
    import boto3

    boto3.client("lambda", endpoint_url=endpoint, region_name="us-east-1"
                 ).update_event_source_mapping(UUID=mapping["UUID"], FilterCriteria={
                     "Filters": [{"Pattern": INSERT_FILTER}]})
    t = Tail(endpoint)
    try:
        t.started()
        latency, rec = refire_and_see(t)
        assert latency < 2.0, latency
        assert rec["filter"]["passes"] is False
        (drop,) = rec["filter"]["drops"]
        assert drop["pattern"] == INSERT_FILTER
        assert 'eventName is "MODIFY"' in drop["reason"]
    finally:
        assert t.stop() == 130


def test_no_stream_is_not_found(endpoint: str, ddb: Any) -> None:
    create_table(ddb, TABLE, stream=False)
    res = cli("tail", "--table", TABLE, "--duration", "1s")
    assert res.code == 4 and "no stream" in res.err
