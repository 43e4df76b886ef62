"""streamq list / stats / show against moto's server over HTTP."""

from __future__ import annotations

import json
import sys
from typing import Any

import pytest

from tests.helpers import batch_put, create_table, iso_ago, outbox_items


def _keys(records: list[dict[str, Any]], names: tuple[str, ...]) -> set[Any]:
    out = set()
    for r in records:
        vals = tuple(r["key"][n] for n in names)
        out.add(vals[0] if len(vals) == 1 else vals)
    return out


TABLES = [
    pytest.param(("id", "S"), None, id="string-hash"),
    pytest.param(("id", "N"), None, id="numeric-hash"),
    pytest.param(("id", "S"), ("seq", "N"), id="composite"),
]


@pytest.mark.slow
@pytest.mark.parametrize(("hash_key", "range_key"), TABLES)
def test_ten_thousand_items_exact_sets(ddb, cli, hash_key, range_key) -> None:
    create_table(ddb, "outbox", hash_key=hash_key, range_key=range_key)
    items, truth = outbox_items(10_000, key=hash_key[0], key_type=hash_key[1],
                                range_key=range_key[0] if range_key else None)
    batch_put(ddb, "outbox", items)
    names = (hash_key[0],) + ((range_key[0],) if range_key else ())
    assert len(truth["failed"]) == 500 and len(truth["stuck"]) == 500

    res = cli("list", "--table", "outbox", "-o", "json")
    assert res.code == 0, res.err
    records = res.json()
    assert _keys(records, names) == truth["failed"] | truth["stuck"]
    assert {r["status"] for r in records} == {"failed", "stuck"}

    res = cli("list", "--table", "outbox", "--status", "failed", "-o", "jsonl")
    assert res.code == 0, res.err
    failed = res.jsonl()
    assert _keys(failed, names) == truth["failed"]
    assert all(r["error"].startswith("429") for r in failed)

    # --where narrows: failed records of tenant acme (every third item).
    res = cli("list", "--table", "outbox", "--status", "failed", "--where", "tenant=acme",
              "-o", "jsonl")
    narrowed = _keys(res.jsonl(), names)
    expect = {r_key for r_key, rec in ((_keys([r], names).pop(), r) for r in failed)
              if rec["item"]["tenant"] == "acme"}
    assert narrowed == expect and 0 < len(narrowed) < len(truth["failed"])

    res = cli("stats", "--table", "outbox", "-o", "json")
    assert res.code == 0, res.err
    stats = res.json()
    assert stats["counts"] == {"failed": 500, "stuck": 500, "pending": 9000}
    assert stats["total"] == 10_000
    assert 590 < stats["oldest_age_seconds"] < 3700


def test_json_record_shape_and_item_plain(ddb, cli) -> None:
    create_table(ddb, "outbox")
    ddb.put_item(TableName="outbox", Item={
        "id": {"S": "a"}, "created_at": {"S": iso_ago(4000)}, "last_error": {"S": "boom"},
        "attempts": {"N": "3"}, "refire_count": {"N": "2"}, "price": {"N": "1.5"},
        "tags": {"SS": ["x"]}, "meta": {"M": {"n": {"N": "7"}, "ok": {"BOOL": True}}},
        "nothing": {"NULL": True}, "blob": {"B": b"\x00\x01"}})
    res = cli("list", "-t", "outbox", "-o", "jsonl")
    assert res.code == 0, res.err
    [rec] = res.jsonl()
    assert rec["key"] == {"id": "a"}
    assert rec["status"] == "failed" and rec["error"] == "boom"
    assert rec["attempts"] == 3 and rec["refire_count"] == 2
    assert 3990 < rec["age_seconds"] < 4100
    assert rec["item"]["price"] == 1.5 and rec["item"]["meta"] == {"n": 7, "ok": True}
    assert rec["item"]["nothing"] is None and rec["item"]["blob"] == "AAE="


def test_piped_default_is_jsonl_and_ids_csv(ddb, cli) -> None:
    create_table(ddb, "outbox")
    batch_put(ddb, "outbox", [
        {"id": {"S": "plain"}, "created_at": {"S": iso_ago(900)}},
        {"id": {"S": "{looks-like-json"}, "created_at": {"S": iso_ago(900)}},
        {"id": {"S": " padded "}, "created_at": {"S": iso_ago(900)}},
        {"id": {"S": "fresh"}, "created_at": {"S": iso_ago(1)}},
    ])
    res = cli("list", "-t", "outbox")
    assert res.code == 0
    assert {r["key"]["id"] for r in res.jsonl()} == {"plain", "{looks-like-json", " padded "}
    ids = cli("list", "-t", "outbox", "-o", "ids").out.splitlines()
    assert "plain" in ids and '{"id":"{looks-like-json"}' in ids and '{"id":" padded "}' in ids
    from streamq.outbox import KeyAttr, TableInfo, parse_key_text
    info = TableInfo("outbox", KeyAttr("id", "S"))
    assert {parse_key_text(line, info)["id"]["S"] for line in ids} == {
        "plain", "{looks-like-json", " padded "}
    csv_out = cli("list", "-t", "outbox", "-o", "csv", "--sort", "age").out.splitlines()
    assert csv_out[0] == ("id,status,age_seconds,created_at,attempts,error,refire_count,"
                          "retry,next_due_at")
    assert len(csv_out) == 4
    assert cli("list", "-t", "outbox", "--count").out.strip() == "3"
    assert cli("list", "-t", "outbox", "--status", "all", "--count").out.strip() == "4"


def test_limit_sort_older_than(ddb, cli) -> None:
    create_table(ddb, "outbox")
    batch_put(ddb, "outbox", [{"id": {"S": f"k{age}"}, "created_at": {"S": iso_ago(age)}}
                              for age in (400, 1000, 5000, 20000)])
    res = cli("list", "-t", "outbox", "--sort=-age", "-n", "2", "-o", "jsonl")
    assert [r["key"]["id"] for r in res.jsonl()] == ["k20000", "k5000"]
    res = cli("list", "-t", "outbox", "--sort", "age", "-o", "jsonl")
    assert [r["key"]["id"] for r in res.jsonl()] == ["k400", "k1000", "k5000", "k20000"]
    res = cli("list", "-t", "outbox", "--older-than", "30m", "-o", "ids")
    assert set(res.out.split()) == {"k5000", "k20000"}
    assert len(cli("list", "-t", "outbox", "-n", "3", "-o", "ids").out.split()) == 3


WEIRD = ["status", "name", "size", "a.b", "x#y", "c:d", "with space"]


@pytest.mark.parametrize("attr", WEIRD)
def test_where_and_mapping_with_reserved_and_odd_names(ddb, cli, attr) -> None:
    create_table(ddb, "outbox")
    value = 'it\'s "quoted" — ünïcødé'
    batch_put(ddb, "outbox", [
        {"id": {"S": "hit"}, attr: {"S": value}, "when": {"S": iso_ago(900)},
         "err x": {"S": "bad"}},
        {"id": {"S": "miss"}, attr: {"S": "other"}, "when": {"S": iso_ago(900)}},
        {"id": {"S": "num"}, attr: {"N": "5"}, "when": {"S": iso_ago(900)}},
    ])
    common = ("-t", "outbox", "--created-attr", "when", "-o", "ids")
    assert cli("list", *common, "--where", f'"{attr}"={json.dumps(value)}').out.split() \
        == ["hit"]
    assert set(cli("list", *common, "--where", f'"{attr}"!=other').out.split()) == {"hit", "num"}
    assert cli("list", *common, "--where", f'"{attr}"~ünïcødé').out.split() == ["hit"]
    assert cli("list", *common, "--where", f'"{attr}">=5').out.split() == ["num"]
    assert cli("list", *common, "--where", f'"{attr}"<5').out.split() == []
    assert set(cli("list", *common, "--where", f'"{attr}"?').out.split()) == {
        "hit", "miss", "num"}
    if not any(c in attr for c in "=!<>~?\""):
        assert cli("list", *common, "--where", f"{attr}=5").out.split() == ["num"]
    # The attribute mapping takes the same odd names.
    res = cli("list", "-t", "outbox", "--created-attr", "when", "--error-attr", "err x",
              "--status", "failed", "-o", "ids")
    assert res.out.split() == ["hit"], res.err
    res = cli("list", "-t", "outbox", "--created-attr", "when", "--error-attr", attr,
              "--status", "failed", "-o", "ids")
    assert set(res.out.split()) == {"hit", "miss", "num"}, res.err


def test_show_and_key_types(ddb, cli) -> None:
    create_table(ddb, "nums", hash_key=("id", "N"))
    ddb.put_item(TableName="nums", Item={"id": {"N": "42"}, "created_at": {"N": "0"}})
    res = cli("show", "-t", "nums", "42", "-o", "json")
    assert res.code == 0, res.err
    doc = res.json()
    assert doc["key"] == {"id": 42} and doc["status"] == "stuck"
    assert doc["created_at"] == "1970-01-01T00:00:00Z"
    bad = cli("show", "-t", "nums", "abc")
    assert bad.code == 2 and "is a number (N)" in bad.err and "Traceback" not in bad.err
    missing = cli("show", "-t", "nums", "7")
    assert missing.code == 4 and "no item" in missing.err
    create_table(ddb, "comp", range_key=("seq", "N"))
    ddb.put_item(TableName="comp", Item={"id": {"S": "a"}, "seq": {"N": "1"}})
    assert cli("show", "-t", "comp", '{"id":"a","seq":1}', "-o", "json").json()["key"] == {
        "id": "a", "seq": 1}
    res = cli("show", "-t", "comp", "a")
    assert res.code == 2 and "composite key" in res.err


def test_sparse_error_index_is_used(ddb, cli) -> None:
    create_table(ddb, "outbox", extra_attrs=[("last_error", "S")], gsis=[{
        "IndexName": "by-error",
        "KeySchema": [{"AttributeName": "last_error", "KeyType": "HASH"}],
        "Projection": {"ProjectionType": "ALL"}}])
    batch_put(ddb, "outbox", [
        {"id": {"S": "f1"}, "last_error": {"S": "x"}, "created_at": {"S": iso_ago(60)}},
        {"id": {"S": "s1"}, "created_at": {"S": iso_ago(6000)}},
    ])
    res = cli("list", "-t", "outbox", "--status", "failed", "-o", "ids", "--debug")
    assert res.out.split() == ["f1"]
    assert "Scan on index by-error" in res.err
    res = cli("list", "-t", "outbox", "--where", "last_error=x", "-o", "ids", "--debug",
              "--status", "all")
    assert res.out.split() == ["f1"] and "Query on index by-error" in res.err
    res = cli("list", "-t", "outbox", "-o", "ids", "--debug")
    assert set(res.out.split()) == {"f1", "s1"} and "Scan on table" in res.err


def test_segment_split_covers_table_once(ddb, cli) -> None:
    create_table(ddb, "outbox")
    items, _ = outbox_items(600)
    batch_put(ddb, "outbox", items)
    seen: list[str] = []
    for i in range(3):
        res = cli("list", "-t", "outbox", "--status", "all", "--segment", f"{i}/3", "-o", "ids")
        assert res.code == 0, res.err
        seen += res.out.split()
    assert sorted(seen) == sorted(f"msg-{i:06d}" for i in range(600))
    res = cli("list", "-t", "outbox", "--status", "all", "--segments", "4", "-o", "ids")
    assert sorted(res.out.split()) == sorted(seen)


def test_key_codec_round_trip_and_identity() -> None:
    from streamq.outbox import KeyAttr, TableInfo, key_id, key_text, parse_key_text

    simple = TableInfo("t", KeyAttr("id", "N"))
    assert key_id(parse_key_text("7", simple)) == key_id(parse_key_text("7.0", simple))
    assert key_id(parse_key_text("7", simple)) != key_id(parse_key_text("8", simple))
    comp = TableInfo("t", KeyAttr("pk", "S"), KeyAttr("sk", "B"))
    key = parse_key_text('{"pk": "a|b", "sk": "AAE="}', comp)
    assert key == {"pk": {"S": "a|b"}, "sk": {"B": b"\x00\x01"}}
    assert parse_key_text(key_text(key, comp), comp) == key
    # A list -o jsonl record is accepted as a key too.
    assert parse_key_text('{"key": {"pk": "x", "sk": "AA=="}, "status": "failed"}', comp)[
        "pk"] == {"S": "x"}


def test_data_stays_on_stdout_while_progress_shows_on_a_terminal(ddb, tmp_path) -> None:
    """stderr a terminal (progress shown), stdout a file: every id lands in the file,
    unwrapped, and none on the terminal."""
    import os
    import pty
    import subprocess
    import sys

    create_table(ddb, "outbox")
    items, truth = outbox_items(300)
    batch_put(ddb, "outbox", items)
    master, slave = pty.openpty()
    out = tmp_path / "ids.txt"
    with out.open("w") as fh:
        proc = subprocess.run(
            [sys.executable, "-m", "streamq.cli", "list", "-t", "outbox", "-o", "jsonl"],
            stdout=fh, stderr=slave, stdin=subprocess.DEVNULL, timeout=60,
            env={**os.environ, "COLUMNS": "40"})
    os.close(slave)
    terminal = b""
    while True:
        try:
            chunk = os.read(master, 65536)
        except OSError:
            break
        if not chunk:
            break
        terminal += chunk
    os.close(master)
    assert proc.returncode == 0, terminal
    lines = out.read_text().splitlines()
    assert {json.loads(line)["key"]["id"] for line in lines} == truth["failed"] | truth["stuck"]
    assert b'"key"' not in terminal


def test_ids_survive_refire_ids_from_with_tricky_keys(ddb, cli) -> None:
    """Every key `list -o ids` prints is read back by `refire --ids-from` as itself."""
    create_table(ddb, "outbox")
    tricky = ["#hash", "a\u2028b", "a", "b", "c\x0bd", "e\x85f", "{x", " pad", "plain"]
    batch_put(ddb, "outbox", [{"id": {"S": k}, "last_error": {"S": "x"}} for k in tricky])
    ids = cli("list", "-t", "outbox", "--status", "failed", "-o", "ids").out
    assert len(ids.split("\n")) == len(tricky) + 1
    res = cli("refire", "-t", "outbox", "--ids-from", "-", "--dry-run", "--force", "-o",
              "json", input=ids)
    plan = res.json()
    assert plan["records"] == len(tricky) and plan["duplicates"] == 0, res.err
    assert plan["known_missing"] == 0


def test_keys_only_index_never_misclassifies(ddb, cli) -> None:
    """A KEYS_ONLY GSI lacks the created/error attributes: ids/count/stats must not use it
    blind (they would call every record stuck)."""
    create_table(ddb, "outbox", extra_attrs=[("tenant", "S")], gsis=[{
        "IndexName": "by-tenant",
        "KeySchema": [{"AttributeName": "tenant", "KeyType": "HASH"}],
        "Projection": {"ProjectionType": "KEYS_ONLY"}}])
    batch_put(ddb, "outbox", [
        {"id": {"S": "p1"}, "tenant": {"S": "acme"}, "created_at": {"S": iso_ago(5)}},
        {"id": {"S": "f1"}, "tenant": {"S": "acme"}, "created_at": {"S": iso_ago(5)},
         "last_error": {"S": "boom"}},
        {"id": {"S": "s1"}, "tenant": {"S": "acme"}, "created_at": {"S": iso_ago(900)}},
    ])
    base = ("list", "-t", "outbox", "--where", "tenant=acme")
    assert cli(*base, "-s", "stuck", "-o", "ids").out.split() == ["s1"]
    assert cli(*base, "-s", "failed", "-o", "ids").out.split() == ["f1"]
    assert cli(*base, "--count").out.strip() == "2"
    stats = cli("stats", "-t", "outbox", "--where", "tenant=acme", "-o", "json").json()
    assert stats["counts"] == {"failed": 1, "stuck": 1, "pending": 1}
    # Forced, the index is queried and the items re-read from the table.
    forced = cli(*base, "--index", "by-tenant", "-o", "ids", "--debug")
    assert set(forced.out.split()) == {"f1", "s1"} and "re-read from the table" in forced.err
    res = cli(*base, "--index", "by-tenant", "-s", "failed", "-o", "ids")
    assert res.code == 2 and "does not project last_error" in res.err


def test_reader_going_away_is_not_a_failure(ddb) -> None:
    """`streamq list | head -1` under `set -o pipefail`: exit 0, no error message."""
    import subprocess

    create_table(ddb, "outbox")
    items, _ = outbox_items(3000)
    batch_put(ddb, "outbox", items)
    proc = subprocess.run(
        ["bash", "-o", "pipefail", "-c",
         f"{sys.executable} -m streamq.cli list -t outbox --status all -o jsonl | head -1"],
        capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert len(proc.stdout.splitlines()) == 1 and proc.stderr == ""


def test_count_on_a_terminal_prints_under_no_progress_line(ddb) -> None:
    """`streamq list --count` at a terminal: the progress line is gone before the number
    prints (printed under it, the number stayed glued to the spinner's last frame)."""
    import re

    from tests.helpers import pty_run

    create_table(ddb, "outbox")
    items, truth = outbox_items(3000)
    batch_put(ddb, "outbox", items)
    code, screen = pty_run(["list", "-t", "outbox", "--count", "--segments", "4"])
    assert code == 0, screen
    want = str(len(truth["failed"] | truth["stuck"]))
    # What the terminal shows at the end: the last line written is the number, alone.
    last = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", screen).replace("\r", "\n").split("\n")
    shown = [line for line in last if line.strip()]
    assert shown[-1].strip() == want, shown[-3:]
    assert not any("scanning" in line and want in line for line in shown), shown[-3:]
