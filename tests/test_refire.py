"""streamq refire against moto's server over HTTP: the table and its stream are the truth."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from streamq.aws import Aws
from streamq.config import resolve
from streamq.filters import event_name_pattern
from streamq.outbox import Selection, describe_table, select
from streamq.refire import (
    Journal,
    RateLimiter,
    Target,
    execute,
    new_run_token,
    targets_for_records,
)
from tests.helpers import batch_put, create_table, create_trigger, iso_ago, outbox_items

TABLE = "outbox"


def stream_events(endpoint: str, table: str = TABLE) -> list[tuple[str, str]]:
    """(eventName, hash key value) of every record on the table's stream (one shard)."""
    import boto3

    kw = {"endpoint_url": endpoint, "region_name": "us-east-1"}
    arn = boto3.client("dynamodb", **kw).describe_table(TableName=table)["Table"][
        "LatestStreamArn"]
    streams = boto3.client("dynamodbstreams", **kw)
    out = []
    for shard in streams.describe_stream(StreamArn=arn)["StreamDescription"]["Shards"]:
        it = streams.get_shard_iterator(StreamArn=arn, ShardId=shard["ShardId"],
                                        ShardIteratorType="TRIM_HORIZON")["ShardIterator"]
        while it:
            page = streams.get_records(ShardIterator=it, Limit=1000)
            for rec in page["Records"]:
                keys = rec["dynamodb"]["Keys"]
                (value,) = next(iter(keys.values())).values()
                out.append((rec["eventName"], value))
            if not page["Records"]:
                break
            it = page.get("NextShardIterator")
    return out


def modify_counts(endpoint: str) -> Counter[str]:
    return Counter(k for name, k in stream_events(endpoint) if name == "MODIFY")


def item(ddb: Any, key: str) -> dict[str, Any] | None:
    resp = ddb.get_item(TableName=TABLE, Key={"id": {"S": key}}, ConsistentRead=True)
    return resp.get("Item")


def count_of(ddb: Any, key: str) -> int:
    it = item(ddb, key)
    return int(it["refire_count"]["N"]) if it and "refire_count" in it else 0


def seed(ddb: Any, endpoint: str, n: int = 6, *, trigger: bool = True,
         **esm: Any) -> list[str]:
    """n failed records msg-0..msg-(n-1) (+ a trigger)."""
    create_table(ddb, TABLE)
    batch_put(ddb, TABLE, [{"id": {"S": f"msg-{i}"}, "created_at": {"S": iso_ago(3600)},
                            "last_error": {"S": "429 Too Many Requests"},
                            "attempts": {"N": "3"}} for i in range(n)])
    if trigger:
        create_trigger(endpoint, TABLE, **esm)
    return [f"msg-{i}" for i in range(n)]


def lib(endpoint: str) -> tuple[Aws, Any, Any]:
    settings = resolve({"endpoint_url": endpoint, "table": TABLE})
    aws = Aws(settings, max_attempts=0)
    return aws, describe_table(aws, TABLE), settings


# --------------------------------------------------------------------------- safety


def test_missing_ids_create_nothing(ddb, endpoint, cli) -> None:
    seed(ddb, endpoint, 2)
    before = stream_events(endpoint)
    res = cli("refire", "-t", TABLE, "--id", "msg-0", "--id", "ghost", "--id", "ghost2",
              "--yes", "-o", "jsonl")
    assert res.code == 3, res.err
    outcomes = {r["key"]["id"]: r["outcome"] for r in res.jsonl()}
    assert outcomes == {"msg-0": "refired", "ghost": "missing", "ghost2": "missing"}
    assert item(ddb, "ghost") is None and item(ddb, "ghost2") is None
    assert ddb.scan(TableName=TABLE, Select="COUNT")["Count"] == 2
    after = stream_events(endpoint)
    new = after[len(before):]
    assert new == [("MODIFY", "msg-0")]  # nothing at all for the missing ids
    assert "missing 2" in res.err


def test_each_refire_adds_one_and_one_modify_per_id(ddb, endpoint, cli, tmp_path) -> None:
    keys = seed(ddb, endpoint, 20)
    ids = tmp_path / "ids.txt"
    # Duplicates (also as JSON objects and jsonl records) are refired once.
    lines = keys + keys[:5] + [json.dumps({"id": keys[0]}),
                               json.dumps({"key": {"id": keys[1]}, "status": "failed"})]
    ids.write_text("\n".join(lines) + "\n# a comment\n\n")
    before = modify_counts(endpoint)
    res = cli("refire", "-t", TABLE, "--ids-from", str(ids), "--yes", "--rate", "0",
              "-o", "json")
    assert res.code == 0, res.err
    results = res.json()
    assert len(results) == 20
    assert {r["outcome"] for r in results} == {"refired"}
    assert all(r["error"] is None for r in results)
    assert all(count_of(ddb, k) == 1 for k in keys)
    delta = modify_counts(endpoint) - before
    assert delta == Counter(dict.fromkeys(keys, 1))
    run_tokens = {item(ddb, k)["refire_run"]["S"] for k in keys}  # type: ignore[index]
    assert len(run_tokens) == 1
    # A second run (a new token) fires each once more.
    res = cli("refire", "-t", TABLE, "--ids-from", str(ids), "--yes", "--rate", "0")
    assert res.code == 0, res.err
    assert all(count_of(ddb, k) == 2 for k in keys)
    assert modify_counts(endpoint) - before == Counter(dict.fromkeys(keys, 2))


def test_list_ids_pipe_into_refire(ddb, endpoint, cli) -> None:
    create_table(ddb, TABLE)
    items, truth = outbox_items(60)
    batch_put(ddb, TABLE, items)
    create_trigger(endpoint, TABLE)
    listed = cli("list", "-t", TABLE, "--status", "failed", "-o", "ids")
    assert listed.code == 0, listed.err
    assert len(listed.out.splitlines()) == len(truth["failed"]) > 0
    res = cli("refire", "-t", TABLE, "--ids-from", "-", "--yes", "--rate", "0", "-o", "jsonl",
              input=listed.out)
    assert res.code == 0, res.err
    assert {r["key"]["id"] for r in res.jsonl()} == truth["failed"]
    assert all(count_of(ddb, k) == 1 for k in truth["failed"])
    assert all(count_of(ddb, k) == 0 for k in truth["pending"] | truth["stuck"])


def test_deleted_between_selection_and_write_is_missing(ddb, endpoint) -> None:
    keys = seed(ddb, endpoint, 4)
    aws, info, settings = lib(endpoint)
    records = list(select(aws, info, settings, Selection(statuses=("failed",))))
    targets = targets_for_records(records, "selected", settings, info)
    assert len(targets) == 4
    ddb.delete_item(TableName=TABLE, Key={"id": {"S": keys[0]}})  # delivered meanwhile
    before = modify_counts(endpoint)
    results: dict[str, str] = {}
    summary = execute(aws, info, settings, targets, run=new_run_token(), rate=0,
                      concurrency=4, stop=threading.Event(),
                      on_result=lambda r: results.__setitem__(r.key["id"]["S"], r.outcome))
    assert results == {keys[0]: "missing", **dict.fromkeys(keys[1:], "refired")}
    assert summary.counts["missing"] == 1 and not summary.ok
    assert item(ddb, keys[0]) is None  # not resurrected
    assert keys[0] not in modify_counts(endpoint) - before


def test_error_cleared_meanwhile_is_skipped_under_only_if_failed(ddb, endpoint, cli) -> None:
    keys = seed(ddb, endpoint, 3)
    aws, info, settings = lib(endpoint)
    records = list(select(aws, info, settings, Selection(statuses=("failed",))))
    targets = targets_for_records(records, "failed", settings, info)
    ddb.update_item(TableName=TABLE, Key={"id": {"S": keys[1]}},
                    UpdateExpression="REMOVE last_error")  # the Lambda retried meanwhile
    results: dict[str, tuple[str, str | None]] = {}
    execute(aws, info, settings, targets, run=new_run_token(), rate=0, concurrency=2,
            stop=threading.Event(),
            on_result=lambda r: results.__setitem__(r.key["id"]["S"], (r.outcome, r.error)))
    assert results[keys[1]][0] == "skipped"
    assert "no longer failed" in (results[keys[1]][1] or "")
    assert results[keys[0]][0] == results[keys[2]][0] == "refired"
    assert count_of(ddb, keys[1]) == 0
    # Through the CLI: an explicit id whose error is gone is skipped, and that is exit 0.
    res = cli("refire", "-t", TABLE, "--id", keys[1], "--only-if", "failed", "--yes",
              "-o", "jsonl")
    assert res.code == 0, res.err
    assert res.jsonl()[0]["outcome"] == "skipped"
    assert count_of(ddb, keys[1]) == 0


def test_only_if_stuck(ddb, endpoint, cli) -> None:
    create_table(ddb, TABLE)
    now_ms = int(time.time() * 1000)
    batch_put(ddb, TABLE, [
        {"id": {"S": "old"}, "created_at": {"N": str(now_ms - 600_000)}},  # stuck (epoch ms)
        {"id": {"S": "young"}, "created_at": {"S": iso_ago(5)}},  # pending
        {"id": {"S": "err"}, "created_at": {"S": iso_ago(900)}, "last_error": {"S": "x"}},
    ])
    create_trigger(endpoint, TABLE)
    res = cli("refire", "-t", TABLE, "--id", "old", "--id", "young", "--id", "err",
              "--id", "gone", "--only-if", "stuck", "--yes", "-o", "jsonl")
    assert res.code == 3, res.err  # "gone" is missing
    out = {r["key"]["id"]: r["outcome"] for r in res.jsonl()}
    assert out == {"old": "refired", "young": "skipped", "err": "skipped", "gone": "missing"}
    assert count_of(ddb, "old") == 1 and count_of(ddb, "young") == count_of(ddb, "err") == 0


def test_same_run_token_never_fires_twice(ddb, endpoint) -> None:
    """A retried request (its response lost) or a resumed run: the token blocks a second
    write, and the outcome is still 'refired'."""
    keys = seed(ddb, endpoint, 5)
    aws, info, settings = lib(endpoint)
    targets = [Target(key={"id": {"S": k}}) for k in keys]
    run = new_run_token()
    before = modify_counts(endpoint)
    for _ in range(2):
        summary = execute(aws, info, settings, targets, run=run, rate=0, concurrency=3,
                          stop=threading.Event())
        assert summary.counts["refired"] == 5 and summary.total == 5
    assert all(count_of(ddb, k) == 1 for k in keys)
    assert modify_counts(endpoint) - before == Counter(dict.fromkeys(keys, 1))


# --------------------------------------------------------------------------- pre-flight


def test_insert_only_filter_refuses_and_force_overrides(ddb, endpoint, cli) -> None:
    pattern = event_name_pattern(["INSERT"])
    seed(ddb, endpoint, 2, FilterCriteria={"Filters": [{"Pattern": pattern}]})
    before = stream_events(endpoint)
    res = cli("refire", "-t", TABLE, "--id", "msg-0", "--yes")
    assert res.code == 5, res.err
    assert pattern in res.err and "MODIFY" in res.err and "--force" in res.err
    assert count_of(ddb, "msg-0") == 0 and stream_events(endpoint) == before
    res = cli("refire", "-t", TABLE, "--id", "msg-0", "--yes", "--force")
    assert res.code == 0, res.err
    assert count_of(ddb, "msg-0") == 1


def test_item_dependent_filter_checked_on_real_items(ddb, endpoint, cli) -> None:
    pattern = json.dumps({"eventName": ["MODIFY"],
                          "dynamodb": {"NewImage": {"tenant": {"S": ["acme"]}}}})
    seed(ddb, endpoint, 0, FilterCriteria={"Filters": [{"Pattern": pattern}]})
    batch_put(ddb, TABLE, [{"id": {"S": "a"}, "tenant": {"S": "acme"}},
                           {"id": {"S": "g"}, "tenant": {"S": "globex"}}])
    assert cli("refire", "-t", TABLE, "--id", "a", "--yes").code == 0
    res = cli("refire", "-t", TABLE, "--id", "a", "--id", "g", "--yes")
    assert res.code == 5 and "1 of 2 record(s), e.g. g" in res.err, res.err
    assert count_of(ddb, "a") == 1 and count_of(ddb, "g") == 0


def test_no_stream_or_no_trigger_refuses(ddb, endpoint, cli) -> None:
    create_table(ddb, "nostream", stream=False)
    ddb.put_item(TableName="nostream", Item={"id": {"S": "a"}})
    res = cli("refire", "-t", "nostream", "--id", "a", "--yes")
    assert res.code == 5 and "no stream" in res.err, res.err
    seed(ddb, endpoint, 1, trigger=False)
    res = cli("refire", "-t", TABLE, "--id", "msg-0", "--yes")
    assert res.code == 5 and "no trigger" in res.err, res.err
    assert count_of(ddb, "msg-0") == 0
    res = cli("refire", "-t", TABLE, "--id", "msg-0", "--yes", "--force")
    assert res.code == 0, res.err
    assert count_of(ddb, "msg-0") == 1


def test_disabled_trigger_warns(ddb, endpoint, cli) -> None:
    seed(ddb, endpoint, 1, Enabled=False)
    res = cli("refire", "-t", TABLE, "--id", "msg-0", "--yes")
    assert res.code == 0, res.err
    assert "Disabled" in res.err and "24 h" in res.err


# --------------------------------------------------------------------------- input


def test_non_tty_without_yes_refuses(ddb, endpoint, cli) -> None:
    seed(ddb, endpoint, 2)
    res = cli("refire", "-t", TABLE, "--id", "msg-0", "--id", "msg-1")
    assert res.code == 5
    assert "--yes" in res.err and "Traceback" not in res.err
    assert count_of(ddb, "msg-0") == 0 and count_of(ddb, "msg-1") == 0


def test_dry_run_prints_plan_and_writes_nothing(ddb, endpoint, cli) -> None:
    seed(ddb, endpoint, 3)
    before = stream_events(endpoint)
    res = cli("refire", "-t", TABLE, "--id", "msg-0", "--id", "msg-1", "--id", "msg-1",
              "--id", "nope", "--dry-run")
    assert res.code == 0, res.err
    for text in ("records", "3 (1 duplicate", "missing now", "sender (Enabled",
                 "passes", "10/s", "run token", "r-"):
        assert text in res.out, res.out
    res = cli("refire", "-t", TABLE, "--status", "failed", "--dry-run", "-o", "json")
    plan = res.json()
    assert plan["records"] == 3 and plan["only_if"] == "selected" and plan["rate"] == 10
    assert stream_events(endpoint) == before
    assert all(count_of(ddb, k) == 0 for k in ("msg-0", "msg-1", "msg-2"))


@pytest.mark.parametrize(("args", "needle"), [
    ((), "nothing selected"),
    (("--id", "a", "--status", "failed"), "not both"),
    (("--id", "msg-0", "--id", "{\"id\": 5}"), "string (S)"),
    (("--id", "{\"id\": \"a\", \"seq\": 1}"), "does not match the key schema"),
    (("--id", "{broken"), "invalid JSON key"),
    (("--ids-from", "/nonexistent/ids"), "no such file"),
    (("--only-if", "selected", "--id", "a"), "needs filters"),
    (("--resume", "j.jsonl", "--id", "a"), "--resume takes its ids"),
])
def test_bad_input_exit_2_before_any_write(ddb, endpoint, cli, args, needle) -> None:
    seed(ddb, endpoint, 1)
    before = stream_events(endpoint)
    res = cli("refire", "-t", TABLE, "--yes", *args)
    assert res.code == 2, (res.code, res.err)
    assert needle in res.err and len(res.err.strip().splitlines()) == 1
    assert stream_events(endpoint) == before and count_of(ddb, "msg-0") == 0


def test_numeric_and_composite_keys(ddb, endpoint, cli) -> None:
    create_table(ddb, "comp", hash_key=("tenant", "S"), range_key=("seq", "N"))
    ddb.put_item(TableName="comp", Item={"tenant": {"S": "acme"}, "seq": {"N": "17"}})
    create_trigger(endpoint, "comp")
    res = cli("refire", "-t", "comp", "--id", '{"tenant": "acme", "seq": 17}',
              "--id", '{"tenant": "acme", "seq": "17"}', "--id", '{"tenant":"acme","seq":18}',
              "--yes", "-o", "jsonl")
    assert res.code == 3, res.err
    assert [(r["key"], r["outcome"]) for r in res.jsonl()] == [
        ({"tenant": "acme", "seq": 17}, "refired"), ({"tenant": "acme", "seq": 18}, "missing")]
    res = cli("refire", "-t", "comp", "--id", "acme", "--yes")
    assert res.code == 2 and "composite key" in res.err


# --------------------------------------------------------------------------- journal


def test_journal_and_resume(ddb, endpoint, cli, tmp_path) -> None:
    keys = seed(ddb, endpoint, 6)
    aws, info, settings = lib(endpoint)
    run = new_run_token()
    targets = [Target(key={"id": {"S": k}}) for k in [*keys, "ghost"]]
    path = tmp_path / "run.jsonl"
    jrn = Journal.create(path, run=run, info=info, targets=targets, only_if="any")
    # First attempt: msg-0..msg-3 are written, but only msg-0 and msg-1 reach the journal
    # (say the process was killed): the token still protects msg-2 and msg-3.
    from streamq.refire import Result

    execute(aws, info, settings, targets[:4], run=run, rate=0, concurrency=2,
            stop=threading.Event(),
            on_result=lambda r: jrn.record(r, info) if r.key["id"]["S"] in keys[:2] else None)
    jrn.record(Result({"id": {"S": "ghost"}}, "missing"), info)
    jrn.close()
    before = modify_counts(endpoint)
    res = cli("refire", "-t", TABLE, "--resume", str(path), "--yes", "-o", "jsonl")
    assert res.code == 0, res.err
    out = {r["key"]["id"]: r["outcome"] for r in res.jsonl()}
    assert out == dict.fromkeys(keys[2:], "refired")  # not msg-0/1, not ghost
    assert all(count_of(ddb, k) == 1 for k in keys)  # msg-2/3 not fired twice
    assert modify_counts(endpoint) - before == Counter(dict.fromkeys(keys[4:], 1))
    lines = [json.loads(x) for x in path.read_text().splitlines()]
    assert lines[0]["run"] == run and any("resumed" in x for x in lines)
    assert {x["key"]["id"] for x in lines if x.get("outcome") == "refired"} == set(keys)
    # Everything done: a second resume has nothing to do.
    res = cli("refire", "-t", TABLE, "--resume", str(path), "--yes")
    assert res.code == 0 and "nothing to refire" in res.err
    # A journal is never overwritten.
    res = cli("refire", "-t", TABLE, "--id", "msg-0", "--journal", str(path), "--yes")
    assert res.code == 2 and "already exists" in res.err


def test_rate_limiter_spaces_attempts() -> None:
    limiter = RateLimiter(50)
    stop = threading.Event()
    start = time.monotonic()
    threads = [threading.Thread(target=lambda: [limiter.take(stop) for _ in range(5)])
               for _ in range(5)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert time.monotonic() - start >= 24 / 50 * 0.95  # 25 tokens, the first is free
    stop.set()
    assert limiter.take(stop) is False
    assert RateLimiter(0).take(threading.Event()) is True


# --------------------------------------------------------------------------- Ctrl-C


def test_sigint_stops_cleanly(ddb, endpoint, tmp_path) -> None:
    keys = seed(ddb, endpoint, 120)
    ids = tmp_path / "ids.txt"
    ids.write_text("\n".join(keys) + "\n")
    path = tmp_path / "run.jsonl"
    env = {**os.environ, "AWS_ENDPOINT_URL": endpoint}
    proc = subprocess.Popen(
        [sys.executable, "-c", "import sys; from streamq.cli.app import main; main()",
         "refire", "-t", TABLE, "--ids-from", str(ids), "--yes", "--rate", "40",
         "--journal", str(path)],
        stderr=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env,
        cwd=str(Path(__file__).resolve().parents[1]))
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:  # wait until some outcomes are journaled
        if path.exists() and path.read_text().count('"outcome"') >= 10:
            break
        time.sleep(0.05)
    proc.send_signal(signal.SIGINT)
    _out, err = proc.communicate(timeout=20)
    assert proc.returncode == 130, err
    assert "Traceback" not in err and "not reached" in err and "--resume" in err
    lines = [json.loads(x) for x in path.read_text().splitlines()]
    refired = {x["key"]["id"] for x in lines if x.get("outcome") == "refired"}
    assert 10 <= len(refired) < 120
    # Every write that happened is in the journal (in-flight requests finished).
    touched = {k for k in keys if count_of(ddb, k) == 1}
    assert touched == refired
    assert all(count_of(ddb, k) <= 1 for k in keys)


def test_resume_rejects_bad_journals(ddb, endpoint, cli, tmp_path) -> None:
    seed(ddb, endpoint, 1)
    res = cli("refire", "-t", TABLE, "--resume", str(tmp_path / "nope.jsonl"), "--yes")
    assert res.code == 4 and "not found" in res.err, res.err
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"hello": 1}\n')
    res = cli("refire", "-t", TABLE, "--resume", str(bad), "--yes")
    assert res.code == 2 and "not a streamq refire journal" in res.err, res.err
    other = tmp_path / "other.jsonl"
    other.write_text(json.dumps({"journal": "streamq-refire-journal", "version": 1,
                                 "run": "r-x", "table": "elsewhere", "only_if": "any"}) + "\n"
                     + json.dumps({"planned": {"id": "msg-0"}, "cond": None}) + "\n")
    res = cli("refire", "-t", TABLE, "--resume", str(other), "--yes")
    assert res.code == 2 and "is for table 'elsewhere'" in res.err, res.err
    # A torn last line (killed mid-write) is ignored; the planned id is refired.
    torn = tmp_path / "torn.jsonl"
    torn.write_text(other.read_text().replace("elsewhere", TABLE) + '{"key": {"id": "ms')
    res = cli("refire", "-t", TABLE, "--resume", str(torn), "--yes")
    assert res.code == 0, res.err
    assert count_of(ddb, "msg-0") == 1
    assert item(ddb, "msg-0")["refire_run"] == {"S": "r-x"}  # type: ignore[index]


# --------------------------------------------------------------------------- library API


@pytest.mark.parametrize(("kw", "needle"), [
    ({}, "nothing selected"),
    ({"ids": True, "filters": True}, "not both"),
    ({"resume": Path("j"), "ids": True}, "--resume takes its ids"),
    ({"resume": Path("j"), "journal": Path("k")}, "drop --journal"),
    ({"ids": True, "only_if": "selected"}, "needs filters"),
    ({"resume": Path("j"), "only_if": "selected"}, "needs filters"),
    ({"ids": True, "only_if": "sometimes"}, "invalid --only-if"),
])
def test_check_selection_refuses_bad_combinations(kw, needle) -> None:
    from streamq.errors import BadInput
    from streamq.refire import check_selection

    args = {"ids": False, "filters": False, **kw}
    with pytest.raises(BadInput, match=needle) as exc:
        check_selection(**args)
    assert exc.value.exit_code == 2


def test_check_selection_default_only_if() -> None:
    from streamq.refire import check_selection

    assert check_selection(ids=True, filters=False) == "any"
    assert check_selection(ids=False, filters=True) == "selected"
    assert check_selection(ids=False, filters=True, only_if="failed") == "failed"
    assert check_selection(ids=False, filters=False, resume=Path("j")) == "any"


def test_prepare_and_run_off_the_main_thread(ddb, endpoint, tmp_path) -> None:
    """The library alone, from a worker thread: plan, journal, outcomes, exit decision;
    no signal handler is touched."""
    from streamq.errors import PartialFailure
    from streamq.refire import prepare, run, writer_aws

    keys = seed(ddb, endpoint, 3)
    _aws, _info, settings = lib(endpoint)
    path = tmp_path / "run.jsonl"
    handler = signal.getsignal(signal.SIGINT)
    events: list[str] = []
    box: dict[str, Any] = {}

    def work() -> None:
        plan = prepare(Aws(settings), settings, ids=[keys[0], "ghost"],
                       id_lines=[keys[1], keys[0], "# a comment", ""], journal=path, rate=0)
        box["plan"] = plan
        box["summary"] = run(plan, writer_aws(settings, plan.concurrency),
                             stop=threading.Event(), on_start=lambda: events.append("start"),
                             on_result=lambda r: events.append(r.outcome))

    worker = threading.Thread(target=work)
    worker.start()
    worker.join(30)
    plan, summary = box["plan"], box["summary"]
    assert signal.getsignal(signal.SIGINT) is handler
    doc = plan.to_json()
    assert (doc["records"], doc["duplicates"], doc["only_if"], doc["journal"]) == (
        3, 1, "any", str(path))
    assert doc["known_missing"] is None and plan.refusal() is None and plan.total == 3
    assert events[0] == "start" and sorted(events[1:]) == ["missing", "refired", "refired"]
    assert summary.counts["refired"] == 2 and summary.counts["missing"] == 1
    assert count_of(ddb, keys[0]) == count_of(ddb, keys[1]) == 1 and count_of(ddb, keys[2]) == 0
    lines = [json.loads(x) for x in path.read_text().splitlines()]
    assert lines[0]["run"] == plan.run and len([x for x in lines if "outcome" in x]) == 3
    error = plan.outcome_error(summary)
    assert isinstance(error, PartialFailure) and error.exit_code == 3
    assert error.message == "1 of 3 record(s) not refired (missing 1, failed 0)"


def test_prepare_by_filters_and_the_preflight_refusal(ddb, endpoint) -> None:
    from contextlib import contextmanager

    from streamq.errors import BadInput, Refused
    from streamq.refire import prepare, run, writer_aws

    keys = seed(ddb, endpoint, 3, trigger=False)
    _aws, _info, settings = lib(endpoint)
    pages: list[tuple[str, int]] = []

    class Pages:
        def __init__(self, label: str) -> None:
            self.label = label

        def advance(self, n: int) -> None:
            pages.append((self.label, n))

    @contextmanager
    def progress(label: str):  # type: ignore[no-untyped-def]
        yield Pages(label)

    plan = prepare(Aws(settings), settings, selection=Selection(statuses=("failed",)),
                   progress=progress)
    assert plan.only_if == "selected" and len(plan.todo) == 3 and plan.known_missing == 0
    assert pages and pages[0][0] == "selecting"
    refusal = plan.refusal()
    assert isinstance(refusal, Refused) and "no trigger" in refusal.message
    assert "--force overrides" in refusal.message
    with pytest.raises(Refused):
        run(plan, writer_aws(settings, plan.concurrency))
    assert all(count_of(ddb, k) == 0 for k in keys)
    # A callable selection is parsed by prepare; a dry-run plan is never run.
    plan = prepare(Aws(settings), settings, selection=lambda: Selection(statuses=("failed",)),
                   force=True, dry_run=True)
    assert plan.refusal() is None and plan.to_json()["dry_run"] is True
    with pytest.raises(BadInput, match="dry-run"):
        run(plan, writer_aws(settings, plan.concurrency))
    assert all(count_of(ddb, k) == 0 for k in keys)


def test_outcome_error_maps_a_summary_to_the_exit() -> None:
    from streamq.config import Settings
    from streamq.errors import AwsError, Interrupted, PartialFailure
    from streamq.refire import Preflight, RefirePlan, Summary

    settings = Settings(table="outbox", region="eu-west-1",
                        sources={"table": "flag --table", "region": "flag --region"})

    def plan(journal: Path | None) -> RefirePlan:
        return RefirePlan(settings=settings, info=None,  # type: ignore[arg-type]
                          preflight=Preflight(stream_enabled=True), run="r-x",
                          only_if="any", targets=[], todo=[], settled=[], journal=journal)

    ok = Summary()
    ok.counts["refired"] = 2
    assert plan(None).outcome_error(ok) is None
    failed = Summary()
    failed.counts.update(refired=1, failed=2)
    err = plan(Path("j.jsonl")).outcome_error(failed)
    assert isinstance(err, PartialFailure) and err.message == (
        "2 of 3 record(s) not refired (missing 0, failed 2); retry the failed ones with: "
        "streamq refire --resume j.jsonl --yes --region eu-west-1 --table outbox")
    stopped = Summary(not_reached=5, interrupted=True)
    err = plan(None).outcome_error(stopped)
    assert isinstance(err, Interrupted) and err.exit_code == 130
    assert err.message.endswith("5 record(s) not reached; next time use --journal FILE to "
                                "be able to --resume")
    assert plan(None).outcome_error(Summary(), interrupted=True) is not None
    assert plan(None).outcome_error(stopped, interrupted=False) is not None  # not reached
    fatal = Summary(not_reached=4, fatal="ExpiredToken")
    err = plan(Path("j.jsonl")).outcome_error(fatal, interrupted=True)
    assert isinstance(err, AwsError) and err.exit_code == 1
    assert "ExpiredToken" in err.message
    assert err.message.endswith("fix it, then continue with: streamq refire --resume j.jsonl "
                                "--yes --region eu-west-1 --table outbox")
