#!/usr/bin/env python3
"""``streamq list``/``stats`` at DynamoDB's speed: on the benchmark endpoint
(benchmarks/bench_endpoint.py: pre-built 1 MB pages, a delay per request), against a boto3
paginator script, ``aws dynamodb scan`` and the raw-HTTP ceiling. Prints numbers; checks
every output for the exact expected set.

    python benchmarks/bench_scan.py                                # the whole matrix
    python benchmarks/bench_scan.py --sizes 100000 --delays 0 --segments 1,8
    python benchmarks/bench_scan.py --commands ids,count --skip-aws-cli

For each size a fresh endpoint process (``bench_endpoint.py --items N``); for each delay
(set at run time on the endpoint) and segment count, each variant runs as a fresh process
under a wrapper that times it and samples the peak RSS of its whole process tree:

  raw           in this process: one thread per segment, http.client keep-alive POSTs of
                the Scan (same ProjectionExpression as streamq's), reads each body and
                finds LastEvaluatedKey at its end: the ceiling (checked: Count adds to N)
  raw+json      the same, json.loads of every page (checked: the exact key set)
  boto3 script  paginator Scan with the ids projection, one key per line (1 segment)
  aws cli       ``aws dynamodb scan`` with the same projection, one JSON document
  streamq ...   ``streamq list -o ids``, ``-o jsonl``, ``--count``, ``stats -o json``
                with ``--segments S``

Compare ratios within one run: the machine is shared (2 cores, other work running).
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import platform
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_endpoint import KEY, TABLE, Outbox  # noqa: E402

BIN = Path(sys.executable).parent
REGION = "us-east-1"
# What streamq's ids/--count/stats read: the key, the created time and the error.
IDS_ATTRS = (KEY, "created_at", "last_error")
STUCK_AFTER = "1d"  # pending items are created at the endpoint's start, stuck ones 2 days ago

# Times the child; samples the summed RSS of its process tree every 20 ms.
WRAPPER = r"""
import json, os, resource, subprocess, sys, threading, time
argv = json.loads(sys.argv[1])
def tree(pid):
    out = [pid]
    try:
        for tid in os.listdir(f"/proc/{pid}/task"):
            with open(f"/proc/{pid}/task/{tid}/children") as fh:
                for c in fh.read().split():
                    out.extend(tree(int(c)))
    except OSError:
        pass
    return out
def rss(pid):
    try:
        with open(f"/proc/{pid}/statm") as fh:
            return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return 0
peak = [0]
with open(sys.argv[2], "wb") as out, open(sys.argv[3], "wb") as err:
    t0 = time.perf_counter()
    proc = subprocess.Popen(argv, stdout=out, stderr=err)
    done = threading.Event()
    def sample():
        while not done.is_set():
            peak[0] = max(peak[0], sum(rss(p) for p in tree(proc.pid)))
            done.wait(0.02)
    th = threading.Thread(target=sample, daemon=True)
    th.start()
    rc = proc.wait()
    wall = time.perf_counter() - t0
    done.set()
    th.join()
ru = resource.getrusage(resource.RUSAGE_CHILDREN)
print(json.dumps({"rc": rc, "wall": wall, "rss": max(peak[0], ru.ru_maxrss * 1024),
                  "cpu": ru.ru_utime + ru.ru_stime}))
"""

BOTO3_SCRIPT = """\
import sys
import boto3
url, table = sys.argv[1], sys.argv[2]
names = {f"#a{i}": n for i, n in enumerate(sys.argv[3].split(","))}
client = boto3.client("dynamodb", endpoint_url=url)
pages = client.get_paginator("scan").paginate(
    TableName=table, ProjectionExpression=", ".join(names), ExpressionAttributeNames=names)
write = sys.stdout.write
for page in pages:
    for item in page["Items"]:
        write(item["id"]["S"] + "\\n")
"""


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def tool(name: str) -> str:
    path = BIN / name
    if path.exists():
        return str(path)
    import shutil

    found = shutil.which(name)
    if found is None:
        raise SystemExit(f"{name} not found")
    return found


def child_env() -> dict[str, str]:
    # PYTHONUNBUFFERED would make every line a write(2) for streamq and the boto3 script
    # alike, and PYTHONDONTWRITEBYTECODE would recompile every module of every tool at
    # every start: measure what people run.
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("AWS_", "STREAMQ_", "BOTO_"))
           and k not in ("PYTHONUNBUFFERED", "PYTHONDONTWRITEBYTECODE")}
    env.update(AWS_ACCESS_KEY_ID="bench", AWS_SECRET_ACCESS_KEY="bench",
               AWS_DEFAULT_REGION=REGION, AWS_CONFIG_FILE="/nonexistent",
               AWS_SHARED_CREDENTIALS_FILE="/nonexistent", AWS_EC2_METADATA_DISABLED="true",
               AWS_PAGER="", NO_COLOR="1")
    for k in ("STREAMQ_FAST_PAGES",):
        if k in os.environ:
            env[k] = os.environ[k]
    return env


def cpu_seconds(pid: int) -> float:
    """utime + stime of a process and its waited-for children, from /proc."""
    try:
        with open(f"/proc/{pid}/stat") as fh:
            fields = fh.read().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    ticks = os.sysconf("SC_CLK_TCK")
    return sum(int(x) for x in fields[11:15]) / ticks


class Endpoint:
    def __init__(self, n: int, processes: int) -> None:
        self.n, self.processes = n, processes
        self.proc: subprocess.Popen[str] | None = None
        self.url = ""
        self.pids: list[int] = []

    def __enter__(self) -> Endpoint:
        self.proc = subprocess.Popen(
            [sys.executable, str(ROOT / "benchmarks" / "bench_endpoint.py"), "--items",
             str(self.n), "--processes", str(self.processes)],
            stdout=subprocess.PIPE, text=True, cwd=ROOT)
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        if not line.startswith("PORT "):
            self.close()
            raise RuntimeError(f"endpoint did not start: {line!r}")
        self.url = f"http://127.0.0.1:{int(line.split()[1])}"
        self.pids = [self.proc.pid]
        try:
            with open(f"/proc/{self.proc.pid}/task/{self.proc.pid}/children") as fh:
                self.pids += [int(c) for c in fh.read().split()]
        except OSError:
            pass
        return self

    def cpu(self) -> float:
        return sum(cpu_seconds(p) for p in self.pids)

    def set_delay(self, ms: float) -> None:
        # One request per serving process would be needed with --processes > 1: the
        # setting is per process. Send it a few times over fresh connections.
        for _ in range(max(1, self.processes) * 8):
            req = urllib.request.Request(self.url + "/__bench/config", method="POST",
                                         data=json.dumps({"delay_ms": ms}).encode())
            urllib.request.urlopen(req, timeout=10).read()

    def close(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def __exit__(self, *exc: object) -> None:
        self.close()


@dataclass
class Row:
    size: int
    delay: float
    segments: int
    variant: str
    wall: float
    cpu: float | None
    rss_mb: float | None
    server_cpu: float
    check: str
    ok: bool

    @property
    def rate(self) -> float:
        return self.size / self.wall if self.wall else 0.0


class Failed(RuntimeError):
    pass


def run_wrapped(argv: list[str], out: Path, workdir: Path,
                env: dict[str, str] | None = None) -> tuple[float, float, float, str]:
    err = workdir / "child.stderr"
    proc = subprocess.run([sys.executable, "-c", WRAPPER, json.dumps(argv), str(out), str(err)],
                          capture_output=True, text=True, env={**child_env(), **(env or {})},
                          cwd=workdir, check=False)
    if proc.returncode != 0:
        raise Failed(f"wrapper failed: {proc.stderr.strip()[-2000:]}")
    res = json.loads(proc.stdout)
    error = ""
    if res["rc"] != 0:
        lines = err.read_text(errors="replace").strip().splitlines() or ["(no stderr)"]
        error = f"exit {res['rc']}: {lines[-1][:200]}"
    return res["wall"], res["cpu"], res["rss"] / 1_048_576, error


# --------------------------------------------------------------------------- raw client


def raw_scan(url: str, segments: int, attrs: tuple[str, ...] | None, parse: bool,
             ) -> tuple[int, set[str] | None]:
    host, port = url.removeprefix("http://").split(":")
    counts = [0] * segments
    keys: list[list[str]] = [[] for _ in range(segments)]
    errors: list[BaseException] = []

    def segment(s: int) -> None:
        try:
            conn = http.client.HTTPConnection(host, int(port), timeout=120)
            req: dict[str, Any] = {"TableName": TABLE}
            if segments > 1:
                req.update(Segment=s, TotalSegments=segments)
            if attrs:
                names = {f"#a{i}": a for i, a in enumerate(attrs)}
                req.update(ProjectionExpression=", ".join(names),
                           ExpressionAttributeNames=names)
            headers = {"X-Amz-Target": "DynamoDB_20120810.Scan",
                       "Content-Type": "application/x-amz-json-1.0"}
            while True:
                conn.request("POST", "/", json.dumps(req), headers)
                resp = conn.getresponse()
                body = resp.read()
                if resp.status != 200:
                    raise Failed(f"raw scan: HTTP {resp.status}: {body[:200]!r}")
                if parse:
                    doc = json.loads(body)
                    keys[s].extend(it[KEY]["S"] for it in doc["Items"])
                    counts[s] += doc["Count"]
                    lek = doc.get("LastEvaluatedKey")
                else:
                    at = body.rfind(b'"LastEvaluatedKey":')
                    tail = body[body.rfind(b'"Count":'):]
                    counts[s] += int(tail[8:tail.index(b",")])
                    lek = json.loads(body[at + 19:-1]) if at >= 0 else None
                if not lek:
                    return
                req["ExclusiveStartKey"] = lek
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=segment, args=(s,)) for s in range(segments)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:
        raise errors[0]
    if not parse:
        return sum(counts), None
    flat = [k for part in keys for k in part]
    got = set(flat)
    if len(got) != len(flat):
        raise Failed("raw+json saw duplicate keys")
    return sum(counts), got


# --------------------------------------------------------------------------- variants


@dataclass
class Variant:
    name: str
    segments: int
    run: Callable[[Path], tuple[float, float | None, float | None, str]]
    verify: Callable[[Path], str]


def read_lines(out: Path) -> list[str]:
    with out.open(encoding="utf-8") as fh:
        return [line.rstrip("\n") for line in fh]


def exact(seen: list[str], want: set[str], what: str) -> str:
    got = set(seen)
    if len(got) != len(seen):
        raise Failed(f"{what}: {len(seen) - len(got)} duplicate line(s)")
    if got != want:
        missing, extra = len(want - got), len(got - want)
        raise Failed(f"{what}: {missing} expected key(s) missing, {extra} unexpected")
    return f"exact: {len(seen):,} keys"


def variants(url: str, box: Outbox, segments: list[int], commands: list[str],
             workdir: Path, others: bool, aws_cli: bool, extras: list[int],
             first_delay: bool = True) -> list[Variant]:
    everything = {box.key(i) for i in range(box.n)}
    listed = box.expected(("failed", "stuck"))
    counts = box.counts()
    out: list[Variant] = []
    base = [tool("streamq"), "--table", TABLE, "--endpoint-url", url, "--region", REGION,
            "--stuck-after", STUCK_AFTER]

    def wrapped(argv: list[str], env: dict[str, str] | None = None,
                ) -> Callable[[Path], tuple[float, float | None, float | None, str]]:
        return lambda o: run_wrapped(argv, o, workdir, env)

    def ids_check(o: Path) -> str:
        return exact(read_lines(o), listed, "list -o ids")

    def count_check(o: Path) -> str:
        got = int(o.read_text().strip())
        if got != len(listed):
            raise Failed(f"--count printed {got}, wanted {len(listed)}")
        return f"exact: {got:,}"

    def stats_check(o: Path) -> str:
        doc = json.loads(o.read_text())
        if doc["total"] != box.n or doc["counts"] != counts:
            raise Failed(f"stats: total {doc['total']}, counts {doc['counts']}; "
                         f"wanted {box.n}, {counts}")
        return f"exact: {counts}"

    def jsonl_check(o: Path) -> str:
        keys = []
        with o.open(encoding="utf-8") as fh:
            for line in fh:
                rec = json.loads(line)
                if rec["status"] not in ("failed", "stuck"):
                    raise Failed(f"jsonl printed a {rec['status']} record")
                keys.append(rec["key"][KEY])
        return exact(keys, listed, "list -o jsonl")

    for s in segments:
        for attrs, label in ((IDS_ATTRS, "raw (ids projection)"), (None, "raw (full items)")):
            def raw_run(o: Path, s: int = s, attrs: Any = attrs) -> tuple[float, None, None, str]:
                t0 = time.perf_counter()
                total, _ = raw_scan(url, s, attrs, parse=False)
                o.write_text(str(total))
                return time.perf_counter() - t0, None, None, ""

            def raw_check(o: Path) -> str:
                if int(o.read_text()) != box.n:
                    raise Failed(f"raw scan counted {o.read_text()} items, wanted {box.n}")
                return f"Count sums to {box.n:,}"

            out.append(Variant(label, s, raw_run, raw_check))
        seen: dict[int, set[str] | None] = {}

        def rawj_run(o: Path, s: int = s, seen: Any = seen) -> tuple[float, None, None, str]:
            t0 = time.perf_counter()
            _, seen[s] = raw_scan(url, s, IDS_ATTRS, parse=True)
            return time.perf_counter() - t0, None, None, ""

        def rawj_check(o: Path, s: int = s, seen: Any = seen) -> str:
            keys = seen.pop(s)
            return exact(sorted(keys or ()), everything, "raw+json")

        out.append(Variant("raw+json.loads (ids proj.)", s, rawj_run, rawj_check))
        seg = ["--segments", str(s)]
        if "ids" in commands:
            out.append(Variant("streamq list -o ids", s,
                               wrapped([*base, "list", "-o", "ids", *seg]),
                               lambda o: exact(read_lines(o), listed, "list -o ids")))
        if "count" in commands:
            out.append(Variant("streamq list --count", s,
                               wrapped([*base, "list", "--count", *seg]), count_check))
        if "stats" in commands:
            out.append(Variant("streamq stats", s,
                               wrapped([*base, "stats", "-o", "json", *seg]), stats_check))
        if "jsonl" in commands:
            out.append(Variant("streamq list -o jsonl", s,
                               wrapped([*base, "list", "-o", "jsonl", *seg]), jsonl_check))
        if s == max(segments) and extras and first_delay:
            # At the widest scan: where the time goes (botocore's parse; the standard
            # library's json instead of orjson).
            ids = [*base, "list", "-o", "ids", *seg]
            out.append(Variant("ids, botocore parse", s,
                               wrapped(ids, {"STREAMQ_FAST_PAGES": "0"}), ids_check))
            out.append(Variant("ids, stdlib json", s,
                               wrapped(ids, {"STREAMQ_FAST_PAGES": "json"}), ids_check))
            out.append(Variant("jsonl, stdlib json", s, wrapped(
                [*base, "list", "-o", "jsonl", *seg], {"STREAMQ_FAST_PAGES": "json"}),
                jsonl_check))
        if s == max(segments) and s > 1 and first_delay:
            # What the worker processes add (streamq's default at this table size):
            # the same commands in this one process.
            one = ["--processes", "1"]
            if "ids" in commands:
                out.append(Variant("ids, 1 process", s,
                                   wrapped([*base, "list", "-o", "ids", *seg, *one]),
                                   ids_check))
            if "count" in commands:
                out.append(Variant("count, 1 process", s,
                                   wrapped([*base, "list", "--count", *seg, *one]),
                                   count_check))
            if "stats" in commands:
                out.append(Variant("stats, 1 process", s,
                                   wrapped([*base, "stats", "-o", "json", *seg, *one]),
                                   stats_check))
    if others:
        out.append(Variant("boto3 paginator script", 1,
                           wrapped([sys.executable, "-c", BOTO3_SCRIPT, url, TABLE,
                                    ",".join(IDS_ATTRS)]),
                           lambda o: exact(read_lines(o), everything, "boto3 script")))
    if aws_cli:
        names = {f"#a{i}": a for i, a in enumerate(IDS_ATTRS)}

        def cli_check(o: Path) -> str:
            with o.open(encoding="utf-8") as fh:
                doc = json.load(fh)
            return exact([it[KEY]["S"] for it in doc["Items"]], everything, "aws cli")

        out.append(Variant("aws dynamodb scan", 1, wrapped([
            tool("aws"), "dynamodb", "scan", "--table-name", TABLE, "--endpoint-url", url,
            "--region", REGION, "--output", "json", "--projection-expression",
            ", ".join(names), "--expression-attribute-names", json.dumps(names)]),
            cli_check))
    return out


def warm(url: str, workdir: Path) -> None:
    """Build the endpoint's fragments for every projection the variants use (streamq's
    own, whatever it sends) by running each command on a 1/100000 slice first."""
    base = [tool("streamq"), "--table", TABLE, "--endpoint-url", url, "--region", REGION,
            "--stuck-after", STUCK_AFTER]
    for args in (["list", "-o", "ids"], ["list", "-o", "jsonl"], ["list", "--count"],
                 ["stats", "-o", "json"]):
        subprocess.run([*base, *args, "--segment", "0/100000"], env=child_env(), cwd=workdir,
                       stdout=subprocess.DEVNULL, check=True)
    host, port = url.removeprefix("http://").split(":")
    names = {f"#a{i}": a for i, a in enumerate(IDS_ATTRS)}
    conn = http.client.HTTPConnection(host, int(port), timeout=300)
    conn.request("POST", "/", json.dumps({"TableName": TABLE, "Limit": 1,
                                          "ProjectionExpression": ", ".join(names),
                                          "ExpressionAttributeNames": names}),
                 {"X-Amz-Target": "DynamoDB_20120810.Scan"})
    conn.getresponse().read()


# --------------------------------------------------------------------------- run + report


def bench(args: argparse.Namespace, workdir: Path, rows: list[Row]) -> None:
    for n in args.sizes:
        with Endpoint(n, args.processes) as ep:
            log(f"size {n:,}: endpoint {ep.url}")
            box = Outbox(n)
            warm(ep.url, workdir)
            for delay in args.delays:
                ep.set_delay(delay)
                vs = variants(ep.url, box, args.segments, args.commands, workdir,
                              not args.skip_boto3, not args.skip_aws_cli, args.workers,
                              delay == args.delays[0])
                # --repeat R: every variant R times, round-robin (so a slow minute of the
                # shared machine hits all of them alike); the row kept is the median wall.
                runs: dict[int, list[Row]] = {i: [] for i in range(len(vs))}
                for rep in range(args.repeat):
                    for i, v in enumerate(vs):
                        out = workdir / "out"
                        cpu0 = ep.cpu()
                        try:
                            wall, cpu, rss, error = v.run(out)
                            check = error or v.verify(out)
                            ok = not error
                        except Failed as exc:
                            wall, cpu, rss, check, ok = 0.0, None, None, f"FAILED: {exc}", False
                        server = ep.cpu() - cpu0
                        if out.exists():
                            out.unlink()
                        row = Row(n, delay, v.segments, v.name, wall, cpu, rss, server, check,
                                  ok)
                        runs[i].append(row)
                        extra = "" if rss is None else f", CPU {cpu:.1f}s, RSS {rss:.0f} MB"
                        log(f"  {n:>9,} +{delay:g}ms seg {v.segments} {v.name:<28} "
                            f"{wall:7.2f}s {row.rate:>11,.0f}/s{extra}, server CPU "
                            f"{server:.1f}s  [{check}]" + (f" (run {rep + 1})"
                                                          if args.repeat > 1 else ""))
                for i in range(len(vs)):
                    done = runs[i]
                    bad = [r for r in done if not r.ok]
                    if bad:
                        rows.append(bad[0])
                        continue
                    done.sort(key=lambda r: r.wall)
                    rows.append(done[(len(done) - 1) // 2])


def report(rows: list[Row], started: float, load: tuple[float, ...],
           args: argparse.Namespace) -> None:
    print()
    print("streamq scan benchmark (benchmarks/bench_scan.py) on the benchmark endpoint")
    print(f"machine: {os.cpu_count()} cores, {platform.platform()}, Python "
          f"{platform.python_version()}; load average before "
          f"{'/'.join(f'{x:.2f}' for x in load)}, after "
          f"{'/'.join(f'{x:.2f}' for x in os.getloadavg())}; total {time.time() - started:.0f}s;"
          f" endpoint processes {args.processes}; median of {args.repeat} run(s) per row")
    head = (f"{'items':>9} {'delay':>5} {'seg':>3}  {'variant':<28} {'wall s':>7} "
            f"{'items/s':>10} {'CPU s':>6} {'RSS MB':>7} {'srv CPU':>7}  check")
    print(head)
    print("-" * len(head))
    for r in rows:
        cpu = "" if r.cpu is None else f"{r.cpu:.1f}"
        rss = "" if r.rss_mb is None else f"{r.rss_mb:.0f}"
        rate = f"{r.rate:,.0f}" if r.ok else "-"
        print(f"{r.size:>9,} {r.delay:>4g}ms {r.segments:>3}  {r.variant:<28} {r.wall:>7.2f} "
              f"{rate:>10} {cpu:>6} {rss:>7} {r.server_cpu:>7.1f}  {r.check}")
    print()
    by = {(r.size, r.delay, r.segments, r.variant): r for r in rows if r.ok}
    print("Ratios (items/s of streamq over the reference, same size and delay):")
    for n in args.sizes:
        for d in args.delays:
            boto = by.get((n, d, 1, "boto3 paginator script"))
            cli = by.get((n, d, 1, "aws dynamodb scan"))
            for s in args.segments:
                raw = by.get((n, d, s, "raw (ids projection)"))
                rawf = by.get((n, d, s, "raw (full items)"))
                parts = []
                for name in ("streamq list -o ids", "streamq list --count", "streamq stats",
                             "streamq list -o jsonl"):
                    r = by.get((n, d, s, name))
                    if r is None:
                        continue
                    bits = []
                    if boto:
                        bits.append(f"{r.rate / boto.rate:.1f}x boto3")
                    if cli:
                        bits.append(f"{r.rate / cli.rate:.1f}x aws cli")
                    ref = rawf if name.endswith("jsonl") else raw
                    if ref:
                        bits.append(f"raw/streamq {r.wall and ref.rate / r.rate:.2f}")
                    parts.append(f"{name.removeprefix('streamq ')}: " + ", ".join(bits))
                if parts:
                    print(f"  {n:>9,} +{d:g}ms seg {s}: " + "; ".join(parts))
    if len(args.sizes) >= 2:
        lo, hi = min(args.sizes), max(args.sizes)
        print(f"Memory, peak RSS at {hi:,} over {lo:,} items:")
        for (n, d, s, v), r in sorted(by.items()):
            if n == hi and r.rss_mb:
                low = by.get((lo, d, s, v))
                if low and low.rss_mb:
                    print(f"  +{d:g}ms seg {s} {v:<28} {low.rss_mb:6.0f} MB -> "
                          f"{r.rss_mb:6.0f} MB  ({r.rss_mb / low.rss_mb:.2f}x)")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", default="100000,1000000")
    ap.add_argument("--delays", default="0,10", help="ms per request [0,10]")
    ap.add_argument("--segments", default="1,2,4,8")
    ap.add_argument("--commands", default="ids,count,stats,jsonl")
    ap.add_argument("--processes", type=int, default=1, help="endpoint processes [1]")
    ap.add_argument("--no-compare", action="store_true", help="skip the parse comparisons "
                    "(botocore's parse, stdlib json) at the widest segment count")
    ap.add_argument("--repeat", type=int, default=1,
                    help="runs of every variant, round-robin; the median wall is kept [1]")
    ap.add_argument("--skip-aws-cli", action="store_true")
    ap.add_argument("--skip-boto3", action="store_true")
    args = ap.parse_args(argv)
    args.sizes = [int(x) for x in args.sizes.split(",") if x]
    args.delays = [float(x) for x in args.delays.split(",") if x]
    args.segments = [int(x) for x in args.segments.split(",") if x]
    args.commands = [x.strip() for x in args.commands.split(",") if x.strip()]
    args.workers = [] if args.no_compare else [1]
    signal.signal(signal.SIGTERM, lambda *a: (_ for _ in ()).throw(KeyboardInterrupt()))
    started, load = time.time(), os.getloadavg()
    rows: list[Row] = []
    with tempfile.TemporaryDirectory(prefix="bench_scan.") as tmp:
        try:
            bench(args, Path(tmp), rows)
        except KeyboardInterrupt:
            log("interrupted: partial results")
    report(rows, started, load, args)
    return 0 if rows and all(r.ok for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
