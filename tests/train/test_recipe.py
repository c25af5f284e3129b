"""Recipe options (embedding lr / frozen embeddings, temperature, warm-up) and model selection on a
held-out LAReQA benchmark, with a tiny BERT and real SQuAD batches and benchmark."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from mt_qa.batches import BuildBatchesStage
from mt_qa.batches.negatives import SentenceNegatives
from mt_qa.batches.positives import PositiveFormat
from mt_qa.cli import main
from mt_qa.errors import MtqaError
from mt_qa.train import BatchSource, BiEncoderTrainer, TrainConfig
from mt_qa.train.model import load_model, make_loss
from mt_qa.train.selection import DevBenchmark, beats_base, primary_score


def config(batches: Path, model: Path, out: Path, **kw) -> TrainConfig:
    base = dict(batches=str(batches), model=str(model), out=str(out), max_query_length=32, max_passage_length=64,
                lr=2e-3, warmup_ratio=0.1, log_steps=1, save_steps=1000, mini_batch_size=0, progress=False, seed=3)
    base.update(kw)
    return TrainConfig(**base)


def log_rows(out: Path) -> list[dict[str, str]]:
    with (out / "training_log.csv").open() as fh:
        return list(csv.DictReader(fh))


def embedding_key(tensors: dict[str, torch.Tensor]) -> str:
    (key,) = [k for k in tensors if k.endswith("word_embeddings.weight")]
    return key


@pytest.fixture(scope="module")
def bench_and_batches(collected_squad, tmp_path_factory):
    """A 2-article en/es benchmark held out of sentence-positive batches built from the rest."""
    root = tmp_path_factory.mktemp("selection")
    assert main(["evaluate", "build-lareqa", str(collected_squad), "-o", str(root / "bench"), "--languages",
                 "en,es", "--articles", "2", "--seed", "3", "-q"]) == 0
    BuildBatchesStage([str(collected_squad)], root / "batches", batch_size=16, seed=2, langs=["en", "es"],
                      positive=PositiveFormat("sentence"), miner=SentenceNegatives(),
                      exclude_groups=root / "bench" / "heldout_group_ids.txt", progress=False).run()
    return root / "bench", root / "batches"


def test_frozen_embeddings_stay_put_and_the_rest_trains(small_batches, tiny_model, tmp_path):
    batches, _ = small_batches
    base = load_file(str(tiny_model / "model.safetensors"))
    key = embedding_key(base)
    for name, kw in (("frozen", {"freeze_embeddings": True}), ("default", {}),
                     ("zero-lr", {"embedding_lr": 0.0, "freeze_embeddings": False})):
        result = BiEncoderTrainer(config(batches, tiny_model, tmp_path / name, max_steps=4, **kw)).train()
        assert result["steps"] == 4
        trained = load_file(str(tmp_path / name / "model.safetensors"))
        assert torch.equal(trained[key], base[key]), name
        moved = [k for k in base if k != key and not torch.equal(trained[k], base[k])]
        assert len(moved) > 10, name  # the encoder did train
        card = (tmp_path / name / "README.md").read_text()
        assert "| word embeddings | frozen |" in card


def test_embedding_lr_is_its_own_learning_rate(small_batches, tiny_model, tmp_path):
    batches, _ = small_batches
    base = load_file(str(tiny_model / "model.safetensors"))
    key = embedding_key(base)
    deltas = {}
    for name, kw in (("same", {"freeze_embeddings": False}), ("own", {"embedding_lr": 1e-2})):
        BiEncoderTrainer(config(batches, tiny_model, tmp_path / name, max_steps=3, lr=1e-5, warmup_ratio=0.0,
                                **kw)).train()
        trained = load_file(str(tmp_path / name / "model.safetensors"))
        deltas[name] = {"emb": float((trained[key] - base[key]).abs().max()),
                        "other": float((trained["encoder.layer.0.attention.self.query.weight"]
                                        - base["encoder.layer.0.attention.self.query.weight"]).abs().max())}
    # AdamW steps are about lr per weight: 1e-2 vs 1e-5 for the embeddings, the same for the encoder
    # (an --embedding-lr > 0 trains them although freezing is the default).
    assert deltas["own"]["emb"] > 100 * deltas["same"]["emb"]
    assert deltas["own"]["other"] == pytest.approx(deltas["same"]["other"], rel=0.5)


def test_temperature_scales_the_logits(small_batches, tiny_model):
    batches, _ = small_batches
    batch = next(BatchSource(batches).iter())
    trainer = BiEncoderTrainer(config(batches, tiny_model, Path("unused")))
    trainer.model = load_model(str(tiny_model), torch.device("cpu"))
    trainer.model.eval()
    losses = {}
    for t in (0.05, 0.01):
        trainer.loss_fn = make_loss(trainer.model, t, 0, gather=False)
        assert trainer.loss_fn.scale == pytest.approx(1 / t)
        with torch.no_grad():
            losses[t] = trainer.loss_fn(trainer._inputs(batch), None).item()
    assert losses[0.05] != pytest.approx(losses[0.01], abs=1e-3)


def test_warmup_steps_ramp_the_learning_rate(small_batches, tiny_model, tmp_path):
    batches, _ = small_batches
    BiEncoderTrainer(config(batches, tiny_model, tmp_path / "m", max_steps=6, warmup_steps=3, lr=1e-3)).train()
    lrs = [float(r["lr"]) for r in log_rows(tmp_path / "m") if r["kind"] == "train"]
    np.testing.assert_allclose(lrs, [0, 1e-3 / 3, 2e-3 / 3, 1e-3, 2e-3 / 3, 1e-3 / 3], atol=1e-9)


def test_dev_benchmark_selects_the_best_fine_tuned_step(bench_and_batches, tiny_model, tmp_path):
    from sentence_transformers import SentenceTransformer

    bench_dir, batches = bench_and_batches
    out = tmp_path / "sel"
    result = BiEncoderTrainer(config(batches, tiny_model, out, max_steps=12, eval_steps=4,
                                     dev_benchmark=str(bench_dir))).train()
    sel = result["dev_benchmark"]
    curve = sel["curve"]
    assert [row["step"] for row in curve] == [0, 4, 8, 12]
    assert sel["base"]["step"] == 0 and sel["base"] == curve[0]
    best = max(curve[1:], key=lambda r: r["score"])  # step 0 is never a candidate
    assert sel["best"] == best and result["best_step"] == best["step"]
    for row in curve:
        assert row["score"] == pytest.approx(primary_score(row, "mean"), abs=1e-5)
        assert 0 <= row["mono_map"] <= 1 and row["bias"] >= 0
    # The saved weights are the selected step's: scoring them again gives its numbers.
    again = DevBenchmark(bench_dir).evaluate(SentenceTransformer(str(out), device="cpu"))
    for k in ("mono_map", "cross_map", "multi_map", "bias"):
        assert again[k] == pytest.approx(best[k], abs=2e-4), k
    # The curve is in the log, in its own CSV and in the model card.
    rows = [r for r in log_rows(out) if r["kind"] == "dev_benchmark"]
    assert [int(r["step"]) for r in rows] == [0, 4, 8, 12]
    assert [float(r["score"]) for r in rows] == pytest.approx([row["score"] for row in curve], abs=1e-6)
    with (out / "dev_benchmark.csv").open() as fh:
        assert [int(r["step"]) for r in csv.DictReader(fh)] == [0, 4, 8, 12]
    card = (out / "README.md").read_text()
    assert "Model selection on the dev benchmark" in card and "| 0 |" in card and "**selected**" in card
    assert json.loads((out / "mtqa_train.json").read_text())["result"]["dev_benchmark"]["best"] == best


def test_a_run_worse_than_its_base_says_so(bench_and_batches, tiny_model, tmp_path, capsys):
    bench_dir, batches = bench_and_batches
    out = tmp_path / "wrecked"
    # A huge learning rate collapses the embeddings: every fine-tuned step is worse than the base.
    result = BiEncoderTrainer(config(batches, tiny_model, out, max_steps=6, eval_steps=3, lr=0.5,
                                     warmup_ratio=0.0, dev_benchmark=str(bench_dir), dev_metric="multi")).train()
    sel = result["dev_benchmark"]
    assert sel["best"]["step"] in (3, 6)  # not the base, although the base scores higher
    assert sel["base"]["score"] > sel["best"]["score"]
    assert sel["beats_base"]["score"] is False
    assert sel["best"]["score"] == pytest.approx(sel["best"]["multi_map"])
    assert "worse than its base" in capsys.readouterr().err
    assert "not better than its base" in (out / "README.md").read_text()


def test_patience_counts_benchmark_evaluations(bench_and_batches, tiny_model, tmp_path):
    bench_dir, batches = bench_and_batches
    result = BiEncoderTrainer(config(batches, tiny_model, tmp_path / "p", max_steps=40, eval_steps=2, lr=0.5,
                                     warmup_ratio=0.0, patience=2, dev_benchmark=str(bench_dir))).train()
    assert result["stopped_early"] is True and result["steps"] < 40


def test_beats_base_is_per_axis():
    base = {"mono_map": 0.7, "cross_map": 0.6, "multi_map": 0.4, "bias": 100.0, "score": 0.5667}
    best = {"mono_map": 0.71, "cross_map": 0.59, "multi_map": 0.5, "bias": 50.0, "score": 0.6}
    assert beats_base(best, base) == {"mono_map": True, "cross_map": False, "multi_map": True, "score": True,
                                      "bias": True}


def test_option_errors(small_batches, tiny_model, tmp_path, capsys):
    batches, _ = small_batches
    with pytest.raises(MtqaError, match="--embedding-lr"):
        config(batches, tiny_model, tmp_path / "a", embedding_lr=-1).validate()
    with pytest.raises(MtqaError, match="--dev-metric"):
        config(batches, tiny_model, tmp_path / "a", dev_metric="ndcg").validate()
    with pytest.raises(MtqaError, match="not a directory"):
        config(batches, tiny_model, tmp_path / "a", dev_benchmark=str(tmp_path / "none")).validate()
    assert main(["train", "--batches", str(batches), "--model", str(tiny_model), "--out", str(tmp_path / "b"),
                 "--dev-benchmark", str(batches), "--max-steps", "1", "-q"]) == 1
    err = capsys.readouterr().err
    assert "Error:" in err and "Traceback" not in err
