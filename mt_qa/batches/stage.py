"""The build-batches stage: QA shards -> batch shards (X-X, X-Y or hybrid), ready to train on.

The whole plan (every epoch's batches, as integers) is drawn first; it is cheap and
deterministic in the seed, so every job-array task draws the same plan and writes only the
shards it owns, and a resumed run rewrites only the shards without a done marker. Text is
copied from the memory-mapped inputs only when a shard is written.

A shard holds ``batches_per_shard`` whole batches of one epoch (a batch never spans two
shards, an epoch never shares a shard), so the trainer can read any batch from one file and
know its epoch from the shard's stats.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import click
import numpy as np
import pyarrow as pa
from tqdm import tqdm

from mt_qa.batches.groups import GroupIndex, load_groups, open_qa_store
from mt_qa.batches.negatives import BM25NegativeMiner, MinedNegatives, SentenceNegatives, any_sentence
from mt_qa.batches.positives import PositiveFormat
from mt_qa.batches.samplers import STRATEGIES, XX, XY, EpochPlan, make_sampler, plan_epoch
from mt_qa.clickutil import option
from mt_qa.errors import MtqaError
from mt_qa.io import sha256_file
from mt_qa.languages import UnknownLanguageError
from mt_qa.languages import resolve as resolve_language
from mt_qa.records import BATCH_SCHEMA
from mt_qa.shards import ShardWriter, shard_name
from mt_qa.stage import ShardedStage, TaskSlot

STAGE = "build-batches"


@dataclass
class _ShardPlan:
    name: str
    epoch: int
    first_batch_id: int
    plan: EpochPlan
    start: int  # index of the shard's first batch in its epoch plan
    stop: int


@dataclass
class BatchesConfig:
    """How batches are drawn and what a pair holds (defaults argued for in docs/training.md)."""

    strategy: str = field(default="hybrid", metadata=option(
        "xx: one language per batch; xy: query and passage languages differ in every pair; hybrid: each batch is "
        "xx with probability --alpha, else xy.", type=click.Choice(STRATEGIES)))
    alpha: float = field(default=0.5, metadata=option("Probability of an X-X batch (hybrid)."))
    batch_size: int = field(default=64, metadata=option(
        "Pairs per batch (the in-batch negatives are the other pairs' passages)."))
    epochs: int = field(default=1, metadata=option("Epochs to write, each reshuffled."))
    seed: int = field(default=0, metadata=option("Seed of the sampling (same seed, same batches)."))
    langs: list[str] | None = None
    lang_weights: dict[str, float] | None = None
    dataset_weights: dict[str, float] | None = None
    batches_per_shard: int = field(default=100, metadata=option("Batches per output shard."))
    distinct_passages: bool = True
    miner: BM25NegativeMiner | SentenceNegatives | None = None
    positive: PositiveFormat | None = None
    dev_fraction: float = field(default=0.0, metadata=option(
        "Fraction of passages (with all their questions) held out for --dev-out."))
    exclude_groups: str | Path | list[str | Path] | None = None

    def validate(self) -> None:
        """Raise MtqaError naming the option for any value that cannot work."""
        if self.strategy not in STRATEGIES:
            raise MtqaError(f"--strategy must be one of {STRATEGIES}, not {self.strategy!r}")
        if not 0.0 <= self.alpha <= 1.0:
            raise MtqaError(f"--alpha must be in [0, 1], not {self.alpha}")
        if self.batch_size < 2:
            raise MtqaError("--batch-size must be at least 2 (in-batch negatives need company)")
        if self.epochs < 1:
            raise MtqaError("--epochs must be at least 1")
        if self.batches_per_shard < 1:
            raise MtqaError("--batches-per-shard must be at least 1")
        if not 0.0 <= self.dev_fraction < 1.0:
            raise MtqaError(f"--dev-fraction must be in [0, 1), not {self.dev_fraction}")
        for name, weights in (("--lang-weights", self.lang_weights), ("--dataset-weights", self.dataset_weights)):
            bad = {k: v for k, v in (weights or {}).items() if not v >= 0}
            if bad:
                raise MtqaError(f"{name}: weights must be >= 0, got {bad}")
        positive = self.positive or PositiveFormat()
        if isinstance(self.miner, SentenceNegatives) and not positive.by_sentence:
            raise MtqaError("--negatives sentence needs sentence positives (--positive sentence or "
                            "sentence-in-context): a sentence is no negative for a whole-paragraph positive")


class BuildBatchesStage:
    """Sample X-X / X-Y / hybrid batches from QA stores and write them as batch shards.

    It plans once and writes two shard stores through the stage driver (``_BatchStore``): the
    training batches and, with ``dev_out``, the held-out dev batches. ``sharded`` is False:
    ``mtqa run`` runs it as one task (it accepts array options, for a plan too big for one).
    """

    name = STAGE
    sharded = False

    def __init__(
        self,
        inputs: list[str | Path],
        out: str | Path,
        config: BatchesConfig | None = None,
        *,
        dev_out: str | Path | None = None,
        num_tasks: int = 1,
        task_index: int = 0,
        overwrite: bool = False,
        progress: bool = True,
        **options: Any,
    ):
        if not inputs:
            raise MtqaError("build-batches needs at least one input QA store")
        config = config or BatchesConfig(**options)
        config.validate()
        if dev_out is not None and Path(dev_out).resolve() == Path(out).resolve():
            raise MtqaError("--dev-out must differ from --out")
        if (dev_out is None) != (config.dev_fraction == 0.0):
            raise MtqaError("--dev-out and --dev-fraction go together: give both or neither")
        self.config = config
        self.slot = TaskSlot(num_tasks, task_index)
        self.inputs = [str(p) for p in inputs]
        self.out = Path(out)
        self.dev_out = Path(dev_out) if dev_out is not None else None
        self.strategy = config.strategy
        self.alpha = config.alpha
        self.batch_size = config.batch_size
        self.epochs = config.epochs
        self.seed = config.seed
        self.langs = sorted(config.langs) if config.langs else None
        self.lang_weights = dict(sorted((config.lang_weights or {}).items()))
        self.dataset_weights = dict(sorted((config.dataset_weights or {}).items()))
        self.batches_per_shard = config.batches_per_shard
        self.distinct_passages = config.distinct_passages
        self.miner = config.miner
        self.positive = config.positive or PositiveFormat()
        self.dev_fraction = config.dev_fraction
        exclude = config.exclude_groups
        files = [exclude] if isinstance(exclude, (str, Path)) else list(exclude or [])
        self.exclude_groups_files = [str(f) for f in files]
        # One file is recorded as a string, as before; several (e.g. a dev and a selection benchmark) as a list.
        self.exclude_groups_file = self.exclude_groups_files[0] if len(files) == 1 else (
            self.exclude_groups_files or None)
        self.overwrite = overwrite
        self.progress = progress

    def params(self, role: str = "train") -> dict[str, Any]:
        return {
            "role": role,
            "strategy": self.strategy,
            "alpha": self.alpha if self.strategy == "hybrid" else None,
            "batch_size": self.batch_size,
            "epochs": self.epochs if role == "train" else 1,
            "seed": self.seed,
            "langs": self.langs,
            "lang_weights": self.lang_weights or None,
            "dataset_weights": self.dataset_weights or None,
            "batches_per_shard": self.batches_per_shard,
            "distinct_passages": self.distinct_passages,
            "negatives": self.miner.params() if self.miner else None,
            **self.positive.params(),
            "dev_fraction": self.dev_fraction,
            "exclude_groups": self.exclude_groups_file,
        }

    # ------------------------------------------------------------------ plan
    def _weights(self, index: GroupIndex) -> tuple[np.ndarray, np.ndarray | None]:
        unknown = sorted(set(self.lang_weights) - set(index.langs))
        if unknown:
            raise MtqaError(f"--lang-weights names languages not in the inputs: {unknown} (inputs have {index.langs})")
        unknown = sorted(set(self.dataset_weights) - set(index.datasets))
        if unknown:
            raise MtqaError(f"--dataset-weights names datasets not in the inputs: {unknown} "
                            f"(inputs have {index.datasets})")
        if self.lang_weights:
            lang_w = np.array([self.lang_weights.get(lang, 0.0) for lang in index.langs], dtype=float)
        else:
            lang_w = np.ones(len(index.langs))
        if not (lang_w > 0).any():
            raise MtqaError("--lang-weights gives every language weight 0")
        dataset_w = None
        if self.dataset_weights:
            dataset_w = np.array([self.dataset_weights.get(d, 0.0) for d in index.datasets], dtype=float)
            if not (dataset_w > 0).any():
                raise MtqaError("--dataset-weights gives every dataset weight 0")
        return lang_w, dataset_w

    def plan(self, index: GroupIndex, groups: np.ndarray, epochs: int, seed: int) -> list[EpochPlan]:
        lang_w, dataset_w = self._weights(index)
        sampler = make_sampler(self.strategy, self.batch_size, lang_w, self.alpha)
        return [plan_epoch(index, groups, sampler, e, seed, lang_w, dataset_w, self.distinct_passages)
                for e in range(epochs)]

    def _check_plan(self, index: GroupIndex, groups: np.ndarray, plans: list[EpochPlan], what: str) -> None:
        if any(p.batches for p in plans):
            return
        usable = index.has_lang[groups]
        per_lang = {lang: int(usable[:, i].sum()) for i, lang in enumerate(index.langs)}
        multi = int((usable.sum(axis=1) >= 2).sum())
        raise MtqaError(
            f"{what}: not a single batch of {self.batch_size} can be filled with the {self.strategy} strategy "
            f"({len(groups)} groups; per language {per_lang}; {multi} with two or more languages; groups of one "
            "passage count once per batch). Use a smaller --batch-size or more data"
        )

    def _check_langs(self, stores: list[Any]) -> None:
        """--langs must name languages the inputs hold: an unknown or absent one is the user's typo,
        not a dataset with "no usable rows"."""
        if not self.langs:
            return
        present = sorted({lang for store in stores for lang in store.languages()})
        for lang in self.langs:
            if lang not in present:
                try:
                    code = resolve_language(lang).code
                except UnknownLanguageError as exc:
                    raise MtqaError(f"--langs: {exc}") from None
                hint = f" (write it as {code!r})" if code in present else ""
                raise MtqaError(f"--langs: no rows in language {lang!r} in the inputs{hint}; they hold "
                                f"{', '.join(present) or 'no rows'}")

    # ------------------------------------------------------------------ run
    def run(self) -> dict[str, Any]:
        started = time.perf_counter()
        stores = [open_qa_store(p) for p in self.inputs]
        self._check_langs(stores)
        excluded = set().union(*(read_group_ids(f) for f in self.exclude_groups_files)) \
            if self.exclude_groups_files else None
        index = load_groups(stores, self.langs, excluded,
                            require_sentence=self.positive.by_sentence and self.positive.missing == "reject")
        train_groups, dev_groups = index.split_by_passage(self.dev_fraction)
        plans = self.plan(index, train_groups, self.epochs, self.seed)
        self._check_plan(index, train_groups, plans, "training data")
        refs = [s.input_ref() for s in stores]
        for f in self.exclude_groups_files:
            refs.append({"path": f, "sha256": sha256_file(f)})
        result = self._store(self.out, "train", refs, index, train_groups, plans, with_input_rejects=True).run()
        result["seconds_plan_and_write"] = round(time.perf_counter() - started, 2)
        if self.dev_out is not None:
            # The dev plan uses its own seed stream (epoch 0 of seed+1) so it never mirrors training.
            dev_plans = self.plan(index, dev_groups, 1, self.seed + 1)
            self._check_plan(index, dev_groups, dev_plans, f"dev split ({self.dev_fraction:.1%} of passages)")
            dev = self._store(self.dev_out, "dev", refs, index, dev_groups, dev_plans, with_input_rejects=False)
            result["dev"] = dev.run()
            del result["dev"]["seconds"]
        result["seconds"] = round(time.perf_counter() - started, 2)
        return result

    def _store(self, out: Path, role: str, refs: list[dict[str, Any]], index: GroupIndex, groups: np.ndarray,
               plans: list[EpochPlan], with_input_rejects: bool) -> _BatchStore:
        return _BatchStore(self, out, role, refs, index, groups, plans, with_input_rejects)

    def _layout(self, plans: list[EpochPlan]) -> list[_ShardPlan]:
        shards: list[_ShardPlan] = []
        batch_id = 0
        for plan in plans:
            for start in range(0, len(plan.batches), self.batches_per_shard):
                stop = min(start + self.batches_per_shard, len(plan.batches))
                shards.append(_ShardPlan(shard_name(len(shards)), plan.epoch, batch_id, plan, start, stop))
                batch_id += stop - start
        return shards

    def _passage_rows(self, index: GroupIndex, shard: _ShardPlan) -> np.ndarray:
        batches = shard.plan.batches[shard.start: shard.stop]
        return np.concatenate([index.row_of[b.groups, b.passage_lang] for b in batches])

    def _summary(self, index: GroupIndex, groups: np.ndarray, plans: list[EpochPlan],
                 with_input_rejects: bool) -> dict[str, Any]:
        """Store-wide numbers (fractions, per-epoch leftovers), carried by the first shard's stats."""
        types = [b.batch_type for p in plans for b in p.batches]
        usable = index.has_lang[groups]
        n = max(len(types), 1)
        summary: dict[str, Any] = {
            "groups": len(groups),
            "groups_by_lang": {lang: int(usable[:, i].sum()) for i, lang in enumerate(index.langs)},
            "groups_multilingual": int((usable.sum(axis=1) >= 2).sum()),
            "batches": len(types),
            "batches_by_epoch": {str(p.epoch): len(p.batches) for p in plans},
            "unused_groups_by_epoch": {str(p.epoch): p.unused_groups for p in plans},
            "batch_type_fraction": {XX: round(types.count(XX) / n, 6), XY: round(types.count(XY) / n, 6)},
        }
        if with_input_rejects:
            rejected_in_table = sum(r["reason"] == "answer_sentence_unknown" for r in index.rejects)
            summary["input_rows"] = (index.table.num_rows + len(index.rejects) - rejected_in_table
                                     + index.excluded_rows + index.excluded_heldout_rows)
            summary["input_rows_excluded_by_langs"] = index.excluded_rows
            summary["input_rows_excluded_heldout"] = index.excluded_heldout_rows
            summary["input_rows_rejected"] = len(index.rejects)
            summary["answer_sentence"] = index.sentence_stats
        return summary

    def _write_shard(self, writer: ShardWriter, index: GroupIndex, shard: _ShardPlan,
                     mined: MinedNegatives | SentenceNegatives | None) -> None:
        batches = shard.plan.batches[shard.start: shard.stop]
        size = self.batch_size
        groups = np.concatenate([b.groups for b in batches])
        qlang = np.concatenate([b.query_lang for b in batches])
        plang = np.concatenate([b.passage_lang for b in batches])
        qrows = index.row_of[groups, qlang]
        prows = index.row_of[groups, plang]
        types = np.repeat(np.array([b.batch_type for b in batches]), size)
        langs = np.array(index.langs)
        datasets = np.array(index.datasets)
        table = index.table
        fmt = self.positive
        psent = index.row_sentence[prows] if fmt.by_sentence else np.full(len(prows), -1)
        positive = fmt.render(table, prows, psent)
        if mined is not None:
            if isinstance(mined, SentenceNegatives):
                neg, nsent = mined.pick(index, prows, psent, shard.epoch, self.seed, fmt.by_sentence)
                writer.count("negatives.from_paragraph", int(((neg >= 0) & (neg == prows)).sum()))
                writer.count("negatives.from_article", int(((neg >= 0) & (neg != prows)).sum()))
            else:
                neg = mined.pick(prows, shard.epoch, self.seed)
                nsent = (any_sentence(table, neg, shard.epoch, self.seed) if fmt.by_sentence
                         else np.full(len(neg), -1))
            neg_idx = pa.array(neg, mask=neg < 0)
            texts = fmt.render(table, np.where(neg < 0, 0, neg), nsent).to_pylist()
            negative = pa.array([t if n >= 0 else None for t, n in zip(texts, neg.tolist(), strict=True)],
                                pa.string())
            negative_id = table["id"].take(neg_idx)
        else:
            neg = np.full(len(prows), -1)
            negative = pa.nulls(len(prows), pa.string())
            negative_id = pa.nulls(len(prows), pa.string())
        out = pa.Table.from_arrays(
            [
                pa.array(np.repeat(np.arange(shard.first_batch_id, shard.first_batch_id + len(batches)), size),
                         pa.int64()),
                pa.array(types.tolist(), pa.string()),
                pa.array(np.tile(np.arange(size), len(batches)), pa.int32()),
                pa.array(langs[qlang].tolist(), pa.string()),
                pa.array(langs[plang].tolist(), pa.string()),
                table["question"].take(pa.array(qrows)),
                positive,
                negative,
                table["id"].take(pa.array(qrows)),
                table["id"].take(pa.array(prows)),
                negative_id,
                index.group_names.take(pa.array(groups)),
                pa.array(datasets[index.group_dataset[groups]].tolist(), pa.string()),
            ],
            schema=BATCH_SCHEMA,
        )
        writer.add(out)
        writer.count("rows", len(groups))
        writer.count(f"epoch.{shard.epoch}", len(batches))
        for b in batches:
            writer.count(f"batches.{b.batch_type}")
            writer.count(f"datasets.{index.datasets[b.dataset]}")
            if b.batch_type == XX:
                writer.count(f"xx_batch_lang.{index.langs[int(b.query_lang[0])]}")
        for key, values in (("query_lang", qlang), ("passage_lang", plang)):
            for lang, count in zip(*np.unique(values, return_counts=True), strict=True):
                writer.count(f"{key}.{index.langs[lang]}", int(count))
        pairs = qlang * len(langs) + plang
        for code, count in zip(*np.unique(pairs, return_counts=True), strict=True):
            q, p = divmod(int(code), len(langs))
            writer.count(f"pairs.{langs[q]}-{langs[p]}", int(count))
        if fmt.by_sentence:
            writer.count(f"positives.{fmt.mode}", int((psent >= 0).sum()))
            writer.count("positives.fallback_passage", int((psent < 0).sum()))
        if mined is not None:
            writer.count("negatives.with", int((neg >= 0).sum()))
            writer.count("negatives.without", int((neg < 0).sum()))


class _BatchStore(ShardedStage):
    """One batch store of a build-batches run (train or dev), written through the stage driver."""

    name = STAGE
    schema = BATCH_SCHEMA
    unit = "batch"

    def __init__(self, parent: BuildBatchesStage, out: Path, role: str, refs: list[dict[str, Any]],
                 index: GroupIndex, groups: np.ndarray, plans: list[EpochPlan], with_input_rejects: bool):
        super().__init__(out, overwrite=parent.overwrite, progress=parent.progress, slot=parent.slot)
        self.parent, self.role, self.refs = parent, role, refs
        self.index, self.groups, self.plans = index, groups, plans
        self.with_input_rejects = with_input_rejects
        self.layout = {s.name: s for s in parent._layout(plans)}
        self.mined: MinedNegatives | SentenceNegatives | None = None
        self.store_summary = parent._summary(index, groups, plans, with_input_rejects)

    def params(self) -> dict[str, Any]:
        return self.parent.params(self.role)

    def inputs(self) -> list[dict[str, Any]]:
        return self.refs

    def shard_names(self) -> list[str]:
        return list(self.layout)

    def bar_label(self) -> str:
        return f"{STAGE} {self.store.root.name}"

    def prepare(self, todo: list[str]) -> None:
        miner, index = self.parent.miner, self.index
        if isinstance(miner, SentenceNegatives):
            miner.prepare(index, self.groups)
            self.mined = miner
        elif miner is not None:
            rows = np.concatenate([self.parent._passage_rows(index, self.layout[name]) for name in todo])
            self.mined = miner.mine(index, rows, self.groups)

    def work(self, todo: list[str]) -> int:
        return sum(self.layout[name].stop - self.layout[name].start for name in todo)

    def write_shard(self, name: str, writer: ShardWriter, bar: tqdm) -> None:
        shard = self.layout[name]
        self.parent._write_shard(writer, self.index, shard, self.mined)
        if name == next(iter(self.layout)):
            writer.stats["summary"] = self.store_summary
            if self.with_input_rejects:
                for rej in self.index.rejects:
                    writer.reject(**rej)
        bar.update(shard.stop - shard.start)

    def summary(self) -> dict[str, Any]:
        miner = self.parent.miner
        return {"summary": self.store_summary,
                "negatives": dict(miner.stats) if (miner and self.mined is not None) else None}


def read_group_ids(path: str | Path) -> set[str]:
    """group_ids to leave out, one per line (e.g. build-lareqa's heldout_group_ids.txt)."""
    try:
        lines = Path(path).read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise MtqaError(f"--exclude-groups {path}: cannot read it ({exc})") from exc
    ids = {line.strip() for line in lines if line.strip() and not line.startswith("#")}
    if not ids:
        raise MtqaError(f"--exclude-groups {path}: the file lists no group ids")
    return ids
