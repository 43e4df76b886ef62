"""The sandbox trigger publishes Lambda's CloudWatch metrics, and doctor reads them:
a handler that raises makes errors and iterator age rise (the metric checks fail), and
once it is fixed they pass.

The poller runs in-process against moto over HTTP; its MetricsPublisher stamps the
broken period's datapoints ten minutes in the past (its clock), so that the window
doctor looks at after the fix (--since 2m) holds only what happened after the fix: the
passage of time, without waiting for it."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

import pytest

from streamq.aws import Aws
from streamq.config import Settings
from streamq.sandbox.metrics import MetricsPublisher
from streamq.sandbox.poller import Poller
from tests.helpers import CliRunner, create_table, create_trigger

cli = CliRunner()


def wait_for(what: str, cond: Callable[[], bool], timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


def check(doc: dict[str, Any], name: str) -> dict[str, Any]:
    (found,) = [c for c in doc["checks"] if c["name"] == name]
    return found


@pytest.mark.slow
def test_a_raising_handler_fails_the_metric_checks_until_fixed(endpoint: str,
                                                               ddb: Any) -> None:
    create_table(ddb, "outbox")
    mapping = create_trigger(endpoint, "outbox", MaximumRetryAttempts=-1,
                             MaximumRecordAgeInSeconds=-1, BatchSize=10,
                             MetricsConfig={"Metrics": ["EventCount"]})
    broken = {"on": True}

    def handler(event: dict[str, Any], context: Any) -> None:
        if broken["on"]:
            raise RuntimeError("downstream is down")

    shift = {"seconds": 600.0}
    aws = Aws(Settings(endpoint_url=endpoint, region="us-east-1"))
    publisher = MetricsPublisher(aws, "sender", clock=lambda: time.time() - shift["seconds"],
                                 interval=0.2)
    stop = threading.Event()
    poller = Poller(aws, table="outbox", function="sender", handler=handler,
                    retry_delay=0.2, max_retry_delay=0.5, poll_interval=0.05, stop=stop,
                    metrics=publisher)
    thread = threading.Thread(target=poller.run, daemon=True)
    thread.start()
    try:
        put_at = time.monotonic()
        ddb.put_item(TableName="outbox", Item={"id": {"S": "m-1"}})
        # Retried forever (-1): errors pile up and the batch's iterator age grows past
        # the 3 s limit below (record times are whole seconds: 4.2 s is surely past).
        wait_for("errors and an old batch", lambda: poller.counters.function_errors >= 5
                 and time.monotonic() - put_at > 4.2)
        publisher.flush()
        args = ("doctor", "--table", "outbox", "--function", "sender", "--endpoint-url",
                endpoint, "-o", "json", "--max-iterator-age", "3s")
        res = cli(*args, "--since", "15m")
        assert res.code == 3, res.err
        doc = res.json()
        errors, age = check(doc, "metrics.errors"), check(doc, "metrics.iterator-age")
        assert errors["status"] == "fail", errors
        assert errors["data"]["errors"]["value"] >= 5
        assert errors["data"]["errors"]["value"] == errors["data"]["invocations"]["value"]
        assert age["status"] == "fail", age
        assert age["data"]["value"] > 3000
        trig = check(doc, "metrics.trigger")
        assert trig["status"] == "ok" and "1 polled" in trig["detail"]
        assert "0 sent to the destination" in trig["detail"]

        # The fix: the handler works; the retried batch goes through (still in the old
        # window), then time moves on and a new record is handled at once.
        broken["on"] = False
        wait_for("the retried batch delivered", lambda: poller.counters.records_handled
                 >= 1)
        publisher.flush()
        shift["seconds"] = 0.0
        ddb.put_item(TableName="outbox", Item={"id": {"S": "m-2"}})
        wait_for("the new record delivered", lambda: poller.counters.records_handled >= 2)
        publisher.flush()
        res = cli(*args, "--since", "2m")
        doc = res.json()
        errors, age = check(doc, "metrics.errors"), check(doc, "metrics.iterator-age")
        assert errors["status"] == "ok", errors
        assert errors["data"]["invocations"]["value"] == 1
        assert age["status"] == "ok", age
        assert age["data"]["value"] < 3000
        assert res.code == 0, [c for c in doc["checks"] if c["status"] == "fail"]
    finally:
        stop.set()
        thread.join(timeout=10)
    assert mapping["UUID"]


def test_throttles_lost_batches_and_dropped_records_fail(endpoint: str, ddb: Any) -> None:
    """What CloudWatch says when the function is throttled to zero and batches are lost:
    Throttles with no invocation, DestinationDeliveryFailures, the trigger's
    DroppedEventCount (datapoints put as Lambda would, by the sandbox's publisher)."""
    create_table(ddb, "outbox")
    mapping = create_trigger(endpoint, "outbox", MetricsConfig={"Metrics": ["EventCount"]})
    aws = Aws(Settings(endpoint_url=endpoint, region="us-east-1"))
    pub = MetricsPublisher(aws, "sender")
    pub._function("Throttles", 3)
    pub.destination_failure()
    pub.mapping_count(mapping, "polled", 5)
    pub.mapping_count(mapping, "dropped", 5)
    pub.flush()
    res = cli("doctor", "--table", "outbox", "--function", "sender", "--endpoint-url",
              endpoint, "-o", "json")
    assert res.code == 3, res.err
    doc = res.json()
    assert check(doc, "metrics.throttles")["status"] == "fail"
    assert "3 throttled" in check(doc, "metrics.throttles")["detail"]
    assert check(doc, "metrics.delivery")["status"] == "fail"
    trig = check(doc, "metrics.trigger")
    assert trig["status"] == "fail" and "5 dropped" in trig["detail"]
    # the trigger's metrics off: doctor says so rather than reading silence as zero
    import boto3

    boto3.client("lambda", endpoint_url=endpoint, region_name="us-east-1"
                 ).update_event_source_mapping(UUID=mapping["UUID"],
                                               MetricsConfig={"Metrics": []})
    doc = cli("doctor", "--table", "outbox", "--function", "sender", "--endpoint-url",
              endpoint, "-o", "json").json()
    assert check(doc, "metrics.trigger")["status"] == "skip"
    assert "off" in check(doc, "metrics.trigger")["detail"]
