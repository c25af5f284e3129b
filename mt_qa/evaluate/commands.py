"""What ``mtqa evaluate lareqa|beir|tatoeba`` do once their options are parsed: open the encoder,
claim the report directory, evaluate, write the report. The CLI (``cli.py``) only parses and prints.

``encoder_kw`` is the evaluators' shared encoder options (``cli.encoder_options``) by name.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from mt_qa.errors import MtqaError
from mt_qa.evaluate.report import REPORT
from mt_qa.io import atomic_write_bytes, atomic_write_json
from mt_qa.outdir import claim_output


def open_encoder(encoder_kw: dict[str, Any]):
    from mt_qa.evaluate.encode import Encoder
    from mt_qa.torchdevice import check_device

    kw = encoder_kw
    check_device(kw["device"])
    return Encoder(kw["model"], device=kw["device"], batch_size=kw["batch_size"], max_length=kw["max_length"],
                   normalize=not kw["no_normalize"], cache_dir=False if kw["no_cache"] else kw["cache_dir"],
                   progress=not kw["quiet"])


def _sources(data: tuple[str, ...] | list[str]) -> list[str]:
    return sorted(str(Path(d).resolve()) for d in data)


def claim_report(out: Path, kind: str, identity: dict[str, Any], overwrite: bool) -> None:
    """Claim and lock --out (``mt_qa/outdir.py``): a report of another model/data (``identity``: kind,
    model hash, sources) is replaced only with --overwrite, a directory that is not an mtqa report never."""
    path = out / REPORT

    def same_run() -> bool:
        try:
            old = json.loads(path.read_text())
            return {"kind": old.get("kind"), "model": old.get("model", {}).get("content_sha256"),
                    "sources": sorted(str(b.get("source")) for b in old.get("benchmarks", {}).values())} == identity
        except (OSError, ValueError, AttributeError, TypeError):
            return False

    claim_output(out, markers=(REPORT,), same_run=same_run, overwrite=overwrite, what=f"{kind} report directory",
                 overwrite_hint="--overwrite (a report of another model or data)")


def run_lareqa(data: tuple[str, ...], out: Path, encoder_kw: dict[str, Any], languages: list[str] | None,
               names: list[str] | None, ties: str, plots: bool) -> dict[str, Any]:
    """Evaluate on LAReQA-format benchmarks and write the report, per-query files and plots; the report."""
    from mt_qa.evaluate.pipeline import Prefixes, evaluate_lareqa
    from mt_qa.evaluate.report import write_lareqa_report

    kw = encoder_kw
    encoder = open_encoder(kw)
    claim_report(out, "lareqa", {"kind": "lareqa", "model": encoder.model_hash, "sources": _sources(data)},
                 kw["overwrite"])
    try:
        result = evaluate_lareqa(list(data), encoder, languages=languages,
                                 prefixes=Prefixes(kw["query_prefix"], kw["passage_prefix"]), ties=ties,
                                 names=names, progress=not kw["quiet"])
    finally:
        encoder.close()
    report = result["report"]
    if kw["label"]:
        report["label"] = kw["label"]
    write_lareqa_report(out, report, result["results"], plots=plots)
    return report


def run_beir(data: tuple[str, ...], out: Path, encoder_kw: dict[str, Any], split: str, queries: str | None,
             qrels: str | None, k: int, chunk_docs: int, use_title: bool) -> dict[str, Any]:
    """Evaluate on BEIR/MIRACL-layout benchmarks, write run files and the report; the entries by benchmark."""
    from mt_qa.evaluate.beir import beir_report, evaluate_beir, load_beir
    from mt_qa.evaluate.report import beir_markdown

    kw = encoder_kw
    if (queries or qrels) and len(data) > 1:
        raise MtqaError("--queries/--qrels apply to a single DATA directory")
    encoder = open_encoder(kw)
    claim_report(out, "beir", {"kind": "beir", "model": encoder.model_hash, "sources": _sources(data)},
                 kw["overwrite"])
    out.mkdir(parents=True, exist_ok=True)
    entries = {}
    try:
        for d in data:
            bench = load_beir(d, split, queries=queries, qrels=qrels)
            entry = evaluate_beir(bench, encoder, out, k=k, query_prefix=kw["query_prefix"],
                                  passage_prefix=kw["passage_prefix"], use_title=use_title,
                                  chunk_docs=chunk_docs, progress=not kw["quiet"])
            entry["source"] = str(Path(d).resolve())
            atomic_write_json(out / f"per_query_{bench.name}.json", entry["per_query"])
            entries[bench.name] = entry
    finally:
        encoder.close()
    report = beir_report(encoder, entries, {"query": kw["query_prefix"], "passage": kw["passage_prefix"]})
    if kw["label"]:
        report["label"] = kw["label"]
    atomic_write_json(out / REPORT, report)
    atomic_write_bytes(out / "report.md", beir_markdown(report).encode())
    return entries


def run_tatoeba(data: str, out: Path, encoder_kw: dict[str, Any], languages: list[str] | None, prefix: str,
                trained_languages: list[str] | None) -> dict[str, Any]:
    """Bitext retrieval on Tatoeba; writes report.json and report.md; the report."""
    from mt_qa.evaluate.tatoeba import evaluate_tatoeba, tatoeba_markdown

    kw = encoder_kw
    encoder = open_encoder(kw)
    claim_report(out, "tatoeba", {"kind": "tatoeba", "model": encoder.model_hash, "sources": _sources((data,))},
                 kw["overwrite"])
    try:
        report = evaluate_tatoeba(data, encoder, languages=languages, prefix=prefix,
                                  trained_languages=trained_languages)
    finally:
        encoder.close()
    if kw["label"]:
        report["label"] = kw["label"]
    atomic_write_json(out / REPORT, report)
    atomic_write_bytes(out / "report.md", tatoeba_markdown(report).encode())
    return report
