from __future__ import annotations

import pyarrow as pa
import pytest

from mt_qa.filter.checks import (
    CopyCheck,
    DuplicateCheck,
    EmptyCheck,
    LangIdCheck,
    LengthRatioCheck,
    RepetitionCheck,
    ScriptCheck,
    ShardRows,
)
from mt_qa.filter.dedup import EXACT, DedupConfig, DedupPlan, Duplicate
from mt_qa.filter.langid import DEFAULT_CANDIDATES, make_detector
from mt_qa.records import QA_SCHEMA
from tests.filter.corpus import TEXTS, group, row


def rows_of(rows: list[dict]) -> ShardRows:
    return ShardRows.from_table(pa.Table.from_pylist(rows, schema=QA_SCHEMA))


def verdicts(check, rows: list[dict]) -> dict[str, object]:
    shard = rows_of(rows)
    check.begin_shard()
    return {shard.ids[i]: check(shard, i) for i in range(len(shard))}


def test_shard_rows_link_translations_to_their_source() -> None:
    shard = rows_of(group("amazon") + [row("lonely", "es", *TEXTS["photo"]["es"])])
    assert shard.source_index == [None, 0, 0, None]


def test_empty_check() -> None:
    check = EmptyCheck()
    found = verdicts(check, group("amazon", es=(TEXTS["amazon"]["es"][0], "  \n ")))
    assert found["demo/dev/amazon/en"] is None and found["demo/dev/amazon/de"] is None
    assert found["demo/dev/amazon/es"].reason == "empty_passage"
    shard = rows_of(group("amazon"))
    shard.questions[0] = "   "  # the record contract forbids it on disk; the check must still catch it
    assert check(shard, 0).reason == "empty_question"


def test_duplicate_check_reads_the_plan() -> None:
    plan = DedupPlan(DedupConfig(), {"demo/dev/amazon/es": Duplicate(EXACT, 1.0, "demo/dev/x/es")})
    found = verdicts(DuplicateCheck(plan), group("amazon"))
    assert found["demo/dev/amazon/es"].reason == "duplicate_exact"
    assert "demo/dev/x/es" in found["demo/dev/amazon/es"].detail
    assert found["demo/dev/amazon/en"] is None


def test_copy_check() -> None:
    en_q, en_p = TEXTS["wall"]["en"]
    found = verdicts(CopyCheck(0.8), group("wall", es=(en_q, en_p), de=(TEXTS["wall"]["de"][0], en_p)))
    assert found["demo/dev/wall/es"].reason == "copied_source" and found["demo/dev/wall/es"].score == 1.0
    assert "passage" in found["demo/dev/wall/de"].detail
    assert found["demo/dev/wall/en"] is None
    assert all(v is None for v in verdicts(CopyCheck(0.8), group("wall", langs=("en", "es", "de", "ru"))).values())


def test_copy_check_needs_a_source_in_another_language() -> None:
    en_q, en_p = TEXTS["wall"]["en"]
    alone = [row("wall", "es", en_q, en_p)]  # no source row in the shard: nothing to compare
    assert verdicts(CopyCheck(0.8), alone)["demo/dev/wall/es"] is None


def test_length_ratio_check() -> None:
    es_q, es_p = TEXTS["photo"]["es"]
    rows = group("photo", langs=("en", "es", "de", "zh"), es=(es_q, es_p[:70]), de=(TEXTS["photo"]["de"][0],
                                                                                     TEXTS["photo"]["de"][1] * 3))
    found = verdicts(LengthRatioCheck(0.5, 2.0), rows)
    assert found["demo/dev/photo/es"].reason == "length_ratio" and found["demo/dev/photo/es"].score < 0.5
    assert "too short" in found["demo/dev/photo/es"].detail
    assert found["demo/dev/photo/de"].score > 2.0 and "too long" in found["demo/dev/photo/de"].detail
    assert found["demo/dev/photo/zh"] is None  # short in characters, as Chinese is
    assert found["demo/dev/photo/en"] is None


def test_length_ratio_falls_back_on_translates_ratio() -> None:
    rows = [row("a", "es", *TEXTS["photo"]["es"], mt_length_ratio=0.2),
            row("b", "es", *TEXTS["wall"]["es"], mt_length_ratio=1.05),
            row("c", "es", *TEXTS["amazon"]["es"])]
    found = verdicts(LengthRatioCheck(0.5, 2.0), rows)
    assert found["demo/dev/a/es"].reason == "length_ratio"
    assert found["demo/dev/b/es"] is None and found["demo/dev/c/es"] is None


def test_repetition_check() -> None:
    es_q, es_p = TEXTS["amazon"]["es"]
    looped = es_p + " la selva la selva la selva la selva la selva"
    phrased = es_p + (" La cuenca abarca nueve países." * 6)
    found = verdicts(RepetitionCheck(0.3, 3), group("amazon", es=(es_q, looped), de=(TEXTS["amazon"]["de"][0],
                                                                                     phrased)))
    assert found["demo/dev/amazon/es"].reason == "repetition_loop" and found["demo/dev/amazon/es"].score == 5.0
    assert found["demo/dev/amazon/de"].reason == "repetition" and found["demo/dev/amazon/de"].score > 0.3
    assert found["demo/dev/amazon/en"] is None
    clean = verdicts(RepetitionCheck(0.3, 3), group("amazon", langs=("en", "es", "de", "ru", "zh")))
    assert all(v is None for v in clean.values())


def test_script_check() -> None:
    rows = group("wall", langs=("en", "ru", "zh"), ru=TEXTS["wall"]["es"], zh=(TEXTS["wall"]["zh"][0], "1234 5678"))
    found = verdicts(ScriptCheck(0.3), rows + [row("odd", "xx", "Qxq?", "Qxq qxq.")])
    assert found["demo/dev/wall/ru"].reason == "script_mismatch" and found["demo/dev/wall/ru"].score == 0.0
    assert found["demo/dev/wall/zh"].detail == "the passage has no letters"
    assert found["demo/dev/wall/en"] is None
    assert found["demo/dev/odd/xx"] is None  # a language without a known script is not judged


@pytest.fixture(scope="module")
def fasttext():
    return make_detector("fasttext", DEFAULT_CANDIDATES)


def test_langid_check(fasttext) -> None:
    check = LangIdCheck(fasttext, 0.5, 0.25, 40)
    rows = group("photo", langs=("en", "es", "de", "ru", "zh"),
                 es=TEXTS["photo"]["de"],  # German text in a Spanish row
                 de=(TEXTS["photo"]["en"][0], TEXTS["photo"]["de"][1]))  # untranslated question
    found = verdicts(check, rows)
    assert found["demo/dev/photo/es"].reason == "langid_passage" and found["demo/dev/photo/es"].score < 0.1
    assert "reads as de" in found["demo/dev/photo/es"].detail
    assert found["demo/dev/photo/de"].reason == "langid_question"
    assert all(found[f"demo/dev/photo/{lang}"] is None for lang in ("en", "ru", "zh"))


def test_short_questions_get_the_short_threshold(fasttext) -> None:
    question = "Qual é a capital?"  # Portuguese, in a Spanish row
    shard = rows_of([row("a", "es", question, TEXTS["amazon"]["es"][1])])
    scores = fasttext.scores(question)
    assert max(scores, key=scores.get) == "pt" and scores.get("es", 0.0) < 0.5
    lenient = LangIdCheck(fasttext, 0.5, 0.0, 40)
    assert lenient(shard, 0) is None and lenient.short_questions == {"es": 1}
    not_short = LangIdCheck(fasttext, 0.5, 0.0, len(question))
    verdict = not_short(shard, 0)
    assert verdict.reason == "langid_question" and verdict.score == pytest.approx(scores.get("es", 0.0), abs=1e-4)
    assert not_short.short_questions == {}


def test_langid_passes_an_unsure_first_choice(fasttext) -> None:
    # A name-heavy question: its language scores low, but no other language scores higher.
    question = "¿Quién es Beyoncé?"
    scores = fasttext.scores(question)
    top = max(scores, key=scores.get)
    shard = rows_of([row("b", top, question, TEXTS["amazon"]["es"][1])])
    check = LangIdCheck(fasttext, 1.0, 1.0, 0)
    verdict = check(shard, 0)
    assert verdict is None or verdict.reason == "langid_passage"  # the question passed on first place
