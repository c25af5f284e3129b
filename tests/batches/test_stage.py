"""The build-batches stage end to end on real SQuAD data: shards, stats, determinism, arrays, CLI."""

from __future__ import annotations

import math
from collections import Counter

import pyarrow.compute as pc
import pytest

from mt_qa.batches import BM25NegativeMiner, BuildBatchesStage
from mt_qa.cli import main
from mt_qa.collect import CollectStage, SourceSpec
from mt_qa.errors import MtqaError
from mt_qa.shards import ShardStore
from tests.helpers import tree_digest


def build(src, out, **kw) -> dict:
    kw.setdefault("progress", False)
    return BuildBatchesStage([str(s) for s in (src if isinstance(src, list) else [src])], out, **kw).run()


@pytest.fixture(scope="module")
def hybrid(collected_squad, tmp_path_factory):
    out = tmp_path_factory.mktemp("hybrid") / "batches"
    build(collected_squad, out, batch_size=32, epochs=2, alpha=0.5, batches_per_shard=40, seed=7)
    return out


@pytest.fixture(scope="module")
def english_passages(collected_squad):
    t = ShardStore.open(collected_squad).table(lang="en", columns=["group_id", "passage"])
    return dict(zip(t["group_id"].to_pylist(), t["passage"].to_pylist(), strict=True))


def batches_of(table):
    rows = table.to_pylist()
    out: dict[int, list[dict]] = {}
    for r in rows:
        out.setdefault(r["batch_id"], []).append(r)
    return out


def test_batch_shards_are_whole_ordered_batches(hybrid):
    store = ShardStore.open(hybrid)
    assert store.validate() == []
    expected_id = 0
    for name in store.shard_names():
        t = store.table(shard=name)
        ids = t["batch_id"].to_pylist()
        pos = t["position"].to_pylist()
        # Batches are contiguous, in id order, 32 rows each, positions 0..31: never split across shards.
        assert ids == sorted(ids) and ids[0] == expected_id
        counts = Counter(ids)
        assert set(counts.values()) == {32}
        assert pos == list(range(32)) * len(counts)
        expected_id = ids[-1] + 1
        # A shard belongs to one epoch, named in its stats.
        assert len(store.manifest["shards"][name]["stats"]["epoch"]) == 1


def test_rows_are_real_pairs_of_their_group(hybrid, collected_squad, english_passages):
    src = ShardStore.open(collected_squad).table()
    by_id = {i: (q, p) for i, q, p in zip(src["id"].to_pylist(), src["question"].to_pylist(),
                                           src["passage"].to_pylist(), strict=True)}
    t = ShardStore.open(hybrid).table()
    for r in t.slice(0, 3000).to_pylist():
        assert r["query_id"] == f"{r['group_id']}/{r['query_lang']}"
        assert r["positive_id"] == f"{r['group_id']}/{r['passage_lang']}"
        assert r["query"] == by_id[r["query_id"]][0]
        assert r["positive"] == by_id[r["positive_id"]][1]  # the whole paragraph
        assert r["negative"] is None and r["negative_id"] is None


def test_batch_invariants_on_disk(hybrid, english_passages):
    for batch in batches_of(ShardStore.open(hybrid).table()).values():
        kind = batch[0]["batch_type"]
        assert {r["batch_type"] for r in batch} == {kind}
        groups = [r["group_id"] for r in batch]
        assert len(set(groups)) == len(groups)
        assert len({english_passages[g] for g in groups}) == len(groups)  # no sibling questions
        if kind == "xx":
            assert len({(r["query_lang"], r["passage_lang"]) for r in batch}) == 1
            assert batch[0]["query_lang"] == batch[0]["passage_lang"]
        else:
            assert all(r["query_lang"] != r["passage_lang"] for r in batch)


def test_manifest_stats_match_the_rows(hybrid):
    store = ShardStore.open(hybrid)
    stats = store.manifest["stats"]
    t = store.table()
    batches = batches_of(t)
    types = Counter(b[0]["batch_type"] for b in batches.values())
    assert stats["batches"] == dict(types)
    assert stats["rows"] == t.num_rows == 32 * len(batches)
    pairs = Counter(f"{q}-{p}" for q, p in zip(t["query_lang"].to_pylist(), t["passage_lang"].to_pylist(),
                                                 strict=True))
    assert stats["pairs"] == dict(pairs)
    assert stats["query_lang"] == dict(Counter(t["query_lang"].to_pylist()))
    assert stats["passage_lang"] == dict(Counter(t["passage_lang"].to_pylist()))
    xx_langs = Counter(b[0]["query_lang"] for b in batches.values() if b[0]["batch_type"] == "xx")
    assert stats["xx_batch_lang"] == dict(xx_langs)
    summary = stats["summary"]
    n = len(batches)
    assert summary["batches"] == n
    assert summary["batch_type_fraction"]["xx"] == pytest.approx(types["xx"] / n, abs=1e-6)
    assert abs(summary["batch_type_fraction"]["xx"] - 0.5) <= 4 * math.sqrt(0.25 / n)
    assert sum(summary["batches_by_epoch"].values()) == n
    assert stats["epoch"] == summary["batches_by_epoch"]
    # Every group is used at most once per epoch; the rest is reported as unused.
    for epoch, count in summary["batches_by_epoch"].items():
        assert count * 32 + summary["unused_groups_by_epoch"][epoch] == summary["groups"]


def test_same_seed_same_bytes_other_seed_other_batches(hybrid, collected_squad, tmp_path):
    build(collected_squad, tmp_path / "again", batch_size=32, epochs=2, alpha=0.5, batches_per_shard=40, seed=7)
    assert tree_digest(tmp_path / "again") == tree_digest(hybrid)
    build(collected_squad, tmp_path / "other", batch_size=32, epochs=2, alpha=0.5, batches_per_shard=40, seed=8)
    assert tree_digest(tmp_path / "other") != tree_digest(hybrid)


def test_epochs_reshuffle(hybrid):
    t = ShardStore.open(hybrid).table()
    store = ShardStore.open(hybrid)
    n0 = store.manifest["stats"]["summary"]["batches_by_epoch"]["0"]
    ids = t["batch_id"].to_numpy()
    first = t.filter(pc.less(t["batch_id"], n0))["query_id"].to_pylist()
    second = t.filter(pc.greater_equal(t["batch_id"], n0))["query_id"].to_pylist()
    assert first[:32] != second[:32]
    assert len(set(first)) == len(first) and len(set(second)) == len(second)
    assert ids.max() + 1 == len(ids) // 32


def test_job_array_and_resume_give_the_same_bytes(hybrid, collected_squad, tmp_path):
    out = tmp_path / "array"
    kw = dict(batch_size=32, epochs=2, alpha=0.5, batches_per_shard=40, seed=7)
    first = build(collected_squad, out, num_tasks=2, task_index=1, **kw)
    assert not first["finished"] and not (out / "manifest.json").exists()
    assert build(collected_squad, out, num_tasks=2, task_index=0, **kw)["finished"]
    assert tree_digest(out) == tree_digest(hybrid)
    # An interrupted shard (no done marker) is redone; the others are left alone.
    (out / "_done" / "part-00002.json").unlink()
    (out / "data" / "part-00002.arrow").write_bytes(b"half a file")
    build(collected_squad, out, **kw)
    assert tree_digest(out) == tree_digest(hybrid)


def test_dataset_mixing_follows_size_or_weights(collected_squad, squad_dir, tmp_path):
    other = tmp_path / "trainprefix"
    CollectStage([SourceSpec(str(squad_dir / "train-v1.1.prefix.en.json.gz"), dataset="prefix")], other,
                 progress=False).run()
    out = tmp_path / "mixed"
    res = build([collected_squad, other], out, batch_size=16, strategy="xx", langs=["en"], epochs=2)
    stats = ShardStore.open(out).manifest["stats"]
    groups = {"squad": 13187, "prefix": 3807}
    total = sum(stats["datasets"].values())
    share = stats["datasets"]["prefix"] / total
    expected = groups["prefix"] / sum(groups.values())
    assert abs(share - expected) <= 4 * math.sqrt(expected * (1 - expected) / total) + 0.02
    assert res["summary"]["input_rows_excluded_by_langs"] == 6117 + 5851 + 3286
    # Batches never mix datasets.
    for batch in batches_of(ShardStore.open(out).table()).values():
        assert len({r["dataset"] for r in batch}) == 1
    build([collected_squad, other], tmp_path / "weighted", batch_size=16, strategy="xx", langs=["en"],
          dataset_weights={"prefix": 1.0})
    assert ShardStore.open(tmp_path / "weighted").manifest["stats"]["datasets"].keys() == {"prefix"}


def test_bm25_negatives_are_hard_but_not_the_positive(collected_squad, english_passages, tmp_path):
    out = tmp_path / "neg"
    miner = BM25NegativeMiner(3, 10)
    build(collected_squad, out, batch_size=32, strategy="hybrid", miner=miner)
    store = ShardStore.open(out)
    t = store.table()
    rows = t.to_pylist()
    with_neg = [r for r in rows if r["negative"] is not None]
    assert len(with_neg) >= 0.99 * len(rows)
    assert store.manifest["stats"]["negatives"]["with"] == len(with_neg)
    for r in with_neg:
        assert r["negative"] != r["positive"]
        gid, lang = r["negative_id"].rsplit("/", 1)
        assert lang == r["passage_lang"]  # in the passage's language
        assert english_passages[gid] != english_passages[r["group_id"]]  # not a sibling's copy of the positive
    # Lexically hard: the negative shares more words with the question than a random passage does.
    def overlap(q, p):
        return len(set(q.lower().split()) & set(p.lower().split()))
    hard = sum(overlap(r["query"], r["negative"]) for r in with_neg if r["batch_type"] == "xx")
    rand = sum(overlap(r["query"], other["positive"]) for r, other in zip(with_neg, with_neg[7:] + with_neg[:7],
                                                                          strict=True) if r["batch_type"] == "xx")
    assert hard > 1.3 * rand


def test_dev_split_holds_out_whole_passages(collected_squad, english_passages, tmp_path):
    build(collected_squad, tmp_path / "train", batch_size=16, dev_out=tmp_path / "dev", dev_fraction=0.1,
          strategy="xx", langs=["en", "es"], miner=BM25NegativeMiner(3, 10))
    train_t = ShardStore.open(tmp_path / "train").table()
    dev_t = ShardStore.open(tmp_path / "dev").table()
    train, dev = set(train_t["group_id"].to_pylist()), set(dev_t["group_id"].to_pylist())
    assert dev and train and not (dev & train)
    dev_passages = {english_passages[g] for g in dev}
    assert not (dev_passages & {english_passages[g] for g in train})
    # Held-out paragraphs do not even come back as training negatives (nor the reverse).
    train_neg = {english_passages[i.rsplit("/", 1)[0]] for i in train_t["negative_id"].drop_null().to_pylist()}
    dev_neg = {english_passages[i.rsplit("/", 1)[0]] for i in dev_t["negative_id"].drop_null().to_pylist()}
    assert train_neg and dev_neg
    assert not (train_neg & dev_passages) and dev_neg <= dev_passages
    assert ShardStore.open(tmp_path / "dev").manifest["params"]["role"] == "dev"


def test_duplicate_input_rows_are_rejected_not_dropped(collected_squad, tmp_path):
    res = build([collected_squad, collected_squad], tmp_path / "dup", batch_size=32, strategy="xx")
    store = ShardStore.open(tmp_path / "dup")
    n = ShardStore.open(collected_squad).manifest["totals"]["rows"]
    assert res["summary"]["input_rows_rejected"] == n
    assert store.manifest["stats"]["rejected"] == {"duplicate_row": n}
    assert store.rejects().num_rows == n


def test_errors_are_clear(collected_squad, hybrid, tmp_path, capsys):
    with pytest.raises(MtqaError, match="not a single batch of 99999"):
        build(collected_squad, tmp_path / "a", batch_size=99999)
    with pytest.raises(MtqaError, match="languages not in the inputs: \\['xx'\\]"):
        build(collected_squad, tmp_path / "b", lang_weights={"xx": 1.0})
    with pytest.raises(MtqaError, match="build-batches reads QA stores"):
        build(hybrid, tmp_path / "c")
    assert main(["build-batches", str(collected_squad), "-o", str(tmp_path / "d"), "--lang-weights", "en:2"]) == 1
    assert "expected NAME=WEIGHT" in capsys.readouterr().err


def test_cli_writes_a_store(collected_squad, tmp_path):
    out = tmp_path / "cli"
    code = main(["build-batches", str(collected_squad), "-o", str(out), "--strategy", "xy", "--batch-size", "64",
                 "--lang-weights", "en=1,es=1,it=1", "-q"])
    assert code == 0
    stats = ShardStore.open(out).manifest["stats"]
    assert stats["batches"].keys() == {"xy"}
    assert {p.split("-")[0] for p in stats["pairs"]} == {"en", "es", "it"}


def test_exclude_groups_keeps_a_heldout_benchmark_out_of_training(collected_squad, tmp_path):
    from mt_qa.evaluate.build import BuildLareqa  # the benchmark builder writes the exclusion list

    bench = tmp_path / "bench"
    BuildLareqa(collected_squad, bench, languages=["en", "es", "it"], articles=3, seed=1).run()
    heldout = set((bench / "heldout_group_ids.txt").read_text().split())
    assert heldout
    res = build(collected_squad, tmp_path / "b", batch_size=16, exclude_groups=bench / "heldout_group_ids.txt")
    trained = set(ShardStore.open(tmp_path / "b").table(columns=["group_id"])["group_id"].to_pylist())
    assert trained and not trained & heldout
    rows = ShardStore.open(collected_squad).table(columns=["group_id"])["group_id"].to_pylist()
    assert res["summary"]["input_rows_excluded_heldout"] == sum(g in heldout for g in rows)


def test_exclude_groups_file_must_list_ids(collected_squad, tmp_path):
    empty = tmp_path / "none.txt"
    empty.write_text("# nothing\n")
    with pytest.raises(MtqaError, match="lists no group ids"):
        build(collected_squad, tmp_path / "b", exclude_groups=empty)
