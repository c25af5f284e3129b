"""Encode texts with a sentence-transformers model, each unique text once, through an on-disk cache.

Evaluation re-encodes the same sentences over and over: every setting of a LAReQA
benchmark, every rerun after a report tweak, every checkpoint compared with the baseline.
So the encoder

- deduplicates: a text is encoded once per call whatever the number of settings using it;
- caches embeddings in SQLite (one file, atomic commits, safe with parallel processes), keyed
  by a *content* hash of the model (its files' sha256, not its path: a retrained model in the
  same directory gets new embeddings, a copied one reuses them), the max length and
  normalisation, and the sha256 of the exact string encoded (prefix + text);
- commits every chunk, so an interrupted run resumes where it stopped;
- loads the model only when some text is missing from the cache (a cached rerun needs no torch).

Models are sentence-transformers directories (e.g. ``models/multilingual-e5-small`` or a trained
mtqa model) or hub names already in the local Hugging Face cache: nothing is downloaded.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from mt_qa.cachedir import cache_root
from mt_qa.errors import MtqaError

CACHE_VERSION = 1
_LOOKUP_BATCH = 500


def default_cache_dir() -> Path:
    """``embeddings/`` in mtqa's cache directory ($MTQA_CACHE_DIR, else ~/.cache/mtqa)."""
    return cache_root() / "embeddings"


def resolve_model_dir(model: str) -> Path:
    """A local directory for ``model``: the path itself, or its snapshot in the HF cache (offline)."""
    path = Path(model).expanduser()
    if path.is_dir():
        return path.resolve()
    if path.exists():
        raise MtqaError(f"model {model!r} is a file; expected a sentence-transformers directory")
    try:
        from huggingface_hub import snapshot_download

        return Path(snapshot_download(model, local_files_only=True))
    except Exception as exc:  # noqa: BLE001 - any failure means "not available offline"
        raise MtqaError(f"model {model!r}: not a local directory and not in the local Hugging Face cache "
                        "(nothing is downloaded; pass a sentence-transformers directory)") from exc


def _file_sha256(path: Path, memo: sqlite3.Connection | None) -> str:
    stat = path.stat()
    key = f"{path.resolve()}|{stat.st_size}|{stat.st_mtime_ns}"
    if memo is not None:
        row = memo.execute("SELECT sha256 FROM file_hash WHERE key = ?", (key,)).fetchone()
        if row:
            return row[0]
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(1 << 22):
            digest.update(block)
    value = digest.hexdigest()
    if memo is not None:
        memo.execute("INSERT OR REPLACE INTO file_hash(key, sha256) VALUES (?, ?)", (key, value))
        memo.commit()
    return value


def model_content_hash(model_dir: Path, memo: sqlite3.Connection | None = None) -> str:
    """sha256 over (relative path, file sha256) of every file of the model directory.

    Hidden files and directories are skipped. File hashes are memoised by (path, size, mtime)
    so a 470 MB model is read once, not on every run.
    """
    digest = hashlib.sha256()
    files = sorted(p for p in model_dir.rglob("*")
                   if p.is_file() and not any(part.startswith(".") for part in p.relative_to(model_dir).parts))
    if not files:
        raise MtqaError(f"model directory {model_dir} is empty")
    for path in files:
        digest.update(f"{path.relative_to(model_dir).as_posix()}\0{_file_sha256(path, memo)}\n".encode())
    return digest.hexdigest()


def text_key(text: str) -> bytes:
    return hashlib.sha256(text.encode("utf-8")).digest()


class EmbeddingCache:
    """SQLite store of embeddings: (model key, sha256 of the encoded string) -> float32 vector."""

    def __init__(self, directory: str | Path):
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        self.path = self.directory / "embeddings.sqlite"
        try:
            self.db = sqlite3.connect(self.path, timeout=120)
            self.db.execute("PRAGMA journal_mode=WAL")
            self.db.execute("CREATE TABLE IF NOT EXISTS embedding (model TEXT NOT NULL, key BLOB NOT NULL, "
                            "dim INTEGER NOT NULL, vec BLOB NOT NULL, PRIMARY KEY (model, key)) WITHOUT ROWID")
            self.db.execute("CREATE TABLE IF NOT EXISTS file_hash (key TEXT PRIMARY KEY, sha256 TEXT NOT NULL)")
            self.db.commit()
        except sqlite3.DatabaseError as exc:
            raise MtqaError(f"{self.path}: unusable embedding cache ({exc}); delete it or pass --cache-dir") from exc

    def get(self, model: str, keys: list[bytes]) -> dict[bytes, np.ndarray]:
        found: dict[bytes, np.ndarray] = {}
        for i in range(0, len(keys), _LOOKUP_BATCH):
            part = keys[i:i + _LOOKUP_BATCH]
            marks = ",".join("?" * len(part))
            rows = self.db.execute(f"SELECT key, dim, vec FROM embedding WHERE model = ? AND key IN ({marks})",
                                   (model, *part))
            for key, dim, vec in rows:
                arr = np.frombuffer(vec, dtype=np.float32)
                if arr.size == dim:
                    found[key] = arr
        return found

    def put(self, model: str, keys: list[bytes], vectors: np.ndarray) -> None:
        vectors = np.ascontiguousarray(vectors, dtype=np.float32)
        self.db.executemany("INSERT OR REPLACE INTO embedding(model, key, dim, vec) VALUES (?, ?, ?, ?)",
                            [(model, k, int(v.size), v.tobytes()) for k, v in zip(keys, vectors, strict=True)])
        self.db.commit()

    def count(self, model: str) -> int:
        return self.db.execute("SELECT COUNT(*) FROM embedding WHERE model = ?", (model,)).fetchone()[0]

    def close(self) -> None:
        self.db.close()


class Encoder:
    """Deduplicating, caching encoder around a sentence-transformers model.

    ``cache_dir=None`` uses ``$MTQA_CACHE_DIR/embeddings`` (default ``~/.cache/mtqa/embeddings``); ``False``
    keeps embeddings in memory only (for this Encoder's lifetime).
    """

    def __init__(self, model: str, *, device: str | None = None, batch_size: int = 64,
                 max_length: int | None = None, normalize: bool = True,
                 cache_dir: str | Path | None | bool = None, progress: bool = True):
        if batch_size < 1:
            raise MtqaError("--batch-size must be at least 1")
        if max_length is not None and max_length < 1:
            raise MtqaError("--max-length must be at least 1")
        self.model_name = model
        self.model_dir = resolve_model_dir(model)
        self.device = device
        self.batch_size = batch_size
        self.max_length = max_length
        self.normalize = normalize
        self.progress = progress
        self.cache = None if cache_dir is False else EmbeddingCache(
            default_cache_dir() if cache_dir in (None, True) else cache_dir)
        self.model_hash = model_content_hash(self.model_dir, self.cache.db if self.cache else None)
        setting = json.dumps({"v": CACHE_VERSION, "model": self.model_hash, "max_length": max_length,
                              "normalize": normalize}, sort_keys=True)
        self.cache_model_key = hashlib.sha256(setting.encode()).hexdigest()
        self._memory: dict[bytes, np.ndarray] = {}
        self._model: Any = None
        self.stats = {"texts": 0, "unique": 0, "cached": 0, "encoded": 0, "encode_seconds": 0.0,
                      "load_seconds": 0.0}

    # ------------------------------------------------------------------ model
    def _load(self) -> Any:
        if self._model is None:
            started = time.perf_counter()
            try:
                from sentence_transformers import SentenceTransformer
                from transformers.utils import logging as hf_logging
            except ImportError as exc:
                raise MtqaError("encoding needs sentence-transformers and torch: "
                                "pip install 'mtqa[train]'") from exc
            if not self.progress:
                hf_logging.disable_progress_bar()
            try:
                model = SentenceTransformer(str(self.model_dir), device=self.device, local_files_only=True)
            except Exception as exc:  # noqa: BLE001 - surface as a user error with the path
                raise MtqaError(f"cannot load {self.model_dir} as a sentence-transformers model: {exc}") from exc
            if self.max_length is not None:
                model.max_seq_length = self.max_length
            self._model = model
            self.stats["load_seconds"] += time.perf_counter() - started
        return self._model

    def info(self) -> dict[str, Any]:
        out = {"model": self.model_name, "path": str(self.model_dir), "content_sha256": self.model_hash,
               "max_length": self.max_length, "normalize": self.normalize, "batch_size": self.batch_size,
               "cache": str(self.cache.path) if self.cache else None}
        if self._model is not None:
            out["max_length_used"] = self._model.max_seq_length
            out["device"] = str(self._model.device)
        return out

    # ------------------------------------------------------------------ encoding
    def _lookup(self, keys: list[bytes]) -> dict[bytes, np.ndarray]:
        found = {k: self._memory[k] for k in keys if k in self._memory}
        missing = [k for k in keys if k not in found]
        if self.cache is not None and missing:
            found.update(self.cache.get(self.cache_model_key, missing))
        return found

    def _store(self, keys: list[bytes], vectors: np.ndarray) -> None:
        if self.cache is not None:
            self.cache.put(self.cache_model_key, keys, vectors)
        else:
            for k, v in zip(keys, vectors, strict=True):
                self._memory[k] = v

    def encode(self, texts: Sequence[str], prefix: str = "", desc: str = "encode") -> np.ndarray:
        """Embeddings (float32, one row per text) of ``prefix + text``; unique strings encoded once."""
        strings = [prefix + t for t in texts]
        unique = list(dict.fromkeys(strings))
        keys = [text_key(s) for s in unique]
        self.stats["texts"] += len(strings)
        self.stats["unique"] += len(unique)
        found = self._lookup(keys)
        self.stats["cached"] += len(found)
        todo = [i for i, k in enumerate(keys) if k not in found]
        if todo:
            model = self._load()
            # Longest first: batches of similar length pad less, and a chunk is committed at a time.
            todo.sort(key=lambda i: -len(unique[i]))
            chunk = max(self.batch_size * 16, 512)
            bar = tqdm(total=len(todo), desc=desc, unit="text", disable=not self.progress, dynamic_ncols=True)
            for lo in range(0, len(todo), chunk):
                part = todo[lo:lo + chunk]
                started = time.perf_counter()
                vecs = model.encode([unique[i] for i in part], batch_size=self.batch_size, show_progress_bar=False,
                                    convert_to_numpy=True, normalize_embeddings=self.normalize)
                self.stats["encode_seconds"] += time.perf_counter() - started
                vecs = np.asarray(vecs, dtype=np.float32)
                self._store([keys[i] for i in part], vecs)
                for i, v in zip(part, vecs, strict=True):
                    found[keys[i]] = v
                self.stats["encoded"] += len(part)
                bar.update(len(part))
            bar.close()
        if not unique:
            return np.zeros((0, 0), dtype=np.float32)
        matrix = np.stack([found[k] for k in keys]).astype(np.float32, copy=False)
        index = {s: i for i, s in enumerate(unique)}
        return matrix[[index[s] for s in strings]]

    def close(self) -> None:
        if self.cache is not None:
            self.cache.close()
