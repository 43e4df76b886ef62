"""End to end: ``streamq sandbox up``, seed, the poller and the demo handler deliver,
``streamq --sandbox list`` shows the failures, ``refire`` and ``config-trigger`` act on
the running world, ``down`` leaves no process behind.

One sandbox process for the module (started in a temp state dir, always stopped)."""

from __future__ import annotations

import json
import re
import time
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.helpers import CliRunner, assert_schema, pty_run, running_sandbox

pytestmark = pytest.mark.slow

cli = CliRunner()
API_RATE = 20


@pytest.fixture(scope="module")
def sandbox_dir(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    # A low API limit, so the seed's burst is rate limited however slow the machine.
    with running_sandbox(tmp_path_factory.mktemp("sandbox"), "--api-rate", str(API_RATE)) as d:
        yield d


@pytest.fixture()
def sbx(sandbox_dir: Path, monkeypatch: pytest.MonkeyPatch, _isolated: None) -> dict[str, Any]:
    """The running sandbox, for one test (the autouse isolation unsets the dir variable)."""
    import boto3

    monkeypatch.setenv("STREAMQ_SANDBOX_DIR", str(sandbox_dir))
    state = json.loads((sandbox_dir / "state.json").read_text())
    kw = {"endpoint_url": state["endpoint"], "region_name": "us-east-1",
          "aws_access_key_id": "x", "aws_secret_access_key": "x"}
    return {"dir": sandbox_dir, "state": state, "ddb": boto3.client("dynamodb", **kw),
            "sqs": boto3.client("sqs", **kw), "lambda": boto3.client("lambda", **kw)}


def wait_for(what: str, check: Callable[[], bool], timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.25)


def poller(sbx: dict[str, Any]) -> dict[str, Any]:
    return dict(json.loads((sbx["dir"] / "poller.json").read_text()))


def idle(sbx: dict[str, Any], quiet: float = 3.0) -> Callable[[], bool]:
    """True once the poller has made no invocation for ``quiet`` seconds (> the window)."""
    def check() -> bool:
        last = poller(sbx).get("last_invocation_at")
        return last is not None and time.time() - last > quiet
    return check


def outbox(sbx: dict[str, Any]) -> dict[str, dict[str, Any]]:
    items: dict[str, dict[str, Any]] = {}
    kwargs: dict[str, Any] = {"TableName": "mail_outbox"}
    while True:
        page = sbx["ddb"].scan(**kwargs)
        for it in page["Items"]:
            items[it["id"]["S"]] = it
        if "LastEvaluatedKey" not in page:
            return items
        kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]


def history_ids(sbx: dict[str, Any]) -> set[str]:
    return {it["id"]["S"] for it in sbx["ddb"].scan(TableName="mail_history")["Items"]}


def api_log(sbx: dict[str, Any]) -> list[dict[str, Any]]:
    path = sbx["dir"] / "fake-mail-api.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def seed(*args: str) -> None:
    res = cli("sandbox", "seed", "--yes", *args)
    assert res.code == 0, res.err


def dlq_messages(sbx: dict[str, Any]) -> list[dict[str, Any]]:
    out = []
    while True:
        msgs = sbx["sqs"].receive_message(QueueUrl=sbx["state"]["queue_url"],
                                          MaxNumberOfMessages=10).get("Messages", [])
        if not msgs:
            return out
        for m in msgs:
            out.append(json.loads(m["Body"]))
            sbx["sqs"].delete_message(QueueUrl=sbx["state"]["queue_url"],
                                      ReceiptHandle=m["ReceiptHandle"])


def restore_trigger(sbx: dict[str, Any]) -> None:
    from streamq.sandbox.world import TRIGGER_SETTINGS

    (m,) = sbx["lambda"].list_event_source_mappings(FunctionName="mail-sender")[
        "EventSourceMappings"]
    settings = {k: v for k, v in TRIGGER_SETTINGS.items() if k != "StartingPosition"}
    sbx["lambda"].update_event_source_mapping(UUID=m["UUID"], Enabled=True, **settings)


def test_up_is_idempotent_and_status_reports(sbx: dict[str, Any]) -> None:
    res = cli("sandbox", "up", "-o", "json")
    assert res.code == 0, res.err
    assert "already running" in res.err
    assert res.json()["endpoint"] == sbx["state"]["endpoint"]
    assert_schema("sandbox-up", res.json())
    res = cli("sandbox", "status", "-o", "json")
    assert res.code == 0
    doc = res.json()
    assert_schema("sandbox-status", doc)
    assert doc["running"] is True and doc["pid"] == sbx["state"]["pid"]
    assert doc["poller"]["settings"]["BatchSize"] == 100
    assert doc["poller"]["state"] == "polling"
    res = cli("sandbox", "status", "-o", "table")
    assert res.code == 0 and "running at " + sbx["state"]["endpoint"] in res.out
    assert "invocations" in res.out and "mail-sender" in res.out


def test_sandbox_ignores_an_ambient_aws_profile(sbx: dict[str, Any],
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    """An exported AWS_PROFILE for real AWS must not break --sandbox (nor be used by it)."""
    monkeypatch.setenv("AWS_PROFILE", "production-that-does-not-exist-here")
    res = cli("--sandbox", "stats", "-o", "json")
    assert res.code == 0, res.err
    assert res.json()["table"] == "mail_outbox"


def test_main_job_seed_deliver_list_refire(sbx: dict[str, Any]) -> None:
    res = cli("sandbox", "seed", "--count", "200", "--yes", "--wait")
    assert res.code == 0, res.err
    assert res.out.strip() == "200" and "handled: " in res.err
    assert not any("last_error" not in it for it in outbox(sbx).values())
    wait_for("the poller to go quiet", idle(sbx))
    items = outbox(sbx)
    sent = {e["message_id"] for e in api_log(sbx) if e["outcome"] == "sent"}
    assert len(sent) >= API_RATE and history_ids(sbx) >= sent  # the limiter lets >= rate through
    assert not sent & set(items)  # delivered ones are gone from the outbox
    undeliverable = {k for k, it in items.items() if "invalid.example" in it["recipient"]["S"]}
    limited = {k for k, it in items.items() if it["last_error"]["S"].startswith("429")}
    assert len(undeliverable) == 20 and limited and undeliverable | limited == set(items)

    # Issue 8 item 14: status names what was handed to the handler and what it delivered,
    # and prints times as ISO-8601 (never epoch floats).
    status = cli("sandbox", "status", "-o", "json").json()
    assert "records_delivered" not in status["poller"]
    assert status["poller"]["records_handled"] >= 200
    assert status["api"]["delivered"] == len(sent)
    assert status["api"]["refused_sends"] >= len(items)
    iso = r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z"
    for when in (status["poller"]["last_invocation_at"], status["poller"]["updated_at"],
                 api_log(sbx)[0]["time"]):
        assert re.fullmatch(iso, when), when
    table = cli("sandbox", "status", "-o", "table").out
    assert f"{len(sent)} delivered by the handler" in table and "handed to the handler" in table

    res = cli("--sandbox", "list", "--status", "failed", "-o", "jsonl")
    assert res.code == 0, res.err
    listed = {r["key"]["id"]: r for r in res.jsonl()}
    assert set(listed) == set(items)
    assert {listed[k]["error"] for k in undeliverable} == {"550 mailbox unavailable"}
    assert {listed[k]["attempts"] for k in listed} == {1}

    # refire the rate-limited ones below the API's limit: they get delivered (a record a
    # burst still throttled is refired again, as an operator would; at most 3 rounds)
    for _ in range(3):
        res = cli("--sandbox", "refire", "--status", "failed", "--where", "last_error~429",
                  "--rate", str(API_RATE // 2 - 2), "--yes")
        assert res.code == 0, res.err
        wait_for("the refires to be handled", lambda: all(
            "refired_at" not in it for it in outbox(sbx).values()), timeout=60)
        if not limited & set(outbox(sbx)):
            break
    assert not limited & set(outbox(sbx))
    assert history_ids(sbx) >= limited

    # refire the undeliverable ones: they fail again, attempts + 1
    res = cli("--sandbox", "refire", "--status", "failed", "--rate", "0", "--yes")
    assert res.code == 0, res.err
    wait_for("the undeliverable refires to be handled", lambda: all(
        it["attempts"]["N"] == "2" for it in outbox(sbx).values()))
    after = outbox(sbx)
    assert set(after) == undeliverable
    assert all(it["last_error"]["S"] == "550 mailbox unavailable" and
               it["refire_count"]["N"] == "1" and "refired_at" not in it
               for it in after.values())
    wait_for("the poller to go quiet", idle(sbx))
    assert all(it["attempts"]["N"] == "2" for it in outbox(sbx).values())  # no loop

    # no message was sent twice: the fake API's own log
    sends = Counter(e["message_id"] for e in api_log(sbx) if e["outcome"] == "sent")
    assert sends and max(sends.values()) == 1
    assert set(sends) == history_ids(sbx)


def test_disable_stops_processing_and_enable_resumes(sbx: dict[str, Any]) -> None:
    res = cli("--sandbox", "config-trigger", "--disable", "--yes")
    assert res.code == 0, res.err
    try:
        before = set(outbox(sbx))
        seed("--count", "5", "--undeliverable-every", "0")
        new = set(outbox(sbx)) - before
        assert len(new) == 5
        wait_for("the poller to see the trigger disabled",
                 lambda: poller(sbx)["state"] == "disabled")
        time.sleep(3)  # more than the batching window
        assert set(outbox(sbx)) >= new
        assert all("last_error" not in outbox(sbx)[k] for k in new)
        res = cli("--sandbox", "config-trigger", "--enable", "--yes")
        assert res.code == 0, res.err
        wait_for("the records to be delivered", lambda: not (new & set(outbox(sbx))))
        assert history_ids(sbx) >= new
    finally:
        restore_trigger(sbx)


def test_poison_record_with_and_without_retries_and_bisect(sbx: dict[str, Any]) -> None:
    from aws_lambda_powertools.utilities.parser.models import (
        DynamoDBStreamLambdaOnFailureDestinationModel,
    )

    dlq_messages(sbx)  # start from an empty queue
    try:
        # the sandbox's trigger: 2 retries, bisect -> only the poison record is discarded
        before = set(outbox(sbx))
        seed("--count", "8", "--poison", "1", "--undeliverable-every", "0")
        new = set(outbox(sbx)) - before
        poison = {k for k in new if "recipient" not in outbox(sbx)[k]}
        wait_for("an on-failure message", lambda: poller(sbx)["dlq_messages"] >= 1)
        wait_for("the poller to go quiet", idle(sbx))
        (msg,) = dlq_messages(sbx)
        parsed = DynamoDBStreamLambdaOnFailureDestinationModel.model_validate(msg)
        assert parsed.ddb_stream_batch_info.batch_size == 1
        assert parsed.request_context.condition == "RetryAttemptsExhausted"
        assert parsed.request_context.approximate_invoke_count >= 3
        assert set(outbox(sbx)) & new == poison  # all the others were delivered

        # no retries, no bisect: the whole batch is discarded after one invocation, and
        # the records behind the poison record are never handled
        res = cli("--sandbox", "config-trigger", "--retry-attempts", "0", "--no-bisect",
                  "--yes")
        assert res.code == 0, res.err
        before = set(outbox(sbx))
        seed("--count", "8", "--poison", "1", "--undeliverable-every", "0")
        new = set(outbox(sbx)) - before
        wait_for("an on-failure message", lambda: poller(sbx)["dlq_messages"] >= 2)
        wait_for("the poller to go quiet", idle(sbx))
        (msg,) = dlq_messages(sbx)
        assert msg["DDBStreamBatchInfo"]["batchSize"] == 9
        assert msg["requestContext"]["approximateInvokeCount"] == 1
        left = set(outbox(sbx)) & new
        assert len(left) == 5  # the poison record and the 4 behind it
        assert all("last_error" not in outbox(sbx)[k] for k in left)
    finally:
        restore_trigger(sbx)


def test_insert_only_filter_refuses_refire_and_drops_the_modify(sbx: dict[str, Any]) -> None:
    failed = {k for k, it in outbox(sbx).items() if "last_error" in it}
    assert failed, "needs failed records from the main-job test"
    key = sorted(failed)[0]
    res = cli("--sandbox", "config-trigger", "--filter", "insert", "--yes", "--force")
    assert res.code == 0, res.err
    try:
        wait_for("the poller to read the new filter", lambda: len(
            poller(sbx)["settings"]["FilterCriteria"]["Filters"]) == 1)
        res = cli("--sandbox", "refire", "--id", key, "--yes")
        assert res.code == 5, res.err  # refused in pre-flight
        count_before = outbox(sbx)[key].get("refire_count", {}).get("N", "0")
        filtered_before = poller(sbx)["records_filtered"]
        attempts_before = outbox(sbx)[key]["attempts"]["N"]
        res = cli("--sandbox", "refire", "--id", key, "--force", "--yes")
        assert res.code == 0, res.err
        assert outbox(sbx)[key]["refire_count"]["N"] == str(int(count_before) + 1)
        wait_for("the poller to drop the MODIFY",
                 lambda: poller(sbx)["records_filtered"] > filtered_before)
        time.sleep(2.5)
        assert outbox(sbx)[key]["attempts"]["N"] == attempts_before  # never invoked
    finally:
        restore_trigger(sbx)


def test_logs_show_poller_and_handler(sbx: dict[str, Any]) -> None:
    res = cli("sandbox", "logs", "-n", "400")
    assert res.code == 0
    assert "poller: invoked with" in res.out and "handler: batch of" in res.out
    res = cli("sandbox", "logs", "--api", "-n", "5")
    assert res.code == 0
    assert all(json.loads(line)["outcome"] in ("sent", "throttled", "rejected")
               for line in res.out.splitlines())


def test_sandbox_seed_does_not_ask_on_a_pipe(sbx: dict[str, Any]) -> None:
    """Issue 8 item 13: throwaway local data, so no confirmation (and no --yes needed)."""
    res = cli("sandbox", "seed", "--count", "1")
    assert res.code == 0 and res.out.strip() == "1", res.err
    res = cli("sandbox", "down", "--dry-run")
    assert res.code == 0 and "would stop" in res.err
    res = cli("sandbox", "seed", "--count", "3", "--dry-run")
    assert res.code == 0 and "would insert 3" in res.err
    assert cli("sandbox", "up", "--port", "70000").code == 2
    assert cli("sandbox", "up", "--handler", "not a spec").code == 2


def test_seed_wait_shows_progress_on_a_terminal(sbx: dict[str, Any]) -> None:
    """Issue 8 item 12: records handled / total while --wait waits (a real pty)."""
    code, screen = pty_run(["sandbox", "seed", "--count", "30", "--wait"],
                           env={"STREAMQ_SANDBOX_DIR": str(sbx["dir"])})
    assert code == 0, screen
    assert re.search(r"handled .*\b\d+/30\b", screen), screen
    assert "elapsed" in screen and "handled: " in screen
