"""Fixtures for trainer tests: a tiny BERT encoder built at test time, and batch stores of real data."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from mt_qa.batches import BuildBatchesStage
from mt_qa.shards import ShardStore

# Other processes share the CPU in CI and here: one thread avoids OpenMP spin-waits that make
# tiny models 10x slower under contention. Training itself does not depend on it.
torch.set_num_threads(1)


def make_tiny_model(texts: list[str], out: Path, vocab_size: int = 2000, hidden: int = 32, layers: int = 2,
                    dropout: float = 0.1, seed: int = 0, pooler: bool = True) -> Path:
    """A 2-layer BERT with a WordPiece vocabulary learnt from ``texts``, saved as a sentence-transformers dir.

    ``pooler=False``: no BERT pooler, saved the way multilingual-e5-small is (``add_pooling_layer: false``).
    """
    from sentence_transformers import SentenceTransformer
    from sentence_transformers.sentence_transformer.modules import Pooling, Transformer
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, processors, trainers
    from transformers import BertConfig, BertModel, PreTrainedTokenizerFast

    specials = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    tok = Tokenizer(models.WordPiece(unk_token="[UNK]"))
    tok.normalizer = normalizers.BertNormalizer(lowercase=True)
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tok.train_from_iterator(texts, trainers.WordPieceTrainer(vocab_size=vocab_size, special_tokens=specials))
    tok.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]", pair="[CLS] $A [SEP] $B [SEP]",
        special_tokens=[("[CLS]", tok.token_to_id("[CLS]")), ("[SEP]", tok.token_to_id("[SEP]"))])
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, unk_token="[UNK]", pad_token="[PAD]", cls_token="[CLS]",
                                   sep_token="[SEP]", mask_token="[MASK]", model_max_length=512)
    hf_dir = out / "hf"
    config = BertConfig(vocab_size=tok.get_vocab_size(), hidden_size=hidden, num_hidden_layers=layers,
                        num_attention_heads=2, intermediate_size=2 * hidden, max_position_embeddings=512,
                        hidden_dropout_prob=dropout, attention_probs_dropout_prob=dropout)
    torch.manual_seed(seed)
    BertModel(config, add_pooling_layer=pooler).save_pretrained(hf_dir)
    fast.save_pretrained(hf_dir)
    st_dir = out / "st"
    transformer = Transformer(str(hf_dir), model_kwargs={"add_pooling_layer": pooler})
    model = SentenceTransformer(modules=[transformer, Pooling(transformer.get_embedding_dimension(), "mean")],
                                device="cpu")
    model.save(str(st_dir))
    if not pooler:
        config_file = st_dir / "sentence_bert_config.json"
        config_file.write_text(json.dumps({**json.loads(config_file.read_text()),
                                           "model_args": {"add_pooling_layer": False}}))
    return st_dir


@pytest.fixture(scope="session")
def squad_texts(collected_squad) -> list[str]:
    t = ShardStore.open(collected_squad).table(columns=["question", "passage"])
    return t["question"].to_pylist()[::10] + sorted(set(t["passage"].to_pylist()))[::10]


@pytest.fixture(scope="session")
def tiny_model(squad_texts, tmp_path_factory) -> Path:
    return make_tiny_model(squad_texts, tmp_path_factory.mktemp("tiny"))


@pytest.fixture(scope="session")
def small_batches(collected_squad, tmp_path_factory) -> tuple[Path, Path]:
    """Hybrid batches of 16 (2 epochs) and a dev store, from the real SQuAD groups."""
    root = tmp_path_factory.mktemp("train-batches")
    BuildBatchesStage([str(collected_squad)], root / "batches", batch_size=16, epochs=2, seed=1,
                      batches_per_shard=7, dev_out=root / "dev", dev_fraction=0.02, progress=False).run()
    return root / "batches", root / "dev"
