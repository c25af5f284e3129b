from __future__ import annotations

import itertools
from pathlib import Path

import pytest

from mt_qa.filter.dedup import EXACT, NEAR, DedupConfig, Deduplicator, DedupPlan, Duplicate, jaccard, shingles
from mt_qa.filter.quality import normalize_text
from mt_qa.shards import ShardStore

P = "The basin spans nine countries."


def test_exact_duplicates_ignore_case_space_and_punctuation_and_keep_the_first() -> None:
    dd = Deduplicator(DedupConfig(near=False))
    assert dd.add("a/en", "en", "How many countries?", P) is None
    assert dd.add("b/en", "en", "  how MANY countries ", "the basin spans nine countries") == Duplicate(EXACT, 1.0,
                                                                                                         "a/en")
    assert dd.add("c/en", "en", "How many countries?", "Another passage.") is None  # other passage
    assert dd.add("a/es", "es", "How many countries?", P) is None  # per language


def test_near_duplicate_questions() -> None:
    dd = Deduplicator(DedupConfig(threshold=0.7))
    assert dd.add("1", "en", "What are the three sources of European Union law?", "p1") is None
    dup = dd.add("2", "en", "What are the three main sources of European Union law?", "p2")
    assert dup is not None and dup.reason == NEAR and dup.of == "1" and 0.7 <= dup.score < 1.0
    # At the default 0.9, one changed number makes a different question (similarity 0.76).
    dd = Deduplicator(DedupConfig())
    assert dd.add("3", "en", "How many works did Chopin write in 1842?", "p3") is None
    assert dd.add("4", "en", "How many works did Chopin write in 1845?", "p4") is None
    # The same question on another passage is a (near-)duplicate with similarity 1.
    assert dd.add("5", "en", "how many works did Chopin write in 1842", "p5") == Duplicate(NEAR, 1.0, "3")


def test_near_duplicates_only_within_a_language_and_never_when_off() -> None:
    dd = Deduplicator(DedupConfig())
    assert dd.add("1", "en", "Who won Super Bowl 50?", "p") is None
    assert dd.add("2", "es", "Who won Super Bowl 50?", "p") is None
    off = Deduplicator(DedupConfig(near=False))
    assert off.add("1", "en", "Who won Super Bowl 50?", "p") is None
    assert off.add("2", "en", "Who won the Super Bowl 50?", "q") is None


def test_shingles_of_unspaced_text_are_characters() -> None:
    zh = shingles("长城是哪个朝代修建的？", "zh")
    assert len(zh) == 10 + 9  # 10 characters and 9 character pairs
    assert jaccard(zh, zh) == 1.0


def test_plan_round_trip(tmp_path: Path) -> None:
    plan = DedupPlan(DedupConfig(), {"b/en": Duplicate(EXACT, 1.0, "a/en"), "c/en": Duplicate(NEAR, 0.93, "a/en")})
    path = tmp_path / "plan.json"
    plan.save(path)
    assert DedupPlan.load(path, DedupConfig()) == plan
    assert DedupPlan.load(path, DedupConfig(threshold=0.8)) is None  # another config: stale
    path.write_text("{broken")
    assert DedupPlan.load(path, DedupConfig()) is None


@pytest.mark.parametrize("threshold", [0.9, 0.8])
def test_lsh_finds_the_near_duplicates_brute_force_finds(collected_squad: Path, threshold: float) -> None:
    """On real SQuAD questions, MinHash LSH + exact check equals an all-pairs exact Jaccard scan."""
    table = ShardStore.open(collected_squad).table(lang="en", columns=["id", "question"])
    ids, questions = table["id"].to_pylist()[:1200], table["question"].to_pylist()[:1200]
    dd = Deduplicator(DedupConfig(threshold=threshold))
    found = {row_id for row_id, q in zip(ids, questions, strict=True) if dd.add(row_id, "en", q, row_id) is not None}
    sets = [set(shingles(q, "en").tolist()) for q in questions]
    expected: set[str] = set()
    kept: list[int] = []
    for i in range(len(questions)):
        if any(len(sets[i] & sets[k]) / len(sets[i] | sets[k]) >= threshold for k in kept):
            expected.add(ids[i])
        else:
            kept.append(i)
    assert expected, "the sample should hold near-duplicates"
    assert found == expected


def test_normalisation_makes_exact_keys_stable() -> None:
    variants = ["Who won?", "who won", " WHO  WON ?! "]
    assert len({normalize_text(v) for v in variants}) == 1
    assert all(a == b for a, b in itertools.pairwise(normalize_text(v) for v in variants))
