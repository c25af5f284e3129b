"""Sentence splitting keeps exact offsets, and answers map to the sentence that holds them."""

from __future__ import annotations

import gzip
import json

from mt_qa.sentences import locate_answer, sentence_starts, split_sentences


def test_concatenation_is_exact_on_real_passages(squad_dir):
    doc = json.loads(gzip.decompress((squad_dir / "dev-v1.1.es.json.gz").read_bytes()))
    contexts = [p["context"] for a in doc["data"] for p in a["paragraphs"]][:300]
    multi = 0
    for text in contexts:
        sentences = split_sentences(text, "es")
        assert "".join(sentences) == text
        assert all(s.strip() for s in sentences)
        multi += len(sentences) > 1
    assert multi > 250  # real paragraphs have several sentences


def test_abbreviations_and_other_scripts():
    assert split_sentences("Dr. Smith met the U.S. president. He left.") == (
        "Dr. Smith met the U.S. president. ",
        "He left.",
    )
    assert split_sentences("他来了。我们走吧！") == ("他来了。", "我们走吧！")
    assert split_sentences("   ") == ()
    assert split_sentences("  Leading space. Next.") == ("  Leading space. ", "Next.")


def test_locate_answer_by_offset_then_search():
    passage = "Paris is big. Rome is old. Rome is in Italy."
    sentences = split_sentences(passage)
    assert sentence_starts(sentences) == [0, 14, 27]
    assert locate_answer(passage, sentences, ["Rome"], [27]) == (2, "offset")
    assert locate_answer(passage, sentences, ["Rome"], [3]) == (1, "search")  # wrong offset, text found
    assert locate_answer(passage, sentences, ["Berlin"], [0]) == (-1, "none")
    assert locate_answer(passage, sentences, [], []) == (-1, "none")


def _old_split(text: str) -> tuple[str, ...]:
    """The previous cut rule (``text[:c].strip()`` per cut: quadratic), kept as the reference."""
    import blingfire

    from mt_qa.sentences import _sentence_starts_fast

    if not text.strip():
        return ()
    starts = _sentence_starts_fast(text)
    if starts is None:
        _, offsets = blingfire.text_to_sentences_and_offsets(text)
        starts = [start for start, _ in offsets]
    cuts = [c for c in sorted({s for s in starts if 0 < s < len(text)}) if text[:c].strip()]
    bounds = [0, *cuts, len(text)]
    return tuple(text[a:b] for a, b in zip(bounds, bounds[1:], strict=False) if a < b)


def test_linear_cut_rule_equals_the_old_one_on_every_shared_squad_paragraph(squad_dir):
    compared = 0
    for name in sorted(p.name for p in squad_dir.glob("*.json.gz")):
        doc = json.loads(gzip.decompress((squad_dir / name).read_bytes()))
        for article in doc["data"]:
            for paragraph in article["paragraphs"]:
                text = paragraph["context"]
                assert split_sentences.__wrapped__(text) == _old_split(text), text[:80]
                compared += 1
    for text in ("  Leading space. Next.", "\n\nA. B.", " ", "x", "A.  B.  "):
        assert split_sentences.__wrapped__(text) == _old_split(text)
    assert compared > 6000  # dev en/es/it and the train prefix en/pt


def test_a_multi_megabyte_record_splits_in_linear_time():
    """4 MB took 95 s with the per-cut strip (quadratic); linear it is well under a second."""
    import time

    sentence = "The Normans gave their name to Normandy, a region in France. "
    text = sentence * (4 * 2**20 // len(sentence))
    started = time.perf_counter()
    sentences = split_sentences.__wrapped__(text)
    seconds = time.perf_counter() - started
    assert "".join(sentences) == text and len(sentences) == text.count(". ")
    assert seconds < 30, f"{seconds:.1f}s for {len(text) / 2**20:.0f} MB: not linear"
