"""Benchmark the language-ID detectors of `mtqa filter`: accuracy, the filter's decision, speed, memory.

Data (all real, from ../shared/data):

- Tatoeba test sentences in 13 languages (ar de el en es hi it pt ru th tr vi zh; LASER's files);
- SQuAD v1.1 questions in en/es/it/pt, and their passages, from a collected store (made here
  with ``mtqa collect`` unless ``--collected DIR`` is given).

For each detector (fastText lid.176, py3langid, langdetect, the combined vote, and the vote with
langdetect added) it reports, in one run: top-1 accuracy per language on Tatoeba and on SQuAD
questions (short < 40 characters vs longer), the filter's decision on SQuAD questions (rows kept
when the language is right; rows rejected when the label is swapped to another of en/es/it/pt),
questions/s and passages/s, model load time and peak RSS. Each detector runs in its own
subprocess, so its memory is its own. It also checks the Unicode-script check on Tatoeba.

    /work/venv/bin/python bench/bench_langid.py [--collected DIR] [--out docs/benchmarks/filter.md]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
SHARED = Path(os.environ.get("MTQA_SHARED", ROOT.parent / "shared")) / "data"
TATOEBA = {"ara": "ar", "cmn": "zh", "deu": "de", "ell": "el", "hin": "hi", "ita": "it", "por": "pt", "rus": "ru",
           "spa": "es", "tha": "th", "tur": "tr", "vie": "vi"}
SQUAD_LANGS = ["en", "es", "it", "pt"]
DETECTORS = ["fasttext", "py3langid", "langdetect", "combined", "fasttext+py3langid+langdetect"]
SHORT = 40
SECTION = "langid"


def tatoeba() -> list[tuple[str, str]]:
    rows = []
    english: list[str] = []
    for iso3, code in TATOEBA.items():
        rows += [(code, line) for line in (SHARED / "tatoeba" / f"tatoeba.{iso3}-eng.{iso3}").read_text(
            encoding="utf-8").splitlines() if line.strip()]
        english += (SHARED / "tatoeba" / f"tatoeba.{iso3}-eng.eng").read_text(encoding="utf-8").splitlines()
    rows += [("en", line) for line in list(dict.fromkeys(e for e in english if e.strip()))[:1000]]
    return rows


def collect(out: Path) -> Path:
    """SQuAD dev + the train prefix, en/es/it/pt (``bench_filter`` and ``bench_semantic`` use it too)."""
    from squad_setup import collect_squad

    return collect_squad(out, train_prefix=True)


def worker(spec: str, collected: Path) -> dict:
    """Everything measured for one detector (runs in its own process)."""
    from mt_qa.filter.checks import LangIdCheck
    from mt_qa.filter.langid import DEFAULT_CANDIDATES, make_detector
    from mt_qa.filter.stage import FilterConfig
    from mt_qa.shards import ShardStore

    table = ShardStore.open(collected).table(columns=["lang", "question", "passage"])
    questions = list(zip(table["lang"].to_pylist(), table["question"].to_pylist(), strict=True))
    own_passage = table["passage"].to_pylist()
    passages = list(dict.fromkeys(zip(table["lang"].to_pylist(), table["passage"].to_pylist(), strict=True)))
    sentences = tatoeba()
    slow = "langdetect" in spec
    started = time.perf_counter()
    det = make_detector(spec, DEFAULT_CANDIDATES)
    det.scores("warm up")
    load = time.perf_counter() - started

    def timed(items: list[tuple[str, str]], limit: int | None = None) -> tuple[list[dict], float, float]:
        items = items[:limit] if limit else items
        wall, cpu = time.perf_counter(), time.process_time()
        scores = [det.scores(text) for _, text in items]
        return scores, len(items) / (time.perf_counter() - wall), len(items) / (time.process_time() - cpu)

    def top(scores: dict) -> str:
        return max(sorted(scores), key=scores.__getitem__) if scores else "und"

    tat_scores, _, _ = timed(sentences)
    q_scores, q_rate, q_cpu = timed(questions)
    _, p_rate, p_cpu = timed(passages, 500 if slow else None)

    def accuracy(items: list[tuple[str, str]], scores: list[dict], keep=lambda text: True) -> dict:
        per: dict[str, list[int]] = {}
        for (lang, text), s in zip(items, scores, strict=True):
            if keep(text):
                hit = per.setdefault(lang, [0, 0])
                hit[0] += top(s) == lang
                hit[1] += 1
        out = {lang: 100 * h / n for lang, (h, n) in sorted(per.items())}
        total = sum(h for h, _ in per.values()), sum(n for _, n in per.values())
        out["all"] = 100 * total[0] / total[1]
        out["n"] = total[1]
        return out

    cfg = FilterConfig()
    passage_scores: dict[str, dict] = {}
    p_of_row = [passage_scores.get(p) or passage_scores.setdefault(p, det.scores(p)) for p in own_passage]

    def with_prior(q: dict, p: dict, eps: float | None) -> dict:
        """The passage as a prior on the question's language: P(l|q) * (eps + P(l|passage))."""
        if eps is None:
            return q
        out = {lang: v * (eps + p.get(lang, 0.0)) for lang, v in q.items()}
        total = sum(out.values()) or 1.0
        return {lang: v / total for lang, v in out.items()}

    def decision(short: bool, eps: float | None = None) -> dict:
        kept = swapped_rejected = n = m = 0
        for (lang, text), s, p in zip(questions, q_scores, p_of_row, strict=True):
            if (len(text.strip()) < SHORT) != short:
                continue
            threshold = cfg.min_confidence_short if short else cfg.min_confidence
            n += 1
            kept += LangIdCheck._judge(with_prior(s, p, eps), lang, threshold, "question") is None
            for other in SQUAD_LANGS:
                if other != lang:  # a wrong-language question beside a right-language passage
                    m += 1
                    swapped = with_prior(s, {other: 1.0}, eps)
                    swapped_rejected += LangIdCheck._judge(swapped, other, threshold, "question") is not None
        return {"kept": 100 * kept / n, "swapped_rejected": 100 * swapped_rejected / m, "n": n}

    return {
        "spec": spec,
        "load_s": load,
        "tatoeba": accuracy(sentences, tat_scores),
        "squad": accuracy(questions, q_scores),
        "squad_short": accuracy(questions, q_scores, lambda t: len(t.strip()) < SHORT),
        "squad_long": accuracy(questions, q_scores, lambda t: len(t.strip()) >= SHORT),
        "decision_short": decision(True),
        "decision_long": decision(False),
        "prior_short": decision(True, 0.5),
        "prior_long": decision(False, 0.5),
        "questions_per_s": q_rate, "questions_per_cpu_s": q_cpu,
        "passages_per_s": p_rate, "passages_per_cpu_s": p_cpu,
        "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }


def script_check() -> dict[str, tuple[float, float]]:
    """Per non-Latin Tatoeba language: share of its sentences passing, of English ones rejected."""
    from mt_qa.filter.script import script_of, script_ratio
    from mt_qa.filter.stage import FilterConfig

    threshold = FilterConfig().min_script_ratio
    english = [t for lang, t in tatoeba() if lang == "en"]
    out = {}
    for iso3, code in TATOEBA.items():
        script = script_of(code)
        if script == "Latn":
            continue
        lines = [t for t in (SHARED / "tatoeba" / f"tatoeba.{iso3}-eng.{iso3}").read_text(encoding="utf-8").splitlines()
                 if t.strip()]
        passed = sum((script_ratio(t, script) or 0) >= threshold for t in lines) / len(lines)
        rejected = sum((script_ratio(t, script) or 0) < threshold for t in english) / len(english)
        out[code] = (100 * passed, 100 * rejected)
    return out


def fmt(x: float, digits: int = 1) -> str:
    return f"{x:,.{digits}f}"


def report(results: list[dict], scripts: dict, elapsed: float) -> list[str]:
    langs = ["ar", "de", "el", "en", "es", "hi", "it", "pt", "ru", "th", "tr", "vi", "zh"]
    lines = [
        f"<!-- {SECTION}:start -->",
        "## Language ID (bench/bench_langid.py)",
        "",
        "Command: `/work/venv/bin/python bench/bench_langid.py`. "
        f"Machine: {platform.machine()}, {os.cpu_count()} cores, 24 GiB, Python {platform.python_version()}; "
        "other jobs shared the CPU during the run, so wall-clock rates are low by up to 2-3x "
        "(rates per CPU-second in parentheses are steadier). "
        f"All detectors restricted to mtqa's default candidate set (27 languages). Run time {elapsed:.0f}s.",
        "",
        f"### Top-1 accuracy on Tatoeba ({results[0]['tatoeba']['n']:,} sentences, 13 languages), %",
        "",
        "| detector | all | " + " | ".join(langs) + " |",
        "|---|---|" + "---|" * len(langs),
    ]
    for r in results:
        t = r["tatoeba"]
        lines.append(f"| {r['spec']} | **{fmt(t['all'], 2)}** | " + " | ".join(fmt(t[lang]) for lang in langs) + " |")
    lines += [
        "",
        "The few combined-mode misses include lines of the Arabic file that are Spanish sentences: "
        "Tatoeba's own noise.",
        "",
        f"### Top-1 accuracy on SQuAD questions ({results[0]['squad']['n']:,}; en/es/it/pt), %",
        "",
        "| detector | all | short (< 40 chars) | long | en | es | it | pt |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in results:
        s, short, long_ = r["squad"], r["squad_short"], r["squad_long"]
        lines.append(f"| {r['spec']} | {fmt(s['all'], 2)} | {fmt(short['all'], 2)} (n={short['n']:,}) | "
                     f"{fmt(long_['all'], 2)} | " + " | ".join(fmt(s[lang], 2) for lang in SQUAD_LANGS) + " |")
    lines += [
        "",
        "### The filter's decision on SQuAD questions (default thresholds), %",
        "",
        "Kept: rows whose label is right and pass. Rejected: the same questions labelled as one of the "
        "other three languages (untranslated or wrong-language output) that fail. Short questions "
        f"(< {SHORT} characters) are judged at `--min-confidence-short` 0.25, longer ones at 0.5; a question "
        "also passes when its language is the detector's first choice.",
        "",
        "| detector | short: kept | short: swapped rejected | long: kept | long: swapped rejected |",
        "|---|---|---|---|---|",
    ]
    for r in results:
        for label, ds, dl in ((r["spec"], r["decision_short"], r["decision_long"]),
                              (f"{r['spec']}, passage prior", r["prior_short"], r["prior_long"])):
            lines.append(f"| {label} | {fmt(ds['kept'], 2)} | {fmt(ds['swapped_rejected'], 2)} | "
                         f"{fmt(dl['kept'], 2)} | {fmt(dl['swapped_rejected'], 2)} |")
    lines += [
        "",
        "'passage prior' rows: the question's scores multiplied by 0.5 + P(language | its passage) before "
        "deciding (the alternative way to use the passage for short questions). It keeps a few more real "
        "rows but lets more wrong-language questions through, so mtqa does not use it: the passage has to "
        "pass on its own at `--min-confidence`, and untranslated questions are caught by the copy check.",
    ]
    base = next((r for r in results if r["spec"] == "langdetect"), results[0])
    lines += [
        "",
        "### Speed and memory (one process per detector)",
        "",
        f"| detector | questions/s | passages/s (first 500 chars) | vs {base['spec']} (questions) | load s "
        "| peak RSS MiB |",
        "|---|---|---|---|---|---|",
    ]
    for r in results:
        lines.append(
            f"| {r['spec']} | {fmt(r['questions_per_s'], 0)} ({fmt(r['questions_per_cpu_s'], 0)}) | "
            f"{fmt(r['passages_per_s'], 0)} ({fmt(r['passages_per_cpu_s'], 0)}) | "
            f"{r['questions_per_s'] / base['questions_per_s']:.1f}x | {r['load_s']:.2f} | {r['peak_rss_mib']:.0f} |")
    lines += [
        "",
        "### Unicode-script check on Tatoeba (min ratio 0.3)",
        "",
        "| language | own sentences passing % | English sentences under this label rejected % |",
        "|---|---|---|",
    ]
    for code, (passed, rejected) in scripts.items():
        lines.append(f"| {code} | {fmt(passed, 2)} | {fmt(rejected, 2)} |")
    lines.append(f"<!-- {SECTION}:end -->")
    return lines


def write_section(path: Path, lines: list[str], section: str) -> None:
    """Replace (or append) this benchmark's section of the shared filter benchmark page."""
    start, end = f"<!-- {section}:start -->", f"<!-- {section}:end -->"
    text = path.read_text() if path.is_file() else "# Benchmark: filter\n"
    if start in text and end in text:
        head, rest = text.split(start, 1)
        text = head + "\n".join(lines) + rest.split(end, 1)[1]
    else:
        text = text.rstrip("\n") + "\n\n" + "\n".join(lines) + "\n"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--collected", type=Path, help="a collected SQuAD store (default: collect one now)")
    parser.add_argument("--detectors", default=",".join(DETECTORS))
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "benchmarks" / "filter.md")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        print(json.dumps(worker(args.worker, args.collected)))
        return 0
    started = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        collected = args.collected or collect(Path(tmp) / "collect")
        results = []
        for spec in args.detectors.split(","):
            print(f"-- {spec}", file=sys.stderr, flush=True)
            proc = subprocess.run([sys.executable, __file__, "--worker", spec, "--collected", str(collected)],
                                  capture_output=True, text=True, check=True)
            results.append(json.loads(proc.stdout.strip().splitlines()[-1]))
    lines = report(results, script_check(), time.perf_counter() - started)
    print("\n".join(lines))
    write_section(args.out, lines, SECTION)
    return 0


if __name__ == "__main__":
    sys.exit(main())
