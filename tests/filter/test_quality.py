from __future__ import annotations

import pytest

from mt_qa.filter import quality
from tests.filter.corpus import TEXTS


def test_normalize_text_ignores_case_width_space_and_punctuation() -> None:
    assert quality.normalize_text("  ¿Qué   TAL?\n¡Bien!  ") == "qué tal bien"
    assert quality.normalize_text("Ｈｅｌｌｏ, «world»…") == "hello world"
    assert quality.normalize_text("Beyoncé") != quality.normalize_text("Beyonce")  # accents are content


def test_tokens_by_word_or_by_character() -> None:
    assert quality.tokens("The Ming, the MING!", "en") == ["the", "ming", "the", "ming"]
    assert quality.tokens("明朝修建的。", "zh") == ["明", "朝", "修", "建", "的"]
    assert quality.ngram_size("zh") == 6 and quality.ngram_size("es") == 3


@pytest.mark.parametrize(("text", "loop"), [
    ("la selva cubre la cuenca", 1),
    ("very very good", 2),
    ("blam blam blam blam the pogues", 4),
    ("de la de la de la de la de la casa", 5),
    ("x " + "a b c d " * 6, 6),
    ("", 1),
])
def test_max_loop(text: str, loop: int) -> None:
    assert quality.max_loop(text.split()) == loop


def test_repetition_scores_loops_high_and_prose_low() -> None:
    prose = quality.tokens(TEXTS["photo"]["en"][1], "en")
    assert quality.repetition(prose) < 0.1
    loop = quality.tokens(TEXTS["photo"]["en"][1] + " the sugar of the plant" * 12, "en")
    assert quality.repetition(loop) > 0.4
    assert quality.repetition(["a", "b"]) == 0.0  # too short to say


def test_copy_overlap() -> None:
    en = quality.grams(quality.tokens(TEXTS["wall"]["en"][1], "en"))
    es = quality.grams(quality.tokens(TEXTS["wall"]["es"][1], "es"))
    assert quality.copy_overlap(en, en) == 1.0
    assert quality.copy_overlap(es, en) < 0.1
    half = quality.grams(quality.tokens(TEXTS["wall"]["es"][1] + " " + TEXTS["wall"]["en"][1], "es"))
    assert 0.3 < quality.copy_overlap(half, en) < 0.7
    assert quality.copy_overlap(set(), en) == 0.0


def test_length_ratio_is_relative_to_the_language_pair() -> None:
    en, zh = TEXTS["photo"]["en"][1], TEXTS["photo"]["zh"][1]
    raw = (len(zh) + quality.LENGTH_SMOOTHING) / (len(en) + quality.LENGTH_SMOOTHING)
    assert raw < 0.5  # Chinese is short in characters ...
    assert 0.5 < quality.length_ratio(zh, en, "zh") < 2.0  # ... as expected for Chinese
    assert quality.length_ratio(TEXTS["photo"]["es"][1][:60], en, "es") < 0.5  # truncated
    assert quality.length_ratio(TEXTS["photo"]["es"][1] * 3, en, "es") > 2.0  # run-on
    assert quality.expected_ratio("ja") == quality.expected_ratio("zh")  # script fallback
    assert quality.expected_ratio("sv") == 1.0
    assert quality.expected_ratio("en", "es") == pytest.approx(1 / 1.04)


def test_blank() -> None:
    assert quality.is_blank(" \n\t") and quality.is_blank("") and quality.is_blank(None)
    assert not quality.is_blank(" a ")
