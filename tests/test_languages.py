from __future__ import annotations

import pytest

from mt_qa.languages import Language, UnknownLanguageError, all_languages, parse_langs, resolve


def test_table_is_nllbs_full_flores_200_list():
    from transformers.models.nllb.tokenization_nllb import FAIRSEQ_LANGUAGE_CODES

    langs = all_languages()
    assert [lang.flores for lang in langs] == list(FAIRSEQ_LANGUAGE_CODES)
    assert len(langs) == 202


def test_every_language_has_a_unique_row_code_and_resolves_from_each_spelling():
    langs = all_languages()
    assert len({lang.code for lang in langs}) == len(langs)
    for lang in langs:
        assert resolve(lang.flores) == lang
        assert resolve(lang.code) == lang
        assert resolve(lang.flores.upper()) == lang
        assert len(lang.iso3) == 3 and (lang.iso1 is None or len(lang.iso1) == 2)


@pytest.mark.parametrize(
    ("code", "flores", "row_code"),
    [
        ("de", "deu_Latn", "de"),
        ("deu", "deu_Latn", "de"),
        ("deu_Latn", "deu_Latn", "de"),
        ("DEU-latn", "deu_Latn", "de"),
        (" German ", "deu_Latn", "de"),
        ("ar", "arb_Arab", "ar"),
        ("ara", "arb_Arab", "ar"),  # macrolanguage code
        ("arb", "arb_Arab", "ar"),  # FLORES prefix
        ("arz", "arz_Arab", "arz"),  # a dialect without ISO 639-1 keeps its ISO 639-3 code
        ("sw", "swh_Latn", "sw"),
        ("fas", "pes_Arab", "fa"),
        ("no", "nob_Latn", "nb"),
        ("iw", "heb_Hebr", "he"),  # retired code still emitted by detectors
        ("pt-BR", "por_Latn", "pt"),  # region subtag
        ("es-419", "spa_Latn", "es"),
    ],
)
def test_resolve_accepts_iso1_iso3_flores_and_aliases(code, flores, row_code):
    lang = resolve(code)
    assert lang.flores == flores
    assert lang.code == row_code


def test_chinese_codes():
    assert resolve("zh").flores == "zho_Hans"
    assert resolve("zho").flores == "zho_Hans"
    # Region tags name the language (detectors emit them for any Chinese), not a script.
    assert resolve("zh-cn") == resolve("zh-tw") == resolve("zh")
    hant = resolve("zho_Hant")
    assert hant != resolve("zh")
    assert hant.code == "zh-Hant" and hant.script == "Hant"
    assert resolve("zh-Hant") == resolve("zh_hant") == hant
    assert resolve("yue").flores == "yue_Hant"


def test_two_script_languages_get_distinct_row_codes():
    assert resolve("ks").flores == "kas_Arab"
    assert resolve("kas_Deva").code == "ks-Deva"
    assert resolve("ace").flores == "ace_Latn"
    assert resolve("ace_Arab").code == "ace-Arab"


def test_unknown_code_is_rejected_with_close_suggestions():
    with pytest.raises(UnknownLanguageError, match=r"unknown language code 'deu_Cyrl'; did you mean de / deu_Latn"):
        resolve("deu_Cyrl")
    with pytest.raises(UnknownLanguageError, match="German"):
        resolve("germn")
    with pytest.raises(UnknownLanguageError, match="FLORES-200 codes look like"):
        resolve("qq")


def test_parse_langs_keeps_order_and_drops_repeats():
    assert [lang.code for lang in parse_langs("de, ar,zh,deu,deu_Latn")] == ["de", "ar", "zh"]
    with pytest.raises(UnknownLanguageError, match="no language codes"):
        parse_langs(" , ")
    with pytest.raises(UnknownLanguageError, match="'xx'"):
        parse_langs("de,xx")


def test_language_api_is_unchanged():
    lang = Language("de", "deu", "deu_Latn", "German")
    assert (lang.code, lang.script) == ("de", "Latn")
    assert Language(None, "ast", "ast_Latn", "Asturian").code == "ast"
