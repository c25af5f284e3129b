"""Pipeline YAML: references, overrides, validation errors that name the problem."""

from __future__ import annotations

from pathlib import Path

import pytest

from mt_qa.run.config import PipelineError, load_pipeline, option_args

BASE = """
name: demo
run_dir: {run_dir}
vars: {{data: /data}}
steps:
  - name: collect
    stage: collect
    args: ["${{vars.data}}/en.json"]
    options: {{parallel: ["es=${{vars.data}}/es.json"], shard-size: 10}}
  - name: clean
    stage: filter
    args: ["${{steps.collect}}"]
    options: {{no-dedup: true, detector: null}}
  - name: eval
    stage: evaluate lareqa
    out: false
    options: {{data: "${{env.MTQA_TEST_DATA}}"}}
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "p.yaml"
    path.write_text(text)
    return path


def test_references_and_dependencies(tmp_path, monkeypatch):
    monkeypatch.setenv("MTQA_TEST_DATA", "/bench")
    pipe = load_pipeline(write(tmp_path, BASE.format(run_dir=tmp_path / "run")))
    collect, clean, ev = pipe.steps
    assert collect.args == ["/data/en.json"] and collect.sharded and collect.depends == []
    assert clean.args == [str(tmp_path / "run" / "collect")] and clean.depends == ["collect"]
    assert ev.command == ["evaluate", "lareqa"] and ev.out_option is None and not ev.sharded
    assert option_args(clean.options) == ["--no-dedup"]
    assert option_args(collect.options) == ["--parallel", "es=/data/es.json", "--shard-size", "10"]
    assert ev.options == {"data": "/bench"}


def test_overrides_address_steps_by_name(tmp_path, monkeypatch):
    monkeypatch.setenv("MTQA_TEST_DATA", "/bench")
    path = write(tmp_path, BASE.format(run_dir=tmp_path / "run"))
    pipe = load_pipeline(path, ["run_dir=/elsewhere", "steps.collect.options.shard-size=99", "vars.data=/d2"])
    assert pipe.run_dir == Path("/elsewhere")
    assert pipe.step("collect").options["shard-size"] == 99
    assert pipe.step("collect").args == ["/d2/en.json"]
    assert pipe.step("clean").args == ["/elsewhere/collect"]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("steps: []", "non-empty 'steps'"),
        ("steps: [{name: a, stage: fly}]", "unknown stage 'fly'"),
        ("steps: [{name: a, stage: collect}, {name: a, stage: filter}]", "used twice"),
        ("steps: [{name: a, stage: filter, args: ['${steps.b}']}]", "names no earlier step"),
        ("steps: [{name: a, stage: collect, args: ['${vars.x}']}]", "no such variable"),
        ("steps: [{name: a, stage: collect, args: ['${env.MTQA_SURELY_UNSET}']}]", "is not set"),
        ("steps: [{name: a, stage: collect, colour: red}]", "unknown keys ['colour']"),
        ("steps: [{name: 'a b', stage: collect}]", "must be letters"),
        ("stepz: 1\nsteps: [{name: a, stage: collect}]", "unknown top-level keys"),
        ("steps: [{name: a, stage: collect", "not valid YAML"),
        ("steps: [{name: a, foreach: [1, 2], stage: collect}]", "name must use"),
        ("steps: [{name: 'a-${item}', foreach: [], stage: collect}]", "non-empty list"),
        ("steps: [{name: 'a-${item}', foreach: '${vars.none}', stage: collect}]", "expected a list"),
        ("steps: [{name: 'a-${item.k}', foreach: [{j: 1}], stage: collect}]", "has no key 'k'"),
    ],
)
def test_invalid_pipelines_are_explained(tmp_path, text, message):
    with pytest.raises(PipelineError, match=message.replace("[", r"\[").replace("(", r"\(")):
        load_pipeline(write(tmp_path, text))


def test_bad_override(tmp_path):
    path = write(tmp_path, "steps: [{name: a, stage: collect}]")
    with pytest.raises(PipelineError, match="KEY=VALUE"):
        load_pipeline(path, ["nothing"])
    with pytest.raises(PipelineError, match="no step named 'zz'"):
        load_pipeline(path, ["steps.zz.options.x=1"])


FOREACH = """
run_dir: {run_dir}
vars:
  runs:
    - {{run: xx-s0, strategy: xx, seed: 0}}
    - {{run: xy-s1, strategy: xy, seed: 1}}
steps:
  - name: data
    stage: collect
  - name: batches-${{item.run}}
    foreach: ${{vars.runs}}
    stage: build-batches
    args: ["${{steps.data}}"]
    options: {{strategy: "${{item.strategy}}", seed: "${{item.seed}}"}}
  - name: train-${{item.run}}
    foreach: ${{vars.runs}}
    stage: train
    options: {{batches: "${{steps.batches-${{item.run}}}}"}}
  - name: tatoeba-${{item}}
    foreach: [base, tuned]
    stage: evaluate tatoeba
"""


def test_foreach_expands_in_place_with_item_references(tmp_path):
    run = tmp_path / "run"
    pipe = load_pipeline(write(tmp_path, FOREACH.format(run_dir=run)))
    assert [s.name for s in pipe.steps] == ["data", "batches-xx-s0", "batches-xy-s1", "train-xx-s0", "train-xy-s1",
                                            "tatoeba-base", "tatoeba-tuned"]  # fmt: skip
    assert pipe.step("batches-xy-s1").options == {"strategy": "xy", "seed": "1"}
    train = pipe.step("train-xy-s1")
    assert train.options == {"batches": str(run / "batches-xy-s1")} and train.depends == ["batches-xy-s1"]
    # --set on a var reaches every expanded step.
    override = "vars.runs=[{run: h, strategy: hybrid, seed: 2}]"
    pipe = load_pipeline(write(tmp_path, FOREACH.format(run_dir=run)), [override])
    assert [s.name for s in pipe.steps] == ["data", "batches-h", "train-h", "tatoeba-base", "tatoeba-tuned"]
