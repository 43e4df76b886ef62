"""Retry states against moto's server over HTTP: ``list``/``stats``/``show`` with due,
waiting and dead; ``refire --due`` and ``--only-if due`` (two schedulers never fire a
record twice)."""

from __future__ import annotations

import re
import threading
import time
from collections import Counter
from typing import Any

from tests.helpers import batch_put, create_table, create_trigger, iso_ago

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
    20 s, attempted 5 s ago), refired (refired 2 s ago, after its attempt 60 s ago: in
    flight, waits --stuck-after, 5 m, from the refire); dead:
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
    # Due times count from the seeding, not from whenever the command has finished (a
    # loaded machine took over 2 s between the two, and next_due_at is in whole seconds).
    seeded = time.time()
    seed_states(ddb)
    res = cli("list", "-t", TABLE, *POLICY, "--status", "all", "-o", "jsonl")
    docs = {r["key"]["id"]: r for r in res.jsonl()}
    assert {k: d["retry"] for k, d in docs.items()} == {
        "due1": "due", "nolast": "due", "wait1": "waiting", "refired": "waiting",
        "dead1": "dead", "stuck1": None, "pending1": None}
    assert {k: d["status"] for k, d in docs.items() if d["retry"]} == dict.fromkeys(
        ["due1", "nolast", "wait1", "refired", "dead1"], "failed")  # failed stays failed
    due_in = {k: _ts(d["next_due_at"]) - seeded for k, d in docs.items()
              if d["next_due_at"]}
    assert set(due_in) == {"due1", "nolast", "wait1", "refired"}
    assert -52 < due_in["due1"] < -48  # due 10 s after an attempt 60 s ago
    assert 8 < due_in["wait1"] < 16 and 290 < due_in["refired"] < 299
    assert docs["dead1"]["next_due_at"] is None
    csv = cli("list", "-t", TABLE, *POLICY, "--status", "dead", "-o", "csv").out.splitlines()
    assert csv[0].endswith(",retry,next_due_at") and csv[1].endswith(",dead,")
    # The table (the CLI runner is not a terminal: ask for it)
    table = cli("list", "-t", TABLE, *POLICY, "-o", "table", "--sort", "-age").out
    rows = {line.split()[0]: line for line in table.splitlines()[1:-1]}
    assert "DUE" in table.splitlines()[0]
    assert rows["due1"].split()[3] == "now" and rows["dead1"].split()[3] == "dead"
    assert rows["wait1"].split()[3] == "in" and rows["wait1"].split()[4].endswith("s")
    assert 5 <= int(rows["wait1"].split()[4][:-1]) <= 15  # due 15 s after seeding
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
    assert retry["next_due_key"] == {"id": "wait1"} and 8 < retry["next_due_in_seconds"] < 16
    assert "retry policy: backoff base=10s,factor=2,jitter=0,cap=1h · max 3 attempts" in res.err
    # --debug says which failed records count their backoff from the created time
    assert "1 failed record(s) have no last_attempt_at: their backoff counts from " \
        "created_at" in res.err
    table = cli("stats", "-t", TABLE, *POLICY, "-o", "table").out
    lines = [line.split() for line in table.splitlines()]
    assert ["failed", "5"] in lines and ["due", "2"] in lines and ["dead", "1"] in lines
    assert any(line[:2] == ["next", "due:"] and '{"id":"wait1"})' in line for line in lines)


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


# --------------------------------------------------------------------------- refire --due


def _settings(endpoint: str) -> Any:
    from streamq.config import resolve

    return resolve({"endpoint_url": endpoint, "table": TABLE,
                    "backoff": "base=10s,factor=2,jitter=0,cap=1h", "max_attempts": 3})


def _outcomes(res: Any) -> dict[str, tuple[str, str | None]]:
    return {r["key"]["id"]: (r["outcome"], r["error"]) for r in res.jsonl()}


def test_refire_due_fires_the_due_only_and_never_the_dead(ddb, endpoint, cli) -> None:
    from tests.test_refire import count_of, modify_counts

    seed_states(ddb)
    create_trigger(endpoint, TABLE)
    res = cli("refire", "-t", TABLE, *POLICY, "--due", "--dry-run")
    assert res.code == 0, res.err
    plan = dict(re.split(r"\s{2,}", line.strip(), maxsplit=1)
                for line in res.out.splitlines()[1:])
    assert plan["records"] == "2" and plan["only if"] == "due"
    assert plan["retry policy"].startswith(
        "backoff base=10s,factor=2,jitter=0,cap=1h · max 3 attempts (waits 10s .. 20s")
    before = modify_counts(endpoint)
    res = cli("refire", "-t", TABLE, *POLICY, "--due", "--yes", "--rate", "0", "-o", "jsonl")
    assert res.code == 0, res.err
    assert _outcomes(res) == {"due1": ("refired", None), "nolast": ("refired", None)}
    assert modify_counts(endpoint) - before == Counter({"due1": 1, "nolast": 1})
    # A refire in flight (not handled yet) is not due again: nothing is due right after.
    res = cli("refire", "-t", TABLE, *POLICY, "--due", "--yes", "-o", "jsonl")
    assert res.code == 0 and res.jsonl() == [] and "nothing to refire" in res.err
    assert ids(cli, "--status", "waiting") == {"due1", "nolast", "wait1", "refired"}
    # Dead ones only on purpose, each write re-checking it is still dead.
    res = cli("refire", "-t", TABLE, *POLICY, "--status", "dead", "--yes", "-o", "jsonl")
    assert _outcomes(res) == {"dead1": ("refired", None)}
    assert count_of(ddb, "dead1") == 1
    assert cli("refire", "-t", TABLE, "--due", "--status", "failed").code == 2


def test_only_if_due_for_ids_reads_and_rechecks(ddb, endpoint, cli) -> None:
    from tests.test_refire import count_of

    seed_states(ddb)
    create_trigger(endpoint, TABLE)
    res = cli("refire", "-t", TABLE, *POLICY, "--only-if", "due", "--id", "due1", "--id",
              "wait1", "--id", "dead1", "--id", "stuck1", "--id", "ghost", "--yes",
              "-o", "jsonl")
    assert res.code == 3, res.err  # ghost is missing
    out = _outcomes(res)
    assert out["due1"] == ("refired", None) and out["ghost"] == ("missing", None)
    assert out["wait1"][0] == "skipped" and "not due (waiting until 20" in out["wait1"][1]
    assert out["dead1"] == ("skipped", "not due (dead)")
    assert out["stuck1"] == ("skipped", "not due (status stuck)")
    assert [count_of(ddb, k) for k in ("due1", "wait1", "dead1", "stuck1")] == [1, 0, 0, 0]
    res = cli("refire", "-t", TABLE, *POLICY, "--only-if", "dead", "--id", "dead1",
              "--id", "due1", "--yes", "-o", "jsonl")
    out = _outcomes(res)
    assert out["dead1"] == ("refired", None) and out["due1"][0] == "skipped"
    assert (out["due1"][1] or "").startswith("not dead (waiting until 20")


def test_two_schedulers_never_fire_a_record_twice(ddb, endpoint) -> None:
    """Both runs select the same due records before either writes (the race a cron job
    and a container, or two containers, run into); then both write at once. Each record
    is fired exactly once: the second write finds the refire counter changed."""
    from streamq.aws import Aws
    from streamq.outbox import Selection
    from streamq.refire import prepare, run, writer_aws
    from tests.test_refire import count_of, modify_counts

    create_table(ddb, TABLE)
    keys = [f"k{i:02d}" for i in range(30)]
    batch_put(ddb, TABLE, [failed(k, 1, 60) for k in keys])
    create_trigger(endpoint, TABLE)
    settings = _settings(endpoint)
    plans = [prepare(Aws(settings), settings, selection=Selection(statuses=("due",)),
                     rate=0, concurrency=4) for _ in range(2)]
    assert [len(p.todo) for p in plans] == [30, 30] and plans[0].run != plans[1].run
    before = modify_counts(endpoint)
    results: list[list[Any]] = [[], []]
    barrier = threading.Barrier(2)

    def go(i: int) -> None:
        barrier.wait()
        run(plans[i], writer_aws(settings, 4), on_result=results[i].append)

    threads = [threading.Thread(target=go, args=(i,)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    fired = Counter(r.key["id"]["S"] for rs in results for r in rs if r.outcome == "refired")
    assert fired == Counter(dict.fromkeys(keys, 1))
    skipped = [r for rs in results for r in rs if r.outcome == "skipped"]
    assert len(skipped) == 30
    assert all("refire_count changed since it was read (refired by run r-" in (r.error or "")
               for r in skipped), skipped[0].error
    assert all(min(len(rs), 30) == len(rs) for rs in results)
    assert all(count_of(ddb, k) == 1 for k in keys)
    assert modify_counts(endpoint) - before == Counter(dict.fromkeys(keys, 1))


def test_a_handler_attempt_between_read_and_write_skips(ddb, endpoint) -> None:
    """The trigger's own retry (or a refire by an older streamq) attempted the record
    after it was selected: its attempts and last attempt changed, it is not fired."""
    from streamq.aws import Aws
    from streamq.outbox import Selection
    from streamq.refire import prepare, run, writer_aws
    from tests.test_refire import count_of

    create_table(ddb, TABLE)
    batch_put(ddb, TABLE, [failed("a", 1, 60), failed("b", 1, 60), failed("c", None, None)])
    create_trigger(endpoint, TABLE)
    settings = _settings(endpoint)
    plan = prepare(Aws(settings), settings, selection=Selection(statuses=("due",)), rate=0)
    assert len(plan.todo) == 3
    ddb.update_item(TableName=TABLE, Key={"id": {"S": "a"}},
                    UpdateExpression="SET attempts = attempts + :one, last_attempt_at = :t",
                    ExpressionAttributeValues={":one": {"N": "1"}, ":t": {"S": iso_ago(0)}})
    ddb.update_item(TableName=TABLE, Key={"id": {"S": "c"}},  # absent values, then set
                    UpdateExpression="SET attempts = :one",
                    ExpressionAttributeValues={":one": {"N": "1"}})
    results: dict[str, Any] = {}
    run(plan, writer_aws(settings, 4),
        on_result=lambda r: results.__setitem__(r.key["id"]["S"], r))
    assert {k: r.outcome for k, r in results.items()} == {"a": "skipped", "b": "refired",
                                                          "c": "skipped"}
    assert results["a"].error == ("no longer due: attempts, last_attempt_at changed since "
                                  "it was read")
    assert results["c"].error == "no longer due: attempts changed since it was read"
    assert [count_of(ddb, k) for k in "abc"] == [0, 1, 0]


def test_resumed_due_run_settles_its_own_refires(ddb, endpoint, cli, tmp_path) -> None:
    """A due run killed after its writes but before journaling them: --resume finds its
    own run token on the records (now waiting because of that refire) and counts them as
    refired, writing nothing more."""
    from tests.test_refire import modify_counts

    seed_states(ddb)
    create_trigger(endpoint, TABLE)
    journal = tmp_path / "due.jsonl"
    res = cli("refire", "-t", TABLE, *POLICY, "--due", "--journal", str(journal), "--yes")
    assert res.code == 0, res.err
    lines = journal.read_text().splitlines()
    kept = [line for line in lines if '"outcome"' not in line]
    assert len(kept) == len(lines) - 2 and '"snapshot"' in kept[1]
    journal.write_text("\n".join(kept) + "\n")  # the outcomes never made it to disk
    before = modify_counts(endpoint)
    res = cli("refire", "-t", TABLE, *POLICY, "--resume", str(journal), "--yes", "-o", "jsonl")
    assert res.code == 0, res.err
    assert _outcomes(res) == {"due1": ("refired", None), "nolast": ("refired", None)}
    assert modify_counts(endpoint) == before


def test_the_endpoint_applies_conditional_writes_atomically(ddb, endpoint) -> None:
    """What the due re-check relies on, as DynamoDB documents it: of many conditional
    writes racing on one item, exactly one passes (the sandbox's moto is patched for
    it: streamq.sandbox.server). Wide items and long expressions widen moto's window
    between the check and the write."""
    import boto3
    from botocore.config import Config

    create_table(ddb, TABLE)
    attrs = [f"a{i}" for i in range(40)]
    names = {f"#{a}": a for a in attrs}
    sets = ", ".join(f"#{a} = :w" for a in attrs)
    cond = " AND ".join(f"#{a} = :zero" for a in attrs)
    clients = [boto3.client("dynamodb", endpoint_url=endpoint, region_name="us-east-1",
                            config=Config(retries={"max_attempts": 0}))
               for _ in range(12)]
    doubles = 0
    for round_ in range(6):
        key = {"id": {"S": f"race-{round_}"}}
        ddb.put_item(TableName=TABLE, Item={**key, **{a: {"N": "0"} for a in attrs}})
        barrier = threading.Barrier(len(clients))
        winners: list[int] = []

        def claim(i: int, key: dict[str, Any] = key, barrier: Any = barrier,
                  winners: list[int] = winners) -> None:
            client = clients[i]
            barrier.wait()
            try:
                client.update_item(TableName=TABLE, Key=key, UpdateExpression=f"SET {sets}",
                                   ConditionExpression=cond, ExpressionAttributeNames=names,
                                   ExpressionAttributeValues={":w": {"N": str(i + 1)},
                                                              ":zero": {"N": "0"}},
                                   ReturnValuesOnConditionCheckFailure="ALL_OLD")
                winners.append(i)
            except client.exceptions.ConditionalCheckFailedException:
                pass

        threads = [threading.Thread(target=claim, args=(i,)) for i in range(len(clients))]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=30)
        assert winners
        doubles += len(winners) - 1
    assert doubles == 0, f"{doubles} conditional write(s) passed a condition already false"
