from __future__ import annotations

import json

import pytest

from mt_qa.errors import MtqaError
from mt_qa.evaluate.build import BuildLareqa, locate, sentence_breaks
from mt_qa.evaluate.lareqa import load_benchmark
from mt_qa.shards import ShardStore


def test_sentence_breaks_strip_whitespace_and_point_into_the_passage():
    passage = "  First one.  Second one.\nThird."
    pieces = ["  First one.  ", "Second one.\n", "Third."]
    breaks, sentences = sentence_breaks(passage, pieces)
    assert sentences == ["First one.", "Second one.", "Third."]
    assert [passage[a:b] for a, b in breaks] == sentences


def test_locate_trusts_offsets_then_searches():
    passage = "The cat sat. The dog ran."
    assert locate(passage, ["dog"], [17]) == ("dog", 17)
    assert locate(passage, ["dog"], [3]) == ("dog", 17)  # shifted offset: found by search
    assert locate(passage, [" dog"], [16]) == (" dog", 17)  # leading space skipped
    assert locate(passage, ["bird"], [0]) is None


@pytest.fixture(scope="module")
def built(collected_squad, tmp_path_factory):
    out = tmp_path_factory.mktemp("bench") / "dev3"
    result = BuildLareqa(collected_squad, out, articles=3, seed=1).run()
    return out, result


def test_round_trip_on_real_data(built, collected_squad):
    out, result = built
    assert result["languages"] == ["en", "es", "it"]
    assert len(result["articles"]) == 3
    bench = load_benchmark(out)
    n = {lang: len(d.questions) for lang, d in bench.data.items()}
    assert len(set(n.values())) == 1 and n["en"] > 0  # every question in every language
    assert all(sum(d.stats.get(k, 0) for k in ("answer_in_gap", "skipped_no_answers", "answer_outside_context",
                                                "skipped_no_answer_sentence")) == 0 for d in bench.data.values())
    assert {lang: len(d.candidates) for lang, d in bench.data.items()} == result["candidates"]
    # The labelled sentence holds the answer text, and it is the collect stage's answer sentence.
    rows = ShardStore.open(collected_squad).table().to_pylist()
    by_id = {r["id"]: r for r in rows}
    for lang, d in bench.data.items():
        doc = json.loads((out / f"{lang}.json").read_text())
        answers = {q["id"]: q["answers"][0]["text"] for a in doc["data"] for p in a["paragraphs"] for q in p["qas"]}
        for qid, rel in zip(d.question_ids, d.relevant, strict=True):
            assert len(rel) == 1
            sentence = d.candidates[rel[0]]
            assert answers[qid].strip() in sentence or sentence in answers[qid]
            row = by_id[f"{qid}/{lang}"]
            assert row["split"] == "dev" and row["title"] in {a["title"] for a in doc["data"]}
            if row["answer_sentence_index"] >= 0:
                assert sentence == row["passage_sentences"][row["answer_sentence_index"]].strip()
    # Same question ids in all languages.
    assert len({tuple(sorted(d.question_ids)) for d in bench.data.values()}) == 1


def test_heldout_lists_every_group_of_the_articles(built, collected_squad):
    out, result = built
    titles = (out / "heldout_titles.txt").read_text().split("\n")[:-1]
    assert titles == sorted(result["articles"])
    groups = set((out / "heldout_group_ids.txt").read_text().split())
    rows = ShardStore.open(collected_squad).table(columns=["group_id", "title", "origin", "split"]).to_pylist()
    expected = {r["group_id"] for r in rows if r["origin"] == "source" and r["title"] in titles}
    assert groups == expected
    bench = load_benchmark(out)
    assert set(bench.data["en"].question_ids) <= groups
    assert len(groups) > len(bench.data["en"].question_ids)  # incomplete groups are held out too
    heldout = json.loads((out / "heldout.json").read_text())
    assert heldout["titles"] == titles and set(heldout["group_ids"]) == groups


def test_build_is_deterministic_and_refuses_other_params(built, collected_squad, tmp_path):
    out, result = built
    again = tmp_path / "again"
    BuildLareqa(collected_squad, again, articles=3, seed=1).run()
    for name in ("en.json", "es.json", "it.json", "heldout_group_ids.txt", "build.json"):
        assert (again / name).read_bytes() == (out / name).read_bytes()
    with pytest.raises(MtqaError, match="other params"):
        BuildLareqa(collected_squad, again, articles=2, seed=1).run()
    other = BuildLareqa(collected_squad, again, articles=2, seed=1, overwrite=True).run()
    assert len(other["articles"]) == 2


def test_titles_and_languages_selection(collected_squad, tmp_path):
    result = BuildLareqa(collected_squad, tmp_path / "b", titles=["Warsaw", "Normans"], languages=["en", "it"]).run()
    assert sorted(result["articles"]) == ["Normans", "Warsaw"]
    assert sorted(p.name for p in (tmp_path / "b").glob("*.json")) == ["build.json", "en.json", "heldout.json",
                                                                        "it.json"]
    with pytest.raises(MtqaError, match="unknown article"):
        BuildLareqa(collected_squad, tmp_path / "c", titles=["No_such_article"]).run()
    with pytest.raises(MtqaError, match=r"only \d+ articles"):
        BuildLareqa(collected_squad, tmp_path / "d", articles=500).run()
    with pytest.raises(MtqaError, match="no rows in"):
        BuildLareqa(collected_squad, tmp_path / "e", languages=["en", "pt"]).run()
    with pytest.raises(MtqaError, match="no rows of split"):
        BuildLareqa(collected_squad, tmp_path / "f", split="test").run()
