"""Real SQuAD rows with the failures translation produces injected: each must be caught, the rest kept."""

from __future__ import annotations

from pathlib import Path

import pytest

from mt_qa.filter.stage import FilterConfig, FilterStage
from mt_qa.shards import ShardStore
from tests.filter.corpus import write_store

LOOP = " de la de la de la de la de la de la"


def corrupt(kind: str, es: dict, en: dict, other: dict) -> None:
    if kind == "untranslated":
        es["question"], es["passage"] = en["question"], en["passage"]
    elif kind == "untranslated_question":
        es["question"] = en["question"]
    elif kind == "wrong_language":  # another language's translation in the Spanish row
        es["question"], es["passage"] = other["question"], other["passage"]
    elif kind == "truncated":
        es["passage"] = es["passage"][: len(es["passage"]) // 4]
    elif kind == "loop":
        es["passage"] = es["passage"] + LOOP
    es["passage_sentences"] = [es["passage"]]
    es["answer_sentence_index"] = -1


EXPECTED = {
    "untranslated": {"copied_source"},
    "untranslated_question": {"copied_source"},
    "wrong_language": {"langid_passage", "langid_question"},
    "truncated": {"length_ratio"},
    "loop": {"repetition_loop"},
}


@pytest.mark.parametrize("detector", ["fasttext", "combined"])
def test_injected_failures_are_caught(collected_squad: Path, tmp_path: Path, detector: str) -> None:
    table = ShardStore.open(collected_squad).table()
    rows = table.to_pylist()
    by_group: dict[str, dict[str, dict]] = {}
    for r in rows:
        by_group.setdefault(r["group_id"], {})[r["lang"]] = r
    groups = [g for g in by_group.values() if {"en", "es", "it"} <= set(g)][:300]
    kinds = list(EXPECTED)
    truth: dict[str, str] = {}
    out_rows: list[dict] = []
    for n, grp in enumerate(groups):
        en, es, it = grp["en"], dict(grp["es"]), grp["it"]
        if n < 20 * len(kinds):
            kind = kinds[n % len(kinds)]
            corrupt(kind, es, en, it)
            truth[es["id"]] = kind
        out_rows += [en, es]
    src = write_store(tmp_path / "src", [out_rows])
    out = tmp_path / "out"
    FilterStage(src, out, FilterConfig(detector=detector, dedup=False), progress=False).run()  # real dups aside
    reasons = {r["record_id"]: r["reason"] for r in ShardStore.open(out).rejects().to_pylist()}
    for row_id, kind in truth.items():
        assert reasons.get(row_id) in EXPECTED[kind], (kind, row_id, reasons.get(row_id))
    clean = [r["id"] for r in out_rows if r["id"] not in truth]
    wrongly = [rid for rid in clean if rid in reasons]
    assert len(wrongly) <= 0.02 * len(clean), {rid: reasons[rid] for rid in wrongly}
