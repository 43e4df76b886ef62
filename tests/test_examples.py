"""docs/examples/ run as they are, against the local endpoint holding the sandbox's world
(tests.helpers.sandbox_world: 15 failed records of which 9 due, 4 waiting and 2 dead;
3 stuck, created 10 minutes ago; 5 pending):

* ssm-refire-stuck.yaml: the Automation document is parsed and its structure checked
  (and accepted by the endpoint's SSM as an Automation document); the script embedded
  in its aws:executeScript step is run with the InputPayload SSM would pass;
* remediation_lambda.py: imported with its environment and its handler called, as
  EventBridge Scheduler would;
* runbook.sh: run with bash, the CLI on PATH, STREAMQ_TABLE and AWS_ENDPOINT_URL
  pointing at the endpoint.
"""

from __future__ import annotations

import ast
import importlib.util
import json
import os
import re
import subprocess
import sys
from collections import Counter
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import yaml

from tests.helpers import sandbox_world
from tests.test_refire import stream_events

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "docs" / "examples"
SSM_DOC = EXAMPLES / "ssm-refire-stuck.yaml"
TABLE = "mail_outbox"
STUCK = ["stuck-000", "stuck-001", "stuck-002"]
DUE = [f"throttled-{i:03d}" for i in range(6)] + [f"timeout-{i:03d}" for i in range(3)]


def modifies(endpoint: str) -> Counter[str]:
    """MODIFY records on the outbox's stream, per key: one per refire."""
    return Counter(key for name, key in stream_events(endpoint, TABLE) if name == "MODIFY")


def refire_count(ddb: Any, key: str) -> int:
    item = ddb.get_item(TableName=TABLE, Key={"id": {"S": key}}, ConsistentRead=True)["Item"]
    return int(item["refire_count"]["N"]) if "refire_count" in item else 0


# --------------------------------------------------------------------------- SSM document


def ssm_doc() -> dict[str, Any]:
    doc = yaml.safe_load(SSM_DOC.read_text())
    assert isinstance(doc, dict)
    return doc


def ssm_step() -> dict[str, Any]:
    (step,) = [s for s in ssm_doc()["mainSteps"] if s["action"] == "aws:executeScript"]
    return step


def render_payload(step: dict[str, Any], params: dict[str, Any]) -> dict[str, Any]:
    """The step's InputPayload as Automation passes it to the handler: each
    ``{{ Name }}`` replaced by the parameter's value (a whole-value reference keeps the
    parameter's type: an Integer parameter arrives as a number)."""
    declared = ssm_doc()["parameters"]
    values = {name: params.get(name, spec.get("default")) for name, spec in declared.items()}
    out = {}
    for key, text in step["inputs"]["InputPayload"].items():
        whole = re.fullmatch(r"\{\{\s*(\w+)\s*\}\}", text)
        if whole:
            out[key] = values[whole.group(1)]
        else:
            out[key] = re.sub(r"\{\{\s*(\w+)\s*\}\}", lambda m: str(values[m.group(1)]), text)
    return out


def run_ssm_script(params: dict[str, Any]) -> dict[str, Any]:
    step = ssm_step()
    namespace: dict[str, Any] = {"__name__": "ssm_script"}
    exec(compile(step["inputs"]["Script"], f"{SSM_DOC.name} Script", "exec"), namespace)
    result = namespace[step["inputs"]["Handler"]](render_payload(step, params), None)
    assert isinstance(result, dict)
    json.dumps(result)  # the step's $.Payload is the JSON of what the handler returns
    return result


def test_ssm_document_structure() -> None:
    """What Systems Manager requires of an Automation document (schemaVersion 0.3,
    parameters, mainSteps; aws:executeScript with Runtime, Handler, Script, and an
    Attachment named in `files`), and the references inside it resolve."""
    doc = ssm_doc()
    assert doc["schemaVersion"] == "0.3"
    params = doc["parameters"]
    assert {"TableName", "OlderThan", "Rate", "MaxRecords", "DryRun"} <= set(params)
    assert params["Rate"]["type"] == params["MaxRecords"]["type"] == "Integer"
    assert params["DryRun"] == {**params["DryRun"], "type": "Boolean", "default": True}
    for spec in params.values():
        assert spec["type"] in {"String", "StringList", "Integer", "Boolean", "MapList",
                                "StringMap"}
        if "allowedPattern" in spec and "default" in spec and spec["default"] != "":
            assert re.fullmatch(spec["allowedPattern"], str(spec["default"]))
    assert re.fullmatch(params["OlderThan"]["allowedPattern"], "1h30m")
    assert not re.fullmatch(params["OlderThan"]["allowedPattern"], "soon")

    step = ssm_step()
    inputs = step["inputs"]
    # python3.6-3.8 can no longer be used (the aws:executeScript page); 3.11 is advised.
    assert inputs["Runtime"] == "python3.11"
    assert step["timeoutSeconds"] <= 600
    assert inputs["Attachment"] in doc["files"]
    assert re.fullmatch(r"[0-9a-f]{64}", doc["files"][inputs["Attachment"]]["checksums"]["sha256"])
    # The handler is a function of (events, context) in the embedded script.
    tree = ast.parse(inputs["Script"])
    funcs = {f.name: [a.arg for a in f.args.args] for f in tree.body
             if isinstance(f, ast.FunctionDef)}
    assert funcs[inputs["Handler"]] == ["events", "context"]
    # Every {{ reference }} names a parameter; every output selects from the payload.
    refs = set(re.findall(r"\{\{\s*(\w+)\s*\}\}", SSM_DOC.read_text()))
    assert refs and refs <= set(params), refs - set(params)
    assert {o["Selector"].split(".")[0] for o in step["outputs"]} == {"$"}
    names = {f"{step['name']}.{o['Name']}" for o in step["outputs"]}
    assert set(doc["outputs"]) <= names


def test_ssm_document_is_accepted_as_an_automation_document(endpoint: str) -> None:
    """The endpoint's SSM (moto) parses the YAML as an Automation document and lists its
    parameters (moto does not check the steps: the test above does)."""
    import boto3

    ssm = boto3.client("ssm", endpoint_url=endpoint, region_name="us-east-1")
    ssm.create_document(Content=SSM_DOC.read_text(), Name="streamq-refire-stuck",
                        DocumentType="Automation", DocumentFormat="YAML")
    desc = ssm.describe_document(Name="streamq-refire-stuck")["Document"]
    assert desc["SchemaVersion"] == "0.3" and desc["DocumentType"] == "Automation"
    assert {p["Name"] for p in desc["Parameters"]} >= {"TableName", "Rate", "DryRun"}


def test_ssm_script_refires_the_stuck_records(ddb: Any, endpoint: str) -> None:
    """The embedded script, with the payload SSM would pass: a dry run writes nothing;
    then each stuck record is refired once (one MODIFY on the stream, refire_count 1)
    and nothing else is touched; the summary says so."""
    sandbox_world(endpoint)
    params = {"TableName": TABLE, "OlderThan": "5m", "Rate": 50, "MaxRecords": 10}
    dry = run_ssm_script(params)  # DryRun defaults to true
    assert (dry["stuck"], dry["dry_run"], dry["refired"]) == (3, True, 0)
    assert modifies(endpoint) == Counter()

    out = run_ssm_script({**params, "DryRun": False})
    assert out["table"] == TABLE and out["dry_run"] is False
    assert (out["stuck"], out["refired"], out["missing"], out["skipped"], out["failed"],
            out["not_reached"], out["ok"]) == (3, 3, 0, 0, 0, 0, True)
    assert out["run"].startswith("r-")
    assert modifies(endpoint) == Counter(dict.fromkeys(STUCK, 1))
    assert [refire_count(ddb, k) for k in STUCK] == [1, 1, 1]


def test_ssm_script_bounds(ddb: Any, endpoint: str) -> None:
    """MaxRecords caps the run; OlderThan decides what is stuck (the stuck records are
    10 minutes old); a rate of 0 (unbounded) is refused before any read."""
    sandbox_world(endpoint)
    one = run_ssm_script({"TableName": TABLE, "OlderThan": "5m", "MaxRecords": 1,
                          "DryRun": "false"})  # a String "false" is read as false
    assert (one["stuck"], one["refired"]) == (1, 1)
    assert sum(modifies(endpoint).values()) == 1
    none = run_ssm_script({"TableName": TABLE, "OlderThan": "1h", "DryRun": False})
    assert (none["stuck"], none["refired"], none["ok"]) == (0, 0, True)
    with pytest.raises(ValueError, match="Rate must be"):
        run_ssm_script({"TableName": TABLE, "Rate": 0, "DryRun": False})
    assert sum(modifies(endpoint).values()) == 1


BLOCKED = ("typer", "rich", "click", "tomli", "moto")

ONLY_STREAMQ_AND_BOTO3 = f"""
import importlib.abc, json, sys, yaml
class Block(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in {BLOCKED!r}:
            raise ImportError(f"{{name}} is not in the SSM runtime or the attachment")
sys.meta_path.insert(0, Block())
step = yaml.safe_load(open(sys.argv[1]))["mainSteps"][0]
namespace = {{}}
exec(step["inputs"]["Script"], namespace)
payload = json.loads(sys.argv[2])
print(json.dumps(namespace[step["inputs"]["Handler"]](payload, None)))
"""


def test_ssm_script_needs_only_streamq_and_boto3(endpoint: str) -> None:
    """The attachment holds the streamq package alone and the runtime has boto3: the
    script runs (in a fresh interpreter) with the CLI's dependencies (typer, rich,
    click) impossible to import."""
    sandbox_world(endpoint)
    payload = render_payload(ssm_step(), {"TableName": TABLE, "OlderThan": "5m"})
    out = subprocess.run([sys.executable, "-c", ONLY_STREAMQ_AND_BOTO3, str(SSM_DOC),
                          json.dumps(payload)], capture_output=True, text=True, timeout=60,
                         env={**os.environ, "AWS_ENDPOINT_URL": endpoint})
    assert out.returncode == 0, out.stderr
    result = json.loads(out.stdout.splitlines()[-1])
    assert (result["stuck"], result["dry_run"], result["refired"]) == (3, True, 0)


# --------------------------------------------------------------------------- Lambda


def load_lambda(monkeypatch: pytest.MonkeyPatch, **env: str) -> ModuleType:
    """Import docs/examples/remediation_lambda.py afresh (a cold start) with ``env``."""
    for name in ("OUTBOX_RATE", "OUTBOX_MAX_RECORDS", "OUTBOX_REFIRE_STUCK",
                 "OUTBOX_STUCK_AFTER", "OUTBOX_BACKOFF", "OUTBOX_MAX_ATTEMPTS",
                 "OUTBOX_FUNCTION", "OUTBOX_MARGIN_SECONDS"):
        monkeypatch.delenv(name, raising=False)
    for name, value in {"OUTBOX_TABLE": TABLE, **env}.items():
        monkeypatch.setenv(name, value)
    spec = importlib.util.spec_from_file_location("remediation_lambda",
                                                  EXAMPLES / "remediation_lambda.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


class LambdaContext:
    """What the handler reads of Lambda's context object."""

    def __init__(self, remaining_ms: int) -> None:
        self.remaining_ms = remaining_ms

    def get_remaining_time_in_millis(self) -> int:
        return self.remaining_ms


SCHEDULER_EVENT: dict[str, Any] = {}  # EventBridge Scheduler's default input: empty


def test_remediation_lambda_refires_due_then_stuck(ddb: Any, endpoint: str,
                                                    monkeypatch: pytest.MonkeyPatch,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    """One round: the 9 due records, then the 3 stuck ones, each once; the waiting and
    dead ones untouched; one JSON log line, the same document returned. The next round
    finds nothing due (just refired: in flight) and leaves the stuck ones it just
    refired alone (in flight too)."""
    sandbox_world(endpoint)
    mod = load_lambda(monkeypatch, OUTBOX_RATE="100")
    doc = mod.handler(SCHEDULER_EVENT, LambdaContext(60_000))
    assert json.loads(capsys.readouterr().out) == doc
    assert (doc["table"], doc["refired"], doc["stopped_early"]) == (TABLE, 12, False)
    assert (doc["due"]["refired"], doc["stuck"]["refired"]) == (9, 3)
    # left: the 4 waiting, and the 9 just refired (in flight: waiting for the handler)
    assert (doc["waiting"], doc["dead"]) == (13, 2)
    assert modifies(endpoint) == Counter(dict.fromkeys(DUE + STUCK, 1))

    again = mod.handler(SCHEDULER_EVENT, LambdaContext(60_000))
    capsys.readouterr()
    assert (again["refired"], again["due"]["refired"], again["stuck"]) == (0, 0, None)
    assert (again["waiting"], again["dead"]) == (13, 2)
    assert sum(modifies(endpoint).values()) == 12


def test_remediation_lambda_bounds(ddb: Any, endpoint: str, monkeypatch: pytest.MonkeyPatch,
                                   capsys: pytest.CaptureFixture[str]) -> None:
    """OUTBOX_MAX_RECORDS caps a round across both kinds; OUTBOX_REFIRE_STUCK=false
    leaves the stuck ones; an invocation with less time left than the margin starts no
    write (the records stay due for the next round)."""
    sandbox_world(endpoint)
    late = load_lambda(monkeypatch, OUTBOX_MARGIN_SECONDS="30")
    doc = late.handler(SCHEDULER_EVENT, LambdaContext(5_000))
    assert doc["stopped_early"] is True and doc["refired"] == 0 and doc["stuck"] is None
    assert doc["due"]["not_reached"] == 9 and doc["due"]["interrupted"] is True
    assert sum(modifies(endpoint).values()) == 0

    capped = load_lambda(monkeypatch, OUTBOX_RATE="100", OUTBOX_MAX_RECORDS="10")
    doc = capped.handler(SCHEDULER_EVENT, LambdaContext(60_000))
    assert (doc["due"]["refired"], doc["stuck"]["refired"]) == (9, 1)
    no_stuck = load_lambda(monkeypatch, OUTBOX_RATE="100", OUTBOX_REFIRE_STUCK="false")
    doc = no_stuck.handler(SCHEDULER_EVENT, None)  # called by hand: no context
    assert (doc["refired"], doc["stuck"]) == (0, None)
    assert sum(modifies(endpoint).values()) == 10
    # The retry policy from the environment: a 3 h first wait leaves the 429s and
    # timeouts (failed 1-2 h ago) waiting; 2 attempts make the 550s (2 attempts) dead.
    policy = load_lambda(monkeypatch, OUTBOX_BACKOFF="base=3h,jitter=0",
                         OUTBOX_MAX_ATTEMPTS="2", OUTBOX_REFIRE_STUCK="0")
    doc = policy.handler(SCHEDULER_EVENT, None)
    assert (doc["refired"], doc["waiting"], doc["dead"]) == (0, 9, 6)
    capsys.readouterr()
    assert sum(modifies(endpoint).values()) == 10


def test_retries_doc_points_at_the_lambda() -> None:
    """docs/retries.md's EventBridge Scheduler section uses this file (one source)."""
    text = (ROOT / "docs" / "retries.md").read_text()
    assert "examples/remediation_lambda.py" in text
    assert "def handler" not in text


# --------------------------------------------------------------------------- runbook


def run_runbook(endpoint: str, **env: str) -> subprocess.CompletedProcess[str]:
    environ = {**os.environ, "AWS_ENDPOINT_URL": endpoint, "STREAMQ_TABLE": TABLE,
               "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
               "COLUMNS": "100", **env}
    return subprocess.run(["bash", str(EXAMPLES / "runbook.sh")], env=environ, text=True,
                          capture_output=True, timeout=120)


@pytest.mark.slow
def test_runbook_refires_the_stuck_records(ddb: Any, endpoint: str) -> None:
    """bash runbook.sh: stats, the stuck ids, refire at the rate, exit 0; each stuck
    record refired once. Then with nothing old enough: exit 0, nothing written."""
    sandbox_world(endpoint)
    done = run_runbook(endpoint, OLDER_THAN="5m", RATE="50")
    assert done.returncode == 0, done.stderr
    assert "mail_outbox: 23 record(s) in the outbox" in done.stdout  # the stats
    assert "runbook: 3 stuck record(s); refiring at most 50 a second" in done.stderr
    assert "runbook: refired: every stuck record was refired or skipped" in done.stderr
    assert "runbook: still stuck right after the refire: 3" in done.stderr
    assert modifies(endpoint) == Counter(dict.fromkeys(STUCK, 1))
    assert [refire_count(ddb, k) for k in STUCK] == [1, 1, 1]

    none = run_runbook(endpoint, OLDER_THAN="1h")
    assert none.returncode == 0, none.stderr
    assert "runbook: nothing stuck (older than 1h): done" in none.stderr
    assert sum(modifies(endpoint).values()) == 3


@pytest.mark.slow
def test_runbook_exit_codes(ddb: Any, endpoint: str) -> None:
    """A failing step ends the runbook with streamq's exit code: no such table (4, from
    the first command, set -e); no trigger on the stream: the refire's pre-flight
    refuses (5) and the runbook says so; nothing is written."""
    import boto3

    sandbox_world(endpoint)
    missing = run_runbook(endpoint, STREAMQ_TABLE="no_such_table")
    assert missing.returncode == 4, missing.stderr
    assert "streamq: error:" in missing.stderr and "runbook:" not in missing.stderr

    lam = boto3.client("lambda", endpoint_url=endpoint, region_name="us-east-1")
    for mapping in lam.list_event_source_mappings()["EventSourceMappings"]:
        lam.delete_event_source_mapping(UUID=mapping["UUID"])
    refused = run_runbook(endpoint, OLDER_THAN="5m")
    assert refused.returncode == 5, refused.stderr
    assert "runbook: refused: the pre-flight found a problem" in refused.stderr
    assert modifies(endpoint) == Counter()
