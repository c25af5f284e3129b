"""What the positive (and a hard negative) of a pair is: the whole paragraph, or its answer sentence.

LAReQA-style benchmarks rank *sentences*; training on (question, whole paragraph) pairs
teaches another task, and truncating a paragraph to the passage length can cut the answer
out. Every row knows its answer sentence (``passage_sentences[answer_sentence_index]``, kept
through translation; see :func:`mt_qa.batches.groups.answer_sentences` for imports), so the
positive can be:

- ``passage``: the whole paragraph (as in the data);
- ``sentence``: the answer sentence alone (what the benchmark's candidates are);
- ``sentence-in-context``: the answer sentence, a blank line, then its context
  (:data:`CONTEXT_TEMPLATE`): the ``context_sentences`` sentences before and after it, in
  paragraph order (0: all other sentences of the paragraph). The sentence comes first, so
  truncation to the passage length never cuts it.

Sentence hard negatives (``--negatives sentence``) are rendered the same way, so a negative
always has the positive's granularity.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pyarrow as pa

from mt_qa.errors import MtqaError

POSITIVES = ("passage", "sentence", "sentence-in-context")
MISSING_SENTENCE = ("reject", "passage")
CONTEXT_TEMPLATE = "{sentence}\n\n{context}"


@dataclass(frozen=True)
class PositiveFormat:
    """How a (row, sentence index) becomes the text of a positive or negative."""

    mode: str = "passage"
    context_sentences: int = 1
    missing: str = "reject"

    def __post_init__(self) -> None:
        if self.mode not in POSITIVES:
            raise MtqaError(f"--positive must be one of {POSITIVES}, not {self.mode!r}")
        if self.missing not in MISSING_SENTENCE:
            raise MtqaError(f"--missing-sentence must be one of {MISSING_SENTENCE}, not {self.missing!r}")
        if self.context_sentences < 0:
            raise MtqaError("--context-sentences must be >= 0 (0 = the whole paragraph as context)")

    @property
    def by_sentence(self) -> bool:
        return self.mode != "passage"

    def params(self) -> dict[str, object]:
        out: dict[str, object] = {"positive": self.mode}
        if self.by_sentence:
            out["missing_sentence"] = self.missing
        if self.mode == "sentence-in-context":
            out["context_sentences"] = self.context_sentences
            out["context_template"] = CONTEXT_TEMPLATE
        return out

    def render(self, table: pa.Table, rows: np.ndarray, sentences: np.ndarray) -> pa.Array:
        """Texts of ``rows`` (rows of ``table``); ``sentences[i] < 0`` (or mode passage) = the whole paragraph."""
        rows = np.asarray(rows, dtype=np.int64)
        if not self.by_sentence or len(rows) == 0:
            return table["passage"].take(pa.array(rows))
        passages = table["passage"].take(pa.array(rows)).to_pylist()
        split = table["passage_sentences"].take(pa.array(rows)).to_pylist()
        out = []
        for passage, pieces, s in zip(passages, split, np.asarray(sentences).tolist(), strict=True):
            out.append(passage if s < 0 else self.text(pieces, s))
        return pa.array(out, pa.string())

    def text(self, pieces: list[str], s: int) -> str:
        sentence = pieces[s].strip()
        if self.mode == "sentence":
            return sentence
        k = self.context_sentences or len(pieces)
        context = ("".join(pieces[max(0, s - k):s]) + "".join(pieces[s + 1:s + k + 1])).strip()
        return CONTEXT_TEMPLATE.format(sentence=sentence, context=context) if context else sentence
