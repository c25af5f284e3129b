"""Exact ranks of the relevant candidates of every query, computed in chunks with bounded memory.

A LAReQA task needs, for every query, the rank of each of its relevant sentences in many
candidate sets: its own language, every other language, and the pool of all languages.
Instead of sorting a score row per setting, we compute the score row once per query
(``queries @ candidates.T`` over the pool) and count, per language segment, how many
candidates score at least as high as each relevant one. A relevant sentence's rank in
language Y is then its count in Y's segment and its rank in the pool is the sum over
segments: one pass gives all L*L + L settings, with exact ranks and no sort.

Ties (equal float32 scores, e.g. the same sentence twice) are resolved by a fixed rule, so
ranks never depend on the order candidates happen to be stored in:

- ``pessimistic`` (default): tied non-relevant candidates rank *before* a relevant one, and
  tied relevant ones among themselves by pool index. A model that gives every candidate the
  same score gets the worst possible ranks, not lucky ones.
- ``optimistic``: tied relevant candidates rank before tied non-relevant ones.

Both are total orders (score descending, then relevance, then index), so the ranks are
those of a real ranked list and any standard evaluator (``ir_measures``/trec_eval) fed
that list gives the same AP and recall.

Memory: one (query chunk x pool) score block plus one (query chunk x relevant x column
block) boolean block; both bounded by ``query_chunk``/``max_block``, whatever the pool size.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from tqdm import tqdm

from mt_qa.errors import MtqaError

TIES = ("pessimistic", "optimistic")


@dataclass
class Ranks:
    """1-based ranks of each query's relevant candidates; rows padded where ``segment`` is -1.

    ``in_segment[q, j]``: rank among the candidates of the relevant's own language segment.
    ``in_pool[q, j]``: rank among all pooled candidates.
    """

    segment: np.ndarray  # (nq, R) int: language segment of relevant j, -1 for padding
    in_segment: np.ndarray  # (nq, R) int
    in_pool: np.ndarray  # (nq, R) int

    @property
    def valid(self) -> np.ndarray:
        return self.segment >= 0


def _check_inputs(queries: np.ndarray, candidates: np.ndarray, offsets: np.ndarray, relevant: np.ndarray) -> None:
    if queries.ndim != 2 or candidates.ndim != 2 or queries.shape[1] != candidates.shape[1]:
        raise MtqaError(f"query embeddings {queries.shape} and candidate embeddings {candidates.shape} do not match")
    if relevant.shape[0] != queries.shape[0]:
        raise MtqaError(f"{relevant.shape[0]} relevance rows for {queries.shape[0]} queries")
    if offsets[0] != 0 or offsets[-1] != candidates.shape[0] or np.any(np.diff(offsets) < 0):
        raise MtqaError(f"segment offsets {offsets.tolist()} do not cover the {candidates.shape[0]} candidates")
    if relevant.size and relevant.max() >= candidates.shape[0]:
        raise MtqaError("a relevant index points past the last candidate")
    for name, arr in (("query", queries), ("candidate", candidates)):
        if not np.isfinite(arr).all():
            raise MtqaError(f"{name} embeddings contain NaN or infinity: the model produced invalid vectors")


def relevant_ranks(
    queries: np.ndarray,
    candidates: np.ndarray,
    offsets: np.ndarray,
    relevant: np.ndarray,
    *,
    ties: str = "pessimistic",
    query_chunk: int = 256,
    max_block: int = 1 << 25,
    progress: bool = False,
) -> Ranks:
    """Ranks of ``relevant`` (pool indices, -1 padded) for each query, per segment and pooled.

    Scores are dot products (cosine for normalised embeddings). ``max_block`` caps the
    elements of the boolean comparison block; ``query_chunk`` the rows of a score block.
    """
    if ties not in TIES:
        raise MtqaError(f"ties must be one of {TIES}, not {ties!r}")
    queries = np.ascontiguousarray(queries, dtype=np.float32)
    candidates = np.ascontiguousarray(candidates, dtype=np.float32)
    offsets = np.asarray(offsets, dtype=np.int64)
    relevant = np.asarray(relevant, dtype=np.int64)
    if relevant.ndim == 1:
        relevant = relevant[:, None]
    _check_inputs(queries, candidates, offsets, relevant)
    nq, width = relevant.shape
    n_seg = len(offsets) - 1
    segment = np.where(relevant >= 0, np.searchsorted(offsets, relevant, side="right") - 1, -1)
    in_segment = np.zeros((nq, width), dtype=np.int64)
    in_pool = np.zeros((nq, width), dtype=np.int64)
    pessimistic = ties == "pessimistic"
    bar = tqdm(total=nq, desc="rank", unit="q", disable=not progress, dynamic_ncols=True)
    for lo in range(0, nq, query_chunk):
        hi = min(lo + query_chunk, nq)
        rel = relevant[lo:hi]
        valid = rel >= 0
        seg = segment[lo:hi]
        scores = queries[lo:hi] @ candidates.T  # (c, N)
        # The relevant scores are read from the same block so a candidate ties with itself exactly.
        rel_scores = np.take_along_axis(scores, np.where(valid, rel, 0), axis=1)
        rel_scores[~valid] = np.inf  # padding: nothing scores >= inf
        counts = np.zeros((hi - lo, width, n_seg), dtype=np.int64)
        cols = max(1, max_block // max(1, (hi - lo) * width))
        for s in range(n_seg):
            for a in range(int(offsets[s]), int(offsets[s + 1]), cols):
                b = min(a + cols, int(offsets[s + 1]))
                block = scores[:, None, a:b]
                hits = block >= rel_scores[:, :, None] if pessimistic else block > rel_scores[:, :, None]
                counts[:, :, s] += hits.sum(-1, dtype=np.int32)  # faster than count_nonzero(axis=)
        # Ties among a query's own relevant candidates: broken by pool index.
        tied = (rel_scores[:, :, None] == rel_scores[:, None, :]) & valid[:, :, None] & valid[:, None, :]
        if pessimistic:
            order = rel[:, None, :] > rel[:, :, None]  # the other relevant comes later
        else:
            order = rel[:, None, :] < rel[:, :, None]  # the other relevant comes earlier
        tied &= order
        same_seg = seg[:, :, None] == seg[:, None, :]
        tie_all = tied.sum(-1)
        tie_seg = (tied & same_seg).sum(-1)
        own = np.take_along_axis(counts, np.where(valid, seg, 0)[:, :, None], axis=2)[:, :, 0]
        pool = counts.sum(-1)
        if pessimistic:
            r_seg, r_pool = own - tie_seg, pool - tie_all
        else:
            r_seg, r_pool = own + tie_seg + 1, pool + tie_all + 1
        in_segment[lo:hi] = np.where(valid, r_seg, 0)
        in_pool[lo:hi] = np.where(valid, r_pool, 0)
        bar.update(hi - lo)
    bar.close()
    return Ranks(segment=segment, in_segment=in_segment, in_pool=in_pool)
