"""What cluster launchers see of a pipeline (--list-steps), one task run by --step, and the
Kubernetes index mapping, all through the real CLI."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.helpers import tree_digest

ROOT = Path(__file__).resolve().parents[2]


def write_pipeline(tmp_path: Path, squad_dir: Path) -> Path:
    path = tmp_path / "pipe.yaml"
    path.write_text(f"""
name: t
run_dir: {tmp_path / "run"}
steps:
  - name: collect
    stage: collect
    args: ["{squad_dir / "dev-v1.1.es.json.gz"}"]
    options: {{shard-size: 800}}
    resources: {{cpus: 2, mem: 4G}}
  - name: batches
    stage: build-batches
    args: ["${{steps.collect}}"]
    options: {{batch-size: 8, epochs: 1}}
""")
    return path


def mtqa(*args: str, env: dict[str, str] | None = None, cwd: Path | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "mt_qa.cli", *args], capture_output=True, text=True,
                          env={**os.environ, **(env or {})}, cwd=cwd)  # fmt: skip


def test_list_steps_says_kind_tasks_done_and_resources(tmp_path, squad_dir):
    path = write_pipeline(tmp_path, squad_dir)
    out = mtqa("run", str(path), "--list-steps", "--num-shards", "3")
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert lines[0] == f"# pipeline t {tmp_path / 'run'}"
    assert lines[1].split("\t") == ["collect", "array", "3", "0", "-", "2", "4G", "-", "-"]
    assert lines[2].split("\t") == ["batches", "single", "1", "0", "collect", "-", "-", "-", "-"]
    steps = json.loads(mtqa("run", str(path), "--list-steps", "--json").stdout)
    assert [(s["name"], s["kind"], s["tasks"], s["done"]) for s in steps] == [
        ("collect", "array", 1, False), ("batches", "single", 1, False)]  # fmt: skip


def test_bad_resources_are_one_error(tmp_path, squad_dir):
    path = write_pipeline(tmp_path, squad_dir)
    out = mtqa("run", str(path), "--list-steps", "--set", "steps.collect.resources.cpus=many")
    assert out.returncode == 1 and "resources.cpus: 'many' is not a int" in out.stderr and "Traceback" not in out.stderr


def test_indexed_job_tasks_through_the_cli_equal_a_local_run_and_mark_the_step(tmp_path, squad_dir):
    """Three pods of an Indexed Job: JOB_COMPLETION_INDEX 0..2 with MTQA_NUM_SHARDS=3."""
    path = write_pipeline(tmp_path, squad_dir)
    assert mtqa("run", str(path), "--workers", "1", "--only", "collect", "--set",
                f"run_dir={tmp_path / 'local'}").returncode == 0  # fmt: skip
    no_count = mtqa("run", str(path), "--step", "collect", env={"JOB_COMPLETION_INDEX": "0"})
    assert no_count.returncode == 1
    assert "Error: JOB_COMPLETION_INDEX is set but MTQA_NUM_SHARDS is not" in no_count.stderr
    for index in (2, 0, 1):
        env = {"JOB_COMPLETION_INDEX": str(index), "MTQA_NUM_SHARDS": "3"}
        argv = mtqa("run", str(path), "--step", "collect", "--print-argv", env=env).stdout.split()
        assert argv[-4:] == ["--num-shards", "3", "--shard-index", str(index)]
        done_before = (tmp_path / "run" / "_steps" / "collect.json").exists()
        out = mtqa("run", str(path), "--step", "collect", env=env)
        assert out.returncode == 0, out.stderr
        assert f"[collect] task {index} of 3:" in out.stderr
        assert not done_before
    assert tree_digest(tmp_path / "run" / "collect") == tree_digest(tmp_path / "local" / "collect")
    # The pod that completed the step marked it: launchers (pipeline.sh --resume) see it done.
    listed = mtqa("run", str(path), "--list-steps", "--num-shards", "3").stdout.splitlines()
    assert listed[1].split("\t")[3] == "1" and listed[2].split("\t")[3] == "0"


def test_pipeline_sh_on_a_bad_pipeline_exits_non_zero(tmp_path):
    """Before: `pipeline.sh pipelines/nope.yaml` printed nothing and exited 0."""
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    out = subprocess.run(["bash", str(ROOT / "manifests" / "slurm" / "pipeline.sh"), "pipelines/nope.yaml", "2"],
                         cwd=tmp_path, env=env, capture_output=True, text=True)  # fmt: skip
    assert out.returncode != 0 and "Error: pipelines/nope.yaml: pipeline file not found" in out.stderr
    bad_tasks = subprocess.run(["bash", str(ROOT / "manifests" / "slurm" / "pipeline.sh"), "x.yaml", "0"],
                               cwd=tmp_path, env=env, capture_output=True, text=True)  # fmt: skip
    assert bad_tasks.returncode == 2 and "ARRAY_TASKS must be a positive integer" in bad_tasks.stderr


@pytest.mark.parametrize("script", ["step-array.sbatch", "step-single.sbatch", "train.sbatch"])
def test_sbatch_scripts_fix_no_resources_and_log_to_the_committed_logs_dir(script):
    """Hard-coded 8 CPUs / 32G / 4 GPUs made jobs pend for ever on smaller nodes; --output=logs/...
    failed with no log at all on a fresh clone without logs/."""
    text = (ROOT / "manifests" / "slurm" / script).read_text()
    directives = [line for line in text.splitlines() if line.startswith("#SBATCH")]
    assert not [d for d in directives if any(k in d for k in ("--cpus", "--mem", "--gpus", "--time"))], directives
    outputs = [d.split("=", 1)[1] for d in directives if d.startswith("#SBATCH --output=")]
    assert outputs and all(o.startswith("logs/") for o in outputs)
    tracked = subprocess.run(["git", "ls-files", "logs/.gitkeep"], cwd=ROOT, capture_output=True, text=True).stdout
    assert tracked.strip() == "logs/.gitkeep"


def test_a_failed_step_task_exits_non_zero(tmp_path, squad_dir):
    """Before: `mtqa run --step` printed the task's Error and exited 0, so Slurm marked the job
    COMPLETED and started every job after it (afterok)."""
    path = write_pipeline(tmp_path, squad_dir)
    out = mtqa("run", str(path), "--step", "batches", "--num-shards", "1", "--shard-index", "0")
    assert out.returncode != 0 and "Error" in out.stderr
    assert not (tmp_path / "run" / "_steps" / "batches.json").exists()
