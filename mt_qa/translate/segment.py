"""Segmentation for translation: what is sent to NLLB, and how the pieces go back together.

NLLB was trained on single sentences (at most 512 tokens) and drops or loops on long inputs,
so a passage is translated sentence by sentence (its ``passage_sentences``) and a question as
one segment. A segment over the input limit is split, never truncated: first at sentence
boundaries (blingfire, as in ``mt_qa.sentences``), then after clause punctuation, then between
words, and only as a last resort inside a word. Pieces are cut at whitespace wherever possible,
so their SentencePiece token counts add up exactly.

Reassembly: the translated pieces of one source sentence are joined with the target's
separator, and so are the translated sentences of a passage; each sentence but the last keeps
that separator at its end, so ``passage_sentences`` concatenate exactly to ``passage`` as they
do for collected rows. The separator is a space, or nothing for scripts written without spaces
between sentences (Chinese, Japanese); a source sentence that ended a line keeps its newline.
Thai, Lao, Khmer, Burmese and Tibetan do not space words but do put a space between sentences,
so they get a space.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

from mt_qa.languages import Language
from mt_qa.sentences import split_sentences

NO_SPACE_SCRIPTS = frozenset({"Hans", "Hant", "Jpan"})
_CLAUSE_END = re.compile(r"(?<=[;:,،、，；：)\]])\s+|\s+(?=[-–—(])")


def separator(lang: Language) -> str:
    """What goes between two translated sentences (or pieces of one) in ``lang``."""
    return "" if lang.script in NO_SPACE_SCRIPTS else " "


def normalize(text: str) -> str:
    """Collapse whitespace: what is translated, hashed and cached (SentencePiece would do it anyway)."""
    return " ".join(text.split())


@dataclass(frozen=True)
class SourcePlan:
    """One source row cut into segments: the question's pieces and each sentence's pieces."""

    question: tuple[str, ...]
    sentences: tuple[tuple[str, ...], ...]
    line_breaks: tuple[bool, ...]  # did source sentence i end a line?
    split: int  # how many segments had to be split for length

    def pieces(self) -> list[str]:
        return [*self.question, *(piece for sentence in self.sentences for piece in sentence)]


def _pack(units: list[str], counts: list[int], max_tokens: int) -> list[str]:
    """Greedily join consecutive units (each within the limit) into pieces within the limit."""
    pieces: list[str] = []
    current: list[str] = []
    total = 0
    for unit, count in zip(units, counts, strict=True):
        if current and total + count > max_tokens:
            pieces.append(" ".join(current))
            current, total = [], 0
        current.append(unit)
        total += count
    if current:
        pieces.append(" ".join(current))
    return pieces


def _chars(text: str, count: Callable[[str], int], max_tokens: int) -> list[str]:
    """Last resort for a run without spaces (a URL, CJK text): halve until each half fits."""
    if count(text) <= max_tokens or len(text) < 2:
        return [text]
    mid = len(text) // 2
    return _chars(text[:mid], count, max_tokens) + _chars(text[mid:], count, max_tokens)


_LEVELS: tuple[Callable[[str], list[str]], ...] = (
    lambda text: [s.strip() for s in split_sentences(text) if s.strip()],
    lambda text: [p for p in _CLAUSE_END.split(text) if p],
    lambda text: text.split(),
)


def split_long(text: str, count: Callable[[str], int], max_tokens: int, level: int = 0) -> list[str]:
    """Cut ``text`` into pieces of at most ``max_tokens`` tokens (by ``count``), in order."""
    if count(text) <= max_tokens:
        return [text]
    if level >= len(_LEVELS):
        return _chars(text, count, max_tokens)
    units = _LEVELS[level](text)
    if len(units) <= 1:
        return split_long(text, count, max_tokens, level + 1)
    out: list[str] = []
    fitting: list[str] = []
    for unit in units:
        if count(unit) <= max_tokens:
            fitting.append(unit)
            continue
        if fitting:
            out += _pack(fitting, [count(u) for u in fitting], max_tokens)
            fitting = []
        out += split_long(unit, count, max_tokens, level + 1)
    if fitting:
        out += _pack(fitting, [count(u) for u in fitting], max_tokens)
    return out


def plan_row(question: str, sentences: list[str], count: Callable[[str], int], max_tokens: int) -> SourcePlan:
    """Segments of one source row: the question and each passage sentence, split only if too long."""
    split = 0

    def cut(text: str) -> tuple[str, ...]:
        nonlocal split
        text = normalize(text)
        if not text:
            return ()
        pieces = split_long(text, count, max_tokens)
        if len(pieces) > 1:
            split += 1
        return tuple(pieces)

    q = cut(question)
    sents = tuple(cut(s) for s in sentences)
    breaks = tuple("\n" in s[len(s.rstrip()):] for s in sentences)
    return SourcePlan(question=q, sentences=sents, line_breaks=breaks, split=split)


def reassemble(plan: SourcePlan, translated: dict[str, str], lang: Language) -> tuple[str, list[str]]:
    """(question, passage_sentences) in ``lang`` from the translations of the plan's pieces.

    Sentence i of the output is the translation of source sentence i, so
    ``answer_sentence_index`` stays valid; an empty source sentence stays empty.
    """
    sep = separator(lang)
    question = sep.join(translated[p] for p in plan.question).strip()
    sentences = [sep.join(translated[p] for p in pieces).strip() for pieces in plan.sentences]
    filled = [i for i, sentence in enumerate(sentences) if sentence]
    for i in filled[:-1]:  # a separator between two non-empty sentences, none at the end
        sentences[i] += "\n" if plan.line_breaks[i] else sep
    return question, sentences
