"""One driver for every sharded stage: claim the output, take this task's shards, write, finish.

A stage (collect, translate, filter, the train and dev halves of build-batches) says only what
is its own, in the style of datatrove's pipeline steps:

- ``name`` and ``schema`` of what it writes, and ``sharded`` (whether ``mtqa run`` and the
  cluster launchers run it as N job-array tasks);
- :meth:`ShardedStage.open`: open and check the inputs, before anything is claimed;
- :meth:`ShardedStage.params` and :meth:`ShardedStage.inputs`: the fingerprint of the run;
- :meth:`ShardedStage.shard_names`: the stable shard order (``None`` for a stage that cuts its
  shards while it reads, collect: its shards are then handed out as they are found);
- :meth:`ShardedStage.prepare`: the plan every shard of this task uses, built once and only
  when there is work; :meth:`ShardedStage.shared_plan` builds one under a lock in the output
  directory, so the first task of a job array builds it and the others load it;
- :meth:`ShardedStage.write_shard`: one shard's rows into a writer (the driver commits it);
- :meth:`ShardedStage.summary`: what the run adds to the result (counts, timings).

The driver owns the rest, the same way for every stage: the claim (``ShardStore.begin``,
through ``mt_qa/outdir.py``), the one ownership rule (task *i* of *N* owns shards *i, i+N, ...*),
skipping shards already done, the progress bar, committing, the manifest, and the run's time.
"""

from __future__ import annotations

import fcntl
import importlib
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any, ClassVar, TypeVar

import pyarrow as pa
from tqdm import tqdm

from mt_qa.errors import ShardStoreError
from mt_qa.shards import ShardStore, ShardWriter

T = TypeVar("T")

# The stage behind each mtqa command that writes a shard store; read by ``is_sharded``.
STAGE_CLASSES = {
    "collect": "mt_qa.collect.stage:CollectStage",
    "translate": "mt_qa.translate.stage:TranslateStage",
    "filter": "mt_qa.filter.stage:FilterStage",
    "build-batches": "mt_qa.batches.stage:BuildBatchesStage",
}


@dataclass(frozen=True)
class TaskSlot:
    """This task's place in a job array: ``index`` of ``num_tasks``, checked once, here."""

    num_tasks: int = 1
    index: int = 0

    def __post_init__(self) -> None:
        if self.num_tasks < 1:
            raise ShardStoreError(f"--num-shards {self.num_tasks}: must be at least 1 (the number of job-array tasks)")
        if not 0 <= self.index < self.num_tasks:
            raise ShardStoreError(f"--shard-index {self.index} must be in 0..{self.num_tasks - 1}")

    def owns(self, position: int) -> bool:
        """The one ownership rule: a fixed round-robin over the stable shard order."""
        return position % self.num_tasks == self.index

    def pick(self, names: Iterable[T]) -> list[T]:
        return [name for position, name in enumerate(names) if self.owns(position)]


class ShardedStage:
    """Base class of a stage that writes a shard store; subclasses fill in the protocol."""

    name: ClassVar[str] = ""
    schema: ClassVar[pa.Schema]
    sharded: ClassVar[bool] = True  # run as N tasks by `mtqa run` and the cluster launchers
    unit: ClassVar[str] = "shard"  # what the progress bar counts

    def __init__(self, out: str | Path, *, num_tasks: int = 1, task_index: int = 0, overwrite: bool = False,
                 progress: bool = True, slot: TaskSlot | None = None):
        self.slot = slot or TaskSlot(num_tasks, task_index)
        self.store = ShardStore(out, self.name, self.schema)
        self.overwrite = overwrite
        self.progress = progress

    # ------------------------------------------------------------------ the protocol
    def open(self) -> None:
        """Open and check the inputs; nothing is claimed yet, so a bad input costs nothing."""

    def params(self) -> dict[str, Any]:
        raise NotImplementedError

    def inputs(self) -> list[dict[str, Any]]:
        raise NotImplementedError

    def shard_names(self) -> list[str] | None:
        """Every shard in the stable order; None if they are found while reading (see ``stream``)."""
        raise NotImplementedError

    def prepare(self, todo: list[str]) -> None:
        """Build what this task's shards share (a model, a plan); called only when there is work."""

    def work(self, todo: list[str]) -> int | None:
        """The progress bar's total for these shards (None: it counts as it goes)."""
        return len(todo)

    def write_shard(self, name: str, writer: ShardWriter, bar: tqdm) -> None:
        raise NotImplementedError

    def stream(self, bar: tqdm) -> Iterator[str]:
        """For a stage whose ``shard_names`` is None: yield each shard's name once its input is read.

        The driver then calls :meth:`write_shard` (owned and not done yet) or :meth:`skip_shard`
        (any other) before the next name is asked for.
        """
        raise NotImplementedError

    def skip_shard(self, name: str) -> None:
        """A streamed shard this task does not write (another task's, or done earlier)."""

    def summary(self) -> dict[str, Any]:
        """What the run adds to the result (counts, timings, models)."""
        return {}

    def close(self) -> None:
        """Release what ``prepare`` opened; called however the run ends."""

    # ------------------------------------------------------------------ the driver
    def run(self) -> dict[str, Any]:
        started = time.perf_counter()
        self.open()
        self.store.begin(self.params(), self.inputs(), overwrite=self.overwrite)
        try:
            names = self.shard_names()
            if names is None:
                names, mine, todo = self._run_streamed()
            else:
                mine = self.slot.pick(names)
                todo = [name for name in mine if not self.store.is_done(name)]
                if todo:
                    self.prepare(todo)
                    with self.progress_bar(self.work(todo)) as bar:
                        self.write_shards(todo, bar)
        finally:
            self.close()
        result = self.store.finish(names, len(mine), len(todo))
        return result | self.summary() | {"seconds": round(time.perf_counter() - started, 2)}

    def write_shards(self, todo: list[str], bar: tqdm) -> None:
        """Write and commit each shard in turn (a stage with its own workers overrides this)."""
        for name in todo:
            self.commit_shard(name, bar)

    def commit_shard(self, name: str, bar: tqdm) -> None:
        writer = self.store.writer(name)
        self.write_shard(name, writer, bar)
        writer.commit()

    def _run_streamed(self) -> tuple[list[str], list[str], list[str]]:
        names: list[str] = []
        mine: list[str] = []
        todo: list[str] = []
        prepared = False
        with self.progress_bar(None) as bar:
            for name in self.stream(bar):
                position = len(names)
                names.append(name)
                if not self.slot.owns(position):
                    self.skip_shard(name)
                    continue
                mine.append(name)
                if self.store.is_done(name):
                    self.skip_shard(name)
                    continue
                if not prepared:
                    self.prepare([name])
                    prepared = True
                todo.append(name)
                self.commit_shard(name, bar)
        return names, mine, todo

    def progress_bar(self, total: int | None) -> tqdm:
        return tqdm(total=total, desc=self.bar_label(), unit=self.unit, disable=not self.progress, dynamic_ncols=True)

    def bar_label(self) -> str:
        return self.name

    def shared_plan(self, lock_name: str, build: Callable[[], T]) -> T:
        """``build()`` under an exclusive lock in the output directory: the first task of a job
        array builds (and saves) the plan while the others wait, then load the saved one instead
        of each rebuilding it (a floor that would grow with the number of tasks). The kernel
        drops the lock however its holder ends."""
        with open(self.store.root / lock_name, "a") as fh:
            fcntl.flock(fh, fcntl.LOCK_EX)
            return build()


@cache
def stage_class(command: str) -> type | None:
    """The stage class behind an mtqa command (``None``: it writes no shard store)."""
    target = STAGE_CLASSES.get(command.split()[0] if command.strip() else command)
    if target is None:
        return None
    module, _, attr = target.partition(":")
    return getattr(importlib.import_module(module), attr)


def is_sharded(command: str) -> bool:
    """Whether a pipeline step of this command runs as N job-array tasks: the stage says so."""
    cls = stage_class(command)
    return bool(cls is not None and getattr(cls, "sharded", False))
