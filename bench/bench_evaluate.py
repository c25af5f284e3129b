"""Benchmark `mtqa evaluate`: LAReQA scoring at XQuAD-R scale, and real e5-small encoding throughput.

Part 1 scores an XQuAD-R-sized task (11 languages x 1,190 questions, the release's candidate
counts: 13,014 pooled sentences; all 121 language pairs + 11 pooled settings + language bias)
from precomputed random unit vectors (dim 384), with

- ``mtqa``: mt_qa.evaluate.pipeline.score_task (one score block per query chunk, rank counting);
- ``argsort``: what one writes by hand: per setting, score matrix, full ``argsort`` per row,
  ranks of the relevant sentences, AP/R@k;
- ``ir_measures``: full-depth runs scored by ir_measures for a sample of one pooled setting,
  extrapolated to all settings by run size (marked as such).

Each method runs in its own subprocess, so its peak RSS is its own. Part 2 encodes real
sentences of a dev benchmark built from ../shared/data with multilingual-e5-small on CPU:
cold (model load + encode) and warm (every text from the embedding cache), and compares with
encoding per setting without deduplication (the count, and its time at the measured rate).

    .venv/bin/python bench/bench_evaluate.py [--skip-encode] [--encode-texts 1000]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

LANGS = ["ar", "de", "el", "en", "es", "hi", "ru", "th", "tr", "vi", "zh"]
# candidates per language in the public XQuAD-R release (lareqa README)
CANDIDATES = [1222, 1276, 1234, 1180, 1215, 1244, 1219, 852, 1167, 1209, 1196]
QUESTIONS = 1190
DIM = 384


def make_task(seed: int = 0):
    from mt_qa.evaluate.lareqa import Task

    rng = np.random.default_rng(seed)
    offsets = np.r_[0, np.cumsum(CANDIDATES)]
    answers = np.stack([rng.integers(offsets[i], offsets[i + 1], QUESTIONS) for i in range(len(LANGS))], axis=1)
    relevant = np.tile(answers, (len(LANGS), 1))
    nq = QUESTIONS * len(LANGS)
    task = Task(LANGS, [f"q{i}" for i in range(nq)], [f"q{i}" for i in range(nq)],
                np.repeat(np.arange(len(LANGS)), QUESTIONS), [f"c{i}" for i in range(offsets[-1])],
                [f"c{i}" for i in range(offsets[-1])], offsets, relevant)

    def unit(n):
        x = rng.normal(size=(n, DIM)).astype(np.float32)
        return x / np.linalg.norm(x, axis=1, keepdims=True)

    return task, unit(nq), unit(int(offsets[-1]))


def peak_mb() -> float:
    """Peak RSS of this process so far (inputs included)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def traced_peak_mb() -> float:
    """Peak of the memory allocated while scoring (numpy reports its buffers to tracemalloc)."""
    return tracemalloc.get_traced_memory()[1] / 2**20


def worker_mtqa() -> dict:
    from mt_qa.evaluate.pipeline import score_task

    task, q, c = make_task()
    base = peak_mb()
    tracemalloc.start()
    t = time.perf_counter()
    summary, _ = score_task(task, q, c)
    seconds = time.perf_counter() - t
    return {"seconds": seconds, "peak_mb": peak_mb(), "inputs_mb": base, "work_mb": traced_peak_mb(),
            "multi_mAP": summary["settings"]["multi"]["mAP"], "cross_mAP": summary["settings"]["cross"]["mAP"],
            "mono_mAP": summary["settings"]["mono"]["mAP"],
            "bias": summary["language_bias"]["mean"]}


def _ap_from_order(order: np.ndarray, rel: np.ndarray) -> np.ndarray:
    """AP per row of a full ranking ``order`` with relevant column ids ``rel`` (n, R)."""
    inverse = np.empty_like(order)
    rows = np.arange(order.shape[0])[:, None]
    inverse[rows, order] = np.arange(order.shape[1])[None, :]
    ranks = np.sort(np.take_along_axis(inverse, rel, axis=1) + 1, axis=1)
    return (np.arange(1, rel.shape[1] + 1)[None, :] / ranks).mean(1), ranks


def worker_argsort() -> dict:
    task, q, c = make_task()
    base = peak_mb()
    tracemalloc.start()
    t = time.perf_counter()
    off = task.offsets
    pair = np.zeros((len(LANGS), len(LANGS)))
    multi, bias = [], []
    for x in range(len(LANGS)):
        rows = np.where(task.query_lang == x)[0]
        for y in range(len(LANGS)):
            scores = q[rows] @ c[off[y]:off[y + 1]].T
            order = np.argsort(-scores, axis=1, kind="stable")
            ap, _ = _ap_from_order(order, task.relevant[rows][:, [y]] - off[y])
            pair[x, y] = ap.mean()
        scores = q[rows] @ c.T
        order = np.argsort(-scores, axis=1, kind="stable")
        ap, ranks = _ap_from_order(order, task.relevant[rows])
        multi.append(ap.mean())
        bias.append((ranks[:, -1] - ranks[:, 0]).mean())
    seconds = time.perf_counter() - t
    cross = pair[~np.eye(len(LANGS), dtype=bool)].mean()
    return {"seconds": seconds, "peak_mb": peak_mb(), "inputs_mb": base, "work_mb": traced_peak_mb(),
            "multi_mAP": float(np.mean(multi)),
            "cross_mAP": float(cross), "mono_mAP": float(np.diag(pair).mean()), "bias": float(np.mean(bias))}


def worker_ir_measures(sample: int = 100) -> dict:
    import ir_measures
    from ir_measures import AP, R

    task, q, c = make_task()
    base = peak_mb()
    t = time.perf_counter()
    rows = np.arange(sample)  # queries of the first language, pooled setting
    scores = q[rows] @ c.T
    qrels = {f"q{i}": {f"c{j}": 1 for j in task.relevant[i]} for i in rows}
    run = {f"q{i}": dict(zip(task.candidate_ids, scores[k].tolist(), strict=True)) for k, i in enumerate(rows)}
    agg = ir_measures.calc_aggregate([AP, R @ 10], qrels, run)
    seconds = time.perf_counter() - t
    entries = sample * len(task.candidate_ids)
    total_entries = sum(QUESTIONS * n for n in CANDIDATES) * len(LANGS) + QUESTIONS * len(LANGS) * sum(CANDIDATES)
    return {"seconds_sample": seconds, "sample_queries": sample, "sample_entries": entries,
            "total_entries": total_entries, "seconds": seconds * total_entries / entries, "extrapolated": True,
            "peak_mb": peak_mb(), "inputs_mb": base, "sample_AP": agg[AP]}


def run_worker(name: str) -> dict:
    proc = subprocess.run([sys.executable, __file__, "--worker", name], capture_output=True, text=True, cwd=ROOT)
    if proc.returncode != 0:
        raise SystemExit(f"worker {name} failed:\n{proc.stderr}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def bench_encode(n_texts: int) -> dict:
    from squad_setup import collect_squad

    from mt_qa.evaluate.build import BuildLareqa
    from mt_qa.evaluate.encode import Encoder
    from mt_qa.evaluate.lareqa import load_benchmark

    model = os.environ.get("MTQA_E5_DIR", str(Path.home() / ".cache" / "mtqa" / "e5-small"))
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        collect_squad(tmp / "collect")
        BuildLareqa(tmp / "collect", tmp / "bench", articles=10).run()
        task = load_benchmark(tmp / "bench").task()
        n_q = min(n_texts // 3, task.num_queries)
        n_c = min(n_texts - n_q, task.num_candidates)
        queries, cands = task.query_texts[:n_q], task.candidate_texts[:n_c]
        t = time.perf_counter()
        enc = Encoder(model, cache_dir=tmp / "cache", progress=False)
        hash_s = time.perf_counter() - t
        t = time.perf_counter()
        enc.encode(queries, "query: ")
        enc.encode(cands, "passage: ")
        cold = time.perf_counter() - t
        stats = dict(enc.stats)
        enc.close()
        warm_enc = Encoder(model, cache_dir=tmp / "cache", progress=False)
        t = time.perf_counter()
        warm_enc.encode(queries, "query: ")
        warm_enc.encode(cands, "passage: ")
        warm = time.perf_counter() - t
        warm_enc.close()
        rate = stats["encoded"] / stats["encode_seconds"]
        # Whole dev benchmark: per-setting encoding (no dedup) vs unique texts once.
        n_lang = len(task.languages)
        per_lang_q = task.num_queries / n_lang
        naive = n_lang * n_lang * (per_lang_q + task.num_candidates / n_lang) + n_lang * (per_lang_q
                                                                                           + task.num_candidates)
        unique = len(set(task.query_texts)) + len(set(task.candidate_texts))
        words = np.mean([len(s.split()) for s in queries + cands])
        return {"model": model, "texts": len(queries) + len(cands), "mean_words": float(words),
                "hash_seconds": hash_s, "load_seconds": stats["load_seconds"],
                "encode_seconds": stats["encode_seconds"],
                "cold_seconds": cold, "texts_per_second": rate, "warm_seconds": warm,
                "warm_texts_per_second": (len(queries) + len(cands)) / warm,
                "bench_languages": n_lang, "bench_unique_texts": unique, "bench_naive_encodings": naive,
                "bench_unique_minutes": unique / rate / 60, "bench_naive_minutes": naive / rate / 60}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    parser.add_argument("--skip-encode", action="store_true", help="Only the scoring benchmark.")
    parser.add_argument("--skip-ir-measures", action="store_true")
    parser.add_argument("--encode-texts", type=int, default=1000, help="Texts encoded with e5-small (cold).")
    args = parser.parse_args()
    if args.worker:
        fn = {"mtqa": worker_mtqa, "argsort": worker_argsort, "ir_measures": worker_ir_measures}[args.worker]
        print(json.dumps(fn()))
        return
    print(f"machine: {os.cpu_count()} CPU cores (shared with other processes: timings are upper bounds)")
    print(f"task: {len(LANGS)} languages x {QUESTIONS} questions, {sum(CANDIDATES)} pooled candidates, dim {DIM}, "
          f"{len(LANGS) ** 2} pair settings + {len(LANGS)} pooled")
    ours = run_worker("mtqa")
    naive = run_worker("argsort")
    print(f"mtqa score_task : {ours['seconds']:7.2f} s, scoring memory {ours['work_mb']:6.0f} MB, peak RSS "
          f"{ours['peak_mb']:5.0f} MB (inputs {ours['inputs_mb']:.0f} MB)  mono {ours['mono_mAP']:.4f} "
          f"cross {ours['cross_mAP']:.4f} multi {ours['multi_mAP']:.4f} bias {ours['bias']:.1f}")
    print(f"argsort/setting : {naive['seconds']:7.2f} s, scoring memory {naive['work_mb']:6.0f} MB, peak RSS "
          f"{naive['peak_mb']:5.0f} MB (inputs {naive['inputs_mb']:.0f} MB)  mono {naive['mono_mAP']:.4f} "
          f"cross {naive['cross_mAP']:.4f} multi {naive['multi_mAP']:.4f} bias {naive['bias']:.1f}")
    print(f"  -> mtqa is {naive['seconds'] / ours['seconds']:.1f}x faster than argsort per setting; "
          f"same numbers: {all(abs(ours[k] - naive[k]) < 1e-6 for k in ('mono_mAP', 'cross_mAP', 'multi_mAP'))}")
    if not args.skip_ir_measures:
        irm = run_worker("ir_measures")
        print(f"ir_measures     : {irm['seconds_sample']:.2f} s for {irm['sample_queries']} pooled queries "
              f"({irm['sample_entries']:,} run entries, peak RSS {irm['peak_mb']:.0f} MB); extrapolated to all "
              f"{irm['total_entries']:,} entries: {irm['seconds']:.0f} s "
              f"-> mtqa is {irm['seconds'] / ours['seconds']:.0f}x faster (extrapolated)")
    if not args.skip_encode:
        e = bench_encode(args.encode_texts)
        print(f"e5-small encode : {e['texts']} texts (mean {e['mean_words']:.1f} words): model hash "
              f"{e['hash_seconds']:.1f} s, load {e['load_seconds']:.1f} s, encode {e['encode_seconds']:.1f} s = "
              f"{e['texts_per_second']:.1f} texts/s; warm (cache) {e['warm_seconds']:.2f} s = "
              f"{e['warm_texts_per_second']:.0f} texts/s ({e['cold_seconds'] / e['warm_seconds']:.0f}x)")
        print(f"  dev benchmark ({e['bench_languages']} langs): {e['bench_unique_texts']} unique texts "
              f"(~{e['bench_unique_minutes']:.1f} min) vs {e['bench_naive_encodings']:.0f} encodings per setting "
              f"(~{e['bench_naive_minutes']:.1f} min): {e['bench_naive_encodings'] / e['bench_unique_texts']:.1f}x")


if __name__ == "__main__":
    main()
