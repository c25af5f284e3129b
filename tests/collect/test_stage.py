"""The collect stage end to end: real SQuAD data, bad input, resume after kill, job arrays."""

from __future__ import annotations

import gzip
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pyarrow as pa
import pytest

from mt_qa.cli import main
from mt_qa.collect import CollectStage, ParallelSpec, SourceSpec
from mt_qa.errors import InputError
from mt_qa.shards import ShardStore
from tests.helpers import tree_digest

FIX = Path(__file__).resolve().parents[1] / "fixtures" / "collect"


def squad_json(questions: list[dict], context: str = "Paris is the capital of France.") -> dict:
    return {"version": "1.1", "data": [{"title": "T", "paragraphs": [{"context": context, "qas": questions}]}]}


def qa(qid: str, question: str = "What is the capital of France?", start: int = 0, text: str = "Paris") -> dict:
    return {"id": qid, "question": question, "answers": [{"text": text, "answer_start": start}]}


# ----------------------------------------------------------------------------- real data


def test_real_squad_counts_match_the_data_readme(collected_squad):
    store = ShardStore.open(collected_squad)
    assert store.validate() == []
    groups_by_lang: dict[str, set[str]] = {}
    for lang in store.languages():
        groups_by_lang[lang] = set(store.table(lang=lang, columns=["group_id"])["group_id"].to_pylist())
    en = groups_by_lang["en"]
    assert len(en) == 9380 + 3807
    assert len(en & groups_by_lang["es"]) == 5851
    assert len(en & groups_by_lang["it"]) == 6117
    assert len(en & groups_by_lang["es"] & groups_by_lang["it"]) == 4029
    assert len(en & groups_by_lang["pt"]) == 3286
    # The 714 Italian questions whose ids are not in the English dev file are reported, not lost.
    rejects = store.rejects()
    assert rejects["reason"].to_pylist().count("unmatched_parallel_id") == 6831 - 6117
    assert store.manifest["stats"]["rejected"] == {"unmatched_parallel_id": 714}


def test_real_rows_keep_the_contract(collected_squad):
    store = ShardStore.open(collected_squad)
    es = store.table(lang="es").to_pylist()
    row = next(r for r in es if r["id"] == "squad/dev/56be4db0acb8001400a502ec/es")
    assert row["origin"] == "imported" and row["lang_code"] == "spa_Latn"
    assert row["question"].startswith("¿Qué equipo de la NFL")
    assert "".join(row["passage_sentences"]) == row["passage"]
    answer_sentence = row["passage_sentences"][row["answer_sentence_index"]]
    assert "Denver Broncos" in answer_sentence
    en = store.table(lang="en")
    located = sum(1 for i in en["answer_sentence_index"].to_pylist() if i >= 0)
    assert located == en.num_rows  # official SQuAD offsets are exact


def test_shards_read_directly_with_datasets(collected_squad):
    datasets = pytest.importorskip("datasets")
    store = ShardStore.open(collected_squad)
    path = store.files(lang="pt")[0]
    ds = datasets.Dataset.from_file(str(path))
    assert ds.num_rows == pa.ipc.open_stream(pa.memory_map(str(path))).read_all().num_rows
    assert set(ds["lang"]) == {"pt"}


# ----------------------------------------------------------------------------- bad input


BAD_CASES = {
    "missing_field": (squad_json([{"id": "a", "answers": []}]), "qas[0]", "missing field"),
    "wrong_type": (squad_json([{"id": "a", "question": 42, "answers": []}]), "qas[0]", "wrong type"),
    "empty_question": (squad_json([qa("a", question="   ")]), "qas[0]", "empty question"),
    "empty_passage": (squad_json([qa("a")], context=""), "qas[0]", "empty passage"),
    "duplicate_id": (squad_json([qa("a"), qa("a")]), "qas[1]", "duplicate id"),
    "bad_answer": (squad_json([{"id": "a", "question": "Q?", "answers": [{"text": "x"}]}]), "qas[0]", "wrong type"),
}


@pytest.mark.parametrize("case", sorted(BAD_CASES))
def test_bad_record_fails_with_location_by_default(tmp_path, case):
    doc, location, reason = BAD_CASES[case]
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(doc))
    with pytest.raises(InputError) as err:
        CollectStage([SourceSpec(str(path))], tmp_path / "out", progress=False).run()
    message = str(err.value)
    assert str(path) in message and location in message and reason in message
    assert "--on-error skip" in message


@pytest.mark.parametrize("case", sorted(BAD_CASES))
def test_bad_record_goes_to_rejects_with_skip(tmp_path, case):
    doc, location, _ = BAD_CASES[case]
    doc["data"][0]["paragraphs"].append({"context": "Rome is in Italy.", "qas": [qa("good", "Where is Rome?")]})
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(doc))
    CollectStage([SourceSpec(str(path))], tmp_path / "out", on_error="skip", progress=False).run()
    store = ShardStore.open(tmp_path / "out")
    assert store.validate() == []
    assert "squad/train/good/en" in store.table()["id"].to_pylist()
    rejects = store.rejects().to_pylist()
    assert len(rejects) == 1
    reason = case if case != "bad_answer" else "wrong_type"
    assert rejects[0]["reason"] == reason and location in rejects[0]["location"]
    assert rejects[0]["source"] == str(path) and rejects[0]["detail"]
    assert store.manifest["stats"]["rejected"] == {reason: 1}


def test_malformed_json_names_line_and_column(tmp_path):
    path = tmp_path / "broken.json"
    path.write_text('{"data": [\n  {"title": "x", "paragraphs": [}\n]}')
    with pytest.raises(InputError, match=r"broken\.json: line 2, column \d+: malformed JSON"):
        CollectStage([SourceSpec(str(path))], tmp_path / "out", on_error="skip", progress=False).run()


def test_non_utf8_whole_file_is_located(tmp_path):
    path = tmp_path / "latin1.json"
    path.write_bytes(
        json.dumps(squad_json([qa("a")], context="Caf\u00e9 in Paris."), ensure_ascii=False).encode("latin-1")
    )
    with pytest.raises(InputError, match=r"line 1, byte \d+: not valid UTF-8"):
        CollectStage([SourceSpec(str(path))], tmp_path / "out", progress=False).run()


def test_non_utf8_line_in_jsonl_is_skippable(tmp_path):
    path = tmp_path / "pairs.jsonl"
    good = json.dumps({"id": "1", "question": "Where is Paris?", "passage": "Paris is in France."}).encode()
    path.write_bytes(good + b"\n" + b'{"id": "2", "question": "caf\xe9?", "passage": "x"}\n')
    with pytest.raises(InputError, match="line 2: encoding"):
        CollectStage([SourceSpec(str(path))], tmp_path / "a", progress=False).run()
    CollectStage([SourceSpec(str(path))], tmp_path / "b", on_error="skip", progress=False).run()
    store = ShardStore.open(tmp_path / "b")
    assert store.manifest["totals"]["rows"] == 1
    assert store.rejects()["location"].to_pylist() == ["line 2"]


def test_unmatched_and_duplicate_parallel_ids_are_reported(tmp_path):
    en = tmp_path / "en.json"
    en.write_text(json.dumps(squad_json([qa("a"), qa("b")])))
    es = tmp_path / "es.json"
    es_doc = squad_json([qa("a", "¿Cuál es la capital?"), qa("zzz", "¿Otra?")], "París es la capital de Francia.")
    es.write_text(json.dumps(es_doc))
    result = CollectStage(
        [SourceSpec(str(en))], tmp_path / "out", parallel=[ParallelSpec("es", str(es))], progress=False
    ).run()
    assert result["sources"][str(es)]["unmatched"] == 1
    store = ShardStore.open(tmp_path / "out")
    assert store.manifest["totals"]["rows_by_lang"] == {"en": 2, "es": 1}
    (reject,) = store.rejects().to_pylist()
    assert reject["reason"] == "unmatched_parallel_id" and reject["record_id"] == "zzz"
    es_row = store.table(lang="es").to_pylist()[0]
    assert es_row["group_id"] == "squad/train/a" and es_row["origin"] == "imported"
    # Answer offsets of the import point into its own paragraph: "Paris" is not there, so -1.
    assert es_row["answer_sentence_index"] == -1

    es_doc["data"][0]["paragraphs"][0]["qas"].append(qa("a", "¿Dos veces?"))
    es.write_text(json.dumps(es_doc))
    with pytest.raises(InputError, match="duplicate id"):
        CollectStage([SourceSpec(str(en))], tmp_path / "out2", parallel=[ParallelSpec("es", str(es))]).run()


def test_gzip_input_equals_plain_input(tmp_path):
    plain = FIX / "squad_v2.json"
    gz = tmp_path / "squad_v2.json.gz"
    gz.write_bytes(gzip.compress(plain.read_bytes()))
    CollectStage([SourceSpec(str(plain))], tmp_path / "a", progress=False).run()
    CollectStage([SourceSpec(str(gz))], tmp_path / "b", progress=False).run()
    a, b = ShardStore.open(tmp_path / "a"), ShardStore.open(tmp_path / "b")
    assert a.table().equals(b.table())
    assert a.manifest["stats"]["skipped"] == {"unanswerable": 1}


# ----------------------------------------------------------------------------- resume and arrays


def _collect_cmd(squad_dir: Path, out: Path) -> list[str]:
    return [
        sys.executable, "-m", "mt_qa.cli", "collect", "-q",
        str(squad_dir / "dev-v1.1.en.json.gz"),
        "--parallel", f"es={squad_dir / 'dev-v1.1.es.json.gz'}",
        "--shard-size", "400", "-o", str(out),
    ]  # fmt: skip


def test_killed_run_resumes_to_identical_output(squad_dir, tmp_path):
    reference = tmp_path / "reference"
    subprocess.run(_collect_cmd(squad_dir, reference), check=True, capture_output=True)
    killed = tmp_path / "killed"
    proc = subprocess.Popen(_collect_cmd(squad_dir, killed), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and len(list((killed / "_done").glob("*.json"))) < 3:
        time.sleep(0.01)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    done_before = len(list((killed / "_done").glob("*.json")))
    assert 3 <= done_before < 24, "the kill should land mid-run"
    assert not (killed / "manifest.json").exists()
    with pytest.raises(Exception, match="did not finish"):
        ShardStore.open(killed)
    subprocess.run(_collect_cmd(squad_dir, killed), check=True, capture_output=True)
    assert tree_digest(killed) == tree_digest(reference)


def test_half_written_shard_is_redone(tmp_path):
    out = tmp_path / "out"
    src = [SourceSpec(str(FIX / "squad_v2.json"))]
    CollectStage(src, out, shard_size=1, progress=False).run()
    reference = tree_digest(out)
    # Simulate a crash after data files were written but before the marker (and manifest).
    (out / "_done" / "part-00001.json").unlink()
    (out / "manifest.json").unlink()
    (out / "data" / "en" / "part-00001.arrow").write_bytes(b"garbage from a crash")
    CollectStage(src, out, shard_size=1, progress=False).run()
    assert tree_digest(out) == reference


def test_rerun_with_other_params_is_refused_then_overwritten(tmp_path):
    out = tmp_path / "out"
    src = [SourceSpec(str(FIX / "squad_v2.json"))]
    CollectStage(src, out, shard_size=1, progress=False).run()
    with pytest.raises(Exception, match="different run"):
        CollectStage(src, out, shard_size=2, progress=False).run()
    CollectStage(src, out, shard_size=2, overwrite=True, progress=False).run()
    assert ShardStore.open(out).manifest["params"]["shard_size"] == 2


def test_array_tasks_union_equals_single_run(squad_dir, tmp_path):
    spec = [SourceSpec(str(squad_dir / "train-v1.1.prefix.en.json.gz"))]
    par = [ParallelSpec("pt", str(squad_dir / "train-v1.1.prefix.pt.json.gz"))]
    CollectStage(spec, tmp_path / "single", parallel=par, shard_size=500, progress=False).run()
    results = [
        CollectStage(spec, tmp_path / "array", parallel=par, shard_size=500, num_tasks=3, task_index=i,
                     progress=False).run()
        for i in (2, 0, 1)
    ]  # fmt: skip
    assert [r["finished"] for r in results] == [False, False, True]
    assert tree_digest(tmp_path / "array") == tree_digest(tmp_path / "single")


# ----------------------------------------------------------------------------- CLI


def test_cli_user_error_is_one_line_without_traceback(tmp_path, capsys):
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(squad_json([qa("a", question="")])))
    code = main(["collect", str(path), "-o", str(tmp_path / "out"), "-q"])
    err = capsys.readouterr().err
    assert code == 1
    assert "Error:" in err and "empty question" in err and "Traceback" not in err


def test_cli_collect_all_fixture_formats(tmp_path, capsys):
    code = main(
        ["collect", "-q", str(FIX / "squad_v2.json"), str(FIX / "WikiQA-dev.tsv"), str(FIX / "msmarco"),
         str(FIX / "nq_simplified.jsonl"), "-o", str(tmp_path / "out")]
    )  # fmt: skip
    assert code == 0
    store = ShardStore.open(tmp_path / "out")
    assert sorted(set(store.table()["dataset"].to_pylist())) == ["msmarco", "nq", "squad", "wikiqa"]
    assert store.manifest["stats"]["skipped"] == {"unanswerable": 1, "no_answer": 1, "no_long_answer": 1}
    assert "rows" in capsys.readouterr().err


def test_cli_help_lists_every_stage_and_version():
    out = subprocess.run([sys.executable, "-m", "mt_qa.cli", "--help"], capture_output=True, text=True, check=True)
    for stage in ("collect", "translate", "filter", "build-batches", "train", "evaluate", "run", "inspect", "validate"):
        assert stage in out.stdout
    version = subprocess.run([sys.executable, "-m", "mt_qa.cli", "--version"], capture_output=True, text=True)
    assert version.returncode == 0 and "mtqa, version" in version.stdout


def test_cli_array_task_from_slurm_env(tmp_path, monkeypatch):
    monkeypatch.setenv("SLURM_ARRAY_TASK_ID", "1")
    monkeypatch.setenv("SLURM_ARRAY_TASK_COUNT", "2")
    assert main(["collect", "-q", str(FIX / "squad_v2.json"), "--shard-size", "1", "-o", str(tmp_path / "o")]) == 0
    assert sorted(p.stem for p in (tmp_path / "o" / "_done").glob("*.json")) == ["part-00001", "part-00003"]
    assert not (tmp_path / "o" / "manifest.json").exists()
    os.environ["SLURM_ARRAY_TASK_ID"] = "0"
    assert main(["collect", "-q", str(FIX / "squad_v2.json"), "--shard-size", "1", "-o", str(tmp_path / "o")]) == 0
    assert ShardStore.open(tmp_path / "o").manifest["totals"]["rows"] == 3
