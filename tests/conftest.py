"""Shared fixtures: the real data in ../shared, collected once per session, and real models."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("MTQA_SHARED", ROOT.parent / "shared"))
SQUAD = SHARED / "data" / "squad-v1.1"
TATOEBA = SHARED / "data" / "tatoeba"
FIXTURES = Path(__file__).resolve().parent / "fixtures"


@pytest.fixture(scope="session")
def squad_dir() -> Path:
    if not (SQUAD / "dev-v1.1.en.json.gz").is_file():
        pytest.skip(f"real SQuAD data not found at {SQUAD} (../shared is absent)")
    return SQUAD


@pytest.fixture(scope="session")
def tatoeba_dir() -> Path:
    if not TATOEBA.is_dir():
        pytest.skip(f"Tatoeba data not found at {TATOEBA} (../shared is absent)")
    return TATOEBA


@pytest.fixture(scope="session")
def collected_squad(squad_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """en dev + es/it imports, en train prefix + pt import, collected once for the session."""
    from mt_qa.collect import CollectStage, ParallelSpec, SourceSpec

    out = tmp_path_factory.mktemp("collected") / "collect"
    CollectStage(
        [
            SourceSpec(str(squad_dir / "dev-v1.1.en.json.gz")),
            SourceSpec(str(squad_dir / "train-v1.1.prefix.en.json.gz")),
        ],
        out,
        parallel=[
            ParallelSpec("es", str(squad_dir / "dev-v1.1.es.json.gz")),
            ParallelSpec("it", str(squad_dir / "dev-v1.1.it.json.gz")),
            ParallelSpec("pt", str(squad_dir / "train-v1.1.prefix.pt.json.gz")),
        ],
        progress=False,
    ).run()
    return out


@pytest.fixture(scope="session")
def e5_small(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The real multilingual-e5-small as a sentence-transformers directory (skips if it can't be made).

    Made by ../shared/tools/make_e5_small.py into $MTQA_E5_DIR (default ~/.cache/mtqa/e5-small),
    which reuses an existing conversion, so only the first run pays for it.
    """
    tool = SHARED / "tools" / "make_e5_small.py"
    if not tool.is_file():
        pytest.skip(f"{tool} not found (../shared is absent)")
    out = Path(os.environ.get("MTQA_E5_DIR", Path.home() / ".cache" / "mtqa" / "e5-small"))
    proc = subprocess.run([sys.executable, str(tool), str(out)], capture_output=True, text=True, timeout=900)
    if proc.returncode != 0:
        pytest.skip(f"could not materialise multilingual-e5-small: {proc.stderr.strip()[-500:]}")
    return out
