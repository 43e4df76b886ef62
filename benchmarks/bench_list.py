#!/usr/bin/env python3
"""Benchmark ``streamq list`` against a plain boto3 script, ``aws dynamodb scan`` and the
endpoint's own capacity, on a local moto server. A script that prints numbers, not a test.

For each size in --sizes: start a fresh patched moto server (127.0.0.1, free port), seed a
table with ``tests.helpers.outbox_items(n)`` (5% failed, 5% stuck) using parallel
BatchWriteItem threads, then time, each as a fresh process (so each pays Python start-up):

  capacity        in-process Scan Select=COUNT, paginated to the end (the endpoint's limit)
  boto3 script    paginator Scan, FilterExpression matching every item, JSON lines out
  aws cli         ``aws dynamodb scan`` with the same FilterExpression (CLI v1 paginates)
  streamq         ``streamq list -o jsonl`` (default statuses failed+stuck), default
                  segments, ``--segments 1`` and the segment count streamq would pick on AWS
  + latency       the same through benchmarks/latency_proxy.py (10 ms per request), if present

Each child runs under a tiny wrapper (a fresh python) that times it and reads
``getrusage(RUSAGE_CHILDREN).ru_maxrss`` (peak RSS) and its CPU time.
Numbers are noisy on a shared 2-core machine: compare ratios within one run.

    python benchmarks/bench_list.py                      # 20000,100000 (~15 min)
    python benchmarks/bench_list.py --sizes 20000 --repeat 3
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import json
import os
import platform
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType, ModuleType
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
REGION = "us-east-1"
TABLE = "bench_outbox"
LARGE = 50_000  # sizes at or above this run each variant once, whatever --repeat says
PROXY_DELAY_MS = 10
PROXY_SIZE = 20_000

# Times the child, reports its peak RSS and CPU. Its own start-up is outside the timing.
WRAPPER = """\
import json, resource, subprocess, sys, time
argv = json.loads(sys.argv[1])
with open(sys.argv[2], "wb") as out, open(sys.argv[3], "wb") as err:
    t0 = time.perf_counter()
    rc = subprocess.call(argv, stdout=out, stderr=err)
    wall = time.perf_counter() - t0
ru = resource.getrusage(resource.RUSAGE_CHILDREN)
print(json.dumps({"rc": rc, "wall": wall, "maxrss_kb": ru.ru_maxrss,
                  "cpu": ru.ru_utime + ru.ru_stime}))
"""

# The plain boto3 equivalent: every page, every item, one JSON line each.
BOTO3_SCRIPT = """\
import json, sys
import boto3
url, table = sys.argv[1], sys.argv[2]
client = boto3.client("dynamodb", endpoint_url=url)
pages = client.get_paginator("scan").paginate(
    TableName=table, FilterExpression="attribute_exists(#k)",
    ExpressionAttributeNames={"#k": "id"})
write = sys.stdout.write
for page in pages:
    for item in page["Items"]:
        write(json.dumps(item) + "\\n")
"""


# --------------------------------------------------------------------------- plumbing


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def tool(name: str) -> str:
    """The console script next to this interpreter (no pyenv shim in the timing)."""
    path = BIN / name
    if path.exists():
        return str(path)
    import shutil

    found = shutil.which(name)
    if found is None:
        raise SystemExit(f"{name} not found")
    return found


def child_env() -> dict[str, str]:
    """Fake credentials, one region, no user AWS/streamq configuration."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("AWS_", "STREAMQ_", "BOTO_"))}
    env.update(AWS_ACCESS_KEY_ID="bench", AWS_SECRET_ACCESS_KEY="bench",
               AWS_DEFAULT_REGION=REGION, AWS_CONFIG_FILE="/nonexistent",
               AWS_SHARED_CREDENTIALS_FILE="/nonexistent", AWS_EC2_METADATA_DISABLED="true",
               AWS_PAGER="", NO_COLOR="1",
               PYTHONPATH=os.pathsep.join(p for p in (str(ROOT), env.get("PYTHONPATH")) if p))
    return env


def client(url: str, pool: int = 10) -> Any:
    import boto3
    from botocore.config import Config

    return boto3.client("dynamodb", endpoint_url=url, region_name=REGION,
                        aws_access_key_id="bench", aws_secret_access_key="bench",
                        config=Config(max_pool_connections=pool,
                                      retries={"mode": "standard", "max_attempts": 5}))


class MotoServer:
    """``python -m streamq.sandbox.server --port 0`` as a child; always stopped on exit."""

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.proc: subprocess.Popen[str] | None = None
        self.url = ""

    def __enter__(self) -> MotoServer:
        errlog = (self.workdir / "moto.stderr").open("w")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "streamq.sandbox.server", "--port", "0"],
            stdout=subprocess.PIPE, stderr=errlog, text=True, cwd=ROOT, env=child_env())
        errlog.close()
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        if not line.startswith("PORT "):
            self.stop()
            raise RuntimeError(f"moto server did not start: {line!r}")
        # Keep draining stdout so the server never blocks on a full pipe.
        threading.Thread(target=self.proc.stdout.read, daemon=True).start()
        self.url = f"http://127.0.0.1:{int(line.split()[1])}"
        self._wait_ready()
        return self

    def _wait_ready(self) -> None:
        import urllib.request

        deadline = time.monotonic() + 30
        while True:
            try:
                urllib.request.urlopen(self.url + "/moto-api/", timeout=2).read()
                return
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.terminate()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()

    def __exit__(self, *exc: object) -> None:
        self.stop()


# --------------------------------------------------------------------------- results


@dataclass
class Run:
    wall: float
    rss_mb: float | None = None
    cpu: float | None = None
    error: str = ""  # the child failed: its last stderr line


@dataclass
class Row:
    size: int
    variant: str
    runs: list[Run] = field(default_factory=list)
    check: str = ""

    @property
    def ok(self) -> bool:
        return any(not r.error for r in self.runs)

    @property
    def wall(self) -> float:
        good = [r.wall for r in self.runs if not r.error]
        return statistics.median(good or [r.wall for r in self.runs])

    @property
    def rss_mb(self) -> float | None:
        values = [r.rss_mb for r in self.runs if r.rss_mb is not None]
        return max(values) if values else None

    @property
    def cpu(self) -> float | None:
        values = [r.cpu for r in self.runs if r.cpu is not None]
        return statistics.median(values) if values else None


class Failed(RuntimeError):
    pass


def run_wrapped(argv: list[str], out: Path, workdir: Path) -> Run:
    err = workdir / "child.stderr"
    proc = subprocess.run([sys.executable, "-c", WRAPPER, json.dumps(argv), str(out), str(err)],
                          capture_output=True, text=True, env=child_env(), cwd=workdir,
                          check=False)
    if proc.returncode != 0:
        raise Failed(f"wrapper failed: {proc.stderr.strip()[-2000:]}")
    res = json.loads(proc.stdout)
    error = ""
    if res["rc"] != 0:
        lines = err.read_text(errors="replace").strip().splitlines() or ["(no stderr)"]
        error = f"exit {res['rc']}: {lines[-1][:160]}"
    return Run(res["wall"], res["maxrss_kb"] / 1024, res["cpu"], error)


# --------------------------------------------------------------------------- seeding


@dataclass
class Table:
    n: int
    truth: dict[str, set[Any]]
    generated_at: float  # outbox_items' clock: pending are 10 s old, stuck 600 s old then
    est_bytes: int


def item_bytes(item: dict[str, dict[str, str]]) -> int:
    """DynamoDB's item size, roughly (names + values; numbers ~ digits/2 + 1)."""
    size = 0
    for name, av in item.items():
        ((kind, value),) = av.items()
        size += len(name.encode()) + (len(value) // 2 + 1 if kind == "N" else
                                      len(value.encode()))
    return size


def seed(url: str, n: int) -> Table:
    sys.path.insert(0, str(ROOT))
    from tests.helpers import batch_put, create_table, outbox_items

    generated_at = time.time()
    items, truth = outbox_items(n)
    ddb = client(url, pool=16)
    create_table(ddb, TABLE)
    chunks = [items[i:i + 500] for i in range(0, n, 500)]
    started = time.perf_counter()
    with ThreadPoolExecutor(max_workers=8) as pool:
        list(pool.map(lambda chunk: batch_put(ddb, TABLE, chunk), chunks))
    count = ddb.describe_table(TableName=TABLE)["Table"]["ItemCount"]
    if count != n:
        raise Failed(f"seeded {count} items, wanted {n}")
    took = time.perf_counter() - started
    log(f"seeded {n:,} items in {took:.1f}s ({n / took:,.0f} items/s, 8 threads)")
    return Table(n, truth, generated_at, sum(item_bytes(it) for it in items))


# --------------------------------------------------------------------------- variants


@dataclass
class Variant:
    name: str
    what: str
    run: Callable[[Path], Run]  # output file -> timing
    verify: Callable[[Path], str]  # output file -> check text (raises Failed)


def capacity_variant(url: str, table: Table) -> Variant:
    pages = {"n": 0}

    def run(_out: Path) -> Run:
        ddb = client(url)
        ddb.describe_table(TableName=TABLE)  # connection and client set up outside timing
        params: dict[str, Any] = {"TableName": TABLE, "Select": "COUNT"}
        total = pages["n"] = 0
        t0 = time.perf_counter()
        while True:
            page = ddb.scan(**params)
            total += page["Count"]
            pages["n"] += 1
            if "LastEvaluatedKey" not in page:
                break
            params["ExclusiveStartKey"] = page["LastEvaluatedKey"]
        wall = time.perf_counter() - t0
        if total != table.n:
            raise Failed(f"COUNT scan saw {total}, wanted {table.n}")
        return Run(wall)

    return Variant("capacity (Scan COUNT)",
                   "in-process boto3 Scan Select=COUNT, all pages; no Python start-up, no "
                   "items on the wire", run, lambda _o: f"count ok, {pages['n']} pages")


def boto3_variant(url: str, table: Table, workdir: Path, name: str = "boto3 script",
                  ) -> Variant:
    def run(out: Path) -> Run:
        return run_wrapped([sys.executable, "-c", BOTO3_SCRIPT, url, TABLE], out, workdir)

    def verify(out: Path) -> str:
        with out.open("rb") as fh:
            lines = sum(1 for _ in fh)
        if lines != table.n:
            raise Failed(f"boto3 script printed {lines} lines, wanted {table.n}")
        return f"{lines:,} lines = all items"

    return Variant(name, "python -c: paginator Scan, FilterExpression attribute_exists(id) "
                   "(passes every item), json.dumps each item as a line", run, verify)


def aws_variant(url: str, table: Table, workdir: Path) -> Variant:
    argv = [tool("aws"), "dynamodb", "scan", "--table-name", TABLE,
            "--filter-expression", "attribute_exists(#k)",
            "--expression-attribute-names", '{"#k": "id"}',
            "--endpoint-url", url, "--region", REGION, "--output", "json"]

    def verify(out: Path) -> str:
        with out.open() as fh:
            doc = json.load(fh)
        got = len(doc.get("Items", []))
        if got != table.n:
            raise Failed(f"aws cli returned {got} items, wanted {table.n}")
        return f"{got:,} items = all items"

    return Variant("aws dynamodb scan",
                   "aws CLI v1, same FilterExpression, auto-pagination, one JSON document "
                   "(CLI v1 holds every page in memory before printing)",
                   lambda out: run_wrapped(argv, out, workdir), verify)


def streamq_variant(url: str, table: Table, workdir: Path, segments: int | None,
                    label: str, what: str) -> Variant:
    wanted = table.truth["failed"] | table.truth["stuck"]

    def run(out: Path) -> Run:
        # outbox_items made pending items 10 s old and stuck ones 600 s old: put the
        # stuck-after boundary half-way between them *now*, so a slow run classifies
        # exactly as outbox_items meant (a fixed 5m would turn pending into stuck).
        stuck_after = int(time.time() - table.generated_at) + 305
        argv = [tool("streamq"), "--table", TABLE, "--endpoint-url", url, "--region", REGION,
                "--stuck-after", f"{stuck_after}s", "list", "-o", "jsonl"]
        if segments is not None:
            argv += ["--segments", str(segments)]
        return run_wrapped(argv, out, workdir)

    def verify(out: Path) -> str:
        seen: list[str] = []
        with out.open() as fh:
            for line in fh:
                rec = json.loads(line)
                if rec["status"] not in ("failed", "stuck"):
                    raise Failed(f"streamq printed a {rec['status']} record")
                seen.append(rec["key"]["id"])
        if len(seen) != len(wanted) or set(seen) != wanted:
            raise Failed(f"streamq printed {len(seen)} lines ({len(set(seen))} keys), "
                         f"wanted the {len(wanted)} failed+stuck keys")
        return f"{len(seen):,} lines = failed+stuck keys"

    return Variant(label, what, run, verify)


# --------------------------------------------------------------------------- latency proxy


def load_proxy() -> ModuleType | None:
    path = ROOT / "benchmarks" / "latency_proxy.py"
    if not path.exists():
        return None
    spec = importlib.util.spec_from_file_location("bench_latency_proxy", path)
    if spec is None or spec.loader is None:
        return None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while it loads
    spec.loader.exec_module(module)
    return module


@contextlib.contextmanager
def proxied(url: str, module: ModuleType) -> Iterator[str]:
    """The other engineer's proxy on a background thread of this process:
    ``start_proxy(target, delay_ms)`` -> an object with ``url`` and ``close()``."""
    proxy = module.start_proxy(url, delay_ms=PROXY_DELAY_MS)
    try:
        yield str(proxy.url)
    finally:
        proxy.close()


# --------------------------------------------------------------------------- the run


def measure(variant: Variant, row: Row, workdir: Path) -> None:
    out = workdir / "out"
    run = variant.run(out)
    check = f"FAILED after {run.wall:.0f}s, {run.error}" if run.error else variant.verify(out)
    if out.exists():
        out.unlink()
    row.runs.append(run)
    row.check = check
    rss = "" if run.rss_mb is None else f", peak RSS {run.rss_mb:.0f} MB, CPU {run.cpu:.1f}s"
    log(f"  {variant.name:<28} {run.wall:7.2f}s{rss}  [{check}]")


def bench_size(n: int, repeat: int, skip_aws: bool, workdir: Path,
               notes: list[str]) -> list[Row]:
    from streamq.outbox import KeyAttr, TableInfo, auto_segments

    with MotoServer(workdir) as server:
        log(f"size {n:,}: moto at {server.url}")
        table = seed(server.url, n)
        url = server.url

        # What streamq's default picks here (from DescribeTable), and what it would pick
        # against AWS for a table this size.
        desc = client(url).describe_table(TableName=TABLE)["Table"]
        info = TableInfo(TABLE, KeyAttr("id", "S"),
                         size_bytes=int(desc.get("TableSizeBytes", 0) or 0))
        moto_default = auto_segments(info)
        aws_default = auto_segments(TableInfo(TABLE, info.hash_key, size_bytes=table.est_bytes))
        notes.append(f"{n:,} items ≈ {table.est_bytes / 1_048_576:.1f} MiB: streamq's default "
                     f"picks {moto_default} segment(s) on moto (DescribeTable TableSizeBytes="
                     f"{info.size_bytes}); on AWS it would pick {aws_default}")

        variants = [capacity_variant(url, table), boto3_variant(url, table, workdir)]
        if not skip_aws:
            variants.append(aws_variant(url, table, workdir))
        variants.append(streamq_variant(
            url, table, workdir, None, "streamq list (default seg)",
            f"streamq list -o jsonl, default segments ({moto_default} here)"))
        if n < LARGE or moto_default != 1:
            variants.append(streamq_variant(url, table, workdir, 1,
                                            "streamq list --segments 1",
                                            "streamq list -o jsonl --segments 1"))
        else:
            notes.append(f"{n:,}: --segments 1 not run separately: on moto the default is 1 "
                         "segment, the same invocation (saves one slow full scan)")
        if aws_default != moto_default and aws_default != 1:
            variants.append(streamq_variant(
                url, table, workdir, aws_default, f"streamq list --segments {aws_default}",
                f"streamq list -o jsonl --segments {aws_default} (its default on AWS)"))

        rows = {v.name: Row(n, v.name) for v in variants}
        times = 1 if n >= LARGE else repeat
        for i in range(times):
            if times > 1:
                log(f" round {i + 1}/{times}")
            for v in variants:  # interleaved, so drift hits every variant alike
                measure(v, rows[v.name], workdir)

        if n == PROXY_SIZE:
            rows.update(latency_rows(url, table, workdir, times, notes))
        return list(rows.values())


def latency_rows(url: str, table: Table, workdir: Path, times: int,
                 notes: list[str]) -> dict[str, Row]:
    try:
        module = load_proxy()
    except Exception as exc:
        notes.append(f"latency variant skipped: benchmarks/latency_proxy.py failed to load: "
                     f"{exc!r}")
        return {}
    if module is None:
        notes.append("latency variant skipped: benchmarks/latency_proxy.py does not exist")
        log("latency variant skipped: benchmarks/latency_proxy.py does not exist")
        return {}
    rows: dict[str, Row] = {}
    try:
        with proxied(url, module) as purl:
            log(f" through latency proxy {purl} (+{PROXY_DELAY_MS} ms/request)")
            tag = f" +{PROXY_DELAY_MS}ms"
            variants = [
                boto3_variant(purl, table, workdir, name="boto3 script" + tag),
                streamq_variant(purl, table, workdir, None, "streamq list (default)" + tag,
                                "streamq list -o jsonl via the proxy"),
            ]
            for name in [v.name for v in variants]:
                rows[name] = Row(table.n, name)
            for _ in range(times):
                for v in variants:
                    measure(v, rows[v.name], workdir)
    except Failed as exc:
        notes.append(f"latency variant failed: {exc}")
        log(f"latency variant failed: {exc}")
    return rows


def median_wall(argv: list[str], times: int = 5) -> float:
    env = child_env()
    subprocess.run(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env,
                   check=False)  # warm the page cache
    walls = []
    for _ in range(times):
        t0 = time.perf_counter()
        subprocess.run(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env,
                       check=True)
        walls.append(time.perf_counter() - t0)
    return statistics.median(walls)


# --------------------------------------------------------------------------- report


def fmt_rate(n: int, seconds: float) -> str:
    return f"{n / seconds:,.0f}"


def report(rows: list[Row], startup: dict[str, float], notes: list[str], started: float,
           load_before: tuple[float, float, float], repeat: int) -> None:
    print()
    print("streamq list benchmark (benchmarks/bench_list.py)")
    print("=" * 100)
    print(f"machine: {os.cpu_count()} cores, {platform.platform()}, Python "
          f"{platform.python_version()}; load average before "
          f"{'/'.join(f'{x:.2f}' for x in load_before)}, after "
          f"{'/'.join(f'{x:.2f}' for x in os.getloadavg())}; total {time.time() - started:.0f}s")
    print("Numbers are noisy (shared 2-core machine, other work running): compare ratios "
          "within this run, not across runs.")
    print(f"--repeat {repeat}: median wall of the repeats for sizes < {LARGE:,}; larger sizes "
          "run once.")
    print()
    print("Variants (each child is a fresh process under a wrapper that times it and reads "
          "its peak RSS;\nstdout goes to a scratch file, counted then deleted, instead of "
          "/dev/null, to verify it):")
    print("  capacity (Scan COUNT)   in-process Scan Select=COUNT, all pages: the endpoint's "
          "own limit, no start-up")
    print("  boto3 script            python -c: paginator Scan with FilterExpression "
          "attribute_exists(id), i.e. every item;\n"
          "                          json.dumps each item as a line (the fair equivalent: "
          "streamq\n                          classifies failed/stuck client-side from "
          "created_at's age, so it reads every item too)")
    print("  aws dynamodb scan       AWS CLI v1, same FilterExpression, auto-paginated, one "
          "JSON document")
    print("  streamq list …          streamq -o jsonl, statuses failed+stuck (default), "
          "--stuck-after set to the\n                          midpoint between pending "
          "(10 s) and stuck (600 s) ages at launch; prints 10% of items")
    print()
    head = (f"{'size':>8}  {'variant':<32} {'wall s':>8} {'items/s':>9} {'peak RSS MB':>11} "
            f"{'CPU s':>6}  check")
    print(head)
    print("-" * len(head))
    for r in rows:
        rss = "" if r.rss_mb is None else f"{r.rss_mb:.0f}"
        cpu = "" if r.cpu is None else f"{r.cpu:.1f}"
        rate = fmt_rate(r.size, r.wall) if r.ok else "-"
        print(f"{r.size:>8,}  {r.variant:<32} {r.wall:>8.2f} {rate:>9} "
              f"{rss:>11} {cpu:>6}  {r.check}")
    print()
    print("Ratios (wall time; >1 = slower than the reference):")
    by = {(r.size, r.variant): r for r in rows if r.ok}
    sizes = sorted({r.size for r in rows})
    for n in sizes:
        sq = by.get((n, "streamq list (default seg)"))
        if sq is None:
            continue
        parts = []
        for ref, short in (("boto3 script", "boto3 script"), ("capacity (Scan COUNT)",
                                                               "capacity"),
                           ("aws dynamodb scan", "aws cli")):
            other = by.get((n, ref))
            if other is not None:
                parts.append(f"streamq / {short} = {sq.wall / other.wall:.2f}")
        seg1 = by.get((n, "streamq list --segments 1"))
        if seg1 is not None:
            parts.append(f"default seg / --segments 1 = {sq.wall / seg1.wall:.2f}")
        one, one_name = (seg1, "--segments 1") if seg1 is not None else (sq, "default (1)")
        for r in rows:
            if (r.size == n and r.ok and r.variant.startswith("streamq list --segments ")
                    and r is not seg1):
                parts.append(f"{r.variant.removeprefix('streamq list ')} / {one_name}"
                             f" = {r.wall / one.wall:.2f}")
        print(f"  {n:>8,}: " + "; ".join(parts))
    for n in sizes:
        tagged = {r.variant: r for r in rows if r.size == n and "+" in r.variant}
        if tagged:
            base = {v: by.get((n, v)) for v in ("boto3 script", "streamq list (default seg)")}
            bits = [f"{v}: {r.wall:.2f}s" for v, r in tagged.items()]
            print(f"  latency at {n:,}: " + "; ".join(bits) + " (no proxy: " + ", ".join(
                f"{v} {r.wall:.2f}s" for v, r in base.items() if r is not None) + ")")
    if len(sizes) >= 2:
        lo, hi = sizes[0], sizes[-1]
        print(f"Memory, peak RSS {hi:,} / {lo:,} items ({hi // lo}x the items):")
        for v in ("streamq list (default seg)", "streamq list --segments 1", "boto3 script",
                  "aws dynamodb scan"):
            a, b = by.get((lo, v)), by.get((hi, v))
            if a and b and a.rss_mb and b.rss_mb:
                print(f"  {v:<28} {a.rss_mb:6.0f} MB -> {b.rss_mb:6.0f} MB  "
                      f"ratio {b.rss_mb / a.rss_mb:.2f}")
    print()
    print("Start-up (median of 5, after one warm-up run):")
    for name, secs in startup.items():
        print(f"  {name:<62} {secs * 1000:6.0f} ms")
    if notes:
        print()
        print("Notes:")
        for note in notes:
            print(f"  - {note}")


def _interrupt(signum: int, _frame: FrameType | None) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="20000,100000",
                        help="comma-separated table sizes [default: 20000,100000]")
    parser.add_argument("--skip-aws-cli", action="store_true", help="skip aws dynamodb scan")
    parser.add_argument("--repeat", type=int, default=1,
                        help=f"runs per variant for sizes < {LARGE:,} (median) [default: 1]")
    args = parser.parse_args(argv)
    sizes = [int(s) for s in args.sizes.split(",") if s.strip()]
    if not sizes or min(sizes) < 100 or args.repeat < 1:
        parser.error("sizes must be >= 100 and --repeat >= 1")
    signal.signal(signal.SIGTERM, _interrupt)
    sys.path.insert(0, str(ROOT))
    os.chdir(ROOT)

    started, load_before = time.time(), os.getloadavg()
    rows: list[Row] = []
    notes: list[str] = []
    with tempfile.TemporaryDirectory(prefix="bench_list.") as tmp:
        workdir = Path(tmp)
        startup = {
            "python -c pass": median_wall([sys.executable, "-c", "pass"]),
            f"streamq --help ({tool('streamq')})": median_wall([tool("streamq"), "--help"]),
            f"aws --version ({tool('aws')})": median_wall([tool("aws"), "--version"]),
        }
        for name, secs in startup.items():
            log(f"start-up {name}: {secs * 1000:.0f} ms")
        try:
            for n in sizes:
                rows.extend(bench_size(n, args.repeat, args.skip_aws_cli, workdir, notes))
        except KeyboardInterrupt:
            log("interrupted: servers stopped; partial results follow")
            notes.append("interrupted: partial results")
        except Failed as exc:
            log(f"FAILED: {exc}")
            notes.append(f"FAILED: {exc}")
            report(rows, startup, notes, started, load_before, args.repeat)
            return 1
    if PROXY_SIZE not in sizes:
        notes.append(f"latency variant runs only at size {PROXY_SIZE:,}")
    report(rows, startup, notes, started, load_before, args.repeat)
    return 0


if __name__ == "__main__":
    sys.exit(main())
