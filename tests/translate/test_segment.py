from __future__ import annotations

import pytest

from mt_qa.languages import resolve
from mt_qa.translate.segment import normalize, plan_row, reassemble, separator, split_long


def words(text: str) -> int:
    """A stand-in token counter: one token per whitespace-separated word (or per 3 chars of one)."""
    return sum(max(1, -(-len(w) // 3)) for w in text.split())


@pytest.mark.parametrize(("code", "sep"), [("zh", ""), ("zh-Hant", ""), ("ja", ""), ("de", " "), ("ar", " "),
                                           ("th", " "), ("ko", " ")])
def test_separator_by_script(code, sep):
    assert separator(resolve(code)) == sep


def test_short_text_is_one_segment():
    assert split_long("A short sentence.", words, 10) == ["A short sentence."]


def test_long_text_is_split_never_truncated():
    text = normalize(" ".join(f"word{i}," for i in range(60)) + " end.")
    pieces = split_long(text, words, 12)
    assert len(pieces) > 1
    assert all(words(p) <= 12 for p in pieces)
    assert " ".join(pieces) == text  # every character kept, in order


def test_split_prefers_sentence_then_clause_boundaries():
    text = "First sentence is here. Second one, with a clause; and another clause follows it."
    pieces = split_long(text, words, 9)
    assert pieces[0] == "First sentence is here."
    assert all(words(p) <= 9 for p in pieces)
    assert " ".join(pieces) == text
    assert any(p.endswith((",", ";")) for p in pieces[1:-1])


def test_a_run_without_spaces_is_cut_inside_as_a_last_resort():
    text = "x" * 90
    pieces = split_long(text, words, 5)
    assert "".join(pieces) == text
    assert all(words(p) <= 5 for p in pieces)


def test_plan_and_reassemble_keep_sentence_alignment():
    sentences = ["One two three.  ", "Four five six seven eight nine ten eleven twelve.\n", "", "Last."]
    plan = plan_row("Which number?", sentences, words, 6)
    assert plan.question == ("Which number?",)
    assert len(plan.sentences) == len(sentences)
    assert plan.sentences[2] == ()
    assert len(plan.sentences[1]) > 1 and plan.split == 1
    translated = {piece: piece.upper() for piece in plan.pieces()}

    question, out = reassemble(plan, translated, resolve("de"))
    assert question == "WHICH NUMBER?"
    assert len(out) == len(sentences)
    assert out[0] == "ONE TWO THREE. "
    assert out[1] == "FOUR FIVE SIX SEVEN EIGHT NINE TEN ELEVEN TWELVE.\n"  # pieces joined, line break kept
    assert out[2] == ""
    assert out[3] == "LAST."  # no separator at the end

    _, out_zh = reassemble(plan, translated, resolve("zh"))
    assert out_zh[0] == "ONE TWO THREE."  # no space between sentences (or pieces) in Chinese
    assert out_zh[1] == "".join(translated[p] for p in plan.sentences[1]) + "\n"
