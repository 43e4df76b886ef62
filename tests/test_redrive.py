"""``streamq redrive`` against moto over HTTP: on-failure messages (made by the sandbox's
trigger emulation, or crafted for the edge cases) -> keys -> refire -> message bookkeeping.
The stream is the referee: a refire is a MODIFY record carrying refired_at."""

from __future__ import annotations

import json
import re
from collections import Counter
from typing import Any

import pytest

from streamq.aws import Aws
from streamq.config import Settings
from streamq.sandbox.poller import Poller, failure_message
from streamq.stream import describe_stream, read_stream
from tests.helpers import (
    CliRunner,
    assert_schema,
    create_table,
    create_trigger,
    fill_to_limit,
    iso_ago,
)

cli = CliRunner()


@pytest.fixture()
def world(endpoint: str, ddb: Any) -> dict[str, Any]:
    import boto3

    create_table(ddb, "outbox")
    create_table(ddb, "orders")
    kw = {"endpoint_url": endpoint, "region_name": "us-east-1"}
    sqs, s3 = boto3.client("sqs", **kw), boto3.client("s3", **kw)
    url = sqs.create_queue(QueueName="dlq")["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"][
        "QueueArn"]
    s3.create_bucket(Bucket="failures")
    mapping = create_trigger(endpoint, "outbox", MaximumRetryAttempts=0,
                             BisectBatchOnFunctionError=False,
                             DestinationConfig={"OnFailure": {"Destination": arn}})
    aws = Aws(Settings(endpoint_url=endpoint, region="us-east-1"))
    stream = ddb.describe_table(TableName="outbox")["Table"]["LatestStreamArn"]
    return {"endpoint": endpoint, "ddb": ddb, "sqs": sqs, "s3": s3, "url": url, "arn": arn,
            "mapping": mapping, "aws": aws, "stream": stream}


def put(world: dict[str, Any], *ids: str, big: bool = False) -> None:
    for i in ids:
        item = {"id": {"S": i}, "to": {"S": "x"}, "last_error": {"S": "boom"},
                "created_at": {"S": iso_ago(1)}}
        if big:  # so large it cannot take the refire's attributes
            item = fill_to_limit(world["ddb"], "orders", item)
        world["ddb"].put_item(TableName="outbox", Item=item)


def stream_records(world: dict[str, Any]) -> list[dict[str, Any]]:
    return list(read_stream(world["aws"], world["stream"]))


def fail(world: dict[str, Any], ids: list[str], **over: Any) -> dict[str, Any]:
    """The invocation record the trigger sends for a discarded batch of ``ids`` (their
    INSERT records), as the sandbox poller builds it."""
    recs = [r for r in stream_records(world) if r["eventName"] == "INSERT"
            and r["dynamodb"]["Keys"]["id"]["S"] in ids]
    shard = describe_stream(world["aws"], world["stream"]).shards[0].shard_id
    msg = failure_message(recs, world["mapping"], shard, "RetryAttemptsExhausted", 1, None,
                          world["stream"])
    msg["DDBStreamBatchInfo"].update(over)
    return msg


def send(world: dict[str, Any], body: Any) -> None:
    world["sqs"].send_message(QueueUrl=world["url"], MessageBody=body if isinstance(
        body, str) else json.dumps(body))


def queue_bodies(world: dict[str, Any]) -> list[str]:
    """Every message in the queue (made visible again afterwards)."""
    out: list[Any] = []
    while True:
        got = world["sqs"].receive_message(QueueUrl=world["url"], MaxNumberOfMessages=10,
                                           VisibilityTimeout=30).get("Messages", [])
        if not got:
            break
        out.extend(got)
    for m in out:
        world["sqs"].change_message_visibility(QueueUrl=world["url"],
                                               ReceiptHandle=m["ReceiptHandle"],
                                               VisibilityTimeout=0)
    return sorted(m["Body"] for m in out)


def refires(world: dict[str, Any]) -> Counter[str]:
    return Counter(r["dynamodb"]["Keys"]["id"]["S"] for r in stream_records(world)
                   if r["eventName"] == "MODIFY" and "refired_at" in r["dynamodb"]["NewImage"])


def redrive(*args: str) -> Any:
    return cli("--table", "outbox", "redrive", *args)


def test_sqs_pointer_dry_run_then_redrive_then_nothing_new(world: dict[str, Any]) -> None:
    """The trigger (emulated) gives up on a batch; redrive finds it through the trigger's
    DestinationConfig, reads the batch back from the stream and re-fires each key once."""
    def handler(event: dict[str, Any], context: Any) -> None:
        if any("poison" in r["dynamodb"]["Keys"]["id"]["S"] for r in event["Records"]):
            raise ValueError("poison")

    poller = Poller(world["aws"], table="outbox", function="sender", handler=handler,
                    retry_delay=0.01, poll_interval=0.01)
    put(world, "a", "b", "poison", "d")
    while poller.counters.dlq_messages < 1:
        poller.step()
    world["ddb"].delete_item(TableName="outbox", Key={"id": {"S": "b"}})  # delivered since
    world["ddb"].update_item(TableName="outbox", Key={"id": {"S": "d"}},
                             UpdateExpression="REMOVE last_error")  # pending now
    before = queue_bodies(world)

    res = redrive("--dry-run", "-o", "json")
    assert res.code == 0, res.err
    doc = res.json()
    assert_schema("redrive", doc)
    (msg,) = doc["messages"]
    assert msg["kind"] == "redrive" and msg["key_source"] == "stream"
    assert msg["record"]["condition"] == "RetryAttemptsExhausted"
    assert msg["record"]["batch"]["batch_size"] == 4
    assert [(k["key"]["id"], k["status"]) for k in msg["keys"]] == [
        ("a", "failed"), ("b", "gone"), ("poison", "failed"), ("d", "pending")]
    assert msg["result"] == "deleted"  # what a run would do
    assert queue_bodies(world) == before and refires(world) == Counter()  # nothing changed
    res = redrive("--dry-run")
    assert res.code == 0, res.err
    for text in (r"retries exhausted \(1 invocation", r"sequence +\d+ \.\. \d+",
                 r"arrival +\S+Z \.\. \S+Z", r"batch size +4", r"b +gone", r"d +pending",
                 r"poison +failed", r"would be +deleted", r"gone now +1"):
        assert re.search(text, res.out), (text, res.out)

    res = redrive("--yes", "-o", "jsonl")
    assert res.code == 0, res.err
    (line,) = res.jsonl()
    assert_schema("redrive-message", line)
    assert {k["key"]["id"]: k["outcome"] for k in line["keys"]} == {
        "a": "refired", "b": "already delivered", "poison": "refired", "d": "refired"}
    assert line["result"] == "deleted"
    assert refires(world) == Counter({"a": 1, "poison": 1, "d": 1})
    assert queue_bodies(world) == []
    assert "1 deleted" in res.err

    res = redrive("--yes")
    assert res.code == 0, res.err
    assert "nothing to redrive" in res.err
    assert refires(world) == Counter({"a": 1, "poison": 1, "d": 1})


def test_a_failed_refire_keeps_its_message_and_a_key_is_fired_once_per_run(
        world: dict[str, Any]) -> None:
    put(world, "a", "b", "c")
    put(world, "huge", big=True)
    send(world, fail(world, ["a", "b"]))
    send(world, fail(world, ["b", "c", "huge"]))  # b is in both messages
    res = redrive("--yes", "-o", "json")
    assert res.code == 3, res.err
    doc = res.json()
    assert_schema("redrive", doc)  # a run: its refire plan and summary included
    assert doc["plan"] is not None and doc["summary"] is not None
    by_keys = {tuple(k["key"]["id"] for k in m["keys"]): m for m in doc["messages"]}
    assert by_keys[("a", "b")]["result"] == "deleted"
    kept = by_keys[("b", "c", "huge")]
    assert kept["result"] == "kept" and "not refired (failed)" in kept["result_reason"]
    assert {k["key"]["id"]: k["outcome"] for k in kept["keys"]}["huge"] == "failed"
    assert refires(world) == Counter({"a": 1, "b": 1, "c": 1})  # b once, huge never
    assert "1 message(s) stay" in res.err
    (left,) = queue_bodies(world)
    assert json.loads(left)["DDBStreamBatchInfo"]["batchSize"] == 3

    # the record is fixed (shrunk): the next run refires it and removes the message
    world["ddb"].update_item(TableName="outbox", Key={"id": {"S": "huge"}},
                             UpdateExpression="REMOVE body")
    res = redrive("--yes")
    assert res.code == 0, res.err
    assert refires(world) == Counter({"a": 1, "b": 2, "c": 2, "huge": 1})  # its 3 keys again
    assert queue_bodies(world) == []


def test_records_the_stream_no_longer_holds_are_expired_and_stay(world: dict[str, Any]) -> None:
    put(world, "a")
    trimmed = fail(world, ["a"], startSequenceNumber="100000000000000000001",
                   endSequenceNumber="100000000000000000002")
    send(world, trimmed)
    res = redrive("--yes", "-o", "json")
    assert res.code == 3, res.err
    (msg,) = res.json()["messages"]
    assert msg["keys"] == [] and msg["expired_records"] == 1
    assert "trimmed" in msg["expired_reason"] and msg["result"] == "kept"
    assert "--drop-expired" in res.err
    assert len(queue_bodies(world)) == 1 and refires(world) == Counter()
    res = redrive("--yes", "--drop-expired")
    assert res.code == 0, res.err
    assert queue_bodies(world) == []


def test_malformed_other_table_and_keep_leave_messages_in_place(world: dict[str, Any]) -> None:
    put(world, "a")
    other = fail(world, ["a"])
    other["DDBStreamBatchInfo"]["streamArn"] = other["DDBStreamBatchInfo"][
        "streamArn"].replace("table/outbox/", "table/orders/")
    send(world, "not an invocation record")
    send(world, other)
    send(world, fail(world, ["a"]))
    before = queue_bodies(world)
    res = redrive("--yes", "--keep", "-o", "json")
    assert res.code == 3, res.err  # the malformed one stays: a person must look at it
    assert_schema("redrive", res.json())
    results = sorted((m["kind"], m["result"]) for m in res.json()["messages"])
    assert results == [("malformed", "left"), ("other-table", "left"), ("redrive", "kept")]
    assert queue_bodies(world) == before  # --keep: nothing removed
    assert refires(world) == Counter({"a": 1})
    res = redrive("--yes", "-o", "json")
    assert res.code == 3
    assert sorted(m["result"] for m in res.json()["messages"]) == ["deleted", "left", "left"]
    assert queue_bodies(world) == sorted(["not an invocation record", json.dumps(other)])


def test_empty_queue_and_usage_errors(world: dict[str, Any]) -> None:
    res = redrive("--yes")
    assert res.code == 0 and "nothing to redrive" in res.err
    assert redrive("--dry-run", "-o", "json").json()["messages"] == []
    assert redrive("--queue", world["url"], "--bucket", "failures").code == 2
    assert redrive("--queue", world["url"], "--delete", "--yes").code == 2
    assert redrive("--prefix", "x/").code == 2
    assert redrive("--keep", "--drop-expired").code == 2


def test_refuses_without_yes_and_leaves_the_message_visible(world: dict[str, Any]) -> None:
    put(world, "a")
    send(world, fail(world, ["a"]))
    res = redrive()
    assert res.code == 5 and "without --yes" in res.err
    assert len(queue_bodies(world)) == 1 and refires(world) == Counter()


def test_s3_keys_come_from_the_payload_even_when_the_stream_lacks_the_pointer(
        world: dict[str, Any]) -> None:
    put(world, "a", "b")
    body = fail(world, ["a", "b"], startSequenceNumber="100000000000000000001",
                endSequenceNumber="100000000000000000002")
    event = {"Records": [r for r in stream_records(world) if r["eventName"] == "INSERT"]}
    body["payload"] = json.dumps(event)
    key = "aws/lambda/u/shardId-1/2026/01/01/2026-01-01T00.00.00-1"
    world["s3"].put_object(Bucket="failures", Key=key, Body=json.dumps(body).encode())
    world["s3"].put_object(Bucket="failures", Key=key + "x", Body=b"junk")
    res = redrive("--bucket", "failures", "--dry-run", "-o", "json")
    assert res.code == 0, res.err
    good = next(m for m in res.json()["messages"] if m["kind"] == "redrive")
    assert good["key_source"] == "payload" and good["expired_records"] == 0
    assert [k["key"]["id"] for k in good["keys"]] == ["a", "b"]
    res = redrive("--bucket", "failures", "--yes", "-o", "json")
    assert res.code == 3, res.err  # the junk object stays
    assert refires(world) == Counter({"a": 1, "b": 1})
    tags = world["s3"].get_object_tagging(Bucket="failures", Key=key)["TagSet"]
    assert {"Key": "streamq-redrive", "Value": "done"} in tags
    res = redrive("--bucket", "failures", "--yes", "-o", "json")
    assert [m["kind"] for m in res.json()["messages"]] == ["malformed"]  # done: not again
    assert refires(world) == Counter({"a": 1, "b": 1})


def test_resume_reuses_the_run_token_so_nothing_fires_twice(world: dict[str, Any],
                                                            tmp_path: Any) -> None:
    put(world, "a", "b")
    send(world, fail(world, ["a", "b"]))
    journal = tmp_path / "run.jsonl"
    res = redrive("--yes", "--keep", "--journal", str(journal))
    assert res.code == 0, res.err
    assert refires(world) == Counter({"a": 1, "b": 1})
    res = redrive("--yes", "--resume", str(journal), "-o", "json")
    assert res.code == 0, res.err
    (msg,) = res.json()["messages"]
    assert {k["outcome"] for k in msg["keys"]} == {"refired"} and msg["result"] == "deleted"
    assert refires(world) == Counter({"a": 1, "b": 1})  # the same run: no second write
    assert '"resumed"' in journal.read_text()


def test_sns_destination_is_explained(world: dict[str, Any]) -> None:
    import boto3

    lam = boto3.client("lambda", endpoint_url=world["endpoint"], region_name="us-east-1")
    lam.update_event_source_mapping(UUID=world["mapping"]["UUID"], DestinationConfig={
        "OnFailure": {"Destination": "arn:aws:sns:us-east-1:123456789012:failures"}})
    res = redrive("--dry-run")
    assert res.code == 2 and "subscribe an SQS queue to the topic and pass --queue" in res.err


def test_help_has_examples_and_imports_no_boto3() -> None:
    from tests.test_startup import _probe

    res = _probe(["redrive", "--help"])
    assert "HEAVY=\n" in res.stderr or res.stderr.rstrip().endswith("HEAVY="), res.stderr
    for text in ("streamq redrive --dry-run", "--queue", "--bucket", "--max-messages",
                 "--drop-expired", "--keep", "--resume"):
        assert text in res.stdout, text


def test_max_messages_reads_at_most_n_and_leaves_the_rest(world: dict[str, Any]) -> None:
    put(world, "a", "b", "c")
    for key in ("a", "b", "c"):
        send(world, fail(world, [key]))
    res = redrive("--yes", "--max-messages", "2", "-o", "json")
    assert res.code == 0, res.err
    assert len(res.json()["messages"]) == 2
    assert len(queue_bodies(world)) == 1 and sum(refires(world).values()) == 2


def test_an_interrupted_run_removes_no_message_it_did_not_finish(world: dict[str, Any]) -> None:
    import threading

    from streamq import redrive as lib
    from streamq.errors import Interrupted

    put(world, "a", "b")
    send(world, fail(world, ["a", "b"]))
    settings = Settings(endpoint_url=world["endpoint"], region="us-east-1", table="outbox")
    job = lib.prepare(world["aws"], settings)
    stop = threading.Event()
    stop.set()  # Ctrl-C before the first write
    lib.execute(job, stop=stop)
    assert isinstance(job.outcome_error(), Interrupted)
    (entry,) = job.entries
    assert entry.result == "kept" and {k.outcome for k in entry.keys} == {"not reached"}
    assert len(queue_bodies(world)) == 1 and refires(world) == Counter()
