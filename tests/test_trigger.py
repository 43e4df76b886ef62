"""``streamq config-trigger`` against the moto server: read, change, validate, lint,
back up, restore, and the AWS CLI's view of the result."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from typing import Any

import boto3
import pytest

from streamq.errors import AwsError
from streamq.trigger import wait_settled
from tests.helpers import CliRunner, create_table, create_trigger

TABLE = "mail_outbox"
SQS = "arn:aws:sqs:us-east-1:123456789012:outbox-dlq"


@pytest.fixture()
def trig(ddb: Any, endpoint: str) -> dict[str, Any]:
    """A table with a stream and one trigger (function mail-sender) with AWS defaults."""
    create_table(ddb, TABLE)
    return create_trigger(endpoint, TABLE, function="mail-sender")


def lam(endpoint: str) -> Any:
    return boto3.client("lambda", endpoint_url=endpoint, region_name="us-east-1")


def esm(endpoint: str, uuid: str) -> dict[str, Any]:
    out = dict(lam(endpoint).get_event_source_mapping(UUID=uuid))
    out.pop("ResponseMetadata", None)
    out.pop("LastModified", None)
    return out


def run(cli: CliRunner, *args: str, input: str | None = None) -> Any:
    return cli("config-trigger", "--table", TABLE, *args, input=input)


def backups(tmp_path: Path) -> list[Path]:
    folder = tmp_path / "state" / "streamq" / "backups"
    return sorted(folder.glob("*.json")) if folder.exists() else []


# --------------------------------------------------------------------------- read view


def test_read_view_shows_defaults_status_and_lints(cli: CliRunner, trig: dict[str, Any]
                                                   ) -> None:
    r = run(cli, "-o", "json")
    assert r.code == 0, r.err
    doc = r.json()
    assert doc["UUID"] == trig["UUID"]
    assert doc["State"] == "Enabled"
    assert {"StateTransitionReason", "LastProcessingResult", "LastModified"} <= set(doc)
    rows = {row["field"]: row for row in doc["settings"]}
    assert rows["MaximumRetryAttempts"]["value"] == -1 and rows["MaximumRetryAttempts"]["unset"]
    assert rows["MaximumRecordAgeInSeconds"]["value"] == -1
    assert rows["ParallelizationFactor"]["value"] == 1
    assert rows["TumblingWindowInSeconds"]["value"] == 0
    assert rows["BisectBatchOnFunctionError"]["default"]
    codes = {x["code"] for x in doc["lints"]}
    assert codes == {"infinite-retries", "no-on-failure", "bisect-off"}
    table = run(cli, "-o", "table")
    assert table.code == 0
    assert "default (unset)" in table.out and "MaximumRetryAttempts" in table.out
    assert "warning[infinite-retries]" in table.out  # part of the view


def test_no_stream_and_no_trigger_exit_4(cli: CliRunner, ddb: Any, endpoint: str) -> None:
    create_table(ddb, "nostream", stream=False)
    create_table(ddb, TABLE)
    r = cli("config-trigger", "--table", "nostream")
    assert r.code == 4 and "no stream" in r.err
    r = run(cli)
    assert r.code == 4 and "no trigger" in r.err
    assert "Traceback" not in r.err


def test_several_triggers_choose_with_function_or_uuid(cli: CliRunner, ddb: Any,
                                                       endpoint: str) -> None:
    create_table(ddb, TABLE)
    create_trigger(endpoint, TABLE, function="a")
    b = create_trigger(endpoint, TABLE, function="b")
    assert run(cli).code == 2
    assert run(cli, "--function", "b", "-o", "json").json()["UUID"] == b["UUID"]
    r = run(cli, "--uuid", b["UUID"], "--batch-size", "7", "--yes")
    assert r.code == 0, r.err
    assert esm(endpoint, b["UUID"])["BatchSize"] == 7


# --------------------------------------------------------------------- round trips


ROUND_TRIPS: list[tuple[list[str], str, Any]] = [
    (["--batch-size", "1"], "BatchSize", 1),
    (["--batch-size", "10000"], "BatchSize", 10000),
    (["--batching-window", "5s"], "MaximumBatchingWindowInSeconds", 5),
    (["--batching-window", "300"], "MaximumBatchingWindowInSeconds", 300),
    (["--retry-attempts", "3"], "MaximumRetryAttempts", 3),
    (["--retry-attempts", "0"], "MaximumRetryAttempts", 0),
    (["--retry-attempts", "10000"], "MaximumRetryAttempts", 10000),
    (["--max-record-age", "1h"], "MaximumRecordAgeInSeconds", 3600),
    (["--max-record-age", "60"], "MaximumRecordAgeInSeconds", 60),
    (["--max-record-age", "7d"], "MaximumRecordAgeInSeconds", 604800),
    (["--bisect"], "BisectBatchOnFunctionError", True),
    (["--parallelization", "10"], "ParallelizationFactor", 10),
    (["--filter", "insert,modify"], "FilterCriteria",
     {"Filters": [{"Pattern": '{"eventName": ["INSERT", "MODIFY"]}'}]}),
    (["--filter-pattern", '{"eventName": ["MODIFY"]}', "--filter-pattern",
      '{"dynamodb": {"NewImage": {"tenant": {"S": ["acme"]}}}}'], "FilterCriteria",
     {"Filters": [{"Pattern": '{"eventName": ["MODIFY"]}'},
                  {"Pattern": '{"dynamodb": {"NewImage": {"tenant": {"S": ["acme"]}}}}'}]}),
    (["--on-failure", SQS], "DestinationConfig", {"OnFailure": {"Destination": SQS}}),
    (["--on-failure", "arn:aws:sns:us-east-1:123456789012:alerts"], "DestinationConfig",
     {"OnFailure": {"Destination": "arn:aws:sns:us-east-1:123456789012:alerts"}}),
    (["--on-failure", "arn:aws:s3:::outbox-failures"], "DestinationConfig",
     {"OnFailure": {"Destination": "arn:aws:s3:::outbox-failures"}}),
    (["--report-batch-item-failures"], "FunctionResponseTypes", ["ReportBatchItemFailures"]),
    (["--tumbling-window", "15m"], "TumblingWindowInSeconds", 900),
    (["--disable"], "State", "Disabled"),
    (["--metrics", "on"], "MetricsConfig", {"Metrics": ["EventCount"]}),
]


@pytest.mark.parametrize(("flags", "field", "expected"), ROUND_TRIPS,
                         ids=[" ".join(f[0])[:40] for f in ROUND_TRIPS])
def test_every_flag_round_trips(cli: CliRunner, endpoint: str, trig: dict[str, Any],
                                flags: list[str], field: str, expected: Any) -> None:
    r = run(cli, *flags, "--yes")
    assert r.code == 0, r.err
    assert esm(endpoint, trig["UUID"])[field] == expected
    again = run(cli, *flags, "--yes")
    assert again.code == 0 and "nothing to change" in again.err


def test_clearing_flags_round_trip(cli: CliRunner, endpoint: str, ddb: Any) -> None:
    create_table(ddb, TABLE)
    t = create_trigger(endpoint, TABLE, function="mail-sender", Enabled=False,
                       BisectBatchOnFunctionError=True,
                       FilterCriteria={"Filters": [{"Pattern": '{"eventName": ["INSERT"]}'}]},
                       DestinationConfig={"OnFailure": {"Destination": SQS}},
                       FunctionResponseTypes=["ReportBatchItemFailures"],
                       MaximumRetryAttempts=5, MaximumRecordAgeInSeconds=600)
    r = run(cli, "--no-filter", "--on-failure", "none", "--no-bisect",
            "--no-report-batch-item-failures", "--enable", "--retry-attempts", "infinite",
            "--max-record-age", "-1", "--yes")
    assert r.code == 0, r.err
    got = esm(endpoint, t["UUID"])
    assert not (got.get("FilterCriteria") or {}).get("Filters")
    assert not (got.get("DestinationConfig") or {}).get("OnFailure")
    assert got["BisectBatchOnFunctionError"] is False
    assert got.get("FunctionResponseTypes") == []
    assert got["State"] == "Enabled"
    assert got["MaximumRetryAttempts"] == -1 and got["MaximumRecordAgeInSeconds"] == -1


def test_issue_example_matches_aws_cli(cli: CliRunner, endpoint: str,
                                       trig: dict[str, Any]) -> None:
    r = run(cli, "--retry-attempts", "3", "--bisect", "--max-record-age", "1h",
            "--filter", "insert,modify", "--yes")
    assert r.code == 0, r.err
    env = {**os.environ, "AWS_ENDPOINT_URL": endpoint}
    proc = subprocess.run(["aws", "lambda", "get-event-source-mapping", "--uuid", trig["UUID"],
                           "--endpoint-url", endpoint, "--region", "us-east-1",
                           "--output", "json"],
                          capture_output=True, text=True, env=env, timeout=60, check=True)
    got = json.loads(proc.stdout)
    assert got["MaximumRetryAttempts"] == 3
    assert got["BisectBatchOnFunctionError"] is True
    assert got["MaximumRecordAgeInSeconds"] == 3600
    assert got["FilterCriteria"] == {
        "Filters": [{"Pattern": '{"eventName": ["INSERT", "MODIFY"]}'}]}
    # and nothing else moved
    assert got["BatchSize"] == trig["BatchSize"]
    assert got["StartingPosition"] == trig["StartingPosition"]
    assert got["State"] == "Enabled"


# ------------------------------------------------------------------ bad values, exit 2


BAD: list[list[str]] = [
    ["--batch-size", "0"], ["--batch-size", "10001"], ["--batch-size", "ten"],
    ["--batching-window", "301"], ["--batching-window", "6m"], ["--batching-window", "-1"],
    ["--batching-window", "1.5"],
    ["--retry-attempts", "-2"], ["--retry-attempts", "10001"], ["--retry-attempts", "x"],
    ["--max-record-age", "59"], ["--max-record-age", "0"], ["--max-record-age", "604801"],
    ["--max-record-age", "8d"], ["--max-record-age", "-5"], ["--max-record-age", "soon"],
    ["--parallelization", "0"], ["--parallelization", "11"],
    ["--tumbling-window", "901"], ["--tumbling-window", "-1"],
    ["--filter", "insert,update"], ["--filter", ""],
    ["--filter-pattern", "{not json"], ["--filter-pattern", "[]"],
    ["--filter-pattern", '{"eventName": []}'],
    ["--filter-pattern", '{"a": ["' + "x" * 4100 + '"]}'],
    [arg for i in range(11) for arg in ("--filter-pattern", f'{{"eventName": ["M{i}"]}}')],
    ["--on-failure", "arn:aws:sqs:us-east-1:123456789012:" + "q" * 320],
    ["--filter", "insert", "--filter-pattern", '{"eventName": ["MODIFY"]}'],
    ["--filter", "insert", "--no-filter"],
    ["--on-failure", "arn:aws:lambda:us-east-1:123456789012:function:x"],
    ["--on-failure", "my-queue"], ["--on-failure", "arn:aws:sqs:us-east-1:123456789012:q.fifo"],
    ["--on-failure", "arn:aws:sqs:us-east-1::q"], ["--on-failure", "arn:aws:s3:us-east-1::b"],
    ["--starting-position", "LATEST"],
    ["--export", "--batch-size", "5"],
    ["--force"],
    ["--metrics", "maybe"], ["--metrics", ""],
    ["--wait-timeout", "soon", "--batch-size", "5"],
]


@pytest.mark.parametrize("flags", BAD, ids=[" ".join(f)[:40] for f in BAD])
def test_bad_values_rejected_before_any_aws_call(cli: CliRunner, monkeypatch: pytest.MonkeyPatch,
                                                 flags: list[str]) -> None:
    # No AWS endpoint at all: a request would fail with exit 1, not 2.
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:9")
    r = run(cli, *flags, "--yes")
    assert r.code == 2, (r.code, r.err)
    assert r.err.startswith("streamq: error: ") and r.err.count("\n") == 1, r.err
    assert "Traceback" not in r.err


def test_bad_value_leaves_trigger_unchanged(cli: CliRunner, endpoint: str,
                                            trig: dict[str, Any], tmp_path: Path) -> None:
    before = esm(endpoint, trig["UUID"])
    r = run(cli, "--retry-attempts", "3", "--max-record-age", "30", "--yes")
    assert r.code == 2 and "MaximumRecordAgeInSeconds" in r.err
    assert esm(endpoint, trig["UUID"]) == before
    assert backups(tmp_path) == []


def test_starting_position_says_what_to_do(cli: CliRunner) -> None:
    r = run(cli, "--starting-position", "TRIM_HORIZON")
    assert r.code == 2
    assert "cannot be changed" in r.err and "create a new mapping" in r.err


def test_metrics_and_kms_key_are_shown_exported_and_applied(cli: CliRunner, endpoint: str,
                                                             ddb: Any) -> None:
    # MetricsConfig and KMSKeyArn apply to a DynamoDB stream trigger (botocore's lambda
    # model: UpdateEventSourceMappingRequest has both; EventSourceMappingMetric
    # EventCount; ErrorCount/KafkaMetrics are for Kafka sources).
    create_table(ddb, TABLE)
    key = "arn:aws:kms:us-east-1:123456789012:key/0f1e2d3c-aaaa-bbbb-cccc-111122223333"
    t = create_trigger(endpoint, TABLE, function="mail-sender", KMSKeyArn=key)
    rows = {x["field"]: x for x in run(cli, "-o", "json").json()["settings"]}
    assert rows["KMSKeyArn"]["value"] == key and not rows["KMSKeyArn"]["default"]
    assert rows["MetricsConfig"]["value"] == {"Metrics": []}
    assert rows["MetricsConfig"]["default"] and rows["MetricsConfig"]["display"] == "none"
    table = run(cli, "-o", "table").out
    assert "MetricsConfig" in table and "KMSKeyArn" in table and key in table
    r = run(cli, "--metrics", "on", "--yes")
    assert r.code == 0, r.err
    assert esm(endpoint, t["UUID"])["MetricsConfig"] == {"Metrics": ["EventCount"]}
    doc = run(cli, "--export").json()
    assert doc["MetricsConfig"] == {"Metrics": ["EventCount"]} and doc["KMSKeyArn"] == key
    # the export is the --from-file format: it applies, and its values are checked
    doc["MetricsConfig"] = {"Metrics": []}
    r = run(cli, "--from-file", "-", "--yes", input=json.dumps(doc))
    assert r.code == 0, r.err
    assert esm(endpoint, t["UUID"])["MetricsConfig"] == {"Metrics": []}
    for bad, needle in (({"Metrics": ["ErrorCount"]}, "Kafka"),
                        ({"Metrics": ["Latency"]}, "unknown metric"),
                        (["EventCount"], "MetricsConfig must be")):
        r = run(cli, "--from-file", "-", "--yes", input=json.dumps({"MetricsConfig": bad}))
        assert r.code == 2 and needle in r.err, (bad, r.err)
    r = run(cli, "--from-file", "-", "--yes", input=json.dumps({"KMSKeyArn": "alias/x"}))
    assert r.code == 2 and "KMS key ARN" in r.err
    r = run(cli, "--metrics", "off", "--yes")
    assert r.code == 0 and "nothing to change" in r.err


# ------------------------------------------------------------ dry run, refusal, output


def test_error_lint_refuses_the_change_unless_forced(cli: CliRunner, endpoint: str,
                                                     trig: dict[str, Any],
                                                     tmp_path: Path) -> None:
    # An INSERT-only filter drops every refire (error[filter-drops-refire]): refused with
    # exit 5 although --yes was given, naming the lint; nothing sent, no backup.
    before = esm(endpoint, trig["UUID"])
    for output in ("json", "table"):
        r = run(cli, "--filter", "insert", "--yes", "-o", output)
        assert r.code == 5, r.err
        assert "filter-drops-refire" in r.err and "--force" in r.err
        assert r.err.count("streamq: error:") == 1
    assert esm(endpoint, trig["UUID"]) == before
    assert backups(tmp_path) == []
    # a dry run says so, and exits 0
    r = run(cli, "--filter", "insert", "--dry-run", "-o", "table")
    assert r.code == 0 and "would be refused" in r.err and "filter-drops-refire" in r.err
    # warnings alone do not block
    assert run(cli, "--batch-size", "50", "--yes").code == 0
    r = run(cli, "--filter", "insert", "--yes", "--force")
    assert r.code == 0, r.err
    assert esm(endpoint, trig["UUID"])["FilterCriteria"] == {
        "Filters": [{"Pattern": '{"eventName": ["INSERT"]}'}]}
    # the same rule for --from-file
    doc = run(cli, "--export").json()
    doc["FilterCriteria"] = {"Filters": [{"Pattern": '{"eventName": ["REMOVE"]}'}]}
    r = run(cli, "--from-file", "-", "--yes", input=json.dumps(doc))
    assert r.code == 5 and "filter-drops-refire" in r.err


def test_dry_run_changes_nothing(cli: CliRunner, endpoint: str, trig: dict[str, Any],
                                 tmp_path: Path) -> None:
    before = esm(endpoint, trig["UUID"])
    r = run(cli, "--batch-size", "10", "--disable", "--filter", "insert", "--dry-run",
            "-o", "json")
    assert r.code == 0, r.err
    doc = r.json()
    assert doc["dry_run"] and not doc["applied"]
    assert [c["field"] for c in doc["changes"]] == ["BatchSize", "FilterCriteria", "Enabled"]
    assert doc["changes"][0] == {"field": "BatchSize", "current": 100, "new": 10}
    assert esm(endpoint, trig["UUID"]) == before
    assert backups(tmp_path) == []
    table = run(cli, "--batch-size", "10", "--dry-run", "-o", "table")
    assert "BatchSize" in table.out and "100" in table.out and "10" in table.out
    assert "dry run" in table.err


def test_non_tty_without_yes_refuses(cli: CliRunner, endpoint: str, trig: dict[str, Any],
                                     tmp_path: Path) -> None:
    before = esm(endpoint, trig["UUID"])
    r = run(cli, "--batch-size", "10", input="y\n")
    assert r.code == 5 and "--yes" in r.err
    assert esm(endpoint, trig["UUID"]) == before
    assert backups(tmp_path) == []


def test_nothing_to_change_writes_nothing(cli: CliRunner, endpoint: str,
                                          trig: dict[str, Any], tmp_path: Path) -> None:
    r = run(cli, "--batch-size", "100", "--retry-attempts", "-1", "--enable", "--yes")
    assert r.code == 0 and "nothing to change" in r.err
    assert backups(tmp_path) == []


def test_apply_json_result(cli: CliRunner, endpoint: str, trig: dict[str, Any]) -> None:
    r = run(cli, "--on-failure", SQS, "--yes", "-o", "json")
    assert r.code == 0, r.err
    doc = r.json()
    assert doc["applied"] and Path(doc["backup"]).is_file()
    assert doc["config"]["DestinationConfig"] == {"OnFailure": {"Destination": SQS}}
    assert "no-on-failure" not in {x["code"] for x in doc["lints"]}


# --------------------------------------------------------------- backup, export, restore


def test_backup_restores_previous_configuration(cli: CliRunner, endpoint: str, ddb: Any,
                                                tmp_path: Path) -> None:
    create_table(ddb, TABLE)
    t = create_trigger(endpoint, TABLE, function="mail-sender", BatchSize=25,
                       MaximumRetryAttempts=2, MaximumRecordAgeInSeconds=120,
                       FilterCriteria={"Filters": [{"Pattern": '{"eventName": ["INSERT", '
                                                               '"MODIFY"]}'}]},
                       DestinationConfig={"OnFailure": {"Destination": SQS}})
    original = esm(endpoint, t["UUID"])
    r = run(cli, "--batch-size", "500", "--retry-attempts", "infinite", "--no-filter",
            "--on-failure", "none", "--bisect", "--parallelization", "3", "--disable", "--yes")
    assert r.code == 0, r.err
    files = backups(tmp_path)
    assert len(files) == 1 and str(files[0]) in r.err
    assert files[0].name.startswith(f"mail-sender-{t['UUID']}-")
    changed = esm(endpoint, t["UUID"])
    assert changed["BatchSize"] == 500 and changed["State"] == "Disabled"

    r = run(cli, "--from-file", str(files[0]), "--yes")
    assert r.code == 0, r.err
    restored = esm(endpoint, t["UUID"])
    assert restored["BatchSize"] == 25
    assert restored["MaximumRetryAttempts"] == 2
    assert restored["MaximumRecordAgeInSeconds"] == 120
    assert restored["FilterCriteria"] == original["FilterCriteria"]
    assert restored["DestinationConfig"] == original["DestinationConfig"]
    assert restored["BisectBatchOnFunctionError"] is False
    assert restored["ParallelizationFactor"] == 1
    assert restored["State"] == "Enabled"
    assert len(backups(tmp_path)) == 2  # the restore backed up what it replaced


def test_export_round_trip_and_from_stdin(cli: CliRunner, endpoint: str,
                                          trig: dict[str, Any]) -> None:
    r = run(cli, "--export")
    assert r.code == 0
    doc = r.json()
    assert doc["UUID"] == trig["UUID"] and doc["Format"] == "streamq.trigger-config/1"
    assert doc["MaximumRetryAttempts"] == -1 and doc["Enabled"] is True
    doc["BatchSize"] = 42
    r = run(cli, "--from-file", "-", "--yes", input=json.dumps(doc))
    assert r.code == 0, r.err
    assert esm(endpoint, trig["UUID"])["BatchSize"] == 42
    assert run(cli, "--export").json()["BatchSize"] == 42


def test_from_file_bad_input(cli: CliRunner, endpoint: str, trig: dict[str, Any],
                             tmp_path: Path) -> None:
    before = esm(endpoint, trig["UUID"])
    f = tmp_path / "cfg.json"
    for text, needle in [('{"BatchSize": 5, "Colour": "red"}', "unknown key"),
                         ('{"BatchSize": 0}', "out of range"),
                         ('{"BatchSize": "5"}', "integer"),
                         ('{"Enabled": "yes"}', "true or false"),
                         ('{"MaximumRecordAgeInSeconds": 10}', "60 to 604800"),
                         ('{"DestinationConfig": {"OnFailure": {"Destination": "x"}}}',
                          "not an ARN"),
                         ('{"FilterCriteria": {"Filters": [{"Pattern": "{"}]}}', "JSON"),
                         ("[1, 2]", "JSON object"), ("{", "not valid JSON")]:
        f.write_text(text)
        r = run(cli, "--from-file", str(f), "--yes")
        assert r.code == 2, (text, r.err)
        assert needle in r.err, (text, r.err)
    assert run(cli, "--from-file", str(tmp_path / "missing.json"), "--yes").code == 2
    f.write_bytes(b"\xff\xfe{}")
    r = run(cli, "--from-file", str(f), "--yes")
    assert r.code == 2 and "not UTF-8" in r.err and "Traceback" not in r.err
    assert run(cli, "--from-file", str(f), "--batch-size", "3", "--yes").code == 2
    assert esm(endpoint, trig["UUID"]) == before


def test_from_file_of_another_table_needs_force(cli: CliRunner, endpoint: str, ddb: Any) -> None:
    create_table(ddb, TABLE)
    create_table(ddb, "other_outbox")
    mine = create_trigger(endpoint, TABLE, function="mail-sender")
    other = create_trigger(endpoint, "other_outbox", function="mail-sender", BatchSize=9)
    exported = cli("config-trigger", "--table", "other_outbox", "--export").json()
    assert exported["UUID"] == other["UUID"]
    r = run(cli, "--from-file", "-", "--yes", input=json.dumps(exported))
    assert r.code == 5 and "other_outbox" in r.err and "--force" in r.err
    assert esm(endpoint, mine["UUID"])["BatchSize"] == 100
    r = run(cli, "--from-file", "-", "--yes", "--force", input=json.dumps(exported))
    assert r.code == 0, r.err
    assert esm(endpoint, mine["UUID"])["BatchSize"] == 9


def test_six_to_ten_filters_apply_with_a_warning(cli: CliRunner, endpoint: str,
                                                trig: dict[str, Any]) -> None:
    # 5 is the default quota, 10 the most with a quota increase: an exported mapping with
    # 6 filters is applied again (a warning), 11 are refused before any AWS call.
    patterns = [f'{{"eventName": ["INSERT", "MODIFY"], "awsRegion": ["us-east-{i}"]}}'
                for i in range(6)]
    doc = run(cli, "--export").json()
    doc["FilterCriteria"] = {"Filters": [{"Pattern": p} for p in patterns]}
    r = run(cli, "--from-file", "-", "--yes", "-o", "table", input=json.dumps(doc))
    assert r.code == 0, r.err
    assert "warning[filters-over-default-quota]" in r.err and "quota increase" in r.err
    got = esm(endpoint, trig["UUID"])["FilterCriteria"]["Filters"]
    assert [f["Pattern"] for f in got] == patterns
    # the export of that mapping applies again (nothing to change)
    again = run(cli, "--from-file", "-", "--yes", input=run(cli, "--export").out)
    assert again.code == 0 and "nothing to change" in again.err, again.err
    ten = [arg for p in (patterns * 2)[:10] for arg in ("--filter-pattern", p)]
    assert run(cli, *ten, "--dry-run").code == 0


def test_destination_arn_longer_than_350_is_rejected(cli: CliRunner, endpoint: str,
                                                     trig: dict[str, Any]) -> None:
    # botocore's lambda model: DestinationArn "max": 350.
    long_arn = "arn:aws:sqs:us-east-1:123456789012:" + "q" * (351 - 35)
    assert len(long_arn) == 351
    r = run(cli, "--on-failure", long_arn, "--yes")
    assert r.code == 2 and "350" in r.err, r.err
    ok_arn = long_arn[:-1]
    assert run(cli, "--on-failure", ok_arn, "--dry-run").code == 0


# ----------------------------------------------------------------------------- lints


def lint_codes(cli: CliRunner, *flags: str) -> set[str]:
    r = run(cli, *flags, "--dry-run", "-o", "json") if flags else run(cli, "-o", "json")
    assert r.code == 0, r.err
    return {x["code"] for x in r.json()["lints"]}


SAFE = ["--retry-attempts", "3", "--on-failure", SQS, "--bisect"]


def test_lint_clean_configuration(cli: CliRunner, trig: dict[str, Any]) -> None:
    assert lint_codes(cli, *SAFE) == set()


def test_lint_infinite_retries_and_age(cli: CliRunner, trig: dict[str, Any]) -> None:
    assert "infinite-retries" in lint_codes(cli, "--on-failure", SQS, "--bisect")
    assert "infinite-retries" not in lint_codes(cli, "--max-record-age", "1h",
                                                "--on-failure", SQS)
    assert "infinite-retries" not in lint_codes(cli, "--retry-attempts", "3")


def test_lint_no_on_failure(cli: CliRunner, trig: dict[str, Any]) -> None:
    assert "no-on-failure" in lint_codes(cli, "--retry-attempts", "3", "--bisect")
    assert "no-on-failure" not in lint_codes(cli, *SAFE)


def test_lint_bisect_off_with_batches(cli: CliRunner, trig: dict[str, Any]) -> None:
    assert "bisect-off" in lint_codes(cli, "--retry-attempts", "3", "--on-failure", SQS)
    assert "bisect-off" not in lint_codes(cli, "--retry-attempts", "3", "--on-failure", SQS,
                                          "--batch-size", "1")


def test_lint_filter_drops_modify_breaks_refire(cli: CliRunner, trig: dict[str, Any]) -> None:
    assert "filter-drops-refire" in lint_codes(cli, *SAFE, "--filter", "insert")
    assert "filter-drops-refire" not in lint_codes(cli, *SAFE, "--filter", "insert,modify")
    # INSERT, plus MODIFY only when refire's marker attribute is set: refire still passes.
    marker = ('{"eventName": ["MODIFY"], "dynamodb": {"NewImage": {"refire_run": '
              '{"S": [{"exists": true}]}}}}')
    codes = lint_codes(cli, *SAFE, "--filter-pattern", '{"eventName": ["INSERT"]}',
                       "--filter-pattern", marker)
    assert "filter-drops-refire" not in codes and "filter-drops-insert" not in codes


def test_lint_filter_drops_insert(cli: CliRunner, trig: dict[str, Any]) -> None:
    assert "filter-drops-insert" in lint_codes(cli, *SAFE, "--filter", "modify")
    assert "filter-drops-insert" not in lint_codes(cli, *SAFE, "--filter", "insert,modify")


def test_lint_parallelization(cli: CliRunner, trig: dict[str, Any]) -> None:
    assert "parallelization" in lint_codes(cli, *SAFE, "--parallelization", "2")
    assert "parallelization" not in lint_codes(cli, *SAFE, "--parallelization", "1")


def test_lint_disabled_and_record_age_beyond_retention(cli: CliRunner,
                                                       trig: dict[str, Any]) -> None:
    assert "disabled" in lint_codes(cli, *SAFE, "--disable")
    assert "record-age-beyond-retention" in lint_codes(cli, *SAFE, "--max-record-age", "2d")


def test_lints_shown_after_diff_on_stderr(cli: CliRunner, trig: dict[str, Any]) -> None:
    r = run(cli, "--filter", "insert", "--dry-run", "-o", "table")
    assert "error[filter-drops-refire]" in r.err


# ---------------------------------------------------------------------- wait logic


def test_wait_settled_polls_until_state_settles() -> None:
    states = iter(["Updating", "Updating", "Enabling", "Enabled"])
    now = [0.0]
    reads: list[str] = []

    def get() -> dict[str, Any]:
        s = next(states)
        reads.append(s)
        return {"UUID": "u", "State": s}

    def sleep(d: float) -> None:
        now[0] += d

    out = wait_settled(get, timeout=60, sleep=sleep, clock=lambda: now[0])
    assert out["State"] == "Enabled" and len(reads) == 4


def test_wait_settled_times_out() -> None:
    now = [0.0]

    def sleep(d: float) -> None:
        now[0] += d

    with pytest.raises(AwsError, match="still Updating after 10s"):
        wait_settled(lambda: {"State": "Updating"}, timeout=10, sleep=sleep,
                     clock=lambda: now[0])
    assert now[0] <= 10.5


# ---------------------------------------------------- confirm on a TTY, verify, no-wait


@pytest.fixture()
def tty_stdin(monkeypatch: pytest.MonkeyPatch) -> None:
    """Make the (captured) stdin count as a terminal; stdout stays a pipe."""
    import sys

    import streamq.render as render

    real = render.is_tty
    monkeypatch.setattr(render, "is_tty", lambda s: s is sys.stdin or real(s))


def test_tty_confirm_no_changes_nothing(cli: CliRunner, endpoint: str, trig: dict[str, Any],
                                        tmp_path: Path, tty_stdin: None) -> None:
    before = esm(endpoint, trig["UUID"])
    r = run(cli, "--batch-size", "10", "-o", "table", input="n\n")
    assert r.code == 5 and "not confirmed" in r.err
    assert "Apply 1 change(s)" in r.err
    assert esm(endpoint, trig["UUID"]) == before
    assert backups(tmp_path) == []


def test_tty_confirm_yes_applies(cli: CliRunner, endpoint: str, trig: dict[str, Any],
                                 tmp_path: Path, tty_stdin: None) -> None:
    r = run(cli, "--batch-size", "10", "-o", "table", input="y\n")
    assert r.code == 0, r.err
    assert esm(endpoint, trig["UUID"])["BatchSize"] == 10
    assert len(backups(tmp_path)) == 1


def test_no_wait_still_verifies(cli: CliRunner, endpoint: str, trig: dict[str, Any]) -> None:
    r = run(cli, "--batch-size", "11", "--no-wait", "--yes")
    assert r.code == 0, r.err
    assert "reads back as asked" in r.err
    assert esm(endpoint, trig["UUID"])["BatchSize"] == 11


def test_verify_names_the_field_that_differs() -> None:
    from streamq.trigger import Change, verify

    after = {"UUID": "u", "State": "Enabled", "BatchSize": 100, "MaximumRetryAttempts": 3}
    verify(after, [Change("MaximumRetryAttempts", -1, 3)])
    with pytest.raises(AwsError, match="BatchSize reads back as 100, not 10"):
        verify(after, [Change("MaximumRetryAttempts", -1, 3), Change("BatchSize", 100, 10)])
    # While Updating, State says nothing about Enabled yet: not a mismatch.
    verify({"UUID": "u", "State": "Updating"}, [Change("Enabled", True, False)])
    with pytest.raises(AwsError, match="Enabled"):
        verify({"UUID": "u", "State": "Enabled"}, [Change("Enabled", True, False)])


def test_changing_trigger_is_not_updated() -> None:
    from streamq.trigger import check_settled

    check_settled({"UUID": "u", "State": "Disabled"})
    with pytest.raises(AwsError, match="Updating"):
        check_settled({"UUID": "u", "State": "Updating"})
