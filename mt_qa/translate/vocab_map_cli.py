"""Command-line parts of vocabulary maps: ``mtqa model vocab-map`` and the translate options."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import click
from rich.console import Console
from rich.table import Table

from mt_qa.clickutil import LANGS
from mt_qa.errors import MtqaError
from mt_qa.languages import resolve
from mt_qa.translate.vocab_map import AGREEMENT_THRESHOLD, META_FILE, VocabMap, VocabMapError


def vocab_map_options(fn: Callable) -> Callable:
    """Options of `mtqa translate` for vocabulary maps and GPUs (kept here so cli.py changes little)."""
    options = [
        click.option("--vocab-map", default="none", show_default=True,
                     help="Restrict each target language's output vocabulary (faster decoding): 'none', a "
                          "directory made by `mtqa model vocab-map`, or 'auto' (the model's calibrated map in the "
                          "mtqa cache, calibrated on the first --calibrate-segments input segments if missing). "
                          "Check agreement first: --check-vocab-map N."),
        click.option("--calibrate-segments", default=1000, show_default=True, type=int,
                     help="--vocab-map auto: input segments decoded without a map to learn each language's pieces."),
        click.option("--check-vocab-map", type=int, default=None, metavar="N",
                     help="Do not translate: decode N held-out segments per language with and without the map and "
                          "report the token-identical share and score difference (auto: enlarge the map until it "
                          "reaches --check-threshold). Written to the map's check.json."),
        click.option("--check-threshold", default=AGREEMENT_THRESHOLD, show_default=True, type=float,
                     help="Token-identical share a map must reach in --check-vocab-map."),
        click.option("--device-index", default="0", show_default=True,
                     help="GPU number(s) for --device cuda, e.g. 0,1: one model replica per listed GPU "
                          "(x --inter-threads)."),
        click.option("--max-batch-memory", type=float, default=None, metavar="MIB",
                     help="Cap segments per batch so the beam x output-vocabulary logits fit this many MiB "
                          "(default: no cap on CPU; on CUDA, half the free memory of the first GPU)."),
    ]
    for option in reversed(options):
        fn = option(fn)
    return fn


def parse_device_index(text: str | int | None) -> list[int]:
    if text is None or text == "":
        return [0]
    try:
        values = [int(part) for part in str(text).split(",") if part.strip()]
    except ValueError as exc:
        raise MtqaError(f"--device-index {text!r}: give GPU numbers, e.g. 0 or 0,1") from exc
    if not values or any(v < 0 for v in values) or len(set(values)) != len(values):
        raise MtqaError(f"--device-index {text!r}: give distinct GPU numbers >= 0, e.g. 0 or 0,1")
    return values


def print_check(report: dict[str, Any]) -> None:
    table = Table(title=f"vocabulary map check ({report['map']})")
    for column in ("lang", "segments", "identical", "share", "mean score diff", "worst score diff", "map tokens",
                   "rounds"):
        table.add_column(column, justify="left" if column == "lang" else "right")
    for code, r in report["langs"].items():
        table.add_row(code, str(r["segments"]), str(r["identical"]), f"{r['identical_share']:.2%}",
                      f"{r['mean_score_diff']:+.4f}", f"{r['worst_score_diff']:+.4f}", str(r["map_tokens"]),
                      str(report["rounds"].get(code, 1)))
    Console(stderr=True).print(table)
    verdict = "passed" if report["passed"] else "FAILED"
    click.echo(f"{verdict}: threshold {report['threshold']:.0%} token-identical; recorded in "
               f"{Path(report['map']) / 'check.json'}")
    if not report["passed"]:
        raise MtqaError("the vocabulary map changes too many translations: enlarge it (more --calibrate-segments, "
                        "a larger --sample, or --vocab-map auto) or translate with --vocab-map none")


def _parse_samples(samples: tuple[str, ...]) -> list[tuple[str, Path]]:
    out = []
    for spec in samples:
        lang, sep, file = spec.partition("=")
        if not sep or not lang or not file:
            raise MtqaError(f"--sample {spec!r}: expected LANG=FILE, e.g. --sample deu_Latn=de.txt")
        path = Path(file).expanduser()
        if not path.is_file():
            raise MtqaError(f"--sample {spec!r}: {path} is not a file")
        out.append((resolve(lang).flores, path))
    return out


@click.command("vocab-map")
@click.argument("model_spec", metavar="MODEL")
@click.option("-o", "--out", required=True, type=click.Path(file_okay=False),
              help="Map directory (created, or extended when it already holds a map for this model).")
@click.option("--sample", "samples", multiple=True, metavar="LANG=FILE",
              help="Monolingual text in LANG, one sentence per line: its pieces join LANG's list. Repeatable.")
@click.option("--min-count", default=1, show_default=True, type=int,
              help="Keep a sample piece seen at least this many times.")
@click.option("--calibrate", "calibrate_dir", type=click.Path(file_okay=False),
              help="A collected QA store: translate its first --segments segments without a map into --langs "
                   "and add the pieces the model produced.")
@click.option("--langs", type=LANGS, help="Target languages for --calibrate.")
@click.option("--segments", default=1000, show_default=True, type=int, help="Segments for --calibrate.")
@click.option("--beam-size", default=2, show_default=True, type=int, help="Beam for --calibrate.")
@click.option("--device", default="auto", show_default=True)
@click.option("--compute-type", default="auto", show_default=True)
@click.option("--model-cache", type=click.Path(file_okay=False), help="Where converted models are kept.")
def vocab_map_cmd(model_spec, out, samples, min_count, calibrate_dir, langs, segments, beam_size, device,
                  compute_type, model_cache):
    """Build per-target-language output vocabularies for `mtqa translate --vocab-map DIR`.

    Each language's list holds the NLLB pieces of a monolingual sample and/or the pieces the
    model produced on calibration segments; digits, punctuation, control tokens and the
    source's own pieces are always allowed. Check the map before using it:
    `mtqa translate IN --langs de -o OUT --vocab-map DIR --check-vocab-map 500`.

    \b
    Example:
      mtqa model vocab-map models/nllb-600m-int8 -o maps/nllb-600m --sample deu_Latn=de.txt
      mtqa model vocab-map models/nllb-600m-int8 -o maps/nllb-600m --calibrate runs/collect --langs de,ar
    """
    from mt_qa.translate.models import _lock as model_lock
    from mt_qa.translate.models import resolve_model

    parsed = _parse_samples(samples)
    if not parsed and not calibrate_dir:
        raise MtqaError("give --sample LANG=FILE and/or --calibrate QA_DIR --langs L1,L2")
    if calibrate_dir and not langs:
        raise MtqaError("--calibrate needs --langs (the target languages to calibrate)")
    if min_count < 1 or segments < 1:
        raise MtqaError("--min-count and --segments must be at least 1")
    cal_langs = [lang.flores for lang in langs] if calibrate_dir else []
    info = resolve_model(model_spec, "int8", [code for code, _ in parsed] + cal_langs, model_cache)
    out_dir = Path(out)
    with model_lock(out_dir):
        _build(out_dir, info, parsed, min_count, calibrate_dir, cal_langs, segments, beam_size, device, compute_type)


def _build(out_dir: Path, info: Any, parsed: list[tuple[str, Path]], min_count: int, calibrate_dir: str | None,
           cal_langs: list[str], segments: int, beam_size: int, device: str, compute_type: str) -> None:
    from mt_qa.translate.translator import DecodeOptions, NllbTranslator
    from mt_qa.translate.vocab_map import calibrate, input_segments, read_sample, sample_tokens

    if (out_dir / META_FILE).is_file():
        vmap = VocabMap.load(out_dir, info.sha256)
    elif out_dir.exists() and any(out_dir.iterdir()):
        raise VocabMapError(f"{out_dir} exists and is not a vocabulary map; choose another --out")
    else:
        vmap = VocabMap(info.sha256)
    translator = NllbTranslator(info, device=device, compute_type=compute_type,
                                options=DecodeOptions(beam_size=beam_size))
    try:
        for code, path in parsed:
            counts = sample_tokens(translator.tokenizer, read_sample(path), min_count)
            new = vmap.add(code, counts, f"sample: {path.name} ({sum(counts.values())} pieces, min count {min_count})")
            click.echo(f"{code}: {new} new pieces from {path}", err=True)
        if calibrate_dir:
            found = input_segments(calibrate_dir, translator.tokenizer, DecodeOptions().max_input_tokens,
                                   limit=segments)
            for code in cal_langs:
                new = calibrate(translator, found, code, vmap, f"calibration: first {len(found)} segments of "
                                                               f"{calibrate_dir}")
                click.echo(f"{code}: {new} new pieces from {len(found)} calibration segments", err=True)
    finally:
        translator.close()
    vmap.save(out_dir)
    for code in sorted(vmap.langs):
        click.echo(f"{code}: {len(vmap.candidates(code, translator.vocabulary_list))} candidates "
                   f"({len(vmap.langs[code])} own pieces) of {len(translator.vocabulary_list)}")
    click.echo(f"wrote {out_dir}")
