"""The trigger's settings as infrastructure as code (``config-trigger --export --format``).

A setting tuned by hand belongs back in the template that owns the trigger. This module
prints the live mapping (as GetEventSourceMapping returns it) as:

* ``json``: streamq's own ``--export`` document (:func:`streamq.trigger.export_doc`),
  which ``--from-file`` and ``--check`` read;
* ``cloudformation``: an ``AWS::Lambda::EventSourceMapping`` resource (YAML), to paste
  under ``Resources:``. Property names and shapes: the CloudFormation template reference,
  "AWS::Lambda::EventSourceMapping"
  (https://docs.aws.amazon.com/AWSCloudFormation/latest/TemplateReference/aws-resource-lambda-eventsourcemapping.html)
  and the resource's registry schema that cfn-lint ships (schema of 2026-10-20: FunctionName
  required; ``KmsKeyArn``, not the API's ``KMSKeyArn``; ``FilterCriteria.Filters`` 1-20
  items; ``DestinationConfig`` has only ``OnFailure.Destination``; ``MetricsConfig.Metrics``);
* ``terraform``: an ``aws_lambda_event_source_mapping`` resource (HCL). Argument names and
  blocks: the Terraform AWS provider's documentation,
  hashicorp/terraform-provider-aws ``website/docs/r/lambda_event_source_mapping.html.markdown``
  (provider v6: ``kms_key_arn``, ``metrics_config { metrics }``,
  ``filter_criteria { filter { pattern } }``, ``destination_config { on_failure {
  destination_arn } }``, ``function_response_types``); tests/data holds the argument list
  the tests check against.

What is exported is what applies to a DynamoDB stream trigger (Lambda Developer Guide,
"services-ddb-params"): the identifiers (``EventSourceArn``, ``FunctionName``,
``StartingPosition``), every scalar setting with its value even when it is AWS's default
(so the template pins it), and ``FilterCriteria``, ``DestinationConfig`` (on failure),
``KMSKeyArn``, ``FunctionResponseTypes`` and ``MetricsConfig`` when set. Left out, because
they do not apply to a DynamoDB stream (:data:`NOT_FOR_DYNAMODB`): ``ScalingConfig``
(SQS), ``ProvisionedPollerConfig`` and ``LoggingConfig`` (Kafka), ``Topics``, ``Queues``,
``SourceAccessConfigurations``, ``SelfManagedEventSource``, the Kafka and DocumentDB
source configurations, and ``StartingPositionTimestamp`` (``AT_TIMESTAMP`` is Kinesis
only). ``Tags`` apply but are not read by streamq (they need ``lambda:ListTags``): the
output says so. A filter encrypted with a KMS key that AWS did not return
(:func:`streamq.trigger.filter_hidden`) is never written as "no filter": it is left out
with a comment saying why, as ``--export`` does.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any

from .errors import BadInput
from .trigger import current_config, export_doc, filter_hidden, function_name_of

FORMATS: tuple[str, ...] = ("json", "cloudformation", "terraform")

#: Fields of an event source mapping that do not apply to a DynamoDB stream source, and
#: why (the CloudFormation reference and the provider documentation say which sources
#: each one is for).
NOT_FOR_DYNAMODB: dict[str, str] = {
    "ScalingConfig": "Amazon SQS only",
    "ProvisionedPollerConfig": "Amazon MSK, self-managed Kafka and Amazon SQS only",
    "LoggingConfig": "Amazon MSK and self-managed Kafka only",
    "Topics": "Kafka only",
    "Queues": "Amazon MQ only",
    "SourceAccessConfigurations": "Amazon MQ, Kafka and DocumentDB only",
    "SelfManagedEventSource": "self-managed Kafka only",
    "SelfManagedKafkaEventSourceConfig": "self-managed Kafka only",
    "AmazonManagedKafkaEventSourceConfig": "Amazon MSK only",
    "DocumentDBEventSourceConfig": "DocumentDB only",
    "StartingPositionTimestamp": "AT_TIMESTAMP, Kinesis only",
}

#: streamq's field (the Lambda API's name) -> CloudFormation property.
CFN_PROPERTY: dict[str, str] = {
    "BatchSize": "BatchSize",
    "MaximumBatchingWindowInSeconds": "MaximumBatchingWindowInSeconds",
    "MaximumRetryAttempts": "MaximumRetryAttempts",
    "MaximumRecordAgeInSeconds": "MaximumRecordAgeInSeconds",
    "BisectBatchOnFunctionError": "BisectBatchOnFunctionError",
    "ParallelizationFactor": "ParallelizationFactor",
    "FilterCriteria": "FilterCriteria",
    "KMSKeyArn": "KmsKeyArn",
    "DestinationConfig": "DestinationConfig",
    "FunctionResponseTypes": "FunctionResponseTypes",
    "TumblingWindowInSeconds": "TumblingWindowInSeconds",
    "MetricsConfig": "MetricsConfig",
    "Enabled": "Enabled",
}

#: streamq's field -> Terraform argument (a block for the nested ones).
TF_ARGUMENT: dict[str, str] = {
    "BatchSize": "batch_size",
    "MaximumBatchingWindowInSeconds": "maximum_batching_window_in_seconds",
    "MaximumRetryAttempts": "maximum_retry_attempts",
    "MaximumRecordAgeInSeconds": "maximum_record_age_in_seconds",
    "BisectBatchOnFunctionError": "bisect_batch_on_function_error",
    "ParallelizationFactor": "parallelization_factor",
    "FilterCriteria": "filter_criteria",
    "KMSKeyArn": "kms_key_arn",
    "DestinationConfig": "destination_config",
    "FunctionResponseTypes": "function_response_types",
    "TumblingWindowInSeconds": "tumbling_window_in_seconds",
    "MetricsConfig": "metrics_config",
    "Enabled": "enabled",
}

#: The provider documents filter_criteria as "a set of up to 5 filter" blocks.
TF_MAX_FILTERS = 5


def export_text(mapping: Mapping[str, Any], fmt: str = "json") -> str:
    """The mapping's settings in ``fmt`` (one of :data:`FORMATS`), as text ending in a
    newline. BadInput for another format."""
    if fmt == "json":
        return json.dumps(export_doc(mapping), ensure_ascii=False, indent=2, default=str) + "\n"
    if fmt == "cloudformation":
        return to_cloudformation(mapping)
    if fmt == "terraform":
        return to_terraform(mapping)
    raise BadInput(f"invalid --format {fmt!r}: use {', '.join(FORMATS)}")


# ------------------------------------------------------------------ what is exported


def _is_unset(name: str, value: Any) -> bool:
    """An empty object or list (no filter, destination, key, response types or metrics),
    or a tumbling window of 0 (none): not set on the trigger."""
    if name in ("FilterCriteria", "MetricsConfig"):
        return not (value or {}).get("Filters" if name == "FilterCriteria" else "Metrics")
    if name in ("KMSKeyArn", "DestinationConfig", "FunctionResponseTypes",
                "TumblingWindowInSeconds"):
        return not value
    return False


def _settings(mapping: Mapping[str, Any]) -> tuple[list[tuple[str, Any]], list[str]]:
    """(field, value) to export, in display order, and the fields left out as not set
    (or unknown). Scalars always; empty objects and lists (no filter, no destination, no
    key, no response types, no metrics) and a tumbling window of 0 (none) are not set."""
    cfg = current_config(mapping)
    out: list[tuple[str, Any]] = []
    unset: list[str] = []
    for name, value in cfg.items():
        empty = _is_unset(name, value)
        if empty:
            unset.append(name)
            continue
        out.append((name, value))
    return out, unset


def _header(mapping: Mapping[str, Any], what: str, unset: list[str],
            names: Mapping[str, str]) -> list[str]:
    table = re.sub(r"^.*:table/([^/]+).*$", r"\1", str(mapping.get("EventSourceArn") or "?"))
    lines = [
        f"streamq config-trigger --export --format {what}",
        f"trigger   {mapping.get('UUID')} (table {table})",
        f"function  {mapping.get('FunctionArn')}",
    ]
    hidden = filter_hidden(mapping)
    if hidden:
        lines.append(f"{names['FilterCriteria']}: NOT EXPORTED: the filter is {hidden}; it "
                     "is unknown, not absent: copy it from where it is defined")
    plain = [names[n] for n in unset if not (n == "FilterCriteria" and hidden)]
    if plain:
        lines.append(f"not set on the trigger (AWS's default applies): {', '.join(plain)}")
    lines.append("not exported: tags (streamq does not read them), and what does not "
                 "apply to a DynamoDB stream")
    return lines


# ---------------------------------------------------------------------- CloudFormation

_YAML_PLAIN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_./:@+=-]*$")
_YAML_SPECIAL = re.compile(
    r"^(?:y|Y|yes|Yes|YES|n|N|no|No|NO|true|True|TRUE|false|False|FALSE|on|On|ON|off|Off|"
    r"OFF|null|Null|NULL|~|[-+]?(?:\.?[0-9][0-9_.:eE+-]*|\.inf|\.nan|0x[0-9a-fA-F]+))$")


def yaml_str(text: str) -> str:
    """A YAML scalar that reads back as exactly ``text`` (a string, never a number, bool
    or null): plain when safe, single-quoted when printable, double-quoted with escapes
    otherwise."""
    if _YAML_PLAIN.match(text) and not _YAML_SPECIAL.match(text) and ": " not in text \
            and " #" not in text:
        return text
    if text.isprintable() and "\u2028" not in text and "\u2029" not in text \
            and "\ufeff" not in text:
        return "'" + text.replace("'", "''") + "'"
    out = []
    for ch in text:
        code = ord(ch)
        if ch in ('"', "\\"):
            out.append("\\" + ch)
        elif ch.isprintable() and ch not in "\u2028\u2029\ufeff":
            out.append(ch)
        elif code <= 0xFFFF:
            out.append(f"\\u{code:04x}")
        else:
            out.append(f"\\U{code:08x}")
    return '"' + "".join(out) + '"'


def _yaml_scalar(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    return yaml_str(str(value))


def _cfn_value(field: str, value: Any, indent: str) -> list[str]:
    """Lines for ``Property: value`` (nested shapes for the objects)."""
    prop = CFN_PROPERTY[field]
    if field == "FilterCriteria":
        return ([f"{indent}{prop}:", f"{indent}  Filters:"]
                + [f"{indent}    - Pattern: {yaml_str(f['Pattern'])}" for f in value["Filters"]])
    if field == "DestinationConfig":
        return [f"{indent}{prop}:", f"{indent}  OnFailure:",
                f"{indent}    Destination: "
                f"{yaml_str(value['OnFailure']['Destination'])}"]
    if field == "MetricsConfig":
        return ([f"{indent}{prop}:", f"{indent}  Metrics:"]
                + [f"{indent}    - {yaml_str(m)}" for m in value["Metrics"]])
    if field == "FunctionResponseTypes":
        return [f"{indent}{prop}:"] + [f"{indent}  - {yaml_str(v)}" for v in value]
    return [f"{indent}{prop}: {_yaml_scalar(value)}"]


def logical_id(mapping: Mapping[str, Any]) -> str:
    """A CloudFormation logical ID from the function's name: ``mail-sender`` ->
    ``MailSenderTrigger`` (alphanumeric only)."""
    name = function_name_of(str(mapping.get("FunctionArn") or "function"))
    words = [w for w in re.split(r"[^A-Za-z0-9]+", name) if w]
    base = "".join(w[:1].upper() + w[1:] for w in words) or "Stream"
    if not base[0].isalpha():
        base = "Fn" + base
    return base + "Trigger"


def to_cloudformation(mapping: Mapping[str, Any]) -> str:
    settings, unset = _settings(mapping)
    lines = ["# " + line for line in _header(mapping, "cloudformation", unset, CFN_PROPERTY)]
    lines.append("# Paste under Resources: of the template that owns the trigger (there,")
    lines.append("# EventSourceArn and FunctionName are usually !GetAtt T.StreamArn and "
                 "!Ref F).")
    lines.append(f"{logical_id(mapping)}:")
    lines.append("  Type: AWS::Lambda::EventSourceMapping")
    lines.append("  Properties:")
    ind = "    "
    lines.append(f"{ind}EventSourceArn: {yaml_str(str(mapping.get('EventSourceArn')))}")
    lines.append(f"{ind}FunctionName: {yaml_str(str(mapping.get('FunctionArn')))}")
    if mapping.get("StartingPosition"):
        lines.append(f"{ind}StartingPosition: {yaml_str(str(mapping['StartingPosition']))}")
    for field, value in settings:
        lines.extend(_cfn_value(field, value, ind))
    return "\n".join(lines) + "\n"


# --------------------------------------------------------------------------- Terraform


def hcl_str(text: str) -> str:
    """An HCL quoted string that reads back as exactly ``text``: the HCL escapes
    (``\\" \\\\ \\n \\r \\t \\uNNNN \\UNNNNNNNN``), and ``$${`` / ``%%{`` so that no
    template interpolation or directive starts inside it (HCL native syntax
    specification, "Template Expressions")."""
    out = []
    for ch in text:
        code = ord(ch)
        if ch == '"':
            out.append('\\"')
        elif ch == "\\":
            out.append("\\\\")
        elif ch == "\n":
            out.append("\\n")
        elif ch == "\r":
            out.append("\\r")
        elif ch == "\t":
            out.append("\\t")
        elif not ch.isprintable():
            out.append(f"\\u{code:04x}" if code <= 0xFFFF else f"\\U{code:08x}")
        else:
            out.append(ch)
    quoted = "".join(out).replace("${", "$${").replace("%{", "%%{")
    return f'"{quoted}"'


def _hcl_scalar(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, list):
        return "[" + ", ".join(_hcl_scalar(v) for v in value) + "]"
    return hcl_str(str(value))


def _aligned(pairs: list[tuple[str, str]], indent: str) -> list[str]:
    """Attribute lines with their ``=`` aligned, as ``terraform fmt`` writes them."""
    width = max((len(k) for k, _ in pairs), default=0)
    return [f"{indent}{k.ljust(width)} = {v}" for k, v in pairs]


def resource_name(mapping: Mapping[str, Any]) -> str:
    """A Terraform resource name from the function's name: ``mail-sender`` ->
    ``mail_sender`` (letters, digits and underscores; never starting with a digit)."""
    name = function_name_of(str(mapping.get("FunctionArn") or "trigger"))
    ident = re.sub(r"[^A-Za-z0-9_]", "_", name) or "trigger"
    return ident if ident[0].isalpha() or ident[0] == "_" else "trigger_" + ident


def to_terraform(mapping: Mapping[str, Any]) -> str:
    settings, unset = _settings(mapping)
    lines = ["# " + line for line in _header(mapping, "terraform", unset, TF_ARGUMENT)]
    lines.append("# In the configuration that owns the trigger, event_source_arn and")
    lines.append("# function_name are usually aws_dynamodb_table.T.stream_arn and "
                 "aws_lambda_function.F.arn.")
    attrs: list[tuple[str, str]] = [
        ("event_source_arn", hcl_str(str(mapping.get("EventSourceArn")))),
        ("function_name", hcl_str(str(mapping.get("FunctionArn"))))]
    if mapping.get("StartingPosition"):
        attrs.append(("starting_position", hcl_str(str(mapping["StartingPosition"]))))
    blocks: list[list[str]] = []
    for field, value in settings:
        arg = TF_ARGUMENT[field]
        if field == "FilterCriteria":
            patterns = [f["Pattern"] for f in value["Filters"]]
            block = [f"  {arg} {{"]
            if len(patterns) > TF_MAX_FILTERS:
                block.append(f"    # {len(patterns)} filters: the provider documents at most "
                             f"{TF_MAX_FILTERS} filter blocks")
            for i, pattern in enumerate(patterns):
                if i:
                    block.append("")
                block += ["    filter {", f"      pattern = {hcl_str(pattern)}", "    }"]
            blocks.append([*block, "  }"])
        elif field == "DestinationConfig":
            blocks.append([f"  {arg} {{", "    on_failure {",
                           f"      destination_arn = "
                           f"{hcl_str(value['OnFailure']['Destination'])}",
                           "    }", "  }"])
        elif field == "MetricsConfig":
            blocks.append([f"  {arg} {{", f"    metrics = {_hcl_scalar(value['Metrics'])}",
                           "  }"])
        else:
            attrs.append((arg, _hcl_scalar(value)))
    lines.append(f'resource "aws_lambda_event_source_mapping" "{resource_name(mapping)}" {{')
    lines.extend(_aligned(attrs, "  "))
    for block in blocks:
        lines.append("")
        lines.extend(block)
    lines.append("}")
    return "\n".join(lines) + "\n"
