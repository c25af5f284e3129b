"""One cache layout: $MTQA_CACHE_DIR moves the root, never the files inside it."""

from __future__ import annotations

from pathlib import Path

from click.testing import CliRunner

from mt_qa.cli import cli
from mt_qa.evaluate.encode import default_cache_dir
from mt_qa.translate.models import cache_root
from mt_qa.translate.stage import default_cache_path

ROOT = Path(__file__).resolve().parents[1]


def layout() -> dict[str, Path]:
    root = cache_root()
    return {"embeddings": default_cache_dir().relative_to(root),
            "translations": default_cache_path().relative_to(root)}  # fmt: skip


def test_mtqa_cache_dir_keeps_the_default_layout(tmp_path, monkeypatch):
    monkeypatch.delenv("MTQA_CACHE_DIR", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert cache_root() == tmp_path / "home" / ".cache" / "mtqa"
    default = layout()
    monkeypatch.setenv("MTQA_CACHE_DIR", str(tmp_path / "elsewhere"))
    assert cache_root() == tmp_path / "elsewhere"
    assert layout() == default == {"embeddings": Path("embeddings"), "translations": Path("translations.sqlite")}
    help_text = CliRunner().invoke(cli, ["evaluate", "lareqa", "--help"]).output
    assert "$MTQA_CACHE_DIR/embeddings" in help_text


def test_docs_name_no_machine_specific_paths():
    files = [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md")), *sorted((ROOT / "mt_qa").rglob("*.py"))]
    offenders = [str(f.relative_to(ROOT)) for f in files if "/work/cache" in f.read_text(encoding="utf-8")]
    assert offenders == []
