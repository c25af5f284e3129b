"""The collect stage: readers -> normalized QA shards, with parallel imports joined by id."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import click
from tqdm import tqdm

from mt_qa.clickutil import option
from mt_qa.collect.base import BadRecord, Example
from mt_qa.collect.index import INDEX_FILE, INDEX_LOCK, INDEX_META, IndexWriter, InputIndex, remove_index
from mt_qa.collect.registry import make_reader
from mt_qa.collect.resolve import EXAMPLE, REJECT, SKIPPED, ParallelFile, ResolvedShard, Resolver, Source
from mt_qa.errors import InputError, MtqaError, ShardStoreError
from mt_qa.io import sha256_file
from mt_qa.languages import Language, resolve
from mt_qa.records import QA_SCHEMA, qa_record
from mt_qa.sentences import locate_answer, split_sentences
from mt_qa.shards import ShardWriter, fingerprint, shard_name
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
    job array writes exactly the files one uninterrupted run writes. What needs every id (the
    duplicate check, the parallel join, the leftover shard) is decided in one pass over the inputs
    (``resolve.py``). One task streams that pass and writes each shard as it comes. In a job array
    the first task saves the pass as the input index (``index.py``) under a lock in the output
    directory; every task then converts (sentence splitting, answer location) and writes only its
    own shards from the index, without reading an input file. The index is removed when the step
    completes.
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
        self._opened: list[Source] = []
        self._parallel: list[ParallelFile] = []
        self._input_refs: list[dict[str, Any]] | None = None
        self._resolver: Resolver | None = None  # the pass over the inputs, when this task makes it
        self._index: InputIndex | None = None  # the saved pass, when this task writes from it
        self._index_use: str | None = None  # built / loaded / rebuilt (damaged), for the summary
        self._current: ResolvedShard | None = None  # the streamed shard the driver asks about

    # ------------------------------------------------------------------ plan
    def open(self) -> None:
        self._opened = self._open_sources()
        for spec in self.parallel:
            if not Path(spec.path).is_file():
                raise InputError(spec.path, "file", "not found (given with --parallel)")
        self._parallel = [ParallelFile(spec.path, spec.format, resolve(spec.lang)) for spec in self.parallel]

    def _open_sources(self) -> list[Source]:
        opened = []
        for spec in self.sources:
            reader = make_reader(spec.path, spec.format, spec.options)
            split = spec.split or reader.default_split()
            opened.append(Source(spec.path, reader, spec.dataset or reader.dataset, split, resolve(spec.lang)))
        return opened

    def params(self) -> dict[str, Any]:
        return {
            "sources": [vars(s) for s in self.sources],
            "parallel": [vars(p) for p in self.parallel],
            "on_error": self.on_error,
            "shard_size": self.shard_size,
        }

    def inputs(self) -> list[dict[str, Any]]:
        if self._input_refs is None:  # hashed once: the claim and the index both need them
            refs = []
            for src in self._opened:
                for path in src.reader.input_files():
                    refs.append({"path": str(path), "sha256": sha256_file(path)})
            for spec in self.parallel:
                refs.append({"path": spec.path, "lang": spec.lang, "sha256": sha256_file(spec.path)})
            self._input_refs = refs
        return self._input_refs

    def _fingerprint(self) -> str:
        return fingerprint(self.name, self.params(), self.inputs())

    def _make_resolver(self) -> Resolver:
        return Resolver(self._opened, self._parallel, shard_size=self.shard_size, on_error=self.on_error)

    # ------------------------------------------------------------------ the input index
    def shard_names(self) -> list[str] | None:
        """From the input index (a job array, or a run that finds one); None: one task streams instead."""
        self._index = self.shared_plan(INDEX_LOCK, self._load_or_build)
        return None if self._index is None else self._index.names()

    def _load_or_build(self) -> InputIndex | None:
        index = InputIndex.load(self.store.root, self._fingerprint())
        if index is not None:
            self._index_use = "loaded"
            return index
        if self.slot.num_tasks == 1:
            return None  # one task: streaming the inputs costs less than saving them first
        self._index_use = "built"
        return self._build_index()

    def _build_index(self) -> InputIndex:
        """One pass over the inputs into the index; an input error stops it, with no index left behind."""
        resolver = self._make_resolver()
        writer = IndexWriter(self.store.root, self._fingerprint())
        try:
            with tqdm(desc=f"{self.name}: indexing the inputs", unit="ex", disable=not self.progress,
                      dynamic_ncols=True) as bar:  # fmt: skip
                for count, shard in enumerate(resolver.shards()):
                    where = self._opened[shard.source].path if shard.source is not None else "--parallel"
                    writer.add(shard_name(count), shard, where)
                    bar.update(shard.items)
            writer.commit(resolver.summary)
        except BaseException:
            writer.abort()
            raise
        index = InputIndex.load(self.store.root, self._fingerprint())
        if index is None:
            raise ShardStoreError(f"{self.store.root / INDEX_META}: the input index just written does not read back")
        return index

    def prepare(self, todo: list[str]) -> None:
        """Check the index bytes this task reads; a damaged index is rebuilt, never trusted."""
        if self._index is None or not self._index.problems(todo):
            return
        names = self._index.names()
        self._index.close()
        self._index = self.shared_plan(INDEX_LOCK, lambda: self._repaired(todo))
        if self._index.names() != names:
            raise ShardStoreError(f"{self.store.root}: the rebuilt input index has other shards than the one "
                                  "this task started from (did an input change during the run?); rerun the step")

    def _repaired(self, todo: list[str]) -> InputIndex:
        index = InputIndex.load(self.store.root, self._fingerprint())  # another task may have rebuilt it
        problems = index.problems(todo) if index is not None else ["it is gone"]
        if index is not None:
            if not problems:
                return index
            index.close()
        tqdm.write(f"{self.name}: the input index is damaged ({problems[0]}); rebuilding it", file=sys.stderr)
        self._index_use = "rebuilt"
        rebuilt = self._build_index()
        if rebuilt.problems(todo):
            raise ShardStoreError(f"{self.store.root / INDEX_FILE}: the rebuilt input index does not check out")
        return rebuilt

    def run(self) -> dict[str, Any]:
        result = super().run()
        if result["finished"]:
            self.shared_plan(INDEX_LOCK, lambda: remove_index(self.store.root, self._fingerprint()))
        return result

    # ------------------------------------------------------------------ shards
    def work(self, todo: list[str]) -> int:
        assert self._index is not None
        return sum(self._index.refs[name].items for name in todo)

    def stream(self, bar: tqdm) -> Iterator[str]:
        """One task, no index: resolve the inputs in one pass and hand out each shard as it is cut."""
        self._resolver = self._make_resolver()
        for count, shard in enumerate(self._resolver.shards()):
            self._current = shard
            yield shard_name(count)
            bar.update(shard.items)
        self._current = None

    def write_shard(self, name: str, writer: ShardWriter, bar: tqdm) -> None:
        if self._index is None:
            assert self._current is not None
            self._write(self._current, writer)
            return
        shard = self._index.read(name)
        self._write(shard, writer)
        bar.update(shard.items)

    def summary(self) -> dict[str, Any]:
        if self._index is not None:
            sources = self._index.summary  # the builder's pass
        else:
            sources = self._resolver.summary if self._resolver is not None else {}
        return {"sources": sources, "input_index": self._index_use}

    def close(self) -> None:
        if self._index is not None:
            self._index.close()

    # ------------------------------------------------------------------ rows
    def _write(self, shard: ResolvedShard, writer: ShardWriter) -> None:
        """Everything one shard writes, from its resolved entries alone (the same for both ways in)."""
        src = self._opened[shard.source] if shard.source is not None else None
        for entry in shard.entries:
            item = entry.item
            if entry.kind == SKIPPED:
                writer.count(f"skipped.{item.reason}")
            elif entry.kind == REJECT:
                assert isinstance(item, BadRecord)
                path = self._parallel[entry.parallel].path if entry.parallel is not None else src.path
                writer.reject(source=path, location=item.location, record_id=item.source_id, reason=item.reason,
                              detail=item.detail, payload=item.payload)  # fmt: skip
            elif entry.kind == EXAMPLE:
                assert isinstance(item, Example) and src is not None
                writer.add([self._row(item, src, src.lang, "source", src.reader.name, writer)])
            else:  # MATCH: the parallel row of the EXAMPLE before it
                assert isinstance(item, Example) and src is not None and entry.parallel is not None
                p = self._parallel[entry.parallel]
                writer.add([self._row(item, src, p.lang, "imported", p.file_name, writer)])
                writer.count(f"groups_with.{p.lang.code}")

    def _row(
        self, ex: Example, src: Source, lang: Language, origin: str, detail: str, writer: ShardWriter
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
