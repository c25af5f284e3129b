"""TriviaQA reading-comprehension JSON (qa/<domain>-<split>.json + evidence/ documents)."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

from mt_qa.collect.base import BadRecord, Example, Item, Reader, Skipped, require_str
from mt_qa.errors import InputError
from mt_qa.io import load_json, read_text


class TriviaQAReader(Reader):
    """One example per question, with the first evidence paragraph that contains an answer.

    TriviaQA is distantly supervised: its evidence documents are whole Wikipedia pages or web
    pages. We cut them into paragraphs (blank-line or newline separated) and take the first one
    holding an answer alias; questions whose evidence never mentions an answer are skipped and
    counted. ``--evidence-dir`` defaults to the release layout (``../evidence`` beside qa/).
    """

    name = "triviaqa"
    dataset = "triviaqa"

    def evidence_dir(self) -> Path:
        given = self.options.get("evidence_dir")
        return Path(given) if given else self.path.parent.parent / "evidence"

    def read(self) -> Iterator[Item]:
        doc = load_json(self.path)
        if not isinstance(doc, dict) or not isinstance(doc.get("Data"), list):
            raise InputError(str(self.path), "top level", "not TriviaQA JSON", "expected an object with a 'Data' list")
        evidence = self.evidence_dir()
        if not evidence.is_dir():
            raise InputError(
                str(self.path),
                "evidence",
                f"evidence directory {evidence} not found",
                "pass --evidence-dir DIR (the release's evidence/ folder)",
            )
        for n, item in enumerate(doc["Data"]):
            yield self._example(item, f"Data[{n}]", evidence)

    def _example(self, item: dict, location: str, evidence: Path) -> Item:
        qid = require_str(item, "QuestionId", location)
        if isinstance(qid, BadRecord):
            return qid
        question = require_str(item, "Question", location)
        if isinstance(question, BadRecord):
            question.source_id = qid
            return question
        answer = item.get("Answer")
        if not isinstance(answer, dict) or not isinstance(answer.get("Value"), str):
            return BadRecord(location, "missing_field", "no Answer.Value", payload=item, source_id=qid)
        aliases = [answer["Value"]] + [a for a in answer.get("Aliases") or [] if isinstance(a, str)]
        patterns = [re.compile(r"(?<!\w)" + re.escape(a) + r"(?!\w)", re.IGNORECASE) for a in aliases if a.strip()]
        docs = []
        for key, folder in (("EntityPages", "wikipedia"), ("SearchResults", "web")):
            for page in item.get(key) or []:
                if isinstance(page, dict) and isinstance(page.get("Filename"), str):
                    docs.append((evidence / folder / page["Filename"], page.get("Title") or ""))
        for path, title in docs:
            if not path.is_file():
                return BadRecord(
                    location, "missing_evidence", f"evidence file {path} not found", payload=item, source_id=qid
                )
            for paragraph in re.split(r"\n\s*\n|\n", read_text(path)):
                for pattern in patterns:
                    match = pattern.search(paragraph)
                    if match and paragraph.strip():
                        return Example(
                            qid,
                            question,
                            paragraph.strip(),
                            location,
                            title,
                            [match.group(0)],
                            [paragraph.strip().find(match.group(0))],
                        )
        return Skipped(location, "answer_not_in_evidence")
