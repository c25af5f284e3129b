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


def _nonblank(pieces: list[str], skip: str | None = None) -> list[int]:
    return [j for j, p in enumerate(pieces) if p.strip() and p.strip() != skip]


def any_sentence(table: pa.Table, rows: np.ndarray, epoch: int, seed: int) -> np.ndarray:
    """A uniformly drawn non-blank sentence of each row's paragraph (-1 for rows < 0 or no sentence).

    Used to give a paragraph-level negative (BM25) the granularity of sentence positives.
    """
    rows = np.asarray(rows, dtype=np.int64)
    out = np.full(len(rows), -1, dtype=np.int64)
    ok = np.flatnonzero(rows >= 0)
    if len(ok) == 0:
        return out
    draw = _mix(rows[ok].astype(np.uint64), seed + 104_729, epoch)
    pieces = table["passage_sentences"].take(pa.array(rows[ok])).to_pylist()
    for i, (p, d) in enumerate(zip(pieces, draw.tolist(), strict=True)):
        cands = _nonblank(p)
        if cands:
            out[ok[i]] = cands[d % len(cands)]
    return out


class SentenceNegatives:
    """Hard negatives from the positive's own paragraph (else its article), in the positive's language.

    The hard part of a LAReQA-style benchmark is telling the answer sentence from the other
    sentences of its paragraph and article, which in-batch negatives (other articles) never
    show. Rule, a fixed function of (seed, epoch, row) like the BM25 draw:

    1. uniform over the other non-blank sentences of the positive's paragraph (a sentence with
       the same text as the positive is not a candidate);
    2. none (a one-sentence paragraph, or a paragraph positive from ``--missing-sentence
       passage``): a uniform other paragraph of the same article (same dataset, language and
       title, within the split being built), and a uniform sentence of it (the whole
       paragraph for a paragraph positive);
    3. none: no negative (counted; ``train`` then trains that batch without negatives).
    """

    name = "sentence"

    def __init__(self) -> None:
        self.stats: dict[str, int] = {"paragraph": 0, "article": 0, "none": 0}
        self._articles: dict[tuple[int, int, str], np.ndarray] | None = None

    def params(self) -> dict[str, object]:
        return {"miner": self.name, "rule": "uniform other sentence of the positive's paragraph; else a uniform "
                                            "sentence of a uniform other paragraph of its article"}

    def prepare(self, index: GroupIndex, groups: np.ndarray) -> None:
        """Index the distinct paragraphs of each (dataset, language, article) among ``groups``."""
        cells = index.row_of[groups]
        rows = np.sort(cells[cells >= 0])
        keys = index.passage_key[index.row_group[rows]]
        datasets = index.group_dataset[index.row_group[rows]]
        langs = index.row_lang[rows]
        titles = index.table["title"].take(pa.array(rows)).to_pylist()
        articles: dict[tuple[int, int, str], dict[int, int]] = {}
        for r, k, d, lang, t in zip(rows.tolist(), keys.tolist(), datasets.tolist(), langs.tolist(), titles,
                                    strict=True):
            articles.setdefault((d, lang, t), {}).setdefault(k, r)
        self._articles = {key: np.array(sorted(v.values()), dtype=np.int64) for key, v in articles.items()}

    def pick(self, index: GroupIndex, rows: np.ndarray, sentences: np.ndarray, epoch: int, seed: int,
             by_sentence: bool) -> tuple[np.ndarray, np.ndarray]:
        """(negative row, its sentence index) per positive (row, sentence); row -1 where none."""
        if self._articles is None:
            raise RuntimeError("SentenceNegatives.prepare() first")
        rows = np.asarray(rows, dtype=np.int64)
        neg_row = np.full(len(rows), -1, dtype=np.int64)
        neg_sent = np.full(len(rows), -1, dtype=np.int64)
        if len(rows) == 0:
            return neg_row, neg_sent
        table = index.table
        draw = _mix(rows.astype(np.uint64), seed, epoch).tolist()
        draw2 = _mix(rows.astype(np.uint64), seed + 7_919, epoch).tolist()
        pieces = table["passage_sentences"].take(pa.array(rows)).to_pylist()
        titles = table["title"].take(pa.array(rows)).to_pylist()
        for i, r in enumerate(rows.tolist()):
            s = int(sentences[i])
            if s >= 0:
                cands = _nonblank(pieces[i], skip=pieces[i][s].strip())
                cands = [j for j in cands if j != s]
                if cands:
                    neg_row[i], neg_sent[i] = r, cands[draw[i] % len(cands)]
                    self.stats["paragraph"] += 1
                    continue
            g = index.row_group[r]
            key = (int(index.group_dataset[g]), int(index.row_lang[r]), titles[i])
            others = self._articles.get(key, np.zeros(0, dtype=np.int64))
            others = others[index.passage_key[index.row_group[others]] != index.passage_key[g]]
            if len(others):
                other = int(others[draw[i] % len(others)])
                if by_sentence:
                    split = table["passage_sentences"][other].as_py()
                    cands = _nonblank(split)
                    if not cands:
                        self.stats["none"] += 1
                        continue
                    neg_sent[i] = cands[draw2[i] % len(cands)]
                neg_row[i] = other
                self.stats["article"] += 1
            else:
                self.stats["none"] += 1
        return neg_row, neg_sent
