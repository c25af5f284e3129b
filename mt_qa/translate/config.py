"""The translate stage's options, one dataclass, checked once (``validate``)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import click

from mt_qa.cachedir import translation_cache_path
from mt_qa.clickutil import option
from mt_qa.errors import MtqaError
from mt_qa.languages import Language, parse_langs, resolve
from mt_qa.translate.models import DEFAULT_MODEL, QUANTIZATIONS
from mt_qa.translate.translator import DEVICES, DecodeOptions


def default_cache_path() -> Path:
    return translation_cache_path()  # node-local inside a Slurm job: mt_qa/cachedir.py


@dataclass
class TranslateConfig:
    """What to translate into, with which model and engine settings, cached where.

    ``langs`` takes a comma list or codes in any form (resolved here, in order, without
    repeats); ``cache`` is ``"default"`` (the shared cache), a path, or None (per-shard
    checkpoints in OUT/_work/); ``vocab_map`` is ``"none"``, ``"auto"`` or a directory.
    """

    langs: list[Language] | list[str] | str = field(default_factory=list)
    model: str = field(default=DEFAULT_MODEL, metadata=option(
        "Hugging Face id or local directory (a CTranslate2 model, or a Transformers NLLB checkpoint that is "
        "converted once into the model cache)."))
    quantization: str = field(default="int8", metadata=option(
        "Weight type when a checkpoint has to be converted.", type=click.Choice(QUANTIZATIONS)))
    model_cache: str | Path | None = field(default=None, metadata=option(
        "Where converted models are kept [default: $MTQA_CACHE_DIR/models or ~/.cache/mtqa/models].",
        type=click.Path(file_okay=False)))
    device: str = field(default="auto", metadata=option(
        "auto: CUDA when CTranslate2 sees a GPU, else CPU.", type=click.Choice(DEVICES)))
    compute_type: str | None = field(default="auto", metadata=option(
        "CTranslate2 compute type; auto: int8 on CPU, int8_float16 on GPU."))
    options: DecodeOptions = field(default_factory=DecodeOptions)
    inter_threads: int | None = field(default=None, metadata=option(
        "Parallel translator replicas (default: cores // 8, at least 1).", type=int))
    intra_threads: int | None = field(default=None, metadata=option(
        "Threads per replica (default: cores // inter-threads).", type=int))
    max_batch_tokens: int = field(default=4096, metadata=option(
        "Token budget of one batch (longest source x segments), length-sorted."))
    cache: str | Path | None = "default"
    checkpoint_every: int = field(default=1000, metadata=option(
        "Segments per work unit committed to the cache; a killed run loses at most one unit."))
    retranslate_imported: bool = field(default=False, metadata=option(
        "Machine-translate languages that already have an imported translation (which then goes to rejects/ as "
        "replaced_by_mt). Default: keep the imported row and skip translation."))
    vocab_map: str | Path | None = "none"
    calibrate_segments: int = 1000
    device_index: int | list[int] = 0
    max_batch_memory_mib: float | None = None

    def __post_init__(self) -> None:
        if isinstance(self.langs, str):
            self.langs = parse_langs(self.langs)
        else:
            self.langs = [lang if isinstance(lang, Language) else resolve(lang) for lang in self.langs]
        if self.options is None:
            self.options = DecodeOptions()

    def validate(self) -> None:
        """Raise MtqaError naming the option for any value that cannot work."""
        if not self.langs:
            raise MtqaError("--langs: give at least one target language, e.g. --langs de,ar,zh")
        if self.checkpoint_every < 1:
            raise MtqaError("--checkpoint-every must be at least 1")
        if self.calibrate_segments < 1:
            raise MtqaError("--calibrate-segments must be at least 1")
        self.options.check()

    @property
    def languages(self) -> list[Language]:
        return self.langs  # type: ignore[return-value]  # resolved in __post_init__

    @property
    def cache_path(self) -> Path | None:
        if self.cache == "default":
            return default_cache_path()
        return Path(self.cache) if self.cache else None

    @property
    def vocab_map_spec(self) -> str | None:
        return None if self.vocab_map in (None, "", "none") else str(self.vocab_map)
