"""A persistent translation cache: each (model, settings, target, segment) is translated once.

QA data repeats itself (a paragraph is shared by its ~5 questions), reruns redo finished work,
and adding a language or a dataset overlaps earlier runs. The cache is one SQLite file: the
stdlib module, a single file to copy or delete, safe for several processes on one machine
(WAL journal: readers never block, writers queue behind a busy timeout). It is also the
translate stage's checkpoint: finished work units are committed here, and a resumed run finds
them instead of translating again.

Key: ``config`` (sha256 of the model's content hash, the compute type and every decoding
setting, so a different beam size never reads another setting's output), the target FLORES
code, and ``key`` = first 16 bytes of sha256(source FLORES code + NUL + normalized text).
Value: the translation and the per-segment signals the filter stage needs.
"""

from __future__ import annotations

import hashlib
import json
import os
import sqlite3
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mt_qa.errors import MtqaError

SCHEMA_VERSION = 1
_LOOKUP_CHUNK = 500  # keys per SELECT ... IN (...): well under SQLite's 32766-variable limit


@dataclass(frozen=True)
class Translation:
    """One translated segment and its signals."""

    text: str
    src_tokens: int
    tgt_tokens: int
    repetition: float  # extra repeated-4-gram share of the output over the source's, 0..1
    capped: bool  # decoding stopped at max_decoding_length, not at end of sentence


def segment_key(src_lang: str, text: str) -> bytes:
    return hashlib.sha256(f"{src_lang}\0{text}".encode()).digest()[:16]


def config_id(settings: Mapping[str, Any]) -> str:
    return hashlib.sha256(json.dumps(settings, sort_keys=True, default=str).encode()).hexdigest()[:32]


class TranslationCache:
    """SQLite-backed map (config, target, segment key) -> Translation."""

    def __init__(self, path: str | os.PathLike[str], settings: Mapping[str, Any]):
        self.path = Path(path).expanduser()
        self.settings = dict(settings)
        self.config = config_id(settings)
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._db = sqlite3.connect(self.path, timeout=120, isolation_level=None)
            self._setup()
        except (sqlite3.Error, OSError) as exc:
            raise MtqaError(f"translation cache {self.path}: {exc} (pass another --cache PATH, or --no-cache)") from exc

    def _setup(self) -> None:
        db = self._db
        try:
            db.execute("PRAGMA journal_mode=WAL")  # fails on some network filesystems: the default journal works
        except sqlite3.OperationalError:
            pass
        db.execute("PRAGMA synchronous=NORMAL")
        db.execute("CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)")
        db.execute("INSERT OR IGNORE INTO meta VALUES ('schema_version', ?)", (str(SCHEMA_VERSION),))
        version = db.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()[0]
        if version != str(SCHEMA_VERSION):
            raise MtqaError(f"translation cache {self.path} has schema version {version}, this mtqa writes "
                            f"{SCHEMA_VERSION}: use another --cache path")
        db.execute("CREATE TABLE IF NOT EXISTS configs (config TEXT PRIMARY KEY, settings TEXT NOT NULL)")
        db.execute(
            "CREATE TABLE IF NOT EXISTS translations (config TEXT NOT NULL, tgt TEXT NOT NULL, key BLOB NOT NULL, "
            "text TEXT NOT NULL, src_tokens INTEGER NOT NULL, tgt_tokens INTEGER NOT NULL, repetition REAL NOT NULL, "
            "capped INTEGER NOT NULL, PRIMARY KEY (config, tgt, key)) WITHOUT ROWID"
        )
        db.execute("INSERT OR IGNORE INTO configs VALUES (?, ?)",
                   (self.config, json.dumps(self.settings, sort_keys=True, default=str)))

    def get_many(self, tgt: str, keys: Iterable[bytes]) -> dict[bytes, Translation]:
        """The cached translations among ``keys`` into ``tgt`` (missing keys are absent)."""
        keys = list(keys)
        found: dict[bytes, Translation] = {}
        for start in range(0, len(keys), _LOOKUP_CHUNK):
            chunk = keys[start:start + _LOOKUP_CHUNK]
            marks = ",".join("?" * len(chunk))
            rows = self._db.execute(
                "SELECT key, text, src_tokens, tgt_tokens, repetition, capped FROM translations "
                f"WHERE config = ? AND tgt = ? AND key IN ({marks})", (self.config, tgt, *chunk))
            for key, text, src_tokens, tgt_tokens, repetition, capped in rows:
                found[bytes(key)] = Translation(text, src_tokens, tgt_tokens, repetition, bool(capped))
        return found

    def put_many(self, items: Iterable[tuple[str, bytes, Translation]]) -> None:
        """Store (target, key, translation) items in one transaction: all of them or none."""
        rows = [(self.config, tgt, key, t.text, t.src_tokens, t.tgt_tokens, t.repetition, int(t.capped))
                for tgt, key, t in items]
        if not rows:
            return
        db = self._db
        db.execute("BEGIN IMMEDIATE")
        try:
            db.executemany("INSERT OR REPLACE INTO translations VALUES (?, ?, ?, ?, ?, ?, ?, ?)", rows)
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise

    def count(self) -> int:
        """Entries stored for this configuration."""
        return self._db.execute("SELECT COUNT(*) FROM translations WHERE config = ?", (self.config,)).fetchone()[0]

    def close(self) -> None:
        self._db.close()

    def __enter__(self) -> TranslationCache:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
