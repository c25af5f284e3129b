"""``mtqa translate`` and ``mtqa model``: the command-line face of the translate stage."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from mt_qa.clickutil import LANGS, config_from_options, print_summary, stage_options, stage_run
from mt_qa.translate.models import (
    QUANTIZATIONS,
    ModelError,
    convert,
    load_model_info,
    validate_ct2_dir,
)
from mt_qa.translate.stage import TranslateConfig, TranslateStage, default_cache_path
from mt_qa.translate.translator import HARD_MAX_DECODING, DecodeOptions
from mt_qa.translate.vocab_map_cli import parse_device_index, print_check, vocab_map_cmd, vocab_map_options

_DEFAULTS = DecodeOptions()


@click.command()
@click.argument("input_dir", type=click.Path(file_okay=False))
@click.option("--langs", required=True, type=LANGS, help="Targets: ISO 639-1/639-3 or FLORES-200 codes, e.g. de,ar,zh.")
@click.option("-o", "--out", required=True, type=click.Path(file_okay=False), help="Output shard directory.")
@click.option("--beam-size", default=_DEFAULTS.beam_size, show_default=True, type=int,
              help="Beam width; NLLB's paper used 4, 2 halves the decoding work.")
@click.option("--max-input-tokens", default=_DEFAULTS.max_input_tokens, show_default=True, type=int,
              help=f"Longer segments are split (never truncated); at most {HARD_MAX_DECODING}.")
@click.option("--max-length-ratio", default=_DEFAULTS.max_length_ratio, show_default=True, type=float,
              help="Decoding stops at ratio x source tokens + slack (guards against loops).")
@click.option("--max-length-slack", default=_DEFAULTS.max_length_slack, show_default=True, type=int,
              help="Tokens added to the ratio bound (short segments need room).")
@click.option("--repetition-penalty", default=_DEFAULTS.repetition_penalty, show_default=True, type=float,
              help="> 1 penalises tokens already generated (1 disables).")
@click.option("--no-repeat-ngram-size", default=_DEFAULTS.no_repeat_ngram_size, show_default=True, type=int,
              help="Forbid repeating any n-gram of this many tokens in one segment (0 disables).")
@click.option("--cache", "cache_path", type=click.Path(dir_okay=False),
              help=f"Translation cache (SQLite) shared across runs [default: {default_cache_path()}].")
@click.option("--no-cache", is_flag=True, help="No shared cache: checkpoints go to OUT/_work/ and are removed "
                                               "when their shard is done.")
@vocab_map_options
@stage_options(TranslateConfig)
def translate(input_dir, langs, out, beam_size, max_input_tokens, max_length_ratio, max_length_slack,
              repetition_penalty, no_repeat_ngram_size, cache_path, no_cache, vocab_map, calibrate_segments,
              check_vocab_map, check_threshold, device_index, max_batch_memory, **config):
    """Translate QA shards (from collect) into more languages with NLLB-200 through CTranslate2.

    English rows pass through (origin=source), and each target language gets one row per group
    (origin=mt), translated sentence by sentence so answer_sentence_index stays aligned.

    \b
    Example:
      mtqa translate runs/demo/collect --langs de,ar,zh -o runs/demo/translate
      mtqa translate runs/demo/collect --langs de -o out --model ./nllb-ct2 --device cuda
    """
    options = DecodeOptions(beam_size=beam_size, max_input_tokens=max_input_tokens,
                            max_length_ratio=max_length_ratio, max_length_slack=max_length_slack,
                            repetition_penalty=repetition_penalty, no_repeat_ngram_size=no_repeat_ngram_size)
    run = stage_run(config)
    config = config_from_options(
        TranslateConfig, config, langs=langs, options=options, cache=None if no_cache else (cache_path or "default"),
        vocab_map=vocab_map, calibrate_segments=calibrate_segments, device_index=parse_device_index(device_index),
        max_batch_memory_mib=max_batch_memory)
    stage = TranslateStage(input_dir, out, config, **run)
    if check_vocab_map:
        print_check(stage.check_vocab_map(check_vocab_map, check_threshold))
        return
    result = stage.run()
    print_summary("translate", result,
                  ["lang", "mt rows", "kept existing", "rejected", "unique seg.", "cached", "translated"],
                  summary_rows(result))
    click.echo(describe(result), err=True)


def summary_rows(result: dict[str, Any]) -> list[list[str]]:
    """Per-language lines of the end-of-run table."""
    rows = []
    for code, s in result["langs"].items():
        rows.append([code, str(s["rows"]), str(s["existing"]), str(s["rejected"]), str(s["unique"]),
                     str(s["cached"]), str(s["translated"])])
    return rows


def describe(result: dict[str, Any]) -> str:
    model = result["model"]
    speed = f", {result['segments_per_s']} segments/s" if result.get("segments_per_s") else ""
    threads = result.get("threads")
    threads_text = f", threads {threads[0]}x{threads[1]}" if threads else ""
    return (f"model {model['id']} ({model['sha256'][:12]}) on {result['device']} {result['compute_type']}"
            f"{threads_text}; {result['segments_translated']} segments translated, {result['segments_cached']} "
            f"from cache{speed}; cache: {result['cache'] or 'off (per-shard checkpoints)'}")


@click.group()
def model():
    """Manage translation models (CTranslate2 conversions of NLLB-200 checkpoints)."""


@model.command("convert")
@click.argument("source")
@click.option("-o", "--out", required=True, type=click.Path(file_okay=False), help="Directory for the converted model.")
@click.option("--quantization", type=click.Choice(QUANTIZATIONS), default="int8", show_default=True,
              help="Weight type; int8 is 4x smaller than float32 and fastest on CPU.")
@click.option("--force", is_flag=True, help="Replace an existing converted model at --out.")
def convert_cmd(source, out, quantization, force):
    """Convert a Transformers NLLB checkpoint (hub id or directory) to CTranslate2.

    Uses CTranslate2's own converter, copies the tokenizer files, and records where the model
    came from; `mtqa translate --model OUT` then uses it without converting again.

    \b
    Example:
      mtqa model convert facebook/nllb-200-distilled-600M --quantization int8 --out models/nllb-600m-int8
    """
    info = convert(source, out, quantization=quantization, force=force)
    click.echo(f"converted {source} -> {info.path} ({quantization}); content sha256 {info.sha256}")


@model.command("info")
@click.argument("directory", type=click.Path(exists=True, file_okay=False))
@click.option("--langs", type=LANGS, help="Also check that the model knows these languages.")
def info_cmd(directory, langs):
    """Validate a CTranslate2 model directory and print its id and content hash."""
    codes = [lang.flores for lang in langs] if langs else []
    path = Path(directory)
    problems = validate_ct2_dir(path, codes)
    if problems:
        raise ModelError(f"{path}: not a usable NLLB CTranslate2 model: " + "; ".join(problems))
    info = load_model_info(path, codes)
    click.echo(f"id: {info.id}\nsha256: {info.sha256}\nquantization: {info.quantization or 'unknown'}\n"
               f"path: {info.path}")


model.add_command(vocab_map_cmd)
