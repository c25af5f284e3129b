"""One pipeline run per run directory at a time: an advisory lock that dies with its holder."""

from __future__ import annotations

import fcntl
import os
from pathlib import Path
from types import TracebackType

from mt_qa.errors import MtqaError


class RunLockedError(MtqaError):
    pass


class RunLock:
    """``flock`` on ``<run_dir>/.lock``: the kernel releases it when the process dies, even by
    SIGKILL, so a crashed run never leaves a stale lock behind."""

    def __init__(self, run_dir: Path):
        self.path = Path(run_dir) / ".lock"
        self._fd: int | None = None

    def __enter__(self) -> RunLock:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError as exc:
            holder = os.pread(fd, 64, 0).decode(errors="replace").strip() or "?"
            os.close(fd)
            raise RunLockedError(
                f"{self.path.parent} is in use by another mtqa run (pid {holder}); wait for it to finish "
                "or use another run directory"
            ) from exc
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        self._fd = fd
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None):
        if self._fd is not None:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None
