from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from mt_qa.cli import main
from mt_qa.errors import MtqaError, ShardStoreError
from mt_qa.languages import resolve
from mt_qa.shards import MANIFEST, ShardStore
from mt_qa.translate.cache import Translation, TranslationCache, segment_key
from mt_qa.translate.models import load_model_info
from mt_qa.translate.segment import normalize, plan_row
from mt_qa.translate.stage import WORK_DIR, TranslateStage, _Job, _LangSummary, _RunCounters, keep_verbatim_answers
from mt_qa.translate.translator import DecodeOptions, NllbTranslator


def translate(qa_store: Path, out: Path, model: Path, langs: str = "de,zh", cache: Path | None = None,
              **kwargs: Any) -> tuple[TranslateStage, dict[str, Any]]:
    stage = TranslateStage(qa_store, out, langs, model=str(model), device="cpu", cache=cache, progress=False,
                           **kwargs)
    return stage, stage.run()


def rows_by_id(out: Path) -> dict[str, dict[str, Any]]:
    return {row["id"]: row for row in ShardStore.open(out).table().to_pylist()}


def same_output(a: Path, b: Path) -> bool:
    store_a, store_b = ShardStore.open(a), ShardStore.open(b)
    return (store_a.shard_names() == store_b.shard_names()
            and all(store_a.table(shard=n).equals(store_b.table(shard=n)) for n in store_a.shard_names())
            and (a / MANIFEST).read_bytes() == (b / MANIFEST).read_bytes())


@pytest.fixture(scope="module")
def translated(qa_store: Path, tiny_ct2: Path, tmp_path_factory: pytest.TempPathFactory):
    """One run into de, es and zh (es is imported for two groups), with its own cache."""
    root = tmp_path_factory.mktemp("translated")
    stage, result = translate(qa_store, root / "out", tiny_ct2, "de,es,zh", cache=root / "cache.sqlite")
    return stage, result, root / "out"


def test_rows_pass_through_and_each_group_gains_one_row_per_language(qa_store: Path, translated):
    stage, result, out = translated
    source_rows = rows_by_id(qa_store)
    out_rows = rows_by_id(out)
    for rid, row in source_rows.items():
        assert out_rows[rid] == row  # English and imported rows unchanged
    english = [r for r in source_rows.values() if r["origin"] == "source"]
    imported = {(r["group_id"], r["lang"]) for r in source_rows.values() if r["origin"] == "imported"}
    assert len(english) == 15 and len(imported) == 2
    for src in english:
        for code, flores in (("de", "deu_Latn"), ("es", "spa_Latn"), ("zh", "zho_Hans")):
            rid = f"{src['group_id']}/{code}"
            if (src["group_id"], code) in imported:
                assert out_rows[rid]["origin"] == "imported"
                continue
            mt = out_rows[rid]
            assert (mt["origin"], mt["lang"], mt["lang_code"]) == ("mt", code, flores)
            assert mt["origin_detail"] == stage.model.detail and "@" in mt["origin_detail"]
            for key in ("group_id", "dataset", "split", "title", "answer_sentence_index"):
                assert mt[key] == src[key]
            assert len(mt["passage_sentences"]) == len(src["passage_sentences"])
            assert "".join(mt["passage_sentences"]) == mt["passage"]
            assert mt["question"] and mt["question"] == mt["question"].strip()
            assert mt["mt_length_ratio"] > 0 and 0 <= mt["mt_repetition"] <= 1
            for answer, start in zip(mt["answers"], mt["answer_starts"], strict=True):
                assert mt["passage"][start:start + len(answer)] == answer
    stats = result["manifest"]["stats"]
    assert stats["skipped"]["existing"] == {"es": 2}
    assert stats["rows"]["mt"] == {"de": 15, "es": 13, "zh": 15}
    assert result["langs"]["es"]["existing"] == 2
    assert ShardStore.open(out).validate() == []
    assert ShardStore.open(out).shard_names() == ShardStore.open(qa_store).shard_names()


def test_manifest_records_model_id_and_hash(translated):
    stage, result, _out = translated
    params = result["manifest"]["params"]
    assert params["model"] == {"id": stage.model.id, "sha256": stage.model.sha256, "quantization": "int8"}
    assert params["langs"] == ["deu_Latn", "spa_Latn", "zho_Hans"]
    assert params["compute_type"] == "int8"


def test_sentences_are_reassembled_in_source_order(qa_store: Path, tiny_ct2: Path, translated):
    stage, _result, out = translated
    out_rows = rows_by_id(out)
    english = [r for r in rows_by_id(qa_store).values() if r["origin"] == "source"]
    cache = TranslationCache(stage.cache_path, stage.cache_settings("int8"))
    direct = NllbTranslator(load_model_info(tiny_ct2), device="cpu")
    for code, flores, sep in (("de", "deu_Latn", " "), ("zh", "zho_Hans", "")):
        for src in english[:6]:
            mt = out_rows[f"{src['group_id']}/{code}"]
            texts = [normalize(s) for s in src["passage_sentences"]]
            stored = cache.get_many(flores, [segment_key("eng_Latn", t) for t in texts])
            expected = [stored[segment_key("eng_Latn", t)].text for t in texts]
            assert [s.strip() for s in mt["passage_sentences"]] == expected
            assert [s.strip() for s in mt["passage_sentences"]] == direct.translate(texts, "eng_Latn", flores)
            assert all(s.endswith((sep, "\n")) for s in mt["passage_sentences"][:-1])
            assert mt["question"] == direct.translate([src["question"]], "eng_Latn", flores)[0]
    cache.close()


def test_each_unique_segment_is_translated_once(qa_store: Path, translated):
    _stage, result, _out = translated
    english = [r for r in rows_by_id(qa_store).values() if r["origin"] == "source"]
    imported = {(r["group_id"], r["lang"]) for r in rows_by_id(qa_store).values() if r["origin"] == "imported"}
    occurrences, unique = 0, set()
    for src in english:
        for code, flores in (("de", "deu_Latn"), ("es", "spa_Latn"), ("zh", "zho_Hans")):
            if (src["group_id"], code) in imported:
                continue
            texts = [normalize(src["question"]), *(normalize(s) for s in src["passage_sentences"])]
            occurrences += len(texts)
            unique |= {(t, flores) for t in texts}
    stats = result["manifest"]["stats"]["segments"]
    assert stats["occurrences"] == occurrences
    assert stats["unique"] < occurrences  # paragraphs are shared by their questions
    # Across shards the cache dedups too: nothing is translated twice in one run.
    assert result["segments_translated"] == len(unique)
    assert result["segments_translated"] + result["segments_cached"] == stats["unique"]


def test_rerun_and_added_language_reuse_the_cache(qa_store: Path, tiny_ct2: Path, tmp_path: Path, translated):
    _stage, first, first_out = translated
    cache = tmp_path / "cache.sqlite"
    _, de = translate(qa_store, tmp_path / "de", tiny_ct2, "de", cache=cache)
    assert de["segments_translated"] > 0
    _, de_zh = translate(qa_store, tmp_path / "de_zh", tiny_ct2, "de,zh", cache=cache)
    assert de_zh["langs"]["de"]["translated"] == 0
    assert de_zh["langs"]["de"]["cached"] == de["langs"]["de"]["unique"]
    assert de_zh["langs"]["zh"]["translated"] > 0
    _, again = translate(qa_store, tmp_path / "again", tiny_ct2, "de,zh", cache=cache)
    assert again["segments_translated"] == 0
    assert same_output(tmp_path / "de_zh", tmp_path / "again")
    # A rerun into a finished directory does nothing at all.
    _, noop = translate(qa_store, tmp_path / "again", tiny_ct2, "de,zh", cache=cache)
    assert noop["shards_done_now"] == 0 and noop["segments_cached"] == 0


class Interrupted(Exception):
    pass


def test_resume_after_an_interruption_mid_shard(qa_store: Path, tiny_ct2: Path, tmp_path: Path):
    translate(qa_store, tmp_path / "full", tiny_ct2, cache=tmp_path / "full.sqlite", checkpoint_every=5)

    def stop_after_two_units(shard: str, unit: int, units: int) -> None:
        if shard == "part-00000" and unit == 2:
            assert units > 2
            raise Interrupted

    with pytest.raises(Interrupted):
        translate(qa_store, tmp_path / "resumed", tiny_ct2, cache=tmp_path / "r.sqlite", checkpoint_every=5,
                  on_checkpoint=stop_after_two_units)
    assert not ShardStore(tmp_path / "resumed", "translate", None).is_done("part-00000")
    _, result = translate(qa_store, tmp_path / "resumed", tiny_ct2, cache=tmp_path / "r.sqlite", checkpoint_every=5)
    assert result["segments_cached"] >= 10  # the two committed units were not translated again
    assert same_output(tmp_path / "full", tmp_path / "resumed")


def test_resume_after_kill_without_a_shared_cache(qa_store: Path, tiny_ct2: Path, tmp_path: Path):
    translate(qa_store, tmp_path / "full", tiny_ct2, cache=None, checkpoint_every=4)
    out = tmp_path / "killed"
    script = (
        "import os, sys\n"
        "from mt_qa.translate.stage import TranslateStage\n"
        "def hook(shard, unit, units):\n"
        "    if unit == 2:\n"
        "        os.kill(os.getpid(), 9)\n"
        f"TranslateStage({str(qa_store)!r}, {str(out)!r}, 'de,zh', model={str(tiny_ct2)!r}, device='cpu', cache=None,"
        " checkpoint_every=4, progress=False, on_checkpoint=hook).run()\n"
    )
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300)
    assert proc.returncode == -9, proc.stderr
    checkpoint = out / WORK_DIR / "part-00000.sqlite"
    assert checkpoint.is_file() and not (out / MANIFEST).exists()
    _, result = translate(qa_store, out, tiny_ct2, cache=None, checkpoint_every=4)
    assert result["segments_cached"] == 8  # two units of 4 survived the kill
    assert same_output(tmp_path / "full", out)
    assert not (out / WORK_DIR).exists()  # checkpoints are removed once their shard is done


def test_job_array_tasks_produce_the_single_run_output(qa_store: Path, tiny_ct2: Path, tmp_path: Path):
    translate(qa_store, tmp_path / "single", tiny_ct2, cache=tmp_path / "a.sqlite")
    _, first = translate(qa_store, tmp_path / "array", tiny_ct2, cache=tmp_path / "b.sqlite", num_tasks=2,
                         task_index=0)
    assert not first["finished"] and first["shards_this_task"] == 1
    _, second = translate(qa_store, tmp_path / "array", tiny_ct2, cache=tmp_path / "b.sqlite", num_tasks=2,
                          task_index=1)
    assert second["finished"]
    assert same_output(tmp_path / "single", tmp_path / "array")


def test_retranslate_imported_replaces_them_and_says_so(qa_store: Path, tiny_ct2: Path, tmp_path: Path):
    _, result = translate(qa_store, tmp_path / "out", tiny_ct2, "es", cache=tmp_path / "c.sqlite",
                          retranslate_imported=True)
    store = ShardStore.open(tmp_path / "out")
    es = store.table(lang="es").to_pylist()
    assert len(es) == 15 and {r["origin"] for r in es} == {"mt"}
    rejects = store.rejects().to_pylist()
    assert sorted(r["reason"] for r in rejects) == ["replaced_by_mt"] * 2
    assert result["manifest"]["stats"]["replaced_imported"] == {"es": 2}


def test_over_long_sentences_are_split_and_realigned(qa_store: Path, tiny_ct2: Path, tmp_path: Path):
    options = DecodeOptions(max_input_tokens=8)
    _, result = translate(qa_store, tmp_path / "out", tiny_ct2, "de", cache=tmp_path / "c.sqlite", options=options)
    assert result["manifest"]["stats"]["segments"]["split_long"] > 0
    out_rows = rows_by_id(tmp_path / "out")
    for row in rows_by_id(qa_store).values():
        if row["origin"] == "source":
            mt = out_rows[f"{row['group_id']}/de"]
            assert len(mt["passage_sentences"]) == len(row["passage_sentences"])
    assert ShardStore.open(tmp_path / "out").validate() == []


def test_cli_runs_and_refuses_mixing_settings(qa_store: Path, tiny_ct2: Path, tmp_path: Path, capsys):
    out, cache = tmp_path / "out", tmp_path / "c.sqlite"
    args = ["translate", str(qa_store), "--langs", "deu_Latn,zh", "-o", str(out), "--model", str(tiny_ct2),
            "--device", "cpu", "--cache", str(cache), "-q"]
    assert main(args) == 0
    err = capsys.readouterr().err
    assert "mtqa translate" in err and "segments translated" in err
    assert set(ShardStore.open(out).languages()) == {"de", "en", "es", "zh"}
    assert main([*args, "--beam-size", "1"]) == 1
    assert "holds output of a different run" in capsys.readouterr().err
    assert main([*args[:3], "de,xx", *args[4:]]) == 1
    assert "unknown language code 'xx'" in capsys.readouterr().err
    assert main(["translate", str(tmp_path / "nowhere"), "--langs", "de", "-o", str(tmp_path / "o2"), "--model",
                 str(tiny_ct2), "-q"]) == 1
    assert "not a finished mtqa shard directory" in capsys.readouterr().err


def test_unfinished_input_is_refused(tmp_path: Path, tiny_ct2: Path):
    (tmp_path / "half").mkdir()
    (tmp_path / "half" / "_run.json").write_text(json.dumps({"stage": "collect"}))
    with pytest.raises(ShardStoreError, match="did not finish"):
        translate(tmp_path / "half", tmp_path / "out", tiny_ct2)
    with pytest.raises(MtqaError, match="--checkpoint-every"):
        TranslateStage(tmp_path, tmp_path / "o", "de", checkpoint_every=0)


def test_an_empty_translation_is_rejected_not_written(qa_store: Path, tiny_ct2: Path, tmp_path: Path):
    stage = TranslateStage(qa_store, tmp_path / "out", "de", model=str(tiny_ct2), cache=None, progress=False)
    stage.model = load_model_info(tiny_ct2)
    writer = ShardStore(tmp_path / "w", "translate", None).writer("part-00000")
    row = next(r for r in rows_by_id(qa_store).values() if r["origin"] == "source")
    plan = plan_row(row["question"], row["passage_sentences"], lambda t: len(t.split()), 256)
    empty = {p: Translation("", len(p.split()), 0, 0.0, False) for p in plan.pieces()}
    counters = _RunCounters(by_lang={"de": _LangSummary()})
    assert stage._mt_row(_Job(row, plan, resolve("de")), empty, writer, "part-00000", counters) is None
    assert writer.stats["rejected"] == {"empty_translation": 1}
    assert counters.by_lang["de"].rejected == 1


def test_answers_are_kept_only_verbatim_in_the_answer_sentence():
    sentences = ["Sie wurde 1867 in Warschau geboren. ", "Ihr Labor lag in Paris und 1867 war ein Jahr."]
    assert keep_verbatim_answers(["1867", "Warsaw", "1867"], sentences, 0) == (["1867"], [10])
    assert keep_verbatim_answers(["Paris"], sentences, 1) == (["Paris"], [len(sentences[0]) + 17])
    assert keep_verbatim_answers(["Paris"], sentences, 0) == ([], [])  # only the aligned sentence counts
    assert keep_verbatim_answers(["867"], sentences, 0) == ([], [])  # never inside a longer word
    assert keep_verbatim_answers(["NFL"], ["这是NFL的比赛。"], 0) == (["NFL"], [2])
    assert keep_verbatim_answers(["1867"], sentences, -1) == ([], [])
