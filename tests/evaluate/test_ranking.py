from __future__ import annotations

import numpy as np
import pytest

from mt_qa.errors import MtqaError
from mt_qa.evaluate.ranking import relevant_ranks


def _naive(scores: np.ndarray, relevant: set[int], candidates: range, ties: str) -> dict[int, int]:
    """Reference: sort the whole candidate list by (score desc, relevance rule, index)."""
    if ties == "pessimistic":
        key = lambda j: (-scores[j], j in relevant, j)  # noqa: E731
    else:
        key = lambda j: (-scores[j], j not in relevant, j)  # noqa: E731
    order = sorted(candidates, key=key)
    return {j: order.index(j) + 1 for j in relevant if j in candidates}


@pytest.mark.parametrize("ties", ["pessimistic", "optimistic"])
@pytest.mark.parametrize("query_chunk,max_block", [(1, 5), (4, 64), (256, 1 << 25)])
def test_ranks_equal_a_full_sort_with_ties_and_any_chunking(ties, query_chunk, max_block):
    rng = np.random.default_rng(11)
    sizes = [9, 4, 13]
    offsets = np.r_[0, np.cumsum(sizes)]
    n = offsets[-1]
    c = rng.integers(0, 3, (n, 3)).astype(np.float32)  # small integers: many exact ties
    q = rng.integers(0, 3, (17, 3)).astype(np.float32)
    rel = np.full((17, 5), -1)
    for i in range(17):
        k = rng.integers(1, 6)
        rel[i, :k] = np.sort(rng.choice(n, k, replace=False))
    r = relevant_ranks(q, c, offsets, rel, ties=ties, query_chunk=query_chunk, max_block=max_block)
    scores = q @ c.T
    for i in range(17):
        relset = {int(j) for j in rel[i] if j >= 0}
        pool = _naive(scores[i], relset, range(n), ties)
        for j, cand in enumerate(rel[i]):
            if cand < 0:
                assert r.segment[i, j] == -1
                continue
            seg = int(np.searchsorted(offsets, cand, side="right") - 1)
            assert r.segment[i, j] == seg
            assert r.in_pool[i, j] == pool[cand]
            within = _naive(scores[i], relset, range(offsets[seg], offsets[seg + 1]), ties)
            assert r.in_segment[i, j] == within[cand]


def test_one_dimensional_rank_counts_by_hand():
    # query [1]: scores are the candidate values; en = [5, 3, 1], es = [4, 2]
    c = np.array([[5], [3], [1], [4], [2]], dtype=np.float32)
    q = np.array([[1]], dtype=np.float32)
    r = relevant_ranks(q, c, np.array([0, 3, 5]), np.array([[1, 4]]))
    assert r.in_segment.tolist() == [[2, 2]]
    assert r.in_pool.tolist() == [[3, 4]]


def test_invalid_inputs_are_reported():
    q = np.ones((2, 3), np.float32)
    c = np.ones((4, 3), np.float32)
    with pytest.raises(MtqaError, match="do not match"):
        relevant_ranks(q, np.ones((4, 2), np.float32), np.array([0, 4]), np.zeros((2, 1), int))
    with pytest.raises(MtqaError, match="offsets"):
        relevant_ranks(q, c, np.array([0, 3]), np.zeros((2, 1), int))
    with pytest.raises(MtqaError, match="past the last"):
        relevant_ranks(q, c, np.array([0, 4]), np.array([[9], [0]]))
    bad = q.copy()
    bad[0, 0] = np.nan
    with pytest.raises(MtqaError, match="NaN"):
        relevant_ranks(bad, c, np.array([0, 4]), np.zeros((2, 1), int))
    with pytest.raises(MtqaError, match="ties"):
        relevant_ranks(q, c, np.array([0, 4]), np.zeros((2, 1), int), ties="random")
