"""Retry states against moto's server over HTTP: ``list``/``stats``/``show`` with due,
waiting and dead; ``refire --due`` and ``--only-if due`` (two schedulers never fire a
record twice)."""

from __future__ import annotations

import time
from typing import Any

from tests.helpers import batch_put, create_table, iso_ago

TABLE = "outbox"
#: jitter 0: the boundaries are exact (the jitter is pinned in test_retry.py)
POLICY = ("--backoff", "base=10s,factor=2,jitter=0,cap=1h", "--max-attempts", "3")


def failed(key: str, attempts: int | None, last_ago: float | None, **extra: Any) -> dict[
        str, Any]:
    item: dict[str, Any] = {"id": {"S": key}, "created_at": {"S": iso_ago(3600)},
                            "last_error": {"S": "429 Too Many Requests"}, **extra}
    if attempts is not None:
        item["attempts"] = {"N": str(attempts)}
    if last_ago is not None:
        item["last_attempt_at"] = {"S": iso_ago(last_ago)}
    return item


def seed_states(ddb: Any, table: str = TABLE, **kw: Any) -> None:
    """due: due1, nolast (no last_attempt_at: 1h since created); waiting: wait1 (attempts 2:
    20 s, attempted 5 s ago), refired (refired 2 s ago, after its attempt 60 s ago); dead:
    dead1 (attempts 3 = max); stuck1 and pending1 are not failed."""
    create_table(ddb, table, **kw)
    batch_put(ddb, table, [
        failed("due1", 1, 60),
        failed("nolast", 1, None),
        failed("wait1", 2, 5),
        failed("refired", 1, 60, refired_at={"S": iso_ago(2)}, refire_count={"N": "1"}),
        failed("dead1", 3, 60),
        {"id": {"S": "stuck1"}, "created_at": {"S": iso_ago(900)}, "attempts": {"N": "5"}},
        {"id": {"S": "pending1"}, "created_at": {"S": iso_ago(5)}},
    ])


def ids(cli: Any, *args: str) -> set[str]:
    res = cli("list", "-t", TABLE, *POLICY, *args, "-o", "ids")
    assert res.code == 0, res.err
    return set(res.out.split())


def test_list_selects_by_retry_state(ddb, endpoint, cli) -> None:
    seed_states(ddb)
    assert ids(cli, "--status", "due") == {"due1", "nolast"}
    assert ids(cli, "--status", "waiting") == {"wait1", "refired"}
    assert ids(cli, "--status", "dead") == {"dead1"}
    assert ids(cli, "--status", "failed") == {"due1", "nolast", "wait1", "refired", "dead1"}
    assert ids(cli, "--status", "due,stuck") == {"due1", "nolast", "stuck1"}
    assert ids(cli, "-s", "dead", "-s", "pending") == {"dead1", "pending1"}
    # the policy decides: with 2 max attempts wait1 is dead too; with a 2 min base only
    # the one attempted an hour ago is due
    res = cli("list", "-t", TABLE, "--backoff", "base=2m,jitter=0", "--max-attempts", "2",
              "--status", "dead,due", "-o", "jsonl")
    assert {r["key"]["id"]: r["retry"] for r in res.jsonl()} == {
        "wait1": "dead", "dead1": "dead", "nolast": "due"}
    bad = cli("list", "-t", TABLE, "--status", "overdue")
    assert bad.code == 2 and "use failed, stuck, pending, due, waiting, dead or all" in bad.err


def test_list_json_and_table_show_when_each_failed_record_is_due(ddb, endpoint, cli) -> None:
    seed_states(ddb)
    res = cli("list", "-t", TABLE, *POLICY, "--status", "all", "-o", "jsonl")
    docs = {r["key"]["id"]: r for r in res.jsonl()}
    assert {k: d["retry"] for k, d in docs.items()} == {
        "due1": "due", "nolast": "due", "wait1": "waiting", "refired": "waiting",
        "dead1": "dead", "stuck1": None, "pending1": None}
    assert {k: d["status"] for k, d in docs.items() if d["retry"]} == dict.fromkeys(
        ["due1", "nolast", "wait1", "refired", "dead1"], "failed")  # failed stays failed
    due_in = {k: _ts(d["next_due_at"]) - time.time() for k, d in docs.items()
              if d["next_due_at"]}
    assert set(due_in) == {"due1", "nolast", "wait1", "refired"}
    assert -52 < due_in["due1"] < -48  # due 10 s after an attempt 60 s ago
    assert 13 < due_in["wait1"] < 16 and 6 < due_in["refired"] < 9
    assert docs["dead1"]["next_due_at"] is None
    csv = cli("list", "-t", TABLE, *POLICY, "--status", "dead", "-o", "csv").out.splitlines()
    assert csv[0].endswith(",retry,next_due_at") and csv[1].endswith(",dead,")
    # The table (the CLI runner is not a terminal: ask for it)
    table = cli("list", "-t", TABLE, *POLICY, "-o", "table", "--sort", "-age").out
    rows = {line.split()[0]: line for line in table.splitlines()[1:-1]}
    assert "DUE" in table.splitlines()[0]
    assert rows["due1"].split()[3] == "now" and rows["dead1"].split()[3] == "dead"
    assert rows["wait1"].split()[3:5] == ["in", rows["wait1"].split()[4]]
    assert rows["wait1"].split()[4] in ("13s", "14s", "15s")
    assert rows["stuck1"].split()[2:4] == ["stuck", "5"]  # no DUE cell


def _ts(text: str) -> float:
    from datetime import datetime

    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


def test_stats_counts_retry_states_and_the_next_due(ddb, endpoint, cli) -> None:
    seed_states(ddb)
    res = cli("stats", "-t", TABLE, *POLICY, "-o", "json", "--debug")
    assert res.code == 0, res.err
    doc = res.json()
    assert doc["counts"] == {"failed": 5, "stuck": 1, "pending": 1}
    retry = doc["retry"]
    assert {k: retry[k] for k in ("due", "waiting", "dead")} == {"due": 2, "waiting": 2,
                                                                 "dead": 1}
    assert retry["next_due_key"] == {"id": "refired"} and 6 < retry["next_due_in_seconds"] < 9
    assert "retry policy: backoff base=10s,factor=2,jitter=0,cap=1h · max 3 attempts" in res.err
    # --debug says which failed records count their backoff from the created time
    assert "1 failed record(s) have no last_attempt_at: their backoff counts from " \
        "created_at" in res.err
    table = cli("stats", "-t", TABLE, *POLICY, "-o", "table").out
    lines = [line.split() for line in table.splitlines()]
    assert ["failed", "5"] in lines and ["due", "2"] in lines and ["dead", "1"] in lines
    assert any(line[:2] == ["next", "due:"] and '{"id":"refired"})' in line for line in lines)


def test_show_says_the_retry_state(ddb, endpoint, cli) -> None:
    seed_states(ddb)
    res = cli("show", "-t", TABLE, *POLICY, "dead1", "-o", "table")
    assert res.code == 0 and "dead: max attempts reached" in res.out
    res = cli("show", "-t", TABLE, *POLICY, "wait1", "-o", "table")
    assert "waiting until " in res.out
    assert cli("show", "-t", TABLE, *POLICY, "due1", "-o", "json").json()["retry"] == "due"


def test_an_index_without_the_last_attempt_is_not_used_blind(ddb, endpoint, cli) -> None:
    """A sparse error index that does not project last_attempt_at would make every
    record look like it counted from its created time: the items are re-read."""
    seed_states(ddb, extra_attrs=[("last_error", "S")], gsis=[{
        "IndexName": "by-error",
        "KeySchema": [{"AttributeName": "last_error", "KeyType": "HASH"}],
        "Projection": {"ProjectionType": "INCLUDE",
                       "NonKeyAttributes": ["created_at", "attempts", "refire_count"]}}])
    res = cli("list", "-t", TABLE, *POLICY, "--status", "due", "-o", "ids", "--debug")
    assert set(res.out.split()) == {"due1", "nolast"}, res.err
    assert "Scan on table" in res.err
    res = cli("list", "-t", TABLE, *POLICY, "--status", "waiting", "-o", "ids",
              "--index", "by-error", "--debug")
    assert set(res.out.split()) == {"wait1", "refired"}, res.err
    assert "re-read from the table" in res.err
    assert cli("list", "-t", TABLE, *POLICY, "--count", "-s", "dead").out.strip() == "1"
