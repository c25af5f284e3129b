"""``mtqa run`` parses every step's command before the first step runs."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from mt_qa.run.config import PipelineError, load_pipeline
from mt_qa.run.executors import LocalExecutor
from mt_qa.run.runner import PipelineRunner
from mt_qa.run.validate import check_argv
from tests.helpers import write_pipeline_yaml

ROOT = Path(__file__).resolve().parents[2]
SAMPLE = ROOT / "pipelines" / "data" / "squad-sample.en.json"


def write_pipeline(tmp_path: Path, last_steps: str) -> Path:
    """A collect step of the bundled sample, then ``last_steps``."""
    return write_pipeline_yaml(tmp_path, f'  - {{name: collect, stage: collect, args: ["{SAMPLE}"]}}\n{last_steps}')


def mtqa(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "mt_qa.cli", *args], capture_output=True, text=True, cwd=ROOT)


def error_line(proc: subprocess.CompletedProcess[str]) -> str:
    assert proc.returncode == 1, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: "), proc.stderr
    return lines[0]


TYPO = """
  - name: batches
    stage: build-batches
    args: ["${steps.collect}"]
    options: {batch-sise: 8}
"""


def test_a_typo_in_the_last_step_fails_before_the_first_step_runs(tmp_path):
    path = write_pipeline(tmp_path, TYPO)
    line = error_line(mtqa("run", str(path), "--workers", "1"))
    assert "step 'batches'" in line and "--batch-sise" in line and "--batch-size" in line  # the fix is suggested
    assert not (tmp_path / "run").exists()  # nothing ran, nothing was written


@pytest.mark.parametrize("flag", ["--dry-run", "--list-steps"])
def test_plan_and_list_steps_check_too(tmp_path, flag):
    line = error_line(mtqa("run", str(write_pipeline(tmp_path, TYPO)), flag))
    assert "step 'batches'" in line and "--batch-sise" in line


def test_a_bad_value_in_one_foreach_item_names_that_item(tmp_path):
    path = write_pipeline(tmp_path, """
  - name: batches-${item}
    foreach: [xx, hybird]
    stage: build-batches
    args: ["${steps.collect}"]
    options: {strategy: "${item}"}
""")
    runner = PipelineRunner(load_pipeline(path), LocalExecutor(1), echo=lambda m: None)
    with pytest.raises(PipelineError, match=r"step 'batches-hybird'.*'hybird' is not one of"):
        runner.run()
    assert not (tmp_path / "run").exists()


def test_outputs_of_earlier_steps_may_be_missing_but_inputs_may_not(tmp_path):
    later = """
  - name: batches
    stage: build-batches
    args: ["${steps.collect}"]
"""
    runner = PipelineRunner(load_pipeline(write_pipeline(tmp_path, later)), LocalExecutor(2), echo=lambda m: None)
    runner.check()  # run/collect does not exist yet: an earlier step writes it
    missing = tmp_path / "nope.json"
    path = write_pipeline(tmp_path, later.replace("${steps.collect}", str(missing)))
    runner = PipelineRunner(load_pipeline(path), LocalExecutor(2), echo=lambda m: None)
    with pytest.raises(PipelineError, match=r"step 'batches'.*nope\.json.*does not exist"):
        runner.check()


def test_a_missing_required_option_and_an_unknown_command_are_reported():
    with pytest.raises(PipelineError, match=r"^step 'train': mtqa train: Missing option '--batches'"):
        check_argv(["train", "--model", "m", "--out", "o"], where="step 'train'")
    with pytest.raises(PipelineError, match=r"`mtqa evaluate` has no command 'lareqq'"):
        check_argv(["evaluate", "lareqq", "x"])


@pytest.mark.parametrize("path", sorted((ROOT / "pipelines").glob("*.yaml")), ids=lambda p: p.stem)
def test_the_shipped_pipelines_pass_the_check(path):
    PipelineRunner(load_pipeline(path), LocalExecutor(3), echo=lambda m: None).check()
