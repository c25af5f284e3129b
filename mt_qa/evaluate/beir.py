"""Retrieval benchmarks in the BEIR / MIRACL layouts: exact top-k search, ir_measures metrics, TREC runs.

Layouts read (gzip transparent):

- BEIR: ``corpus.jsonl`` (``_id``, ``title``, ``text``), ``queries.jsonl`` (``_id``, ``text``),
  ``qrels/<split>.tsv`` (header ``query-id corpus-id score``);
- MIRACL: corpus as ``corpus.jsonl`` or a ``corpus/`` directory of ``*.jsonl[.gz]`` shards with
  ``docid``; queries as ``topics/*<split>*.tsv`` (``qid<TAB>query``); qrels as TREC lines
  (``qid Q0 docid rel``) in ``qrels/*<split>*.tsv``.

Search is exact: the corpus is streamed in chunks, each chunk encoded (through the embedding
cache) and scored against all queries, and a running top-k per query is kept, so memory is
O(queries x k + chunk), not O(corpus). Metrics (nDCG@10, Recall@100, MRR@10, MAP over the
retrieved depth) come from ``ir_measures`` on the run, and the run is written in TREC format
so trec_eval, ranx or pyserini can re-score it. FAISS is not needed for exact search; a flat
FAISS index would compute the same scores.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from mt_qa import __version__
from mt_qa.errors import InputError, MtqaError
from mt_qa.evaluate.encode import Encoder
from mt_qa.io import atomic_write_bytes, iter_json_lines, iter_lines

DEFAULT_MEASURES = ("nDCG@10", "R@100", "RR@10", "AP")


@dataclass
class BeirData:
    name: str
    corpus_files: list[Path]
    queries: dict[str, str]
    qrels: dict[str, dict[str, int]]
    stats: dict[str, int] = field(default_factory=dict)


def _first(directory: Path, patterns: list[str]) -> Path | None:
    for pattern in patterns:
        found = sorted(directory.glob(pattern))
        if found:
            return found[0]
    return None


def _corpus_files(directory: Path) -> list[Path]:
    single = _first(directory, ["corpus.jsonl", "corpus.jsonl.gz"])
    if single:
        return [single]
    if (directory / "corpus").is_dir():
        files = sorted(p for p in (directory / "corpus").iterdir() if p.name.endswith((".jsonl", ".jsonl.gz")))
        if files:
            return files
    raise MtqaError(f"{directory}: no corpus.jsonl[.gz] or corpus/*.jsonl[.gz]")


def _json_objects(path: Path) -> Iterator[tuple[str, dict[str, Any]]]:
    """(location, object) for every line of a JSONL file; a line that is no JSON object is an InputError."""
    for location, obj in iter_json_lines(path):
        if not isinstance(obj, dict):
            raise InputError(str(path), location, getattr(obj, "reason", "not a JSON object"),
                             getattr(obj, "detail", ""))
        yield location, obj


def read_queries(path: Path) -> dict[str, str]:
    """queries.jsonl (``_id``/``text``) or a ``qid<TAB>text`` topics file."""
    queries: dict[str, str] = {}
    if path.name.endswith((".jsonl", ".jsonl.gz")):
        for location, obj in _json_objects(path):
            qid = obj.get("_id", obj.get("query_id", obj.get("qid")))
            text = obj.get("text", obj.get("query"))
            if qid is None or not isinstance(text, str):
                raise InputError(str(path), location, "query needs '_id' and 'text'")
            queries[str(qid)] = text
    else:
        for lineno, text, error in iter_lines(path):
            if text is None:
                raise InputError(str(path), f"line {lineno}", "encoding", error)
            qid, sep, query = text.rstrip("\r\n").partition("\t")
            if not sep:
                raise InputError(str(path), f"line {lineno}", "expected qid<TAB>query")
            queries[qid] = query
    return queries


def read_qrels(path: Path) -> dict[str, dict[str, int]]:
    """BEIR TSV (``query-id corpus-id score``, with header) or TREC (``qid Q0 docid rel``) qrels."""
    qrels: dict[str, dict[str, int]] = {}
    for lineno, text, error in iter_lines(path):
        if text is None:
            raise InputError(str(path), f"line {lineno}", "encoding", error)
        cols = text.split()
        if lineno == 1 and cols and cols[0].lower() in ("query-id", "query_id", "qid"):
            continue
        if len(cols) == 3:
            qid, docid, rel = cols
        elif len(cols) == 4:
            qid, _, docid, rel = cols
        else:
            raise InputError(str(path), f"line {lineno}", "expected 'qid docid rel' or 'qid Q0 docid rel'")
        try:
            qrels.setdefault(qid, {})[docid] = int(float(rel))
        except ValueError as exc:
            raise InputError(str(path), f"line {lineno}", "relevance is not a number", rel) from exc
    return qrels


def load_beir(directory: str | Path, split: str = "test", *, queries: str | Path | None = None,
              qrels: str | Path | None = None, name: str | None = None) -> BeirData:
    """Find corpus, queries and qrels of ``split`` in a BEIR or MIRACL directory."""
    directory = Path(directory)
    if not directory.is_dir():
        raise MtqaError(f"{directory}: not a directory")
    q_path = Path(queries) if queries else _first(directory, [
        "queries.jsonl", "queries.jsonl.gz", f"topics/*{split}*.tsv", f"topics/*{split}*.tsv.gz", "queries.tsv"])
    r_path = Path(qrels) if qrels else _first(directory, [
        f"qrels/{split}.tsv", f"qrels/*{split}*.tsv", f"qrels/*{split}*.tsv.gz", f"qrels/*{split}*.txt"])
    if q_path is None or not q_path.is_file():
        raise MtqaError(f"{directory}: no queries.jsonl or topics/*{split}*.tsv (or pass --queries)")
    if r_path is None or not r_path.is_file():
        raise MtqaError(f"{directory}: no qrels/{split}.tsv (or pass --qrels)")
    all_queries = read_queries(q_path)
    all_qrels = read_qrels(r_path)
    judged = {q: d for q, d in all_qrels.items() if any(v > 0 for v in d.values())}
    missing = [q for q in judged if q not in all_queries]
    if missing:
        raise InputError(str(r_path), "qrels", f"{len(missing)} judged queries are not in {q_path.name}",
                         f"e.g. {', '.join(missing[:3])}")
    stats = {"queries_in_file": len(all_queries), "queries_judged": len(judged),
             "queries_without_relevant_docs": len(all_qrels) - len(judged)}
    return BeirData(name or directory.name, _corpus_files(directory), {q: all_queries[q] for q in judged},
                    judged, stats)


def iter_corpus(files: list[Path], use_title: bool = True) -> Iterator[tuple[str, str]]:
    """(doc id, text) for every document; text is ``title + " " + text`` when a title exists."""
    for path in files:
        for location, obj in _json_objects(path):
            docid = obj.get("_id", obj.get("docid", obj.get("id")))
            text = obj.get("text", obj.get("contents"))
            if docid is None or not isinstance(text, str):
                raise InputError(str(path), location, "document needs '_id' (or 'docid') and 'text'")
            title = obj.get("title") or ""
            yield str(docid), (f"{title} {text}" if use_title and title else text)


class TopK:
    """Running exact top-k per query over corpus chunks (ties: lower corpus position first)."""

    def __init__(self, num_queries: int, k: int):
        self.k = k
        self.scores = np.full((num_queries, 0), -np.inf, dtype=np.float32)
        self.index = np.zeros((num_queries, 0), dtype=np.int64)

    def add(self, scores: np.ndarray, first_index: int) -> None:
        n = scores.shape[1]
        idx = np.broadcast_to(np.arange(first_index, first_index + n, dtype=np.int64), scores.shape)
        all_scores = np.concatenate([self.scores, scores.astype(np.float32, copy=False)], axis=1)
        all_index = np.concatenate([self.index, idx], axis=1)
        if all_scores.shape[1] > self.k:
            part = np.argpartition(-all_scores, self.k - 1, axis=1)[:, : self.k]
            all_scores = np.take_along_axis(all_scores, part, axis=1)
            all_index = np.take_along_axis(all_index, part, axis=1)
        self.scores, self.index = all_scores, all_index

    def sorted(self) -> tuple[np.ndarray, np.ndarray]:
        order = np.lexsort((self.index, -self.scores), axis=1)
        return np.take_along_axis(self.scores, order, axis=1), np.take_along_axis(self.index, order, axis=1)


def exact_search(query_emb: np.ndarray, doc_chunks: Iterator[np.ndarray], k: int, query_chunk: int = 1024) -> TopK:
    """Exact dot-product top-k of every query over a stream of document-embedding chunks."""
    top = TopK(query_emb.shape[0], k)
    first = 0
    for docs in doc_chunks:
        if docs.shape[0] == 0:
            continue
        block_scores = np.empty((query_emb.shape[0], docs.shape[0]), dtype=np.float32)
        for lo in range(0, query_emb.shape[0], query_chunk):
            block_scores[lo:lo + query_chunk] = query_emb[lo:lo + query_chunk] @ docs.T
        top.add(block_scores, first)
        first += docs.shape[0]
    return top


def trec_run(query_ids: list[str], doc_ids: list[str], scores: np.ndarray, index: np.ndarray, tag: str) -> str:
    lines = []
    for qi, qid in enumerate(query_ids):
        for rank, (s, d) in enumerate(zip(scores[qi], index[qi], strict=True), 1):
            if np.isfinite(s):
                lines.append(f"{qid} Q0 {doc_ids[d]} {rank} {float(s):.6f} {tag}")
    return "\n".join(lines) + "\n"


def score_run(qrels: dict[str, dict[str, int]], run: dict[str, dict[str, float]],
              measures: tuple[str, ...] = DEFAULT_MEASURES) -> tuple[dict[str, float], dict[str, dict[str, float]]]:
    """Aggregate and per-query values of ``measures`` (ir_measures names) for a run."""
    try:
        import ir_measures
    except ImportError as exc:
        raise MtqaError("BEIR metrics need ir_measures (pip install ir_measures)") from exc
    parsed = [ir_measures.parse_measure(m) for m in measures]
    aggregate = ir_measures.calc_aggregate(parsed, qrels, run)
    per_query: dict[str, dict[str, float]] = {}
    for metric in ir_measures.iter_calc(parsed, qrels, run):
        per_query.setdefault(metric.query_id, {})[str(metric.measure)] = float(metric.value)
    return {str(m): float(aggregate[m]) for m in parsed}, per_query


def evaluate_beir(data: BeirData, encoder: Encoder, out: str | Path, *, k: int = 1000, query_prefix: str = "query: ",
                  passage_prefix: str = "passage: ", use_title: bool = True, chunk_docs: int = 50000,
                  measures: tuple[str, ...] = DEFAULT_MEASURES, progress: bool = True) -> dict[str, Any]:
    """Encode, search exactly, write ``run.trec`` and return the report entry for ``data``."""
    if k < 1:
        raise MtqaError("-k must be at least 1")
    started = time.perf_counter()
    qids = list(data.queries)
    q_emb = encoder.encode([data.queries[q] for q in qids], query_prefix, desc="encode queries")
    doc_ids: list[str] = []
    bar = tqdm(desc="search", unit="doc", disable=not progress, dynamic_ncols=True)

    def chunks() -> Iterator[np.ndarray]:
        texts: list[str] = []
        for docid, text in iter_corpus(data.corpus_files, use_title):
            doc_ids.append(docid)
            texts.append(text)
            if len(texts) == chunk_docs:
                yield encoder.encode(texts, passage_prefix, desc="encode corpus")
                bar.update(len(texts))
                texts = []
        if texts:
            yield encoder.encode(texts, passage_prefix, desc="encode corpus")
            bar.update(len(texts))

    top = exact_search(q_emb, chunks(), k)
    bar.close()
    if len(set(doc_ids)) != len(doc_ids):
        raise InputError(str(data.corpus_files[0]), "corpus", "duplicate document ids")
    scores, index = top.sorted()
    out = Path(out)
    tag = f"mtqa-{Path(encoder.model_name).name or 'model'}"
    atomic_write_bytes(out / f"run_{data.name}.trec", trec_run(qids, doc_ids, scores, index, tag).encode())
    run = {q: {doc_ids[d]: float(s) for s, d in zip(scores[i], index[i], strict=True) if np.isfinite(s)}
           for i, q in enumerate(qids)}
    aggregate, per_query = score_run(data.qrels, run, measures)
    return {
        "metrics": aggregate,
        "per_query": per_query,
        "n_queries": len(qids),
        "n_docs": len(doc_ids),
        "k": k,
        "input_stats": data.stats,
        "run_file": f"run_{data.name}.trec",
        "seconds": round(time.perf_counter() - started, 2),
    }


def beir_report(encoder: Encoder, entries: dict[str, dict[str, Any]], prefixes: dict[str, str]) -> dict[str, Any]:
    return {"kind": "beir", "tool": {"name": "mtqa", "version": __version__}, "model": encoder.info(),
            "prefixes": prefixes, "benchmarks": {n: {k: v for k, v in e.items() if k != "per_query"}
                                                 for n, e in entries.items()},
            "encoding": {k: round(v, 3) if isinstance(v, float) else v for k, v in encoder.stats.items()}}
