"""The filter stage: language ID, translation-quality checks and dedup over QA shards.

Two passes. A cheap pre-pass reads the question and passage of every input shard, in shard
order, and decides which rows are duplicates (the first copy is kept); the plan is saved in the
output directory and reused by every task and resumed run. The writing pass then filters each
shard this task owns on its own, so output shard N holds what is left of input shard N.
"""

from __future__ import annotations

import multiprocessing
import time
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import pyarrow as pa
import xxhash
from tqdm import tqdm

from mt_qa.errors import InputError, MtqaError
from mt_qa.filter.checks import (
    CHECK_ORDER,
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
from mt_qa.filter.dedup import DedupConfig, Deduplicator, DedupPlan, Duplicate
from mt_qa.filter.langid import (
    DEFAULT_CANDIDATES,
    DETECTOR_CHOICES,
    DETECTORS,
    LangIdError,
    LanguageDetector,
    langid_code,
    make_detector,
    normalize_code,
)
from mt_qa.filter.semantic import SemanticCheck, SemanticConfig, with_signals
from mt_qa.records import QA_SCHEMA
from mt_qa.shards import ShardStore, task_shards

PLAN_FILE = "_dedup_plan.json"
PLAN_LOCK = "_dedup_plan.lock"  # held by the task building the plan (see FilterStage._shared_plan)
GROUP_SOURCE_REJECTED = "group_source_rejected"


@dataclass
class FilterConfig:
    """Every option of the stage; defaults are argued for in docs/filter.md."""

    detector: str = "combined"
    langid_langs: str = "default"  # 'default' (mtqa languages + input's), 'all', or 'en,es,...'
    fasttext_model: str | None = None
    min_confidence: float = 0.5
    min_confidence_short: float = 0.25
    short_question_chars: int = 40
    min_script_ratio: float = 0.3
    min_length_ratio: float = 0.5
    max_length_ratio: float = 2.0
    max_repetition: float = 0.3
    max_loop: int = 3
    max_copy: float = 0.8
    dedup: bool = True
    near_dup: bool = True
    near_dup_threshold: float = 0.9
    skip: tuple[str, ...] = field(default_factory=tuple)
    seed: int = 0
    semantic: SemanticConfig = field(default_factory=SemanticConfig)

    def __post_init__(self) -> None:
        if isinstance(self.semantic, dict):  # from asdict(), in worker processes
            self.semantic = SemanticConfig(**self.semantic)

    def validate(self) -> None:
        """Raise MtqaError naming the option for any value that cannot work."""
        def unit(name: str, value: float, low_open: bool = False) -> None:
            if not (0.0 < value <= 1.0 if low_open else 0.0 <= value <= 1.0):
                raise MtqaError(f"--{name.replace('_', '-')} must be in {'(0' if low_open else '[0'}, 1], not {value}")

        for name in ("min_confidence", "min_confidence_short", "min_script_ratio", "max_repetition", "max_copy"):
            unit(name, getattr(self, name))
        unit("near_dup_threshold", self.near_dup_threshold, low_open=True)
        if not 0 < self.min_length_ratio < self.max_length_ratio:
            raise MtqaError(f"--min-length-ratio ({self.min_length_ratio}) must be > 0 and below "
                            f"--max-length-ratio ({self.max_length_ratio})")
        if self.max_loop < 1:
            raise MtqaError(f"--max-loop must be at least 1, not {self.max_loop}")
        if self.short_question_chars < 0:
            raise MtqaError(f"--short-question-chars must be >= 0, not {self.short_question_chars}")
        unknown = [s for s in self.skip if s not in CHECK_ORDER]
        if unknown:
            raise MtqaError(f"--skip {', '.join(unknown)}: unknown check; choose from {', '.join(CHECK_ORDER)}")
        members = ["fasttext"] if self.detector == "combined" else self.detector.split("+")
        if not all(name.strip() in DETECTORS for name in members):
            raise MtqaError(f"--detector {self.detector!r}: choose from {', '.join(DETECTOR_CHOICES)} "
                            "(or join names with '+', e.g. fasttext+langdetect)")
        self.semantic.validate()

    @property
    def enabled(self) -> list[str]:
        skipped = set(self.skip)
        if not self.dedup:
            skipped.add("dedup")
        if not self.semantic.model:
            skipped.add("semantic")
        return [name for name in CHECK_ORDER if name not in skipped]

    def dedup_config(self) -> DedupConfig:
        return DedupConfig(exact=True, near=self.near_dup, threshold=self.near_dup_threshold)


def candidate_languages(spec: str, input_langs: list[str]) -> list[str] | None:
    """The languages a detector may answer (None: all it knows); the input's are always in."""
    spec = spec.strip().lower()
    if spec == "all":
        return None
    own = {langid_code(lang) for lang in input_langs}
    if spec == "default":
        return sorted(own | set(DEFAULT_CANDIDATES))
    listed = {normalize_code(part) for part in spec.split(",") if part.strip()}
    if not listed:
        raise MtqaError(f"--langid-langs {spec!r}: give 'default', 'all' or comma-separated language codes")
    return sorted(own | listed)


class FilterStage:
    """Filter a QA shard directory into a ``filter`` shard directory with the same shard names."""

    def __init__(
        self,
        src: str | Path,
        out: str | Path,
        config: FilterConfig | None = None,
        num_tasks: int = 1,
        task_index: int = 0,
        overwrite: bool = False,
        progress: bool = True,
        workers: int = 1,
    ):
        if workers < 1:
            raise MtqaError(f"--workers must be at least 1, not {workers}")
        self.workers = workers
        self.config = config or FilterConfig()
        self.config.validate()
        task_shards([], num_tasks, task_index)  # validates the task index range
        self.src_dir = Path(src)
        self.store = ShardStore(out, "filter", QA_SCHEMA)
        self.num_tasks = num_tasks
        self.task_index = task_index
        self.overwrite = overwrite
        self.progress = progress
        self.timings: dict[str, float] = {}

    # ------------------------------------------------------------------ setup
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

    def _checks(self, detector: LanguageDetector | None, plan: DedupPlan | None) -> list[Check]:
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

    def params(self, checks: list[Check]) -> dict[str, Any]:
        params = asdict(self.config)
        params["skip"] = sorted(self.config.skip)
        if self.config.semantic.model:
            params["semantic"] = self.config.semantic.params()
        else:  # off: the params (and so the resume fingerprint) of a run without it stay as they were
            del params["semantic"]
        params["checks"] = {c.name: c.params() for c in checks}
        return params

    # ------------------------------------------------------------------ pre-pass
    def _plan(self, src: ShardStore) -> DedupPlan | None:
        """The dedup plan: the saved one, or a scan of the whole input (which also checks groups)."""
        path = self.store.root / PLAN_FILE
        dedup_on = "dedup" in self.config.enabled
        if dedup_on:
            plan = DedupPlan.load(path, self.config.dedup_config())
            if plan is not None:
                return plan
        started = time.perf_counter()
        dedup = Deduplicator(self.config.dedup_config()) if dedup_on else None
        columns = ["id", "group_id", "lang", "question", "passage"] if dedup_on else ["group_id"]
        group_shard: dict[int, str] = {}
        drops: dict[str, Duplicate] = {}
        bar = tqdm(total=src.manifest["totals"]["rows"], desc="filter: dedup scan" if dedup_on else "filter: groups",
                   unit="row", disable=not self.progress, dynamic_ncols=True)
        for name in src.shard_names():
            if dedup is not None:
                dedup.new_shard()
            for file in src.files(shard=name):
                table = src.read(file, columns)
                self._check_groups(table["group_id"].to_pylist(), name, group_shard)
                if dedup is not None:
                    cols = [table[c].to_pylist() for c in ("id", "lang", "question", "passage")]
                    for row_id, lang, question, passage in zip(*cols, strict=True):
                        dup = dedup.add(row_id, lang, question, passage)
                        if dup is not None:
                            drops[row_id] = dup
                bar.update(table.num_rows)
        bar.close()
        self.timings["dedup_scan"] = time.perf_counter() - started
        if dedup is None:
            return None
        plan = DedupPlan(self.config.dedup_config(), drops)
        plan.save(path)
        return plan

    def _shared_plan(self, src: ShardStore) -> DedupPlan | None:
        """The dedup plan, built once for all tasks: the first task to get here scans while holding
        a lock in the output directory; tasks arriving meanwhile wait and then load its plan
        instead of each rescanning every row (a floor that grew with the number of tasks)."""
        if "dedup" not in self.config.enabled:
            return self._plan(src)
        import fcntl

        with open(self.store.root / PLAN_LOCK, "a") as fh:
            fcntl.flock(fh, fcntl.LOCK_EX)  # released when the file closes, or when the holder dies
            return self._plan(src)

    def _check_groups(self, group_ids: list[str], shard: str, seen: dict[int, str]) -> None:
        """Refuse a group whose rows lie in two shards: its group policy could not be applied."""
        for gid in group_ids:
            key = xxhash.xxh3_64_intdigest(gid.encode())
            first = seen.setdefault(key, shard)
            if first != shard:
                raise InputError(str(self.src_dir), f"group {gid}", f"rows in shards {first} and {shard}",
                                 "filter needs each group's rows in one shard, as collect and translate write them")

    # ------------------------------------------------------------------ run
    def run(self) -> dict[str, Any]:
        started = time.perf_counter()
        src = self._open_source()
        detector = self._detector(src)
        checks = self._checks(detector, None)
        self.store.begin(self.params(checks), [src.input_ref()], overwrite=self.overwrite)
        names = src.shard_names()
        mine = task_shards(names, self.num_tasks, self.task_index)
        todo = [name for name in mine if not self.store.is_done(name)]
        counts: dict[str, dict[str, int]] = {}
        if todo:
            plan = self._shared_plan(src)
            rows_of = {name: sum(info["rows"] for info in src.manifest["shards"][name]["files"].values()
                                 if not info.get("rejects")) for name in todo}
            bar = tqdm(total=sum(rows_of.values()), desc="filter", unit="row", disable=not self.progress,
                       dynamic_ncols=True)
            workers = min(self.workers, len(todo))
            if workers > 1:
                results = self._run_pool(todo, workers, bar, rows_of)
            else:
                checks = self._checks(detector, plan)
                results = (self._filter_one(src, name, checks, bar) for name in todo)
            for shard_counts, seconds in results:
                _add_counts(counts, shard_counts)
                for name, secs in seconds.items():
                    self.timings[name] = self.timings.get(name, 0.0) + secs
            bar.close()
        result = self.store.finish(names, len(mine), len(todo))
        seconds = time.perf_counter() - started
        rows_in = sum(by.get("rows_in", 0) for by in counts.values())
        return result | {
            "counts": counts,
            "timings": {k: round(v, 3) for k, v in self.timings.items()},
            "rows_per_second": round(rows_in / seconds, 1) if seconds and rows_in else None,
            "seconds": round(seconds, 2),
        }

    def _filter_one(self, src: ShardStore, name: str, checks: list[Check],
                    bar: tqdm | None) -> tuple[dict[str, dict[str, int]], dict[str, float]]:
        """Filter one shard; returns its counts and the seconds each check spent on it."""
        before = {check.name: check.seconds for check in checks}
        shard_counts = self._filter_shard(src, name, checks, bar)
        return shard_counts, {check.name: check.seconds - before[check.name] for check in checks}

    def _run_pool(self, todo: list[str], workers: int, bar: tqdm,
                  rows_of: dict[str, int]) -> Iterator[tuple[dict[str, dict[str, int]], dict[str, float]]]:
        """Shards in parallel processes: each output shard is written by exactly one of them,
        atomically, so the result is the same as in one process."""
        context = multiprocessing.get_context("spawn")  # no fork: pyarrow and tqdm hold threads
        init = (str(self.src_dir), str(self.store.root), asdict(self.config))
        with ProcessPoolExecutor(workers, mp_context=context, initializer=_init_worker, initargs=init) as pool:
            futures = {pool.submit(_worker_filter, name): name for name in todo}
            for future in as_completed(futures):
                bar.update(rows_of[futures[future]])
                yield future.result()

    def _filter_shard(self, src: ShardStore, name: str, checks: list[Check],
                      bar: tqdm | None) -> dict[str, dict[str, int]]:
        """Filter one shard and commit it; returns {lang: {rows_in, rows_out, <reason>: n}}."""
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

        writer = self.store.writer(name)
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
        writer.commit()
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


# One worker process's stage, source store and checks, built once by the pool's initializer.
_WORKER: tuple[FilterStage, ShardStore, list[Check]] | None = None


def _init_worker(src_dir: str, out_dir: str, config: dict[str, Any]) -> None:
    global _WORKER
    from mt_qa.run.task import set_parent_death_signal

    set_parent_death_signal()  # a killed filter task takes its pool with it
    config["skip"] = tuple(config["skip"])
    stage = FilterStage(src_dir, out_dir, FilterConfig(**config), progress=False)
    src = stage._open_source()
    plan = DedupPlan.load(stage.store.root / PLAN_FILE, stage.config.dedup_config()) \
        if "dedup" in stage.config.enabled else None
    if "dedup" in stage.config.enabled and plan is None:
        raise MtqaError(f"{out_dir}: the dedup plan vanished while workers started")
    _WORKER = (stage, src, stage._checks(stage._detector(src), plan))


def _worker_filter(name: str) -> tuple[dict[str, dict[str, int]], dict[str, float]]:
    assert _WORKER is not None, "worker not initialised"
    stage, src, checks = _WORKER
    return stage._filter_one(src, name, checks, None)
