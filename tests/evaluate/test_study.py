"""The batching study: reports grouped by each model's training provenance, means over seeds, plots."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

from mt_qa.cli import main
from mt_qa.errors import MtqaError
from mt_qa.evaluate.study import load_runs, write_study

PNG = b"\x89PNG\r\n\x1a\n"
# (run, strategy, alpha in the batch params, seed); xx/xy stores record alpha None, as build-batches does.
RUNS = [("xx-s0", "xx", None, 0), ("xx-s1", "xx", None, 1), ("xy-s0", "xy", None, 0), ("hy-s0", "hybrid", 0.5, 0)]


def fake_trained(tiny_model, root, run, strategy, alpha, seed):
    """The tiny model plus the provenance file mtqa train writes (its content hash changes with it)."""
    model = root / run
    shutil.copytree(tiny_model, model)
    (model / "mtqa_train.json").write_text(json.dumps({
        "config": {"max_steps": 40, "lr": 3e-5, "seed": seed},
        "data": {"path": f"runs/batches-{run}", "params": {"strategy": strategy, "alpha": alpha, "seed": seed,
                                                            "batch_size": 32}}}))  # fmt: skip
    return model


@pytest.fixture(scope="module")
def study_dir(collected_squad, tiny_model, tmp_path_factory):
    root = tmp_path_factory.mktemp("study")
    bench = root / "bench"
    assert main(["evaluate", "build-lareqa", str(collected_squad), "-o", str(bench), "--articles", "1", "-q"]) == 0
    tatoeba = root / "tatoeba"
    tatoeba.mkdir()
    (tatoeba / "tatoeba.spa-eng.spa").write_text("el gato se sentó en la alfombra\ndónde está el perro\n")
    (tatoeba / "tatoeba.spa-eng.eng").write_text("the cat sat on the mat\nwhere is the dog\n")
    models = {"base": tiny_model} | {r[0]: fake_trained(tiny_model, root / "models", *r) for r in RUNS}
    reports = root / "reports"
    for name, model in models.items():
        common = ["-m", str(model), "--cache-dir", str(root / "cache"), "-q"]
        assert main(["evaluate", "lareqa", str(bench), "-o", str(reports / f"eval-{name}"), "--no-plots", *common]) == 0
        assert main(["evaluate", "tatoeba", str(tatoeba), "-o", str(reports / f"tatoeba-{name}"),
                     "--trained-languages", "en,es", *common]) == 0  # fmt: skip
    return reports


def test_runs_are_grouped_by_provenance_and_joined_across_report_kinds(study_dir):
    runs = load_runs([study_dir])
    assert [(r.condition, r.seed) for r in runs] == [("base", None), ("X-X", 0), ("X-X", 1), ("X-Y", 0),
                                                     ("hybrid α=0.5", 0)]  # fmt: skip
    assert all(r.lareqa and r.tatoeba for r in runs)
    assert [r.alpha for r in runs] == [None, 1.0, 1.0, 0.0, 0.5]


def test_study_means_agree_with_the_reports(study_dir, tmp_path):
    study = write_study([study_dir], tmp_path / "out")
    xx = study["conditions"]["X-X"]
    bench = next(iter(xx["metrics"].keys() - {"tatoeba"}))
    values = []
    for seed in (0, 1):
        report = json.loads((study_dir / f"eval-xx-s{seed}" / "report.json").read_text())
        values.append(report["benchmarks"][bench]["settings"]["multi"]["mAP"])
    stat = xx["metrics"][bench]["Multi mAP"]
    assert stat["n"] == 2 and stat["mean"] == pytest.approx(np.mean(values))
    assert stat["sd"] == pytest.approx(np.std(values, ddof=1))
    assert study["conditions"]["X-Y"]["metrics"][bench]["Multi mAP"]["sd"] is None
    assert "unseen mean" in xx["metrics"]["tatoeba"]
    md = (tmp_path / "out" / "study.md").read_text()
    assert "| X-X | 2 |" in md and "| hybrid α=0.5 | 1 |" in md and "Tatoeba" in md and "by alpha" in md
    for png in study["plots"].values():
        assert (tmp_path / "out" / png).read_bytes()[:8] == PNG
    assert len(study["plots"]) == 2


def test_cli_and_a_duplicate_report_is_an_error(study_dir, tmp_path):
    assert main(["evaluate", "study", str(study_dir), "-o", str(tmp_path / "s"), "-q", "--no-plots"]) == 0
    assert (tmp_path / "s" / "study.json").is_file() and not list((tmp_path / "s").glob("*.png"))
    shutil.copytree(study_dir / "eval-base", tmp_path / "again")
    with pytest.raises(MtqaError, match="a second lareqa report"):
        load_runs([study_dir, tmp_path / "again"])
