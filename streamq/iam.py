"""The least-privilege IAM policy for streamq's commands (``streamq iam-policy``).

:data:`GRANTS` lists every AWS action a streamq command calls, with the resource it
acts on and whether it writes. The policy grants exactly those, scoped to the outbox
table, its indexes and stream, the trigger's event source mapping(s) and function, and
its on-failure destination, resolved from AWS when it can be read (wildcards and a
note when not).

A test records every AWS call streamq makes against the local endpoint during the test
session (``tests/iam_recorder.py``) and fails when one is not granted here, naming the
command and the action: a new command adds its rows to :data:`GRANTS`.

IAM action names and resource types are from the Service Authorization Reference
("Actions, resources, and condition keys for ..."): Amazon DynamoDB (list_amazondynamodb),
AWS Lambda (list_awslambda), AWS KMS (list_awskeymanagementservice), Amazon SQS
(list_amazonsqs), Amazon S3 (list_amazons3), Amazon SNS (list_amazonsns), Amazon
CloudWatch (list_amazoncloudwatch).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from .errors import StreamqError

if TYPE_CHECKING:  # pragma: no cover
    from .aws import Aws
    from .config import Settings

#: Resource kinds a grant applies to (how each is written: :meth:`Resources.arns`).
TABLE = "table"  # arn:P:dynamodb:R:A:table/T
INDEX = "index"  # .../table/T/index/*  (Query and Scan on a secondary index)
STREAM = "stream"  # .../table/T/stream/*  (the table's streams, any label)
MAPPING = "mapping"  # arn:P:lambda:R:A:event-source-mapping:UUID
FUNCTION = "function"  # arn:P:lambda:R:A:function:NAME
KEY = "key"  # the KMS key that encrypts the trigger's filter (KMSKeyArn)
DESTINATION = "destination"  # the on-failure SQS queue / SNS topic / S3 bucket
OBJECTS = "objects"  # the S3 destination's objects: arn:P:s3:::BUCKET/aws/lambda/*
ANY = "*"  # actions without resource-level permissions


@dataclass(frozen=True)
class Grant:
    action: str
    resource: str
    commands: tuple[str, ...]
    write: bool = False
    why: str = ""


#: Every AWS action a streamq command calls. ``commands`` names the top-level command
#: (``config-trigger`` covers reading and changing; ``refire --dry-run`` only reads).
GRANTS: tuple[Grant, ...] = (
    Grant("dynamodb:DescribeTable", TABLE,
          ("list", "show", "stats", "refire", "config-trigger", "iam-policy")),
    Grant("dynamodb:Scan", TABLE, ("list", "stats", "refire")),
    Grant("dynamodb:Query", TABLE, ("list", "stats", "refire")),
    Grant("dynamodb:Scan", INDEX, ("list", "stats", "refire"),
          why="Query and Scan on a secondary index are authorized on the index ARN "
              "(table/T/index/NAME), not the table's"),
    Grant("dynamodb:Query", INDEX, ("list", "stats", "refire")),
    Grant("dynamodb:GetItem", TABLE, ("show",)),
    Grant("dynamodb:BatchGetItem", TABLE, ("list", "refire")),
    Grant("dynamodb:UpdateItem", TABLE, ("refire",), write=True),
    Grant("lambda:ListEventSourceMappings", ANY, ("refire", "config-trigger", "iam-policy"),
          why="ListEventSourceMappings has no resource-level permissions: Resource must "
              "be *"),
    Grant("lambda:GetEventSourceMapping", MAPPING, ("refire", "config-trigger"),
          why="the mapping read with GetEventSourceMapping (resource type "
              "eventSourceMapping) returns an encrypted filter in plain text"),
    Grant("lambda:UpdateEventSourceMapping", MAPPING, ("config-trigger",), write=True),
    Grant("kms:Decrypt", KEY, ("refire", "config-trigger", "doctor"),
          why="GetEventSourceMapping returns FilterCriteria encrypted with a customer "
              "managed key (KMSKeyArn) in plain text only to a caller allowed kms:Decrypt "
              "on that key; without it streamq cannot check the filter"),
    # doctor: each check reads one part of the pipeline (a missing permission turns only
    # that check into a warning).
    Grant("dynamodb:DescribeTable", TABLE, ("doctor",)),
    Grant("dynamodb:Scan", TABLE, ("doctor",)),
    Grant("dynamodb:DescribeStream", STREAM, ("doctor",),
          why="DynamoDB Streams actions carry the dynamodb prefix and the stream resource "
              "type (table/T/stream/LABEL)"),
    Grant("lambda:ListEventSourceMappings", ANY, ("doctor",)),
    Grant("lambda:GetEventSourceMapping", MAPPING, ("doctor",)),
    Grant("lambda:GetFunction", FUNCTION, ("doctor",)),
    Grant("lambda:GetFunctionConcurrency", FUNCTION, ("doctor",)),
    Grant("cloudwatch:GetMetricData", ANY, ("doctor",),
          why="GetMetricData has no resource-level permissions: Resource must be *"),
    Grant("sqs:GetQueueUrl", DESTINATION, ("doctor",)),
    Grant("sqs:GetQueueAttributes", DESTINATION, ("doctor",)),
    Grant("sns:GetTopicAttributes", DESTINATION, ("doctor",)),
    Grant("s3:ListBucket", DESTINATION, ("doctor",),
          why="ListObjectsV2 is authorized as s3:ListBucket on the bucket ARN"),
    # tail: follows the stream and evaluates the trigger's filter on each record.
    Grant("dynamodb:DescribeTable", TABLE, ("tail", "watch")),
    Grant("dynamodb:DescribeStream", STREAM, ("tail",)),
    Grant("dynamodb:GetShardIterator", STREAM, ("tail",)),
    Grant("dynamodb:GetRecords", STREAM, ("tail",)),
    Grant("lambda:ListEventSourceMappings", ANY, ("tail", "watch")),
    Grant("lambda:GetEventSourceMapping", MAPPING, ("tail", "watch")),
    Grant("kms:Decrypt", KEY, ("tail", "watch")),
    # watch: counts, the trigger, its metrics and the destination's backlog, repeatedly.
    Grant("dynamodb:Scan", TABLE, ("watch",)),
    Grant("cloudwatch:GetMetricData", ANY, ("watch",)),
    Grant("sqs:GetQueueUrl", DESTINATION, ("watch",)),
    Grant("sqs:GetQueueAttributes", DESTINATION, ("watch",)),
    Grant("sns:GetTopicAttributes", DESTINATION, ("watch",)),
    Grant("s3:ListBucket", DESTINATION, ("watch",)),
    # redrive: reads the on-failure destination, the stream range each message points
    # at, and refires the keys (refire's calls); a message is removed only once handled.
    Grant("dynamodb:DescribeTable", TABLE, ("redrive",)),
    Grant("dynamodb:BatchGetItem", TABLE, ("redrive",)),
    Grant("dynamodb:UpdateItem", TABLE, ("redrive",), write=True),
    Grant("dynamodb:DescribeStream", STREAM, ("redrive",)),
    Grant("dynamodb:GetShardIterator", STREAM, ("redrive",)),
    Grant("dynamodb:GetRecords", STREAM, ("redrive",)),
    Grant("lambda:ListEventSourceMappings", ANY, ("redrive",)),
    Grant("lambda:GetEventSourceMapping", MAPPING, ("redrive",)),
    Grant("kms:Decrypt", KEY, ("redrive",)),
    Grant("sqs:GetQueueUrl", DESTINATION, ("redrive",)),
    Grant("sqs:GetQueueAttributes", DESTINATION, ("redrive",)),
    Grant("sqs:ReceiveMessage", DESTINATION, ("redrive",),
          why="a received message is hidden for the run (its visibility timeout) and made "
              "visible again when it stays"),
    Grant("sqs:ChangeMessageVisibility", DESTINATION, ("redrive",)),
    Grant("sqs:DeleteMessage", DESTINATION, ("redrive",), write=True),
    Grant("s3:ListBucket", DESTINATION, ("redrive",)),
    Grant("s3:GetObject", OBJECTS, ("redrive",)),
    Grant("s3:GetObjectTagging", OBJECTS, ("redrive",)),
    Grant("s3:PutObjectTagging", OBJECTS, ("redrive",), write=True,
          why="redrive marks a handled S3 record done with a tag (or deletes it with "
              "--delete)"),
    Grant("s3:DeleteObject", OBJECTS, ("redrive",), write=True),
)

#: botocore operation -> IAM action, where they differ or the service prefix does
#: (Service Authorization Reference: one action covers the batch form; S3's
#: ListObjectsV2 is s3:ListBucket; DynamoDB Streams' actions carry the dynamodb prefix;
#: CloudWatch's signing name is monitoring).
OPERATION_ACTIONS: dict[tuple[str, str], str] = {
    ("sqs", "DeleteMessageBatch"): "sqs:DeleteMessage",
    ("sqs", "ChangeMessageVisibilityBatch"): "sqs:ChangeMessageVisibility",
    ("sqs", "SendMessageBatch"): "sqs:SendMessage",
    ("s3", "ListObjectsV2"): "s3:ListBucket",
    ("s3", "ListObjects"): "s3:ListBucket",
    ("s3", "HeadObject"): "s3:GetObject",
    ("s3", "HeadBucket"): "s3:ListBucket",
}
_PREFIX = {"dynamodbstreams": "dynamodb", "monitoring": "cloudwatch", "cloudwatch": "cloudwatch"}


def iam_action(service: str, operation: str) -> str:
    """The IAM action a botocore call needs: ``("dynamodbstreams", "GetRecords")`` ->
    ``dynamodb:GetRecords``."""
    if (service, operation) in OPERATION_ACTIONS:
        return OPERATION_ACTIONS[(service, operation)]
    return f"{_PREFIX.get(service, service)}:{operation}"


def granted(command: str | None = None, *, read_only: bool = False) -> set[str]:
    """Actions the policy grants (for ``command`` only, when given)."""
    return {g.action for g in GRANTS
            if (command is None or command in g.commands) and not (read_only and g.write)}


def write_actions() -> set[str]:
    return {g.action for g in GRANTS if g.write}


# --------------------------------------------------------------------------- resources


@dataclass
class Resources:
    """The ARNs the policy is scoped to; ``*`` where they could not be resolved."""

    table: str
    partition: str = "aws"
    region: str = "*"
    account: str = "*"
    table_arn: str | None = None
    mappings: list[dict[str, Any]] = field(default_factory=list)
    function: str | None = None  # a name or ARN from --function, when no mapping was read
    resolved: bool = False
    notes: list[str] = field(default_factory=list)

    def _arn(self, service: str, resource: str, *, regional: bool = True) -> str:
        region, account = (self.region, self.account) if regional else ("", "")
        return f"arn:{self.partition}:{service}:{region}:{account}:{resource}"

    def table_base(self) -> str:
        return self.table_arn or self._arn("dynamodb", f"table/{self.table}")

    def arns(self, kind: str) -> list[str]:
        if kind == TABLE:
            return [self.table_base()]
        if kind == INDEX:
            return [self.table_base() + "/index/*"]
        if kind == STREAM:
            return [self.table_base() + "/stream/*"]
        if kind == MAPPING:
            found = [str(m["EventSourceMappingArn"]) if m.get("EventSourceMappingArn")
                     else self._arn("lambda", f"event-source-mapping:{m['UUID']}")
                     for m in self.mappings if m.get("UUID")]
            return sorted(set(found)) or [self._arn("lambda", "event-source-mapping:*")]
        if kind == FUNCTION:
            # An unqualified function ARN does not cover its versions and aliases
            # (function:NAME:QUALIFIER): both are listed.
            bases = sorted({_unqualified(str(m["FunctionArn"])) for m in self.mappings
                            if m.get("FunctionArn")})
            if not bases:
                name = _function_name(self.function) if self.function else "*"
                bases = [self._arn("lambda", f"function:{name}")]
            return [arn for base in bases for arn in (base, base + ":*")]
        if kind == KEY:
            return sorted({str(m["KMSKeyArn"]) for m in self.mappings if m.get("KMSKeyArn")})
        if kind in (DESTINATION, OBJECTS):
            dests = self.destinations()
            if kind == OBJECTS:
                # Lambda writes S3 on-failure records under aws/lambda/<ESM UUID>/...
                # (Lambda DG, services-dynamodb-errors).
                return [f"{d}/aws/lambda/*" for d in dests if _service(d) == "s3"]
            return dests
        if kind == ANY:
            return ["*"]
        raise ValueError(f"unknown resource kind {kind!r}")  # pragma: no cover

    def destinations(self) -> list[str]:
        """The trigger's on-failure destination(s); when no mapping was read, one
        wildcard per kind a DynamoDB trigger can have (SQS queue, SNS topic, S3 bucket)."""
        found = sorted({d for m in self.mappings if (d := destination_of(m))})
        if found or self.mappings:
            return found
        return [self._arn("sqs", "*"), self._arn("sns", "*"),
                f"arn:{self.partition}:s3:::*"]

    def condition(self, kind: str) -> dict[str, Any] | None:
        """A wildcard mapping ARN is narrowed to the trigger's function where known
        (GetEventSourceMapping and UpdateEventSourceMapping support lambda:FunctionArn)."""
        if kind == MAPPING and not any(m.get("UUID") for m in self.mappings) and self.function:
            return {"ArnLike": {"lambda:FunctionArn": self._arn(
                "lambda", f"function:{_function_name(self.function)}*")}}
        return None


def destination_of(mapping: dict[str, Any]) -> str | None:
    dest = ((mapping.get("DestinationConfig") or {}).get("OnFailure") or {}).get("Destination")
    return str(dest) if dest else None


def _service(arn: str) -> str:
    parts = arn.split(":")
    return parts[2] if len(parts) > 2 else ""


def _function_name(name_or_arn: str) -> str:
    parts = name_or_arn.split(":")
    return parts[6] if len(parts) >= 7 and parts[5] == "function" else name_or_arn


def _unqualified(function_arn: str) -> str:
    parts = function_arn.split(":")
    return ":".join(parts[:7]) if len(parts) > 7 else function_arn


def partition_of(region: str | None) -> str:
    if region and region.startswith("cn-"):
        return "aws-cn"
    if region and region.startswith("us-gov-"):
        return "aws-us-gov"
    return "aws"


_ARN = re.compile(r"^arn:([^:]+):dynamodb:([^:]*):([^:]*):table/")


def resolve_resources(aws: Aws, settings: Settings, table: str) -> Resources:
    """The table's ARN and its trigger's mappings, read from AWS (DescribeTable,
    ListEventSourceMappings); on a failure (no credentials, no access, no such table, no
    endpoint) the same shape with * for what is unknown and a note saying why."""
    from .aws import aws_errors
    from .trigger import function_name_of, list_mappings

    region = settings.region
    res = Resources(table=table, partition=partition_of(region), region=region or "*",
                    function=settings.function)
    try:
        if region is None:
            region = aws.region
            res.region, res.partition = region or "*", partition_of(region)
        with aws_errors():
            desc = aws.client("dynamodb").describe_table(TableName=table)["Table"]
    except StreamqError as exc:
        res.notes.append(f"could not read table {table!r} ({exc.message}): the policy "
                         "uses * for the region, account and trigger")
        return res
    arn = str(desc.get("TableArn") or "")
    m = _ARN.match(arn)
    if m:
        res.partition, res.region, res.account = m.group(1), m.group(2), m.group(3)
        res.table_arn = arn
    res.resolved = True
    stream_arn = desc.get("LatestStreamArn")
    if not stream_arn or not (desc.get("StreamSpecification") or {}).get("StreamEnabled"):
        res.notes.append(f"table {table!r} has no stream enabled, so no trigger: the "
                         "trigger statement uses *")
        return res
    try:
        mappings = list_mappings(aws, str(stream_arn))
    except StreamqError as exc:
        res.notes.append(f"could not list the stream's triggers ({exc.message}): the "
                         "trigger statement uses *")
        return res
    if settings.function:
        want = function_name_of(settings.function)
        mappings = [mp for mp in mappings
                    if function_name_of(mp.get("FunctionArn", "")) == want]
    res.mappings = mappings
    if not mappings:
        res.notes.append("no trigger on the table's stream: the trigger statement uses *")
    return res


# ------------------------------------------------------------------------------ policy

_SIDS = {TABLE: "OutboxTable", INDEX: "OutboxIndexes", STREAM: "OutboxStream",
         MAPPING: "Trigger", FUNCTION: "TriggerFunction", KEY: "TriggerFilterKey",
         DESTINATION: "OnFailureDestination", OBJECTS: "OnFailureObjects",
         ANY: "NoResourceLevelPermissions"}
_ORDER = (TABLE, INDEX, STREAM, ANY, MAPPING, FUNCTION, KEY, DESTINATION, OBJECTS)


def build_policy(res: Resources, *, read_only: bool = False,
                 grants: Iterable[Grant] = GRANTS) -> dict[str, Any]:
    """An IAM policy document granting ``grants`` on ``res``'s resources."""
    by_kind: dict[str, set[str]] = {}
    for g in grants:
        if read_only and g.write:
            continue
        by_kind.setdefault(g.resource, set()).add(g.action)
    statements: list[dict[str, Any]] = []
    for kind in _ORDER:
        actions = by_kind.pop(kind, None)
        if not actions:
            continue
        arns = res.arns(kind)
        if not arns:
            continue
        if kind == DESTINATION:
            # One statement per destination, with only its service's actions.
            for arn in arns:
                own = sorted(a for a in actions if a.split(":")[0] == _service(arn))
                if own:
                    statements.append({"Sid": f"OnFailure{_service(arn).upper()}",
                                       "Effect": "Allow", "Action": own, "Resource": arn})
            continue
        stmt: dict[str, Any] = {"Sid": _SIDS[kind], "Effect": "Allow",
                                "Action": sorted(actions),
                                "Resource": arns[0] if len(arns) == 1 else arns}
        cond = res.condition(kind)
        if cond:
            stmt["Condition"] = cond
        statements.append(stmt)
    if by_kind:  # pragma: no cover - a grant with a kind _ORDER does not know
        raise ValueError(f"unknown resource kinds {sorted(by_kind)}")
    return {"Version": "2012-10-17", "Statement": statements}


def policy_notes(res: Resources, *, read_only: bool) -> list[str]:
    notes = list(res.notes)
    if not res.mappings and any(g.resource == DESTINATION for g in GRANTS):
        notes.append("the on-failure destination is unknown: its statements name every "
                     "queue, topic and bucket (*); narrow them to the trigger's destination")
    if not res.arns(KEY) and any(g.resource == KEY for g in GRANTS):
        notes.append("no kms:Decrypt statement: the trigger's filter is not encrypted with a "
                     "customer managed key" if res.mappings else
                     "if the trigger's filter is encrypted with a customer managed key "
                     "(KMSKeyArn), also allow kms:Decrypt on that key: streamq reads the "
                     "filter through GetEventSourceMapping")
    return notes


def commands(grants: Sequence[Grant] = GRANTS) -> list[str]:
    return sorted({c for g in grants for c in g.commands})


def markdown_table(grants: Sequence[Grant] = GRANTS) -> str:
    """The README's command -> actions table (rows in command order; writes marked)."""
    order = ["list", "show", "stats", "refire", "redrive", "config-trigger", "doctor", "tail",
             "watch", "iam-policy"]
    names = sorted(commands(grants), key=lambda c: (order.index(c) if c in order else
                                                    len(order), c))
    rows = []
    for cmd in names:
        acts: dict[str, bool] = {}
        for g in grants:
            if cmd in g.commands:
                acts[g.action] = acts.get(g.action, False) or g.write
        cells = ", ".join(f"`{a}`" + (" (writes)" if w else "") for a, w in sorted(acts.items()))
        rows.append(f"| `{cmd}` | {cells} |")
    return "\n".join(rows)
