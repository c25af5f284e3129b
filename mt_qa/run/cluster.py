"""A pipeline seen from a cluster scheduler: the step list launchers submit, and one task run.

Slurm/Kubernetes launchers (``manifests/``) do not parse pipeline YAML themselves: they ask
``mtqa run PIPELINE --list-steps`` which steps exist, which are sharded (job arrays), which are
done, what each depends on and what resources it asks for, and then run each task with
``mtqa run PIPELINE --step NAME``. The task that completes a step writes the same completion
marker a local ``mtqa run`` writes, so ``--list-steps`` (and ``pipeline.sh --resume``) see it.
"""

from __future__ import annotations

import shlex
import time
from typing import Any

from mt_qa.run.config import Pipeline
from mt_qa.run.executors import LocalExecutor
from mt_qa.run.runner import PipelineRunner

COLUMNS = ("name", "kind", "tasks", "done", "depends", "cpus", "mem", "gpus", "time")


def step_kind(stage: str, sharded: bool) -> str:
    """How a launcher submits a step: ``array`` (sharded), ``train`` (torchrun), else ``single``."""
    if sharded:
        return "array"
    return "train" if stage.split()[0] == "train" else "single"


def list_steps(pipe: Pipeline, num_tasks: int) -> list[dict[str, Any]]:
    """Every step in order, as a launcher submitting sharded steps as ``num_tasks``-task arrays
    sees it: ``done`` means the step's marker matches those task command lines."""
    runner = PipelineRunner(pipe, LocalExecutor(num_tasks), echo=lambda m: None)
    runner.check()  # a launcher submits nothing for a pipeline with a bad command in any step
    return [
        {
            "name": p.step.name,
            "stage": p.step.stage,
            "kind": step_kind(p.step.stage, p.step.sharded),
            "tasks": len(p.argvs),
            "done": p.done,
            "depends": p.step.depends,
            "out": str(pipe.out_dir(p.step)) if p.step.out_option else None,
            "resources": p.step.resources,
        }
        for p in runner.plan()
    ]


def steps_tsv(pipe: Pipeline, steps: list[dict[str, Any]]) -> str:
    """``# pipeline NAME RUN_DIR``, then one tab-separated line per step (``-`` for empty), for
    shell launchers: COLUMNS."""
    lines = [f"# pipeline {pipe.name} {pipe.run_dir}"]
    for s in steps:
        res = s["resources"]
        cells = [s["name"], s["kind"], s["tasks"], int(s["done"]), ",".join(s["depends"]) or "-",
                 *(res.get(k, "-") for k in ("cpus", "mem", "gpus", "time"))]  # fmt: skip
        lines.append("\t".join(str(c) for c in cells))
    return "\n".join(lines)


def run_task(pipe: Pipeline, step_name: str, num_tasks: int, task_index: int, mark_only: bool = False) -> int:
    """Run one array task of a step in this process; mark the step done if this task completed it.

    ``mark_only``: the step was run by another launcher (``torchrun`` in train.sbatch) and
    succeeded; only write its marker.
    """
    import click

    from mt_qa.cli import main

    runner = PipelineRunner(pipe, LocalExecutor(num_tasks), only=[step_name], echo=lambda m: None)
    argv = runner.task_argv(step_name, num_tasks, task_index)
    started = time.perf_counter()
    if mark_only:
        runner.mark_done(runner.plan()[0], 0)
        return 0
    click.echo(f"[{step_name}] task {task_index} of {num_tasks}: mtqa {shlex.join(argv)}", err=True)
    code = main(argv)
    if code:
        return code
    step = pipe.step(step_name)
    # A sharded step is complete once its manifest exists (the task finding every shard done writes it).
    if not step.sharded or not step.out_option or (pipe.out_dir(step) / "manifest.json").is_file():
        runner.mark_done(runner.plan()[0], round(time.perf_counter() - started, 2))
    return 0
