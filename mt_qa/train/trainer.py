"""The bi-encoder trainer: one optimizer step per built batch, in the order build-batches wrote.

Why our own loop rather than ``SentenceTransformerTrainer``: the Trainer's data loader owns
batching (it re-batches rows and, under DDP, gives every device a *different* batch, making
the global batch N x the built one), and its resume replays the loader to skip batches. Here
the unit of work is the built batch itself: step n is batch n, split across devices, with
the embeddings gathered so every query meets all passages of its built batch. The model,
its saving and the losses are sentence-transformers' own (``MultipleNegativesRankingLoss``
and, for GradCache, ``CachedMultipleNegativesRankingLoss``), so the arithmetic is the one
users know and the output directory is a standard sentence-transformers model.
"""

from __future__ import annotations

import contextlib
import csv
import hashlib
import io
import itertools
import json
import math
import random
import resource
import shutil
import signal
import sys
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm import tqdm

from mt_qa.errors import MtqaError
from mt_qa.outdir import claim_output, has_entries
from mt_qa.shards import atomic_write_bytes, atomic_write_json, sha256_file
from mt_qa.train import PRECISIONS
from mt_qa.train.card import model_card
from mt_qa.train.checkpoint import (
    TrainState,
    checkpoint_dirs,
    load_checkpoint,
    save_checkpoint,
    save_rng,
)
from mt_qa.train.data import Batch, BatchSource
from mt_qa.train.distributed import DistEnv, init_distributed, shutdown_distributed
from mt_qa.train.selection import CURVE_FIELDS, DEV_METRICS, DevBenchmark, beats_base

SUMMARY_FILE = "mtqa_train.json"
LOG_FILE = "training_log.csv"
CURVE_FILE = "dev_benchmark.csv"
CHECKPOINTS = "checkpoints"
# Settings that change the arithmetic: a resumed run must use the same ones.
_RESUME_CRITICAL = ("model", "query_prefix", "passage_prefix", "max_query_length", "max_passage_length",
                    "temperature", "lr", "weight_decay", "warmup_ratio", "warmup_steps", "epochs", "max_steps",
                    "mini_batch_size", "max_grad_norm", "precision", "use_negatives", "seed", "dev_batches",
                    "max_dev_batches", "eval_steps", "patience", "embedding_lr", "freeze_embeddings",
                    "dev_benchmark", "dev_metric")


@dataclass
class TrainConfig:
    """Every setting of ``mtqa train`` (the CLI options map 1:1 onto these fields)."""

    batches: str
    model: str
    out: str
    dev_batches: str | None = None
    dev_benchmark: str | None = None
    dev_metric: str = "mean"
    query_prefix: str = "query: "
    passage_prefix: str = "passage: "
    max_query_length: int = 64
    max_passage_length: int = 256
    temperature: float = 0.01
    lr: float = 2e-5
    embedding_lr: float | None = None
    freeze_embeddings: bool = True
    weight_decay: float = 0.01
    warmup_ratio: float = 0.1
    warmup_steps: int | None = None
    epochs: int | None = None
    max_steps: int | None = None
    mini_batch_size: int = 32
    max_grad_norm: float = 1.0
    precision: str = "fp32"
    gradient_checkpointing: bool = False
    use_negatives: bool = True
    save_steps: int = 500
    save_total_limit: int = 2
    keep_checkpoints: bool = False
    eval_steps: int | None = None
    max_dev_batches: int | None = None
    patience: int | None = None
    log_steps: int = 10
    seed: int = 42
    device: str | None = None
    tensorboard: bool = False
    resume: bool = False
    overwrite: bool = False
    progress: bool = True

    def validate(self) -> None:
        if self.precision not in PRECISIONS:
            raise MtqaError(f"--precision must be one of {PRECISIONS}, not {self.precision!r}")
        if self.temperature <= 0:
            raise MtqaError("--temperature must be > 0")
        for name in ("max_query_length", "max_passage_length", "save_steps", "log_steps"):
            if getattr(self, name) < 1:
                raise MtqaError(f"--{name.replace('_', '-')} must be at least 1")
        if self.mini_batch_size < 0:
            raise MtqaError("--mini-batch-size must be >= 0 (0 turns GradCache off)")
        if self.max_steps is not None and self.max_steps < 1:
            raise MtqaError("--max-steps must be at least 1")
        if not 0 <= self.warmup_ratio < 1:
            raise MtqaError("--warmup-ratio must be in [0, 1)")
        if self.patience is not None and not (self.dev_batches or self.dev_benchmark):
            raise MtqaError("--patience (early stopping) needs --dev-batches or --dev-benchmark")
        if self.embedding_lr is not None and self.embedding_lr < 0:
            raise MtqaError("--embedding-lr must be >= 0 (0 = frozen word embeddings)")
        if self.dev_metric not in DEV_METRICS:
            raise MtqaError(f"--dev-metric must be one of {DEV_METRICS}, not {self.dev_metric!r}")
        if self.dev_benchmark is not None and not Path(self.dev_benchmark).is_dir():
            raise MtqaError(f"--dev-benchmark {self.dev_benchmark}: not a directory (build one with "
                            "mtqa evaluate build-lareqa)")

    @property
    def frozen_embeddings(self) -> bool:
        """Frozen: --embedding-lr 0, or --freeze-embeddings (the default) without an --embedding-lr > 0."""
        return self.embedding_lr == 0 or (self.freeze_embeddings and self.embedding_lr is None)

    def fingerprint(self, data_sha: str, world_size: int) -> str:
        critical = {k: getattr(self, k) for k in _RESUME_CRITICAL}
        blob = json.dumps({"config": critical, "data": data_sha, "world_size": world_size}, sort_keys=True)
        return hashlib.sha256(blob.encode()).hexdigest()


def load_model(name: str, device: torch.device) -> Any:
    """A sentence-transformers model from a directory or hub name; a plain HF encoder gets mean pooling."""
    from sentence_transformers import SentenceTransformer

    try:
        return SentenceTransformer(name, device=str(device))
    except Exception as exc:  # noqa: BLE001 - any failure to load is the user's model path/name
        raise MtqaError(f"--model {name!r}: could not load it as a sentence-transformers or Hugging Face "
                        f"encoder: {type(exc).__name__}: {str(exc)[:300]}") from None


def keep_without_pooler(model: Any, directory: Path) -> None:
    """Make a saved encoder that has no pooler (e5 and other mean-pooled models) load without one.

    sentence-transformers saves the weights but not the ``add_pooling_layer=False`` it was loaded
    with, so a reload builds a BERT pooler, warns ``pooler.dense.weight MISSING ... newly
    initialized`` and carries random, unused weights. Writing the argument back into the
    Transformer module's config makes the reload build exactly the saved architecture.
    """
    modules = json.loads((directory / "modules.json").read_text())
    for entry, module in zip(modules, model, strict=False):
        auto_model = getattr(module, "auto_model", None)
        if auto_model is None or not hasattr(auto_model, "pooler") or auto_model.pooler is not None:
            continue
        config_file = directory / entry.get("path", "") / "sentence_bert_config.json"
        if not config_file.is_file():
            continue
        config = json.loads(config_file.read_text())
        # "model_args" is the name every sentence-transformers version reads (v6 maps it to model_kwargs).
        config.setdefault("model_kwargs" if "model_kwargs" in config else "model_args", {})["add_pooling_layer"] = False
        atomic_write_json(config_file, config)


def make_loss(model: Any, temperature: float, mini_batch_size: int, gather: bool) -> torch.nn.Module:
    """InfoNCE with in-batch negatives (+ hard negatives when a third column is given).

    ``mini_batch_size`` > 0 uses GradCache (CachedMultipleNegativesRankingLoss): memory is that
    of ``mini_batch_size`` sequences whatever the batch size, for about one extra forward pass.
    """
    from sentence_transformers.sentence_transformer.losses import (
        CachedMultipleNegativesRankingLoss,
        MultipleNegativesRankingLoss,
    )

    scale = 1.0 / temperature
    if mini_batch_size:
        return CachedMultipleNegativesRankingLoss(model, scale=scale, mini_batch_size=mini_batch_size,
                                                  gather_across_devices=gather)
    return MultipleNegativesRankingLoss(model, scale=scale, gather_across_devices=gather)


def word_embeddings(model: torch.nn.Module) -> torch.nn.Parameter | None:
    """The input word-embedding matrix of a sentence-transformers model's encoder (None if it has none)."""
    auto = getattr(model[0], "auto_model", None) if hasattr(model, "__getitem__") else None
    get = getattr(auto, "get_input_embeddings", None)
    emb = get() if get is not None else None
    return getattr(emb, "weight", None)


def _param_groups(model: torch.nn.Module, weight_decay: float, lr: float,
                  embedding_lr: float | None = None) -> list[dict[str, Any]]:
    """No weight decay on biases and normalisation weights (the usual BERT recipe).

    With ``embedding_lr`` the word embeddings get their own learning rate (decayed like the
    other matrices): in a multilingual encoder they are most of the weights (96M of e5-small's
    118M), and only the rows of the training languages' tokens receive gradients.
    """
    emb = word_embeddings(model) if embedding_lr is not None else None
    decay, no_decay, embeddings = [], [], []
    for name, p in model.named_parameters():
        if not p.requires_grad:
            continue
        if emb is not None and p is emb:
            embeddings.append(p)
            continue
        (no_decay if p.ndim < 2 or "norm" in name.lower() else decay).append(p)
    groups = [{"params": decay, "weight_decay": weight_decay, "lr": lr},
              {"params": no_decay, "weight_decay": 0.0, "lr": lr}]
    if embeddings:
        groups.append({"params": embeddings, "weight_decay": weight_decay, "lr": embedding_lr})
    return groups


def _make_optimizer(groups: list[dict[str, Any]], lr: float, device: torch.device) -> torch.optim.Optimizer:
    # The fused kernel is what transformers' Trainer picks by default; fall back where unsupported.
    try:
        return torch.optim.AdamW(groups, lr=lr, fused=device.type in ("cuda", "cpu"))
    except (RuntimeError, ValueError):
        return torch.optim.AdamW(groups, lr=lr)


def linear_schedule(warmup: int, total: int):
    def factor(step: int) -> float:
        if step < warmup:
            return step / max(1, warmup)
        return max(0.0, (total - step) / max(1, total - warmup))

    return factor


class LossLog:
    """``training_log.csv`` (one row per step, one per dev evaluation), optionally mirrored to TensorBoard."""

    FIELDS = ["step", "kind", "epoch", "batch_id", "batch_type", "loss", "lr", "pairs_per_s", "seconds", "score"]

    def __init__(self, path: Path, resume_step: int, tensorboard_dir: Path | None = None):
        self.path = path
        keep: list[dict[str, str]] = []
        if resume_step > 0 and path.is_file():
            with path.open(newline="") as fh:
                keep = [row for row in csv.DictReader(fh) if int(row["step"]) <= resume_step]
        buf = io.StringIO()
        writer = csv.DictWriter(buf, fieldnames=self.FIELDS)
        writer.writeheader()
        writer.writerows(keep)
        atomic_write_bytes(path, buf.getvalue().encode())
        self.fh = path.open("a", newline="")
        self.writer = csv.DictWriter(self.fh, fieldnames=self.FIELDS)
        self.tb = None
        if tensorboard_dir is not None:
            try:
                from torch.utils.tensorboard import SummaryWriter
            except ImportError as exc:
                raise MtqaError("--tensorboard needs the 'tensorboard' package (pip install tensorboard)") from exc
            self.tb = SummaryWriter(str(tensorboard_dir), purge_step=resume_step + 1 if resume_step else None)

    def add(self, rows: list[dict[str, Any]]) -> None:
        self.writer.writerows(rows)
        self.fh.flush()
        if self.tb is not None:
            for row in rows:
                if row["kind"] == "dev_benchmark":
                    self.tb.add_scalar("dev/benchmark_score", row["score"], row["step"])
                    continue
                tag = "train/loss" if row["kind"] == "train" else "dev/loss"
                self.tb.add_scalar(tag, row["loss"], row["step"])
                if row.get("lr") != "":
                    self.tb.add_scalar("train/lr", row["lr"], row["step"])

    def close(self) -> None:
        self.fh.close()
        if self.tb is not None:
            self.tb.close()


class _StopFlag:
    """SIGINT/SIGTERM (e.g. a pre-empted job) end the run after the current step, with a checkpoint."""

    def __init__(self) -> None:
        self.raised = False
        self._old: dict[int, Any] = {}

    def __enter__(self) -> _StopFlag:
        with contextlib.suppress(ValueError):  # not the main thread: no handlers
            for sig in (signal.SIGINT, signal.SIGTERM):
                self._old[sig] = signal.signal(sig, self._handle)
        return self

    def _handle(self, signum: int, frame: Any) -> None:
        self.raised = True

    def __exit__(self, *exc: Any) -> None:
        for sig, handler in self._old.items():
            signal.signal(sig, handler)


def peak_memory_mb(device: torch.device) -> float:
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux reports KiB


def dev_loss(config: TrainConfig, model: str | None = None) -> float:
    """The dev loss of a model (default: ``config.model``) on ``config.dev_batches``, without training.

    The same number ``mtqa train`` logs, so a base model and a trained one can be compared.
    """
    if not config.dev_batches:
        raise MtqaError("dev_loss needs dev_batches")
    trainer = BiEncoderTrainer(config)
    device = torch.device(config.device or ("cuda" if torch.cuda.is_available() else "cpu"))
    trainer.model = load_model(model or config.model, device)
    trainer.loss_fn = make_loss(trainer.model, config.temperature, config.mini_batch_size, gather=False)
    return trainer.evaluate(BatchSource(config.dev_batches, None, config.use_negatives))


class BiEncoderTrainer:
    """Train a shared-weight bi-encoder on batch shards; see the module docstring for why a custom loop."""

    def __init__(self, config: TrainConfig, callbacks: list[Callable[[TrainState], None]] | None = None):
        """``callbacks`` are called with the state after every optimizer step (monitoring, timing)."""
        config.validate()
        self.config = config
        self.callbacks = list(callbacks or [])
        self.out = Path(config.out)
        self.ckpt_root = self.out / CHECKPOINTS

    # ------------------------------------------------------------------ setup
    def train(self) -> dict[str, Any]:
        env, device = init_distributed(self.config.device)
        try:
            return self._train(env, device)
        finally:
            shutdown_distributed()

    def _prepare_out(self, env: DistEnv) -> list[Path]:
        cfg = self.config
        if env.is_main:
            self._claim_out()
        env.barrier()
        finished = (self.out / SUMMARY_FILE).is_file()
        ckpts = checkpoint_dirs(self.ckpt_root)
        if cfg.overwrite and not cfg.resume:
            if env.is_main:
                for name in (CHECKPOINTS, "tensorboard"):
                    shutil.rmtree(self.out / name, ignore_errors=True)
                for name in (SUMMARY_FILE, LOG_FILE):
                    (self.out / name).unlink(missing_ok=True)
            env.barrier()
            return []
        if finished and not cfg.resume:
            raise MtqaError(f"{self.out} already holds a model trained by mtqa train; use another --out or "
                            "--overwrite")
        if ckpts and not cfg.resume:
            raise MtqaError(f"{self.out} holds checkpoints of an unfinished run (last: {ckpts[-1].name}); pass "
                            "--resume to continue it or --overwrite to start over")
        if not ckpts and not finished and has_entries(self.out) and not cfg.resume:
            raise MtqaError(f"{self.out} exists and is not empty; use another --out or --overwrite")
        return ckpts

    def _claim_out(self) -> None:
        """Lock --out for this run and refuse a directory mtqa train did not make (``mt_qa/outdir.py``);
        whether to resume, refuse or start over is decided by ``_prepare_out``."""
        self._hold = claim_output(self.out, markers=(SUMMARY_FILE, CHECKPOINTS, LOG_FILE), same_run=lambda: True,
                                  what="train output directory")

    def _train(self, env: DistEnv, device: torch.device) -> dict[str, Any]:
        cfg = self.config
        started = time.perf_counter()
        source = BatchSource(cfg.batches, cfg.epochs, cfg.use_negatives)
        dev = BatchSource(cfg.dev_batches, None, cfg.use_negatives) if cfg.dev_batches else None
        total = len(source) if cfg.max_steps is None else min(cfg.max_steps, len(source))
        if total == 0:
            raise MtqaError(f"{cfg.batches} holds no batches")
        if source.batch_size % env.world_size:
            raise MtqaError(f"batch size {source.batch_size} is not divisible by {env.world_size} processes")
        if dev is not None and dev.batch_size % env.world_size:
            raise MtqaError(f"dev batch size {dev.batch_size} is not divisible by {env.world_size} processes")
        if cfg.precision == "fp16" and device.type != "cuda":
            raise MtqaError("--precision fp16 needs a CUDA device (use bf16 on CPU)")
        if cfg.resume and (self.out / SUMMARY_FILE).is_file():
            summary = json.loads((self.out / SUMMARY_FILE).read_text())
            if env.is_main:
                tqdm.write(f"{self.out}: training already finished; nothing to resume")
            return {**summary["result"], "already_finished": True}
        ckpts = self._prepare_out(env)
        data_sha = sha256_file(Path(cfg.batches) / "manifest.json")
        fingerprint = cfg.fingerprint(data_sha, env.world_size)

        random.seed(cfg.seed)
        np.random.seed(cfg.seed)
        torch.manual_seed(cfg.seed + env.rank)
        model = load_model(cfg.model, device)
        if cfg.gradient_checkpointing:
            auto = getattr(model[0], "auto_model", None)
            if auto is None or not hasattr(auto, "gradient_checkpointing_enable"):
                raise MtqaError("--gradient-checkpointing: the model's first module is not a Hugging Face model")
            auto.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
        model.train()
        self.model = model
        if cfg.frozen_embeddings:
            emb = word_embeddings(model)
            if emb is None:
                raise MtqaError("--freeze-embeddings / --embedding-lr 0: the model's first module has no input "
                                "word embeddings to freeze")
            emb.requires_grad_(False)
        self.loss_fn = make_loss(model, cfg.temperature, cfg.mini_batch_size, gather=env.enabled)
        params = [p for p in model.parameters() if p.requires_grad]
        bench = DevBenchmark(cfg.dev_benchmark, cfg.dev_metric, cfg.query_prefix, cfg.passage_prefix) \
            if cfg.dev_benchmark else None
        optimizer = _make_optimizer(_param_groups(model, cfg.weight_decay, cfg.lr, cfg.embedding_lr), cfg.lr, device)
        warmup = cfg.warmup_steps if cfg.warmup_steps is not None else math.ceil(cfg.warmup_ratio * total)
        scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, linear_schedule(warmup, total))
        scaler = torch.amp.GradScaler("cuda") if cfg.precision == "fp16" else None

        state = TrainState(fingerprint=fingerprint)
        if ckpts:
            state = load_checkpoint(ckpts[-1], env.rank, model, optimizer, scheduler, scaler, device, fingerprint)
        else:
            env.broadcast_parameters(model)
        if env.is_main:
            self.out.mkdir(parents=True, exist_ok=True)
        env.barrier()
        log = LossLog(self.out / LOG_FILE, state.step, self.out / "tensorboard" if cfg.tensorboard else None) \
            if env.is_main else None
        if bench is not None and "dev_benchmark_base" not in state.extra:
            # Step 0: the base model's score, the reference of the curve (never a selection candidate).
            self._bench_and_track(bench, state, env, log, model, reference=True)

        eval_every = cfg.eval_steps or cfg.save_steps
        recent: list[float] = []
        pending: list[tuple[Batch, torch.Tensor, float]] = []
        used_negatives = partial_negatives = 0
        epochs_reached = 0
        resumed_at = state.step
        seconds_before = state.seconds
        window_start, window_pairs = time.perf_counter(), 0
        run_start = time.perf_counter()
        bar = tqdm(total=total, initial=state.step, desc="train", unit="step",
                   disable=not (cfg.progress and env.is_main), dynamic_ncols=True)

        def flush() -> None:
            nonlocal window_start, window_pairs
            if not pending:
                return
            values = torch.stack([loss for _, loss, _ in pending]).float().tolist()
            now = time.perf_counter()
            rate = window_pairs / max(now - window_start, 1e-9)
            rows = []
            for (b, _, lr), value in zip(pending, values, strict=True):
                rows.append({"step": b.step + 1, "kind": "train", "epoch": b.epoch, "batch_id": b.batch_id,
                             "batch_type": b.batch_type, "loss": round(value, 6), "lr": lr,
                             "pairs_per_s": round(rate, 2),
                             "seconds": round(seconds_before + now - run_start, 2)})
                recent.append(value)
            del recent[:-10]
            if log is not None:
                log.add(rows)
            bar.set_postfix(loss=f"{values[-1]:.4f}", pairs_s=f"{rate:.1f}")
            pending.clear()
            window_start, window_pairs = now, 0

        with _StopFlag() as stop:
            # A run that stopped early and was killed before saving the model resumes to the end directly.
            stop_at = state.step if state.stopped_early else total
            for batch, local, features in self._prepared(source, state.step, stop_at, env):
                lr = scheduler.get_last_lr()[0]
                loss = self._step(features, optimizer, scheduler, scaler, params, env)
                epochs_reached = batch.epoch + 1
                used_negatives += local.negatives is not None
                partial_negatives += batch.partial_negatives
                state.step += 1
                state.pairs += len(batch)
                window_pairs += len(batch)
                pending.append((batch, loss, lr))
                bar.update(1)
                for callback in self.callbacks:
                    callback(state)
                last = state.step == total
                if state.step % cfg.log_steps == 0 or last:
                    flush()
                if dev is not None and (state.step % eval_every == 0 or last):
                    flush()
                    self._evaluate_and_track(dev, state, env, log, model, select=bench is None)
                if bench is not None and (state.step % eval_every == 0 or last):
                    flush()
                    self._bench_and_track(bench, state, env, log, model)
                if (dev is not None or bench is not None) and (state.step % eval_every == 0 or last):
                    if cfg.patience is not None and state.bad_evals >= cfg.patience:
                        state.stopped_early = True
                interrupted = stop.raised
                if env.enabled:
                    flag = torch.tensor([float(interrupted)], device=device)
                    interrupted = bool(env.mean(flag).item() > 0)
                if (state.step % cfg.save_steps == 0 and not last) or interrupted:
                    flush()
                    state.seconds = seconds_before + time.perf_counter() - run_start
                    self._checkpoint(state, env, model, optimizer, scheduler, scaler)
                if interrupted:
                    bar.close()
                    if log is not None:
                        log.close()
                    raise MtqaError(f"interrupted at step {state.step}; checkpoint written: rerun with --resume "
                                    "to continue")
                if state.stopped_early:
                    break
        flush()
        bar.close()
        if log is not None:
            log.close()
        state.seconds = seconds_before + time.perf_counter() - run_start

        steps_this_run = state.step - resumed_at
        result = {
            "out": str(self.out),
            "steps": state.step,
            "steps_this_run": steps_this_run,
            "total_steps": total,
            "pairs": state.pairs,
            "epochs": source.epochs,
            "epochs_reached": epochs_reached,
            "batch_size": source.batch_size,
            "world_size": env.world_size,
            "warmup_steps": warmup,
            "final_train_loss": round(float(np.mean(recent)), 6) if recent else None,
            "best_dev_loss": state.best_dev_loss,
            "best_step": state.best_step,
            "stopped_early": state.stopped_early,
            "used_negatives": used_negatives > 0,
            "batches_with_partial_negatives": partial_negatives,
            "seconds": round(state.seconds, 2),
            "seconds_total_this_run": round(time.perf_counter() - started, 2),
            "pairs_per_s": round(steps_this_run * source.batch_size / max(time.perf_counter() - run_start, 1e-9), 2),
            "peak_memory_mb": round(peak_memory_mb(device), 1),
            "device": str(device),
            "dev_batches_path": cfg.dev_batches,
        }
        if bench is not None:
            result["dev_benchmark"] = self._bench_result(bench, state)
        if (dev is not None or bench is not None) and state.best_step is not None and env.is_main:
            best = self.ckpt_root / "best" / "model.pt"
            if best.is_file() and state.best_step != state.step:
                model.load_state_dict(torch.load(best, map_location=device, weights_only=True))
        if env.is_main:
            self._save_final(model, source, result)
            if not cfg.keep_checkpoints:
                shutil.rmtree(self.ckpt_root, ignore_errors=True)
        env.barrier()
        return result

    def _prepared(self, source: BatchSource, start: int, total: int,
                  env: DistEnv) -> Iterator[tuple[Batch, Batch, list[dict[str, Any]]]]:
        """(batch, this rank's slice, its tokenized inputs) for steps ``start``..``total - 1``.

        On a GPU the next batch is tokenized in a background thread while the current one
        trains (the fast tokenizers release the GIL); on a CPU that thread would only take
        cores from the step, so tokenizing stays inline.
        """

        def prepare(batch: Batch) -> tuple[Batch, Batch, list[dict[str, Any]]]:
            local = batch.shard_for(env.rank, env.world_size)
            return batch, local, self._inputs(local)

        batches = itertools.takewhile(lambda b: b.step < total, source.iter(start))
        if self.model.device.type != "cuda":
            yield from map(prepare, batches)
            return
        with ThreadPoolExecutor(max_workers=1) as pool:
            pending = None
            for batch in batches:
                future = pool.submit(prepare, batch)
                if pending is not None:
                    yield pending.result()
                pending = future
            if pending is not None:
                yield pending.result()

    # ------------------------------------------------------------------ steps
    def _features(self, texts: list[str], prefix: str, max_length: int) -> dict[str, Any]:
        features = self.model.preprocess([prefix + t for t in texts], max_length=max_length)
        device = self.model.device
        return {k: v.to(device) if isinstance(v, torch.Tensor) else v for k, v in features.items()}

    def _inputs(self, batch: Batch) -> list[dict[str, Any]]:
        cfg = self.config
        features = [self._features(batch.queries, cfg.query_prefix, cfg.max_query_length),
                    self._features(batch.positives, cfg.passage_prefix, cfg.max_passage_length)]
        if batch.negatives is not None:
            features.append(self._features(batch.negatives, cfg.passage_prefix, cfg.max_passage_length))
        return features

    def _autocast(self) -> contextlib.AbstractContextManager:
        precision = self.config.precision
        if precision == "fp32":
            return contextlib.nullcontext()
        dtype = torch.bfloat16 if precision == "bf16" else torch.float16
        return torch.autocast(device_type=self.model.device.type, dtype=dtype)

    def _step(self, features: list[dict[str, Any]], optimizer: torch.optim.Optimizer, scheduler: Any, scaler: Any,
              params: list[torch.nn.Parameter], env: DistEnv) -> torch.Tensor:
        # GradCache re-embeds inside backward(): keep it under the same autocast as the first pass.
        with self._autocast():
            loss = self.loss_fn(features, None)
            (scaler.scale(loss) if scaler is not None else loss).backward()
        env.average_gradients(params)
        if scaler is not None:
            scaler.unscale_(optimizer)
        if self.config.max_grad_norm:
            torch.nn.utils.clip_grad_norm_(params, self.config.max_grad_norm)
        if scaler is not None:
            scaler.step(optimizer)
            scaler.update()
        else:
            optimizer.step()
        scheduler.step()
        optimizer.zero_grad(set_to_none=True)
        return env.mean(loss.detach())

    def evaluate(self, dev: BatchSource, env: DistEnv | None = None) -> float:
        """Mean loss over the dev batches (each a built batch, with its in-batch negatives), no dropout."""
        env = env or DistEnv()
        limit = self.config.max_dev_batches
        was_training = self.model.training
        self.model.eval()
        total, count = torch.zeros((), device=self.model.device), 0
        with torch.no_grad(), self._autocast():
            for batch in dev.iter():
                if limit is not None and count >= limit:
                    break
                total += self.loss_fn(self._inputs(batch.shard_for(env.rank, env.world_size)), None).float()
                count += 1
        self.model.train(was_training)
        return float(env.mean(total / max(count, 1)).item())

    def _evaluate_and_track(self, dev: BatchSource, state: TrainState, env: DistEnv, log: LossLog | None,
                            model: torch.nn.Module, select: bool = True) -> None:
        """Dev loss; with ``select`` (no --dev-benchmark) it also picks the weights that are saved."""
        value = self.evaluate(dev, env)
        if state.best_dev_loss is None or value < state.best_dev_loss:
            state.best_dev_loss = value
            if select:
                state.best_step, state.bad_evals = state.step, 0
                self._save_best(env, model)
        elif select:
            state.bad_evals += 1
        if log is not None:
            log.add([{"step": state.step, "kind": "dev", "epoch": "", "batch_id": "", "batch_type": "",
                      "loss": round(value, 6), "lr": "", "pairs_per_s": "", "seconds": ""}])

    def _save_best(self, env: DistEnv, model: torch.nn.Module) -> None:
        if env.is_main:
            best = self.ckpt_root / "best"
            best.mkdir(parents=True, exist_ok=True)
            torch.save(model.state_dict(), best / "model.tmp")
            (best / "model.tmp").replace(best / "model.pt")

    def _bench_and_track(self, bench: DevBenchmark, state: TrainState, env: DistEnv, log: LossLog | None,
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
                self._save_best(env, model)
            else:
                state.bad_evals += 1
        if env.is_main:
            path = self.out / CURVE_FILE
            buf = io.StringIO()
            writer = csv.DictWriter(buf, fieldnames=CURVE_FIELDS)
            writer.writeheader()
            writer.writerows([{k: row[k] for k in CURVE_FIELDS} for row in curve])
            atomic_write_bytes(path, buf.getvalue().encode())
        if log is not None:
            log.add([{"step": state.step, "kind": "dev_benchmark", "epoch": "", "batch_id": "", "batch_type": "",
                      "loss": "", "lr": "", "pairs_per_s": "", "seconds": metrics["seconds"],
                      "score": metrics["score"]}])

    def _bench_result(self, bench: DevBenchmark, state: TrainState) -> dict[str, Any]:
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

    def _checkpoint(self, state: TrainState, env: DistEnv, model: torch.nn.Module, optimizer: Any, scheduler: Any,
                    scaler: Any) -> None:
        env.barrier()
        save_rng(self.ckpt_root, state.step, env.rank)
        env.barrier()
        if env.is_main:
            save_checkpoint(self.ckpt_root, state, model, optimizer, scheduler, scaler, self.config.save_total_limit)
        env.barrier()

    # ------------------------------------------------------------------ output
    def _save_final(self, model: Any, source: BatchSource, result: dict[str, Any]) -> None:
        """Write the model as a standard sentence-transformers directory, card and summary last."""
        cfg = self.config
        prompts = dict(getattr(model, "prompts", None) or {})
        prompts.update({"query": cfg.query_prefix, "passage": cfg.passage_prefix})
        model.prompts = prompts
        tmp = self.out / ".final.tmp"
        shutil.rmtree(tmp, ignore_errors=True)
        model.save(str(tmp), create_model_card=False)
        keep_without_pooler(model, tmp)
        manifest = source.store.manifest
        data = {"path": str(source.store.root), "manifest_sha256": sha256_file(source.store.root / "manifest.json"),
                "inputs": manifest.get("inputs", []), "params": manifest.get("params", {}),
                "stats": manifest.get("stats", {})}
        (tmp / "README.md").write_text(model_card(asdict(cfg), data, result))
        for item in sorted(tmp.iterdir()):
            target = self.out / item.name
            if target.is_dir():
                shutil.rmtree(target)
            item.replace(target)
        tmp.rmdir()
        atomic_write_json(self.out / SUMMARY_FILE, {"config": asdict(cfg), "data": {k: v for k, v in data.items()
                                                                                  if k != "stats"},
                                                  "result": result})
