"""Text signals of a bad translation: length ratio, repetition loops, copied source, emptiness.

All are computed from the text itself, so collected, imported and machine-translated rows are
judged the same way whatever produced them. Words are ``\\w+`` runs; text in a script written
without spaces (Chinese, Japanese, Thai) is tokenised by character instead.
"""

from __future__ import annotations

import re
import unicodedata
from functools import cache, lru_cache
from itertools import islice

from mt_qa.filter.script import UNSPACED_SCRIPTS, script_of

_WORD = re.compile(r"\w+")
_CHAR = re.compile(r"\w")
_SPACES = re.compile(r"\s+")

# Characters of a language per English character, the median over LASER's Tatoeba test
# pairs (../shared/data/tatoeba; docs/filter.md). Languages not measured use the value of
# their script's nearest measured language, else 1.0.
EXPECTED_CHAR_RATIO: dict[str, float] = {
    "en": 1.0, "ar": 0.82, "zh": 0.32, "de": 1.16, "el": 1.10, "hi": 1.00, "it": 1.08, "pt": 1.06,
    "ru": 0.97, "es": 1.04, "th": 0.84, "tr": 1.00, "vi": 1.03,
}
_SCRIPT_FALLBACK = {"Hans": 0.32, "Hant": 0.32, "Jpan": 0.32, "Arab": 0.82, "Cyrl": 0.97, "Thai": 0.84}
# Added to both lengths: a 12-character question translated into 25 characters is not suspicious.
LENGTH_SMOOTHING = 20


@cache
def _punctuation_table() -> dict[int, str]:
    """Every Unicode punctuation character (category P*) -> space; none lies above U+1FFFF."""
    return {c: " " for c in range(0x20000) if unicodedata.category(chr(c))[0] == "P"}


def normalize_text(text: str) -> str:
    """Case-, width-, whitespace- and punctuation-insensitive form used for copy and dedup keys."""
    return " ".join(unicodedata.normalize("NFKC", text).casefold().translate(_punctuation_table()).split())


def is_blank(text: str | None) -> bool:
    return text is None or not text.strip()


@cache
def unspaced(lang: str) -> bool:
    return script_of(lang) in UNSPACED_SCRIPTS


def tokens(text: str, lang: str) -> list[str]:
    """Words, or characters for languages written without spaces; casefolded."""
    text = text.casefold()
    return _CHAR.findall(text) if unspaced(lang) else _WORD.findall(text)


def ngram_size(lang: str) -> int:
    """n for repetition n-grams: 3 words, or 6 characters (about 3 words) without spaces."""
    return 6 if unspaced(lang) else 3


def repetition(toks: list[str], n: int = 3) -> float:
    """Share of the text's n-grams that repeat an earlier one (0: none; loops approach 1)."""
    total = len(toks) - n + 1
    if total < 2:
        return 0.0
    seen = {tuple(toks[i : i + n]) for i in range(total)}
    return 1.0 - len(seen) / total


def max_loop(toks: list[str], max_unit: int = 4) -> int:
    """Most back-to-back copies of one unit of 1..max_unit tokens ('la la la la' -> 4)."""
    best = 1
    size = len(toks)
    for unit in range(1, max_unit + 1):
        run = 0
        for i in range(size - unit):
            if toks[i] == toks[i + unit]:
                run += 1
                copies = run // unit + 1
                if copies > best:
                    best = copies
            else:
                run = 0
    return best


def grams(toks: list[str]) -> set[tuple[str, ...]]:
    """Token bigrams (unigrams for a one-token text)."""
    if len(toks) < 2:
        return {tuple(toks)} if toks else set()
    return set(zip(toks, islice(toks, 1, None), strict=False))


def copy_overlap(translation: set[tuple[str, ...]], source: set[tuple[str, ...]]) -> float:
    """Share of the translation's token bigrams (see ``grams``) found in the source's (1.0: a copy)."""
    if not translation:
        return 0.0
    return len(translation & source) / len(translation)


@lru_cache(maxsize=256)
def expected_ratio(lang: str, source_lang: str = "en") -> float:
    """Typical characters of ``lang`` per character of ``source_lang``."""

    def per_english(code: str) -> float:
        if code in EXPECTED_CHAR_RATIO:
            return EXPECTED_CHAR_RATIO[code]
        return _SCRIPT_FALLBACK.get(script_of(code) or "", 1.0)

    return per_english(lang) / per_english(source_lang)


def length_ratio(translation: str, source: str, lang: str, source_lang: str = "en") -> float:
    """Translation/source character ratio, smoothed, divided by the language pair's typical ratio."""
    raw = (len(translation.strip()) + LENGTH_SMOOTHING) / (len(source.strip()) + LENGTH_SMOOTHING)
    return raw / expected_ratio(lang, source_lang)
