"""Run a pipeline's steps in order, each as one or more stage tasks, resuming what is done."""

from __future__ import annotations

import contextlib
import hashlib
import json
import shlex
import signal
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rich.console import Console

from mt_qa.io import atomic_write_json, sha256_file
from mt_qa.outdir import LOCK_FILES, check_writable_dir, is_temp
from mt_qa.run.config import Pipeline, Step, option_args
from mt_qa.run.executors import LocalExecutor, RayExecutor, StepFailed, TaskResult
from mt_qa.run.lock import RunLock
from mt_qa.run.progress import ConsoleProgress, attempt_tail
from mt_qa.run.validate import check_commands

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
    its command lines *and of the content of its inputs* (files by sha256, shard stores by their
    manifest's sha256), and a digest of the output it left. A rerun skips a step only when both
    still match, so an input edited in place, changed options, or a deleted/changed output make
    it run again (the stage then resumes its own completed shards, or refuses a directory made with
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
        self._hashes: dict[tuple[str, int, int], str] = {}  # (path, size, mtime_ns) -> sha256

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

    def selected_steps(self) -> list[Step]:
        return [step for step in self.pipeline.steps if not self.only or step.name in self.only]

    def check(self) -> None:
        """Parse every selected step's task command lines with the real CLI (:mod:`mt_qa.run.validate`):
        a typo in the last step fails before the first one starts."""
        check_commands(self.pipeline, [(step.name, self.task_argvs(step)) for step in self.selected_steps()])

    def plan(self) -> list[PlannedStep]:
        planned = []
        for step in self.selected_steps():
            argvs = self.task_argvs(step)
            fp = self.step_fingerprint(step, argvs)
            planned.append(PlannedStep(step, argvs, fp, self._is_done(step, fp)))
        return planned

    def step_fingerprint(self, step: Step, argvs: list[list[str]]) -> str:
        """The step's command lines and the content of every input they name (files by sha256,
        shard stores by their manifest's sha256): an input changed in place makes the step run again."""
        inputs = {path: content_digest(Path(path), self._hashes) for path in step_inputs(step, self.pipeline)}
        return hashlib.sha256(json.dumps({"argvs": argvs, "inputs": inputs}, sort_keys=True).encode()).hexdigest()

    def _is_done(self, step: Step, fp: str) -> bool:
        """Done: the marker's fingerprint matches and the output is still the one the step wrote."""
        marker = self.pipeline.run_dir / STEP_MARKERS / f"{step.name}.json"
        try:
            recorded = json.loads(marker.read_text())
        except (OSError, ValueError):
            return False
        if not isinstance(recorded, dict) or recorded.get("fingerprint") != fp:
            return False
        if step.out_option is None:
            return True
        output = output_digest(self.pipeline.out_dir(step))
        return output is not None and recorded.get("output") == output

    def mark_done(self, planned: PlannedStep, seconds: float) -> None:
        """Write the step's completion marker: its fingerprint and a digest of what it left in its
        output directory (also for a step finished outside :meth:`run`: a cluster job's last task)."""
        step = planned.step
        atomic_write_json(
            self.pipeline.run_dir / STEP_MARKERS / f"{step.name}.json",
            {"fingerprint": planned.fingerprint, "argvs": planned.argvs, "seconds": seconds,
             "output": output_digest(self.pipeline.out_dir(step)) if step.out_option else None},
        )

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
        self.check()
        check_writable_dir(run_dir, "run_dir")
        with RunLock(run_dir), _terminate_raises():
            _remove_own_temp_files(run_dir)
            atomic_write_json(run_dir / "pipeline.json", {"source": self.pipeline.source, "config": self.pipeline.raw})
            for planned in self.plan():
                step = planned.step
                # Inputs are hashed again now: an earlier step of this run may just have written them.
                planned.fingerprint = self.step_fingerprint(step, planned.argvs)
                planned.done = self._is_done(step, planned.fingerprint)
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
                self.mark_done(planned, seconds)
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


def step_inputs(step: Step, pipeline: Pipeline) -> list[str]:
    """Paths among a step's arguments and option values (``lang=path`` too) that exist, less its own output."""
    own = pipeline.out_dir(step).resolve() if step.out_option else None
    values: list[str] = list(step.args)
    for key, value in step.options.items():
        if _written_option(key):
            continue
        values += [str(v) for v in value] if isinstance(value, list) else [str(value)]
    found: list[str] = []
    for value in values:
        for candidate in (value, value.partition("=")[2]):
            if not candidate or len(candidate) > 4096:
                continue
            path = Path(candidate)
            with contextlib.suppress(OSError, ValueError):
                if path.exists() and path.resolve() != own and candidate not in found:
                    found.append(candidate)
                    break
    return found


def _written_option(key: str) -> bool:
    """Options naming what a step writes (``--dev-out``) or a cache it fills (``--cache``, ``--cache-dir``):
    not inputs, and hashing them would make every step look changed after it ran."""
    name = key.replace("_", "-").lower()
    return "cache" in name or name.endswith("out")


def content_digest(path: Path, cache: dict[tuple[str, int, int], str] | None = None) -> str:
    """sha256 of a file; of a shard store's manifest; for other directories (a model, a benchmark)
    the hash of its listing with sizes and modification times (hashing a model's weights on every
    plan would cost more than most steps)."""
    if path.is_dir():
        manifest = path / "manifest.json"
        if manifest.is_file():
            return "manifest:" + content_digest(manifest, cache)
        return "listing:" + _listing_digest(path)
    stat = path.stat()
    if not path.is_file():
        return f"special:{stat.st_mode:o}"  # a FIFO or device: reading it to hash it would hang or consume it
    key = (str(path.resolve()), stat.st_size, stat.st_mtime_ns)
    if cache is not None and key in cache:
        return cache[key]
    digest = sha256_file(path)
    if cache is not None:
        cache[key] = digest
    return digest


def output_digest(out: Path) -> str | None:
    """What a step left in its directory, or None when there is nothing (never "done" then)."""
    if not out.is_dir():
        return None
    manifest = out / "manifest.json"
    if manifest.is_file():
        return "manifest:" + sha256_file(manifest)
    if (out / "_run.json").is_file():
        return None  # a shard store without its manifest is unfinished
    if not any(p.name not in LOCK_FILES for p in out.iterdir()):
        return None
    return "listing:" + _listing_digest(out)


def _listing_digest(root: Path) -> str:
    entries = []
    for p in sorted(root.rglob("*")):
        if p.is_file() and p.name not in LOCK_FILES and not is_temp(p.name):
            stat = p.stat()
            entries.append([p.relative_to(root).as_posix(), stat.st_size, stat.st_mtime_ns])
    return hashlib.sha256(json.dumps(entries).encode()).hexdigest()


def _remove_own_temp_files(run_dir: Path) -> None:
    """Temp files of a killed write of pipeline.json, run.json or a step marker (the run lock is held)."""
    for path in [*run_dir.glob(".*.tmp"), *(run_dir / STEP_MARKERS).glob(".*.tmp")]:
        with contextlib.suppress(FileNotFoundError):
            path.unlink()


@contextlib.contextmanager
def _terminate_raises():
    """SIGTERM (a scheduler's cancel, ``kill``) unwinds like Ctrl-C, so the executor stops its workers."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum, frame):
        raise SystemExit(128 + signum)

    previous = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)
