"""``streamq watch`` against moto's server over HTTP: one JSON line per refresh when
piped, counts equal to ``stats``, trigger state, CloudWatch rates and the destination's
backlog; the live view in a real pseudo-terminal at 80 and 160 columns."""

from __future__ import annotations

import fcntl
import io
import os
import pty
import re
import select
import signal
import struct
import subprocess
import sys
import termios
import time
from typing import Any

import boto3
import pytest

from streamq.aws import Aws
from streamq.config import Settings
from streamq.render.watch import sparkline, view
from streamq.sandbox.metrics import MetricsPublisher
from tests.helpers import (
    CliRunner,
    assert_schema,
    batch_put,
    create_table,
    create_trigger,
    outbox_items,
)

cli = CliRunner()
TABLE = "outbox"


def build(endpoint: str, ddb: Any) -> dict[str, Any]:
    create_table(ddb, TABLE)
    items, _ = outbox_items(60)
    batch_put(ddb, TABLE, items)
    sqs = boto3.client("sqs", endpoint_url=endpoint, region_name="us-east-1")
    url = sqs.create_queue(QueueName="dlq")["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"][
        "QueueArn"]
    sqs.send_message(QueueUrl=url, MessageBody="{}")
    mapping = create_trigger(endpoint, TABLE, DestinationConfig={
        "OnFailure": {"Destination": arn}})
    # What the sandbox's trigger publishes: 6 invocations, 2 of them errors, in the
    # last minutes.
    pub = MetricsPublisher(Aws(Settings(endpoint_url=endpoint, region="us-east-1")),
                           "sender")
    for i in range(6):
        pub.invocation(error=i < 2, duration_ms=120, iterator_age_ms=1500 + i)
    pub.flush()
    return {"mapping": mapping}


def test_watch_piped_prints_a_json_line_per_refresh_matching_stats(endpoint: str,
                                                                  ddb: Any) -> None:
    w = build(endpoint, ddb)
    res = cli("watch", "--table", TABLE, "--count", "2", "--interval", "1s")
    assert res.code == 0, res.err
    first, second = res.jsonl()
    assert_schema("watch-snapshot", first)  # with metrics and a destination backlog
    stats = cli("stats", "--table", TABLE, "-o", "json").json()
    for doc in (first, second):
        assert doc["counts"] == stats["counts"] and doc["total"] == stats["total"] == 60
        assert doc["errors"] == {}
    assert first["trigger"]["state"] == "Enabled"
    assert first["trigger"]["function"] == "sender"
    m = first["metrics"]
    assert m["no_metrics"] is False
    assert m["invocations_per_min"] == pytest.approx(6 / 5)
    assert m["errors_per_min"] == pytest.approx(2 / 5)
    assert m["iterator_age_ms"] == 1505
    assert first["destination"]["kind"] == "sqs" and first["destination"]["backlog"] == 1
    # the next refresh shows a change: the trigger disabled
    boto3.client("lambda", endpoint_url=endpoint, region_name="us-east-1"
                 ).update_event_source_mapping(UUID=w["mapping"]["UUID"], Enabled=False)
    res = cli("watch", "--table", TABLE, "--count", "1", "-o", "json")
    assert res.jsonl()[0]["trigger"]["state"] == "Disabled"


def test_watch_without_metrics_or_trigger_says_so(endpoint: str, ddb: Any) -> None:
    create_table(ddb, TABLE)
    res = cli("watch", "--table", TABLE, "--count", "1", "-o", "json")
    assert res.code == 0, res.err
    doc = res.jsonl()[0]
    assert doc["trigger"] is None and "no trigger" in doc["errors"]["trigger"]
    assert doc["counts"] == {"failed": 0, "stuck": 0, "pending": 0}
    res = cli("watch", "--table", TABLE, "--interval", "0.5")
    assert res.code == 2 and "--interval" in res.err


def test_sparkline() -> None:
    assert sparkline([0, 0, 0], 10) == "▁▁▁"
    assert sparkline([0, 5, 10], 10) == "▁▅█"
    assert sparkline([100, 1, 2, 3, 4], 4) == "▃▅▆█"  # the last 4, scaled to their max


def _doc(**over: Any) -> dict[str, Any]:
    doc = {"time": "2026-11-27T10:00:00Z", "table": "mail_outbox",
           "counts": {"failed": 87, "stuck": 3, "pending": 12}, "total": 102,
           "oldest_age_seconds": 250.0, "oldest_key": {"id": "msg-1"},
           "trigger": {"uuid": "u", "function": "mail-sender", "state": "Enabled",
                       "last_processing_result": "OK"},
           "metrics": {"window_minutes": 10, "no_metrics": False, "iterator_age_ms": 1234,
                       "iterator_age_max_ms": 2000, "invocations_per_min": 12.4,
                       "errors_per_min": 0.2, "throttles_per_min": 0},
           "destination": {"arn": "a", "kind": "sqs", "name": "mail-sender-failures",
                           "exists": True, "backlog": 3, "backlog_more": False,
                           "in_flight": 0, "url": "u", "prefix": None},
           "errors": {}, "seconds": 0.4}
    doc.update(over)
    return doc


@pytest.mark.parametrize("width", [80, 160])
def test_the_view_fits_the_terminal(width: int) -> None:
    from rich.console import Console

    # 100 refreshes; failed jumps only at the last one: cropping would hide it.
    history = [{"failed": 0 if n < 99 else 87, "stuck": 3, "pending": 200 - n}
               for n in range(100)]
    for doc in (_doc(), _doc(metrics={"window_minutes": 10, "no_metrics": True},
                             destination=None, errors={"destination": "access denied: "
                                                       "sqs:GetQueueAttributes is not "
                                                       "allowed for these credentials"})):
        out = io.StringIO()
        Console(file=out, width=width, force_terminal=False, color_system=None).print(
            view(doc, history, width=width, interval=5))
        text = out.getvalue()
        assert all(len(line) <= width for line in text.splitlines()), text
        spark = re.search(r"failed\s+87 ([▁▂▃▄▅▆▇█]+)", text)
        assert spark and spark.group(1).endswith("█")  # the newest (highest) point shows
        assert "mail-sender · Enabled" in text
    assert "12.4 invocations/min" in view_text(_doc(), history, width)
    assert "3 batch(es) given up on" in view_text(_doc(), history, width)


def view_text(doc: dict[str, Any], history: list[dict[str, int]], width: int) -> str:
    from rich.console import Console

    out = io.StringIO()
    Console(file=out, width=width, color_system=None).print(
        view(doc, history, width=width, interval=5))
    return out.getvalue()


@pytest.mark.slow
@pytest.mark.parametrize("columns", [80, 160])
def test_the_live_view_in_a_real_terminal(endpoint: str, ddb: Any, columns: int) -> None:
    """streamq watch under a pseudo-terminal of 80/160 columns: the live view (not
    JSON), every line within the width, Ctrl-C stops it with 130."""
    build(endpoint, ddb)
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 40, columns, 0, 0))
    env = {**os.environ, "AWS_ENDPOINT_URL": endpoint, "TERM": "xterm-256color",
           "NO_COLOR": "1"}
    env.pop("COLUMNS", None)
    proc = subprocess.Popen([sys.executable, "-m", "streamq.cli", "watch", "--table", TABLE,
                             "--interval", "1s"], stdin=slave, stdout=slave, stderr=slave,
                            env=env, close_fds=True, start_new_session=True)
    os.close(slave)
    screen = b""
    try:
        deadline = time.monotonic() + 30
        while b"DESTINATION" not in screen and time.monotonic() < deadline:
            ready, _, _ = select.select([master], [], [], 0.2)
            if ready:
                screen += os.read(master, 65536)
        assert b"DESTINATION" in screen, screen
        os.killpg(proc.pid, signal.SIGINT)
        code = proc.wait(timeout=20)
        while True:
            ready, _, _ = select.select([master], [], [], 0.2)
            if not ready:
                break
            try:
                chunk = os.read(master, 65536)
            except OSError:
                break
            if not chunk:
                break
            screen += chunk
    finally:
        if proc.poll() is None:
            proc.kill()
        os.close(master)
    text = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", screen.decode("utf-8", "replace"))
    lines = [ln for ln in text.replace("\r", "\n").split("\n") if ln.strip()]
    assert code == 130
    assert "Traceback" not in text and "streamq: error" not in text
    assert not text.lstrip().startswith("{")  # a view, not JSON
    assert all(len(ln) <= columns for ln in lines), [ln for ln in lines if len(ln) > columns]
    assert any(re.search(r"failed\s+\d+ [▁▂▃▄▅▆▇█]+", ln) for ln in lines)
    assert any("invocations/min" in ln for ln in lines)
