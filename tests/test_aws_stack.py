"""The README tour against examples/aws/outbox-world.yaml, deployed (issue 13, item 6).

Two targets run the same tour (seed, wait for the function, list, show, stats, refire
with its dry run, the marker protocol's "delivered again, failed again, no loop",
config-trigger, --export in every format, --check, doctor, redrive of a poison record):

* ``test_tour_on_moto`` (always): the template deployed through moto's CloudFormation
  over HTTP; moto runs no function, so the sandbox's poller (streamq.sandbox.poller, the
  trigger emulator) runs the deployed mapping with the template's own inline handler.
* ``test_tour_on_aws`` (opt-in, never in CI): the template deployed into a real account
  with boto3 and the caller's profile, the real trigger and function, streamq run as a
  command (subprocesses), and the stack deleted at the end, pass or fail (``deployed``,
  which the moto tour uses too). Run it with

      STREAMQ_AWS_TESTS=1 STREAMQ_AWS_PROFILE=my-profile [STREAMQ_AWS_REGION=eu-west-1] \\
          python -m pytest -q -rs tests/test_aws_stack.py -k aws

  It creates a stack ``streamq-it-<random>`` (two on-demand tables, a function, a queue,
  a log group, a role and a policy: cents), sends no mail (SendMode fake), and deletes it.
  tests/conftest.py replaces the credentials with fake ones; tests/realenv.py keeps the
  environment as pytest started, which this test restores for itself.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import threading
import time
import urllib.parse
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.helpers import CliRunner, Result
from tests.realenv import ORIGINAL

ROOT = Path(__file__).resolve().parent.parent
TEMPLATE = ROOT / "examples" / "aws" / "outbox-world.yaml"
Run = Callable[..., Result]


def wait_until(what: str, check: Callable[[], Any], timeout: float,
               every: float = 0.5) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:g}s waiting for {what}")
        time.sleep(every)


def seed_items(n: int, run_id: str) -> list[dict[str, Any]]:
    """``n`` mails, every 4th to an undeliverable address (the fake API's 550)."""
    now = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime()) + "Z"
    return [{"id": {"S": f"it-{run_id}-{i:03d}"},
             "recipient": {"S": f"user{i}@{'invalid' if i % 4 == 0 else 'ok'}.example"},
             "subject": {"S": f"tour {i}"}, "created_at": {"S": now}, "attempts": {"N": "0"}}
            for i in range(n)]


def tour(run: Run, *, put_items: Callable[[list[dict[str, Any]]], None],
         outputs: dict[str, str], tmp_path: Path, timeout: float) -> None:
    """The README tour on a deployed stack. ``run(*args, input=None)`` runs streamq with
    the stack's --table/--function (and credentials) already given."""
    run_id = uuid.uuid4().hex[:6]
    items = seed_items(12, run_id)
    undeliverable = sorted(it["id"]["S"] for it in items
                           if "invalid" in it["recipient"]["S"])

    def stats() -> dict[str, Any]:
        r = run("stats", "-o", "json")
        assert r.code == 0, r.err
        return dict(r.json())

    def failed_attempts() -> dict[str, int]:
        r = run("list", "--status", "all", "-o", "jsonl")
        assert r.code == 0, r.err
        return {rec["key"]["id"]: rec["attempts"] for rec in r.jsonl()
                if rec["key"]["id"].startswith(f"it-{run_id}")}

    put_items(items)
    # The function delivers 9, and records a failure for the 3 undeliverable ones.
    wait_until("the function to handle the seed",
               lambda: sorted(failed_attempts()) == undeliverable
               and set(failed_attempts().values()) == {1}, timeout)
    time.sleep(3)  # its own failure writes are MODIFYs without the marker: no loop
    assert set(failed_attempts().values()) == {1}

    r = run("list", "--status", "failed", "-o", "ids")
    assert r.code == 0 and sorted(r.out.split()) == undeliverable, r.err
    doc = stats()
    assert doc["counts"]["failed"] == 3 and doc["total"] == 3
    shown = run("show", undeliverable[0], "-o", "json")
    assert shown.code == 0, shown.err
    assert shown.json()["error"] == "550 mailbox unavailable"

    plan = run("refire", "--status", "failed", "--dry-run", "-o", "json")
    assert plan.code == 0, plan.err
    assert plan.json()["filter"].startswith("passes")
    r = run("refire", "--ids-from", "-", "--rate", "5", "--yes",
            input="\n".join(undeliverable) + "\n")
    assert r.code == 0, r.err
    # A refire's MODIFY carries the marker: delivered again, refused again, recorded
    # again (attempts 2), and that write is dropped by the filter: no third attempt.
    wait_until("the refired records to be tried again",
               lambda: set(failed_attempts().values()) == {2}, timeout)
    time.sleep(3)
    assert set(failed_attempts().values()) == {2}

    read = run("config-trigger", "-o", "json")
    assert read.code == 0, read.err
    view = read.json()
    assert view["UUID"] == outputs["TriggerUuid"]
    assert [x["code"] for x in view["lints"]] == []
    saved = tmp_path / "trigger.json"
    exported = run("config-trigger", "--export")
    assert exported.code == 0, exported.err
    saved.write_text(exported.out)
    r = run("config-trigger", "--check", str(saved), "-o", "json")
    assert r.code == 0, r.err
    assert r.json()["status"] == "in_sync"
    cfn = run("config-trigger", "--export", "--format", "cloudformation")
    assert cfn.code == 0 and "Type: AWS::Lambda::EventSourceMapping" in cfn.out
    tf = run("config-trigger", "--export", "--format", "terraform")
    assert tf.code == 0 and 'resource "aws_lambda_event_source_mapping"' in tf.out
    dry = run("config-trigger", "--batch-size", "50", "--dry-run", "-o", "json")
    assert dry.code == 0 and dry.json()["changes"][0]["new"] == 50
    doctor = run("doctor", "-o", "json")
    assert doctor.code in (0, 3), doctor.err
    checks = {c["name"]: c["status"] for c in doctor.json()["checks"]}
    for name in ("table", "stream", "trigger", "trigger.state", "trigger.refire-filter",
                 "destination"):
        assert checks.get(name) == "ok", (name, checks)

    # redrive (README, "Recover what the trigger gave up on"): retries and bisect off, a
    # poison record (no recipient: the handler raises) makes the trigger give up on its
    # batch and send the pointer to the SQS queue; the record fixed (a MODIFY without the
    # marker: dropped by the filter), redrive reads the queue, refires the key and
    # deletes the message; the function delivers it. The trigger is restored.
    poison_id = f"it-{run_id}-poison"
    poison = {"id": {"S": poison_id}, "subject": {"S": "tour poison"},
              "created_at": items[0]["created_at"], "attempts": {"N": "0"}}

    def change_trigger(*args: str) -> None:
        r = run("config-trigger", *args, "--yes")
        assert r.code == 0, r.err
        wait_until("the trigger's change to apply", lambda: run(
            "config-trigger", "-o", "json").json()["State"] == "Enabled", timeout)

    def queued() -> list[dict[str, Any]]:
        r = run("redrive", "--dry-run", "-o", "json")
        assert r.code in (0, 3), r.err
        return [m for m in r.json()["messages"]
                if any(k["key"]["id"] == poison_id for k in m["keys"])]

    change_trigger("--retry-attempts", "0", "--no-bisect")
    put_items([poison])
    message = wait_until("the trigger to give up on the poison record", queued, timeout)[0]
    assert message["record"]["condition"] == "RetryAttemptsExhausted", message
    change_trigger("--retry-attempts", "2", "--bisect")
    put_items([{**poison, "recipient": {"S": "fixed@ok.example"}}])
    r = run("redrive", "--yes", "-o", "json")
    assert r.code == 0, r.err
    (mine,) = [m for m in r.json()["messages"]
               if any(k["key"]["id"] == poison_id for k in m["keys"])]
    assert mine["result"] == "deleted", mine
    assert [k["outcome"] for k in mine["keys"] if k["key"]["id"] == poison_id] == ["refired"]
    wait_until("the redriven record to be delivered",
               lambda: run("show", poison_id).code == 4, timeout)
    r = run("config-trigger", "--check", str(saved), "-o", "json")
    assert r.code == 0 and r.json()["status"] == "in_sync", r.out + r.err


# --------------------------------------------------------------- deploy and tear down


@contextlib.contextmanager
def deployed(cfn: Any, name: str, parameters: dict[str, str], *,
             delay: int) -> Iterator[dict[str, str]]:
    """The template deployed as stack ``name`` (CreateStack, then the
    stack_create_complete waiter); yields its outputs and deletes the stack at the end,
    pass or fail, waiting until it is gone. Both tours use it: moto's CloudFormation
    here, an account's with STREAMQ_AWS_TESTS=1."""
    from botocore.exceptions import WaiterError

    try:
        cfn.create_stack(StackName=name, TemplateBody=TEMPLATE.read_text(),
                         Capabilities=["CAPABILITY_IAM"],
                         Parameters=[{"ParameterKey": k, "ParameterValue": v}
                                     for k, v in parameters.items()])
        try:
            cfn.get_waiter("stack_create_complete").wait(
                StackName=name, WaiterConfig={"Delay": delay, "MaxAttempts": 900 // delay})
        except WaiterError as exc:
            events = cfn.describe_stack_events(StackName=name)["StackEvents"]
            reasons = [f"{e['LogicalResourceId']}: {e.get('ResourceStatusReason')}"
                       for e in events if e["ResourceStatus"].endswith("_FAILED")]
            raise AssertionError(f"stack {name} was not created ({exc}): {reasons}") from None
        stack = cfn.describe_stacks(StackName=name)["Stacks"][0]
        yield {o["OutputKey"]: o["OutputValue"] for o in stack["Outputs"]}
    finally:
        cfn.delete_stack(StackName=name)
        cfn.get_waiter("stack_delete_complete").wait(
            StackName=name, WaiterConfig={"Delay": delay, "MaxAttempts": 900 // delay})


# -------------------------------------------------------------------------------- moto


@pytest.mark.slow
def test_tour_on_moto(endpoint: str, cli: CliRunner, tmp_path: Path,
                      monkeypatch: pytest.MonkeyPatch) -> None:
    import boto3

    from streamq.aws import Aws
    from streamq.config import Settings
    from streamq.sandbox.poller import Poller
    from tests.test_aws_example import inline_handler

    cfn = boto3.client("cloudformation", endpoint_url=endpoint, region_name="us-east-1")
    ddb = boto3.client("dynamodb", endpoint_url=endpoint, region_name="us-east-1")
    iam = boto3.client("iam", endpoint_url=endpoint, region_name="us-east-1")
    log: list[dict[str, Any]] = []
    with deployed(cfn, "streamq-tour", {}, delay=1) as outputs:
        assert outputs["OutboxTableName"] == "mail_outbox"
        for var, key in (("MAIL_OUTBOX_TABLE", "OutboxTableName"),
                         ("MAIL_HISTORY_TABLE", "HistoryTableName")):
            monkeypatch.setenv(var, outputs[key])
        monkeypatch.setenv("SEND_MODE", "fake")
        handler = inline_handler(tmp_path)
        # The handler logs each send as a JSON line (CloudWatch Logs on AWS). Here it runs
        # in this process, whose stdout the in-process CLI captures: keep its lines apart
        # (the fake API's log, as in the sandbox's end-to-end test).
        handler.print = lambda line: log.append(json.loads(line))  # type: ignore[attr-defined]
        aws = Aws(Settings(endpoint_url=endpoint, region="us-east-1", sandbox=True))
        stop = threading.Event()
        poller = Poller(aws, table=outputs["OutboxTableName"],
                        function=outputs["FunctionName"], handler=handler.handler, stop=stop,
                        poll_interval=0.2)
        thread = threading.Thread(target=poller.run, daemon=True)
        thread.start()

        def put_items(items: list[dict[str, Any]]) -> None:
            for it in items:
                ddb.put_item(TableName=outputs["OutboxTableName"], Item=it)

        def run(*args: str, input: str | None = None) -> Result:
            return cli(*args, "--table", outputs["OutboxTableName"], "--function",
                       outputs["FunctionName"], input=input)

        try:
            tour(run, put_items=put_items, outputs=outputs, tmp_path=tmp_path, timeout=30)
        finally:
            stop.set()
            thread.join(timeout=10)
        # The operator policy the stack deployed is what `streamq iam-policy` prints for
        # the deployed world, its ARNs read from it.
        printed = run("iam-policy")
        assert printed.code == 0, printed.err
        policy = iam.get_policy(PolicyArn=outputs["OperatorPolicyArn"])["Policy"]
        document = iam.get_policy_version(
            PolicyArn=policy["Arn"], VersionId=policy["DefaultVersionId"]
        )["PolicyVersion"]["Document"]
        if isinstance(document, str):
            document = json.loads(urllib.parse.unquote(document))
        assert document == printed.json()
    # Torn down: the stack and its tables are gone.
    assert outputs["OutboxTableName"] not in ddb.list_tables()["TableNames"]
    assert poller.counters.records_filtered >= 6  # the handler's own failure writes
    # No message was sent twice: each deliverable one once, each undeliverable one tried
    # twice (the first delivery and the refire), never a third time.
    sends = [e for e in log if "send" in e]
    tries: dict[str, int] = {}
    for e in sends:
        tries[e["send"]] = tries.get(e["send"], 0) + 1
    assert sorted(tries.values()) == [1] * 10 + [2] * 3, tries  # the poison: once, fixed
    assert all(e["error"] == "550 mailbox unavailable" for e in sends
               if "invalid" in e["recipient"])


# --------------------------------------------------------------------------------- AWS

OPTED_IN = ORIGINAL.get("STREAMQ_AWS_TESTS") == "1"
AWS_PROFILE = ORIGINAL.get("STREAMQ_AWS_PROFILE") or ORIGINAL.get("AWS_PROFILE")
AWS_REASON = (
    "the real-AWS tour is opt-in and needs an account: set STREAMQ_AWS_TESTS=1 and "
    "STREAMQ_AWS_PROFILE (or AWS_PROFILE) to a profile that may create and delete a "
    "CloudFormation stack (README: 'The same world on AWS')")


def aws_env(monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """The caller's AWS configuration, as pytest started (tests/conftest.py replaced it
    with fake credentials), with their profile and region: set in this process (for
    boto3) and returned (for the streamq subprocesses). The test's own isolated config
    and state directories are kept."""
    region = (ORIGINAL.get("STREAMQ_AWS_REGION") or ORIGINAL.get("AWS_REGION")
              or ORIGINAL.get("AWS_DEFAULT_REGION") or "us-east-1")
    for var in set(os.environ) | set(ORIGINAL):
        if var.startswith("AWS_") or var.startswith("STREAMQ_"):
            if var in ORIGINAL:
                monkeypatch.setenv(var, ORIGINAL[var])
            else:
                monkeypatch.delenv(var, raising=False)
    for var in ("AWS_ENDPOINT_URL", "STREAMQ_SANDBOX", "STREAMQ_TABLE", "STREAMQ_OUTBOX",
                "STREAMQ_FUNCTION"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("AWS_PROFILE", str(AWS_PROFILE))
    monkeypatch.setenv("AWS_REGION", region)
    monkeypatch.setenv("AWS_DEFAULT_REGION", region)
    return dict(os.environ)


@pytest.mark.skipif(not (OPTED_IN and AWS_PROFILE), reason=AWS_REASON)
def test_tour_on_aws(tmp_path: Path,
                     monkeypatch: pytest.MonkeyPatch) -> None:  # pragma: no cover - an account
    import boto3

    env = aws_env(monkeypatch)
    session = boto3.Session(profile_name=env["AWS_PROFILE"], region_name=env["AWS_REGION"])
    cfn, ddb = session.client("cloudformation"), session.client("dynamodb")
    suffix = uuid.uuid4().hex[:8]
    names = {"TableName": f"streamq_it_{suffix}_outbox",
             "HistoryTableName": f"streamq_it_{suffix}_history",
             "FunctionName": f"streamq-it-{suffix}-sender", "SendMode": "fake"}
    with deployed(cfn, f"streamq-it-{suffix}", names, delay=10) as outputs:

        def run(*args: str, input: str | None = None) -> Result:
            res = subprocess.run([sys.executable, "-m", "streamq.cli", *args, "--table",
                                  outputs["OutboxTableName"], "--function",
                                  outputs["FunctionName"]], env=env, input=input or "",
                                 capture_output=True, text=True, timeout=600)
            return Result(res.returncode, res.stdout, res.stderr)

        def put_items(items: list[dict[str, Any]]) -> None:
            for start in range(0, len(items), 25):
                ddb.batch_write_item(RequestItems={outputs["OutboxTableName"]: [
                    {"PutRequest": {"Item": it}} for it in items[start:start + 25]]})

        tour(run, put_items=put_items, outputs=outputs, tmp_path=tmp_path, timeout=300)


def test_the_aws_tour_says_why_it_is_skipped() -> None:
    """Without the opt-in, the skip reason says how to run it, and the README does."""
    assert "STREAMQ_AWS_TESTS=1" in AWS_REASON and "STREAMQ_AWS_PROFILE" in AWS_REASON
    readme = (ROOT / "README.md").read_text()
    assert "STREAMQ_AWS_TESTS=1" in readme and "examples/aws/outbox-world.yaml" in readme
    assert "tests/test_aws_stack.py -k tour_on_aws" in readme
