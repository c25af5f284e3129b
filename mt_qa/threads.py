"""The thread budget of one mtqa process: ``MTQA_THREADS``, else the CPUs this process may use.

Schedulers (Slurm's ``--cpus-per-task``, a Kubernetes CPU request, a Ray actor's ``num_cpus``)
give a task fewer cores than the machine has, but ``os.cpu_count()`` still reports the whole
machine, so N tasks on one node would each start one thread per core. The launchers set
``MTQA_THREADS`` to the task's share and every multi-threaded library reads it from here.
"""

from __future__ import annotations

import os

from mt_qa.errors import MtqaError

ENV = "MTQA_THREADS"
# Libraries that size their thread pools from these at import time (torch, numpy's BLAS, OpenMP).
_POOL_VARS = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")


def available_cpus() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        return os.cpu_count() or 1


def thread_budget() -> int:
    """``$MTQA_THREADS`` (a positive integer) or the CPUs this process may run on."""
    value = os.environ.get(ENV, "").strip()
    if not value:
        return available_cpus()
    try:
        threads = int(value)
    except ValueError:
        threads = 0
    if threads < 1:
        raise MtqaError(f"${ENV}={value!r}: expected a positive number of threads")
    return threads


def apply_thread_budget() -> None:
    """Export ``$MTQA_THREADS`` to the thread-pool variables not set explicitly, before any
    library that reads them is imported (the CLI calls this first)."""
    if os.environ.get(ENV, "").strip():
        threads = str(thread_budget())
        for var in _POOL_VARS:
            os.environ.setdefault(var, threads)
