"""The shard reader against moto's DynamoDB Streams over HTTP."""

from __future__ import annotations

from typing import Any

import pytest

from streamq.aws import Aws
from streamq.config import Settings
from streamq.stream import (
    Shard,
    ShardReader,
    describe_stream,
    lambda_record,
    lineage_order,
    read_stream,
    table_stream_arn,
)
from tests.helpers import create_table


def _aws(endpoint: str) -> Aws:
    return Aws(Settings(endpoint_url=endpoint, region="us-east-1"))


def test_lineage_order_puts_parents_before_children() -> None:
    shards = [
        Shard("c2", "b", "300"),
        Shard("b", "a", "200", "299"),
        Shard("a", None, "100", "199"),
        Shard("c1", "b", "250"),
        Shard("x", "trimmed-away", "50"),
    ]
    order = [s.shard_id for s in lineage_order(shards)]
    assert order.index("a") < order.index("b") < order.index("c1") < order.index("c2")
    assert "x" in order and order.index("x") < order.index("a")  # orphan: a root, by seq


def test_read_stream_decodes_records_in_order(endpoint: str, ddb: Any) -> None:
    create_table(ddb, "t")
    ddb.put_item(TableName="t", Item={"id": {"S": "a"}, "n": {"N": "1"},
                                      "blob": {"B": b"\x00\x01"}})
    ddb.update_item(TableName="t", Key={"id": {"S": "a"}}, UpdateExpression="SET n = :two",
                    ExpressionAttributeValues={":two": {"N": "2"}})
    ddb.delete_item(TableName="t", Key={"id": {"S": "a"}})
    aws = _aws(endpoint)
    arn = table_stream_arn(aws, "t")
    records = list(read_stream(aws, arn))
    assert [r["eventName"] for r in records] == ["INSERT", "MODIFY", "REMOVE"]
    first, second, third = records
    assert first["eventVersion"] == "1.1" and first["eventSource"] == "aws:dynamodb"
    assert first["eventSourceARN"] == arn
    assert first["dynamodb"]["Keys"] == {"id": {"S": "a"}}
    assert first["dynamodb"]["NewImage"]["blob"] == {"B": "AAE="}  # base64, as Lambda sends
    assert "OldImage" not in first["dynamodb"]
    assert second["dynamodb"]["OldImage"]["n"] == {"N": "1"}
    assert second["dynamodb"]["NewImage"]["n"] == {"N": "2"}
    assert "NewImage" not in third["dynamodb"]
    assert isinstance(first["dynamodb"]["ApproximateCreationDateTime"], int)
    seqs = [int(r["dynamodb"]["SequenceNumber"]) for r in records]
    assert seqs == sorted(seqs) and len(set(seqs)) == 3


def test_records_parse_as_powertools_dynamodb_stream_event(endpoint: str, ddb: Any) -> None:
    from aws_lambda_powertools.utilities.data_classes import DynamoDBStreamEvent

    create_table(ddb, "t")
    ddb.put_item(TableName="t", Item={"id": {"S": "a"}, "to": {"S": "x@example.com"}})
    aws = _aws(endpoint)
    event = DynamoDBStreamEvent({"Records": list(read_stream(aws, table_stream_arn(aws, "t")))})
    (rec,) = list(event.records)
    assert rec.event_name is not None and rec.event_name.name == "INSERT"
    assert rec.dynamodb is not None
    assert rec.dynamodb.new_image == {"id": "a", "to": "x@example.com"}
    assert rec.dynamodb.keys == {"id": "a"}
    assert rec.dynamodb.sequence_number is not None


def test_reader_resumes_after_its_checkpoint(endpoint: str, ddb: Any) -> None:
    create_table(ddb, "t")
    for i in range(5):
        ddb.put_item(TableName="t", Item={"id": {"S": f"k{i}"}})
    aws = _aws(endpoint)
    arn = table_stream_arn(aws, "t")
    (shard,) = describe_stream(aws, arn).shards
    reader = ShardReader(aws, arn, shard)
    page = reader.read(limit=2)
    assert [r["dynamodb"]["Keys"]["id"]["S"] for r in page] == ["k0", "k1"]
    reader.commit(page[-1]["dynamodb"]["SequenceNumber"])
    again = ShardReader(aws, arn, shard, checkpoint=reader.checkpoint)
    rest = again.read()
    assert [r["dynamodb"]["Keys"]["id"]["S"] for r in rest] == ["k2", "k3", "k4"]
    assert again.read() == []  # open shard, nothing new: empty page, not exhausted
    ddb.put_item(TableName="t", Item={"id": {"S": "k5"}})
    assert [r["dynamodb"]["Keys"]["id"]["S"] for r in again.read()] == ["k5"]


def test_table_without_stream_is_not_found(endpoint: str, ddb: Any) -> None:
    from streamq.errors import NotFound

    create_table(ddb, "plain", stream=False)
    with pytest.raises(NotFound, match="no stream"):
        table_stream_arn(_aws(endpoint), "plain")


def test_lambda_record_converts_datetime_and_nested_binary() -> None:
    import datetime as dt

    when = dt.datetime(2024, 1, 1, tzinfo=dt.timezone.utc)
    raw = {"eventID": "e1", "eventName": "INSERT", "awsRegion": "eu-west-1",
           "dynamodb": {"ApproximateCreationDateTime": when,
                        "Keys": {"id": {"S": "a"}},
                        "NewImage": {"id": {"S": "a"}, "m": {"M": {"b": {"BS": [b"\xff"]}}}},
                        "SequenceNumber": "7", "SizeBytes": 10,
                        "StreamViewType": "NEW_AND_OLD_IMAGES"}}
    rec = lambda_record(raw, "arn:s", "us-east-1")
    assert rec["dynamodb"]["ApproximateCreationDateTime"] == 1704067200
    assert rec["dynamodb"]["NewImage"]["m"] == {"M": {"b": {"BS": ["/w=="]}}}
    assert rec["awsRegion"] == "eu-west-1"


def test_a_write_that_changes_nothing_writes_no_stream_record(endpoint: str, ddb: Any,
                                                              cli: Any) -> None:
    # DynamoDB: "If you perform a PutItem or UpdateItem operation that does not change any
    # data in an item, DynamoDB Streams does not write a stream record" (Streams.html). The
    # local endpoint is patched to agree (moto alone writes a MODIFY); a refire always
    # changes the item, so it always writes one.
    create_table(ddb, "t")
    item = {"id": {"S": "a"}, "n": {"N": "1"}, "last_error": {"S": "boom"}}
    key = {"id": {"S": "a"}}
    ddb.put_item(TableName="t", Item=item)
    ddb.put_item(TableName="t", Item=item)  # the same item again
    ddb.put_item(TableName="t", Item={**item, "n": {"N": "1.0"}})  # the same number
    ddb.update_item(TableName="t", Key=key, UpdateExpression="SET n = :one",
                    ExpressionAttributeValues={":one": {"N": "1"}})
    ddb.update_item(TableName="t", Key=key, UpdateExpression="REMOVE never_there")
    aws = _aws(endpoint)
    arn = table_stream_arn(aws, "t")
    assert [r["eventName"] for r in read_stream(aws, arn)] == ["INSERT"]

    r = cli("refire", "--table", "t", "--id", "a", "--yes", "--force")
    assert r.code == 0, r.err
    ddb.update_item(TableName="t", Key=key, UpdateExpression="SET n = :two",
                    ExpressionAttributeValues={":two": {"N": "2"}})
    records = list(read_stream(aws, arn))
    assert [r["eventName"] for r in records] == ["INSERT", "MODIFY", "MODIFY"]
    assert "refired_at" in records[1]["dynamodb"]["NewImage"]
    assert records[2]["dynamodb"]["NewImage"]["n"] == {"N": "2"}
