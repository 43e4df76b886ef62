"""Refire throughput for 1,000 ids: the AWS CLI loop, a sequential boto3 loop and
streamq, each straight to the local endpoint and through a proxy adding 10 ms per
request, against the endpoint's own measured UpdateItem capacity.

    python benchmarks/bench_refire.py [--n 1000] [--delay-ms 10] [--cli-sample 50]

Starts its own moto server (``python -m streamq.sandbox.server --port 0``) and latency
proxy (``benchmarks/latency_proxy.py``), both as subprocesses so they do not share this
process's GIL. Every measured write is the same conditional refire UpdateItem.
Prints numbers; asserts nothing.
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
TABLE = "bench_outbox"
ENV = {**os.environ, "AWS_ACCESS_KEY_ID": "bench", "AWS_SECRET_ACCESS_KEY": "bench",
       "AWS_DEFAULT_REGION": "us-east-1", "AWS_CONFIG_FILE": "/nonexistent",
       "AWS_SHARED_CREDENTIALS_FILE": "/nonexistent", "AWS_EC2_METADATA_DISABLED": "true",
       "AWS_PAGER": ""}
ENV.pop("AWS_PROFILE", None)
ENV.pop("AWS_ENDPOINT_URL", None)


def _spawn(cmd: list[str]) -> tuple[subprocess.Popen[str], int]:
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True, cwd=ROOT, env=ENV)
    assert proc.stdout is not None
    line = proc.stdout.readline()
    if not line.startswith("PORT "):
        proc.kill()
        raise RuntimeError(f"{cmd[1:3]} did not start: {line!r}")
    return proc, int(line.split()[1])


def _client(url: str, pool: int = 64) -> Any:
    import boto3
    from botocore.config import Config

    return boto3.client("dynamodb", endpoint_url=url, region_name="us-east-1",
                        aws_access_key_id="bench", aws_secret_access_key="bench",
                        config=Config(max_pool_connections=pool,
                                      retries={"mode": "standard", "max_attempts": 1}))


def _request(key: str, run: str) -> dict[str, Any]:
    return {
        "TableName": TABLE, "Key": {"id": {"S": key}},
        "UpdateExpression": "SET #t = :now, #r = :run ADD #c :one",
        "ConditionExpression": "attribute_exists(#h) AND (attribute_not_exists(#r) OR #r <> :run)",
        "ExpressionAttributeNames": {"#h": "id", "#t": "refired_at", "#r": "refire_run",
                                     "#c": "refire_count"},
        "ExpressionAttributeValues": {":now": {"S": time.strftime("%Y-%m-%dT%H:%M:%SZ")},
                                      ":run": {"S": run}, ":one": {"N": "1"}},
        "ReturnValuesOnConditionCheckFailure": "ALL_OLD",
    }


def seed(url: str, n: int) -> list[str]:
    ddb = _client(url)
    ddb.create_table(TableName=TABLE, KeySchema=[{"AttributeName": "id", "KeyType": "HASH"}],
                     AttributeDefinitions=[{"AttributeName": "id", "AttributeType": "S"}],
                     BillingMode="PAY_PER_REQUEST",
                     StreamSpecification={"StreamEnabled": True,
                                          "StreamViewType": "NEW_AND_OLD_IMAGES"})
    keys = [f"msg-{i:06d}" for i in range(n)]
    for start in range(0, n, 25):
        ddb.batch_write_item(RequestItems={TABLE: [
            {"PutRequest": {"Item": {"id": {"S": k}, "last_error": {"S": "429"},
                                     "created_at": {"S": "2026-01-01T00:00:00Z"}}}}
            for k in keys[start:start + 25]]})
    # A trigger on the stream, so streamq's pre-flight runs for real (moto never invokes it).
    import io
    import json
    import zipfile

    import boto3

    kw: dict[str, Any] = {"endpoint_url": url, "region_name": "us-east-1",
                          "aws_access_key_id": "bench", "aws_secret_access_key": "bench"}
    role = boto3.client("iam", **kw).create_role(
        RoleName="bench-role", AssumeRolePolicyDocument=json.dumps({
            "Version": "2012-10-17", "Statement": [{
                "Effect": "Allow", "Principal": {"Service": "lambda.amazonaws.com"},
                "Action": "sts:AssumeRole"}]}))["Role"]["Arn"]
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("h.py", "def handler(e, c):\n    return {}\n")
    lam = boto3.client("lambda", **kw)
    lam.create_function(FunctionName="bench-sender", Runtime="python3.12", Role=role,
                        Handler="h.handler", Code={"ZipFile": buf.getvalue()})
    arn = ddb.describe_table(TableName=TABLE)["Table"]["LatestStreamArn"]
    lam.create_event_source_mapping(EventSourceArn=arn, FunctionName="bench-sender",
                                    StartingPosition="TRIM_HORIZON")
    return keys


def timed(fn: Callable[[], int]) -> tuple[float, int]:
    start = time.perf_counter()
    n = fn()
    return time.perf_counter() - start, n


def capacity(url: str, keys: list[str], threads: int) -> float:
    """Many concurrent raw UpdateItem calls: what the endpoint itself sustains."""
    run = f"cap-{time.time_ns()}"
    local = threading.local()

    def one(k: str) -> None:
        if not hasattr(local, "c"):
            local.c = _client(url)
        local.c.update_item(**_request(k, run))

    def go() -> int:
        with ThreadPoolExecutor(threads) as pool:
            list(pool.map(one, keys))
        return len(keys)

    secs, n = timed(go)
    return n / secs


def boto3_loop(url: str, keys: list[str]) -> float:
    ddb = _client(url, pool=1)
    run = f"seq-{time.time_ns()}"

    def go() -> int:
        for k in keys:
            ddb.update_item(**_request(k, run))
        return len(keys)

    secs, n = timed(go)
    return n / secs


def aws_cli_loop(url: str, keys: list[str]) -> float:
    """The runbook people write today: a bash loop of `aws dynamodb update-item`."""
    run = f"cli-{time.time_ns()}"
    script = (
        'for id in "$@"; do aws dynamodb update-item --endpoint-url "$URL" '
        f'--table-name {TABLE} --key "{{\\"id\\":{{\\"S\\":\\"$id\\"}}}}" '
        '--update-expression "SET refired_at = :now, refire_run = :run ADD refire_count :one" '
        '--condition-expression "attribute_exists(id)" '
        '--expression-attribute-values '
        f'"{{\\":now\\":{{\\"S\\":\\"x\\"}},\\":run\\":{{\\"S\\":\\"{run}\\"}},'
        '\\":one\\":{\\"N\\":\\"1\\"}}" >/dev/null || exit 1; done')
    env = {**ENV, "URL": url}

    def go() -> int:
        subprocess.run(["bash", "-c", script, "bash", *keys], check=True, env=env)
        return len(keys)

    secs, n = timed(go)
    return n / secs


def streamq_refire(url: str, ids_file: Path, concurrency: int) -> tuple[float, float]:
    """(items/s over the whole command's wall time, items/s of the write phase)."""
    cmd = [sys.executable, "-c", "from streamq.cli.app import main; main()", "refire",
           "--table", TABLE, "--endpoint-url", url, "--ids-from", str(ids_file), "--yes",
           "--rate", "0", "--concurrency", str(concurrency)]
    start = time.perf_counter()
    res = subprocess.run(cmd, capture_output=True, text=True, env=ENV, cwd=ROOT)
    wall = time.perf_counter() - start
    if res.returncode != 0:
        raise RuntimeError(f"streamq refire failed ({res.returncode}): {res.stderr}")
    m = re.search(r"refired (\d+),.* in ([\d.]+)s", res.stderr)
    if not m:
        raise RuntimeError(f"no summary in: {res.stderr}")
    n, secs = int(m.group(1)), float(m.group(2))
    return n / wall, n / secs


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=1000)
    ap.add_argument("--delay-ms", type=float, default=10.0)
    ap.add_argument("--cli-sample", type=int, default=50,
                    help="ids the AWS CLI loop really runs (it is slow); rate extrapolated")
    ap.add_argument("--concurrency", type=int, default=32)
    ap.add_argument("--capacity-threads", type=int, default=32)
    args = ap.parse_args()

    server, port = _spawn([sys.executable, "-m", "streamq.sandbox.server", "--port", "0"])
    direct = f"http://127.0.0.1:{port}"
    proxy, pport = _spawn([sys.executable, str(ROOT / "benchmarks" / "latency_proxy.py"),
                           "--target", direct, "--delay-ms", str(args.delay_ms)])
    proxied = f"http://127.0.0.1:{pport}"
    try:
        time.sleep(0.5)
        keys = seed(direct, args.n)
        with tempfile.TemporaryDirectory() as tmp:
            ids_file = Path(tmp) / "ids.txt"
            ids_file.write_text("\n".join(keys) + "\n")
            rows: list[tuple[str, str, float, float | None]] = []
            print(f"{args.n} ids, moto server, proxy +{args.delay_ms:g} ms/request; "
                  f"AWS CLI timed on {args.cli_sample} ids and extrapolated", flush=True)
            cap = capacity(direct, keys, args.capacity_threads)
            print(f"  endpoint capacity ({args.capacity_threads} threads, direct): "
                  f"{cap:,.0f}/s", flush=True)
            cap_proxy_start = capacity(proxied, keys, args.capacity_threads)
            print(f"  endpoint capacity ({args.capacity_threads} threads, +{args.delay_ms:g}ms): "
                  f"{cap_proxy_start:,.0f}/s", flush=True)
            for label, url in (("direct", direct), (f"+{args.delay_ms:g}ms", proxied)):
                cli = aws_cli_loop(url, keys[:args.cli_sample])
                rows.append(("aws cli bash loop", label, cli, None))
                print(f"  {rows[-1][0]:<24}{label:>8}: {cli:,.1f}/s", flush=True)
                seq = boto3_loop(url, keys)
                rows.append(("boto3 sequential loop", label, seq, None))
                print(f"  {rows[-1][0]:<24}{label:>8}: {seq:,.1f}/s", flush=True)
                wall, phase = streamq_refire(url, ids_file, args.concurrency)
                rows.append((f"streamq (c={args.concurrency})", label, wall, phase))
                print(f"  {rows[-1][0]:<24}{label:>8}: {wall:,.1f}/s wall, {phase:,.1f}/s "
                      "write phase", flush=True)
            cap_proxy_end = capacity(proxied, keys, args.capacity_threads)
            cap_proxy = (cap_proxy_start + cap_proxy_end) / 2
            cap_end = capacity(direct, keys, args.capacity_threads)
            print(f"  endpoint capacity again at the end (direct): {cap_end:,.0f}/s", flush=True)
            cap_start, cap = cap, (cap + cap_end) / 2
    finally:
        for p in (proxy, server):
            p.terminate()
            try:
                p.wait(timeout=10)
            except subprocess.TimeoutExpired:
                p.kill()

    print()
    print(f"{'method':<24}{'path':>8}{'items/s':>10}{'write/s':>10}{'vs capacity':>13}"
          f"{'vs boto3 loop':>15}{'1000 ids take':>15}")
    seq_by_path = {path: v for m, path, v, _ in rows if m.startswith("boto3")}
    for method, path, value, phase in rows:
        ref = cap if path == "direct" else cap_proxy  # the capacity of the same path
        print(f"{method:<24}{path:>8}{value:>10,.1f}{(phase or value):>10,.1f}"
              f"{value / ref:>12.0%} {value / seq_by_path[path]:>14.1f}x"
              f"{args.n / value:>14.1f}s")
    print(f"\nendpoint capacity: {cap:,.0f}/s direct (mean of {cap_start:,.0f} at the start and "
          f"{cap_end:,.0f} at the end; the machine is shared), {cap_proxy:,.0f}/s through the "
          f"proxy (mean of {cap_proxy_start:,.0f} and {cap_proxy_end:,.0f}; "
          f"{args.capacity_threads} threads of raw update_item)")
    print("vs capacity: against the capacity of the same path (direct or through the proxy).")
    print("streamq items/s is the whole command (start-up, describe, trigger lookup, "
          "reading the ids, writes); write/s is its write phase alone.")


if __name__ == "__main__":
    main()
