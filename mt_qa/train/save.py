"""The finished model on disk: a standard sentence-transformers directory, its card and the run summary."""

from __future__ import annotations

import json
import shutil
from dataclasses import asdict
from pathlib import Path
from typing import Any

from mt_qa.io import atomic_write_json, sha256_file
from mt_qa.train.card import model_card
from mt_qa.train.config import TrainConfig
from mt_qa.train.data import BatchSource

SUMMARY_FILE = "mtqa_train.json"


def keep_without_pooler(model: Any, directory: Path) -> None:
    """Make a saved encoder that has no pooler (e5 and other mean-pooled models) load without one.

    sentence-transformers saves the weights but not the ``add_pooling_layer=False`` it was loaded
    with, so a reload builds a BERT pooler, warns ``pooler.dense.weight MISSING ... newly
    initialized`` and carries random, unused weights. Writing the argument back into the
    Transformer module's config makes the reload build exactly the saved architecture.
    """
    modules = json.loads((directory / "modules.json").read_text())
    for entry, module in zip(modules, model, strict=False):
        auto_model = getattr(module, "auto_model", None)
        if auto_model is None or not hasattr(auto_model, "pooler") or auto_model.pooler is not None:
            continue
        config_file = directory / entry.get("path", "") / "sentence_bert_config.json"
        if not config_file.is_file():
            continue
        config = json.loads(config_file.read_text())
        # "model_args" is the name every sentence-transformers version reads (v6 maps it to model_kwargs).
        config.setdefault("model_kwargs" if "model_kwargs" in config else "model_args", {})["add_pooling_layer"] = False
        atomic_write_json(config_file, config)


def save_final(model: Any, cfg: TrainConfig, source: BatchSource, result: dict[str, Any], out: Path) -> None:
    """Write the model into ``out`` as a sentence-transformers directory, card and summary last."""
    prompts = dict(getattr(model, "prompts", None) or {})
    prompts.update({"query": cfg.query_prefix, "passage": cfg.passage_prefix})
    model.prompts = prompts
    tmp = out / ".final.tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    model.save(str(tmp), create_model_card=False)
    keep_without_pooler(model, tmp)
    manifest = source.store.manifest
    data = {"path": str(source.store.root), "manifest_sha256": sha256_file(source.store.root / "manifest.json"),
            "inputs": manifest.get("inputs", []), "params": manifest.get("params", {}),
            "stats": manifest.get("stats", {})}
    (tmp / "README.md").write_text(model_card(asdict(cfg), data, result))
    for item in sorted(tmp.iterdir()):
        target = out / item.name
        if target.is_dir():
            shutil.rmtree(target)
        item.replace(target)
    tmp.rmdir()
    atomic_write_json(out / SUMMARY_FILE, {"config": asdict(cfg), "data": {k: v for k, v in data.items()
                                                                          if k != "stats"},
                                           "result": result})
