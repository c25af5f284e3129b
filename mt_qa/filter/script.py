"""Unicode-script sanity check: is a text written mostly in its language's script?

The check is independent of any statistical detector and cannot be fooled by a short text:
a Russian question must be mostly Cyrillic, a Chinese one mostly Han, whatever a detector
thinks. Latin-script languages only learn that the text is Latin (es vs pt is the
detectors' job), which still catches a translation that came out in the wrong script.
"""

from __future__ import annotations

import re
from functools import cache

from mt_qa.languages import UnknownLanguageError, resolve

_HAN = "\u2e80-\u2fdf\u3005\u3007\u3021-\u3029\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\U00020000-\U0003134f"
_KANA = "\u3040-\u30ff\u31f0-\u31ff\uff66-\uff9f"
_HANGUL = "\u1100-\u11ff\u3130-\u318f\ua960-\ua97f\uac00-\ud7af\ud7b0-\ud7ff"

# Character ranges of the scripts in the FLORES-200 codes of mt_qa.languages.
SCRIPT_RANGES: dict[str, str] = {
    "Latn": "A-Za-z\u00aa\u00ba\u00c0-\u00d6\u00d8-\u00f6\u00f8-\u024f\u0250-\u02af\u1e00-\u1eff\u2c60-\u2c7f"
            "\ua720-\ua7ff\uff21-\uff3a\uff41-\uff5a",
    "Cyrl": "\u0400-\u052f\u1c80-\u1c8f\u2de0-\u2dff\ua640-\ua69f",
    "Grek": "\u0370-\u03ff\u1f00-\u1fff",
    "Arab": "\u0600-\u06ff\u0750-\u077f\u0870-\u08ff\ufb50-\ufdff\ufe70-\ufeff",
    "Hebr": "\u0590-\u05ff\ufb1d-\ufb4f",
    "Deva": "\u0900-\u097f\ua8e0-\ua8ff",
    "Beng": "\u0980-\u09ff",
    "Telu": "\u0c00-\u0c7f",
    "Thai": "\u0e00-\u0e7f",
    "Hans": _HAN,
    "Hant": _HAN,
    "Jpan": _HAN + _KANA,
    "Hang": _HANGUL + _HAN,
}
# One Han character, kana or Hangul syllable carries about as much as a short Latin word, so
# each counts this many letters: a Chinese question that names "Beyoncé" is still Chinese.
DENSE_WEIGHT = 3
# A passage's first characters decide its script as well as all of them would.
MAX_SCRIPT_CHARS = 1000
# Scripts written without spaces between words (tokenised by character elsewhere).
UNSPACED_SCRIPTS = frozenset({"Hans", "Hant", "Jpan", "Thai"})

_LETTER_RUN = re.compile(r"[^\W\d_]+")
_DENSE = re.compile(f"(?=[^\\W\\d_])[{_HAN}{_KANA}{_HANGUL}]")


@cache
def _outside_re(script: str) -> re.Pattern[str]:
    # Letters (not digits, not marks: the letter count skips those too) outside the script.
    return re.compile(f"(?=[^\\W\\d_])[^{SCRIPT_RANGES[script]}]")


# What a text must contain to be in a script: Japanese always has kana (Han alone is
# Chinese), Korean always has Hangul; other scripts, any of their letters.
_MARKERS = {"Jpan": _KANA, "Hang": _HANGUL}


@cache
def _marker_re(script: str) -> re.Pattern[str]:
    return re.compile(f"[{_MARKERS.get(script, SCRIPT_RANGES[script])}]")


def script_present(text: str, lang: str) -> bool:
    """Whether ``text`` holds any letter of ``lang``'s script (True for unknown scripts).

    Detectors use it as a veto: Han-only text is not Japanese, however sure a model is.
    """
    script = script_of(lang)
    return script is None or _marker_re(script).search(text) is not None


@cache
def script_of(lang: str) -> str | None:
    """The script a row code is written in (None for a language we have no table entry for)."""
    try:
        script = resolve(lang).script
    except UnknownLanguageError:
        return None
    return script if script in SCRIPT_RANGES else None


def script_ratio(text: str, script: str) -> float | None:
    """Weighted share of the text's letters that are in ``script`` (None: no letters).

    Counted as all letters minus those outside the script: the second list is short for
    a text in the right script, which keeps the check cheap on passages.
    """
    text = text[:MAX_SCRIPT_CHARS]
    outside_re = _outside_re(script)
    if outside_re.search(text) is None:  # the common case, settled by one search
        return 1.0 if _LETTER_RUN.search(text) else None
    letters = sum(map(len, _LETTER_RUN.findall(text)))
    if not letters:
        return None
    outside = outside_re.findall(text)
    dense = len(_DENSE.findall(text))
    dense_outside = sum(1 for ch in outside if _DENSE.match(ch)) if dense else 0
    total = letters + (DENSE_WEIGHT - 1) * dense
    inside = letters - len(outside) + (DENSE_WEIGHT - 1) * (dense - dense_outside)
    return inside / total
