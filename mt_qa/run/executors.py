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
from typing import IO

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
        procs: list[subprocess.Popen] = []
        files: list[IO[bytes]] = []
        pumps: list[LogPump] = []
        logs = [log_dir / (f"{step_name}.log" if len(argvs) == 1 else f"{step_name}.{i}.log")
                for i in range(len(argvs))]  # fmt: skip
        try:
            for i, argv in enumerate(argvs):
                files.append(open(logs[i], "ab"))  # noqa: SIM115 - closed below, after the process ends
                files[i].write(attempt_header(argv).encode())
                files[i].flush()
                # mt_qa.run.task: the worker gets SIGTERM from the kernel if this process dies.
                procs.append(subprocess.Popen([sys.executable, "-m", "mt_qa.run.task", *argv],
                                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env))  # fmt: skip
                pumps.append(LogPump(procs[i].stdout, files[i], progress.callback(i) if progress else None))
                pumps[i].start()
            codes = [proc.wait() for proc in procs]
            for pump in pumps:
                pump.join()  # the whole output is in the log before it is closed
        except BaseException:
            # Interrupted at any point (Ctrl-C, SIGTERM, even while a worker is being started):
            # every worker started so far is stopped before this process goes.
            stop_processes(procs)
            raise
        finally:
            for pump in pumps:
                pump.join(timeout=5)  # after an interruption: what the stopped workers still wrote
            for fh in files:
                fh.close()
        return [TaskResult(i, code, logs[i]) for i, code in enumerate(codes)]


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
    byte-identical to a local run because the actors run the same stage code, on the same command
    lines, in the driver's working directory (relative paths mean what they mean on the driver; a
    node where that directory does not exist fails its task with a clear error). We do not route
    rows through Ray Data, which would bypass the shard store's atomic writes, markers and resume.

    An actor whose process dies (OOM kill, node loss) is restarted and its task retried, up to
    ``max_retries`` times; the task resumes its completed shards. A task that still fails costs
    that task, not its siblings: the step waits for all of them and reports the failed ones.
    Each task writes its log file itself, line by line, as it runs.
    """

    name = "ray"

    def __init__(self, workers: int | None = None, address: str | None = None, num_gpus_per_task: float = 0,
                 num_cpus_per_task: float = 1, max_retries: int = 2):  # fmt: skip
        try:
            import ray  # noqa: F401
        except ImportError as exc:
            raise MtqaError("the ray executor needs Ray: pip install 'mtqa[ray]'") from exc
        self.workers = check_workers(workers) or default_workers()
        self.address = address
        self.num_gpus = num_gpus_per_task
        self.num_cpus = num_cpus_per_task
        self.max_retries = max_retries

    def tasks_for(self, sharded: bool) -> int:
        return self.workers if sharded else 1

    def run(self, step_name: str, argvs: list[list[str]], log_dir: Path) -> list[TaskResult]:
        import ray
        from ray.exceptions import RayError

        if not ray.is_initialized():
            # No runtime_env here: under `ray job submit --runtime-env` the job's own one applies,
            # and a second one would conflict. The thread budget travels with each task instead.
            ray.init(address=self.address, include_dashboard=False, log_to_driver=False)
        worker_cls = ray.remote(_StageActor)
        log_dir = log_dir.absolute()
        log_dir.mkdir(parents=True, exist_ok=True)
        env = {"MTQA_THREADS": str(max(1, int(self.num_cpus)))}
        cwd = os.getcwd()
        logs = [log_dir / (f"{step_name}.log" if len(argvs) == 1 else f"{step_name}.{i}.log")
                for i in range(len(argvs))]  # fmt: skip
        actors, refs = [], {}
        for i, argv in enumerate(argvs):
            actor = worker_cls.options(num_cpus=self.num_cpus, num_gpus=self.num_gpus, max_restarts=self.max_retries,
                                       max_task_retries=self.max_retries).remote()  # fmt: skip
            actors.append(actor)
            refs[actor.run.remote(argv, str(logs[i]), cwd, env)] = i
        codes: dict[int, int] = {}
        pending = list(refs)
        try:
            while pending:
                ready, pending = ray.wait(pending, num_returns=1)
                i = refs[ready[0]]
                try:
                    codes[i] = ray.get(ready[0])
                except RayError as exc:  # the actor died more often than max_retries allows
                    codes[i] = 1
                    with open(logs[i], "a") as fh:
                        fh.write(f"[mtqa] task {i} lost after {self.max_retries} retries: {type(exc).__name__}: "
                                 f"{str(exc).splitlines()[0] if str(exc) else ''}\n")  # fmt: skip
        finally:
            for actor in actors:
                ray.kill(actor, no_restart=True)
        return [TaskResult(i, codes[i], logs[i]) for i in range(len(argvs))]


class _StageActor:
    """A Ray actor process that runs mtqa commands in-process, writing their output to a log file."""

    def run(self, argv: list[str], log: str, cwd: str, env: dict[str, str]) -> int:
        import contextlib
        import socket

        with open(log, "a", buffering=1) as fh:  # line-buffered: the log grows as the task runs
            fh.write(attempt_header(argv) + f"[mtqa] on {socket.gethostname()}\n")
            if not os.path.isdir(cwd):
                fh.write(f"Error: the driver's working directory {cwd} does not exist on {socket.gethostname()}: "
                         "run mtqa from storage every node mounts, or use absolute paths\n")  # fmt: skip
                return 1
            os.chdir(cwd)
            os.environ.update(env)
            from mt_qa.cli import main

            with contextlib.redirect_stdout(fh), contextlib.redirect_stderr(fh):
                return main(argv)
