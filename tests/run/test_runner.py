"""Running pipelines: parallel tasks equal one task, kill -9 and rerun, the run lock, Ray."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from mt_qa.run.config import load_pipeline
from mt_qa.run.executors import LocalExecutor, StepFailed
from mt_qa.run.lock import RunLock, RunLockedError
from mt_qa.run.runner import PipelineRunner
from tests.helpers import tree_digest


def pipeline_file(tmp_path: Path, squad_dir: Path, shard_size: int = 400) -> Path:
    path = tmp_path / "pipe.yaml"
    path.write_text(f"""
name: t
run_dir: {tmp_path / "run"}
steps:
  - name: collect
    stage: collect
    args: ["{squad_dir / "dev-v1.1.en.json.gz"}"]
    options: {{parallel: ["es={squad_dir / "dev-v1.1.es.json.gz"}"], shard-size: {shard_size}}}
""")
    return path


def run_quiet(path: Path, overrides=(), workers: int = 2) -> dict:
    return PipelineRunner(load_pipeline(path, list(overrides)), LocalExecutor(workers), echo=lambda m: None).run()


def test_parallel_tasks_equal_a_single_task(tmp_path, squad_dir):
    path = pipeline_file(tmp_path, squad_dir)
    run_quiet(path, [f"run_dir={tmp_path / 'one'}"], workers=1)
    run_quiet(path, [f"run_dir={tmp_path / 'three'}"], workers=3)
    assert tree_digest(tmp_path / "one" / "collect") == tree_digest(tmp_path / "three" / "collect")


def test_rerun_skips_done_steps_and_reruns_changed_ones(tmp_path, squad_dir):
    path = pipeline_file(tmp_path, squad_dir)
    first = run_quiet(path)
    assert [s["status"] for s in first["steps"]] == ["ran"]
    assert first["steps"][0]["rows"] == 9380 + 5851
    assert [s["status"] for s in run_quiet(path)["steps"]] == ["skipped"]
    # Changed options: the step runs again, and the stage refuses the directory of other params.
    with pytest.raises(StepFailed, match="different run"):
        run_quiet(path, ["steps.collect.options.shard-size=500"])


@pytest.mark.parametrize("trial", range(3))
def test_sigkill_at_random_points_then_rerun_equals_uninterrupted(tmp_path, squad_dir, trial):
    path = pipeline_file(tmp_path, squad_dir, shard_size=300)
    run_quiet(path, [f"run_dir={tmp_path / 'reference'}"])
    cmd = [sys.executable, "-m", "mt_qa.cli", "run", str(path), "--workers", "2"]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    kill_after = random.Random(trial).randint(1, 25)  # of 32 shards
    done = tmp_path / "run" / "collect" / "_done"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and (not done.is_dir() or len(list(done.glob("*.json"))) < kill_after):
        time.sleep(0.005)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    assert not (tmp_path / "run" / "_steps" / "collect.json").exists(), "the kill should land mid-step"
    subprocess.run(cmd, check=True, capture_output=True)
    assert tree_digest(tmp_path / "run" / "collect") == tree_digest(tmp_path / "reference" / "collect")


def test_killed_array_task_rerun_alone_completes(tmp_path, squad_dir):
    base = [sys.executable, "-m", "mt_qa.cli", "collect", "-q", str(squad_dir / "dev-v1.1.en.json.gz"),
            "--shard-size", "300", "-o", str(tmp_path / "arr"), "--num-shards", "2"]  # fmt: skip
    subprocess.run([*base, "--shard-index", "0"], check=True, capture_output=True)
    victim = subprocess.Popen([*base, "--shard-index", "1"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 60
    while len(list((tmp_path / "arr" / "_done").glob("*.json"))) < 20 and time.monotonic() < deadline:
        time.sleep(0.01)
    victim.send_signal(signal.SIGKILL)
    victim.wait()
    assert not (tmp_path / "arr" / "manifest.json").exists()
    subprocess.run([*base, "--shard-index", "1"], check=True, capture_output=True)
    single = [a for a in base if a not in ("--num-shards", "2")]
    single[single.index(str(tmp_path / "arr"))] = str(tmp_path / "single")
    subprocess.run(single, check=True, capture_output=True)
    assert tree_digest(tmp_path / "arr") == tree_digest(tmp_path / "single")


def test_two_runs_on_one_run_dir_are_refused(tmp_path):
    with RunLock(tmp_path):
        with pytest.raises(RunLockedError, match=f"in use by another mtqa run \\(pid {os.getpid()}\\)"):
            with RunLock(tmp_path):
                pass
    with RunLock(tmp_path):  # released on exit
        pass


def test_lock_held_by_another_process_refuses_cli_run(tmp_path, squad_dir):
    path = pipeline_file(tmp_path, squad_dir)
    holder = subprocess.Popen(
        [sys.executable, "-c", "import sys,time; from mt_qa.run.lock import RunLock; from pathlib import Path\n"
         f"with RunLock(Path({str(tmp_path / 'run')!r})):\n    print('held', flush=True); time.sleep(30)"],
        stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert holder.stdout.readline().strip() == "held"
        out = subprocess.run([sys.executable, "-m", "mt_qa.cli", "run", str(path)], capture_output=True, text=True)
        assert out.returncode == 1 and f"in use by another mtqa run (pid {holder.pid})" in out.stderr
    finally:
        holder.kill()
        holder.wait()


def test_dry_run_prints_every_task(tmp_path, squad_dir):
    path = pipeline_file(tmp_path, squad_dir)
    out = subprocess.run([sys.executable, "-m", "mt_qa.cli", "run", str(path), "--dry-run", "--workers", "3"],
                         capture_output=True, text=True, check=True)  # fmt: skip
    assert out.stdout.count("mtqa collect") == 3 and "--shard-index 2" in out.stdout
    assert not (tmp_path / "run").exists()


def test_ray_executor_matches_local(tmp_path, squad_dir):
    pytest.importorskip("ray")
    from mt_qa.run.executors import RayExecutor

    path = pipeline_file(tmp_path, squad_dir, shard_size=2000)
    run_quiet(path, [f"run_dir={tmp_path / 'local'}"])
    import ray

    try:
        ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
        PipelineRunner(load_pipeline(path, [f"run_dir={tmp_path / 'ray'}"]), RayExecutor(2), echo=lambda m: None).run()
    finally:
        ray.shutdown()
    assert tree_digest(tmp_path / "ray" / "collect") == tree_digest(tmp_path / "local" / "collect")
