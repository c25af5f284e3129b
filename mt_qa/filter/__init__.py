"""filter: language ID, translation-quality checks and deduplication of QA shards."""

from __future__ import annotations

from mt_qa.filter.stage import FilterConfig, FilterStage

__all__ = ["FilterConfig", "FilterStage"]
