"""WikiQA TSV (QuestionID, Question, DocumentID, DocumentTitle, SentenceID, Sentence, Label)."""

from __future__ import annotations

from collections.abc import Iterator

from mt_qa.collect.base import BadRecord, Example, Item, Reader, Skipped
from mt_qa.errors import InputError
from mt_qa.io import iter_lines

COLUMNS = ["QuestionID", "Question", "DocumentID", "DocumentTitle", "SentenceID", "Sentence", "Label"]


class WikiQAReader(Reader):
    """One example per question; the passage is its candidate sentences joined in order.

    WikiQA is already sentence-split, so those sentences are kept as ``passage_sentences`` and
    the first correct one is the answer sentence. Questions with no correct sentence are
    skipped and counted (the usual 'filtered' WikiQA setting).
    """

    name = "wikiqa"
    dataset = "wikiqa"

    def read(self) -> Iterator[Item]:
        header: list[str] | None = None
        current: list[tuple[str, list[str]]] = []
        for lineno, text, error in iter_lines(self.path):
            location = f"line {lineno}"
            if text is None:
                yield BadRecord(location, "encoding", error)
                continue
            cols = text.rstrip("\r\n").split("\t")
            if header is None:
                header = cols
                missing = [c for c in COLUMNS if c not in header]
                if missing:
                    raise InputError(str(self.path), "line 1", "not a WikiQA TSV header", f"missing {missing}")
                continue
            if len(cols) != len(header):
                yield BadRecord(
                    location, "bad_columns", f"expected {len(header)} columns, got {len(cols)}", payload=text
                )
                continue
            row = dict(zip(header, cols, strict=True))
            if current and current[0][1][0] != row["QuestionID"]:
                yield self._question(current)
                current = []
            current.append((location, [row[c] for c in COLUMNS]))
        if current:
            yield self._question(current)

    def _question(self, rows: list[tuple[str, list[str]]]) -> Item:
        location = f"{rows[0][0]}-{rows[-1][0].split()[-1]}"
        qid, question, _, title = rows[0][1][:4]
        sentences = [r[1][5] for r in rows]
        labels = [r[1][6] for r in rows]
        if any(label not in ("0", "1") for label in labels):
            return BadRecord(location, "wrong_type", "Label must be 0 or 1", payload=rows[0][1], source_id=qid)
        if not question.strip():
            return BadRecord(location, "empty_question", "'Question' is empty", source_id=qid)
        if "1" not in labels:
            return Skipped(location, "no_answer")
        # Joined with single spaces; each sentence keeps its separator so they concatenate back.
        pieces = [s + " " for s in sentences[:-1]] + sentences[-1:]
        passage = "".join(pieces)
        starts, pos = [], 0
        for piece in pieces:
            starts.append(pos)
            pos += len(piece)
        answers = [s for s, label in zip(sentences, labels, strict=True) if label == "1"]
        answer_starts = [starts[i] for i, label in enumerate(labels) if label == "1"]
        return Example(
            qid, question, passage, location, title.replace("_", " "), answers, answer_starts, passage_sentences=pieces
        )
