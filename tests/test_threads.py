"""MTQA_THREADS: the thread budget a launcher gives one task, applied to the libraries."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from mt_qa.errors import MtqaError
from mt_qa.threads import available_cpus, thread_budget
from mt_qa.translate.translator import default_threads


def test_budget_defaults_to_the_usable_cpus(monkeypatch):
    monkeypatch.delenv("MTQA_THREADS", raising=False)
    assert thread_budget() == available_cpus() >= 1


def test_translate_threads_follow_mtqa_threads(monkeypatch):
    """Before: MTQA_THREADS was read by no code, so every task used every core it saw."""
    monkeypatch.setenv("MTQA_THREADS", "3")
    assert default_threads("cpu") == (1, 3)
    monkeypatch.setenv("MTQA_THREADS", "16")
    assert default_threads("cpu") == (2, 8)


@pytest.mark.parametrize("value", ["0", "-2", "four"])
def test_a_bad_budget_is_an_error(monkeypatch, value):
    monkeypatch.setenv("MTQA_THREADS", value)
    with pytest.raises(MtqaError, match="MTQA_THREADS"):
        thread_budget()


def test_the_cli_exports_the_budget_to_thread_pools_before_torch_loads():
    env = {k: v for k, v in os.environ.items() if k not in ("OMP_NUM_THREADS", "MKL_NUM_THREADS")}
    code = ("import os, sys; from mt_qa.cli import main; main(['--version']); "
            "import torch; print(os.environ['OMP_NUM_THREADS'], torch.get_num_threads())")  # fmt: skip
    out = subprocess.run([sys.executable, "-c", code], env={**env, "MTQA_THREADS": "1"}, capture_output=True,
                         text=True, check=True)  # fmt: skip
    assert out.stdout.split()[-2:] == ["1", "1"]
