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
