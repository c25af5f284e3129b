"""mtqa: multilingual QA retrieval data and hybrid-batch training."""

from __future__ import annotations

__version__ = "0.1.0"
