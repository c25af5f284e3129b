from __future__ import annotations

import json
from pathlib import Path

import pytest

from mt_qa.errors import InputError, MtqaError
from mt_qa.filter.stage import PLAN_FILE, FilterConfig, FilterStage, candidate_languages
from mt_qa.io import sha256_file
from mt_qa.shards import ShardStore
from tests.filter.corpus import TEXTS, group, row, write_store

FAST = FilterConfig(detector="fasttext")


def run(src: Path, out: Path, config: FilterConfig = FAST, **kw) -> dict:
    return FilterStage(src, out, config, progress=False, **kw).run()


def kept_ids(out: Path) -> set[str]:
    return set(ShardStore.open(out).table(columns=["id"])["id"].to_pylist())


def rejects(out: Path) -> dict[str, dict]:
    return {r["record_id"]: r for r in ShardStore.open(out).rejects().to_pylist()}


def checksums(root: Path) -> dict[str, str]:
    """Every file a finished run leaves (the dedup plan included), by content."""
    return {p.relative_to(root).as_posix(): sha256_file(p) for p in sorted(root.rglob("*")) if p.is_file()}


def es_de(topic: str, **overrides: tuple[str, str]) -> list[dict]:
    return group(topic, source_id=topic, langs=("en", "es", "de"), **overrides)


@pytest.fixture()
def mixed(make_store) -> Path:
    """Two shards: clean groups, broken translations, a broken source, and duplicates."""
    shard0 = (
        es_de("amazon")
        + es_de("wall", es=TEXTS["wall"]["en"])  # untranslated Spanish row
        + es_de("photo", de=TEXTS["photo"]["es"])  # Spanish text in the German row
    )
    shard1 = (
        group("amazon", source_id="amazon-again", langs=("en", "es"))  # exact duplicates of shard 0's group
        + [row("wall-bad-source", "en", "Where were the fortifications built?",
               TEXTS["wall"]["de"][1]),  # a German passage in the English source
           row("wall-bad-source", "es", "¿Dónde se construyeron las fortificaciones?", TEXTS["wall"]["es"][1]),
           row("loop", "en", "Where does most of the oxygen in the air come from?", TEXTS["photo"]["en"][1]),
           row("loop", "es", "¿De dónde procede la mayor parte del oxígeno del aire?",
               TEXTS["photo"]["es"][1] + " el gas el gas el gas el gas")]
    )
    return make_store([shard0, shard1])


def test_filter_end_to_end(mixed: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    result = run(mixed, out)
    assert result["finished"]
    got = rejects(out)
    reasons = {rid: r["reason"] for rid, r in got.items()}
    assert reasons == {
        "demo/dev/wall/es": "copied_source",
        "demo/dev/photo/de": "langid_passage",
        "demo/dev/amazon-again/en": "duplicate_exact",
        "demo/dev/amazon-again/es": "duplicate_exact",
        "demo/dev/wall-bad-source/en": "langid_passage",
        "demo/dev/wall-bad-source/es": "group_source_rejected",
        "demo/dev/loop/es": "repetition_loop",
    }
    assert kept_ids(out) == {
        "demo/dev/amazon/en", "demo/dev/amazon/es", "demo/dev/amazon/de",
        "demo/dev/wall/en", "demo/dev/wall/de", "demo/dev/photo/en", "demo/dev/photo/es", "demo/dev/loop/en",
    }
    # Every reject says where it came from, why, with the filter's score and the row itself.
    dup = got["demo/dev/amazon-again/en"]
    assert dup["stage"] == "filter" and dup["score"] == 1.0 and "demo/dev/amazon/en" in dup["detail"]
    assert dup["location"].startswith("data/en/part-00001.arrow: row ")
    assert json.loads(dup["payload"])["question"] == TEXTS["amazon"]["en"][0]
    assert got["demo/dev/photo/de"]["score"] < 0.5
    assert "demo/dev/wall-bad-source/en" in got["demo/dev/wall-bad-source/es"]["detail"]
    # Output shards mirror input shards; stats per reason and language are in the manifest.
    store = ShardStore.open(out)
    assert store.shard_names() == ["part-00000", "part-00001"]
    assert store.validate() == []
    stats = store.manifest["stats"]
    assert stats["rejected"]["duplicate_exact"] == 2
    assert stats["rejected_by_lang"]["es"] == {"copied_source": 1, "duplicate_exact": 1,
                                               "group_source_rejected": 1, "repetition_loop": 1}
    assert stats["rows_in"] == {"en": 6, "es": 6, "de": 3} and stats["rows_out"] == {"en": 4, "es": 2, "de": 2}
    assert store.manifest["params"]["checks"]["langid"]["detector"]["name"] == "fasttext"


def test_group_policy_keeps_groups_consistent(collected_squad: Path, tmp_path: Path) -> None:
    """On real data: no kept translation lost its source; every source reject took its group."""
    out = tmp_path / "out"
    run(collected_squad, out, FilterConfig(detector="fasttext", skip=("repetition", "length", "copy")))
    kept = ShardStore.open(out).table(columns=["group_id", "origin", "lang"])
    sources = {g for g, o in zip(kept["group_id"].to_pylist(), kept["origin"].to_pylist(), strict=True)
               if o == "source"}
    assert all(g in sources for g in kept["group_id"].to_pylist())
    got = ShardStore.open(out).rejects().to_pylist()
    rejected_sources = {r["record_id"].rsplit("/", 1)[0] for r in got if r["record_id"].endswith("/en")}
    followers = [r for r in got if r["reason"] == "group_source_rejected"]
    assert followers and all(r["record_id"].rsplit("/", 1)[0] in rejected_sources for r in followers)
    n_in = ShardStore.open(collected_squad).manifest["totals"]["rows"]
    assert ShardStore.open(out).manifest["totals"]["rows"] > 0.98 * n_in


def test_deterministic(mixed: Path, tmp_path: Path) -> None:
    run(mixed, tmp_path / "a")
    run(mixed, tmp_path / "b")
    assert checksums(tmp_path / "a") == checksums(tmp_path / "b")


def test_array_tasks_equal_one_run(mixed: Path, tmp_path: Path) -> None:
    run(mixed, tmp_path / "one")
    first = run(mixed, tmp_path / "tasks", num_tasks=2, task_index=1)
    assert not first["finished"] and first["manifest"] is None
    assert not (tmp_path / "tasks" / "manifest.json").exists()
    second = run(mixed, tmp_path / "tasks", num_tasks=2, task_index=0)
    assert second["finished"]
    assert checksums(tmp_path / "one") == checksums(tmp_path / "tasks")


def test_worker_processes_equal_one_process(mixed: Path, tmp_path: Path) -> None:
    run(mixed, tmp_path / "one")
    result = run(mixed, tmp_path / "pool", workers=2)
    assert result["finished"] and result["timings"]["langid"] > 0
    assert checksums(tmp_path / "one") == checksums(tmp_path / "pool")


def test_resume_redoes_only_unfinished_shards(mixed: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    run(mixed, out)
    before = checksums(out)
    # An interrupted run: shard 1's marker never got written, its files half there.
    (out / "_done" / "part-00001.json").unlink()
    (out / "manifest.json").unlink()
    (out / "rejects" / "part-00001.arrow").write_bytes(b"partial")
    again = run(mixed, out)
    assert again["shards_done_now"] == 1
    assert "dedup_scan" not in again["timings"]  # the saved plan was reused
    assert checksums(out) == before
    assert run(mixed, out)["shards_done_now"] == 0


def test_other_params_need_overwrite(mixed: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    run(mixed, out)
    other = FilterConfig(detector="fasttext", max_copy=0.5)
    with pytest.raises(MtqaError, match="different run"):
        run(mixed, out, other)
    run(mixed, out, other, overwrite=True)
    assert ShardStore.open(out).manifest["params"]["max_copy"] == 0.5


def test_no_dedup_and_skip(mixed: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    run(mixed, out, FilterConfig(detector="fasttext", dedup=False, skip=("langid", "copy")))
    reasons = {r["reason"] for r in rejects(out).values()}
    assert reasons == {"repetition_loop"}
    assert not (out / PLAN_FILE).exists()


def test_near_dup_threshold_applies(make_store, tmp_path: Path) -> None:
    src = make_store([[row("a", "en", "What are the three sources of European Union law?", TEXTS["wall"]["en"][1]),
                       row("b", "en", "What are the three main sources of European Union law?",
                           TEXTS["photo"]["en"][1])]])
    strict, loose = tmp_path / "strict", tmp_path / "loose"
    run(src, strict, FilterConfig(detector="fasttext"))
    run(src, loose, FilterConfig(detector="fasttext", near_dup_threshold=0.7))
    assert rejects(strict) == {}
    assert rejects(loose)["demo/dev/b/en"]["reason"] == "duplicate_near"


def test_combined_detector_and_chinese_russian_rows(make_store, tmp_path: Path) -> None:
    rows = group("wall", langs=("en", "ru", "zh"), ru=TEXTS["wall"]["es"]) + group("photo", langs=("en", "ru", "zh"))
    out = tmp_path / "out"
    run(make_store([rows]), out, FilterConfig())
    assert {rid: r["reason"] for rid, r in rejects(out).items()} == {"demo/dev/wall/ru": "script_mismatch"}
    assert ShardStore.open(out).manifest["params"]["checks"]["langid"]["detector"]["name"] == "fasttext+py3langid"


def test_groups_across_shards_are_refused(make_store, tmp_path: Path) -> None:
    src = make_store([group("amazon", langs=("en",)), group("amazon", langs=("es",))])
    with pytest.raises(InputError, match="rows in shards part-00000 and part-00001"):
        run(src, tmp_path / "out")


def test_empty_passage_and_orphans_are_counted(make_store, tmp_path: Path) -> None:
    src = make_store([[row("a", "en", TEXTS["wall"]["en"][0], ""), row("b", "es", *TEXTS["wall"]["es"])]])
    out = tmp_path / "out"
    run(src, out)
    assert rejects(out)["demo/dev/a/en"]["reason"] == "empty_passage"
    assert ShardStore.open(out).manifest["stats"]["no_source_row"] == {"es": 1}


@pytest.mark.parametrize(("config", "message"), [
    (FilterConfig(min_confidence=1.5), "--min-confidence must be in"),
    (FilterConfig(near_dup_threshold=0.0), "--near-dup-threshold must be in"),
    (FilterConfig(min_length_ratio=2.0, max_length_ratio=1.0), "--min-length-ratio"),
    (FilterConfig(max_loop=0), "--max-loop"),
    (FilterConfig(skip=("nonsense",)), "unknown check"),
    (FilterConfig(detector="cld9"), "--detector 'cld9'"),
    (FilterConfig(detector="fasttext+cld9"), "--detector"),
    (FilterConfig(), "--workers must be at least 1"),
])
def test_bad_options(config: FilterConfig, message: str, tmp_path: Path) -> None:
    with pytest.raises(MtqaError, match=message):
        FilterStage(tmp_path, tmp_path / "out", config, workers=0 if "workers" in message else 1)


def test_bad_inputs(mixed: Path, tmp_path: Path) -> None:
    with pytest.raises(MtqaError, match="not a finished mtqa shard directory"):
        run(tmp_path / "missing", tmp_path / "out")
    with pytest.raises(MtqaError, match="must differ"):
        run(mixed, mixed)
    batch_dir = tmp_path / "batches"
    from mt_qa.records import BATCH_SCHEMA
    store = ShardStore(batch_dir, "build-batches", BATCH_SCHEMA)
    store.begin({}, [])
    store.writer("part-00000").commit()
    store.finalize()
    with pytest.raises(MtqaError, match="filter reads QA shards"):
        run(batch_dir, tmp_path / "out")


def test_unsupported_language_is_a_clear_error(make_store, tmp_path: Path) -> None:
    src = make_store([[row("a", "qq", "Qxq qxq?", "Qxq qxq qxq.")]])
    with pytest.raises(MtqaError, match="cannot identify qq"):
        run(src, tmp_path / "out", FilterConfig(detector="py3langid"))


def test_candidate_languages() -> None:
    assert candidate_languages("all", ["en"]) is None
    default = candidate_languages("default", ["en", "zh-Hant", "arz", "sw"])
    assert "zh" in default and "ar" in default and "zh-Hant" not in default and "fr" in default
    assert candidate_languages("es, pt-BR", ["en"]) == ["en", "es", "pt"]
    with pytest.raises(MtqaError):
        candidate_languages(" , ", ["en"])


def test_written_store_is_readable_input(mixed: Path, tmp_path: Path) -> None:
    """Filter output is a QA store a second filter (or build-batches) can read."""
    run(mixed, tmp_path / "once")
    run(tmp_path / "once", tmp_path / "twice")
    assert kept_ids(tmp_path / "once") == kept_ids(tmp_path / "twice")


def test_write_store_helper_roundtrip(tmp_path: Path) -> None:
    root = write_store(tmp_path / "s", [group("amazon")])
    assert ShardStore.open(root).manifest["totals"]["rows"] == 3
