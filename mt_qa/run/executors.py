"""Where a step's tasks run: local worker processes, or Ray actors on a cluster.

A step is a list of task argument vectors (one per job-array task of a sharded stage, else
one). Every task is a fresh ``mtqa`` process (locally) or a Ray actor process, never a fork of
this one: CTranslate2 and torch are not fork-safe, and a fresh process per task also gives
each its own memory ceiling.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from mt_qa.errors import MtqaError
from mt_qa.run.progress import ConsoleProgress, LogPump, attempt_header
from mt_qa.run.task import PARENT_ENV


@dataclass
class TaskResult:
    index: int
    returncode: int
    log: Path | None


class StepFailed(MtqaError):
    pass


def default_workers() -> int:
    return max(1, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1))


class LocalExecutor:
    """Runs a step's tasks as parallel ``python -m mt_qa.cli`` processes on this machine.

    Each worker gets ``OMP_NUM_THREADS``/``MTQA_THREADS`` = cores / workers so N workers do not
    oversubscribe the CPU.
    """

    name = "local"
    streams_output = True  # run() takes progress=: the runner shows the tasks' progress bars

    def __init__(self, workers: int | None = None):
        self.workers = check_workers(workers) or default_workers()

    def tasks_for(self, sharded: bool) -> int:
        return self.workers if sharded else 1

    def run(self, step_name: str, argvs: list[list[str]], log_dir: Path,
            progress: ConsoleProgress | None = None) -> list[TaskResult]:  # fmt: skip
        """Run the tasks; each one's output goes through a pipe into its log (and to ``progress``)."""
        log_dir.mkdir(parents=True, exist_ok=True)
        threads = max(1, default_workers() // len(argvs))
        env = {**os.environ, "OMP_NUM_THREADS": str(threads), "MTQA_THREADS": str(threads),
               PARENT_ENV: str(os.getpid())}
        procs = []
        results = []
        try:
            for i, argv in enumerate(argvs):
                log = log_dir / (f"{step_name}.log" if len(argvs) == 1 else f"{step_name}.{i}.log")
                fh = open(log, "ab")  # noqa: SIM115 - closed below, after the process ends
                fh.write(attempt_header(argv).encode())
                fh.flush()
                # mt_qa.run.task: the worker gets SIGTERM from the kernel if this process dies.
                proc = subprocess.Popen([sys.executable, "-m", "mt_qa.run.task", *argv], stdout=subprocess.PIPE,
                                        stderr=subprocess.STDOUT, env=env)  # fmt: skip
                pump = LogPump(proc.stdout, fh, progress.callback(i) if progress else None)
                pump.start()
                procs.append((i, proc, fh, log, pump))
            for i, proc, fh, log, pump in procs:
                code = proc.wait()
                pump.join()
                fh.close()
                results.append(TaskResult(i, code, log))
        except BaseException:
            stop_processes([proc for _, proc, _, _, _ in procs])
            for _, _, fh, _, pump in procs:
                pump.join(timeout=5)
                fh.close()
            raise
        return results


def check_workers(workers: int | None) -> int | None:
    if workers is not None and workers < 1:
        raise MtqaError(f"--workers must be at least 1, not {workers}")
    return workers


def stop_processes(procs: list[subprocess.Popen], grace: float = 5.0) -> None:
    """SIGTERM every live worker, then SIGKILL whatever is still there after ``grace`` seconds."""
    live = [p for p in procs if p.poll() is None]
    for proc in live:
        with contextlib.suppress(ProcessLookupError):
            proc.terminate()
    deadline = time.monotonic() + grace
    for proc in live:
        try:
            proc.wait(max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


class RayExecutor:
    """Runs a step's tasks on a Ray cluster: one actor per task, each a long-lived process that
    loads its translator/encoder once and works through its share of the shards.

    The shard directories must be on storage every node sees (NFS, a mounted bucket). Outputs are
    byte-identical to a local run because the actors run the same stage code on the same shard
    assignment; we do not route rows through Ray Data, which would bypass the shard store's
    atomic writes, markers and resume.
    """

    name = "ray"

    def __init__(self, workers: int | None = None, address: str | None = None, num_gpus_per_task: float = 0,
                 num_cpus_per_task: float = 1):  # fmt: skip
        try:
            import ray  # noqa: F401
        except ImportError as exc:
            raise MtqaError("the ray executor needs Ray: pip install 'mtqa[ray]'") from exc
        self.workers = check_workers(workers) or default_workers()
        self.address = address
        self.num_gpus = num_gpus_per_task
        self.num_cpus = num_cpus_per_task

    def tasks_for(self, sharded: bool) -> int:
        return self.workers if sharded else 1

    def run(self, step_name: str, argvs: list[list[str]], log_dir: Path) -> list[TaskResult]:
        import ray

        if not ray.is_initialized():
            ray.init(address=self.address, include_dashboard=False, log_to_driver=False,
                     runtime_env={"env_vars": {"MTQA_THREADS": str(max(1, int(self.num_cpus)))}})  # fmt: skip
        worker_cls = ray.remote(_StageActor)
        actors = [worker_cls.options(num_cpus=self.num_cpus, num_gpus=self.num_gpus, name=None).remote() for _ in argvs]
        log_dir.mkdir(parents=True, exist_ok=True)
        refs = [actor.run.remote(argv) for actor, argv in zip(actors, argvs, strict=True)]
        results = []
        for i, (code, output) in enumerate(ray.get(refs)):
            log = log_dir / (f"{step_name}.log" if len(argvs) == 1 else f"{step_name}.{i}.log")
            with open(log, "a") as fh:
                fh.write(attempt_header(argvs[i]) + output)
            results.append(TaskResult(i, code, log))
        for actor in actors:
            ray.kill(actor)
        return results


class _StageActor:
    """A Ray actor process that runs mtqa commands in-process, capturing their output."""

    def run(self, argv: list[str]) -> tuple[int, str]:
        import contextlib
        import io

        from mt_qa.cli import main

        buffer = io.StringIO()
        with contextlib.redirect_stdout(buffer), contextlib.redirect_stderr(buffer):
            code = main(argv)
        return code, buffer.getvalue()
