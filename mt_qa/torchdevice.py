"""Checking a ``--device`` value before a model is loaded onto it."""

from __future__ import annotations

from mt_qa.errors import MtqaError


def check_device(device: str | None, option: str = "--device") -> None:
    """Refuse a device torch cannot use here (a typo, ``cuda`` without a GPU, a GPU index too high)
    with one line, instead of a CUDA traceback deep inside model loading."""
    if not device:
        return
    import torch

    try:
        parsed = torch.device(device)
    except (RuntimeError, ValueError) as exc:
        raise MtqaError(f"{option} {device!r}: not a torch device (cpu, cuda, cuda:1, mps ...)") from exc
    if parsed.type == "cuda":
        if not torch.cuda.is_available():
            raise MtqaError(f"{option} {device}: torch sees no CUDA device here (use --device cpu, or leave it out)")
        if parsed.index is not None and parsed.index >= torch.cuda.device_count():
            raise MtqaError(f"{option} {device}: only {torch.cuda.device_count()} CUDA device(s) here")
    elif parsed.type == "mps" and not (hasattr(torch.backends, "mps") and torch.backends.mps.is_available()):
        raise MtqaError(f"{option} {device}: the MPS backend is not available here")
