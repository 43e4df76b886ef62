"""Piped output is predictable (issue 8 item 11) and printed the same way everywhere
(item 14: booleans, ISO-8601 times, the sandbox's handed vs delivered counts)."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from tests.helpers import CliRunner, create_table, create_trigger

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text()

#: command -> (args, what it prints when stdout is not a terminal and no -o is given)
PIPED = {
    "list": (["list", "-t", "outbox"], "jsonl"),
    "show": (["show", "-t", "outbox", "msg-1"], "json"),
    "stats": (["stats", "-t", "outbox"], "json"),
    "config-trigger": (["config-trigger", "-t", "outbox"], "json"),
    "doctor": (["doctor", "-t", "outbox", "--timeout", "5s"], "json"),
    "tail": (["tail", "-t", "outbox", "--from", "trim-horizon", "--limit", "1",
              "--duration", "20s"], "jsonl"),
    "watch": (["watch", "-t", "outbox", "--count", "1"], "json"),  # a line per refresh
    "config show": (["config", "show"], "json"),
    "sandbox status": (["sandbox", "status"], "json"),
}


@pytest.fixture()
def world(ddb: Any, endpoint: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    create_table(ddb, "outbox")
    ddb.put_item(TableName="outbox", Item={"id": {"S": "msg-1"}, "last_error": {"S": "x"},
                                           "created_at": {"S": "2026-01-01T00:00:00Z"}})
    create_trigger(endpoint, "outbox", MaximumRetryAttempts=2)
    monkeypatch.setenv("STREAMQ_SANDBOX_DIR", str(tmp_path / "no-sandbox"))


@pytest.mark.parametrize("name", sorted(PIPED))
def test_piped_commands_print_json_and_table_on_request(cli: CliRunner, world: None,
                                                        name: str) -> None:
    args, kind = PIPED[name]
    res = cli(*args)
    # sandbox status: 4 = not running; doctor: 3 = a check failed; the document either way
    assert res.code in (0, 3, 4), res.err
    if kind == "jsonl":
        assert len([json.loads(line) for line in res.out.splitlines()]) == 1
    else:
        assert isinstance(json.loads(res.out), dict)
    table = cli(*args, "-o", "table")
    assert table.out.strip() and not table.out.lstrip().startswith(("{", "["))


def test_readme_and_help_name_the_commands_that_switch_to_json(cli: CliRunner) -> None:
    section = README.split("## Output contracts", 1)[1].split("\n## ", 1)[0]
    bullet = " ".join(section.split("- When stdout is not a terminal", 1)[1]
                      .split("\n- ", 1)[0].split())
    named = set(re.findall(r"`([a-z][a-z -]*[a-z])`", bullet.split(" print JSON")[0]))
    assert named == set(PIPED) == _commands_whose_output_help_says_when_piped(), bullet
    root_help = " ".join(cli("--help").out.split())
    piped_sentence = root_help.split("Piped (stdout not a terminal)")[1].split(".")[0]
    for name in PIPED:
        assert name in piped_sentence, root_help
    for name, (args, kind) in PIPED.items():
        help_text = " ".join(cli(*args[:2 if " " in name else 1], "--help").out.split())
        assert "when piped" in help_text and kind in help_text, name


def _commands_whose_output_help_says_when_piped() -> set[str]:
    import typer

    from streamq.cli.app import app

    found: set[str] = set()

    def walk(cmd: Any, path: list[str]) -> None:
        for param in getattr(cmd, "params", []):
            if "--output" in getattr(param, "opts", []) and "when piped" in (param.help or ""):
                found.add(" ".join(path))
        for name, sub in (getattr(cmd, "commands", None) or {}).items():
            walk(sub, [*path, name])

    walk(typer.main.get_command(app), [])
    return found


# ------------------------------------------------------------------ item 14: consistency


def test_times_are_iso_8601_and_booleans_lower_case(cli: CliRunner, world: None) -> None:
    doc = cli("config-trigger", "-t", "outbox", "-o", "json").json()
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z", doc["LastModified"]), doc
    table = cli("config-trigger", "-t", "outbox", "-o", "table").out
    assert "LastModified" in table and re.search(r"\d\d\d\d-\d\d-\d\dT\d\d:\d\d:\d\dZ", table)
    assert "True" not in table and "False" not in table and "true" in table


def test_sandbox_status_names_handed_and_delivered_with_iso_times() -> None:
    import io

    from streamq.render.sandbox import show_status

    doc = {"running": True, "endpoint": "http://127.0.0.1:1", "pid": 1, "uptime_seconds": 5,
           "table": "t", "history_table": "h", "function": "f", "handler": "x:y",
           "queue_url": "http://127.0.0.1:1/q", "region": "us-east-1", "state_dir": "/s",
           "log": "/s/log", "api": {"delivered": 7, "refused_sends": 3},
           "poller": {"state": "polling", "invocations": 2, "function_errors": 0,
                      "records_handled": 10, "records_filtered": 1, "records_discarded": 0,
                      "retries": 0, "bisects": 0, "dlq_messages": 0, "checkpoint": "9",
                      "last_invocation_at": "2026-11-27T00:00:00Z",
                      "settings": {"BatchSize": 1, "MaximumBatchingWindowInSeconds": 0,
                                   "MaximumRetryAttempts": 2, "MaximumRecordAgeInSeconds": 60,
                                   "BisectBatchOnFunctionError": True}}}
    out = io.StringIO()
    show_status(doc, out)
    text = out.getvalue()
    assert "10 handed to the handler" in text and "7 delivered" in text
    assert "bisect true" in text and "True" not in text
    flat = " ".join(text.split())
    assert "window 0s" in flat and "max age 1m" in flat  # durations, not bare seconds
    doc["poller"]["settings"]["MaximumRecordAgeInSeconds"] = -1
    out = io.StringIO()
    show_status(doc, out)
    assert "max age infinite" in " ".join(out.getvalue().split())


def test_config_show_prints_durations_as_the_flags_take_them(cli: CliRunner) -> None:
    table = cli("config", "show", "-o", "table").out
    assert re.search(r"stuck_after +5m +default", table), table
    table = cli("config", "show", "-o", "table", "--stuck-after", "90s").out
    assert re.search(r"stuck_after +90s +flag", table), table
    assert cli("config", "show", "-o", "json").json()["settings"]["stuck_after"]["value"] == 300


def test_a_piped_view_is_80_columns_even_from_a_wide_terminal(tmp_path: Path) -> None:
    """``-o table`` into a file, from a 160-column terminal (stdin and stderr on it) with
    COLUMNS unset: laid out for 80 columns, as the README says (rich alone took the
    terminal's width from stdin/stderr); COLUMNS still chooses."""
    import fcntl
    import os
    import pty
    import struct
    import subprocess
    import sys
    import termios

    def widths(columns: str | None) -> int:
        master, slave = pty.openpty()
        fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 50, 160, 0, 0))
        env = {k: v for k, v in os.environ.items() if k not in ("COLUMNS", "LINES")}
        env.update(STREAMQ_TABLE="t" * 120, STREAMQ_SANDBOX_DIR=str(tmp_path / "none"))
        if columns is not None:
            env["COLUMNS"] = columns
        out = tmp_path / "view.txt"
        try:
            with out.open("w") as fh:
                proc = subprocess.run([sys.executable, "-m", "streamq.cli", "config", "show",
                                       "-o", "table"], stdin=slave, stdout=fh, stderr=slave,
                                      env=env, cwd=tmp_path, timeout=60)
        finally:
            os.close(slave)
            os.close(master)
        assert proc.returncode == 0
        lines = out.read_text().splitlines()
        assert any("ttttt" in line for line in lines)
        return max(len(line) for line in lines)

    assert widths(None) <= 80
    assert 80 < widths("160") <= 160


def test_no_progress_line_while_ids_stream_through_a_pipe(ddb: Any, endpoint: str,
                                                           tmp_path: Path) -> None:
    """``list -o ids | head`` at a terminal: the spinner on stderr would share the
    terminal with what the pipe's reader prints, so it is not shown; into a file it is."""
    import os
    import pty
    import subprocess
    import sys

    create_table(ddb, "outbox")
    ddb.put_item(TableName="outbox", Item={"id": {"S": "msg-1"}, "last_error": {"S": "x"}})

    def terminal_shows(stdout: Any) -> str:
        master, slave = pty.openpty()
        env = {**os.environ, "STREAMQ_SANDBOX_DIR": str(tmp_path / "none")}
        env.pop("NO_COLOR", None)
        try:
            proc = subprocess.run(
                [sys.executable, "-m", "streamq.cli", "list", "-t", "outbox", "-o", "ids",
                 "--endpoint-url", endpoint], stdin=slave, stdout=stdout, stderr=slave,
                env=env, timeout=60)
            assert proc.returncode == 0
            os.close(slave)
            seen = b""
            while True:
                try:
                    chunk = os.read(master, 65536)
                except OSError:  # the pty is closed and drained
                    break
                if not chunk:
                    break
                seen += chunk
        finally:
            os.close(master)
        return seen.decode(errors="replace")

    assert "scanning" not in terminal_shows(subprocess.PIPE)
    with (tmp_path / "ids.txt").open("w") as fh:
        assert "scanning" in terminal_shows(fh)
