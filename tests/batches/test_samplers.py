"""Sampler properties on real SQuAD groups (en/es/it dev, en/pt train prefix)."""

from __future__ import annotations

import math
from collections import Counter, defaultdict

import numpy as np
import pytest

from mt_qa.batches.groups import load_groups
from mt_qa.batches.samplers import MULTI, EpochPool, make_sampler, plan_epoch
from mt_qa.shards import ShardStore


@pytest.fixture(scope="module")
def index(collected_squad):
    return load_groups([ShardStore.open(collected_squad)])


def all_groups(index):
    return np.arange(index.n_groups)


def uniform(index):
    return np.ones(len(index.langs))


def plan(index, strategy, batch_size=32, alpha=0.5, epoch=0, seed=0, weights=None, distinct=True):
    w = uniform(index) if weights is None else weights
    sampler = make_sampler(strategy, batch_size, w, alpha)
    return plan_epoch(index, all_groups(index), sampler, epoch, seed, w, distinct_passages=distinct)


def fingerprint(p):
    return [(b.batch_type, b.groups.tolist(), b.query_lang.tolist(), b.passage_lang.tolist()) for b in p.batches]


def test_index_matches_the_data(index, collected_squad):
    # Every kept row appears once in the (group, language) matrix, at its own group and language.
    store = ShardStore.open(collected_squad)
    assert index.table.num_rows == store.manifest["totals"]["rows"]
    assert (index.row_of >= 0).sum() == index.table.num_rows
    gid = index.table["group_id"].to_pylist()
    lang = index.table["lang"].to_pylist()
    names = index.group_names.to_pylist()
    for g, li in [(0, 0), (index.n_groups - 1, 0), (17, index.langs.index("es"))]:
        r = index.row_of[g, li]
        if r >= 0:
            assert gid[r] == names[g] and lang[r] == index.langs[li]
    # SQuAD asks several questions per paragraph: far fewer passage keys than groups.
    assert len(np.unique(index.passage_key)) < index.n_groups / 3


def test_xx_batches_are_single_language_and_xy_pairs_cross_language(index):
    for b in plan(index, "xx").batches:
        assert len(set(b.query_lang.tolist())) == 1
        assert (b.query_lang == b.passage_lang).all()
    xy = plan(index, "xy").batches
    assert xy
    for b in xy:
        assert (b.query_lang != b.passage_lang).all()
        # Both languages are ones the group really has.
        assert (index.row_of[b.groups, b.query_lang] >= 0).all()
        assert (index.row_of[b.groups, b.passage_lang] >= 0).all()


def test_no_group_or_passage_twice_in_a_batch_nor_a_group_twice_in_an_epoch(index):
    for strategy in ("xx", "xy", "hybrid"):
        p = plan(index, strategy, batch_size=64)
        seen = np.concatenate([b.groups for b in p.batches])
        assert len(seen) == len(set(seen.tolist())), strategy
        for b in p.batches:
            assert len(b.groups) == 64
            assert len(set(index.passage_key[b.groups].tolist())) == 64


def test_without_distinct_passages_siblings_do_share_batches(index):
    # The constraint is real: with it off, random batches of 256 do hold sibling questions.
    p = plan(index, "xx", batch_size=256, distinct=False)
    assert any(len(set(index.passage_key[b.groups].tolist())) < 256 for b in p.batches)


def test_hybrid_alpha_within_binomial_tolerance(index):
    for alpha in (0.2, 0.5, 0.8):
        types = [b.batch_type for e in range(4) for b in plan(index, "hybrid", 16, alpha, epoch=e).batches]
        n = len(types)
        frac = types.count("xx") / n
        assert abs(frac - alpha) <= 4 * math.sqrt(alpha * (1 - alpha) / n), (alpha, frac, n)
    assert {b.batch_type for b in plan(index, "hybrid", 16, 0.0).batches} == {"xy"}
    assert {b.batch_type for b in plan(index, "hybrid", 16, 1.0).batches} == {"xx"}


def test_xy_pairs_are_uniform_over_a_groups_language_pairs(index):
    # Groups with exactly en/es/it: each of the 6 ordered pairs should come up ~1/6 of the time.
    es, it, en = (index.langs.index(x) for x in ("es", "it", "en"))
    trio = {g for g in range(index.n_groups) if set(np.flatnonzero(index.has_lang[g]).tolist()) == {en, es, it}}
    pairs = Counter()
    for e in range(3):
        for b in plan(index, "xy", epoch=e).batches:
            for g, q, p in zip(b.groups.tolist(), b.query_lang.tolist(), b.passage_lang.tolist(), strict=True):
                if g in trio:
                    pairs[(q, p)] += 1
    n = sum(pairs.values())
    assert len(pairs) == 6
    for count in pairs.values():
        assert abs(count / n - 1 / 6) <= 4 * math.sqrt((1 / 6) * (5 / 6) / n)


def test_lang_weights_steer_and_exclude_languages(index):
    w = np.array([{"en": 1.0, "es": 3.0, "it": 0.0, "pt": 1.0}[x] for x in index.langs])
    xx = plan(index, "xx", weights=w).batches
    langs = Counter(index.langs[int(b.query_lang[0])] for b in xx)
    assert "it" not in langs
    # es is 3x as likely as en per batch while both can fill batches (es runs out first).
    first = Counter(index.langs[int(b.query_lang[0])] for b in xx[:60])
    assert first["es"] > first["en"]
    xy = plan(index, "xy", weights=w).batches
    used = {index.langs[int(x)] for b in xy for x in np.concatenate([b.query_lang, b.passage_lang])}
    assert "it" not in used


def test_plans_are_deterministic_per_seed_and_epochs_reshuffle(index):
    assert fingerprint(plan(index, "hybrid", seed=3)) == fingerprint(plan(index, "hybrid", seed=3))
    assert fingerprint(plan(index, "hybrid", seed=3)) != fingerprint(plan(index, "hybrid", seed=4))
    e0, e1 = plan(index, "hybrid", epoch=0), plan(index, "hybrid", epoch=1)
    assert e0.batches[0].groups.tolist() != e1.batches[0].groups.tolist()


def test_hybrid_at_alpha_0_and_1_is_exactly_xy_and_xx(index):
    # The alpha sweep's end points reuse the X-Y and X-X runs: that is only fair if they are the same batches.
    assert fingerprint(plan(index, "hybrid", alpha=0.0, seed=5)) == fingerprint(plan(index, "xy", seed=5))
    assert fingerprint(plan(index, "hybrid", alpha=1.0, seed=5)) == fingerprint(plan(index, "xx", seed=5))


def test_pool_take_restores_queue_when_a_batch_cannot_be_filled(index):
    rng = np.random.default_rng(0)
    pool = EpochPool(index, all_groups(index), uniform(index), rng)
    pt = index.langs.index("pt")
    d = 0
    before = pool.remaining[(d, pt)]
    # 3286 pt groups but only ~580 distinct passages: a batch of 3000 distinct ones cannot be filled.
    assert before >= 3000
    assert pool.take(d, pt, 3000) is None
    assert pool.remaining[(d, pt)] == before
    assert not pool.can_take(d, pt, 1)  # closed for the epoch
    got = pool.take(d, MULTI, 10)
    assert got is not None and pool.used[got].all()


def test_unused_groups_are_counted(index):
    p = plan(index, "hybrid", batch_size=32)
    used = sum(len(b.groups) for b in p.batches)
    assert used + p.unused_groups == index.n_groups
    per_group = defaultdict(int)
    for b in p.batches:
        for g in b.groups.tolist():
            per_group[g] += 1
    assert max(per_group.values()) == 1
