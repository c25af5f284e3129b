"""What `mtqa run` shows: each running task's progress on the console, whole step logs, per-attempt excerpts."""

from __future__ import annotations

import io
import os
from pathlib import Path

from click.testing import CliRunner
from rich.console import Console

from mt_qa.cli import cli
from mt_qa.run.progress import HEADER, ConsoleProgress, LogPump


def collect_pipeline(tmp_path: Path, source: Path, shard_size: int = 2000) -> Path:
    path = tmp_path / "pipe.yaml"
    path.write_text(f"""
name: t
run_dir: {tmp_path / "run"}
steps:
  - name: collect
    stage: collect
    args: ["{source}"]
    options: {{shard-size: {shard_size}}}
""")
    return path


def test_run_shows_each_tasks_progress_and_logs_everything(tmp_path, squad_dir, monkeypatch):
    monkeypatch.setenv("MTQA_PROGRESS_INTERVAL", "0")
    path = collect_pipeline(tmp_path, squad_dir / "dev-v1.1.en.json.gz")
    result = CliRunner().invoke(cli, ["run", str(path), "--workers", "2"])
    assert result.exit_code == 0, result.output
    # The console (not a terminal here) gets each task's own progress-bar lines, labelled by task.
    for task in (0, 1):
        lines = [line for line in result.stderr.splitlines() if line.startswith(f"[collect.{task}] collect:")]
        assert lines and "ex" in lines[-1], result.stderr
    for task in (0, 1):
        log = (tmp_path / "run" / "logs" / f"collect.{task}.log").read_text()
        assert log.startswith(HEADER) and f"--shard-index {task}" in log.splitlines()[0]
        assert "--quiet" not in log.splitlines()[0]
        assert "collect:" in log and "mtqa collect" in log  # the bar's final state and the stage's summary
        assert "\r" not in log  # redraws collapsed
    # The run's own summary: table rows are not cut at 80 columns off a terminal.
    assert str(tmp_path / "run") in result.stderr


def test_error_excerpt_shows_only_the_failed_attempt(tmp_path):
    path = collect_pipeline(tmp_path, tmp_path / "first-missing.json")
    result = CliRunner().invoke(cli, ["run", str(path), "--workers", "1"])
    assert result.exit_code == 1 and "first-missing.json" in str(result.exception)
    result = CliRunner().invoke(cli, ["run", str(path), "--workers", "1",
                                      "--set", f"steps.collect.args=[{tmp_path / 'second-missing.json'}]"])
    message = str(result.exception)
    assert result.exit_code == 1 and "second-missing.json" in message
    assert "first-missing.json" not in message  # the earlier attempt's lines stay in the log only
    log = (tmp_path / "run" / "logs" / "collect.log").read_text()
    assert log.count(HEADER) == 2 and "first-missing.json" in log


def test_log_pump_collapses_redraws_and_reports_lines(tmp_path):
    read, write = os.pipe()
    os.write(write, b"start\n\rbar 10%\rbar 50%\rbar 100%\ndone\n\rhalf")
    os.close(write)
    seen: list[str] = []
    log = io.BytesIO()
    with os.fdopen(read, "rb") as pipe:
        pump = LogPump(pipe, log, seen.append)
        pump.run()
    assert log.getvalue() == b"start\nbar 100%\ndone\nhalf\n"
    assert seen == ["start", "bar 10%", "bar 50%", "bar 100%", "done", "half"]


def test_live_lines_on_a_terminal():
    out = io.StringIO()
    console = Console(file=out, force_terminal=True, width=100)
    with ConsoleProgress("train", 1, console=console) as progress:
        progress.update(0, "train:  40%|####      | 4/10 [00:01<00:01, 4.0step/s]")
    assert "[train 0s] train:  40%|####" in out.getvalue()
    out = io.StringIO()
    with ConsoleProgress("filter", 2, console=Console(file=out, force_terminal=True, width=100)) as progress:
        progress.update(1, "filter: 7/9")
    assert "[filter.1 0s] filter: 7/9" in out.getvalue() and "[filter.0 0s] starting" in out.getvalue()
