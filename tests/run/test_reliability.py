"""mtqa run: workers die with the run, completion follows input content, a missing output is never done,
temp files of killed marker writes are cleaned."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from mt_qa.run.config import load_pipeline
from mt_qa.run.executors import LocalExecutor
from mt_qa.run.runner import PipelineRunner

FIX = Path(__file__).resolve().parents[1] / "fixtures" / "collect"


def run_quiet(path: Path, workers: int = 1) -> list[str]:
    summary = PipelineRunner(load_pipeline(path), LocalExecutor(workers), echo=lambda m: None).run()
    return [s["status"] for s in summary["steps"]]


def two_steps(tmp_path: Path, source: Path) -> Path:
    path = tmp_path / "pipe.yaml"
    path.write_text(f"""
run_dir: {tmp_path / "run"}
steps:
  - {{name: collect, stage: collect, args: ["{source}"], options: {{shard-size: 2}}}}
  - {{name: filter, stage: filter, args: ["${{steps.collect}}"], options: {{skip: langid}}}}
""")
    return path


def test_an_input_changed_in_place_reruns_its_steps(tmp_path):
    source = tmp_path / "in.json"
    shutil.copy(FIX / "squad_v2.json", source)
    path = two_steps(tmp_path, source)
    assert run_quiet(path) == ["ran", "ran"]
    assert run_quiet(path) == ["skipped", "skipped"]
    source.write_text(source.read_text().replace("Normans", "Nordmen"))  # same path, same argv, new content
    with pytest.raises(Exception, match="different run"):
        run_quiet(path)  # collect reruns and refuses its directory of the old input: not a stale "skipped"


def test_a_deleted_output_is_never_done(tmp_path):
    path = two_steps(tmp_path, FIX / "squad_v2.json")
    assert run_quiet(path) == ["ran", "ran"]
    shutil.rmtree(tmp_path / "run" / "filter")
    assert run_quiet(path) == ["skipped", "ran"]
    assert (tmp_path / "run" / "filter" / "manifest.json").is_file()


def test_an_unchanged_rerun_of_an_upstream_step_keeps_downstream_done(tmp_path):
    path = two_steps(tmp_path, FIX / "squad_v2.json")
    assert run_quiet(path) == ["ran", "ran"]
    (tmp_path / "run" / "_steps" / "collect.json").unlink()  # collect runs again, writes the same bytes
    assert run_quiet(path) == ["ran", "skipped"]


def test_temp_files_of_killed_marker_writes_are_removed(tmp_path):
    path = two_steps(tmp_path, FIX / "squad_v2.json")
    run_quiet(path)
    litter = [tmp_path / "run" / ".run.json.x1.tmp", tmp_path / "run" / "._run.json.x2.tmp",
              tmp_path / "run" / "_steps" / ".filter.json.x3.tmp"]
    for p in litter:
        p.write_text("half")
    run_quiet(path)
    assert not [p for p in litter if p.exists()]


# ----------------------------------------------------------------------------- workers die with the run


def fifo_pipeline(tmp_path: Path) -> Path:
    """A collect step that blocks reading a FIFO nobody writes: a worker that runs until killed."""
    fifo = tmp_path / "never.jsonl"
    os.mkfifo(fifo)
    path = tmp_path / "pipe.yaml"
    path.write_text(f"run_dir: {tmp_path / 'run'}\nsteps: [{{name: c, stage: collect, args: ['{fifo}']}}]\n")
    return path


def children(pid: int) -> list[int]:
    found = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        text = (task / "children").read_text().split()
        found += [int(x) for x in text]
    return found


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return False
    return state not in ("Z", "X")


def start_run(tmp_path: Path) -> tuple[subprocess.Popen, int]:
    path = fifo_pipeline(tmp_path)
    # stderr kept, with faulthandler on: if the run ever hangs, SIGABRT dumps where (see below).
    err = open(tmp_path / "run.stderr", "wb")  # noqa: SIM115 - the child holds it; closed with the test's tmp dir
    proc = subprocess.Popen([sys.executable, "-m", "mt_qa.cli", "run", str(path), "--workers", "2"],
                            stdout=subprocess.DEVNULL, stderr=err, env={**os.environ, "PYTHONFAULTHANDLER": "1"},
                            # A job started with `&` by a non-interactive shell (CI launched in the background)
                            # inherits SIGINT ignored, and Python keeps an ignored SIGINT ignored: reset it, so the
                            # run sees Ctrl-C as a user's foreground run does.
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))  # fmt: skip
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        kids = children(proc.pid)
        if len(kids) == 2 and (tmp_path / "run" / "logs").is_dir():  # both workers (--workers 2) started
            time.sleep(1.0)  # the worker is up and blocked on the FIFO
            return proc, kids[0]
        time.sleep(0.05)
    proc.kill()
    raise AssertionError("the worker never started")


def wait_dead(pid: int, seconds: float = 20) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if not alive(pid):
            return True
        time.sleep(0.05)
    return False


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="parent-death signal is Linux only")
@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT, signal.SIGKILL])
def test_workers_do_not_outlive_the_run(tmp_path, sig):
    proc, worker = start_run(tmp_path)
    try:
        assert alive(worker)
        proc.send_signal(sig)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.send_signal(signal.SIGABRT)  # faulthandler writes every thread's stack to run.stderr
            proc.wait(10)
            stacks = (tmp_path / "run.stderr").read_text(errors="replace")[-4000:]
            raise AssertionError(f"mtqa run still running 30 s after {sig.name}:\n{stacks}") from None
        assert wait_dead(worker), f"worker {worker} outlived mtqa run after {sig.name}"
    finally:
        for pid in (proc.pid, worker):
            if alive(pid):
                os.kill(pid, signal.SIGKILL)


def test_caches_and_written_options_are_not_inputs(tmp_path):
    from mt_qa.run.config import Pipeline, Step
    from mt_qa.run.runner import step_inputs

    (tmp_path / "in.json").write_text("{}")
    for name in ("cache", "dev", "model"):
        (tmp_path / name).mkdir()
    step = Step("s", "evaluate lareqa", [str(tmp_path / "in.json")],
                {"cache-dir": str(tmp_path / "cache"), "dev_out": str(tmp_path / "dev"),
                 "model": str(tmp_path / "model"), "parallel": [f"es={tmp_path / 'in.json'}"], "langs": "de,ar"})
    pipe = Pipeline("p", tmp_path / "run", [step], "p.yaml", {})
    assert step_inputs(step, pipe) == [str(tmp_path / "in.json"), str(tmp_path / "model")]
