"""What a reader yields, and the helpers readers share for opening and decoding files.

A reader turns one source (a file or a directory) into a stream of items:

- ``Example``: a well-formed QA example (in the source's own language);
- ``BadRecord``: a record that is malformed, with where it is and why; the stage fails on it
  or, with ``--on-error skip``, writes it to ``rejects/``;
- ``Skipped``: a well-formed record the format itself says to leave out (a SQuAD v2
  unanswerable question, an NQ example without a long answer); counted in the stats.

Problems that make the whole file unreadable (malformed JSON, a missing file) raise
``InputError`` straight away: there is no record to skip.
"""

from __future__ import annotations

import gzip
import io
import json
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from mt_qa.errors import InputError


@dataclass
class Example:
    source_id: str
    question: str
    passage: str
    location: str
    title: str = ""
    answers: list[str] = field(default_factory=list)
    answer_starts: list[int] = field(default_factory=list)
    # Readers whose format already has sentences (WikiQA) pass them; others are split later.
    passage_sentences: list[str] | None = None


@dataclass
class BadRecord:
    location: str
    reason: str
    detail: str
    payload: Any = None
    source_id: str | None = None


@dataclass
class Skipped:
    location: str
    reason: str


Item = Example | BadRecord | Skipped


class Reader:
    """Base class: one source format. Subclasses set ``name`` and implement ``read``."""

    name: ClassVar[str] = ""
    dataset: ClassVar[str] = ""  # the default ``dataset`` column value
    # False for question-only formats (NQ-open): an empty passage is then not an error.
    needs_passage: ClassVar[bool] = True

    def __init__(self, path: str | os.PathLike[str], **options: Any):
        self.path = Path(path)
        self.options = options

    def read(self) -> Iterator[Item]:
        raise NotImplementedError

    def default_split(self) -> str:
        return infer_split(self.path)

    def input_files(self) -> list[Path]:
        """The files this source reads, for checksums in the manifest."""
        return [self.path] if self.path.is_file() else sorted(p for p in self.path.rglob("*") if p.is_file())


def open_binary(path: Path) -> io.BufferedIOBase:
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


def iter_json_lines(path: Path) -> Iterator[tuple[str, Any]]:
    """(location, parsed object or BadRecord) per line of a JSON Lines file."""
    for lineno, text, error in iter_lines(path):
        location = f"line {lineno}"
        if text is None:
            yield location, BadRecord(location, "encoding", error)
            continue
        try:
            yield location, json.loads(text)
        except json.JSONDecodeError as exc:
            yield location, BadRecord(location, "malformed_json", exc.msg, payload=text[:2000])


def require_str(obj: Any, key: str, location: str, *, allow_empty: bool = False) -> str | BadRecord:
    """The string at ``obj[key]``, or a BadRecord saying what is wrong with it."""
    if not isinstance(obj, dict):
        return BadRecord(location, "wrong_type", f"expected an object, got {type(obj).__name__}", payload=obj)
    if key not in obj or obj[key] is None:
        return BadRecord(location, "missing_field", f"no {key!r}", payload=obj)
    value = obj[key]
    if isinstance(value, (int, float)) and not isinstance(value, bool) and key.endswith("id"):
        value = str(value)
    if not isinstance(value, str):
        return BadRecord(location, "wrong_type", f"{key!r} should be a string, got {type(value).__name__}", payload=obj)
    if not allow_empty and not value.strip():
        return BadRecord(location, f"empty_{key}", f"{key!r} is empty", payload=obj)
    return value


def infer_split(path: Path, default: str = "train") -> str:
    """'dev' / 'test' / 'train' from a file name such as dev-v1.1.json or WikiQA-test.tsv."""
    name = path.name.lower()
    for token, split in (("validation", "dev"), ("dev", "dev"), ("val", "dev"), ("test", "test"), ("train", "train")):
        if token in name:
            return split
    return default
