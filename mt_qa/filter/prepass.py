"""The filter stage's pre-pass: one scan of the whole input, in shard order, before any shard is
written. It checks that each group's rows lie in one shard (the group policy needs them
together) and, with dedup on, decides which rows are duplicates (the first copy is kept)."""

from __future__ import annotations

import xxhash
from tqdm import tqdm

from mt_qa.errors import InputError
from mt_qa.filter.dedup import DedupConfig, Deduplicator, DedupPlan, Duplicate
from mt_qa.shards import ShardStore


def scan(src: ShardStore, dedup_config: DedupConfig | None, progress: bool) -> DedupPlan | None:
    """The groups check over every row; the dedup plan when ``dedup_config`` is given."""
    dedup = Deduplicator(dedup_config) if dedup_config is not None else None
    columns = ["id", "group_id", "lang", "question", "passage"] if dedup is not None else ["group_id"]
    group_shard: dict[int, str] = {}
    drops: dict[str, Duplicate] = {}
    bar = tqdm(total=src.manifest["totals"]["rows"], desc="filter: dedup scan" if dedup else "filter: groups",
               unit="row", disable=not progress, dynamic_ncols=True)
    for name in src.shard_names():
        if dedup is not None:
            dedup.new_shard()
        for file in src.files(shard=name):
            table = src.read(file, columns)
            check_groups(src, table["group_id"].to_pylist(), name, group_shard)
            if dedup is not None:
                cols = [table[c].to_pylist() for c in ("id", "lang", "question", "passage")]
                for row_id, lang, question, passage in zip(*cols, strict=True):
                    dup = dedup.add(row_id, lang, question, passage)
                    if dup is not None:
                        drops[row_id] = dup
            bar.update(table.num_rows)
    bar.close()
    return DedupPlan(dedup_config, drops) if dedup_config is not None else None


def check_groups(src: ShardStore, group_ids: list[str], shard: str, seen: dict[int, str]) -> None:
    """Refuse a group whose rows lie in two shards: its group policy could not be applied."""
    for gid in group_ids:
        key = xxhash.xxh3_64_intdigest(gid.encode())
        first = seen.setdefault(key, shard)
        if first != shard:
            raise InputError(str(src.root), f"group {gid}", f"rows in shards {first} and {shard}",
                             "filter needs each group's rows in one shard, as collect and translate write them")
