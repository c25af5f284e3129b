"""``mtqa collect``: the command-line face of the collect stage."""

from __future__ import annotations

from pathlib import Path

import click

from mt_qa.clickutil import config_from_options, print_summary, stage_options, stage_run
from mt_qa.collect.registry import FORMATS
from mt_qa.collect.stage import CollectConfig, CollectStage, ParallelSpec, SourceSpec
from mt_qa.collect.tabular import parse_mapping
from mt_qa.errors import MtqaError


def _parse_parallel(values: tuple[str, ...]) -> list[ParallelSpec]:
    specs = []
    for value in values:
        lang, sep, path = value.partition("=")
        if not sep or not lang or not path:
            raise MtqaError(f"--parallel {value!r}: expected LANG=PATH, e.g. --parallel es=dev-v1.1.es.json.gz")
        specs.append(ParallelSpec(lang=lang.strip(), path=path))
    return specs


@click.command()
@click.argument("sources", nargs=-1, required=True)
@click.option("-o", "--out", required=True, type=click.Path(file_okay=False), help="Output shard directory.")
@click.option(
    "--format",
    "fmt",
    type=click.Choice(FORMATS),
    default="auto",
    show_default=True,
    help="Input format (detected from the name and first bytes when 'auto').",
)
@click.option("--dataset", help="Value of the 'dataset' column (default: the format's name, e.g. squad).")
@click.option("--split", help="Value of the 'split' column (default: from the file name: train/dev/test).")
@click.option("--lang", default="en", show_default=True, help="Language of the sources.")
@click.option(
    "--parallel",
    multiple=True,
    metavar="LANG=PATH",
    help="A SQuAD-format file in LANG whose question ids match the sources; imported as parallel "
    "rows (origin=imported) of the same group. Repeatable.",
)
@click.option(
    "--map",
    "mapping",
    multiple=True,
    metavar="FIELD=COLUMN",
    help="Column mapping for jsonl/csv/parquet/hub sources (fields: id, question, passage, title, "
    "answers). Repeatable.",
)
@click.option("--evidence-dir", type=click.Path(file_okay=False), help="TriviaQA evidence/ directory.")
@stage_options(CollectConfig)
def collect(
    sources,
    out,
    fmt,
    dataset,
    split,
    lang,
    parallel,
    mapping,
    evidence_dir,
    **config,
):
    """Read QA datasets into normalized, sentence-split QA shards.

    SOURCES are files (SQuAD JSON, NQ JSONL, WikiQA TSV, TriviaQA JSON, JSONL/CSV/Parquet), an
    MS MARCO directory, or hf:NAME for a Hugging Face dataset (needs network).

    \b
    Example:
      mtqa collect dev-v1.1.en.json.gz --parallel es=dev-v1.1.es.json.gz -o runs/demo/collect
    """
    options = {"mapping": parse_mapping(mapping)} if mapping else {}
    if evidence_dir:
        options["evidence_dir"] = evidence_dir
    if split:
        options["split"] = split
    specs = [
        SourceSpec(path=s, format=fmt, dataset=dataset, split=split, lang=lang, options=dict(options)) for s in sources
    ]
    run = stage_run(config)
    stage = CollectStage(
        specs,
        out,
        config_from_options(CollectConfig, config),
        parallel=_parse_parallel(parallel),
        **run,
    )
    result = stage.run()
    rows = []
    for path, s in result["sources"].items():
        if "lang" in s:
            rows.append(
                [Path(path).name, f"parallel {s['lang']}", "", "", str(s["rejected"]), f"{s['unmatched']} unmatched"]
            )
        else:
            rows.append(
                [
                    Path(path).name,
                    "source",
                    str(s["read"]),
                    str(s["written"]),
                    str(s["rejected"]),
                    f"{s['skipped']} skipped, {s['seconds']}s",
                ]
            )
    if result.get("input_index"):  # a job array: this task built the input index, or only read it
        rows.append(["(input index)", result["input_index"], "", "", "", "one pass over the inputs for all tasks"])
    print_summary("collect", result, ["input", "role", "read", "rows out", "rejected", "notes"], rows)
