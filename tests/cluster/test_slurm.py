"""The shipped Slurm manifests, submitted unchanged to a real single-node Slurm."""

from __future__ import annotations

import csv
import gzip
import json
import re
import shutil
import subprocess
import time
from pathlib import Path

import pytest

from tests.cluster.conftest import BIN, ROOT, assert_same_outputs, engine_env

pytestmark = pytest.mark.cluster
SLURM = ROOT / "manifests" / "slurm"
FINISHED = {"COMPLETED", "FAILED", "CANCELLED", "TIMEOUT", "NODE_FAIL", "OUT_OF_MEMORY", "PREEMPTED", "BOOT_FAIL"}


def sh(cmd: list[str], env: dict[str, str], cwd: Path, check: bool = True) -> subprocess.CompletedProcess:
    out = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=120)
    if check and out.returncode != 0:
        raise AssertionError(f"{' '.join(cmd)} exited {out.returncode}:\n{out.stdout}\n{out.stderr}")
    return out


def jobs(env: dict[str, str]) -> dict[str, dict[str, str]]:
    """Every job slurmctld remembers (MinJobAge keeps finished ones), by JobId[_ArrayTaskId]."""
    out = subprocess.run(["scontrol", "-o", "show", "job"], env=env, capture_output=True, text=True).stdout
    found = {}
    for line in out.splitlines():
        fields = dict(f.split("=", 1) for f in line.split() if "=" in f)
        if "JobId" in fields:
            key = f"{fields['ArrayJobId']}_{fields['ArrayTaskId']}" if "ArrayTaskId" in fields else fields["JobId"]
            found[key] = fields
    return found


def wait_for(env: dict[str, str], job_ids: list[str], until=None, timeout: float = 300) -> dict[str, dict[str, str]]:
    """Wait until every job (or array) in job_ids has finished, or ``until(jobs)`` holds."""
    deadline = time.monotonic() + timeout
    while True:
        mine = {k: v for k, v in jobs(env).items() if k.split("_")[0] in job_ids}
        if until is not None and until(mine):
            return mine
        if until is None and mine and all(v["JobState"] in FINISHED for v in mine.values()):
            return mine
        assert time.monotonic() < deadline, f"jobs still not done: {[(k, v['JobState']) for k, v in mine.items()]}"
        time.sleep(0.5)


def submitted(output: str) -> dict[str, str]:
    """{step: job id} from pipeline.sh's 'STEP: submitted as job ID (...)' lines."""
    return dict(re.findall(r"^(\S+): submitted as job (\d+)", output, re.M))


def assert_all_completed(found: dict[str, dict[str, str]]) -> None:
    bad = {k: (v["JobState"], v["ExitCode"]) for k, v in found.items()
           if v["JobState"] != "COMPLETED" or v["ExitCode"] != "0:0"}  # fmt: skip
    assert not bad, bad


def test_pipeline_sh_runs_the_chain_and_matches_a_local_run(slurm, workdir, reference):
    env = {**slurm, "MTQA_CPUS_PER_TASK": "1"}
    out = sh([str(SLURM / "pipeline.sh"), "pipe.yaml", "2"], env, workdir)
    ids = submitted(out.stdout)
    assert list(ids) == ["collect", "filter", "batches"], out.stdout
    found = wait_for(env, list(ids.values()))
    assert_all_completed(found)
    # Two array tasks per sharded step, one CPU each (MTQA_CPUS_PER_TASK), each doing its own share.
    for step in ("collect", "filter"):
        tasks = {k: v for k, v in found.items() if k.startswith(ids[step] + "_")}
        assert len(tasks) == 2 and all(v["NumCPUs"] == "1" for v in tasks.values())
        for i in range(2):
            log = (workdir / "logs" / f"mtqa-tiny-{step}-{ids[step]}_{i}.out").read_text()
            assert f"[{step}] task {i} of 2:" in log and f"--num-shards 2 --shard-index {i}" in log
    assert_same_outputs(workdir / "runs" / "tiny", reference)
    # Complete: a plain resubmission refuses, --resume submits nothing.
    again = sh([str(SLURM / "pipeline.sh"), "pipe.yaml", "2"], env, workdir, check=False)
    assert again.returncode == 1 and "already complete; use --resume" in again.stderr
    resumed = sh([str(SLURM / "pipeline.sh"), "--resume", "pipe.yaml", "2"], env, workdir)
    assert "nothing to submit" in resumed.stdout and not submitted(resumed.stdout)


def test_cancelled_array_task_then_resume_finishes_the_chain(slurm, workdir, reference):
    env = {**slurm, "MTQA_CPUS_PER_TASK": "1"}
    ids = submitted(sh([str(SLURM / "pipeline.sh"), "pipe.yaml", "2"], env, workdir).stdout)
    sh(["scancel", f"{ids['collect']}_1"], env, workdir)
    # The cancelled task fails the array; the jobs after it can never start (Slurm leaves them
    # pending as DependencyNeverSatisfied, or cancels them, depending on its DependencyParameters).
    def blocked(js):
        filt = [v for k, v in js.items() if k.split("_")[0] == ids["filter"]]
        return any(v.get("Reason") == "DependencyNeverSatisfied" for v in filt)

    stuck = wait_for(env, list(ids.values()), until=blocked)
    pending = [k for k, v in stuck.items() if v["JobState"] == "PENDING"]
    assert not (workdir / "runs" / "tiny" / "collect" / "manifest.json").exists()
    out = sh([str(SLURM / "pipeline.sh"), "--resume", "pipe.yaml", "2"], env, workdir)
    assert ("cancelling" in out.stdout) == bool(pending), out.stdout
    again = submitted(out.stdout)
    assert list(again) == ["collect", "filter", "batches"], out.stdout
    found = wait_for(env, list(again.values()))
    assert_all_completed(found)
    assert_same_outputs(workdir / "runs" / "tiny", reference)


def test_rerunning_one_array_task_by_hand_completes_the_step(slurm, workdir, reference):
    """The manual sbatch lines of step-array.sbatch's header: a whole array, then one task again."""
    env = slurm
    (workdir / "logs").mkdir()  # what the repository's committed logs/ is for the header's lines
    export = "ALL,PIPELINE=pipe.yaml,STEP=collect"
    first = sh(["sbatch", "--parsable", "--array=0-1", f"--export={export}", str(SLURM / "step-array.sbatch")],
               env, workdir).stdout.strip()  # fmt: skip
    sh(["scancel", f"{first}_1"], env, workdir)
    wait_for(env, [first])
    assert not (workdir / "runs" / "tiny" / "collect" / "manifest.json").exists()
    # A subset array without MTQA_NUM_SHARDS: a clear error, not a wrong split.
    bad = sh(["sbatch", "--parsable", "--array=1", f"--export={export}", str(SLURM / "step-array.sbatch")],
             env, workdir).stdout.strip()  # fmt: skip
    assert wait_for(env, [bad])[f"{bad}_1"]["JobState"] == "FAILED"
    assert "set MTQA_NUM_SHARDS to the step's task count" in (workdir / "logs" / f"mtqa-step-{bad}_1.out").read_text()
    rerun = sh(["sbatch", "--parsable", "--array=1", f"--export={export},MTQA_NUM_SHARDS=2",
                str(SLURM / "step-array.sbatch")], env, workdir).stdout.strip()  # fmt: skip
    assert_all_completed(wait_for(env, [rerun]))
    from tests.helpers import tree_digest

    run_dir = workdir / "runs" / "tiny"
    assert tree_digest(run_dir / "collect") == tree_digest(reference / "collect")
    assert (run_dir / "_steps" / "collect.json").is_file()  # the completing task marked the step


def test_nightly_scrontab_entry_runs_the_chain_as_a_slurm_job(slurm, workdir, reference):
    """manifests/slurm/nightly.scrontab, fired once. Debian's Slurm ships no scrontab command, and
    each firing of a scrontab entry is a batch job with the entry's #SCRON options, so the test
    submits exactly that job: the shipped options and command, with only the edits the file asks
    for (the directory, the pipeline and its task count). The job runs pipeline.sh --resume, which
    submits the chain from inside the job; a second firing finds nothing to do."""
    lines = (SLURM / "nightly.scrontab").read_text().splitlines()
    options = [line.removeprefix("#SCRON").strip() for line in lines if line.startswith("#SCRON ")]
    entries = [line for line in lines if line.strip() and not line.startswith("#")]
    assert len(entries) == 1, entries
    *schedule, command = entries[0].split(None, 5)
    assert schedule == ["0", "2", "*", "*", "*"]  # nightly at 02:00
    edited = [o.replace("--chdir=/shared/mtqa", f"--chdir={workdir}") for o in options]
    assert edited != options and command.endswith("pipelines/paper.yaml 8")
    command = command.removesuffix("pipelines/paper.yaml 8") + "pipe.yaml 2"
    # The entry's working directory as a user's checkout has it: the environment, the scripts, logs/.
    (workdir / ".venv").symlink_to(BIN.parent)
    (workdir / "manifests").symlink_to(ROOT / "manifests")
    (workdir / "logs").mkdir()
    script = workdir / "nightly-entry.sh"
    script.write_text(f"#!/bin/sh\n{command}\n")  # cron runs an entry's command with /bin/sh
    env = {**slurm, "MTQA_CPUS_PER_TASK": "1"}

    def fire() -> str:
        job = sh(["sbatch", "--parsable", *edited, str(script)], env, workdir).stdout.strip()
        state = wait_for(env, [job])[job]
        log = (workdir / "logs" / f"mtqa-nightly-submit-{job}.out").read_text()
        assert state["JobState"] == "COMPLETED", log
        return log

    ids = submitted(fire())
    assert list(ids) == ["collect", "filter", "batches"]
    assert_all_completed(wait_for(env, list(ids.values())))
    assert_same_outputs(workdir / "runs" / "tiny", reference)
    second = fire()
    assert "nothing to submit" in second and not submitted(second)


TRAIN_STEP = """  - name: train
    stage: train
    options: {{batches: "${{steps.batches}}", model: {model}, max-steps: 3, max-query-length: 16,
               max-passage-length: 32, mini-batch-size: 0, seed: 0, resume: true}}
"""


@pytest.fixture(scope="module")
def tiny_encoder(sample_data: Path, tmp_path_factory) -> Path:
    from tests.train.conftest import make_tiny_model

    doc = json.loads(gzip.open(sample_data / "dev.en.json.gz").read())
    texts = [p["context"] for a in doc["data"] for p in a["paragraphs"]]
    return make_tiny_model(texts, tmp_path_factory.mktemp("tiny-encoder"))


def _train_pipeline(work: Path, model: Path) -> None:
    (work / "pipe.yaml").write_text((work / "pipe.yaml").read_text() + TRAIN_STEP.format(model=model))


def _local_train_reference(workdir: Path, model: Path) -> Path:
    """The same pipeline, train step included, run locally with the thread budget a 1-CPU job gets."""
    ref = workdir.parent / "local"
    shutil.copytree(workdir, ref, symlinks=True)
    subprocess.run([str(BIN / "mtqa"), "run", "pipe.yaml", "--workers", "1"], cwd=ref, check=True,
                   env=engine_env(MTQA_THREADS="1"), capture_output=True)  # fmt: skip
    return ref / "runs" / "tiny"


def assert_same_model(run_dir: Path, reference: Path) -> None:
    """The same weights, bit for bit, and the same loss log but for its timing columns."""
    def log(path: Path) -> list[dict[str, str]]:
        rows = list(csv.DictReader((path / "train" / "training_log.csv").open(newline="")))
        return [{k: v for k, v in row.items() if k not in ("pairs_per_s", "seconds")} for row in rows]

    weights = (run_dir / "train" / "model.safetensors").read_bytes()
    assert weights == (reference / "train" / "model.safetensors").read_bytes()
    assert log(run_dir) == log(reference) and log(run_dir)


def test_train_step_on_a_cpu_only_cluster_runs_as_one_process(slurm, workdir, tiny_encoder):
    """pipeline.sh on a cluster without GPUs: train goes to step-single.sbatch (no torchrun) and
    trains exactly what a local run trains."""
    _train_pipeline(workdir, tiny_encoder)
    reference = _local_train_reference(workdir, tiny_encoder)
    env = {**slurm, "MTQA_CPUS_PER_TASK": "1"}
    out = sh([str(SLURM / "pipeline.sh"), "pipe.yaml", "2"], env, workdir)
    ids = submitted(out.stdout)
    assert list(ids) == ["collect", "filter", "batches", "train"], out.stdout
    assert "train: submitted as job" in out.stdout and "(train, 1 task(s))" in out.stdout
    found = wait_for(env, list(ids.values()))
    assert_all_completed(found)
    assert found[ids["train"]]["Command"].endswith("step-single.sbatch")
    assert_same_outputs(workdir / "runs" / "tiny", reference)
    assert_same_model(workdir / "runs" / "tiny", reference)


def test_train_sbatch_without_gpus_trains_like_a_local_run(slurm, workdir, tiny_encoder):
    """train.sbatch submitted by hand, as its header says, on a node without GPUs: one CPU process."""
    _train_pipeline(workdir, tiny_encoder)
    reference = _local_train_reference(workdir, tiny_encoder)
    subprocess.run([str(BIN / "mtqa"), "run", "pipe.yaml", "--workers", "1", "--only", "collect", "--only", "filter",
                    "--only", "batches"], cwd=workdir, env=engine_env(), check=True, capture_output=True)  # fmt: skip
    (workdir / "logs").mkdir()
    job = sh(["sbatch", "--parsable", "--cpus-per-task=1", "--export=ALL,PIPELINE=pipe.yaml,STEP=train",
              str(SLURM / "train.sbatch")], slurm, workdir).stdout.strip()  # fmt: skip
    state = wait_for(slurm, [job])[job]
    log = (workdir / "logs" / f"mtqa-train-{job}.out").read_text()
    assert state["JobState"] == "COMPLETED" and state["ExitCode"] == "0:0", log
    assert (workdir / "runs" / "tiny" / "_steps" / "train.json").is_file()
    assert_same_model(workdir / "runs" / "tiny", reference)
