"""The training loop's bookkeeping: the loss window written to the log, run counters, stop signals."""

from __future__ import annotations

import contextlib
import resource
import signal
import time
from typing import Any

import torch
from tqdm import tqdm

from mt_qa.train.data import Batch
from mt_qa.train.log import LossLog


class LoopState:
    """Steps trained but not yet logged, the throughput window, the last ten losses, run counters.

    Losses stay on the device until a log write (one ``.tolist()`` per window, not one sync per step).
    """

    def __init__(self, log: LossLog | None, bar: tqdm, seconds_before: float, resumed_at: int):
        self.log = log
        self.bar = bar
        self.seconds_before = seconds_before  # trained before this run (a resume)
        self.resumed_at = resumed_at
        self.pending: list[tuple[Batch, torch.Tensor, float]] = []
        self.recent: list[float] = []
        self.used_negatives = 0
        self.partial_negatives = 0
        self.epochs_reached = 0
        self.window_start, self.window_pairs = time.perf_counter(), 0
        self.run_start = time.perf_counter()

    def record(self, batch: Batch, local: Batch, loss: torch.Tensor, lr: float) -> None:
        """One optimizer step on ``batch`` (``local``: this rank's slice of it)."""
        self.epochs_reached = batch.epoch + 1
        self.used_negatives += local.negatives is not None
        self.partial_negatives += batch.partial_negatives
        self.window_pairs += len(batch)
        self.pending.append((batch, loss, lr))
        self.bar.update(1)

    def seconds(self) -> float:
        """Training seconds in all, earlier runs included."""
        return self.seconds_before + time.perf_counter() - self.run_start

    def flush(self) -> None:
        """Write the pending steps' losses to the log and the progress bar."""
        if not self.pending:
            return
        values = torch.stack([loss for _, loss, _ in self.pending]).float().tolist()
        now = time.perf_counter()
        rate = self.window_pairs / max(now - self.window_start, 1e-9)
        rows = []
        for (b, _, lr), value in zip(self.pending, values, strict=True):
            rows.append({"step": b.step + 1, "kind": "train", "epoch": b.epoch, "batch_id": b.batch_id,
                         "batch_type": b.batch_type, "loss": round(value, 6), "lr": lr,
                         "pairs_per_s": round(rate, 2),
                         "seconds": round(self.seconds_before + now - self.run_start, 2)})
            self.recent.append(value)
        del self.recent[:-10]
        if self.log is not None:
            self.log.add(rows)
        self.bar.set_postfix(loss=f"{values[-1]:.4f}", pairs_s=f"{rate:.1f}")
        self.pending.clear()
        self.window_start, self.window_pairs = now, 0

    def close(self) -> None:
        self.bar.close()
        if self.log is not None:
            self.log.close()


class StopFlag:
    """SIGINT/SIGTERM (e.g. a pre-empted job) end the run after the current step, with a checkpoint."""

    def __init__(self) -> None:
        self.raised = False
        self._old: dict[int, Any] = {}

    def __enter__(self) -> StopFlag:
        with contextlib.suppress(ValueError):  # not the main thread: no handlers
            for sig in (signal.SIGINT, signal.SIGTERM):
                self._old[sig] = signal.signal(sig, self._handle)
        return self

    def _handle(self, signum: int, frame: Any) -> None:
        self.raised = True

    def __exit__(self, *exc: Any) -> None:
        for sig, handler in self._old.items():
            signal.signal(sig, handler)


def peak_memory_mb(device: torch.device) -> float:
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux reports KiB
