"""The Ray executor and manifests/ray/job.yaml on a real Ray head at 127.0.0.1."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import time

import pytest

from tests.cluster.conftest import BIN, ROOT, assert_same_outputs

pytestmark = pytest.mark.cluster


def test_ray_job_submit_with_the_shipped_runtime_env(ray_head, workdir, reference):
    """`ray job submit --runtime-env manifests/ray/job.yaml -- ... mtqa run ... --executor ray`."""
    entry = f"cd {workdir} && mtqa run pipe.yaml --executor ray --ray-address auto --workers 2"
    out = subprocess.run([str(BIN / "ray"), "job", "submit", "--address", ray_head["dashboard"], "--runtime-env",
                          str(ROOT / "manifests" / "ray" / "job.yaml"), "--", "bash", "-c", entry],
                         env=ray_head["env"], capture_output=True, text=True, timeout=300)  # fmt: skip
    text = out.stdout + out.stderr
    assert out.returncode == 0 and "succeeded" in text, text[-3000:]
    assert_same_outputs(workdir / "runs" / "tiny", reference)
    # Loopback only: every address the job printed (RAY_ADDRESS, the dashboard) is 127.0.0.1.
    addresses = set(re.findall(r"\b\d{1,3}(?:\.\d{1,3}){3}\b", text))
    assert addresses <= {"127.0.0.1"}, addresses
    listed = subprocess.run([str(BIN / "ray"), "job", "list", "--address", ray_head["dashboard"]],
                            env=ray_head["env"], capture_output=True, text=True).stdout  # fmt: skip
    assert set(re.findall(r"\b\d{1,3}(?:\.\d{1,3}){3}\b", listed)) <= {"127.0.0.1"}, listed[-2000:]


def test_driver_elsewhere_than_ray_start_resolves_relative_paths(ray_head, workdir, reference):
    """`ray start` ran in another directory; the pipeline's relative paths are the driver's."""
    cmd = [str(BIN / "mtqa"), "run", "pipe.yaml", "--executor", "ray", "--ray-address", ray_head["address"],
           "--workers", "2"]  # fmt: skip
    out = subprocess.run(cmd, cwd=workdir, env=ray_head["env"], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    assert_same_outputs(workdir / "runs" / "tiny", reference)


def _kill_first_actor(log, timeout=120) -> int:
    """kill -9 the actor process named in a task log's first line, as soon as it appears."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if log.is_file():
            match = re.search(r"pid (\d+):", log.read_text())
            if match:
                os.kill(int(match.group(1)), signal.SIGKILL)
                return int(match.group(1))
        time.sleep(0.02)
    raise AssertionError(f"{log} never named its actor")


@pytest.mark.parametrize("retries", [2, 0])
def test_a_killed_actor_costs_one_task_attempt_not_the_run(ray_head, workdir, reference, retries):
    """kill -9 of one actor: with retries the task reruns on a fresh actor and the run completes
    byte-identical; without, only that task fails, with one Error line, and its sibling finishes."""
    cmd = [str(BIN / "mtqa"), "run", "pipe.yaml", "--only", "collect", "--executor", "ray", "--ray-address",
           ray_head["address"], "--workers", "2", "--task-retries", str(retries)]  # fmt: skip
    proc = subprocess.Popen(cmd, cwd=workdir, env=ray_head["env"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)  # fmt: skip
    log = workdir / "runs" / "tiny" / "logs" / "collect.1.log"
    killed = _kill_first_actor(log)
    stdout, stderr = proc.communicate(timeout=300)
    text = log.read_text()
    attempts = re.findall(r"pid (\d+):", text)
    assert attempts[0] == str(killed)
    from tests.helpers import tree_digest

    collect = workdir / "runs" / "tiny" / "collect"
    if retries:
        assert proc.returncode == 0, stderr[-3000:]
        assert len(attempts) == 2 and attempts[1] != attempts[0], text  # one retry, on a new process
        assert tree_digest(collect) == tree_digest(reference / "collect")
    else:
        assert proc.returncode == 1 and "Traceback" not in stderr, stderr[-3000:]
        assert "Error: step 'collect' failed (1 of 2 task(s))" in stderr
        assert "lost after 0 retries" in text
        sibling = (workdir / "runs" / "tiny" / "logs" / "collect.0.log").read_text()
        assert re.search(r"(finished its \d+\s+shard|\d+ rows)", sibling), sibling  # the sibling ran to its end
        assert not (collect / "manifest.json").exists()
