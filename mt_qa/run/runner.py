"""Run a pipeline's steps in order, each as one or more stage tasks, resuming what is done."""

from __future__ import annotations

import hashlib
import json
import shlex
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mt_qa.run.config import Pipeline, Step, option_args
from mt_qa.run.executors import LocalExecutor, RayExecutor, StepFailed
from mt_qa.run.lock import RunLock
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
                 echo=print):  # fmt: skip
        self.pipeline = pipeline
        self.executor = executor
        self.only = only
        self.echo = echo

    def _base_argv(self, step: Step) -> list[str]:
        argv = [*step.command, *step.args, *option_args(step.options)]
        if step.out_option:
            argv += [step.out_option, str(self.pipeline.out_dir(step))]
        if "quiet" not in step.options:
            argv.append("--quiet")  # task output goes to log files: no progress bars there
        return argv

    def task_argvs(self, step: Step) -> list[list[str]]:
        """Every task's command line for the executor: N array tasks for a sharded step, else one."""
        n = self.executor.tasks_for(True) if step.sharded else 1
        return [self.task_argv(step.name, n, i) for i in range(n)]

    def task_argv(self, step_name: str, num_tasks: int, task_index: int) -> list[str]:
        """One job-array task's command line for one step (Slurm/Kubernetes run it directly)."""
        step = self.pipeline.step(step_name)
        if step.sharded:
            return [*self._base_argv(step), "--num-shards", str(num_tasks), "--shard-index", str(task_index)]
        if task_index != 0:
            raise StepFailed(f"step {step_name!r} ({step.stage}) is not sharded: run it as a single task (index 0)")
        return self._base_argv(step)

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

    def mark_done(self, planned: PlannedStep, seconds: float) -> None:
        """Write the step's completion marker (for a step finished outside :meth:`run`: a cluster
        job's last task)."""
        atomic_write_json(self.pipeline.run_dir / STEP_MARKERS / f"{planned.step.name}.json",
                          {"fingerprint": planned.fingerprint, "argvs": planned.argvs, "seconds": seconds})  # fmt: skip

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
                results = self.executor.run(step.name, planned.argvs, run_dir / LOGS)
                seconds = round(time.perf_counter() - t0, 2)
                failed = [r for r in results if r.returncode != 0]
                if failed:
                    logs = ", ".join(str(r.log) for r in failed)
                    tail = _tail(failed[0].log)
                    raise StepFailed(f"step {step.name!r} failed ({len(failed)} of {len(results)} task(s)); "
                                     f"logs: {logs}\n{tail}")  # fmt: skip
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


def _rows(out: Path) -> int | None:
    manifest = out / "manifest.json"
    if manifest.is_file():
        return json.loads(manifest.read_text()).get("totals", {}).get("rows")
    return None


def _tail(log: Path | None, lines: int = 15) -> str:
    if log is None or not log.is_file():
        return ""
    text = log.read_text(errors="replace").splitlines()[-lines:]
    return "\n".join("  | " + line for line in text)
