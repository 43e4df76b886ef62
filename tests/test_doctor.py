"""``streamq doctor`` against moto's server over HTTP.

One healthy world for the module (table with a stream, function, on-failure queue,
trigger), built once; each test breaks exactly one thing, shows the check that catches
it failing, fixes it, and shows the check passing again. Moto is not reset between
these tests (they never use the resetting ``endpoint`` fixture)."""

from __future__ import annotations

import json
import re
import time
import urllib.request
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from streamq.sandbox.world import INSERT_FILTER, REFIRE_FILTER
from tests.helpers import CliRunner, batch_put, create_table, create_trigger, iso_ago
from tests.proxies import BreakingProxy

cli = CliRunner()
TABLE, FUNCTION, QUEUE = "doc_outbox", "doc-sender", "doc-dlq"
GOOD = {
    "BatchSize": 10, "MaximumBatchingWindowInSeconds": 1, "MaximumRetryAttempts": 2,
    "MaximumRecordAgeInSeconds": 3600, "BisectBatchOnFunctionError": True,
    "FilterCriteria": {"Filters": [{"Pattern": INSERT_FILTER}, {"Pattern": REFIRE_FILTER}]},
}


class World:
    def __init__(self, url: str) -> None:
        import boto3

        self.url = url
        kw = {"endpoint_url": url, "region_name": "us-east-1"}
        self.ddb, self.lam, self.sqs = (boto3.client(s, **kw)
                                        for s in ("dynamodb", "lambda", "sqs"))
        self.uuid = ""
        self.queue_url = ""
        self.queue_arn = ""

    def build(self) -> None:
        create_table(self.ddb, TABLE)
        self.make_queue()
        self.make_trigger()
        batch_put(self.ddb, TABLE, [{"id": {"S": f"m-{i}"}, "created_at": {"S": iso_ago(5)}}
                                    for i in range(3)])

    def make_queue(self) -> None:
        self.queue_url = self.sqs.create_queue(QueueName=QUEUE)["QueueUrl"]
        self.queue_arn = self.sqs.get_queue_attributes(
            QueueUrl=self.queue_url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]

    def make_trigger(self) -> None:
        mapping = create_trigger(self.url, TABLE, function=FUNCTION, DestinationConfig={
            "OnFailure": {"Destination": self.queue_arn}}, **GOOD)
        self.uuid = mapping["UUID"]

    def update(self, **fields: Any) -> None:
        self.lam.update_event_source_mapping(UUID=self.uuid, **fields)

    def doctor(self, *extra: str, url: str | None = None) -> tuple[int, dict[str, Any]]:
        res = cli("doctor", "--table", TABLE, "--function", FUNCTION, "--endpoint-url",
                  url or self.url, "-o", "json", *extra)
        assert res.code in (0, 3), res.err
        doc = res.json()
        assert doc["schema_version"] == 1
        assert (res.code == 3) == (doc["status"] == "fail")
        return res.code, doc


def check(doc: dict[str, Any], name: str) -> dict[str, Any]:
    (found,) = [c for c in doc["checks"] if c["name"] == name]
    return found


@pytest.fixture(scope="module")
def world(moto_server: str) -> Iterator[World]:
    req = urllib.request.Request(moto_server + "/moto-api/reset", method="POST")
    urllib.request.urlopen(req, timeout=10).read()
    w = World(moto_server)
    w.build()
    yield w


def assert_healthy(w: World) -> dict[str, Any]:
    code, doc = w.doctor()
    bad = [c for c in doc["checks"] if c["status"] not in ("ok", "skip")]
    assert code == 0 and not bad, bad
    return doc


def test_a_healthy_world_passes_every_check(world: World) -> None:
    doc = assert_healthy(world)
    names = [c["name"] for c in doc["checks"]]
    from streamq.health import CHECK_NAMES

    assert names == list(CHECK_NAMES)  # every check, in the documented order
    assert doc["function"] == FUNCTION and doc["trigger_uuid"] == world.uuid
    assert check(doc, "outbox")["data"]["counts"] == {"failed": 0, "stuck": 0, "pending": 3}
    assert "pattern 2 of 2" in check(doc, "trigger.refire-filter")["detail"]
    # No function has run: CloudWatch has nothing, and says so.
    assert check(doc, "metrics.errors")["status"] == "skip"
    assert "no metrics" in check(doc, "metrics.errors")["detail"]
    assert check(doc, "destination")["detail"] == f"SQS {QUEUE}"


def breaks(world: World, name: str, status: str | tuple[str, ...], *, fix: Callable[[], None],
           contains: str = "") -> dict[str, Any]:
    """The check ``name`` is ``status`` now; after ``fix`` the world is healthy again."""
    code, doc = world.doctor()
    found = check(doc, name)
    wanted = (status,) if isinstance(status, str) else status
    assert found["status"] in wanted, found
    assert contains in found["detail"], found
    if found["status"] == "fail":
        assert code == 3
    others = [c for c in doc["checks"] if c["name"] != name
              and c["status"] not in ("ok", "skip")]
    fix()
    assert_healthy(world)
    return {"check": found, "others": others}


def test_trigger_disabled(world: World) -> None:
    world.update(Enabled=False)
    got = breaks(world, "trigger.state", "fail", contains="Disabled",
                 fix=lambda: world.update(Enabled=True))
    # The hint reaches this outbox when pasted (the connection doctor ran with).
    assert got["check"]["hint"] == (
        f"streamq --region us-east-1 --endpoint-url {world.url} --table {TABLE} "
        f"--function {FUNCTION} config-trigger --enable --yes")


def test_insert_only_filter_drops_refires(world: World) -> None:
    world.update(FilterCriteria={"Filters": [{"Pattern": INSERT_FILTER}]})
    got = breaks(world, "trigger.refire-filter", "fail", contains='"MODIFY"',
                 fix=lambda: world.update(FilterCriteria=GOOD["FilterCriteria"]))
    assert INSERT_FILTER in got["check"]["detail"]  # names the pattern that drops it
    assert "refired_at" in got["check"]["hint"]


def test_infinite_retries(world: World) -> None:
    world.update(MaximumRetryAttempts=-1, MaximumRecordAgeInSeconds=-1)
    got = breaks(world, "trigger.config", ("warn", "fail"), contains="infinite-retries",
                 fix=lambda: world.update(MaximumRetryAttempts=2,
                                          MaximumRecordAgeInSeconds=3600))
    assert "--retry-attempts" in got["check"]["hint"]


def test_destination_deleted(world: World) -> None:
    world.sqs.delete_queue(QueueUrl=world.queue_url)
    got = breaks(world, "destination", "fail", contains="does not exist",
                 fix=world.make_queue)
    assert got["others"] == [] or {c["name"] for c in got["others"]} <= {"destination.backlog"}


def test_destination_backlog(world: World) -> None:
    for _ in range(2):
        world.sqs.send_message(QueueUrl=world.queue_url, MessageBody=json.dumps(
            {"DDBStreamBatchInfo": {"shardId": "s", "batchSize": 1}}))

    def drain() -> None:
        world.sqs.purge_queue(QueueUrl=world.queue_url)

    got = breaks(world, "destination.backlog", "warn", contains="2 batch(es) were given up "
                 "on", fix=drain)
    assert got["check"]["data"]["backlog"] == 2
    assert got["check"]["hint"]


def test_reserved_concurrency_zero(world: World) -> None:
    world.lam.put_function_concurrency(FunctionName=FUNCTION, ReservedConcurrentExecutions=0)
    got = breaks(world, "function.concurrency", "fail", contains="reserved concurrency is 0",
                 fix=lambda: world.lam.delete_function_concurrency(FunctionName=FUNCTION))
    assert "delete-function-concurrency" in got["check"]["hint"]
    # The AWS CLI command reaches the same AWS when pasted: doctor's region and endpoint.
    assert re.search(r"aws --region \S+ --endpoint-url " + re.escape(world.url)
                     + " lambda delete-function-concurrency", got["check"]["hint"]), got


def test_function_deleted(world: World) -> None:
    from tests.helpers import _zip_bytes

    role = world.lam.get_function(FunctionName=FUNCTION)["Configuration"]["Role"]
    world.lam.delete_function(FunctionName=FUNCTION)

    def redeploy() -> None:
        world.lam.create_function(FunctionName=FUNCTION, Runtime="python3.12", Role=role,
                                  Handler="handler.handler", Code={"ZipFile": _zip_bytes()})

    got = breaks(world, "function", "fail", contains="does not exist", fix=redeploy)
    assert got["check"]["hint"]


def test_a_keys_only_stream_hides_the_refire_marker(world: World) -> None:
    world.ddb.create_table(
        TableName="doc_keys", KeySchema=[{"AttributeName": "id", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "id", "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
        StreamSpecification={"StreamEnabled": True, "StreamViewType": "KEYS_ONLY"})
    try:
        res = cli("doctor", "--table", "doc_keys", "--endpoint-url", world.url, "-o", "json")
        doc = res.json()
        view = check(doc, "stream.view")
        assert view["status"] == "warn" and "KEYS_ONLY" in view["detail"]
        assert check(doc, "trigger")["status"] == "fail"  # and no trigger on it
    finally:
        world.ddb.delete_table(TableName="doc_keys")


def test_failed_and_old_records(world: World) -> None:
    key = {"id": {"S": "old-1"}}
    world.ddb.put_item(TableName=TABLE, Item={**key, "created_at": {"S": iso_ago(90000)},
                                              "last_error": {"S": "550"}})
    code, doc = world.doctor()
    assert code == 0  # warnings only
    assert check(doc, "outbox")["status"] == "warn"
    assert check(doc, "outbox")["data"]["counts"]["failed"] == 1
    assert check(doc, "outbox.retention")["status"] == "warn"
    assert "only a refire" in check(doc, "outbox.retention")["detail"]
    world.ddb.delete_item(TableName=TABLE, Key=key)
    assert_healthy(world)


def test_an_encrypted_filter_is_unknown_never_no_filter(world: World) -> None:
    import boto3

    kms = boto3.client("kms", endpoint_url=world.url, region_name="us-east-1")
    key = kms.create_key()["KeyMetadata"]["Arn"]
    world.update(KMSKeyArn=key)
    kms.disable_key(KeyId=key.split(":key/")[1])  # this caller can no longer decrypt it
    try:
        code, doc = world.doctor()
        found = check(doc, "trigger.refire-filter")
        assert found["status"] == "warn" and "cannot tell" in found["detail"]
        assert "kms:Decrypt" in found["hint"]
        assert code == 0
    finally:
        kms.enable_key(KeyId=key.split(":key/")[1])
        world.update(KMSKeyArn="")
    assert_healthy(world)


def test_a_check_that_cannot_run_says_why_and_the_rest_run(world: World) -> None:
    def deny(method: str, path: str, headers: dict[str, str]) -> tuple[str, Any] | None:
        if path.endswith("/concurrency"):
            return ("deny", "lambda:GetFunctionConcurrency")
        target = headers.get("X-Amz-Target", "")
        if target.endswith(".GetQueueAttributes"):
            return ("deny", "sqs:GetQueueAttributes")
        if target.endswith(".GetMetricData"):
            return ("deny", "cloudwatch:GetMetricData")
        return None

    with BreakingProxy(world.url, deny) as proxy:
        code, doc = world.doctor(url=proxy.url)
    assert proxy.hits
    conc = check(doc, "function.concurrency")
    assert conc["status"] == "warn"
    assert "access denied: lambda:GetFunctionConcurrency" in conc["detail"]
    dest = check(doc, "destination")
    assert dest["status"] == "warn" and "sqs:GetQueueAttributes" in dest["detail"]
    for name in ("metrics.iterator-age", "metrics.errors", "metrics.trigger"):
        assert "access denied: cloudwatch:GetMetricData" in check(doc, name)["detail"]
        assert check(doc, name)["status"] == "warn"
    assert code == 0
    for name in ("trigger.state", "function", "outbox", "trigger.refire-filter"):
        assert check(doc, name)["status"] == "ok"


@pytest.mark.slow
def test_every_call_is_bounded_in_time(world: World) -> None:
    def stall(method: str, path: str, headers: dict[str, str]) -> tuple[str, Any] | None:
        target = headers.get("X-Amz-Target", "")
        return ("stall", 30) if target.endswith(".GetMetricData") else None

    with BreakingProxy(world.url, stall) as proxy:
        started = time.monotonic()
        _code, doc = world.doctor("--timeout", "2s", url=proxy.url)
        took = time.monotonic() - started
    assert took < 10, took
    assert proxy.hits
    age = check(doc, "metrics.iterator-age")
    assert age["status"] == "warn" and "no answer within 2s" in age["detail"]
    assert check(doc, "trigger.state")["status"] == "ok"


def test_exit_codes_and_table_view(world: World) -> None:
    world.update(Enabled=False)
    try:
        res = cli("doctor", "--table", TABLE, "--function", FUNCTION, "--endpoint-url",
                  world.url, "-o", "table")
        assert res.code == 3
        assert "trigger.state" in res.out and "unhealthy" in res.out
        assert (f"--function {FUNCTION} config-trigger --enable --yes"
                in " ".join(res.out.split()))  # the hint, folded at spaces
    finally:
        world.update(Enabled=True)
    res = cli("doctor", "--table", "nope", "--endpoint-url", world.url, "-o", "json")
    assert res.code == 3 and check(res.json(), "table")["status"] == "fail"
    assert all(c["status"] == "skip" for c in res.json()["checks"][1:])
    res = cli("doctor", "--table", TABLE, "--since", "10s", "--endpoint-url", world.url)
    assert res.code == 2 and "--since" in res.err
    # A scan budget spent: the count says it is partial.
    _code, doc = world.doctor("--scan-budget", "0s")
    outbox = check(doc, "outbox")
    assert outbox["data"]["partial"] is True and "partial" in outbox["detail"]
    assert outbox["data"]["total"] < 3


def test_stream_off(world: World) -> None:
    """Last: moto cannot enable a stream again once disabled, so the fix recreates the
    table (a new stream) and the trigger on it, as one would on AWS after a new stream."""
    world.ddb.update_table(TableName=TABLE, StreamSpecification={"StreamEnabled": False})

    def fix() -> None:
        world.lam.delete_event_source_mapping(UUID=world.uuid)
        world.ddb.delete_table(TableName=TABLE)
        create_table(world.ddb, TABLE)
        world.make_trigger()

    code, doc = world.doctor()
    assert check(doc, "stream")["status"] == "fail" and code == 3
    assert "no stream" in check(doc, "stream")["detail"]
    assert check(doc, "trigger")["status"] == "skip"
    fix()
    assert_healthy(world)



def test_scale_advice_for_a_large_table_without_an_error_index() -> None:
    from streamq.config import Settings
    from streamq.health import _scale_check, error_index_definition
    from streamq.outbox import IndexInfo, KeyAttr, TableInfo

    info = TableInfo("big", KeyAttr("id", "S"), item_count=2_000_000, size_bytes=3 << 30)
    settings = Settings()
    found = _scale_check(info, settings)
    assert found.status == "warn" and "scans the whole table" in found.detail
    definition = error_index_definition(info, settings)["Create"]
    assert definition["KeySchema"] == [{"AttributeName": "id", "KeyType": "HASH"},
                                       {"AttributeName": "last_error", "KeyType": "RANGE"}]
    assert definition["Projection"]["NonKeyAttributes"] == ["created_at", "attempts",
                                                            "refire_count"]
    assert "--global-secondary-index-updates" in (found.hint or "")
    # With such an index, list --status failed reads it: ok.
    indexed = TableInfo("big", KeyAttr("id", "S"), item_count=2_000_000,
                        size_bytes=3 << 30, indexes=(IndexInfo(
                            "last_error-index", KeyAttr("id", "S"),
                            KeyAttr("last_error", "S"), "ALL"),))
    assert _scale_check(indexed, settings).status == "ok"
    small = TableInfo("t", KeyAttr("id", "S"), item_count=10, size_bytes=1000)
    assert _scale_check(small, settings).status == "ok"
