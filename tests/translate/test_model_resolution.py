"""--model as a user types it: a missing local path fails at once, an unreachable hub fails fast and
says how to get the model with the download tool the installed hub client provides."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

from mt_qa.cli import cli
from mt_qa.translate.models import ModelError, looks_like_path, resolve_model

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def no_hub(tmp_path, monkeypatch) -> str:
    """Empty caches and a hub endpoint on a closed loopback port: what a machine without network sees."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    endpoint = f"http://127.0.0.1:{port}"
    for name in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "MTQA_OFFLINE", "HTTPS_PROXY", "https_proxy",
                 "HTTP_PROXY", "http_proxy", "ALL_PROXY", "all_proxy"):  # fmt: skip
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HF_ENDPOINT", endpoint)  # for the mtqa processes these tests start
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "ENDPOINT", endpoint)  # read once at import: for this process
    monkeypatch.setenv("MTQA_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf-home"))
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hf-home" / "hub"))
    return endpoint


def test_which_specs_are_paths(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "models").mkdir()
    for spec in ("models/nllb-600M-int8", "./nllb", "../nllb", "~/nllb", "/abs/nllb", "a/b/c", ".nllb",
                 "name with spaces", "owner/na--me"):  # fmt: skip
        assert looks_like_path(spec), spec
    for spec in ("facebook/nllb-200-distilled-600M", "nllb-200-distilled-600M", "mtqa-tests/x_1.0"):
        assert not looks_like_path(spec), spec


def test_a_missing_local_model_directory_is_an_immediate_not_found(tmp_path, monkeypatch, no_hub):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "models" / "e5").mkdir(parents=True)
    result = CliRunner().invoke(cli, ["model", "convert", "models/nllb-600M", "-o", str(tmp_path / "out")])
    assert result.exit_code != 0
    with pytest.raises(ModelError) as err:
        resolve_model("models/nllb-600M-int8")
    message = str(err.value)
    assert message.startswith("model directory 'models/nllb-600M-int8' not found (models/ holds e5)")
    assert "hub" not in message.split(";")[0] and "mtqa model convert models/" not in message


def test_translate_with_a_missing_path_prints_one_not_found_line(qa_store, tmp_path, no_hub):
    (tmp_path / "models").mkdir()
    argv = ["translate", str(qa_store), "--langs", "de", "--model", "models/nllb-600M-int8", "-o", str(tmp_path / "o")]
    proc = subprocess.run([sys.executable, "-m", "mt_qa.cli", *argv, "-q"], cwd=tmp_path, capture_output=True,
                          text=True, env={**os.environ, "PYTHONPATH": str(ROOT)}, timeout=120)  # fmt: skip
    assert proc.returncode == 1
    assert proc.stderr.startswith("Error: model directory 'models/nllb-600M-int8' not found"), proc.stderr
    assert "Traceback" not in proc.stderr and len(proc.stderr.strip().splitlines()) == 1


def test_an_unreachable_hub_fails_at_once_and_names_hf_download(no_hub):
    started = time.perf_counter()
    with pytest.raises(ModelError) as err:
        resolve_model("mtqa-tests/nllb-not-cached-anywhere")
    seconds = time.perf_counter() - started
    message = str(err.value)
    assert "out of reach" in message and "127.0.0.1" in message
    assert "huggingface-cli" not in message
    download = "hf download mtqa-tests/nllb-not-cached-anywhere --local-dir nllb-not-cached-anywhere"
    assert download in message and shutil.which("hf", path=str(Path(sys.executable).parent))
    assert seconds < 10  # no retries with back-off (they took ~25 s): one refused connect


def test_quickstart_without_the_model_stops_and_says_how_to_pass_it(tmp_path, monkeypatch, no_hub):
    monkeypatch.chdir(ROOT)
    result = CliRunner().invoke(cli, ["run", "pipelines/quickstart.yaml", "--workers", "1",
                                      "--set", f"run_dir={tmp_path / 'run'}"])  # fmt: skip
    assert result.exit_code == 1
    message = str(result.exception)
    assert "step 'translate' failed" in message and "out of reach" in message
    assert "--set vars.nllb=DIR" in message
    assert not (tmp_path / "run" / "filter").exists()
