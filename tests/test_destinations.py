"""On-failure destinations: parsing the documented invocation record, reading SQS and S3
destinations against moto over HTTP, and the sandbox trigger writing S3 records."""

from __future__ import annotations

import copy
import json
import re
import time
from typing import Any

import pytest

from streamq.aws import Aws
from streamq.config import Settings
from streamq.destinations import (
    DONE_TAG,
    NotAnInvocationRecord,
    S3Bucket,
    SqsQueue,
    bucket_name_of,
    from_trigger,
    parse_record,
    queue_url_of,
)
from streamq.errors import BadInput, NotFound

# The example Lambda sends to an SQS or SNS destination for a DynamoDB stream (Lambda
# Developer Guide, "services-dynamodb-errors").
DOC_EXAMPLE: dict[str, Any] = {
    "requestContext": {
        "requestId": "316aa6d0-8154-xmpl-9af7-85d5f4a6bc81",
        "functionArn": "arn:aws:lambda:us-east-2:123456789012:function:myfunction",
        "condition": "RetryAttemptsExhausted",
        "approximateInvokeCount": 1,
    },
    "responseContext": {"statusCode": 200, "executedVersion": "$LATEST",
                        "functionError": "Unhandled"},
    "version": "1.0",
    "timestamp": "2019-11-14T00:13:49.717Z",
    "DDBStreamBatchInfo": {
        "shardId": "shardId-00000001573689847184-864758bb",
        "startSequenceNumber": "800000000003126276362",
        "endSequenceNumber": "800000000003126276362",
        "approximateArrivalOfFirstRecord": "2019-11-14T00:13:19Z",
        "approximateArrivalOfLastRecord": "2019-11-14T00:13:19Z",
        "batchSize": 1,
        "streamArn": "arn:aws:dynamodb:us-east-2:123456789012:table/mytable/stream/"
                     "2019-11-14T00:04:06.388",
    },
}

EVENT = {"Records": [{
    "eventID": "1", "eventName": "INSERT", "eventVersion": "1.1", "eventSource": "aws:dynamodb",
    "awsRegion": "us-east-2",
    "dynamodb": {"Keys": {"id": {"S": "msg-1"}}, "NewImage": {"id": {"S": "msg-1"}},
                 "SequenceNumber": "800000000003126276362", "SizeBytes": 20,
                 "StreamViewType": "NEW_AND_OLD_IMAGES"},
    "eventSourceARN": DOC_EXAMPLE["DDBStreamBatchInfo"]["streamArn"]}]}


def test_parses_the_documented_sqs_record() -> None:
    rec = parse_record(json.dumps(DOC_EXAMPLE))
    assert rec.condition == "RetryAttemptsExhausted"
    assert rec.condition_text == "retries exhausted"
    assert rec.invoke_count == 1 and rec.function_error == "Unhandled"
    assert rec.batch.shard_id == "shardId-00000001573689847184-864758bb"
    assert rec.batch.start == rec.batch.end == "800000000003126276362"
    assert rec.batch.batch_size == 1 and rec.batch.table == "mytable"
    assert rec.batch.region == "us-east-2"
    assert rec.batch.first_arrival == "2019-11-14T00:13:19Z"
    assert rec.records is None  # SQS and SNS carry no records


def test_parses_the_documented_s3_record_with_payload_as_escaped_json() -> None:
    doc = {**DOC_EXAMPLE, "payload": json.dumps(EVENT)}
    rec = parse_record(json.dumps(doc).encode())
    assert rec.records is not None
    assert [r["dynamodb"]["Keys"] for r in rec.records] == [{"id": {"S": "msg-1"}}]
    # a payload given as an object (not escaped) is read as well
    assert parse_record(json.dumps({**DOC_EXAMPLE, "payload": EVENT})).records == rec.records


def test_reads_a_record_inside_an_sns_envelope() -> None:
    envelope = {"Type": "Notification", "MessageId": "x", "TopicArn": "arn:aws:sns:us-east-2:"
                "123456789012:failures", "Message": json.dumps(DOC_EXAMPLE)}
    assert parse_record(json.dumps(envelope)).batch.table == "mytable"


def _broken(path: list[str], value: Any) -> str:
    doc = copy.deepcopy(DOC_EXAMPLE)
    target = doc
    for part in path[:-1]:
        target = target[part]
    if value is KeyError:
        del target[path[-1]]
    else:
        target[path[-1]] = value
    return json.dumps(doc)


@pytest.mark.parametrize("body, why", [
    ("not json", "not JSON"),
    (b"\xff\xfe", "not UTF-8"),
    ("[1, 2]", "not a JSON object"),
    (json.dumps({"hello": "world"}), "no DDBStreamBatchInfo"),
    (json.dumps({**{k: v for k, v in DOC_EXAMPLE.items() if k != "DDBStreamBatchInfo"},
                 "KinesisBatchInfo": {}}), "KinesisBatchInfo"),
    (_broken(["requestContext"], KeyError), "requestContext"),
    (_broken(["requestContext", "condition"], ""), "condition"),
    (_broken(["DDBStreamBatchInfo", "shardId"], KeyError), "shardId"),
    (_broken(["DDBStreamBatchInfo", "startSequenceNumber"], "12ab"), "sequence number"),
    (_broken(["DDBStreamBatchInfo", "endSequenceNumber"], "1"), "after"),
    (_broken(["DDBStreamBatchInfo", "streamArn"], "arn:aws:kinesis:x"), "stream ARN"),
    (_broken(["version"], KeyError), "version"),
    (json.dumps({**DOC_EXAMPLE, "payload": "{oops"}), "payload is not JSON"),
    (json.dumps({**DOC_EXAMPLE, "payload": json.dumps({"Records": [{"dynamodb": {}}]})}),
     "payload record 0"),
    (json.dumps({"Type": "Notification", "Message": "oops"}), "SNS notification"),
])
def test_rejects_what_is_not_a_stream_invocation_record(body: Any, why: str) -> None:
    with pytest.raises(NotAnInvocationRecord, match=re.escape(why)):
        parse_record(body)


def test_destination_from_the_trigger() -> None:
    sqs = from_trigger({"DestinationConfig": {"OnFailure": {
        "Destination": "arn:aws:sqs:us-east-1:123456789012:dlq"}}})
    assert sqs.kind == "sqs" and sqs.arn and sqs.arn.endswith(":dlq")
    s3 = from_trigger({"UUID": "u-1", "DestinationConfig": {"OnFailure": {
        "Destination": "arn:aws:s3:::failures"}}})
    assert (s3.kind, s3.bucket, s3.prefix) == ("s3", "failures", "aws/lambda/u-1/")
    with pytest.raises(BadInput, match="subscribe an SQS queue"):
        from_trigger({"DestinationConfig": {"OnFailure": {
            "Destination": "arn:aws:sns:us-east-1:123456789012:topic"}}})
    with pytest.raises(NotFound, match="no on-failure destination"):
        from_trigger({"DestinationConfig": {"OnFailure": {}}})


def test_bucket_and_queue_arguments() -> None:
    assert bucket_name_of("s3://my-bucket/") == "my-bucket"
    assert bucket_name_of("arn:aws:s3:::my-bucket") == "my-bucket"
    for bad in ("My_Bucket", "arn:aws:sqs:us-east-1:1:q", "x"):
        with pytest.raises(BadInput):
            bucket_name_of(bad)
    aws = Aws(Settings(region="us-east-1"))
    assert queue_url_of(aws, "https://sqs.us-east-1.amazonaws.com/1/q").endswith("/q")
    for bad in ("q", "https://", "arn:aws:sns:us-east-1:1:t"):
        with pytest.raises(BadInput):
            queue_url_of(aws, bad)


# --------------------------------------------------------------------------- SQS


@pytest.fixture()
def aws(endpoint: str) -> Aws:
    return Aws(Settings(endpoint_url=endpoint, region="us-east-1"))


def _queue(endpoint: str, n: int) -> tuple[Any, str]:
    import boto3

    sqs = boto3.client("sqs", endpoint_url=endpoint, region_name="us-east-1")
    url = sqs.create_queue(QueueName="failures")["QueueUrl"]
    for i in range(n):
        sqs.send_message(QueueUrl=url, MessageBody=json.dumps(DOC_EXAMPLE) if i % 2 == 0
                         else f"garbage {i}")
    return sqs, url


def _visible(sqs: Any, url: str) -> int:
    attrs = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=[
        "ApproximateNumberOfMessages"])["Attributes"]
    return int(attrs["ApproximateNumberOfMessages"])


def test_sqs_reads_at_most_n_holds_them_and_settles_only_what_it_is_given(
        endpoint: str, aws: Aws) -> None:
    sqs, url = _queue(endpoint, 13)
    q = SqsQueue(aws, url, visibility=30)
    msgs = q.read(12)
    assert len(msgs) == 12 and len({m.ident for m in msgs}) == 12
    assert sum(m.record is not None for m in msgs) + sum(m.error is not None for m in msgs) == 12
    assert all(m.sent_at and m.receive_count == 1 for m in msgs)
    assert _visible(sqs, url) == 1  # the 12 are hidden while held
    good = [m for m in msgs if m.record is not None]
    assert all(v is None for v in q.settle(good[:3]).values())
    q.release()  # the rest reappear at once
    assert _visible(sqs, url) == 10
    again = q.read(100)
    assert len(again) == 10 and not {m.ident for m in again} & {m.ident for m in good[:3]}
    q.release()


def test_sqs_lease_keeps_messages_hidden_beyond_their_timeout(endpoint: str, aws: Aws) -> None:
    sqs, url = _queue(endpoint, 1)
    q = SqsQueue(aws, url, visibility=1)
    assert len(q.read(5)) == 1
    with q.lease():
        time.sleep(1.8)
        assert _visible(sqs, url) == 0  # renewed before the 1 s ran out
    q.release()
    assert _visible(sqs, url) == 1


def test_sqs_empty_queue(endpoint: str, aws: Aws) -> None:
    _, url = _queue(endpoint, 0)
    started = time.monotonic()
    assert SqsQueue(aws, url).read(10) == []
    assert time.monotonic() - started < 5


# --------------------------------------------------------------------------- S3


def test_s3_reads_records_skips_done_ones_and_tags_or_deletes(endpoint: str, aws: Aws) -> None:
    import boto3

    s3 = boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1")
    s3.create_bucket(Bucket="failures")
    keys = [f"aws/lambda/u-1/shardId-1/2026/01/0{i}/2026-01-0{i}T00.00.00-{i}"
            for i in range(1, 5)]
    for i, key in enumerate(keys):
        body = json.dumps({**DOC_EXAMPLE, "payload": json.dumps(EVENT)}) if i else "junk"
        s3.put_object(Bucket="failures", Key=key, Body=body.encode())
        time.sleep(0.01)
    s3.put_object(Bucket="failures", Key="elsewhere/x", Body=b"{}")
    s3.put_object_tagging(Bucket="failures", Key=keys[1],
                          Tagging={"TagSet": [{"Key": "team", "Value": "mail"}]})
    bucket = S3Bucket(aws, "failures", "aws/lambda/u-1/")
    msgs = bucket.read(10)
    assert [m.ident for m in msgs] == keys
    assert msgs[0].error == "not JSON" and all(m.record and m.record.records for m in msgs[1:])
    assert bucket.settle(msgs[1:2]) == {keys[1]: None}
    tags = s3.get_object_tagging(Bucket="failures", Key=keys[1])["TagSet"]
    assert {(t["Key"], t["Value"]) for t in tags} == {("team", "mail"), (DONE_TAG, "done")}
    assert bucket.settle(msgs[2:3], delete=True) == {keys[2]: None}
    again = S3Bucket(aws, "failures", "aws/lambda/u-1/")
    assert [m.ident for m in again.read(10)] == [keys[0], keys[3]]
    assert again.done_before == 1
    assert len(S3Bucket(aws, "failures", "aws/lambda/u-1/").read(1)) == 1


# --------------------------------------------------------------------------- sandbox


S3_KEY = re.compile(r"^aws/lambda/(?P<uuid>[0-9a-f-]{36})/(?P<shard>shardId-[\w-]+)/"
                    r"(?P<y>\d{4})/(?P<m>\d{2})/(?P<d>\d{2})/"
                    r"(?P=y)-(?P=m)-(?P=d)T\d{2}\.\d{2}\.\d{2}-[0-9a-f-]{36}$")


def test_sandbox_trigger_writes_the_documented_s3_record(endpoint: str, ddb: Any) -> None:
    import boto3

    from streamq.sandbox.poller import Poller
    from tests.helpers import create_table, create_trigger

    create_table(ddb, "outbox")
    s3 = boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1")
    s3.create_bucket(Bucket="failures")
    mapping = create_trigger(endpoint, "outbox", MaximumRetryAttempts=0,
                             BisectBatchOnFunctionError=False,
                             DestinationConfig={"OnFailure": {
                                 "Destination": "arn:aws:s3:::failures"}})
    seen: list[dict[str, Any]] = []

    def handler(event: dict[str, Any], context: Any) -> None:
        seen.append(copy.deepcopy(event))
        raise ValueError("poison")

    poller = Poller(Aws(Settings(endpoint_url=endpoint, region="us-east-1")), table="outbox",
                    function="sender", handler=handler, retry_delay=0.01, poll_interval=0.01)
    for i in ("a", "b", "c"):
        ddb.put_item(TableName="outbox", Item={"id": {"S": i}})
    deadline = time.monotonic() + 10
    while poller.counters.dlq_messages < 1:
        assert time.monotonic() < deadline, poller.counters
        poller.step()
    (obj,) = s3.list_objects_v2(Bucket="failures")["Contents"]
    m = S3_KEY.match(obj["Key"])
    assert m and m["uuid"] == mapping["UUID"]
    body = json.loads(s3.get_object(Bucket="failures", Key=obj["Key"])["Body"].read())
    assert isinstance(body["payload"], str)  # an escaped JSON string, as documented
    assert json.loads(body["payload"]) == seen[0]
    rec = parse_record(json.dumps(body))
    assert m["shard"] == rec.batch.shard_id and rec.batch.batch_size == 3
    assert rec.records == seen[0]["Records"]


def test_sandbox_world_sends_to_the_bucket_with_on_failure_s3(endpoint: str) -> None:
    import boto3

    from streamq.sandbox.world import BUCKET_NAME, provision

    world = provision(Aws(Settings(endpoint_url=endpoint, region="us-east-1")),
                      on_failure="s3")
    lam = boto3.client("lambda", endpoint_url=endpoint, region_name="us-east-1")
    mapping = lam.get_event_source_mapping(UUID=world.mapping_uuid)
    assert mapping["DestinationConfig"]["OnFailure"]["Destination"] == (
        f"arn:aws:s3:::{BUCKET_NAME}")
    assert world.on_failure == "s3" and world.queue_url  # the queue exists too
