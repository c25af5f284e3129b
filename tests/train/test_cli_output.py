"""What `mtqa train` shows and leaves behind: its summary, a model that reloads cleanly, a fast --help."""

from __future__ import annotations

import re
import subprocess
import sys

from click.testing import CliRunner

from mt_qa.cli import cli
from tests.train.conftest import make_tiny_model

LOAD = ("import sys; from sentence_transformers import SentenceTransformer; "
        "m = SentenceTransformer(sys.argv[1], device='cpu'); print('pooler', m[0].auto_model.pooler is not None)")


def load_report(model_dir) -> subprocess.CompletedProcess:
    """Load a model in a fresh process, as a user would: what the loader prints is on stderr/stdout."""
    return subprocess.run([sys.executable, "-c", LOAD, str(model_dir)], capture_output=True, text=True, timeout=300)


def test_a_model_trained_from_a_mean_pooled_base_reloads_without_a_pooler(small_batches, squad_texts, tmp_path):
    base = make_tiny_model(squad_texts, tmp_path / "base", pooler=False)
    before = load_report(base)
    assert before.returncode == 0 and "pooler False" in before.stdout and "MISSING" not in before.stderr
    batches, _ = small_batches
    out = tmp_path / "model"
    result = CliRunner().invoke(cli, ["train", "--batches", str(batches), "--model", str(base), "--out", str(out),
                                      "--max-steps", "2", "--max-passage-length", "64", "--mini-batch-size", "0",
                                      "-q"])  # fmt: skip
    assert result.exit_code == 0, result.output
    # The summary is a key/value table with no blank header row above it.
    lines = result.stderr.splitlines()
    assert not [line for line in lines if re.fullmatch(r"[┃│]\s*[┃│]\s*[┃│]", line.strip())], result.stderr
    assert any(line.strip().startswith("│ steps") for line in lines), result.stderr
    after = load_report(out)
    assert after.returncode == 0, after.stderr
    assert "MISSING" not in after.stderr and "newly initialized" not in after.stderr, after.stderr
    assert "pooler False" in after.stdout


def test_train_help_imports_no_torch():
    code = ("import sys; from mt_qa.cli import main; main(['train', '--help']); "
            "print('TORCH', 'torch' in sys.modules, 'sentence_transformers' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert "--batches" in out.stdout and "TORCH False False" in out.stdout
