"""Output schemas (issue 13 item 5): a JSON Schema (draft 2020-12) for every JSON document
streamq prints, shipped in the package (``streamq schema NAME``), each document carrying
its ``schema_version``; real outputs from the local endpoint validate against them."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from streamq import schemas
from tests.helpers import CliRunner, assert_schema, sandbox_world

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text()
T = ("-t", "mail_outbox")


@pytest.fixture()
def world(endpoint: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Any:
    monkeypatch.setenv("STREAMQ_SANDBOX_DIR", str(tmp_path / "no-sandbox"))
    return sandbox_world(endpoint)


def ok(res: Any, *codes: int) -> Any:
    assert res.code in (codes or (0,)), res.err
    return res


# ------------------------------------------------------------------ the schemas themselves


@pytest.mark.parametrize("name", schemas.names())
def test_each_schema_is_draft_2020_12_and_names_its_version(name: str) -> None:
    from jsonschema import Draft202012Validator

    schema = schemas.load(name)
    Draft202012Validator.check_schema(schema)
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert schema["title"] and schema["description"]
    version = schemas.VERSIONS[name]
    if version is None:  # trigger-export (its Format), iam-policy (AWS's grammar)
        assert "schema_version" not in schema["properties"]
        assert schema["additionalProperties"] is False
    else:
        assert schema["properties"]["schema_version"] == {
            "const": version, "description": schema["properties"]["schema_version"][
                "description"]}
        assert "schema_version" in schema["required"]
        # fields may be added within a version: consumers must accept unknown ones
        assert schema["additionalProperties"] is True
        assert schema["$id"].endswith(f":{name}:{version}")


def test_the_package_holds_exactly_the_named_schemas() -> None:
    files = {p.stem for p in (ROOT / "streamq" / "schemas").glob("*.json")}
    assert files == set(schemas.VERSIONS)


def test_schemas_reject_what_they_must() -> None:
    """The validation the other tests rely on can fail: a missing field, a wrong type, a
    version from elsewhere, a time that is not ISO-8601 UTC, a field added to a policy."""
    good = {"schema_version": 1, "key": {"id": "m1"}, "status": "failed", "age_seconds": 1.0,
            "created_at": "2026-01-01T00:00:00Z", "attempts": 1, "error": "x",
            "refire_count": None, "retry": "due", "next_due_at": None, "item": {"id": "m1"},
            "added_later": {"any": "thing"}}
    assert_schema("record", good)
    for bad in ({k: v for k, v in good.items() if k != "status"}, {**good, "status": "lost"},
                {**good, "schema_version": 2}, {**good, "created_at": "2026-01-01 00:00"},
                {**good, "attempts": "1"}, {**good, "key": {}}):
        with pytest.raises(AssertionError, match="not a valid record"):
            assert_schema("record", bad)
    policy = {"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Action": ["dynamodb:Scan"], "Resource": "*"}]}
    assert_schema("iam-policy", policy)
    with pytest.raises(AssertionError):
        assert_schema("iam-policy", {**policy, "schema_version": 1})


# ------------------------------------------------------------------ documented formats


def _documented() -> dict[str, str]:
    """README's table: each `command ... -o FMT` (or always-JSON command) -> schema."""
    section = README.split("### Output schemas", 1)[1].split("\n#", 1)[0]
    rows: dict[str, str] = {}
    for line in section.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) < 2 or not cells[1].startswith("[`"):
            continue
        (name,) = re.findall(r"\[`([a-z-]+)`\]", cells[1])
        for shown in re.findall(r"`(?:streamq )?([^`]+)`", cells[0]):
            rows[shown] = name
    return rows


def _cli_json_formats() -> set[tuple[str, str]]:
    """(command, json|jsonl) for every command whose --output offers JSON."""
    import typer

    from streamq.cli.app import app

    found: set[tuple[str, str]] = set()

    def walk(cmd: Any, path: list[str]) -> None:
        for param in getattr(cmd, "params", []):
            if "--output" in getattr(param, "opts", []):
                for fmt in _choices(param):
                    if fmt in ("json", "jsonl"):
                        found.add((" ".join(path), fmt))
        for name, sub in (getattr(cmd, "commands", None) or {}).items():
            walk(sub, [*path, name])

    walk(typer.main.get_command(app), [])
    return found


def _choices(param: Any) -> list[str]:
    """An option's choices (click's Choice type; typer >= 0.2x builds the type lazily
    from the annotation, an Enum)."""
    import enum

    choices = getattr(getattr(param, "type", None), "choices", None)
    if choices is not None:
        return [str(getattr(c, "value", c)) for c in choices]
    annotation = getattr(getattr(param, "type_descriptor", None), "annotation", None)
    if isinstance(annotation, type) and issubclass(annotation, enum.Enum):
        return [str(m.value) for m in annotation]
    return []


def test_every_json_output_has_a_documented_schema() -> None:
    """Each -o json / -o jsonl the CLI offers, and the commands that always print JSON,
    are in README's table with a schema the package ships; every schema is in it. A new
    JSON output without a schema fails here."""
    rows = _documented()
    shown = {(m.group(1), m.group(2)) for text in rows
             if (m := re.match(r"^([a-z][a-z-]*(?: [a-z][a-z-]*)?)(?: [^`]*?)? -o (jsonl?)"
                               r"(?: .*)?$", text))}
    offered = _cli_json_formats()
    assert {("list", "jsonl"), ("refire", "json"), ("redrive", "jsonl"),
            ("sandbox status", "json"), ("watch", "json")} <= offered, offered
    missing = offered - shown
    assert not missing, f"JSON outputs without a schema in README's table: {sorted(missing)}"
    for always in ("iam-policy", "config-trigger --export", "watch",
                   "RefireSummary.to_json()"):
        assert always in rows, always
    assert set(rows.values()) == set(schemas.VERSIONS), set(schemas.VERSIONS) ^ set(
        rows.values())
    for name in set(rows.values()):  # each row links the schema's file
        assert f"(streamq/schemas/{name}.json)" in README, name


# ------------------------------------------------------------------ streamq schema


def test_schema_command_lists_prints_and_refuses(cli: CliRunner) -> None:
    res = ok(cli("schema"))
    assert res.out.split() == schemas.names() and res.err == ""
    for name in schemas.names():
        res = ok(cli("schema", name))
        assert json.loads(res.out) == schemas.load(name)
        assert res.out == (ROOT / "streamq" / "schemas" / f"{name}.json").read_text()
    res = cli("schema", "records")
    assert res.code == 2 and res.out == ""
    assert res.err.startswith("streamq: error: unknown schema 'records': use one of config,")
    assert len(res.err.splitlines()) == 1
    from streamq.cli.schema_cmd import schema_cmd

    help_text = " ".join(str(schema_cmd.__doc__).split())  # --help wraps at hyphens
    for name in schemas.names():
        assert re.search(rf"(?<![\w-]){re.escape(name)}(?![\w-])", help_text), name


# ------------------------------------------------------------------ real outputs


def test_list_show_and_stats(world: Any, cli: CliRunner) -> None:
    lines = ok(cli("list", *T, "--status", "all", "-o", "jsonl")).jsonl()
    assert len(lines) == 23 and {d["status"] for d in lines} == {"failed", "stuck", "pending"}
    assert {d["retry"] for d in lines} == {"due", "waiting", "dead", None}
    for doc in lines:
        assert_schema("record", doc)
    array = ok(cli("list", *T, "-o", "json")).json()
    assert isinstance(array, list) and len(array) == 18
    for doc in array:
        assert_schema("record", doc)
    assert_schema("record", ok(cli("show", *T, "bounced-000", "-o", "json")).json())
    stats = ok(cli("stats", *T, "-o", "json")).json()
    assert_schema("stats", stats)
    assert stats["retry"]["next_due_key"] is not None
    # piped without -o: the same documents
    assert_schema("record", ok(cli("list", *T, "-n", "1")).jsonl()[0])
    assert_schema("stats", ok(cli("stats", *T)).json())


def test_list_jsonl_still_feeds_refire_ids_from(world: Any, cli: CliRunner) -> None:
    """The documented consumer of `list -o jsonl` (refire --ids-from) reads the records,
    schema_version and all."""
    listed = ok(cli("list", *T, "--status", "dead", "-o", "jsonl"))
    plan = ok(cli("refire", *T, "--ids-from", "-", "--dry-run", "-o", "json",
                  input=listed.out)).json()
    assert plan["records"] == 2 and plan["known_missing"] == 0


def test_refire_plan_results_and_summary(world: Any, cli: CliRunner, tmp_path: Path) -> None:
    from streamq import Outbox

    for args in (["--status", "failed"], ["--due"]):
        for fmt in ("json", "jsonl"):
            res = ok(cli("refire", *T, *args, "--dry-run", "-o", fmt))
            plan = res.json()
            assert_schema("refire-plan", plan)
            # JSON lines: the plan is one line (json: indented)
            assert (len(res.out.splitlines()) == 1) == (fmt == "jsonl"), res.out
            assert ("retry_policy" in plan) == (args == ["--due"])
    res = ok(cli("refire", *T, "--id", "throttled-000", "--id", "never-was", "--yes", "-o",
                 "json"), 3)
    results = res.json()
    assert [r["outcome"] for r in results] == ["refired", "missing"]
    for doc in results:
        assert_schema("refire-result", doc)
    res = ok(cli("refire", *T, "--status", "stuck", "--yes", "-o", "jsonl", "--journal",
                 str(tmp_path / "run.jsonl")))
    assert len(res.jsonl()) == 3
    for doc in res.jsonl():
        assert_schema("refire-result", doc)
    outbox = Outbox("mail_outbox")
    summary = outbox.refire(list(outbox.records(status="due", limit=2)), rate=0)
    assert_schema("refire-summary", summary.to_json())
    assert summary.to_json()["schema_version"] == schemas.REFIRE_SUMMARY
    dry = outbox.plan_refire(status="failed", dry_run=True)
    assert_schema("refire-plan", dry.to_json())


def test_config_trigger_documents(world: Any, cli: CliRunner, tmp_path: Path) -> None:
    from streamq import Outbox

    trigger = ok(cli("config-trigger", *T, "-o", "json")).json()
    assert_schema("trigger", trigger)
    assert trigger["LastModified"].endswith("Z")
    assert_schema("trigger", Outbox("mail_outbox").trigger().to_json())
    export = ok(cli("config-trigger", *T, "--export")).json()
    assert_schema("trigger-export", export)
    saved = tmp_path / "saved.json"
    saved.write_text(json.dumps(export))
    check = ok(cli("config-trigger", *T, "--check", str(saved), "-o", "json")).json()
    assert_schema("trigger-check", check)
    assert check["status"] == "in_sync"
    dry = ok(cli("config-trigger", *T, "--batch-size", "7", "--dry-run", "-o", "json")).json()
    assert_schema("trigger-change", dry)
    assert dry["changes"] == [{"field": "BatchSize", "current": 100, "new": 7}]
    done = ok(cli("config-trigger", *T, "--batch-size", "8", "--yes", "-o", "json")).json()
    assert_schema("trigger-change", done)
    assert done["applied"] and done["config"]["BatchSize"] == 8
    drift = ok(cli("config-trigger", *T, "--check", str(saved), "-o", "json"), 3).json()
    assert_schema("trigger-check", drift)
    assert drift["status"] == "drift" and drift["differences"][0]["field"] == "BatchSize"
    assert_schema("trigger-check", Outbox("mail_outbox").check_trigger(str(saved)).to_json())


def test_doctor_tail_watch_config_and_iam_policy(world: Any, cli: CliRunner) -> None:
    doctor = ok(cli("doctor", *T, "-o", "json", "--timeout", "20s"), 0, 3).json()
    assert_schema("doctor", doctor)
    assert len(doctor["checks"]) > 10
    lines = ok(cli("tail", *T, "--from", "trim-horizon", "--limit", "3", "--duration",
                   "20s")).jsonl()
    assert len(lines) == 3
    for doc in lines:
        assert_schema("tail-record", doc)
    (snap,) = ok(cli("watch", *T, "--count", "1")).jsonl()
    assert_schema("watch-snapshot", snap)
    assert snap["counts"] == {"failed": 15, "stuck": 3, "pending": 5}
    assert_schema("config", ok(cli("config", "show", *T, "-o", "json")).json())
    assert_schema("iam-policy", ok(cli("iam-policy", *T)).json())
    assert_schema("iam-policy", ok(cli("iam-policy", *T, "--read-only")).json())


def test_a_modified_record_in_tail(world: Any, cli: CliRunner) -> None:
    ok(cli("refire", *T, "--id", "stuck-000", "--yes"))
    lines = ok(cli("tail", *T, "--from", "trim-horizon", "--event", "MODIFY", "--limit", "1",
                   "--duration", "20s")).jsonl()
    (doc,) = lines
    assert_schema("tail-record", doc)
    assert doc["event"] == "MODIFY" and doc["changes"]["refired_at"]["kind"] == "added"


def test_sandbox_status_when_not_running(world: Any, cli: CliRunner) -> None:
    res = ok(cli("sandbox", "status", "-o", "json"), 4)
    assert_schema("sandbox-status", res.json())
    assert res.json()["running"] is False
