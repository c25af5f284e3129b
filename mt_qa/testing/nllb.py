"""Build randomly initialised NLLB-architecture checkpoints without any download.

Tests need a real model to exercise the whole path (tokenizer, CTranslate2 converter, decoding),
and the benchmark needs one shaped like NLLB-200-distilled-600M. Neither may download weights,
so both are built here: a SentencePiece BPE model trained on the given text, an ``NllbTokenizer``
over it (with the 202 FLORES language tokens NLLB adds), and an ``M2M100ForConditionalGeneration``
with random weights. The output is a Transformers checkpoint directory that ``mtqa model
convert`` (or ``--model DIR``) accepts like the real one. Quality is random by construction.

Needs torch and transformers (training extras); imported only by tests and the benchmark.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

SPM_FILE = "sentencepiece.bpe.model"


@dataclass(frozen=True)
class TinyShape:
    """Transformer sizes. ``vocab_size`` None: exactly the tokenizer's vocabulary."""

    d_model: int = 32
    layers: int = 2
    heads: int = 2
    ffn: int = 64
    vocab_size: int | None = None
    max_positions: int = 1024
    init_std: float = 0.02


# Large init: with the usual 0.02 a tiny random model emits the same tokens whatever the input,
# and tests need outputs that differ per input to check alignment.
TINY = TinyShape(d_model=64, ffn=128, init_std=1.0)
# facebook/nllb-200-distilled-600M's config.json (the shape the benchmark needs).
NLLB_600M = TinyShape(d_model=1024, layers=12, heads=16, ffn=4096, vocab_size=256206, max_positions=1024)


def train_sentencepiece(texts: Iterable[str], out_file: str | os.PathLike[str], vocab_size: int = 400) -> Path:
    """Train a BPE SentencePiece model with NLLB's special-id layout (<unk>=0, <s>=1, </s>=2)."""
    import sentencepiece as spm

    out_file = Path(out_file)
    out_file.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        corpus = Path(tmp) / "corpus.txt"
        corpus.write_text("\n".join(line.strip() for line in texts if line.strip()) + "\n", encoding="utf-8")
        spm.SentencePieceTrainer.train(
            input=str(corpus), model_prefix=str(Path(tmp) / "spm"), vocab_size=vocab_size, model_type="bpe",
            character_coverage=1.0, unk_id=0, bos_id=1, eos_id=2, pad_id=-1, hard_vocab_limit=False,
            minloglevel=2,
        )
        (Path(tmp) / "spm.model").replace(out_file)
    return out_file


def nllb_tokenizer(spm_file: str | os.PathLike[str]):
    """An ``NllbTokenizer`` over a SentencePiece model, ids laid out as in NLLB (fairseq offset 1).

    Built from the vocabulary and merges directly: Transformers' own .model import needs the
    protobuf package, which mtqa does not otherwise depend on.
    """
    import sentencepiece as spm
    from transformers import NllbTokenizer
    from transformers.tokenization_utils_base import generate_merges

    sp = spm.SentencePieceProcessor(model_file=str(spm_file))
    vocab = {"<s>": 0, "<pad>": 1, "</s>": 2, "<unk>": 3}
    for piece_id in range(3, sp.get_piece_size()):
        vocab[sp.id_to_piece(piece_id)] = piece_id + 1
    return NllbTokenizer(vocab=vocab, merges=generate_merges(vocab))


def build_nllb_checkpoint(
    out_dir: str | os.PathLike[str],
    texts: Iterable[str],
    shape: TinyShape = TINY,
    spm_vocab_size: int = 400,
    seed: int = 0,
) -> Path:
    """Write a random-weight NLLB-architecture Transformers checkpoint (with tokenizer) to ``out_dir``."""
    import torch
    from transformers import M2M100Config, M2M100ForConditionalGeneration

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    spm_file = train_sentencepiece(texts, out / SPM_FILE, spm_vocab_size)
    tokenizer = nllb_tokenizer(spm_file)
    vocab_size = max(shape.vocab_size or 0, len(tokenizer))
    config = M2M100Config(
        vocab_size=vocab_size, d_model=shape.d_model, encoder_layers=shape.layers, decoder_layers=shape.layers,
        encoder_attention_heads=shape.heads, decoder_attention_heads=shape.heads, encoder_ffn_dim=shape.ffn,
        decoder_ffn_dim=shape.ffn, max_position_embeddings=shape.max_positions, scale_embedding=True,
        pad_token_id=1, bos_token_id=0, eos_token_id=2, decoder_start_token_id=2, init_std=shape.init_std,
        tokenizer_class="NllbTokenizer", dropout=0.1, attention_dropout=0.1,
    )
    torch.manual_seed(seed)
    model = M2M100ForConditionalGeneration(config).eval()
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    return out
