"""The SQuAD set-up the benchmarks share: the shared SQuAD v1.1 data collected with its es/it(/pt)
translations as parallel languages (no MT), into a QA shard store.

Benchmarks run as ``python bench/NAME.py``, so ``bench/`` is on ``sys.path`` and they import this
module by name.
"""

from __future__ import annotations

import os
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SQUAD = Path(os.environ.get("MTQA_SHARED", ROOT.parent / "shared")) / "data" / "squad-v1.1"


def collect_squad(out: Path, train_prefix: bool = False) -> Path:
    """Collect SQuAD dev (English, with Spanish and Italian) into ``out``; ``train_prefix`` adds the
    train-set prefix in English and Portuguese (more questions, a third parallel language)."""
    from mt_qa.collect import CollectStage, ParallelSpec, SourceSpec

    sources = [SourceSpec(str(SQUAD / "dev-v1.1.en.json.gz"))]
    parallel = [ParallelSpec("es", str(SQUAD / "dev-v1.1.es.json.gz")),
                ParallelSpec("it", str(SQUAD / "dev-v1.1.it.json.gz"))]
    if train_prefix:
        sources.append(SourceSpec(str(SQUAD / "train-v1.1.prefix.en.json.gz")))
        parallel.append(ParallelSpec("pt", str(SQUAD / "train-v1.1.prefix.pt.json.gz")))
    CollectStage(sources, out, parallel=parallel, progress=False).run()
    return out
