"""``config-trigger --export --format json|cloudformation|terraform`` (issue 13, item 4),
read from a trigger on the moto server over HTTP.

The CloudFormation output goes through cfn-lint (AWS's registry schema for
AWS::Lambda::EventSourceMapping, which cfn-lint ships); the Terraform output is parsed
by python-hcl2 and its argument names and block shapes are checked against the
provider's documented schema, vendored in tests/data (source and version inside). Where
the terraform binary is installed, it also formats and evaluates the output."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import boto3
import pytest

from streamq.sandbox.world import INSERT_FILTER, REFIRE_FILTER
from tests.helpers import CliRunner, create_table, create_trigger

TABLE = "mail_outbox"
SQS = "arn:aws:sqs:us-east-1:123456789012:outbox-dlq"
DATA = Path(__file__).resolve().parent / "data"
TF_SCHEMA = json.loads((DATA / "terraform_aws_lambda_event_source_mapping.json").read_text())
#: A pattern with everything a quoting bug would break: quotes, a backslash, HCL's
#: template openers, YAML's comment and mapping indicators, non-ASCII and an emoji.
AWKWARD = json.dumps({"eventName": ["MODIFY"], "dynamodb": {"NewImage": {"subject": {
    "S": [{"prefix": "${x} %{y} it's \"q\" \\ # a: b é 😀"}]}}}}, ensure_ascii=False)


def run(cli: CliRunner, *args: str) -> Any:
    return cli("config-trigger", "--table", TABLE, *args)


@pytest.fixture()
def full(ddb: Any, endpoint: str) -> dict[str, Any]:
    """A trigger with every DynamoDB-stream setting away from its default."""
    kms = boto3.client("kms", endpoint_url=endpoint, region_name="us-east-1")
    key = kms.create_key()["KeyMetadata"]["Arn"]
    create_table(ddb, TABLE)
    trig = create_trigger(
        endpoint, TABLE, function="mail-sender", BatchSize=25,
        MaximumBatchingWindowInSeconds=2, MaximumRetryAttempts=3,
        MaximumRecordAgeInSeconds=3600, BisectBatchOnFunctionError=True,
        ParallelizationFactor=2, TumblingWindowInSeconds=30,
        FunctionResponseTypes=["ReportBatchItemFailures"], KMSKeyArn=key,
        MetricsConfig={"Metrics": ["EventCount"]},
        DestinationConfig={"OnFailure": {"Destination": SQS}},
        FilterCriteria={"Filters": [{"Pattern": INSERT_FILTER}, {"Pattern": REFIRE_FILTER},
                                    {"Pattern": AWKWARD}]})
    boto3.client("lambda", endpoint_url=endpoint, region_name="us-east-1") \
        .update_event_source_mapping(UUID=trig["UUID"], Enabled=False)
    return trig


@pytest.fixture()
def plain(ddb: Any, endpoint: str) -> dict[str, Any]:
    """A trigger with AWS's defaults."""
    create_table(ddb, TABLE)
    return create_trigger(endpoint, TABLE, function="mail-sender")


# ------------------------------------------------------------------------ CloudFormation


def cfn_template(resource: str) -> str:
    body = "\n".join(("  " + line) if line else line for line in resource.splitlines())
    return "AWSTemplateFormatVersion: '2010-09-09'\nResources:\n" + body + "\n"


def cfn_lint(template: str, tmp_path: Path) -> list[str]:
    """cfn-lint's findings (errors, warnings and informational) for ``template``."""
    from cfnlint.api import ManualArgs, lint

    matches = lint(template, config=ManualArgs(regions=["us-east-1"]))
    return [f"{m.rule.id} {m.message} (line {m.linenumber})" for m in matches]


def cfn_load(template: str) -> dict[str, Any]:
    from cfnlint.decode.cfn_yaml import loads

    return dict(loads(template))


def test_cloudformation_passes_cfn_lint_and_holds_every_setting(
        cli: CliRunner, full: dict[str, Any], tmp_path: Path) -> None:
    doc = run(cli, "--export").json()
    r = run(cli, "--export", "--format", "cloudformation")
    assert r.code == 0, r.err
    assert r.out.startswith("# streamq config-trigger --export --format cloudformation")
    template = cfn_template(r.out)
    assert cfn_lint(template, tmp_path) == []
    (name, res), = cfn_load(template)["Resources"].items()
    assert name == "MailSenderTrigger" and res["Type"] == "AWS::Lambda::EventSourceMapping"
    props = res["Properties"]
    assert props["EventSourceArn"] == doc["EventSourceArn"]
    assert props["FunctionName"] == doc["FunctionArn"]
    assert props["StartingPosition"] == "TRIM_HORIZON"
    # The API's KMSKeyArn is CloudFormation's KmsKeyArn; every other name is the same.
    assert props.pop("KmsKeyArn") == doc["KMSKeyArn"]
    assert [f["Pattern"] for f in props["FilterCriteria"]["Filters"]] == [
        INSERT_FILTER, REFIRE_FILTER, AWKWARD]
    for field in ("BatchSize", "MaximumBatchingWindowInSeconds", "MaximumRetryAttempts",
                  "MaximumRecordAgeInSeconds", "BisectBatchOnFunctionError",
                  "ParallelizationFactor", "TumblingWindowInSeconds", "Enabled",
                  "DestinationConfig", "FunctionResponseTypes", "MetricsConfig"):
        assert props[field] == doc[field], field
    assert props["Enabled"] is False and props["BatchSize"] == 25
    assert "not set on the trigger" not in r.out  # everything is set here


def test_cloudformation_of_defaults_leaves_out_what_is_not_set(
        cli: CliRunner, plain: dict[str, Any], tmp_path: Path) -> None:
    r = run(cli, "--export", "--format", "cloudformation")
    assert r.code == 0, r.err
    template = cfn_template(r.out)
    assert cfn_lint(template, tmp_path) == []
    props = cfn_load(template)["Resources"]["MailSenderTrigger"]["Properties"]
    # Scalars are pinned at AWS's defaults; empty objects are not written (the schema
    # takes at least one filter), and the header says which.
    assert props["MaximumRetryAttempts"] == -1 and props["BatchSize"] == 100
    assert props["Enabled"] is True
    for absent in ("FilterCriteria", "DestinationConfig", "KmsKeyArn", "MetricsConfig",
                   "FunctionResponseTypes", "TumblingWindowInSeconds"):
        assert absent not in props
    header = " ".join(line for line in r.out.splitlines() if line.startswith("#"))
    assert "FilterCriteria, KmsKeyArn, DestinationConfig" in header
    # The registry schema names no property streamq should have exported and did not:
    # every property left out is either unset here or does not apply to DynamoDB.
    from streamq.iac import CFN_PROPERTY, NOT_FOR_DYNAMODB

    schema = cfn_schema_properties()
    exported = set(CFN_PROPERTY.values()) | {"EventSourceArn", "FunctionName",
                                             "StartingPosition"}
    assert exported <= schema
    assert schema - exported - set(NOT_FOR_DYNAMODB) == {"Tags", "EventSourceMappingArn",
                                                         "Id"}


def cfn_schema_properties() -> set[str]:
    """AWS::Lambda::EventSourceMapping's properties in the registry schema cfn-lint ships."""
    from cfnlint.schema import PROVIDER_SCHEMA_MANAGER

    schema = PROVIDER_SCHEMA_MANAGER.get_resource_schema(
        "us-east-1", "AWS::Lambda::EventSourceMapping")
    return set(schema.schema["properties"])


# ----------------------------------------------------------------------------- Terraform


def unquote_hcl(token: str) -> str:
    """An HCL quoted-string token's value (HCL native syntax: the escapes \\n \\r \\t
    \\" \\\\ \\uNNNN \\UNNNNNNNN, and $${ / %%{ for a literal ${ / %{)."""
    assert token[0] == '"' and token[-1] == '"', token
    body, out, i = token[1:-1], [], 0
    while i < len(body):
        ch = body[i]
        if ch == "\\":
            nxt = body[i + 1]
            if nxt in "uU":
                width = 4 if nxt == "u" else 8
                out.append(chr(int(body[i + 2:i + 2 + width], 16)))
                i += 2 + width
                continue
            out.append({"n": "\n", "r": "\r", "t": "\t", '"': '"', "\\": "\\"}[nxt])
            i += 2
        elif body.startswith(("$${", "%%{"), i):
            out.append(body[i] + "{")
            i += 3
        else:
            assert not body.startswith(("${", "%{"), i), f"a template sequence in {token}"
            out.append(ch)
            i += 1
    return "".join(out)


def check_names(body: dict[str, Any], schema: dict[str, Any], where: str) -> list[str]:
    """Names in a parsed block body that the documented schema does not have, or have
    the wrong shape (an argument written as a block, or the other way round)."""
    problems = []
    for name, value in body.items():
        if name.startswith("__"):
            continue
        if name in schema["blocks"]:
            if not (isinstance(value, list) and all(isinstance(v, dict) and v.get(
                    "__is_block__") for v in value)):
                problems.append(f"{where}{name} must be a block")
                continue
            for v in value:
                problems += check_names(v, schema["blocks"][name], f"{where}{name}.")
        elif name in schema["arguments"]:
            if isinstance(value, list) and value and isinstance(value[0], dict) \
                    and value[0].get("__is_block__"):
                problems.append(f"{where}{name} is an argument, not a block")
        else:
            problems.append(f"{where}{name} is not in the provider's documented schema")
    return problems


def parse_tf(text: str) -> tuple[str, dict[str, Any]]:
    import hcl2

    doc = hcl2.loads(text)
    (resource,) = doc["resource"]
    (rtype, named), = resource.items()
    assert unquote_hcl(rtype) == TF_SCHEMA["resource"]
    (name, body), = named.items()
    return unquote_hcl(name), body


def test_terraform_arguments_are_the_providers(cli: CliRunner, full: dict[str, Any]) -> None:
    doc = run(cli, "--export").json()
    r = run(cli, "--export", "--format", "terraform")
    assert r.code == 0, r.err
    name, body = parse_tf(r.out)
    assert name == "mail_sender"
    assert check_names(body, TF_SCHEMA, "") == []
    assert set(TF_SCHEMA["required"]) <= set(body)
    assert unquote_hcl(body["event_source_arn"]) == doc["EventSourceArn"]
    assert unquote_hcl(body["function_name"]) == doc["FunctionArn"]
    assert unquote_hcl(body["kms_key_arn"]) == doc["KMSKeyArn"]
    assert body["batch_size"] == 25 and body["enabled"] is False
    assert body["maximum_retry_attempts"] == 3 and body["tumbling_window_in_seconds"] == 30
    assert body["bisect_batch_on_function_error"] is True
    assert [unquote_hcl(v) for v in body["function_response_types"]] == [
        "ReportBatchItemFailures"]
    filters = body["filter_criteria"][0]["filter"]
    assert [unquote_hcl(f["pattern"]) for f in filters] == [INSERT_FILTER, REFIRE_FILTER,
                                                            AWKWARD]
    assert unquote_hcl(body["destination_config"][0]["on_failure"][0]["destination_arn"]) \
        == SQS
    assert [unquote_hcl(m) for m in body["metrics_config"][0]["metrics"]] == ["EventCount"]


def test_terraform_of_defaults(cli: CliRunner, plain: dict[str, Any]) -> None:
    r = run(cli, "--export", "--format", "terraform")
    _, body = parse_tf(r.out)
    assert check_names(body, TF_SCHEMA, "") == []
    assert body["maximum_retry_attempts"] == -1 and body["batch_size"] == 100
    for absent in ("filter_criteria", "destination_config", "kms_key_arn", "metrics_config",
                   "function_response_types", "tumbling_window_in_seconds"):
        assert absent not in body
    assert "filter_criteria, kms_key_arn, destination_config" in r.out


def test_the_schema_check_can_fail() -> None:
    """The checker itself: a misspelled argument and a block written as an argument are
    found."""
    text = ('resource "aws_lambda_event_source_mapping" "x" {\n  function_name = "f"\n'
            '  batch_sise = 1\n  metrics_config = ["EventCount"]\n'
            '  destination_config {\n    on_failure {\n      destination = "a"\n    }\n  }\n}\n')
    _, body = parse_tf(text)
    assert check_names(body, TF_SCHEMA, "") == [
        "batch_sise is not in the provider's documented schema",
        "metrics_config must be a block",
        "destination_config.on_failure.destination is not in the provider's documented "
        "schema"]


TERRAFORM = shutil.which("terraform")


@pytest.mark.skipif(TERRAFORM is None, reason="terraform is not installed here (optional: "
                    "it only adds a format check and an evaluation of the strings)")
def test_terraform_formats_and_evaluates_it(cli: CliRunner, full: dict[str, Any],
                                            tmp_path: Path) -> None:
    assert TERRAFORM is not None
    out = run(cli, "--export", "--format", "terraform").out
    env = {**os.environ, "TF_CLI_CONFIG_FILE": os.devnull, "CHECKPOINT_DISABLE": "1",
           "TF_IN_AUTOMATION": "1"}
    fmt = subprocess.run([TERRAFORM, "fmt", "-"], input=out, capture_output=True, text=True,
                         env=env, timeout=60)
    assert fmt.returncode == 0, fmt.stderr
    assert fmt.stdout == out  # already as terraform fmt writes it
    # The patterns' string literals, evaluated by terraform itself (one line: piped
    # console input loses lines with brackets when there are several).
    literals = re.findall(r"^\s*pattern = (\".*\")$", out, re.M)
    assert len(literals) == 3
    console = subprocess.run([TERRAFORM, "console"], cwd=tmp_path, env=env, timeout=60,
                             input=f"jsonencode([{', '.join(literals)}])\n",
                             capture_output=True, text=True)
    assert console.returncode == 0, console.stderr
    assert json.loads(json.loads(console.stdout)) == [INSERT_FILTER, REFIRE_FILTER, AWKWARD]


# ------------------------------------------------------------- unreadable filter, flags


def test_an_unreadable_filter_is_never_exported_as_none(cli: CliRunner, ddb: Any,
                                                        endpoint: str, tmp_path: Path) -> None:
    kms = boto3.client("kms", endpoint_url=endpoint, region_name="us-east-1")
    key = kms.create_key()["KeyMetadata"]["Arn"]
    create_table(ddb, TABLE)
    create_trigger(endpoint, TABLE, function="mail-sender", KMSKeyArn=key,
                   FilterCriteria={"Filters": [{"Pattern": INSERT_FILTER}]})
    kms.disable_key(KeyId=key.split(":key/")[1])
    cfn = run(cli, "--export", "--format", "cloudformation")
    assert cfn.code == 0 and "leaves FilterCriteria out" in cfn.err
    assert "FilterCriteria: NOT EXPORTED" in cfn.out and "KMSDisabledException" in cfn.out
    props = cfn_load(cfn_template(cfn.out))["Resources"]["MailSenderTrigger"]["Properties"]
    assert "FilterCriteria" not in props and props["KmsKeyArn"] == key
    assert "not set on the trigger" not in cfn.out.split("FilterCriteria: NOT")[1].split(
        "\n")[0]
    assert cfn_lint(cfn_template(cfn.out), tmp_path) == []
    tf = run(cli, "--export", "--format", "terraform")
    assert "filter_criteria: NOT EXPORTED" in tf.out
    _, body = parse_tf(tf.out)
    assert "filter_criteria" not in body


def test_json_format_is_the_export(cli: CliRunner, plain: dict[str, Any]) -> None:
    assert run(cli, "--export", "--format", "json").json() == run(cli, "--export").json()


def test_format_goes_with_export(cli: CliRunner) -> None:
    r = run(cli, "--format", "terraform")
    assert r.code == 2 and "--format goes with --export" in r.err
    r = run(cli, "--export", "--format", "pulumi")
    assert r.code == 2 and "pulumi" in r.err
