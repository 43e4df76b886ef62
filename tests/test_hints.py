"""Commands streamq prints for the user to run carry the connection they came from, and
work when pasted into a shell that has none of it; --resume takes the table, region,
endpoint and attribute names from the journal."""

from __future__ import annotations

import json
import re
import shlex
from collections import Counter
from pathlib import Path

import pytest

from streamq.config import Settings, resolve
from streamq.hints import command, connection_flags, with_aws_connection, with_connection
from tests.faultproxy import FaultProxy, Mix
from tests.helpers import create_trigger
from tests.test_refire import TABLE, count_of, item, modify_counts, seed


def test_connection_flags() -> None:
    env: dict[str, str] = {}
    s = resolve({"table": "t1", "region": "eu-west-1", "profile": "ops",
                 "endpoint_url": "http://127.0.0.1:9"}, env=env)
    assert connection_flags(s, env=env) == [
        "--profile", "ops", "--region", "eu-west-1", "--endpoint-url", "http://127.0.0.1:9",
        "--table", "t1"]
    # What the environment supplied is spelled out: the paste may happen elsewhere.
    env = {"AWS_PROFILE": "p", "AWS_ENDPOINT_URL": "http://h:1", "STREAMQ_TABLE": "t2"}
    s = resolve({}, env=env)
    assert connection_flags(s, region="us-west-2", env=env) == [
        "--profile", "p", "--region", "us-west-2", "--endpoint-url", "http://h:1",
        "--table", "t2"]
    # Record-shape flags given on the command line are repeated; defaults are not.
    s = resolve({"table": "t", "error_attr": "err", "refire_run_attr": "run"}, env={})
    assert connection_flags(s, region="us-east-1", env={}) == [
        "--region", "us-east-1", "--table", "t", "--error-attr", "err",
        "--refire-run-attr", "run"]
    # The sandbox: --sandbox says it all (its table unless another was named).
    sb = Settings(table="mail_outbox", sandbox=True, region="us-east-1",
                  endpoint_url="http://127.0.0.1:4566",
                  sources={"table": "sandbox", "region": "sandbox", "endpoint_url": "sandbox"})
    assert connection_flags(sb, env={"AWS_PROFILE": "x"}) == ["--sandbox"]
    sb2 = Settings(table="other", sandbox=True, sources={"table": "flag --table"})
    assert connection_flags(sb2, env={}) == ["--sandbox", "--table", "other"]
    # A named outbox section carries its table and attributes.
    ob = Settings(table="orders_outbox", outbox="orders", region="eu-west-1",
                  sources={"table": "/x/streamq.toml [outbox.orders]"})
    assert connection_flags(ob, env={}) == ["--region", "eu-west-1", "--outbox", "orders"]
    assert command(ob, "refire", "--resume", "my run.jsonl", "--yes", env={}) == (
        "streamq refire --resume 'my run.jsonl' --yes --region eu-west-1 --outbox orders")


def _clean_shell(monkeypatch: pytest.MonkeyPatch) -> None:
    """A shell with credentials and nothing else: no endpoint, region or table."""
    for var in ("AWS_ENDPOINT_URL", "AWS_DEFAULT_REGION", "AWS_REGION", "STREAMQ_TABLE"):
        monkeypatch.delenv(var, raising=False)


def _hint(err: str, after: str) -> list[str]:
    """The command printed after ``after`` in a message, as argv (without "streamq")."""
    m = re.search(re.escape(after) + r" (streamq [^;\n]*)", err)
    assert m, err
    words = shlex.split(m.group(1))
    assert words[0] == "streamq"
    return words[1:]


def test_resume_hint_reaches_the_same_table_from_a_clean_shell(
        ddb, endpoint, cli, tmp_path, monkeypatch) -> None:
    keys = seed(ddb, endpoint, 3)
    journal = tmp_path / "run.jsonl"
    monkeypatch.setenv("STREAMQ_READ_TIMEOUT", "0.5")
    with FaultProxy(endpoint, mix=Mix(blackhole=1.0)) as proxy:
        res = cli("refire", "--table", TABLE, "--region", "us-east-1", "--endpoint-url",
                  proxy.url, *(a for k in keys for a in ("--id", k)), "--yes", "--rate",
                  "0", "--deadline", "1s", "--journal", str(journal))
        assert res.code == 3, res.err
        argv = _hint(res.err, "retry the failed ones with:")
        assert argv == ["refire", "--resume", str(journal), "--yes", "--region", "us-east-1",
                        "--endpoint-url", proxy.url, "--table", TABLE]
        proxy.mix = Mix()  # the endpoint recovers
        _clean_shell(monkeypatch)
        before = modify_counts(endpoint)
        res = cli(*argv)
    assert res.code == 0, res.err
    assert modify_counts(endpoint) - before == Counter(dict.fromkeys(keys, 1))


def test_resume_takes_table_region_and_endpoint_from_the_journal(
        ddb, endpoint, cli, tmp_path, monkeypatch) -> None:
    keys = seed(ddb, endpoint, 4)
    journal = tmp_path / "run.jsonl"
    res = cli("refire", "-t", TABLE, "--id", keys[0], "--id", "ghost", "--yes",
              "--journal", str(journal))
    assert res.code == 3, res.err
    head = json.loads(journal.read_text().splitlines()[0])
    assert (head["table"], head["region"], head["endpoint_url"]) == (
        TABLE, "us-east-1", endpoint)
    # A journal planning more than was done (the rest not reached).
    text = journal.read_text().splitlines()
    head["planned"] = 0  # rewritten below with the new plan
    from streamq.journal import digest

    planned = [json.dumps({"planned": {"id": k}, "cond": None}) for k in keys]
    head.update(planned=len(planned), digest=digest(planned))
    outcomes = [x for x in text[1:] if '"outcome"' in x]
    journal.write_text("\n".join([json.dumps(head), *planned, *outcomes]) + "\n")
    _clean_shell(monkeypatch)
    res = cli("refire", "--resume", str(journal), "--yes", "--table", "elsewhere")
    assert res.code == 2, res.err  # refused before any AWS call (no such table either)
    assert f"journal {journal} is for table 'outbox', not 'elsewhere'" in res.err
    res = cli("refire", "--resume", str(journal), "--yes", "--region", "eu-west-1")
    assert res.code == 2 and "region 'us-east-1', not 'eu-west-1'" in res.err, res.err
    res = cli("refire", "--resume", str(journal), "--yes", "-o", "jsonl")
    assert res.code == 0, res.err
    assert {r["key"]["id"] for r in res.jsonl()} == set(keys[1:])
    assert all(count_of(ddb, k) == 1 for k in keys)


def test_resume_writes_the_journals_attributes(ddb, endpoint, cli, tmp_path) -> None:
    """A run under other attribute names, killed after writing msg-1 but before
    journaling it: the resumed run (no attribute flags) must recognise its own token
    under the journal's names, not write msg-1 again under the default ones."""
    keys = seed(ddb, endpoint, 3)
    journal = tmp_path / "run.jsonl"
    names = ["--refire-run-attr", "rr", "--refired-attr", "ra", "--refire-count-attr", "rc"]
    res = cli("refire", "-t", TABLE, *names, "--id", keys[0], "--id", keys[1], "--yes",
              "--journal", str(journal))
    assert res.code == 0, res.err
    lines = journal.read_text().splitlines()
    head = json.loads(lines[0])
    assert head["attrs"]["refire_run_attr"] == "rr"
    # Plan keys[2] as well, and lose the journal line of keys[1]'s outcome.
    from streamq.journal import digest

    planned = [json.dumps({"planned": {"id": k}, "cond": None}) for k in keys]
    head.update(planned=len(planned), digest=digest(planned))
    kept = [x for x in lines[1:] if '"outcome"' in x and keys[1] not in x]
    journal.write_text("\n".join([json.dumps(head), *planned, *kept]) + "\n")
    before = modify_counts(endpoint)
    res = cli("refire", "-t", TABLE, "--resume", str(journal), "--yes", "-o", "jsonl")
    assert res.code == 0, res.err
    assert {r["key"]["id"]: r["outcome"] for r in res.jsonl()} == {keys[1]: "refired",
                                                                   keys[2]: "refired"}
    assert modify_counts(endpoint) - before == Counter({keys[2]: 1})  # keys[1] not again
    it = item(ddb, keys[1])
    assert it is not None and it["rc"] == {"N": "1"} and "refire_count" not in it
    assert count_of(ddb, keys[1]) == 0  # nothing under the default names
    res = cli("refire", "-t", TABLE, "--resume", str(journal), "--yes",
              "--refire-run-attr", "other")
    assert res.code == 2, res.err
    assert "written with refire_run_attr 'rr', not 'other'" in res.err


def test_config_trigger_restore_hint_works_from_a_clean_shell(
        ddb, endpoint, cli, tmp_path, monkeypatch) -> None:
    seed(ddb, endpoint, 1, trigger=False)
    create_trigger(endpoint, TABLE, BatchSize=100)
    _clean_shell(monkeypatch)
    conn = ["--table", TABLE, "--region", "us-east-1", "--endpoint-url", endpoint]
    res = cli("config-trigger", *conn, "--batch-size", "7", "--yes")
    assert res.code == 0, res.err
    argv = _hint(res.err, "restore it with:")
    assert argv[:3] == ["config-trigger", "--uuid", argv[2]] and "--from-file" in argv
    assert argv[-6:] == ["--region", "us-east-1", "--endpoint-url", endpoint, "--table", TABLE]
    assert Path(argv[argv.index("--from-file") + 1]).is_file()
    res = cli(*argv, "--yes")
    assert res.code == 0, res.err
    res = cli("config-trigger", *conn, "--export")
    assert json.loads(res.out)["BatchSize"] == 100


def test_doctor_hints_reach_the_same_outbox_from_a_clean_shell(
        ddb, endpoint, cli, monkeypatch) -> None:
    """doctor's hints ("see them: streamq list; send them again: streamq refire ...")
    carry the connection doctor ran with, like every other hint."""
    seed(ddb, endpoint, 2)  # two failed records
    _clean_shell(monkeypatch)
    res = cli("doctor", "--table", TABLE, "--region", "us-east-1", "--endpoint-url",
              endpoint, "-o", "json")
    (outbox,) = [c for c in res.json()["checks"] if c["name"] == "outbox"]
    assert outbox["status"] == "warn", outbox
    argv = _hint(outbox["hint"], "send them again:")
    assert argv[:4] == ["--region", "us-east-1", "--endpoint-url", endpoint], argv
    res = cli(*argv)
    assert res.code == 0, res.err
    assert "table        outbox\n  records      2\n" in res.out + res.err, res


def test_aws_cli_hints_carry_the_connection() -> None:
    """An ``aws ...`` command in a hint gets the AWS CLI's global options for the same
    profile, region and endpoint; values that merely contain "aws" are left alone."""
    s = Settings(profile="ops", region="eu-west-1", endpoint_url="http://127.0.0.1:9")
    text = ("see its logs: aws logs tail /aws/lambda/f --since 1h; or aws lambda "
            "get-function --function-name arn:aws:lambda:eu-west-1:1:function:f")
    got = with_aws_connection(text, s, env={})
    flags = "--profile ops --region eu-west-1 --endpoint-url http://127.0.0.1:9"
    assert got == (f"see its logs: aws {flags} logs tail /aws/lambda/f --since 1h; or aws "
                   f"{flags} lambda get-function --function-name "
                   "arn:aws:lambda:eu-west-1:1:function:f")
    assert with_aws_connection(text, Settings(), env={}) == text
    # A sandbox command takes no connection flags: it is pasted as printed.
    sbx = Settings(sandbox=True, endpoint_url="http://127.0.0.1:9", region="us-east-1")
    assert with_connection("see: streamq sandbox logs", sbx, env={}) == "see: streamq sandbox logs"
