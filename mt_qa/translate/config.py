"""The translate stage's options, one dataclass, checked once (``validate``)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from mt_qa.errors import MtqaError
from mt_qa.languages import Language, parse_langs, resolve
from mt_qa.translate.models import DEFAULT_MODEL, cache_root
from mt_qa.translate.translator import DecodeOptions


def default_cache_path() -> Path:
    return cache_root() / "translations.sqlite"


@dataclass
class TranslateConfig:
    """What to translate into, with which model and engine settings, cached where.

    ``langs`` takes a comma list or codes in any form (resolved here, in order, without
    repeats); ``cache`` is ``"default"`` (the shared cache), a path, or None (per-shard
    checkpoints in OUT/_work/); ``vocab_map`` is ``"none"``, ``"auto"`` or a directory.
    """

    langs: list[Language] | list[str] | str = field(default_factory=list)
    model: str = DEFAULT_MODEL
    quantization: str = "int8"
    model_cache: str | Path | None = None
    device: str = "auto"
    compute_type: str | None = "auto"
    options: DecodeOptions = field(default_factory=DecodeOptions)
    inter_threads: int | None = None
    intra_threads: int | None = None
    max_batch_tokens: int = 4096
    cache: str | Path | None = "default"
    checkpoint_every: int = 1000
    retranslate_imported: bool = False
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
