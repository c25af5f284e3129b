"""Check every step's command line against the real ``mtqa`` command tree before anything runs.

A pipeline's steps are plain ``mtqa`` command lines, so Click itself can parse each one up front:
an unknown option, a bad value or a missing required option in the last step fails at second 0
with one line naming the step, not hours later when that step starts. Paths inside the run
directory are the only ones allowed not to exist yet (earlier steps write them); an input path
outside it that does not exist is reported like any other bad value.
"""

from __future__ import annotations

import copy
import os
from pathlib import Path
from typing import Any

import click

from mt_qa.cli import cli
from mt_qa.run.config import Pipeline, PipelineError


def check_commands(pipeline: Pipeline, steps: list[tuple[str, list[list[str]]]]) -> None:
    """Parse every (step name, task command lines) pair; the first bad one raises PipelineError."""
    for name, argvs in steps:
        for argv in argvs:
            check_argv(argv, pipeline.run_dir, where=f"step {name!r}")


def check_argv(argv: list[str], run_dir: Path | None = None, where: str = "") -> None:
    """Parse ``mtqa ARGV`` without running it; raise PipelineError naming ``where`` on any usage error."""
    prefix = f"{where}: " if where else ""
    ctx = click.Context(cli, info_name="mtqa")
    command: click.Command = cli
    args = list(argv)
    path = ["mtqa"]
    while isinstance(command, click.Group):
        if not args:
            raise PipelineError(f"{prefix}`{' '.join(path)}` needs a subcommand")
        name, args = args[0], args[1:]
        sub = command.get_command(ctx, name)
        if sub is None:
            raise PipelineError(f"{prefix}`{' '.join(path)}` has no command {name!r}")
        unavailable = getattr(sub, "unavailable", None)
        if unavailable:
            raise PipelineError(f"{prefix}mtqa {name}: {unavailable}")
        path.append(name)
        command = sub
    try:
        _later_paths_allowed(command, run_dir).make_context(" ".join(path), args).close()
    except click.exceptions.Exit as exc:  # --help or --version in a step's options
        raise PipelineError(f"{prefix}`{' '.join(path)}` would only print its help or version and exit") from exc
    except click.UsageError as exc:
        raise PipelineError(f"{prefix}{' '.join(path)}: {exc.format_message()}") from None


def _later_paths_allowed(command: click.Command, run_dir: Path | None) -> click.Command:
    """A copy of ``command`` whose must-exist path parameters accept a not-yet-written path in ``run_dir``."""
    if run_dir is None:
        return command
    params = []
    for param in command.params:
        if isinstance(param.type, click.Path) and param.type.exists:
            param = copy.copy(param)
            param.type = _LaterPath(param.type, Path(run_dir))
        params.append(param)
    clone = copy.copy(command)
    clone.params = params
    return clone


class _LaterPath(click.ParamType):
    """A ``click.Path(exists=True)`` that lets a missing path under the run directory through."""

    def __init__(self, inner: click.Path, run_dir: Path):
        self.inner = inner
        self.name = inner.name
        self.run_dir = run_dir.resolve()

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        if isinstance(value, (str, os.PathLike)) and not os.path.lexists(value):
            if Path(value).resolve().is_relative_to(self.run_dir):
                return value  # an earlier step's output: it exists once that step ran
        return self.inner.convert(value, param, ctx)
