"""End-of-run summaries and inspect output as a user reads them (captured through Click's runner)."""

from __future__ import annotations

import json
import re

import pytest
from click.testing import CliRunner

from mt_qa.cli import cli


@pytest.fixture(scope="module")
def batch_store(collected_squad, tmp_path_factory):
    out = tmp_path_factory.mktemp("summ") / "a-directory-name-long-enough-to-be-wrapped-at-eighty-columns" / "batches"
    result = CliRunner().invoke(cli, ["build-batches", str(collected_squad), "-o", str(out), "--strategy", "hybrid",
                                      "--batch-size", "64", "--lang-weights", "en=1,es=1,it=1", "-q"])  # fmt: skip
    assert result.exit_code == 0, result.output
    return out, result


def test_batch_summary_names_its_languages_and_never_wraps_paths(batch_store):
    out, result = batch_store
    assert "rows ()" not in result.stderr
    totals = [line for line in result.stderr.splitlines() if " rows " in line and "rejected" in line]
    assert totals and re.search(r"\d+ rows \(query en=\d+, es=\d+, it=\d+; passage en=\d+, es=\d+, it=\d+\)",
                                totals[0]), totals  # fmt: skip
    # Off a terminal the table is not cut at 80 columns: the output path stays whole on one line.
    assert any(str(out) in line for line in result.stderr.splitlines())
    assert max(len(line) for line in result.stderr.splitlines()) > 80


def test_inspect_a_batch_store_shows_query_and_passage_languages(batch_store):
    out, _ = batch_store
    summary = json.loads(CliRunner().invoke(cli, ["inspect", str(out), "--json"]).output)
    pairs = summary["rows_by_lang_pair"]
    assert set(pairs) == {"en", "es", "it"}
    total = sum(n for passages in pairs.values() for types in passages.values() for n in types.values())
    assert total == summary["totals"]["rows"]
    assert pairs["en"]["en"].get("xx", 0) > 0  # X-X batches: query and passage languages agree
    assert any(q != p for q, passages in pairs.items() for p in passages)  # and X-Y ones cross
    human = CliRunner().invoke(cli, ["inspect", str(out)]).output
    assert "query lang" in human and "passage lang" in human and "xy=" in human


def test_build_lareqa_quiet_still_prints_its_summary(collected_squad, tmp_path):
    result = CliRunner().invoke(cli, ["evaluate", "build-lareqa", str(collected_squad), "--articles", "2",
                                      "-o", str(tmp_path / "bench"), "-q"])  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "mtqa evaluate build-lareqa" in result.stderr and "articles held out" in result.stderr
    assert "heldout_group_ids.txt" in result.stderr
