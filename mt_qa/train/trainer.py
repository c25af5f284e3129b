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
import itertools
import json
import math
import random
import shutil
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm import tqdm

from mt_qa.errors import MtqaError
from mt_qa.io import sha256_file
from mt_qa.outdir import claim_output, has_entries
from mt_qa.train.checkpoint import TrainState, checkpoint_dirs, load_checkpoint, save_checkpoint, save_rng
from mt_qa.train.config import TrainConfig
from mt_qa.train.data import Batch, BatchSource
from mt_qa.train.distributed import DistEnv, init_distributed, shutdown_distributed
from mt_qa.train.log import LossLog
from mt_qa.train.loop import LoopState, StopFlag, peak_memory_mb
from mt_qa.train.model import (
    linear_schedule,
    load_model,
    make_loss,
    make_optimizer,
    param_groups,
    prepare_for_training,
)
from mt_qa.train.save import SUMMARY_FILE, save_final
from mt_qa.train.selection import DevBenchmark, Selector, benchmark_result

LOG_FILE = "training_log.csv"
CURVE_FILE = "dev_benchmark.csv"
CHECKPOINTS = "checkpoints"


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
        self.selector = Selector(self.ckpt_root / "best", self.out / CURVE_FILE)

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
        self._check_run(source, dev, total, env, device)
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
        model = self.model = load_model(cfg.model, device)
        prepare_for_training(model, cfg.gradient_checkpointing, cfg.frozen_embeddings)
        self.loss_fn = make_loss(model, cfg.temperature, cfg.mini_batch_size, gather=env.enabled)
        bench = DevBenchmark(cfg.dev_benchmark, cfg.dev_metric, cfg.query_prefix, cfg.passage_prefix) \
            if cfg.dev_benchmark else None
        optimizer = make_optimizer(param_groups(model, cfg.weight_decay, cfg.lr, cfg.embedding_lr), cfg.lr, device)
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
            self.selector.track_benchmark(bench, state, env, log, model, reference=True)

        bar = tqdm(total=total, initial=state.step, desc="train", unit="step",
                   disable=not (cfg.progress and env.is_main), dynamic_ncols=True)
        loop = LoopState(log, bar, state.seconds, state.step)
        self._loop(loop, state, source, dev, bench, total, env, (optimizer, scheduler, scaler))
        loop.flush()
        loop.close()
        state.seconds = loop.seconds()

        result = self._result(loop, state, source, total, warmup, env, device, started)
        if bench is not None:
            result["dev_benchmark"] = benchmark_result(bench, state)
        if (dev is not None or bench is not None) and state.best_step is not None and env.is_main:
            best = self.selector.best_dir / "model.pt"
            if best.is_file() and state.best_step != state.step:
                model.load_state_dict(torch.load(best, map_location=device, weights_only=True))
        if env.is_main:
            save_final(model, cfg, source, result, self.out)
            if not cfg.keep_checkpoints:
                shutil.rmtree(self.ckpt_root, ignore_errors=True)
        env.barrier()
        return result

    def _check_run(self, source: BatchSource, dev: BatchSource | None, total: int, env: DistEnv,
                   device: torch.device) -> None:
        """Refuse what cannot train before the output directory is touched."""
        if total == 0:
            raise MtqaError(f"{self.config.batches} holds no batches")
        if source.batch_size % env.world_size:
            raise MtqaError(f"batch size {source.batch_size} is not divisible by {env.world_size} processes")
        if dev is not None and dev.batch_size % env.world_size:
            raise MtqaError(f"dev batch size {dev.batch_size} is not divisible by {env.world_size} processes")
        if self.config.precision == "fp16" and device.type != "cuda":
            raise MtqaError("--precision fp16 needs a CUDA device (use bf16 on CPU)")

    def _loop(self, loop: LoopState, state: TrainState, source: BatchSource, dev: BatchSource | None,
              bench: DevBenchmark | None, total: int, env: DistEnv, optim: tuple[Any, Any, Any]) -> None:
        """Steps from ``state.step`` to ``total``: log, evaluate, stop early, checkpoint, honour a signal."""
        cfg, model = self.config, self.model
        optimizer, scheduler, scaler = optim
        params = [p for p in model.parameters() if p.requires_grad]
        eval_every = cfg.eval_steps or cfg.save_steps
        with StopFlag() as stop:
            # A run that stopped early and was killed before saving the model resumes to the end directly.
            stop_at = state.step if state.stopped_early else total
            for batch, local, features in self._prepared(source, state.step, stop_at, env):
                lr = scheduler.get_last_lr()[0]
                loss = self._step(features, optimizer, scheduler, scaler, params, env)
                state.step += 1
                state.pairs += len(batch)
                loop.record(batch, local, loss, lr)
                for callback in self.callbacks:
                    callback(state)
                last = state.step == total
                evaluate = state.step % eval_every == 0 or last
                if state.step % cfg.log_steps == 0 or last:
                    loop.flush()
                if dev is not None and evaluate:
                    loop.flush()
                    self.selector.track_dev_loss(self.evaluate(dev, env), state, env, loop.log, model,
                                                 select=bench is None)
                if bench is not None and evaluate:
                    loop.flush()
                    self.selector.track_benchmark(bench, state, env, loop.log, model)
                if (dev is not None or bench is not None) and evaluate:
                    if cfg.patience is not None and state.bad_evals >= cfg.patience:
                        state.stopped_early = True
                interrupted = stop.raised
                if env.enabled:
                    flag = torch.tensor([float(interrupted)], device=model.device)
                    interrupted = bool(env.mean(flag).item() > 0)
                if (state.step % cfg.save_steps == 0 and not last) or interrupted:
                    loop.flush()
                    state.seconds = loop.seconds()
                    self._checkpoint(state, env, model, optimizer, scheduler, scaler)
                if interrupted:
                    loop.close()
                    raise MtqaError(f"interrupted at step {state.step}; checkpoint written: rerun with --resume "
                                    "to continue")
                if state.stopped_early:
                    break

    def _result(self, loop: LoopState, state: TrainState, source: BatchSource, total: int, warmup: int,
                env: DistEnv, device: torch.device, started: float) -> dict[str, Any]:
        """The run's summary (``mtqa_train.json``'s ``result``, the CLI's table)."""
        steps_this_run = state.step - loop.resumed_at
        return {
            "out": str(self.out),
            "steps": state.step,
            "steps_this_run": steps_this_run,
            "total_steps": total,
            "pairs": state.pairs,
            "epochs": source.epochs,
            "epochs_reached": loop.epochs_reached,
            "batch_size": source.batch_size,
            "world_size": env.world_size,
            "warmup_steps": warmup,
            "final_train_loss": round(float(np.mean(loop.recent)), 6) if loop.recent else None,
            "best_dev_loss": state.best_dev_loss,
            "best_step": state.best_step,
            "stopped_early": state.stopped_early,
            "used_negatives": loop.used_negatives > 0,
            "batches_with_partial_negatives": loop.partial_negatives,
            "seconds": round(state.seconds, 2),
            "seconds_total_this_run": round(time.perf_counter() - started, 2),
            "pairs_per_s": round(steps_this_run * source.batch_size / max(time.perf_counter() - loop.run_start, 1e-9),
                                 2),
            "peak_memory_mb": round(peak_memory_mb(device), 1),
            "device": str(device),
            "dev_batches_path": self.config.dev_batches,
        }

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

    def _checkpoint(self, state: TrainState, env: DistEnv, model: torch.nn.Module, optimizer: Any, scheduler: Any,
                    scaler: Any) -> None:
        env.barrier()
        save_rng(self.ckpt_root, state.step, env.rank)
        env.barrier()
        if env.is_main:
            save_checkpoint(self.ckpt_root, state, model, optimizer, scheduler, scaler, self.config.save_total_limit)
        env.barrier()

