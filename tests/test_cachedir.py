"""One cache layout: $MTQA_CACHE_DIR moves the root, never the files inside it."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from click.testing import CliRunner

from mt_qa.cachedir import translation_cache_path
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
    for name in ("XDG_CACHE_HOME", "SLURM_JOB_ID"):
        monkeypatch.delenv(name, raising=False)
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


@pytest.fixture
def clean_env(tmp_path, monkeypatch):
    for name in ("MTQA_CACHE_DIR", "XDG_CACHE_HOME", "SLURM_JOB_ID", "SLURM_TMPDIR", "TMPDIR"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    return monkeypatch


def test_xdg_cache_home_is_honoured_outside_a_job(tmp_path, clean_env):
    clean_env.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert cache_root() == tmp_path / "xdg" / "mtqa"
    assert default_cache_path() == tmp_path / "xdg" / "mtqa" / "translations.sqlite"
    clean_env.setenv("XDG_CACHE_HOME", "relative/dir")  # the XDG spec: ignored
    assert cache_root() == tmp_path / "home" / ".cache" / "mtqa"


def test_the_translation_cache_is_node_local_in_a_slurm_job(tmp_path, clean_env):
    """Not the home directory (NFS on most clusters): the node's scratch, per user."""
    clean_env.setenv("SLURM_JOB_ID", "4242")
    user_dir = f"mtqa-{os.getuid()}"
    assert default_cache_path() == Path("/tmp") / user_dir / "translations.sqlite"
    clean_env.setenv("TMPDIR", str(tmp_path / "tmpdir"))
    assert default_cache_path() == tmp_path / "tmpdir" / user_dir / "translations.sqlite"
    clean_env.setenv("SLURM_TMPDIR", str(tmp_path / "slurm-tmp"))
    assert default_cache_path() == translation_cache_path() == tmp_path / "slurm-tmp" / user_dir / "translations.sqlite"
    # Models and embeddings stay in the (shared) cache root: written once, read by every node.
    assert default_cache_dir() == tmp_path / "home" / ".cache" / "mtqa" / "embeddings"
    # The user's explicit choice wins, in a job too.
    clean_env.setenv("MTQA_CACHE_DIR", str(tmp_path / "mine"))
    assert default_cache_path() == tmp_path / "mine" / "translations.sqlite"


def test_a_translate_run_in_a_slurm_job_writes_its_cache_on_the_node(tmp_path, clean_env):
    """What ``mtqa translate`` itself records as its cache, run as a Slurm task would run it."""
    clean_env.setenv("SLURM_JOB_ID", "7")
    clean_env.setenv("SLURM_TMPDIR", str(tmp_path / "node"))
    from mt_qa.translate.stage import TranslateStage

    stage = TranslateStage(tmp_path / "in", tmp_path / "out", "de", cache="default")
    assert stage.cache_path == tmp_path / "node" / f"mtqa-{os.getuid()}" / "translations.sqlite"
