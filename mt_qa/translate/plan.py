"""Planning one shard: which rows get machine-translated into which language, and the shard's
unique segments (a segment that occurs in many rows, or many languages' rows, is one item)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mt_qa.errors import MtqaError
from mt_qa.records import QA_SCHEMA
from mt_qa.shards import ShardStore, ShardWriter
from mt_qa.translate.cache import segment_key
from mt_qa.translate.config import TranslateConfig
from mt_qa.translate.rows import _Job, _RunCounters
from mt_qa.translate.segment import SourcePlan, normalize, plan_row
from mt_qa.translate.translator import NllbTranslator


@dataclass
class _Item:
    """One unique thing to translate in a shard."""

    src_lang: str
    text: str
    tgt_lang: str
    first: int  # order of first appearance: the tie-breaker that keeps units deterministic
    key: bytes = b""


def open_qa_input(input_dir: Path) -> ShardStore:
    src = ShardStore.open(input_dir)
    if src.schema is not QA_SCHEMA:
        raise MtqaError(f"{input_dir}: holds {src.manifest.get('schema')!r} rows, translate reads QA shards "
                        "(the output of collect)")
    return src


def plan_jobs(config: TranslateConfig, translator: NllbTranslator, source: str, name: str,
              rows: list[dict[str, Any]], writer: ShardWriter,
              counters: _RunCounters) -> tuple[list[_Job], set[tuple[str, str]]]:
    """The ``mt`` rows to make from one shard's rows, and the imported rows they replace."""
    tokenizer = translator.tokenizer
    existing = {(row["group_id"], row["lang"]): row["origin"] for row in rows}
    sources = [row for row in rows if row["origin"] == "source"]
    # Tokenize every distinct text once up front (batched); splitting only adds a few more.
    memo: dict[str, int] = {}
    texts = sorted({normalize(t) for row in sources for t in [row["question"], *row["passage_sentences"]]})
    for text, pieces in zip(texts, tokenizer.encode(texts), strict=True):
        memo[text] = len(pieces)

    def count(text: str) -> int:
        if text not in memo:
            memo[text] = tokenizer.count(text)
        return memo[text]

    jobs: list[_Job] = []
    replaced: set[tuple[str, str]] = set()
    for row in sources:
        if row["lang_code"] not in translator.vocabulary:
            raise MtqaError(f"{source}: shard {name}: row {row['id']}: source language "
                            f"{row['lang_code']!r} has no token in the model {config.model}")
        plan: SourcePlan | None = None
        for lang in config.languages:
            if lang.flores == row["lang_code"]:
                writer.count(f"skipped.same_language.{lang.code}")
                continue
            origin = existing.get((row["group_id"], lang.code))
            if origin is not None:
                if origin == "imported" and config.retranslate_imported:
                    replaced.add((row["group_id"], lang.code))
                    writer.count(f"replaced_imported.{lang.code}")
                else:
                    writer.count(f"skipped.existing.{lang.code}")
                    counters.by_lang[lang.code].existing += 1
                    continue
            if plan is None:
                plan = plan_row(row["question"], row["passage_sentences"], count, config.options.max_input_tokens)
                writer.count("segments.split_long", plan.split)
            jobs.append(_Job(row, plan, lang))
    return jobs, replaced


def unique_items(jobs: list[_Job], writer: ShardWriter) -> dict[tuple[str, str, str], _Item]:
    """The shard's unique (source language, segment, target language) items, in order of first appearance."""
    items: dict[tuple[str, str, str], _Item] = {}
    occurrences = 0
    for job in jobs:
        for piece in job.plan.pieces():
            occurrences += 1
            ident = (job.row["lang_code"], piece, job.lang.flores)
            if ident not in items:
                items[ident] = _Item(job.row["lang_code"], piece, job.lang.flores, len(items),
                                     segment_key(job.row["lang_code"], piece))
    writer.count("segments.occurrences", occurrences)
    writer.count("segments.unique", len(items))
    return items
