"""Checkpoints that resume exactly: weights, optimizer, scheduler, scaler, every RNG, the step.

A checkpoint directory is written under a temporary name and renamed when complete, with
``state.json`` written last, so a run killed while saving leaves the previous checkpoint
as the latest valid one. Each rank stores its own RNG state (dropout differs per rank).
"""

from __future__ import annotations

import json
import pickle
import random
import shutil
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from mt_qa.errors import MtqaError
from mt_qa.io import atomic_write_json

STATE = "state.json"
PREFIX = "step-"


@dataclass
class TrainState:
    """What the loop needs besides tensors to continue where it stopped."""

    step: int = 0
    best_dev_loss: float | None = None
    best_step: int | None = None
    bad_evals: int = 0
    stopped_early: bool = False
    fingerprint: str = ""
    pairs: int = 0
    seconds: float = 0.0
    extra: dict[str, Any] = field(default_factory=dict)


def rng_state() -> dict[str, Any]:
    """Every RNG's state as plain JSON values: nothing in a checkpoint is ever unpickled."""
    version, internal, gauss = random.getstate()
    kind, keys, pos, has_gauss, cached = np.random.get_state()
    state: dict[str, Any] = {
        "python": [version, list(internal), gauss],
        "numpy": [kind, keys.tolist(), int(pos), int(has_gauss), float(cached)],
        "torch": torch.get_rng_state().tolist(),
    }
    if torch.cuda.is_available():
        state["cuda"] = [s.tolist() for s in torch.cuda.get_rng_state_all()]
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    kind, keys, pos, has_gauss, cached = state["numpy"]
    np.random.set_state((kind, np.asarray(keys, dtype=np.uint32), pos, has_gauss, cached))
    torch.set_rng_state(torch.tensor(state["torch"], dtype=torch.uint8))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all([torch.tensor(s, dtype=torch.uint8) for s in state["cuda"]])


def checkpoint_dirs(root: Path) -> list[Path]:
    """Complete checkpoints, oldest first."""
    if not root.is_dir():
        return []
    found = [p for p in root.iterdir() if p.is_dir() and p.name.startswith(PREFIX) and (p / STATE).is_file()]
    return sorted(found, key=lambda p: int(p.name[len(PREFIX):]))


def tmp_dir(root: Path, step: int) -> Path:
    return root / f".{PREFIX}{step:08d}.tmp"


def save_rng(root: Path, step: int, rank: int) -> None:
    tmp = tmp_dir(root, step)
    tmp.mkdir(parents=True, exist_ok=True)
    atomic_write_json(tmp / f"rng-rank{rank}.json", rng_state())


def save_checkpoint(root: Path, state: TrainState, model: torch.nn.Module, optimizer: torch.optim.Optimizer,
                    scheduler: Any, scaler: Any, keep: int) -> Path:
    """Write the tensors of the main rank, then ``state.json``, then rename into place and prune."""
    tmp = tmp_dir(root, state.step)
    tmp.mkdir(parents=True, exist_ok=True)
    torch.save(model.state_dict(), tmp / "model.pt")
    torch.save(optimizer.state_dict(), tmp / "optimizer.pt")
    torch.save(scheduler.state_dict(), tmp / "scheduler.pt")
    if scaler is not None:
        torch.save(scaler.state_dict(), tmp / "scaler.pt")
    atomic_write_json(tmp / STATE, asdict(state))
    final = root / f"{PREFIX}{state.step:08d}"
    if final.exists():
        shutil.rmtree(final)
    tmp.rename(final)
    for old in checkpoint_dirs(root)[:-keep] if keep > 0 else []:
        shutil.rmtree(old)
    return final


def load_state(path: Path) -> TrainState:
    try:
        data = json.loads((path / STATE).read_text())
        return TrainState(**data)
    except (OSError, ValueError, TypeError) as exc:
        raise MtqaError(f"{path / STATE}: unreadable checkpoint state: {exc}") from exc


def load_checkpoint(path: Path, rank: int, model: torch.nn.Module, optimizer: torch.optim.Optimizer,
                    scheduler: Any, scaler: Any, device: torch.device, fingerprint: str | None = None) -> TrainState:
    """Resume from ``path``: its fingerprint is compared first, then tensors are loaded
    (``weights_only``) and the RNG state is read from JSON; no file is unpickled."""
    state = load_state(path)
    if fingerprint is not None and state.fingerprint != fingerprint:
        raise MtqaError(f"{path} was made with other settings, data or number of processes; resume "
                        "with the same ones, or start over with --overwrite")
    rng_file = path / f"rng-rank{rank}.json"
    if not rng_file.is_file():
        rng_file = path / "rng-rank0.json"
    if not rng_file.is_file():
        old = " (it holds a pickled rng-rank*.pt of an older mtqa, which is not loaded)" \
            if any(path.glob("rng-rank*.pt")) else ""
        raise MtqaError(f"{path}: no RNG state rng-rank{rank}.json{old}; start over with --overwrite")
    try:
        rng = json.loads(rng_file.read_text())
        model.load_state_dict(torch.load(path / "model.pt", map_location=device, weights_only=True))
        optimizer.load_state_dict(torch.load(path / "optimizer.pt", map_location=device, weights_only=True))
        scheduler.load_state_dict(torch.load(path / "scheduler.pt", weights_only=True))
        if scaler is not None and (path / "scaler.pt").is_file():
            scaler.load_state_dict(torch.load(path / "scaler.pt", weights_only=True))
        set_rng_state(rng)
    except (OSError, ValueError, KeyError, TypeError, RuntimeError, pickle.UnpicklingError) as exc:
        raise MtqaError(f"{path}: damaged checkpoint ({type(exc).__name__}: {str(exc).splitlines()[0][:200]}); "
                        "start over with --overwrite") from exc
    return state
