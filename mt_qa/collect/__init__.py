"""collect: read English QA datasets (and parallel imports) into normalized QA shards."""

from __future__ import annotations

from mt_qa.collect.registry import FORMATS, READERS, detect_format, make_reader
from mt_qa.collect.stage import CollectStage, ParallelSpec, SourceSpec

__all__ = ["FORMATS", "READERS", "CollectStage", "ParallelSpec", "SourceSpec", "detect_format", "make_reader"]
