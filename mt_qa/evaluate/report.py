"""Reports: report.json (every number), report.md (tables like the paper's Table 1), PNG plots.

``compare`` reads several report.json files and puts the models side by side, so a trained
model and its zero-shot baseline can be read in one table.
"""

from __future__ import annotations

import gzip
import io
import json
import math
import os
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from mt_qa.errors import MtqaError
from mt_qa.io import atomic_write_bytes, atomic_write_json
from mt_qa.outdir import file_mode

REPORT = "report.json"
MARKDOWN = "report.md"


# ---------------------------------------------------------------------- formatting
def fmt(value: Any, digits: int = 3) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    if isinstance(value, (int, np.integer)):
        return str(int(value))
    return f"{value:.{digits}f}"


def md_table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


def model_label(report: dict[str, Any]) -> str:
    return report.get("label") or Path(report["model"]["model"]).name or report["model"]["model"]


HEADLINE = ["Mono mAP", "Mono R@1", "Cross mAP", "Cross R@1", "Multi mAP", "Multi R@10", "Lang. bias ↓"]


def headline(bench: dict[str, Any]) -> list[str]:
    s = bench["settings"]
    return [fmt(s["mono"]["mAP"]), fmt(s["mono"].get("R@1")), fmt(s["cross"]["mAP"]), fmt(s["cross"].get("R@1")),
            fmt(s["multi"]["mAP"]), fmt(s["multi"].get("R@10")), fmt(bench["language_bias"]["mean"], 1)]


def lareqa_markdown(report: dict[str, Any], plots: dict[str, dict[str, str]] | None = None) -> str:
    """The human-readable report: headline table, then per-benchmark matrices and per-language rows."""
    model = report["model"]
    out = [f"# LAReQA evaluation: {model_label(report)}", "",
           f"Model `{model['model']}` (content sha256 `{model['content_sha256'][:12]}…`), "
           f"prefixes query={report['prefixes']['query']!r} passage={report['prefixes']['passage']!r}, "
           f"ties {report['ties']}.", "",
           "mAP is the primary metric. Mono: X->X; Cross: X->Y for every ordered pair X != Y, macro-averaged; "
           "Multi: X->pool of all languages (R@10 = share of the relevant sentences in the top 10). "
           "Language bias: max - min rank of a question's relevant sentences in the pool, mean over questions, "
           "macro over languages (lower is better; floor shown per benchmark).", "",
           md_table(["Benchmark", *HEADLINE], [[name, *headline(b)] for name, b in report["benchmarks"].items()]),
           ""]
    for name, bench in report["benchmarks"].items():
        langs = bench["languages"]
        out += [f"## {name}", "",
                f"{len(langs)} languages; questions per language: "
                + ", ".join(f"{lang} {n}" for lang, n in bench["n_questions"].items())
                + "; candidates: " + ", ".join(f"{lang} {n}" for lang, n in bench["n_candidates"].items()) + ".",
                f"Language bias floor (n relevant - 1): {fmt(bench['language_bias']['floor'], 1)}.", ""]
        out += ["### mAP by query language (rows) and candidate language (columns)", ""]
        matrix = bench["matrix"]["mAP"]
        out.append(md_table(["query \\ cand.", *langs], [[x, *[fmt(v) for v in matrix[i]]]
                                                         for i, x in enumerate(langs)]))
        out += ["", "### Per query language", ""]
        rows = []
        for lang in langs:
            mono = bench["settings"]["mono"]["per_language"][lang]
            cross = [bench["settings"]["cross"]["per_pair"][f"{lang}-{y}"]["mAP"] for y in langs if y != lang]
            cross = [c for c in cross if c is not None]
            multi = bench["settings"]["multi"]["per_language"][lang]
            bias = bench["language_bias"]["per_language"][lang]
            rows.append([lang, fmt(mono["mAP"]), fmt(mono.get("R@1")), fmt(float(np.mean(cross)) if cross else None),
                         fmt(multi["mAP"]), fmt(multi.get("R@10")), fmt(bias["mean"], 1), fmt(bias["median"], 1),
                         str(multi["n_queries"])])
        out.append(md_table(["lang", "Mono mAP", "Mono R@1", "Cross mAP (X->others)", "Multi mAP", "Multi R@10",
                             "Bias mean", "Bias median", "queries"], rows))
        skipped = {lang: {k: v for k, v in st.items() if k.startswith(("skipped", "answer_"))}
                   for lang, st in bench.get("input_stats", {}).items()}
        skipped = {k: v for k, v in skipped.items() if v}
        if skipped:
            out += ["", "Input notes: " + "; ".join(f"{lang}: " + ", ".join(f"{k}={v}" for k, v in st.items())
                                                    for lang, st in skipped.items())]
        if plots and name in plots:
            out += [""] + [f"![{title}]({path})" for title, path in plots[name].items()]
        out.append("")
    timing = report.get("timing", {})
    enc = report.get("encoding", {})
    out += ["## Run", "", f"Texts {enc.get('texts')}, unique {enc.get('unique')}, from cache {enc.get('cached')}, "
            f"encoded {enc.get('encoded')}; encode {timing.get('encode_seconds')} s, "
            f"scoring {timing.get('score_seconds')} s, total {timing.get('total_seconds')} s.", ""]
    return "\n".join(out)


# ---------------------------------------------------------------------- plots
def pyplot():
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError as exc:
        raise MtqaError("plots need matplotlib (pip install matplotlib), or pass --no-plots") from exc
    return plt


def save_figure(fig: Any, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    # A ``.tmp`` name, like every other mtqa temp file, so a killed run's one is cleaned on the next.
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        os.fchmod(fd, file_mode())
    finally:
        os.close(fd)
    try:
        fig.savefig(tmp, dpi=120, bbox_inches="tight", format="png")
        os.replace(tmp, path)
    finally:
        Path(tmp).unlink(missing_ok=True)


def plot_heatmap(matrix: list[list[float | None]], languages: list[str], path: Path, title: str) -> None:
    """The query-language x candidate-language mAP matrix (diagonal: monolingual)."""
    plt = pyplot()
    data = np.array([[np.nan if v is None else v for v in row] for row in matrix], dtype=float)
    n = len(languages)
    fig, ax = plt.subplots(figsize=(1.0 + 0.6 * n, 0.8 + 0.55 * n))
    im = ax.imshow(data, cmap="viridis", vmin=0.0, vmax=1.0)
    ax.set_xticks(range(n), languages)
    ax.set_yticks(range(n), languages)
    ax.set_xlabel("candidate language")
    ax.set_ylabel("query language")
    ax.set_title(title)
    if n <= 16:
        for i in range(n):
            for j in range(n):
                if not np.isnan(data[i, j]):
                    ax.text(j, i, f"{data[i, j]:.2f}", ha="center", va="center", fontsize=7,
                            color="white" if data[i, j] < 0.6 else "black")
    fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04, label="mAP")
    save_figure(fig, path)
    plt.close(fig)


def plot_bias(bias: np.ndarray, query_lang: np.ndarray, languages: list[str], path: Path, title: str) -> None:
    """Distribution of per-question language bias (max - min pooled rank): overall and per language."""
    plt = pyplot()
    keep = ~np.isnan(bias)
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 3.8))
    values = bias[keep]
    if values.size:
        bins = np.unique(np.geomspace(1, max(2.0, values.max() + 1), 40).astype(int))
        ax1.hist(values + 1, bins=bins, color="tab:blue")
        ax1.set_xscale("log")
    ax1.set_xlabel("max rank - min rank + 1 (log)")
    ax1.set_ylabel("questions")
    ax1.set_title(f"{title}: all query languages")
    groups = [bias[keep & (query_lang == i)] + 1 for i in range(len(languages))]
    ax2.boxplot([g if g.size else np.array([np.nan]) for g in groups], showfliers=False)
    ax2.set_xticks(range(1, len(languages) + 1), languages)
    ax2.set_yscale("log")
    ax2.set_ylabel("max rank - min rank + 1 (log)")
    ax2.set_title("per query language (no outliers)")
    fig.tight_layout()
    save_figure(fig, path)
    plt.close(fig)


# ---------------------------------------------------------------------- writing
def _per_query_lines(result: Any) -> bytes:
    """One JSON line per query: its AP against each language, pooled AP and ranks, bias."""
    task = result.task
    pq = result.per_query
    buf = io.BytesIO()
    with gzip.GzipFile(fileobj=buf, mode="wb", mtime=0) as gz:
        for q in range(task.num_queries):
            mask = pq["segment"][q] >= 0
            row = {
                "query_id": task.query_ids[q],
                "lang": task.languages[int(task.query_lang[q])],
                "AP": {lang: (None if np.isnan(pq["AP_pair"][q, i]) else round(float(pq["AP_pair"][q, i]), 6))
                       for i, lang in enumerate(task.languages)},
                "AP_pool": None if np.isnan(pq["AP_pool"][q]) else round(float(pq["AP_pool"][q]), 6),
                "bias": None if np.isnan(pq["bias"][q]) else int(pq["bias"][q]),
                "relevant": [task.candidate_ids[c] for c in task.relevant[q][mask]],
                "ranks_pool": pq["ranks_pool"][q][mask].tolist(),
                "ranks_in_language": pq["ranks_segment"][q][mask].tolist(),
            }
            gz.write((json.dumps(row, ensure_ascii=False) + "\n").encode())
    return buf.getvalue()


def _slug(name: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in name)


def write_lareqa_report(out: str | Path, report: dict[str, Any], results: list[Any] | None = None,
                        plots: bool = True) -> dict[str, Any]:
    """Write report.json, report.md, plots and per-query files into ``out``; return the paths."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    written: dict[str, Any] = {"report": str(out / REPORT), "markdown": str(out / MARKDOWN), "plots": {}}
    plot_paths: dict[str, dict[str, str]] = {}
    for r in results or []:
        slug = _slug(r.name)
        atomic_write_bytes(out / f"per_query_{slug}.jsonl.gz", _per_query_lines(r))
        if plots:
            bench = report["benchmarks"][r.name]
            heat, bias = f"{slug}_xling_map.png", f"{slug}_language_bias.png"
            plot_heatmap(bench["matrix"]["mAP"], bench["languages"], out / heat, f"{r.name}: mAP")
            plot_bias(r.per_query["bias"], r.task.query_lang, bench["languages"], out / bias,
                      f"{r.name} language bias")
            plot_paths[r.name] = {"cross-lingual mAP": heat, "language bias": bias}
    written["plots"] = plot_paths
    report = {**report, "files": {"plots": plot_paths}}
    atomic_write_json(out / REPORT, report)
    atomic_write_bytes(out / MARKDOWN, lareqa_markdown(report, plot_paths).encode())
    return written


# ---------------------------------------------------------------------- compare
def load_report(path: str | Path) -> dict[str, Any]:
    path = Path(path)
    if path.is_dir():
        path = path / REPORT
    if not path.is_file():
        raise MtqaError(f"{path}: no report.json (run `mtqa evaluate lareqa` or `beir` first)")
    try:
        report = json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise MtqaError(f"{path}: not valid JSON: {exc}") from exc
    if report.get("kind") not in ("lareqa", "beir", "tatoeba"):
        raise MtqaError(f"{path}: not an mtqa evaluate report")
    report["_path"] = str(path)
    return report


def compare_markdown(reports: list[dict[str, Any]], labels: list[str] | None = None) -> str:
    """Models side by side: one table per benchmark, one row per model, best value in bold."""
    labels = labels or [model_label(r) for r in reports]
    if len(labels) != len(reports):
        raise MtqaError("give one --label per report")
    out = ["# Model comparison", ""]
    benches: dict[str, list[tuple[str, dict[str, Any], str]]] = {}
    for label, rep in zip(labels, reports, strict=True):
        for name, bench in rep["benchmarks"].items():
            benches.setdefault(name, []).append((label, bench, rep["kind"]))
    for name, entries in benches.items():
        kind = entries[0][2]
        if kind == "lareqa":
            header = HEADLINE
            rows = [headline(b) for _, b, _ in entries]
            lower_better = {len(HEADLINE) - 1}
        else:
            header = list(entries[0][1]["metrics"])
            rows = [[fmt(b["metrics"].get(m)) for m in header] for _, b, _ in entries]
            lower_better = set()
        for col in range(len(header)):
            vals = [float(r[col]) if r[col] != "–" else None for r in rows]
            known = [v for v in vals if v is not None]
            if len(known) > 1:
                best = min(known) if col in lower_better else max(known)
                for r, v in zip(rows, vals, strict=True):
                    if v == best:
                        r[col] = f"**{r[col]}**"
        out += [f"## {name}", "", md_table(["Model", *header], [[lab, *r] for (lab, _, _), r in zip(entries, rows,
                                                                                                      strict=True)]),
                ""]
    out += ["Reports: " + ", ".join(f"{lab} = `{r['_path']}`" for lab, r in zip(labels, reports, strict=True)), ""]
    return "\n".join(out)


def beir_markdown(report: dict[str, Any]) -> str:
    model = report["model"]
    rows = []
    header: list[str] = []
    for name, bench in report["benchmarks"].items():
        header = header or list(bench["metrics"])
        rows.append([name, *[fmt(bench["metrics"].get(m)) for m in header], str(bench["n_queries"]),
                     str(bench["n_docs"])])
    return "\n".join([
        f"# Retrieval evaluation: {model_label(report)}", "",
        f"Model `{model['model']}` (content sha256 `{model['content_sha256'][:12]}…`), prefixes "
        f"query={report['prefixes']['query']!r} passage={report['prefixes']['passage']!r}. Exact search; "
        "metrics by ir_measures over the retrieved depth (AP = MAP, RR@10 = MRR@10).", "",
        md_table(["Benchmark", *header, "queries", "docs"], rows), ""])
