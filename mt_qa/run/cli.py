"""``mtqa run PIPELINE.yaml``: a whole pipeline in one command."""

from __future__ import annotations

import click
from rich.console import Console
from rich.table import Table

from mt_qa.run.config import load_pipeline
from mt_qa.run.executors import LocalExecutor, RayExecutor
from mt_qa.run.runner import PipelineRunner


@click.command()
@click.argument("pipeline", type=click.Path(dir_okay=False))
@click.option("--set", "overrides", multiple=True, metavar="KEY=VALUE",
              help="Override a pipeline value, e.g. --set run_dir=runs/x --set steps.train.options.max-steps=10.")
@click.option("--executor", type=click.Choice(["local", "ray"]), default="local", show_default=True)
@click.option("--workers", type=int, default=None, help="Parallel tasks for sharded steps (default: CPU cores).")
@click.option("--ray-address", default=None, help="Ray cluster address (default: start or join a local one).")
@click.option("--gpus-per-task", type=float, default=0.0, show_default=True, help="GPUs each Ray task asks for.")
@click.option("--only", multiple=True, help="Run only these steps (repeatable).")
@click.option("--dry-run", is_flag=True, help="Print the plan (every task's command line) and exit.")
def run(pipeline, overrides, executor, workers, ray_address, gpus_per_task, only, dry_run):
    """Run the steps of a YAML pipeline in order; a rerun resumes where the last one stopped.

    Every step writes RUN_DIR/<step>; logs go to RUN_DIR/logs, step completion markers to
    RUN_DIR/_steps. Two runs on one run directory at once are refused.
    """
    pipe = load_pipeline(pipeline, list(overrides))
    if executor == "ray":
        ex = RayExecutor(workers, address=ray_address, num_gpus_per_task=gpus_per_task)
    else:
        ex = LocalExecutor(workers)
    runner = PipelineRunner(pipe, ex, only=list(only) or None, echo=lambda m: click.echo(m, err=True))
    if dry_run:
        click.echo(runner.describe())
        return
    summary = runner.run()
    table = Table(title=f"mtqa run {pipe.name}", title_justify="left")
    for col in ("step", "status", "rows", "seconds"):
        table.add_column(col)
    for s in summary["steps"]:
        table.add_row(s["name"], s["status"], str(s.get("rows") or ""), str(s["seconds"]))
    console = Console(stderr=True)
    console.print(table)
    console.print(f"{pipe.run_dir}  [{summary['seconds']}s]")
