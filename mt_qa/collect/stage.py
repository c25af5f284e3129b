"""The collect stage: readers -> normalized QA shards, with parallel imports joined by id."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

import click
from tqdm import tqdm

from mt_qa.clickutil import option
from mt_qa.collect.base import BadRecord, Example, Item, Reader, Skipped
from mt_qa.collect.registry import make_reader
from mt_qa.errors import InputError, MtqaError
from mt_qa.io import sha256_file
from mt_qa.languages import Language, resolve
from mt_qa.records import QA_SCHEMA, group_id, qa_record
from mt_qa.sentences import locate_answer, split_sentences
from mt_qa.shards import ShardWriter, shard_name
from mt_qa.stage import ShardedStage

ON_ERROR = ("fail", "skip")


@dataclass
class SourceSpec:
    """One input: a path (or hub name) and how to read it."""

    path: str
    format: str = "auto"
    dataset: str | None = None
    split: str | None = None
    lang: str = "en"
    options: dict[str, Any] = field(default_factory=dict)


@dataclass
class ParallelSpec:
    """A file in another language whose question ids match the English sources' ids."""

    lang: str
    path: str
    format: str = "auto"


@dataclass
class _Source:
    spec: SourceSpec
    reader: Reader
    dataset: str
    split: str
    lang: Language


@dataclass
class _Parallel:
    spec: ParallelSpec
    lang: Language
    examples: dict[str, Example]
    bad: list[BadRecord]

    @cached_property
    def file_name(self) -> str:
        return Path(self.spec.path).name


@dataclass
class _Chunk:
    """A shard of one source: its items, as read."""

    items: list[Item]
    src: _Source
    summary: dict[str, Any]


@dataclass
class _Leftovers:
    """The last shard: parallel rows no source row matched, and malformed parallel rows."""

    unmatched: list[tuple[_Parallel, Example]]
    bad: list[tuple[_Parallel, BadRecord]]


@dataclass
class CollectConfig:
    """How sources are cut and what a malformed record does (the inputs are the sources)."""

    shard_size: int = field(default=5000, metadata=option("Source items per shard."))
    on_error: str = field(default="fail", metadata=option(
        "On a malformed record: stop with its location, or write it to rejects/ and go on.",
        type=click.Choice(ON_ERROR)))

    def validate(self) -> None:
        if self.on_error not in ON_ERROR:
            raise MtqaError(f"--on-error must be one of {ON_ERROR}, not {self.on_error!r}")
        if self.shard_size < 1:
            raise MtqaError("--shard-size must be at least 1")


class CollectStage(ShardedStage):
    """Read sources, normalize, split passages into sentences, and write QA shards.

    Shards are fixed-size chunks of each source's item stream (``shard_size`` items), numbered
    in source order, so the shard -> rows mapping depends only on the input: a resumed run or a
    job array writes exactly the files one uninterrupted run writes. Every task streams all
    sources (ids must be seen for duplicate checks and the parallel join) but converts and
    writes only the shards it owns: the driver hands out the shards as ``stream`` finds them.
    """

    name = "collect"
    schema = QA_SCHEMA
    unit = "ex"

    def __init__(self, sources: list[SourceSpec], out: str | Path, config: CollectConfig | None = None, *,
                 parallel: list[ParallelSpec] | None = None, num_tasks: int = 1, task_index: int = 0,
                 overwrite: bool = False, progress: bool = True, **options: Any):
        self.config = config or CollectConfig(**options)
        self.config.validate()
        if not sources:
            raise MtqaError("collect needs at least one source")
        super().__init__(out, num_tasks=num_tasks, task_index=task_index, overwrite=overwrite, progress=progress)
        self.sources = sources
        self.parallel = parallel or []
        self.on_error = self.config.on_error
        self.shard_size = self.config.shard_size
        self._opened: list[_Source] = []
        self._loaded: list[_Parallel] = []
        self._summary: dict[str, dict[str, Any]] = {}
        self._seen: dict[str, str] = {}  # group_id -> where first seen, for duplicate detection
        self._current: _Chunk | _Leftovers | None = None  # what the shard the driver asks about holds

    # ------------------------------------------------------------------ plan
    def open(self) -> None:
        self._opened = self._open_sources()
        for spec in self.parallel:
            if not Path(spec.path).is_file():
                raise InputError(spec.path, "file", "not found (given with --parallel)")

    def _open_sources(self) -> list[_Source]:
        opened = []
        for spec in self.sources:
            reader = make_reader(spec.path, spec.format, spec.options)
            split = spec.split or reader.default_split()
            opened.append(_Source(spec, reader, spec.dataset or reader.dataset, split, resolve(spec.lang)))
        return opened

    def _load_parallel(self, spec: ParallelSpec) -> _Parallel:
        reader = make_reader(spec.path, spec.format, {})
        examples: dict[str, Example] = {}
        bad: list[BadRecord] = []
        for item in reader.read():
            if isinstance(item, Skipped):
                continue
            if isinstance(item, Example) and item.source_id in examples:
                item = BadRecord(
                    item.location,
                    "duplicate_id",
                    f"id {item.source_id!r} appears twice",
                    payload=_payload(item),
                    source_id=item.source_id,
                )
            if isinstance(item, BadRecord):
                self._fail_or_keep(spec.path, item)
                bad.append(item)
            else:
                examples[item.source_id] = item
        return _Parallel(spec, resolve(spec.lang), examples, bad)

    def params(self) -> dict[str, Any]:
        return {
            "sources": [vars(s) for s in self.sources],
            "parallel": [vars(p) for p in self.parallel],
            "on_error": self.on_error,
            "shard_size": self.shard_size,
        }

    def inputs(self) -> list[dict[str, Any]]:
        refs = []
        for src in self._opened:
            for path in src.reader.input_files():
                refs.append({"path": str(path), "sha256": sha256_file(path)})
        for spec in self.parallel:
            refs.append({"path": spec.path, "lang": spec.lang, "sha256": sha256_file(spec.path)})
        return refs

    def shard_names(self) -> None:
        return None  # cut while reading: see stream()

    # ------------------------------------------------------------------ shards
    def stream(self, bar: tqdm) -> Iterator[str]:
        """Read every source in order, cutting its items into shards; then the parallel leftovers."""
        self._loaded = parallel = [self._load_parallel(spec) for spec in self.parallel]
        count = 0
        for src in self._opened:
            src_started = time.perf_counter()
            src_sum = self._summary.setdefault(src.spec.path, {"read": 0, "written": 0, "rejected": 0, "skipped": 0})
            for chunk in _chunks(src.reader.read(), self.shard_size):
                self._current = _Chunk(chunk, src, src_sum)
                yield shard_name(count)
                count += 1
                bar.update(len(chunk))
            src_sum["seconds"] = round(time.perf_counter() - src_started, 2)
        # Parallel rows whose id matched no source row, and malformed parallel rows: reported
        # in one last shard's rejects, never dropped silently.
        leftovers = [(p, ex) for p in parallel for ex in p.examples.values()]
        bad_parallel = [(p, b) for p in parallel for b in p.bad]
        if leftovers or bad_parallel:
            self._current = _Leftovers(leftovers, bad_parallel)
            yield shard_name(count)
        self._current = None

    def write_shard(self, name: str, writer: ShardWriter, bar: tqdm) -> None:
        current = self._current
        if isinstance(current, _Chunk):
            self._process_chunk(current.items, current.src, self._loaded, self._seen, writer, current.summary)
            return
        assert isinstance(current, _Leftovers)
        for p, ex in current.unmatched:
            writer.reject(
                source=p.spec.path,
                location=ex.location,
                record_id=ex.source_id,
                reason="unmatched_parallel_id",
                detail=f"no source example has id {ex.source_id!r}",
                payload=_payload(ex),
            )
        for p, b in current.bad:
            writer.reject(
                source=p.spec.path,
                location=b.location,
                record_id=b.source_id,
                reason=b.reason,
                detail=b.detail,
                payload=b.payload,
            )

    def skip_shard(self, name: str) -> None:
        current = self._current
        if isinstance(current, _Chunk):  # still read: its ids and parallel matches count
            self._process_chunk(current.items, current.src, self._loaded, self._seen, None, current.summary)

    def summary(self) -> dict[str, Any]:
        summary = self._summary
        for p in self._loaded:
            summary[p.spec.path] = {"lang": p.lang.code, "unmatched": len(p.examples), "rejected": len(p.bad)}
        return {"sources": summary}

    # ------------------------------------------------------------------ rows
    def _fail_or_keep(self, path: str, bad: BadRecord) -> None:
        if self.on_error == "fail":
            raise InputError(
                path,
                bad.location,
                bad.reason.replace("_", " "),
                f"{bad.detail}; use --on-error skip to write such records to rejects/ and go on",
            )

    def _process_chunk(
        self,
        chunk: list[Item],
        src: _Source,
        parallel: list[_Parallel],
        seen: dict[str, str],
        writer: ShardWriter | None,
        summary: dict[str, Any],
    ) -> None:
        path = src.spec.path
        for item in chunk:
            summary["read"] += 1
            if isinstance(item, Example):
                gid = group_id(src.dataset, src.split, item.source_id)
                if gid in seen:
                    item = BadRecord(
                        item.location,
                        "duplicate_id",
                        f"id {item.source_id!r} already at {seen[gid]}",
                        payload=_payload(item),
                        source_id=item.source_id,
                    )
                elif not item.passage.strip() and src.reader.needs_passage:
                    item = BadRecord(
                        item.location,
                        "empty_passage",
                        "the passage is empty",
                        payload=_payload(item),
                        source_id=item.source_id,
                    )
                else:
                    seen[gid] = f"{path}: {item.location}"
            if isinstance(item, Skipped):
                summary["skipped"] += 1
                if writer is not None:
                    writer.count(f"skipped.{item.reason}")
                continue
            if isinstance(item, BadRecord):
                self._fail_or_keep(path, item)
                summary["rejected"] += 1
                if writer is not None:
                    writer.reject(
                        source=path,
                        location=item.location,
                        record_id=item.source_id,
                        reason=item.reason,
                        detail=item.detail,
                        payload=item.payload,
                    )
                continue
            # Take parallel matches even for shards we skip, so leftovers are the true unmatched.
            matches = [(p, p.examples.pop(item.source_id)) for p in parallel if item.source_id in p.examples]
            summary["written"] += 1 + len(matches)
            if writer is None:
                continue
            writer.add([self._row(item, src, src.lang, "source", src.reader.name, writer)])
            for p, ex in matches:
                writer.add([self._row(ex, src, p.lang, "imported", p.file_name, writer)])
                writer.count(f"groups_with.{p.lang.code}")

    def _row(
        self, ex: Example, src: _Source, lang: Language, origin: str, detail: str, writer: ShardWriter
    ) -> dict[str, Any]:
        sentences = ex.passage_sentences
        if sentences is None:
            sentences = list(split_sentences(ex.passage, lang.code))
        index, how = locate_answer(ex.passage, sentences, ex.answers, ex.answer_starts)
        writer.count(f"rows.{lang.code}")
        writer.count(f"answer_located.{how}")
        return qa_record(
            dataset=src.dataset,
            split=src.split,
            source_id=ex.source_id,
            lang=lang.code,
            lang_code=lang.flores,
            question=ex.question.strip(),
            passage=ex.passage,
            title=ex.title,
            answers=ex.answers,
            answer_starts=ex.answer_starts,
            passage_sentences=sentences,
            answer_sentence_index=index,
            origin=origin,
            origin_detail=detail,
        )


def _chunks(items: Iterator[Item], size: int) -> Iterator[list[Item]]:
    chunk: list[Item] = []
    for item in items:
        chunk.append(item)
        if len(chunk) == size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def _payload(ex: Example) -> str:
    return json.dumps(
        {"id": ex.source_id, "question": ex.question, "passage": ex.passage[:2000], "answers": ex.answers},
        ensure_ascii=False,
    )
