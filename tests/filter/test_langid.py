from __future__ import annotations

from pathlib import Path

import pytest

from mt_qa.filter.langid import (
    DEFAULT_CANDIDATES,
    CombinedDetector,
    FastTextDetector,
    LangdetectDetector,
    LangIdError,
    Py3LangidDetector,
    bundled_fasttext_model,
    make_detector,
    normalize_code,
    prepare,
    restrict,
)
from tests.filter.corpus import TEXTS

SINGLE = ("fasttext", "py3langid", "langdetect")


@pytest.fixture(scope="module")
def detectors() -> dict[str, object]:
    return {name: make_detector(name, DEFAULT_CANDIDATES) for name in (*SINGLE, "combined")}


@pytest.mark.parametrize(("label", "code"), [
    ("__label__pt", "pt"), ("zh-cn", "zh"), ("zh-tw", "zh"), ("zh_TW", "zh"), ("arz", "ar"), ("wuu", "zh"),
    ("eng", "en"), ("deu_Latn", "de"), ("pt-BR", "pt"), ("xx-yy", "xx"),
])
def test_normalize_code(label: str, code: str) -> None:
    assert normalize_code(label) == code


def test_prepare_makes_one_bounded_line() -> None:
    assert prepare("  a\nb\t c  ") == "a b c"
    assert len(prepare("word " * 1000)) <= 500


def test_restrict_renormalises_over_candidates() -> None:
    out = restrict({"es": 0.6, "gl": 0.3, "pt": 0.1}, frozenset({"es", "pt"}))
    assert out == pytest.approx({"es": 6 / 7, "pt": 1 / 7})
    assert restrict({"gl": 1.0}, frozenset({"es"})) == {}
    assert restrict({"gl": 1.0}, None) == {"gl": 1.0}


@pytest.mark.parametrize("name", [*SINGLE, "combined"])
def test_detectors_identify_passages(detectors: dict, name: str) -> None:
    det = detectors[name]
    for topic in TEXTS.values():
        for lang, (_, passage) in topic.items():
            found, p = det.detect(passage)
            assert found == lang, (name, lang, found)
            assert p > 0.5


@pytest.mark.parametrize("name", ["fasttext", "py3langid", "combined"])
def test_detectors_identify_questions(detectors: dict, name: str) -> None:
    det = detectors[name]
    for topic in TEXTS.values():
        for lang, (question, _) in topic.items():
            assert det.detect(question)[0] == lang, (name, lang, question)


@pytest.mark.parametrize("name", [*SINGLE, "combined"])
def test_scores_are_a_distribution_over_candidates(detectors: dict, name: str) -> None:
    scores = detectors[name].scores(TEXTS["photo"]["es"][1])
    assert set(scores) <= set(DEFAULT_CANDIDATES)
    assert sum(scores.values()) == pytest.approx(1.0, abs=1e-6)


@pytest.mark.parametrize("name", [*SINGLE, "combined"])
def test_no_text_no_answer(detectors: dict, name: str) -> None:
    assert detectors[name].scores("   \n ") == {}
    assert detectors[name].detect("") == ("und", 0.0)


def test_restriction_limits_the_answers() -> None:
    # Galician is not a candidate: restricted to es/pt, the detector must choose between those two.
    text = "Cantos países abrangue a conca do Amazonas?"
    open_ft = FastTextDetector(None)
    es_pt = FastTextDetector({"es", "pt"})
    assert set(es_pt.scores(text)) <= {"es", "pt"}
    assert sum(es_pt.scores(text).values()) == pytest.approx(1.0)
    assert len(open_ft.scores(text)) > 2


def test_langdetect_is_seeded_and_repeatable() -> None:
    text = "Vive la France"  # short: langdetect's random sampling would vary without a seed
    first = [LangdetectDetector(None, seed=0).scores(text) for _ in range(3)]
    assert first[0] == first[1] == first[2]


def test_langdetect_without_features_abstains() -> None:
    assert LangdetectDetector(None).scores("12345 678") == {}


def test_py3langid_restricts_natively_and_knows_its_languages() -> None:
    det = Py3LangidDetector({"es", "pt", "it"})
    assert set(det.scores("Qual é a capital do Brasil?")) <= {"es", "pt", "it"}
    assert det.supports("pt") and not det.supports("xx")
    with pytest.raises(LangIdError, match="none of the candidate"):
        Py3LangidDetector({"xx", "yy"})


def test_combined_averages_members() -> None:
    ft, py = FastTextDetector(DEFAULT_CANDIDATES), Py3LangidDetector(DEFAULT_CANDIDATES)
    combined = CombinedDetector([ft, py])
    text = TEXTS["wall"]["de"][0]
    a, b, c = ft.scores(text), py.scores(text), combined.scores(text)
    for lang in set(a) | set(b):
        assert c[lang] == pytest.approx((a.get(lang, 0) + b.get(lang, 0)) / 2)
    assert combined.describe()["name"] == "fasttext+py3langid"
    with pytest.raises(LangIdError):
        CombinedDetector([ft])


def test_make_detector_specs() -> None:
    assert isinstance(make_detector("fasttext"), FastTextDetector)
    combined = make_detector("combined", DEFAULT_CANDIDATES)
    assert [m.name for m in combined.members] == ["fasttext", "py3langid"]
    three = make_detector("fasttext+langdetect+py3langid", DEFAULT_CANDIDATES)
    assert [m.name for m in three.members] == ["fasttext", "langdetect", "py3langid"]
    with pytest.raises(LangIdError, match="unknown detector 'cld3'"):
        make_detector("cld3")
    with pytest.raises(LangIdError, match="unknown detector"):
        make_detector("fasttext+nope")


def test_fasttext_model_ships_in_a_package_and_bad_paths_are_clear(tmp_path: Path) -> None:
    path = bundled_fasttext_model()
    assert path is not None and path.name == "lid.176.ftz" and path.stat().st_size < 2_000_000
    with pytest.raises(LangIdError, match="not found"):
        FastTextDetector(None, model_path=tmp_path / "missing.ftz")
    junk = tmp_path / "junk.ftz"
    junk.write_bytes(b"not a model")
    with pytest.raises(LangIdError, match="not a fastText model"):
        FastTextDetector(None, model_path=junk)
    described = FastTextDetector(None).describe()
    assert described["model"] == "lid.176.ftz" and len(described["sha256"]) == 64


def test_tatoeba_sample_accuracy(tatoeba_dir: Path, detectors: dict) -> None:
    """Real sentences: the combined detector gets (nearly) all of a 40-per-language sample right."""
    codes = {"ara": "ar", "cmn": "zh", "deu": "de", "ell": "el", "hin": "hi", "ita": "it", "por": "pt",
             "rus": "ru", "spa": "es", "tha": "th", "tur": "tr", "vie": "vi"}
    wrong, total = 0, 0
    for iso3, code in codes.items():
        lines = (tatoeba_dir / f"tatoeba.{iso3}-eng.{iso3}").read_text(encoding="utf-8").splitlines()[100:140]
        for line in lines:
            total += 1
            wrong += detectors["combined"].detect(line)[0] != code
    assert wrong / total <= 0.02, f"{wrong}/{total} wrong"
