"""Tables at 80 and 160 columns (issue 8 item 6): list keeps KEY whole and gives way in
a fixed order; config-trigger never breaks an ARN. Checked through the CLI with COLUMNS
set (-o table, piped) and in a real terminal (a pty)."""

from __future__ import annotations

from typing import Any

import pytest

from streamq.render.layout import (
    DROP_ORDER,
    KEY_CAP,
    diff_widths,
    fold_rows,
    middle_ellipsis,
    record_columns,
)
from tests.helpers import CliRunner, create_table, create_trigger, iso_ago, pty_run

LONG_KEY = "tenant-acme/order-2026-11-27/msg-{:04d}-retry"  # 38 characters
ERROR = ("503 Service Unavailable: upstream mail relay smtp-out-3.example.net refused "
         "the connection after 30s (attempt 4 of 5)")
HEADERS = ("KEY", "AGE", "STATUS", "DUE", "ATTEMPTS", "REFIRES", "LAST ERROR")


@pytest.fixture()
def long_keys(ddb: Any) -> list[str]:
    create_table(ddb, "outbox")
    keys = [LONG_KEY.format(i) for i in range(3)]
    for k in keys:
        ddb.put_item(TableName="outbox", Item={
            "id": {"S": k}, "last_error": {"S": ERROR}, "attempts": {"N": "4"},
            "refire_count": {"N": "2"}, "created_at": {"S": iso_ago(7200)}})
    return keys


def _table_lines(out: str) -> list[str]:
    lines = [ln for ln in out.splitlines() if ln.strip()]
    assert lines[-1].startswith("3 record(s)")
    return lines


def _check_list(lines: list[str], keys: list[str], cols: int) -> list[str]:
    header, rows = lines[0], lines[1:4]
    shown = header.split()
    for word in shown:  # a header is never cut (no "A", "ST", "ATTEMP…")
        assert word in {"KEY", "AGE", "STATUS", "DUE", "ATTEMPTS", "REFIRES", "LAST",
                        "ERROR"}
    for key, row in zip(keys, rows, strict=True):
        assert row.startswith(key + " "), row  # whole, on its row, never wrapped
        assert len(row) <= cols, (len(row), row)
        assert "failed" in row
    assert len(lines) in (5, 6)  # header, 3 rows, [left out], summary: nothing wrapped
    return shown


@pytest.mark.parametrize("cols", [80, 160])
def test_list_table_keeps_the_key_whole(cli: CliRunner, long_keys: list[str],
                                        monkeypatch: pytest.MonkeyPatch, cols: int) -> None:
    monkeypatch.setenv("COLUMNS", str(cols))
    res = cli("list", "-t", "outbox", "-o", "table")
    assert res.code == 0, res.err
    lines = _table_lines(res.out)
    shown = _check_list(lines, long_keys, cols)
    if cols == 160:
        assert shown == ["KEY", "AGE", "STATUS", "DUE", "ATTEMPTS", "REFIRES", "LAST",
                         "ERROR"]
        assert all(ERROR[:60] in row for row in lines[1:4])
    else:
        # 80 columns: REFIRES and ATTEMPTS go, the error is cut with an ellipsis
        assert shown == ["KEY", "AGE", "STATUS", "DUE", "LAST", "ERROR"]
        assert all(row.endswith("…") and "503 Service" in row for row in lines[1:4])
        assert lines[-2] == ("left out at 80 columns: REFIRES, ATTEMPTS (-o jsonl has every "
                             "field)")


@pytest.mark.slow
def test_list_table_in_a_real_terminal_at_80_columns(ddb: Any, long_keys: list[str]) -> None:
    code, screen = pty_run(["list", "-t", "outbox"], cols=80)
    assert code == 0, screen
    lines = [ln.rstrip("\r") for ln in screen.splitlines() if ln.strip()]
    lines = lines[lines.index(next(ln for ln in lines if ln.startswith("KEY"))):]
    _check_list(lines, long_keys, 80)


def test_a_key_over_the_cap_keeps_its_head_and_tail(cli: CliRunner, ddb: Any,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    create_table(ddb, "outbox")
    key = "k" + "x" * 90 + "-tail-0042"
    ddb.put_item(TableName="outbox", Item={"id": {"S": key}, "last_error": {"S": "boom"}})
    monkeypatch.setenv("COLUMNS", "160")
    row = cli("list", "-t", "outbox", "-o", "table").out.splitlines()[1]
    shown = row.split()[0]
    assert len(shown) == KEY_CAP and "…" in shown
    assert shown.startswith("kxxx") and shown.endswith("-tail-0042")
    assert middle_ellipsis("abcdef", 5) == "ab…ef"


def test_list_columns_give_way_in_the_documented_order() -> None:
    natural = {"KEY": 30, "AGE": 3, "STATUS": 6, "DUE": 5, "ATTEMPTS": 1, "REFIRES": 1,
               "LAST ERROR": 200}
    seen: list[list[str]] = []
    for width in range(160, 40, -1):
        cols, dropped = record_columns(width, natural)
        headers = [c.header for c in cols]
        assert headers[:3] == ["KEY", "AGE", "STATUS"] and cols[0].width == 30
        assert all(c.width >= len(c.header) for c in cols)
        assert dropped == list(DROP_ORDER[:len(dropped)])
        if "LAST ERROR" in headers:
            assert cols[-1].width >= 16 and sum(c.width for c in cols) + 2 * (
                len(cols) - 1) <= width
        if headers not in seen:
            seen.append(headers)
    assert seen == [list(HEADERS), ["KEY", "AGE", "STATUS", "DUE", "ATTEMPTS", "LAST ERROR"],
                    ["KEY", "AGE", "STATUS", "DUE", "LAST ERROR"],
                    ["KEY", "AGE", "STATUS", "LAST ERROR"], ["KEY", "AGE", "STATUS"]]
    # an empty column (nothing refired yet) gives way before the error is shortened
    cols, dropped = record_columns(80, {**natural, "KEY": 19, "REFIRES": 0,
                                        "LAST ERROR": 23})
    assert dropped == ["REFIRES"] and cols[-1].header == "LAST ERROR" and cols[-1].width == 23
    # with no retry policy (no due times) there is no DUE column at all
    cols, _ = record_columns(160, {**natural, "DUE": 0})
    assert "DUE" not in [c.header for c in cols]


# ------------------------------------------------------------------------ config-trigger

ARN_FN = "arn:aws:lambda:us-east-1:123456789012:function:mail-sender-production-euwest"


@pytest.fixture()
def trigger(ddb: Any, endpoint: str) -> dict[str, Any]:
    create_table(ddb, "outbox")
    return create_trigger(endpoint, "outbox", function="mail-sender-production-euwest",
                          MaximumRetryAttempts=2)


def _arns(mapping: dict[str, Any]) -> list[str]:
    return [mapping["FunctionArn"], mapping["EventSourceArn"]]


@pytest.mark.parametrize("cols", [80, 160])
def test_config_trigger_never_breaks_an_arn(cli: CliRunner, trigger: dict[str, Any],
                                            monkeypatch: pytest.MonkeyPatch,
                                            cols: int) -> None:
    monkeypatch.setenv("COLUMNS", str(cols))
    res = cli("config-trigger", "-t", "outbox", "-o", "table")
    assert res.code == 0, res.err
    for arn in _arns(trigger):
        assert any(arn in line for line in res.out.splitlines()), (arn, res.out)
    for line in res.out.splitlines():
        if line.startswith(("warning[", "error[", "info[")):
            continue  # lints are one line each, for grep
        assert len(line) <= cols or any(a in line for a in _arns(trigger)), line
    if cols == 160:  # wide: name and value on one line
        assert any(line.startswith("EventSourceArn") and trigger["EventSourceArn"] in line
                   for line in res.out.splitlines())
    else:  # narrow: the ARN folds onto its own line
        assert f"EventSourceArn\n    {trigger['EventSourceArn']}\n" in res.out


@pytest.mark.parametrize("cols", [80, 160])
def test_config_trigger_diff_never_breaks_an_arn(cli: CliRunner, trigger: dict[str, Any],
                                                 monkeypatch: pytest.MonkeyPatch,
                                                 cols: int) -> None:
    dest = ("arn:aws:sqs:us-east-1:123456789012:"
            "mail-sender-prod-failures")
    monkeypatch.setenv("COLUMNS", str(cols))
    res = cli("config-trigger", "-t", "outbox", "-o", "table", "--on-failure", dest,
              "--dry-run")
    assert res.code == 0, res.err
    assert any(dest in line for line in res.out.splitlines()), res.out
    assert all(len(line) <= cols for line in res.out.splitlines()), res.out


@pytest.mark.slow
def test_config_trigger_in_a_real_terminal_at_80_columns(trigger: dict[str, Any]) -> None:
    code, screen = pty_run(["config-trigger", "-t", "outbox"], cols=80)
    assert code == 0, screen
    lines = [ln.rstrip("\r") for ln in screen.splitlines()]
    for arn in _arns(trigger):
        assert any(arn in line for line in lines), screen


def test_fold_rows_and_diff_widths() -> None:
    arn = "arn:aws:sqs:us-east-1:123456789012:q"
    folded = fold_rows([("DestinationConfig", arn, ""), ("BatchSize", "100", "default")], 40)
    assert folded.rows[0][3] is True and folded.rows[0][1] == [arn]
    assert folded.rows[1][3] is False
    wide = fold_rows([("DestinationConfig", arn, "")], 80)
    assert wide.rows[0][3] is False
    assert diff_widths([("DestinationConfig", "none", arn)], 80) == (17, 7, 36)
    assert diff_widths([("DestinationConfig", arn, arn)], 60) is None


def test_the_documented_order_is_the_code_s() -> None:
    from pathlib import Path

    readme = " ".join((Path(__file__).resolve().parent.parent / "README.md").read_text()
                      .split())
    order = ", ".join(DROP_ORDER[:-1]) + " and " + DROP_ORDER[-1]
    assert f"LAST ERROR is shortened (with `…`) first, then {order} are left out" in readme


def test_doctor_never_cuts_a_hint_inside_a_word(cli: CliRunner, ddb: Any, endpoint: str,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    """The hint is a command to copy: its JSON pattern stays whole at 80 columns."""
    create_table(ddb, "outbox")
    create_trigger(endpoint, "outbox", FilterCriteria={"Filters": [
        {"Pattern": '{"eventName": ["INSERT"]}'}]})
    monkeypatch.setenv("COLUMNS", "80")
    res = cli("doctor", "-t", "outbox", "-o", "table", "--timeout", "5s")
    assert "trigger.refire-filter" in res.out, res.out
    pattern = ('\'{"eventName":["MODIFY"],"dynamodb":{"NewImage":{"refired_at":'
               '{"S":[{"exists":true}]}}}}\'')
    assert any(line.strip() == pattern for line in res.out.splitlines()), res.out
    assert all(len(line) <= 80 for line in res.out.splitlines() if pattern not in line)
