"""Options and output helpers every stage command shares."""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable, Iterable
from typing import Any

import click
from rich.console import Console
from rich.table import Table

from mt_qa.errors import MtqaError

# Job-array environment variables: (task index, task count).
ARRAY_ENV = (
    ("SLURM_ARRAY_TASK_ID", "SLURM_ARRAY_TASK_COUNT"),
    ("JOB_COMPLETION_INDEX", "MTQA_NUM_SHARDS"),  # Kubernetes Indexed Job; count from our own env
)  # resolve_array_task reads them; MTQA_NUM_SHARDS overrides a Slurm array's count


def array_options(fn: Callable) -> Callable:
    fn = click.option(
        "--shard-index",
        type=int,
        default=None,
        help="This task's index in a job array (default: $SLURM_ARRAY_TASK_ID / $JOB_COMPLETION_INDEX, else 0).",
    )(fn)
    fn = click.option(
        "--num-shards",
        type=int,
        default=None,
        help="Number of job-array tasks sharing the work (default: $SLURM_ARRAY_TASK_COUNT / "
        "$MTQA_NUM_SHARDS, else 1).",
    )(fn)
    return fn


def common_output_options(fn: Callable) -> Callable:
    fn = click.option("-q", "--quiet", is_flag=True, help="No progress bar.")(fn)
    fn = click.option("--overwrite", is_flag=True,
                      help="Replace an output directory made by a different mtqa run (a directory mtqa did not "
                      "make is never replaced).")(fn)
    return fn


def resolve_array_task(num_shards: int | None, shard_index: int | None) -> tuple[int, int]:
    """(task count, task index) from the options, else from the scheduler's environment.

    ``$MTQA_NUM_SHARDS`` is the step's task count wherever it is set: a Slurm array resubmitted
    for a few failed tasks (``--array=1``) has ``SLURM_ARRAY_TASK_COUNT=1``, which is not the
    number of tasks the step's shards are divided among. A Kubernetes Indexed Job says only the
    index, so there ``$MTQA_NUM_SHARDS`` is required.
    """
    env = os.environ
    env_count = None
    if shard_index is None and ("SLURM_ARRAY_TASK_ID" in env or "JOB_COMPLETION_INDEX" in env):
        env_count = env_int("MTQA_NUM_SHARDS")
    if shard_index is None and env.get("SLURM_ARRAY_TASK_ID") is not None:
        shard_index = env_int("SLURM_ARRAY_TASK_ID")
        if num_shards is None and env_count is None:
            lo, hi, count = (env_int(f"SLURM_ARRAY_TASK_{k}") for k in ("MIN", "MAX", "COUNT"))
            if lo not in (None, 0) or (count is not None and hi is not None and count != hi - lo + 1):
                raise MtqaError(
                    f"this Slurm array (tasks {lo}..{hi}) is not the whole step: set MTQA_NUM_SHARDS to the "
                    "step's task count, e.g. sbatch --array=1 --export=ALL,MTQA_NUM_SHARDS=4,..."
                )
            env_count = count
    elif shard_index is None and env.get("JOB_COMPLETION_INDEX") is not None:
        shard_index = env_int("JOB_COMPLETION_INDEX")
        if num_shards is None and env_count is None:
            raise MtqaError(
                "JOB_COMPLETION_INDEX is set but MTQA_NUM_SHARDS is not: set MTQA_NUM_SHARDS to the "
                "Indexed Job's completions (or pass --num-shards), or every pod would do the whole step"
            )
    num_shards = env_count if num_shards is None else num_shards
    slot = task_slot(1 if num_shards is None else num_shards, 0 if shard_index is None else shard_index)
    return slot.num_tasks, slot.index


def task_slot(num_tasks: int, index: int) -> Any:
    """The ``TaskSlot`` (checked there, once); imported late: ``mtqa --help`` loads no Arrow."""
    from mt_qa.stage import TaskSlot

    return TaskSlot(num_tasks, index)


def env_int(name: str) -> int | None:
    value = os.environ.get(name)
    if value is None or value.strip() == "":
        return None
    try:
        return int(value)
    except ValueError as exc:
        raise MtqaError(f"${name}={value!r} is not an integer") from exc



LOG_WIDTH = 500  # off a terminal (a log file, a pipe) rich would wrap at 80 columns


def wide_console(stderr: bool = True) -> Console:
    """A console (on stderr by default): the terminal's width on a terminal, else wide, so that
    tables and lines in a log file or pipe are never wrapped at 80 columns or split mid-path."""
    console = Console(stderr=stderr)
    if console.is_terminal:
        return console
    return Console(stderr=stderr, width=LOG_WIDTH, soft_wrap=True)


def print_summary(stage: str, result: dict[str, Any], header: list[str], rows: list[list[str]],
                  rows_detail: str | None = None) -> None:
    """The end-of-run summary: a table of counts, then totals and time, on stderr.

    ``rows_detail`` describes the rows where the store has no per-language files (batch stores).
    """
    console = wide_console()
    table = Table(title=f"mtqa {stage}", title_justify="left")
    for column in header:
        table.add_column(column, overflow="fold")
    for row in rows:
        table.add_row(*row)
    console.print(table)
    manifest = result.get("manifest")
    if manifest:
        totals = manifest["totals"]
        detail = ", ".join(f"{k}={v}" for k, v in sorted(totals["rows_by_lang"].items())) or rows_detail
        console.print(
            f"{totals['rows']} rows{f' ({detail})' if detail else ''}, {totals['rejects']} rejected, "
            f"{len(manifest['shards'])} shards -> {result['out']}  [{result['seconds']}s]"
        )
    else:
        console.print(
            f"this task finished its {result.get('shards_this_task')} shard(s); the manifest is "
            f"written when every task is done -> {result['out']}  [{result['seconds']}s]"
        )


class LanguageList(click.ParamType):
    """A comma list of languages in any code form (ISO 639-1/639-3, FLORES-200, ``de-CH``), resolved by
    ``mt_qa.languages``: in order, without repeats. One parser for every command that takes a list.

    ``output``: ``"languages"`` (``Language`` values), ``"codes"`` (mtqa's codes, ``["de", "zh"]``) or
    ``"text"`` (the codes joined by commas, for commands that split the list themselves). An unknown
    code is one ``Error:`` line naming the option.
    """

    name = "LANGS"

    def __init__(self, output: str = "languages"):
        if output not in ("languages", "codes", "text"):
            raise ValueError(f"output must be languages, codes or text, not {output!r}")
        self.output = output

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        from mt_qa.languages import Language, UnknownLanguageError, parse_langs

        if isinstance(value, list):
            return value  # already converted
        option = param.opts[0] if param is not None and param.opts else "--langs"
        try:
            langs: list[Language] = parse_langs(str(value))
        except UnknownLanguageError as exc:
            raise MtqaError(f"{option}: {exc}") from None
        if self.output == "languages":
            return langs
        codes = [lang.code for lang in langs]
        return codes if self.output == "codes" else ",".join(codes)


LANGS = LanguageList()
LANG_CODES = LanguageList("codes")
LANG_TEXT = LanguageList("text")


def option(help: str, **click_kwargs: Any) -> dict[str, Any]:
    """Field metadata of a config dataclass: its command-line help (and any Click setting).

    ``field(default=..., metadata=option("..."))`` declares an option once: its name
    (``--field-name``), type and default come from the field; see :func:`config_options`.
    """
    return {"help": help, "click": click_kwargs}


def config_options(config_cls: type, names: Iterable[str] | None = None) -> Callable[[Callable], Callable]:
    """Click options for the fields of ``config_cls`` that carry :func:`option` metadata.

    A bool field that defaults to True becomes a ``--no-<name>`` flag; one that defaults to
    False a ``--<name>`` flag; other fields take a value of their default's type, with the
    default shown. Ranges are the config's ``validate()``'s, so they are checked in one place
    for the command line, pipelines and Python callers alike.
    """
    chosen = [f for f in dataclasses.fields(config_cls) if "help" in f.metadata
              and (names is None or f.name in names)]

    def decorate(fn: Callable) -> Callable:
        for f in reversed(chosen):
            fn = _field_option(f)(fn)
        return fn

    return decorate


def config_from_options(config_cls: type, values: dict[str, Any], **extra: Any) -> Any:
    """The config built from a command's keyword arguments (its fields are taken out of ``values``)."""
    names = {f.name for f in dataclasses.fields(config_cls)}
    taken = {name: values.pop(name) for name in list(values) if name in names}
    return config_cls(**(taken | extra))


def _field_option(f: dataclasses.Field) -> Callable[[Callable], Callable]:
    flag = "--" + f.name.replace("_", "-")
    kwargs = dict(f.metadata.get("click", {}))
    default = f.default if f.default is not dataclasses.MISSING else f.default_factory()  # type: ignore[misc]
    if isinstance(default, bool) and "type" not in kwargs:
        if default:
            return click.option(f"--no-{f.name.replace('_', '-')}", f.name, is_flag=True, flag_value=False,
                                default=True, help=f.metadata["help"], **kwargs)
        return click.option(flag, f.name, is_flag=True, help=f.metadata["help"], **kwargs)
    if "type" not in kwargs and default is not None and not kwargs.get("multiple"):
        kwargs["type"] = type(default)
    if default is not None and "default" not in kwargs and not kwargs.get("multiple"):
        kwargs.update(default=default, show_default=True)
    return click.option(flag, f.name, help=f.metadata["help"], **kwargs)


def stage_options(config_cls: type) -> Callable[[Callable], Callable]:
    """Every option a sharded stage's command shares: its config's fields, the job-array task
    (``--num-shards``/``--shard-index``), ``--overwrite`` and ``--quiet``; see :func:`stage_run`."""

    def decorate(fn: Callable) -> Callable:
        return config_options(config_cls)(array_options(common_output_options(fn)))

    return decorate


def stage_run(values: dict[str, Any]) -> dict[str, Any]:
    """The stage driver's keywords (task slot, overwrite, progress), taken out of a command's values."""
    num_tasks, task_index = resolve_array_task(values.pop("num_shards"), values.pop("shard_index"))
    return {"num_tasks": num_tasks, "task_index": task_index, "overwrite": values.pop("overwrite"),
            "progress": not values.pop("quiet")}
