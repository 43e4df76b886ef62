"""``streamq iam-policy``: least privilege, scoped to what AWS says the resources are, and
covering every AWS call the commands make (recorded over the whole test session by
``tests/iam_recorder.py``; this module runs last)."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from streamq import iam
from tests import iam_recorder
from tests.helpers import CliRunner, batch_put, create_table, create_trigger, outbox_items

TABLE = "outbox"
ACCOUNT = "123456789012"  # moto's
SQS = f"arn:aws:sqs:us-east-1:{ACCOUNT}:sender-failures"
KEY = f"arn:aws:kms:us-east-1:{ACCOUNT}:key/0b5d3c2e-1111-2222-3333-444455556666"


def policy(cli: CliRunner, *args: str) -> tuple[dict[str, Any], str]:
    res = cli("iam-policy", *args)
    assert res.code == 0, res.err
    return res.json(), res.err


def statements(doc: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {s["Sid"]: s for s in doc["Statement"]}


def actions(doc: dict[str, Any]) -> set[str]:
    return {a for s in doc["Statement"] for a in s["Action"]}


@pytest.fixture()
def outbox(ddb: Any, endpoint: str) -> dict[str, Any]:
    create_table(ddb, TABLE)
    items, _ = outbox_items(30)
    batch_put(ddb, TABLE, items)
    return create_trigger(endpoint, TABLE, function="mail-sender",
                          DestinationConfig={"OnFailure": {"Destination": SQS}})


@pytest.fixture()
def encrypted(ddb: Any, endpoint: str) -> dict[str, Any]:
    """A trigger whose filter is encrypted with a customer managed key."""
    create_table(ddb, TABLE)
    return create_trigger(endpoint, TABLE, function="mail-sender", KMSKeyArn=KEY,
                          FilterCriteria={"Filters": [{"Pattern": '{"eventName": ["MODIFY"]}'}]})


def test_policy_is_scoped_to_the_resources_read_from_aws(cli: CliRunner,
                                                         outbox: dict[str, Any]) -> None:
    doc, err = policy(cli, "-t", TABLE)
    table_arn = f"arn:aws:dynamodb:us-east-1:{ACCOUNT}:table/{TABLE}"
    st = statements(doc)
    assert st["OutboxTable"]["Resource"] == table_arn
    assert st["OutboxIndexes"]["Resource"] == table_arn + "/index/*"
    assert "dynamodb:UpdateItem" in st["OutboxTable"]["Action"]
    assert st["Trigger"]["Resource"] == (f"arn:aws:lambda:us-east-1:{ACCOUNT}:"
                                         f"event-source-mapping:{outbox['UUID']}")
    assert set(st["Trigger"]["Action"]) == {"lambda:GetEventSourceMapping",
                                            "lambda:UpdateEventSourceMapping"}
    assert "TriggerFilterKey" not in st  # no encrypted filter: no kms:Decrypt
    # the only statement on "*" is the action AWS offers no resource-level permission for
    assert [s["Sid"] for s in doc["Statement"] if s["Resource"] == "*"] == [
        "NoResourceLevelPermissions"]
    assert st["NoResourceLevelPermissions"]["Action"] == ["cloudwatch:GetMetricData",
                                                          "lambda:ListEventSourceMappings"]
    assert st["OutboxStream"]["Resource"] == table_arn + "/stream/*"
    function = f"arn:aws:lambda:us-east-1:{ACCOUNT}:function:mail-sender"
    assert st["TriggerFunction"]["Resource"] == [function, function + ":*"]
    # the destination gets its own service's actions only (doctor reads the queue;
    # redrive receives its messages and deletes those fully handled)
    assert st["OnFailureSQS"] == {"Sid": "OnFailureSQS", "Effect": "Allow",
                                  "Action": ["sqs:ChangeMessageVisibility",
                                             "sqs:DeleteMessage", "sqs:GetQueueAttributes",
                                             "sqs:GetQueueUrl", "sqs:ReceiveMessage"],
                                  "Resource": SQS}
    assert not {"OnFailureSNS", "OnFailureS3"} & set(st)
    assert "not encrypted" in err


def test_encrypted_filter_adds_kms_decrypt_on_its_key(cli: CliRunner,
                                                       encrypted: dict[str, Any]) -> None:
    for args in ((), ("--read-only",)):
        st = statements(policy(cli, "-t", TABLE, *args)[0])
        assert st["TriggerFilterKey"] == {"Sid": "TriggerFilterKey", "Effect": "Allow",
                                          "Action": ["kms:Decrypt"], "Resource": KEY}


def test_read_only_policy_has_no_write_action(cli: CliRunner, outbox: dict[str, Any]) -> None:
    full, _ = policy(cli, "-t", TABLE)
    ro, _ = policy(cli, "-t", TABLE, "--read-only")
    assert actions(ro) == actions(full) - iam.write_actions()
    assert {"dynamodb:UpdateItem", "lambda:UpdateEventSourceMapping"} <= iam.write_actions()
    assert not actions(ro) & iam.write_actions()


def test_unreachable_aws_gives_wildcards_and_a_note(cli: CliRunner,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    doc, err = policy(cli, "-t", TABLE, "--region", "eu-west-1", "--function", "mail-sender",
                      "--endpoint-url", f"http://127.0.0.1:{port}")
    st = statements(doc)
    assert st["OutboxTable"]["Resource"] == "arn:aws:dynamodb:eu-west-1:*:table/outbox"
    assert st["Trigger"]["Resource"] == "arn:aws:lambda:eu-west-1:*:event-source-mapping:*"
    # a wildcard mapping is still narrowed to the named function
    assert st["Trigger"]["Condition"] == {"ArnLike": {
        "lambda:FunctionArn": "arn:aws:lambda:eu-west-1:*:function:mail-sender*"}}
    assert "could not read table 'outbox'" in err and "cannot reach" in err
    # the destination is unknown: a wildcard per kind, and a note that says so
    assert st["OnFailureSQS"]["Resource"] == "arn:aws:sqs:eu-west-1:*:*"
    assert st["OnFailureSNS"]["Resource"] == "arn:aws:sns:eu-west-1:*:*"
    assert st["OnFailureS3"]["Resource"] == "arn:aws:s3:::*"
    assert "destination is unknown" in err
    assert "kms:Decrypt" in err  # what to add for an encrypted filter


def test_policy_document_is_accepted_by_iam(cli: CliRunner, outbox: dict[str, Any],
                                            endpoint: str) -> None:
    """Well-formed IAM: moto's IAM validates a policy document as CreatePolicy does."""
    import boto3

    iam_client = boto3.client("iam", endpoint_url=endpoint, region_name="us-east-1")
    for args in ((), ("--read-only",)):
        doc, _ = policy(cli, "-t", TABLE, *args)
        for s in doc["Statement"]:
            for a in s["Action"]:
                assert re.fullmatch(r"[a-z0-9-]+:[A-Za-z0-9]+", a), a
            for r in [s["Resource"]] if isinstance(s["Resource"], str) else s["Resource"]:
                assert r == "*" or r.startswith("arn:aws:"), r
        name = "streamq" + "-".join(args)
        iam_client.create_policy(PolicyName=name, PolicyDocument=json.dumps(doc))


def test_iam_action_names_for_botocore_operations() -> None:
    """Where the IAM action is not service:Operation (Service Authorization Reference)."""
    assert iam.iam_action("dynamodbstreams", "GetRecords") == "dynamodb:GetRecords"
    assert iam.iam_action("dynamodb", "Scan") == "dynamodb:Scan"
    assert iam.iam_action("sqs", "DeleteMessageBatch") == "sqs:DeleteMessage"
    assert iam.iam_action("s3", "ListObjectsV2") == "s3:ListBucket"
    assert iam.iam_action("s3", "HeadObject") == "s3:GetObject"
    assert iam.iam_action("lambda", "GetEventSourceMapping") == "lambda:GetEventSourceMapping"


def test_readme_table_is_the_policy() -> None:
    readme = (Path(__file__).resolve().parent.parent / "README.md").read_text()
    block = readme.split("<!-- iam-table:", 1)[1].split("<!-- /iam-table -->", 1)[0]
    rows = "\n".join(line for line in block.splitlines() if line.startswith("| `"))
    assert rows == iam.markdown_table(), (
        "README's IAM table is stale; replace its rows with:\n" + iam.markdown_table())


def test_the_commands_under_the_recorder(cli: CliRunner, outbox: dict[str, Any]) -> None:
    """The core commands, run here too so the check below means something on its own."""
    runs = [("list", "-t", TABLE), ("list", "-t", TABLE, "--status", "all", "-o", "ids"),
            ("show", "-t", TABLE, "msg-000001"), ("stats", "-t", TABLE),
            ("refire", "-t", TABLE, "--status", "failed", "--dry-run"),
            ("refire", "-t", TABLE, "--id", "msg-000001", "--yes"),
            ("config-trigger", "-t", TABLE),
            ("config-trigger", "-t", TABLE, "--batch-size", "7", "--yes"),
            ("iam-policy", "-t", TABLE)]
    for args in runs:
        res = cli(*args)
        assert res.code == 0, (args, res.err)
    seen = {(c.command, c.action) for c in iam_recorder.RECORDED}
    assert ("refire", "dynamodb:UpdateItem") in seen
    assert ("config-trigger", "lambda:UpdateEventSourceMapping") in seen
    assert ("list", "dynamodb:Scan") in seen


def test_every_recorded_call_is_granted() -> None:
    """Runs last: every AWS action any command called in this session is in the policy
    for that command, and a read-only invocation (--dry-run, list, show, stats, ...)
    called no write action."""
    missing = sorted({(c.command, c.action) for c in iam_recorder.RECORDED
                      if c.action not in iam.granted(c.command)})
    assert not missing, (
        "streamq called AWS actions that `streamq iam-policy` does not grant to that "
        "command; add them to streamq/iam.py GRANTS: "
        + ", ".join(f"{cmd} -> {action}" for cmd, action in missing))
    wrote = sorted({(c.command, c.action, " ".join(c.argv)) for c in iam_recorder.RECORDED
                    if c.read_only and c.action in iam.write_actions()})
    assert not wrote, f"read-only invocations called write actions: {wrote}"
    assert iam_recorder.RECORDED, "nothing recorded: is the recorder installed?"


def test_completion_offers_iam_policy() -> None:
    env = {**os.environ, "_STREAMQ_COMPLETE": "complete_bash",
           "COMP_WORDS": "streamq iam-policy --re", "COMP_CWORD": "2"}
    out = subprocess.run([sys.executable, "-m", "streamq.cli"], env=env, capture_output=True,
                         text=True, timeout=60).stdout.split()
    assert "--read-only" in out and "--region" in out
