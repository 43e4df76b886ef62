"""The sandbox poller (the trigger emulation), in-process, against moto over HTTP.

Each test builds a table, a trigger with the settings under test, and a Python handler
that records what it receives; the poller is driven step by step."""

from __future__ import annotations

import copy
import json
import re
import time
from collections.abc import Callable
from typing import Any

import pytest

from streamq.aws import Aws
from streamq.config import Settings
from streamq.sandbox.poller import Poller
from streamq.sandbox.world import INSERT_FILTER, REFIRE_FILTER
from tests.helpers import create_table, create_trigger


class Recorder:
    """A handler: records each event, then does what ``behave`` says."""

    def __init__(self, behave: Callable[[dict[str, Any], int], Any] | None = None) -> None:
        self.events: list[dict[str, Any]] = []
        self.behave = behave

    def __call__(self, event: dict[str, Any], context: Any) -> Any:
        self.events.append(copy.deepcopy(event))
        assert context.function_name == "sender"
        assert context.get_remaining_time_in_millis() > 0
        return self.behave(event, len(self.events)) if self.behave else None

    def ids(self, n: int) -> list[str]:
        return [r["dynamodb"]["Keys"]["id"]["S"] for r in self.events[n]["Records"]]

    @property
    def sizes(self) -> list[int]:
        return [len(e["Records"]) for e in self.events]


def poison_raises(event: dict[str, Any], n: int) -> Any:
    for r in event["Records"]:
        if "poison" in r["dynamodb"]["Keys"]["id"]["S"]:
            raise ValueError("cannot handle this record")
    return None


@pytest.fixture()
def world(endpoint: str, ddb: Any) -> dict[str, Any]:
    import boto3

    create_table(ddb, "outbox")
    sqs = boto3.client("sqs", endpoint_url=endpoint, region_name="us-east-1")
    url = sqs.create_queue(QueueName="dlq")["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"][
        "QueueArn"]
    return {"endpoint": endpoint, "ddb": ddb, "sqs": sqs, "queue_url": url, "queue_arn": arn}


def make(world: dict[str, Any], handler: Recorder, clock: Callable[[], float] = time.time,
         **esm: Any) -> tuple[Poller, dict[str, Any]]:
    esm.setdefault("DestinationConfig", {"OnFailure": {"Destination": world["queue_arn"]}})
    mapping = create_trigger(world["endpoint"], "outbox", **esm)
    aws = Aws(Settings(endpoint_url=world["endpoint"], region="us-east-1"))
    poller = Poller(aws, table="outbox", function="sender", handler=handler,
                    retry_delay=0.01, poll_interval=0.01, clock=clock)
    return poller, mapping


def put(world: dict[str, Any], *ids: str) -> None:
    for i in ids:
        world["ddb"].put_item(TableName="outbox", Item={"id": {"S": i}, "to": {"S": "x"}})


def drive(poller: Poller, until: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not until():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out; counters: {poller.counters}")
        if not poller.step():
            time.sleep(0.02)


def settle(poller: Poller, seconds: float = 0.4) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        poller.step()
        time.sleep(0.02)


def dlq(world: dict[str, Any]) -> list[dict[str, Any]]:
    msgs = world["sqs"].receive_message(QueueUrl=world["queue_url"],
                                        MaxNumberOfMessages=10).get("Messages", [])
    return [json.loads(m["Body"]) for m in msgs]


def test_batches_by_batch_size_in_stream_order(world: dict[str, Any]) -> None:
    rec = Recorder()
    poller, _ = make(world, rec, BatchSize=10)
    put(world, *[f"m{i:02d}" for i in range(25)])
    drive(poller, lambda: sum(rec.sizes) == 25)
    assert rec.sizes == [10, 10, 5]
    assert rec.ids(0) + rec.ids(1) + rec.ids(2) == [f"m{i:02d}" for i in range(25)]
    assert poller.counters.records_handled == 25


def test_event_shape_parses_with_powertools(world: dict[str, Any]) -> None:
    from aws_lambda_powertools.utilities.data_classes import DynamoDBStreamEvent

    rec = Recorder()
    poller, mapping = make(world, rec)
    put(world, "a")
    drive(poller, lambda: len(rec.events) == 1)
    event = DynamoDBStreamEvent(rec.events[0])
    (r,) = list(event.records)
    assert r.event_source_arn == mapping["EventSourceArn"]
    assert r.event_version == "1.1" and r.aws_region == "us-east-1"
    assert r.dynamodb is not None and r.dynamodb.new_image == {"id": "a", "to": "x"}
    assert r.dynamodb.stream_view_type is not None
    assert r.dynamodb.stream_view_type.name == "NEW_AND_OLD_IMAGES"


def test_batching_window_waits_for_more_records(world: dict[str, Any]) -> None:
    rec = Recorder()
    poller, _ = make(world, rec, BatchSize=100, MaximumBatchingWindowInSeconds=1)
    put(world, "a")
    started = time.monotonic()
    settle(poller, 0.3)
    assert rec.events == []  # the window is open
    put(world, "b", "c")
    drive(poller, lambda: len(rec.events) == 1)
    assert time.monotonic() - started >= 0.9
    assert rec.ids(0) == ["a", "b", "c"]


def test_marker_filter_passes_inserts_and_refires_only(world: dict[str, Any]) -> None:
    rec = Recorder()
    poller, _ = make(world, rec, FilterCriteria={"Filters": [{"Pattern": INSERT_FILTER},
                                                             {"Pattern": REFIRE_FILTER}]})
    ddb = world["ddb"]
    put(world, "a")
    # the handler's own failure write: no refired_at in the new image -> dropped
    ddb.update_item(TableName="outbox", Key={"id": {"S": "a"}},
                    UpdateExpression="SET last_error = :e REMOVE refired_at",
                    ExpressionAttributeValues={":e": {"S": "429"}})
    # a refire: sets refired_at -> passes
    ddb.update_item(TableName="outbox", Key={"id": {"S": "a"}},
                    UpdateExpression="SET refired_at = :t, refire_run = :r "
                                     "ADD refire_count :one",
                    ExpressionAttributeValues={":t": {"S": "2024-01-01T00:00:00Z"},
                                               ":r": {"S": "r1"}, ":one": {"N": "1"}})
    ddb.delete_item(TableName="outbox", Key={"id": {"S": "a"}})  # REMOVE -> dropped
    drive(poller, lambda: poller.counters.records_filtered == 2 and len(rec.events) >= 1)
    settle(poller)
    names = [(r["eventName"], "refired_at" in r["dynamodb"].get("NewImage", {}))
             for e in rec.events for r in e["Records"]]
    assert names == [("INSERT", False), ("MODIFY", True)]


def test_marker_filter_agrees_with_refire_preflight() -> None:
    from streamq.outbox import KeyAttr, TableInfo
    from streamq.trigger import refire_verdict

    info = TableInfo("outbox", KeyAttr("id", "S"), stream_arn="arn:s", stream_enabled=True,
                     stream_view_type="NEW_AND_OLD_IMAGES")
    sandbox = {"FilterCriteria": {"Filters": [{"Pattern": INSERT_FILTER},
                                              {"Pattern": REFIRE_FILTER}]}}
    insert_only = {"FilterCriteria": {"Filters": [{"Pattern": INSERT_FILTER}]}}
    assert refire_verdict(sandbox, info, Settings())[0] is True
    ok, reasons = refire_verdict(insert_only, info, Settings())
    assert ok is False and reasons


def test_disabled_mapping_processes_nothing_until_enabled(world: dict[str, Any]) -> None:
    import boto3

    rec = Recorder()
    poller, mapping = make(world, rec)
    lam = boto3.client("lambda", endpoint_url=world["endpoint"], region_name="us-east-1")
    lam.update_event_source_mapping(UUID=mapping["UUID"], Enabled=False)
    put(world, "a", "b")
    settle(poller, 0.5)
    assert rec.events == [] and poller.counters.state == "disabled"
    lam.update_event_source_mapping(UUID=mapping["UUID"], Enabled=True)
    drive(poller, lambda: sum(rec.sizes) == 2)
    assert rec.ids(0) == ["a", "b"]


def test_retries_then_sends_the_documented_failure_message(world: dict[str, Any]) -> None:
    from aws_lambda_powertools.utilities.parser.models import (
        DynamoDBStreamLambdaOnFailureDestinationModel,
    )

    rec = Recorder(poison_raises)
    poller, mapping = make(world, rec, MaximumRetryAttempts=2,
                           BisectBatchOnFunctionError=False)
    put(world, "ok1", "poison", "ok2")
    drive(poller, lambda: poller.counters.dlq_messages == 1)
    assert rec.sizes == [3, 3, 3]  # the first try and 2 retries, whole batch each time
    (msg,) = dlq(world)
    parsed = DynamoDBStreamLambdaOnFailureDestinationModel.model_validate(msg)
    assert parsed.request_context.condition == "RetryAttemptsExhausted"
    assert parsed.request_context.approximate_invoke_count == 3
    assert parsed.request_context.function_arn == mapping["FunctionArn"]
    assert parsed.response_context.function_error == "Unhandled"
    info = msg["DDBStreamBatchInfo"]
    seqs = [r["dynamodb"]["SequenceNumber"] for r in rec.events[0]["Records"]]
    assert info["batchSize"] == 3
    assert (info["startSequenceNumber"], info["endSequenceNumber"]) == (seqs[0], seqs[-1])
    assert info["streamArn"] == mapping["EventSourceArn"]
    assert set(msg) == {"requestContext", "responseContext", "version", "timestamp",
                        "DDBStreamBatchInfo"}
    # AWS's formats (Lambda DG, services-dynamodb-errors): the message's timestamp has
    # milliseconds, the records' arrival times are whole seconds ("...T00:13:19Z").
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", msg["timestamp"])
    for field in ("approximateArrivalOfFirstRecord", "approximateArrivalOfLastRecord"):
        assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", info[field]), info[field]
    # the shard moves on: a later record is delivered
    put(world, "later")
    drive(poller, lambda: rec.ids(-1) == ["later"])


def test_bisect_isolates_the_poison_record(world: dict[str, Any]) -> None:
    rec = Recorder(poison_raises)
    poller, _ = make(world, rec, MaximumRetryAttempts=1, BisectBatchOnFunctionError=True)
    put(world, "a", "b", "poison", "d")
    drive(poller, lambda: poller.counters.dlq_messages == 1)
    (msg,) = dlq(world)
    assert msg["DDBStreamBatchInfo"]["batchSize"] == 1
    assert msg["requestContext"]["approximateInvokeCount"] >= 2
    delivered = {i for n, e in enumerate(rec.events) if "poison" not in rec.ids(n)
                 for i in rec.ids(n)}
    assert delivered == {"a", "b", "d"}
    assert poller.counters.bisects >= 1
    assert rec.sizes[0] == 4 and rec.sizes[1] == 2  # whole batch, then a half


def test_no_retry_no_bisect_discards_the_whole_batch_at_once(world: dict[str, Any]) -> None:
    rec = Recorder(poison_raises)
    poller, _ = make(world, rec, MaximumRetryAttempts=0, BisectBatchOnFunctionError=False)
    put(world, "a", "b", "poison", "d")
    drive(poller, lambda: poller.counters.dlq_messages == 1)
    assert rec.sizes == [4]
    (msg,) = dlq(world)
    assert msg["DDBStreamBatchInfo"]["batchSize"] == 4
    assert msg["requestContext"]["approximateInvokeCount"] == 1


def test_report_batch_item_failures_retries_from_the_lowest_failure(
        world: dict[str, Any]) -> None:
    def fail_c_once(event: dict[str, Any], n: int) -> Any:
        if n > 1:
            return {"batchItemFailures": []}
        seq = {r["dynamodb"]["Keys"]["id"]["S"]: r["dynamodb"]["SequenceNumber"]
               for r in event["Records"]}
        return {"batchItemFailures": [{"itemIdentifier": seq["d"]},
                                      {"itemIdentifier": seq["c"]}]}

    rec = Recorder(fail_c_once)
    poller, _ = make(world, rec, FunctionResponseTypes=["ReportBatchItemFailures"],
                     MaximumRetryAttempts=3)
    put(world, "a", "b", "c", "d")
    drive(poller, lambda: len(rec.events) == 2)
    settle(poller)
    assert rec.ids(0) == ["a", "b", "c", "d"]
    assert rec.ids(1) == ["c", "d"]
    assert len(rec.events) == 2 and poller.counters.records_handled == 4


def test_invalid_item_identifier_fails_the_whole_batch(world: dict[str, Any]) -> None:
    rec = Recorder(lambda e, n: {"batchItemFailures": [{"itemIdentifier": ""}]} if n == 1
                   else None)
    poller, _ = make(world, rec, FunctionResponseTypes=["ReportBatchItemFailures"],
                     MaximumRetryAttempts=3)
    put(world, "a", "b")
    drive(poller, lambda: len(rec.events) == 2)
    assert rec.ids(1) == ["a", "b"]


def test_partial_response_is_ignored_without_report_batch_item_failures(
        world: dict[str, Any]) -> None:
    rec = Recorder(lambda e, n: {"batchItemFailures": [{"itemIdentifier": "x"}]})
    poller, _ = make(world, rec, MaximumRetryAttempts=3)
    put(world, "a", "b")
    drive(poller, lambda: len(rec.events) == 1)
    settle(poller)
    assert len(rec.events) == 1 and poller.counters.retries == 0


def test_records_older_than_max_age_are_discarded_without_invocation(
        world: dict[str, Any]) -> None:
    rec = Recorder()
    poller, _ = make(world, rec, clock=lambda: time.time() + 120,
                     MaximumRecordAgeInSeconds=60)
    put(world, "a", "b")
    drive(poller, lambda: poller.counters.dlq_messages == 1)
    assert rec.events == []
    (msg,) = dlq(world)
    assert msg["requestContext"]["condition"] == "RecordAgeExceeded"
    assert msg["requestContext"]["approximateInvokeCount"] == 0
    assert msg["DDBStreamBatchInfo"]["batchSize"] == 2


def test_settings_changed_during_retries_take_effect(world: dict[str, Any]) -> None:
    import threading

    import boto3

    rec = Recorder(poison_raises)
    poller, mapping = make(world, rec, MaximumRetryAttempts=-1,
                           BisectBatchOnFunctionError=False)
    poller.retry_delay = poller.max_retry_delay = 0.05
    lam = boto3.client("lambda", endpoint_url=world["endpoint"], region_name="us-east-1")
    put(world, "poison")
    thread = threading.Thread(target=poller.run, daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + 10
        while len(rec.events) < 3:  # infinite retries: the shard is blocked
            assert time.monotonic() < deadline, poller.counters
            time.sleep(0.02)
        assert poller.counters.dlq_messages == 0
        lam.update_event_source_mapping(UUID=mapping["UUID"], MaximumRetryAttempts=0)
        while poller.counters.dlq_messages == 0:
            assert time.monotonic() < deadline, poller.counters
            time.sleep(0.02)
    finally:
        poller.stop.set()
        thread.join(timeout=5)
    assert not thread.is_alive()


def test_disabling_during_retries_stops_them_and_enabling_resumes(
        world: dict[str, Any]) -> None:
    import threading

    import boto3

    rec = Recorder(poison_raises)
    poller, mapping = make(world, rec, MaximumRetryAttempts=-1,
                           BisectBatchOnFunctionError=False)
    poller.retry_delay = poller.max_retry_delay = 0.05
    lam = boto3.client("lambda", endpoint_url=world["endpoint"], region_name="us-east-1")
    put(world, "poison")
    thread = threading.Thread(target=poller.run, daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + 10
        while len(rec.events) < 2:
            assert time.monotonic() < deadline, poller.counters
            time.sleep(0.02)
        lam.update_event_source_mapping(UUID=mapping["UUID"], Enabled=False)
        while poller.counters.state != "disabled":
            assert time.monotonic() < deadline, poller.counters
            time.sleep(0.02)
        stopped_at = len(rec.events)
        time.sleep(0.5)
        assert len(rec.events) == stopped_at  # no invocation while disabled
        lam.update_event_source_mapping(UUID=mapping["UUID"], Enabled=True,
                                        MaximumRetryAttempts=0)
        while poller.counters.dlq_messages == 0:
            assert time.monotonic() < deadline, poller.counters
            time.sleep(0.02)
        assert len(rec.events) > stopped_at
        assert rec.ids(-1) == ["poison"]
    finally:
        poller.stop.set()
        thread.join(timeout=5)
