#!/usr/bin/env python3
"""``streamq list -o jsonl`` peak memory against the table's size, at a fixed number of
processes: does anything grow with the table? (bench_scan.py's default rows change the
process count with the table's size, so their memory steps when a worker is added.)

    python benchmarks/bench_memory.py [--sizes 100000,1000000] [--processes 1,2] [--repeat 3]

For each size a fresh benchmark endpoint (bench_endpoint.py), then ``list -o jsonl
--segments 8 --processes P`` R times for each P, under bench_scan.py's wrapper (the summed
RSS of the whole process tree, sampled every 20 ms); prints the median peak per size and
the ratio largest/smallest, and checks every output has exactly the failed+stuck keys.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import bench_scan as b


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", default="100000,1000000")
    ap.add_argument("--processes", default="1,2")
    ap.add_argument("--segments", type=int, default=8)
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args(argv)
    sizes = [int(x) for x in args.sizes.split(",")]
    procs = [int(x) for x in args.processes.split(",")]
    peaks: dict[tuple[int, int], float] = {}
    ok = True
    with tempfile.TemporaryDirectory(prefix="bench_memory.") as tmp:
        wd = Path(tmp)
        for n in sizes:
            with b.Endpoint(n, 1) as ep:
                want = b.Outbox(n).expected(("failed", "stuck"))
                for p in procs:
                    argv = [b.tool("streamq"), "--table", b.TABLE, "--endpoint-url", ep.url,
                            "--region", b.REGION, "--stuck-after", b.STUCK_AFTER, "list",
                            "-o", "jsonl", "--segments", str(args.segments),
                            "--processes", str(p)]
                    runs = []
                    for _ in range(args.repeat):
                        wall, _cpu, rss, error = b.run_wrapped(argv, wd / "out", wd)
                        with (wd / "out").open(encoding="utf-8") as fh:
                            keys = [json.loads(line)["key"][b.KEY] for line in fh]
                        exact = not error and len(keys) == len(set(keys)) and set(keys) == want
                        ok &= exact
                        runs.append((wall, rss))
                        b.log(f"{n:>9,} --processes {p}: {wall:6.2f}s, peak RSS {rss:4.0f} MB"
                              f"  [{'exact' if exact else 'WRONG OUTPUT ' + error}]")
                    peaks[(n, p)] = statistics.median(r for _, r in runs)
    print(f"list -o jsonl --segments {args.segments}, median peak RSS of {args.repeat} runs:")
    for p in procs:
        lo, hi = peaks[(min(sizes), p)], peaks[(max(sizes), p)]
        print(f"  --processes {p}: {min(sizes):,} items {lo:.0f} MB -> {max(sizes):,} items "
              f"{hi:.0f} MB ({hi / lo:.2f}x)")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
