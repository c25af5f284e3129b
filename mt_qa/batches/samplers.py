"""Batch samplers: X-X (one language per batch), X-Y (cross-language pairs) and hybrid.

An epoch uses every group at most once, and a batch never holds two groups of one passage
(which also rules out two rows of one ``group_id``): parallel translations or sibling
questions of one paragraph would be false in-batch negatives. Batches are full
(``batch_size`` pairs); an epoch ends for a dataset as soon as the batch it drew cannot be
filled, and the groups left over are counted (the next epoch reshuffles, so they differ).

Each sampler is a small class with one job: given the pool of unused groups of a dataset,
return one batch (or None when it cannot be filled). The planner picks the dataset of
each batch and stops when every dataset is exhausted.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

import numpy as np

from mt_qa.batches.groups import GroupIndex

XX = "xx"
XY = "xy"
STRATEGIES = ("xx", "xy", "hybrid")
MULTI = -1  # pool key of the groups that have two or more usable languages


@dataclass
class PlannedBatch:
    """One batch as integers: group, query language and passage language per position."""

    batch_type: str
    dataset: int
    groups: np.ndarray
    query_lang: np.ndarray
    passage_lang: np.ndarray


class EpochPool:
    """The groups still unused in one epoch, queued in a shuffled order per (dataset, language).

    A group sits in the queue of each of its languages (and in the multi-language queue when
    it has two or more); using it anywhere marks it used everywhere (lazy deletion), so a
    take is amortised O(batch size).
    """

    def __init__(self, index: GroupIndex, groups: np.ndarray, lang_weights: np.ndarray, rng: np.random.Generator,
                 distinct_passages: bool = True):
        self.index = index
        self.distinct_passages = distinct_passages
        self.usable = index.has_lang & (lang_weights > 0)[None, :]
        order = groups[rng.permutation(len(groups))]
        self.used = np.zeros(index.n_groups, dtype=bool)
        self.queues: dict[tuple[int, int], deque[int]] = {}
        self.remaining: dict[tuple[int, int], int] = {}
        self.closed: set[tuple[int, int]] = set()
        ds = index.group_dataset[order]
        multi = self.usable[order].sum(axis=1) >= 2
        for d in np.unique(ds).tolist():
            in_d = ds == d
            for lang in range(len(index.langs)):
                self._queue((d, lang), order[in_d & self.usable[order, lang]])
            self._queue((d, MULTI), order[in_d & multi])

    def _queue(self, key: tuple[int, int], groups: np.ndarray) -> None:
        if len(groups):
            self.queues[key] = deque(groups.tolist())
            self.remaining[key] = len(groups)

    def can_take(self, dataset: int, key: int, n: int) -> bool:
        k = (dataset, key)
        return k not in self.closed and self.remaining.get(k, 0) >= n

    def take(self, dataset: int, key: int, n: int) -> np.ndarray | None:
        """``n`` unused groups of distinct passages from the front of a queue, or None.

        Groups skipped for a repeated passage go back to the front, so they come first in
        the next batch. A queue that cannot fill a batch is closed for the rest of the
        epoch: the unused set only shrinks, so it could never fill one later.
        """
        k = (dataset, key)
        if not self.can_take(dataset, key, n):
            return None
        queue = self.queues[k]
        popped: list[int] = []
        picked: list[int] = []
        deferred: list[int] = []
        seen: set[int] = set()
        passage_key = self.index.passage_key
        while len(picked) < n and queue:
            g = queue.popleft()
            if self.used[g]:
                continue
            popped.append(g)
            if self.distinct_passages:
                pk = int(passage_key[g])
                if pk in seen:
                    deferred.append(g)
                    continue
                seen.add(pk)
            picked.append(g)
        if len(picked) < n:
            queue.extendleft(reversed(popped))
            self.closed.add(k)
            return None
        queue.extendleft(reversed(deferred))
        groups = np.array(picked, dtype=np.int64)
        self._mark_used(dataset, groups)
        return groups

    def _mark_used(self, dataset: int, groups: np.ndarray) -> None:
        self.used[groups] = True
        usable = self.usable[groups]
        for lang, count in enumerate(usable.sum(axis=0).tolist()):
            if count:
                self.remaining[(dataset, lang)] -= count
        n_multi = int((usable.sum(axis=1) >= 2).sum())
        if n_multi:
            self.remaining[(dataset, MULTI)] -= n_multi

    def unused(self, groups: np.ndarray) -> np.ndarray:
        return groups[~self.used[groups]]


@dataclass
class XXSampler:
    """Each batch in one language: the language is drawn by weight among those that can fill it."""

    batch_size: int
    lang_weights: np.ndarray
    batch_type: str = field(default=XX, init=False)

    def sample(self, pool: EpochPool, dataset: int, rng: np.random.Generator) -> PlannedBatch | None:
        candidates = [lang for lang in range(len(self.lang_weights))
                      if self.lang_weights[lang] > 0 and pool.can_take(dataset, lang, self.batch_size)]
        while candidates:
            w = self.lang_weights[candidates]
            lang = candidates[int(rng.choice(len(candidates), p=w / w.sum()))]
            groups = pool.take(dataset, lang, self.batch_size)
            if groups is not None:
                langs = np.full(self.batch_size, lang, dtype=np.int64)
                return PlannedBatch(XX, dataset, groups, langs, langs.copy())
            candidates.remove(lang)
        return None


@dataclass
class XYSampler:
    """Every pair cross-language: per example, the query language is drawn by weight among the
    group's languages, then the passage language among the others."""

    batch_size: int
    lang_weights: np.ndarray
    batch_type: str = field(default=XY, init=False)

    def sample(self, pool: EpochPool, dataset: int, rng: np.random.Generator) -> PlannedBatch | None:
        groups = pool.take(dataset, MULTI, self.batch_size)
        if groups is None:
            return None
        probs = pool.usable[groups] * self.lang_weights[None, :]
        query = _draw_rows(probs, rng)
        probs[np.arange(len(groups)), query] = 0.0
        passage = _draw_rows(probs, rng)
        return PlannedBatch(XY, dataset, groups, query, passage)


def _draw_rows(probs: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """One category per row of an (unnormalised) probability matrix, vectorised."""
    cdf = np.cumsum(probs, axis=1)
    cdf /= cdf[:, -1:]
    u = rng.random(len(probs))[:, None]
    return np.minimum((u >= cdf).sum(axis=1), probs.shape[1] - 1).astype(np.int64)


@dataclass
class HybridSampler:
    """Each whole batch is X-X with probability ``alpha``, else X-Y (the paper's hybrid batching)."""

    alpha: float
    xx: XXSampler
    xy: XYSampler

    def sample(self, pool: EpochPool, dataset: int, rng: np.random.Generator) -> PlannedBatch | None:
        # The type is drawn first and kept: falling back to the other type when this one cannot be
        # filled would bias the tail of every epoch away from alpha. alpha 0 or 1 draws nothing, so
        # the random stream, and thus every batch, is exactly that of plain X-Y or X-X.
        if self.alpha <= 0.0 or self.alpha >= 1.0:
            sampler = self.xx if self.alpha >= 1.0 else self.xy
        else:
            sampler = self.xx if rng.random() < self.alpha else self.xy
        return sampler.sample(pool, dataset, rng)


Sampler = XXSampler | XYSampler | HybridSampler


def make_sampler(strategy: str, batch_size: int, lang_weights: np.ndarray, alpha: float = 0.5) -> Sampler:
    if strategy == "xx":
        return XXSampler(batch_size, lang_weights)
    if strategy == "xy":
        return XYSampler(batch_size, lang_weights)
    if strategy == "hybrid":
        return HybridSampler(alpha, XXSampler(batch_size, lang_weights), XYSampler(batch_size, lang_weights))
    raise ValueError(f"unknown strategy {strategy!r}; one of {STRATEGIES}")


@dataclass
class EpochPlan:
    """All batches of one epoch, in training order, and the groups it left unused."""

    epoch: int
    batches: list[PlannedBatch]
    unused_groups: int


def plan_epoch(index: GroupIndex, groups: np.ndarray, sampler: Sampler, epoch: int, seed: int,
               lang_weights: np.ndarray, dataset_weights: np.ndarray | None = None,
               distinct_passages: bool = True) -> EpochPlan:
    """Draw one epoch's batches. Deterministic in (seed, epoch), independent of other epochs.

    Each batch comes from one dataset (in-batch negatives from another domain are trivially
    easy), drawn with probability proportional to the dataset's size, or to ``dataset_weights``,
    among the datasets that can still fill a batch.
    """
    rng = np.random.default_rng([seed, epoch])
    pool = EpochPool(index, groups, lang_weights, rng, distinct_passages)
    sizes = index.dataset_sizes(groups).astype(float)
    weights = sizes if dataset_weights is None else np.where(sizes > 0, dataset_weights, 0.0)
    active = [d for d in range(len(weights)) if weights[d] > 0]
    batches: list[PlannedBatch] = []
    while active:
        w = weights[active]
        dataset = active[int(rng.choice(len(active), p=w / w.sum()))]
        batch = sampler.sample(pool, dataset, rng)
        if batch is None:
            active.remove(dataset)
            continue
        batches.append(batch)
    return EpochPlan(epoch, batches, int(len(pool.unused(groups))))
