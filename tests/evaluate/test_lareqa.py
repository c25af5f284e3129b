from __future__ import annotations

import json

import numpy as np
import pytest

from mt_qa.errors import InputError, MtqaError
from mt_qa.evaluate.lareqa import load_benchmark, load_language, sentence_of
from tests.evaluate.conftest import paragraph, qa, write_lareqa


def test_sentence_of_breaks_inside_gap_and_outside():
    breaks = [(0, 10), (11, 20), (22, 30)]
    assert sentence_of(breaks, 0) == (0, "inside")
    assert sentence_of(breaks, 9) == (0, "inside")
    assert sentence_of(breaks, 10) == (1, "gap")  # the space between sentence 0 and 1
    assert sentence_of(breaks, 11) == (1, "inside")
    assert sentence_of(breaks, 21) == (2, "gap")
    assert sentence_of(breaks, 29) == (2, "inside")
    assert sentence_of(breaks, 30) == (-1, "outside")


def test_relevance_is_labelled_from_answer_start_and_breaks(tmp_path):
    sents = ["Alpha one.", "Beta two.", "Gamma three."]
    # starts: "Beta" is at 11, "Gamma" at 21; 10 is the space after sentence 0
    para = paragraph(sents, [qa("q1", "which beta?", 11), qa("q2", "gamma?", 25), qa("q3", "gap?", 10),
                             qa("q4", "two answers?", 0, 21), qa("q5", "none?"), qa("q6", "far?", 999)])
    write_lareqa(tmp_path, {"en": [[para]]})
    d = load_language(tmp_path / "en.json", "en")
    assert d.candidates == sents
    assert d.question_ids == ["q1", "q2", "q3", "q4"]
    assert d.relevant == [[1], [2], [1], [0, 2]]
    assert d.stats["answer_in_gap"] == 1
    assert d.stats["skipped_no_answers"] == 1
    assert d.stats["answer_outside_context"] == 1
    assert d.stats["skipped_no_answer_sentence"] == 1
    assert d.stats["questions_with_several_answer_sentences"] == 1


def test_release_format_example_is_read(tmp_path):
    """The layout of the public xquad-r/en.json: breaks end-exclusive, sentences stripped."""
    context = "Peyton Manning became the first quarterback. He is also the oldest."
    doc = {"data": [{"paragraphs": [{
        "context": context,
        "qas": [{"answers": [{"answer_start": 0, "text": "Peyton Manning"}], "id": "56be", "question": "Who?"},
                {"answers": [{"answer_start": 60, "text": "oldest"}], "id": "56bf", "question": "What age?"}],
        "sentence_breaks": [[0, 44], [45, 67]],
        "sentences": ["Peyton Manning became the first quarterback.", "He is also the oldest."]}]}]}
    (tmp_path / "en.json").write_text(json.dumps(doc))
    d = load_language(tmp_path / "en.json", "en")
    assert d.relevant == [[0], [1]]
    assert d.stats["sentence_differs_from_break"] == 0


def test_parallel_task_links_answers_across_languages(tmp_path):
    en = [[paragraph(["A one.", "A two."], [qa("q1", "en q1", 0), qa("q2", "en q2", 7)])],
          [paragraph(["B one."], [qa("q3", "en q3", 0)])]]
    es = [[paragraph(["Ã uno.", "Ã dos.", "Ã tres."], [qa("q1", "es q1", 14), qa("q2", "es q2", 0)])],
          [paragraph(["Ɓ uno."], [])]]  # q3 does not exist in es (MLQA-R-like)
    write_lareqa(tmp_path, {"en": en, "es": es})
    bench = load_benchmark(tmp_path)
    assert bench.languages == ["en", "es"]
    task = bench.task()
    assert task.offsets.tolist() == [0, 3, 7]
    assert task.query_ids == ["en:q1", "en:q2", "en:q3", "es:q1", "es:q2"]
    assert task.query_lang.tolist() == [0, 0, 0, 1, 1]
    # q1: en sentence 0 and es sentence 2 (pool 3 + 2); q2: en 1, es 0; q3: en only (pool index 2)
    assert task.relevant.tolist() == [[0, 5], [1, 3], [2, -1], [0, 5], [1, 3]]
    assert task.candidate_texts[5] == "Ã tres."
    assert task.candidate_ids[5] == "es:a0.p0.s2"


def test_language_subset_and_order(tmp_path):
    para = [[paragraph(["S."], [qa("q", "?", 0)])]]
    write_lareqa(tmp_path, {"en": para, "de": para, "zh": para})
    assert load_benchmark(tmp_path).languages == ["de", "en", "zh"]
    assert load_benchmark(tmp_path, ["zh", "en"]).languages == ["zh", "en"]
    with pytest.raises(MtqaError, match="no file for language"):
        load_benchmark(tmp_path, ["en", "fr"])


@pytest.mark.parametrize("mutate,message", [
    (lambda p: p.pop("sentence_breaks"), "no 'sentence_breaks'"),
    (lambda p: p.update(sentence_breaks=[[0, 3], [2, 5]]), "out of order"),
    (lambda p: p.update(sentence_breaks=[[0, 999]]), "outside the context"),
    (lambda p: p.update(sentences=["only one"]), "not as many sentences"),
    (lambda p: p["qas"].append(qa("q1", "dup", 0)), "duplicate question id"),
])
def test_malformed_files_name_file_and_location(tmp_path, mutate, message):
    para = paragraph(["One.", "Two."], [qa("q1", "?", 0)])
    mutate(para)
    write_lareqa(tmp_path, {"en": [[para]]})
    with pytest.raises(InputError, match=message) as err:
        load_language(tmp_path / "en.json", "en")
    assert "en.json" in str(err.value) and "data[0].paragraphs[0]" in str(err.value)


def test_not_a_lareqa_directory(tmp_path):
    with pytest.raises(MtqaError, match="no <lang>.json"):
        load_benchmark(tmp_path)
    (tmp_path / "en.json").write_text("{\"version\": 1}")
    with pytest.raises(InputError, match="not SQuAD JSON"):
        load_benchmark(tmp_path)


def test_relevant_rows_are_padded_consistently(tmp_path):
    para = [[paragraph(["S one.", "S two."], [qa("a", "?", 0, 7), qa("b", "?", 0)])]]
    write_lareqa(tmp_path, {"en": para, "es": para})
    task = load_benchmark(tmp_path).task()
    assert task.relevant.shape == (4, 4)
    assert (task.relevant[1] == np.array([0, 2, -1, -1])).all()
