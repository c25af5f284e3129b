"""``mtqa inspect`` and ``mtqa validate``: look into and re-check any stage's shard directory."""

from __future__ import annotations

import json
from collections import Counter

import click
from rich.console import Console
from rich.table import Table

from mt_qa.shards import ShardStore


def summarize(store: ShardStore, samples: int = 3) -> dict:
    """Counts by language (and by origin / batch type when the schema has them), and samples."""
    manifest = store.manifest
    by_lang_origin: Counter[tuple[str, str]] = Counter()
    sample_rows: list[dict] = []
    group_cols = [c for c in ("lang", "origin", "batch_type", "query_lang") if c in store.schema.names]
    for path in store.files():
        table = store.read(path)
        if group_cols[:2] == ["lang", "origin"]:
            for row in table.group_by(["lang", "origin"]).aggregate([([], "count_all")]).to_pylist():
                by_lang_origin[(row["lang"], row["origin"])] += row["count_all"]
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
        "stats": manifest["stats"],
        "params": manifest["params"],
        "samples": sample_rows,
    }


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
    console = Console()
    console.print(
        f"[bold]{summary['path']}[/]  stage={summary['stage']} schema={summary['schema']} "
        f"shards={summary['shards']} mtqa {summary['tool']['version']}"
    )
    totals = summary["totals"]
    console.print(f"rows: {totals['rows']}   rejects: {totals['rejects']}")
    table = Table("language", "rows", *(["by origin"] if summary["rows_by_lang_origin"] else []))
    for lang, n in sorted(totals["rows_by_lang"].items()):
        origins = ", ".join(
            f"{k.split('/')[1]}={v}" for k, v in summary["rows_by_lang_origin"].items() if k.split("/")[0] == lang
        )
        table.add_row(lang, str(n), *([origins] if summary["rows_by_lang_origin"] else []))
    console.print(table)
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
