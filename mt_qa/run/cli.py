"""``mtqa run PIPELINE.yaml``: a whole pipeline in one command."""

from __future__ import annotations

import json
import shlex

import click
from rich.table import Table

from mt_qa.clickutil import array_options, env_int, resolve_array_task, wide_console
from mt_qa.run import cluster
from mt_qa.run.config import load_pipeline
from mt_qa.run.executors import LocalExecutor, RayExecutor
from mt_qa.run.runner import PipelineRunner


@click.command()
@click.argument("pipeline", type=click.Path(dir_okay=False))
@click.option(
    "--set",
    "overrides",
    multiple=True,
    metavar="KEY=VALUE",
    help="Override a pipeline value, e.g. --set run_dir=runs/x --set steps.train.options.max-steps=10.",
)
@click.option("--executor", type=click.Choice(["local", "ray"]), default="local", show_default=True)
@click.option("--workers", type=click.IntRange(min=1), default=None,
              help="Parallel tasks for sharded steps (default: CPU cores).")
@click.option("--ray-address", default=None, help="Ray cluster address (default: start or join a local one).")
@click.option("--gpus-per-task", type=float, default=0.0, show_default=True, help="GPUs each Ray task asks for.")
@click.option("--only", multiple=True, help="Run only these steps (repeatable).")
@click.option("--dry-run", is_flag=True, help="Print the plan (every task's command line) and exit.")
@click.option(
    "--step",
    "task_step",
    default=None,
    help="Run one job-array task of this step here, in this process (no executor, no lock): the task "
    "comes from --num-shards/--shard-index or the scheduler's environment. For cluster manifests.",
)
@click.option("--print-argv", is_flag=True, help="With --step: print the task's mtqa arguments instead of running.")
@click.option(
    "--list-steps",
    is_flag=True,
    help="Print every step as a cluster launcher submits it (sharded steps as --num-shards-task arrays): "
    "name, kind, tasks, done, depends, cpus, mem, gpus, time, tab-separated; --json for JSON.",
)
@click.option("--mark-done", is_flag=True, hidden=True,
              help="With --step: write the step's completion marker only (after torchrun ran it).")  # fmt: skip
@click.option("--json", "as_json", is_flag=True, help="With --list-steps: JSON instead of tab-separated lines.")
@click.option("--task-retries", type=int, default=2, show_default=True,
              help="Ray: times a task whose actor died is retried on a fresh actor.")  # fmt: skip
@array_options
def run(pipeline, overrides, executor, workers, ray_address, gpus_per_task, only, dry_run, task_step, print_argv,
        list_steps, mark_done, as_json, task_retries, num_shards, shard_index):  # fmt: skip
    """Run the steps of a YAML pipeline in order; a rerun resumes where the last one stopped.

    Every step writes RUN_DIR/<step>; logs go to RUN_DIR/logs, step completion markers to
    RUN_DIR/_steps. Two runs on one run directory at once are refused.
    """
    pipe = load_pipeline(pipeline, list(overrides))
    if list_steps:
        steps = cluster.list_steps(pipe, num_shards or env_int("MTQA_NUM_SHARDS") or 1)
        click.echo(json.dumps(steps, indent=1) if as_json else cluster.steps_tsv(pipe, steps))
        return
    if executor == "ray":
        if task_retries < 0:
            raise click.BadParameter("must be >= 0", param_hint="--task-retries")
        ex = RayExecutor(workers, address=ray_address, num_gpus_per_task=gpus_per_task, max_retries=task_retries)
    else:
        ex = LocalExecutor(workers)
    runner = PipelineRunner(pipe, ex, only=list(only) or None, echo=lambda m: click.echo(m, err=True),
                            progress=True, console=wide_console())  # fmt: skip
    if task_step:
        num_tasks, task_index = resolve_array_task(num_shards, shard_index)
        if print_argv:
            click.echo(shlex.join(runner.task_argv(task_step, num_tasks, task_index)))
            return
        code = cluster.run_task(pipe, task_step, num_tasks, task_index, mark_only=mark_done)
        if code:
            raise click.exceptions.Exit(code)
        return
    if print_argv:
        raise click.UsageError("--print-argv needs --step")
    if dry_run:
        runner.check()
        click.echo(runner.describe())
        return
    summary = runner.run()
    table = Table(title=f"mtqa run {pipe.name}", title_justify="left")
    for col in ("step", "status", "rows", "seconds"):
        table.add_column(col)
    for s in summary["steps"]:
        table.add_row(s["name"], s["status"], str(s.get("rows") or ""), str(s["seconds"]))
    console = wide_console()
    console.print(table)
    console.print(f"{pipe.run_dir}  [{summary['seconds']}s]")
