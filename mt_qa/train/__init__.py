"""train: a shared-weight bi-encoder trained with InfoNCE on the batches build-batches wrote."""

from __future__ import annotations

from mt_qa.train.data import Batch, BatchSource
from mt_qa.train.trainer import BiEncoderTrainer, TrainConfig

__all__ = ["Batch", "BatchSource", "BiEncoderTrainer", "TrainConfig"]
