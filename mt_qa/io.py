"""The ground floor of file handling: atomic writes, sha256, and checked readers of text inputs.

Everything here depends on nothing else in mtqa but its errors, so any module (shard stores,
readers, evaluators, the trainer) can use it without pulling in Arrow or a stage.

- Writes are atomic: a temporary file in the same directory, fsynced, renamed over the target,
  with the mode ``open()`` would give (``mkstemp`` alone makes 0600, unreadable on a shared volume).
- Readers locate what is wrong: a non-UTF-8 byte by line and offset, malformed JSON by line and
  column, a missing file or a directory by path, each as one ``InputError``.
"""

from __future__ import annotations

import contextlib
import gzip
import hashlib
import io
import json
import os
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mt_qa.errors import InputError


def _umask() -> int:
    """The process umask, read without changing it (``os.umask`` is a set-and-get, racy in threads)."""
    with contextlib.suppress(OSError, ValueError):
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    old = os.umask(0o022)
    os.umask(old)
    return old


def file_mode() -> int:
    """The mode ``open()`` would give a new file: 0666 less the umask (``mkstemp`` always makes 0600)."""
    return 0o666 & ~_umask()


# ----------------------------------------------------------------------------- writing
def sha256_file(path: str | os.PathLike[str], chunk: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` so that readers see the old file or the new one, never half."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        os.fchmod(fd, file_mode())  # mkstemp makes 0600; a shared volume needs the umask's mode
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_json(path: Path, obj: Any) -> None:
    atomic_write_bytes(path, (json.dumps(obj, indent=2, sort_keys=True, ensure_ascii=False) + "\n").encode())


# ----------------------------------------------------------------------------- reading
def open_binary(path: Path) -> io.BufferedIOBase:
    """The file's bytes, gunzipped when it starts with the gzip magic (whatever its name)."""
    if not path.exists():
        raise InputError(str(path), "file", "not found")
    if path.is_dir():
        raise InputError(str(path), "file", "is a directory, expected a file")
    raw = open(path, "rb")  # noqa: SIM115 - returned to the caller, who closes it
    if raw.peek(2)[:2] == b"\x1f\x8b":
        return gzip.GzipFile(fileobj=raw)  # type: ignore[return-value]
    return raw


def read_text(path: Path) -> str:
    """Whole file as text (gzip transparent); non-UTF-8 bytes are located, not replaced."""
    with open_binary(path) as fh:
        try:
            data = fh.read()
        except (OSError, EOFError) as exc:
            raise InputError(str(path), "file", "cannot read (corrupt gzip?)", str(exc)) from exc
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        raise InputError(
            str(path), f"line {line}, byte {exc.start}", "not valid UTF-8", f"byte {data[exc.start : exc.start + 1]!r}"
        ) from exc


def load_json(path: Path) -> Any:
    text = read_text(path)
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise InputError(str(path), f"line {exc.lineno}, column {exc.colno}", "malformed JSON", exc.msg) from exc


def iter_lines(path: Path) -> Iterator[tuple[int, str | None, str]]:
    """(line number, text or None if undecodable, error detail) for each non-blank line."""
    with open_binary(path) as fh:
        for lineno, raw in enumerate(fh, 1):
            try:
                text = raw.decode("utf-8-sig" if lineno == 1 else "utf-8")
            except UnicodeDecodeError as exc:
                yield lineno, None, f"not valid UTF-8 at byte {exc.start} of the line"
                continue
            if text.strip():
                yield lineno, text, ""


@dataclass
class LineError:
    """A line of a JSON Lines file that is no JSON (or no UTF-8): where, why, and its text."""

    location: str
    reason: str
    detail: str
    payload: Any = None


def iter_json_lines(path: Path) -> Iterator[tuple[str, Any]]:
    """(location, parsed object or LineError) per non-blank line of a JSON Lines file."""
    for lineno, text, error in iter_lines(path):
        location = f"line {lineno}"
        if text is None:
            yield location, LineError(location, "encoding", error)
            continue
        try:
            yield location, json.loads(text)
        except json.JSONDecodeError as exc:
            yield location, LineError(location, "malformed_json", exc.msg, payload=text[:2000])
