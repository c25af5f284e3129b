"""build-batches -> train with the real multilingual-e5-small (slow)."""

from __future__ import annotations

import numpy as np
import pytest

from mt_qa.batches import BuildBatchesStage
from mt_qa.shards import ShardStore
from mt_qa.train import BiEncoderTrainer, TrainConfig
from mt_qa.train.trainer import dev_loss


def top1(model, queries: list[str], passages: list[str]) -> float:
    q = model.encode([f"query: {x}" for x in queries], normalize_embeddings=True)
    p = model.encode([f"passage: {x}" for x in passages], normalize_embeddings=True)
    return float((np.argmax(q @ p.T, axis=1) == np.arange(len(queries))).mean())


@pytest.mark.slow
def test_hybrid_training_of_e5_small_on_real_squad(collected_squad, e5_small, tmp_path):
    from sentence_transformers import SentenceTransformer

    BuildBatchesStage([str(collected_squad)], tmp_path / "batches", batch_size=16, seed=0, dev_out=tmp_path / "dev",
                      dev_fraction=0.02, progress=False).run()
    cfg = TrainConfig(batches=str(tmp_path / "batches"), model=str(e5_small), out=str(tmp_path / "model"),
                      dev_batches=str(tmp_path / "dev"), max_steps=6, eval_steps=6, max_dev_batches=4, lr=3e-5,
                      max_query_length=32, max_passage_length=128, mini_batch_size=8, progress=False)
    before = dev_loss(cfg)
    result = BiEncoderTrainer(cfg).train()
    assert result["steps"] == 6 and np.isfinite(result["final_train_loss"])
    # A few small steps must not hurt a good model.
    assert result["best_dev_loss"] <= before + 0.05

    trained = SentenceTransformer(str(tmp_path / "model"), device="cpu")
    base = SentenceTransformer(str(e5_small), device="cpu")
    assert [type(m).__name__ for m in trained] == [type(m).__name__ for m in base]
    # Cross-lingual retrieval among 48 distinct dev passages (Spanish questions, English passages).
    dev = ShardStore.open(tmp_path / "dev").table().to_pylist()
    by_group: dict[str, dict[str, tuple[str, str]]] = {}
    for r in ShardStore.open(collected_squad).table(columns=["group_id", "lang", "question", "passage"]).to_pylist():
        by_group.setdefault(r["group_id"], {})[r["lang"]] = (r["question"], r["passage"])
    pairs = {}
    for r in dev:
        langs = by_group[r["group_id"]]
        if {"es", "en"} <= set(langs):
            pairs.setdefault(langs["en"][1], langs["es"][0])
    pairs = [(q, p) for p, q in list(pairs.items())[:48]]
    assert len(pairs) >= 24
    queries, passages = zip(*pairs, strict=True)
    acc_base, acc_trained = top1(base, list(queries), list(passages)), top1(trained, list(queries), list(passages))
    assert acc_base > 0.6
    assert acc_trained >= acc_base - 0.1
