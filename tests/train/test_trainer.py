"""The trainer on a tiny BERT built at test time and real SQuAD batches."""

from __future__ import annotations

import csv
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from mt_qa.batches import BM25NegativeMiner, BuildBatchesStage
from mt_qa.cli import main
from mt_qa.errors import MtqaError
from mt_qa.train import BatchSource, BiEncoderTrainer, TrainConfig
from mt_qa.train.model import load_model, make_loss
from mt_qa.train.trainer import dev_loss

from .conftest import make_tiny_model


def config(batches: Path, model: Path, out: Path, **kw) -> TrainConfig:
    base = dict(batches=str(batches), model=str(model), out=str(out), max_query_length=32, max_passage_length=96,
                lr=2e-3, warmup_ratio=0.1, log_steps=1, save_steps=1000, mini_batch_size=8, progress=False,
                seed=3)
    base.update(kw)
    return TrainConfig(**base)


def log_rows(out: Path) -> list[dict[str, str]]:
    with (out / "training_log.csv").open() as fh:
        return list(csv.DictReader(fh))


def weights(out: Path) -> dict[str, torch.Tensor]:
    return load_file(str(out / "model.safetensors"))


def test_batch_source_reads_the_built_order(small_batches):
    batches, _ = small_batches
    source = BatchSource(batches)
    items = list(source.iter())
    assert len(items) == len(source) == source.store.manifest["stats"]["summary"]["batches"]
    assert [b.batch_id for b in items] == list(range(len(items)))
    assert [b.step for b in items] == list(range(len(items)))
    assert {len(b) for b in items} == {16}
    # Resuming mid-store (mid-shard, shards of 7) yields exactly the tail.
    tail = list(source.iter(start=10))
    assert [b.batch_id for b in tail] == list(range(10, len(items)))
    assert tail[0].queries == items[10].queries
    # Epoch limits and rank slices.
    assert len(BatchSource(batches, epochs=1)) == source.store.manifest["stats"]["epoch"]["0"]
    half = items[0].shard_for(1, 2)
    assert half.queries == items[0].queries[8:] and half.positives == items[0].positives[8:]
    with pytest.raises(MtqaError, match="holds 2 built epoch"):
        BatchSource(batches, epochs=3)


def test_loss_goes_down_on_real_pairs(small_batches, tiny_model, tmp_path):
    batches, dev = small_batches
    cfg = config(batches, tiny_model, tmp_path / "m", dev_batches=str(dev), max_steps=40, eval_steps=20)
    before = dev_loss(cfg)
    result = BiEncoderTrainer(cfg).train()
    assert result["steps"] == 40
    assert result["best_dev_loss"] < before - 0.05, (before, result["best_dev_loss"])
    train = [float(r["loss"]) for r in log_rows(tmp_path / "m") if r["kind"] == "train"]
    assert len(train) == 40
    assert np.mean(train[-10:]) < np.mean(train[:10])
    devs = [r for r in log_rows(tmp_path / "m") if r["kind"] == "dev"]
    assert [int(r["step"]) for r in devs] == [20, 40]
    # The saved model is the best one, and re-measuring it gives the logged dev loss.
    assert dev_loss(cfg, str(tmp_path / "m")) == pytest.approx(result["best_dev_loss"], abs=1e-4)


def test_save_load_gives_the_same_embeddings_and_a_card(small_batches, tiny_model, tmp_path):
    from sentence_transformers import SentenceTransformer

    batches, _ = small_batches
    trainer = BiEncoderTrainer(config(batches, tiny_model, tmp_path / "m", max_steps=3))
    trainer.train()
    texts = ["query: Who founded the university?", "passage: La universidad fue fundada en 1890."]
    trainer.model.eval()
    a = trainer.model.encode(texts, convert_to_numpy=True)
    loaded = SentenceTransformer(str(tmp_path / "m"), device="cpu")
    b = loaded.encode(texts, convert_to_numpy=True)
    np.testing.assert_allclose(a, b, atol=1e-6)
    base = SentenceTransformer(str(tiny_model), device="cpu").encode(texts, convert_to_numpy=True)
    assert not np.allclose(a, base, atol=1e-4)  # it did train
    assert loaded.prompts["query"] == "query: " and loaded.prompts["passage"] == "passage: "
    card = (tmp_path / "m" / "README.md").read_text()
    assert "library_name: sentence-transformers" in card and "hybrid" in card and str(batches) in card
    summary = json.loads((tmp_path / "m" / "mtqa_train.json").read_text())
    assert summary["result"]["steps"] == 3 and summary["config"]["lr"] == 2e-3
    assert not (tmp_path / "m" / "checkpoints").exists()


def test_resume_from_a_checkpoint_equals_an_uninterrupted_run(small_batches, tiny_model, tmp_path):
    batches, dev = small_batches
    kw = dict(max_steps=8, save_steps=4, keep_checkpoints=True, save_total_limit=5, dev_batches=str(dev),
              eval_steps=4, mini_batch_size=4)
    full = tmp_path / "full"
    BiEncoderTrainer(config(batches, tiny_model, full, **kw)).train()
    assert (full / "checkpoints" / "step-00000004").is_dir()
    resumed = tmp_path / "resumed"
    (resumed / "checkpoints").mkdir(parents=True)
    shutil.copytree(full / "checkpoints" / "step-00000004", resumed / "checkpoints" / "step-00000004")
    shutil.copytree(full / "checkpoints" / "best", resumed / "checkpoints" / "best")
    rows = log_rows(full)
    with (resumed / "training_log.csv").open("w", newline="") as fh:  # the log as it was at step 4 (and beyond)
        writer = csv.DictWriter(fh, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    result = BiEncoderTrainer(config(batches, tiny_model, resumed, resume=True, **kw)).train()
    assert result["steps_this_run"] == 4
    a, b = weights(full), weights(resumed)
    assert a.keys() == b.keys()
    for name in a:
        assert torch.equal(a[name], b[name]), name
    strip = [{k: v for k, v in r.items() if k not in ("pairs_per_s", "seconds")} for r in log_rows(resumed)]
    assert strip == [{k: v for k, v in r.items() if k not in ("pairs_per_s", "seconds")} for r in rows]


def test_gradcache_gives_the_plain_loss_gradients(small_batches, squad_texts, tmp_path):
    # With dropout off, the cached loss must give the same loss and gradients as the plain one.
    batches, _ = small_batches
    model_dir = make_tiny_model(squad_texts[:800], tmp_path / "nodrop", dropout=0.0)
    batch = next(BatchSource(batches).iter())
    grads, losses = {}, {}
    for mbs in (0, 4):
        trainer = BiEncoderTrainer(config(batches, model_dir, tmp_path / "unused", mini_batch_size=mbs))
        trainer.model = load_model(str(model_dir), torch.device("cpu"))
        trainer.loss_fn = make_loss(trainer.model, 0.05, mbs, gather=False)
        loss = trainer.loss_fn(trainer._inputs(batch), None)
        loss.backward()
        losses[mbs] = loss.item()
        grads[mbs] = {n: p.grad.clone() for n, p in trainer.model.named_parameters() if p.grad is not None}
    assert losses[0] == pytest.approx(losses[4], abs=1e-5)
    assert grads[0].keys() == grads[4].keys() and len(grads[0]) > 10
    for name in grads[0]:
        # Summation order differs (chunks): compare as vectors, with an absolute floor for gradients that are
        # zero in exact arithmetic (attention key biases) and only hold rounding noise. float32 rounding reaches
        # ~2e-4 relative on small-norm tensors (seen in CI); a wrong GradCache is off by 10% or more.
        diff = (grads[0][name] - grads[4][name]).norm()
        assert diff <= 1e-3 * grads[0][name].norm() + 1e-5, (name, float(diff))


def test_hard_negatives_are_trained_on(collected_squad, tiny_model, tmp_path):
    BuildBatchesStage([str(collected_squad)], tmp_path / "neg", batch_size=8, strategy="xx", langs=["en"],
                      miner=BM25NegativeMiner(2, 6), progress=False).run()
    cfg = config(tmp_path / "neg", tiny_model, tmp_path / "m", max_steps=2)
    assert BiEncoderTrainer(cfg).train()["used_negatives"] is True
    cfg = config(tmp_path / "neg", tiny_model, tmp_path / "m2", max_steps=2, use_negatives=False)
    assert BiEncoderTrainer(cfg).train()["used_negatives"] is False


def test_refuses_unsafe_or_impossible_runs(small_batches, tiny_model, collected_squad, tmp_path):
    batches, dev = small_batches
    out = tmp_path / "m"
    BiEncoderTrainer(config(batches, tiny_model, out, max_steps=2, save_steps=1, keep_checkpoints=True)).train()
    with pytest.raises(MtqaError, match="already holds a model"):
        BiEncoderTrainer(config(batches, tiny_model, out, max_steps=2)).train()
    (out / "mtqa_train.json").unlink()  # as if killed before the end, checkpoints left
    with pytest.raises(MtqaError, match="--resume"):
        BiEncoderTrainer(config(batches, tiny_model, out, max_steps=2)).train()
    with pytest.raises(MtqaError, match="other settings"):
        BiEncoderTrainer(config(batches, tiny_model, out, max_steps=2, lr=1e-4, resume=True)).train()
    with pytest.raises(MtqaError, match="fp16 needs a CUDA"):
        BiEncoderTrainer(config(batches, tiny_model, tmp_path / "x", precision="fp16")).train()
    with pytest.raises(MtqaError, match="train reads batch stores"):
        BiEncoderTrainer(config(collected_squad, tiny_model, tmp_path / "y")).train()
    with pytest.raises(MtqaError, match="could not load"):
        BiEncoderTrainer(config(batches, tmp_path / "no-such-model", tmp_path / "z")).train()
    with pytest.raises(MtqaError, match="--patience"):
        config(batches, tiny_model, tmp_path / "w", patience=2).validate()


def test_early_stopping_keeps_the_best_weights(small_batches, tiny_model, tmp_path):
    batches, dev = small_batches
    # A huge learning rate wrecks the model after the first evaluation: the dev loss only gets worse.
    cfg = config(batches, tiny_model, tmp_path / "m", dev_batches=str(dev), eval_steps=2, patience=2, lr=0.5,
                 warmup_ratio=0.0, max_steps=40)
    result = BiEncoderTrainer(cfg).train()
    assert result["stopped_early"] is True and result["steps"] < 40
    devs = [float(r["loss"]) for r in log_rows(tmp_path / "m") if r["kind"] == "dev"]
    assert result["best_dev_loss"] == pytest.approx(min(devs), abs=1e-5)
    assert dev_loss(cfg, str(tmp_path / "m")) == pytest.approx(min(devs), abs=1e-4)


def test_cli_trains_and_reports(small_batches, tiny_model, tmp_path, capsys):
    batches, _ = small_batches
    out = tmp_path / "cli"
    code = main(["train", "--batches", str(batches), "--model", str(tiny_model), "--out", str(out), "--max-steps",
                 "2", "--max-passage-length", "64", "--mini-batch-size", "0", "--precision", "bf16", "-q"])
    assert code == 0
    assert (out / "model.safetensors").is_file()
    assert "steps" in capsys.readouterr().err
    code = main(["train", "--batches", str(batches), "--model", str(tiny_model), "--out", str(out)])
    assert code == 1
    assert "already holds a model" in capsys.readouterr().err


def test_sigterm_checkpoints_and_resume_finishes_the_run(small_batches, tiny_model, tmp_path):
    batches, _ = small_batches
    out = tmp_path / "killed"
    args = ["train", "--batches", str(batches), "--model", str(tiny_model), "--out", str(out), "--max-steps", "25",
            "--max-query-length", "16", "--max-passage-length", "32", "--log-steps", "1", "--mini-batch-size", "0",
            "-q"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen([sys.executable, "-m", "mt_qa.cli", *args], stderr=subprocess.PIPE, text=True, env=env)
    deadline = time.time() + 120
    while time.time() < deadline and proc.poll() is None:
        if (out / "training_log.csv").is_file() and len(log_rows(out)) >= 3:
            break
        time.sleep(0.05)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 1, err[-2000:]
    step = int(re.search(r"interrupted at step (\d+)", err).group(1))
    assert 3 <= step < 25
    assert (out / "checkpoints" / f"step-{step:08d}" / "state.json").is_file()
    assert main([*args, "--resume"]) == 0
    steps = [int(r["step"]) for r in log_rows(out) if r["kind"] == "train"]
    assert steps == list(range(1, 26))
    assert json.loads((out / "mtqa_train.json").read_text())["result"]["steps_this_run"] == 25 - step
