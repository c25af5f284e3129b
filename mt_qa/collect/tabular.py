"""Generic JSONL / CSV / Parquet with a column mapping, and Hugging Face datasets."""

from __future__ import annotations

import os
import socket
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from mt_qa.collect.base import BadRecord, Example, Item, Reader, iter_json_lines, offset_problem
from mt_qa.errors import InputError, MtqaError

# Our field -> column names tried in order when no mapping is given.
DEFAULT_COLUMNS = {
    "id": ("id", "qid", "question_id", "_id"),
    "question": ("question", "query", "question_text"),
    "passage": ("passage", "context", "text", "document", "positive"),
    "title": ("title", "document_title"),
    "answers": ("answers", "answer"),
}


def row_to_item(row: Mapping[str, Any], location: str, mapping: Mapping[str, str], fallback_id: str) -> Item:
    """Map one generic row to an Example using ``mapping`` (our field -> its column)."""

    def column(field: str) -> str | None:
        if field in mapping:
            return mapping[field]
        return next((c for c in DEFAULT_COLUMNS[field] if c in row), None)

    values: dict[str, Any] = {}
    for field in ("question", "passage"):
        col = column(field)
        if col is None or col not in row or row[col] is None:
            return BadRecord(
                location,
                "missing_field",
                f"no column for {field!r} (map one with --map {field}=COLUMN)",
                payload=dict(row),
            )
        if not isinstance(row[col], str):
            return BadRecord(
                location, "wrong_type", f"{col!r} should be text, got {type(row[col]).__name__}", payload=dict(row)
            )
        values[field] = row[col]
    id_col = column("id")
    source_id = str(row[id_col]) if id_col and row.get(id_col) is not None else fallback_id
    if not values["question"].strip():
        return BadRecord(location, "empty_question", "the question is empty", payload=dict(row), source_id=source_id)
    title_col = column("title")
    title = row.get(title_col) if title_col else ""
    answers, starts = _answers(row.get(column("answers") or "", None))
    if answers is None:
        return BadRecord(
            location,
            "wrong_type",
            "answers should be a string, a list of strings, or SQuAD-style {'text': [...], 'answer_start': [...]}",
            payload=dict(row),
            source_id=source_id,
        )
    problem = offset_problem(starts)
    if problem:
        return BadRecord(location, "wrong_type", problem, payload=dict(row), source_id=source_id)
    return Example(
        source_id,
        values["question"],
        values["passage"],
        location,
        title if isinstance(title, str) else "",
        answers,
        starts,
    )


def _answers(value: Any) -> tuple[list[str] | None, list[int]]:
    if value is None:
        return [], []
    if isinstance(value, str):
        return [value], [-1]
    if isinstance(value, Mapping) and "text" in value:  # HF squad-style
        texts = list(value.get("text") or [])
        starts = list(value.get("answer_start") or [-1] * len(texts))
        if all(isinstance(t, str) for t in texts) and len(starts) == len(texts):
            try:
                return texts, [int(s) for s in starts]
            except (TypeError, ValueError):  # not a number: the caller names the record
                return None, []
        return None, []
    if isinstance(value, Iterable) and not isinstance(value, (bytes, Mapping)):
        items = list(value)
        if all(isinstance(t, str) for t in items):
            return items, [-1] * len(items)
    return None, []


def parse_mapping(pairs: Iterable[str]) -> dict[str, str]:
    """['question=q', 'passage=ctx'] -> {'question': 'q', 'passage': 'ctx'}."""
    mapping = {}
    for pair in pairs:
        field, sep, col = pair.partition("=")
        if not sep or field not in DEFAULT_COLUMNS or not col:
            raise MtqaError(f"--map {pair!r}: expected FIELD=COLUMN with FIELD one of {sorted(DEFAULT_COLUMNS)}")
        mapping[field] = col
    return mapping


def _hub_reachable(timeout: float = 5.0) -> tuple[bool, str]:
    """Probe the hub's host once, so an offline machine fails in seconds, not after retries."""
    endpoint = os.environ.get("HF_ENDPOINT", "https://huggingface.co")
    parsed = urlparse(endpoint)
    host, port = parsed.hostname or "huggingface.co", parsed.port or (443 if parsed.scheme == "https" else 80)
    try:
        socket.create_connection((host, port), timeout=timeout).close()
    except OSError as exc:
        return False, f"{host}:{port}: {exc}"
    return True, ""


class _MappedReader(Reader):
    @property
    def mapping(self) -> dict[str, str]:
        return dict(self.options.get("mapping") or {})

    @property
    def dataset(self) -> str:  # type: ignore[override]
        return self.path.name.split(".")[0]


class JsonlReader(_MappedReader):
    name = "jsonl"

    def read(self) -> Iterator[Item]:
        for location, obj in iter_json_lines(self.path):
            if isinstance(obj, BadRecord):
                yield obj
            elif not isinstance(obj, dict):
                yield BadRecord(location, "wrong_type", f"expected an object, got {type(obj).__name__}", payload=obj)
            else:
                yield row_to_item(obj, location, self.mapping, location.split()[-1])


class CsvReader(_MappedReader):
    name = "csv"

    def read(self) -> Iterator[Item]:
        import pandas as pd

        sep = "\t" if self.path.suffix.lower() in (".tsv", ".tab") else ","
        try:
            frame = pd.read_csv(self.path, sep=sep, dtype=str, keep_default_na=False, encoding="utf-8")
        except UnicodeDecodeError as exc:
            raise InputError(str(self.path), f"byte {exc.start}", "not valid UTF-8") from exc
        except (pd.errors.ParserError, pd.errors.EmptyDataError) as exc:
            raise InputError(str(self.path), "file", "malformed CSV", str(exc)) from exc
        for n, row in enumerate(frame.to_dict("records")):
            # Line numbers count the header line, as an editor shows them.
            yield row_to_item(row, f"line {n + 2}", self.mapping, str(n + 2))


class ParquetReader(_MappedReader):
    name = "parquet"

    def read(self) -> Iterator[Item]:
        import pyarrow as pa
        import pyarrow.parquet as pq

        try:
            parquet = pq.ParquetFile(self.path)
        except (pa.ArrowInvalid, OSError) as exc:
            raise InputError(str(self.path), "file", "not a readable Parquet file", str(exc)) from exc
        n = 0
        for batch in parquet.iter_batches(batch_size=4096):
            for row in batch.to_pylist():
                yield row_to_item(row, f"row {n}", self.mapping, str(n))
                n += 1


class HubReader(_MappedReader):
    """A Hugging Face dataset: ``hf:NAME[:CONFIG]`` through the hub, or a ``save_to_disk`` folder.

    Offline, loading by name fails fast and says to download the files and pass the path.
    """

    name = "hub"

    def __init__(self, path: str | os.PathLike[str], **options: Any):
        text = str(path)
        self.spec = text[3:] if text.startswith("hf:") else text
        super().__init__(Path(self.spec), **options)

    @property
    def dataset(self) -> str:  # type: ignore[override]
        return self.spec.split(":")[0].rstrip("/").split("/")[-1]

    def default_split(self) -> str:
        return self.options.get("split") or "train"

    def input_files(self) -> list[Path]:
        return super().input_files() if self.path.exists() else []

    def load(self):
        import datasets

        split = self.options.get("hub_split") or {"dev": "validation"}.get(self.default_split(), self.default_split())
        if self.path.is_dir():
            loaded = datasets.load_from_disk(str(self.path))
            return loaded[split] if isinstance(loaded, datasets.DatasetDict) else loaded
        name, _, config = self.spec.partition(":")
        offline = os.environ.get("HF_HUB_OFFLINE") == "1" or os.environ.get("HF_DATASETS_OFFLINE") == "1"
        hint = (
            f"cannot load the Hugging Face dataset {name!r}: the hub is not reachable from here. Download it "
            "where there is network (e.g. datasets.load_dataset(...).save_to_disk(DIR), or the raw files) and "
            "pass the local path instead"
        )
        if offline:
            raise MtqaError(hint + " (HF_HUB_OFFLINE is set)")
        reachable, why = _hub_reachable()
        if not reachable:
            raise MtqaError(f"{hint} ({why})")
        try:
            return datasets.load_dataset(name, config or None, split=split)
        except (ConnectionError, OSError, ValueError) as exc:
            raise MtqaError(f"{hint} ({type(exc).__name__}: {str(exc)[:200]})") from exc

    def read(self) -> Iterator[Item]:
        for n, row in enumerate(self.load()):
            yield row_to_item(row, f"row {n}", self.mapping, str(n))
