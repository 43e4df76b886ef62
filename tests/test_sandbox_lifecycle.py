"""``sandbox up`` with a user's handler, ``down`` leaving nothing behind, and the
state-file edge cases (stale, foreign pid, no fallback to AWS or from it)."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

import pytest

from streamq.sandbox.state import SandboxState, write_state
from tests.helpers import CliRunner

USER_HANDLER = '''
import json, os

def handler(event, context):
    with open(os.environ["EVENTS_FILE"], "a") as fh:
        fh.write(json.dumps({"event": event, "fn": context.function_name,
                             "endpoint": os.environ.get("AWS_ENDPOINT_URL")}) + "\\n")
    return {"batchItemFailures": []}
'''


def _gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    stat = Path(f"/proc/{pid}/stat")
    return stat.exists() and stat.read_text().rsplit(")", 1)[-1].split()[0] == "Z"


@pytest.mark.slow
def test_user_handler_gets_lambda_events_and_down_leaves_no_process(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, cli: CliRunner) -> None:
    from aws_lambda_powertools.utilities.data_classes import DynamoDBStreamEvent

    (tmp_path / "my_handler.py").write_text(USER_HANDLER)
    events_file = tmp_path / "events.jsonl"
    monkeypatch.setenv("EVENTS_FILE", str(events_file))
    monkeypatch.setenv("STREAMQ_SANDBOX_DIR", str(tmp_path / "sbx"))
    res = cli("sandbox", "up", "--handler", "my_handler:handler", "-o", "json")
    assert res.code == 0, res.err
    up = res.json()
    pid = up["pid"]
    try:
        assert up["endpoint"].startswith("http://127.0.0.1:")
        # Issue 8 item 13: seed and down act without asking, on a pipe too.
        assert cli("sandbox", "seed", "--count", "3").out.strip() == "3"
        deadline = time.monotonic() + 20
        while not events_file.exists():
            assert time.monotonic() < deadline, cli("sandbox", "logs").out
            time.sleep(0.2)
        (line,) = events_file.read_text().splitlines()
        got = json.loads(line)
        assert got["fn"] == "mail-sender" and got["endpoint"] == up["endpoint"]
        event = DynamoDBStreamEvent(got["event"])
        records = list(event.records)
        assert len(records) == 3
        for rec in records:
            assert rec.event_name is not None and rec.event_name.name == "INSERT"
            assert rec.event_source == "aws:dynamodb" and rec.event_version == "1.1"
            assert rec.dynamodb is not None and rec.dynamodb.new_image is not None
            assert rec.dynamodb.new_image["attempts"] == 0
            assert rec.dynamodb.keys == {"id": rec.dynamodb.new_image["id"]}
        # the user's handler does not delete: the records stay, listed as pending
        res = cli("--sandbox", "list", "--status", "pending", "--count")
        assert res.code == 0 and res.out.strip() == "3"
    finally:
        res = cli("sandbox", "down")
    assert res.code == 0, res.err
    assert "stopped" in res.err
    assert _gone(pid)
    assert not (tmp_path / "sbx" / "state.json").exists()
    # never a silent fallback: --sandbox now fails, loudly
    res = cli("--sandbox", "list")
    assert res.code == 1 and "not running" in res.err
    res = cli("sandbox", "status", "-o", "json")
    assert res.code == 4 and res.json()["running"] is False
    assert cli("sandbox", "down", "--yes").code == 0  # nothing to stop: fine


def test_a_handler_that_cannot_be_imported_fails_up_and_leaves_nothing(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, cli: CliRunner) -> None:
    monkeypatch.setenv("STREAMQ_SANDBOX_DIR", str(tmp_path / "sbx"))
    (tmp_path / "broken_handler.py").write_text("import no_such_module_here\n")
    res = cli("sandbox", "up", "--handler", "broken_handler.py:handler")
    assert res.code == 1
    assert "did not start" in res.err and "no_such_module_here" in res.err
    assert not (tmp_path / "sbx" / "state.json").exists()
    assert cli("sandbox", "status").code == 4


def test_stale_state_is_not_running_and_down_clears_it(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, cli: CliRunner) -> None:
    monkeypatch.setenv("STREAMQ_SANDBOX_DIR", str(tmp_path / "sbx"))
    dead = _dead_pid()
    write_state(SandboxState(pid=dead, endpoint="http://127.0.0.1:9"))
    res = cli("--sandbox", "list")
    assert res.code == 1 and "not running" in res.err
    res = cli("sandbox", "down", "--yes")
    assert res.code == 0 and "gone" in res.err
    assert not (tmp_path / "sbx" / "state.json").exists()


def test_a_recycled_pid_is_not_a_running_sandbox(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, cli: CliRunner) -> None:
    monkeypatch.setenv("STREAMQ_SANDBOX_DIR", str(tmp_path / "sbx"))
    write_state(SandboxState(pid=os.getpid(), endpoint="http://127.0.0.1:9"))
    res = cli("--sandbox", "list")  # pytest's pid is alive but is no sandbox
    assert res.code == 1 and "not running" in res.err


def test_down_never_signals_a_pid_that_is_not_a_sandbox(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, cli: CliRunner) -> None:
    monkeypatch.setenv("STREAMQ_SANDBOX_DIR", str(tmp_path / "sbx"))
    write_state(SandboxState(pid=os.getpid(), endpoint="http://127.0.0.1:9"))
    res = cli("sandbox", "down", "--yes")  # would kill pytest itself if it signalled
    assert res.code == 0 and "not a streamq sandbox" in res.err
    assert not (tmp_path / "sbx" / "state.json").exists()
    res = cli("sandbox", "status", "-o", "json")
    assert res.code == 4


def test_sandbox_conflicts_with_an_explicit_endpoint(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, cli: CliRunner) -> None:
    monkeypatch.setenv("STREAMQ_SANDBOX_DIR", str(tmp_path / "sbx"))
    res = cli("--sandbox", "--endpoint-url", "http://127.0.0.1:1", "list")
    assert res.code == 2 and "conflicts" in res.err


def test_seed_items_are_realistic() -> None:
    from streamq.sandbox.control import seed_items

    items = seed_items(20, undeliverable_every=10, poison=1, now=1_700_000_000)
    assert len(items) == 21 and len({it["id"]["S"] for it in items}) == 21
    assert "recipient" not in items[10]  # the poison record sits mid-batch
    rcpt = [it["recipient"]["S"] for it in items if "recipient" in it]
    assert sum(r.endswith("@invalid.example") for r in rcpt) == 2
    assert all(it["attempts"] == {"N": "0"} and it["created_at"]["S"].startswith("2023-11-14")
               for it in items)


def _dead_pid() -> int:
    import subprocess
    import sys

    proc: Any = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return int(proc.pid)


def test_follow_yields_appended_lines(tmp_path: Path) -> None:
    import threading

    from streamq.sandbox.control import follow, tail

    log = tmp_path / "sandbox.log"
    log.write_text("old 1\nold 2\n")
    assert tail(log, 1) == ["old 2"]

    def append() -> None:
        time.sleep(0.3)
        with log.open("a") as fh:
            fh.write("new 1\nnew 2\n")

    threading.Thread(target=append, daemon=True).start()
    lines = follow(log, poll=0.05)
    assert [next(lines), next(lines)] == ["new 1", "new 2"]


def test_logs_before_any_sandbox_is_not_found(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, cli: CliRunner) -> None:
    monkeypatch.setenv("STREAMQ_SANDBOX_DIR", str(tmp_path / "never"))
    res = cli("sandbox", "logs")
    assert res.code == 4 and "no sandbox log" in res.err
    res = cli("sandbox", "seed", "--count", "1", "--yes")
    assert res.code == 1 and "not running" in res.err


def test_up_without_moto_says_how_to_install_it(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, cli: CliRunner) -> None:
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name == "moto" else real(name, *a))
    monkeypatch.setenv("STREAMQ_SANDBOX_DIR", str(tmp_path / "sbx"))
    res = cli("sandbox", "up")
    assert res.code == 1 and "pip install 'streamq[sandbox]'" in res.err
    assert not (tmp_path / "sbx" / "state.json").exists()
