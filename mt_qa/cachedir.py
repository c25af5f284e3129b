"""mtqa's cache directory, one layout whether or not ``$MTQA_CACHE_DIR`` moves it.

``<root>/models/`` converted translation models, ``<root>/translations.sqlite`` the translation
cache, ``<root>/embeddings/`` the evaluation embedding cache; ``<root>`` is ``$MTQA_CACHE_DIR``,
else ``~/.cache/mtqa``.
"""

from __future__ import annotations

import os
from pathlib import Path

CACHE_ENV = "MTQA_CACHE_DIR"


def cache_root() -> Path:
    """mtqa's cache directory: $MTQA_CACHE_DIR, else ~/.cache/mtqa."""
    return Path(os.environ.get(CACHE_ENV) or Path.home() / ".cache" / "mtqa").expanduser()
