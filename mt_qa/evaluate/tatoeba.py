"""Tatoeba bitext retrieval (Artetxe & Schwenk 2019, as used by XTREME): for each language paired
with English, find every sentence's translation among all the pair's sentences on the other side.

It needs no QA data, so it measures cross-lingual alignment in languages a retriever was never
trained on: whether hybrid batching helps beyond its training languages. Data is the LASER
packaging, ``tatoeba.XXX-eng.XXX`` + ``tatoeba.XXX-eng.eng``, line-aligned.

Accuracy is nearest-neighbour by cosine in both directions (xx→en, the XTREME number, and en→xx).
A retrieved sentence counts as correct when its text equals the gold one, so exact duplicates on
one side (Tatoeba has a few) are not scored as errors.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from mt_qa.errors import MtqaError
from mt_qa.evaluate.encode import Encoder
from mt_qa.evaluate.report import fmt, md_table, model_label
from mt_qa.languages import UnknownLanguageError, resolve

FILE = re.compile(r"tatoeba\.([a-z]{3})-eng\.\1$")


@dataclass
class BitextPair:
    lang: str  # mtqa language code, e.g. "de"
    file_code: str  # the file's ISO 639-3 code, e.g. "deu"
    source: list[str]  # sentences in ``lang``
    english: list[str]  # their translations, line by line
    path: Path


def _read_lines(path: Path) -> list[str]:
    try:
        data = path.read_bytes()
    except FileNotFoundError as exc:
        raise MtqaError(f"{path}: missing (each tatoeba.XXX-eng.XXX needs its tatoeba.XXX-eng.eng)") from exc
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise MtqaError(f"{path}: line {line}: not valid UTF-8") from exc
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    if not lines:
        raise MtqaError(f"{path}: empty file (no sentences)")
    for n, line in enumerate(lines, 1):
        if not line.strip():
            raise MtqaError(f"{path}: line {n}: empty sentence")
    return [line.rstrip("\r") for line in lines]


def load_tatoeba(directory: str | Path, languages: list[str] | None = None) -> list[BitextPair]:
    """The XXX-eng pairs of ``directory`` (all, or those of ``languages`` in any code form)."""
    directory = Path(directory)
    if not directory.is_dir():
        raise MtqaError(f"{directory}: not a directory of tatoeba.XXX-eng.XXX files")
    found: dict[str, tuple[str, Path]] = {}
    for path in sorted(directory.iterdir()):
        match = FILE.match(path.name)
        if not match:
            continue
        try:
            lang = resolve(match.group(1)).code
        except UnknownLanguageError as exc:
            raise MtqaError(f"{path}: {exc}") from exc
        found[lang] = (match.group(1), path)
    if not found:
        raise MtqaError(f"{directory}: no tatoeba.XXX-eng.XXX files")
    if languages:
        wanted = []
        for code in languages:
            lang = resolve(code).code
            if lang not in found:
                raise MtqaError(f"{directory}: no Tatoeba pair for {code!r} (have {', '.join(sorted(found))})")
            wanted.append(lang)
    else:
        wanted = sorted(found)
    pairs = []
    for lang in wanted:
        file_code, path = found[lang]
        source, english = _read_lines(path), _read_lines(path.with_suffix(".eng"))
        if len(source) != len(english):
            raise MtqaError(f"{path}: {len(source)} lines but {path.with_suffix('.eng').name} has {len(english)}; "
                            "the two sides must be line-aligned")
        pairs.append(BitextPair(lang, file_code, source, english, path))
    return pairs


def retrieval_accuracy(queries: np.ndarray, candidates: np.ndarray, query_texts: list[str],
                       candidate_texts: list[str]) -> float:
    """Share of rows i whose nearest candidate (by dot product) has the text of candidate i."""
    best = np.argmax(queries @ candidates.T, axis=1)
    hits = [candidate_texts[j] == candidate_texts[i] for i, j in enumerate(best.tolist())]
    return float(np.mean(hits)) if hits else float("nan")


def evaluate_tatoeba(directory: str | Path, encoder: Encoder, *, languages: list[str] | None = None,
                     prefix: str = "query: ", trained_languages: list[str] | None = None) -> dict[str, Any]:
    """The report dict: per-language accuracy both ways, and means over all / unseen languages."""
    started = time.perf_counter()
    pairs = load_tatoeba(directory, languages)
    trained = {resolve(c).code for c in trained_languages or []}
    per_language: dict[str, Any] = {}
    for pair in pairs:
        src = encoder.encode(pair.source, prefix, desc=f"tatoeba {pair.lang}")
        eng = encoder.encode(pair.english, prefix, desc=f"tatoeba {pair.lang} (en)")
        to_en = retrieval_accuracy(src, eng, pair.source, pair.english)
        from_en = retrieval_accuracy(eng, src, pair.english, pair.source)
        per_language[pair.lang] = {"file_code": pair.file_code, "pairs": len(pair.source), "xx->en": to_en,
                                   "en->xx": from_en, "accuracy": (to_en + from_en) / 2,
                                   "trained": pair.lang in trained if trained_languages is not None else None}
    metrics: dict[str, float] = {"mean": float(np.mean([v["accuracy"] for v in per_language.values()]))}
    if trained_languages is not None:
        unseen = [v["accuracy"] for v in per_language.values() if not v["trained"]]
        metrics["unseen mean"] = float(np.mean(unseen)) if unseen else float("nan")
    metrics.update({lang: v["accuracy"] for lang, v in per_language.items()})
    return {
        "kind": "tatoeba",
        "model": encoder.info(),
        "prefixes": {"query": prefix, "passage": prefix},
        "trained_languages": sorted(trained) if trained_languages is not None else None,
        "benchmarks": {"tatoeba": {"source": str(Path(directory).resolve()), "languages": [p.lang for p in pairs],
                                   "metrics": metrics, "per_language": per_language}},
        "encoding": dict(encoder.stats),
        "timing": {"total_seconds": round(time.perf_counter() - started, 2),
                   "encode_seconds": round(encoder.stats["encode_seconds"], 2)},
    }


def tatoeba_markdown(report: dict[str, Any]) -> str:
    bench = report["benchmarks"]["tatoeba"]
    rows = [[lang, v["file_code"], str(v["pairs"]), "–" if v["trained"] is None else ("yes" if v["trained"] else "no"),
             fmt(v["xx->en"]), fmt(v["en->xx"]), fmt(v["accuracy"])] for lang, v in bench["per_language"].items()]
    means = ", ".join(f"{k} {fmt(v)}" for k, v in bench["metrics"].items() if k in ("mean", "unseen mean"))
    return "\n".join([
        f"# Tatoeba bitext retrieval: {model_label(report)}", "",
        f"Model `{report['model']['model']}` (content sha256 `{report['model']['content_sha256'][:12]}…`), "
        f"prefix {report['prefixes']['query']!r} on both sides; nearest neighbour by cosine among all "
        f"sentences of the pair. Accuracy: {means}.", "",
        md_table(["Lang", "File", "Pairs", "Trained on", "xx→en", "en→xx", "Accuracy"], rows), ""])
