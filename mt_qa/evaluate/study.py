"""A batching study from evaluation reports: runs grouped into conditions, means over seeds, plots.

Each report names its model; a model trained by mtqa carries ``mtqa_train.json``, whose batch
store params say the strategy, alpha and seed it was trained with. So reports need no labels to
be grouped: X-X is alpha 1, X-Y alpha 0, hybrid its alpha, a model without that file is a base.
LAReQA and Tatoeba reports of one model (same content hash) join into one run.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from mt_qa.errors import MtqaError
from mt_qa.evaluate.report import REPORT, fmt, load_report, md_table, model_label, pyplot, save_figure
from mt_qa.io import atomic_write_bytes, atomic_write_json

TRAIN_SUMMARY = "mtqa_train.json"  # written by mtqa train next to the final model
LAREQA_METRICS = {  # column -> (setting, metric)
    "Mono mAP": ("mono", "mAP"), "Cross mAP": ("cross", "mAP"), "Multi mAP": ("multi", "mAP"),
    "Mono R@1": ("mono", "R@1"), "Cross R@1": ("cross", "R@1"), "Multi R@1": ("multi", "R@1"),
    "Multi R@10": ("multi", "R@10"),
}
BIAS = "Lang. bias ↓"
STRATEGY_NAMES = {"xx": "X-X", "xy": "X-Y"}


@dataclass
class Run:
    """One model and what is known of how it was trained."""

    model_hash: str
    label: str
    strategy: str  # base, xx, xy or hybrid
    alpha: float | None  # share of X-X batches: xx 1.0, xy 0.0, base None
    seed: int | None
    train: dict[str, Any] = field(default_factory=dict)
    lareqa: dict[str, Any] | None = None
    tatoeba: dict[str, Any] | None = None

    @property
    def condition(self) -> str:
        if self.strategy == "base":
            return "base"
        return STRATEGY_NAMES.get(self.strategy) or f"hybrid α={self.alpha:g}"


def find_reports(paths: list[str | Path]) -> list[Path]:
    """report.json files: each path is a report (dir or file) or a directory of report directories."""
    found: list[Path] = []
    for p in map(Path, paths):
        if p.is_file() or (p / REPORT).is_file():
            found.append(p if p.is_file() else p / REPORT)
        elif p.is_dir():
            found += sorted(d / REPORT for d in p.iterdir() if (d / REPORT).is_file())
        else:
            raise MtqaError(f"{p}: no such report or directory")
    if not found:
        raise MtqaError(f"no report.json in {', '.join(map(str, paths))}")
    return found


def _provenance(model_path: str) -> tuple[str, float | None, int | None, dict[str, Any]]:
    summary = Path(model_path) / TRAIN_SUMMARY
    if not summary.is_file():
        return "base", None, None, {}
    try:
        doc = json.loads(summary.read_text())
        params, config = doc["data"]["params"], doc["config"]
    except (json.JSONDecodeError, KeyError) as exc:
        raise MtqaError(f"{summary}: not an mtqa train summary ({exc})") from exc
    strategy = params.get("strategy")
    alpha = {"xx": 1.0, "xy": 0.0}.get(strategy, params.get("alpha"))
    if strategy not in ("xx", "xy", "hybrid") or alpha is None:
        raise MtqaError(f"{summary}: batches with unknown strategy {strategy!r} / alpha {params.get('alpha')!r}")
    keep = ("max_steps", "lr", "max_query_length", "max_passage_length", "temperature", "seed")
    train = {k: config.get(k) for k in keep} | {"batch_size": params.get("batch_size"), "batches": doc["data"]["path"]}
    return strategy, float(alpha), params.get("seed"), train


def load_runs(paths: list[str | Path]) -> list[Run]:
    """Every evaluated model of ``paths`` as a Run with its LAReQA and/or Tatoeba report."""
    runs: dict[str, Run] = {}
    for path in find_reports(paths):
        report = load_report(path)
        if report["kind"] not in ("lareqa", "tatoeba"):
            continue
        key = report["model"]["content_sha256"]
        if key not in runs:
            strategy, alpha, seed, train = _provenance(report["model"]["path"])
            runs[key] = Run(key, model_label(report), strategy, alpha, seed, train)
        run = runs[key]
        if getattr(run, report["kind"]) is not None:
            raise MtqaError(f"{path}: a second {report['kind']} report of model {run.label} "
                            f"(also {getattr(run, report['kind'])['_path']})")
        setattr(run, report["kind"], report)
    if not runs:
        raise MtqaError("no LAReQA or Tatoeba reports among " + ", ".join(map(str, paths)))
    return sorted(runs.values(), key=_order)


def _order(run: Run) -> tuple[Any, ...]:
    # base, X-X, X-Y, the paper's hybrid (alpha 0.5), then the other alphas ascending
    rank = {"base": 0, "xx": 1, "xy": 2, "hybrid": 3}[run.strategy]
    alpha = run.alpha if run.strategy == "hybrid" else 0.0
    return rank, alpha != 0.5, alpha, run.seed if run.seed is not None else -1, run.label


def run_metrics(run: Run) -> dict[str, dict[str, float]]:
    """Flat numbers per benchmark: {'benchmark': {'Mono mAP': ..}, 'tatoeba': {'mean': .., 'de': ..}}."""
    out: dict[str, dict[str, float]] = {}
    for name, bench in (run.lareqa or {}).get("benchmarks", {}).items():
        s = bench["settings"]
        values = {col: s[setting].get(metric) for col, (setting, metric) in LAREQA_METRICS.items()}
        values[BIAS] = bench["language_bias"]["mean"]
        out[name] = {k: float(v) for k, v in values.items() if v is not None}
    if run.tatoeba:
        out["tatoeba"] = {k: float(v) for k, v in run.tatoeba["benchmarks"]["tatoeba"]["metrics"].items()}
    return out


def _mean_sd(values: list[float]) -> tuple[float, float | None]:
    arr = np.asarray(values, dtype=float)
    return float(arr.mean()), (float(arr.std(ddof=1)) if len(arr) > 1 else None)


def aggregate(runs: list[Run]) -> dict[str, dict[str, Any]]:
    """Per condition: its runs, alpha, and mean/sd over seeds of every number (and of the mAP matrices)."""
    conditions: dict[str, dict[str, Any]] = {}
    for run in runs:
        c = conditions.setdefault(run.condition, {"strategy": run.strategy, "alpha": run.alpha, "runs": [],
                                                  "metrics": {}, "matrices": {}})
        c["runs"].append(run)
    for c in conditions.values():
        per_run = [run_metrics(r) for r in c["runs"]]
        benches = sorted({b for m in per_run for b in m})
        for b in benches:
            cols = [col for col in dict.fromkeys(k for m in per_run for k in m.get(b, {}))]
            c["metrics"][b] = {}
            for col in cols:
                vals = [m[b][col] for m in per_run if col in m.get(b, {})]
                mean, sd = _mean_sd(vals)
                c["metrics"][b][col] = {"mean": mean, "sd": sd, "n": len(vals), "values": vals}
        for r in c["runs"]:
            for name, bench in (r.lareqa or {}).get("benchmarks", {}).items():
                m = np.array([[np.nan if v is None else v for v in row] for row in bench["matrix"]["mAP"]], float)
                c["matrices"].setdefault(name, {"languages": bench["languages"], "values": []})["values"].append(m)
        for mat in c["matrices"].values():
            mat["mean"] = np.mean(np.stack(mat.pop("values")), axis=0)
    return conditions


def _cell(stat: dict[str, Any] | None, digits: int = 3) -> str:
    if stat is None:
        return "–"
    text = fmt(stat["mean"], digits)
    return text if stat["sd"] is None else f"{text} ± {fmt(stat['sd'], digits)}"


def _bold_best(rows: list[list[str]], means: list[list[float | None]], lower_better: set[int]) -> None:
    for col in range(len(means[0]) if means else 0):
        known = [m[col] for m in means if m[col] is not None and not math.isnan(m[col])]
        if len(known) > 1:
            best = min(known) if col in lower_better else max(known)
            for row, m in zip(rows, means, strict=True):
                if m[col] == best:
                    row[col + 2] = f"**{row[col + 2]}**"


def _table(conditions: dict[str, dict[str, Any]], names: list[str], bench: str, columns: list[str],
           lower_better: frozenset[str] | set[str] = frozenset()) -> str:
    rows, means = [], []
    for name in names:
        stats = conditions[name]["metrics"].get(bench, {})
        rows.append([name, str(len(conditions[name]["runs"])), *[_cell(stats.get(col), 1 if col == BIAS else 3)
                                                                  for col in columns]])
        means.append([stats[col]["mean"] if col in stats else None for col in columns])
    _bold_best(rows, means, {i for i, col in enumerate(columns) if col in lower_better})
    return md_table(["Condition", "Runs", *columns], rows)


def study_markdown(runs: list[Run], conditions: dict[str, dict[str, Any]], plots: dict[str, str]) -> str:
    names = list(conditions)
    sweep = sorted((n for n in names if conditions[n]["alpha"] is not None), key=lambda n: conditions[n]["alpha"])
    lareqa_benches = sorted({b for r in runs for b in (r.lareqa or {}).get("benchmarks", {})})
    out = ["# Batching study", "",
           "Mean ± sample standard deviation over the runs (seeds) of each condition; the best mean in bold. "
           "X-X is alpha = 1 (every batch monolingual), X-Y alpha = 0 (every pair cross-language).", ""]
    for bench in lareqa_benches:
        out += [f"## {bench}: retrieval (like the paper's Table 1)", "",
                _table(conditions, names, bench, ["Mono mAP", "Cross mAP", "Multi mAP"]), "",
                f"## {bench}: recall and language bias", "",
                _table(conditions, names, bench, ["Mono R@1", "Cross R@1", "Multi R@1", "Multi R@10", BIAS],
                       {BIAS}), ""]
        if len(sweep) > 1:
            out += [f"## {bench}: by alpha", "",
                    _table(conditions, sweep, bench, ["Mono mAP", "Cross mAP", "Multi mAP", BIAS], {BIAS}), ""]
    if any(r.tatoeba for r in runs):
        first = next(r.tatoeba for r in runs if r.tatoeba)
        per_lang = first["benchmarks"]["tatoeba"]["per_language"]
        langs = list(per_lang)
        trained = first.get("trained_languages")
        cols = ["mean", *(["unseen mean"] if trained is not None else []), *langs]
        out += ["## Tatoeba bitext retrieval accuracy (mean of xx→en and en→xx)", ""]
        if trained is not None:
            unseen = [lang for lang in langs if lang not in trained]
            out += [f"Trained on: {', '.join(trained)}; unseen: {', '.join(unseen)}.", ""]
        out += [_table(conditions, names, "tatoeba", cols), ""]
    if plots:
        out += ["## Plots", ""] + [f"![{title}]({path})" for title, path in plots.items()] + [""]
    out += ["## Runs", "", md_table(
        ["Condition", "Model", "Seed", "Steps", "Batch", "LAReQA report", "Tatoeba report"],
        [[r.condition, r.label, fmt(r.seed), fmt(r.train.get("max_steps")), fmt(r.train.get("batch_size")),
          f"`{r.lareqa['_path']}`" if r.lareqa else "–", f"`{r.tatoeba['_path']}`" if r.tatoeba else "–"]
         for r in runs]), ""]
    return "\n".join(out)


def plot_alpha_sweep(conditions: dict[str, dict[str, Any]], bench: str, path: Path) -> None:
    """mAP (mono/cross/multi), language bias and Tatoeba accuracy against alpha; seeds as dots, base dashed."""
    plt = pyplot()
    sweep = sorted((c for c in conditions.values() if c["alpha"] is not None), key=lambda c: c["alpha"])
    base = conditions.get("base", {}).get("metrics", {})
    panels = [("mAP", [("Mono mAP", "mono"), ("Cross mAP", "cross"), ("Multi mAP", "multi")], bench),
              ("language bias (lower is better)", [(BIAS, "bias")], bench),
              ("Tatoeba accuracy", [("mean", "all"), ("unseen mean", "unseen")], "tatoeba")]
    panels = [p for p in panels if any(p[2] in c["metrics"] for c in sweep)]
    fig, axes = plt.subplots(1, len(panels), figsize=(4.6 * len(panels), 3.8), squeeze=False, layout="constrained")
    for ax, (ylabel, series, b) in zip(axes[0], panels, strict=True):
        for i, (col, name) in enumerate(series):
            colour = f"C{i}"
            pts = [(c["alpha"], c["metrics"][b][col]) for c in sweep if col in c["metrics"].get(b, {})]
            if not pts:
                continue
            ax.plot([a for a, _ in pts], [s["mean"] for _, s in pts], "-o", color=colour, label=name)
            for a, s in pts:
                ax.scatter([a] * len(s["values"]), s["values"], color=colour, s=12, alpha=0.5)
            if col in base.get(b, {}):
                ax.axhline(base[b][col]["mean"], color=colour, ls="--", lw=1, alpha=0.7)
        ax.set_xlabel("alpha (share of X-X batches)")
        ax.set_ylabel(ylabel)
        ax.set_xticks([0, 0.25, 0.5, 0.75, 1.0])
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.suptitle(f"{bench}: by alpha (lines: mean over seeds; dots: runs; dashed: base model)")
    save_figure(fig, path)
    plt.close(fig)


def plot_heatmaps(conditions: dict[str, dict[str, Any]], names: list[str], bench: str, path: Path) -> None:
    """Query x candidate language mAP side by side for the given conditions (mean over seeds); with a
    base model, a second row shows each trained condition's change from it (small shifts are the story)."""
    plt = pyplot()
    names = [n for n in names if bench in conditions[n]["matrices"]]
    base = conditions["base"]["matrices"][bench]["mean"] if "base" in names else None
    rows = 2 if base is not None and len(names) > 1 else 1
    fig, axes = plt.subplots(rows, len(names), figsize=(3.4 * len(names), 3.3 * rows), squeeze=False,
                             layout="constrained")
    deltas = [conditions[n]["matrices"][bench]["mean"] - base for n in names if n != "base"] if rows == 2 else []
    span = max(0.05, float(np.nanmax(np.abs(deltas)))) if deltas else 0.0
    for col, name in enumerate(names):
        mat = conditions[name]["matrices"][bench]
        langs = mat["languages"]
        panels = [(axes[0][col], mat["mean"], "viridis", 0.0, 1.0, name)]
        if rows == 2:
            if name == "base":
                axes[1][col].axis("off")
            else:
                panels.append((axes[1][col], mat["mean"] - base, "RdBu", -span, span, f"{name} − base"))
        for ax, data, cmap, lo, hi, title in panels:
            im = ax.imshow(data, cmap=cmap, vmin=lo, vmax=hi)
            ax.set_xticks(range(len(langs)), langs)
            ax.set_yticks(range(len(langs)), langs)
            ax.set_title(title, fontsize=10)
            ax.set_xlabel("candidate language")
            for i in range(len(langs)):
                for j in range(len(langs)):
                    dark = data[i, j] < 0.6 if cmap == "viridis" else abs(data[i, j]) > 0.6 * span
                    ax.text(j, i, f"{data[i, j]:+.3f}" if cmap != "viridis" else f"{data[i, j]:.2f}", ha="center",
                            va="center", fontsize=8, color="white" if dark else "black")
            if col == len(names) - 1:
                fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04, label="mAP" if cmap == "viridis" else "Δ mAP")
    for r in range(rows):
        axes[r][0].set_ylabel("query language")
    save_figure(fig, path)
    plt.close(fig)


def _jsonable(conditions: dict[str, dict[str, Any]]) -> dict[str, Any]:
    return {name: {"strategy": c["strategy"], "alpha": c["alpha"],
                   "runs": [{"label": r.label, "seed": r.seed, "model_sha256": r.model_hash, "train": r.train,
                             "lareqa_report": r.lareqa["_path"] if r.lareqa else None,
                             "tatoeba_report": r.tatoeba["_path"] if r.tatoeba else None} for r in c["runs"]],
                   "metrics": c["metrics"],
                   "xling_mAP": {b: {"languages": m["languages"], "mean": m["mean"].tolist()}
                                 for b, m in c["matrices"].items()}}
            for name, c in conditions.items()}


def write_study(paths: list[str | Path], out: str | Path, plots: bool = True) -> dict[str, Any]:
    """Read the reports, write study.json, study.md and the plots into ``out``; return study.json's content."""
    out = Path(out)
    runs = load_runs(paths)
    conditions = aggregate(runs)
    plot_files: dict[str, str] = {}
    if plots:
        main = [n for n in ("base", "X-X", "X-Y", "hybrid α=0.5") if n in conditions]
        for bench in sorted({b for r in runs for b in (r.lareqa or {}).get("benchmarks", {})}):
            if sum(c["alpha"] is not None for c in conditions.values()) > 1:
                plot_files[f"{bench}: by alpha"] = f"{bench}_alpha_sweep.png"
                plot_alpha_sweep(conditions, bench, out / plot_files[f"{bench}: by alpha"])
            plot_files[f"{bench}: cross-lingual mAP"] = f"{bench}_xling_map.png"
            plot_heatmaps(conditions, main or list(conditions), bench, out / plot_files[f"{bench}: cross-lingual mAP"])
    study = {"kind": "study", "conditions": _jsonable(conditions), "plots": plot_files}
    atomic_write_json(out / "study.json", study)
    atomic_write_bytes(out / "study.md", study_markdown(runs, conditions, plot_files).encode())
    return study
