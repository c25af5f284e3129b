"""AP and R@k from exact ranks, the LAReQA settings (mono / cross / multi) and language bias.

Definitions (the standard trec_eval ones, so ``ir_measures`` on the same ranked list agrees):

- AP of a query = (1/|Rel|) * sum over its relevant candidates r of precision@rank(r), where
  rank is the 1-based position in the full ranking (every candidate is ranked, so every
  relevant one is retrieved). mAP = mean AP over queries.
- R@k = |Rel within the top k| / |Rel|. With one relevant sentence (mono / cross) R@1 is
  accuracy@1; in the pooled setting of XQuAD-R (11 relevant) R@10 is at most 10/11.

Settings, for query language X and candidate language Y (Roy et al. 2020, LAReQA; the
hybrid-batch paper, arXiv 2408.10536, reports them as monolingual, cross-lingual and
multilingual retrieval):

- monolingual X->X: candidates are X's sentences, relevant is the question's answer in X;
- cross-lingual X->Y, X != Y: candidates are Y's sentences, relevant is its answer in Y;
  the setting score is the macro average over all ordered pairs;
- multilingual X->pool: candidates are all languages' sentences pooled, relevant are the
  question's answers in every language (mAP is LAReQA's primary metric).

A query with no relevant sentence in Y (MLQA-R: not every question exists in every
language) is left out of X->Y. Per-language numbers are averaged over queries; the setting
numbers are macro averages over languages (mono, multi) or language pairs (cross).

Language bias (lower is better): for each query in the pooled setting, the rank of its
lowest-ranked relevant sentence minus the rank of its highest-ranked one (max - min rank);
averaged over the queries of each query language, then macro-averaged over languages.
Only queries with at least two relevant sentences count. With n relevant sentences the
floor is n - 1 (10 for XQuAD-R): a model that ranks all 11 translations of the answer first
scores 10, not 0.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from mt_qa.evaluate.ranking import Ranks

DEFAULT_KS = (1, 10)


def average_precision(ranks: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """AP per row from distinct 1-based ranks of the relevant items selected by ``mask``.

    Rows without any relevant item get NaN (so they drop out of nan-means).
    """
    ranks = np.asarray(ranks)
    mask = np.asarray(mask, dtype=bool)
    n_rel = mask.sum(1)
    safe = np.where(mask, ranks, np.iinfo(np.int64).max)
    # how many relevant items rank at or above each one (itself included)
    above = (safe[:, None, :] <= safe[:, :, None]) & mask[:, None, :]
    precision = np.where(mask, above.sum(-1) / np.where(mask, ranks, 1), 0.0)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(n_rel > 0, precision.sum(1) / n_rel, np.nan)


def recall_at(ranks: np.ndarray, mask: np.ndarray, k: int) -> np.ndarray:
    """|relevant within the top k| / |relevant| per row; NaN for rows without relevant items."""
    mask = np.asarray(mask, dtype=bool)
    n_rel = mask.sum(1)
    hits = (mask & (np.asarray(ranks) <= k)).sum(1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(n_rel > 0, hits / n_rel, np.nan)


def reciprocal_rank(ranks: np.ndarray, mask: np.ndarray) -> np.ndarray:
    mask = np.asarray(mask, dtype=bool)
    best = np.where(mask, ranks, np.iinfo(np.int64).max).min(1)
    return np.where(mask.any(1), 1.0 / np.maximum(best, 1), np.nan)


def rank_spread(ranks: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """max - min rank of the relevant items per row (language bias); NaN with fewer than two."""
    mask = np.asarray(mask, dtype=bool)
    big = np.iinfo(np.int64).max
    hi = np.where(mask, ranks, -1).max(1)
    lo = np.where(mask, ranks, big).min(1)
    return np.where(mask.sum(1) >= 2, hi - lo, np.nan).astype(float)


def _mean(values: np.ndarray) -> float | None:
    values = values[~np.isnan(values)]
    return float(values.mean()) if values.size else None


def _macro(values: list[float | None]) -> float | None:
    kept = [v for v in values if v is not None]
    return float(np.mean(kept)) if kept else None


def _scores(ranks: np.ndarray, mask: np.ndarray, ks: tuple[int, ...]) -> dict[str, np.ndarray]:
    out = {"AP": average_precision(ranks, mask)}
    for k in ks:
        out[f"R@{k}"] = recall_at(ranks, mask, k)
    return out


def lareqa_metrics(languages: list[str], query_lang: np.ndarray, ranks: Ranks,
                   ks: tuple[int, ...] = DEFAULT_KS) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """Every LAReQA number: per pair (X->Y), per language (X->pool), settings, language bias.

    Returns (summary, per_query) where summary is JSON-ready and per_query holds arrays
    (``AP_pair``: (nq, L) AP of query q against language l, ``AP_pool``, ``bias``...) for
    per-query output and plots.
    """
    n_lang = len(languages)
    nq = len(query_lang)
    valid = ranks.valid
    names = ["mAP"] + [f"R@{k}" for k in ks]
    pair_q = {m: np.full((nq, n_lang), np.nan) for m in ["AP"] + names[1:]}
    for y in range(n_lang):
        mask = valid & (ranks.segment == y)
        for key, vals in _scores(ranks.in_segment, mask, ks).items():
            pair_q[key][:, y] = vals
    pool_q = _scores(ranks.in_pool, valid, ks)
    bias_q = rank_spread(ranks.in_pool, valid)
    n_rel = valid.sum(1)

    pairs: dict[str, dict[str, Any]] = {}
    matrix = {m: [[None] * n_lang for _ in range(n_lang)] for m in names}
    for x, xl in enumerate(languages):
        rows = query_lang == x
        for y, yl in enumerate(languages):
            ap = pair_q["AP"][rows, y]
            entry: dict[str, Any] = {"n_queries": int((~np.isnan(ap)).sum())}
            for m in names:
                entry[m] = _mean(pair_q["AP" if m == "mAP" else m][rows, y])
                matrix[m][x][y] = entry[m]
            pairs[f"{xl}-{yl}"] = entry
    mono = {lang: pairs[f"{lang}-{lang}"] for lang in languages}
    cross = {k: v for k, v in pairs.items() if k.split("-")[0] != k.split("-")[1]}
    multi: dict[str, dict[str, Any]] = {}
    bias: dict[str, dict[str, Any]] = {}
    for x, xl in enumerate(languages):
        rows = query_lang == x
        entry = {"n_queries": int((~np.isnan(pool_q["AP"][rows])).sum())}
        for m in names:
            entry[m] = _mean(pool_q["AP" if m == "mAP" else m][rows])
        multi[xl] = entry
        b = bias_q[rows]
        b = b[~np.isnan(b)]
        floor = n_rel[rows][n_rel[rows] >= 2] - 1
        bias[xl] = {"mean": float(b.mean()) if b.size else None,
                    "median": float(np.median(b)) if b.size else None,
                    "floor": float(floor.mean()) if floor.size else None,
                    "n_queries": int(b.size)}

    def setting(per: dict[str, dict[str, Any]]) -> dict[str, Any]:
        return {m: _macro([e[m] for e in per.values()]) for m in names}

    summary = {
        "languages": languages,
        "ks": list(ks),
        "settings": {
            "mono": {**setting(mono), "per_language": mono},
            "cross": {**setting(cross), "per_pair": cross},
            "multi": {**setting(multi), "per_language": multi},
        },
        "matrix": matrix,  # [query language][candidate language], diagonal = mono
        "language_bias": {
            "mean": _macro([e["mean"] for e in bias.values()]),
            "floor": _macro([e["floor"] for e in bias.values()]),
            "per_language": bias,
        },
    }
    per_query = {"AP_pair": pair_q["AP"], "AP_pool": pool_q["AP"], "bias": bias_q,
                 **{f"{m}_pool": pool_q[m] for m in names[1:]}}
    return summary, per_query
