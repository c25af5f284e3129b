"""evaluate: score retrievers on LAReQA-format (XQuAD-R, MLQA-R) and BEIR/MIRACL-layout benchmarks.

Modules, one job each:

- ``lareqa``: read LAReQA-format files into candidates, questions and relevance;
- ``ranking``: exact ranks of the relevant candidates, chunked, bounded memory;
- ``metrics``: AP / R@k from those ranks, the mono/cross/multi settings, language bias;
- ``encode``: sentence-transformers encoding with an on-disk embedding cache;
- ``beir``: corpus/queries/qrels layout, exact top-k search, ``ir_measures`` scoring, TREC runs;
- ``build``: ``build-lareqa``, a held-out LAReQA-format benchmark from collected QA shards;
- ``report``: report.json / report.md / PNG plots, and ``compare``.
"""

from __future__ import annotations
