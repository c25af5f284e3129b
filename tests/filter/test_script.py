from __future__ import annotations

import pytest

from mt_qa.filter.script import script_of, script_ratio
from tests.filter.corpus import TEXTS


@pytest.mark.parametrize(("lang", "script"), [("ru", "Cyrl"), ("zh", "Hans"), ("ja", "Jpan"), ("es", "Latn"),
                                              ("hi", "Deva"), ("th", "Thai"), ("xx", None)])
def test_script_of(lang: str, script: str | None) -> None:
    assert script_of(lang) == script


def test_texts_in_their_own_script_pass() -> None:
    for topic in TEXTS.values():
        for lang, (question, passage) in topic.items():
            for text in (question, passage):
                assert script_ratio(text, script_of(lang)) > 0.9, (lang, text)


def test_names_in_latin_do_not_sink_a_dense_script() -> None:
    # Han characters count triple: four of them outweigh a seven-letter Latin name.
    assert script_ratio("谁是Beyoncé的经纪人？", "Hans") > 0.5
    assert 0.3 < script_ratio("Кто такой Beyoncé Knowles?", "Cyrl") < 0.5


@pytest.mark.parametrize(("text", "script"), [
    (TEXTS["amazon"]["en"][1], "Cyrl"),  # untranslated English in a Russian row
    (TEXTS["amazon"]["es"][0], "Hans"),
    (TEXTS["amazon"]["ru"][0], "Latn"),
    (TEXTS["amazon"]["zh"][0], "Latn"),
    (TEXTS["amazon"]["zh"][0], "Cyrl"),
])
def test_wrong_script_fails(text: str, script: str) -> None:
    assert script_ratio(text, script) < 0.3


def test_korean_may_use_han_but_chinese_may_not_use_hangul() -> None:
    assert script_ratio("長城은 어디에 있나요?", "Hang") == 1.0
    assert script_ratio("만리장성은 어디에 있나요?", "Hans") == 0.0


def test_no_letters_is_none() -> None:
    assert script_ratio("1984 — 2001?", "Latn") is None
    assert script_ratio("", "Latn") is None
