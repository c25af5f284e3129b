"""How right are the semantic check's rejections on production-size shards? Judged against hand labels.

bench/bench_semantic.py measures the check on small shards with made-up corruptions. Real shards are
bigger and hold more questions per paragraph, and real translations go wrong in their own ways (a
sentence cut short and run into the next one, a list split at semicolons). This script scores the
shards of a collected store as ``mtqa filter --semantic-model`` does (same shards, same
``SemanticCheck``, default thresholds; every translated row, including the few the surface checks
would reject first) and compares its verdicts with ``bench/semantic_study_labels.tsv``:
hand labels of every distinct passage the check rejects on the study's data, of its question rejects
(all es/pt, a sample of it), and of passages kept just above the threshold.

    mtqa run pipelines/squad-semantic.yaml --only collect
    .venv/bin/python bench/bench_semantic_study.py [--collected runs/squad-semantic/collect] \\
        [--model models/multilingual-e5-small] [--cache-dir DIR] [--out docs/benchmarks/semantic-study.md]

A labelled passage counts for every row that carries the same translated passage (its siblings).
Rejected rows with no label are reported as such: a rejection nobody read is not counted as right.
"""

from __future__ import annotations

import argparse
import os
import platform
import subprocess
import sys
import time
from collections import Counter, defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))
LABELS_FILE = ROOT / "bench" / "semantic_study_labels.tsv"
DEFAULT_MODEL = ROOT / "models" / "multilingual-e5-small"


def load_labels(path: Path) -> dict[tuple[str, str, str], tuple[str, str, str]]:
    """(lang, passage|question, key) -> (wrong|right, cause, drawn). Lines starting with # are comments."""
    out: dict[tuple[str, str, str], tuple[str, str, str]] = {}
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip() or line.startswith("#"):
            continue
        parts = line.split("\t")
        if len(parts) != 7 or parts[1] not in ("passage", "question") or parts[3] not in ("wrong", "right"):
            raise SystemExit(f"{path}:{n}: want LANG, passage|question, KEY, wrong|right, CAUSE, DRAWN, NOTE "
                             f"(tab-separated), got {line[:120]!r}")
        out[(parts[0], parts[1], parts[2])] = (parts[3], parts[4], parts[5])
    return out


def shown(path: Path) -> str:
    """A path as the page shows it: relative to the repository where it lies inside."""
    path = path.resolve()
    return str(path.relative_to(ROOT)) if path.is_relative_to(ROOT) else str(path)


def passage_key(sentences: list[str]) -> str:
    return "".join(sentences)[:80].replace("\t", " ").replace("\n", " ")


def score_store(collected: Path, model: str, device: str, cache_dir: str | None) -> tuple[list[dict], dict]:
    """Every translated row the check scores, with its verdict, shard by shard as filter reads them.

    Each row is judged by the semantic check alone: filter runs it last, on the rows the surface
    checks passed, so the rows those checks reject first are counted here too (a few per language).
    """
    from mt_qa.filter.checks import ShardRows
    from mt_qa.filter.semantic import SemanticCheck, SemanticConfig
    from mt_qa.shards import ShardStore

    store = ShardStore.open(collected)
    check = SemanticCheck(SemanticConfig(model=model, device=device, cache_dir=cache_dir))
    started = time.perf_counter()
    out = []
    try:
        for _, table in store.iter_tables():
            rows = ShardRows.from_table(table)
            sentences = table["passage_sentences"].to_pylist()
            check.begin_shard()
            check.prepare(rows, sentences)
            scores = check.scores
            assert scores is not None
            for i in range(len(rows)):
                if scores.question[i] is None and scores.passage[i] is None:
                    continue  # an English source row, or no neighbours in the shard: not scored
                verdict = check.check(rows, i)
                out.append({"lang": rows.langs[i], "reason": verdict.reason if verdict else None,
                            "question": rows.questions[i].strip(), "passage": passage_key(sentences[i])})
        timing = {"seconds": time.perf_counter() - started, "encoded": check.encoder.stats["encoded"]}
    finally:
        check.close()
    return out, timing


def report(scored: list[dict], labels: dict, timing: dict, args: argparse.Namespace, load: str) -> list[str]:
    count: Counter = Counter()
    distinct: defaultdict[tuple, set] = defaultdict(set)
    causes: Counter = Counter()
    for r in scored:
        lang = r["lang"]
        count[lang, "rows"] += 1
        passage = labels.get((lang, "passage", r["passage"]))
        if r["reason"] == "semantic_question":
            label = labels.get((lang, "question", r["question"]))
            count[lang, "q", label[0] if label else "unread"] += 1
        elif r["reason"] == "semantic_passage":
            tag = passage[0] if passage else "unread"
            count[lang, "p", tag] += 1
            distinct[lang, tag].add(r["passage"])
            if passage and passage[0] == "right":
                causes[passage[1]] += 1
        elif passage and passage[2] == "kept-near-threshold":
            distinct[lang, "control", passage[0]].add(r["passage"])
        if passage and passage[0] == "wrong":
            count[lang, "wrong rows"] += 1
    lines = [
        "# Benchmark: the semantic check's rejections on production-size shards, read by hand",
        "",
        f"Command: `.venv/bin/python bench/bench_semantic_study.py --collected {shown(args.collected)} --model "
        f"{Path(args.model).name}`. Machine: {platform.machine()}, {len(os.sched_getaffinity(0))} "
        f"cores, Python {platform.python_version()}, load {load}. Scoring took {timing['seconds']:.0f} s "
        f"({timing['encoded']} texts encoded, the rest from the embedding cache). Labels: "
        f"`bench/semantic_study_labels.tsv` ({len(labels)} items; how they were drawn and the rule are in its header).",
        "",
        "The check scores as `mtqa filter --semantic-model` does: the same shards, the default thresholds; "
        "every translated row is judged by it alone (filter runs it after the surface checks). A "
        "passage label counts for every row carrying that translated passage (sibling questions). `unread`: "
        "rejected rows nobody labelled (not counted as right). Faithful rows kept = 1 - (rejected rows labelled "
        "right) / (rows - rows labelled wrong); rows not read count as faithful, so it is an estimate.",
        "",
        "| lang | translated rows | question rejects (wrong / right / unread) | passage rejects, rows "
        "(wrong / right / unread) | distinct passages (wrong / right / unread) | passage precision (rows) "
        "| faithful rows kept | kept near the threshold, read: wrong |",
        "|---|---|---|---|---|---|---|---|",
    ]
    total: Counter = Counter()
    for lang in sorted({r["lang"] for r in scored}):
        q = [count[lang, "q", t] for t in ("wrong", "right", "unread")]
        p = [count[lang, "p", t] for t in ("wrong", "right", "unread")]
        d = [len(distinct[lang, t]) for t in ("wrong", "right", "unread")]
        ctl = [len(distinct[lang, "control", t]) for t in ("wrong", "right")]
        rows, wrong_rows = count[lang, "rows"], count[lang, "wrong rows"] + q[0]
        false = p[1] + q[1]
        for key, value in (("rows", rows), ("wrong", wrong_rows), ("false", false), ("pw", p[0]), ("pr", p[1]),
                           ("ctl_w", ctl[0]), ("ctl", sum(ctl))):
            total[key] += value
        precision = f"{p[0] / (p[0] + p[1]):.0%}" if p[0] + p[1] else "-"
        lines.append(f"| {lang} | {rows:,} | {q[0]} / {q[1]} / {q[2]} | {p[0]} / {p[1]} / {p[2]} | "
                     f"{d[0]} / {d[1]} / {d[2]} | {precision} | {1 - false / max(rows - wrong_rows, 1):.1%} | "
                     f"{ctl[0]} of {sum(ctl)} |")
    precision = f"{total['pw'] / (total['pw'] + total['pr']):.0%}" if total["pw"] + total["pr"] else "-"
    lines.append(f"| **all** | {total['rows']:,} | | | | {precision} | "
                 f"{1 - total['false'] / max(total['rows'] - total['wrong'], 1):.1%} | "
                 f"{total['ctl_w']} of {total['ctl']} |")
    lines += ["", "Rejected rows labelled right, by what the reader saw: "
              + ", ".join(f"{cause} {n}" for cause, n in causes.most_common()) + ".", ""]
    return lines


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--collected", type=Path, default=ROOT / "runs" / "squad-semantic" / "collect",
                        help="a collected store (default: the study's, from pipelines/squad-semantic.yaml)")
    parser.add_argument("--model", default=os.environ.get("MTQA_E5_DIR", str(DEFAULT_MODEL)),
                        help="a sentence-transformers directory (default: $MTQA_E5_DIR, else "
                        "models/multilingual-e5-small)")
    parser.add_argument("--labels", type=Path, default=LABELS_FILE)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--cache-dir", help="embedding cache (default: the filter's)")
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "benchmarks" / "semantic-study.md")
    args = parser.parse_args()
    if not (args.collected / "manifest.json").exists():
        parser.error(f"{args.collected} is not a collected store: run "
                     "`mtqa run pipelines/squad-semantic.yaml --only collect` first, or pass --collected")
    if not Path(args.model).is_dir():
        parser.error(f"--model {args.model}: no such directory (python ../shared/tools/make_e5_small.py "
                     "models/multilingual-e5-small makes one)")
    if not args.labels.is_file():
        parser.error(f"--labels {args.labels}: no such file")
    labels = load_labels(args.labels)
    uptime = subprocess.run(["uptime"], capture_output=True, text=True).stdout.split("load average:")[-1].strip()
    from mt_qa.errors import MtqaError

    try:
        scored, timing = score_store(args.collected, args.model, args.device, args.cache_dir)
    except MtqaError as exc:  # a damaged store, a model that does not load: one line, as mtqa prints it
        print(f"Error: {exc}", file=sys.stderr)
        return 1
    lines = report(scored, labels, timing, args, uptime)
    print("\n".join(lines))
    from bench_semantic import write_page  # keeps the notes written by hand below the marker

    write_page(args.out, lines)
    return 0


if __name__ == "__main__":
    sys.exit(main())
