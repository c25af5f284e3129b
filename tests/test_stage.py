"""The one sharded-stage driver: task slots, ownership, resume, job arrays, the shared plan."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import pytest

from mt_qa.errors import ShardStoreError
from mt_qa.records import qa_record
from mt_qa.shards import ShardStore, ShardWriter, shard_name
from mt_qa.stage import STAGE_CLASSES, ShardedStage, TaskSlot, is_sharded, stage_class
from tests.helpers import tree_digest


class Numbers(ShardedStage):
    """A stage of its own: shard i holds rows i*10 .. i*10+9; records what the driver asked."""

    name = "collect"
    from mt_qa.records import QA_SCHEMA as schema

    def __init__(self, out: Path, shards: int = 5, **kw: Any):
        super().__init__(out, **kw)
        self.shards = shards
        self.prepared: list[list[str]] = []
        self.written: list[str] = []

    def params(self) -> dict[str, Any]:
        return {"shards": self.shards}

    def inputs(self) -> list[dict[str, Any]]:
        return []

    def shard_names(self) -> list[str]:
        return [shard_name(i) for i in range(self.shards)]

    def prepare(self, todo: list[str]) -> None:
        self.prepared.append(list(todo))

    def write_shard(self, name: str, writer: ShardWriter, bar: Any) -> None:
        self.written.append(name)
        first = int(name.split("-")[1]) * 10
        writer.add([qa_record(dataset="n", split="train", source_id=str(i), lang="en", lang_code="eng_Latn",
                              question=f"q{i}", passage=f"p{i}.", passage_sentences=[f"p{i}."])
                    for i in range(first, first + 10)])
        writer.count("rows", 10)
        bar.update(1)


class Streamed(Numbers):
    """The same shards, found while 'reading' (collect's way): ownership decided as they come."""

    def shard_names(self) -> None:
        return None

    def stream(self, bar: Any):
        self.skipped: list[str] = []
        yield from (shard_name(i) for i in range(self.shards))

    def skip_shard(self, name: str) -> None:
        self.skipped.append(name)


def test_task_slot_is_checked_once_and_owns_round_robin():
    assert TaskSlot(3, 1).pick(range(7)) == [1, 4]
    assert [TaskSlot(3, i).owns(5) for i in range(3)] == [False, False, True]
    with pytest.raises(ShardStoreError, match=r"--shard-index 3 must be in 0\.\.2"):
        TaskSlot(3, 3)
    with pytest.raises(ShardStoreError, match="--num-shards 0"):
        TaskSlot(0, 0)


@pytest.mark.parametrize("kind", [Numbers, Streamed])
def test_array_tasks_write_what_one_task_writes_and_resume_skips_done_shards(kind, tmp_path: Path):
    one = kind(tmp_path / "one", progress=False)
    result = one.run()
    assert result["finished"] and result["shards"] == 5
    # prepared once, with the work: every shard, or (streamed) the first as it is found
    assert one.prepared == ([["part-00000"]] if kind is Streamed else [[shard_name(i) for i in range(5)]])
    tasks = [kind(tmp_path / "arr", num_tasks=2, task_index=i, progress=False) for i in (1, 0)]
    results = [t.run() for t in tasks]
    assert tasks[0].written == ["part-00001", "part-00003"] and tasks[1].written == ["part-00000", "part-00002",
                                                                                      "part-00004"]
    assert [r["finished"] for r in results] == [False, True]
    assert tree_digest(tmp_path / "one") == tree_digest(tmp_path / "arr")
    (tmp_path / "one" / "_done" / "part-00002.json").unlink()
    again = kind(tmp_path / "one", progress=False)
    assert again.run()["shards_done_now"] == 1 and again.written == ["part-00002"]
    assert tree_digest(tmp_path / "one") == tree_digest(tmp_path / "arr")
    done = kind(tmp_path / "one", progress=False)
    assert done.run()["shards_done_now"] == 0 and done.written == [] and done.prepared == []
    if kind is Streamed:
        assert done.skipped == [shard_name(i) for i in range(5)]


def test_a_plan_shared_by_concurrent_tasks_is_built_once(tmp_path: Path):
    stage = Numbers(tmp_path / "out", progress=False)
    stage.store.root.mkdir()
    built: list[int] = []
    plan = tmp_path / "out" / "plan.txt"

    def build() -> str:
        if plan.is_file():
            return plan.read_text()
        built.append(1)
        threading.Event().wait(0.2)  # a slow scan: the others arrive meanwhile
        plan.write_text("the plan")
        return "the plan"

    got: list[str] = []
    threads = [threading.Thread(target=lambda: got.append(Numbers(tmp_path / "out").shared_plan("p.lock", build)))
               for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert got == ["the plan"] * 3 and built == [1]


def test_sharded_is_what_each_stage_class_says():
    assert {name: is_sharded(name) for name in STAGE_CLASSES} == {
        "collect": True, "translate": True, "filter": True, "build-batches": False}
    assert not is_sharded("evaluate lareqa") and not is_sharded("train") and stage_class("train") is None
    assert all(stage_class(name).name == name for name in STAGE_CLASSES)


def test_run_reads_sharding_from_the_stage(tmp_path: Path):
    from mt_qa.run.config import load_pipeline

    path = tmp_path / "p.yaml"
    path.write_text("name: p\nsteps:\n"
                    "  - {name: c, stage: collect, args: [x.json]}\n"
                    "  - {name: b, stage: build-batches, args: ['${steps.c}']}\n"
                    "  - {name: f, stage: filter, args: ['${steps.c}'], sharded: false}\n")
    pipe = load_pipeline(path)
    assert [s.sharded for s in pipe.steps] == [True, False, False]


def test_the_store_is_the_drivers(tmp_path: Path):
    stage = Numbers(tmp_path / "o", progress=False)
    stage.run()
    assert ShardStore.open(tmp_path / "o").manifest["stats"]["rows"] == 50
