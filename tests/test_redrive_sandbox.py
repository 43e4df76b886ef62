"""End to end in the sandbox: a handler that raises for a poison pattern, a trigger with
no retries and no bisect, the on-failure destination fills (SQS, then S3); the bug is
fixed; ``streamq --sandbox redrive`` re-fires exactly the failed batches' keys (one MODIFY
each in the stream), removes exactly the messages fully handled, and a second run does
nothing new."""

from __future__ import annotations

import json
import time
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.helpers import CliRunner, fill_to_limit

pytestmark = pytest.mark.slow
cli = CliRunner()

HANDLER = '''
import os
from pathlib import Path

import boto3

_ddb = []


def handler(event, context):
    """Raises for a batch holding a poison record until the file "fixed" exists (the fix
    is deployed); otherwise delivers every record (deletes it from the outbox)."""
    fixed = Path(os.environ["STREAMQ_SANDBOX_DIR"], "fixed").exists()
    ids = [r["dynamodb"]["Keys"]["id"]["S"] for r in event["Records"]]
    if not fixed and any(i.startswith("poison") for i in ids):
        raise ValueError("cannot handle a poison record")
    if not _ddb:
        _ddb.append(boto3.client("dynamodb"))
    for r in event["Records"]:
        if r["eventName"] in ("INSERT", "MODIFY"):
            _ddb[0].delete_item(TableName="mail_outbox", Key=r["dynamodb"]["Keys"])
    return {"batchItemFailures": []}
'''


@pytest.fixture()
def sandbox(request: pytest.FixtureRequest, tmp_path: Path,
            monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, Any]]:
    import boto3

    on_failure = request.param
    (tmp_path / "redrive_handler.py").write_text(HANDLER)
    state_dir = tmp_path / "sbx"
    monkeypatch.setenv("STREAMQ_SANDBOX_DIR", str(state_dir))
    res = cli("sandbox", "up", "--handler", "redrive_handler:handler", "--on-failure",
              on_failure, "-o", "json")
    assert res.code == 0, res.err
    try:
        up = res.json()
        assert up["on_failure"] == on_failure
        kw = {"endpoint_url": up["endpoint"], "region_name": "us-east-1",
              "aws_access_key_id": "x", "aws_secret_access_key": "x"}
        res = cli("--sandbox", "config-trigger", "--retry-attempts", "0", "--no-bisect",
                  "--yes")
        assert res.code == 0, res.err
        yield {"dir": state_dir, "up": up, "ddb": boto3.client("dynamodb", **kw),
               "sqs": boto3.client("sqs", **kw), "s3": boto3.client("s3", **kw),
               "streams": boto3.client("dynamodbstreams", **kw)}
    finally:
        cli("sandbox", "down", "--yes")


def wait_for(what: str, check: Callable[[], bool], timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.2)


def poller(sbx: dict[str, Any]) -> dict[str, Any]:
    return dict(json.loads((sbx["dir"] / "poller.json").read_text()))


def put(sbx: dict[str, Any], *ids: str, big: bool = False) -> None:
    now = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    for i in ids:
        item = {"id": {"S": i}, "recipient": {"S": f"{i}@example.com"},
                "created_at": {"S": now}}
        if big:  # so large it cannot take the refire's attributes
            item = fill_to_limit(sbx["ddb"], "mail_history", item)
        sbx["ddb"].put_item(TableName="mail_outbox", Item=item)


def outbox(sbx: dict[str, Any]) -> set[str]:
    return {it["id"]["S"] for it in sbx["ddb"].scan(TableName="mail_outbox",
                                                     ProjectionExpression="id")["Items"]}


def refires(sbx: dict[str, Any]) -> Counter[str]:
    """MODIFY records carrying refired_at in the stream, by key."""
    from streamq.aws import Aws
    from streamq.config import Settings
    from streamq.stream import read_stream

    aws = Aws(Settings(endpoint_url=sbx["up"]["endpoint"], region="us-east-1", sandbox=True))
    arn = sbx["ddb"].describe_table(TableName="mail_outbox")["Table"]["LatestStreamArn"]
    return Counter(r["dynamodb"]["Keys"]["id"]["S"] for r in read_stream(aws, arn)
                   if r["eventName"] == "MODIFY"
                   and "refired_at" in r["dynamodb"].get("NewImage", {}))


def fail_batch(sbx: dict[str, Any], ids: list[str], n: int, big: str | None = None) -> None:
    """Insert ``ids`` (and the large record ``big``) at once; wait for the trigger to give
    up on their batch (the ``n``-th on-failure message)."""
    put(sbx, *ids)
    if big:
        put(sbx, big, big=True)
    wait_for("the on-failure message", lambda: poller(sbx)["dlq_messages"] >= n)


def queue(sbx: dict[str, Any]) -> int:
    attrs = sbx["sqs"].get_queue_attributes(QueueUrl=sbx["up"]["queue_url"], AttributeNames=[
        "ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"])["Attributes"]
    return int(attrs["ApproximateNumberOfMessages"]) + int(
        attrs["ApproximateNumberOfMessagesNotVisible"])


@pytest.mark.parametrize("sandbox", ["sqs"], indirect=True)
def test_redrive_from_the_sqs_destination(sandbox: dict[str, Any]) -> None:
    sbx = sandbox
    first = ["ok-1", "poison-1", "ok-2"]
    second = ["ok-3", "poison-2"]
    fail_batch(sbx, first, 1)
    fail_batch(sbx, second, 2, big="huge-1")
    assert outbox(sbx) == {*first, *second, "huge-1"}  # nothing was delivered
    assert queue(sbx) == 2

    res = cli("--sandbox", "redrive", "--dry-run", "-o", "json")
    assert res.code == 0, res.err
    msgs = res.json()["messages"]
    assert sorted([k["key"]["id"] for k in m["keys"]] for m in msgs) == [
        first, [*second, "huge-1"]]  # exactly the failed batches' keys, in stream order
    assert {k["status"] for m in msgs for k in m["keys"]} == {"pending"}
    assert all(m["key_source"] == "stream" and m["record"]["condition"] ==
               "RetryAttemptsExhausted" for m in msgs)
    assert refires(sbx) == Counter() and queue(sbx) == 2  # a dry run changes nothing

    (sbx["dir"] / "fixed").touch()  # deploy the fix
    res = cli("--sandbox", "redrive", "--yes", "-o", "json")
    assert res.code == 3, res.err  # the large record cannot be refired: its message stays
    results = {m["keys"][0]["key"]["id"]: m["result"] for m in res.json()["messages"]}
    assert results == {"ok-1": "deleted", "ok-3": "kept"}
    fired = Counter({k: 1 for k in [*first, *second]})
    assert refires(sbx) == fired  # one MODIFY per key still in the outbox, none for huge-1
    assert queue(sbx) == 1
    wait_for("the refired records to be delivered", lambda: outbox(sbx) == {"huge-1"})

    res = cli("--sandbox", "redrive", "--yes", "-o", "json")
    assert res.code == 3, res.err
    (msg,) = res.json()["messages"]
    assert {k["key"]["id"]: k["outcome"] for k in msg["keys"]} == {
        "ok-3": "already delivered", "poison-2": "already delivered", "huge-1": "failed"}
    assert refires(sbx) == fired and queue(sbx) == 1  # nothing new
    assert poller(sbx)["dlq_messages"] == 2  # and the trigger gave up on nothing more


@pytest.mark.parametrize("sandbox", ["s3"], indirect=True)
def test_redrive_from_the_s3_destination(sandbox: dict[str, Any]) -> None:
    sbx = sandbox
    bucket = sbx["up"]["bucket"]
    batch = ["ok-1", "poison-1", "ok-2"]
    fail_batch(sbx, batch, 1)
    (obj,) = sbx["s3"].list_objects_v2(Bucket=bucket)["Contents"]
    real = json.loads(sbx["s3"].get_object(Bucket=bucket, Key=obj["Key"])["Body"].read())
    # A record pointing at sequence numbers the shard does not hold (as after the stream
    # trimmed them): its keys still come from the payload.
    old = dict(real)
    old["DDBStreamBatchInfo"] = {**real["DDBStreamBatchInfo"],
                                 "startSequenceNumber": "100000000000000000001",
                                 "endSequenceNumber": "100000000000000000002", "batchSize": 2}
    old["payload"] = json.dumps({"Records": json.loads(real["payload"])["Records"][:2]})
    prefix = obj["Key"].rsplit("/", 1)[0]
    sbx["s3"].put_object(Bucket=bucket, Key=f"{prefix}/2020-01-01T00.00.00-old",
                         Body=json.dumps(old).encode())
    sbx["s3"].put_object(Bucket=bucket, Key=f"{prefix}/2020-01-01T00.00.01-junk",
                         Body=b"this is not an invocation record")

    res = cli("--sandbox", "redrive", "--dry-run", "-o", "json")
    assert res.code == 0, res.err
    msgs = {m["id"].rsplit("-", 1)[-1]: m for m in res.json()["messages"]}
    assert set(msgs) == {"old", "junk", obj["Key"].rsplit("-", 1)[-1]}
    assert [k["key"]["id"] for k in msgs["old"]["keys"]] == batch[:2]
    assert msgs["old"]["key_source"] == "payload" and msgs["old"]["expired_records"] == 0
    assert msgs["junk"]["kind"] == "malformed" and msgs["junk"]["result"] == "left"
    real_msg = next(m for k, m in msgs.items() if k not in ("old", "junk"))
    assert [k["key"]["id"] for k in real_msg["keys"]] == batch

    (sbx["dir"] / "fixed").touch()
    res = cli("--sandbox", "redrive", "--yes", "-o", "json")
    assert res.code == 3, res.err  # the junk record stays
    assert sorted(m["result"] for m in res.json()["messages"]) == ["left", "marked", "marked"]
    assert refires(sbx) == Counter({k: 1 for k in batch})  # ok-1 named twice, fired once
    wait_for("the refired records to be delivered", lambda: not outbox(sbx) & set(batch))
    objects = {o["Key"] for o in sbx["s3"].list_objects_v2(Bucket=bucket)["Contents"]}
    assert len(objects) == 3  # nothing lost: tagged, not deleted

    res = cli("--sandbox", "redrive", "--yes", "-o", "json")
    assert [m["kind"] for m in res.json()["messages"]] == ["malformed"]
    assert refires(sbx) == Counter({k: 1 for k in batch})  # nothing new
