"""What an on-call engineer meets first (issue 8): one error style for usage errors,
Ctrl-C is 130 everywhere (a real terminal, through a pty), help without internal type
names and at the terminal's width, one way to install completions."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from tests.helpers import CliRunner, create_table, create_trigger, pty_run

ROOT = Path(__file__).resolve().parent.parent


def _one_usage_line(res: Any, *needles: str, command: str) -> str:
    assert res.code == 2, (res.code, res.err)
    lines = [ln for ln in res.err.splitlines() if ln.strip()]
    assert len(lines) == 1, res.err
    line = lines[0]
    assert line.startswith("streamq: error: "), line
    assert line.endswith(f"(see: {command} --help)"), line
    for needle in needles:
        assert needle in line, line
    for bad in ("Value error", "Usage:", "Try '", "<", "Input should"):
        assert bad not in line, line
    assert res.out == ""
    return line


# --------------------------------------------------------------------- item 9: usage errors


@pytest.mark.parametrize(("args", "needles", "command"), [
    # a choice that is not one
    (["list", "--output", "yaml"],
     ["invalid --output 'yaml': use table, json, jsonl, csv or ids"], "streamq list"),
    (["completion", "tcsh"], ["invalid SHELL 'tcsh': use bash, zsh or fish"],
     "streamq completion"),
    # out of range, both ends
    (["list", "--limit", "0"], ["invalid --limit '0': must be at least 1"], "streamq list"),
    (["list", "--segments", "2000"], ["invalid --segments '2000': must be at most 1000"],
     "streamq list"),
    (["refire", "--rate", "-1"], ["invalid --rate '-1': must be at least 0"],
     "streamq refire"),
    (["sandbox", "seed", "--count", "0"], ["invalid --count '0': must be at least 1"],
     "streamq sandbox seed"),
    # not a number
    (["list", "--limit", "ten"], ["invalid --limit 'ten': not a whole number"],
     "streamq list"),
    (["refire", "--rate", "fast"], ["invalid --rate 'fast': not a number"], "streamq refire"),
    # unknown option, with click's suggestion kept
    (["list", "--bogus"], ["no such option --bogus"], "streamq list"),
    (["list", "--statu", "failed"], ["no such option --statu", "--status?"], "streamq list"),
    # missing argument, missing option value, extra argument, unknown command
    (["show"], ["missing argument KEY"], "streamq show"),
    (["completion"], ["missing argument SHELL (bash, zsh or fish)"], "streamq completion"),
    (["list", "-n"], ["option '-n' requires an argument"], "streamq list"),
    (["sandbox", "logs", "--lines"], ["option '--lines' requires an argument"],
     "streamq sandbox logs"),
    (["list", "extra"], ["unexpected extra argument"], "streamq list"),
    (["no-such-command"], ["no such command 'no-such-command'"], "streamq"),
    (["sandbox", "nope"], ["no such command 'nope'"], "streamq sandbox"),
])
def test_usage_errors_are_one_streamq_line_with_a_help_hint(
        cli: CliRunner, args: list[str], needles: list[str], command: str) -> None:
    _one_usage_line(cli(*args), *needles, command=command)


@pytest.mark.parametrize("group", [[], ["sandbox"], ["config"]])
def test_a_group_alone_prints_its_help(cli: CliRunner, group: list[str]) -> None:
    res = cli(*group)
    assert res.code == 2 and res.out == ""
    assert res.err.startswith(f"Usage: {' '.join(['streamq', *group])} [OPTIONS] COMMAND")
    assert "\nCommands:\n" in res.err and "streamq: error" not in res.err


@pytest.mark.slow
def test_an_error_is_one_line_in_a_real_terminal_too() -> None:
    code, screen = pty_run(["list", "-t", "outbox", "--output", "yaml"], cols=60)
    assert code == 2
    assert screen.strip() == ("streamq: error: invalid --output 'yaml': use table, json, "
                              "jsonl, csv or ids (see: streamq list --help)"), screen


def _command_paths() -> list[list[str]]:
    import typer

    from streamq.cli.app import app

    paths: list[list[str]] = []

    def walk(cmd: Any, path: list[str]) -> None:
        paths.append(path)
        for name, sub in (getattr(cmd, "commands", None) or {}).items():
            walk(sub, [*path, name])

    walk(typer.main.get_command(app), [])
    return paths


@pytest.mark.parametrize("path", _command_paths(), ids=lambda p: " ".join(p) or "streamq")
def test_help_shows_no_internal_type_names(cli: CliRunner, path: list[str]) -> None:
    res = cli(*path, "--help")
    assert res.code == 0, res.err
    internal = re.findall(r"<(?:list\[|int|float|str|path|bool|text)[^>]*>", res.out)
    assert internal == [], internal
    assert "Value error" not in res.out


def test_refire_help_shows_no_status_default_it_does_not_apply(cli: CliRunner) -> None:
    """list defaults to failed,stuck; refire selects nothing without a selection flag."""
    refire = " ".join(cli("refire", "--help").out.split())
    assert "failed,stuck" not in refire and "No default" in refire
    assert "[default: failed,stuck]" in " ".join(cli("list", "--help").out.split())


@pytest.mark.parametrize("cols", [80, 160])
def test_help_uses_the_terminal_width(cli: CliRunner, monkeypatch: pytest.MonkeyPatch,
                                      cols: int) -> None:
    monkeypatch.setenv("COLUMNS", str(cols))
    lines = cli("refire", "--help").out.splitlines()
    # Example command lines are never wrapped (a wrapped one cannot be copied).
    widths = [len(line) for line in lines if not line.startswith("    streamq ")]
    assert max(widths) <= cols
    assert max(widths) > cols - 12  # long help lines fill the width, not click's 80


def test_help_examples_fit_80_columns(cli: CliRunner, monkeypatch: pytest.MonkeyPatch) -> None:
    """An example is never wrapped, so it is written to fit: at 80 columns a longer one is
    folded by the terminal in the middle of a word (`--ra` / `te 5`)."""
    monkeypatch.setenv("COLUMNS", "80")
    long = [(" ".join(path) or "streamq", line) for path in _command_paths()
            for line in cli(*path, "--help").out.splitlines() if len(line) > 80]
    assert long == []


# ---------------------------------------------------------------- item 14: completions


def test_one_way_to_install_completions(cli: CliRunner, tmp_path: Path,
                                        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))  # where typer's installer would write
    assert "--install-completion" not in cli("--help").out
    assert "--show-completion" not in cli("--help").out
    for opt in ("--install-completion", "--show-completion"):
        _one_usage_line(cli(opt, "bash"), f"no such option {opt}", command="streamq")
    assert list(tmp_path.iterdir()) == []
    for shell in ("bash", "zsh", "fish"):
        res = cli("completion", shell)
        assert res.code == 0
        assert res.out.endswith("\n") and not res.out.endswith("\n\n")
        assert res.out == (ROOT / "completions" / f"streamq.{shell}").read_text()


# ------------------------------------------------------ item 10: Ctrl-C is 130 everywhere


@pytest.fixture()
def trigger_table(ddb: Any, endpoint: str) -> str:
    create_table(ddb, "outbox")
    ddb.put_item(TableName="outbox", Item={"id": {"S": "msg-1"},
                                           "last_error": {"S": "429 Too Many Requests"}})
    create_trigger(endpoint, "outbox", MaximumRetryAttempts=2)
    return "outbox"


@pytest.mark.slow
@pytest.mark.parametrize(("args", "prompt"), [
    (["config-trigger", "-t", "outbox", "--retry-attempts", "3"], b"[y/N]"),
    (["refire", "-t", "outbox", "--id", "msg-1"], b"[y/N]"),
])
def test_ctrl_c_at_a_confirmation_prompt_is_130_and_no_is_5(
        trigger_table: str, ddb: Any, args: list[str], prompt: bytes) -> None:
    code, screen = pty_run(args, answers=[(prompt, b"\x03")])
    assert code == 130, screen
    assert "streamq: error: interrupted" in screen and "Aborted" not in screen
    assert "Traceback" not in screen
    code, screen = pty_run(args, answers=[(prompt, b"n\r")])
    assert code == 5, screen
    assert "not confirmed" in screen
    item = ddb.get_item(TableName="outbox", Key={"id": {"S": "msg-1"}})["Item"]
    assert "refire_count" not in item  # nothing was written


@pytest.mark.slow
def test_ctrl_c_while_a_command_waits_is_130(tmp_path: Path,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    log = tmp_path / "sbx" / "sandbox.log"
    log.parent.mkdir()
    log.write_text("started\n")
    monkeypatch.setenv("STREAMQ_SANDBOX_DIR", str(log.parent))
    code, screen = pty_run(["sandbox", "logs", "--follow"], answers=[(b"started", b"\x03")])
    assert code == 130, screen
    assert "interrupted" in screen and "Traceback" not in screen


# -------------------------------------------------- item 12: feedback on long work


@pytest.mark.slow
def test_refire_progress_labels_eta_and_elapsed(ddb: Any, endpoint: str) -> None:
    create_table(ddb, "outbox")
    for i in range(20):
        ddb.put_item(TableName="outbox", Item={"id": {"S": f"msg-{i}"},
                                               "last_error": {"S": "429"}})
    create_trigger(endpoint, "outbox")
    code, screen = pty_run(["refire", "-t", "outbox", "--status", "failed", "--rate", "10",
                            "--yes"])
    assert code == 0, screen
    assert re.search(r"eta (\d+:\d\d:\d\d|-:--:--)", screen), screen
    assert re.search(r"elapsed \d+:\d\d:\d\d", screen), screen
    assert "refired 20" in screen
