"""``config-trigger --check FILE`` (issue 13, item 3): the live trigger against a saved
``--export``, over HTTP against the moto server (and its KMS-aware Lambda endpoint)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import boto3
import pytest

from streamq.drift import check_drift
from streamq.sandbox.world import INSERT_FILTER, REFIRE_FILTER
from tests.helpers import CliRunner, create_table, create_trigger

TABLE = "mail_outbox"
SQS = "arn:aws:sqs:us-east-1:123456789012:outbox-dlq"


def lam(endpoint: str) -> Any:
    return boto3.client("lambda", endpoint_url=endpoint, region_name="us-east-1")


def run(cli: CliRunner, *args: str, input: str | None = None) -> Any:
    return cli("config-trigger", "--table", TABLE, *args, input=input)


@pytest.fixture()
def trig(ddb: Any, endpoint: str) -> dict[str, Any]:
    create_table(ddb, TABLE)
    return create_trigger(endpoint, TABLE, function="mail-sender", MaximumRetryAttempts=2,
                          FilterCriteria={"Filters": [{"Pattern": INSERT_FILTER},
                                                      {"Pattern": REFIRE_FILTER}]})


@pytest.fixture()
def saved(cli: CliRunner, trig: dict[str, Any], tmp_path: Path) -> Path:
    r = run(cli, "--export")
    assert r.code == 0, r.err
    path = tmp_path / "trigger.json"
    path.write_text(r.out)
    return path


def test_equal_is_exit_0(cli: CliRunner, saved: Path) -> None:
    r = run(cli, "--check", str(saved), "-o", "json")
    assert r.code == 0, r.err
    doc = r.json()
    assert doc["status"] == "in_sync" and doc["differences"] == []
    assert doc["schema_version"] == 1 and doc["file"] == str(saved)
    assert {"BatchSize", "FilterCriteria", "Enabled", "FunctionArn"} <= set(doc["checked"])
    assert doc["unchecked"] == []
    assert "in sync" in r.err
    table = run(cli, "--check", str(saved), "-o", "table")
    assert table.code == 0 and "no differences" in table.out


def test_drift_is_exit_3_with_the_diff(cli: CliRunner, endpoint: str, trig: dict[str, Any],
                                       saved: Path) -> None:
    lam(endpoint).update_event_source_mapping(
        UUID=trig["UUID"], MaximumRetryAttempts=-1, BatchSize=10,
        DestinationConfig={"OnFailure": {"Destination": SQS}})
    r = run(cli, "--check", str(saved), "-o", "json")
    assert r.code == 3, r.err
    doc = r.json()
    assert doc["status"] == "drift"
    rows = {d["field"]: d for d in doc["differences"]}
    assert set(rows) == {"BatchSize", "MaximumRetryAttempts", "DestinationConfig"}
    assert rows["MaximumRetryAttempts"]["saved"] == 2
    assert rows["MaximumRetryAttempts"]["live"] == -1
    assert rows["MaximumRetryAttempts"]["live_display"] == "-1 (infinite)"
    assert rows["DestinationConfig"]["live"] == {"OnFailure": {"Destination": SQS}}
    assert "3 of" in r.err and "differ" in r.err
    # For people (a pipe gets JSON unless asked): the diff on stdout, the verdict on stderr.
    t = run(cli, "--check", str(saved), "-o", "table")
    assert t.code == 3
    assert "MaximumRetryAttempts" in t.out and "-1 (infinite)" in t.out and SQS in t.out
    assert "drift:" in t.err and "drift" not in t.out.lower().split("saved")[0]
    assert run(cli, "--check", str(saved)).json()["status"] == "drift"  # piped: JSON


def test_disabled_trigger_and_filter_change_drift(cli: CliRunner, endpoint: str,
                                                  trig: dict[str, Any], saved: Path) -> None:
    lam(endpoint).update_event_source_mapping(
        UUID=trig["UUID"], Enabled=False,
        FilterCriteria={"Filters": [{"Pattern": INSERT_FILTER}]})
    r = run(cli, "--check", str(saved), "-o", "json")
    assert r.code == 3
    assert {d["field"] for d in r.json()["differences"]} == {"Enabled", "FilterCriteria"}


def test_filters_compare_by_meaning(cli: CliRunner, saved: Path) -> None:
    """Filters are ORed and a pattern's spacing and key order do not count; the order
    inside an array does (a numeric range is ordered)."""
    doc = json.loads(saved.read_text())
    doc["FilterCriteria"]["Filters"] = [
        {"Pattern": json.dumps(json.loads(REFIRE_FILTER), separators=(",", ":"))},
        {"Pattern": '{ "eventName" : [ "INSERT" ] }'}]
    assert run(cli, "--check", "-", input=json.dumps(doc)).code == 0
    doc["FilterCriteria"]["Filters"][1] = {"Pattern": '{"eventName": ["INSERT", "MODIFY"]}'}
    assert run(cli, "--check", "-", input=json.dumps(doc)).code == 3


def test_fields_the_file_omits_are_not_checked(cli: CliRunner, endpoint: str,
                                               trig: dict[str, Any]) -> None:
    lam(endpoint).update_event_source_mapping(UUID=trig["UUID"], BatchSize=7)
    policy = json.dumps({"MaximumRetryAttempts": 2, "Enabled": True})
    r = run(cli, "--check", "-", "-o", "json", input=policy)
    assert r.code == 0, r.err
    doc = r.json()
    assert doc["checked"] == ["MaximumRetryAttempts", "Enabled"]
    assert "BatchSize" in doc["unchecked"] and "FilterCriteria" in doc["unchecked"]
    assert doc["file"] == "-"
    t = run(cli, "--check", "-", "-o", "table", input=policy)
    assert "not in the file, not checked: BatchSize" in " ".join(t.out.split())
    r = run(cli, "--check", "-", input=json.dumps({"MaximumRetryAttempts": 3}))
    assert r.code == 3


def test_identity_rows_and_notes(cli: CliRunner, ddb: Any, endpoint: str,
                                 trig: dict[str, Any], saved: Path) -> None:
    doc = json.loads(saved.read_text())
    # Another UUID and another stream label of the same table: notes, not drift.
    doc["UUID"] = "00000000-0000-0000-0000-000000000000"
    doc["EventSourceArn"] = doc["EventSourceArn"].rsplit("/", 1)[0] + "/2020-01-01T00:00:00.000"
    r = run(cli, "--check", "-", "-o", "json", input=json.dumps(doc))
    assert r.code == 0, r.err
    assert any("re-created" in n for n in r.json()["notes"])
    assert "stream was re-created" in r.err
    # Another function (qualifier) or another table: drift.
    doc["FunctionArn"] += ":prod"
    doc["EventSourceArn"] = doc["EventSourceArn"].replace(f"table/{TABLE}/", "table/other/")
    r = run(cli, "--check", "-", "-o", "json", input=json.dumps(doc))
    assert r.code == 3
    assert {d["field"] for d in r.json()["differences"]} == {"FunctionArn", "EventSourceArn"}


def test_bad_file_is_exit_2_before_any_aws_call(cli: CliRunner, tmp_path: Path,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    # No endpoint at all: a bad file must be refused before streamq reaches for AWS.
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:9")
    f = tmp_path / "bad.json"
    for text, needle in [('{"BatchSize": 0}', "out of range"), ("{", "not valid JSON"),
                         ('{"Colour": 1}', "unknown key"),
                         ('{"Format": "other/1"}', "is not")]:
        f.write_text(text)
        r = run(cli, "--check", str(f))
        assert r.code == 2 and needle in r.err, (text, r.err)
    assert run(cli, "--check", str(tmp_path / "missing.json")).code == 2


@pytest.mark.parametrize("extra", [["--batch-size", "5"], ["--export"], ["--dry-run"],
                                   ["--yes"], ["--force"], ["--from-file", "x.json"]])
def test_check_only_compares(cli: CliRunner, extra: list[str]) -> None:
    r = run(cli, "--check", "x.json", *extra)
    assert r.code == 2 and "--check only compares" in r.err


def test_no_trigger_is_exit_4(cli: CliRunner, ddb: Any, endpoint: str) -> None:
    create_table(ddb, TABLE)
    r = run(cli, "--check", "-", input="{}")
    assert r.code == 4


# ------------------------------------------------------------ a filter that cannot be read


def test_unreadable_filter_is_unknown_never_equal(cli: CliRunner, ddb: Any,
                                                  endpoint: str) -> None:
    """A filter encrypted with a KMS key the caller cannot use comes back as
    FilterCriteriaError (the local endpoint answers as AWS does): --check says unknown
    and exits 3 when the file has a filter; an export of that state (which leaves the
    filter out) checks the rest and exits 0."""
    kms = boto3.client("kms", endpoint_url=endpoint, region_name="us-east-1")
    key = kms.create_key()["KeyMetadata"]["Arn"]
    create_table(ddb, TABLE)
    create_trigger(endpoint, TABLE, function="mail-sender", KMSKeyArn=key,
                   FilterCriteria={"Filters": [{"Pattern": INSERT_FILTER},
                                               {"Pattern": REFIRE_FILTER}]})
    readable = run(cli, "--export").json()
    assert readable["FilterCriteria"]["Filters"]
    kms.disable_key(KeyId=key.split(":key/")[1])
    r = run(cli, "--check", "-", "-o", "json", input=json.dumps(readable))
    assert r.code == 3, r.err
    doc = r.json()
    assert doc["status"] == "unknown"
    (row,) = doc["differences"]
    assert row["field"] == "FilterCriteria" and row["status"] == "unknown"
    assert row["live"] is None and "unknown" in row["live_display"]
    assert "none" not in row["live_display"]
    assert any("KMSDisabledException" in n for n in doc["notes"])
    assert "cannot be read" in r.err
    t = run(cli, "--check", "-", "-o", "table", input=json.dumps(readable))
    assert t.code == 3 and "unknown: encrypted" in t.out
    # A file with no filter at all is not "equal" to an unreadable one either.
    readable["FilterCriteria"] = {"Filters": []}
    assert run(cli, "--check", "-", input=json.dumps(readable)).json()["status"] == "unknown"
    # An export made now leaves FilterCriteria out: the rest is checked, in sync.
    now = run(cli, "--export").json()
    assert "FilterCriteria" not in now
    r = run(cli, "--check", "-", "-o", "json", input=json.dumps(now))
    assert r.code == 0, r.err
    assert "FilterCriteria" in r.json()["unchecked"]


def test_transitional_state_is_noted() -> None:
    mapping = {"UUID": "u", "FunctionArn": "arn:aws:lambda:us-east-1:123456789012:function:f",
               "EventSourceArn": "arn:aws:dynamodb:us-east-1:123456789012:table/t/stream/x",
               "State": "Updating", "BatchSize": 100}
    report = check_drift(mapping, {}, {"BatchSize": 100}, source="f.json")
    assert report.status == "in_sync"
    assert any("Updating" in n for n in report.notes)
