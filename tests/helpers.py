"""Helpers shared by tests of several packages."""

from __future__ import annotations

from pathlib import Path

from mt_qa.io import sha256_file


def tree_digest(root: Path) -> dict[str, str]:
    """sha256 of every file a run leaves under ``root`` (the run's ``_run.json`` claim excluded)."""
    return {
        p.relative_to(root).as_posix(): sha256_file(p)
        for p in sorted(root.rglob("*"))
        if p.is_file() and p.name != "_run.json"
    }


def write_pipeline_yaml(tmp_path: Path, steps: str, name: str = "t") -> Path:
    """``tmp_path/pipe.yaml``: a pipeline NAME running in ``tmp_path/run`` with the given ``steps:`` YAML."""
    path = tmp_path / "pipe.yaml"
    path.write_text(f"name: {name}\nrun_dir: {tmp_path / 'run'}\nsteps:\n{steps}")
    return path
