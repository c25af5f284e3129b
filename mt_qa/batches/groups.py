"""The group index: every QA row of the input stores, arranged as group x language.

The samplers only need integers (which group has which languages, which groups share a
passage); the text stays in the memory-mapped input tables until a shard is written, so
building batches over millions of rows never copies the questions and passages into Python.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from mt_qa.errors import MtqaError
from mt_qa.shards import ShardStore

COLUMNS = ["id", "group_id", "dataset", "lang", "question", "passage", "origin", "title", "passage_sentences",
           "answer_sentence_index"]


@dataclass
class GroupIndex:
    """Rows of the inputs as a (group, language) -> row matrix, plus what the samplers need.

    ``row_of[g, l]`` is the row (of ``table``) holding group ``g`` in language ``langs[l]``, or -1.
    ``passage_key[g]`` is equal for groups whose (source) passage is the same paragraph: SQuAD
    asks about five questions per paragraph, and two of them in one batch would make one
    query's positive another's in-batch "negative".
    """

    table: pa.Table
    group_names: pa.Array
    datasets: list[str]
    langs: list[str]
    group_dataset: np.ndarray
    row_of: np.ndarray
    passage_key: np.ndarray
    row_group: np.ndarray
    row_lang: np.ndarray
    anchor_text: pa.Array
    row_sentence: np.ndarray | None = None  # answer sentence of each row in its passage_sentences, -1 unknown
    sentence_stats: dict[str, int] = field(default_factory=dict)
    rejects: list[dict[str, Any]] = field(default_factory=list)
    excluded_rows: int = 0
    excluded_heldout_rows: int = 0

    @property
    def n_groups(self) -> int:
        return len(self.group_dataset)

    @property
    def has_lang(self) -> np.ndarray:
        return self.row_of >= 0

    def dataset_sizes(self, groups: np.ndarray) -> np.ndarray:
        return np.bincount(self.group_dataset[groups], minlength=len(self.datasets))

    def split_by_passage(self, fraction: float, salt: str = "mtqa-dev") -> tuple[np.ndarray, np.ndarray]:
        """(train groups, held-out groups): a fixed fraction of *paragraphs* is held out.

        Holding out by passage (not by question) keeps every question about a held-out
        paragraph out of training, so the dev loss is not measured on passages already seen.
        The choice hashes the passage text, so it does not depend on the seed or input order.
        """
        all_groups = np.arange(self.n_groups)
        if fraction <= 0:
            return all_groups, all_groups[:0]
        anchor_text = self.anchor_passages()
        threshold = int(fraction * (1 << 64))
        keys, first = np.unique(self.passage_key, return_index=True)
        held = np.zeros(len(keys), dtype=bool)
        for i, g in enumerate(first):
            digest = hashlib.blake2b(f"{salt}\0{anchor_text[g]}".encode(), digest_size=8).digest()
            held[i] = int.from_bytes(digest, "big") < threshold
        held_keys = keys[held]
        dev = np.isin(self.passage_key, held_keys)
        return all_groups[~dev], all_groups[dev]

    def anchor_passages(self) -> list[str]:
        """Each group's passage in its source language (what ``passage_key`` was made from)."""
        return self.anchor_text.to_pylist()


def open_qa_store(path: str | Path) -> ShardStore:
    store = ShardStore.open(path)
    if store.manifest.get("schema") != "qa":
        raise MtqaError(f"{path}: a {store.manifest.get('schema')!r} store, but build-batches reads QA stores "
                        "(the output of collect, translate or filter)")
    return store


def load_groups(stores: list[ShardStore], langs: list[str] | None = None,
                exclude_groups: set[str] | None = None, require_sentence: bool = False) -> GroupIndex:
    """Read the inputs (memory-mapped) into a :class:`GroupIndex`.

    Rows are rejected, never dropped silently: an empty passage cannot be a positive, and a
    second row with the same id (the same group and language in two inputs) would make the
    same pair twice as likely. Rows outside ``langs``, and rows of ``exclude_groups`` (a
    held-out benchmark's groups), are excluded by request and counted. ``require_sentence``
    (sentence positives without fallback): rows whose answer sentence is unknown are rejected.
    """
    tables, sources = [], []
    for i, store in enumerate(stores):
        t = store.table(columns=COLUMNS)
        tables.append(t)
        sources.append(np.full(t.num_rows, i, dtype=np.int32))
    table = pa.concat_tables(tables).combine_chunks() if tables else pa.table({c: [] for c in COLUMNS})
    source = np.concatenate(sources) if sources else np.zeros(0, dtype=np.int32)
    if table.num_rows == 0:
        raise MtqaError("the input stores hold no rows")

    keep = np.ones(table.num_rows, dtype=bool)
    excluded = 0
    if langs:
        in_langs = pc.is_in(table["lang"], pa.array(langs)).to_numpy(zero_copy_only=False)
        excluded = int((~in_langs).sum())
        keep &= in_langs
    heldout = 0
    if exclude_groups:
        in_heldout = pc.is_in(table["group_id"], pa.array(sorted(exclude_groups))).to_numpy(zero_copy_only=False)
        heldout = int((in_heldout & keep).sum())
        keep &= ~in_heldout
    rejects: list[dict[str, Any]] = []
    empty = pc.equal(pc.utf8_length(pc.utf8_trim_whitespace(table["passage"])), 0).to_numpy(zero_copy_only=False)
    for r in np.flatnonzero(empty & keep):
        rejects.append(_reject(stores[source[r]], table, int(r), "empty_passage",
                               "the row has no passage, so it cannot be a positive"))
    keep &= ~empty

    kept = np.flatnonzero(keep)
    table = table.take(pa.array(kept))
    source = source[kept]
    if table.num_rows == 0:
        raise MtqaError("no usable rows in the inputs" + (f" for languages {langs}" if langs else ""))

    groups_enc = pc.dictionary_encode(table["group_id"]).combine_chunks()
    row_group = groups_enc.indices.to_numpy().astype(np.int64)
    lang_names = sorted(set(table["lang"].to_pylist()))
    row_lang = pc.index_in(table["lang"], value_set=pa.array(lang_names)).to_numpy().astype(np.int64)

    # A second row for the same (group, language): keep the first input's, reject the rest.
    flat = row_group * len(lang_names) + row_lang
    _, first = np.unique(flat, return_index=True)
    dup = np.ones(len(flat), dtype=bool)
    dup[first] = False
    if dup.any():
        first_of = dict(zip(flat[first].tolist(), first.tolist(), strict=True))
        for r in np.flatnonzero(dup):
            other = first_of[int(flat[r])]
            rejects.append(_reject(stores[source[r]], table, int(r), "duplicate_row",
                                   f"id also in {stores[source[other]].root}; the first input's row is used"))
        keep_rows = np.sort(first)
        table = table.take(pa.array(keep_rows))
        source = source[keep_rows]
        row_group, row_lang = row_group[keep_rows], row_lang[keep_rows]  # every group keeps its first row

    n_groups = len(groups_enc.dictionary)
    row_of = np.full((n_groups, len(lang_names)), -1, dtype=np.int64)
    row_of[row_group, row_lang] = np.arange(table.num_rows)

    datasets_enc = pc.dictionary_encode(table["dataset"]).combine_chunks()
    dataset_names = datasets_enc.dictionary.to_pylist()
    order = sorted(range(len(dataset_names)), key=lambda i: dataset_names[i])
    remap = np.empty(len(order), dtype=np.int64)
    remap[order] = np.arange(len(order))
    row_dataset = remap[datasets_enc.indices.to_numpy()]
    group_dataset = np.zeros(n_groups, dtype=np.int64)
    group_dataset[row_group] = row_dataset

    # Anchor row of each group: its source-language row when there is one, else its first row.
    not_source = pc.not_equal(table["origin"], "source").to_numpy(zero_copy_only=False)
    ordered = np.lexsort((np.arange(table.num_rows), not_source, row_group))
    is_first = np.ones(len(ordered), dtype=bool)
    is_first[1:] = row_group[ordered][1:] != row_group[ordered][:-1]
    anchor_rows = ordered[is_first]
    anchors = table["passage"].take(pa.array(anchor_rows)).combine_chunks()
    passage_key = pc.dictionary_encode(anchors).indices.to_numpy().astype(np.int64)
    row_sentence, sentence_stats = answer_sentences(table, row_group, anchor_rows)
    if require_sentence:
        for r in np.flatnonzero(row_sentence < 0):
            row_of[row_group[r], row_lang[r]] = -1
            rejects.append(_reject(stores[source[r]], table, int(r), "answer_sentence_unknown",
                                   "the answer sentence of this row is unknown (answer not located in its "
                                   "sentences, and no source row with as many sentences to align to), so it "
                                   "has no sentence positive; --missing-sentence passage uses the paragraph"))

    index = GroupIndex(
        table=table,
        group_names=groups_enc.dictionary,
        datasets=sorted(dataset_names),
        langs=lang_names,
        group_dataset=group_dataset,
        row_of=row_of,
        passage_key=passage_key,
        row_group=row_group,
        row_lang=row_lang,
        anchor_text=anchors,
        row_sentence=row_sentence,
        sentence_stats=sentence_stats,
        rejects=rejects,
        excluded_rows=excluded,
        excluded_heldout_rows=heldout,
    )
    return index


def answer_sentences(table: pa.Table, row_group: np.ndarray,
                     anchor_rows: np.ndarray) -> tuple[np.ndarray, dict[str, int]]:
    """The answer sentence of every row (index into its ``passage_sentences``), -1 where unknown.

    A row's own ``answer_sentence_index`` comes first (collect located the answer in the row's
    own sentences; translate keeps the source's index because it translates sentence by
    sentence). An imported translation whose answer could not be located in its own text gets
    its group's source-row index when both passages have the same number of sentences (the
    sentences then correspond one to one); with a different count it stays unknown, and
    ``unknown_sentence_count_differs`` counts it.
    """
    own = table["answer_sentence_index"].to_numpy(zero_copy_only=False).astype(np.int64)
    counts = pc.list_value_length(table["passage_sentences"]).to_numpy(zero_copy_only=False).astype(np.int64)
    own = np.where((own >= 0) & (own < counts), own, -1)
    anchor_of_group = np.full(int(row_group.max()) + 1 if len(row_group) else 0, -1, dtype=np.int64)
    anchor_of_group[row_group[anchor_rows]] = anchor_rows
    anchor = anchor_of_group[row_group]
    is_anchor = anchor == np.arange(len(own))
    anchor_idx = own[anchor]
    same_count = counts[anchor] == counts
    aligned = (own < 0) & ~is_anchor & (anchor_idx >= 0) & same_count
    out = np.where(aligned, anchor_idx, own)
    unknown = out < 0
    stats = {
        "located": int((own >= 0).sum()),
        "aligned_from_source": int(aligned.sum()),
        "unknown": int(unknown.sum()),
        "unknown_sentence_count_differs": int((unknown & ~is_anchor & (anchor_idx >= 0) & ~same_count).sum()),
    }
    return out, stats


def _reject(store: ShardStore, table: pa.Table, row: int, reason: str, detail: str) -> dict[str, Any]:
    record = {c: table[c][row].as_py() for c in ("id", "group_id", "lang", "question")}
    record["passage"] = (table["passage"][row].as_py() or "")[:2000]
    return {"source": str(store.root), "location": f"row id {record['id']}", "record_id": record["id"],
            "reason": reason, "detail": detail, "payload": record}
