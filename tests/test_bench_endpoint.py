"""Smoke test of the benchmark endpoint (benchmarks/bench_endpoint.py) on a tiny table:
it answers what list/stats/show send, pages by size, and streamq reads exactly the
expected keys from it (table scan, parallel segments, the sparse error index, a Query)."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from benchmarks.bench_endpoint import Outbox
from tests.helpers import CliRunner

ROOT = Path(__file__).resolve().parent.parent
N = 600
EPOCH = time.time()


@pytest.fixture(scope="module")
def bench_url() -> Iterator[str]:
    # 16 KB pages instead of AWS's 1 MB: ~30 items a page, so paging is exercised.
    proc = subprocess.Popen([sys.executable, str(ROOT / "benchmarks" / "bench_endpoint.py"),
                             "--items", str(N), "--page-bytes", "16000",
                             "--epoch", str(EPOCH)],
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    assert proc.stdout is not None
    line = proc.stdout.readline()
    try:
        assert line.startswith("PORT "), line
        yield f"http://127.0.0.1:{int(line.split()[1])}"
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def _streamq(url: str, *args: str) -> list[str]:
    res = CliRunner()("--table", "bench_outbox", "--endpoint-url", url, "--region",
                      "us-east-1", "--stuck-after", "1d", *args)
    assert res.code == 0, res.err
    return res.out.splitlines()


def test_streamq_reads_exactly_the_expected_keys(bench_url: str) -> None:
    box = Outbox(N, EPOCH)
    listed = box.expected(("failed", "stuck"))
    for seg in ("1", "3"):
        lines = _streamq(bench_url, "list", "-o", "ids", "--segments", seg)
        assert len(lines) == len(set(lines)) and set(lines) == listed
    # --status failed scans the sparse index keyed on the error attribute.
    failed = _streamq(bench_url, "list", "--status", "failed", "-o", "ids", "--debug")
    assert set(failed) == box.expected(("failed",))
    # --where tenant=acme queries the tenant index (equality on its hash key).
    acme = _streamq(bench_url, "list", "--where", "tenant=acme", "-o", "ids")
    assert set(acme) == {k for k in listed if box.item(int(k[4:]))["tenant"]["S"] == "acme"}
    # A filter the endpoint evaluates (contains) on a table scan.
    e429 = _streamq(bench_url, "list", "--where", "last_error~429", "-o", "ids")
    assert set(e429) == {k for k in listed
                         if "429" in box.item(int(k[4:])).get("last_error", {}).get("S", "")}
    assert e429 and set(e429) < listed


def test_pages_follow_the_size_rule_and_get_item_matches(bench_url: str) -> None:
    import boto3

    from benchmarks.bench_endpoint import item_size

    box = Outbox(N, EPOCH)
    ddb = boto3.client("dynamodb", endpoint_url=bench_url, region_name="us-east-1",
                       aws_access_key_id="x", aws_secret_access_key="x")
    pages = list(ddb.get_paginator("scan").paginate(
        TableName="bench_outbox", ProjectionExpression="#k", ExpressionAttributeNames={
            "#k": "id"}))
    assert len(pages) > 10
    sizes = [sum(item_size(box.item(int(it["id"]["S"][4:]))) for it in p["Items"])
             for p in pages]
    assert max(sizes) <= 16000 < max(sizes) + item_size(box.item(0)) * 2
    assert all(set(it) == {"id"} for p in pages for it in p["Items"])
    got = ddb.get_item(TableName="bench_outbox", Key={"id": {"S": box.key(8)}})["Item"]
    assert got == box.item(8)
    stats = CliRunner()("--table", "bench_outbox", "--endpoint-url", bench_url, "--region",
                        "us-east-1", "--stuck-after", "1d", "stats", "-o", "json").json()
    assert stats["counts"] == box.counts() and stats["total"] == N
