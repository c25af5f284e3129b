"""Where mtqa keeps its caches, one layout whether or not ``$MTQA_CACHE_DIR`` moves it.

``<root>/models/`` converted translation models, ``<root>/translations.sqlite`` the translation
cache, ``<root>/embeddings/`` the evaluation embedding cache; ``<root>`` is ``$MTQA_CACHE_DIR``,
else ``$XDG_CACHE_HOME/mtqa``, else ``~/.cache/mtqa`` (the XDG convention pip and Hugging Face follow).

One exception, the translation cache inside a Slurm job: without ``$MTQA_CACHE_DIR`` it goes to
the node's local scratch (``$SLURM_TMPDIR``, else ``$TMPDIR``, else ``/tmp``; in ``mtqa-<uid>/``).
The home directory is NFS on most clusters, and SQLite's locking over NFS is slow and unreliable
when the tasks of a job array on many nodes write one file; a per-node file is written by that
node's tasks only. Converted models and embeddings stay under the root: they are written once and
read many times, which a shared file system does well. ``$MTQA_CACHE_DIR`` (or ``--cache``) is the
user's explicit choice and always wins.
"""

from __future__ import annotations

import os
from pathlib import Path

CACHE_ENV = "MTQA_CACHE_DIR"
TRANSLATIONS = "translations.sqlite"


def cache_root() -> Path:
    """mtqa's cache directory: $MTQA_CACHE_DIR, else $XDG_CACHE_HOME/mtqa, else ~/.cache/mtqa."""
    if os.environ.get(CACHE_ENV):
        return Path(os.environ[CACHE_ENV]).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    if xdg and Path(xdg).is_absolute():  # the XDG spec: a relative value is to be ignored
        return Path(xdg) / "mtqa"
    return Path.home() / ".cache" / "mtqa"


def node_scratch() -> Path | None:
    """This node's local scratch directory when running inside a Slurm job, else None."""
    if not os.environ.get("SLURM_JOB_ID"):
        return None
    for name in ("SLURM_TMPDIR", "TMPDIR"):
        if os.environ.get(name):
            return Path(os.environ[name])
    return Path("/tmp")


def translation_cache_path() -> Path:
    """The default translation cache: under $MTQA_CACHE_DIR if set, else node-local inside a Slurm
    job (see the module docstring), else under :func:`cache_root`."""
    if not os.environ.get(CACHE_ENV):
        scratch = node_scratch()
        if scratch is not None:
            return scratch / f"mtqa-{os.getuid()}" / TRANSLATIONS
    return cache_root() / TRANSLATIONS
