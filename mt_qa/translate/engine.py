"""The translation engine of a run: device, compute type, model, vocabulary map, translator.

Everything here is resolved before the output is claimed, so a wrong model or map costs
nothing; job-array tasks that calibrate an ``auto`` map at the same time do it once (a lock).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from mt_qa.translate.config import TranslateConfig
from mt_qa.translate.models import ModelInfo, resolve_model
from mt_qa.translate.models import _lock as model_lock
from mt_qa.translate.translator import NllbTranslator, resolve_compute_type, resolve_device
from mt_qa.translate.vocab_map import VocabMap


@dataclass
class Engine:
    device: str
    compute_type: str
    model: ModelInfo


def resolve_engine(config: TranslateConfig) -> Engine:
    device = resolve_device(config.device)
    compute_type = resolve_compute_type(device, config.compute_type)
    model = resolve_model(config.model, config.quantization, [lang.flores for lang in config.languages],
                          config.model_cache)
    return Engine(device, compute_type, model)


def make_translator(config: TranslateConfig, model: ModelInfo, device: str, compute_type: str,
                    vocab_map: VocabMap | None) -> NllbTranslator:
    return NllbTranslator(
        model, device=device, compute_type=compute_type, inter_threads=config.inter_threads,
        intra_threads=config.intra_threads, options=config.options, max_batch_tokens=config.max_batch_tokens,
        vocab_map=vocab_map, device_index=config.device_index, max_batch_memory_mib=config.max_batch_memory_mib)


def resolve_vocab_map(config: TranslateConfig, model: ModelInfo, input_dir: Path, device: str,
                      compute_type: str) -> VocabMap | None:
    """``--vocab-map``: none, a directory made by `mtqa model vocab-map`, or auto (found or calibrated)."""
    from mt_qa.translate.vocab_map import auto_map_dir, calibrate, input_segments

    if config.vocab_map_spec is None:
        return None
    codes = [lang.flores for lang in config.languages]
    if config.vocab_map_spec != "auto":
        vmap = VocabMap.load(config.vocab_map_spec, model.sha256)
        vmap.require(codes)
        return vmap
    directory = auto_map_dir(model)
    with model_lock(directory):  # job-array tasks starting together calibrate once
        vmap = (VocabMap.load(directory, model.sha256) if (directory / "vocab_map.json").is_file()
                else VocabMap(model.sha256))
        missing = [code for code in codes if code not in vmap.langs]
        if missing:
            translator = make_translator(config, model, device, compute_type, None)
            try:
                segments = input_segments(input_dir, translator.tokenizer, config.options.max_input_tokens,
                                          limit=config.calibrate_segments)
                for code in missing:
                    calibrate(translator, segments, code, vmap, f"calibration: first {len(segments)} segments "
                                                                f"of {input_dir}")
            finally:
                translator.close()
            vmap.save(directory)
    return vmap
