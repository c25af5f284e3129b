"""What ``mtqa run`` shows while a step runs, and what its step logs hold.

Each task's output comes through a pipe. :class:`LogPump` copies it into the task's log file
(progress-bar redraws, which tqdm separates with ``\\r``, are collapsed to one snapshot a minute
and the bar's final state, so a log stays readable) and passes every progress line to a
:class:`ConsoleProgress`. On a terminal that is a live status line per running task, the task's
own progress bar; elsewhere (a cron job's or scheduler's log) the latest line of each task at
most every ``MTQA_PROGRESS_INTERVAL`` seconds (default 30).

Every attempt starts its log with a header line (:func:`attempt_header`), so an error excerpt
(:func:`attempt_tail`) shows only the lines of the attempt that failed.
"""

from __future__ import annotations

import os
import shlex
import threading
import time
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path
from typing import IO

from rich.console import Console
from rich.live import Live
from rich.text import Text

HEADER = "===== mtqa run: attempt"
SNAPSHOT_SECONDS = 60.0


def attempt_header(argv: list[str]) -> str:
    """The line that opens one attempt's part of a step log."""
    stamp = datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")  # noqa: UP017 - py3.10
    return f"{HEADER} {stamp}, pid {os.getpid()}: mtqa {shlex.join(argv)}\n"


def attempt_tail(log: Path | None, lines: int = 15) -> str:
    """The last lines of the latest attempt in ``log``, indented for an error message."""
    if log is None or not log.is_file():
        return ""
    text = log.read_text(errors="replace").splitlines()
    starts = [i for i, line in enumerate(text) if line.startswith(HEADER)]
    if starts:
        text = text[starts[-1] + 1:]
    return "\n".join("  | " + line for line in text[-lines:])


class LogPump(threading.Thread):
    """Copies a task's output pipe into its log; reports each line to ``on_line``."""

    def __init__(self, pipe: IO[bytes], log: IO[bytes], on_line: Callable[[str], None] | None = None,
                 snapshot_seconds: float = SNAPSHOT_SECONDS):  # fmt: skip
        super().__init__(daemon=True)
        self.pipe, self.log, self.on_line = pipe, log, on_line
        self.snapshot_seconds = snapshot_seconds

    def run(self) -> None:
        pending = b""  # the latest \r-redrawn line, not yet in the log
        last_snapshot = time.monotonic()
        buffer = bytearray()  # holds no separator between chunks; grows in place (a long line stays linear)
        while True:
            chunk = self.pipe.read1(65536) if hasattr(self.pipe, "read1") else self.pipe.read(65536)
            if not chunk:
                break
            start = len(buffer)  # only the new bytes can hold a separator
            buffer += chunk
            while True:
                cut = min((i for i in (buffer.find(b"\r", start), buffer.find(b"\n", start)) if i >= 0),
                          default=-1)  # fmt: skip
                if cut < 0:
                    break
                segment, sep, buffer = bytes(buffer[:cut]), buffer[cut:cut + 1], buffer[cut + 1:]
                start = 0
                if sep == b"\n":
                    # A line ends: a bar's final state (pending is superseded) or ordinary output.
                    self.log.write((segment or pending) + b"\n")
                    pending = b""
                elif segment:
                    pending = segment
                    if time.monotonic() - last_snapshot >= self.snapshot_seconds:
                        self.log.write(segment + b"\n")
                        last_snapshot = time.monotonic()
                        pending = b""
                if segment:
                    self.log.flush()
                    self._report(segment)
        rest = bytes(buffer) or pending
        if rest:
            self.log.write(rest + b"\n")
            self._report(rest)
        self.log.flush()

    def _report(self, segment: bytes) -> None:
        if self.on_line is not None:
            text = segment.decode("utf-8", errors="replace").strip()
            # Not a summary table's title, frame or row: those stay in the log.
            if text and not text.startswith("mtqa ") and not "\u2500" <= text[0] <= "\u257f":
                self.on_line(text)


class ConsoleProgress:
    """The console view of one step's running tasks: a live line each, or periodic lines off a terminal."""

    def __init__(self, step: str, tasks: int, console: Console | None = None, interval: float | None = None):
        self.step, self.tasks = step, tasks
        self.console = console or Console(stderr=True)
        if interval is None:
            interval = float(os.environ.get("MTQA_PROGRESS_INTERVAL", "30"))
        self.interval = interval
        self.latest: dict[int, str] = {}
        self._printed: dict[int, str] = {}
        self._last_print: dict[int, float] = {}
        self._lock = threading.Lock()
        self._live: Live | None = None
        self._started = time.monotonic()

    def label(self, index: int) -> str:
        return self.step if self.tasks == 1 else f"{self.step}.{index}"

    def callback(self, index: int) -> Callable[[str], None]:
        return lambda line: self.update(index, line)

    def update(self, index: int, line: str) -> None:
        with self._lock:
            self.latest[index] = line
            if self._live is not None:
                self._live.update(self._render())
                return
            now = time.monotonic()
            if now - self._last_print.get(index, self._started) >= self.interval and self._printed.get(index) != line:
                self._emit(index, line, now)

    def _emit(self, index: int, line: str, now: float) -> None:
        self.console.print(Text(f"[{self.label(index)}] {line}"), soft_wrap=True)
        self._printed[index], self._last_print[index] = line, now

    def _render(self) -> Text:
        elapsed = int(time.monotonic() - self._started)
        lines = [f"[{self.label(i)} {elapsed}s] {self.latest.get(i, 'starting ...')}" for i in range(self.tasks)]
        return Text("\n".join(lines), no_wrap=True, overflow="ellipsis")

    def __enter__(self) -> ConsoleProgress:
        if self.console.is_terminal:
            self._live = Live(self._render(), console=self.console, refresh_per_second=4, transient=False)
            self._live.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        with self._lock:
            if self._live is not None:
                self._live.update(self._render())
                self._live.__exit__(None, None, None)
                self._live = None
            else:  # off a terminal: the final state of every task that showed progress
                for index, line in sorted(self.latest.items()):
                    if self._printed.get(index) != line:
                        self._emit(index, line, time.monotonic())
