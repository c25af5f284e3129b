"""``filter --workers N``: shards filtered in N processes. Each output shard is written and
committed by exactly one of them, atomically, so the result is the same as in one process."""

from __future__ import annotations

import multiprocessing
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import asdict
from typing import TYPE_CHECKING, Any

from tqdm import tqdm

from mt_qa.errors import MtqaError

if TYPE_CHECKING:
    from mt_qa.filter.checks import Check
    from mt_qa.filter.stage import FilterStage
    from mt_qa.shards import ShardStore

Counts = tuple[dict[str, dict[str, int]], dict[str, float]]


def run_pool(stage: FilterStage, todo: list[str], workers: int, bar: tqdm) -> Iterator[Counts]:
    """(counts, seconds by check) of each shard, as the workers finish them."""
    context = multiprocessing.get_context("spawn")  # no fork: pyarrow and tqdm hold threads
    init = (str(stage.src_dir), str(stage.store.root), asdict(stage.config))
    with ProcessPoolExecutor(workers, mp_context=context, initializer=_init_worker, initargs=init) as pool:
        futures = {pool.submit(_worker_filter, name): name for name in todo}
        for future in as_completed(futures):
            bar.update(stage.rows_of(futures[future]))
            yield future.result()


# One worker process's stage, source store and checks, built once by the pool's initializer.
_WORKER: tuple[FilterStage, ShardStore, list[Check]] | None = None


def _init_worker(src_dir: str, out_dir: str, config: dict[str, Any]) -> None:
    global _WORKER
    from mt_qa.filter.config import FilterConfig
    from mt_qa.filter.dedup import DedupPlan
    from mt_qa.filter.stage import PLAN_FILE, FilterStage
    from mt_qa.run.task import set_parent_death_signal

    set_parent_death_signal()  # a killed filter task takes its pool with it
    config["skip"] = tuple(config["skip"])
    stage = FilterStage(src_dir, out_dir, FilterConfig(**config), progress=False)
    src = stage._open_source()
    plan = DedupPlan.load(stage.store.root / PLAN_FILE, stage.config.dedup_config()) \
        if "dedup" in stage.config.enabled else None
    if "dedup" in stage.config.enabled and plan is None:
        raise MtqaError(f"{out_dir}: the dedup plan vanished while workers started")
    _WORKER = (stage, src, stage.checks(stage._detector(src), plan))


def _worker_filter(name: str) -> Counts:
    assert _WORKER is not None, "worker not initialised"
    stage, src, checks = _WORKER
    writer = stage.store.writer(name)
    counts = stage.filter_one(src, name, checks, writer, None)
    writer.commit()
    return counts
