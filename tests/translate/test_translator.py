from __future__ import annotations

import math
from pathlib import Path

import pytest

from mt_qa.errors import MtqaError
from mt_qa.translate.models import convert, load_model_info
from mt_qa.translate.translator import DecodeOptions, NllbTranslator, repetition_rate, token_batches

SENTENCES = [
    "Marie Curie was born in Warsaw in 1867.",
    "The museum opens at nine in the morning.",
    "Who won Super Bowl 50?",
    "Coffee was first cultivated in Yemen.",
    "Tickets cost twelve euros for adults.",
    "Oxygen.",
]


@pytest.fixture(scope="module")
def tiny_f32(tiny_checkpoint: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return convert(tiny_checkpoint, tmp_path_factory.mktemp("f32") / "tiny-f32", "float32").path


@pytest.fixture(scope="module")
def translator(tiny_ct2: Path) -> NllbTranslator:
    return NllbTranslator(load_model_info(tiny_ct2), device="cpu")


def test_nllb_source_layout_and_forced_target_tag(translator: NllbTranslator):
    pieces = translator.tokenizer.encode(SENTENCES[:3])
    assert translator.source_tokens(pieces[0], "eng_Latn") == ["eng_Latn", *pieces[0], "</s>"]
    targets = ["deu_Latn", "zho_Hans", "arb_Arab"]
    raw = translator.generate(pieces, ["eng_Latn"] * 3, targets)
    for (hyp, _cap), tgt in zip(raw, targets, strict=True):
        assert hyp[0] == tgt
        # Language tags and control tokens are suppressed after the forced one.
        assert not set(hyp[1:]) & translator.tokenizer.special


def test_target_language_changes_the_output(translator: NllbTranslator):
    de = translator.translate(SENTENCES, "eng_Latn", "deu_Latn")
    zh = translator.translate(SENTENCES, "eng_Latn", "zho_Hans")
    assert len(de) == len(zh) == len(SENTENCES)
    assert de != zh
    assert len(set(de)) > 1  # outputs depend on the input


def test_ct2_path_matches_transformers_generate(tiny_checkpoint: Path, tiny_f32: Path):
    """Our source layout and target prefix reproduce what Transformers' NLLB generate does."""
    import torch
    from transformers import AutoTokenizer, M2M100ForConditionalGeneration

    translator = NllbTranslator(load_model_info(tiny_f32), device="cpu", compute_type="float32",
                                options=DecodeOptions(beam_size=1, no_repeat_ngram_size=0))
    tokenizer = AutoTokenizer.from_pretrained(tiny_checkpoint)
    model = M2M100ForConditionalGeneration.from_pretrained(tiny_checkpoint).eval()
    blocked = [[tokenizer.convert_tokens_to_ids(tok)] for (tok,) in translator._suppress] + [[tokenizer.unk_token_id]]
    pieces = translator.tokenizer.encode(SENTENCES)
    raw = translator.generate(pieces, ["eng_Latn"] * len(pieces), ["fra_Latn"] * len(pieces),
                              max_decoding_length=lambda _n: 16)
    for piece, (hyp, cap) in zip(pieces, raw, strict=True):
        ids = tokenizer.convert_tokens_to_ids(translator.source_tokens(piece, "eng_Latn"))
        with torch.no_grad():
            out = model.generate(torch.tensor([ids]), forced_bos_token_id=tokenizer.convert_tokens_to_ids("fra_Latn"),
                                 max_new_tokens=cap, num_beams=1, do_sample=False, bad_words_ids=blocked)
        expected = tokenizer.convert_ids_to_tokens(out[0].tolist())[1:]  # drop the decoder start </s>
        if expected[-1] == "</s>":
            expected = expected[:-1]
        assert hyp == expected


def test_token_batches_respect_the_budget_and_cover_every_input():
    lengths = [5, 40, 12, 12, 3, 77, 20, 8, 8, 30]
    batches = token_batches(lengths, 64)
    assert sorted(i for batch in batches for i in batch) == list(range(len(lengths)))
    for batch in batches:
        assert len(batch) == 1 or max(lengths[i] for i in batch) * len(batch) <= 64
    flat = [lengths[i] for batch in batches for i in batch]
    assert flat == sorted(flat)  # length-sorted: little padding
    assert token_batches(lengths, 64) == batches  # deterministic
    assert [len(b) for b in token_batches([10] * 10, 30)] == [3, 3, 3, 1]


def test_a_segments_translation_does_not_depend_on_its_batch(tiny_f32: Path):
    small = NllbTranslator(load_model_info(tiny_f32), device="cpu", compute_type="float32", max_batch_tokens=260)
    large = NllbTranslator(load_model_info(tiny_f32), device="cpu", compute_type="float32", max_batch_tokens=100_000)
    pieces = small.tokenizer.encode(SENTENCES * 3)
    batches_seen: list[int] = []
    together = large.translate_pieces(pieces, ["eng_Latn"] * len(pieces), ["deu_Latn"] * len(pieces))
    split = small.translate_pieces(pieces, ["eng_Latn"] * len(pieces), ["deu_Latn"] * len(pieces),
                                   on_batch=batches_seen.append)
    assert len(batches_seen) > 1 and sum(batches_seen) == len(pieces)
    assert [t.text for t in together] == [t.text for t in split]


def test_length_guard_and_signals(tiny_ct2: Path):
    options = DecodeOptions(max_length_ratio=0.5, max_length_slack=1)
    translator = NllbTranslator(load_model_info(tiny_ct2), device="cpu", options=options)
    pieces = translator.tokenizer.encode(SENTENCES)
    results = translator.translate_pieces(pieces, ["eng_Latn"] * len(pieces), ["deu_Latn"] * len(pieces))
    for piece, result in zip(pieces, results, strict=True):
        assert result.src_tokens == len(piece)
        cap = options.max_decoding_length(len(piece))
        assert cap <= math.ceil(0.5 * (len(piece) + 7)) + 1  # source length rounded up to a multiple of 8
        assert result.tgt_tokens <= cap
        assert 0.0 <= result.repetition <= 1.0
    assert any(result.capped for result in results)  # a random model never stops on its own


def test_repetition_rate():
    assert repetition_rate("a b c d e f g h".split()) == 0.0
    assert repetition_rate(["x"] * 20) > 0.8
    assert repetition_rate("a b c a b c a b c a b c".split()) > 0.5
    assert repetition_rate(["a", "b"]) == 0.0


def test_bad_settings_are_rejected_with_clear_messages(tiny_ct2: Path):
    info = load_model_info(tiny_ct2)
    with pytest.raises(MtqaError, match="--beam-size"):
        NllbTranslator(info, device="cpu", options=DecodeOptions(beam_size=0))
    with pytest.raises(MtqaError, match="--max-batch-tokens 100 cannot hold one segment"):
        NllbTranslator(info, device="cpu", max_batch_tokens=100)
    import ctranslate2

    unsupported = sorted({"float16", "int8_float16", "bfloat16", "int8_bfloat16"}
                         - ctranslate2.get_supported_compute_types("cpu"))
    if unsupported:
        with pytest.raises(MtqaError, match=rf"--compute-type {unsupported[0]} is not supported on cpu here"):
            NllbTranslator(info, device="cpu", compute_type=unsupported[0])
    if ctranslate2.get_cuda_device_count() == 0:
        with pytest.raises(MtqaError, match="sees no CUDA device"):
            NllbTranslator(info, device="cuda")
