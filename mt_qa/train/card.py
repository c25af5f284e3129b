"""The model card (README.md) of a trained model: data, batching strategy, parameters, results."""

from __future__ import annotations

import json
from typing import Any


def _table(rows: list[tuple[str, Any]]) -> str:
    lines = ["| | |", "|---|---|"]
    lines += [f"| {k} | {v if not isinstance(v, (dict, list)) else json.dumps(v, ensure_ascii=False)} |"
              for k, v in rows]
    return "\n".join(lines)


def model_card(config: dict[str, Any], data: dict[str, Any], result: dict[str, Any]) -> str:
    """Markdown with a Hugging Face YAML header, so hubs and sentence-transformers show it."""
    stats = data.get("stats", {})
    summary = stats.get("summary", {})
    params = data.get("params", {})
    langs = sorted(set(stats.get("query_lang", {})) | set(stats.get("passage_lang", {})))
    strategy = params.get("strategy", "?")
    how = {
        "hybrid": f"hybrid: each batch is X-X (one language) with probability alpha={params.get('alpha')}, "
                  "else X-Y (query and passage languages differ in every pair)",
        "xx": "X-X: every batch in one language (monolingual batches)",
        "xy": "X-Y: every pair cross-language",
    }.get(strategy, strategy)
    header = [
        "---",
        "library_name: sentence-transformers",
        "pipeline_tag: sentence-similarity",
        "tags:",
        "- sentence-transformers",
        "- feature-extraction",
        "- dense-retrieval",
        "- mtqa",
        f"- {strategy}-batches",
        f"base_model: {json.dumps(config['model'])}",
        "language:",
        *[f"- {lang}" for lang in langs],
        "---",
    ]
    qp, pp = config["query_prefix"], config["passage_prefix"]
    body = f"""
# Bi-encoder trained with mtqa ({strategy} batches)

Fine-tuned from `{config['model']}` with `mtqa train` (shared-weight bi-encoder, InfoNCE over
in-batch negatives{' and one mined hard negative per pair' if result.get('used_negatives') else ''}),
on batches built by `mtqa build-batches` ({how}).

## Usage

```python
from sentence_transformers import SentenceTransformer

model = SentenceTransformer("PATH_TO_THIS_DIR")
q = model.encode(["{qp}Who wrote Faust?"])          # or prompt_name="query"
p = model.encode(["{pp}Faust is a tragic play by Goethe ..."])  # or prompt_name="passage"
```

Inputs were prefixed with `{qp!r}` (queries) and `{pp!r}` (passages) in training: use the same.

## Data

{_table([
    ("batch store", data.get("path")),
    ("batch store manifest sha256", data.get("manifest_sha256")),
    ("QA inputs", [i.get("path") for i in data.get("inputs", [])]),
    ("strategy", strategy),
    ("alpha (P of an X-X batch)", params.get("alpha")),
    ("batch size", params.get("batch_size")),
    ("built epochs in use / reached", f"{result.get('epochs')} / {result.get('epochs_reached')}"),
    ("groups (source examples)", summary.get("groups")),
    ("groups per language", summary.get("groups_by_lang")),
    ("batch types (whole store)", stats.get("batches")),
    ("X-X batch languages (whole store)", stats.get("xx_batch_lang")),
    ("(query, passage) language pairs (whole store)", stats.get("pairs")),
    ("positive", _positive(params)),
    ("hard negatives", params.get("negatives")),
    ("dev batches", result.get("dev_batches_path")),
])}

## Training

{_table([
    ("loss", "InfoNCE (sentence-transformers "
             + ("CachedMultipleNegativesRankingLoss, GradCache" if config['mini_batch_size'] else
                "MultipleNegativesRankingLoss") + ")"),
    ("temperature", config["temperature"]),
    ("GradCache mini-batch", config["mini_batch_size"] or "off"),
    ("optimizer", f"AdamW lr={config['lr']} weight_decay={config['weight_decay']}"),
    ("word embeddings", _embeddings(config)),
    ("warm-up", result.get("warmup_steps")),
    ("max grad norm", config["max_grad_norm"]),
    ("max query / passage length", f"{config['max_query_length']} / {config['max_passage_length']} tokens"),
    ("precision", config["precision"]),
    ("gradient checkpointing", config["gradient_checkpointing"]),
    ("processes (torchrun)", result.get("world_size")),
    ("seed", config["seed"]),
])}

## Results

{_table([
    ("steps", result.get("steps")),
    ("pairs seen", result.get("pairs")),
    ("final training loss (mean of last 10 steps)", result.get("final_train_loss")),
    ("best dev loss", result.get("best_dev_loss")),
    ("best step (saved weights)", result.get("best_step")),
    ("stopped early", result.get("stopped_early")),
    ("training time (s)", result.get("seconds")),
])}

{_bench_section(result.get("dev_benchmark"))}
The loss curve is in `training_log.csv`; all settings in `mtqa_train.json`.
"""
    return "\n".join(header) + "\n" + body


def _embeddings(config: dict[str, Any]) -> str:
    lr = config.get("embedding_lr")
    if lr == 0 or (config.get("freeze_embeddings") and lr is None):
        return "frozen"
    if config.get("embedding_lr") is not None:
        return f"lr={config['embedding_lr']}"
    return "trained with the rest (same lr)"


def _positive(params: dict[str, Any]) -> str:
    mode = params.get("positive", "passage")
    if mode == "passage":
        return "the whole paragraph"
    text = "the answer sentence" if mode == "sentence" else (
        f"the answer sentence + context ({params.get('context_sentences')} sentences each side, 0 = all)")
    return f"{text}; unknown answer sentence: {params.get('missing_sentence')}"


def _bench_section(bench: dict[str, Any] | None) -> str:
    """The dev-benchmark curve: the base at step 0 (reference), every evaluation, the selected step."""
    if not bench:
        return ""
    best = bench.get("best") or {}
    lines = [
        "## Model selection on the dev benchmark",
        "",
        f"Benchmark `{bench.get('path')}` (held out of the batches), primary score: `{bench.get('metric')}` "
        "(mAP; `mean` = mean of mono, cross and multi). Step 0 is the base model, reported as the reference "
        "and never selected.",
        "",
        "| step | mono mAP | cross mAP | multi mAP | language bias | score | |",
        "|---|---|---|---|---|---|---|",
    ]
    for row in bench.get("curve", []):
        mark = "base" if row["step"] == 0 else ("**selected**" if row["step"] == best.get("step") else "")
        lines.append(f"| {row['step']} | {row['mono_map']:.4f} | {row['cross_map']:.4f} | {row['multi_map']:.4f} | "
                     f"{row['bias']:.1f} | {row['score']:.4f} | {mark} |")
    beats = bench.get("beats_base")
    if beats:
        worse = [k for k, v in beats.items() if not v]
        lines += ["", "The selected model beats the base on every axis." if not worse else
                  f"**The selected model is not better than its base on: {', '.join(worse)}.**"]
    return "\n".join(lines) + "\n"
