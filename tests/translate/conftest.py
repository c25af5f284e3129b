"""Fixtures for the translate tests: a tiny random NLLB model, converted with the real converter.

Built once per session, at test time, from text written here: nothing is downloaded.
"""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import pytest

# Short English paragraphs (our own text) for the SentencePiece model and the QA fixture.
PARAGRAPHS = [
    "The river flows north through the valley. Farmers grow wheat and barley on its banks. "
    "In 1887 a stone bridge was built near the old mill.",
    "Marie Curie was born in Warsaw in 1867. She moved to Paris to study physics and chemistry. "
    "She won the Nobel Prize twice.",
    "The museum opens at nine in the morning. Tickets cost twelve euros for adults. "
    "Children under six enter for free.",
    "Photosynthesis turns light into chemical energy. Plants store that energy as sugar. "
    "Oxygen is released as a by-product.",
    "The Denver Broncos won Super Bowl 50 in February 2016. The game was played in Santa Clara, California. "
    "Peyton Manning retired after the season.",
    "Mount Everest is the highest mountain on Earth. Its summit is 8,849 metres above sea level. "
    "Tenzing Norgay and Edmund Hillary reached it in 1953.",
    "The library holds more than two million books.\nIt was founded by a group of scholars in 1602. "
    "Students may borrow ten books at a time.",
    "Coffee was first cultivated in Yemen. Traders carried it to Europe in the seventeenth century. "
    "Today Brazil is the largest producer.",
]
QUESTIONS = [
    [("When was the stone bridge built?", "1887"), ("What do farmers grow?", "wheat and barley")],
    [("Where was Marie Curie born?", "Warsaw"), ("How many Nobel Prizes did she win?", "twice")],
    [("When does the museum open?", "nine in the morning"), ("How much do adult tickets cost?", "twelve euros")],
    [("What is released during photosynthesis?", "Oxygen")],
    [("Who won Super Bowl 50?", "Denver Broncos"), ("Where was the game played?", "Santa Clara, California")],
    [("How high is the summit of Mount Everest?", "8,849 metres"), ("Who reached the summit in 1953?",
                                                                     "Tenzing Norgay and Edmund Hillary")],
    [("When was the library founded?", "1602"), ("How many books may students borrow?", "ten books")],
    [("Where was coffee first cultivated?", "Yemen"), ("Which country is the largest producer?", "Brazil")],
]
# Spanish "imports" for the first two paragraphs' questions (parallel rows, origin=imported).
SPANISH = {"q0_0": ("¿Cuándo se construyó el puente de piedra?", "1887"),
           "q1_0": ("¿Dónde nació Marie Curie?", "Varsovia")}


def corpus_lines() -> list[str]:
    lines = []
    for paragraph, questions in zip(PARAGRAPHS, QUESTIONS, strict=True):
        lines += paragraph.split("\n")
        lines += [q for q, _ in questions]
    lines += [q for q, _ in SPANISH.values()] + ["这是一个测试句子。", "Dies ist ein Testsatz.", "هذه جملة اختبار."]
    return lines


def squad_json(spanish: bool = False) -> dict:
    """The fixture as SQuAD JSON: English, or the Spanish imports of two questions."""
    paragraphs = []
    for p, (context, questions) in enumerate(zip(PARAGRAPHS, QUESTIONS, strict=True)):
        if spanish:
            context = context.replace("Warsaw", "Varsovia")
        qas = []
        for q, (question, answer) in enumerate(questions):
            qid = f"q{p}_{q}"
            if spanish:
                if qid not in SPANISH:
                    continue
                question, answer = SPANISH[qid]
            qas.append({"id": qid, "question": question,
                        "answers": [{"text": answer, "answer_start": context.find(answer)}]})
        if qas:
            paragraphs.append({"context": context, "qas": qas})
    return {"version": "1.1", "data": [{"title": "Fixture_Article", "paragraphs": paragraphs}]}


@pytest.fixture(scope="session")
def tiny_checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A random-weight NLLB-architecture Transformers checkpoint with an NLLB tokenizer."""
    from mt_qa.testing.nllb import build_nllb_checkpoint

    return build_nllb_checkpoint(tmp_path_factory.mktemp("tiny") / "hf", corpus_lines(), spm_vocab_size=300)


@pytest.fixture(scope="session")
def tiny_ct2(tiny_checkpoint: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny checkpoint converted to CTranslate2 int8 by `mtqa model convert`'s code path."""
    from mt_qa.translate.models import convert

    return convert(tiny_checkpoint, tmp_path_factory.mktemp("ct2") / "tiny-int8", "int8").path


@pytest.fixture(scope="session")
def qa_store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small collected QA store: 8 English paragraphs, 15 questions, 2 Spanish imports, 2 shards."""
    from mt_qa.collect import CollectStage, ParallelSpec, SourceSpec

    root = tmp_path_factory.mktemp("qa")
    en, es = root / "dev-v1.1.en.json.gz", root / "dev-v1.1.es.json.gz"
    with gzip.open(en, "wt", encoding="utf-8") as fh:
        json.dump(squad_json(), fh)
    with gzip.open(es, "wt", encoding="utf-8") as fh:
        json.dump(squad_json(spanish=True), fh)
    out = root / "collect"
    CollectStage([SourceSpec(str(en))], out, parallel=[ParallelSpec("es", str(es))], shard_size=8,
                 progress=False).run()
    return out


@pytest.fixture(autouse=True)
def _isolated_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Never touch ~/.cache/mtqa from tests."""
    monkeypatch.setenv("MTQA_CACHE_DIR", str(tmp_path / "mtqa-cache"))
