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

import json
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyarrow as pa
from tqdm import tqdm

from mt_qa.cachedir import translation_cache_path
from mt_qa.errors import MtqaError
from mt_qa.languages import Language, parse_langs, resolve
from mt_qa.records import QA_SCHEMA, qa_id
from mt_qa.shards import ShardStore, ShardWriter, task_shards
from mt_qa.translate.cache import Translation, TranslationCache, segment_key
from mt_qa.translate.models import DEFAULT_MODEL, ModelInfo, resolve_model
from mt_qa.translate.models import _lock as model_lock
from mt_qa.translate.segment import SourcePlan, normalize, plan_row, reassemble
from mt_qa.translate.translator import DecodeOptions, NllbTranslator, resolve_compute_type, resolve_device
from mt_qa.translate.vocab_map import AGREEMENT_THRESHOLD, Agreement, VocabMap

WORK_DIR = "_work"  # per-shard checkpoint databases when no shared cache is used


def default_cache_path() -> Path:
    return translation_cache_path()  # node-local inside a Slurm job: mt_qa/cachedir.py


@dataclass
class _Item:
    """One unique thing to translate in a shard."""

    src_lang: str
    text: str
    tgt_lang: str
    first: int  # order of first appearance: the tie-breaker that keeps units deterministic
    key: bytes = b""


@dataclass
class _Job:
    row: dict[str, Any]
    plan: SourcePlan
    lang: Language


@dataclass
class _LangSummary:
    rows: int = 0
    existing: int = 0
    rejected: int = 0
    unique: int = 0
    cached: int = 0
    translated: int = 0


@dataclass
class _RunCounters:
    segments_translated: int = 0
    segments_cached: int = 0
    translate_seconds: float = 0.0
    by_lang: dict[str, _LangSummary] = field(default_factory=dict)


def keep_verbatim_answers(answers: list[str], sentences: list[str], index: int) -> tuple[list[str], list[int]]:
    """Answers whose exact text is in the translated answer sentence, with passage offsets.

    Translating an answer span on its own is unreliable (no context, and its translation
    rarely matches the passage's wording), so only answers that survive verbatim (names,
    numbers, dates) are kept, located inside the sentence the English answer was in.
    """
    if not 0 <= index < len(sentences):
        return [], []
    offset = sum(len(s) for s in sentences[:index])
    sentence = sentences[index]
    kept: list[str] = []
    starts: list[int] = []
    for answer in answers:
        answer = answer.strip()
        if len(answer) < 2 or answer in kept:
            continue
        pos = _find_bounded(sentence, answer)
        if pos >= 0:
            kept.append(answer)
            starts.append(offset + pos)
    return kept, starts


def _joins_word(a: str, b: str) -> bool:
    """Would ``a`` directly followed by ``b`` run two words together (same kind of letters)?"""
    return a.isalnum() and b.isalnum() and a.isascii() == b.isascii()


def _find_bounded(text: str, needle: str) -> int:
    pos = text.find(needle)
    while pos >= 0:
        end = pos + len(needle)
        left_ok = pos == 0 or not _joins_word(text[pos - 1], needle[0])
        right_ok = end == len(text) or not _joins_word(needle[-1], text[end])
        if left_ok and right_ok:
            return pos
        pos = text.find(needle, pos + 1)
    return -1


class TranslateStage:
    """Translate QA shards into target languages with NLLB-200 through CTranslate2."""

    def __init__(
        self,
        input_dir: str | Path,
        out: str | Path,
        langs: str | list[str] | list[Language],
        model: str = DEFAULT_MODEL,
        device: str = "auto",
        compute_type: str | None = "auto",
        options: DecodeOptions | None = None,
        inter_threads: int | None = None,
        intra_threads: int | None = None,
        max_batch_tokens: int = 4096,
        cache: str | Path | None = "default",
        checkpoint_every: int = 1000,
        retranslate_imported: bool = False,
        quantization: str = "int8",
        model_cache: str | Path | None = None,
        num_tasks: int = 1,
        task_index: int = 0,
        overwrite: bool = False,
        progress: bool = True,
        on_checkpoint: Callable[[str, int, int], None] | None = None,
        vocab_map: str | Path | None = "none",
        calibrate_segments: int = 1000,
        device_index: int | list[int] = 0,
        max_batch_memory_mib: float | None = None,
    ):
        if isinstance(langs, str):
            self.langs = parse_langs(langs)
        else:
            self.langs = [lang if isinstance(lang, Language) else resolve(lang) for lang in langs]
        if not self.langs:
            raise MtqaError("--langs: give at least one target language, e.g. --langs de,ar,zh")
        if checkpoint_every < 1:
            raise MtqaError("--checkpoint-every must be at least 1")
        self.options = options or DecodeOptions()
        self.options.check()
        task_shards([], num_tasks, task_index)  # validates the task index range
        self.input_dir = Path(input_dir)
        self.out = Path(out)
        self.model_spec = model
        self.device = device
        self.compute_type = compute_type
        self.inter_threads = inter_threads
        self.intra_threads = intra_threads
        self.max_batch_tokens = max_batch_tokens
        self.cache_path = default_cache_path() if cache == "default" else (Path(cache) if cache else None)
        self.checkpoint_every = checkpoint_every
        self.retranslate_imported = retranslate_imported
        self.quantization = quantization
        self.model_cache = model_cache
        self.num_tasks = num_tasks
        self.task_index = task_index
        self.overwrite = overwrite
        self.progress = progress
        self.on_checkpoint = on_checkpoint
        self.vocab_map_spec = None if vocab_map in (None, "", "none") else str(vocab_map)
        if calibrate_segments < 1:
            raise MtqaError("--calibrate-segments must be at least 1")
        self.calibrate_segments = calibrate_segments
        self.device_index = device_index
        self.max_batch_memory_mib = max_batch_memory_mib
        self.vocab_map: VocabMap | None = None
        self.store = ShardStore(out, "translate", QA_SCHEMA)
        self.translator: NllbTranslator | None = None
        self.model: ModelInfo | None = None

    # ------------------------------------------------------------------ setup
    def _open_input(self) -> ShardStore:
        src = ShardStore.open(self.input_dir)
        if src.schema is not QA_SCHEMA:
            raise MtqaError(f"{self.input_dir}: holds {src.manifest.get('schema')!r} rows, translate reads QA shards "
                            "(the output of collect)")
        return src

    def params(self, compute_type: str) -> dict[str, Any]:
        extra: dict[str, Any] = {}
        if self.vocab_map is not None:  # only then: manifests of runs without a map stay as they were
            extra["vocab_map"] = {lang.flores: self.vocab_map.digest(lang.flores) for lang in self.langs}
        return extra | {
            "langs": [lang.flores for lang in self.langs],
            "model": self.model.manifest_ref() if self.model else None,
            "compute_type": compute_type,
            "decoding": self.options.as_dict(),
            "retranslate_imported": self.retranslate_imported,
        }

    def cache_settings(self, compute_type: str) -> dict[str, Any]:
        assert self.model is not None
        return {"model_sha256": self.model.sha256, "compute_type": compute_type, **self.options.as_dict()}

    def _open_cache(self, path: Path, compute_type: str) -> TranslationCache | _MapCaches:
        if self.vocab_map is None:
            return TranslationCache(path, self.cache_settings(compute_type))
        return _MapCaches(path, self.cache_settings(compute_type), self.vocab_map)

    def _translator(self, device: str, compute_type: str, vocab_map: VocabMap | None) -> NllbTranslator:
        assert self.model is not None
        return NllbTranslator(
            self.model, device=device, compute_type=compute_type, inter_threads=self.inter_threads,
            intra_threads=self.intra_threads, options=self.options, max_batch_tokens=self.max_batch_tokens,
            vocab_map=vocab_map, device_index=self.device_index, max_batch_memory_mib=self.max_batch_memory_mib)

    def _resolve_vocab_map(self, device: str, compute_type: str) -> VocabMap | None:
        """``--vocab-map``: none, a directory made by `mtqa model vocab-map`, or auto (found or calibrated)."""
        from mt_qa.translate.vocab_map import auto_map_dir, calibrate, input_segments

        assert self.model is not None
        if self.vocab_map_spec is None:
            return None
        codes = [lang.flores for lang in self.langs]
        if self.vocab_map_spec != "auto":
            vmap = VocabMap.load(self.vocab_map_spec, self.model.sha256)
            vmap.require(codes)
            return vmap
        directory = auto_map_dir(self.model)
        with model_lock(directory):  # job-array tasks starting together calibrate once
            vmap = (VocabMap.load(directory, self.model.sha256) if (directory / "vocab_map.json").is_file()
                    else VocabMap(self.model.sha256))
            missing = [code for code in codes if code not in vmap.langs]
            if missing:
                translator = self._translator(device, compute_type, None)
                try:
                    segments = input_segments(self.input_dir, translator.tokenizer, self.options.max_input_tokens,
                                              limit=self.calibrate_segments)
                    for code in missing:
                        calibrate(translator, segments, code, vmap, f"calibration: first {len(segments)} segments "
                                                                    f"of {self.input_dir}")
                finally:
                    translator.close()
                vmap.save(directory)
        return vmap

    def check_vocab_map(self, segments: int, threshold: float = AGREEMENT_THRESHOLD,
                        max_rounds: int = 5) -> dict[str, Any]:
        """``--check-vocab-map N``: N held-out segments decoded with and without the map, per language.

        With ``--vocab-map auto`` a language below ``threshold`` is enlarged with the
        unrestricted outputs' pieces and checked again on the next N held-out segments, up to
        ``max_rounds`` times; the enlarged map is saved. Nothing is translated into the output.
        The result is also written to the map's ``check.json``.
        """
        from mt_qa.translate.vocab_map import auto_map_dir, check, input_segments, write_check

        if self.vocab_map_spec is None:
            raise MtqaError("--check-vocab-map needs --vocab-map auto or DIR")
        if segments < 1:
            raise MtqaError("--check-vocab-map N: N must be at least 1")
        self._open_input()
        device = resolve_device(self.device)
        compute_type = resolve_compute_type(device, self.compute_type)
        self.model = resolve_model(self.model_spec, self.quantization, [lang.flores for lang in self.langs],
                                   self.model_cache)
        vmap = self._resolve_vocab_map(device, compute_type)
        assert vmap is not None
        translator = self._translator(device, compute_type, vmap)
        translator.max_engines = 2  # plain and mapped side by side
        # Held out = after the segments calibration uses (auto, and `model vocab-map --calibrate` with the
        # same number as --calibrate-segments): a map is never checked on the text it was learned from.
        skip = self.calibrate_segments
        results: dict[str, Agreement] = {}
        rounds: dict[str, int] = {}
        try:
            for lang in self.langs:
                code, offset = lang.flores, skip
                for round_ in range(1, max_rounds + 1):
                    held_out = input_segments(self.input_dir, translator.tokenizer, self.options.max_input_tokens,
                                              skip=offset, limit=segments)
                    if not held_out:
                        raise MtqaError(f"{self.input_dir}: no held-out segments left after {offset} (calibration "
                                        "and earlier rounds): use a smaller N or more input")
                    result, produced = check(translator, held_out, code)
                    results[code], rounds[code] = result, round_
                    if result.passed(threshold) or self.vocab_map_spec != "auto" or round_ == max_rounds:
                        break
                    vmap.add(code, produced, f"enlarged: {len(held_out)} held-out segments after {offset}")
                    translator.close()  # the map changed: reload its view
                    offset += len(held_out)
        finally:
            translator.close()
        if self.vocab_map_spec == "auto":
            with model_lock(auto_map_dir(self.model)):
                vmap.save(auto_map_dir(self.model))
        assert vmap.path is not None
        write_check(vmap.path, results, threshold, {"model": self.model.manifest_ref(), "rounds": rounds,
                                                    "beam_size": self.options.beam_size,
                                                    "compute_type": compute_type, "input": str(self.input_dir)})
        return {"map": str(vmap.path), "threshold": threshold, "rounds": rounds,
                "passed": all(r.passed(threshold) for r in results.values()),
                "langs": {code: r.as_dict() | {"map_tokens": len(vmap.candidates(code, translator.vocabulary_list))}
                          for code, r in results.items()}}

    # ------------------------------------------------------------------ run
    def run(self) -> dict[str, Any]:
        started = time.perf_counter()
        src = self._open_input()
        device = resolve_device(self.device)
        compute_type = resolve_compute_type(device, self.compute_type)
        self.model = resolve_model(self.model_spec, self.quantization, [lang.flores for lang in self.langs],
                                   self.model_cache)
        self.vocab_map = self._resolve_vocab_map(device, compute_type)
        self.store.begin(self.params(compute_type), [src.input_ref()], overwrite=self.overwrite)
        names = src.shard_names()
        mine = task_shards(names, self.num_tasks, self.task_index)
        todo = [name for name in mine if not self.store.is_done(name)]
        counters = _RunCounters(by_lang={lang.code: _LangSummary() for lang in self.langs})
        cache = None
        bar = tqdm(total=0, desc="translate", unit="seg", disable=not self.progress, dynamic_ncols=True)
        try:
            if todo:
                self.translator = self._translator(device, compute_type, self.vocab_map)
                if self.cache_path is not None:
                    cache = self._open_cache(self.cache_path, compute_type)
            for name in todo:
                self._run_shard(src, name, cache, counters, bar)
        finally:
            bar.close()
            if cache is not None:
                cache.close()
            if self.translator is not None:
                self.translator.close()
        result = self.store.finish(names, len(mine), len(todo))
        seconds = time.perf_counter() - started
        return result | {
            "model": self.model.manifest_ref() | {"path": str(self.model.path)},
            "device": device,
            "compute_type": compute_type,
            "vocab_map": str(self.vocab_map.path) if self.vocab_map is not None else None,
            "threads": (self.translator.inter_threads, self.translator.intra_threads) if self.translator else None,
            "cache": str(self.cache_path) if self.cache_path else None,
            "segments_translated": counters.segments_translated,
            "segments_cached": counters.segments_cached,
            "segments_per_s": round(counters.segments_translated / counters.translate_seconds, 2)
            if counters.translate_seconds else None,
            "langs": {code: vars(s) for code, s in counters.by_lang.items()},
            "seconds": round(seconds, 2),
        }

    # ------------------------------------------------------------------ one shard
    def _run_shard(self, src: ShardStore, name: str, cache: TranslationCache | None, counters: _RunCounters,
                   bar: tqdm) -> None:
        rows = src.table(shard=name).to_pylist()
        writer = self.store.writer(name)
        writer.count("rows.in", len(rows))
        jobs, replaced = self._plan_jobs(name, rows, writer, counters)

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

        # Unique work items, in order of first appearance.
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
        per_lang_unique = Counter(item.tgt_lang for item in items.values())
        for lang in self.langs:
            counters.by_lang[lang.code].unique += per_lang_unique.get(lang.flores, 0)

        done = self._translate_items(name, list(items.values()), cache, counters, bar)

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
        writer.commit()
        if cache is None:
            self._drop_checkpoint(name)

    def _plan_jobs(self, name: str, rows: list[dict[str, Any]], writer: ShardWriter,
                   counters: _RunCounters) -> tuple[list[_Job], set[tuple[str, str]]]:
        assert self.translator is not None
        tokenizer = self.translator.tokenizer
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
            if row["lang_code"] not in self.translator.vocabulary:
                raise MtqaError(f"{self.input_dir}: shard {name}: row {row['id']}: source language "
                                f"{row['lang_code']!r} has no token in the model {self.model_spec}")
            plan: SourcePlan | None = None
            for lang in self.langs:
                if lang.flores == row["lang_code"]:
                    writer.count(f"skipped.same_language.{lang.code}")
                    continue
                origin = existing.get((row["group_id"], lang.code))
                if origin is not None:
                    if origin == "imported" and self.retranslate_imported:
                        replaced.add((row["group_id"], lang.code))
                        writer.count(f"replaced_imported.{lang.code}")
                    else:
                        writer.count(f"skipped.existing.{lang.code}")
                        counters.by_lang[lang.code].existing += 1
                        continue
                if plan is None:
                    plan = plan_row(row["question"], row["passage_sentences"], count, self.options.max_input_tokens)
                    writer.count("segments.split_long", plan.split)
                jobs.append(_Job(row, plan, lang))
        return jobs, replaced

    def _translate_items(self, name: str, items: list[_Item], cache: TranslationCache | _MapCaches | None,
                         counters: _RunCounters, bar: tqdm) -> dict[tuple[str, str, str], Translation]:
        """Cached translations plus new ones, translated and committed unit by unit."""
        assert self.translator is not None and self.model is not None
        translator = self.translator
        store = cache
        if store is None:
            path = self.store.root / WORK_DIR / f"{name}.sqlite"
            store = self._open_cache(path, translator.compute_type)
        try:
            done: dict[tuple[str, str, str], Translation] = {}
            by_tgt: dict[str, list[_Item]] = {}
            for item in items:
                by_tgt.setdefault(item.tgt_lang, []).append(item)
            for tgt, group in by_tgt.items():
                found = store.get_many(tgt, [item.key for item in group])
                for item in group:
                    if item.key in found:
                        done[(item.src_lang, item.text, item.tgt_lang)] = found[item.key]
            missing = [item for item in items if (item.src_lang, item.text, item.tgt_lang) not in done]
            hits = len(items) - len(missing)
            counters.segments_cached += hits
            codes = {lang.flores: lang.code for lang in self.langs}
            for item in items:
                if (item.src_lang, item.text, item.tgt_lang) in done:
                    counters.by_lang[codes[item.tgt_lang]].cached += 1
            if not missing:
                return done
            pieces_of = dict(zip((item.text for item in missing),
                                 translator.tokenizer.encode([item.text for item in missing]), strict=True))
            if self.vocab_map is None:
                missing.sort(key=lambda item: (len(pieces_of[item.text]), item.first))
            else:  # one language's map per engine load: units run language by language
                order = {lang.flores: n for n, lang in enumerate(self.langs)}
                missing.sort(key=lambda item: (order[item.tgt_lang], len(pieces_of[item.text]), item.first))
            bar.total += len(missing)
            bar.set_postfix_str(f"{name}, {hits} cached", refresh=False)
            bar.refresh()
            units = [missing[i:i + self.checkpoint_every] for i in range(0, len(missing), self.checkpoint_every)]
            for number, unit in enumerate(units, 1):
                started = time.perf_counter()
                results = translator.translate_pieces([pieces_of[item.text] for item in unit],
                                                      [item.src_lang for item in unit],
                                                      [item.tgt_lang for item in unit], on_batch=bar.update)
                counters.translate_seconds += time.perf_counter() - started
                store.put_many((item.tgt_lang, item.key, result) for item, result in zip(unit, results, strict=True))
                for item, result in zip(unit, results, strict=True):
                    done[(item.src_lang, item.text, item.tgt_lang)] = result
                    counters.by_lang[codes[item.tgt_lang]].translated += 1
                counters.segments_translated += len(unit)
                if self.on_checkpoint is not None:
                    self.on_checkpoint(name, number, len(units))
            return done
        finally:
            if cache is None:
                store.close()

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
        row, plan, lang = job.row, job.plan, job.lang
        texts = {piece: translated[piece].text for piece in plan.pieces()}
        question, sentences = reassemble(plan, texts, lang)
        passage = "".join(sentences)
        new_id = qa_id(row["group_id"], lang.code)
        if not question or (row["passage"].strip() and not passage.strip()):
            what = "question" if not question else "passage"
            writer.reject(source=str(self.input_dir), location=f"{shard}: {row['id']} -> {lang.code}",
                          record_id=new_id, reason="empty_translation",
                          detail=f"the model returned nothing for the {what}",
                          payload={"id": new_id, "question": question, "passage_sentences": sentences})
            counters.by_lang[lang.code].rejected += 1
            return None
        pieces = plan.pieces()
        src_tokens = sum(translated[p].src_tokens for p in pieces)
        tgt_tokens = sum(translated[p].tgt_tokens for p in pieces)
        repetition = max((translated[p].repetition for p in pieces), default=0.0)
        answers, starts = keep_verbatim_answers(row["answers"], sentences, row["answer_sentence_index"])
        writer.count("answers.kept", len(answers))
        writer.count("answers.dropped", len({a.strip() for a in row["answers"] if a.strip()}) - len(answers))
        writer.count(f"rows.mt.{lang.code}")
        counters.by_lang[lang.code].rows += 1
        return {
            **row,
            "id": new_id,
            "lang": lang.code,
            "lang_code": lang.flores,
            "question": question,
            "passage": passage,
            "passage_sentences": sentences,
            "answers": answers,
            "answer_starts": starts,
            "origin": "mt",
            "origin_detail": self.model.detail,
            "mt_length_ratio": round(tgt_tokens / src_tokens, 4) if src_tokens else None,
            "mt_repetition": round(repetition, 4),
        }


class _MapCaches:
    """The translation cache when a vocabulary map is used: one cache config per target language.

    A map changes what the model may output, so its sha256 joins the key, per language (adding
    a language to a run, or enlarging one language's map, keeps the other languages' entries).
    """

    def __init__(self, path: Path, settings: dict[str, Any], vmap: VocabMap):
        self.path, self.settings, self.vmap = path, settings, vmap
        self._caches: dict[str, TranslationCache] = {}

    def _for(self, lang: str) -> TranslationCache:
        if lang not in self._caches:
            self._caches[lang] = TranslationCache(self.path, self.settings | {"vocab_map": self.vmap.digest(lang)})
        return self._caches[lang]

    def get_many(self, lang: str, keys: list[bytes]) -> dict[bytes, Translation]:
        return self._for(lang).get_many(lang, keys)

    def put_many(self, entries: Any) -> None:
        by_lang: dict[str, list[tuple[str, bytes, Translation]]] = {}
        for lang, key, value in entries:
            by_lang.setdefault(lang, []).append((lang, key, value))
        for lang, rows in by_lang.items():
            self._for(lang).put_many(rows)

    def close(self) -> None:
        for cache in self._caches.values():
            cache.close()


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


def dump_result(result: dict[str, Any]) -> str:
    return json.dumps({k: v for k, v in result.items() if k != "manifest"}, indent=2, default=str)


__all__ = ["TranslateStage", "default_cache_path", "keep_verbatim_answers"]
