"""Optional hard negatives: BM25 per (dataset, language), taken from a rank range.

The top lexical hits for a SQuAD question are mostly other paragraphs of the same article,
and some of them answer the question too (unlabelled positives). Taking negatives from a
rank range further down (default ranks 10-30, counted after the question's own passage is
removed) keeps them hard without making them false negatives. The negative is in the
passage's language, mined with the question of that language, so an X-Y pair gets a
negative in its passage language. Each epoch draws another candidate of the range.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from mt_qa.batches.groups import GroupIndex

# Languages bm25s has a stopword list for; others are tokenized without one.
BM25_STOPWORDS = {"en", "de", "nl", "fr", "es", "pt", "it", "ru", "sv", "no", "zh", "tr", "ko", "da"}
_MASK64 = np.uint64(0xFFFFFFFFFFFFFFFF)


@dataclass
class MinedNegatives:
    """Candidate negatives (rows of the group index) for each mined row, best rank first."""

    rows: np.ndarray  # sorted rows whose question was used as the query
    candidates: np.ndarray  # (len(rows), width), -1 padded
    counts: np.ndarray

    def pick(self, rows: np.ndarray, epoch: int, seed: int) -> np.ndarray:
        """One candidate per row (-1 where none), a different draw per epoch, stable per row."""
        out = np.full(len(rows), -1, dtype=np.int64)
        if len(self.rows) == 0:
            return out
        pos = np.minimum(np.searchsorted(self.rows, rows), len(self.rows) - 1)
        found = self.rows[pos] == rows
        counts = np.where(found, self.counts[pos], 0)
        ok = counts > 0
        draw = _mix(np.asarray(rows, dtype=np.uint64), seed, epoch)
        choice = (draw[ok] % counts[ok].astype(np.uint64)).astype(np.int64)
        out[ok] = self.candidates[pos[ok], choice]
        return out


def _mix(values: np.ndarray, seed: int, epoch: int) -> np.ndarray:
    """splitmix64 of (row, seed, epoch): a fixed pseudo-random number per row and epoch."""
    with np.errstate(over="ignore"):
        z = values * np.uint64(0x9E3779B97F4A7C15) + np.uint64((seed * 1_000_003 + epoch + 1) & 0xFFFFFFFF)
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        return (z ^ (z >> np.uint64(31))) & _MASK64


class BM25NegativeMiner:
    """Lexical hard-negative miner over the passages of each (dataset, language)."""

    name = "bm25"

    def __init__(self, rank_min: int = 10, rank_max: int = 30, threads: int = 1, progress: bool = False):
        if not 1 <= rank_min <= rank_max:
            raise ValueError(f"negative rank range {rank_min}-{rank_max} must satisfy 1 <= min <= max")
        self.rank_min = rank_min
        self.rank_max = rank_max
        self.threads = threads
        self.progress = progress
        self.stats: dict[str, int] = {"mined": 0, "in_range": 0, "fallback": 0, "none": 0}

    def params(self) -> dict[str, object]:
        return {"miner": self.name, "rank_min": self.rank_min, "rank_max": self.rank_max}

    def mine(self, index: GroupIndex, rows: np.ndarray, groups: np.ndarray | None = None) -> MinedNegatives:
        """Mine candidates for ``rows`` (their question against their language's passages).

        ``groups`` limits the searched passages to those groups (the split being built), so a
        held-out dev paragraph never turns up as a training negative.
        """
        import bm25s
        from bm25s.tokenization import Tokenizer

        rows = np.unique(np.asarray(rows, dtype=np.int64))
        width = self.rank_max - self.rank_min + 1
        candidates = np.full((len(rows), width), -1, dtype=np.int64)
        counts = np.zeros(len(rows), dtype=np.int64)
        row_dataset = index.group_dataset[index.row_group]
        key_of_row = index.passage_key[index.row_group]
        part = row_dataset[rows] * len(index.langs) + index.row_lang[rows]
        allowed = np.isin(index.row_group, groups) if groups is not None else np.ones(len(index.row_group), bool)
        for code in np.unique(part).tolist():
            dataset, lang = divmod(code, len(index.langs))
            targets = np.flatnonzero(part == code)
            corpus_rows = np.flatnonzero(allowed & (row_dataset == dataset) & (index.row_lang == lang))
            texts = index.table["passage"].take(pa.array(corpus_rows))
            encoded = pc.dictionary_encode(texts).combine_chunks()
            unique_texts = encoded.dictionary.to_pylist()
            _, first = np.unique(encoded.indices.to_numpy(), return_index=True)
            doc_rows = corpus_rows[first]  # representative row of each distinct passage
            doc_keys = key_of_row[doc_rows]
            self.stats["mined"] += len(targets)
            if len(unique_texts) < 2:
                self.stats["none"] += len(targets)
                continue
            stop = index.langs[lang] if index.langs[lang] in BM25_STOPWORDS else None
            tokenizer = Tokenizer(stopwords=stop)
            retriever = bm25s.BM25()
            retriever.index(tokenizer.tokenize(unique_texts, return_as="tuple", show_progress=False),
                            show_progress=False)
            questions = index.table["question"].take(pa.array(rows[targets])).to_pylist()
            query_ids = tokenizer.tokenize(questions, update_vocab=False, return_as="ids", show_progress=False)
            k = min(self.rank_max + 10, len(unique_texts))
            docs, scores = retriever.retrieve(query_ids, k=k, show_progress=self.progress, n_threads=self.threads)
            own = key_of_row[rows[targets]]
            for i, t in enumerate(targets.tolist()):
                keep = (scores[i] > 0) & (doc_keys[docs[i]] != own[i])
                hits = doc_rows[docs[i][keep]]
                chosen = hits[self.rank_min - 1: self.rank_max]
                if len(chosen):
                    self.stats["in_range"] += 1
                elif len(hits):
                    chosen = hits[-1:]  # fewer hits than rank_min: the lowest-ranked one left
                    self.stats["fallback"] += 1
                else:
                    self.stats["none"] += 1
                candidates[t, : len(chosen)] = chosen
                counts[t] = len(chosen)
        return MinedNegatives(rows, candidates, counts)
