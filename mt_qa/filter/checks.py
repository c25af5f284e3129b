"""The per-row filters: small step classes, each with one job, a name and its own timing.

A check looks at one row (and, for translation checks, the English source row of its group)
and returns a ``Rejection`` or None. Checks run cheapest first and a row stops at the first
one it fails, so the expensive language identification only sees rows that passed the rest.
Texts that repeat within a shard (passages: many questions per paragraph) are scored once.
"""

from __future__ import annotations

import time
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any, ClassVar

import pyarrow as pa

from mt_qa.filter import quality
from mt_qa.filter.dedup import DedupPlan
from mt_qa.filter.langid import LanguageDetector, langid_code
from mt_qa.filter.script import script_of, script_ratio

SOURCE = "source"


@dataclass(frozen=True)
class Rejection:
    reason: str  # a short, countable key
    score: float | None  # the check's score for the row, where it has one
    detail: str  # human-readable


@dataclass
class ShardRows:
    """One shard's rows as Python lists, with each row's group source row and shared caches."""

    ids: list[str]
    group_ids: list[str]
    langs: list[str]
    origins: list[str]
    questions: list[str]
    passages: list[str]
    mt_length_ratio: list[float | None]
    source_index: list[int | None] = field(default_factory=list)
    _tokens: dict[tuple[str, str], list[str]] = field(default_factory=dict)
    _grams: dict[tuple[str, str], set[tuple[str, ...]]] = field(default_factory=dict)

    COLUMNS: ClassVar[tuple[str, ...]] = ("id", "group_id", "lang", "origin", "question", "passage",
                                          "mt_length_ratio")

    @classmethod
    def from_table(cls, table: pa.Table) -> ShardRows:
        cols = {name: table.column(name).to_pylist() for name in cls.COLUMNS}
        rows = cls(cols["id"], cols["group_id"], cols["lang"], cols["origin"], cols["question"],
                   cols["passage"], cols["mt_length_ratio"])
        source_of: dict[str, int] = {}
        for i, (gid, origin) in enumerate(zip(rows.group_ids, rows.origins, strict=True)):
            if origin == SOURCE:
                source_of.setdefault(gid, i)
        rows.source_index = [
            None if origin == SOURCE else source_of.get(gid)
            for gid, origin in zip(rows.group_ids, rows.origins, strict=True)
        ]
        return rows

    def __len__(self) -> int:
        return len(self.ids)

    def tokens(self, text: str, lang: str) -> list[str]:
        key = (text, lang)
        toks = self._tokens.get(key)
        if toks is None:
            toks = self._tokens[key] = quality.tokens(text, lang)
        return toks

    def grams(self, text: str, lang: str) -> set[tuple[str, ...]]:
        key = (text, lang)
        found = self._grams.get(key)
        if found is None:
            found = self._grams[key] = quality.grams(self.tokens(text, lang))
        return found

    def fields(self, i: int) -> tuple[tuple[str, str], tuple[str, str]]:
        return ("question", self.questions[i]), ("passage", self.passages[i])


class Check(ABC):
    """One filter. ``name`` is what ``--skip`` takes; ``reasons`` what it writes to rejects."""

    name: ClassVar[str]
    reasons: ClassVar[tuple[str, ...]]

    def __init__(self) -> None:
        self.seconds = 0.0

    def begin_shard(self) -> None:  # noqa: B027 - a hook: most checks keep no cache
        """Drop per-shard caches (they bound memory to one shard's distinct texts)."""

    def run(self, rows: ShardRows, indices: list[int]) -> dict[int, Rejection]:
        """Check the given rows of a shard (those no earlier check rejected)."""
        started = time.perf_counter()
        check = self.check
        found = {}
        for i in indices:
            verdict = check(rows, i)
            if verdict is not None:
                found[i] = verdict
        self.seconds += time.perf_counter() - started
        return found

    def __call__(self, rows: ShardRows, i: int) -> Rejection | None:
        """Check one row (what ``run`` does for each)."""
        return self.run(rows, [i]).get(i)

    @abstractmethod
    def check(self, rows: ShardRows, i: int) -> Rejection | None: ...

    def params(self) -> dict[str, Any]:
        return {}


class EmptyCheck(Check):
    """Empty or whitespace-only question or passage: nothing to train or retrieve on."""

    name = "empty"
    reasons = ("empty_question", "empty_passage")

    def check(self, rows: ShardRows, i: int) -> Rejection | None:
        for fld, text in rows.fields(i):
            if quality.is_blank(text):
                return Rejection(f"empty_{fld}", None, f"the {fld} is empty or whitespace only")
        return None


class DuplicateCheck(Check):
    """Looks the row up in the dedup plan computed over the whole input."""

    name = "dedup"
    reasons = ("duplicate_exact", "duplicate_near")

    def __init__(self, plan: DedupPlan):
        super().__init__()
        self.plan = plan

    def check(self, rows: ShardRows, i: int) -> Rejection | None:
        dup = self.plan.drops.get(rows.ids[i])
        if dup is None:
            return None
        what = "question and passage equal (normalised) to" if dup.reason == "duplicate_exact" else \
            f"question {dup.score:.2f} similar to that of"
        return Rejection(dup.reason, dup.score, f"{what} {dup.of}, kept earlier")


class _SourceCheck(Check):
    """A check comparing a translated (or imported) row with its group's source row."""

    def source(self, rows: ShardRows, i: int) -> int | None:
        j = rows.source_index[i]
        if j is None or rows.langs[j] == rows.langs[i]:
            return None
        return j


class CopyCheck(_SourceCheck):
    """Output copied from the source: untranslated text that language ID might miss on names."""

    name = "copy"
    reasons = ("copied_source",)

    def __init__(self, max_copy: float):
        super().__init__()
        self.max_copy = max_copy

    def check(self, rows: ShardRows, i: int) -> Rejection | None:
        j = self.source(rows, i)
        if j is None:
            return None
        lang, src_lang = rows.langs[i], rows.langs[j]
        for (fld, text), (_, src) in zip(rows.fields(i), rows.fields(j), strict=True):
            score = quality.copy_overlap(rows.grams(text, lang), rows.grams(src, src_lang))
            if score > self.max_copy:
                return Rejection("copied_source", round(score, 4),
                                 f"{score:.0%} of the {fld}'s word pairs are copied from the {src_lang} source")
        return None

    def params(self) -> dict[str, Any]:
        return {"max_copy": self.max_copy}


class LengthRatioCheck(_SourceCheck):
    """Translation much shorter (truncated, dropped sentences) or longer (hallucinated) than expected."""

    name = "length"
    reasons = ("length_ratio",)

    def __init__(self, min_ratio: float, max_ratio: float):
        super().__init__()
        self.min_ratio = min_ratio
        self.max_ratio = max_ratio

    def check(self, rows: ShardRows, i: int) -> Rejection | None:
        lang = rows.langs[i]
        j = self.source(rows, i)
        if j is None:
            # No source row here: fall back on the ratio translate recorded (source chars -> target chars).
            raw = rows.mt_length_ratio[i]
            if raw is None or rows.origins[i] == SOURCE:
                return None
            return self._judge(raw / quality.expected_ratio(lang), "text", lang)
        for (fld, text), (_, src) in zip(rows.fields(i), rows.fields(j), strict=True):
            if not src.strip():
                continue
            found = self._judge(quality.length_ratio(text, src, lang, rows.langs[j]), fld, lang)
            if found:
                return found
        return None

    def _judge(self, ratio: float, fld: str, lang: str) -> Rejection | None:
        if self.min_ratio <= ratio <= self.max_ratio:
            return None
        side = "short" if ratio < self.min_ratio else "long"
        return Rejection("length_ratio", round(ratio, 4),
                         f"the {fld} is too {side}: {ratio:.2f}x the length expected for {lang} "
                         f"(allowed {self.min_ratio}-{self.max_ratio})")

    def params(self) -> dict[str, Any]:
        return {"min_length_ratio": self.min_ratio, "max_length_ratio": self.max_ratio}


class RepetitionCheck(Check):
    """Hallucination loops ('la la la la') and heavily repeated phrases."""

    name = "repetition"
    reasons = ("repetition_loop", "repetition")

    def __init__(self, max_repetition: float, max_loop: int):
        super().__init__()
        self.max_repetition = max_repetition
        self.max_loop = max_loop
        self._cache: dict[tuple[str, str], tuple[int, float]] = {}

    def begin_shard(self) -> None:
        self._cache.clear()

    def scores(self, rows: ShardRows, text: str, lang: str) -> tuple[int, float]:
        key = (text, lang)
        found = self._cache.get(key)
        if found is None:
            toks = rows.tokens(text, lang)
            # Back-to-back copies repeat a token pair: without one, there is no loop to measure.
            looped = len(rows.grams(text, lang)) < len(toks) - 1
            loop = quality.max_loop(toks) if looped else 1
            found = self._cache[key] = (loop, quality.repetition(toks, quality.ngram_size(lang)))
        return found

    def check(self, rows: ShardRows, i: int) -> Rejection | None:
        lang = rows.langs[i]
        for fld, text in rows.fields(i):
            loop, rep = self.scores(rows, text, lang)
            if loop > self.max_loop:
                return Rejection("repetition_loop", float(loop),
                                 f"the {fld} repeats one phrase {loop} times in a row (allowed {self.max_loop})")
            if rep > self.max_repetition:
                return Rejection("repetition", round(rep, 4),
                                 f"{rep:.0%} of the {fld}'s n-grams are repeats (allowed {self.max_repetition:.0%})")
        return None

    def params(self) -> dict[str, Any]:
        return {"max_repetition": self.max_repetition, "max_loop": self.max_loop}


class ScriptCheck(Check):
    """Text mostly outside its language's Unicode script (or with no letters at all)."""

    name = "script"
    reasons = ("script_mismatch",)

    def __init__(self, min_ratio: float):
        super().__init__()
        self.min_ratio = min_ratio
        self._cache: dict[tuple[str, str], float | None] = {}

    def begin_shard(self) -> None:
        self._cache.clear()

    def check(self, rows: ShardRows, i: int) -> Rejection | None:
        script = script_of(rows.langs[i])
        if script is None:
            return None
        for fld, text in rows.fields(i):
            key = (text, script)
            if key in self._cache:
                ratio = self._cache[key]
            else:
                ratio = self._cache[key] = script_ratio(text, script)
            if ratio is None:
                return Rejection("script_mismatch", 0.0, f"the {fld} has no letters")
            if ratio < self.min_ratio:
                return Rejection("script_mismatch", round(ratio, 4),
                                 f"only {ratio:.0%} of the {fld}'s letters are {script} script "
                                 f"(need {self.min_ratio:.0%} for {rows.langs[i]})")
        return None

    def params(self) -> dict[str, Any]:
        return {"min_script_ratio": self.min_ratio}


class LangIdCheck(Check):
    """The detector's probability of the row's own language, for passage and question.

    Short questions carry little evidence, so they need only ``min_confidence_short``: the
    passage of the same row has passed at ``min_confidence`` just before, the script check
    has passed, and the copy check has ruled out an untranslated question.
    """

    name = "langid"
    reasons = ("langid_passage", "langid_question")

    def __init__(self, detector: LanguageDetector, min_confidence: float, min_confidence_short: float,
                 short_question_chars: int):
        super().__init__()
        self.detector = detector
        self.min_confidence = min_confidence
        self.min_confidence_short = min_confidence_short
        self.short_question_chars = short_question_chars
        self._passages: dict[str, dict[str, float]] = {}
        self.short_questions: dict[str, int] = {}

    def begin_shard(self) -> None:
        self._passages.clear()
        self.short_questions = {}

    def check(self, rows: ShardRows, i: int) -> Rejection | None:
        lang, passage, question = langid_code(rows.langs[i]), rows.passages[i], rows.questions[i]
        scores = self._passages.get(passage)
        if scores is None:
            scores = self._passages[passage] = self.detector.scores(passage)
        found = self._judge(scores, lang, self.min_confidence, "passage")
        if found:
            return found
        threshold = self.min_confidence
        if len(question.strip()) < self.short_question_chars:
            threshold = self.min_confidence_short
            self.short_questions[rows.langs[i]] = self.short_questions.get(rows.langs[i], 0) + 1
        return self._judge(self.detector.scores(question), lang, threshold, "question")

    @staticmethod
    def _judge(scores: dict[str, float], lang: str, threshold: float, fld: str) -> Rejection | None:
        """Pass when the row's language is the detector's first choice or scores ``threshold``.

        Rejecting needs positive evidence of another language: detectors are unsure on
        short or name-heavy texts (py3langid's probabilities especially), and an unsure
        first choice of the right language is not a wrong language.
        """
        p = scores.get(lang, 0.0)
        if p >= threshold:
            return None
        top = max(sorted(scores), key=scores.__getitem__) if scores else None
        if top == lang:
            return None
        seen = f"{top} ({scores[top]:.2f})" if top else "no language"
        return Rejection(f"langid_{fld}", round(p, 4),
                         f"the {fld} reads as {seen}; {lang} scores {p:.2f} (need {threshold} or first place)")

    def params(self) -> dict[str, Any]:
        return {"detector": self.detector.describe(), "min_confidence": self.min_confidence,
                "min_confidence_short": self.min_confidence_short,
                "short_question_chars": self.short_question_chars}


# Every check in the order it runs (cheapest first); `--skip` takes these names.
# "semantic" (mt_qa/filter/semantic.py) runs only with --semantic-model.
CHECK_ORDER: tuple[str, ...] = ("empty", "dedup", "copy", "length", "repetition", "script", "langid", "semantic")
