from __future__ import annotations

import ir_measures
import numpy as np
import pytest
from ir_measures import AP, RR, R

from mt_qa.evaluate.metrics import average_precision, lareqa_metrics, rank_spread, recall_at, reciprocal_rank
from mt_qa.evaluate.ranking import Ranks, relevant_ranks


def _unit(rng: np.random.Generator, n: int, d: int) -> np.ndarray:
    x = rng.normal(size=(n, d)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def _metrics_from_engine(q, c, offsets, rel, k=10):
    r = relevant_ranks(q, c, offsets, rel, query_chunk=7)
    mask = r.valid
    return {
        "AP": average_precision(r.in_pool, mask),
        "R@1": recall_at(r.in_pool, mask, 1),
        f"R@{k}": recall_at(r.in_pool, mask, k),
        "RR": reciprocal_rank(r.in_pool, mask),
    }, r


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_pooled_metrics_match_ir_measures_on_random_rankings(seed):
    rng = np.random.default_rng(seed)
    nq, sizes, d = 40, [30, 25, 35], 8
    offsets = np.r_[0, np.cumsum(sizes)]
    q, c = _unit(rng, nq, d), _unit(rng, offsets[-1], d)
    rel = np.full((nq, 5), -1)
    for i in range(nq):
        k = rng.integers(1, 6)
        rel[i, :k] = np.sort(rng.choice(offsets[-1], k, replace=False))
    ours, _ = _metrics_from_engine(q, c, offsets, rel)
    scores = q @ c.T
    qrels = {f"q{i}": {f"d{j}": 1 for j in rel[i] if j >= 0} for i in range(nq)}
    run = {f"q{i}": {f"d{j}": float(scores[i, j]) for j in range(offsets[-1])} for i in range(nq)}
    ref = {(m.query_id, str(m.measure)): m.value for m in ir_measures.iter_calc([AP, R @ 1, R @ 10, RR], qrels, run)}
    for i in range(nq):
        assert ours["AP"][i] == pytest.approx(ref[(f"q{i}", "AP")], abs=1e-9)
        assert ours["R@1"][i] == pytest.approx(ref[(f"q{i}", "R@1")], abs=1e-9)
        assert ours["R@10"][i] == pytest.approx(ref[(f"q{i}", "R@10")], abs=1e-9)
        assert ours["RR"][i] == pytest.approx(ref[(f"q{i}", "RR")], abs=1e-9)


def test_per_language_settings_match_ir_measures_on_each_segment():
    rng = np.random.default_rng(5)
    langs = ["en", "es", "it"]
    n_per, sizes = 12, [20, 18, 22]
    offsets = np.r_[0, np.cumsum(sizes)]
    c = _unit(rng, offsets[-1], 6)
    q = _unit(rng, n_per * 3, 6)
    qlang = np.repeat(np.arange(3), n_per)
    # question i (any query language) has one answer per language
    answer = [[rng.integers(offsets[y], offsets[y + 1]) for y in range(3)] for _ in range(n_per)]
    rel = np.array([answer[i % n_per] for i in range(n_per * 3)])
    ranks = relevant_ranks(q, c, offsets, rel)
    summary, per_query = lareqa_metrics(langs, qlang, ranks, ks=(1, 10))
    scores = q @ c.T
    for x in range(3):
        for y in range(3):
            rows = np.where(qlang == x)[0]
            qrels = {f"q{i}": {f"d{rel[i, y]}": 1} for i in rows}
            run = {f"q{i}": {f"d{j}": float(scores[i, j]) for j in range(offsets[y], offsets[y + 1])} for i in rows}
            ref = ir_measures.calc_aggregate([AP, R @ 1], qrels, run)
            pair = summary["settings"]["mono" if x == y else "cross"]
            entry = pair["per_language"][langs[x]] if x == y else pair["per_pair"][f"{langs[x]}-{langs[y]}"]
            assert entry["mAP"] == pytest.approx(ref[AP], abs=1e-9)
            assert entry["R@1"] == pytest.approx(ref[R @ 1], abs=1e-9)
            assert summary["matrix"]["mAP"][x][y] == pytest.approx(ref[AP], abs=1e-9)
    off_diag = [summary["matrix"]["mAP"][x][y] for x in range(3) for y in range(3) if x != y]
    assert summary["settings"]["cross"]["mAP"] == pytest.approx(np.mean(off_diag))
    assert summary["settings"]["mono"]["mAP"] == pytest.approx(np.mean([summary["matrix"]["mAP"][i][i]
                                                                        for i in range(3)]))
    # multilingual: the pool, all three answers relevant
    for x in range(3):
        rows = np.where(qlang == x)[0]
        qrels = {f"q{i}": {f"d{j}": 1 for j in rel[i]} for i in rows}
        run = {f"q{i}": {f"d{j}": float(scores[i, j]) for j in range(offsets[-1])} for i in rows}
        ref = ir_measures.calc_aggregate([AP, R @ 10], qrels, run)
        multi = summary["settings"]["multi"]["per_language"][langs[x]]
        assert multi["mAP"] == pytest.approx(ref[AP], abs=1e-9)
        assert multi["R@10"] == pytest.approx(ref[R @ 10], abs=1e-9)
    assert per_query["AP_pair"].shape == (n_per * 3, 3)


def test_hand_computed_average_precision_and_recall():
    ranks = np.array([[1, 3, 0], [2, 5, 10], [4, 0, 0]])
    mask = np.array([[True, True, False], [True, True, True], [True, False, False]])
    ap = average_precision(ranks, mask)
    assert ap[0] == pytest.approx((1 / 1 + 2 / 3) / 2)
    assert ap[1] == pytest.approx((1 / 2 + 2 / 5 + 3 / 10) / 3)
    assert ap[2] == pytest.approx(1 / 4)
    assert recall_at(ranks, mask, 1).tolist() == pytest.approx([0.5, 0.0, 0.0])
    assert recall_at(ranks, mask, 5).tolist() == pytest.approx([1.0, 2 / 3, 1.0])
    assert rank_spread(ranks, mask)[:2].tolist() == [2.0, 8.0]
    assert np.isnan(rank_spread(ranks, mask)[2])  # one relevant: no spread
    assert np.isnan(average_precision(np.zeros((1, 2)), np.zeros((1, 2), dtype=bool))[0])


def _one_query(scores: list[float], relevant: list[int], ties: str) -> np.ndarray:
    """1-d embeddings: the query is [1], candidate i is [scores[i]], so its score is scores[i]."""
    q = np.ones((1, 1), dtype=np.float32)
    c = np.asarray(scores, dtype=np.float32)[:, None]
    r = relevant_ranks(q, c, np.array([0, len(scores)]), np.array([relevant]), ties=ties)
    return r.in_pool[0]


def test_ties_with_non_relevant_are_pessimistic_by_default():
    scores = [0.9, 0.5, 0.5, 0.1]
    assert _one_query(scores, [2], "pessimistic").tolist() == [3]
    assert _one_query(scores, [1], "pessimistic").tolist() == [3]  # storage order does not matter
    assert _one_query(scores, [2], "optimistic").tolist() == [2]
    assert _one_query(scores, [1], "optimistic").tolist() == [2]


def test_ties_among_relevant_are_broken_by_index():
    scores = [0.5, 0.5, 0.5]
    ranks = _one_query(scores, [0, 2], "pessimistic")
    assert ranks.tolist() == [2, 3]
    assert average_precision(ranks[None], np.ones((1, 2), bool))[0] == pytest.approx((1 / 2 + 2 / 3) / 2)
    ranks = _one_query(scores, [0, 2], "optimistic")
    assert ranks.tolist() == [1, 2]
    assert average_precision(ranks[None], np.ones((1, 2), bool))[0] == pytest.approx(1.0)


def test_constant_model_gets_the_worst_ranks():
    ranks = _one_query([0.0] * 50, [7], "pessimistic")
    assert ranks.tolist() == [50]


def test_tie_broken_ranks_agree_with_ir_measures_on_the_same_order():
    """With many ties, our ranks are a real ranked list: ir_measures on that list gives the same AP."""
    rng = np.random.default_rng(3)
    nq, n = 15, 40
    q = rng.integers(0, 3, (nq, 2)).astype(np.float32)
    c = rng.integers(0, 3, (n, 2)).astype(np.float32)
    rel = np.array([np.sort(rng.choice(n, 3, replace=False)) for _ in range(nq)])
    r = relevant_ranks(q, c, np.array([0, n]), rel)
    scores = q @ c.T
    qrels, run = {}, {}
    for i in range(nq):
        relset = set(rel[i].tolist())
        order = sorted(range(n), key=lambda j: (-scores[i, j], j in relset, j))  # the documented total order
        qrels[f"q{i}"] = {f"d{j}": 1 for j in relset}
        run[f"q{i}"] = {f"d{j}": float(n - pos) for pos, j in enumerate(order)}
        assert sorted(r.in_pool[i].tolist()) == sorted(order.index(j) + 1 for j in relset)
    ours = average_precision(r.in_pool, r.valid)
    ref = {m.query_id: m.value for m in ir_measures.iter_calc([AP], qrels, run)}
    assert ours.tolist() == pytest.approx([ref[f"q{i}"] for i in range(nq)])


def test_language_bias_on_constructed_rankings():
    # pool: en candidates 0..3, es candidates 4..7; three queries with known pooled ranks
    langs = ["en", "es"]
    ranks = Ranks(
        segment=np.array([[0, 1], [0, 1], [0, -1]]),
        in_segment=np.array([[1, 1], [2, 1], [1, 0]]),
        in_pool=np.array([[1, 2], [3, 8], [1, 0]]),
    )
    qlang = np.array([0, 0, 1])
    summary, per_query = lareqa_metrics(langs, qlang, ranks)
    assert per_query["bias"][:2].tolist() == [1.0, 5.0]
    assert np.isnan(per_query["bias"][2])  # a single relevant sentence: left out
    bias = summary["language_bias"]
    assert bias["per_language"]["en"]["mean"] == pytest.approx(3.0)
    assert bias["per_language"]["es"]["mean"] is None
    assert bias["mean"] == pytest.approx(3.0)
    assert bias["per_language"]["en"]["floor"] == pytest.approx(1.0)


def test_language_bias_is_macro_over_query_languages():
    ranks = Ranks(segment=np.array([[0, 1]] * 4), in_segment=np.ones((4, 2), int),
                  in_pool=np.array([[1, 2], [1, 3], [1, 4], [1, 101]]))
    summary, _ = lareqa_metrics(["en", "es"], np.array([0, 0, 0, 1]), ranks)
    per = summary["language_bias"]["per_language"]
    assert per["en"]["mean"] == pytest.approx(2.0)  # (1 + 2 + 3) / 3
    assert per["es"]["mean"] == pytest.approx(100.0)
    assert summary["language_bias"]["mean"] == pytest.approx(51.0)  # macro, not (1+2+3+100)/4


def test_perfectly_aligned_embeddings_score_one_and_minimal_bias():
    """Parallel answers embedded identically to their question: every setting perfect, bias at its floor."""
    rng = np.random.default_rng(0)
    n, langs = 20, 3
    base = _unit(rng, n, 16)
    c = np.concatenate([base] * langs)
    q = np.concatenate([base] * langs)
    offsets = np.arange(langs + 1) * n
    rel = np.array([[i + y * n for y in range(langs)] for _ in range(langs) for i in range(n)])
    summary, _ = lareqa_metrics(["a", "b", "c"], np.repeat(np.arange(langs), n),
                                relevant_ranks(q, c, offsets, rel, ties="optimistic"))
    for setting in ("mono", "cross", "multi"):
        assert summary["settings"][setting]["mAP"] == pytest.approx(1.0)
    assert summary["language_bias"]["mean"] == pytest.approx(langs - 1)
