"""``build-lareqa``: a held-out LAReQA-format benchmark from parallel collected QA shards.

Collected SQuAD-format data (en dev with its es/it translations) becomes an XQuAD-R-like
development benchmark: whole Wikipedia articles are held out, every paragraph of them that
exists in all chosen languages becomes candidate sentences, and every question present in
all chosen languages (with a locatable answer in each) becomes a query with a parallel
answer sentence in every language.

Holding out whole articles (not questions) matters: questions of one article share
paragraphs, so a held-out question whose paragraph was trained on is not held out. The
titles and *every* group_id of those articles (also the ones not used as queries) are
written to ``heldout_titles.txt`` / ``heldout_group_ids.txt`` so training data can drop them.

Articles are identified by the title of the group's source row (translated titles differ
per language). ``--articles N`` picks N articles by a seeded hash of the title: stable under
added or removed articles, and independent of file order.
"""

from __future__ import annotations

import hashlib
import json
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyarrow.compute as pc

from mt_qa.errors import MtqaError
from mt_qa.evaluate.lareqa import sentence_of
from mt_qa.io import atomic_write_bytes, atomic_write_json
from mt_qa.outdir import claim_output
from mt_qa.sentences import split_sentences
from mt_qa.shards import ShardStore, fingerprint

BUILD_FILE = "build.json"
COLUMNS = ["group_id", "dataset", "split", "lang", "question", "passage", "title", "answers", "answer_starts",
           "passage_sentences", "origin"]


def sentence_breaks(passage: str, pieces: list[str]) -> tuple[list[list[int]], list[str]]:
    """LAReQA ``sentence_breaks``/``sentences`` from pieces that concatenate to ``passage``.

    Pieces keep their surrounding whitespace (mt_qa.sentences); LAReQA sentences are stripped
    and breaks point at the stripped text, so ``passage[start:end] == sentence``.
    """
    breaks: list[list[int]] = []
    sentences: list[str] = []
    pos = 0
    for piece in pieces:
        text = piece.strip()
        if text:
            start = pos + len(piece) - len(piece.lstrip())
            breaks.append([start, start + len(text)])
            sentences.append(text)
        pos += len(piece)
    return breaks, sentences


def locate(passage: str, answers: list[str], starts: list[int]) -> tuple[str, int] | None:
    """(answer text, start of its first non-space character) for the first answer found in ``passage``."""
    for text, start in zip(answers, starts, strict=False):
        if text.strip() and 0 <= start and passage[start:start + len(text)] == text:
            return text, start + len(text) - len(text.lstrip())
    for text in answers:
        if text.strip():
            found = passage.find(text)
            if found >= 0:
                return text, found + len(text) - len(text.lstrip())
    return None


@dataclass
class _Paragraph:
    title: str
    passages: dict[str, list[str]] = field(default_factory=dict)  # lang -> distinct passages, first seen first
    titles: dict[str, str] = field(default_factory=dict)  # lang -> that language's title
    groups: list[str] = field(default_factory=list)


class BuildLareqa:
    """Select held-out articles from a QA shard store and write one LAReQA-format file per language."""

    def __init__(self, store: str | Path, out: str | Path, *, split: str = "dev", dataset: str | None = None,
                 languages: list[str] | None = None, articles: int | None = 10, titles: list[str] | None = None,
                 seed: int = 0, overwrite: bool = False):
        if not titles and (articles is None or articles < 1):
            raise MtqaError("--articles must be at least 1 (or give --titles)")
        self.src = ShardStore.open(store)
        if self.src.manifest.get("schema") != "qa":
            raise MtqaError(f"{store}: a {self.src.manifest.get('schema')!r} store; build-lareqa needs QA shards")
        self.out = Path(out)
        self.split = split
        self.dataset = dataset
        self.languages = languages
        self.articles = None if titles else articles
        self.titles = sorted(set(titles)) if titles else None
        self.seed = seed
        self.overwrite = overwrite
        self._break_cache: dict[tuple[str, str], tuple[list[list[int]], list[str]]] = {}

    def params(self) -> dict[str, Any]:
        return {"split": self.split, "dataset": self.dataset, "languages": self.languages, "articles": self.articles,
                "titles": self.titles, "seed": self.seed}

    def _claim_output(self, fp: str) -> None:
        """Claim and lock --out (``mt_qa/outdir.py``); --overwrite replaces only a build-lareqa directory."""
        build = self.out / BUILD_FILE

        def same_run() -> bool:
            try:
                return json.loads(build.read_text()).get("fingerprint") == fp
            except (OSError, ValueError, AttributeError):
                return False

        def clear() -> None:
            for path in self.out.iterdir():
                if path.is_file() and path.suffix in (".json", ".txt"):
                    path.unlink()

        self._hold = claim_output(self.out, markers=(BUILD_FILE,), same_run=same_run, overwrite=self.overwrite,
                                  clear=clear, what="build-lareqa directory")

    def _rows(self) -> list[dict[str, Any]]:
        table = self.src.table(columns=COLUMNS)
        mask = pc.equal(table["split"], self.split)
        if self.dataset:
            mask = pc.and_(mask, pc.equal(table["dataset"], self.dataset))
        table = table.filter(mask)
        if table.num_rows == 0:
            splits = sorted(set(self.src.table(columns=["split"])["split"].to_pylist()))
            raise MtqaError(f"{self.src.root}: no rows of split {self.split!r}"
                            + (f" and dataset {self.dataset!r}" if self.dataset else "") + f" (splits: {splits})")
        return table.to_pylist()

    def run(self) -> dict[str, Any]:
        rows = self._rows()
        present = sorted({r["lang"] for r in rows})
        langs = self.languages or present
        missing = [lang for lang in langs if lang not in present]
        if missing:
            raise MtqaError(f"{self.src.root}: split {self.split!r} has no rows in {', '.join(missing)} "
                            f"(languages: {', '.join(present)})")
        if len(langs) < 2:
            raise MtqaError("build-lareqa needs at least two languages")
        fp = fingerprint("build-lareqa", self.params(), [self.src.input_ref()])
        self._claim_output(fp)

        groups: dict[str, dict[str, dict[str, Any]]] = defaultdict(dict)
        for r in rows:
            groups[r["group_id"]][r["lang"]] = r
        stats: Counter = Counter()
        # Article of a group: its source row's title (translated titles differ per language).
        article_of: dict[str, str] = {}
        for gid, by_lang in groups.items():
            src = next((r for r in by_lang.values() if r["origin"] == "source"), None)
            src = src or by_lang.get(langs[0]) or by_lang[sorted(by_lang)[0]]
            article_of[gid] = src["title"] or "(untitled)"
        complete = {gid for gid, by_lang in groups.items() if all(lang in by_lang for lang in langs)}
        order = list(dict.fromkeys(article_of[gid] for gid in groups))  # first appearance
        eligible = [t for t in order if any(article_of[g] == t for g in complete)]
        selected = self._select(order, eligible)

        paragraphs: dict[tuple[str, str], _Paragraph] = {}
        for gid, by_lang in groups.items():
            title = article_of[gid]
            if title not in selected:
                continue
            src = next((r for r in by_lang.values() if r["origin"] == "source"), None) or by_lang.get(
                langs[0]) or by_lang[sorted(by_lang)[0]]
            para = paragraphs.setdefault((title, src["passage"]), _Paragraph(title))
            para.groups.append(gid)
            for lang in langs:
                if lang in by_lang:
                    row = by_lang[lang]
                    bucket = para.passages.setdefault(lang, [])
                    if row["passage"] not in bucket:
                        bucket.append(row["passage"])
                    para.titles.setdefault(lang, row["title"])

        files: dict[str, dict[str, Any]] = {lang: {"version": "mtqa-lareqa-1", "data": []} for lang in langs}
        articles_out: dict[str, dict[str, dict[str, Any]]] = {lang: {} for lang in langs}
        questions: Counter = Counter()
        candidates: Counter = Counter()
        used_groups: set[str] = set()
        for para in paragraphs.values():
            if not all(lang in para.passages for lang in langs):
                stats["paragraphs_missing_a_language"] += 1
                continue
            stats["paragraphs"] += 1
            if any(len(para.passages[lang]) > 1 for lang in langs):
                stats["paragraphs_with_several_translations"] += 1
            # Which groups can be queries: present in every language with a locatable answer.
            answers: dict[str, dict[str, tuple[str, int]]] = {}
            for gid in para.groups:
                by_lang = groups[gid]
                if gid not in complete:
                    for lang in langs:
                        if lang not in by_lang:
                            stats[f"questions_missing_language.{lang}"] += 1
                    continue
                located = {lang: locate(by_lang[lang]["passage"], list(by_lang[lang]["answers"]),
                                        list(by_lang[lang]["answer_starts"])) for lang in langs}
                lost = [lang for lang, loc in located.items()
                        if loc is None or self._sentence(lang, by_lang[lang], loc[1], stats) < 0]
                if lost:
                    for lang in lost:
                        stats[f"questions_answer_not_found.{lang}"] += 1
                    continue
                answers[gid] = located  # type: ignore[assignment]
            for lang in langs:
                article = articles_out[lang].get(para.title)
                if article is None:
                    article = {"title": para.titles.get(lang, para.title), "source_title": para.title,
                               "paragraphs": []}
                    articles_out[lang][para.title] = article
                    files[lang]["data"].append(article)
                for passage in para.passages[lang]:
                    entry = self._paragraph(passage, lang, para, groups, answers, stats)
                    article["paragraphs"].append(entry)
                    candidates[lang] += len(entry["sentences"])
                    questions[lang] += len(entry["qas"])
                    used_groups.update(q["id"] for q in entry["qas"])

        if not used_groups:
            raise MtqaError(f"the selected articles have no question in all of {', '.join(langs)}")
        for lang in langs:
            payload = json.dumps(files[lang], ensure_ascii=False, indent=1) + "\n"
            atomic_write_bytes(self.out / f"{lang}.json", payload.encode())
        heldout_groups = sorted(gid for gid, t in article_of.items() if t in selected)
        heldout_groups += self._other_split_groups(set(selected), set(heldout_groups))
        heldout = {
            "titles": sorted(selected),
            "group_ids": sorted(set(heldout_groups)),
            "split": self.split,
            "dataset": self.dataset,
            "languages": langs,
            "source": self.src.input_ref(),
            "how_to_exclude": "drop training rows whose group_id is listed in heldout_group_ids.txt "
                              "(or whose source title is in heldout_titles.txt)",
        }
        atomic_write_json(self.out / "heldout.json", heldout)
        atomic_write_bytes(self.out / "heldout_titles.txt", "".join(f"{t}\n" for t in sorted(selected)).encode())
        atomic_write_bytes(self.out / "heldout_group_ids.txt",
                           "".join(f"{g}\n" for g in heldout["group_ids"]).encode())
        summary = {
            "fingerprint": fp,
            "params": self.params(),
            "input": self.src.input_ref(),
            "languages": langs,
            "articles": sorted(selected),
            "eligible_articles": len(eligible),
            "questions": dict(questions),
            "candidates": dict(candidates),
            "heldout_groups": len(heldout["group_ids"]),
            "stats": dict(sorted(stats.items())),
        }
        atomic_write_json(self.out / BUILD_FILE, summary)
        self._hold.release()
        return {"out": str(self.out), **summary}

    def _select(self, order: list[str], eligible: list[str]) -> list[str]:
        if self.titles:
            unknown = [t for t in self.titles if t not in order]
            if unknown:
                raise MtqaError(f"unknown article title(s) in split {self.split!r}: {', '.join(unknown)} "
                                f"(e.g. {', '.join(order[:5])})")
            return [t for t in order if t in self.titles]
        assert self.articles is not None
        if self.articles > len(eligible):
            raise MtqaError(f"--articles {self.articles}: only {len(eligible)} articles of split {self.split!r} "
                            "have questions in all chosen languages")
        ranked = sorted(eligible, key=lambda t: hashlib.sha256(f"{self.seed}:{t}".encode()).hexdigest())
        chosen = set(ranked[: self.articles])
        return [t for t in order if t in chosen]

    def _other_split_groups(self, titles: set[str], known: set[str]) -> list[str]:
        """Groups of the held-out articles in *other* splits of the store (same text, other split)."""
        table = self.src.table(columns=["group_id", "split", "title", "origin"])
        table = table.filter(pc.and_(pc.not_equal(table["split"], self.split), pc.equal(table["origin"], "source")))
        return [g for g, t in zip(table["group_id"].to_pylist(), table["title"].to_pylist(), strict=True)
                if t in titles and g not in known]

    def _paragraph(self, passage: str, lang: str, para: _Paragraph, groups: dict[str, dict[str, dict[str, Any]]],
                   answers: dict[str, dict[str, tuple[str, int]]], stats: Counter) -> dict[str, Any]:
        row = next(groups[g][lang] for g in para.groups if groups[g].get(lang, {}).get("passage") == passage)
        breaks, sentences = self._breaks(lang, row, stats)
        qas = [{"id": gid, "question": groups[gid][lang]["question"],
                "answers": [{"text": answers[gid][lang][0], "answer_start": answers[gid][lang][1]}]}
               for gid in para.groups if gid in answers and groups[gid][lang]["passage"] == passage]
        return {"context": passage, "sentences": sentences, "sentence_breaks": breaks, "qas": qas}

    def _breaks(self, lang: str, row: dict[str, Any], stats: Counter) -> tuple[list[list[int]], list[str]]:
        """Breaks of a row's passage from its passage_sentences (re-split if they do not add up)."""
        key = (lang, row["passage"])
        if key not in self._break_cache:
            pieces = list(row["passage_sentences"])
            if "".join(pieces) != row["passage"]:
                stats[f"resplit_passages.{lang}"] += 1
                pieces = list(split_sentences(row["passage"], lang))
            self._break_cache[key] = sentence_breaks(row["passage"], pieces)
        return self._break_cache[key]

    def _sentence(self, lang: str, row: dict[str, Any], start: int, stats: Counter) -> int:
        breaks, _ = self._breaks(lang, row, stats)
        idx, _ = sentence_of([(b[0], b[1]) for b in breaks], start)
        return idx
