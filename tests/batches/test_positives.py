"""Sentence positives, context templates, unknown answer sentences and sentence negatives, on real SQuAD data."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest

from mt_qa.batches import BM25NegativeMiner, BuildBatchesStage
from mt_qa.batches.groups import answer_sentences
from mt_qa.batches.negatives import SentenceNegatives
from mt_qa.batches.positives import CONTEXT_TEMPLATE, PositiveFormat
from mt_qa.cli import main
from mt_qa.errors import MtqaError
from mt_qa.shards import ShardStore
from tests.helpers import tree_digest


def build(src, out, **kw) -> dict:
    kw.setdefault("progress", False)
    kw.setdefault("batch_size", 32)
    return BuildBatchesStage([str(src)], out, **kw).run()


@pytest.fixture(scope="module")
def rows_by_id(collected_squad):
    t = ShardStore.open(collected_squad).table(columns=["id", "group_id", "lang", "origin", "passage",
                                                        "passage_sentences", "answer_sentence_index", "answers",
                                                        "title"])
    return {r["id"]: r for r in t.to_pylist()}


@pytest.fixture(scope="module")
def sentence_store(collected_squad, tmp_path_factory):
    out = tmp_path_factory.mktemp("sent") / "batches"
    result = build(collected_squad, out, positive=PositiveFormat("sentence"), miner=SentenceNegatives(), epochs=2,
                   seed=3)
    return out, result


def test_sentence_positive_is_the_answer_sentence_in_the_passage_language(sentence_store, rows_by_id):
    out, _ = sentence_store
    t = ShardStore.open(out).table()
    checked = with_answer = 0
    for r in t.to_pylist():
        src = rows_by_id[r["positive_id"]]
        assert src["lang"] == r["passage_lang"]
        idx = src["answer_sentence_index"]
        if idx < 0:  # an import aligned to its source row's sentence (same sentence count)
            anchor = rows_by_id[f"{r['group_id']}/en"]
            assert len(anchor["passage_sentences"]) == len(src["passage_sentences"])
            idx = anchor["answer_sentence_index"]
        assert r["positive"] == src["passage_sentences"][idx].strip()
        assert r["positive"] in src["passage"] and len(r["positive"]) < len(src["passage"]) or \
            len(src["passage_sentences"]) == 1
        if src["answer_sentence_index"] >= 0 and src["answers"]:
            with_answer += any(a in r["positive"] for a in src["answers"])
        checked += 1
    assert checked == t.num_rows > 1000
    assert with_answer > 0.95 * checked * 0.9  # the located answer is in the sentence (not cut off)


def test_sentence_negatives_are_other_sentences_of_the_paragraph_or_article(sentence_store, rows_by_id):
    out, result = sentence_store
    store = ShardStore.open(out)
    t = store.table()
    stats = store.manifest["stats"]
    assert stats["negatives"]["with"] == t.num_rows and stats["negatives"]["without"] == 0
    paragraph = article = 0
    for r in t.to_pylist():
        pos, neg = rows_by_id[r["positive_id"]], rows_by_id[r["negative_id"]]
        assert neg["lang"] == r["passage_lang"]  # the positive's language
        assert r["negative"] != r["positive"]
        assert r["negative"] in [s.strip() for s in neg["passage_sentences"]]
        if r["negative_id"] == r["positive_id"]:
            paragraph += 1
        else:
            article += 1
            assert neg["title"] == pos["title"] and neg["passage"] != pos["passage"]
    assert paragraph == stats["negatives"]["from_paragraph"] and article == stats["negatives"]["from_article"]
    assert paragraph > 0.9 * t.num_rows  # SQuAD paragraphs nearly always have several sentences
    assert result["negatives"]["paragraph"] == paragraph


def test_sentence_negatives_redraw_per_epoch_and_are_deterministic(sentence_store, collected_squad, tmp_path):
    out, _ = sentence_store
    t = ShardStore.open(out).table().to_pylist()
    # The same positive in two epochs mostly gets another sentence of its paragraph.
    by_pos: dict[str, set[str]] = {}
    for r in t:
        by_pos.setdefault(r["positive_id"], set()).add(r["negative"])
    repeated = [v for v in by_pos.values() if len(v) > 1]
    assert repeated
    again = tmp_path / "again"
    build(collected_squad, again, positive=PositiveFormat("sentence"), miner=SentenceNegatives(), epochs=2, seed=3)
    assert tree_digest(again / "data") == tree_digest(out / "data")


def test_sentence_in_context_template(collected_squad, rows_by_id, tmp_path):
    for k in (1, 0):
        out = tmp_path / f"ctx{k}"
        build(collected_squad, out, positive=PositiveFormat("sentence-in-context", context_sentences=k),
              miner=SentenceNegatives(), seed=1)
        t = ShardStore.open(out).table().slice(0, 400).to_pylist()
        for r in t:
            src = rows_by_id[r["positive_id"]]
            pieces = src["passage_sentences"]
            idx = src["answer_sentence_index"]
            if idx < 0:
                idx = rows_by_id[f"{r['group_id']}/en"]["answer_sentence_index"]
            before = pieces[max(0, idx - k):idx] if k else pieces[:idx]
            after = pieces[idx + 1: idx + 1 + k] if k else pieces[idx + 1:]
            context = ("".join(before) + "".join(after)).strip()
            expected = CONTEXT_TEMPLATE.format(sentence=pieces[idx].strip(), context=context) if context \
                else pieces[idx].strip()
            assert r["positive"] == expected
            assert r["positive"].startswith(pieces[idx].strip())  # the sentence first: truncation never cuts it
            assert "\n\n" in r["negative"] or len(rows_by_id[r["negative_id"]]["passage_sentences"]) == 1
        params = ShardStore.open(out).manifest["params"]
        assert params["positive"] == "sentence-in-context" and params["context_sentences"] == k


def test_unknown_answer_sentences_are_rejected_or_fall_back(collected_squad, rows_by_id, tmp_path):
    rejected = build(collected_squad, tmp_path / "rej", positive=PositiveFormat("sentence", missing="reject"))
    summary = rejected["summary"]["answer_sentence"]
    assert summary["unknown"] > 0  # the pt import has answers it could not locate in differently split text
    store = ShardStore.open(tmp_path / "rej")
    rejects = store.rejects().to_pylist()
    unknown = [r for r in rejects if r["reason"] == "answer_sentence_unknown"]
    assert len(unknown) == summary["unknown"] == store.manifest["stats"]["rejected"]["answer_sentence_unknown"]
    bad_ids = {r["record_id"] for r in unknown}
    t = store.table(columns=["query_id", "positive_id"])
    assert not bad_ids & set(t["positive_id"].to_pylist()) and not bad_ids & set(t["query_id"].to_pylist())

    fallback = build(collected_squad, tmp_path / "fb", positive=PositiveFormat("sentence", missing="passage"))
    fb = ShardStore.open(tmp_path / "fb")
    rows = fb.table().to_pylist()
    used = [r for r in rows if r["positive_id"] in bad_ids]
    assert used and all(r["positive"] == rows_by_id[r["positive_id"]]["passage"] for r in used)
    assert fb.manifest["stats"]["positives"]["fallback_passage"] == len(used)
    assert fallback["summary"]["input_rows_rejected"] == 0


def test_imports_are_aligned_to_their_source_sentences_only_when_the_counts_match():
    # Group 0: en source + import with its own index; group 1: import unlocated, same count;
    # group 2: import unlocated, other sentence count.
    table = pa.table({
        "passage_sentences": [["a. ", "b. ", "c."], ["x. ", "y. ", "z."], ["a. ", "b."], ["x. ", "y."],
                              ["a. ", "b. ", "c."], ["x y z."]],
        "answer_sentence_index": [2, 1, 1, -1, 0, -1],
    })
    row_group = np.array([0, 0, 1, 1, 2, 2])
    anchors = np.array([0, 2, 4])
    idx, stats = answer_sentences(table, row_group, anchors)
    assert idx.tolist() == [2, 1, 1, 1, 0, -1]
    assert stats == {"located": 4, "aligned_from_source": 1, "unknown": 1, "unknown_sentence_count_differs": 1}


def test_bm25_negatives_take_the_positive_granularity(collected_squad, rows_by_id, tmp_path):
    out = tmp_path / "bm25"
    build(collected_squad, out, positive=PositiveFormat("sentence"), miner=BM25NegativeMiner(5, 10),
          langs=["en", "es"])
    for r in ShardStore.open(out).table().slice(0, 500).to_pylist():
        if r["negative"] is None:
            continue
        neg = rows_by_id[r["negative_id"]]
        assert neg["passage"] != rows_by_id[r["positive_id"]]["passage"]
        assert r["negative"] in [s.strip() for s in neg["passage_sentences"]]


def test_passage_positives_are_unchanged(collected_squad, rows_by_id, tmp_path):
    out = tmp_path / "p"
    build(collected_squad, out, positive=PositiveFormat("passage"), langs=["en", "it"])
    for r in ShardStore.open(out).table().slice(0, 300).to_pylist():
        assert r["positive"] == rows_by_id[r["positive_id"]]["passage"]


def test_errors_and_cli(collected_squad, tmp_path, capsys):
    with pytest.raises(MtqaError, match="needs sentence positives"):
        BuildBatchesStage([str(collected_squad)], tmp_path / "x", positive=PositiveFormat("passage"),
                          miner=SentenceNegatives())
    with pytest.raises(MtqaError, match="--context-sentences"):
        PositiveFormat("sentence-in-context", context_sentences=-1)
    assert main(["build-batches", str(collected_squad), "-o", str(tmp_path / "y"), "--positive", "passage",
                 "--negatives", "sentence"]) != 0
    err = capsys.readouterr().err
    assert "Error:" in err and "Traceback" not in err
    assert main(["build-batches", str(collected_squad), "-o", str(tmp_path / "z"), "--batch-size", "32",
                 "--negatives", "sentence", "--positive", "sentence-in-context", "--context-sentences", "2",
                 "--missing-sentence", "passage", "-q"]) == 0
    params = ShardStore.open(tmp_path / "z").manifest["params"]
    assert params["positive"] == "sentence-in-context" and params["missing_sentence"] == "passage"
    assert params["negatives"]["miner"] == "sentence"


def test_several_exclude_groups_files_are_all_left_out(collected_squad, tmp_path):
    t = ShardStore.open(collected_squad).table(columns=["group_id"])
    ids = sorted(set(t["group_id"].to_pylist()))
    a, b = tmp_path / "a.txt", tmp_path / "b.txt"
    a.write_text("\n".join(ids[:300]) + "\n")
    b.write_text("\n".join(ids[300:700]) + "\n")
    assert main(["build-batches", str(collected_squad), "-o", str(tmp_path / "x"), "--batch-size", "32",
                 "--exclude-groups", str(a), "--exclude-groups", str(b), "-q"]) == 0
    store = ShardStore.open(tmp_path / "x")
    used = set(store.table(columns=["group_id"])["group_id"].to_pylist())
    assert used and not used & set(ids[:700])
    assert store.manifest["params"]["exclude_groups"] == [str(a), str(b)]
    assert {str(a), str(b)} <= {i["path"] for i in store.manifest["inputs"]}
