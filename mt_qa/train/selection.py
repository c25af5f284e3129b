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

import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm import tqdm

from mt_qa.errors import MtqaError
from mt_qa.train import DEV_METRICS
from mt_qa.train.checkpoint import TrainState
from mt_qa.train.distributed import DistEnv
from mt_qa.train.log import LossLog, write_csv

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


class Selector:
    """Which weights the run saves: the best dev loss (without a benchmark) or the best benchmark score.

    The chosen weights go to ``best_dir/model.pt``; the benchmark curve is rewritten to ``curve_file``
    after every evaluation. Both live in the :class:`~mt_qa.train.checkpoint.TrainState`, so they resume.
    """

    def __init__(self, best_dir: Path, curve_file: Path):
        self.best_dir = best_dir
        self.curve_file = curve_file

    def save_best(self, env: DistEnv, model: torch.nn.Module) -> None:
        if env.is_main:
            self.best_dir.mkdir(parents=True, exist_ok=True)
            torch.save(model.state_dict(), self.best_dir / "model.tmp")
            (self.best_dir / "model.tmp").replace(self.best_dir / "model.pt")

    def track_dev_loss(self, value: float, state: TrainState, env: DistEnv, log: LossLog | None,
                       model: torch.nn.Module, select: bool = True) -> None:
        """A dev loss; with ``select`` (no --dev-benchmark) it also picks the weights that are saved."""
        if state.best_dev_loss is None or value < state.best_dev_loss:
            state.best_dev_loss = value
            if select:
                state.best_step, state.bad_evals = state.step, 0
                self.save_best(env, model)
        elif select:
            state.bad_evals += 1
        if log is not None:
            log.add_dev(state.step, value)

    def track_benchmark(self, bench: DevBenchmark, state: TrainState, env: DistEnv, log: LossLog | None,
                        model: torch.nn.Module, reference: bool = False) -> None:
        """Score the dev benchmark; keep the best fine-tuned weights (``reference``: the base, step 0)."""
        metrics = {"step": state.step, **bench.evaluate(model)}
        curve = state.extra.setdefault("dev_benchmark_curve", [])
        curve.append(metrics)
        if reference:
            state.extra["dev_benchmark_base"] = metrics
        else:
            best = state.extra.get("dev_benchmark_best")
            if best is None or metrics["score"] > best["score"]:
                state.extra["dev_benchmark_best"] = metrics
                state.best_step, state.bad_evals = state.step, 0
                self.save_best(env, model)
            else:
                state.bad_evals += 1
        if env.is_main:
            write_csv(self.curve_file, CURVE_FIELDS, [{k: row[k] for k in CURVE_FIELDS} for row in curve])
        if log is not None:
            log.add_benchmark(state.step, metrics)


def benchmark_result(bench: DevBenchmark, state: TrainState) -> dict[str, Any]:
    """The summary's ``dev_benchmark``: base, best and the curve; warns when the best is worse than the base."""
    base = state.extra.get("dev_benchmark_base")
    best = state.extra.get("dev_benchmark_best")
    out: dict[str, Any] = {"path": bench.directory, "metric": bench.metric, "base": base, "best": best,
                           "curve": state.extra.get("dev_benchmark_curve", [])}
    if base and best:
        out["beats_base"] = beats_base(best, base)
        if not out["beats_base"]["score"]:
            tqdm.write(f"warning: no checkpoint beat the base model on the dev benchmark ({bench.metric} "
                       f"{best['score']:.4f} at step {best['step']} vs base {base['score']:.4f}); the saved "
                       "model is the best fine-tuned one, and it is worse than its base", file=sys.stderr)
    return out
