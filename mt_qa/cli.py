"""The ``mtqa`` command: a thin Click group that loads each stage's command on demand.

Stage commands live beside their stage (``mt_qa/<stage>/cli.py``) and are imported only when
invoked, so ``mtqa --help`` stays fast and does not import torch or CTranslate2.
"""

from __future__ import annotations

import importlib
import sys

import click

from mt_qa import __version__
from mt_qa.errors import MtqaError
from mt_qa.threads import apply_thread_budget

# name -> (module:attribute, one-line help shown by `mtqa --help`)
COMMANDS: dict[str, tuple[str, str]] = {
    "collect": ("mt_qa.collect.cli:collect", "Read English QA datasets (and parallel imports) into QA shards."),
    "translate": ("mt_qa.translate.cli:translate", "Translate QA shards with NLLB-200 through CTranslate2."),
    "model": ("mt_qa.translate.cli:model", "Manage translation models (convert to CTranslate2)."),
    "filter": ("mt_qa.filter.cli:filter_", "Language-ID, translation-quality filtering and dedup."),
    "build-batches": ("mt_qa.batches.cli:build_batches", "Build X-X, X-Y or hybrid training batches."),
    "train": ("mt_qa.train.cli:train", "Train a bi-encoder on batch shards (InfoNCE, in-batch negatives)."),
    "evaluate": ("mt_qa.evaluate.cli:evaluate", "Evaluate retrievers: XQuAD-R/MLQA-R, BEIR/MIRACL layouts."),
    "run": ("mt_qa.run.cli:run", "Run a YAML pipeline locally, as array tasks, or on Ray."),
    "inspect": ("mt_qa.inspect:inspect_cmd", "Summarize a shard directory: manifest, counts, samples."),
    "validate": ("mt_qa.inspect:validate_cmd", "Re-check a shard directory's checksums and schema."),
}


class LazyGroup(click.Group):
    def list_commands(self, ctx: click.Context) -> list[str]:
        return list(COMMANDS)

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        if name not in COMMANDS:
            return None
        target, short_help = COMMANDS[name]
        module_name, attr = target.split(":")
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as exc:
            if exc.name and exc.name.startswith("mt_qa"):
                return _unavailable(name, short_help, f"this mtqa build has no {name!r} stage yet")
            return _unavailable(
                name,
                short_help,
                f"{name!r} needs the Python package {exc.name!r}: "
                "install mtqa with its extras (pip install 'mtqa[train]')",
            )
        return getattr(module, attr)


def _unavailable(name: str, short_help: str, why: str) -> click.Command:
    @click.command(
        name=name,
        help=f"{short_help}\n\nUnavailable: {why}.",
        short_help=short_help,
        context_settings={"ignore_unknown_options": True, "allow_extra_args": True},
    )
    def command() -> None:
        raise click.ClickException(why)

    command.unavailable = why  # type: ignore[attr-defined]  # mtqa run's up-front check reports it
    return command


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="mtqa")
def cli() -> None:
    """mtqa: turn English QA datasets into multilingual retrieval training data, and train on it.

    Stages run in order, each reading the previous stage's shard directory:
    collect -> translate -> filter -> build-batches -> train -> evaluate.
    """


def main(argv: list[str] | None = None) -> int:
    """Entry point: user errors (MtqaError) become one 'Error:' line and exit code 1."""
    try:
        apply_thread_budget()
        # Without standalone mode click returns (not raises) the code of a click.exceptions.Exit.
        code = cli.main(args=argv, prog_name="mtqa", standalone_mode=False)
        if isinstance(code, int) and not isinstance(code, bool) and code:
            return code
    except MtqaError as exc:
        click.echo(f"Error: {exc}", err=True)
        return 1
    except click.exceptions.Abort:
        click.echo("Aborted.", err=True)
        return 130
    except click.ClickException as exc:
        exc.show()
        return exc.exit_code
    except click.exceptions.Exit as exc:
        return exc.exit_code
    except OSError as exc:
        # The file system said no (permission, disk full, a directory where a file was expected):
        # the user's to fix, so one line naming the file, not a traceback.
        where = f"{exc.filename}: " if exc.filename else ""
        click.echo(f"Error: {where}{exc.strerror or exc}", err=True)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
