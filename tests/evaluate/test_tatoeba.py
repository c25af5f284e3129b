"""Tatoeba bitext retrieval: loading (real LASER files), accuracy arithmetic, the CLI on a tiny model."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from mt_qa.cli import main
from mt_qa.errors import MtqaError
from mt_qa.evaluate.tatoeba import load_tatoeba, retrieval_accuracy


def test_loads_the_shared_laser_files_with_mtqa_codes(tatoeba_dir):
    pairs = load_tatoeba(tatoeba_dir, ["deu", "zh", "tha"])
    assert [(p.lang, p.file_code) for p in pairs] == [("de", "deu"), ("zh", "cmn"), ("th", "tha")]
    assert [len(p.source) for p in pairs] == [1000, 1000, 548]
    assert all(len(p.source) == len(p.english) for p in pairs)
    everything = load_tatoeba(tatoeba_dir)
    assert len(everything) == 12 and "en" not in {p.lang for p in everything}


def write_pair(directory: Path, code: str, source: str, english: str) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    (directory / f"tatoeba.{code}-eng.{code}").write_text(source, encoding="utf-8")
    (directory / f"tatoeba.{code}-eng.eng").write_text(english, encoding="utf-8")
    return directory


@pytest.mark.parametrize(
    ("source", "english", "message"),
    [
        ("a\nb\n", "one\n", "2 lines but tatoeba.deu-eng.eng has 1"),
        ("a\n\nc\n", "x\ny\nz\n", "line 2: empty sentence"),
    ],
)
def test_bad_files_are_named_with_the_problem(tmp_path, source, english, message):
    write_pair(tmp_path, "deu", source, english)
    with pytest.raises(MtqaError, match=message):
        load_tatoeba(tmp_path)


def test_missing_english_side_and_unknown_language(tmp_path):
    (tmp_path / "tatoeba.deu-eng.deu").write_text("a\n")
    with pytest.raises(MtqaError, match="missing"):
        load_tatoeba(tmp_path)
    write_pair(tmp_path / "two", "deu", "a\n", "b\n")
    with pytest.raises(MtqaError, match="no Tatoeba pair for 'fr'"):
        load_tatoeba(tmp_path / "two", ["fr"])
    (tmp_path / "empty").mkdir()
    with pytest.raises(MtqaError, match="no tatoeba"):
        load_tatoeba(tmp_path / "empty")


def test_accuracy_counts_nearest_neighbours_and_forgives_exact_duplicates():
    q = np.eye(3, dtype=np.float32)
    c = np.array([[1, 0, 0], [0, 0, 1], [0, 1, 0]], dtype=np.float32)  # rows 1 and 2 swapped
    assert retrieval_accuracy(q, c, ["a", "b", "c"], ["A", "B", "C"]) == pytest.approx(1 / 3)
    # Candidates 1 and 2 are the same sentence: retrieving either one is right.
    assert retrieval_accuracy(q, c, ["a", "b", "c"], ["A", "B", "B"]) == pytest.approx(1.0)


def test_cli_reports_both_directions_and_the_unseen_mean(tmp_path, tiny_model):
    data = write_pair(tmp_path / "data", "spa", "el gato se sentó en la alfombra\ndónde está el perro\n",
                      "the cat sat on the mat\nwhere is the dog\n")
    write_pair(data, "ita", "il gatto si è seduto sul tappeto\ndov'è il cane\n",
               "the cat sat on the mat\nwhere is the dog\n")
    out = tmp_path / "out"
    assert main(["evaluate", "tatoeba", str(data), "-m", str(tiny_model), "-o", str(out), "--cache-dir",
                 str(tmp_path / "cache"), "--trained-languages", "en,es", "-q", "--label", "tiny"]) == 0
    report = json.loads((out / "report.json").read_text())
    bench = report["benchmarks"]["tatoeba"]
    assert report["kind"] == "tatoeba" and report["label"] == "tiny" and bench["languages"] == ["es", "it"]
    es, it = bench["per_language"]["es"], bench["per_language"]["it"]
    assert es["trained"] is True and it["trained"] is False and es["pairs"] == 2
    for v in (es, it):
        assert v["accuracy"] == pytest.approx((v["xx->en"] + v["en->xx"]) / 2)
        assert v["xx->en"] in (0.0, 0.5, 1.0)
    assert bench["metrics"]["unseen mean"] == pytest.approx(it["accuracy"])
    assert bench["metrics"]["mean"] == pytest.approx((es["accuracy"] + it["accuracy"]) / 2)
    assert "| it | ita | 2 | no |" in (out / "report.md").read_text()
    # compare reads tatoeba reports too
    assert main(["evaluate", "compare", str(out), "-o", str(tmp_path / "cmp.md")]) == 0
    assert "unseen mean" in (tmp_path / "cmp.md").read_text()
