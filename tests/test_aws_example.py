"""examples/aws/outbox-world.yaml (issue 13, item 6): the sandbox's world as a
CloudFormation template. cfn-lint validates it; its trigger is the sandbox's; its inline
handler (the ZipFile) is the demo handler's equivalent, run here against the moto server
over HTTP, next to streamq.sandbox.demo on the same events."""

from __future__ import annotations

import importlib.util
import json
import re
import sys
import types
from pathlib import Path
from typing import Any

import pytest

from streamq.sandbox.world import INSERT_FILTER, REFIRE_FILTER, TRIGGER_SETTINGS
from tests.helpers import create_table

ROOT = Path(__file__).resolve().parent.parent
TEMPLATE = ROOT / "examples" / "aws" / "outbox-world.yaml"


def load_template() -> dict[str, Any]:
    from cfnlint.decode.cfn_yaml import loads

    return dict(loads(TEMPLATE.read_text()))


def resources() -> dict[str, Any]:
    return dict(load_template()["Resources"])


def test_template_passes_cfn_lint() -> None:
    from cfnlint.api import ManualArgs, lint

    matches = lint(TEMPLATE.read_text(), config=ManualArgs(
        regions=["us-east-1", "eu-west-1"], include_checks=["I"]))
    assert [f"{m.rule.id} {m.message} (line {m.linenumber})" for m in matches] == []


def test_the_world_is_the_sandboxs() -> None:
    res = resources()
    outbox = res["OutboxTable"]["Properties"]
    assert outbox["StreamSpecification"] == {"StreamViewType": "NEW_AND_OLD_IMAGES"}
    assert outbox["KeySchema"] == [{"AttributeName": "id", "KeyType": "HASH"}]
    assert "StreamSpecification" not in res["HistoryTable"]["Properties"]
    trigger = res["MailSenderTrigger"]["Properties"]
    # The sandbox's trigger settings, filter included (the marker protocol), with the
    # on-failure queue; limited retries.
    for name, value in TRIGGER_SETTINGS.items():
        assert trigger[name] == value, name
    assert [f["Pattern"] for f in trigger["FilterCriteria"]["Filters"]] == [INSERT_FILTER,
                                                                           REFIRE_FILTER]
    assert trigger["MaximumRetryAttempts"] >= 0
    assert trigger["DestinationConfig"]["OnFailure"]["Destination"] == {
        "Fn::GetAtt": ["FailureQueue", "Arn"]}
    fn = res["MailSenderFunction"]["Properties"]
    assert fn["Handler"] == "index.handler" and fn["Runtime"].startswith("python3")
    assert set(fn["Environment"]["Variables"]) >= {"MAIL_OUTBOX_TABLE",
                                                   "MAIL_HISTORY_TABLE", "SEND_MODE"}
    params = load_template()["Parameters"]
    assert params["SendMode"]["AllowedValues"] == ["fake", "noop"]  # never a real send


def test_the_trigger_lints_clean() -> None:
    """streamq's own lints on the template's trigger: none (no infinite retries, an
    on-failure destination, bisect on, a filter that passes INSERTs and refires)."""
    from streamq.config import Settings
    from streamq.outbox import KeyAttr, TableInfo
    from streamq.trigger import DEFAULTS, lint_config

    props = resources()["MailSenderTrigger"]["Properties"]
    cfg = {**DEFAULTS, **{k: v for k, v in props.items() if k in DEFAULTS}}
    cfg["DestinationConfig"] = {"OnFailure": {"Destination": "arn:aws:sqs:us-east-1:"
                                              "123456789012:mail-sender-failures"}}
    info = TableInfo(name="mail_outbox", hash_key=KeyAttr("id", "S"),
                     stream_enabled=True, stream_arn="arn:aws:dynamodb:us-east-1:"
                     "123456789012:table/mail_outbox/stream/x",
                     stream_view_type="NEW_AND_OLD_IMAGES")
    assert lint_config(cfg, info, Settings()) == []


ACCOUNT, REGION = "123456789012", "us-east-1"
TABLE_ARN = f"arn:aws:dynamodb:{REGION}:{ACCOUNT}:table/mail_outbox"
HISTORY_ARN = f"arn:aws:dynamodb:{REGION}:{ACCOUNT}:table/mail_history"
FUNCTION_ARN = f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:mail-sender"
QUEUE_ARN = f"arn:aws:sqs:{REGION}:{ACCOUNT}:mail-sender-failures"
UUID = "a7e6117c-8fa1-4ba6-ab6c-2e1647101c49"
#: What the template's references resolve to once deployed with its defaults.
VALUES = {"OutboxTable.Arn": TABLE_ARN, "HistoryTable.Arn": HISTORY_ARN,
          "MailSenderFunction.Arn": FUNCTION_ARN, "FailureQueue.Arn": QUEUE_ARN,
          "MailSenderTrigger": UUID, "MailSenderLogGroup": "/aws/lambda/mail-sender",
          "AWS::Partition": "aws", "AWS::Region": REGION, "AWS::AccountId": ACCOUNT}


def resolve(value: Any) -> Any:
    """A policy's Resource with the template's Ref, Fn::GetAtt and Fn::Sub resolved."""
    if isinstance(value, list):
        return [resolve(v) for v in value]
    if isinstance(value, dict):
        ((fn, arg),) = value.items()
        if fn == "Fn::GetAtt":
            return VALUES[".".join(arg)]
        if fn == "Ref":
            return VALUES[arg]
        assert fn == "Fn::Sub", value
        return re.sub(r"\$\{([^}]+)\}", lambda m: VALUES[m[1]], arg)
    return value


def statements(resource: str) -> list[dict[str, Any]]:
    props = resources()[resource]["Properties"]
    docs = ([p["PolicyDocument"] for p in props["Policies"]] if "Policies" in props
            else [props["PolicyDocument"]])
    out = []
    for doc in docs:
        assert doc["Version"] == "2012-10-17"
        for st in doc["Statement"]:
            actions = st["Action"] if isinstance(st["Action"], list) else [st["Action"]]
            assert st["Effect"] == "Allow" and all("*" not in a for a in actions), st
            out.append({**st, "Action": sorted(actions), "Resource": resolve(st["Resource"])})
    return out


def test_operator_policy_is_streamq_iam_policy() -> None:
    """StreamqOperatorPolicy is what `streamq iam-policy` prints for this world (its
    mapping, function and SQS destination known): the same statements, nothing more."""
    from streamq.iam import Resources, build_policy

    world = Resources(table="mail_outbox", region=REGION, account=ACCOUNT, resolved=True,
                      mappings=[{"UUID": UUID, "FunctionArn": FUNCTION_ARN,
                                 "DestinationConfig": {"OnFailure": {
                                     "Destination": QUEUE_ARN}}}])
    expected = build_policy(world)["Statement"]
    assert statements("StreamqOperatorPolicy") == expected


def test_function_role_is_what_the_handler_and_trigger_use(
        world: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The execution role grants the handler's own calls (recorded here, against the
    local endpoint, on every path: sent, refused, already delivered, delivered meanwhile)
    on the two tables, what the trigger needs with that role (the stream, the on-failure
    queue: AWS's documented lists) and its log streams; nothing else, no wildcard."""
    monkeypatch.setenv("SEND_MODE", "fake")
    h = inline_handler(tmp_path, "recorded")
    calls: set[tuple[str, str]] = set()

    def record_call(model: Any, params: dict[str, Any], **_: Any) -> None:
        calls.add((f"dynamodb:{model.name}", params["TableName"]))

    h.ddb.meta.events.register("before-parameter-build.dynamodb", record_call)
    ok, bad, gone = (mail("p-ok", "a@example.com"), mail("p-bad", "b@invalid.example"),
                     mail("p-gone", "c@invalid.example"))
    for it in (ok, bad):
        world.put_item(TableName="outbox", Item=it)
    h.handler({"Records": [record("INSERT", it) for it in (ok, bad, gone)]}, None)
    world.put_item(TableName="outbox", Item=ok)
    h.handler({"Records": [record("INSERT", ok)]}, None)  # already delivered
    arn = {"outbox": TABLE_ARN, "history": HISTORY_ARN}
    handler_calls = {(action, arn[table]) for action, table in calls}
    assert handler_calls == {("dynamodb:GetItem", HISTORY_ARN), ("dynamodb:PutItem", HISTORY_ARN),
                             ("dynamodb:UpdateItem", TABLE_ARN),
                             ("dynamodb:DeleteItem", TABLE_ARN)}
    granted = {(a, st["Resource"]) for st in statements("MailSenderRole")
               for a in st["Action"]}
    stream = TABLE_ARN + "/stream/*"
    # DynamoDB Developer Guide, "IAM policy to allow an AWS Lambda function to access
    # DynamoDB stream records": these four on table/NAME/stream/*. Lambda Developer
    # Guide, services-dynamodb-errors: sqs:SendMessage for an SQS on-failure destination.
    trigger = {(a, stream) for a in ("dynamodb:DescribeStream", "dynamodb:GetRecords",
                                     "dynamodb:GetShardIterator", "dynamodb:ListStreams")}
    trigger.add(("sqs:SendMessage", QUEUE_ARN))
    logs = f"arn:aws:logs:{REGION}:{ACCOUNT}:log-group:/aws/lambda/mail-sender:*"
    runtime = {("logs:CreateLogStream", logs), ("logs:PutLogEvents", logs)}
    assert granted == handler_calls | trigger | runtime


# ----------------------------------------------------------------- the inline handler


def inline_handler(tmp_path: Path, name: str = "index") -> types.ModuleType:
    """The template's ZipFile code, imported as Lambda would (index.py)."""
    code = resources()["MailSenderFunction"]["Properties"]["Code"]["ZipFile"]
    path = tmp_path / f"{name}.py"
    path.write_text(code)
    spec = importlib.util.spec_from_file_location(f"outbox_world_{name}", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def record(name: str, item: dict[str, Any]) -> dict[str, Any]:
    return {"eventName": name, "dynamodb": {"Keys": {"id": item["id"]}, "NewImage": item}}


def mail(i: str, recipient: str, **extra: Any) -> dict[str, Any]:
    return {"id": {"S": i}, "recipient": {"S": recipient}, "subject": {"S": f"s-{i}"},
            **extra}


@pytest.fixture()
def world(ddb: Any, endpoint: str, monkeypatch: pytest.MonkeyPatch) -> Any:
    create_table(ddb, "outbox", stream=True)
    create_table(ddb, "history", stream=False)
    monkeypatch.setenv("MAIL_OUTBOX_TABLE", "outbox")
    monkeypatch.setenv("MAIL_HISTORY_TABLE", "history")
    monkeypatch.setenv("AWS_REGION", "us-east-1")
    return ddb


def get(ddb: Any, table: str, i: str) -> dict[str, Any] | None:
    return ddb.get_item(TableName=table, Key={"id": {"S": i}}, ConsistentRead=True).get("Item")


def test_handler_marker_protocol(world: Any, tmp_path: Path,
                                 monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SEND_MODE", "fake")
    h = inline_handler(tmp_path)
    ok = mail("m-ok", "a@example.com", attempts={"N": "0"})
    bad = mail("m-bad", "b@invalid.example", refired_at={"S": "2026-01-01T00:00:00Z"},
               attempts={"N": "1"})
    for it in (ok, bad):
        world.put_item(TableName="outbox", Item=it)
    assert h.handler({"Records": [record("INSERT", ok), record("MODIFY", bad)]},
                     None) == {"batchItemFailures": []}
    assert get(world, "outbox", "m-ok") is None
    sent = get(world, "history", "m-ok")
    assert sent is not None and sent["provider_id"] == {"S": "fake-m-ok"}
    assert sent["attempts"] == {"N": "1"}
    failed = get(world, "outbox", "m-bad")
    assert failed is not None and get(world, "history", "m-bad") is None
    assert failed["last_error"] == {"S": "550 mailbox unavailable"}
    assert failed["attempts"] == {"N": "2"} and "last_attempt_at" in failed
    assert "refired_at" not in failed  # the marker is removed: the filter drops this MODIFY
    # Already in history: deleted, not sent again; REMOVE records are ignored.
    world.put_item(TableName="outbox", Item=ok)
    h.handler({"Records": [record("INSERT", ok), record("REMOVE", bad)]}, None)
    assert get(world, "outbox", "m-ok") is None and get(world, "outbox", "m-bad")
    # A failure for an item delivered (deleted) meanwhile never resurrects it.
    gone = mail("m-gone", "c@invalid.example")
    h.handler({"Records": [record("INSERT", gone)]}, None)
    assert get(world, "outbox", "m-gone") is None
    # The poison record (no recipient) raises: the trigger retries, bisects, gives up.
    with pytest.raises(KeyError):
        h.handler({"Records": [record("INSERT", {"id": {"S": "m-poison"}})]}, None)


def test_fake_send_rate_limits_and_noop_sends_everything(world: Any, tmp_path: Path,
                                                        monkeypatch: pytest.MonkeyPatch
                                                        ) -> None:
    monkeypatch.setenv("SEND_MODE", "fake")
    monkeypatch.setenv("FAKE_MAIL_RATE", "2")
    h = inline_handler(tmp_path, "fake")
    items = [mail(f"r-{i}", f"u{i}@example.com") for i in range(3)]
    for it in items:
        world.put_item(TableName="outbox", Item=it)
    h.handler({"Records": [record("INSERT", it) for it in items]}, None)
    assert get(world, "outbox", "r-2")["last_error"] == {"S": "429 Too Many Requests"}
    monkeypatch.setenv("SEND_MODE", "noop")
    n = inline_handler(tmp_path, "noop")
    bad = mail("n-1", "x@invalid.example")
    world.put_item(TableName="outbox", Item=bad)
    n.handler({"Records": [record("INSERT", bad)]}, None)
    assert get(world, "outbox", "n-1") is None and get(world, "history", "n-1")


def test_equivalent_to_the_demo_handler(ddb: Any, endpoint: str, tmp_path: Path,
                                        monkeypatch: pytest.MonkeyPatch) -> None:
    """The same events through streamq.sandbox.demo.handler and the template's handler,
    each on its own pair of tables: the same tables afterwards (times aside)."""
    from streamq.sandbox import demo

    for t in ("o_demo", "h_demo", "o_tpl", "h_tpl"):
        create_table(ddb, t, stream=t.startswith("o_"))
    monkeypatch.setenv("AWS_REGION", "us-east-1")
    monkeypatch.setenv("FAKE_MAIL_LOG", str(tmp_path / "fake.jsonl"))
    monkeypatch.setenv("FAKE_MAIL_RATE", "3")
    items = [mail(f"e-{i}", f"u{i}@{'invalid' if i % 3 == 0 else 'ok'}.example",
                  attempts={"N": str(i % 2)}) for i in range(6)]
    events = [{"Records": [record("INSERT", it) for it in items]},
              {"Records": [record("MODIFY", items[1]), record("REMOVE", items[2])]}]

    def state(outbox: str, history: str) -> list[Any]:
        out = []
        for t in (outbox, history):
            rows = ddb.scan(TableName=t, ConsistentRead=True)["Items"]
            for r in rows:  # times by their format (the attempt time to the ms)
                for ts in ("last_attempt_at", "sent_at"):
                    if ts in r:
                        r[ts] = {"S": re.sub(r"\d", "9", r[ts]["S"])}
            out.append(sorted(json.dumps(r, sort_keys=True) for r in rows))
        return out

    monkeypatch.setenv("MAIL_OUTBOX_TABLE", "o_demo")
    monkeypatch.setenv("MAIL_HISTORY_TABLE", "h_demo")
    for it in items:
        ddb.put_item(TableName="o_demo", Item=it)
    for ev in events:
        demo.handler(ev, None)
    monkeypatch.setenv("MAIL_OUTBOX_TABLE", "o_tpl")
    monkeypatch.setenv("MAIL_HISTORY_TABLE", "h_tpl")
    monkeypatch.setenv("SEND_MODE", "fake")
    h = inline_handler(tmp_path, "equiv")
    for it in items:
        ddb.put_item(TableName="o_tpl", Item=it)
    for ev in events:
        h.handler(ev, None)
    demo_state, tpl_state = state("o_demo", "h_demo"), state("o_tpl", "h_tpl")
    assert demo_state == tpl_state
    assert len(demo_state[0]) == 3 and len(demo_state[1]) == 3  # 2 undeliverable + 1 429
    sys.modules.pop("outbox_world_equiv", None)
