"""The input index of a collect job array: built once, checked on every load, and what lets a task skip the inputs."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from mt_qa.cli import main
from mt_qa.collect import CollectStage, ParallelSpec, SourceSpec
from mt_qa.collect.base import BadRecord, Example, Skipped
from mt_qa.collect.index import INDEX_FILE, INDEX_META, IndexWriter, InputIndex, decode, encode, remove_index
from mt_qa.collect.registry import READERS
from mt_qa.collect.resolve import EXAMPLE, MATCH, REJECT, SKIPPED, Entry, ResolvedShard
from mt_qa.collect.squad import SquadReader
from mt_qa.errors import InputError
from mt_qa.shards import ShardStore
from tests.helpers import tree_digest

FIX = Path(__file__).resolve().parents[1] / "fixtures" / "collect"


class TripwireReader(SquadReader):
    """SQuAD, registered under its own format name, that counts its reads and can be told to refuse them."""

    name = "squad-tripwire"
    reads: list[str] = []
    allowed = True

    def read(self):
        if not TripwireReader.allowed:
            raise RuntimeError(f"{self.path} was read")
        TripwireReader.reads.append(self.path.name)
        return super().read()


@pytest.fixture
def tripwire(monkeypatch):
    monkeypatch.setitem(READERS, TripwireReader.name, TripwireReader)
    monkeypatch.setattr(TripwireReader, "reads", [])
    monkeypatch.setattr(TripwireReader, "allowed", True)
    return TripwireReader


def _qa(qid, question="What is the capital of France?", text="Paris", start=0):
    return {"id": qid, "question": question, "answers": [{"text": text, "answer_start": start}]}


def _doc(paragraphs):
    return {"version": "2.0", "data": [{"title": "T", "paragraphs": [{"context": c, "qas": q} for c, q in paragraphs]}]}


@pytest.fixture
def messy(tmp_path):
    """Sources and parallel files with every case the index must carry: duplicates, bad records,
    format skips, an empty passage, matches, unmatched and malformed parallel rows."""
    en = tmp_path / "train-en.json"
    en.write_text(json.dumps(_doc([
        ("Paris is the capital of France. It is big.", [_qa("a"), _qa("b", "Where is Paris?"), _qa("a", "Again?")]),
        ("Rome is in Italy.", [_qa("c", "Where is Rome?", "Italy", 11), {"id": "d", "answers": []},
                               {"id": "e", "question": "Unanswerable?", "is_impossible": True, "answers": []}]),
        ("", [_qa("f")]),
        ("Berlin is in Germany. Bonn is too.", [_qa("g", "Where is Berlin?", "Germany", 13), _qa("h", "Bonn?"),
                                                {"id": "i", "question": 42, "answers": []}]),
    ])))  # fmt: skip
    dev = tmp_path / "dev-en.json"
    dev.write_text(json.dumps(_doc([("Madrid is in Spain.", [_qa("a", "Where is Madrid?", "Spain", 13),
                                                             _qa("j", "Madrid?")])])))  # fmt: skip
    es = tmp_path / "train-es.json"
    es.write_text(json.dumps(_doc([
        ("París es la capital de Francia.", [_qa("a", "¿Cuál es la capital?", "París"), _qa("zzz", "¿Otra?"),
                                             _qa("g", "¿Dónde está Berlín?"), _qa("g", "¿Otra vez?"),
                                             {"id": "q", "answers": []}]),
    ])))  # fmt: skip
    de = tmp_path / "train-de.json"
    de.write_text(json.dumps(_doc([("Paris ist die Hauptstadt.", [_qa("b", "Wo ist Paris?"), _qa("yyy", "Was?")])])))
    return tmp_path


def _stage(messy, out, fmt="squad", shard_size=2, **kw):
    sources = [SourceSpec(str(messy / "train-en.json"), format=fmt), SourceSpec(str(messy / "dev-en.json"), format=fmt)]
    parallel = [ParallelSpec("es", str(messy / "train-es.json"), format=fmt),
                ParallelSpec("de", str(messy / "train-de.json"), format=fmt)]  # fmt: skip
    kw.setdefault("on_error", "skip")
    return CollectStage(sources, out, parallel=parallel, shard_size=shard_size, progress=False, **kw)


def _without_seconds(summary):
    return {path: {k: v for k, v in s.items() if k != "seconds"} for path, s in summary.items()}


# ----------------------------------------------------------------------------- the file itself


def test_entries_round_trip_through_a_record_batch():
    entries = [
        Entry(EXAMPLE, Example("a", "Q?", "P.", "data[0]", "T", ["P"], [0])),
        Entry(EXAMPLE, Example("w", "Q?", "S1 S2", "line 3", "", [], [], ["S1 ", "S2"])),
        Entry(EXAMPLE, Example("x", "Q?", "", "line 4", "", [], [], [])),  # split already, into nothing
        Entry(MATCH, Example("a", "¿Q?", "P.", "data[0].qas[1]", "T", ["P"], [-1]), 1),
        Entry(SKIPPED, Skipped("data[1]", "unanswerable")),
        Entry(REJECT, BadRecord("data[2]", "missing_field", "no 'question'", '{"id": "d"}', "d")),
        Entry(REJECT, BadRecord("line 9", "malformed_json", "bad", "null", None), 0),
    ]
    assert decode(encode(entries)) == entries


def _write(root, shards, fp="fp"):
    writer = IndexWriter(root, fp)
    for n, shard in enumerate(shards):
        writer.add(f"part-{n:05d}", shard)
    writer.commit({"x": {"read": 1}})


def test_removal_leaves_the_committed_index_of_another_run(tmp_path):
    _write(tmp_path, [ResolvedShard(0, [Entry(EXAMPLE, Example("1", "Q?", "P", "data[0]"))], 1)], fp="theirs")
    remove_index(tmp_path, "mine")
    assert (tmp_path / INDEX_FILE).exists() and (tmp_path / INDEX_META).exists()
    remove_index(tmp_path, "theirs")
    assert not (tmp_path / INDEX_FILE).exists() and not (tmp_path / INDEX_META).exists()


def test_each_shard_is_checked_and_read_alone(tmp_path):
    shards = [ResolvedShard(0, [Entry(EXAMPLE, Example(str(i), "Q?", "P" * 50, f"data[{i}]"))], 1) for i in range(3)]
    shards.append(ResolvedShard(None, [Entry(REJECT, BadRecord("data[9]", "unmatched_parallel_id", "d", "{}", "z"), 0)],
                                0))  # fmt: skip
    _write(tmp_path, shards)
    assert InputIndex.load(tmp_path, "another run") is None
    index = InputIndex.load(tmp_path, "fp")
    assert index is not None and index.names() == ["part-00000", "part-00001", "part-00002", "part-00003"]
    assert index.problems(index.names()) == []
    assert [index.read(n) for n in index.names()] == shards
    assert index.summary == {"x": {"read": 1}}
    index.close()

    meta = json.loads((tmp_path / INDEX_META).read_text())
    ref = meta["shards"][1]
    data = bytearray((tmp_path / INDEX_FILE).read_bytes())
    data[ref["offset"] + ref["length"] - 20] ^= 0xFF  # a flipped bit in shard 1's passage bytes
    (tmp_path / INDEX_FILE).write_bytes(bytes(data))
    index = InputIndex.load(tmp_path, "fp")
    assert index is not None
    assert index.problems(["part-00000", "part-00002"]) == []  # what another task reads is still good
    assert index.problems(["part-00001"]) == [f"{INDEX_FILE}: shard part-00001: the bytes do not match their sha256"]
    index.close()

    (tmp_path / INDEX_FILE).write_bytes(bytes(data[:-30]))  # cut short
    assert InputIndex.load(tmp_path, "fp") is None
    (tmp_path / INDEX_META).write_text("{")  # a torn JSON
    assert InputIndex.load(tmp_path, "fp") is None


def test_the_index_file_is_an_arrow_stream(tmp_path):
    """Anyone can open it with pyarrow to see what the array will write."""
    import pyarrow as pa

    _write(tmp_path, [ResolvedShard(0, [Entry(SKIPPED, Skipped("data[0]", "unanswerable"))], 1)] * 2)
    table = pa.ipc.open_stream(pa.memory_map(str(tmp_path / INDEX_FILE))).read_all()
    assert table.num_rows == 2 and table["reason"].to_pylist() == ["unanswerable", "unanswerable"]


# ----------------------------------------------------------------------------- a job array


def test_array_tasks_write_their_shards_without_reading_any_input(messy, tmp_path, tripwire):
    """Before: every task of an array parsed every source and parallel file in full."""
    _stage(messy, tmp_path / "single", fmt=tripwire.name).run()
    reference = tree_digest(tmp_path / "single")
    tripwire.reads.clear()
    first = _stage(messy, tmp_path / "array", fmt=tripwire.name, num_tasks=3, task_index=1).run()
    assert sorted(tripwire.reads) == ["dev-en.json", "train-de.json", "train-en.json", "train-es.json"]
    tripwire.allowed = False  # any read from here on raises
    rest = [_stage(messy, tmp_path / "array", fmt=tripwire.name, num_tasks=3, task_index=i).run() for i in (2, 0)]
    assert [r["input_index"] for r in (first, *rest)] == ["built", "loaded", "loaded"]
    assert [r["finished"] for r in (first, *rest)] == [False, False, True]
    assert tree_digest(tmp_path / "array") == reference
    assert all(_without_seconds(r["sources"]) == _without_seconds(first["sources"]) for r in rest)
    assert not (tmp_path / "array" / INDEX_FILE).exists() and not (tmp_path / "array" / INDEX_META).exists()


@pytest.mark.parametrize(("tasks", "order"), [(2, (1, 0)), (3, (0, 2, 1)), (4, (3, 1, 0, 2)), (9, range(9))])
def test_array_output_is_byte_identical_to_one_task(messy, tmp_path, tasks, order):
    single = _stage(messy, tmp_path / "single").run()
    store = ShardStore.open(tmp_path / "single")
    assert store.validate() == []
    # Every case is in the input and the output: duplicates, bad records, skips, matches, leftovers.
    assert store.manifest["stats"]["rejected"] == {"duplicate_id": 2, "missing_field": 2, "wrong_type": 1,
                                                   "empty_passage": 1, "unmatched_parallel_id": 2}  # fmt: skip
    assert store.manifest["stats"]["skipped"] == {"unanswerable": 1}
    assert store.manifest["totals"]["rows_by_lang"] == {"de": 1, "en": 7, "es": 2}
    results = [_stage(messy, tmp_path / "array", num_tasks=tasks, task_index=i).run() for i in order]
    assert results[-1]["finished"] and not results[0]["finished"]  # 9 tasks: some have no shard of the 7
    assert tree_digest(tmp_path / "array") == tree_digest(tmp_path / "single")
    assert _without_seconds(results[0]["sources"]) == _without_seconds(single["sources"])


def test_every_fixture_format_through_the_index(tmp_path):
    """Formats with their own sentences (WikiQA), question-only rows, directories (MS MARCO), NQ."""
    sources = [SourceSpec(str(FIX / name)) for name in ("squad_v2.json", "WikiQA-dev.tsv", "msmarco",
                                                        "nq_simplified.jsonl", "nq_open.jsonl")]  # fmt: skip
    CollectStage(sources, tmp_path / "single", shard_size=1, progress=False).run()
    for i in (1, 0):
        CollectStage(sources, tmp_path / "array", shard_size=1, num_tasks=2, task_index=i, progress=False).run()
    assert tree_digest(tmp_path / "array") == tree_digest(tmp_path / "single")


def test_a_changed_input_is_never_served_from_the_index(messy, tmp_path):
    """The inputs' sha256 are the run's fingerprint: a task that sees other input bytes does not use the index."""
    _stage(messy, tmp_path / "array", num_tasks=2, task_index=0).run()
    assert (tmp_path / "array" / INDEX_META).is_file()
    en = messy / "train-en.json"
    en.write_text(en.read_text().replace("Where is Paris?", "Where is Lyon?"))
    with pytest.raises(Exception, match="different run"):  # shards of the old input are done: refused
        _stage(messy, tmp_path / "array", num_tasks=2, task_index=1).run()
    # With --overwrite the directory (index included) is cleared and the array starts again.
    for i in (1, 0):
        _stage(messy, tmp_path / "array", num_tasks=2, task_index=i, overwrite=i == 1).run()
    _stage(messy, tmp_path / "single").run()
    assert tree_digest(tmp_path / "array") == tree_digest(tmp_path / "single")
    assert "Where is Lyon?" in ShardStore.open(tmp_path / "array").table()["question"].to_pylist()


def test_an_index_of_another_run_is_rebuilt_not_used(messy, tmp_path, tripwire):
    # Another configuration of the same inputs.
    _stage(messy, tmp_path / "other", fmt=tripwire.name, shard_size=3, num_tasks=2, task_index=0).run()
    out = tmp_path / "array"
    _stage(messy, out, fmt=tripwire.name, num_tasks=2, task_index=0).run()
    for name in (INDEX_FILE, INDEX_META):  # a stale index where this run's was
        (out / name).write_bytes((tmp_path / "other" / name).read_bytes())
    tripwire.reads.clear()
    result = _stage(messy, out, fmt=tripwire.name, num_tasks=2, task_index=1).run()
    assert result["input_index"] == "built" and len(tripwire.reads) == 4 and result["finished"]
    _stage(messy, tmp_path / "single", fmt=tripwire.name).run()
    assert tree_digest(out) == tree_digest(tmp_path / "single")


def test_a_damaged_index_is_rebuilt(messy, tmp_path, capsys):
    out = tmp_path / "array"
    _stage(messy, out, num_tasks=2, task_index=0).run()
    meta = json.loads((out / INDEX_META).read_text())
    ref = next(r for r in meta["shards"] if r["name"] == "part-00001")  # task 1's
    data = bytearray((out / INDEX_FILE).read_bytes())
    data[ref["offset"] + ref["length"] // 2] ^= 0x01
    (out / INDEX_FILE).write_bytes(bytes(data))
    result = _stage(messy, out, num_tasks=2, task_index=1).run()
    assert result["input_index"] == "rebuilt" and result["finished"]
    assert "the input index is damaged" in capsys.readouterr().err
    _stage(messy, tmp_path / "single").run()
    assert tree_digest(out) == tree_digest(tmp_path / "single")


def test_an_interrupted_array_resumes_from_the_index(messy, tmp_path, tripwire):
    out = tmp_path / "array"
    _stage(messy, out, fmt=tripwire.name, num_tasks=2, task_index=0).run()
    # Task 0 died while writing part-00002: data written, no marker.
    (out / "_done" / "part-00002.json").unlink()
    tripwire.allowed = False
    assert not _stage(messy, out, fmt=tripwire.name, num_tasks=2, task_index=1).run()["finished"]
    # Rerun as one task (say the array's time ran out): it finds the index and still reads nothing.
    result = _stage(messy, out, fmt=tripwire.name).run()
    assert result["input_index"] == "loaded" and result["shards_done_now"] == 1 and result["finished"]
    tripwire.allowed = True
    _stage(messy, tmp_path / "single", fmt=tripwire.name).run()
    assert tree_digest(out) == tree_digest(tmp_path / "single")


def test_on_error_fail_stops_every_task_with_the_record_and_leaves_no_index(messy, tmp_path):
    out = tmp_path / "array"
    for i in (1, 0):
        with pytest.raises(InputError) as err:
            _stage(messy, out, on_error="fail", num_tasks=2, task_index=i).run()
        message = str(err.value)
        assert str(messy / "train-es.json") in message and "duplicate id" in message and "qas[3]" in message
    assert sorted(p.name for p in out.iterdir() if p.name.startswith(("_collect", "._collect"))) == [
        "_collect_index.lock"]  # fmt: skip
    assert not list((out / "_done").glob("*.json"))


def test_concurrent_array_tasks_index_the_inputs_once(squad_dir, tmp_path):
    base = [sys.executable, "-m", "mt_qa.cli", "collect", "-q", str(squad_dir / "dev-v1.1.en.json.gz"),
            "--parallel", f"es={squad_dir / 'dev-v1.1.es.json.gz'}", "--shard-size", "1000"]  # fmt: skip
    procs = [subprocess.Popen([*base, "-o", str(tmp_path / "arr"), "--num-shards", "3", "--shard-index", str(i)],
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True) for i in range(3)]
    errs = [p.communicate(timeout=600)[1] for p in procs]
    assert [p.returncode for p in procs] == [0, 0, 0], errs
    assert sorted("built" in e for e in errs) == [False, False, True], errs
    assert sum("loaded" in e for e in errs) == 2, errs
    assert main([*base[3:], "-o", str(tmp_path / "one")]) == 0
    assert tree_digest(tmp_path / "arr") == tree_digest(tmp_path / "one")


@pytest.mark.parametrize("fmt", ["squad", "jsonl"])
@pytest.mark.parametrize("tasks", [1, 2])
def test_an_offset_no_row_can_hold_is_an_error_naming_the_record(tmp_path, fmt, tasks):
    if fmt == "squad":
        path = tmp_path / "big.json"
        path.write_text(json.dumps(_doc([("Paris is big.", [_qa("a"), _qa("b", start=2**70)])])))
        where = r"big\.json: data\[0\]\.paragraphs\[0\]\.qas\[1\]"
    else:
        path = tmp_path / "big.jsonl"
        rows = [
            {"id": qid, "question": "Q?", "context": "Paris.", "answers": {"text": ["Paris"], "answer_start": [start]}}
            for qid, start in (("a", 0), ("b", 2**70))
        ]
        path.write_text("".join(json.dumps(r) + "\n" for r in rows))
        where = r"big\.jsonl: line 2"
    for i in range(tasks):
        with pytest.raises(InputError, match=where + r".*answer_start.*does not fit a 64-bit integer"):
            CollectStage([SourceSpec(str(path), format=fmt)], tmp_path / "out", num_tasks=tasks, task_index=i,
                         progress=False).run()  # fmt: skip
