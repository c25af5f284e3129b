"""The dedup plan is built once for all tasks of a filter step, not once per task."""

from __future__ import annotations

import subprocess
import sys

from tests.helpers import tree_digest


def test_concurrent_tasks_scan_for_the_dedup_plan_once(collected_squad, tmp_path):
    """Before: every task that started before the plan was saved rescanned every input row."""
    base = [sys.executable, "-m", "mt_qa.cli", "filter", str(collected_squad), "--detector", "fasttext", "-q",
            "--num-shards", "3"]  # fmt: skip
    procs = [subprocess.Popen([*base, "-o", str(tmp_path / "arr"), "--shard-index", str(i)], stderr=subprocess.PIPE,
                              stdout=subprocess.DEVNULL, text=True) for i in range(3)]  # fmt: skip
    errs = [p.communicate(timeout=600)[1] for p in procs]
    assert [p.returncode for p in procs] == [0, 0, 0], errs
    scans = [e for e in errs if "dedup_scan" in e]
    assert len(scans) == 1, errs
    single = subprocess.run([*base[:-2], "-o", str(tmp_path / "one")], capture_output=True, text=True)
    assert single.returncode == 0, single.stderr
    assert tree_digest(tmp_path / "arr") == tree_digest(tmp_path / "one")
