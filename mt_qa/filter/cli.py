"""``mtqa filter``: the command-line face of the filter stage."""

from __future__ import annotations

from typing import Any

import click

from mt_qa.clickutil import config_from_options, print_summary, stage_options, stage_run
from mt_qa.filter.semantic import SemanticConfig
from mt_qa.filter.stage import FilterConfig, FilterStage

_S = SemanticConfig()


def semantic_options(fn: Any) -> Any:
    """Options of the semantic check (docs/filter.md, "Semantic check")."""
    options = [
        click.option("--semantic-model", metavar="MODEL",
                     help="Turn on the semantic check with this sentence-transformers directory (a cross-lingual "
                          "encoder, e.g. multilingual-e5-small): margin of question and passage sentences to the "
                          "English source. An empty value leaves it off (for pipeline variables)."),
        click.option("--semantic-min-question", default=_S.min_question, show_default=True, metavar="SPEC",
                     help="Least question margin: 'default' (per-language defaults), a number, or "
                          "LANG=NUMBER,... ('*' for the others)."),
        click.option("--semantic-min-sentence", default=_S.min_sentence, show_default=True, metavar="SPEC",
                     help="Least margin of every passage sentence, in the same form."),
        click.option("--semantic-k", type=int, default=_S.k, show_default=True,
                     help="Nearest neighbours per side in the ratio margin (within the shard and language)."),
        click.option("--semantic-prefix", default=_S.prefix, show_default=True,
                     help="Prefix put before every text encoded (e5 models expect 'query: ').",),
        click.option("--semantic-batch-size", type=int, default=_S.batch_size, show_default=True,
                     help="Texts per encoder batch."),
        click.option("--semantic-cache-dir", type=click.Path(file_okay=False),
                     help="Embedding cache (default: $MTQA_CACHE_DIR or ~/.cache/mtqa/embeddings)."),
        click.option("--device", type=click.Choice(["cpu", "cuda"]), default=None,
                     help="Device of the semantic model (default: cuda if available, else cpu)."),
    ]
    for option in reversed(options):
        fn = option(fn)
    return fn


@click.command(name="filter")
@click.argument("in_dir", type=click.Path(file_okay=False))
@click.option("-o", "--out", required=True, type=click.Path(file_okay=False), help="Output shard directory.")
@click.option("--workers", type=int, default=1, show_default=True,
              help="Processes filtering shards in parallel (each shard is still written by one of them).")
@semantic_options
@stage_options(FilterConfig)
def filter_(in_dir: str, out: str, workers: int, **options: Any) -> None:
    """Drop rows in the wrong language, bad translations and duplicates from QA shards.

    IN_DIR is a collect or translate output directory; OUT_DIR gets the kept rows under the
    same shard names, every dropped row in rejects/ with its reason and score, and counts per
    reason and language in manifest.json. A rejected English source row removes its whole
    group; a rejected translation removes only that language.

    \b
    Example:
      mtqa filter runs/demo/translate -o runs/demo/filter --detector fasttext
      mtqa filter runs/demo/translate -o runs/demo/filter --semantic-model /models/multilingual-e5-small
    """
    run = stage_run(options)
    semantic = {key: options.pop(key) for key in list(options) if key.startswith("semantic_") or key == "device"}
    config = config_from_options(FilterConfig, options, semantic=SemanticConfig(
        model=semantic["semantic_model"] or None, min_question=semantic["semantic_min_question"],
        min_sentence=semantic["semantic_min_sentence"], k=semantic["semantic_k"],
        prefix=semantic["semantic_prefix"], device=semantic["device"],
        batch_size=semantic["semantic_batch_size"], cache_dir=semantic["semantic_cache_dir"]))
    stage = FilterStage(in_dir, out, config, workers=workers, **run)
    result = stage.run()
    header, rows = summary_table(result)
    print_summary("filter", result, header, rows)
    if result["timings"]:
        timing = ", ".join(f"{k} {v:.1f}s" for k, v in result["timings"].items())
        rate = f"; {result['rows_per_second']:.0f} rows/s" if result.get("rows_per_second") else ""
        click.echo(f"time by check: {timing}{rate}", err=True)


def summary_table(result: dict[str, Any]) -> tuple[list[str], list[list[str]]]:
    """Rows: input, each reject reason, kept; columns: languages and total.

    From the manifest when the run is complete (all tasks), else from this task's shards.
    """
    manifest = result.get("manifest")
    counts: dict[str, dict[str, int]] = {}
    if manifest:
        stats = manifest["stats"]
        for lang, n in stats.get("rows_in", {}).items():
            counts.setdefault(lang, {})["rows_in"] = n
        for lang, n in stats.get("rows_out", {}).items():
            counts.setdefault(lang, {})["rows_out"] = n
        for lang, by_reason in stats.get("rejected_by_lang", {}).items():
            counts.setdefault(lang, {}).update(by_reason)
    else:
        counts = result["counts"]
    langs = sorted(counts)
    reasons = sorted({r for by in counts.values() for r in by} - {"rows_in", "rows_out"})
    header = ["", *langs, "total"]

    def line(label: str, key: str) -> list[str]:
        values = [counts[lang].get(key, 0) for lang in langs]
        return [label, *map(str, values), str(sum(values))]

    rows = [line("input rows", "rows_in")]
    rows += [line(f"  {reason}", reason) for reason in reasons]
    rows.append(line("kept", "rows_out"))
    return header, rows
