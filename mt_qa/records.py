"""Arrow schemas of the records every stage exchanges, and their validation.

The QA record is the contract between stages: one (question, passage) example in one language
per row, with ids that never collide across languages and a ``group_id`` shared by all
translations of one source example. Validation runs on every write, so a bad row is caught at
the stage that produced it, not three stages later.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from mt_qa.errors import MtqaError

ORIGINS = ("source", "mt", "imported")

QA_SCHEMA = pa.schema(
    [
        pa.field("id", pa.string(), nullable=False),
        pa.field("group_id", pa.string(), nullable=False),
        pa.field("dataset", pa.string(), nullable=False),
        pa.field("split", pa.string(), nullable=False),
        pa.field("lang", pa.string(), nullable=False),
        pa.field("lang_code", pa.string(), nullable=False),
        pa.field("question", pa.string(), nullable=False),
        pa.field("passage", pa.string(), nullable=False),
        pa.field("title", pa.string(), nullable=False),
        pa.field("answers", pa.list_(pa.string()), nullable=False),
        pa.field("answer_starts", pa.list_(pa.int32()), nullable=False),
        pa.field("passage_sentences", pa.list_(pa.string()), nullable=False),
        pa.field("answer_sentence_index", pa.int32(), nullable=False),
        pa.field("origin", pa.string(), nullable=False),
        pa.field("origin_detail", pa.string(), nullable=False),
        # Translation signals, set by `translate` for origin=mt rows and read by `filter`.
        pa.field("mt_length_ratio", pa.float32(), nullable=True),
        pa.field("mt_repetition", pa.float32(), nullable=True),
        # Semantic signals, set by `filter --semantic-model` for translated/imported rows (ratio margins).
        pa.field("sem_question", pa.float32(), nullable=True),
        pa.field("sem_passage", pa.float32(), nullable=True),
        pa.field("sem_sentences", pa.list_(pa.float32()), nullable=True),
    ],
    # 2: the sem_* signal columns were added (stores of version 1 must be re-made).
    metadata={"mtqa.schema": "qa", "mtqa.schema_version": "2"},
)

BATCH_SCHEMA = pa.schema(
    [
        pa.field("batch_id", pa.int64(), nullable=False),
        pa.field("batch_type", pa.string(), nullable=False),  # "xx" or "xy"
        pa.field("position", pa.int32(), nullable=False),  # row's place inside its batch
        pa.field("query_lang", pa.string(), nullable=False),
        pa.field("passage_lang", pa.string(), nullable=False),
        pa.field("query", pa.string(), nullable=False),
        pa.field("positive", pa.string(), nullable=False),
        pa.field("negative", pa.string(), nullable=True),
        pa.field("query_id", pa.string(), nullable=False),
        pa.field("positive_id", pa.string(), nullable=False),
        pa.field("negative_id", pa.string(), nullable=True),
        pa.field("group_id", pa.string(), nullable=False),
        pa.field("dataset", pa.string(), nullable=False),
    ],
    metadata={"mtqa.schema": "batch", "mtqa.schema_version": "1"},
)

REJECT_SCHEMA = pa.schema(
    [
        pa.field("stage", pa.string(), nullable=False),
        pa.field("source", pa.string(), nullable=False),  # file (or store) the row came from
        pa.field("location", pa.string(), nullable=False),  # line / record path inside it
        pa.field("record_id", pa.string(), nullable=True),
        pa.field("reason", pa.string(), nullable=False),  # a short, countable key
        pa.field("detail", pa.string(), nullable=False),  # human-readable explanation
        pa.field("score", pa.float64(), nullable=True),  # the filter's score, where one exists
        pa.field("payload", pa.string(), nullable=False),  # the row itself, as JSON
    ],
    metadata={"mtqa.schema": "reject", "mtqa.schema_version": "1"},
)

SCHEMAS: dict[str, pa.Schema] = {"qa": QA_SCHEMA, "batch": BATCH_SCHEMA, "reject": REJECT_SCHEMA}


class RecordError(MtqaError):
    """Rows that break the record contract: a bug in the stage that made them."""


def qa_id(group_id: str, lang: str) -> str:
    return f"{group_id}/{lang}"


def group_id(dataset: str, split: str, source_id: str) -> str:
    return f"{dataset}/{split}/{source_id}"


def qa_record(
    *,
    dataset: str,
    split: str,
    source_id: str,
    lang: str,
    lang_code: str,
    question: str,
    passage: str,
    title: str = "",
    answers: Iterable[str] = (),
    answer_starts: Iterable[int] = (),
    passage_sentences: Iterable[str] = (),
    answer_sentence_index: int = -1,
    origin: str = "source",
    origin_detail: str = "",
    mt_length_ratio: float | None = None,
    mt_repetition: float | None = None,
    sem_question: float | None = None,
    sem_passage: float | None = None,
    sem_sentences: Iterable[float | None] | None = None,
) -> dict[str, Any]:
    """Build one QA row as a dict, deriving both ids so no reader can get them wrong."""
    gid = group_id(dataset, split, source_id)
    return {
        "id": qa_id(gid, lang),
        "group_id": gid,
        "dataset": dataset,
        "split": split,
        "lang": lang,
        "lang_code": lang_code,
        "question": question,
        "passage": passage,
        "title": title,
        "answers": list(answers),
        "answer_starts": list(answer_starts),
        "passage_sentences": list(passage_sentences),
        "answer_sentence_index": answer_sentence_index,
        "origin": origin,
        "origin_detail": origin_detail,
        "mt_length_ratio": mt_length_ratio,
        "mt_repetition": mt_repetition,
        "sem_question": sem_question,
        "sem_passage": sem_passage,
        "sem_sentences": None if sem_sentences is None else list(sem_sentences),
    }


def schema_name(schema: pa.Schema) -> str:
    meta = schema.metadata or {}
    return meta.get(b"mtqa.schema", b"").decode()


def to_table(rows: list[Mapping[str, Any]] | pa.Table, schema: pa.Schema) -> pa.Table:
    """Rows (dicts) or a table to a table of exactly ``schema``: column order, types, metadata."""
    if isinstance(rows, pa.Table):
        missing = [f.name for f in schema if f.name not in rows.column_names]
        if missing:
            raise RecordError(f"table lacks columns {missing} of the {schema_name(schema)} schema")
        table = rows.select(schema.names)
        try:
            return table.cast(schema)
        except (pa.ArrowInvalid, pa.ArrowTypeError, ValueError, OverflowError) as exc:
            raise RecordError(f"columns do not fit the {schema_name(schema)} schema: {exc}") from exc
    try:
        return pa.Table.from_pylist(list(rows), schema=schema)
    except (pa.ArrowInvalid, pa.ArrowTypeError, TypeError, OverflowError) as exc:
        raise RecordError(f"rows do not fit the {schema_name(schema)} schema: {exc}") from exc


def validate_table(table: pa.Table, schema: pa.Schema) -> list[str]:
    """Return every way ``table`` breaks the contract of ``schema`` (empty list: valid)."""
    problems: list[str] = []
    if table.schema.remove_metadata() != schema.remove_metadata():
        problems.append(f"schema differs from the {schema_name(schema)} schema: {table.schema}")
        return problems
    for field in schema:
        if not field.nullable and table.column(field.name).null_count:
            problems.append(f"column {field.name!r} has {table.column(field.name).null_count} nulls")
    if problems or table.num_rows == 0:
        return problems
    name = schema_name(schema)
    if name == "qa":
        problems += _validate_qa(table)
    elif name == "batch":
        bad = pc.sum(pc.invert(pc.is_in(table["batch_type"], pa.array(["xx", "xy"])))).as_py()
        if bad:
            problems.append(f"{bad} rows have a batch_type other than 'xx'/'xy'")
    return problems


def _first_rows(mask: pa.ChunkedArray, ids: pa.ChunkedArray, n: int = 3) -> str:
    picked = pc.filter(ids, mask).slice(0, n).to_pylist()
    return ", ".join(map(str, picked))


def _validate_qa(table: pa.Table) -> list[str]:
    problems: list[str] = []
    ids = table["id"]
    if pc.count_distinct(ids).as_py() != table.num_rows:
        counts = pc.value_counts(ids)
        dup = [v["values"].as_py() for v in counts if v["counts"].as_py() > 1][:3]
        problems.append(f"duplicate ids: {', '.join(dup)}")
    expected = pc.binary_join_element_wise(table["group_id"], table["lang"], "/")
    bad = pc.invert(pc.equal(ids, expected))
    if pc.any(bad).as_py():
        problems.append(f"id is not group_id/lang for rows {_first_rows(bad, ids)}")
    bad = pc.invert(pc.is_in(table["origin"], pa.array(ORIGINS)))
    if pc.any(bad).as_py():
        problems.append(f"origin not one of {ORIGINS} for rows {_first_rows(bad, ids)}")
    for col in ("lang", "lang_code", "dataset", "split"):
        bad = pc.equal(pc.utf8_length(table[col]), 0)
        if pc.any(bad).as_py():
            problems.append(f"empty {col} for rows {_first_rows(bad, ids)}")
    bad = pc.equal(pc.utf8_length(pc.utf8_trim_whitespace(table["question"])), 0)
    if pc.any(bad).as_py():
        problems.append(f"empty question for rows {_first_rows(bad, ids)}")
    n_sent = pc.list_value_length(table["passage_sentences"])
    has_passage = pc.greater(pc.utf8_length(pc.utf8_trim_whitespace(table["passage"])), 0)
    bad = pc.and_(has_passage, pc.equal(n_sent, 0))
    if pc.any(bad).as_py():
        problems.append(f"passage without passage_sentences for rows {_first_rows(bad, ids)}")
    idx = table["answer_sentence_index"]
    bad = pc.or_(pc.less(idx, -1), pc.greater_equal(idx, n_sent))
    if pc.any(bad).as_py():
        problems.append(f"answer_sentence_index out of range for rows {_first_rows(bad, ids)}")
    bad = pc.not_equal(pc.list_value_length(table["answers"]), pc.list_value_length(table["answer_starts"]))
    if pc.any(bad).as_py():
        problems.append(f"answers and answer_starts differ in length for rows {_first_rows(bad, ids)}")
    return problems
