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

import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from mt_qa import io


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


def iter_json_lines(path: Path) -> Iterator[tuple[str, Any]]:
    """(location, parsed object or BadRecord) per line of a JSON Lines file."""
    for location, obj in io.iter_json_lines(path):
        if isinstance(obj, io.LineError):
            obj = BadRecord(obj.location, obj.reason, obj.detail, payload=obj.payload)
        yield location, obj


def offset_problem(starts: list[int]) -> str | None:
    """What is wrong with answer offsets Arrow's int64 column cannot hold (else a traceback at write time)."""
    bad = [start for start in starts if not -(2**63) <= start < 2**63]
    return f"answer_start {bad[0]} does not fit a 64-bit integer" if bad else None


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
