"""The filter stage: language ID, translation-quality checks and dedup over QA shards.

Two passes. A cheap pre-pass (``prepass.py``) reads the question and passage of every input
shard, in shard order, and decides which rows are duplicates (the first copy is kept); the plan
is saved in the output directory and reused by every task and resumed run. The writing pass
then filters each shard this task owns on its own (in this process, or in ``--workers``
processes: ``pool.py``), so output shard N holds what is left of input shard N.
"""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import asdict
from pathlib import Path
from typing import Any

import pyarrow as pa
from tqdm import tqdm

from mt_qa.errors import MtqaError
from mt_qa.filter import prepass
from mt_qa.filter.checks import (
    SOURCE,
    Check,
    CopyCheck,
    DuplicateCheck,
    EmptyCheck,
    LangIdCheck,
    LengthRatioCheck,
    Rejection,
    RepetitionCheck,
    ScriptCheck,
    ShardRows,
)
from mt_qa.filter.config import FilterConfig, candidate_languages
from mt_qa.filter.dedup import DedupPlan
from mt_qa.filter.langid import LangIdError, LanguageDetector, langid_code, make_detector
from mt_qa.filter.semantic import SemanticCheck, with_signals
from mt_qa.records import QA_SCHEMA
from mt_qa.shards import ShardStore, ShardWriter
from mt_qa.stage import ShardedStage

PLAN_FILE = "_dedup_plan.json"
PLAN_LOCK = "_dedup_plan.lock"  # held by the task building the plan (see FilterStage.prepare)
GROUP_SOURCE_REJECTED = "group_source_rejected"

__all__ = ["PLAN_FILE", "FilterConfig", "FilterStage", "candidate_languages"]


class FilterStage(ShardedStage):
    """Filter a QA shard directory into a ``filter`` shard directory with the same shard names."""

    name = "filter"
    schema = QA_SCHEMA
    unit = "row"

    def __init__(self, src: str | Path, out: str | Path, config: FilterConfig | None = None, *, num_tasks: int = 1,
                 task_index: int = 0, overwrite: bool = False, progress: bool = True, workers: int = 1):
        if workers < 1:
            raise MtqaError(f"--workers must be at least 1, not {workers}")
        self.workers = workers
        self.config = config or FilterConfig()
        self.config.validate()
        super().__init__(out, num_tasks=num_tasks, task_index=task_index, overwrite=overwrite, progress=progress)
        self.src_dir = Path(src)
        self.timings: dict[str, float] = {}
        self.counts: dict[str, dict[str, int]] = {}
        self.started = time.perf_counter()

    # ------------------------------------------------------------------ setup
    def open(self) -> None:
        self.started = time.perf_counter()
        self.src = self._open_source()
        self.detector = self._detector(self.src)

    def _open_source(self) -> ShardStore:
        src = ShardStore.open(self.src_dir)
        if src.schema is not QA_SCHEMA:
            raise MtqaError(f"{self.src_dir}: a {src.stage!r} directory of {src.manifest['schema']!r} rows; "
                            "filter reads QA shards (collect or translate output)")
        if self.src_dir.resolve() == self.store.root.resolve():
            raise MtqaError(f"{self.src_dir}: the output directory must differ from the input")
        return src

    def _detector(self, src: ShardStore) -> LanguageDetector | None:
        if "langid" not in self.config.enabled:
            return None
        cands = candidate_languages(self.config.langid_langs, src.languages())
        detector = make_detector(self.config.detector, cands, self.config.fasttext_model, self.config.seed)
        missing = [lang for lang in src.languages() if not detector.supports(langid_code(lang))]
        if missing:
            raise LangIdError(f"detector {self.config.detector!r} cannot identify {', '.join(missing)} "
                              f"(rows of {self.src_dir}); choose another --detector or --skip langid")
        return detector

    def checks(self, detector: LanguageDetector | None, plan: DedupPlan | None) -> list[Check]:
        cfg = self.config
        build = {
            "empty": lambda: EmptyCheck(),
            "dedup": lambda: DuplicateCheck(plan),
            "copy": lambda: CopyCheck(cfg.max_copy),
            "length": lambda: LengthRatioCheck(cfg.min_length_ratio, cfg.max_length_ratio),
            "repetition": lambda: RepetitionCheck(cfg.max_repetition, cfg.max_loop),
            "script": lambda: ScriptCheck(cfg.min_script_ratio),
            "langid": lambda: LangIdCheck(detector, cfg.min_confidence, cfg.min_confidence_short,
                                          cfg.short_question_chars),
            "semantic": lambda: SemanticCheck(cfg.semantic, progress=self.progress and self.workers == 1),
        }
        return [build[name]() for name in cfg.enabled]

    def params(self) -> dict[str, Any]:
        checks = self.checks(self.detector, None)
        params = asdict(self.config)
        params["skip"] = sorted(self.config.skip)
        if self.config.semantic.model:
            params["semantic"] = self.config.semantic.params()
        else:  # off: the params (and so the resume fingerprint) of a run without it stay as they were
            del params["semantic"]
        params["checks"] = {c.name: c.params() for c in checks}
        return params

    def inputs(self) -> list[dict[str, Any]]:
        return [self.src.input_ref()]

    def shard_names(self) -> list[str]:
        return self.src.shard_names()

    # ------------------------------------------------------------------ the plan
    def prepare(self, todo: list[str]) -> None:
        self.plan = self.shared_plan(PLAN_LOCK, self._plan) if "dedup" in self.config.enabled else self._plan()
        self._checks = self.checks(self.detector, self.plan)

    def _plan(self) -> DedupPlan | None:
        """The dedup plan: the saved one, or a scan of the whole input (which also checks groups)."""
        path = self.store.root / PLAN_FILE
        dedup_on = "dedup" in self.config.enabled
        if dedup_on:
            plan = DedupPlan.load(path, self.config.dedup_config())
            if plan is not None:
                return plan
        started = time.perf_counter()
        plan = prepass.scan(self.src, self.config.dedup_config() if dedup_on else None, self.progress)
        self.timings["dedup_scan"] = time.perf_counter() - started
        if plan is not None:
            plan.save(path)
        return plan

    # ------------------------------------------------------------------ shards
    def rows_of(self, name: str) -> int:
        return sum(info["rows"] for info in self.src.manifest["shards"][name]["files"].values()
                   if not info.get("rejects"))

    def work(self, todo: list[str]) -> int:
        return sum(self.rows_of(name) for name in todo)

    def write_shards(self, todo: list[str], bar: tqdm) -> None:
        workers = min(self.workers, len(todo))
        if workers > 1:
            from mt_qa.filter.pool import run_pool

            for shard_counts, seconds in run_pool(self, todo, workers, bar):
                self._add(shard_counts, seconds)
        else:
            super().write_shards(todo, bar)

    def write_shard(self, name: str, writer: ShardWriter, bar: tqdm | None) -> None:
        self._add(*self.filter_one(self.src, name, self._checks, writer, bar))

    def filter_one(self, src: ShardStore, name: str, checks: list[Check], writer: ShardWriter,
                   bar: tqdm | None) -> tuple[dict[str, dict[str, int]], dict[str, float]]:
        """Filter one shard; returns its counts and the seconds each check spent on it."""
        before = {check.name: check.seconds for check in checks}
        shard_counts = self.filter_shard(src, name, checks, writer, bar)
        return shard_counts, {check.name: check.seconds - before[check.name] for check in checks}

    def _add(self, shard_counts: dict[str, dict[str, int]], seconds: dict[str, float]) -> None:
        _add_counts(self.counts, shard_counts)
        for name, secs in seconds.items():
            self.timings[name] = self.timings.get(name, 0.0) + secs

    def summary(self) -> dict[str, Any]:
        seconds = time.perf_counter() - self.started
        rows_in = sum(by.get("rows_in", 0) for by in self.counts.values())
        return {
            "counts": self.counts,
            "timings": {k: round(v, 3) for k, v in self.timings.items()},
            "rows_per_second": round(rows_in / seconds, 1) if seconds and rows_in else None,
        }

    def filter_shard(self, src: ShardStore, name: str, checks: list[Check], writer: ShardWriter,
                     bar: tqdm | None) -> dict[str, dict[str, int]]:
        """Filter one shard into ``writer``; returns {lang: {rows_in, rows_out, <reason>: n}}."""
        paths = src.files(shard=name)
        tables = [src.read(p) for p in paths]
        table = pa.concat_tables(tables) if tables else QA_SCHEMA.empty_table()
        # Where each row came from, for the reject records: (file, row in that file).
        where = [(rel, r) for rel, t in zip([p.relative_to(src.root).as_posix() for p in paths], tables, strict=True)
                 for r in range(t.num_rows)]
        rows = ShardRows.from_table(table)
        for check in checks:
            check.begin_shard()
            if isinstance(check, SemanticCheck):  # scores the whole shard in batches first
                check.prepare(rows, table["passage_sentences"].to_pylist())
        verdicts: list[Rejection | None] = [None] * len(rows)
        alive = list(range(len(rows)))
        for check in checks:  # each check sees only the rows every earlier one passed
            for i, verdict in check.run(rows, alive).items():
                verdicts[i] = verdict
            alive = [i for i in alive if verdicts[i] is None]
        if bar is not None:
            bar.update(len(rows))
        self._apply_group_policy(rows, verdicts)
        signals = {k: v for check in checks if isinstance(check, SemanticCheck) for k, v in check.signals().items()}
        table = with_signals(table, signals)  # kept and rejected rows carry their scores

        counts: dict[str, dict[str, int]] = {}
        keep = [v is None for v in verdicts]
        rejected = [i for i, v in enumerate(verdicts) if v is not None]
        payloads = table.take(rejected).to_pylist() if rejected else []
        for i, payload in zip(rejected, payloads, strict=True):
            verdict = verdicts[i]
            assert verdict is not None
            file, row = where[i]
            writer.reject(source=str(src.root), location=f"{file}: row {row}", record_id=rows.ids[i],
                          reason=verdict.reason, detail=verdict.detail, score=verdict.score, payload=payload)
            writer.count(f"rejected_by_lang.{rows.langs[i]}.{verdict.reason}")
            by = counts.setdefault(rows.langs[i], {})
            by[verdict.reason] = by.get(verdict.reason, 0) + 1
        for lang, k in zip(rows.langs, keep, strict=True):
            by = counts.setdefault(lang, {})
            by["rows_in"] = by.get("rows_in", 0) + 1
            by["rows_out"] = by.get("rows_out", 0) + int(k)
        for lang, by in sorted(counts.items()):
            writer.count(f"rows_in.{lang}", by["rows_in"])
            writer.count(f"rows_out.{lang}", by["rows_out"])
        orphans = Counter(lang for lang, origin, j in zip(rows.langs, rows.origins, rows.source_index, strict=True)
                          if origin != SOURCE and j is None)
        for lang, n in sorted(orphans.items()):
            writer.count(f"no_source_row.{lang}", n)
        for check in checks:
            if isinstance(check, LangIdCheck):
                for lang, n in sorted(check.short_questions.items()):
                    writer.count(f"short_questions.{lang}", n)
            if isinstance(check, SemanticCheck):
                for key, n in sorted(check.shard_counts().items()):
                    writer.count(key, n)
        writer.add(table.filter(pa.array(keep, type=pa.bool_())) if len(rows) else table)
        return counts

    @staticmethod
    def _apply_group_policy(rows: ShardRows, verdicts: list[Rejection | None]) -> None:
        """A rejected source row takes its whole group with it; a rejected translation only itself."""
        for i, j in enumerate(rows.source_index):
            if j is None or verdicts[i] is not None:
                continue
            src_verdict = verdicts[j]
            if src_verdict is not None and src_verdict.reason != GROUP_SOURCE_REJECTED:
                verdicts[i] = Rejection(GROUP_SOURCE_REJECTED, None,
                                        f"the group's source row {rows.ids[j]} was rejected: {src_verdict.reason}")


def _add_counts(total: dict[str, dict[str, int]], part: dict[str, dict[str, int]]) -> None:
    for lang, by_reason in part.items():
        into = total.setdefault(lang, {})
        for reason, n in by_reason.items():
            into[reason] = into.get(reason, 0) + n
