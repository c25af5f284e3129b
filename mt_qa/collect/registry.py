"""Format names -> reader classes, and format detection from a path's name and first bytes."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from mt_qa.collect.base import Reader
from mt_qa.collect.msmarco import MSMarcoReader
from mt_qa.collect.natural_questions import NaturalQuestionsReader, NQOpenReader
from mt_qa.collect.squad import SquadReader
from mt_qa.collect.tabular import CsvReader, HubReader, JsonlReader, ParquetReader
from mt_qa.collect.triviaqa import TriviaQAReader
from mt_qa.collect.wikiqa import WikiQAReader
from mt_qa.errors import InputError, MtqaError
from mt_qa.io import open_binary

READERS: dict[str, type[Reader]] = {
    cls.name: cls
    for cls in (
        SquadReader,
        NaturalQuestionsReader,
        NQOpenReader,
        MSMarcoReader,
        WikiQAReader,
        TriviaQAReader,
        JsonlReader,
        CsvReader,
        ParquetReader,
        HubReader,
    )
}
FORMATS = ("auto", *READERS)


def detect_format(path: str) -> str:
    """Guess the format; the error lists the formats so the user can pass --format."""
    if path.startswith("hf:"):
        return "hub"
    p = Path(path)
    if p.is_dir():
        if (p / "collection.tsv").exists():
            return "msmarco"
        if (p / "dataset_info.json").exists() or (p / "dataset_dict.json").exists():
            return "hub"
        raise InputError(path, "path", "a directory of unknown layout", f"pass --format (one of {', '.join(READERS)})")
    if not p.exists():
        raise InputError(path, "file", "not found")
    name = p.name.lower().removesuffix(".gz")
    if name.endswith(".parquet"):
        return "parquet"
    if name.endswith((".csv",)):
        return "csv"
    if name.endswith((".tsv", ".tab")):
        with open_binary(p) as fh:
            header = fh.readline().decode("utf-8", "replace")
        return "wikiqa" if "QuestionID" in header and "Sentence" in header else "csv"
    if name.endswith(".jsonl") or name.endswith(".ndjson"):
        with open_binary(p) as fh:
            first = fh.readline().decode("utf-8", "replace")
        try:
            keys = set(json.loads(first)) if first.strip() else set()
        except (json.JSONDecodeError, TypeError):
            keys = set()
        if "document_text" in keys:
            return "nq"
        if "question" in keys and "answer" in keys and not keys & {"context", "passage", "text"}:
            return "nq-open"
        return "jsonl"
    if name.endswith(".json"):
        with open_binary(p) as fh:
            head = fh.read(4096).decode("utf-8", "replace")
        if '"Data"' in head:
            return "triviaqa"
        return "squad"
    raise InputError(
        path, "file", "cannot tell the format from the name", f"pass --format (one of {', '.join(READERS)})"
    )


def make_reader(path: str, fmt: str = "auto", options: dict[str, Any] | None = None) -> Reader:
    if fmt == "auto":
        fmt = detect_format(path)
    if fmt not in READERS:
        raise MtqaError(f"unknown format {fmt!r}; one of {', '.join(FORMATS)}")
    return READERS[fmt](path, **(options or {}))
