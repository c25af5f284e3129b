"""Run a pipeline's steps in order, each as one or more stage tasks, resuming what is done."""

from __future__ import annotations

import hashlib
import json
import shlex
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rich.console import Console

from mt_qa.run.config import Pipeline, Step, option_args
from mt_qa.run.executors import LocalExecutor, RayExecutor, StepFailed, TaskResult
from mt_qa.run.lock import RunLock
from mt_qa.run.progress import ConsoleProgress, attempt_tail
from mt_qa.shards import atomic_write_json

STEP_MARKERS = "_steps"
LOGS = "logs"


@dataclass
class PlannedStep:
    step: Step
    argvs: list[list[str]]
    fingerprint: str
    done: bool


class PipelineRunner:
    """Plans each step as task command lines and runs them through an executor.

    A step that exits 0 gets a marker ``<run_dir>/_steps/<name>.json`` holding the fingerprint of
    its command lines; a rerun skips a step whose marker matches and reruns one whose options
    changed (the stage then resumes its own completed shards, or refuses a directory made with
    other params). A killed step has no marker and is simply run again: the stages' own shard
    markers make that a resume, not a redo.
    """

    def __init__(self, pipeline: Pipeline, executor: LocalExecutor | RayExecutor, only: list[str] | None = None,
                 echo=print, progress: bool = False, console: Console | None = None):  # fmt: skip
        self.pipeline = pipeline
        self.executor = executor
        self.only = only
        self.echo = echo
        self.progress = progress  # show each running task's progress (ConsoleProgress on `console`)
        self.console = console

    def _base_argv(self, step: Step, quiet: bool = True) -> list[str]:
        argv = [*step.command, *step.args, *option_args(step.options)]
        if step.out_option:
            argv += [step.out_option, str(self.pipeline.out_dir(step))]
        if quiet and "quiet" not in step.options:
            argv.append("--quiet")  # cluster task logs: no progress bars there
        return argv

    def task_argvs(self, step: Step, quiet: bool = True) -> list[list[str]]:
        """Every task's command line for the executor: N array tasks for a sharded step, else one.

        The quiet form (the default) is the step's identity in its marker and what cluster tasks
        run; ``quiet=False`` is what an executor that shows progress runs.
        """
        n = self.executor.tasks_for(True) if step.sharded else 1
        return [self.task_argv(step.name, n, i, quiet) for i in range(n)]

    def task_argv(self, step_name: str, num_tasks: int, task_index: int, quiet: bool = True) -> list[str]:
        """One job-array task's command line for one step (Slurm/Kubernetes run it directly)."""
        step = self.pipeline.step(step_name)
        if step.sharded:
            return [*self._base_argv(step, quiet), "--num-shards", str(num_tasks), "--shard-index", str(task_index)]
        if task_index != 0:
            raise StepFailed(f"step {step_name!r} ({step.stage}) is not sharded: run it as a single task (index 0)")
        return self._base_argv(step, quiet)

    def plan(self) -> list[PlannedStep]:
        planned = []
        for step in self.pipeline.steps:
            if self.only and step.name not in self.only:
                continue
            argvs = self.task_argvs(step)
            fp = hashlib.sha256(json.dumps(argvs).encode()).hexdigest()
            marker = self.pipeline.run_dir / STEP_MARKERS / f"{step.name}.json"
            done = marker.is_file() and json.loads(marker.read_text()).get("fingerprint") == fp
            planned.append(PlannedStep(step, argvs, fp, done))
        return planned

    def describe(self) -> str:
        lines = [f"pipeline {self.pipeline.name} ({self.pipeline.source}) -> {self.pipeline.run_dir}",
                 f"executor: {self.executor.name}, {self.executor.workers} worker(s)"]  # fmt: skip
        for p in self.plan():
            state = "done, skipped" if p.done else f"{len(p.argvs)} task(s)"
            lines.append(f"- {p.step.name} [{p.step.stage}] {state}")
            for argv in p.argvs:
                lines.append("    mtqa " + shlex.join(argv))
        return "\n".join(lines)

    def run(self) -> dict[str, Any]:
        run_dir = self.pipeline.run_dir
        summary: dict[str, Any] = {"pipeline": self.pipeline.name, "run_dir": str(run_dir), "steps": []}
        started = time.perf_counter()
        with RunLock(run_dir):
            atomic_write_json(run_dir / "pipeline.json", {"source": self.pipeline.source, "config": self.pipeline.raw})
            for planned in self.plan():
                step = planned.step
                if planned.done:
                    self.echo(f"[{step.name}] done earlier, skipped")
                    summary["steps"].append({"name": step.name, "status": "skipped", "seconds": 0})
                    continue
                self.echo(f"[{step.name}] {step.stage}: {len(planned.argvs)} task(s) ...")
                t0 = time.perf_counter()
                results = self._execute(planned)
                seconds = round(time.perf_counter() - t0, 2)
                failed = [r for r in results if r.returncode != 0]
                if failed:
                    logs = ", ".join(str(r.log) for r in failed)
                    tail = attempt_tail(failed[0].log)
                    hint = f"\nhint: {step.hint}" if step.hint else ""
                    raise StepFailed(f"step {step.name!r} failed ({len(failed)} of {len(results)} task(s)); "
                                     f"logs: {logs}\n{tail}{hint}")  # fmt: skip
                atomic_write_json(
                    run_dir / STEP_MARKERS / f"{step.name}.json",
                    {"fingerprint": planned.fingerprint, "argvs": planned.argvs, "seconds": seconds},
                )
                self.echo(f"[{step.name}] finished in {seconds}s")
                summary["steps"].append({"name": step.name, "status": "ran", "seconds": seconds,
                                         "rows": _rows(self.pipeline.out_dir(step))})  # fmt: skip
        summary["seconds"] = round(time.perf_counter() - started, 2)
        atomic_write_json(run_dir / "run.json", {k: v for k, v in summary.items() if k != "seconds"})
        return summary


    def _execute(self, planned: PlannedStep) -> list[TaskResult]:
        """Run a step's tasks; with an executor that streams output, show their progress live."""
        log_dir = self.pipeline.run_dir / LOGS
        if not (self.progress and getattr(self.executor, "streams_output", False)):
            return self.executor.run(planned.step.name, planned.argvs, log_dir)
        argvs = self.task_argvs(planned.step, quiet=False)
        with ConsoleProgress(planned.step.name, len(argvs), console=self.console) as progress:
            return self.executor.run(planned.step.name, argvs, log_dir, progress=progress)


def _rows(out: Path) -> int | None:
    manifest = out / "manifest.json"
    if manifest.is_file():
        return json.loads(manifest.read_text()).get("totals", {}).get("rows")
    return None

