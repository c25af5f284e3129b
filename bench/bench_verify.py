"""What checking inputs as they are read costs, and how sentence splitting scales with record size.

1. Reading a shard store: ``ShardStore.read`` (sha256 + row count against the manifest, then the
   memory map) against the unchecked memory-mapped read a user would write with pyarrow
   (``pa.ipc.open_stream(pa.memory_map(path)).read_all()``), both scanning every column so the
   pages are really read. Warm page cache (the usual case right after the stage that wrote it).
2. ``split_sentences`` on one huge record: the linear cut rule against the old per-cut
   ``text[:c].strip()`` (quadratic), on the same text.

    python bench/bench_verify.py [--rows 200000] [--repeat 3] [--out docs/benchmarks/verify.md]
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def make_store(root: Path, rows: int, shard_rows: int = 20000) -> Path:
    from mt_qa.records import QA_SCHEMA, qa_record
    from mt_qa.shards import ShardStore, shard_name

    store = ShardStore(root, "bench", QA_SCHEMA)
    store.begin({}, [])
    passage = ("The Normans were the people who in the 10th and 11th centuries gave their name to Normandy, "
               "a region in France. ") * 4
    names = []
    for s in range(0, rows, shard_rows):
        name = shard_name(s // shard_rows)
        names.append(name)
        writer = store.writer(name)
        writer.add([qa_record(dataset="bench", split="train", source_id=f"r{i}", lang="en", lang_code="eng_Latn",
                              question=f"Question number {i}?", passage=passage + str(i),
                              passage_sentences=[passage + str(i)]) for i in range(s, min(rows, s + shard_rows))])
        writer.commit()
    store.finish(names, len(names))
    return root


def scan(table) -> int:
    """Touch every value buffer (what a stage reading the rows does)."""
    import pyarrow.compute as pc

    total = 0
    for name in ("question", "passage", "id"):
        total += int(pc.sum(pc.utf8_length(table[name])).as_py() or 0)
    return total


def read_unchecked(root: Path) -> int:
    import pyarrow as pa

    from mt_qa.shards import ShardStore

    total = 0
    for path in ShardStore.open(root).files():
        with pa.memory_map(str(path), "r") as source:
            total += scan(pa.ipc.open_stream(source).read_all())
    return total


def read_checked(root: Path) -> int:
    from mt_qa.shards import ShardStore

    store = ShardStore.open(root)
    return sum(scan(store.read(path)) for path in store.files())


def read_after_sha256sum(root: Path) -> int:
    """What a careful user does without mtqa: ``sha256sum -c`` against the manifest, then read."""
    import subprocess

    from mt_qa.shards import ShardStore

    store = ShardStore.open(root)
    listing = "".join(f"{info['sha256']}  {rel}\n" for shard in store.manifest["shards"].values()
                      for rel, info in shard["files"].items())
    subprocess.run(["sha256sum", "--quiet", "-c", "-"], input=listing.encode(), cwd=root, check=True)
    return read_unchecked(root)


def best(fn, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        fn()
        times.append(time.perf_counter() - started)
    return min(times)


def old_split(text: str) -> tuple[str, ...]:
    from mt_qa.sentences import _sentence_starts_fast

    starts = _sentence_starts_fast(text) or []
    cuts = [c for c in sorted({s for s in starts if 0 < s < len(text)}) if text[:c].strip()]
    bounds = [0, *cuts, len(text)]
    return tuple(text[a:b] for a, b in zip(bounds, bounds[1:], strict=False) if a < b)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=200_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--old-max-mb", type=float, default=2, help="Largest record the quadratic rule is timed on.")
    parser.add_argument("--sizes", default="0.5,1,2,4,16,56", help="Record sizes (MB) for split_sentences.")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    from mt_qa.sentences import split_sentences

    lines = ["# Input verification and sentence splitting", "",
             f"`python bench/bench_verify.py --rows {args.rows} --repeat {args.repeat}` on {platform.machine()}, "
             f"{os.cpu_count()} cores, Python {platform.python_version()}; load before: "
             f"{' '.join(f'{x:.2f}' for x in os.getloadavg())} (a machine shared with other engineers: "
             "ratios are what to read).", ""]
    with tempfile.TemporaryDirectory() as tmp:
        root = make_store(Path(tmp) / "store", args.rows)
        size = sum(p.stat().st_size for p in root.rglob("*.arrow"))
        read_unchecked(root)  # warm the page cache
        assert read_checked(root) == read_unchecked(root)
        plain = best(lambda: read_unchecked(root), args.repeat)
        checked = best(lambda: read_checked(root), args.repeat)
        careful = best(lambda: read_after_sha256sum(root), args.repeat)
    lines += ["## Reading a store: checked against its manifest vs unchecked", "",
              "| read | seconds | MB/s | ratio |", "|---|---|---|---|",
              f"| pyarrow memory map, unchecked (the alternative) | {plain:.3f} | {size / 2**20 / plain:.0f} | 1.00 |",
              f"| `ShardStore.read` (sha256 + rows, then memory map) | {checked:.3f} | {size / 2**20 / checked:.0f} "
              f"| {checked / plain:.2f} |",
              f"| `sha256sum -c` of the manifest's files, then the unchecked read | {careful:.3f} | "
              f"{size / 2**20 / careful:.0f} | {careful / plain:.2f} |", "",
              f"Checked reading costs {checked / careful:.2f}x what `sha256sum` + read costs: the price is the "
              "one sha256 pass over the bytes (one extra read), nothing more.", "",
              f"{args.rows:,} QA rows, {size / 2**20:.0f} MB of Arrow in {len(list(range(0, args.rows, 20000)))} "
              "files, best of the repeats, warm page cache. The check is one streaming sha256 pass per file, "
              "once per store object (filter reads each file twice, checks it once).", ""]
    sentence = "The Normans gave their name to Normandy, a region in France. "
    lines += ["## `split_sentences` on one huge record", "", "| record | linear rule (s) | old rule (s) |",
              "|---|---|---|"]
    for mb in (float(x) for x in args.sizes.split(",")):
        text = sentence * int(mb * 2**20 / len(sentence))
        started = time.perf_counter()
        new = split_sentences.__wrapped__(text)
        linear = time.perf_counter() - started
        old = "—"
        if mb <= args.old_max_mb:
            started = time.perf_counter()
            assert old_split(text) == new
            old = f"{time.perf_counter() - started:.2f}"
        lines.append(f"| {mb:g} MB | {linear:.2f} | {old} |")
        print(lines[-1], flush=True)
    lines += ["", "Equal output on every record the old rule was timed on (and on every paragraph of the "
              "shared SQuAD files: `tests/test_sentences.py`).", ""]
    text = "\n".join(lines)
    print(text)
    if args.out:
        args.out.write_text(text)


if __name__ == "__main__":
    main()
