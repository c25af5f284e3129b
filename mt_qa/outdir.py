"""Claiming and locking a command's output directory: the one place every writing command goes through.

Every command that writes a directory (the sharded stages through ``ShardStore.begin``,
build-lareqa, evaluate, train) calls :func:`claim_output` before it writes anything. It
guarantees three things:

* **Nothing mtqa did not make is destroyed.** A non-empty directory without one of the
  command's marker files (``_run.json``, ``manifest.json``, ``build.json`` ...) is refused,
  with or without ``--overwrite``; ``--overwrite`` only ever deletes entries mtqa itself names.
* **One configuration per directory, one writer per configuration.** Two ``flock`` files
  live in the directory: ``.mtqa-claim.lock`` is held exclusively for the few milliseconds
  of the claim (read the claim file, decide, write it), ``.mtqa.lock`` for the whole run. A
  *shared* claim (job-array tasks of one sharded step) takes ``.mtqa.lock`` shared, so the
  N tasks of one configuration run side by side while another configuration (which must take
  it exclusively to replace the claim) is refused; the shard store adds a lock per shard so
  two tasks that own the same shard write it one after the other. An *exclusive* claim (train,
  evaluate, build-lareqa) takes it exclusively. The kernel drops both locks when the process
  exits, however it exits (SIGKILL included), so no stale lock is ever left.
* **No litter.** Temporary files (``.*.tmp``) are removed when the claim finds no other
  writer: they can then only be left-overs of a killed attempt.

The lock files are empty, so directories stay byte-identical across runs.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import shutil
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

from mt_qa.errors import MtqaError
from mt_qa.io import file_mode

CLAIM_LOCK = ".mtqa-claim.lock"
RUN_LOCK = ".mtqa.lock"
LOCK_FILES = frozenset({CLAIM_LOCK, RUN_LOCK})
# Holds of this process by directory: a command run twice in one process (tests, notebooks,
# the Ray actor) first gives up its own earlier hold, which would otherwise lock it out.
_HELD: dict[Path, OutputHold] = {}


class OutputLockedError(MtqaError):
    """The output directory is being written by another mtqa process."""


def is_temp(name: str) -> bool:
    return name.startswith(".") and name.endswith(".tmp")


def has_entries(root: Path) -> bool:
    """Whether ``root`` holds anything besides mtqa's lock and temp files."""
    return root.is_dir() and any(p.name not in LOCK_FILES and not is_temp(p.name) for p in root.iterdir())


def open_lock(path: Path) -> int:
    return os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, file_mode())


def try_flock(fd: int, mode: int) -> bool:
    try:
        fcntl.flock(fd, mode | fcntl.LOCK_NB)
    except OSError as exc:
        if exc.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
            return False
        raise
    return True


@dataclass
class OutputHold:
    """A claimed output directory; the run lock is held until :meth:`release` or process exit."""

    root: Path
    fd: int | None
    shared: bool

    def release(self) -> None:
        if self.fd is not None:
            fcntl.flock(self.fd, fcntl.LOCK_UN)
            os.close(self.fd)
            self.fd = None
            if _HELD.get(self.root) is self:
                del _HELD[self.root]

    def __enter__(self) -> OutputHold:
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


def check_writable_dir(root: Path, option: str = "--out") -> None:
    if root.exists() and not root.is_dir():
        raise MtqaError(f"{option} {root}: exists and is not a directory")
    for parent in root.parents:
        if parent.exists():
            if not parent.is_dir():
                raise MtqaError(f"{option} {root}: {parent} is not a directory")
            break


def remove_temp_files(root: Path) -> int:
    """Delete every ``.*.tmp`` file or directory under ``root``; only safe with no other writer."""
    removed = 0
    for path in sorted(root.rglob(".*.tmp"), key=lambda p: len(p.parts), reverse=True):
        with contextlib.suppress(FileNotFoundError):
            if path.is_dir() and not path.is_symlink():
                shutil.rmtree(path)
            else:
                path.unlink()
            removed += 1
    return removed


def remove_entries(root: Path, names: Iterable[str]) -> None:
    """Delete the named top-level entries of ``root`` (mtqa's own), leaving everything else alone."""
    for name in names:
        path = root / name
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path)
        elif path.exists() or path.is_symlink():
            path.unlink()


def claim_output(
    root: str | os.PathLike[str],
    *,
    markers: Iterable[str],
    same_run: Callable[[], bool],
    overwrite: bool = False,
    may_replace: Callable[[], bool] | None = None,
    clear: Callable[[], None] | None = None,
    write_claim: Callable[[], None] | None = None,
    shared: bool = False,
    what: str = "output directory",
    overwrite_hint: str = "--overwrite",
    error: type[MtqaError] = MtqaError,
    claim_files: Iterable[str] = (),
) -> OutputHold:
    """Claim ``root`` for this run and lock it for as long as the returned hold lives.

    ``markers``: names that only this kind of mtqa output contains; a non-empty directory
    with none of them is not ours and is never written into or deleted. ``same_run()``: the
    existing claim is this run's (resume). Otherwise the directory is replaced (``clear()``
    then ``write_claim()``) when ``overwrite`` or ``may_replace()`` (nothing of value there),
    else refused. Replacing needs the run lock exclusively, so a directory another process is
    writing is never replaced under it.
    """
    root = Path(root)
    check_writable_dir(root)
    earlier = _HELD.get(root.resolve())
    if earlier is not None:
        earlier.release()
    markers = tuple(markers)
    if root.is_dir():
        # The lock files mark a directory an mtqa command claimed (and may have been killed in).
        if has_entries(root) and not any((root / m).exists() for m in (*markers, RUN_LOCK)):
            raise error(
                f"{root} exists, is not empty and is not an mtqa {what} (none of {', '.join(markers)} in it); "
                "mtqa never writes into or deletes a directory it did not make: choose a new or empty directory"
            )
    try:
        root.mkdir(parents=True, exist_ok=True)
        claim_fd = open_lock(root / CLAIM_LOCK)
    except OSError as exc:
        raise MtqaError(f"{root}: cannot create the {what}: {exc.strerror}") from exc
    run_fd: int | None = None
    try:
        fcntl.flock(claim_fd, fcntl.LOCK_EX)  # held only while the claim is decided and written
        run_fd = open_lock(root / RUN_LOCK)
        if any((root / m).exists() for m in markers) and same_run():
            alone = try_flock(run_fd, fcntl.LOCK_EX)
            if not alone and (not shared or not try_flock(run_fd, fcntl.LOCK_SH)):
                raise OutputLockedError(f"{root} is being written by another mtqa process; wait for it to finish "
                                        "or use another output directory")
            if alone:
                remove_temp_files(root)
            for name in claim_files:
                for path in root.glob(f".{name}.*.tmp"):
                    path.unlink(missing_ok=True)
        else:
            replacing = any((root / m).exists() for m in markers)
            if replacing and not overwrite and not (may_replace and may_replace()):
                raise error(f"{root} holds output of a different run (a {what} made with other params or "
                            f"inputs); use a new output directory or {overwrite_hint}")
            if not try_flock(run_fd, fcntl.LOCK_EX):
                raise OutputLockedError(f"{root} is being written by another mtqa process with other settings; "
                                        "wait for it to finish or use another output directory")
            remove_temp_files(root)
            if replacing and clear is not None:
                clear()
            if write_claim is not None:
                write_claim()
        if shared:
            fcntl.flock(run_fd, fcntl.LOCK_SH)  # a downgrade: array siblings may join now
        hold = OutputHold(root.resolve(), run_fd, shared)
        _HELD[hold.root] = hold
        return hold
    except BaseException:
        if run_fd is not None:
            os.close(run_fd)
        raise
    finally:
        fcntl.flock(claim_fd, fcntl.LOCK_UN)
        os.close(claim_fd)


class FileLock:
    """An exclusive ``flock`` on one file, blocking or not; released on exit or process death."""

    def __init__(self, path: Path):
        self.path = path
        self.fd: int | None = None

    def acquire(self, blocking: bool = True) -> bool:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = open_lock(self.path)
        if blocking:
            fcntl.flock(fd, fcntl.LOCK_EX)
        elif not try_flock(fd, fcntl.LOCK_EX):
            os.close(fd)
            return False
        self.fd = fd
        return True

    def release(self) -> None:
        if self.fd is not None:
            fcntl.flock(self.fd, fcntl.LOCK_UN)
            os.close(self.fd)
            self.fd = None

    def __enter__(self) -> FileLock:
        self.acquire()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()
