"""SQuAD v1.1 / v2.0 JSON (plain or gzip); the format most translated QA datasets use too."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from mt_qa.collect.base import BadRecord, Example, Item, Reader, Skipped, offset_problem, require_str
from mt_qa.errors import InputError
from mt_qa.io import load_json


class SquadReader(Reader):
    """One example per question; the paragraph is its passage, the article title its title.

    SQuAD v2 unanswerable questions (``is_impossible``) have no passage evidence to train a
    retriever on, so they are skipped and counted.
    """

    name = "squad"
    dataset = "squad"

    def read(self) -> Iterator[Item]:
        doc = load_json(self.path)
        if not isinstance(doc, dict) or not isinstance(doc.get("data"), list):
            raise InputError(str(self.path), "top level", "not SQuAD JSON", "expected an object with a 'data' list")
        for a, article in enumerate(doc["data"]):
            where = f"data[{a}]"
            if not isinstance(article, dict) or not isinstance(article.get("paragraphs"), list):
                yield BadRecord(where, "missing_field", "article without a 'paragraphs' list", payload=article)
                continue
            title = article.get("title") if isinstance(article.get("title"), str) else ""
            for p, paragraph in enumerate(article["paragraphs"]):
                yield from self._paragraph(paragraph, f"{where}.paragraphs[{p}]", title)

    def _paragraph(self, paragraph: Any, where: str, title: str) -> Iterator[Item]:
        context = require_str(paragraph, "context", where, allow_empty=True)
        if isinstance(context, BadRecord):
            yield context
            return
        qas = paragraph.get("qas")
        if not isinstance(qas, list):
            yield BadRecord(where, "missing_field", "paragraph without a 'qas' list", payload=paragraph)
            return
        for q, qa in enumerate(qas):
            location = f"{where}.qas[{q}]"
            item = self._question(qa, location, context, title)
            yield item

    def _question(self, qa: Any, location: str, context: str, title: str) -> Item:
        qid = require_str(qa, "id", location)
        if isinstance(qid, BadRecord):
            return qid
        question = require_str(qa, "question", location)
        if isinstance(question, BadRecord):
            question.source_id = qid
            return question
        if not context.strip():
            return BadRecord(location, "empty_passage", "the paragraph's 'context' is empty", payload=qa, source_id=qid)
        if qa.get("is_impossible"):
            return Skipped(location, "unanswerable")
        answers_raw = qa.get("answers", [])
        if not isinstance(answers_raw, list):
            return BadRecord(location, "wrong_type", "'answers' should be a list", payload=qa, source_id=qid)
        answers, starts = [], []
        for n, answer in enumerate(answers_raw):
            text = answer.get("text") if isinstance(answer, dict) else None
            start = answer.get("answer_start") if isinstance(answer, dict) else None
            if not isinstance(text, str) or not isinstance(start, int) or isinstance(start, bool):
                return BadRecord(
                    location,
                    "wrong_type",
                    f"answers[{n}] needs a string 'text' and an integer 'answer_start'",
                    payload=qa,
                    source_id=qid,
                )
            problem = offset_problem([start])
            if problem:
                return BadRecord(location, "wrong_type", f"answers[{n}].{problem}", payload=qa, source_id=qid)
            answers.append(text)
            starts.append(start)
        return Example(qid, question, context, location, title, answers, starts)
