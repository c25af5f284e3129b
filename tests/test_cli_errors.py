"""Bad input across the CLIs: one ``Error:`` line naming the file or option, never a traceback, never a
silent success. (main() re-raises what it does not handle, so a traceback here fails the test.)"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from mt_qa.cli import main
from tests.test_shards import write_store

FIX = Path(__file__).resolve().parent / "fixtures" / "collect"


def error_line(capsys, argv: list[str], code: int = 1) -> str:
    assert main(argv) == code
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.startswith("Error:")]
    assert len(lines) == 1 and "Traceback" not in err, err
    return lines[0]


@pytest.fixture
def collected(tmp_path: Path) -> Path:
    out = tmp_path / "collect"
    assert main(["collect", str(FIX / "squad_v2.json"), "-o", str(out), "-q"]) == 0
    return out


def test_filter_refuses_a_collect_store_with_letters_changed_in_place(collected, tmp_path, capsys):
    (path,) = sorted((collected / "data" / "en").glob("*.arrow"))[:1]
    data = path.read_bytes()
    i = data.index(b"the ")
    path.write_bytes(data[:i] + b"THE " + data[i + 4:])
    line = error_line(capsys, ["filter", str(collected), "-o", str(tmp_path / "f"), "-q", "--skip", "langid"])
    assert path.name in line and "sha256" in line
    assert not (tmp_path / "f" / "manifest.json").exists()  # nothing laundered into a fresh checksum


def test_filter_refuses_a_store_with_a_shard_removed_from_its_manifest(collected, tmp_path, capsys):
    manifest = json.loads((collected / "manifest.json").read_text())
    manifest["shards"].pop(sorted(manifest["shards"])[0])
    (collected / "manifest.json").write_text(json.dumps(manifest))
    line = error_line(capsys, ["filter", str(collected), "-o", str(tmp_path / "f"), "-q", "--skip", "langid"])
    assert "not listed in the manifest" in line


def test_inspect_of_an_edited_manifest_is_one_line(collected, capsys):
    manifest = json.loads((collected / "manifest.json").read_text())
    del manifest["totals"]
    (collected / "manifest.json").write_text(json.dumps(manifest))
    assert "manifest" in error_line(capsys, ["inspect", str(collected)])


def test_num_shards_zero_says_what_is_wrong(tmp_path, capsys):
    line = error_line(capsys, ["collect", str(FIX / "squad_v2.json"), "-o", str(tmp_path / "o"), "-q",
                               "--num-shards", "0"])
    assert "--num-shards 0" in line and "at least 1" in line


def test_build_batches_with_an_unknown_language(tmp_path, capsys):
    write_store(tmp_path / "qa")
    line = error_line(capsys, ["build-batches", str(tmp_path / "qa"), "-o", str(tmp_path / "b"), "--langs", "xx",
                               "--batch-size", "2", "-q"])
    assert "--langs" in line and "'xx'" in line


def test_run_workers_below_one(tmp_path, capsys):
    pipe = tmp_path / "p.yaml"
    pipe.write_text("steps: [{name: c, stage: collect, args: [x]}]\n")
    line = error_line(capsys, ["run", str(pipe), "--workers", "-3"], code=2)
    assert "--workers" in line


def test_run_of_a_non_utf8_pipeline(tmp_path, capsys):
    pipe = tmp_path / "p.yaml"
    pipe.write_bytes(b"name: caf\xe9\nsteps: []\n")
    assert "not UTF-8" in error_line(capsys, ["run", str(pipe)])


def test_run_dir_that_is_a_file(tmp_path, capsys):
    (tmp_path / "runfile").write_text("x")
    pipe = tmp_path / "p.yaml"
    pipe.write_text(f"run_dir: {tmp_path / 'runfile'}\nsteps: [{{name: c, stage: collect, args: [x]}}]\n")
    assert "not a directory" in error_line(capsys, ["run", str(pipe)])


@pytest.mark.parametrize("name", ["..", ".", "logs", "_steps"])
def test_run_refuses_step_names_that_are_not_plain_components(tmp_path, capsys, name):
    pipe = tmp_path / "p.yaml"
    pipe.write_text(f"run_dir: {tmp_path / 'r'}\nsteps: [{{name: '{name}', stage: collect, args: [x], "
                    "options: {overwrite: true}}]\n")
    assert "step name" in error_line(capsys, ["run", str(pipe)])
    assert tmp_path.is_dir() and pipe.is_file()


def test_device_cuda_without_a_gpu(tmp_path, capsys):
    torch = pytest.importorskip("torch")
    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    write_store(tmp_path / "qa")
    line = error_line(capsys, ["train", "--batches", str(tmp_path / "qa"), "--model", str(tmp_path / "m"),
                               "--out", str(tmp_path / "out"), "--device", "cuda"])
    assert "--device cuda" in line
    assert "--device" in error_line(capsys, ["evaluate", "tatoeba", str(tmp_path), "-m", str(tmp_path / "m"),
                                             "-o", str(tmp_path / "e"), "--device", "cuda:0"])


def test_tatoeba_with_empty_files(tmp_path, capsys):
    data = tmp_path / "tatoeba"
    data.mkdir()
    (data / "tatoeba.deu-eng.deu").write_text("")
    (data / "tatoeba.deu-eng.eng").write_text("")
    from mt_qa.errors import MtqaError
    from mt_qa.evaluate.tatoeba import load_tatoeba

    with pytest.raises(MtqaError, match="empty file"):
        load_tatoeba(data)
