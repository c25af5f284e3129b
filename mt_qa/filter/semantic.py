"""The semantic check: does a translation say what its English source says?

Surface checks see the wrong language, a copy, a loop or a bad length; they cannot see a
fluent translation of something else (a hallucinated continuation, a dropped or replaced
sentence, a passage aligned to the wrong paragraph). This check embeds both sides with a
cross-lingual sentence encoder (any sentence-transformers directory, through the cached
``mt_qa.evaluate.encode.Encoder``) and scores each pair with the *ratio margin* of
Artetxe & Schwenk (2019), as used for CCMatrix and WikiMatrix:

    margin(x, y) = cos(x, y) / ((mean_kNN(x) + mean_kNN(y)) / 2)

where mean_kNN(x) is the mean cosine of x with its k nearest texts on the other side, taken
within the shard and language (so a task of a job array sees exactly what one run sees),
among the texts of at most ``NEIGHBOUR_GROUPS`` groups (so margins fall less as shards grow),
leaving out the texts of x's own group (its own translation is no evidence against it). A
generic sentence ("It was built in 1900.") is close to many texts, its denominator is high,
and it does not pass just by being generic.

Scored per row: the question, and the passage sentence by sentence. Rows from ``translate``
keep the source's sentence segmentation, so sentence i is scored against source sentence i.
Imported rows were split on their own and may have a different number of sentences; for
those (and for imported rows whose 1-1 pairing scores low) the sentences are aligned by a
small monotone dynamic programme with merges (``align``), so a dropped source sentence and an
added translation sentence both show up as unmatched while a different segmentation does not
(a merge of source sentences must beat each shorter run of them, by margin times length
agreement; splitting fragments such as
"[citation needed]" may stay unmatched unscored). The
scores are stored in the row (``sem_question``, ``sem_passage``, ``sem_sentences``) so later
stages and users can re-threshold without encoding again.
"""

from __future__ import annotations

import hashlib
import re
import time
from dataclasses import asdict, dataclass, field
from typing import Any, ClassVar

import numpy as np
import pyarrow as pa

from mt_qa.errors import MtqaError
from mt_qa.filter import quality
from mt_qa.filter.checks import SOURCE, Check, Rejection, ShardRows
from mt_qa.records import QA_SCHEMA

SIGNAL_COLUMNS = ("sem_question", "sem_passage", "sem_sentences")
DEFAULT_LANG = "*"
# Least ratio margin, (question, passage sentence), per language ("*": the others). Chosen on the dev
# half of the benchmark in docs/benchmarks/semantic.md with multilingual-e5-small (prefix "query: ",
# k = 4): pooled over es/it/pt, the pair that rejects the most corrupted dev rows while keeping 98% of
# the real dev rows a human check found right. Per-language choices rejected fewer corrupted test rows.
DEFAULT_MIN_QUESTION: dict[str, float] = {DEFAULT_LANG: 1.025}
DEFAULT_MIN_SENTENCE: dict[str, float] = {DEFAULT_LANG: 1.045}
# Imported rows with as many sentences as their source are re-read with merges when their
# weakest 1-1 sentence margin is below this (real pairs: median about 1.12 with multilingual-e5-small).
REALIGN_BELOW = 1.1
_BLOCK = 1024  # rows of the similarity matrix held at once: memory stays linear in the shard
# Neighbours are taken among at most this many groups of the language in the shard (the first by
# a hash of their group id, so the choice depends only on the shard's content). A margin falls as
# the neighbourhood grows denser: with all groups of a big shard as neighbours, thresholds chosen
# on benchmark-sized shards would reject far more real rows (docs/benchmarks/semantic.md).
NEIGHBOUR_GROUPS = 100
# Passage sentences are taken as neighbours from at most this many source passages (the first by a
# hash of the passage): sibling questions share a passage, so a cap in groups alone would give a
# shard with many questions per paragraph more distinct neighbour sentences, a denser neighbourhood
# and lower sentence margins than a shard with few (docs/benchmarks/semantic.md, "Shard composition").
NEIGHBOUR_PASSAGES = 30
# Up to this many sentences of one side may be merged against one of the other. Translations often
# join three source sentences (a short quote and its speaker, a list cut at semicolons); with merges
# of two only, one of them stayed unmatched and a faithful row was rejected (docs/benchmarks/semantic-study.md).
MAX_MERGE = 3
# Raised whenever the alignment's rules change its scores: it is in the manifest's params, so a resumed
# run does not mix shards scored by two versions (2: merges of three, the length-weighted merge guard).
ALIGNMENT_VERSION = 2


def parse_thresholds(spec: str | None, defaults: dict[str, float], option: str) -> dict[str, float]:
    """'default', one number (every language), or 'es=1.05,it=1.02,*=1.0' on top of the defaults."""
    out = dict(defaults)
    spec = (spec or "default").strip()
    if spec == "default":
        return out
    for part in spec.split(","):
        part = part.strip()
        if not part:
            continue
        lang, _, value = part.rpartition("=")
        lang = lang.strip() or DEFAULT_LANG
        try:
            number = float(value)
        except ValueError:
            raise MtqaError(f"{option} {spec!r}: {value!r} is not a number "
                            "(give 'default', a number, or LANG=NUMBER pairs joined by commas)") from None
        if not np.isfinite(number):
            raise MtqaError(f"{option} {spec!r}: {value!r} is not a finite number")
        if lang == DEFAULT_LANG and "=" not in part:
            out = {DEFAULT_LANG: number}  # one bare number: every language
        else:
            out[lang] = number
    return out


@dataclass
class SemanticConfig:
    """Options of the semantic check. ``model`` None: the check is off."""

    model: str | None = None
    min_question: str = "default"
    min_sentence: str = "default"
    k: int = 4
    prefix: str = "query: "
    device: str | None = None
    batch_size: int = 64
    cache_dir: str | None = None

    RUNTIME: ClassVar[tuple[str, ...]] = ("device", "batch_size", "cache_dir")  # do not change the output

    def params(self) -> dict[str, Any]:
        """What a resumed run must agree on (runtime settings left out)."""
        return {k: v for k, v in asdict(self).items() if k not in self.RUNTIME}

    def validate(self) -> None:
        if self.k < 1:
            raise MtqaError(f"--semantic-k must be at least 1, not {self.k}")
        if self.batch_size < 1:
            raise MtqaError(f"--semantic-batch-size must be at least 1, not {self.batch_size}")
        if self.device not in (None, "cpu", "cuda") and not str(self.device).startswith("cuda:"):
            raise MtqaError(f"--device {self.device!r}: choose cpu or cuda (or cuda:N)")
        self.thresholds()

    def thresholds(self) -> tuple[dict[str, float], dict[str, float]]:
        return (parse_thresholds(self.min_question, DEFAULT_MIN_QUESTION, "--semantic-min-question"),
                parse_thresholds(self.min_sentence, DEFAULT_MIN_SENTENCE, "--semantic-min-sentence"))


def knn_side(x: np.ndarray, y: np.ndarray, xc: np.ndarray, yc: np.ndarray, k: int,
             allowed: np.ndarray | None = None) -> np.ndarray:
    """Mean cosine of each row of ``x`` with its k nearest rows of ``y``, same-cluster pairs left out.

    ``allowed``: which rows of ``y`` may be neighbours (default all). NaN where no neighbour is
    left. Works in blocks: memory O(block x len(y)), not O(len(x) x len(y)).
    """
    out = np.full(len(x), np.nan, dtype=np.float64)
    if allowed is not None:  # only the pool is searched: time O(len(x) x pool), linear in the shard
        y, yc = y[allowed], yc[allowed]
    if not len(x) or not len(y):
        return out
    kk = min(k, len(y))
    for lo in range(0, len(x), _BLOCK):
        sims = x[lo:lo + _BLOCK] @ y.T
        sims[xc[lo:lo + _BLOCK, None] == yc[None, :]] = -np.inf
        top = -np.partition(-sims, kk - 1, axis=1)[:, :kk] if kk < len(y) else sims
        finite = np.isfinite(top)
        count = finite.sum(axis=1)
        total = np.where(finite, top, 0.0).sum(axis=1)
        out[lo:lo + _BLOCK] = np.where(count > 0, total / np.maximum(count, 1), np.nan)
    return out


def knn_means(a: np.ndarray, b: np.ndarray, a_cluster: np.ndarray, b_cluster: np.ndarray, k: int,
              a_allowed: np.ndarray | None = None, b_allowed: np.ndarray | None = None
              ) -> tuple[np.ndarray, np.ndarray]:
    """``knn_side`` both ways: for each row of ``a`` among ``b``, and for each row of ``b`` among ``a``."""
    return (knn_side(a, b, a_cluster, b_cluster, k, b_allowed),
            knn_side(b, a, b_cluster, a_cluster, k, a_allowed))


def margin(cos: np.ndarray, knn_x: np.ndarray, knn_y: np.ndarray) -> np.ndarray:
    """Ratio margin; where one side has no neighbours the other side's mean is used, else NaN."""
    denom = np.where(np.isnan(knn_x), knn_y, np.where(np.isnan(knn_y), knn_x, (knn_x + knn_y) / 2))
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(np.isnan(denom) | (denom <= 0), np.nan, cos / denom)


class _Pool:
    """Unique (text, cluster) items of one side of one language pair, and their row references."""

    def __init__(self) -> None:
        self.index: dict[tuple[str, int], int] = {}
        self.texts: list[str] = []
        self.clusters: list[int] = []
        self.neighbour: list[bool] = []  # may serve as a neighbour (used by a group of the neighbour pool)

    def add(self, text: str, cluster: int, neighbour: bool = True) -> int:
        key = (text, cluster)
        found = self.index.get(key)
        if found is None:
            found = self.index[key] = len(self.texts)
            self.texts.append(text)
            self.clusters.append(cluster)
            self.neighbour.append(neighbour)
        elif neighbour:
            self.neighbour[found] = True
        return found

    def allowed(self) -> np.ndarray:
        return np.asarray(self.neighbour, dtype=bool)


@dataclass
class ShardScores:
    """One shard's semantic signals, one entry per row (None: not scored)."""

    question: list[float | None]
    passage: list[float | None]
    sentences: list[list[float | None] | None]
    aligned: list[bool] = field(default_factory=list)  # sentence i vs source sentence i
    # per row, count-mismatched rows only: each source sentence's margin in the alignment
    source_coverage: list[list[float] | None] = field(default_factory=list)


def _num(x: float) -> float | None:
    return None if x is None or not np.isfinite(x) else round(float(x), 4)


def score_shard(rows: ShardRows, sentences: list[list[str]], encode: Any, k: int,
                neighbours: int = NEIGHBOUR_GROUPS) -> ShardScores:
    """Margin scores of every translated row that has its source row in the shard.

    ``sentences``: each row's passage sentences; ``encode(texts) -> normalised embeddings``;
    ``neighbours``: the most groups per language whose texts serve as neighbours (0: all).
    Scores do not depend on other checks' verdicts, only on the shard's content.
    """
    n = len(rows)
    scores = ShardScores([None] * n, [None] * n, [None] * n, [False] * n, [None] * n)
    pairs_by_lang: dict[str, list[int]] = {}
    for i in range(n):
        j = rows.source_index[i]
        if rows.origins[i] == SOURCE or j is None or rows.langs[j] == rows.langs[i]:
            continue
        pairs_by_lang.setdefault(rows.langs[i], []).append(i)
    for lang in sorted(pairs_by_lang):
        _score_lang(rows, sentences, pairs_by_lang[lang], encode, k, scores, neighbours)
    return scores


def _group_order(group_id: str) -> bytes:
    return hashlib.sha256(group_id.encode()).digest()


def _score_lang(rows: ShardRows, sentences: list[list[str]], members: list[int], encode: Any, k: int,
                scores: ShardScores, neighbours: int = NEIGHBOUR_GROUPS) -> None:
    groups = sorted({rows.group_ids[i] for i in members}, key=_group_order)
    pool = set(groups[:neighbours] if neighbours else groups)
    passages = sorted({rows.passages[rows.source_index[i]] for i in members}, key=_group_order)  # type: ignore[index]
    passage_pool = set(passages[:NEIGHBOUR_PASSAGES] if neighbours and NEIGHBOUR_PASSAGES else passages)
    clusters: dict[str, int] = {}
    q_src, q_tgt, s_src, s_tgt = _Pool(), _Pool(), _Pool(), _Pool()
    q_pair: dict[int, tuple[int, int]] = {}
    s_items: dict[int, tuple[list[int | None], list[int | None]]] = {}
    for i in members:
        j = rows.source_index[i]
        assert j is not None
        group = clusters.setdefault(rows.group_ids[i], len(clusters))
        # Passage sentences are clustered by the source passage: sibling questions share it.
        para = clusters.setdefault("\0" + rows.passages[j], len(clusters))
        near = rows.group_ids[i] in pool
        if rows.questions[i].strip() and rows.questions[j].strip():
            q_pair[i] = (q_src.add(rows.questions[j], group, near), q_tgt.add(rows.questions[i], group, near))
        near_s = rows.passages[j] in passage_pool
        src = [s_src.add(s, para, near_s) if s.strip() else None for s in sentences[j]]
        tgt = [s_tgt.add(s, para, near_s) if s.strip() else None for s in sentences[i]]
        if any(x is not None for x in src) and any(y is not None for y in tgt):
            s_items[i] = (src, tgt)
    if q_pair:
        a, b = encode(q_src.texts), encode(q_tgt.texts)
        ka, kb = knn_means(a, b, np.asarray(q_src.clusters), np.asarray(q_tgt.clusters), k,
                           q_src.allowed(), q_tgt.allowed())
        for i, (x, y) in q_pair.items():
            scores.question[i] = _num(margin(np.float64(a[x] @ b[y]), ka[x], kb[y]))
    if not s_items:
        return
    a, b = encode(s_src.texts), encode(s_tgt.texts)
    ca, cb = np.asarray(s_src.clusters), np.asarray(s_tgt.clusters)
    ka, kb = knn_means(a, b, ca, cb, k, s_src.allowed(), s_tgt.allowed())
    side_a = _Side(s_src, a, ka)
    side_b = _Side(s_tgt, b, kb)
    # Sentence i against source sentence i where the counts agree.
    for i, (src, tgt) in s_items.items():
        if len(src) == len(tgt):
            row = []
            for x, y in zip(src, tgt, strict=True):
                if x is None or y is None:
                    row.append(None if x is None and y is None else 0.0)  # text against nothing
                else:
                    row.append(_num(margin(np.float64(a[x] @ b[y]), ka[x], kb[y])))
            scores.aligned[i] = True
            scores.sentences[i] = row
            finite = [v for v in row if v is not None]
            scores.passage[i] = min(finite) if finite else None
    # Aligned with merges: counts that differ, and imported rows whose 1-1 pairing looks off
    # (the same count by chance: one side joined two sentences and split another).
    realign = {i: st for i, st in s_items.items()
               if not scores.aligned[i] or (rows.origins[i] != "mt" and (scores.passage[i] or 0.0) < REALIGN_BELOW)}
    if not realign:
        return
    for src, tgt in realign.values():  # runs of adjacent sentences, for the merges
        side_a.add_spans(src)
        side_b.add_spans(tgt)
    side_a.encode_spans(encode, b, cb, k, s_tgt.allowed())
    side_b.encode_spans(encode, a, ca, k, s_src.allowed())
    for i, (src, tgt) in realign.items():
        j = rows.source_index[i]
        assert j is not None
        src_scores, tgt_scores = align(src, tgt, side_a, side_b, quality.expected_ratio(rows.langs[i], rows.langs[j]))
        finite = [v for v in (*src_scores, *tgt_scores) if v is not None]
        passage = min(finite) if finite else None
        if scores.aligned[i] and (passage is None or (scores.passage[i] or 0.0) >= passage):
            continue  # the 1-1 pairing was the better reading
        scores.aligned[i] = False
        scores.sentences[i] = tgt_scores
        scores.source_coverage[i] = src_scores  # type: ignore[assignment]
        scores.passage[i] = passage


class _Side:
    """One side's sentence embeddings and k-NN means, plus runs of adjacent ones (merged) for alignment."""

    def __init__(self, pool: _Pool, emb: np.ndarray, knn: np.ndarray):
        self.pool, self.emb, self.knn = pool, emb, knn
        self.spans: dict[tuple[int, ...], int] = {}
        self.span_emb = np.zeros((0, emb.shape[1] if emb.ndim == 2 else 0))
        self.span_knn = np.zeros(0)

    def add_spans(self, items: list[int | None]) -> None:
        present = [x for x in items if x is not None]
        for size in range(2, MAX_MERGE + 1):
            for lo in range(len(present) - size + 1):
                self.spans.setdefault(tuple(present[lo:lo + size]), len(self.spans))

    def encode_spans(self, encode: Any, other: np.ndarray, other_clusters: np.ndarray, k: int,
                     other_allowed: np.ndarray | None = None) -> None:
        if not self.spans or len(self.span_emb) == len(self.spans):
            return
        texts = ["".join(self.pool.texts[x] for x in span) for span in self.spans]
        clusters = np.asarray([self.pool.clusters[span[0]] for span in self.spans])
        self.span_emb = encode(texts)
        self.span_knn = knn_side(self.span_emb, other, clusters, other_clusters, k, other_allowed)

    def span(self, items: list[int]) -> tuple[np.ndarray, float, int]:
        """Embedding, k-NN mean and length in characters of one sentence or a run of adjacent ones."""
        length = sum(len(self.pool.texts[x].strip()) for x in items)
        if len(items) == 1:
            return self.emb[items[0]], self.knn[items[0]], length
        n = self.spans[tuple(items)]
        return self.span_emb[n], self.span_knn[n], length


# Beads of the monotone alignment: (source sentences, translation sentences).
_BEADS = ((1, 1), (2, 1), (1, 2), (1, 0), (0, 1)) + tuple(
    bead for n in range(3, MAX_MERGE + 1) for bead in ((n, 1), (1, n)))
_GOOD = 1.5  # margin treated as a perfect match when turning margins into alignment costs
_LENGTH_AGREEMENT = 0.7  # shorter/longer side (characters, per the language's typical ratio) free of penalty
_FRAGMENT_WORDS = 4  # a "sentence" with fewer words ("[A]", "[citation needed]", "In Prosecutor v.") is a fragment
_FRAGMENT_COST = 0.05  # what leaving a fragment unmatched costs; it is not scored
_WORD = re.compile(r"\w+")


def is_fragment(text: str) -> bool:
    """Too short to carry a meaning of its own: a splitting artefact, not a sentence to judge."""
    return len(_WORD.findall(text)) < _FRAGMENT_WORDS


def align(src: list[int | None], tgt: list[int | None], side_a: _Side, side_b: _Side, ratio: float = 1.0
          ) -> tuple[list[float | None], list[float | None]]:
    """Align sentences monotonically (1-1, merges of up to ``MAX_MERGE`` sentences on one side, or a
    sentence left unmatched) by margin.

    For rows whose two sides are segmented differently (imported data is split on its own). The
    alignment minimises the summed cost max(0, 1.5 - margin) per sentence of each bead (half per
    side, so a merge is not cheaper than the pairs it replaces), an unmatched sentence costing
    as much as a pair at margin 0, as in Vecalign's dynamic programme over sentence merges. Two
    guards keep a dropped sentence from hiding in a merge ("A. B." is still close to the
    translation of B alone): a bead's margin is scaled down when its sides' lengths disagree
    (shorter/longer below 0.7, after the language's typical length ratio ``ratio``), and a merge
    of source sentences counts only if it explains the translation better than every shorter run
    of its sentences does, judged by margin times length agreement (``_merge_evidence``). Fragments
    ("[A]", "[citation needed]") may stay unmatched almost free, and are not scored.
    Returns each source and each translation sentence's margin in its bead (0.0: unmatched;
    None: empty sentence or an unmatched fragment).
    """
    xs = [x for x in src if x is not None]
    ys = [y for y in tgt if y is not None]
    n, m = len(xs), len(ys)
    frag_x = [is_fragment(side_a.pool.texts[x]) for x in xs]
    frag_y = [is_fragment(side_b.pool.texts[y]) for y in ys]
    inf = float("inf")
    cost = np.full((n + 1, m + 1), inf)
    back: dict[tuple[int, int], tuple[int, int, float | None]] = {}
    cost[0, 0] = 0.0
    for i in range(n + 1):
        for j in range(m + 1):
            if cost[i, j] == inf:
                continue
            for di, dj in _BEADS:
                ni, nj = i + di, j + dj
                if ni > n or nj > m:
                    continue
                value: float | None
                if di and dj:
                    value = _bead_margin(xs[i:ni], ys[j:nj], side_a, side_b, ratio)
                    if value is None:
                        continue  # a merge no better than a shorter run of it: not a merge
                    step = (di + dj) / 2 * max(0.0, _GOOD - value)
                elif (frag_x[i] if di else frag_y[j]):
                    value, step = None, _FRAGMENT_COST
                else:
                    value, step = 0.0, _GOOD / 2
                c = cost[i, j] + step
                if c < cost[ni, nj] - 1e-12:
                    cost[ni, nj] = c
                    back[(ni, nj)] = (i, j, value)
    src_score: list[float | None] = [0.0] * n
    tgt_score: list[float | None] = [0.0] * m
    i, j = n, m
    while (i, j) != (0, 0):
        pi, pj, value = back[(i, j)]
        for a in range(pi, i):
            src_score[a] = value
        for b in range(pj, j):
            tgt_score[b] = value
        i, j = pi, pj
    it_s, it_t = iter(src_score), iter(tgt_score)
    return ([None if x is None else _opt(next(it_s)) for x in src],
            [None if y is None else _opt(next(it_t)) for y in tgt])


def _opt(x: float | None) -> float | None:
    return None if x is None else _num(x)


def _pair_margin(ex: np.ndarray, kx: float, ey: np.ndarray, ky: float) -> float:
    value = float(margin(np.float64(ex @ ey), np.float64(kx), np.float64(ky)))
    return value if np.isfinite(value) else 0.0


def _agreement(source_chars: int, target_chars: int, ratio: float) -> float:
    """Shorter/longer length of a bead's sides (1.0: as long as the language's typical ratio expects)."""
    lx, ly = source_chars * ratio + 1, target_chars + 1
    return min(lx, ly) / max(lx, ly)


def _bead_margin(xs: list[int], ys: list[int], side_a: _Side, side_b: _Side, ratio: float) -> float | None:
    """Length-scaled margin of one bead; None for a source merge that a shorter run of it explains as well."""
    ex, kx, lx = side_a.span(xs)
    ey, ky, ly = side_b.span(ys)
    value = _pair_margin(ex, kx, ey, ky)
    # Source sentences merged (2-1, 3-1): every sentence must add to the match, or the translation
    # dropped one: the merge must beat each shorter run of its sentences (by ``_merge_evidence``; a
    # translation cut mid-sentence and run into the next one fails this). Translation sentences merged
    # (1-2, 1-3) are not held to that: translations often split a long sentence and the short tail adds
    # little to the embedding; the length scaling still applies.
    agreement = _agreement(lx, ly, ratio)
    if len(xs) > 1:
        evidence = value * agreement
        runs = (xs[lo:hi] for lo in range(len(xs)) for hi in range(lo + 1, len(xs) + 1) if hi - lo < len(xs))
        if any(_merge_evidence(side_a.span(run), ey, ky, ly, ratio) >= evidence for run in runs):
            return None
    return value * min(1.0, agreement / _LENGTH_AGREEMENT)


def _merge_evidence(span: tuple[np.ndarray, float, int], ey: np.ndarray, ky: float, ly: int, ratio: float) -> float:
    """How well a run of source sentences explains a translation: margin times length agreement.

    The length counts because an embedding barely moves for a short sentence ('"No longer", he
    replied.') whether the translation kept it or not; the translation's length tells which.
    """
    e, k, length = span
    return _pair_margin(e, k, ey, ky) * _agreement(length, ly, ratio)


class SemanticCheck(Check):
    """Reject translations whose question or a passage sentence is far (by margin) from the source."""

    name = "semantic"
    reasons = ("semantic_question", "semantic_passage")

    def __init__(self, config: SemanticConfig, progress: bool = False):
        super().__init__()
        from mt_qa.evaluate.encode import Encoder

        if not config.model:
            raise MtqaError("the semantic check needs --semantic-model")
        self.config = config
        self.min_question, self.min_sentence = config.thresholds()
        self.encoder = Encoder(config.model, device=config.device, batch_size=config.batch_size,
                               cache_dir=config.cache_dir, progress=progress)
        self.scores: ShardScores | None = None
        self.no_neighbours: dict[str, int] = {}

    def begin_shard(self) -> None:
        self.scores = None
        self.no_neighbours = {}

    def threshold(self, table: dict[str, float], lang: str) -> float:
        return table.get(lang, table.get(lang.split("-")[0], table.get(DEFAULT_LANG, 1.0)))

    def _encode(self, texts: list[str]) -> np.ndarray:
        return self.encoder.encode(texts, self.config.prefix, desc="semantic: encode").astype(np.float64)

    def prepare(self, rows: ShardRows, sentences: list[list[str]]) -> None:
        """Score the whole shard (one batched encoding per pool) before rows are judged."""
        started = time.perf_counter()
        self.scores = score_shard(rows, sentences, self._encode, self.config.k)
        self.seconds += time.perf_counter() - started

    def check(self, rows: ShardRows, i: int) -> Rejection | None:
        if self.scores is None:
            raise MtqaError("semantic check run before prepare()")  # a bug in the stage, not user input
        s = self.scores
        j = rows.source_index[i]
        if rows.origins[i] == SOURCE or j is None or rows.langs[j] == rows.langs[i]:
            return None
        lang = rows.langs[i]
        if s.question[i] is None and s.passage[i] is None:
            self.no_neighbours[lang] = self.no_neighbours.get(lang, 0) + 1
            return None
        q_min = self.threshold(self.min_question, lang)
        if s.question[i] is not None and s.question[i] < q_min:
            return Rejection("semantic_question", s.question[i],
                             f"the question's margin to its {rows.langs[j]} source is {s.question[i]:.3f} "
                             f"(need {q_min} for {lang})")
        s_min = self.threshold(self.min_sentence, lang)
        if s.passage[i] is not None and s.passage[i] < s_min:
            row = s.sentences[i] or []
            bad = [(n, v) for n, v in enumerate(row) if v is not None and v < s_min]
            what = ", ".join(f"{n} ({v:.3f})" for n, v in bad) or "none"
            detail = f"passage sentences below margin {s_min} for {lang}: {what}"
            if not s.aligned[i]:
                src_bad = [(n, v) for n, v in enumerate(s.source_coverage[i] or []) if v is not None and v < s_min]
                detail += ("; source sentences without a match: "
                           + (", ".join(f"{n} ({v:.3f})" for n, v in src_bad) or "none")
                           + f" ({len(s.sentences[i] or [])} vs {len(s.source_coverage[i] or [])} sentences, "
                           "aligned with merges)")
            return Rejection("semantic_passage", s.passage[i], detail)
        return None

    def shard_counts(self) -> dict[str, int]:
        return {f"semantic_unscored.{lang}": n for lang, n in self.no_neighbours.items()}

    def signals(self) -> dict[str, list[Any]]:
        """The row columns this check fills (for every scored row, kept or not)."""
        if self.scores is None:
            return {}
        s = self.scores
        return {"sem_question": s.question, "sem_passage": s.passage, "sem_sentences": s.sentences}

    def params(self) -> dict[str, Any]:
        q, s = self.min_question, self.min_sentence
        return {"model": self.encoder.model_name, "model_sha256": self.encoder.model_hash,
                "prefix": self.config.prefix, "k": self.config.k, "neighbour_groups": NEIGHBOUR_GROUPS,
                "neighbour_passages": NEIGHBOUR_PASSAGES, "alignment_version": ALIGNMENT_VERSION,
                "min_question": q, "min_sentence": s}

    def close(self) -> None:
        self.encoder.close()


def with_signals(table: pa.Table, signals: dict[str, list[Any]]) -> pa.Table:
    """``table`` with the signal columns set (added as nulls to tables written before they existed)."""
    for name in SIGNAL_COLUMNS:
        fld = QA_SCHEMA.field(name)
        if name in signals:
            column = pa.array(signals[name], type=fld.type)
        elif name in table.column_names:
            continue
        else:
            column = pa.nulls(table.num_rows, type=fld.type)
        if name in table.column_names:
            table = table.set_column(table.schema.get_field_index(name), fld, column)
        else:
            table = table.append_column(fld, column)
    return table.select(QA_SCHEMA.names)
