"""Translating a shard's unique segments: cache look-ups, then fixed work units, each committed
to the cache (or the shard's checkpoint) as one transaction. A killed run loses at most the unit
in flight; units are cut from the same length-sorted list, so a rerun translates exactly the
same remaining batches and its output equals an uninterrupted run's."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tqdm import tqdm

from mt_qa.translate.cache import Translation, TranslationCache
from mt_qa.translate.config import TranslateConfig
from mt_qa.translate.plan import _Item
from mt_qa.translate.rows import _RunCounters
from mt_qa.translate.translator import NllbTranslator
from mt_qa.translate.vocab_map import VocabMap


def open_cache(path: Path, settings: dict[str, Any], vocab_map: VocabMap | None) -> TranslationCache | MapCaches:
    if vocab_map is None:
        return TranslationCache(path, settings)
    return MapCaches(path, settings, vocab_map)


def translate_items(config: TranslateConfig, translator: NllbTranslator, vocab_map: VocabMap | None,
                    settings: dict[str, Any], name: str, items: list[_Item],
                    cache: TranslationCache | MapCaches | None, work_dir: Path, counters: _RunCounters, bar: tqdm,
                    on_checkpoint: Callable[[str, int, int], None] | None = None,
                    ) -> dict[tuple[str, str, str], Translation]:
    """Cached translations plus new ones, translated and committed unit by unit.

    Without a shared cache the units go to a checkpoint database of the shard in ``work_dir``.
    """
    store = cache
    if store is None:
        store = open_cache(work_dir / f"{name}.sqlite", settings, vocab_map)
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
        codes = {lang.flores: lang.code for lang in config.languages}
        for item in items:
            if (item.src_lang, item.text, item.tgt_lang) in done:
                counters.by_lang[codes[item.tgt_lang]].cached += 1
        if not missing:
            return done
        pieces_of = dict(zip((item.text for item in missing),
                             translator.tokenizer.encode([item.text for item in missing]), strict=True))
        if vocab_map is None:
            missing.sort(key=lambda item: (len(pieces_of[item.text]), item.first))
        else:  # one language's map per engine load: units run language by language
            order = {lang.flores: n for n, lang in enumerate(config.languages)}
            missing.sort(key=lambda item: (order[item.tgt_lang], len(pieces_of[item.text]), item.first))
        bar.total += len(missing)
        bar.set_postfix_str(f"{name}, {hits} cached", refresh=False)
        bar.refresh()
        units = [missing[i:i + config.checkpoint_every] for i in range(0, len(missing), config.checkpoint_every)]
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
            if on_checkpoint is not None:
                on_checkpoint(name, number, len(units))
        return done
    finally:
        if cache is None:
            store.close()


class MapCaches:
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
