"""The input index of a collect job array: every resolved shard, saved once, so no other task reads an input.

Layout, in the claimed output directory (mtqa-owned names, removed when the step completes)::

    _collect_index.arrow   an Arrow IPC stream: the schema, then one record batch per shard
                           (its entries: ``resolve.Entry``), in shard order
    _collect_index.json    written last (the commit): version, the run's fingerprint, the file's
                           size, and per shard its name, source, rows, byte range and sha256
    _collect_index.lock    held by the task building it (``ShardedStage.shared_plan``)

The batches are written as encapsulated IPC messages at known offsets, so a task memory-maps
the file and checks and decodes only the byte ranges of its own shards (and the schema): what a
task reads stays proportional to what it writes. An index whose JSON is missing, unreadable, of
another run (fingerprint: params and the inputs' sha256) or of another size is not used; one whose
bytes do not match their checksums is reported by :meth:`InputIndex.problems`, and the stage
rebuilds it. Nothing here is unpickled: Arrow and JSON only.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import tempfile
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import pyarrow as pa

from mt_qa.collect.base import BadRecord, Example, Skipped
from mt_qa.collect.resolve import EXAMPLE, MATCH, REJECT, SKIPPED, Entry, ResolvedShard
from mt_qa.io import atomic_write_json, file_mode
from mt_qa.records import RecordError

INDEX_FILE = "_collect_index.arrow"
INDEX_META = "_collect_index.json"
INDEX_LOCK = "_collect_index.lock"
INDEX_VERSION = 1
_EOS = b"\xff\xff\xff\xff\x00\x00\x00\x00"  # the IPC stream's end marker

SCHEMA = pa.schema(
    [
        pa.field("kind", pa.string(), nullable=False),
        pa.field("parallel", pa.int32()),
        pa.field("location", pa.string(), nullable=False),
        pa.field("source_id", pa.string()),
        # An example's fields (EXAMPLE, MATCH); null otherwise.
        pa.field("question", pa.string()),
        pa.field("passage", pa.string()),
        pa.field("title", pa.string()),
        pa.field("answers", pa.list_(pa.string())),
        pa.field("answer_starts", pa.list_(pa.int64())),
        pa.field("passage_sentences", pa.list_(pa.string())),  # null: split later (most formats)
        # A verdict's fields (SKIPPED: reason; REJECT: all three); null otherwise.
        pa.field("reason", pa.string()),
        pa.field("detail", pa.string()),
        pa.field("payload", pa.string()),
    ],
    metadata={"mtqa.collect_index": str(INDEX_VERSION)},
)


@dataclass(frozen=True)
class ShardRef:
    """Where one shard's batch lies in the index file, and what it must hash to."""

    name: str
    source: int | None
    rows: int
    items: int
    offset: int
    length: int
    sha256: str


def encode(entries: list[Entry]) -> pa.RecordBatch:
    """Entries to one record batch, column by column: a field an item lacks is null (a Skipped has no passage)."""
    columns = [[entry.kind for entry in entries], [entry.parallel for entry in entries]]
    columns += [[getattr(entry.item, name, None) for entry in entries] for name in SCHEMA.names[2:]]
    return pa.RecordBatch.from_arrays(columns, schema=SCHEMA)


def decode(batch: pa.RecordBatch) -> list[Entry]:
    entries = []
    columns = batch.to_pydict()
    for kind, parallel, location, source_id, question, passage, title, answers, starts, sentences, reason, detail, \
            payload in zip(*(columns[name] for name in SCHEMA.names), strict=True):  # fmt: skip
        item: Example | BadRecord | Skipped
        if kind in (EXAMPLE, MATCH):
            item = Example(source_id, question, passage, location, title, answers, starts, sentences)
        elif kind == SKIPPED:
            item = Skipped(location, reason)
        elif kind == REJECT:
            item = BadRecord(location, reason, detail, payload, source_id)
        else:
            raise ValueError(f"unknown entry kind {kind!r}")
        entries.append(Entry(kind, item, parallel))
    return entries


class IndexWriter:
    """Append resolved shards to a temp file; :meth:`commit` puts it in place and writes the JSON last."""

    def __init__(self, root: Path, fingerprint: str):
        self.root = root
        self.fingerprint = fingerprint
        self.refs: list[ShardRef] = []
        for stale in root.glob(f".{INDEX_FILE}.*.tmp"):  # a killed builder's: only the lock holder writes them
            stale.unlink(missing_ok=True)
        fd, self.tmp = tempfile.mkstemp(prefix=f".{INDEX_FILE}.", suffix=".tmp", dir=root)
        os.fchmod(fd, file_mode())
        self.fh = os.fdopen(fd, "wb")
        head = SCHEMA.with_metadata({**SCHEMA.metadata, b"mtqa.fingerprint": fingerprint.encode()}).serialize()
        self.fh.write(head)
        self.head = (len(head), hashlib.sha256(head).hexdigest())

    def add(self, name: str, shard: ResolvedShard, where: str = "") -> None:
        try:
            message = encode(shard.entries).serialize()
        except (pa.ArrowException, TypeError, OverflowError) as exc:  # what no QA row could hold (a 2**70 offset)
            raise RecordError(f"{where}: shard {name}: items that no QA row can hold: {exc}") from exc
        offset = self.fh.tell()
        self.fh.write(message)
        self.refs.append(ShardRef(name, shard.source, len(shard.entries), shard.items, offset, len(message),
                                  hashlib.sha256(message).hexdigest()))  # fmt: skip

    def commit(self, summary: dict[str, Any]) -> None:
        self.fh.write(_EOS)
        self.fh.flush()
        os.fsync(self.fh.fileno())
        size = self.fh.tell()
        self.fh.close()
        (self.root / INDEX_META).unlink(missing_ok=True)  # never a JSON beside a file it does not describe
        os.replace(self.tmp, self.root / INDEX_FILE)
        atomic_write_json(self.root / INDEX_META, {
            "version": INDEX_VERSION, "fingerprint": self.fingerprint, "bytes": size,
            "head": {"length": self.head[0], "sha256": self.head[1]},
            "shards": [asdict(ref) for ref in self.refs], "summary": summary,
        })  # fmt: skip

    def abort(self) -> None:
        self.fh.close()
        Path(self.tmp).unlink(missing_ok=True)


class InputIndex:
    """A committed index of this run, memory-mapped: shard names, and each shard's entries on demand."""

    def __init__(self, root: Path, meta: dict[str, Any], source: pa.MemoryMappedFile):
        self.root = root
        self.summary: dict[str, Any] = meta["summary"]
        self.refs = {ref["name"]: ShardRef(**ref) for ref in meta["shards"]}
        for ref in self.refs.values():
            numbers = (ref.rows, ref.items, ref.offset, ref.length)
            if (not all(type(n) is int and n >= 0 for n in numbers) or not isinstance(ref.sha256, str)
                    or not (ref.source is None or type(ref.source) is int)):
                raise ValueError(f"shard {ref.name}: not a valid entry")
        self._head = meta["head"]
        self._source = source
        self._buffer = source.read_buffer()
        self._schema: pa.Schema | None = None

    @classmethod
    def load(cls, root: Path, fingerprint: str) -> InputIndex | None:
        """The committed index of this run (same fingerprint, same size), or None (absent, stale, cut short)."""
        try:
            meta = json.loads((root / INDEX_META).read_text())
            if meta.get("version") != INDEX_VERSION or meta.get("fingerprint") != fingerprint:
                return None
            source = pa.memory_map(str(root / INDEX_FILE), "r")
        except (OSError, ValueError, AttributeError):
            return None
        try:
            if source.size() != meta["bytes"]:
                raise ValueError("size")
            return cls(root, meta, source)
        except (KeyError, TypeError, ValueError):
            source.close()
            return None

    def names(self) -> list[str]:
        return list(self.refs)

    def problems(self, names: Iterable[str]) -> list[str]:
        """What is wrong with the bytes these shards (and the schema) are read from; [] when all check out."""
        ranges = [("the schema", 0, self._head["length"], self._head["sha256"])]
        ranges += [(f"shard {n}", self.refs[n].offset, self.refs[n].length, self.refs[n].sha256) for n in names]
        found = []
        for what, offset, length, digest in ranges:
            if offset + length > self._buffer.size or _sha256(self._buffer.slice(offset, length)) != digest:
                found.append(f"{INDEX_FILE}: {what}: the bytes do not match their sha256")
        if not found:
            try:
                self._schema = pa.ipc.read_schema(self._buffer.slice(0, self._head["length"]))
            except (pa.ArrowException, OSError) as exc:
                found.append(f"{INDEX_FILE}: unreadable schema: {exc}")
            else:
                if not self._schema.equals(SCHEMA):
                    found.append(f"{INDEX_FILE}: not the schema of index version {INDEX_VERSION}")
        return found

    def read(self, name: str) -> ResolvedShard:
        """One shard's entries; call :meth:`problems` for it first (it also reads the schema)."""
        ref = self.refs[name]
        assert self._schema is not None, "problems() checks the bytes before they are read"
        batch = pa.ipc.read_record_batch(self._buffer.slice(ref.offset, ref.length), self._schema)
        if batch.num_rows != ref.rows:
            raise ValueError(f"{INDEX_FILE}: shard {name}: {batch.num_rows} rows, the index says {ref.rows}")
        return ResolvedShard(ref.source, decode(batch), ref.items)

    def close(self) -> None:
        self._buffer = None  # type: ignore[assignment]
        self._source.close()


def remove_index(root: Path, fingerprint: str) -> None:
    """Drop this run's index once the step is complete: the manifest is the record, the index only
    staging. A committed index of another run (another fingerprint) is left alone."""
    try:
        if json.loads((root / INDEX_META).read_text()).get("fingerprint") != fingerprint:
            return
    except (OSError, ValueError, AttributeError):
        pass  # no readable JSON: what is left is this run's partial write
    for name in (INDEX_META, INDEX_FILE):
        with contextlib.suppress(FileNotFoundError):
            (root / name).unlink()


def _sha256(buffer: pa.Buffer) -> str:
    return hashlib.sha256(memoryview(buffer)).hexdigest()
