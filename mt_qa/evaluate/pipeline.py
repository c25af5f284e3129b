"""Evaluate one model on LAReQA-format benchmarks: load, encode once, rank, score, report.

Kept apart from the CLI so training code (an evaluator during ``mtqa train``) and notebooks
can call :func:`evaluate_lareqa` with an ``Encoder`` or with precomputed embeddings.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from mt_qa import __version__
from mt_qa.errors import MtqaError
from mt_qa.evaluate.encode import Encoder
from mt_qa.evaluate.lareqa import Benchmark, Task, load_benchmark
from mt_qa.evaluate.metrics import DEFAULT_KS, lareqa_metrics
from mt_qa.evaluate.ranking import relevant_ranks


@dataclass
class Prefixes:
    """Strings put before queries / candidates (e5 convention by default)."""

    query: str = "query: "
    passage: str = "passage: "


@dataclass
class BenchmarkResult:
    name: str
    summary: dict[str, Any]
    per_query: dict[str, np.ndarray]
    task: Task
    stats: dict[str, Any]


def score_task(task: Task, query_emb: np.ndarray, cand_emb: np.ndarray, *, ties: str = "pessimistic",
               ks: tuple[int, ...] = DEFAULT_KS, query_chunk: int = 256,
               progress: bool = False) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """All settings of one task from its embeddings (rows in ``task`` order)."""
    if query_emb.shape[0] != task.num_queries or cand_emb.shape[0] != task.num_candidates:
        raise MtqaError(f"embeddings ({query_emb.shape[0]} queries, {cand_emb.shape[0]} candidates) do not match "
                        f"the task ({task.num_queries} queries, {task.num_candidates} candidates)")
    ranks = relevant_ranks(query_emb, cand_emb, task.offsets, task.relevant, ties=ties, query_chunk=query_chunk,
                           progress=progress)
    summary, per_query = lareqa_metrics(task.languages, task.query_lang, ranks, ks)
    per_query["ranks_pool"] = ranks.in_pool
    per_query["ranks_segment"] = ranks.in_segment
    per_query["segment"] = ranks.segment
    return summary, per_query


def _benchmark_stats(bench: Benchmark) -> dict[str, Any]:
    return {lang: {"source": d.source, **dict(sorted(d.stats.items()))} for lang, d in bench.data.items()}


def evaluate_lareqa(directories: list[str | Path], encoder: Encoder, *, languages: list[str] | None = None,
                    prefixes: Prefixes | None = None, ties: str = "pessimistic", ks: tuple[int, ...] = DEFAULT_KS,
                    names: list[str] | None = None, progress: bool = True) -> dict[str, Any]:
    """Evaluate ``encoder`` on each LAReQA-format directory; return the report (and results)."""
    prefixes = prefixes or Prefixes()
    started = time.perf_counter()
    if names and len(names) != len(directories):
        raise MtqaError("give one --name per benchmark directory")
    benches = [load_benchmark(d, languages, names[i] if names else None) for i, d in enumerate(directories)]
    seen: set[str] = set()
    for b in benches:
        if b.name in seen:
            raise MtqaError(f"two benchmarks are named {b.name!r}: pass --name for each")
        seen.add(b.name)
    tasks = [b.task() for b in benches]
    # Encode every unique string of every benchmark in one pass (shared sentences count once).
    all_q = [t for task in tasks for t in task.query_texts]
    all_c = [t for task in tasks for t in task.candidate_texts]
    t0 = time.perf_counter()
    q_emb = encoder.encode(all_q, prefixes.query, desc="encode queries")
    c_emb = encoder.encode(all_c, prefixes.passage, desc="encode candidates")
    encode_seconds = time.perf_counter() - t0
    results: list[BenchmarkResult] = []
    qo = co = 0
    score_seconds = 0.0
    for bench, task in zip(benches, tasks, strict=True):
        t1 = time.perf_counter()
        summary, per_query = score_task(task, q_emb[qo:qo + task.num_queries], c_emb[co:co + task.num_candidates],
                                        ties=ties, ks=ks, progress=progress)
        score_seconds += time.perf_counter() - t1
        qo += task.num_queries
        co += task.num_candidates
        summary["n_questions"] = {lang: len(bench.data[lang].questions) for lang in bench.languages}
        summary["n_candidates"] = {lang: len(bench.data[lang].candidates) for lang in bench.languages}
        results.append(BenchmarkResult(bench.name, summary, per_query, task, _benchmark_stats(bench)))
    report = {
        "kind": "lareqa",
        "tool": {"name": "mtqa", "version": __version__},
        "model": encoder.info(),
        "prefixes": {"query": prefixes.query, "passage": prefixes.passage},
        "ties": ties,
        "benchmarks": {r.name: {**r.summary, "source": str(Path(directories[i]).resolve()), "input_stats": r.stats}
                       for i, r in enumerate(results)},
        "encoding": {k: round(v, 3) if isinstance(v, float) else v for k, v in encoder.stats.items()},
        "timing": {"encode_seconds": round(encode_seconds, 2), "score_seconds": round(score_seconds, 2),
                   "total_seconds": round(time.perf_counter() - started, 2)},
    }
    return {"report": report, "results": results}
