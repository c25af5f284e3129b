"""Each reader on a small hand-written fixture in its real format."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from mt_qa.collect import detect_format, make_reader
from mt_qa.collect.base import BadRecord, Example, Skipped
from mt_qa.errors import InputError, MtqaError

FIX = Path(__file__).resolve().parents[1] / "fixtures" / "collect"


def read_all(path, fmt="auto", **options):
    return list(make_reader(str(path), fmt, options).read())


def examples(items):
    return [i for i in items if isinstance(i, Example)]


@pytest.mark.parametrize(
    ("name", "fmt"),
    [
        ("squad_v2.json", "squad"),
        ("nq_simplified.jsonl", "nq"),
        ("nq_open.jsonl", "nq-open"),
        ("msmarco", "msmarco"),
        ("WikiQA-dev.tsv", "wikiqa"),
        ("triviaqa/qa/wikipedia-dev.json", "triviaqa"),
        ("generic.jsonl", "jsonl"),
        ("generic.csv", "csv"),
    ],
)
def test_detect_format(name, fmt):
    assert detect_format(str(FIX / name)) == fmt


def test_squad_v2_skips_unanswerable_and_keeps_offsets():
    items = read_all(FIX / "squad_v2.json")
    skipped = [i for i in items if isinstance(i, Skipped)]
    assert [s.reason for s in skipped] == ["unanswerable"]
    exs = examples(items)
    assert [e.source_id for e in exs] == ["n1", "n2", "n4"]
    first = exs[0]
    assert first.title == "Normans"
    assert first.passage[first.answer_starts[0] :].startswith("France")
    assert first.location == "data[0].paragraphs[0].qas[0]"


def test_natural_questions_long_answer_without_html():
    items = read_all(FIX / "nq_simplified.jsonl")
    (ex,) = examples(items)
    assert ex.source_id == "101"
    assert "<P>" not in ex.passage and ex.passage.startswith("The Eiffel Tower is a wrought-iron")
    assert ex.answers == ["Gustave Eiffel"]
    assert ex.passage[ex.answer_starts[0] :].startswith("Gustave Eiffel")
    assert ex.title == "Eiffel Tower"
    assert [i.reason for i in items if isinstance(i, Skipped)] == ["no_long_answer"]


def test_nq_open_is_question_only():
    reader = make_reader(str(FIX / "nq_open.jsonl"))
    assert reader.needs_passage is False
    exs = examples(reader.read())
    assert [e.question for e in exs] == ["who designed the eiffel tower", "when did the eiffel tower open"]
    assert exs[0].passage == "" and exs[0].answers == ["Gustave Eiffel"]


def test_msmarco_pairs_from_qrels():
    reader = make_reader(str(FIX / "msmarco"))
    assert reader.default_split() == "dev"
    exs = examples(reader.read())
    assert [(e.source_id, e.passage) for e in exs] == [
        ("10_0", "The Eiffel Tower is in Paris."),
        ("11_1", "Rollo was the first ruler of Normandy."),
    ]


def test_msmarco_unknown_passage_is_a_bad_record(tmp_path):
    for name in ("collection.tsv", "queries.dev.tsv"):
        (tmp_path / name).write_text((FIX / "msmarco" / name).read_text())
    (tmp_path / "qrels.dev.tsv").write_text("10\t0\t0\t1\n10\t0\t99\t1\n")
    items = read_all(tmp_path, "msmarco")
    bad = [i for i in items if isinstance(i, BadRecord)]
    assert [b.reason for b in bad] == ["unknown_passage_id"]
    assert "99" in bad[0].detail and bad[0].location == "qrels.dev.tsv line 2"


def test_wikiqa_sentences_and_unanswered_question():
    reader = make_reader(str(FIX / "WikiQA-dev.tsv"))
    assert reader.default_split() == "dev"
    items = list(reader.read())
    (ex,) = examples(items)
    assert ex.passage_sentences == ["The Eiffel Tower is in Paris. ", "It is 330 metres tall."]
    assert "".join(ex.passage_sentences) == ex.passage
    assert ex.answers == ["It is 330 metres tall."]
    assert ex.passage[ex.answer_starts[0] :] == "It is 330 metres tall."
    assert [i.reason for i in items if isinstance(i, Skipped)] == ["no_answer"]


def test_triviaqa_takes_evidence_paragraph_with_answer():
    items = read_all(FIX / "triviaqa/qa/wikipedia-dev.json")
    (ex,) = examples(items)
    assert ex.source_id == "tq_1" and "Champ de Mars in Paris" in ex.passage
    assert ex.passage[ex.answer_starts[0] :].startswith("Paris")
    assert [i.reason for i in items if isinstance(i, Skipped)] == ["answer_not_in_evidence"]


def test_triviaqa_without_evidence_dir_says_how_to_fix(tmp_path):
    qa = tmp_path / "qa.json"
    qa.write_text((FIX / "triviaqa/qa/wikipedia-dev.json").read_text())
    with pytest.raises(InputError, match="--evidence-dir"):
        read_all(qa, "triviaqa")


def test_generic_jsonl_with_mapping():
    items = read_all(FIX / "generic.jsonl", mapping={"id": "qid", "question": "q", "passage": "ctx", "answers": "ans"})
    exs = examples(items)
    assert [(e.source_id, e.answers) for e in exs] == [("g1", ["Paris"]), ("g2", ["Rollo"])]


def test_generic_jsonl_without_mapping_names_the_missing_field():
    items = read_all(FIX / "generic.jsonl")
    assert all(isinstance(i, BadRecord) and i.reason == "missing_field" for i in items)
    assert "--map question=COLUMN" in items[0].detail


def test_csv_uses_default_column_names():
    exs = examples(read_all(FIX / "generic.csv"))
    assert [(e.source_id, e.title, e.passage) for e in exs] == [
        ("c1", "Eiffel", "The Eiffel Tower is in Paris, France."),
        ("c2", "Normandy", "Rollo was the first ruler of Normandy."),
    ]
    assert exs[0].location == "line 2"


def test_parquet_reader(tmp_path):
    path = tmp_path / "pairs.parquet"
    pd.DataFrame({"query": ["q one", "q two"], "text": ["passage one.", "passage two."]}).to_parquet(path)
    exs = examples(read_all(path))
    assert [(e.source_id, e.question, e.passage) for e in exs] == [
        ("0", "q one", "passage one."),
        ("1", "q two", "passage two."),
    ]


def test_hub_reader_loads_a_saved_dataset_with_squad_answers(tmp_path):
    datasets = pytest.importorskip("datasets")
    ds = datasets.Dataset.from_dict(
        {
            "id": ["h1"],
            "title": ["T"],
            "context": ["Paris is in France."],
            "question": ["Where is Paris?"],
            "answers": [{"text": ["France"], "answer_start": [12]}],
        }
    )
    datasets.DatasetDict({"validation": ds}).save_to_disk(str(tmp_path / "saved"))
    reader = make_reader(f"hf:{tmp_path / 'saved'}", options={"split": "dev"})
    (ex,) = examples(reader.read())
    assert (ex.source_id, ex.answers, ex.answer_starts) == ("h1", ["France"], [12])


def test_hub_by_name_offline_fails_fast_with_advice(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(MtqaError, match="pass the local path"):
        read_all("hf:squad")


def test_squad_answer_start_beyond_int64_is_a_bad_record(tmp_path):
    path = tmp_path / "squad.json"
    qa = {"id": "q1", "question": "Capital?", "answers": [{"text": "Paris", "answer_start": 2**70}]}
    path.write_text(json.dumps({"data": [{"title": "T", "paragraphs": [{"context": "Paris is big.", "qas": [qa]}]}]}))
    (bad,) = read_all(path, "squad")
    assert isinstance(bad, BadRecord) and bad.source_id == "q1"
    assert "answer_start" in bad.detail and "64-bit" in bad.detail
