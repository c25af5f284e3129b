"""What each input item becomes, decided once over the whole input in source order.

Three decisions of collect need every id, so no shard can make them alone: a repeated id is a
duplicate of its first occurrence, a parallel row joins the source row with its id, and the
parallel rows no source row took are reported in one last shard. :class:`Resolver` makes them
while streaming the inputs once and yields each shard as a :class:`ResolvedShard`: a list of
:class:`Entry` that says what the shard's writer does with each row (convert it, reject it with
its reason, count it as skipped), with nothing left to look up. The stage writes those shards
as they come (one task) or saves them in the input index (``index.py``), from which every task
of a job array writes its own shards without reading an input file.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

from mt_qa.collect.base import BadRecord, Example, Item, Reader, Skipped
from mt_qa.collect.registry import make_reader
from mt_qa.errors import InputError
from mt_qa.languages import Language
from mt_qa.records import group_id

# What the writer does with an entry.
EXAMPLE = "example"  # a source example: converted into a row
MATCH = "match"  # the parallel example with the preceding EXAMPLE's id: converted into an imported row
SKIPPED = "skipped"  # left out by the format itself: counted
REJECT = "reject"  # a bad source or parallel record, or an unmatched parallel row: written to rejects/
KINDS = (EXAMPLE, MATCH, SKIPPED, REJECT)


@dataclass
class Source:
    """One opened source: its reader and the values of its rows' dataset, split and lang columns."""

    path: str
    reader: Reader
    dataset: str
    split: str
    lang: Language


@dataclass
class ParallelFile:
    """A ``--parallel`` file: its rows join the source rows with the same id."""

    path: str
    format: str
    lang: Language

    @cached_property
    def file_name(self) -> str:
        return Path(self.path).name


@dataclass
class Entry:
    """One row of a resolved shard. A REJECT's payload is already its JSON text (what rejects/ stores)."""

    kind: str
    item: Example | BadRecord | Skipped
    parallel: int | None = None  # which ParallelFile a MATCH, or a REJECT of a parallel file, is from


@dataclass
class ResolvedShard:
    """A shard's entries, in the order its writer handles them."""

    source: int | None  # the Source this shard is a chunk of; None: the parallel leftovers
    entries: list[Entry]
    items: int  # source items read for it (what the progress bar counts)


def payload(ex: Example) -> str:
    """A reject's payload for an example (the passage cut short: it can be long)."""
    return json.dumps(
        {"id": ex.source_id, "question": ex.question, "passage": ex.passage[:2000], "answers": ex.answers},
        ensure_ascii=False,
    )


def payload_text(value: Any) -> str:
    """The JSON text ``ShardWriter.reject`` stores for ``value``: fixed here, so a saved entry writes the same."""
    return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False, default=str)


def fail_or_keep(path: str, bad: BadRecord, on_error: str) -> None:
    if on_error == "fail":
        raise InputError(
            path,
            bad.location,
            bad.reason.replace("_", " "),
            f"{bad.detail}; use --on-error skip to write such records to rejects/ and go on",
        )


@dataclass
class _Loaded:
    """A parallel file read into memory: matched ids are taken out as the source rows stream past."""

    examples: dict[str, Example]
    bad: list[BadRecord]


class Resolver:
    """Stream the sources in order, cut them into shards of ``shard_size`` items, and resolve every item.

    Memory: the parallel files (SQuAD-sized) and the ids seen so far, as before; one chunk of
    source items at a time. ``summary`` holds the per-input counts once :meth:`shards` is done.
    """

    def __init__(self, sources: list[Source], parallel: list[ParallelFile], *, shard_size: int, on_error: str):
        self.sources = sources
        self.parallel = parallel
        self.shard_size = shard_size
        self.on_error = on_error
        self.summary: dict[str, dict[str, Any]] = {}

    def shards(self) -> Iterator[ResolvedShard]:
        loaded = [self._load(p) for p in self.parallel]
        seen: dict[str, str] = {}  # group_id -> where first seen, for duplicate detection
        for index, src in enumerate(self.sources):
            started = time.perf_counter()
            summary = self.summary.setdefault(src.path, {"read": 0, "written": 0, "rejected": 0, "skipped": 0})
            for chunk in _chunks(src.reader.read(), self.shard_size):
                yield ResolvedShard(index, self._resolve(chunk, src, loaded, seen, summary), len(chunk))
            summary["seconds"] = round(time.perf_counter() - started, 2)
        # Parallel rows whose id matched no source row, and malformed parallel rows: reported
        # in one last shard's rejects, never dropped silently.
        leftovers = [
            Entry(REJECT, BadRecord(ex.location, "unmatched_parallel_id", f"no source example has id {ex.source_id!r}",
                                    payload=payload(ex), source_id=ex.source_id), i)
            for i, p in enumerate(loaded) for ex in p.examples.values()
        ]  # fmt: skip
        leftovers += [Entry(REJECT, bad, i) for i, p in enumerate(loaded) for bad in p.bad]
        for p, got in zip(self.parallel, loaded, strict=True):
            self.summary[p.path] = {"lang": p.lang.code, "unmatched": len(got.examples), "rejected": len(got.bad)}
        if leftovers:
            yield ResolvedShard(None, leftovers, 0)

    def _load(self, spec: ParallelFile) -> _Loaded:
        examples: dict[str, Example] = {}
        bad: list[BadRecord] = []
        for item in make_reader(spec.path, spec.format, {}).read():
            if isinstance(item, Skipped):
                continue
            if isinstance(item, Example) and item.source_id in examples:
                item = BadRecord(item.location, "duplicate_id", f"id {item.source_id!r} appears twice",
                                 payload=payload(item), source_id=item.source_id)  # fmt: skip
            if isinstance(item, BadRecord):
                fail_or_keep(spec.path, item, self.on_error)
                item.payload = payload_text(item.payload)
                bad.append(item)
            else:
                examples[item.source_id] = item
        return _Loaded(examples, bad)

    def _resolve(self, chunk: list[Item], src: Source, loaded: list[_Loaded], seen: dict[str, str],
                 summary: dict[str, Any]) -> list[Entry]:  # fmt: skip
        entries: list[Entry] = []
        for item in chunk:
            summary["read"] += 1
            if isinstance(item, Example):
                gid = group_id(src.dataset, src.split, item.source_id)
                if gid in seen:
                    item = BadRecord(item.location, "duplicate_id", f"id {item.source_id!r} already at {seen[gid]}",
                                     payload=payload(item), source_id=item.source_id)  # fmt: skip
                elif not item.passage.strip() and src.reader.needs_passage:
                    item = BadRecord(item.location, "empty_passage", "the passage is empty", payload=payload(item),
                                     source_id=item.source_id)  # fmt: skip
                else:
                    seen[gid] = f"{src.path}: {item.location}"
            if isinstance(item, Skipped):
                summary["skipped"] += 1
                entries.append(Entry(SKIPPED, item))
                continue
            if isinstance(item, BadRecord):
                fail_or_keep(src.path, item, self.on_error)
                summary["rejected"] += 1
                item.payload = payload_text(item.payload)
                entries.append(Entry(REJECT, item))
                continue
            # Matches are taken out of their file as the source rows pass: what is left at the end
            # is exactly the unmatched set.
            sid = item.source_id
            matches = [(i, p.examples.pop(sid)) for i, p in enumerate(loaded) if sid in p.examples]
            summary["written"] += 1 + len(matches)
            entries.append(Entry(EXAMPLE, item))
            entries.extend(Entry(MATCH, ex, i) for i, ex in matches)
        return entries


def _chunks(items: Iterator[Item], size: int) -> Iterator[list[Item]]:
    chunk: list[Item] = []
    for item in items:
        chunk.append(item)
        if len(chunk) == size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk
