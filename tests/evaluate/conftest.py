"""Fixtures for the evaluate tests: a tiny real sentence-transformers model and LAReQA-format files."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

TRAIN_TEXTS = [
    "the cat sat on the mat", "where is the dog", "el gato se sentó en la alfombra", "dónde está el perro",
    "il gatto si è seduto sul tappeto", "dov'è il cane", "who won the super bowl", "the broncos won the game",
]


def build_tiny_model(out: Path, seed: int = 0, hidden: int = 32) -> Path:
    """A 1-layer BERT with random weights and a WordPiece vocabulary, saved as a sentence-transformers dir."""
    import torch
    from sentence_transformers import SentenceTransformer

    try:  # sentence-transformers >= 6 moved the modules
        from sentence_transformers.sentence_transformer import modules as models
    except ImportError:  # pragma: no cover - older releases
        from sentence_transformers import models
    from tokenizers import BertWordPieceTokenizer
    from transformers import BertConfig, BertModel, BertTokenizerFast

    raw = out / "hf"
    raw.mkdir(parents=True, exist_ok=True)
    tok = BertWordPieceTokenizer(lowercase=True)
    tok.train_from_iterator(TRAIN_TEXTS * 5, vocab_size=300, min_frequency=1, show_progress=False)
    fast = BertTokenizerFast(tokenizer_object=tok._tokenizer, unk_token="[UNK]", pad_token="[PAD]",
                             cls_token="[CLS]", sep_token="[SEP]", mask_token="[MASK]")
    torch.manual_seed(seed)
    config = BertConfig(vocab_size=fast.vocab_size, hidden_size=hidden, num_hidden_layers=1, num_attention_heads=2,
                        intermediate_size=2 * hidden, max_position_embeddings=128)
    BertModel(config).save_pretrained(raw)
    fast.save_pretrained(raw)
    modules = [models.Transformer(str(raw), max_seq_length=64), models.Pooling(hidden, "mean"), models.Normalize()]
    st_dir = out / "st"
    SentenceTransformer(modules=modules, device="cpu").save(str(st_dir))
    return st_dir


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    pytest.importorskip("sentence_transformers")
    return build_tiny_model(tmp_path_factory.mktemp("tiny_model"))


def paragraph(sentences: list[str], qas: list[dict[str, Any]], sep: str = " ") -> dict[str, Any]:
    """A LAReQA paragraph: context joined by ``sep``, with breaks pointing at each sentence."""
    breaks, pos = [], 0
    for s in sentences:
        breaks.append([pos, pos + len(s)])
        pos += len(s) + len(sep)
    return {"context": sep.join(sentences), "sentences": sentences, "sentence_breaks": breaks, "qas": qas}


def qa(qid: str, question: str, *starts: int) -> dict[str, Any]:
    return {"id": qid, "question": question, "answers": [{"text": "x", "answer_start": s} for s in starts]}


def write_lareqa(directory: Path, files: dict[str, list[list[dict[str, Any]]]]) -> Path:
    """``files``: lang -> articles -> paragraphs; writes <lang>.json in the release layout."""
    directory.mkdir(parents=True, exist_ok=True)
    for lang, articles in files.items():
        doc = {"data": [{"title": f"t{i}", "paragraphs": paras} for i, paras in enumerate(articles)]}
        (directory / f"{lang}.json").write_text(json.dumps(doc, ensure_ascii=False))
    return directory
