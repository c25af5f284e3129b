"""Language codes: ISO 639-1 / ISO 639-3 / FLORES-200, resolved in one place.

Rows carry ``lang`` (ISO 639-1 where one exists, else ISO 639-3) and ``lang_code`` (the
FLORES-200 code NLLB needs). Users may type any of the three forms.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass
from functools import cache

from mt_qa.errors import MtqaError


@dataclass(frozen=True)
class Language:
    iso1: str | None
    iso3: str
    flores: str
    name: str

    @property
    def code(self) -> str:
        """The value stored in a row's ``lang`` column."""
        return self.iso1 or self.iso3

    @property
    def script(self) -> str:
        return self.flores.split("_", 1)[1]


class UnknownLanguageError(MtqaError):
    pass


# (ISO 639-1 or "", ISO 639-3, FLORES-200, English name)
_TABLE: tuple[tuple[str, str, str, str], ...] = (
    ("en", "eng", "eng_Latn", "English"),
    ("ar", "ara", "arb_Arab", "Arabic"),
    ("zh", "zho", "zho_Hans", "Chinese (Simplified)"),
    ("de", "deu", "deu_Latn", "German"),
    ("es", "spa", "spa_Latn", "Spanish"),
    ("ru", "rus", "rus_Cyrl", "Russian"),
    ("hi", "hin", "hin_Deva", "Hindi"),
    ("th", "tha", "tha_Thai", "Thai"),
    ("tr", "tur", "tur_Latn", "Turkish"),
    ("it", "ita", "ita_Latn", "Italian"),
    ("pt", "por", "por_Latn", "Portuguese"),
    ("fr", "fra", "fra_Latn", "French"),
    ("el", "ell", "ell_Grek", "Greek"),
    ("vi", "vie", "vie_Latn", "Vietnamese"),
    ("ro", "ron", "ron_Latn", "Romanian"),
    ("ja", "jpn", "jpn_Jpan", "Japanese"),
    ("ko", "kor", "kor_Hang", "Korean"),
    ("nl", "nld", "nld_Latn", "Dutch"),
    ("pl", "pol", "pol_Latn", "Polish"),
    ("sv", "swe", "swe_Latn", "Swedish"),
    ("fi", "fin", "fin_Latn", "Finnish"),
    ("bn", "ben", "ben_Beng", "Bengali"),
    ("te", "tel", "tel_Telu", "Telugu"),
    ("sw", "swa", "swh_Latn", "Swahili"),
    ("id", "ind", "ind_Latn", "Indonesian"),
    ("fa", "fas", "pes_Arab", "Persian"),
    ("uk", "ukr", "ukr_Cyrl", "Ukrainian"),
)

# Other spellings users and detectors produce (BCP-47 regions, macro-language codes).
_ALIASES = {
    "zh-cn": "zh", "zh_cn": "zh", "zh-hans": "zh", "cmn": "zh", "zh-tw": "zh", "zh_tw": "zh",
    "zh-hant": "zh", "pt-br": "pt", "pt-pt": "pt", "arb": "ar", "swh": "sw", "pes": "fa",
}


@cache
def _index() -> dict[str, Language]:
    index: dict[str, Language] = {}
    for iso1, iso3, flores, name in _TABLE:
        lang = Language(iso1 or None, iso3, flores, name)
        for key in filter(None, (iso1, iso3, flores.lower(), name.lower())):
            index.setdefault(key, lang)
    for alias, target in _ALIASES.items():
        index.setdefault(alias, index[target])
    return index


def resolve(code: str) -> Language:
    """Resolve ISO 639-1, ISO 639-3, FLORES-200 or an alias; unknown codes get suggestions."""
    key = code.strip().lower().replace(" ", "")
    index = _index()
    if key in index:
        return index[key]
    close = difflib.get_close_matches(key, list(index), n=4, cutoff=0.6)
    hint = f"; did you mean {', '.join(close)}?" if close else ""
    raise UnknownLanguageError(f"unknown language code {code!r}{hint}")


def parse_langs(spec: str) -> list[Language]:
    """'de,ar,zh' -> languages, in order, without repeats."""
    out: list[Language] = []
    for part in spec.split(","):
        if part.strip():
            lang = resolve(part)
            if lang not in out:
                out.append(lang)
    if not out:
        raise UnknownLanguageError(f"no language codes in {spec!r}")
    return out
