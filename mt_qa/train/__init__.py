"""train: a shared-weight bi-encoder trained with InfoNCE on the batches build-batches wrote.

The trainer (and with it torch) is imported on first use, so ``mtqa train --help`` stays fast.
"""

from __future__ import annotations

import importlib
from typing import Any

PRECISIONS = ("fp32", "bf16", "fp16")  # autocast precisions (here, not in trainer.py: the CLI needs them)
DEV_METRICS = ("mean", "mono", "cross", "multi")  # what --dev-benchmark selects on (mean: of the three mAPs)

_LAZY = {"Batch": "mt_qa.train.data", "BatchSource": "mt_qa.train.data", "BiEncoderTrainer": "mt_qa.train.trainer",
         "TrainConfig": "mt_qa.train.config"}  # fmt: skip

__all__ = ["DEV_METRICS", "PRECISIONS", "Batch", "BatchSource", "BiEncoderTrainer", "TrainConfig"]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
