"""What training writes as it goes: ``training_log.csv`` (and TensorBoard), ``dev_benchmark.csv``."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from mt_qa.errors import MtqaError
from mt_qa.io import atomic_write_bytes


class LossLog:
    """``training_log.csv`` (one row per step, one per dev evaluation), optionally mirrored to TensorBoard."""

    FIELDS = ["step", "kind", "epoch", "batch_id", "batch_type", "loss", "lr", "pairs_per_s", "seconds", "score"]

    def __init__(self, path: Path, resume_step: int, tensorboard_dir: Path | None = None):
        self.path = path
        keep: list[dict[str, str]] = []
        if resume_step > 0 and path.is_file():
            with path.open(newline="") as fh:
                keep = [row for row in csv.DictReader(fh) if int(row["step"]) <= resume_step]
        write_csv(path, self.FIELDS, keep)
        self.fh = path.open("a", newline="")
        self.writer = csv.DictWriter(self.fh, fieldnames=self.FIELDS)
        self.tb = None
        if tensorboard_dir is not None:
            try:
                from torch.utils.tensorboard import SummaryWriter
            except ImportError as exc:
                raise MtqaError("--tensorboard needs the 'tensorboard' package (pip install tensorboard)") from exc
            self.tb = SummaryWriter(str(tensorboard_dir), purge_step=resume_step + 1 if resume_step else None)

    def add(self, rows: list[dict[str, Any]]) -> None:
        self.writer.writerows(rows)
        self.fh.flush()
        if self.tb is not None:
            for row in rows:
                if row["kind"] == "dev_benchmark":
                    self.tb.add_scalar("dev/benchmark_score", row["score"], row["step"])
                    continue
                tag = "train/loss" if row["kind"] == "train" else "dev/loss"
                self.tb.add_scalar(tag, row["loss"], row["step"])
                if row.get("lr") != "":
                    self.tb.add_scalar("train/lr", row["lr"], row["step"])

    def add_dev(self, step: int, loss: float) -> None:
        self.add([{"step": step, "kind": "dev", "epoch": "", "batch_id": "", "batch_type": "",
                   "loss": round(loss, 6), "lr": "", "pairs_per_s": "", "seconds": ""}])

    def add_benchmark(self, step: int, metrics: dict[str, Any]) -> None:
        self.add([{"step": step, "kind": "dev_benchmark", "epoch": "", "batch_id": "", "batch_type": "",
                   "loss": "", "lr": "", "pairs_per_s": "", "seconds": metrics["seconds"], "score": metrics["score"]}])

    def close(self) -> None:
        self.fh.close()
        if self.tb is not None:
            self.tb.close()


def write_csv(path: Path, fields: Sequence[str], rows: Iterable[dict[str, Any]]) -> None:
    """The whole table, atomically (the dev-benchmark curve is rewritten after every evaluation)."""
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=list(fields))
    writer.writeheader()
    writer.writerows(rows)
    atomic_write_bytes(path, buf.getvalue().encode())
