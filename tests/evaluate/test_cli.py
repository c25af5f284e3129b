from __future__ import annotations

import gzip
import json

import numpy as np
import pytest

from mt_qa.cli import main
from mt_qa.evaluate.build import BuildLareqa
from mt_qa.evaluate.lareqa import load_benchmark
from mt_qa.evaluate.pipeline import score_task
from tests.evaluate.test_beir import _make_beir

PNG = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def devbench(collected_squad, tmp_path_factory):
    out = tmp_path_factory.mktemp("cli") / "dev2"
    assert main([
        "evaluate", "build-lareqa", str(collected_squad), "-o", str(out), "--articles", "2", "--seed", "3", "-q",
    ]) == 0
    return out


@pytest.fixture(scope="module")
def evaluated(devbench, tiny_model, tmp_path_factory):
    root = tmp_path_factory.mktemp("eval")
    out = root / "tiny"
    rc = main(["evaluate", "lareqa", str(devbench), "-m", str(tiny_model), "-o", str(out), "--cache-dir",
               str(root / "cache"), "-q", "--label", "tiny"])
    assert rc == 0
    return out, root


def test_lareqa_command_writes_every_report_file(evaluated, devbench):
    out, _ = evaluated
    report = json.loads((out / "report.json").read_text())
    assert report["label"] == "tiny" and report["kind"] == "lareqa"
    bench = report["benchmarks"]["dev2"]
    assert bench["languages"] == ["en", "es", "it"]
    assert set(bench["settings"]["cross"]["per_pair"]) == {f"{x}-{y}" for x in "en es it".split()
                                                            for y in "en es it".split() if x != y}
    for png in ("dev2_xling_map.png", "dev2_language_bias.png"):
        assert (out / png).read_bytes()[:8] == PNG
    md = (out / "report.md").read_text()
    assert "| dev2 |" in md and "Mono mAP" in md and "dev2_xling_map.png" in md
    lines = [json.loads(x) for x in gzip.open(out / "per_query_dev2.jsonl.gz", "rt")]
    assert len(lines) == sum(bench["n_questions"].values())
    # report numbers agree with the per-query file they summarise
    for lang in bench["languages"]:
        ap = [x["AP_pool"] for x in lines if x["lang"] == lang]
        assert bench["settings"]["multi"]["per_language"][lang]["mAP"] == pytest.approx(np.mean(ap), abs=1e-5)
        bias = [x["bias"] for x in lines if x["lang"] == lang]
        assert bench["language_bias"]["per_language"][lang]["mean"] == pytest.approx(np.mean(bias))
        mono = [x["AP"][lang] for x in lines if x["lang"] == lang]
        assert bench["settings"]["mono"]["per_language"][lang]["mAP"] == pytest.approx(np.mean(mono), abs=1e-5)


def test_report_numbers_match_scoring_the_cached_embeddings_directly(evaluated, devbench, tiny_model):
    from mt_qa.evaluate.encode import Encoder

    out, root = evaluated
    task = load_benchmark(devbench).task()
    enc = Encoder(str(tiny_model), cache_dir=root / "cache", progress=False)
    q = enc.encode(task.query_texts, "query: ")
    c = enc.encode(task.candidate_texts, "passage: ")
    assert enc.stats["encoded"] == 0  # all from the run's cache
    summary, _ = score_task(task, q, c)
    report = json.loads((out / "report.json").read_text())["benchmarks"]["dev2"]
    assert report["settings"]["multi"]["mAP"] == pytest.approx(summary["settings"]["multi"]["mAP"])
    assert report["matrix"] == summary["matrix"]


def test_rerun_and_refusals(evaluated, devbench, tiny_model, tmp_path, capsys):
    out, root = evaluated
    other = tmp_path / "other_model"
    from tests.evaluate.conftest import build_tiny_model

    other_model = build_tiny_model(other, seed=1)
    capsys.readouterr()
    rc = main(["evaluate", "lareqa", str(devbench), "-m", str(other_model), "-o", str(out), "--no-cache", "-q",
               "--no-plots"])
    assert rc == 1
    assert "another model" in capsys.readouterr().err
    rc = main(["evaluate", "lareqa", str(devbench), "-m", str(tmp_path / "missing"), "-o", str(tmp_path / "x")])
    assert rc == 1
    assert capsys.readouterr().err.startswith("Error: model")


def test_compare_puts_models_side_by_side(evaluated, devbench, tiny_model, tmp_path, capsys):
    out, root = evaluated
    out2 = tmp_path / "plain"
    assert main(["evaluate", "lareqa", str(devbench), "-m", str(tiny_model), "-o", str(out2), "--cache-dir",
                 str(root / "cache"), "-q", "--query-prefix", "", "--passage-prefix", "", "--no-plots",
                 "--languages", "en,es"]) == 0
    capsys.readouterr()
    assert main(["evaluate", "compare", str(out), str(out2 / "report.json"), "--label", "prefixed",
                 "--label", "plain", "-o", str(tmp_path / "cmp.md")]) == 0
    text = capsys.readouterr().out
    assert "| prefixed |" in text and "| plain |" in text
    assert (tmp_path / "cmp.md").read_text().strip() == text.strip()
    assert main(["evaluate", "compare", str(tmp_path)]) == 1


def test_beir_command(tiny_model, tmp_path):
    _make_beir(tmp_path / "toy")
    out = tmp_path / "out"
    assert main(["evaluate", "beir", str(tmp_path / "toy"), "-m", str(tiny_model), "-o", str(out), "--no-cache",
                 "-q", "-k", "10"]) == 0
    report = json.loads((out / "report.json").read_text())
    assert set(report["benchmarks"]["toy"]["metrics"]) == {"nDCG@10", "R@100", "RR@10", "AP"}
    assert (out / "run_toy.trec").read_text().count("\n") == 6 * 10
    assert "| toy |" in (out / "report.md").read_text()
    assert json.loads((out / "per_query_toy.json").read_text()).keys() == {f"q{i}" for i in range(6)}


@pytest.mark.slow
def test_e5_small_zero_shot_beats_random_embeddings(e5_small, collected_squad, tmp_path):
    from mt_qa.evaluate.encode import Encoder
    from mt_qa.evaluate.pipeline import evaluate_lareqa

    BuildLareqa(collected_squad, tmp_path / "b", articles=2, seed=5).run()
    enc = Encoder(str(e5_small), cache_dir=tmp_path / "cache", progress=False)
    result = evaluate_lareqa([tmp_path / "b"], enc, progress=False)
    bench = result["report"]["benchmarks"]["b"]
    task = result["results"][0].task
    rng = np.random.default_rng(0)
    rand = [rng.normal(size=(n, 384)).astype(np.float32) for n in (task.num_queries, task.num_candidates)]
    baseline, _ = score_task(task, *rand)
    for setting in ("mono", "cross", "multi"):
        assert bench["settings"][setting]["mAP"] > baseline["settings"][setting]["mAP"] + 0.3
    assert bench["language_bias"]["mean"] < baseline["language_bias"]["mean"]
