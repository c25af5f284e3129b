"""Checkpoints never unpickle: the RNG state is JSON, tensors load weights-only, the fingerprint comes first."""

from __future__ import annotations

import json
import os
import random

import numpy as np
import pytest
import torch

from mt_qa.errors import MtqaError
from mt_qa.train import BiEncoderTrainer, TrainConfig
from mt_qa.train.checkpoint import rng_state, set_rng_state


def config(batches, model, out, **kw) -> TrainConfig:
    base = dict(batches=str(batches), model=str(model), out=str(out), max_query_length=16, max_passage_length=32,
                mini_batch_size=0, progress=False, seed=0, lr=2e-3)
    return TrainConfig(**(base | kw))


class _Payload:
    """What a crafted checkpoint file holds: unpickling it runs a shell command."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


def test_rng_state_round_trips_through_json():
    state = json.loads(json.dumps(rng_state()))
    expected = (random.random(), float(np.random.rand()), float(torch.rand(1)))
    set_rng_state(state)
    assert (random.random(), float(np.random.rand()), float(torch.rand(1))) == expected


@pytest.fixture
def interrupted(small_batches, tiny_model, tmp_path):
    batches, _ = small_batches
    out = tmp_path / "m"
    BiEncoderTrainer(config(batches, tiny_model, out, max_steps=2, save_steps=1, keep_checkpoints=True)).train()
    (out / "mtqa_train.json").unlink()  # as if killed before the end, checkpoints left
    (last,) = sorted((out / "checkpoints").glob("step-*"))[-1:]
    return batches, tiny_model, out, last


def test_a_crafted_rng_file_is_never_unpickled(interrupted, tmp_path):
    batches, model, out, last = interrupted
    marker = tmp_path / "pwned"
    for path in last.glob("rng-rank*"):
        path.unlink()
    torch.save({"python": _Payload(marker)}, last / "rng-rank0.pt")
    with pytest.raises(MtqaError, match="rng-rank0"):
        BiEncoderTrainer(config(batches, model, out, max_steps=2, save_steps=1, keep_checkpoints=True,
                                resume=True)).train()
    assert not marker.exists(), "the checkpoint ran code"


def test_the_fingerprint_is_checked_before_any_tensor_is_loaded(interrupted):
    batches, model, out, last = interrupted
    (last / "model.pt").write_bytes(b"garbage: never read when the settings differ")
    with pytest.raises(MtqaError, match="other settings"):
        BiEncoderTrainer(config(batches, model, out, max_steps=2, save_steps=1, keep_checkpoints=True, lr=1e-4,
                                resume=True)).train()
    with pytest.raises(MtqaError, match="damaged checkpoint"):
        BiEncoderTrainer(config(batches, model, out, max_steps=2, save_steps=1, keep_checkpoints=True,
                                resume=True)).train()


def test_overwrite_never_clears_a_directory_train_did_not_make(small_batches, tiny_model, tmp_path):
    batches, _ = small_batches
    out = tmp_path / "mine"
    (out / "tensorboard").mkdir(parents=True)
    (out / "thesis.tex").write_text("thesis")
    with pytest.raises(MtqaError, match="did not make"):
        BiEncoderTrainer(config(batches, tiny_model, out, max_steps=1, overwrite=True)).train()
    assert (out / "thesis.tex").read_text() == "thesis" and (out / "tensorboard").is_dir()
