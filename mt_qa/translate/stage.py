"""The translate stage: QA shards in, the same shards plus machine-translated rows out.

Per input shard (output shard names mirror input names, so resume and job arrays work):

1. Every input row passes through unchanged (English ``origin=source`` rows, ``imported``
   translations, earlier ``mt`` rows).
2. For each ``source`` row and each target language, one ``mt`` row is planned, unless the
   group already has a row in that language (an imported translation, say): then it is kept
   and counted, or with ``retranslate_imported`` the imported row is replaced (and written to
   rejects/ with reason ``replaced_by_mt``, never dropped silently).
3. Questions and passage sentences are cut into segments (``segment.py``); the shard's unique
   (source language, segment, target language) items are looked up in the translation cache,
   and the missing ones translated in fixed work units of ``checkpoint_every`` items, each
   committed to the cache as one transaction. A killed run loses at most the unit in flight;
   the rerun finds the committed units in the cache and, because units are cut from the same
   length-sorted list, translates exactly the same remaining batches: the output equals an
   uninterrupted run's.
4. Rows are reassembled; ``answer_sentence_index`` is kept, answers are kept only where the
   English answer text occurs verbatim in the translated answer sentence (names, numbers,
   dates), else dropped; ``mt_length_ratio`` and ``mt_repetition`` are filled.

The shard's stats (in the manifest) hold only counts that do not depend on the cache state or
timing, so a resumed or job-array run writes a byte-identical manifest; cache hits and speed
are in the run's result and summary.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

import pyarrow as pa
from tqdm import tqdm

from mt_qa.languages import Language
from mt_qa.records import QA_SCHEMA
from mt_qa.shards import ShardWriter
from mt_qa.stage import ShardedStage
from mt_qa.translate.cache import Translation, TranslationCache
from mt_qa.translate.config import TranslateConfig, default_cache_path
from mt_qa.translate.engine import make_translator, resolve_engine, resolve_vocab_map
from mt_qa.translate.models import ModelInfo
from mt_qa.translate.plan import open_qa_input, plan_jobs, unique_items
from mt_qa.translate.rows import _Job, _LangSummary, _RunCounters, keep_verbatim_answers, mt_row
from mt_qa.translate.translator import NllbTranslator
from mt_qa.translate.vocab_map import AGREEMENT_THRESHOLD, VocabMap
from mt_qa.translate.work import MapCaches, open_cache, translate_items

WORK_DIR = "_work"  # per-shard checkpoint databases when no shared cache is used

__all__ = ["WORK_DIR", "TranslateConfig", "TranslateStage", "default_cache_path", "keep_verbatim_answers",
           "_Job", "_LangSummary", "_RunCounters"]


class TranslateStage(ShardedStage):
    """Translate QA shards into target languages with NLLB-200 through CTranslate2.

    ``TranslateStage(input_dir, out, config)``; for scripts and tests the config's fields may
    be given as keywords instead, with the target languages third (``"de,zh"``).
    """

    name = "translate"
    schema = QA_SCHEMA
    unit = "seg"

    def __init__(self, input_dir: str | Path, out: str | Path,
                 config: TranslateConfig | str | list[str] | list[Language] | None = None, *, num_tasks: int = 1,
                 task_index: int = 0, overwrite: bool = False, progress: bool = True, on_checkpoint: Any = None,
                 **options: Any):
        if not isinstance(config, TranslateConfig):
            if "options" in options and options["options"] is None:
                del options["options"]
            config = TranslateConfig(langs=config if config is not None else options.pop("langs", []), **options)
        config.validate()
        super().__init__(out, num_tasks=num_tasks, task_index=task_index, overwrite=overwrite, progress=progress)
        self.config = config
        self.langs = config.languages
        self.options = config.options
        self.input_dir = Path(input_dir)
        self.cache_path = config.cache_path
        self.on_checkpoint = on_checkpoint  # (shard, unit, units) after each committed unit: for tests
        self.vocab_map: VocabMap | None = None
        self.translator: NllbTranslator | None = None
        self.cache: TranslationCache | MapCaches | None = None
        self.model: ModelInfo | None = None
        self.counters = _RunCounters(by_lang={lang.code: _LangSummary() for lang in self.langs})

    # ------------------------------------------------------------------ setup
    def open(self) -> None:
        self.src = open_qa_input(self.input_dir)
        engine = resolve_engine(self.config)
        self.device, self.compute_type, self.model = engine.device, engine.compute_type, engine.model
        self.vocab_map = resolve_vocab_map(self.config, self.model, self.input_dir, self.device, self.compute_type)

    def params(self) -> dict[str, Any]:
        extra: dict[str, Any] = {}
        if self.vocab_map is not None:  # only then: manifests of runs without a map stay as they were
            extra["vocab_map"] = {lang.flores: self.vocab_map.digest(lang.flores) for lang in self.langs}
        return extra | {
            "langs": [lang.flores for lang in self.langs],
            "model": self.model.manifest_ref() if self.model else None,
            "compute_type": self.compute_type,
            "decoding": self.options.as_dict(),
            "retranslate_imported": self.config.retranslate_imported,
        }

    def inputs(self) -> list[dict[str, Any]]:
        return [self.src.input_ref()]

    def shard_names(self) -> list[str]:
        return self.src.shard_names()

    def cache_settings(self, compute_type: str) -> dict[str, Any]:
        assert self.model is not None
        return {"model_sha256": self.model.sha256, "compute_type": compute_type, **self.options.as_dict()}

    def check_vocab_map(self, segments: int, threshold: float = AGREEMENT_THRESHOLD,
                        max_rounds: int = 5) -> dict[str, Any]:
        """``--check-vocab-map N``: see ``vocab_check.py``; nothing is translated into the output."""
        from mt_qa.translate.vocab_check import check_vocab_map

        return check_vocab_map(self.config, self.input_dir, segments, threshold, max_rounds)

    # ------------------------------------------------------------------ run
    def prepare(self, todo: list[str]) -> None:
        assert self.model is not None
        self.translator = make_translator(self.config, self.model, self.device, self.compute_type, self.vocab_map)
        if self.cache_path is not None:
            self.cache = open_cache(self.cache_path, self.cache_settings(self.compute_type), self.vocab_map)

    def work(self, todo: list[str]) -> int:
        return 0  # segments: each shard adds what it has to translate once its cache hits are known

    def close(self) -> None:
        if self.cache is not None:
            self.cache.close()
        if self.translator is not None:
            self.translator.close()

    def summary(self) -> dict[str, Any]:
        assert self.model is not None
        counters = self.counters
        return {
            "model": self.model.manifest_ref() | {"path": str(self.model.path)},
            "device": self.device,
            "compute_type": self.compute_type,
            "vocab_map": str(self.vocab_map.path) if self.vocab_map is not None else None,
            "threads": (self.translator.inter_threads, self.translator.intra_threads) if self.translator else None,
            "cache": str(self.cache_path) if self.cache_path else None,
            "segments_translated": counters.segments_translated,
            "segments_cached": counters.segments_cached,
            "segments_per_s": round(counters.segments_translated / counters.translate_seconds, 2)
            if counters.translate_seconds else None,
            "langs": {code: vars(s) for code, s in counters.by_lang.items()},
        }

    # ------------------------------------------------------------------ one shard
    def write_shard(self, name: str, writer: ShardWriter, bar: tqdm) -> None:
        assert self.translator is not None and self.model is not None
        counters = self.counters
        rows = self.src.table(shard=name).to_pylist()
        writer.count("rows.in", len(rows))
        jobs, replaced = plan_jobs(self.config, self.translator, str(self.input_dir), name, rows, writer, counters)

        # Passthrough first (input order), minus imported rows that machine translation replaces.
        keep = [row for row in rows if (row["group_id"], row["lang"]) not in replaced]
        for row in keep:
            writer.count(f"passthrough.{row['origin']}")
        if keep:
            writer.add(pa.Table.from_pylist(keep, schema=QA_SCHEMA))
        for row in rows:
            if (row["group_id"], row["lang"]) in replaced:
                writer.reject(source=str(self.input_dir), location=f"{name}: {row['id']}", record_id=row["id"],
                              reason="replaced_by_mt", detail="imported translation replaced by machine translation "
                              "(--retranslate-imported)", payload=row)

        items = unique_items(jobs, writer)
        per_lang_unique = Counter(item.tgt_lang for item in items.values())
        for lang in self.langs:
            counters.by_lang[lang.code].unique += per_lang_unique.get(lang.flores, 0)

        done = translate_items(self.config, self.translator, self.vocab_map,
                               self.cache_settings(self.translator.compute_type),
                               name, list(items.values()), self.cache, self.store.root / WORK_DIR, counters, bar,
                               self.on_checkpoint)

        # Deterministic signal counts over the shard's unique items.
        writer.count("segments.capped", sum(t.capped for t in done.values()))
        writer.count("tokens.source", sum(t.src_tokens for t in done.values()))
        writer.count("tokens.target", sum(t.tgt_tokens for t in done.values()))

        by_pair: dict[tuple[str, str], dict[str, Translation]] = {}
        for ident, item in items.items():
            by_pair.setdefault((item.src_lang, item.tgt_lang), {})[item.text] = done[ident]
        out_rows = []
        for job in jobs:
            translated = by_pair.get((job.row["lang_code"], job.lang.flores), {})
            row = self._mt_row(job, translated, writer, name, counters)
            if row is not None:
                out_rows.append(row)
        if out_rows:
            writer.add(pa.Table.from_pylist(out_rows, schema=QA_SCHEMA))

    def commit_shard(self, name: str, bar: tqdm) -> None:
        super().commit_shard(name, bar)
        if self.cache is None:
            self._drop_checkpoint(name)

    def _drop_checkpoint(self, name: str) -> None:
        base = self.store.root / WORK_DIR / f"{name}.sqlite"
        for suffix in ("", "-wal", "-shm", "-journal"):
            Path(f"{base}{suffix}").unlink(missing_ok=True)
        try:
            (self.store.root / WORK_DIR).rmdir()
        except OSError:
            pass  # other shards' checkpoints are still there

    def _mt_row(self, job: _Job, translated: dict[str, Translation], writer: ShardWriter, shard: str,
                counters: _RunCounters) -> dict[str, Any] | None:
        assert self.model is not None
        return mt_row(job, translated, writer, shard, counters, str(self.input_dir), self.model.detail)
