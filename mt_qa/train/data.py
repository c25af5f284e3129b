"""Reading batch shards for training: the batches build-batches wrote, in its order.

The trainer does not re-batch or shuffle: each training step is one built batch, read from
the memory-mapped shard, so the composition (X-X or X-Y, languages, no sibling questions) is
exactly what the sampler decided. Step ``n`` is always the same batch, which is what makes
resuming from a checkpoint exact.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa

from mt_qa.errors import MtqaError, ShardStoreError
from mt_qa.shards import ShardStore

COLUMNS = ["batch_id", "batch_type", "position", "query_lang", "passage_lang", "query", "positive", "negative"]


@dataclass
class Batch:
    """One built batch (or one rank's slice of it)."""

    step: int
    batch_id: int
    epoch: int
    batch_type: str
    queries: list[str]
    positives: list[str]
    negatives: list[str] | None
    partial_negatives: bool = False  # some rows had a negative, some not: trained without them

    def __len__(self) -> int:
        return len(self.queries)

    def shard_for(self, rank: int, world_size: int) -> Batch:
        """This rank's contiguous slice: with negatives gathered across ranks, the global batch is the built one."""
        n = len(self.queries)
        if n % world_size:
            raise MtqaError(f"batch {self.batch_id} has {n} pairs, not divisible by {world_size} processes")
        lo, hi = rank * n // world_size, (rank + 1) * n // world_size
        neg = self.negatives[lo:hi] if self.negatives is not None else None
        return Batch(self.step, self.batch_id, self.epoch, self.batch_type, self.queries[lo:hi],
                     self.positives[lo:hi], neg, self.partial_negatives)


@dataclass
class _Shard:
    name: str
    path: Path
    epoch: int
    batches: int


class BatchSource:
    """The batches of a batch store in written order; ``epochs`` limits it to the first built epochs."""

    def __init__(self, root: str | Path, epochs: int | None = None, use_negatives: bool = True):
        try:
            self.store = ShardStore.open(root)
        except ShardStoreError as exc:
            raise MtqaError(f"--batches: {exc}") from None
        manifest = self.store.manifest
        if manifest.get("schema") != "batch":
            raise MtqaError(f"{root}: a {manifest.get('schema')!r} store; train reads batch stores "
                            "(the output of mtqa build-batches)")
        self.params = manifest.get("params", {})
        self.batch_size = int(self.params.get("batch_size") or 0)
        self.use_negatives = use_negatives
        shards = []
        for name in self.store.shard_names():
            stats = manifest["shards"][name]["stats"]
            by_epoch = stats.get("epoch", {})
            if len(by_epoch) != 1:
                raise MtqaError(f"{root}: shard {name} does not name one epoch in its stats (not written by "
                                "mtqa build-batches?)")
            (epoch, count), = by_epoch.items()
            files = self.store.files(shard=name)
            if len(files) != 1:
                raise MtqaError(f"{root}: shard {name} has {len(files)} data files, expected 1")
            shards.append(_Shard(name, files[0], int(epoch), int(count)))
        self.built_epochs = len({s.epoch for s in shards})
        if epochs is not None:
            if epochs > self.built_epochs:
                raise MtqaError(f"--epochs {epochs}, but {root} holds {self.built_epochs} built epoch(s): rebuild "
                                f"with mtqa build-batches --epochs {epochs} (each epoch is reshuffled there)")
            shards = [s for s in shards if s.epoch < epochs]
        self.shards = shards
        self.epochs = len({s.epoch for s in shards})

    def __len__(self) -> int:
        return sum(s.batches for s in self.shards)

    def iter(self, start: int = 0) -> Iterator[Batch]:
        """Batches from step ``start`` on; whole shards before it are skipped without reading them."""
        step = 0
        for shard in self.shards:
            if step + shard.batches <= start:
                step += shard.batches
                continue
            table = self.store.read(shard.path, COLUMNS)
            bounds = _batch_bounds(table, shard)
            for lo, hi in bounds:
                if step >= start:
                    yield self._batch(table.slice(lo, hi - lo), step, shard.epoch)
                step += 1

    def _batch(self, t: pa.Table, step: int, epoch: int) -> Batch:
        negatives = None
        partial = False
        if self.use_negatives:
            nulls = t["negative"].null_count
            if nulls == 0:
                negatives = t["negative"].to_pylist()
            elif nulls < t.num_rows:
                partial = True
        return Batch(step, int(t["batch_id"][0].as_py()), epoch, t["batch_type"][0].as_py(),
                     t["query"].to_pylist(), t["positive"].to_pylist(), negatives, partial)


def _batch_bounds(table: pa.Table, shard: _Shard) -> list[tuple[int, int]]:
    ids = table["batch_id"].to_numpy()
    if len(ids) == 0:
        return []
    if (np.diff(ids) < 0).any():
        raise MtqaError(f"{shard.path}: batch ids are not in order")
    starts = np.concatenate([[0], np.flatnonzero(np.diff(ids)) + 1])
    ends = np.concatenate([starts[1:], [len(ids)]])
    if len(starts) != shard.batches:
        raise MtqaError(f"{shard.path}: {len(starts)} batches, the manifest says {shard.batches}")
    return list(zip(starts.tolist(), ends.tolist(), strict=True))
