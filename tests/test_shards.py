"""The shard store: atomic shards, markers, resume, deterministic manifests, validation."""

from __future__ import annotations

import json

import pyarrow as pa
import pytest

from mt_qa.errors import ShardStoreError
from mt_qa.records import QA_SCHEMA, RecordError, qa_record
from mt_qa.shards import ShardStore, merge_stats, read_arrow, task_shards


def rows(n, lang="en", prefix="q"):
    code = {"en": "eng_Latn", "de": "deu_Latn"}[lang]
    return [
        qa_record(dataset="d", split="train", source_id=f"{prefix}{i}", lang=lang, lang_code=code,
                  question=f"question {i}?", passage=f"passage {i}.", passage_sentences=[f"passage {i}."])
        for i in range(n)
    ]  # fmt: skip


def write_store(root, params=None):
    store = ShardStore(root, "test", QA_SCHEMA)
    store.begin(params or {"p": 1}, [{"path": "x", "sha256": "0"}])
    for i, name in enumerate(["part-00000", "part-00001"]):
        w = store.writer(name)
        w.add(rows(3, prefix=f"s{i}_") + rows(2, "de", prefix=f"s{i}_"))
        w.reject(source="x", location=f"line {i}", reason="too_short", detail="demo", payload={"i": i})
        w.count("seen", 5)
        w.commit()
    return store, store.finalize(expected=["part-00000", "part-00001"])


def test_write_finalize_and_read(tmp_path):
    store, manifest = write_store(tmp_path / "s")
    assert manifest["totals"]["rows_by_lang"] == {"de": 4, "en": 6}
    assert manifest["totals"]["rejects"] == 2
    assert manifest["stats"] == {"seen": 10, "rejected": {"too_short": 2}}
    opened = ShardStore.open(tmp_path / "s")
    assert opened.languages() == ["de", "en"]
    assert opened.table(lang="de").num_rows == 4
    assert [n for n, _ in opened.iter_tables()] == ["part-00000", "part-00001"]
    assert opened.rejects()["reason"].to_pylist() == ["too_short", "too_short"]
    assert opened.validate() == []
    assert (tmp_path / "s" / "data" / "en" / "part-00001.arrow").is_file()


def test_manifest_is_byte_identical_across_runs(tmp_path):
    write_store(tmp_path / "a")
    write_store(tmp_path / "b")
    assert (tmp_path / "a" / "manifest.json").read_bytes() == (tmp_path / "b" / "manifest.json").read_bytes()


def test_finalize_waits_for_every_expected_shard(tmp_path):
    store = ShardStore(tmp_path / "s", "test", QA_SCHEMA)
    store.begin({}, [])
    w = store.writer("part-00000")
    w.add(rows(1))
    w.commit()
    assert store.finalize(expected=["part-00000", "part-00001"]) is None
    assert not (tmp_path / "s" / "manifest.json").exists()


def test_invalid_rows_are_not_committed(tmp_path):
    store = ShardStore(tmp_path / "s", "test", QA_SCHEMA)
    store.begin({}, [])
    w = store.writer("part-00000")
    w.add(rows(2) + rows(1))  # q0 twice
    with pytest.raises(RecordError, match="duplicate ids"):
        w.commit()
    assert not store.is_done("part-00000")


def test_begin_refuses_other_params_after_work_done(tmp_path):
    write_store(tmp_path / "s")
    with pytest.raises(ShardStoreError, match="different run"):
        ShardStore(tmp_path / "s", "test", QA_SCHEMA).begin({"p": 2}, [])
    fresh = ShardStore(tmp_path / "s", "test", QA_SCHEMA)
    fresh.begin({"p": 2}, [], overwrite=True)
    assert fresh.done_shards() == {}


def test_begin_refuses_a_foreign_directory(tmp_path):
    (tmp_path / "s").mkdir()
    (tmp_path / "s" / "notes.txt").write_text("mine")
    with pytest.raises(ShardStoreError, match="not an mtqa shard directory"):
        ShardStore(tmp_path / "s", "test", QA_SCHEMA).begin({}, [])


@pytest.mark.parametrize("damage", ["flip_byte", "delete", "extra_file", "manifest_rows"])
def test_validate_finds_damage(tmp_path, damage):
    write_store(tmp_path / "s")
    path = tmp_path / "s" / "data" / "en" / "part-00000.arrow"
    if damage == "flip_byte":
        data = bytearray(path.read_bytes())
        data[-20] ^= 0xFF
        path.write_bytes(bytes(data))
        expected = "does not match manifest"
    elif damage == "delete":
        path.unlink()
        expected = "missing"
    elif damage == "extra_file":
        (tmp_path / "s" / "data" / "en" / "part-00009.arrow").write_bytes(path.read_bytes())
        expected = "not listed in the manifest"
    else:
        manifest = json.loads((tmp_path / "s" / "manifest.json").read_text())
        manifest["shards"]["part-00000"]["files"]["data/en/part-00000.arrow"]["rows"] = 99
        (tmp_path / "s" / "manifest.json").write_text(json.dumps(manifest))
        expected = "manifest says 99"
    problems = ShardStore.open(tmp_path / "s", check=False).validate()
    assert any(expected in p for p in problems), problems


def test_validate_finds_duplicate_ids_across_shards(tmp_path):
    store = ShardStore(tmp_path / "s", "test", QA_SCHEMA)
    store.begin({}, [])
    for name in ("part-00000", "part-00001"):
        w = store.writer(name)
        w.add(rows(1))
        w.commit()
    store.finalize()
    assert any("duplicate ids across shards" in p for p in ShardStore.open(tmp_path / "s").validate())


def test_open_unfinished_or_missing(tmp_path):
    with pytest.raises(ShardStoreError, match="no manifest.json"):
        ShardStore.open(tmp_path)
    store = ShardStore(tmp_path / "s", "test", QA_SCHEMA)
    store.begin({}, [])
    with pytest.raises(ShardStoreError, match="did not finish"):
        ShardStore.open(tmp_path / "s")


def test_files_are_memory_mapped_arrow_streams(tmp_path):
    write_store(tmp_path / "s")
    path = tmp_path / "s" / "data" / "en" / "part-00000.arrow"
    table = read_arrow(path)
    assert table.schema.equals(QA_SCHEMA, check_metadata=False) and table.num_rows == 3
    with pa.memory_map(str(path)) as source:
        assert pa.ipc.open_stream(source).read_all().num_rows == 3


def test_task_shards_partition_the_work():
    names = [f"part-{i:05d}" for i in range(7)]
    parts = [task_shards(names, 3, i) for i in range(3)]
    assert sorted(sum(parts, [])) == names and parts[0] == ["part-00000", "part-00003", "part-00006"]
    with pytest.raises(ShardStoreError):
        task_shards(names, 3, 3)


def test_merge_stats_adds_nested_counters():
    assert merge_stats({"a": 1, "b": {"c": 2}}, {"a": 2, "b": {"c": 1, "d": 4}}) == {"a": 3, "b": {"c": 3, "d": 4}}


def test_redoing_a_shard_removes_its_abandoned_temp_files(tmp_path):
    store = ShardStore(tmp_path / "s", "test", QA_SCHEMA)
    store.begin({}, [])
    litter = [
        tmp_path / "s" / "data" / "en" / ".part-00000.arrow.abc123.tmp",
        tmp_path / "s" / "_done" / ".part-00000.json.xyz.tmp",
    ]
    other = tmp_path / "s" / "_done" / ".part-00001.json.keep.tmp"  # another task's write in flight
    for path in [*litter, other]:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"partial")
    w = store.writer("part-00000")
    w.add(rows(1))
    w.commit()
    assert not any(p.exists() for p in litter) and other.exists()


# ----------------------------------------------------------------------------- inputs checked as read


def _edit_letters(path, old: bytes, new: bytes) -> None:
    data = path.read_bytes()
    assert old in data
    path.write_bytes(data.replace(old, new, 1))


def test_a_changed_data_file_is_refused_when_read(tmp_path):
    write_store(tmp_path / "s")
    path = tmp_path / "s" / "data" / "en" / "part-00000.arrow"
    _edit_letters(path, b"passage 1.", b"PASSAGE 1.")  # same length: a valid Arrow file with other text
    store = ShardStore.open(tmp_path / "s")  # the listing is fine ...
    with pytest.raises(ShardStoreError, match="part-00000.arrow: sha256 .* does not match"):
        store.table()  # ... but the file is checked before a row of it is used
    with pytest.raises(ShardStoreError, match="does not match"):
        list(store.iter_tables())


def test_a_shard_missing_from_the_manifest_is_refused(tmp_path):
    write_store(tmp_path / "s")
    manifest = json.loads((tmp_path / "s" / "manifest.json").read_text())
    del manifest["shards"]["part-00001"]
    (tmp_path / "s" / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(ShardStoreError, match="not listed in the manifest"):
        ShardStore.open(tmp_path / "s")


def test_a_listed_file_that_is_gone_is_refused(tmp_path):
    write_store(tmp_path / "s")
    (tmp_path / "s" / "data" / "de" / "part-00001.arrow").unlink()
    with pytest.raises(ShardStoreError, match="missing"):
        ShardStore.open(tmp_path / "s")


@pytest.mark.parametrize("edit", ["no_shards", "files_not_object", "rows_not_int", "not_object", "path_escapes"])
def test_an_edited_manifest_is_a_store_error_not_a_crash(tmp_path, edit):
    write_store(tmp_path / "s")
    path = tmp_path / "s" / "manifest.json"
    manifest = json.loads(path.read_text())
    files = manifest["shards"]["part-00000"]["files"]
    if edit == "no_shards":
        del manifest["shards"]
    elif edit == "files_not_object":
        manifest["shards"]["part-00000"]["files"] = []
    elif edit == "rows_not_int":
        files["data/en/part-00000.arrow"]["rows"] = "3"
    elif edit == "not_object":
        manifest = [manifest]
    else:
        files["../../etc/passwd"] = files.pop("data/en/part-00000.arrow")
    path.write_text(json.dumps(manifest))
    with pytest.raises(ShardStoreError):
        ShardStore.open(tmp_path / "s")


def test_a_file_with_a_matching_checksum_but_broken_arrow_is_a_store_error(tmp_path):
    write_store(tmp_path / "s")
    path = tmp_path / "s" / "data" / "en" / "part-00000.arrow"
    path.write_bytes(b"not arrow at all")
    manifest = json.loads((tmp_path / "s" / "manifest.json").read_text())
    from mt_qa.io import sha256_file

    manifest["shards"]["part-00000"]["files"]["data/en/part-00000.arrow"]["sha256"] = sha256_file(path)
    (tmp_path / "s" / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(ShardStoreError, match="unreadable Arrow stream"):
        ShardStore.open(tmp_path / "s").table()
