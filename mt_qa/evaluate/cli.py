"""``mtqa evaluate``: LAReQA-format (XQuAD-R / MLQA-R) and BEIR/MIRACL-layout evaluation, reports."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click
from rich.table import Table

from mt_qa.clickutil import LANG_TEXT, wide_console
from mt_qa.errors import MtqaError
from mt_qa.evaluate.commands import run_beir, run_lareqa, run_tatoeba
from mt_qa.evaluate.report import fmt


def _langs(value: str | None) -> list[str] | None:
    if not value:
        return None
    langs = [v.strip() for v in value.split(",") if v.strip()]
    if len(set(langs)) != len(langs):
        raise MtqaError(f"--languages {value!r} names a language twice")
    return langs


def encoder_options(prefixes: bool = True) -> Any:
    """Model and encoding options shared by the evaluators (``prefixes``: query/passage prefixes too)."""
    options = [
        click.option("-m", "--model", required=True,
                     help="sentence-transformers directory (or a hub name already in the local HF cache)."),
        click.option("--batch-size", default=64, show_default=True, help="Encoding batch size."),
        click.option("--max-length", type=int, default=None, help="Max tokens per text (default: the model's)."),
        click.option("--device", default=None, help="torch device (default: cuda if available, else cpu)."),
        click.option("--no-normalize", is_flag=True, help="Score raw dot products instead of cosine."),
        click.option("--cache-dir", type=click.Path(file_okay=False), default=None,
                     help="Embedding cache (default: $MTQA_CACHE_DIR/embeddings, ~/.cache/mtqa/embeddings)."),
        click.option("--no-cache", is_flag=True, help="Keep embeddings in memory only."),
        click.option("--label", default=None, help="Model name shown in reports (default: the model's dir name)."),
        click.option("-q", "--quiet", is_flag=True, help="No progress bars."),
        click.option("--overwrite", is_flag=True, help="Replace a report made for another model or data."),
    ]
    if prefixes:
        options[1:1] = [
            click.option("--query-prefix", default="query: ", show_default=True,
                         help="Put before every query (e5 convention; '' for none)."),
            click.option("--passage-prefix", default="passage: ", show_default=True,
                         help="Put before every candidate sentence / document ('' for none)."),
        ]

    def decorate(fn: Any) -> Any:
        for option in reversed(options):
            fn = option(fn)
        return fn

    return decorate


@click.group()
def evaluate() -> None:
    """Evaluate retrievers: XQuAD-R / MLQA-R (mAP, language bias), BEIR/MIRACL layouts, reports.

    \b
    Examples:
      mtqa evaluate build-lareqa runs/collect -o runs/devbench --articles 10
      mtqa evaluate lareqa runs/devbench -m models/multilingual-e5-small -o runs/eval/e5
      mtqa evaluate compare runs/eval/e5 runs/eval/hybrid
    """


@evaluate.command("lareqa")
@click.argument("data", nargs=-1, required=True, type=click.Path(file_okay=False))
@click.option("-o", "--out", required=True, type=click.Path(file_okay=False), help="Report directory.")
@click.option("--languages", type=LANG_TEXT, help="Languages to use, any code form (default: all <lang>.json in DATA).")
@click.option("--name", "names", multiple=True, help="Benchmark name per DATA dir (default: the dir name).")
@click.option("--ties", type=click.Choice(["pessimistic", "optimistic"]), default="pessimistic", show_default=True,
              help="Rank of a relevant candidate that ties with non-relevant ones: after them (pessimistic) "
                   "or before.")
@click.option("--no-plots", is_flag=True, help="Skip the PNG plots.")
@encoder_options()
def lareqa(data, out, languages, names, ties, no_plots, **kw):
    """Evaluate a model on LAReQA-format benchmarks (XQuAD-R, MLQA-R, or one from build-lareqa).

    DATA are directories of <lang>.json files with sentence breaks (the public LAReQA release
    layout). Writes report.json, report.md, per-query files and plots into --out.
    """
    report = run_lareqa(data, Path(out), kw, languages=_langs(languages), names=list(names) or None, ties=ties,
                        plots=not no_plots)
    console = wide_console()
    table = Table(title=f"mtqa evaluate lareqa: {report.get('label') or Path(kw['model']).name}",
                  title_justify="left")
    for column in ["benchmark", "mono mAP", "cross mAP", "multi mAP", "multi R@10", "bias"]:
        table.add_column(column)
    for name, bench in report["benchmarks"].items():
        s = bench["settings"]
        table.add_row(name, fmt(s["mono"]["mAP"]), fmt(s["cross"]["mAP"]), fmt(s["multi"]["mAP"]),
                      fmt(s["multi"].get("R@10")), fmt(bench["language_bias"]["mean"], 1))
    console.print(table)
    enc, timing = report["encoding"], report["timing"]
    console.print(f"{enc['unique']} unique texts ({enc['cached']} from cache, {enc['encoded']} encoded); "
                  f"encode {timing['encode_seconds']}s, scoring {timing['score_seconds']}s -> {out}  "
                  f"[{timing['total_seconds']}s]")


@evaluate.command("beir")
@click.argument("data", nargs=-1, required=True, type=click.Path(file_okay=False))
@click.option("-o", "--out", required=True, type=click.Path(file_okay=False), help="Report directory.")
@click.option("--split", default="test", show_default=True, help="Which qrels/topics to evaluate.")
@click.option("--queries", type=click.Path(dir_okay=False), help="Queries file (overrides the layout's).")
@click.option("--qrels", type=click.Path(dir_okay=False), help="Qrels file (overrides the layout's).")
@click.option("-k", "--top-k", "k", default=1000, show_default=True, help="Documents retrieved per query.")
@click.option("--chunk-docs", default=50000, show_default=True,
              help="Documents encoded and scored per chunk (bounds memory).")
@click.option("--no-title", is_flag=True, help="Encode document text without its title.")
@encoder_options()
def beir(data, out, split, queries, qrels, k, chunk_docs, no_title, **kw):
    """Evaluate a model on BEIR / MIRACL-layout retrieval benchmarks (nDCG@10, R@100, MRR@10, MAP).

    DATA are directories with corpus.jsonl, queries.jsonl (or topics/) and qrels/. Writes a TREC
    run file per benchmark, report.json and report.md into --out.
    """
    out = Path(out)
    entries = run_beir(data, out, kw, split=split, queries=queries, qrels=qrels, k=k, chunk_docs=chunk_docs,
                       use_title=not no_title)
    console = wide_console()
    for name, e in entries.items():
        console.print(f"{name}: " + ", ".join(f"{m} {fmt(v)}" for m, v in e["metrics"].items())
                      + f" ({e['n_queries']} queries, {e['n_docs']} docs, {e['seconds']}s)")
    console.print(f"-> {out}")


@evaluate.command("tatoeba")
@click.argument("data", type=click.Path(file_okay=False))
@click.option("-o", "--out", required=True, type=click.Path(file_okay=False), help="Report directory.")
@click.option("--languages", type=LANG_TEXT, help="Languages to use, any code form (default: every pair in DATA).")
@click.option("--prefix", default="query: ", show_default=True,
              help="Put before the sentences of both sides (bitext retrieval is symmetric; e5 uses 'query: ').")
@click.option("--trained-languages", type=LANG_TEXT,
              help="Languages the model was trained on, to report the mean over the others (unseen) too.")
@encoder_options(prefixes=False)
def tatoeba(data, out, languages, prefix, trained_languages, **kw):
    """Bitext retrieval accuracy on Tatoeba (LASER layout: tatoeba.XXX-eng.XXX + .eng), both directions.

    Tests cross-lingual alignment in languages without QA training data. Writes report.json and
    report.md into --out.
    """
    out = Path(out)
    report = run_tatoeba(data, out, kw, languages=_langs(languages), prefix=prefix,
                         trained_languages=_langs(trained_languages))
    bench = report["benchmarks"]["tatoeba"]
    console = wide_console()
    console.print("tatoeba accuracy: " + ", ".join(f"{k} {fmt(v)}" for k, v in bench["metrics"].items())
                  + f"  [{report['timing']['total_seconds']}s] -> {out}")


@evaluate.command("build-lareqa")
@click.argument("store", type=click.Path(file_okay=False))
@click.option("-o", "--out", required=True, type=click.Path(file_okay=False), help="Benchmark directory.")
@click.option("--split", default="dev", show_default=True, help="Split the articles are held out from.")
@click.option("--dataset", default=None, help="Only rows of this dataset (default: all).")
@click.option("--languages", type=LANG_TEXT, help="Languages, any code form (default: every language of the split).")
@click.option("--articles", type=int, default=10, show_default=True,
              help="Number of whole articles to hold out, picked by a seeded hash of their title.")
@click.option("--titles", multiple=True, help="Hold out exactly these article titles (repeatable).")
@click.option("--titles-file", type=click.Path(dir_okay=False), help="File of titles to hold out, one per line.")
@click.option("--seed", default=0, show_default=True, help="Seed of the article choice.")
@click.option("--overwrite", is_flag=True, help="Replace a directory built with other params.")
@click.option("-q", "--quiet", is_flag=True, help="No progress output (the summary is still printed).")
def build_lareqa(store, out, split, dataset, languages, articles, titles, titles_file, seed, overwrite, quiet):
    """Build a LAReQA-format benchmark from a QA shard store with parallel languages.

    Holds out whole articles of SPLIT; questions present in all chosen languages become
    queries, sentences of their articles' paragraphs become candidates. Also writes
    heldout_titles.txt and heldout_group_ids.txt so training can exclude those articles.
    """
    from mt_qa.evaluate.build import BuildLareqa

    chosen = list(titles)
    if titles_file:
        chosen += [line.strip() for line in Path(titles_file).read_text().splitlines() if line.strip()]
    result = BuildLareqa(store, out, split=split, dataset=dataset, languages=_langs(languages), articles=articles,
                         titles=chosen or None, seed=seed, overwrite=overwrite).run()
    console = wide_console()
    table = Table(title="mtqa evaluate build-lareqa", title_justify="left")
    for column in ["language", "questions", "candidates"]:
        table.add_column(column)
    for lang in result["languages"]:
        table.add_row(lang, str(result["questions"].get(lang, 0)), str(result["candidates"].get(lang, 0)))
    console.print(table)  # -q or not: the summary always goes to stderr, as every stage's does
    notes = ", ".join(f"{k}={v}" for k, v in result["stats"].items())
    console.print(f"{len(result['articles'])} articles held out ({result['heldout_groups']} groups listed in "
                  f"heldout_group_ids.txt); {notes} -> {result['out']}")


@evaluate.command("study")
@click.argument("reports", nargs=-1, required=True, type=click.Path(exists=True))
@click.option("-o", "--out", required=True, type=click.Path(file_okay=False), help="Study directory.")
@click.option("--no-plots", is_flag=True, help="Skip the PNG plots.")
@click.option("-q", "--quiet", is_flag=True, help="Do not print the tables.")
def study(reports, out, no_plots, quiet):
    """Group LAReQA and Tatoeba reports into a batching study: X-X, X-Y, hybrid by alpha, over seeds.

    REPORTS are report directories, or directories holding them (e.g. a pipeline's run dir).
    Each model's strategy, alpha and seed come from the mtqa_train.json next to it; a model
    without one is a base model. Writes study.json, study.md and plots (alpha sweep,
    cross-lingual mAP heatmaps) into --out.
    """
    from mt_qa.evaluate.study import write_study

    result = write_study(list(reports), out, plots=not no_plots)
    if not quiet:
        click.echo((Path(out) / "study.md").read_text())
    runs = sum(len(c["runs"]) for c in result["conditions"].values())
    wide_console().print(f"{runs} runs in {len(result['conditions'])} conditions -> {out}")


@evaluate.command("compare")
@click.argument("reports", nargs=-1, required=True, type=click.Path(exists=True))
@click.option("--label", "labels", multiple=True, help="Row label per report (default: model dir names).")
@click.option("-o", "--out", type=click.Path(dir_okay=False), help="Also write the markdown to this file.")
def compare(reports, labels, out):
    """Put several evaluation reports (dirs or report.json files) side by side as markdown tables."""
    from mt_qa.evaluate.report import compare_markdown, load_report
    from mt_qa.io import atomic_write_bytes

    loaded = [load_report(r) for r in reports]
    text = compare_markdown(loaded, list(labels) or None)
    if out:
        atomic_write_bytes(Path(out), text.encode())
    click.echo(text)
