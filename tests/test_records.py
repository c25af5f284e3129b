"""The QA record contract: ids derived one way, and validation that catches each breach."""

from __future__ import annotations

import pytest

from mt_qa.records import QA_SCHEMA, RecordError, qa_record, to_table, validate_table


def row(**over):
    base = dict(
        dataset="squad",
        split="dev",
        source_id="q1",
        lang="en",
        lang_code="eng_Latn",
        question="Where?",
        passage="Here. There.",
        passage_sentences=["Here. ", "There."],
        answers=["There"],
        answer_starts=[6],
        answer_sentence_index=1,
    )
    base.update(over)
    return qa_record(**base)


def test_ids_are_derived_from_group_and_language():
    r = row(lang="es", lang_code="spa_Latn")
    assert r["group_id"] == "squad/dev/q1" and r["id"] == "squad/dev/q1/es"


def test_valid_rows_pass():
    assert validate_table(to_table([row(), row(lang="es", lang_code="spa_Latn")], QA_SCHEMA), QA_SCHEMA) == []


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda rows: rows.append(dict(rows[0])), "duplicate ids"),
        (lambda rows: rows[0].update(id="other"), "id is not group_id/lang"),
        (lambda rows: rows[0].update(origin="invented"), "origin not one of"),
        (lambda rows: rows[0].update(question="  "), "empty question"),
        (lambda rows: rows[0].update(lang=""), "empty lang"),
        (lambda rows: rows[0].update(answer_sentence_index=2), "answer_sentence_index out of range"),
        (lambda rows: rows[0].update(passage_sentences=[], answer_sentence_index=-1), "passage without"),
        (lambda rows: rows[0].update(answer_starts=[]), "answers and answer_starts differ"),
    ],
)
def test_each_breach_is_reported(change, message):
    rows = [row()]
    change(rows)
    problems = validate_table(to_table(rows, QA_SCHEMA), QA_SCHEMA)
    assert any(message in p for p in problems), problems


def test_wrong_types_are_a_record_error():
    with pytest.raises(RecordError, match="do not fit the qa schema"):
        to_table([row(answer_sentence_index="first")], QA_SCHEMA)


def test_table_missing_a_column_is_a_record_error():
    table = to_table([row()], QA_SCHEMA).drop_columns(["title"])
    with pytest.raises(RecordError, match="lacks columns"):
        to_table(table, QA_SCHEMA)


def test_nulls_in_required_columns_are_reported():
    # Arrow does not enforce nullability on conversion, so validation must.
    problems = validate_table(to_table([row(question=None)], QA_SCHEMA), QA_SCHEMA)
    assert any("'question' has 1 nulls" in p for p in problems), problems
