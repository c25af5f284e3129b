"""The output claim + lock (mt_qa/outdir.py): nothing foreign destroyed, one writer per configuration,
array siblings side by side, temp files of killed runs cleaned, file modes from the umask."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from mt_qa.cli import main
from mt_qa.errors import MtqaError, ShardStoreError
from mt_qa.outdir import RUN_LOCK, claim_output
from mt_qa.records import QA_SCHEMA
from mt_qa.shards import ShardStore
from tests.helpers import tree_digest
from tests.test_shards import rows, write_store

FIX = Path(__file__).resolve().parent / "fixtures" / "collect"


def collect(out: Path, *extra: str) -> int:
    return main(["collect", str(FIX / "squad_v2.json"), "-o", str(out), "-q", *extra])


# ----------------------------------------------------------------------------- nothing foreign destroyed


def test_overwrite_refuses_a_directory_mtqa_did_not_make(tmp_path, capsys):
    out = tmp_path / "x"
    (out / "src").mkdir(parents=True)
    (out / "thesis.tex").write_text("thesis")
    assert collect(out, "--overwrite") == 1
    err = capsys.readouterr().err
    assert err.startswith("Error: ") and err.count("\n") == 1 and "did not make" in err
    assert (out / "thesis.tex").read_text() == "thesis" and (out / "src").is_dir()


def test_overwrite_of_an_mtqa_directory_keeps_files_mtqa_did_not_write(tmp_path):
    out = tmp_path / "x"
    assert collect(out, "--shard-size", "1") == 0
    (out / "NOTES.md").write_text("my notes")
    assert collect(out, "--shard-size", "2") == 1  # another configuration: refused without --overwrite
    assert collect(out, "--shard-size", "2", "--overwrite") == 0
    assert (out / "NOTES.md").read_text() == "my notes"
    assert ShardStore.open(out).manifest["params"]["shard_size"] == 2


def test_claim_of_a_file_is_one_clear_error(tmp_path):
    (tmp_path / "f").write_text("x")
    with pytest.raises(MtqaError, match="not a directory"):
        ShardStore(tmp_path / "f", "test", QA_SCHEMA).begin({}, [])


# ----------------------------------------------------------------------------- locks

HOLDER = textwrap.dedent("""
    import sys, time
    from mt_qa.records import QA_SCHEMA
    from mt_qa.shards import ShardStore
    ShardStore(sys.argv[1], "test", QA_SCHEMA).begin({"p": int(sys.argv[2])}, [])
    print("claimed", flush=True)
    time.sleep(60)
""")


def _hold(root: Path, p: int) -> subprocess.Popen:
    proc = subprocess.Popen([sys.executable, "-c", HOLDER, str(root), str(p)], stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None and proc.stdout.readline().strip() == "claimed"
    return proc


def test_another_configuration_is_refused_while_a_writer_holds_the_directory(tmp_path):
    root = tmp_path / "s"
    holder = _hold(root, 1)
    try:
        # No shard is done, so without the lock this run would silently take the directory over.
        with pytest.raises(MtqaError, match="being written by another mtqa process"):
            ShardStore(root, "test", QA_SCHEMA).begin({"p": 2}, [])
        with pytest.raises(MtqaError, match="being written by another mtqa process"):
            ShardStore(root, "test", QA_SCHEMA).begin({"p": 2}, [], overwrite=True)
        # A job-array sibling of the same configuration shares the claim. A claim-file temp is a
        # left-over (only written under the claim lock); a manifest temp may be a sibling's, live.
        (root / "._run.json.killed.tmp").write_text("half")
        (root / ".manifest.json.live.tmp").write_text("being written")
        sibling = ShardStore(root, "test", QA_SCHEMA)
        sibling.begin({"p": 1}, [])
        sibling.release()
        assert not (root / "._run.json.killed.tmp").exists()
        assert (root / ".manifest.json.live.tmp").exists()
    finally:
        holder.kill()
        holder.wait()
    # The kernel dropped the dead holder's lock: the directory is free again.
    ShardStore(root, "test", QA_SCHEMA).begin({"p": 2}, [])


def test_exclusive_claims_refuse_a_second_writer(tmp_path):
    root = tmp_path / "report"
    script = ("import sys, time\nfrom mt_qa.outdir import claim_output\n"
              "claim_output(sys.argv[1], markers=('report.json',), same_run=lambda: True)\n"
              "print('claimed', flush=True)\ntime.sleep(60)\n")
    proc = subprocess.Popen([sys.executable, "-c", script, str(root)], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None and proc.stdout.readline().strip() == "claimed"
        with pytest.raises(MtqaError, match="being written by another mtqa process"):
            claim_output(root, markers=("report.json",), same_run=lambda: True)
    finally:
        proc.kill()
        proc.wait()


def test_two_identical_collects_at_once_both_succeed_with_the_single_run_output(tmp_path, squad_dir):
    cmd = [sys.executable, "-m", "mt_qa.cli", "collect", "-q", str(squad_dir / "dev-v1.1.en.json.gz"),
           "--parallel", f"es={squad_dir / 'dev-v1.1.es.json.gz'}", "--shard-size", "300"]
    subprocess.run([*cmd, "-o", str(tmp_path / "reference")], check=True, capture_output=True)
    out = tmp_path / "both"
    procs = [subprocess.Popen([*cmd, "-o", str(out)], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
             for _ in range(2)]
    outputs = [p.communicate()[0] for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outputs
    assert tree_digest(out) == tree_digest(tmp_path / "reference")
    assert ShardStore.open(out).validate() == []


def test_collects_of_different_inputs_at_once_never_mix(tmp_path, squad_dir):
    base = [sys.executable, "-m", "mt_qa.cli", "collect", "-q", "--shard-size", "300", "-o", str(tmp_path / "out")]
    procs = [subprocess.Popen([*base, str(squad_dir / "dev-v1.1.en.json.gz")], stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, text=True),
             subprocess.Popen([*base, str(FIX / "squad_v2.json")], stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, text=True)]
    outputs = [p.communicate()[0] for p in procs]
    codes = [p.returncode for p in procs]
    assert 0 in codes, outputs
    for code, text in zip(codes, outputs, strict=True):
        if code:
            assert "Error: " in text and "Traceback" not in text, text
    store = ShardStore.open(tmp_path / "out")
    assert store.validate() == []
    # One configuration only: the directory is exactly what a lone run of the input it names makes.
    (source,) = {ref["path"] for ref in store.manifest["inputs"]}
    subprocess.run([*base[:-1], str(tmp_path / "ref"), source], check=True, capture_output=True)
    assert tree_digest(tmp_path / "out") == tree_digest(tmp_path / "ref")


# ----------------------------------------------------------------------------- temp files, modes


def test_temp_files_of_a_killed_run_are_removed_on_resume(tmp_path):
    out = tmp_path / "x"
    assert collect(out, "--shard-size", "1") == 0
    reference = tree_digest(out)
    litter = [out / "._run.json.abc123.tmp", out / ".manifest.json.def456.tmp",
              out / "_done" / ".part-00000.json.x1.tmp", out / "data" / "en" / ".part-00001.arrow.x2.tmp"]
    for path in litter:
        path.write_text("half")
    (out / "manifest.json").unlink()
    assert collect(out, "--shard-size", "1") == 0
    assert not [p for p in litter if p.exists()]
    assert tree_digest(out) == reference


@pytest.mark.parametrize("umask", [0o022, 0o002])
def test_file_modes_follow_the_umask(tmp_path, umask):
    old = os.umask(umask)
    try:
        write_store(tmp_path / "s")
    finally:
        os.umask(old)
    for path in (tmp_path / "s").rglob("*"):
        if path.is_file():
            assert stat.S_IMODE(path.stat().st_mode) == 0o666 & ~umask, path


def test_lock_files_are_empty_so_directories_stay_byte_identical(tmp_path):
    write_store(tmp_path / "a")
    write_store(tmp_path / "b")
    assert (tmp_path / "a" / RUN_LOCK).read_bytes() == b""
    assert tree_digest(tmp_path / "a") == tree_digest(tmp_path / "b")


def test_a_store_can_be_claimed_again_in_the_same_process(tmp_path):
    first = ShardStore(tmp_path / "s", "test", QA_SCHEMA)
    first.begin({}, [])
    writer = first.writer("part-00000")
    writer.add(rows(1))
    writer.commit()
    # The first run died in this process without finish(): a rerun in it must not lock itself out.
    second = ShardStore(tmp_path / "s", "test", QA_SCHEMA)
    second.begin({}, [])
    assert second.finalize() is not None
    with pytest.raises(ShardStoreError, match="different run"):
        ShardStore(tmp_path / "s", "test", QA_SCHEMA).begin({"p": 1}, [])


def _foreign(tmp_path: Path) -> Path:
    out = tmp_path / "mine"
    out.mkdir()
    (out / "thesis.tex").write_text("thesis")
    (out / "report.md").write_text("my report")
    return out


def test_build_lareqa_overwrite_refuses_a_foreign_directory(tmp_path):
    from mt_qa.evaluate.build import BuildLareqa

    write_store(tmp_path / "qa")
    out = _foreign(tmp_path)
    with pytest.raises(MtqaError, match="did not make"):
        BuildLareqa(tmp_path / "qa", out, split="train", articles=1, overwrite=True).run()
    assert sorted(p.name for p in out.iterdir()) == ["report.md", "thesis.tex"]


def test_evaluate_refuses_to_write_a_report_into_a_foreign_directory(tmp_path):
    from mt_qa.evaluate.commands import claim_report as _claim

    out = _foreign(tmp_path)
    with pytest.raises(MtqaError, match="did not make"):
        _claim(out, "lareqa", {"kind": "lareqa"}, overwrite=True)
    assert (out / "report.md").read_text() == "my report"
    _claim(tmp_path / "new", "lareqa", {"kind": "lareqa"}, overwrite=False)
    assert (tmp_path / "new" / RUN_LOCK).is_file()
