"""Model selection on the metric that matters: LAReQA mAP on a held-out benchmark, during training.

The dev *loss* of in-batch InfoNCE says little about sentence retrieval in a pool of
languages; the benchmark a user reports on does. ``mtqa train --dev-benchmark DIR`` (a
directory from ``mtqa evaluate build-lareqa``, whose articles the batches exclude) encodes
the benchmark with the model being trained every ``--eval-steps`` and keeps the weights with
the best primary score. The untrained model is scored once at step 0 as the reference that
the curve starts from: it is reported, never selected, because the point of training is a
model better than its base (a run where no step beats it says so in its summary and card).
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from mt_qa.errors import MtqaError
from mt_qa.train import DEV_METRICS

CURVE_FIELDS = ("step", "mono_map", "cross_map", "multi_map", "bias", "score", "seconds")


class DevBenchmark:
    """A LAReQA-format benchmark scored in memory with the model being trained (no cache, no files)."""

    def __init__(self, directory: str | Path, metric: str = "mean", query_prefix: str = "query: ",
                 passage_prefix: str = "passage: ", batch_size: int = 64):
        from mt_qa.evaluate.lareqa import load_benchmark

        if metric not in DEV_METRICS:
            raise MtqaError(f"--dev-metric must be one of {DEV_METRICS}, not {metric!r}")
        bench = load_benchmark(directory)
        if len(bench.languages) < 2:
            raise MtqaError(f"--dev-benchmark {directory}: needs at least two languages (cross and multi mAP), "
                            f"found {bench.languages}")
        self.directory = str(directory)
        self.metric = metric
        self.task = bench.task()
        self.languages = bench.languages
        self.query_prefix = query_prefix
        self.passage_prefix = passage_prefix
        self.batch_size = batch_size

    def _encode(self, model: Any, texts: list[str], prefix: str) -> np.ndarray:
        unique = list(dict.fromkeys(prefix + t for t in texts))
        vectors = model.encode(unique, batch_size=self.batch_size, show_progress_bar=False, convert_to_numpy=True,
                               normalize_embeddings=True)
        where = {s: i for i, s in enumerate(unique)}
        return np.asarray(vectors, dtype=np.float32)[[where[prefix + t] for t in texts]]

    def evaluate(self, model: Any) -> dict[str, float]:
        """mono / cross / multi mAP, language bias and the primary ``score`` of ``model`` (dropout off)."""
        from mt_qa.evaluate.pipeline import score_task

        started = time.perf_counter()
        was_training = model.training
        model.eval()
        try:
            with torch.no_grad():
                q = self._encode(model, self.task.query_texts, self.query_prefix)
                c = self._encode(model, self.task.candidate_texts, self.passage_prefix)
        finally:
            model.train(was_training)
        summary, _ = score_task(self.task, q, c)
        settings = summary["settings"]
        out = {"mono_map": settings["mono"]["mAP"], "cross_map": settings["cross"]["mAP"],
               "multi_map": settings["multi"]["mAP"], "bias": summary["language_bias"]["mean"]}
        out["score"] = primary_score(out, self.metric)
        out = {k: round(float(v), 6) for k, v in out.items()}
        out["seconds"] = round(time.perf_counter() - started, 2)
        return out


def primary_score(metrics: dict[str, float], metric: str) -> float:
    """The number selection maximises: one setting's mAP, or the mean of mono, cross and multi mAP."""
    if metric == "mean":
        return (metrics["mono_map"] + metrics["cross_map"] + metrics["multi_map"]) / 3
    return metrics[f"{metric}_map"]


def beats_base(best: dict[str, float], base: dict[str, float]) -> dict[str, bool]:
    """Per axis: is the selected model better than the base (higher mAP, lower bias)?"""
    out = {k: best[k] > base[k] for k in ("mono_map", "cross_map", "multi_map", "score")}
    out["bias"] = best["bias"] < base["bias"]
    return out
