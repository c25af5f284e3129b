"""Natural Questions: the simplified JSONL release, and NQ-open (question/answers only)."""

from __future__ import annotations

import re
from collections.abc import Iterator

from mt_qa.collect.base import BadRecord, Example, Item, Reader, Skipped, iter_json_lines, require_str

_HTML_TOKEN = re.compile(r"^<[^>]+>$")


def _clean_span(tokens: list[str], start: int, end: int) -> str:
    """Document tokens [start, end) as text, without NQ's HTML markup tokens (<P>, <Td>, ...)."""
    return " ".join(t for t in tokens[start:end] if not _HTML_TOKEN.match(t))


class NaturalQuestionsReader(Reader):
    """Simplified NQ (``document_text`` + token-offset annotations).

    The passage is the first annotation's long answer with HTML tokens removed; short answers
    become ``answers`` with offsets into that passage. Examples without a long answer (about
    half of NQ) have no passage to retrieve and are skipped and counted.
    """

    name = "nq"
    dataset = "nq"

    def read(self) -> Iterator[Item]:
        for location, obj in iter_json_lines(self.path):
            if isinstance(obj, BadRecord):
                yield obj
                continue
            yield self._example(obj, location)

    def _example(self, obj: dict, location: str) -> Item:
        example_id = require_str(obj, "example_id", location)
        if isinstance(example_id, BadRecord):
            return example_id
        question = require_str(obj, "question_text", location)
        document = require_str(obj, "document_text", location)
        for value in (question, document):
            if isinstance(value, BadRecord):
                value.source_id = example_id
                return value
        annotations = obj.get("annotations")
        if not isinstance(annotations, list) or not annotations:
            return BadRecord(location, "missing_field", "no 'annotations' list", payload=obj, source_id=example_id)
        tokens = document.split(" ")
        annotation = annotations[0]
        try:
            long_answer = annotation["long_answer"]
            start, end = int(long_answer["start_token"]), int(long_answer["end_token"])
        except (KeyError, TypeError, ValueError):
            return BadRecord(
                location,
                "missing_field",
                "annotation without long_answer start/end tokens",
                payload=annotation,
                source_id=example_id,
            )
        if start < 0 or end <= start:
            return Skipped(location, "no_long_answer")
        if end > len(tokens):
            return BadRecord(
                location,
                "bad_offsets",
                f"long answer ends at token {end} of {len(tokens)}",
                payload=annotation,
                source_id=example_id,
            )
        passage = _clean_span(tokens, start, end)
        answers, starts = [], []
        for short in annotation.get("short_answers") or []:
            try:
                s, e = int(short["start_token"]), int(short["end_token"])
            except (KeyError, TypeError, ValueError):
                continue
            text = _clean_span(tokens, s, e)
            if text:
                answers.append(text)
                starts.append(passage.find(text))
        title = obj.get("document_title") or _title_from_url(obj.get("document_url", ""))
        return Example(example_id, question, passage, location, title, answers, starts)


def _title_from_url(url: str) -> str:
    match = re.search(r"[?&]title=([^&]+)", url or "")
    return match.group(1).replace("_", " ") if match else ""


class NQOpenReader(Reader):
    """NQ-open JSONL: ``{"question": ..., "answer": [...]}`` with no passage (question only)."""

    name = "nq-open"
    dataset = "nq_open"
    needs_passage = False

    def read(self) -> Iterator[Item]:
        for location, obj in iter_json_lines(self.path):
            if isinstance(obj, BadRecord):
                yield obj
                continue
            question = require_str(obj, "question", location)
            if isinstance(question, BadRecord):
                yield question
                continue
            answers = obj.get("answer", obj.get("answers", []))
            if isinstance(answers, str):
                answers = [answers]
            if not isinstance(answers, list) or not all(isinstance(a, str) for a in answers):
                yield BadRecord(location, "wrong_type", "'answer' should be a list of strings", payload=obj)
                continue
            # NQ-open has no ids: the line number is stable for a given file.
            source_id = str(obj.get("id", location.split()[-1]))
            yield Example(source_id, question, "", location, "", answers, [-1] * len(answers))
