"""The model, its loss and its optimizer: loading, InfoNCE, frozen embeddings, AdamW and the schedule."""

from __future__ import annotations

from typing import Any

import torch

from mt_qa.errors import MtqaError


def load_model(name: str, device: torch.device) -> Any:
    """A sentence-transformers model from a directory or hub name; a plain HF encoder gets mean pooling."""
    from sentence_transformers import SentenceTransformer

    try:
        return SentenceTransformer(name, device=str(device))
    except Exception as exc:  # noqa: BLE001 - any failure to load is the user's model path/name
        raise MtqaError(f"--model {name!r}: could not load it as a sentence-transformers or Hugging Face "
                        f"encoder: {type(exc).__name__}: {str(exc)[:300]}") from None



def make_loss(model: Any, temperature: float, mini_batch_size: int, gather: bool) -> torch.nn.Module:
    """InfoNCE with in-batch negatives (+ hard negatives when a third column is given).

    ``mini_batch_size`` > 0 uses GradCache (CachedMultipleNegativesRankingLoss): memory is that
    of ``mini_batch_size`` sequences whatever the batch size, for about one extra forward pass.
    """
    from sentence_transformers.sentence_transformer.losses import (
        CachedMultipleNegativesRankingLoss,
        MultipleNegativesRankingLoss,
    )

    scale = 1.0 / temperature
    if mini_batch_size:
        return CachedMultipleNegativesRankingLoss(model, scale=scale, mini_batch_size=mini_batch_size,
                                                  gather_across_devices=gather)
    return MultipleNegativesRankingLoss(model, scale=scale, gather_across_devices=gather)


def word_embeddings(model: torch.nn.Module) -> torch.nn.Parameter | None:
    """The input word-embedding matrix of a sentence-transformers model's encoder (None if it has none)."""
    auto = getattr(model[0], "auto_model", None) if hasattr(model, "__getitem__") else None
    get = getattr(auto, "get_input_embeddings", None)
    emb = get() if get is not None else None
    return getattr(emb, "weight", None)


def param_groups(model: torch.nn.Module, weight_decay: float, lr: float,
                 embedding_lr: float | None = None) -> list[dict[str, Any]]:
    """No weight decay on biases and normalisation weights (the usual BERT recipe).

    With ``embedding_lr`` the word embeddings get their own learning rate (decayed like the
    other matrices): in a multilingual encoder they are most of the weights (96M of e5-small's
    118M), and only the rows of the training languages' tokens receive gradients.
    """
    emb = word_embeddings(model) if embedding_lr is not None else None
    decay, no_decay, embeddings = [], [], []
    for name, p in model.named_parameters():
        if not p.requires_grad:
            continue
        if emb is not None and p is emb:
            embeddings.append(p)
            continue
        (no_decay if p.ndim < 2 or "norm" in name.lower() else decay).append(p)
    groups = [{"params": decay, "weight_decay": weight_decay, "lr": lr},
              {"params": no_decay, "weight_decay": 0.0, "lr": lr}]
    if embeddings:
        groups.append({"params": embeddings, "weight_decay": weight_decay, "lr": embedding_lr})
    return groups


def make_optimizer(groups: list[dict[str, Any]], lr: float, device: torch.device) -> torch.optim.Optimizer:
    # The fused kernel is what transformers' Trainer picks by default; fall back where unsupported.
    try:
        return torch.optim.AdamW(groups, lr=lr, fused=device.type in ("cuda", "cpu"))
    except (RuntimeError, ValueError):
        return torch.optim.AdamW(groups, lr=lr)


def linear_schedule(warmup: int, total: int):
    def factor(step: int) -> float:
        if step < warmup:
            return step / max(1, warmup)
        return max(0.0, (total - step) / max(1, total - warmup))

    return factor



def prepare_for_training(model: Any, gradient_checkpointing: bool, freeze_embeddings: bool) -> None:
    """Gradient checkpointing and frozen input word embeddings, as asked; then training mode."""
    if gradient_checkpointing:
        auto = getattr(model[0], "auto_model", None)
        if auto is None or not hasattr(auto, "gradient_checkpointing_enable"):
            raise MtqaError("--gradient-checkpointing: the model's first module is not a Hugging Face model")
        auto.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    model.train()
    if freeze_embeddings:
        emb = word_embeddings(model)
        if emb is None:
            raise MtqaError("--freeze-embeddings / --embedding-lr 0: the model's first module has no input "
                            "word embeddings to freeze")
        emb.requires_grad_(False)
