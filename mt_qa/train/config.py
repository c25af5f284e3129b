"""``TrainConfig``: every setting of ``mtqa train``, declared once (the CLI takes its defaults from here).

No torch here: ``mtqa train --help`` imports this module.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mt_qa.errors import MtqaError
from mt_qa.train import DEV_METRICS, PRECISIONS

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
    lr: float = 3e-5
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



# Field -> default: what the Click options of ``mtqa train`` show and use.
DEFAULTS: dict[str, Any] = {f.name: f.default for f in dataclasses.fields(TrainConfig)
                            if f.default is not dataclasses.MISSING}  # fmt: skip
