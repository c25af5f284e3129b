"""mtqa inspect / validate on a real collected directory."""

from __future__ import annotations

import json
import shutil

from click.testing import CliRunner

from mt_qa.inspect import inspect_cmd, validate_cmd


def test_inspect_json_counts_by_language_and_origin(collected_squad):
    result = CliRunner().invoke(inspect_cmd, [str(collected_squad), "--json", "-n", "2"])
    assert result.exit_code == 0, result.output
    summary = json.loads(result.output)
    assert summary["rows_by_lang_origin"] == {
        "en/source": 13187, "es/imported": 5851, "it/imported": 6117, "pt/imported": 3286,
    }  # fmt: skip
    assert len(summary["samples"]) == 2 and summary["stage"] == "collect"


def test_inspect_human_output(collected_squad):
    result = CliRunner().invoke(inspect_cmd, [str(collected_squad)])
    assert result.exit_code == 0 and "imported=5851" in result.output


def test_validate_ok_then_fails_on_tampering(collected_squad, tmp_path):
    copy = tmp_path / "copy"
    shutil.copytree(collected_squad, copy)
    ok = CliRunner().invoke(validate_cmd, [str(copy)])
    assert ok.exit_code == 0 and ok.output.startswith("OK")
    victim = sorted((copy / "data" / "it").glob("*.arrow"))[0]
    victim.write_bytes(victim.read_bytes()[:-10] + b"0123456789")
    bad = CliRunner().invoke(validate_cmd, [str(copy)])
    assert bad.exit_code != 0 and "does not match manifest" in bad.output
