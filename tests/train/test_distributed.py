"""Data parallel training: 2 gloo processes on CPU under torchrun equal one process on the whole batch."""

from __future__ import annotations

import csv
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from .conftest import make_tiny_model

DRIVER = Path(__file__).with_name("ddp_driver.py")
ROOT = Path(__file__).resolve().parents[2]


def torchrun(*args: str, nproc: int = 2) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={nproc}", *args]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600, env=env, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc


@pytest.fixture(scope="module")
def no_dropout_model(squad_texts, tmp_path_factory) -> Path:
    return make_tiny_model(squad_texts[:800], tmp_path_factory.mktemp("nodrop"), dropout=0.0)


@pytest.mark.slow
@pytest.mark.parametrize("mini_batch_size", [0, 4])
def test_split_batch_gradients_equal_the_whole_batch(small_batches, no_dropout_model, tmp_path, mini_batch_size):
    batches, _ = small_batches
    single, double = tmp_path / "one.pt", tmp_path / "two.pt"
    args = [str(batches), str(no_dropout_model)]
    torchrun(str(DRIVER), *args, str(single), str(mini_batch_size), nproc=1)
    torchrun(str(DRIVER), *args, str(double), str(mini_batch_size), nproc=2)
    one, two = torch.load(single), torch.load(double)
    # Each rank holds 8 of the 16 pairs, yet every query was scored against all 16 passages.
    assert one["loss"] == pytest.approx(two["loss"], abs=1e-5)
    assert one["grads"].keys() == two["grads"].keys()
    for name, grad in one["grads"].items():
        diff = (grad - two["grads"][name]).norm()
        assert diff <= 1e-4 * grad.norm() + 1e-6, (name, float(diff))  # floor: key biases have zero gradient


@pytest.mark.slow
def test_mtqa_train_under_torchrun_matches_one_process(small_batches, no_dropout_model, tmp_path):
    batches, dev = small_batches
    common = ["--batches", str(batches), "--model", str(no_dropout_model), "--max-steps", "4", "--lr", "2e-3",
              "--max-query-length", "32", "--max-passage-length", "96", "--log-steps", "1", "--save-steps", "2",
              "--keep-checkpoints", "--dev-batches", str(dev), "--eval-steps", "2", "-q"]
    torchrun("-m", "mt_qa.cli", "train", "--out", str(tmp_path / "ddp"), *common)
    torchrun("-m", "mt_qa.cli", "train", "--out", str(tmp_path / "one"), *common, nproc=1)

    def losses(out: Path) -> list[tuple[str, str, float]]:
        with (out / "training_log.csv").open() as fh:
            return [(r["step"], r["kind"], float(r["loss"])) for r in csv.DictReader(fh)]

    a, b = losses(tmp_path / "ddp"), losses(tmp_path / "one")
    assert [x[:2] for x in a] == [x[:2] for x in b] and len(a) == 6
    for x, y in zip(a, b, strict=True):
        assert x[2] == pytest.approx(y[2], abs=1e-4), (x, y)
    ckpt = tmp_path / "ddp" / "checkpoints" / "step-00000002"
    assert (ckpt / "rng-rank0.json").is_file() and (ckpt / "rng-rank1.json").is_file()
    from sentence_transformers import SentenceTransformer

    assert SentenceTransformer(str(tmp_path / "ddp"), device="cpu").encode(["query: x"]).shape[1] == 32
