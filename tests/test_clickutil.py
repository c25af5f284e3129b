"""Which job-array task a process is, from options or the scheduler's environment."""

from __future__ import annotations

import pytest

from mt_qa.clickutil import resolve_array_task
from mt_qa.errors import MtqaError

SCHEDULER_VARS = ("SLURM_ARRAY_TASK_ID", "SLURM_ARRAY_TASK_COUNT", "SLURM_ARRAY_TASK_MIN", "SLURM_ARRAY_TASK_MAX",
                  "JOB_COMPLETION_INDEX", "MTQA_NUM_SHARDS")  # fmt: skip


@pytest.fixture(autouse=True)
def clean_env(monkeypatch):
    for var in SCHEDULER_VARS:
        monkeypatch.delenv(var, raising=False)


def slurm_array(monkeypatch, task: int, lo: int, hi: int) -> None:
    monkeypatch.setenv("SLURM_ARRAY_TASK_ID", str(task))
    monkeypatch.setenv("SLURM_ARRAY_TASK_MIN", str(lo))
    monkeypatch.setenv("SLURM_ARRAY_TASK_MAX", str(hi))
    monkeypatch.setenv("SLURM_ARRAY_TASK_COUNT", str(hi - lo + 1))


def test_options_win_and_default_is_one_task():
    assert resolve_array_task(None, None) == (1, 0)
    assert resolve_array_task(4, 3) == (4, 3)


def test_a_whole_slurm_array_counts_its_tasks(monkeypatch):
    slurm_array(monkeypatch, 2, 0, 3)
    assert resolve_array_task(None, None) == (4, 2)


def test_a_rerun_subset_of_a_slurm_array_takes_the_count_from_mtqa_num_shards(monkeypatch):
    """sbatch --array=1 of a 4-task step: SLURM_ARRAY_TASK_COUNT is 1, the step has 4 tasks."""
    slurm_array(monkeypatch, 1, 1, 1)
    with pytest.raises(MtqaError, match="not the whole step: set MTQA_NUM_SHARDS"):
        resolve_array_task(None, None)
    monkeypatch.setenv("MTQA_NUM_SHARDS", "4")
    assert resolve_array_task(None, None) == (4, 1)


def test_an_indexed_job_needs_mtqa_num_shards(monkeypatch):
    monkeypatch.setenv("JOB_COMPLETION_INDEX", "2")
    with pytest.raises(MtqaError, match="JOB_COMPLETION_INDEX is set but MTQA_NUM_SHARDS is not"):
        resolve_array_task(None, None)
    monkeypatch.setenv("MTQA_NUM_SHARDS", "3")
    assert resolve_array_task(None, None) == (3, 2)
    monkeypatch.setenv("MTQA_NUM_SHARDS", "2")
    with pytest.raises(MtqaError, match="must be in 0..1"):
        resolve_array_task(None, None)


def test_mtqa_num_shards_alone_does_not_shard_a_plain_command(monkeypatch):
    monkeypatch.setenv("MTQA_NUM_SHARDS", "4")
    assert resolve_array_task(None, None) == (1, 0)


def test_bad_integers_are_one_error(monkeypatch):
    monkeypatch.setenv("JOB_COMPLETION_INDEX", "x")
    with pytest.raises(MtqaError, match=r"\$JOB_COMPLETION_INDEX='x' is not an integer"):
        resolve_array_task(None, None)


def test_one_language_list_type_for_every_command():
    import click
    from click.testing import CliRunner

    from mt_qa.clickutil import LANG_CODES, LANG_TEXT, LANGS

    @click.command()
    @click.option("--langs", type=LANGS)
    @click.option("--codes", type=LANG_CODES)
    @click.option("--text", type=LANG_TEXT)
    def cmd(langs, codes, text):
        click.echo(f"{[lang.flores for lang in langs]} {codes} {text}")

    out = CliRunner().invoke(cmd, ["--langs", "deu,zh", "--codes", "deu, de-CH,es", "--text", "deu_Latn,fra"])
    assert out.exit_code == 0 and out.output.strip() == "['deu_Latn', 'zho_Hans'] ['de', 'es'] de,fr"
    with pytest.raises(MtqaError, match="--codes: unknown language code 'xx'"):
        cmd.main(["--codes", "de,xx"], standalone_mode=False)


def test_build_batches_takes_the_codes_translate_takes(tmp_path):
    """Before: translate --langs deu worked, build-batches --langs deu failed."""
    from mt_qa.batches.cli import build_batches

    option = next(p for p in build_batches.params if p.name == "langs")
    assert option.type.convert("deu,spa", option, None) == ["de", "es"]


def test_options_are_derived_from_the_config_fields():
    from dataclasses import dataclass, field

    import click
    from click.testing import CliRunner

    from mt_qa.clickutil import config_from_options, config_options, option

    @dataclass
    class Config:
        size: int = field(default=5, metadata=option("How many."))
        ratio: float | None = field(default=None, metadata=option("A ratio.", type=float))
        dedup: bool = field(default=True, metadata=option("No dedup."))
        fast: bool = field(default=False, metadata=option("Go fast."))
        hidden: str = "not an option"

    seen = []

    @click.command()
    @config_options(Config)
    @click.option("--other", default="x")
    def cmd(other, **values):
        seen.append((other, config_from_options(Config, values, hidden="given")))

    runner = CliRunner()
    assert runner.invoke(cmd, []).exit_code == 0
    assert runner.invoke(cmd, ["--size", "7", "--ratio", "0.5", "--no-dedup", "--fast"]).exit_code == 0
    assert seen == [("x", Config(hidden="given")), ("x", Config(7, 0.5, False, True, "given"))]
    help_text = runner.invoke(cmd, ["--help"]).output
    assert "--size INTEGER" in help_text and "[default: 5]" in help_text and "--hidden" not in help_text
    assert runner.invoke(cmd, ["--size", "many"]).exit_code == 2


def test_the_stage_commands_default_to_their_configs():
    """One default per option: what a command passes without options is the config's default."""
    import dataclasses

    import click

    from mt_qa.batches.stage import BatchesConfig
    from mt_qa.cli import cli
    from mt_qa.collect.stage import CollectConfig
    from mt_qa.filter.config import FilterConfig
    from mt_qa.translate.config import TranslateConfig

    for name, cls in (("collect", CollectConfig), ("filter", FilterConfig), ("build-batches", BatchesConfig),
                      ("translate", TranslateConfig)):
        command = cli.get_command(None, name)
        ctx = click.Context(command)
        params = {p.name: p for p in command.params}
        derived = [f for f in dataclasses.fields(cls) if "help" in f.metadata]
        assert derived, name
        for f in derived:
            default = f.default if f.default is not dataclasses.MISSING else f.default_factory()
            got = params[f.name].get_default(ctx)
            if default in ((), None):  # no default on the command line either (Click >= 8.3 says UNSET)
                assert got in ((), None) or type(got).__name__ == "Sentinel", (name, f.name, got)
            else:
                assert got == default, (name, f.name, got)
