from __future__ import annotations

from pathlib import Path

import pytest

from mt_qa.cli import main
from mt_qa.shards import ShardStore
from tests.filter.corpus import TEXTS, group


@pytest.fixture()
def src(make_store) -> Path:
    return make_store([group("amazon") + group("wall", es=TEXTS["wall"]["en"])])


def test_filter_command(src: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "out"
    code = main(["filter", str(src), "-o", str(out), "--detector", "fasttext", "--quiet"])
    err = capsys.readouterr().err
    assert code == 0, err
    assert "copied_source" in err and "input rows" in err and "kept" in err and "time by check" in err
    manifest = ShardStore.open(out).manifest
    assert manifest["totals"]["rows"] == 5 and manifest["totals"]["rejects"] == 1
    assert manifest["params"]["detector"] == "fasttext"


def test_filter_command_array_task(src: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "out"
    assert main(["filter", str(src), "-o", str(out), "--detector", "fasttext", "-q",
                 "--num-shards", "2", "--shard-index", "1"]) == 0
    err = " ".join(capsys.readouterr().err.split())  # rich wraps long lines
    assert "the manifest is written when every task is done" in err


@pytest.mark.parametrize(("args", "message"), [
    (["--min-confidence", "2"], "Error: --min-confidence must be in [0, 1], not 2.0"),
    (["--detector", "cld3"], "Error: --detector 'cld3'"),
    (["--min-length-ratio", "3"], "Error: --min-length-ratio (3.0) must be > 0 and below --max-length-ratio"),
    (["--num-shards", "2", "--shard-index", "5"], "Error: --shard-index 5 must be in 0..1"),
])
def test_bad_options_are_one_clear_line(src: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                        args: list[str], message: str) -> None:
    code = main(["filter", str(src), "-o", str(tmp_path / "out"), "-q", *args])
    err = capsys.readouterr().err
    assert code == 1
    assert message in err and "Traceback" not in err


def test_missing_input_is_one_clear_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["filter", str(tmp_path / "nope"), "-o", str(tmp_path / "out"), "-q"]) == 1
    assert "not a finished mtqa shard directory" in capsys.readouterr().err


def test_help_lists_every_option(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["filter", "--help"]) == 0
    text = capsys.readouterr().out
    for option in ("--detector", "--min-confidence", "--min-length-ratio", "--max-length-ratio", "--max-repetition",
                   "--near-dup-threshold", "--no-dedup", "--num-shards", "--shard-index", "--overwrite", "--quiet"):
        assert option in text
