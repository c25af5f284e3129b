"""Benchmark the whole `mtqa filter` stage on >=100k real rows: rows/s and peak memory per detector.

The collected SQuAD store (en dev + train prefix with es/it/pt imports: 28,441 real rows) is
replicated ``--copies`` times under new dataset names (so ids stay unique) into one input
store of 4 x 28,441 = 113,764 rows. Each configuration runs the full stage (dedup pre-pass, every
check, writing shards, rejects and manifest) in its own subprocess, which reports wall time,
CPU time, its peak RSS and the time spent in each check:

- ``fasttext``: the fast path, dedup on (the replicas are exact duplicates of the first copy,
  so three rows in four stop at the dedup check: this measures dedup at scale);
- ``fasttext --no-dedup``: every row through every check (the worst case of the fast path);
- ``combined --no-dedup``: the default detector (fastText + py3langid vote);
- ``langdetect --no-dedup``: the baseline a user would reach for;
- the fastText and combined runs again with ``--workers 2`` (one process per core).

    /work/venv/bin/python bench/bench_filter.py [--copies 4] [--out docs/benchmarks/filter.md]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))
SECTION = "stage"
# name -> (FilterConfig fields, worker processes)
CONFIGS: dict[str, tuple[dict, int]] = {
    "fasttext": ({"detector": "fasttext"}, 1),
    "fasttext --workers 2": ({"detector": "fasttext"}, 2),
    "fasttext --no-dedup": ({"detector": "fasttext", "dedup": False}, 1),
    "fasttext --no-dedup --workers 2": ({"detector": "fasttext", "dedup": False}, 2),
    "combined --no-dedup": ({"detector": "combined", "dedup": False}, 1),
    "combined --no-dedup --workers 2": ({"detector": "combined", "dedup": False}, 2),
    "langdetect --no-dedup": ({"detector": "langdetect", "dedup": False}, 1),
}


def replicate(collected: Path, out: Path, copies: int) -> int:
    """Write ``copies`` renamed copies of every shard of ``collected`` as one QA store."""
    import pyarrow as pa
    import pyarrow.compute as pc

    from mt_qa.records import QA_SCHEMA
    from mt_qa.shards import ShardStore, shard_name

    src = ShardStore.open(collected)
    dst = ShardStore(out, "collect", QA_SCHEMA)
    dst.begin({"replicas_of": str(collected), "copies": copies}, [src.input_ref()], overwrite=True)
    names, index, rows = [], 0, 0
    for copy in range(copies):
        for name in src.shard_names():
            table = src.table(shard=name)
            if copy:
                prefix = f"{table['dataset'][0].as_py() if table.num_rows else 'x'}"
                new = f"{prefix}-r{copy}"
                for col in ("id", "group_id"):
                    table = table.set_column(table.schema.get_field_index(col), col,
                                             pc.replace_substring_regex(table[col], f"^{prefix}/", f"{new}/"))
                table = table.set_column(table.schema.get_field_index("dataset"), "dataset",
                                         pa.array([new] * table.num_rows, pa.string()))
            writer = dst.writer(shard_name(index))
            writer.add(table)
            writer.commit()
            names.append(shard_name(index))
            rows += table.num_rows
            index += 1
    dst.finalize(expected=names)
    return rows


def worker(src: Path, out: Path, config: dict, workers: int) -> dict:
    from mt_qa.filter.stage import FilterConfig, FilterStage

    shutil.rmtree(out, ignore_errors=True)  # a fresh run each time, never a resume
    wall = time.perf_counter()
    result = FilterStage(src, out, FilterConfig(**config), overwrite=True, progress=False, workers=workers).run()
    wall = time.perf_counter() - wall
    usage = [resource.getrusage(who) for who in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN)]
    cpu = sum(u.ru_utime + u.ru_stime for u in usage)
    manifest = result["manifest"]
    return {"rows": manifest["stats"]["rows_in"], "kept": manifest["totals"]["rows"],
            "rejected": manifest["stats"].get("rejected", {}), "wall_s": wall, "cpu_s": cpu,
            "timings": result["timings"], "workers": workers,
            # the largest single process (with workers, each holds about this much)
            "peak_rss_mib": max(u.ru_maxrss for u in usage) / 1024}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--collected", type=Path, help="a collected SQuAD store (default: collect one now)")
    parser.add_argument("--copies", type=int, default=4)
    parser.add_argument("--configs", default=",".join(CONFIGS))
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "benchmarks" / "filter.md")
    parser.add_argument("--worker", nargs=3, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        src, out, name = args.worker
        print(json.dumps(worker(Path(src), Path(out), *CONFIGS[name])))
        return 0
    from bench_langid import collect, write_section

    started = time.perf_counter()
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        collected = args.collected or collect(Path(tmp) / "collect")
        rows = replicate(collected, Path(tmp) / "input", args.copies)
        for name in args.configs.split(","):
            print(f"-- {name}", file=sys.stderr, flush=True)
            proc = subprocess.run([sys.executable, __file__, "--worker", str(Path(tmp) / "input"),
                                   str(Path(tmp) / "out"), name], capture_output=True, text=True)
            if proc.returncode:
                print(proc.stderr, file=sys.stderr)
                return 1
            results[name] = json.loads(proc.stdout.strip().splitlines()[-1])
    base = results.get("langdetect --no-dedup")
    lines = [
        f"<!-- {SECTION}:start -->",
        "## The whole stage (bench/bench_filter.py)",
        "",
        f"Command: `/work/venv/bin/python bench/bench_filter.py --copies {args.copies}`. "
        f"Machine: {platform.machine()}, {os.cpu_count()} cores, 24 GiB, Python {platform.python_version()}; other "
        "jobs shared the CPU, so wall-clock rates are pessimistic (rows per CPU-second in parentheses). "
        f"Input: {rows:,} rows ({args.copies} renamed copies of the 28,441 collected SQuAD rows, en/es/it/pt). "
        f"Run time {time.perf_counter() - started:.0f}s.",
        "",
        "| configuration | rows/s | vs langdetect | wall s | kept | peak RSS MiB (per process) | CPU s by check |",
        "|---|---|---|---|---|---|---|",
    ]
    for name, r in results.items():
        n = sum(r["rows"].values())
        rate, cpu_rate = n / r["wall_s"], n / r["cpu_s"]
        ratio = f"{rate / (sum(base['rows'].values()) / base['wall_s']):.1f}x" if base else "-"
        checks = ", ".join(f"{k} {v:.1f}" for k, v in r["timings"].items() if v >= 0.05)
        lines.append(f"| {name} | **{rate:,.0f}** ({cpu_rate:,.0f}) | {ratio} | {r['wall_s']:.1f} | {r['kept']:,} | "
                     f"{r['peak_rss_mib']:.0f} | {checks} |")
    lines += ["", "Rejected rows by reason:", ""]
    for name, r in results.items():
        reasons = ", ".join(f"{k} {v:,}" for k, v in sorted(r["rejected"].items()))
        lines.append(f"- {name}: {reasons or 'none'}")
    lines.append(f"<!-- {SECTION}:end -->")
    print("\n".join(lines))
    write_section(args.out, lines, SECTION)
    return 0


if __name__ == "__main__":
    sys.exit(main())
