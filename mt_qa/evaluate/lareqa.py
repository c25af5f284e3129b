"""LAReQA-format benchmarks (XQuAD-R, MLQA-R): candidates, questions and relevance from sentence breaks.

The public release (github.com/google-research-datasets/lareqa) is one SQuAD-format JSON per
language (``xquad-r/en.json``, ``mlqa-dev-r/de.json``...). Each paragraph carries, beside
``context`` and ``qas``, ``sentences`` (list of str) and ``sentence_breaks`` (``[start, end]``
character offsets into ``context``, end exclusive, so ``context[start:end]`` is the sentence).

- Candidates of a language are *all* sentences of *all* its paragraphs, in file order.
- A sentence is relevant to a question of its paragraph if its break holds an answer's
  ``answer_start`` (a question with several answers in different sentences has several).
- Question ids are shared across languages: the question's relevant sentences in language Y
  are those of the question with the same id in Y's file, so a question has parallel answers
  in every language it exists in (11 for XQuAD-R, 2-4 for MLQA-R).

Problems that make a file unusable (not SQuAD JSON, no breaks, a duplicate id) raise
``InputError`` with the location; questions that cannot be labelled (no answer, an answer
offset outside the context) are left out and counted in ``LanguageData.stats``, never dropped
silently.
"""

from __future__ import annotations

import re
from bisect import bisect_right
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from mt_qa.errors import InputError, MtqaError
from mt_qa.io import load_json

# <lang>.json or <lang>.json.gz; the language is the file's stem.
_FILE = re.compile(r"^(?P<lang>[A-Za-z]{2,3}(?:[-_][A-Za-z0-9]+)?)\.json(?:\.gz)?$")


@dataclass
class LanguageData:
    """One language of a benchmark: its candidate sentences, its questions and their answers."""

    lang: str
    source: str
    candidates: list[str] = field(default_factory=list)
    candidate_ids: list[str] = field(default_factory=list)  # "a<article>.p<paragraph>.s<sentence>"
    question_ids: list[str] = field(default_factory=list)
    questions: list[str] = field(default_factory=list)
    relevant: list[list[int]] = field(default_factory=list)  # per question: indices into candidates
    stats: Counter = field(default_factory=Counter)


@dataclass
class Benchmark:
    """A set of parallel languages; ``languages`` fixes the pooled candidate order."""

    name: str
    languages: list[str]
    data: dict[str, LanguageData]

    def task(self) -> Task:
        return Task.from_benchmark(self)


@dataclass
class Task:
    """Flat arrays the ranking code works on: every query against the pooled candidates.

    ``offsets[l]:offsets[l+1]`` are language ``l``'s candidates in the pool. ``relevant[q]``
    lists (padded with -1) the pool indices relevant to query ``q``: its own answer sentences
    in every language where its id exists.
    """

    languages: list[str]
    query_texts: list[str]
    query_ids: list[str]
    query_lang: np.ndarray  # (nq,) int: index into languages
    candidate_texts: list[str]
    candidate_ids: list[str]
    offsets: np.ndarray  # (L+1,) int
    relevant: np.ndarray  # (nq, R) int, -1 padded

    @classmethod
    def from_benchmark(cls, bench: Benchmark) -> Task:
        langs = bench.languages
        offsets = [0]
        cand_texts: list[str] = []
        cand_ids: list[str] = []
        for lang in langs:
            d = bench.data[lang]
            cand_texts += d.candidates
            cand_ids += [f"{lang}:{c}" for c in d.candidate_ids]
            offsets.append(len(cand_texts))
        # question id -> pool indices of its relevant sentences, over all languages
        answers: dict[str, list[int]] = {}
        for li, lang in enumerate(langs):
            d = bench.data[lang]
            for qid, rel in zip(d.question_ids, d.relevant, strict=True):
                answers.setdefault(qid, []).extend(offsets[li] + r for r in rel)
        q_texts: list[str] = []
        q_ids: list[str] = []
        q_lang: list[int] = []
        rel_lists: list[list[int]] = []
        for li, lang in enumerate(langs):
            d = bench.data[lang]
            q_texts += d.questions
            q_ids += [f"{lang}:{q}" for q in d.question_ids]
            q_lang += [li] * len(d.questions)
            rel_lists += [sorted(answers[q]) for q in d.question_ids]
        width = max((len(r) for r in rel_lists), default=0)
        relevant = np.full((len(rel_lists), max(width, 1)), -1, dtype=np.int64)
        for i, rel in enumerate(rel_lists):
            relevant[i, : len(rel)] = rel
        return cls(langs, q_texts, q_ids, np.asarray(q_lang, dtype=np.int64), cand_texts, cand_ids,
                   np.asarray(offsets, dtype=np.int64), relevant)

    @property
    def num_queries(self) -> int:
        return len(self.query_texts)

    @property
    def num_candidates(self) -> int:
        return len(self.candidate_texts)


def sentence_of(breaks: list[tuple[int, int]], position: int) -> tuple[int, str]:
    """Index of the break holding character ``position``, and how it was found.

    ``how`` is "inside", or "gap" when the position falls between two breaks (whitespace the
    breaks leave out): the answer then belongs to the sentence that starts after it. -1 when
    the position is after the last break.
    """
    starts = [b[0] for b in breaks]
    i = bisect_right(starts, position) - 1
    if i >= 0 and position < breaks[i][1]:
        return i, "inside"
    if i + 1 < len(breaks):
        return i + 1, "gap"
    return -1, "outside"


def _breaks(paragraph: dict[str, Any], context: str, where: str,
            source: str) -> tuple[list[tuple[int, int]], list[str]]:
    raw = paragraph.get("sentence_breaks")
    if not isinstance(raw, list) or not raw:
        raise InputError(source, where, "no 'sentence_breaks'",
                         "not the LAReQA format (make one with `mtqa evaluate build-lareqa`)")
    breaks: list[tuple[int, int]] = []
    prev_end = 0
    for n, b in enumerate(raw):
        if (not isinstance(b, (list, tuple)) or len(b) != 2
                or not all(isinstance(x, int) and not isinstance(x, bool) for x in b)):
            raise InputError(source, f"{where}.sentence_breaks[{n}]", "not an [start, end] pair of integers")
        start, end = b
        if not (prev_end <= start < end <= len(context)):
            raise InputError(source, f"{where}.sentence_breaks[{n}]", "break out of order or outside the context",
                             f"[{start}, {end}] after end {prev_end}, context length {len(context)}")
        breaks.append((start, end))
        prev_end = end
    sentences = paragraph.get("sentences")
    if sentences is None:
        sentences = [context[s:e] for s, e in breaks]
    elif not isinstance(sentences, list) or not all(isinstance(s, str) for s in sentences):
        raise InputError(source, f"{where}.sentences", "should be a list of strings")
    elif len(sentences) != len(breaks):
        raise InputError(source, f"{where}.sentences", "not as many sentences as sentence_breaks",
                         f"{len(sentences)} vs {len(breaks)}")
    return breaks, sentences


def load_language(path: str | Path, lang: str) -> LanguageData:
    """Read one LAReQA-format file (SQuAD JSON with sentence breaks; gzip transparent)."""
    path = Path(path)
    source = str(path)
    doc = load_json(path)
    if not isinstance(doc, dict) or not isinstance(doc.get("data"), list):
        raise InputError(source, "top level", "not SQuAD JSON", "expected an object with a 'data' list")
    out = LanguageData(lang=lang, source=source)
    seen: dict[str, str] = {}
    for a, article in enumerate(doc["data"]):
        if not isinstance(article, dict) or not isinstance(article.get("paragraphs"), list):
            raise InputError(source, f"data[{a}]", "article without a 'paragraphs' list")
        for p, paragraph in enumerate(article["paragraphs"]):
            where = f"data[{a}].paragraphs[{p}]"
            if not isinstance(paragraph, dict) or not isinstance(paragraph.get("context"), str):
                raise InputError(source, where, "paragraph without a 'context' string")
            context = paragraph["context"]
            breaks, sentences = _breaks(paragraph, context, where, source)
            first = len(out.candidates)
            for s, sentence in enumerate(sentences):
                out.candidates.append(sentence)
                out.candidate_ids.append(f"a{a}.p{p}.s{s}")
                if sentence != context[breaks[s][0]:breaks[s][1]]:
                    out.stats["sentence_differs_from_break"] += 1
            out.stats["paragraphs"] += 1
            qas = paragraph.get("qas", [])
            if not isinstance(qas, list):
                raise InputError(source, where, "'qas' should be a list")
            for q, qa in enumerate(qas):
                loc = f"{where}.qas[{q}]"
                if not isinstance(qa, dict) or not isinstance(qa.get("id"), (str, int)) or not isinstance(
                        qa.get("question"), str):
                    raise InputError(source, loc, "question needs an 'id' and a 'question' string")
                qid = str(qa["id"])
                if qid in seen:
                    raise InputError(source, loc, "duplicate question id", f"{qid!r} already at {seen[qid]}")
                seen[qid] = loc
                rel: set[int] = set()
                answers = qa.get("answers") or []
                for n, answer in enumerate(answers):
                    start = answer.get("answer_start") if isinstance(answer, dict) else None
                    if not isinstance(start, int) or isinstance(start, bool):
                        raise InputError(source, f"{loc}.answers[{n}]", "no integer 'answer_start'")
                    if not 0 <= start < len(context):
                        out.stats["answer_outside_context"] += 1
                        continue
                    idx, how = sentence_of(breaks, start)
                    if idx < 0:
                        out.stats["answer_outside_breaks"] += 1
                        continue
                    if how == "gap":
                        out.stats["answer_in_gap"] += 1
                    rel.add(first + idx)
                if not rel:
                    out.stats["skipped_no_answer_sentence" if answers else "skipped_no_answers"] += 1
                    continue
                if not qa["question"].strip():
                    out.stats["skipped_empty_question"] += 1
                    continue
                out.question_ids.append(qid)
                out.questions.append(qa["question"].strip())
                out.relevant.append(sorted(rel))
                if len(rel) > 1:
                    out.stats["questions_with_several_answer_sentences"] += 1
    out.stats["questions"] = len(out.questions)
    out.stats["candidates"] = len(out.candidates)
    if not out.candidates:
        raise InputError(source, "data", "no candidate sentences")
    return out


def language_files(directory: str | Path) -> dict[str, Path]:
    """``{lang: path}`` for the ``<lang>.json[.gz]`` files of a LAReQA-format directory."""
    directory = Path(directory)
    if not directory.is_dir():
        raise MtqaError(f"{directory}: not a directory of LAReQA-format <lang>.json files")
    files: dict[str, Path] = {}
    for path in sorted(directory.iterdir()):
        m = _FILE.match(path.name)
        if m and path.is_file():
            lang = m.group("lang")
            if lang in files:
                raise MtqaError(f"{directory}: two files for language {lang!r}: {files[lang].name}, {path.name}")
            files[lang] = path
    if not files:
        raise MtqaError(f"{directory}: no <lang>.json files (expected e.g. en.json, de.json)")
    return files


def load_benchmark(directory: str | Path, languages: list[str] | None = None, name: str | None = None) -> Benchmark:
    """Load a LAReQA-format directory (all its languages, or the chosen ones, in that order)."""
    files = language_files(directory)
    if languages:
        missing = [lang for lang in languages if lang not in files]
        if missing:
            raise MtqaError(f"{directory}: no file for language(s) {', '.join(missing)} "
                            f"(found: {', '.join(files)})")
        chosen = list(languages)
    else:
        chosen = list(files)
    data = {lang: load_language(files[lang], lang) for lang in chosen}
    if not any(d.questions for d in data.values()):
        raise MtqaError(f"{directory}: no question has an answer sentence in any of {', '.join(chosen)}")
    return Benchmark(name or Path(directory).name, chosen, data)
