"""Deduplication: exact (normalised question+passage) and near-duplicate questions (MinHash LSH).

Rows are fed in one stable order (shard by shard, row by row) and the first of a set of
duplicates is kept. Because the decision depends only on that order, it is computed once over
the whole input, before any shard is written: every job-array task, resumed run or single
process gets the same plan (see docs/filter.md).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import xxhash
from datasketch import MinHash, MinHashLSH

from mt_qa.filter.quality import normalize_text, unspaced
from mt_qa.io import atomic_write_json

PLAN_VERSION = 1
EXACT = "duplicate_exact"
NEAR = "duplicate_near"
LSH_MARGIN = 0.2


@dataclass(frozen=True)
class DedupConfig:
    exact: bool = True
    near: bool = True
    threshold: float = 0.9  # Jaccard similarity of question shingles at which two rows are near-duplicates
    num_perm: int = 64  # LSH only proposes candidates; exact Jaccard decides
    seed: int = 1


@dataclass(frozen=True)
class Duplicate:
    reason: str  # EXACT or NEAR
    score: float  # 1.0 for exact; the shingle Jaccard similarity for near
    of: str  # id of the kept row


def shingles(question: str, lang: str) -> np.ndarray:
    """Hashes of the normalised question's unigrams and bigrams (words, or characters for
    languages written without spaces): word-level shingles keep 'in 1842' and 'in 1845' apart."""
    norm = normalize_text(question)
    toks = [c for c in norm if c != " "] if unspaced(lang) else norm.split()
    grams = set(toks) | {f"{a} {b}" for a, b in zip(toks, toks[1:], strict=False)}
    hashes = np.fromiter((xxhash.xxh32_intdigest(g.encode()) for g in grams), dtype=np.uint32, count=len(grams))
    return np.unique(hashes)


def jaccard(a: np.ndarray, b: np.ndarray) -> float:
    inter = len(np.intersect1d(a, b, assume_unique=True))
    union = len(a) + len(b) - inter
    return inter / union if union else 1.0


def _identity(value: Any) -> Any:
    return value


class _NearIndex:
    """Near-duplicate questions of one language: LSH for candidates, exact Jaccard to decide."""

    def __init__(self, config: DedupConfig, prototype: MinHash):
        self.config = config
        self.prototype = prototype
        # Candidates come from a lower LSH threshold than the decision's, so few true
        # near-duplicates are missed (at 0.9 with 64 permutations: 8 bands of 8, recall 98.9%).
        self.lsh = MinHashLSH(threshold=max(0.05, config.threshold - LSH_MARGIN), num_perm=config.num_perm)
        self.kept: list[tuple[str, np.ndarray]] = []

    def add(self, row_id: str, sh: np.ndarray) -> Duplicate | None:
        if not len(sh):
            return None
        mh = self.prototype.copy()
        mh.update_batch(sh.tolist())
        for key in sorted(self.lsh.query(mh)):
            kept_id, kept_sh = self.kept[key]
            sim = jaccard(sh, kept_sh)
            if sim >= self.config.threshold:
                return Duplicate(NEAR, round(sim, 6), kept_id)
        self.lsh.insert(len(self.kept), mh)
        self.kept.append((row_id, sh))
        return None


class Deduplicator:
    """Feed rows in a stable order; each call says whether the row duplicates an earlier one."""

    def __init__(self, config: DedupConfig):
        self.config = config
        self._exact: dict[str, dict[int, str]] = {}
        self._near: dict[str, _NearIndex] = {}
        # Shingles arrive hashed (uint32), so the MinHash's own hash function is the identity.
        # (The permutation scheme is datasketch's default; decisions are exact Jaccard either way.)
        self._prototype = MinHash(num_perm=config.num_perm, seed=config.seed, hashfunc=_identity)
        self._passage_norm: dict[str, str] = {}

    def new_shard(self) -> None:
        """Passages repeat within a shard (many questions per paragraph): cache per shard."""
        self._passage_norm.clear()

    def add(self, row_id: str, lang: str, question: str, passage: str) -> Duplicate | None:
        if self.config.exact:
            norm_passage = self._passage_norm.get(passage)
            if norm_passage is None:
                norm_passage = self._passage_norm[passage] = normalize_text(passage)
            key = xxhash.xxh3_64_intdigest((normalize_text(question) + "\x00" + norm_passage).encode())
            seen = self._exact.setdefault(lang, {})
            if key in seen:
                return Duplicate(EXACT, 1.0, seen[key])
            seen[key] = row_id
        if self.config.near:
            index = self._near.get(lang)
            if index is None:
                index = self._near[lang] = _NearIndex(self.config, self._prototype)
            return index.add(row_id, shingles(question, lang))
        return None


@dataclass
class DedupPlan:
    """Which rows are duplicates of which: the pre-pass result every task reuses."""

    config: DedupConfig
    drops: dict[str, Duplicate] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {"version": PLAN_VERSION, "config": asdict(self.config),
                "drops": {k: [d.reason, d.score, d.of] for k, d in sorted(self.drops.items())}}

    @classmethod
    def from_json(cls, obj: dict[str, Any]) -> DedupPlan:
        drops = {k: Duplicate(reason, float(score), of) for k, (reason, score, of) in obj["drops"].items()}
        return cls(DedupConfig(**obj["config"]), drops)

    def save(self, path: Path) -> None:
        atomic_write_json(path, self.to_json())

    @classmethod
    def load(cls, path: Path, config: DedupConfig) -> DedupPlan | None:
        """A saved plan for exactly this config, or None (absent, unreadable or stale)."""
        try:
            obj = json.loads(path.read_text())
            plan = cls.from_json(obj)
        except (OSError, ValueError, KeyError, TypeError):
            return None
        return plan if obj.get("version") == PLAN_VERSION and plan.config == config else None
