"""``translate --check-vocab-map N``: does decoding with the vocabulary map agree with decoding without?"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from mt_qa.errors import MtqaError
from mt_qa.translate.config import TranslateConfig
from mt_qa.translate.engine import make_translator, resolve_engine, resolve_vocab_map
from mt_qa.translate.models import _lock as model_lock
from mt_qa.translate.plan import open_qa_input
from mt_qa.translate.vocab_map import AGREEMENT_THRESHOLD, Agreement


def check_vocab_map(config: TranslateConfig, input_dir: Path, segments: int,
                    threshold: float = AGREEMENT_THRESHOLD, max_rounds: int = 5) -> dict[str, Any]:
    """``--check-vocab-map N``: N held-out segments decoded with and without the map, per language.

    With ``--vocab-map auto`` a language below ``threshold`` is enlarged with the
    unrestricted outputs' pieces and checked again on the next N held-out segments, up to
    ``max_rounds`` times; the enlarged map is saved. Nothing is translated into the output.
    The result is also written to the map's ``check.json``.
    """
    from mt_qa.translate.vocab_map import auto_map_dir, check, input_segments, write_check

    if config.vocab_map_spec is None:
        raise MtqaError("--check-vocab-map needs --vocab-map auto or DIR")
    if segments < 1:
        raise MtqaError("--check-vocab-map N: N must be at least 1")
    open_qa_input(input_dir)
    engine = resolve_engine(config)
    device, compute_type, model = engine.device, engine.compute_type, engine.model
    vmap = resolve_vocab_map(config, model, input_dir, device, compute_type)
    assert vmap is not None
    translator = make_translator(config, model, device, compute_type, vmap)
    translator.max_engines = 2  # plain and mapped side by side
    # Held out = after the segments calibration uses (auto, and `model vocab-map --calibrate` with the
    # same number as --calibrate-segments): a map is never checked on the text it was learned from.
    skip = config.calibrate_segments
    results: dict[str, Agreement] = {}
    rounds: dict[str, int] = {}
    try:
        for lang in config.languages:
            code, offset = lang.flores, skip
            for round_ in range(1, max_rounds + 1):
                held_out = input_segments(input_dir, translator.tokenizer, config.options.max_input_tokens,
                                          skip=offset, limit=segments)
                if not held_out:
                    raise MtqaError(f"{input_dir}: no held-out segments left after {offset} (calibration "
                                    "and earlier rounds): use a smaller N or more input")
                result, produced = check(translator, held_out, code)
                results[code], rounds[code] = result, round_
                if result.passed(threshold) or config.vocab_map_spec != "auto" or round_ == max_rounds:
                    break
                vmap.add(code, produced, f"enlarged: {len(held_out)} held-out segments after {offset}")
                translator.close()  # the map changed: reload its view
                offset += len(held_out)
    finally:
        translator.close()
    if config.vocab_map_spec == "auto":
        with model_lock(auto_map_dir(model)):
            vmap.save(auto_map_dir(model))
    assert vmap.path is not None
    write_check(vmap.path, results, threshold, {"model": model.manifest_ref(), "rounds": rounds,
                                                "beam_size": config.options.beam_size,
                                                "compute_type": compute_type, "input": str(input_dir)})
    return {"map": str(vmap.path), "threshold": threshold, "rounds": rounds,
            "passed": all(r.passed(threshold) for r in results.values()),
            "langs": {code: r.as_dict() | {"map_tokens": len(vmap.candidates(code, translator.vocabulary_list))}
                      for code, r in results.items()}}
