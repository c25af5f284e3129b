"""The semantic check: margin maths on known vectors, the alignment, and the check inside the stage."""

from __future__ import annotations

import hashlib
import zlib
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest

from mt_qa.cli import main
from mt_qa.errors import MtqaError
from mt_qa.filter import semantic
from mt_qa.filter.checks import ShardRows
from mt_qa.filter.semantic import (
    SIGNAL_COLUMNS,
    SemanticConfig,
    is_fragment,
    knn_side,
    margin,
    parse_thresholds,
    score_shard,
    with_signals,
)
from mt_qa.filter.stage import FilterConfig, FilterStage
from mt_qa.records import QA_SCHEMA, qa_record
from mt_qa.sentences import split_sentences
from mt_qa.shards import ShardStore
from tests.filter.corpus import TEXTS, write_store
from tests.filter.test_stage import checksums, rejects

# ---------------------------------------------------------------- margin maths


def test_knn_side_leaves_out_own_cluster_and_averages_k_nearest() -> None:
    x = np.array([[1.0, 0.0]])
    y = np.array([[1.0, 0.0], [0.8, 0.6], [0.6, 0.8], [0.0, 1.0]])
    # own cluster (0) is the first y: neighbours are the other three, k=2 -> mean(0.8, 0.6)
    assert knn_side(x, y, np.array([0]), np.array([0, 1, 2, 3]), 2)[0] == pytest.approx(0.7)
    # k larger than what is left: the mean of all that is left
    assert knn_side(x, y, np.array([0]), np.array([0, 1, 2, 3]), 10)[0] == pytest.approx((0.8 + 0.6 + 0.0) / 3)
    # nothing left: NaN
    assert np.isnan(knn_side(x, y[:1], np.array([0]), np.array([0]), 4)[0])


def test_knn_side_takes_neighbours_only_where_allowed() -> None:
    x = np.array([[1.0, 0.0]])
    y = np.array([[1.0, 0.0], [0.8, 0.6], [0.6, 0.8], [0.0, 1.0]])
    allowed = np.array([True, False, True, True])  # the nearest other (0.8) may not serve
    assert knn_side(x, y, np.array([0]), np.array([0, 1, 2, 3]), 1, allowed)[0] == pytest.approx(0.6)


def test_ratio_margin() -> None:
    assert margin(np.float64(0.9), np.float64(0.6), np.float64(0.8)) == pytest.approx(0.9 / 0.7)
    assert margin(np.float64(0.9), np.float64(np.nan), np.float64(0.6)) == pytest.approx(1.5)  # one side only
    assert np.isnan(margin(np.float64(0.9), np.float64(np.nan), np.float64(np.nan)))


def test_parse_thresholds() -> None:
    defaults = {"*": 1.0, "es": 1.05}
    assert parse_thresholds("default", defaults, "--x") == defaults
    assert parse_thresholds("0.9", defaults, "--x") == {"*": 0.9}
    assert parse_thresholds("it=1.1,*=0.95", defaults, "--x") == {"*": 0.95, "es": 1.05, "it": 1.1}
    with pytest.raises(MtqaError, match="--x 'es=high'"):
        parse_thresholds("es=high", defaults, "--x")


# ---------------------------------------------------------------- scoring on known embeddings

# Each "meaning" is one direction; a text and its translation share it (with a little noise).
MEANINGS = ["storm", "river", "king", "bread", "music", "moon", "train", "glass", "tiger", "paper", "salt"]
DIM = 32


def vector(text: str) -> np.ndarray:
    """Sum of the meaning directions a text names (a word 'storm' or 'STORM' in any language)."""
    v = np.zeros(DIM)
    for n, word in enumerate(MEANINGS):
        if word in text.lower():
            v[n] += 1.0
    rng = np.random.default_rng(zlib.crc32(text.encode()))
    v += rng.normal(0, 0.05, DIM) + 0.15  # a shared component: every text is a bit alike, as in real encoders
    return v / np.linalg.norm(v)


def encode(texts: list[str]) -> np.ndarray:
    return np.stack([vector(t) for t in texts])


def pair(sid: str, en_q: str, en_s: list[str], es_q: str, es_s: list[str], origin: str = "mt") -> list[dict]:
    return [qa_record(dataset="d", split="dev", source_id=sid, lang=lang, lang_code=code, question=q,
                      passage="".join(s), passage_sentences=s, origin=o)
            for lang, code, q, s, o in (("en", "eng_Latn", en_q, en_s, "source"), ("es", "spa_Latn", es_q, es_s,
                                                                                   origin))]


def rows_of(records: list[dict]) -> tuple[ShardRows, list[list[str]]]:
    table = pa.Table.from_pylist(records, schema=QA_SCHEMA)
    return ShardRows.from_table(table), table["passage_sentences"].to_pylist()


def test_scores_separate_good_pairs_from_wrong_question_and_wrong_sentence() -> None:
    records = (pair("a", "q storm", ["s river. ", "s king."], "Q STORM", ["S RIVER. ", "S KING."])
               + pair("b", "q bread", ["s music. ", "s moon."], "Q BREAD", ["S MUSIC. ", "S MOON."])
               + pair("c", "q train", ["s glass. ", "s tiger."], "Q PAPER", ["S GLASS. ", "S SALT."])
               + pair("d", "q salt", ["s paper. ", "s storm."], "Q SALT", ["S PAPER. ", "S STORM."]))
    rows, sents = rows_of(records)
    s = score_shard(rows, sents, encode, k=2)
    es = [i for i in range(len(rows)) if rows.langs[i] == "es"]
    good = [es[0], es[1], es[3]]
    bad = es[2]
    assert all(s.question[i] > 1.5 for i in good) and s.question[bad] < 1.2
    assert all(s.passage[i] > 1.5 for i in good) and s.passage[bad] < 1.2
    # sentence-level: only the second sentence of the bad row is off, and the rows are aligned 1-1
    assert s.aligned[bad] and s.sentences[bad][0] > 1.5 and s.sentences[bad][1] < 1.2
    # English source rows are not scored
    assert all(s.question[i] is None for i in range(len(rows)) if rows.langs[i] == "en")


def test_unequal_sentence_counts_are_aligned_with_merges_and_catch_a_dropped_sentence() -> None:
    base = (pair("b", "q bread", ["s music. ", "s moon."], "Q BREAD", ["S MUSIC. ", "S MOON."])
            + pair("d", "q salt", ["s paper. ", "s storm."], "Q SALT", ["S PAPER. ", "S STORM."]))
    # A translation that joins two source sentences into one (segmentation differs): fine.
    merged = pair("m", "q king", ["s river here. ", "s king there. ", "s tiger."], "Q KING",
                  ["S RIVER HERE, S KING THERE. ", "S TIGER."], origin="imported")
    # A translation that lost its middle sentence: the source sentence has no match.
    dropped = pair("x", "q glass", ["s train here. ", "s glass there and more. ", "s salt."], "Q GLASS",
                   ["S TRAIN HERE. ", "S SALT."], origin="imported")
    rows, sents = rows_of(base + merged + dropped)
    s = score_shard(rows, sents, encode, k=2)
    m = rows.ids.index("d/dev/m/es")
    x = rows.ids.index("d/dev/x/es")
    assert not s.aligned[m] and not s.aligned[x]
    assert s.passage[m] > 1.2, s.sentences[m]
    assert s.passage[x] < 0.9 and s.source_coverage[x][1] < 0.9  # source sentence 1 is the missing one
    assert len(s.sentences[x]) == 2 and len(s.source_coverage[x]) == 3


def test_a_dropped_sentence_cannot_hide_in_a_merge_of_agreeing_length() -> None:
    """The dropped sentence is short next to its neighbour, so lengths alone would let "A. B." -> "A'" pass."""
    base = (pair("b", "q bread", ["s music. ", "s moon."], "Q BREAD", ["S MUSIC. ", "S MOON."])
            + pair("d", "q salt", ["s paper. ", "s storm."], "Q SALT", ["S PAPER. ", "S STORM."]))
    long = "s train here, with a good many words around it. "
    dropped = pair("x", "q glass", [long, "s glass now, more. ", "s salt and pepper."], "Q GLASS",
                   [long.upper(), "S SALT AND PEPPER."], origin="imported")
    rows, sents = rows_of(base + dropped)
    s = score_shard(rows, sents, encode, k=2)
    x = rows.ids.index("d/dev/x/es")
    assert s.source_coverage[x][1] == 0.0, s.source_coverage[x]  # unmatched, not merged into sentence 0
    assert s.source_coverage[x][0] > 1.2 and s.passage[x] == 0.0


def test_a_translation_that_joins_three_source_sentences_is_matched() -> None:
    base = (pair("b", "q bread", ["s music. ", "s moon."], "Q BREAD", ["S MUSIC. ", "S MOON."])
            + pair("d", "q salt", ["s paper. ", "s storm."], "Q SALT", ["S PAPER. ", "S STORM."]))
    joined = pair("j", "q king", ["s river flows here. ", "s king sits there. ", "s tiger runs now. ", "s glass."],
                  "Q KING", ["S RIVER FLOWS HERE, S KING SITS THERE, S TIGER RUNS NOW. ", "S GLASS."],
                  origin="imported")
    rows, sents = rows_of(base + joined)
    s = score_shard(rows, sents, encode, k=2)
    j = rows.ids.index("d/dev/j/es")
    assert s.source_coverage[j][:3] == [s.sentences[j][0]] * 3, s.source_coverage[j]  # one bead of three
    assert s.passage[j] > 1.2, (s.sentences[j], s.source_coverage[j])


@pytest.mark.parametrize("quote", ['"No longer", he replied to them. ', '"Not now", they answered him. ',
                                   '"Yes indeed", said the old one. ', '"Never again", he told her so. '])
def test_a_short_sentence_the_translation_kept_is_matched_by_its_length(quote: str) -> None:
    """'"No longer", he replied.' barely moves an embedding, so whether a merge with it is closer to
    the translation than its long neighbour alone is down to noise (by margin alone these four merges
    lose); the translation's length shows the sentence was kept."""
    base = (pair("b", "q bread", ["s music. ", "s moon."], "Q BREAD", ["S MUSIC. ", "S MOON."])
            + pair("d", "q salt", ["s paper. ", "s storm."], "Q SALT", ["S PAPER. ", "S STORM."]))
    long = "s train here, with a good many words around it. "
    kept = pair("k", "q glass", [long, quote, "s salt and pepper."], "Q GLASS",
                [long.upper() + quote.upper(), "S SALT AND PEPPER."], origin="imported")
    rows, sents = rows_of(base + kept)
    s = score_shard(rows, sents, encode, k=2)
    x = rows.ids.index("d/dev/k/es")
    assert s.source_coverage[x][0] == s.source_coverage[x][1] > 1.2, s.source_coverage[x]  # merged
    assert s.passage[x] > 1.2


def test_splitting_fragments_may_stay_unmatched_and_are_not_scored() -> None:
    base = (pair("b", "q bread", ["s music. ", "s moon."], "Q BREAD", ["S MUSIC. ", "S MOON."])
            + pair("d", "q salt", ["s paper. ", "s storm."], "Q SALT", ["S PAPER. ", "S STORM."]))
    # "[Moon 4]" split off by the translation's segmenter (a note mark): too short to judge on its own,
    # and its word pulls any merge down, so it is left unmatched, which costs nothing.
    frag = pair("f", "q king", ["s king and his river. ", "s tiger was there too."], "Q KING",
                ["S KING AND HIS RIVER. ", "S TIGER WAS THERE TOO. ", "[MOON 4]"], origin="imported")
    rows, sents = rows_of(base + frag)
    s = score_shard(rows, sents, encode, k=2)
    f = rows.ids.index("d/dev/f/es")
    assert s.sentences[f][2] is None and s.passage[f] > 1.2, s.sentences[f]
    assert is_fragment("[Cita requerida]") and is_fragment("Direttive.") and not is_fragment("Dia do nariz na BBC.")


def test_neighbours_come_from_a_capped_pool_of_groups_chosen_by_content() -> None:
    """With the pool capped, a row's margins are those of a shard holding only the pool and the row:
    a shard that grows does not make its margins fall (the pool is the first groups by id hash)."""
    topics = [("a", "storm", "river"), ("b", "bread", "music"), ("c", "train", "glass"), ("d", "salt", "paper"),
              ("e", "moon", "tiger"), ("f", "king", "storm")]
    records = [r for sid, q, w in topics for r in pair(sid, f"q {q} now", [f"s {w} is here. "], f"Q {q.upper()} NOW",
                                                       [f"S {w.upper()} IS HERE. "])]
    rows, sents = rows_of(records)
    gids = sorted(set(rows.group_ids), key=lambda g: hashlib.sha256(g.encode()).digest())
    pool, outside = gids[:3], gids[3]
    full = score_shard(rows, sents, encode, k=2, neighbours=3)
    sub_records = [r for r in records if r["group_id"] in (*pool, outside)]
    sub_rows, sub_sents = rows_of(sub_records)
    sub = score_shard(sub_rows, sub_sents, encode, k=2, neighbours=0)
    i = rows.ids.index(f"{outside}/es")
    j = sub_rows.ids.index(f"{outside}/es")
    assert full.question[i] == sub.question[j]  # sentences: capped by passage (the test below)
    everything = score_shard(rows, sents, encode, k=2, neighbours=0)  # all six groups as neighbours: other margins
    assert everything.question[i] != full.question[i]


def test_sentence_margins_do_not_depend_on_how_many_questions_share_a_passage() -> None:
    """The same passages with 1 or with 5 questions each: the group cap alone would draw neighbour
    sentences from ~100 passages in the first shard and far fewer in the second; with passages
    capped by content, a row's sentence margins are the same in both (docs/benchmarks/semantic.md)."""
    def shard(questions: int) -> list[dict]:
        return [r for n in range(120) for q in range(questions)
                for r in pair(f"p{n}-{q}", f"q{n} {q}?", [f"s word{n} is here. ", f"t more{n} there."],
                              f"Q{n} {q}?", [f"S WORD{n} IS HERE. ", f"T MORE{n} THERE."])]

    few, many = rows_of(shard(1)), rows_of(shard(5))
    a, b = score_shard(*few, encode, k=4), score_shard(*many, encode, k=4)
    for n in range(0, 120, 7):
        i, j = few[0].ids.index(f"d/dev/p{n}-0/es"), many[0].ids.index(f"d/dev/p{n}-0/es")
        assert a.sentences[i] == b.sentences[j] and a.passage[i] == b.passage[j] is not None


def test_a_lone_group_has_no_neighbours_and_is_left_unscored() -> None:
    rows, sents = rows_of(pair("a", "q storm", ["s river."], "Q STORM", ["S RIVER."]))
    s = score_shard(rows, sents, encode, k=4)
    assert s.question == [None, None] and s.passage == [None, None]


def test_with_signals_fills_and_adds_columns() -> None:
    rows = pair("a", "q", ["s"], "Q", ["S"])
    old = pa.Table.from_pylist(rows, schema=QA_SCHEMA).drop_columns(list(SIGNAL_COLUMNS))  # a store from before
    table = with_signals(old, {"sem_question": [None, 1.25], "sem_passage": [None, 0.5],
                               "sem_sentences": [None, [0.5]]})
    assert table.schema.equals(QA_SCHEMA, check_metadata=False)
    assert table["sem_question"].to_pylist() == [None, 1.25] and table["sem_sentences"].to_pylist()[1] == [0.5]
    assert with_signals(old, {})["sem_question"].null_count == 2


def test_config_validation() -> None:
    with pytest.raises(MtqaError, match="--semantic-k"):
        SemanticConfig(model="m", k=0).validate()
    with pytest.raises(MtqaError, match="--device 'tpu'"):
        SemanticConfig(model="m", device="tpu").validate()
    with pytest.raises(MtqaError, match="--semantic-min-sentence"):
        SemanticConfig(model="m", min_sentence="es=").validate()
    assert "cache_dir" not in SemanticConfig(cache_dir="/x").params()


# ---------------------------------------------------------------- in the stage, with a tiny real encoder


@pytest.fixture(scope="module")
def tiny_encoder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    pytest.importorskip("sentence_transformers")
    from tests.evaluate.conftest import build_tiny_model

    return build_tiny_model(tmp_path_factory.mktemp("tiny_encoder"))


def corpus_rows(topic: str, sid: str, langs: tuple[str, ...] = ("en", "es", "de")) -> list[dict]:
    out = []
    for lang in langs:
        q, p = TEXTS[topic][lang]
        out.append(qa_record(dataset="demo", split="dev", source_id=sid, lang=lang,
                             lang_code={"en": "eng_Latn", "es": "spa_Latn", "de": "deu_Latn"}[lang], question=q,
                             passage=p, passage_sentences=split_sentences(p),
                             origin="source" if lang == "en" else "mt"))
    return out


@pytest.fixture()
def store(tmp_path: Path) -> Path:
    return write_store(tmp_path / "in", [corpus_rows("amazon", "a") + corpus_rows("wall", "w"),
                                         corpus_rows("photo", "p") + corpus_rows("amazon", "a2")])


def sem(tiny_encoder: Path, tmp_path: Path, **kw) -> FilterConfig:
    return FilterConfig(detector="fasttext", dedup=False,
                        semantic=SemanticConfig(model=str(tiny_encoder), cache_dir=str(tmp_path / "cache"), **kw))


def test_stage_stores_signals_and_rejects_with_reason(store: Path, tiny_encoder: Path, tmp_path: Path) -> None:
    out = tmp_path / "keep"
    result = FilterStage(store, out, sem(tiny_encoder, tmp_path, min_question="-100", min_sentence="-100"),
                         progress=False).run()
    assert result["finished"] and "semantic" in result["timings"]
    table = ShardStore.open(out).table()
    assert table.num_rows == 12  # thresholds far below any margin: nothing rejected
    scored = table.filter(pa.compute.not_equal(table["lang"], "en"))
    assert scored["sem_question"].null_count == 0 and scored["sem_passage"].null_count == 0
    sentences = scored["sem_sentences"].to_pylist()
    assert [len(s) for s in sentences] == [len(p) for p in scored["passage_sentences"].to_pylist()]
    assert table.filter(pa.compute.equal(table["lang"], "en"))["sem_question"].null_count == 4
    params = ShardStore.open(out).manifest["params"]
    assert params["checks"]["semantic"]["model_sha256"] and "cache_dir" not in params["semantic"]

    strict = tmp_path / "strict"
    FilterStage(store, strict, sem(tiny_encoder, tmp_path, min_question="100"), progress=False).run()
    rej = rejects(strict)
    assert len(rej) == 8 and {r["reason"] for r in rej.values()} == {"semantic_question"}
    one = rej["demo/dev/a/es"]
    assert "margin" in one["detail"] and one["score"] is not None
    assert '"sem_question"' in one["payload"]  # the rejected row keeps its scores for re-thresholding
    stats = ShardStore.open(strict).manifest["stats"]
    assert stats["rejected_by_lang"]["es"]["semantic_question"] == 4

    sentence = tmp_path / "sentence"
    FilterStage(store, sentence, sem(tiny_encoder, tmp_path, min_question="-100", min_sentence="es=100,*=-100"),
                progress=False).run()
    rej = rejects(sentence)
    assert {r["record_id"].rsplit("/", 1)[1] for r in rej.values()} == {"es"}
    assert all(r["reason"] == "semantic_passage" and "passage sentences below margin 100.0 for es: 0 (" in
               r["detail"] for r in rej.values())


def test_stage_job_array_resume_and_params(store: Path, tiny_encoder: Path, tmp_path: Path,
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    config = sem(tiny_encoder, tmp_path)
    FilterStage(store, tmp_path / "one", config, progress=False).run()
    for index in (1, 0):
        FilterStage(store, tmp_path / "tasks", sem(tiny_encoder, tmp_path), num_tasks=2, task_index=index,
                    progress=False).run()
    assert checksums(tmp_path / "one") == checksums(tmp_path / "tasks")
    out = tmp_path / "one"
    (out / "_done" / "part-00001.json").unlink()
    (out / "manifest.json").unlink()
    before = checksums(tmp_path / "tasks")
    assert FilterStage(store, out, sem(tiny_encoder, tmp_path), progress=False).run()["shards_done_now"] == 1
    assert checksums(out) == before
    # another threshold is another run (needs --overwrite); another cache dir or batch size is not
    with pytest.raises(MtqaError, match="different run"):
        FilterStage(store, out, sem(tiny_encoder, tmp_path, min_question="0.5"), progress=False).run()
    other = FilterConfig(detector="fasttext", dedup=False,
                         semantic=SemanticConfig(model=str(tiny_encoder), cache_dir=str(tmp_path / "c2"),
                                                 batch_size=3))
    assert FilterStage(store, out, other, progress=False).run()["shards_done_now"] == 0
    # shards scored by an older alignment are not mixed with the new one's
    monkeypatch.setattr(semantic, "ALIGNMENT_VERSION", semantic.ALIGNMENT_VERSION - 1)
    with pytest.raises(MtqaError, match="different run"):
        FilterStage(store, out, sem(tiny_encoder, tmp_path), progress=False).run()


def test_embeddings_are_cached_by_text(store: Path, tiny_encoder: Path, tmp_path: Path) -> None:
    from mt_qa.evaluate.encode import EmbeddingCache

    FilterStage(store, tmp_path / "a", sem(tiny_encoder, tmp_path), progress=False).run()
    cache = EmbeddingCache(tmp_path / "cache")
    model_keys = cache.db.execute("SELECT model, COUNT(*) FROM embedding GROUP BY model").fetchall()
    cache.close()
    assert len(model_keys) == 1 and model_keys[0][1] > 20  # questions and sentences of three topics
    # A rerun with other thresholds encodes nothing: every text is in the cache.
    from mt_qa.filter.semantic import SemanticCheck

    check = SemanticCheck(SemanticConfig(model=str(tiny_encoder), cache_dir=str(tmp_path / "cache")))
    table = ShardStore.open(store).table(shard="part-00000")
    check.prepare(ShardRows.from_table(table), table["passage_sentences"].to_pylist())
    assert check.encoder.stats["encoded"] == 0 and check.encoder.stats["cached"] > 0
    check.close()


def test_cli_options_and_errors(store: Path, tiny_encoder: Path, tmp_path: Path,
                                capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "out"
    code = main(["filter", str(store), "-o", str(out), "--detector", "fasttext", "--no-dedup", "-q",
                 "--semantic-model", str(tiny_encoder), "--semantic-cache-dir", str(tmp_path / "cache"),
                 "--semantic-min-question", "100", "--device", "cpu"])
    err = capsys.readouterr().err
    assert code == 0, err
    assert "semantic_question" in err and "semantic" in err.split("time by check")[1]
    assert main(["filter", str(store), "-o", str(tmp_path / "x"), "--semantic-model", str(tmp_path / "nope")]) != 0
    err = capsys.readouterr().err
    assert "Error: model" in err and "Traceback" not in err
    assert main(["filter", str(store), "-o", str(tmp_path / "y"), "--semantic-model", str(tiny_encoder),
                 "--semantic-min-sentence", "es=x"]) != 0
    assert "Error: --semantic-min-sentence 'es=x'" in capsys.readouterr().err


# ---------------------------------------------------------------- the real encoder on real translations


@pytest.mark.slow
def test_real_e5_keeps_real_translations_and_rejects_wrong_passages(collected_squad: Path, e5_small: Path,
                                                                    tmp_path: Path) -> None:
    """Real SQuAD-es imports: a passage swapped with another paragraph's translation is caught."""
    table = ShardStore.open(collected_squad).table()
    rows = table.to_pylist()
    by_group: dict[str, dict[str, dict]] = {}
    for r in rows:
        by_group.setdefault(r["group_id"], {})[r["lang"]] = r
    groups = [g for g in by_group.values() if "en" in g and "es" in g]
    picked, seen = [], set()
    for g in groups:  # one question per paragraph, 40 paragraphs
        if g["en"]["passage"] not in seen:
            seen.add(g["en"]["passage"])
            picked.append(g)
        if len(picked) == 40:
            break
    shard = []
    for n, g in enumerate(picked):
        shard += [g["en"], g["es"]]
        if n % 8 == 0:  # every 8th: a copy whose Spanish passage is the next paragraph's translation
            other = picked[(n + 1) % len(picked)]["es"]
            gid = g["en"]["group_id"] + "-swapped"
            shard += [{**g["en"], "group_id": gid, "id": gid + "/en"},
                      {**g["es"], "group_id": gid, "id": gid + "/es", "passage": other["passage"],
                       "passage_sentences": other["passage_sentences"], "answers": [], "answer_starts": [],
                       "answer_sentence_index": -1}]
    src = write_store(tmp_path / "in", [shard], stage="collect")
    out = tmp_path / "out"
    config = FilterConfig(detector="fasttext", dedup=False,
                          semantic=SemanticConfig(model=str(e5_small), cache_dir=str(tmp_path / "cache")))
    FilterStage(src, out, config, progress=False).run()
    rej = rejects(out)
    swapped = {r for r in rej if "-swapped" in r}
    # every swapped passage is rejected: by the semantic check, or first by the length check
    reasons = [rej[r]["reason"] for r in swapped]
    assert len(swapped) == 5 and set(reasons) <= {"semantic_passage", "length_ratio"}, reasons
    assert reasons.count("semantic_passage") >= 3, reasons
    real_rejected = [r for r in rej if "-swapped" not in r and rej[r]["reason"].startswith("semantic")]
    assert len(real_rejected) <= 2, [rej[r]["detail"] for r in real_rejected]


def test_study_pipeline_turns_the_check_on_by_a_variable(store: Path, tmp_path: Path) -> None:
    from mt_qa.run.config import load_pipeline, option_args

    root = Path(__file__).resolve().parents[2] / "pipelines" / "squad-parallel.yaml"
    off = option_args(load_pipeline(root).step("filter").options)
    assert off == ["--semantic-model", ""]
    on = load_pipeline(root, ["vars.semantic_model=models/e5"]).step("filter").options
    assert option_args(on) == ["--semantic-model", "models/e5"]
    # the default empty value leaves the check off, with the same params as no option at all
    assert main(["filter", str(store), "-o", str(tmp_path / "a"), "--detector", "fasttext", "-q", *off]) == 0
    assert main(["filter", str(store), "-o", str(tmp_path / "b"), "--detector", "fasttext", "-q"]) == 0
    params = [ShardStore.open(tmp_path / d).manifest["params"] for d in "ab"]
    assert params[0] == params[1] and "semantic" not in params[0]["checks"]
