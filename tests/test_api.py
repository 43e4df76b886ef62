"""The Python API (streamq.api, exported by streamq) against the local endpoint: what it
returns is what the CLI prints, it raises the CLI's errors, it uses a caller's boto3
session, and it never prints, prompts, exits or imports rich."""

from __future__ import annotations

import json
import logging
import subprocess
import sys
import textwrap
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest

from streamq import (
    AwsError,
    BadInput,
    ExitCode,
    NotFound,
    Outbox,
    PartialFailure,
    Record,
    Refused,
    StreamqError,
)
from tests.helpers import CliRunner, batch_put, create_table, outbox_items, sandbox_world

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture()
def world(endpoint: str) -> Any:
    return sandbox_world(endpoint)


def _sans_age(doc: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in doc.items() if k not in ("age_seconds", "next_due_at")}


def test_records_are_what_list_prints(world: Any, cli: CliRunner) -> None:
    outbox = Outbox("mail_outbox")
    for status, where in ((None, None), ("all", None), ("failed", "last_error~429"),
                          ("due", None), ("dead", None), ("stuck,pending", "tenant=acme")):
        args = ["list", "--table", "mail_outbox", "-o", "json"]
        if status:
            args += ["--status", status]
        if where:
            args += ["--where", where]
        res = cli(*args)
        assert res.code == 0, res.err
        got = [r.to_json() for r in outbox.records(status=status, where=where)]
        assert sorted(map(json.dumps, map(_sans_age, got))) == sorted(
            map(json.dumps, map(_sans_age, res.json()))), (status, where)
        assert got  # each selection holds something in this world
        assert outbox.count(status=status, where=where) == len(got)


def test_record_fields_are_plain_python(world: Any) -> None:
    outbox = Outbox("mail_outbox")
    rec = outbox.show("throttled-000")
    assert isinstance(rec, Record)
    assert rec.key == {"id": "throttled-000"} and rec.key_text == "throttled-000"
    assert rec.status == "failed" and rec.retry == "due" and rec.attempts == 1
    assert rec.error == "429 Too Many Requests" and rec.refire_count is None
    assert isinstance(rec.created_at, datetime) and rec.created_at.tzinfo == timezone.utc
    assert rec.age_seconds is not None and 7100 < rec.age_seconds < 7400
    assert rec.last_attempt_from == "last_attempt_at"
    assert rec.next_due_at is not None and rec.next_due_at < datetime.now(timezone.utc)
    assert rec.item["recipient"] == "throttled0@example.com"
    assert rec.item["attempts"] == 1  # a number, not {"N": "1"}
    assert outbox.show({"id": "throttled-000"}) == rec
    assert repr(rec) == "Record('throttled-000', status='failed')"


def test_selection_arguments(world: Any) -> None:
    outbox = Outbox("mail_outbox")
    assert outbox.count(status=["failed"], older_than=timedelta(minutes=30)) == 11
    assert outbox.count(status="failed", older_than="30m") == 11
    assert outbox.count(status="failed", older_than=1800) == 11
    assert outbox.count(status="all", where=["attempts>=2", "last_error~550"]) == 4
    oldest = list(outbox.records(status="all", sort="-age", limit=2))
    assert [r.key_text for r in oldest] == ["dead-000", "dead-001"] or {
        r.key_text for r in oldest} == {"dead-000", "dead-001"}
    youngest = next(outbox.records(status="all", sort="age"))
    assert youngest.status == "pending"
    with outbox.records(status="all", keys_only=True) as recs:
        item = next(recs).item
    assert set(item) <= {"id", "created_at", "last_error"}
    assert recs.access_path == "Scan on table, segments 0/2: full table scan" or \
        recs.access_path.startswith("Scan on table")
    assert outbox.count(status="all", segment="0/2") + outbox.count(
        status="all", segment=(1, 2)) == 23


@pytest.mark.parametrize("call", [
    lambda o: o.records(status="lost"),
    lambda o: o.records(older_than="soon"),
    lambda o: o.records(older_than=-1),
    lambda o: o.records(where="attempts>>3"),
    lambda o: o.records(limit=0),
    lambda o: o.records(sort="size"),  # type: ignore[arg-type]
    lambda o: o.records(segments=3, segment="0/2"),
    lambda o: o.show({"nope": 1}),
    lambda o: o.refire(rate=-1, status="failed"),
    lambda o: o.refire(["x"], status="failed"),
    lambda o: o.refire(),
    lambda o: o.change_trigger(batch_size=0),
    lambda o: o.change_trigger(),
])
def test_bad_arguments_are_bad_input(world: Any, call: Any) -> None:
    with pytest.raises(BadInput) as info:
        res = call(Outbox("mail_outbox"))
        if hasattr(res, "__next__"):
            next(res)
    assert info.value.exit_code == ExitCode.USAGE == 2


def test_errors_carry_the_cli_exit_codes(world: Any) -> None:
    with pytest.raises(NotFound) as nf:
        Outbox("no_such_table").stats()
    assert nf.value.exit_code == 4 and "no_such_table" in str(nf.value)
    with pytest.raises(NotFound):
        Outbox("mail_outbox").show("no-such-id")
    with pytest.raises(BadInput):
        Outbox("")
    with pytest.raises(BadInput, match="session or a profile"):
        import boto3

        Outbox("mail_outbox", session=boto3.Session(), profile="ops")
    with pytest.raises(AwsError) as aws:
        Outbox("mail_outbox", endpoint_url="http://127.0.0.1:9").count()
    assert aws.value.exit_code == 1
    assert all(issubclass(e, StreamqError) for e in (AwsError, BadInput, NotFound, Refused))


def test_stats_are_what_stats_prints(world: Any, cli: CliRunner) -> None:
    stats = Outbox("mail_outbox").stats()
    res = cli("stats", "--table", "mail_outbox", "-o", "json")
    doc = res.json()
    mine = stats.to_json()
    for k in ("oldest_age_seconds",):
        assert abs(mine.pop(k) - doc.pop(k)) < 5
    mine["retry"].pop("next_due_in_seconds")
    doc["retry"].pop("next_due_in_seconds")
    assert doc == mine  # schema_version included: one constant (streamq.schemas.STATS)
    assert (stats.total, stats.counts, stats.due, stats.waiting, stats.dead) == (
        23, {"failed": 15, "stuck": 3, "pending": 5}, 9, 4, 2)
    assert stats.oldest_key == {"id": "dead-000"} or stats.oldest_key == {"id": "dead-001"}
    assert isinstance(stats.next_due_at, datetime)


def test_refire_records_keys_and_filters(world: Any, ddb: Any) -> None:
    outbox = Outbox("mail_outbox")
    throttled = list(outbox.records(status="failed", where="last_error~429"))
    seen: list[Any] = []
    summary = outbox.refire(throttled, rate=0, on_result=seen.append)
    assert (summary.refired, summary.ok, summary.total) == (6, True, 6)
    assert sorted(r.key_text for r in seen) == [f"throttled-00{i}" for i in range(6)]
    assert {r.outcome for r in seen} == {"refired"}
    item = ddb.get_item(TableName="mail_outbox", Key={"id": {"S": "throttled-000"}})["Item"]
    assert item["refire_count"] == {"N": "1"} and item["refire_run"]["S"] == summary.run
    summary.raise_for_outcome()  # nothing to raise

    # Keys: one present, one missing (never created), as text and as a mapping.
    summary = outbox.refire(["bounced-000", {"id": "gone"}], rate=0)
    assert (summary.refired, summary.missing, summary.ok) == (1, 1, False)
    with pytest.raises(PartialFailure) as partial:
        summary.raise_for_outcome()
    assert partial.value.exit_code == 3 and "missing 1" in str(partial.value)
    assert "Item" not in ddb.get_item(TableName="mail_outbox", Key={"id": {"S": "gone"}})

    # Records keep the status they were selected with: a record delivered meanwhile is
    # missing, one whose error was cleared is skipped.
    stuck = list(outbox.records(status="stuck"))
    ddb.delete_item(TableName="mail_outbox", Key={"id": {"S": "stuck-000"}})
    ddb.update_item(TableName="mail_outbox", Key={"id": {"S": "stuck-001"}},
                    UpdateExpression="SET last_error = :e",
                    ExpressionAttributeValues={":e": {"S": "now failed"}})
    summary = outbox.refire(stuck, rate=0)
    assert (summary.refired, summary.missing, summary.skipped) == (1, 1, 1)

    # Filters, and due: the failed records whose backoff has passed.
    summary = outbox.refire(due=True, rate=0)
    # The 3 timeouts, and stuck-001 (failed now, its backoff counting from its created
    # time, 10 minutes ago); the 429s were just refired, so they wait.
    assert summary.refired == 4
    assert outbox.refire(due=True, rate=0).total == 0


def test_refire_dry_run_and_plan(world: Any, ddb: Any) -> None:
    outbox = Outbox("mail_outbox")
    summary = outbox.refire(status="failed", dry_run=True)
    assert summary.dry_run and summary.total == 0 and summary.ok
    plan = outbox.plan_refire(status="failed", where="last_error~550", rate=0)
    doc = plan.to_json()
    assert (plan.records, doc["records"], plan.only_if) == (4, 4, "selected")
    assert doc["filter"].startswith("passes") and plan.refusal() is None
    assert ddb.get_item(TableName="mail_outbox", Key={"id": {"S": "bounced-000"}})[
        "Item"].get("refire_count") is None  # planning writes nothing
    summary = plan.run()
    assert summary.refired == 4 and summary.run == plan.run_token


def test_refire_journal_and_resume(world: Any, tmp_path: Path) -> None:
    outbox = Outbox("mail_outbox")
    journal = tmp_path / "run.jsonl"
    first = outbox.refire(status="failed", where="last_error~550", rate=0, journal=journal)
    assert first.refired == 4 and first.journal == journal and journal.is_file()
    again = outbox.refire(resume=journal, rate=0)
    assert again.total == 0 and again.run == first.run
    with pytest.raises(BadInput, match="exists"):
        outbox.refire(status="failed", rate=0, journal=journal)


def test_refire_refused_by_the_preflight_unless_forced(endpoint: str, ddb: Any) -> None:
    create_table(ddb, "plain")  # a stream, no trigger
    items, _ = outbox_items(10)
    batch_put(ddb, "plain", items)
    outbox = Outbox("plain")
    with pytest.raises(Refused) as refused:
        outbox.refire(status="failed", rate=0)
    assert refused.value.exit_code == 5 and "no trigger" in str(refused.value)
    with pytest.raises(Refused):
        outbox.refire(status="failed", rate=0, dry_run=True)
    forced = outbox.refire(status="failed", rate=0, force=True)
    assert forced.refired == 1 and any("no trigger" in w for w in forced.warnings)


def test_stop_ends_a_refire_early(world: Any) -> None:
    import threading

    outbox = Outbox("mail_outbox")
    stop = threading.Event()
    outcomes: list[Any] = []

    def one(res: Any) -> None:
        outcomes.append(res)
        stop.set()

    summary = outbox.refire(status="all", rate=5, concurrency=1, stop=stop, on_result=one)
    assert summary.refired >= 1 and summary.not_reached >= 15 and summary.interrupted
    err = summary.error()
    assert err is not None and err.exit_code == 130


def test_trigger_read_and_change(world: Any, cli: CliRunner, tmp_path: Path) -> None:
    outbox = Outbox("mail_outbox")
    trig = outbox.trigger()
    assert (trig.batch_size, trig.retry_attempts, trig.max_record_age, trig.bisect) == (
        100, 2, 3600, True)
    assert trig.function_arn.endswith(":function:mail-sender") and trig.enabled
    assert trig.on_failure is not None and trig.on_failure.endswith(":mail-sender-failures")
    assert trig.filter_patterns is not None and len(trig.filter_patterns) == 2
    assert trig.report_batch_item_failures and trig.metrics
    res = cli("config-trigger", "--table", "mail_outbox", "-o", "json")
    assert res.code == 0, res.err
    assert trig.to_json() == res.json()
    assert trig.export()["BatchSize"] == 100

    preview = outbox.change_trigger(batch_size=10, max_record_age=timedelta(hours=2),
                                    dry_run=True)
    assert not preview.applied and [c.field for c in preview.changes] == [
        "BatchSize", "MaximumRecordAgeInSeconds"]
    assert outbox.trigger().batch_size == 100  # a dry run changes nothing
    res = cli("config-trigger", "--table", "mail_outbox", "--batch-size", "10",
              "--max-record-age", "2h", "--dry-run", "-o", "json")
    assert preview.to_json() == res.json()

    done = outbox.change_trigger(batch_size=10, backup_dir=tmp_path / "backups")
    assert done.applied and done.config is not None and done.config["BatchSize"] == 10
    assert done.backup is not None and json.loads(done.backup.read_text())["BatchSize"] == 100
    assert outbox.trigger().batch_size == 10
    same = outbox.change_trigger(batch_size=10)
    assert same.changes == [] and not same.applied

    with pytest.raises(Refused) as refused:
        outbox.change_trigger(filter_events=["insert"])
    assert "filter-drops-refire" in str(refused.value)
    assert outbox.trigger().filter_patterns == trig.filter_patterns

    restored = outbox.change_trigger(from_file=done.backup)
    assert [c.field for c in restored.changes] == ["BatchSize"]
    assert outbox.trigger().batch_size == 100


def test_doctor(world: Any, cli: CliRunner) -> None:
    report = Outbox("mail_outbox").doctor(since="1h")
    names = [c.name for c in report.checks]
    assert names[:4] == ["table", "stream", "stream.view", "trigger"]
    assert report.status in ("ok", "warn")
    res = cli("doctor", "--table", "mail_outbox", "-o", "json")
    doc = res.json()
    assert [c["name"] for c in doc["checks"]] == names
    assert {c["name"]: c["status"] for c in doc["checks"]} == {
        c.name: c.status for c in report.checks}
    with pytest.raises(BadInput):
        Outbox("mail_outbox").doctor(since="10s")


def test_a_callers_session_is_used(endpoint: str) -> None:
    """Every client comes from the session given: a table that exists only in the
    session's region is found, and the session's own event hooks see every call."""
    import boto3

    eu = boto3.client("dynamodb", region_name="eu-west-1", endpoint_url=endpoint)
    create_table(eu, "eu_outbox")
    items, _ = outbox_items(8)
    batch_put(eu, "eu_outbox", items)
    session = boto3.Session(region_name="eu-west-1", aws_access_key_id="AKIDCALLER",
                            aws_secret_access_key="caller-secret")
    seen: list[str] = []

    def count(request: Any, **kwargs: Any) -> None:
        seen.append(str(kwargs.get("event_name")))
        assert "AKIDCALLER" in str(request.headers.get("Authorization"))

    session.events.register("before-send", count)
    outbox = Outbox("eu_outbox", session=session)
    assert outbox.count(status="all") == 8
    assert any("Scan" in e for e in seen) and any("DescribeTable" in e for e in seen)
    # Without the session (the default region, us-east-1) the table is not there.
    with pytest.raises(NotFound):
        Outbox("eu_outbox").count()
    # region= with a session: streamq's clients go there; the session is not changed.
    with pytest.raises(NotFound):
        Outbox("eu_outbox", session=session, region="us-east-1").count()
    assert session.region_name == "eu-west-1"
    # The refire writes use it too (the writer shares the session).
    before = len(seen)
    summary = Outbox("eu_outbox", session=session).refire(status="failed", rate=0,
                                                          force=True)
    assert summary.refired == 1
    assert sum("UpdateItem" in e for e in seen[before:]) == 1


def test_debug_goes_to_the_streamq_logger(world: Any, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.DEBUG, logger="streamq"):
        Outbox("mail_outbox").count(status="failed")
    messages = [r.getMessage() for r in caplog.records if r.name == "streamq"]
    assert any(m.startswith("access path: Scan on table") for m in messages)
    assert any(m.startswith("retry policy: backoff base=1m") for m in messages)


LIBRARY_ONLY = textwrap.dedent("""
    import builtins, sys
    from streamq import Outbox, NotFound

    asked = []
    builtins.input = lambda *a: asked.append(a) or "y"
    outbox = Outbox("mail_outbox")
    recs = list(outbox.records(status="all"))
    outbox.stats(); outbox.show(recs[0].key_text); outbox.trigger()
    summary = outbox.refire(recs[:3], rate=0)
    outbox.change_trigger(batch_size=50)
    try:
        outbox.show("nope")
    except NotFound:
        pass
    outbox.doctor()
    heavy = sorted(m for m in sys.modules
                   if m.split(".")[0] in ("rich", "typer", "click")
                   or m.startswith(("streamq.cli", "streamq.render")))
    print("LOADED=" + ",".join(heavy))
    print("ASKED=" + str(len(asked)))
    print("REFIRED=" + str(summary.refired))
""")


def test_the_library_never_prints_prompts_exits_or_loads_rich(world: Any, endpoint: str,
                                                              tmp_path: Path) -> None:
    res = subprocess.run([sys.executable, "-c", LIBRARY_ONLY], capture_output=True,
                         text=True, timeout=120, cwd=tmp_path,
                         env={**__import__("os").environ, "AWS_ENDPOINT_URL": endpoint})
    assert res.returncode == 0, res.stderr
    lines = res.stdout.splitlines()
    assert lines == ["LOADED=", "ASKED=0", "REFIRED=3"], res.stdout
    assert res.stderr == ""


def test_the_package_is_typed() -> None:
    from importlib.resources import files

    assert files("streamq").joinpath("py.typed").is_file()
    pyproject = (ROOT / "pyproject.toml").read_text()
    assert '"py.typed"' in pyproject.split("[tool.setuptools.package-data]", 1)[1]


def test_exit_codes_print_as_numbers() -> None:
    """str(ExitCode) is the number on every Python (3.10 printed "ExitCode.REFUSED")."""
    assert str(ExitCode.REFUSED) == "5" and f"{ExitCode.USAGE}" == "2"
    assert str(Refused("x").exit_code) == "5"


def test_check_trigger_against_a_saved_configuration(world: Any, tmp_path: Path) -> None:
    outbox = Outbox("mail_outbox")
    saved = outbox.trigger().export()
    assert outbox.check_trigger(saved).status == "in_sync"
    path = tmp_path / "trigger.json"
    path.write_text(json.dumps({**saved, "BatchSize": 10}))
    report = outbox.check_trigger(path)
    assert report.status == "drift"
    assert [(c.field, c.saved, c.live) for c in report.differences] == [
        ("BatchSize", 10, 100)]
    assert report.to_json()["differences"][0]["field"] == "BatchSize"
    with pytest.raises(BadInput):
        outbox.check_trigger({"BatchSize": "ten"})


def test_the_cli_commands_are_built_on_the_api() -> None:
    """list, show, stats, refire, config-trigger and doctor call streamq.api, not the
    engines' client plumbing: none of them makes its own Aws."""
    from tests.test_layers import import_graph

    graph = import_graph()
    for module in ("queue_cmds", "refire_cmd", "trigger_cmd", "doctor_cmd"):
        deps = graph[f"streamq.cli.{module}"]
        assert "streamq.api" in deps, module
        assert "streamq.aws" not in deps, f"{module} builds its own clients"
