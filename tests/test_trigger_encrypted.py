"""A trigger whose filter is encrypted with a customer KMS key (issue 8, item 1).

AWS returns such a filter as null from ListEventSourceMappings, and from
GetEventSourceMapping in plain text only to a caller that can decrypt it; otherwise
``FilterCriteriaError`` (botocore's lambda model). moto returns it in plain text
everywhere; the test endpoint (``streamq.sandbox.server``) is patched to answer as AWS
does: List hides it when ``KMSKeyArn`` is set, Get hides it and answers
``FilterCriteriaError`` when the KMS key cannot be used (here: disabled). Everything
below goes over HTTP to that endpoint; nothing is mocked.
"""

from __future__ import annotations

import json
from typing import Any

import boto3
import pytest

from streamq.sandbox.world import INSERT_FILTER, REFIRE_FILTER
from tests.helpers import CliRunner, create_table, create_trigger

TABLE = "mail_outbox"
INSERT_ONLY = json.dumps({"eventName": ["INSERT"]})


def client(endpoint: str, service: str) -> Any:
    return boto3.client(service, endpoint_url=endpoint, region_name="us-east-1")


@pytest.fixture()
def kms_key(endpoint: str) -> str:
    return str(client(endpoint, "kms").create_key()["KeyMetadata"]["Arn"])


def encrypted_trigger(endpoint: str, ddb: Any, key: str, *patterns: str) -> dict[str, Any]:
    create_table(ddb, TABLE)
    ddb.put_item(TableName=TABLE, Item={"id": {"S": "a"}, "last_error": {"S": "429"}})
    return create_trigger(endpoint, TABLE, function="mail-sender", KMSKeyArn=key,
                          FilterCriteria={"Filters": [{"Pattern": p} for p in patterns]})


def disable(endpoint: str, key: str) -> None:
    # moto's DisableKey takes the key id only (AWS also takes the ARN)
    client(endpoint, "kms").disable_key(KeyId=key.split(":key/")[1])


def get(endpoint: str, uuid: str) -> dict[str, Any]:
    return dict(client(endpoint, "lambda").get_event_source_mapping(UUID=uuid))


def refire_count(ddb: Any) -> str | None:
    item = ddb.get_item(TableName=TABLE, Key={"id": {"S": "a"}})["Item"]
    return item.get("refire_count", {}).get("N")


def test_endpoint_answers_like_aws(endpoint: str, ddb: Any, kms_key: str) -> None:
    """The premise of the other tests: List hides an encrypted filter, Get shows it while
    the key is usable, and answers FilterCriteriaError once it is not."""
    trig = encrypted_trigger(endpoint, ddb, kms_key, INSERT_ONLY)
    listed = client(endpoint, "lambda").list_event_source_mappings(
        EventSourceArn=trig["EventSourceArn"])["EventSourceMappings"]
    assert listed[0].get("FilterCriteria") is None and listed[0]["KMSKeyArn"] == kms_key
    assert get(endpoint, trig["UUID"])["FilterCriteria"]["Filters"] == [
        {"Pattern": INSERT_ONLY}]
    disable(endpoint, kms_key)
    got = get(endpoint, trig["UUID"])
    assert "FilterCriteria" not in got
    assert got["FilterCriteriaError"]["ErrorCode"] == "KMSDisabledException"


def test_refire_reads_the_filter_list_hides(cli: CliRunner, endpoint: str, ddb: Any,
                                            kms_key: str) -> None:
    # Readable with Get only: the INSERT-only filter drops refires, and the pre-flight sees
    # it (reading List alone it would say "passes (no FilterCriteria)").
    encrypted_trigger(endpoint, ddb, kms_key, INSERT_ONLY)
    r = cli("refire", "--table", TABLE, "--id", "a", "--yes")
    assert r.code == 5, r.err
    assert "would drop the MODIFY" in r.err and "no FilterCriteria" not in r.err + r.out
    assert refire_count(ddb) is None


def test_refire_refuses_an_unreadable_filter_unless_forced(cli: CliRunner, endpoint: str,
                                                           ddb: Any, kms_key: str) -> None:
    encrypted_trigger(endpoint, ddb, kms_key, INSERT_FILTER, REFIRE_FILTER)
    disable(endpoint, kms_key)
    plan = cli("refire", "--table", TABLE, "--id", "a", "--dry-run", "-o", "json")
    assert plan.code == 5, plan.err
    doc = plan.json()
    assert doc["filter"].startswith("cannot evaluate") and "KMSDisabledException" in \
        doc["filter"], doc["filter"]
    r = cli("refire", "--table", TABLE, "--id", "a", "--yes")
    assert r.code == 5, r.err
    assert "cannot evaluate the trigger's filter" in r.err and kms_key in r.err
    assert "--force" in r.err
    assert refire_count(ddb) is None
    r = cli("refire", "--table", TABLE, "--id", "a", "--yes", "--force")
    assert r.code == 0, r.err
    assert refire_count(ddb) == "1"


def test_config_trigger_shows_an_unreadable_filter_as_unknown(cli: CliRunner, endpoint: str,
                                                              ddb: Any, kms_key: str) -> None:
    encrypted_trigger(endpoint, ddb, kms_key, INSERT_FILTER, REFIRE_FILTER)
    disable(endpoint, kms_key)
    doc = cli("config-trigger", "--table", TABLE, "-o", "json").json()
    row = {x["field"]: x for x in doc["settings"]}["FilterCriteria"]
    assert row["value"] is None and row["default"] is False and row["unset"] is False
    assert "unknown" in row["display"] and "none" not in row["display"]
    assert {x["field"]: x for x in doc["settings"]}["KMSKeyArn"]["value"] == kms_key
    assert "filter-encrypted" in {x["code"] for x in doc["lints"]}
    assert "KMSDisabledException" in doc["filter_unreadable"]
    table = cli("config-trigger", "--table", TABLE, "-o", "table")
    assert "unknown: encrypted" in table.out and "none (every record)" not in table.out
    assert "warning[filter-encrypted]" in table.out


def test_config_trigger_never_clears_an_unreadable_filter(cli: CliRunner, endpoint: str,
                                                          ddb: Any, kms_key: str) -> None:
    trig = encrypted_trigger(endpoint, ddb, kms_key, INSERT_FILTER, REFIRE_FILTER)
    disable(endpoint, kms_key)
    exported = cli("config-trigger", "--table", TABLE, "--export")
    assert exported.code == 0
    doc = exported.json()
    assert "FilterCriteria" not in doc and doc["KMSKeyArn"] == kms_key
    assert "leaves FilterCriteria out" in exported.err
    # A change of another field, then the export applied back: the filter is never sent.
    r = cli("config-trigger", "--table", TABLE, "--batch-size", "5", "--yes")
    assert r.code == 0, r.err
    doc["BatchSize"] = 7
    r = cli("config-trigger", "--table", TABLE, "--from-file", "-", "--yes",
            input=json.dumps(doc))
    assert r.code == 0, r.err
    # Removing it is an explicit change, and the diff says what it replaces.
    r = cli("config-trigger", "--table", TABLE, "--no-filter", "--dry-run", "-o", "json")
    (change,) = r.json()["changes"]
    assert change["field"] == "FilterCriteria" and change["current"] is None
    client(endpoint, "kms").enable_key(KeyId=kms_key.split(":key/")[1])
    after = get(endpoint, trig["UUID"])
    assert after["BatchSize"] == 7
    assert [f["Pattern"] for f in after["FilterCriteria"]["Filters"]] == [
        INSERT_FILTER, REFIRE_FILTER]
