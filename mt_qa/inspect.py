"""``mtqa inspect`` and ``mtqa validate``: look into and re-check any stage's shard directory."""

from __future__ import annotations

import json
from collections import Counter

import click
from rich.table import Table

from mt_qa.clickutil import wide_console
from mt_qa.shards import ShardStore


def summarize(store: ShardStore, samples: int = 3) -> dict:
    """Counts by language and origin (QA stores) or by query/passage language and batch type
    (batch stores, whose files are not split by language), and samples."""
    manifest = store.manifest
    by_lang_origin: Counter[tuple[str, str]] = Counter()
    by_pair: Counter[tuple[str, str, str]] = Counter()  # batch stores: (query lang, passage lang, batch type)
    sample_rows: list[dict] = []
    names = store.schema.names
    for path in store.files():
        table = store.read(path)
        if "lang" in names and "origin" in names:
            for row in table.group_by(["lang", "origin"]).aggregate([([], "count_all")]).to_pylist():
                by_lang_origin[(row["lang"], row["origin"])] += row["count_all"]
        elif "query_lang" in names and "passage_lang" in names and "batch_type" in names:
            keys = ["query_lang", "passage_lang", "batch_type"]
            for row in table.group_by(keys).aggregate([([], "count_all")]).to_pylist():
                by_pair[(row["query_lang"], row["passage_lang"], row["batch_type"])] += row["count_all"]
        if len(sample_rows) < samples:
            sample_rows += table.slice(0, samples - len(sample_rows)).to_pylist()
    return {
        "path": str(store.root),
        "stage": manifest["stage"],
        "schema": manifest["schema"],
        "tool": manifest["tool"],
        "shards": len(manifest["shards"]),
        "totals": manifest["totals"],
        "rows_by_lang_origin": {f"{lang}/{origin}": n for (lang, origin), n in sorted(by_lang_origin.items())},
        "rows_by_lang_pair": _nest(by_pair),
        "stats": manifest["stats"],
        "params": manifest["params"],
        "samples": sample_rows,
    }


def _nest(by_pair: Counter[tuple[str, str, str]]) -> dict[str, dict[str, dict[str, int]]]:
    """{query lang: {passage lang: {batch type: rows}}}, sorted."""
    nested: dict[str, dict[str, dict[str, int]]] = {}
    for (query, passage, batch_type), n in sorted(by_pair.items()):
        nested.setdefault(query, {}).setdefault(passage, {})[batch_type] = n
    return nested


def _pair_table(by_pair: dict[str, dict[str, dict[str, int]]]) -> Table:
    """A batch store's rows by (query language, passage language), split by batch type."""
    table = Table("query lang", "passage lang", "rows", "by batch type")
    for query, passages in by_pair.items():
        for passage, types in passages.items():
            table.add_row(query, passage, str(sum(types.values())), ", ".join(f"{t}={n}" for t, n in types.items()))
    return table


def _short(value, width: int = 80) -> str:
    text = json.dumps(value, ensure_ascii=False) if not isinstance(value, str) else value
    return text if len(text) <= width else text[: width - 1] + "…"


@click.command("inspect")
@click.argument("directory", type=click.Path(exists=True, file_okay=False))
@click.option("-n", "--samples", default=3, show_default=True, help="Sample rows to show.")
@click.option("--json", "as_json", is_flag=True, help="Print the summary as JSON.")
def inspect_cmd(directory: str, samples: int, as_json: bool) -> None:
    """Summarize a shard directory: manifest, rows per language and origin, samples."""
    summary = summarize(ShardStore.open(directory), samples)
    if as_json:
        click.echo(json.dumps(summary, indent=2, ensure_ascii=False, default=str))
        return
    console = wide_console(stderr=False)
    console.print(
        f"[bold]{summary['path']}[/]  stage={summary['stage']} schema={summary['schema']} "
        f"shards={summary['shards']} mtqa {summary['tool']['version']}"
    )
    totals = summary["totals"]
    console.print(f"rows: {totals['rows']}   rejects: {totals['rejects']}")
    if totals["rows_by_lang"]:
        table = Table("language", "rows", *(["by origin"] if summary["rows_by_lang_origin"] else []))
        for lang, n in sorted(totals["rows_by_lang"].items()):
            origins = ", ".join(
                f"{k.split('/')[1]}={v}" for k, v in summary["rows_by_lang_origin"].items() if k.split("/")[0] == lang
            )
            table.add_row(lang, str(n), *([origins] if summary["rows_by_lang_origin"] else []))
        console.print(table)
    if summary["rows_by_lang_pair"]:
        console.print(_pair_table(summary["rows_by_lang_pair"]))
    if summary["stats"]:
        console.print("stats: " + json.dumps(summary["stats"], ensure_ascii=False))
    for row in summary["samples"]:
        console.print("—" * 40)
        for key, value in row.items():
            console.print(f"  [cyan]{key}[/]: {_short(value)}", highlight=False, markup=True)


@click.command("validate")
@click.argument("directory", type=click.Path(exists=True, file_okay=False))
@click.option("--fast", is_flag=True, help="Checksums and row counts only, not the record contents.")
def validate_cmd(directory: str, fast: bool) -> None:
    """Re-check checksums, row counts and schema of every file; exit 1 on any mismatch."""
    store = ShardStore.open(directory, check=False)
    problems = store.validate(check_records=not fast)
    if problems:
        for problem in problems:
            click.echo(f"FAIL {problem}", err=True)
        raise click.ClickException(f"{directory}: {len(problems)} problem(s)")
    files = len(store.files()) + len(store.files(rejects=True))
    click.echo(f"OK {directory}: {files} files, {store.manifest['totals']['rows']} rows match the manifest")
