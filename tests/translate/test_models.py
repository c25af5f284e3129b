from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from mt_qa.cli import main
from mt_qa.translate.models import (
    META_FILE,
    ModelError,
    content_hash,
    convert,
    load_model_info,
    resolve_model,
    validate_ct2_dir,
)


def test_model_convert_command_writes_a_valid_ct2_model(tiny_checkpoint: Path, tmp_path: Path, capsys):
    out = tmp_path / "converted"
    assert main(["model", "convert", str(tiny_checkpoint), "--out", str(out), "--quantization", "int8"]) == 0
    assert validate_ct2_dir(out, ["deu_Latn", "zho_Hans"]) == []
    assert {"model.bin", "config.json", "sentencepiece.bpe.model", META_FILE} <= {p.name for p in out.iterdir()}
    meta = json.loads((out / META_FILE).read_text())
    assert meta["source"] == tiny_checkpoint.name and meta["quantization"] == "int8"
    assert "content sha256" in capsys.readouterr().out
    # A second conversion into the same place is refused without --force, with a one-line error.
    assert main(["model", "convert", str(tiny_checkpoint), "--out", str(out)]) == 1
    assert "already holds a converted model" in capsys.readouterr().err
    assert main(["model", "convert", str(tiny_checkpoint), "--out", str(out), "--force"]) == 0


def test_quantization_changes_the_content_hash(tiny_checkpoint: Path, tiny_ct2: Path, tmp_path: Path):
    f32 = convert(tiny_checkpoint, tmp_path / "f32", "float32")
    assert f32.sha256 != load_model_info(tiny_ct2).sha256
    assert (f32.path / "model.bin").stat().st_size > (tiny_ct2 / "model.bin").stat().st_size


def test_content_hash_is_stable_and_sees_changes(tiny_ct2: Path, tmp_path: Path):
    copy = Path(shutil.copytree(tiny_ct2, tmp_path / "copy"))
    first = content_hash(copy)
    assert content_hash(copy) == first
    assert (copy / ".mtqa_hash.json").is_file()  # per-file digests remembered for the next run
    original = (copy / "config.json").read_text()
    (copy / "config.json").write_text(original)  # rewritten (new mtime), same bytes: same hash
    assert content_hash(copy) == first
    (copy / "config.json").write_text(original + "\n")
    assert content_hash(copy) != first


def test_validation_names_what_is_wrong(tiny_ct2: Path, tmp_path: Path, capsys):
    broken = Path(shutil.copytree(tiny_ct2, tmp_path / "broken"))
    (broken / "sentencepiece.bpe.model").unlink()
    vocab = [tok for tok in json.loads((broken / "shared_vocabulary.json").read_text()) if tok != "deu_Latn"]
    (broken / "shared_vocabulary.json").write_text(json.dumps(vocab))
    problems = validate_ct2_dir(broken, ["deu_Latn", "zho_Hans"])
    assert any("sentencepiece.bpe.model" in p for p in problems)
    assert any("no language token for deu_Latn" in p for p in problems)
    with pytest.raises(ModelError, match="not a usable NLLB CTranslate2 model"):
        resolve_model(str(broken), flores_codes=["deu_Latn"])
    assert main(["model", "info", str(broken), "--langs", "de"]) == 1
    assert "no language token for deu_Latn" in capsys.readouterr().err
    assert main(["model", "info", str(tiny_ct2), "--langs", "de,zh"]) == 0
    assert "sha256: " in capsys.readouterr().out


def test_a_checkpoint_directory_is_converted_once_and_reused(tiny_checkpoint: Path):
    first = resolve_model(str(tiny_checkpoint), "int8", ["deu_Latn"])
    assert first.path.is_relative_to(Path(os.environ["MTQA_CACHE_DIR"]))
    stamp = (first.path / "model.bin").stat().st_mtime_ns
    again = resolve_model(str(tiny_checkpoint), "int8", ["deu_Latn"])
    assert again == first
    assert (again.path / "model.bin").stat().st_mtime_ns == stamp
    assert first.detail == f"{tiny_checkpoint.name}@{first.sha256[:12]}"


def test_a_ct2_directory_is_used_as_is(tiny_ct2: Path):
    info = resolve_model(str(tiny_ct2), flores_codes=["arb_Arab"])
    assert info.path == tiny_ct2
    assert info.quantization == "int8"


def test_other_architectures_are_refused(tmp_path: Path):
    ckpt = tmp_path / "bert"
    ckpt.mkdir()
    (ckpt / "config.json").write_text(json.dumps({"model_type": "bert"}))
    (ckpt / "model.safetensors").write_bytes(b"not really")
    with pytest.raises(ModelError, match="model_type 'bert' is not an NLLB-200 checkpoint"):
        resolve_model(str(ckpt))


def test_missing_directory_is_reported():
    with pytest.raises(ModelError, match="does not exist"):
        resolve_model("./no/such/model")


def test_hub_id_offline_fails_at_once_and_says_how_to_provide_a_model(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(ModelError) as err:
        resolve_model("mtqa-tests/nllb-not-cached-anywhere")  # an id no Hugging Face cache can hold
    message = str(err.value)
    assert "not in the local caches" in message
    convert = "mtqa model convert mtqa-tests/nllb-not-cached-anywhere --out models/nllb-not-cached-anywhere-int8"
    assert convert in message
    assert "--model DIR" in message


def test_translate_command_offline_prints_one_error_line(qa_store: Path, tmp_path: Path):
    # An empty Hugging Face cache too, so a machine that has downloaded NLLB gets the same answer.
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "MTQA_CACHE_DIR": str(tmp_path / "cache"),
           "HF_HOME": str(tmp_path / "hf-home"), "HF_HUB_CACHE": str(tmp_path / "hf-home" / "hub")}
    proc = subprocess.run(
        [sys.executable, "-m", "mt_qa.cli", "translate", str(qa_store), "--langs", "de", "-o", str(tmp_path / "out"),
         "-q"], capture_output=True, text=True, env=env, timeout=120,
    )
    assert proc.returncode == 1
    assert proc.stderr.startswith("Error: model 'facebook/nllb-200-distilled-600M' is not in the local caches")
    assert "Traceback" not in proc.stderr
