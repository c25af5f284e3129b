"""``mtqa train``: train a bi-encoder on batch shards (run it under ``torchrun`` for several devices)."""

from __future__ import annotations

import click
from rich.table import Table

from mt_qa.clickutil import wide_console
from mt_qa.train import DEV_METRICS, PRECISIONS  # not the trainer: --help must not import torch
from mt_qa.train.config import DEFAULTS as D
from mt_qa.train.config import TrainConfig


@click.command("train")
@click.option("--batches", required=True, type=click.Path(exists=True, file_okay=False),
              help="Batch store written by mtqa build-batches; trained on in its order.")
@click.option("--model", required=True, help="sentence-transformers model or Hugging Face encoder (dir or name).")
@click.option("--out", required=True, type=click.Path(file_okay=False),
              help="Output: a sentence-transformers model directory (checkpoints and log inside).")
@click.option("--dev-batches", type=click.Path(exists=True, file_okay=False),
              help="Dev batch store (build-batches --dev-out) for validation loss and early stopping.")
@click.option("--dev-benchmark", type=click.Path(exists=True, file_okay=False),
              help="Held-out LAReQA benchmark (mtqa evaluate build-lareqa; exclude its heldout_group_ids.txt from "
                   "the batches): scored every --eval-steps, the best weights are saved. The base model is "
                   "scored at step 0 as the reference, never selected.")
@click.option("--dev-metric", type=click.Choice(DEV_METRICS), default=D["dev_metric"], show_default=True,
              help="What --dev-benchmark selection maximises: mono, cross or multi mAP, or their mean.")
@click.option("--query-prefix", default=D["query_prefix"], show_default=True, help="Prepended to every query.")
@click.option("--passage-prefix", default=D["passage_prefix"], show_default=True, help="Prepended to every passage.")
@click.option("--max-query-length", default=D["max_query_length"], show_default=True, help="Max query tokens.")
@click.option("--max-passage-length", default=D["max_passage_length"], show_default=True, help="Max passage tokens.")
@click.option("--temperature", default=D["temperature"], show_default=True, help="InfoNCE temperature (scale = 1/T); "
              "0.01 is e5's own.")
@click.option("--lr", default=D["lr"], show_default=True, help="AdamW learning rate.")
@click.option("--embedding-lr", type=float,
              help="Train the input word embeddings at this learning rate (> 0 overrides --freeze-embeddings; "
                   "0 = frozen).")
@click.option("--freeze-embeddings/--train-embeddings", default=D["freeze_embeddings"], show_default=True,
              help="Keep the input word embeddings fixed (most of a multilingual encoder's weights; only the "
                   "training languages' tokens would move). --train-embeddings trains them at --lr.")
@click.option("--weight-decay", default=D["weight_decay"], show_default=True, help="AdamW weight decay.")
@click.option("--warmup-ratio", default=D["warmup_ratio"], show_default=True,
              help="Linear warm-up over this share of steps.")
@click.option("--warmup-steps", type=int, help="Warm-up steps (overrides --warmup-ratio).")
@click.option("--epochs", type=int, help="Use the first N built epochs (default: all the store holds).")
@click.option("--max-steps", type=int, help="Stop after this many steps (batches).")
@click.option("--mini-batch-size", default=D["mini_batch_size"], show_default=True,
              help="GradCache chunk: memory of this many sequences whatever the batch size; 0 = no GradCache.")
@click.option("--max-grad-norm", default=D["max_grad_norm"], show_default=True, help="Gradient clipping (0 = off).")
@click.option("--precision", type=click.Choice(PRECISIONS), default=D["precision"], show_default=True,
              help="Autocast precision: bf16 (GPU or CPU) or fp16 (GPU, with loss scaling).")
@click.option("--gradient-checkpointing", is_flag=True, help="Recompute activations in backward (less memory).")
@click.option("--no-negatives", is_flag=True, help="Ignore mined hard negatives in the batches.")
@click.option("--save-steps", default=D["save_steps"], show_default=True, help="Checkpoint every N steps.")
@click.option("--save-total-limit", default=D["save_total_limit"], show_default=True, help="Checkpoints kept.")
@click.option("--keep-checkpoints", is_flag=True, help="Keep checkpoints after a finished run.")
@click.option("--eval-steps", type=int, help="Dev evaluation every N steps (default: --save-steps).")
@click.option("--max-dev-batches", type=int, help="Evaluate on at most this many dev batches.")
@click.option("--patience", type=int, help="Stop after N evaluations without a better dev loss.")
@click.option("--log-steps", default=D["log_steps"], show_default=True, help="Write the loss log every N steps.")
@click.option("--seed", default=D["seed"], show_default=True, help="Seed (dropout).")
@click.option("--device", help="cpu, cuda, cuda:1 ... (default: cuda if available).")
@click.option("--tensorboard", is_flag=True, help="Also log to OUT/tensorboard (needs tensorboard).")
@click.option("--resume", is_flag=True, help="Continue from the last checkpoint in OUT.")
@click.option("--overwrite", is_flag=True, help="Start over in an OUT that holds an earlier run.")
@click.option("-q", "--quiet", is_flag=True, help="No progress bar.")
def train(quiet: bool, no_negatives: bool, **options) -> None:
    """Train a bi-encoder (InfoNCE, in-batch negatives) on the batches build-batches wrote.

    One optimizer step per built batch, in the written order. Under torchrun each process
    takes a slice of every batch and negatives are gathered across processes, so the
    effective batch is the built batch.

    \b
    Examples:
      mtqa train --batches runs/demo/batches --model intfloat/multilingual-e5-small --out runs/demo/model
      torchrun --nproc-per-node 4 -m mt_qa.cli train --batches ... --model ... --out ... --precision bf16
    """
    from mt_qa.torchdevice import check_device
    from mt_qa.train.trainer import BiEncoderTrainer

    check_device(options.get("device"))
    config = TrainConfig(**options, use_negatives=not no_negatives, progress=not quiet)
    result = BiEncoderTrainer(config).train()
    if result.get("world_size", 1) > 1 and not _is_main():
        return
    console = wide_console()
    table = Table(title="mtqa train", title_justify="left", show_header=False)
    table.add_column("key")
    table.add_column("value")
    for key in ("steps", "pairs", "final_train_loss", "best_dev_loss", "best_step", "stopped_early", "pairs_per_s",
                "peak_memory_mb", "world_size", "device"):
        table.add_row(key, str(result.get(key)))
    console.print(table)
    console.print(f"model -> {result['out']}  [{result['seconds']}s]")


def _is_main() -> bool:
    import os

    return os.environ.get("RANK", "0") == "0"
