"""Provision the sandbox's outbox world (idempotent): tables, role, function, queue, bucket,
trigger.

The trigger's filter is the loop-avoiding marker protocol (docs/sandbox.md): INSERTs pass,
and MODIFYs only when the new image carries the refire marker ``refired_at``. A refire
sets it; the handler's own failure write removes it, so its MODIFY is dropped.
"""

from __future__ import annotations

import contextlib
import io
import json
import zipfile
from dataclasses import dataclass
from typing import Any

from ..aws import Aws, aws_errors, error_code
from .state import SANDBOX_FUNCTION, SANDBOX_HISTORY_TABLE, SANDBOX_TABLE

QUEUE_NAME = "mail-sender-failures"
BUCKET_NAME = "mail-sender-failures"  # the S3 on-failure destination (``up --on-failure s3``)
ON_FAILURE = ("sqs", "s3")
ROLE_NAME = "mail-sender-role"
ACCOUNT = "123456789012"

INSERT_FILTER = json.dumps({"eventName": ["INSERT"]})
REFIRE_FILTER = json.dumps({"eventName": ["MODIFY"],
                            "dynamodb": {"NewImage": {"refired_at": {"S": [{"exists": True}]}}}})

TRIGGER_SETTINGS: dict[str, Any] = {
    "BatchSize": 100,
    "MaximumBatchingWindowInSeconds": 2,
    "MaximumRetryAttempts": 2,
    "MaximumRecordAgeInSeconds": 3600,
    "BisectBatchOnFunctionError": True,
    "ParallelizationFactor": 1,
    "FunctionResponseTypes": ["ReportBatchItemFailures"],
    "StartingPosition": "TRIM_HORIZON",
    "FilterCriteria": {"Filters": [{"Pattern": INSERT_FILTER}, {"Pattern": REFIRE_FILTER}]},
    # The trigger's own CloudWatch metrics (EventSourceMappingMetricsConfig), which the
    # sandbox poller publishes as Lambda does.
    "MetricsConfig": {"Metrics": ["EventCount"]},
}

_ASSUME = json.dumps({"Version": "2012-10-17", "Statement": [{
    "Effect": "Allow", "Principal": {"Service": "lambda.amazonaws.com"},
    "Action": "sts:AssumeRole"}]})


@dataclass(frozen=True)
class World:
    table: str
    history_table: str
    function: str
    function_arn: str
    queue_url: str
    queue_arn: str
    stream_arn: str
    mapping_uuid: str
    bucket: str = BUCKET_NAME
    on_failure: str = "sqs"  # where the trigger sends what it gives up on: sqs | s3


def _stub_zip() -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("handler.py", "# The sandbox runs the handler locally "
                                  "(streamq.sandbox.poller); this stub is never run.\n"
                                  "def handler(event, context):\n    return {}\n")
    return buf.getvalue()


def _create_table(ddb: Any, name: str, stream: bool) -> None:
    kwargs: dict[str, Any] = {
        "TableName": name,
        "KeySchema": [{"AttributeName": "id", "KeyType": "HASH"}],
        "AttributeDefinitions": [{"AttributeName": "id", "AttributeType": "S"}],
        "BillingMode": "PAY_PER_REQUEST",
    }
    if stream:
        kwargs["StreamSpecification"] = {"StreamEnabled": True,
                                         "StreamViewType": "NEW_AND_OLD_IMAGES"}
    try:
        with aws_errors():
            ddb.create_table(**kwargs)
    except Exception as exc:
        if error_code(exc.__cause__ or exc) != "ResourceInUseException":
            raise


def provision(aws: Aws, *, table: str = SANDBOX_TABLE, history_table: str = SANDBOX_HISTORY_TABLE,
              function: str = SANDBOX_FUNCTION, environment: dict[str, str] | None = None,
              on_failure: str = "sqs") -> World:
    """``on_failure``: the trigger's on-failure destination, the queue (``sqs``) or the
    bucket (``s3``); both are created either way."""
    if on_failure not in ON_FAILURE:
        raise ValueError(f"on_failure must be one of {ON_FAILURE}, not {on_failure!r}")
    ddb, iam, lam, sqs = (aws.client(s) for s in ("dynamodb", "iam", "lambda", "sqs"))
    _create_table(ddb, table, stream=True)
    _create_table(ddb, history_table, stream=False)
    with aws_errors():
        try:
            role = iam.create_role(RoleName=ROLE_NAME, AssumeRolePolicyDocument=_ASSUME)
        except iam.exceptions.EntityAlreadyExistsException:
            role = iam.get_role(RoleName=ROLE_NAME)
        role_arn = role["Role"]["Arn"]
        try:
            fn = lam.create_function(
                FunctionName=function, Runtime="python3.12", Role=role_arn,
                Handler="handler.handler", Code={"ZipFile": _stub_zip()}, Timeout=60,
                Description="mail sender (run locally by the streamq sandbox)",
                Environment={"Variables": dict(environment or {})})
        except lam.exceptions.ResourceConflictException:
            fn = lam.get_function(FunctionName=function)["Configuration"]
        function_arn = fn["FunctionArn"]
        queue_url = sqs.create_queue(QueueName=QUEUE_NAME)["QueueUrl"]
        queue_arn = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])[
            "Attributes"]["QueueArn"]
        s3 = aws.client("s3")
        with contextlib.suppress(s3.exceptions.BucketAlreadyOwnedByYou):
            s3.create_bucket(Bucket=BUCKET_NAME)
        destination = queue_arn if on_failure == "sqs" else f"arn:aws:s3:::{BUCKET_NAME}"
        stream_arn = ddb.describe_table(TableName=table)["Table"]["LatestStreamArn"]
        existing = lam.list_event_source_mappings(EventSourceArn=stream_arn).get(
            "EventSourceMappings", [])
        mine = [m for m in existing if m.get("FunctionArn") == function_arn]
        if mine:
            uuid = mine[0]["UUID"]
        else:
            uuid = lam.create_event_source_mapping(
                EventSourceArn=stream_arn, FunctionName=function,
                DestinationConfig={"OnFailure": {"Destination": destination}},
                **TRIGGER_SETTINGS)["UUID"]
    return World(table, history_table, function, function_arn, queue_url, queue_arn,
                 stream_arn, uuid, BUCKET_NAME, on_failure)
