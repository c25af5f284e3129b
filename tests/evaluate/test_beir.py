from __future__ import annotations

import gzip
import json

import ir_measures
import numpy as np
import pytest

from mt_qa.errors import InputError, MtqaError
from mt_qa.evaluate.beir import (
    TopK,
    evaluate_beir,
    exact_search,
    iter_corpus,
    load_beir,
    read_qrels,
    score_run,
)
from mt_qa.evaluate.encode import Encoder

WORDS = ["cat", "dog", "gato", "perro", "gatto", "cane", "mat", "super", "bowl", "game", "won", "sat"]


def _make_beir(root, n_docs=40, n_queries=6, seed=0, miracl=False):
    rng = np.random.default_rng(seed)
    root.mkdir(parents=True, exist_ok=True)
    docs = [{"_id": f"d{i}", "title": f"T{i}" if i % 2 else "", "text": " ".join(rng.choice(WORDS, 6))}
            for i in range(n_docs)]
    queries = {f"q{i}": " ".join(rng.choice(WORDS, 3)) for i in range(n_queries)}
    qrels = {q: {f"d{j}": 1 for j in rng.choice(n_docs, 2, replace=False)} for q in queries}
    if miracl:
        (root / "corpus").mkdir()
        for part in range(2):
            with gzip.open(root / "corpus" / f"docs-{part}.jsonl.gz", "wt") as fh:
                for d in docs[part::2]:
                    fh.write(json.dumps({"docid": d["_id"], "title": d["title"], "text": d["text"]}) + "\n")
        (root / "topics").mkdir()
        (root / "topics" / "topics.miracl-v1.0-xx-dev.tsv").write_text(
            "".join(f"{q}\t{t}\n" for q, t in queries.items()))
        (root / "qrels").mkdir()
        (root / "qrels" / "qrels.miracl-v1.0-xx-dev.tsv").write_text(
            "".join(f"{q} Q0 {d} {r}\n" for q, ds in qrels.items() for d, r in ds.items()))
    else:
        (root / "corpus.jsonl").write_text("".join(json.dumps(d) + "\n" for d in docs))
        (root / "queries.jsonl").write_text("".join(json.dumps({"_id": q, "text": t}) + "\n"
                                                    for q, t in queries.items()))
        (root / "qrels").mkdir()
        (root / "qrels" / "test.tsv").write_text("query-id\tcorpus-id\tscore\n" + "".join(
            f"{q}\t{d}\t{r}\n" for q, ds in qrels.items() for d, r in ds.items()))
    return docs, queries, qrels


def test_exact_search_equals_brute_force_for_any_chunk_size():
    rng = np.random.default_rng(1)
    q = rng.normal(size=(13, 8)).astype(np.float32)
    docs = rng.normal(size=(101, 8)).astype(np.float32)
    full = q @ docs.T
    expected = np.argsort(-full, axis=1, kind="stable")[:, :10]
    for chunk in (1, 7, 50, 101, 500):
        top = exact_search(q, (docs[i:i + chunk] for i in range(0, 101, chunk)), k=10, query_chunk=4)
        scores, index = top.sorted()
        assert (index == expected).all()
        np.testing.assert_allclose(scores, np.take_along_axis(full, expected, 1), rtol=1e-6)


def test_topk_keeps_fewer_than_k_when_the_corpus_is_small_and_breaks_ties_by_position():
    top = TopK(1, 5)
    top.add(np.array([[0.5, 0.5, 0.9]], np.float32), 0)
    top.add(np.array([[0.5]], np.float32), 3)
    scores, index = top.sorted()
    assert index.tolist() == [[2, 0, 1, 3]]
    assert scores.shape == (1, 4)


def test_evaluate_beir_writes_a_run_that_ir_measures_rescores_identically(tiny_model, tmp_path):
    _make_beir(tmp_path / "toy")
    data = load_beir(tmp_path / "toy", "test")
    enc = Encoder(str(tiny_model), cache_dir=tmp_path / "cache", progress=False)
    out = tmp_path / "out"
    out.mkdir()
    entry = evaluate_beir(data, enc, out, k=20, chunk_docs=7, progress=False)
    assert entry["n_docs"] == 40 and entry["n_queries"] == 6
    run = list(ir_measures.read_trec_run(str(out / entry["run_file"])))
    assert len(run) == 6 * 20
    qrels = read_qrels(tmp_path / "toy" / "qrels" / "test.tsv")
    ref = ir_measures.calc_aggregate([ir_measures.parse_measure(m) for m in entry["metrics"]], qrels, run)
    for name, value in entry["metrics"].items():
        assert value == pytest.approx(ref[ir_measures.parse_measure(name)], abs=1e-6)
    # Chunking does not change the result.
    again = evaluate_beir(data, enc, out, k=20, chunk_docs=1000, progress=False)
    assert again["metrics"] == pytest.approx(entry["metrics"])
    assert enc.stats["encoded"] == 40 + 6  # second pass came from the cache


def test_score_run_matches_hand_computed_values():
    qrels = {"q": {"a": 1, "b": 1}}
    run = {"q": {"a": 0.2, "x": 0.9, "b": 0.1}}
    agg, per_query = score_run(qrels, run, ("AP", "RR@10", "R@100", "nDCG@10"))
    assert agg["AP"] == pytest.approx((1 / 2 + 2 / 3) / 2)
    assert agg["RR@10"] == pytest.approx(0.5)
    assert agg["R@100"] == pytest.approx(1.0)
    ideal = 1 + 1 / np.log2(3)
    assert agg["nDCG@10"] == pytest.approx((1 / np.log2(3) + 1 / np.log2(4)) / ideal)
    assert per_query["q"]["AP"] == pytest.approx(agg["AP"])


def test_miracl_layout_is_read(tmp_path):
    docs, queries, qrels = _make_beir(tmp_path / "mir", miracl=True)
    data = load_beir(tmp_path / "mir", "dev")
    assert data.queries == queries and data.qrels == qrels
    ids = [d for d, _ in iter_corpus(data.corpus_files)]
    assert sorted(ids) == sorted(d["_id"] for d in docs)
    texts = dict(iter_corpus(data.corpus_files))
    assert texts["d1"] == f"T1 {docs[1]['text']}" and texts["d0"] == docs[0]["text"]


def test_bad_beir_inputs(tmp_path):
    _make_beir(tmp_path / "b")
    with pytest.raises(MtqaError, match="no qrels"):
        load_beir(tmp_path / "b", "dev")
    (tmp_path / "b" / "qrels" / "test.tsv").write_text("q0\td1\t1\nq99\td2\t1\n")
    with pytest.raises(InputError, match="not in queries.jsonl"):
        load_beir(tmp_path / "b", "test")
    (tmp_path / "b" / "qrels" / "test.tsv").write_text("q0 d1\n")
    with pytest.raises(InputError, match="line 1"):
        load_beir(tmp_path / "b", "test")
    (tmp_path / "b" / "corpus.jsonl").write_text('{"_id": "d1", "text": "x"}\n{"title": "no id"}\n')
    with pytest.raises(InputError, match="line 2"):
        list(iter_corpus([tmp_path / "b" / "corpus.jsonl"]))
