"""Shard directories: the on-disk contract between stages.

Layout of one stage's output (see docs/architecture.md)::

    <dir>/_run.json                        stage, params and inputs this directory is for
    <dir>/data/<lang>/part-00000.arrow     Arrow IPC *stream* files (memory-mappable, and what
                                           ``datasets.Dataset.from_file`` reads)
    <dir>/rejects/part-00000.arrow         dropped rows, each with a reason
    <dir>/_done/part-00000.json            completion marker: files, rows, sha256, stats
    <dir>/manifest.json                    written by ``finalize`` once every shard is done

Every file is written under a temporary name and renamed into place; the marker is written
last, so a shard without a marker is incomplete and is redone on the next run. The manifest
holds no timestamps or timings, so the same input and params give a byte-identical directory
whether it was produced by one process, a resumed run, or N job-array tasks.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import tempfile
import time
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyarrow as pa

from mt_qa import __version__
from mt_qa.errors import ShardStoreError
from mt_qa.io import atomic_write_json, file_mode, sha256_file
from mt_qa.outdir import FileLock, OutputHold, claim_output, remove_entries
from mt_qa.records import REJECT_SCHEMA, SCHEMAS, RecordError, schema_name, to_table, validate_table

MANIFEST_VERSION = 1
MANIFEST = "manifest.json"
RUN_FILE = "_run.json"
DONE_DIR = "_done"
DATA_DIR = "data"
REJECTS_DIR = "rejects"
# Rows per Arrow record batch: big enough for fast scans, small enough for streaming readers.
RECORD_BATCH_ROWS = 8192
STALE_TEMP_SECONDS = 600
# Entries of a shard directory that mtqa writes; --overwrite deletes these and nothing else.
# (``_work``: translate's per-shard checkpoints; ``_dedup_plan.json``: filter's saved plan;
# ``_collect_index.*``: collect's input index, see mt_qa/collect/index.py.)
OWN_ENTRIES = (RUN_FILE, MANIFEST, DONE_DIR, DATA_DIR, REJECTS_DIR, "_work", "_dedup_plan.json",
               "_collect_index.arrow", "_collect_index.json")


def shard_name(index: int) -> str:
    return f"part-{index:05d}"


def write_arrow(path: Path, table: pa.Table) -> tuple[int, str]:
    """Atomically write ``table`` as an Arrow IPC stream; return (rows, sha256)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        os.fchmod(fd, file_mode())
    finally:
        os.close(fd)
    try:
        with pa.OSFile(tmp, "wb") as sink, pa.ipc.new_stream(sink, table.schema) as writer:
            writer.write_table(table, max_chunksize=RECORD_BATCH_ROWS)
        digest = sha256_file(tmp)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return table.num_rows, digest


def read_arrow(path: str | os.PathLike[str], columns: list[str] | None = None) -> pa.Table:
    """Memory-map an Arrow IPC stream file: no copy of the column data is made."""
    with pa.memory_map(str(path), "r") as source:
        table = pa.ipc.open_stream(source).read_all()
    return table.select(columns) if columns is not None else table


def merge_stats(total: dict[str, Any], part: Mapping[str, Any]) -> dict[str, Any]:
    """Add nested counters of ``part`` into ``total`` (numbers add, dicts recurse)."""
    for key, value in part.items():
        if isinstance(value, Mapping):
            merge_stats(total.setdefault(key, {}), value)
        elif isinstance(value, (int, float)) and not isinstance(value, bool):
            total[key] = total.get(key, 0) + value
        else:
            total[key] = value
    return total


def fingerprint(stage: str, params: Mapping[str, Any], inputs: list[Mapping[str, Any]]) -> str:
    blob = json.dumps({"stage": stage, "params": params, "inputs": inputs}, sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()


@dataclass
class ShardWriter:
    """Collects one shard's rows, rejects and stats; ``commit`` writes them atomically."""

    store: ShardStore
    name: str
    tables: list[pa.Table] = field(default_factory=list)
    rows: list[Mapping[str, Any]] = field(default_factory=list)
    rejects: list[dict[str, Any]] = field(default_factory=list)
    stats: dict[str, Any] = field(default_factory=dict)

    def add(self, rows: list[Mapping[str, Any]] | pa.Table) -> None:
        """Add rows (dicts or a table) of the store's schema; split by ``lang`` on commit."""
        if isinstance(rows, pa.Table):
            self._flush_rows()
            self.tables.append(to_table(rows, self.store.schema))
        else:
            self.rows.extend(rows)

    def _flush_rows(self) -> None:
        # Dict rows are converted in one go: per-row Arrow conversion would dominate run time.
        if self.rows:
            self.tables.append(to_table(self.rows, self.store.schema))
            self.rows = []

    def reject(
        self,
        *,
        source: str,
        location: str,
        reason: str,
        detail: str = "",
        record_id: str | None = None,
        score: float | None = None,
        payload: Any = None,
    ) -> None:
        """Record a dropped row with why; counted under stats['rejected'][reason]."""
        self.rejects.append(
            {
                "stage": self.store.stage,
                "source": source,
                "location": location,
                "record_id": record_id,
                "reason": reason,
                "detail": detail,
                "score": score,
                "payload": payload
                if isinstance(payload, str)
                else json.dumps(payload, ensure_ascii=False, default=str),
            }
        )
        rejected = self.stats.setdefault("rejected", {})
        rejected[reason] = rejected.get(reason, 0) + 1

    def count(self, key: str, n: int = 1) -> None:
        """Increment a (dotted, nested) counter in this shard's stats."""
        node = self.stats
        *parents, leaf = key.split(".")
        for part in parents:
            node = node.setdefault(part, {})
        node[leaf] = node.get(leaf, 0) + n

    def commit(self) -> dict[str, Any]:
        # Two tasks that own the same shard (a requeued array task beside its orphan, a rerun
        # beside a run) write it one after the other, never into each other's temp files.
        with FileLock(self.store.root / DONE_DIR / f".{self.name}.lock"):
            return self._commit()

    def _commit(self) -> dict[str, Any]:
        store = self.store
        store._remove_temp_files(self.name)
        self._flush_rows()
        table = pa.concat_tables(self.tables) if self.tables else store.schema.empty_table()
        problems = validate_table(table, store.schema)
        if problems:
            raise RecordError(f"{store.root}: shard {self.name}: " + "; ".join(problems))
        files: dict[str, dict[str, Any]] = {}
        if "lang" in table.column_names and table.num_rows:
            langs = sorted(set(table["lang"].to_pylist()))
            for lang in langs:
                sub = table.filter(pa.compute.equal(table["lang"], lang))
                files[f"{DATA_DIR}/{lang}/{self.name}.arrow"] = {"lang": lang}
                rows, digest = write_arrow(store.root / DATA_DIR / lang / f"{self.name}.arrow", sub)
                files[f"{DATA_DIR}/{lang}/{self.name}.arrow"].update(rows=rows, sha256=digest)
        elif table.num_rows:
            rel = f"{DATA_DIR}/{self.name}.arrow"
            rows, digest = write_arrow(store.root / rel, table)
            files[rel] = {"lang": None, "rows": rows, "sha256": digest}
        if self.rejects:
            rel = f"{REJECTS_DIR}/{self.name}.arrow"
            rows, digest = write_arrow(store.root / rel, to_table(self.rejects, REJECT_SCHEMA))
            files[rel] = {"lang": None, "rows": rows, "sha256": digest, "rejects": True}
        store._remove_stale_files(self.name, keep=set(files))
        marker = {"shard": self.name, "files": files, "stats": self.stats}
        atomic_write_json(store.root / DONE_DIR / f"{self.name}.json", marker)
        return marker


class ShardStore:
    """One stage's output directory: write shards (with resume), finalize, read, validate."""

    def __init__(self, root: str | os.PathLike[str], stage: str, schema: pa.Schema):
        self.root = Path(root)
        self.stage = stage
        self.schema = schema

    # ----------------------------------------------------------------- opening
    @classmethod
    def open(cls, root: str | os.PathLike[str], check: bool = True) -> ShardStore:
        """Open a finalized directory for reading (its manifest says stage and schema).

        The manifest's shape, its totals and the files on disk are checked against each other
        (a directory listing, no data read): a missing, unlisted or extra shard is an error.
        ``check=False`` (``mtqa validate``) leaves that to :meth:`validate`, which lists it all.
        Every data file is then checked as it is read (:meth:`read`).
        """
        root = Path(root)
        path = root / MANIFEST
        if not root.is_dir():
            why = "it is a file" if root.exists() else "no such directory"
            raise ShardStoreError(f"{root}: not a finished mtqa shard directory: {why}")
        if not path.is_file():
            hint = " (the stage did not finish: rerun it to resume)" if (root / RUN_FILE).is_file() else ""
            raise ShardStoreError(f"{root}: not a finished mtqa shard directory: no {MANIFEST}{hint}")
        try:
            manifest = json.loads(path.read_text())
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise ShardStoreError(f"{path}: unreadable manifest: {exc}") from exc
        shape = manifest_shape_problems(manifest)
        if shape:
            raise ShardStoreError(f"{path}: not a valid mtqa manifest: {shape[0]}")
        schema = SCHEMAS.get(manifest.get("schema", ""))
        if schema is None:
            raise ShardStoreError(f"{path}: unknown schema {manifest.get('schema')!r}")
        store = cls(root, manifest.get("stage", "?"), schema)
        store._manifest = manifest
        if check:
            problems = store.consistency_problems()
            if problems:
                more = f" (and {len(problems) - 1} more; mtqa validate lists them)" if len(problems) > 1 else ""
                raise ShardStoreError(f"{root}: {problems[0]}{more}")
        return store

    def begin(self, params: Mapping[str, Any], inputs: list[Mapping[str, Any]], overwrite: bool = False) -> None:
        """Claim the directory for this stage+params+inputs, or resume an earlier identical run.

        A directory made with other params or inputs is refused (unless ``overwrite``), so a
        resumed run can never mix shards of two different configurations; a directory mtqa did
        not make is refused always. The claim is shared by the job-array tasks of one
        configuration and held until :meth:`finish` (or the process ends): see ``mt_qa/outdir.py``.
        """
        run_file = self.root / RUN_FILE
        fp = fingerprint(self.stage, params, list(inputs))

        def same_run() -> bool:
            try:
                return json.loads(run_file.read_text()).get("fingerprint") == fp
            except (OSError, ValueError, AttributeError):
                return False

        def write_claim() -> None:
            atomic_write_json(run_file, {"stage": self.stage, "schema": schema_name(self.schema),
                                         "params": dict(params), "inputs": list(inputs), "fingerprint": fp})

        self.release()
        self._hold: OutputHold | None = claim_output(
            self.root, markers=(RUN_FILE, MANIFEST), same_run=same_run, overwrite=overwrite,
            # With no shard finished there is nothing to lose: the new run simply takes over.
            may_replace=lambda: not self.done_shards(), clear=self.clear, write_claim=write_claim,
            shared=True, what="shard directory", error=ShardStoreError, claim_files=(RUN_FILE,))

    def release(self) -> None:
        """Give up this process's claim (the kernel does it too when the process ends)."""
        hold = getattr(self, "_hold", None)
        if hold is not None:
            hold.release()
            self._hold = None

    def clear(self) -> None:
        """Delete what a shard store writes (and nothing else the directory may hold)."""
        if self.root.is_dir():
            remove_entries(self.root, OWN_ENTRIES)

    # ----------------------------------------------------------------- writing
    def is_done(self, name: str) -> bool:
        return (self.root / DONE_DIR / f"{name}.json").is_file()

    def done_shards(self) -> dict[str, dict[str, Any]]:
        done = {}
        for path in sorted((self.root / DONE_DIR).glob("*.json")):
            done[path.stem] = json.loads(path.read_text())
        return done

    def writer(self, name: str) -> ShardWriter:
        return ShardWriter(self, name)

    def _remove_temp_files(self, name: str) -> None:
        """Drop temp files a killed attempt at this shard left; only this shard's owner writes them."""
        for pattern in (f"{DATA_DIR}/*/.{name}.arrow.*.tmp", f"{DATA_DIR}/.{name}.arrow.*.tmp",
                        f"{REJECTS_DIR}/.{name}.arrow.*.tmp", f"{DONE_DIR}/.{name}.json.*.tmp"):  # fmt: skip
            for path in self.root.glob(pattern):
                path.unlink(missing_ok=True)

    def _remove_stale_files(self, name: str, keep: set[str]) -> None:
        """Drop files an interrupted earlier attempt at this shard left behind."""
        for path in list(self.root.glob(f"{DATA_DIR}/**/{name}.arrow")) + list(
            self.root.glob(f"{REJECTS_DIR}/{name}.arrow")
        ):
            if path.relative_to(self.root).as_posix() not in keep:
                path.unlink()

    def finish(self, names: list[str], this_task: int, done_now: int | None = None) -> dict[str, Any]:
        """finalize() and the result fields every sharded stage reports (``print_summary`` reads them)."""
        manifest = self.finalize(expected=names)
        self.release()
        result: dict[str, Any] = {"out": str(self.root), "shards": len(names), "shards_this_task": this_task}
        if done_now is not None:
            result["shards_done_now"] = done_now
        return result | {"finished": manifest is not None, "manifest": manifest}

    def finalize(self, expected: Iterable[str] | None = None) -> dict[str, Any] | None:
        """Write manifest.json from the markers; None if some expected shard is not done yet.

        Job-array tasks each call this; only the one that sees every shard done writes it
        (a later task rewriting it writes the same bytes).
        """
        run = json.loads((self.root / RUN_FILE).read_text())
        done = self.done_shards()
        if expected is not None:
            missing = [name for name in expected if name not in done]
            if missing:
                return None
        totals: dict[str, Any] = {"rows": 0, "rows_by_lang": {}, "rejects": 0, "files": 0}
        stats: dict[str, Any] = {}
        for marker in done.values():
            merge_stats(stats, marker["stats"])
            for info in marker["files"].values():
                totals["files"] += 1
                if info.get("rejects"):
                    totals["rejects"] += info["rows"]
                else:
                    totals["rows"] += info["rows"]
                    if info.get("lang"):
                        by_lang = totals["rows_by_lang"]
                        by_lang[info["lang"]] = by_lang.get(info["lang"], 0) + info["rows"]
        manifest = {
            "manifest_version": MANIFEST_VERSION,
            "tool": {"name": "mtqa", "version": __version__},
            "stage": self.stage,
            "schema": schema_name(self.schema),
            "params": run["params"],
            "inputs": run["inputs"],
            "shards": {name: {"files": m["files"], "stats": m["stats"]} for name, m in done.items()},
            "totals": totals,
            "stats": stats,
        }
        atomic_write_json(self.root / MANIFEST, manifest)
        # A finalize killed mid-write leaves a temp manifest; sibling tasks may be writing theirs
        # right now, so only ones old enough to be certainly abandoned are removed.
        for path in self.root.glob(f".{MANIFEST}.*.tmp"):
            with contextlib.suppress(FileNotFoundError):
                if time.time() - path.stat().st_mtime > STALE_TEMP_SECONDS:
                    path.unlink()
        self._manifest = manifest
        return manifest

    # ----------------------------------------------------------------- reading
    @property
    def manifest(self) -> dict[str, Any]:
        if not hasattr(self, "_manifest"):
            self._manifest = ShardStore.open(self.root).manifest
        return self._manifest

    def shard_names(self) -> list[str]:
        return sorted(self.manifest["shards"])

    def languages(self) -> list[str]:
        return sorted(self.manifest["totals"]["rows_by_lang"])

    def files(self, lang: str | None = None, shard: str | None = None, rejects: bool = False) -> list[Path]:
        """Data (or reject) files in shard order, optionally of one language or one shard."""
        out = []
        for name in self.shard_names():
            if shard is not None and name != shard:
                continue
            for rel, info in sorted(self.manifest["shards"][name]["files"].items()):
                if bool(info.get("rejects")) != rejects:
                    continue
                if lang is not None and info.get("lang") != lang:
                    continue
                out.append(self.root / rel)
        return out

    def read(self, path: str | os.PathLike[str], columns: list[str] | None = None) -> pa.Table:
        """Read one of this store's files, checked against the manifest (sha256 and rows) first.

        The checksum is one streaming read of the file (the page cache then serves the memory
        map); each file is checked once per store object. A corrupted or edited file is an
        error here, before any of its rows reaches a later stage.
        """
        path = Path(path)
        try:
            rel = path.relative_to(self.root).as_posix()
        except ValueError:
            raise ShardStoreError(f"{path} is not a file of {self.root}") from None
        info = self._file_info().get(rel)
        if info is None:
            raise ShardStoreError(f"{self.root}: {rel} is not listed in the manifest")
        checked = self.__dict__.setdefault("_checked", set())
        if rel not in checked:
            try:
                digest = sha256_file(path)
            except OSError as exc:
                raise ShardStoreError(f"{path}: unreadable: {exc.strerror or exc}") from exc
            if digest != info["sha256"]:
                raise ShardStoreError(f"{path}: sha256 {digest[:12]}… does not match the manifest's "
                                      f"{info['sha256'][:12]}… (the file was changed after it was written; "
                                      "rerun the stage that made it)")
        try:
            table = read_arrow(path)
        except (pa.ArrowException, OSError) as exc:
            raise ShardStoreError(f"{path}: unreadable Arrow stream: {exc}") from exc
        if table.num_rows != info["rows"]:
            raise ShardStoreError(f"{path}: {table.num_rows} rows, the manifest says {info['rows']}")
        schema = REJECT_SCHEMA if info.get("rejects") else self.schema
        missing = [c for c in (columns or schema.names) if c not in table.column_names]
        if missing:
            raise ShardStoreError(f"{path}: no column(s) {', '.join(missing)} (schema {schema_name(self.schema)!r})")
        checked.add(rel)
        return table.select(columns) if columns is not None else table

    def _file_info(self) -> dict[str, dict[str, Any]]:
        if "_files" not in self.__dict__:
            self._files = {rel: info for shard in self.manifest["shards"].values()
                           for rel, info in shard["files"].items()}
        return self._files

    def table(self, lang: str | None = None, shard: str | None = None, columns: list[str] | None = None) -> pa.Table:
        """All rows (of a language / shard), memory-mapped, in a stable order."""
        schema = self.schema if columns is None else pa.schema([self.schema.field(c) for c in columns])
        tables = [self.read(path, columns) for path in self.files(lang=lang, shard=shard)]
        return pa.concat_tables(tables) if tables else schema.empty_table()

    def iter_tables(self, lang: str | None = None) -> Iterator[tuple[str, pa.Table]]:
        """(shard, table) for each shard: bounded memory for stages that stream."""
        for name in self.shard_names():
            paths = self.files(lang=lang, shard=name)
            if paths:
                yield name, pa.concat_tables([self.read(p) for p in paths])

    def rejects(self) -> pa.Table:
        tables = [self.read(path) for path in self.files(rejects=True)]
        return pa.concat_tables(tables) if tables else REJECT_SCHEMA.empty_table()

    def input_ref(self) -> dict[str, Any]:
        """How a later stage records this directory among its inputs."""
        return {"path": str(self.root), "stage": self.stage, "manifest_sha256": sha256_file(self.root / MANIFEST)}

    # ----------------------------------------------------------------- checking
    def consistency_problems(self) -> list[str]:
        """The manifest against itself and the directory listing: no data is read."""
        problems: list[str] = []
        manifest = self.manifest
        listed: set[str] = set()
        rows = rejects = 0
        for name, shard in sorted(manifest["shards"].items()):
            for rel, info in sorted(shard["files"].items()):
                listed.add(rel)
                if not _inside_store(rel):
                    problems.append(f"manifest lists {rel!r}, a path outside data/ and rejects/")
                elif not (self.root / rel).is_file():
                    problems.append(f"{rel}: missing (shard {name} of the manifest)")
                if info.get("rejects"):
                    rejects += info["rows"]
                else:
                    rows += info["rows"]
        on_disk = {p.relative_to(self.root).as_posix() for d in (DATA_DIR, REJECTS_DIR)
                   for p in (self.root / d).rglob("*.arrow")}
        for rel in sorted(on_disk - listed):
            problems.append(f"{rel}: on disk but not listed in the manifest (an edited manifest, or files of "
                            "another run)")
        done = {p.stem for p in (self.root / DONE_DIR).glob("*.json")}
        for name in sorted(done - set(manifest["shards"])):
            problems.append(f"shard {name} is finished ({DONE_DIR}/{name}.json) but not in the manifest")
        totals = manifest["totals"]
        if totals.get("rows") != rows or totals.get("rejects") != rejects:
            problems.append(f"manifest totals say {totals.get('rows')} rows and {totals.get('rejects')} rejects, "
                            f"its shards list {rows} and {rejects}")
        return problems

    def validate(self, check_records: bool = True) -> list[str]:
        """Re-check every file against the manifest (rows, sha256) and the schema."""
        # Missing and unlisted files are found by the loops below too; the rest is added here.
        problems = [p for p in self.consistency_problems() if "not listed in the manifest" not in p
                    and "missing (shard" not in p]
        manifest = self.manifest
        listed: set[str] = set()
        check_ids = check_records and schema_name(self.schema) == "qa"
        seen_ids: set[str] = set()
        duplicate_ids: list[str] = []
        for name, shard in sorted(manifest["shards"].items()):
            for rel, info in sorted(shard["files"].items()):
                listed.add(rel)
                path = self.root / rel
                if not _inside_store(rel):
                    continue
                if not path.is_file():
                    problems.append(f"{rel}: missing (shard {name})")
                    continue
                digest = sha256_file(path)
                if digest != info["sha256"]:
                    problems.append(f"{rel}: sha256 {digest[:12]}… does not match manifest {info['sha256'][:12]}…")
                    continue
                try:
                    table = read_arrow(path)
                except (pa.ArrowInvalid, OSError) as exc:
                    problems.append(f"{rel}: unreadable Arrow stream: {exc}")
                    continue
                if table.num_rows != info["rows"]:
                    problems.append(f"{rel}: {table.num_rows} rows, manifest says {info['rows']}")
                elif check_ids and not info.get("rejects"):
                    # Ids of intact files only, collected from the table already read.
                    for value in table["id"].to_pylist():
                        if value in seen_ids:
                            duplicate_ids.append(value)
                        seen_ids.add(value)
                schema = REJECT_SCHEMA if info.get("rejects") else self.schema
                if check_records:
                    problems += [f"{rel}: {p}" for p in validate_table(table, schema)]
                if info.get("lang") and "lang" in table.column_names:
                    other = set(table["lang"].to_pylist()) - {info["lang"]}
                    if other:
                        problems.append(f"{rel}: rows of languages {sorted(other)} in a {info['lang']} file")
        for path in sorted(self.root.glob("**/*.arrow")):
            rel = path.relative_to(self.root).as_posix()
            if rel not in listed:
                problems.append(f"{rel}: not listed in the manifest")
        if duplicate_ids:
            problems.append(f"duplicate ids across shards: {', '.join(duplicate_ids[:3])}")
        return problems


def _inside_store(rel: str) -> bool:
    parts = Path(rel).parts
    return (not Path(rel).is_absolute() and len(parts) >= 2 and parts[0] in (DATA_DIR, REJECTS_DIR)
            and ".." not in parts and rel.endswith(".arrow"))


def manifest_shape_problems(manifest: Any) -> list[str]:
    """What a manifest lacks that readers index into (so an edited one is an error, not a KeyError)."""
    if not isinstance(manifest, dict):
        return ["not a JSON object"]
    problems = [f"no {key!r}" for key in ("stage", "schema", "shards", "totals") if key not in manifest]
    if problems:
        return problems
    if not isinstance(manifest["shards"], dict):
        return ["'shards' is not an object"]
    totals = manifest["totals"]
    if not isinstance(totals, dict) or not isinstance(totals.get("rows_by_lang", {}), dict):
        return ["'totals' is not an object with 'rows_by_lang'"]
    for name, shard in manifest["shards"].items():
        if not isinstance(shard, dict) or not isinstance(shard.get("files"), dict):
            return [f"shard {name!r} has no 'files' object"]
        if not isinstance(shard.get("stats", {}), dict):
            return [f"shard {name!r}: 'stats' is not an object"]
        for rel, info in shard["files"].items():
            if (not isinstance(info, dict) or not isinstance(info.get("rows"), int)
                    or not isinstance(info.get("sha256"), str)):
                return [f"shard {name!r}: file {rel!r} needs integer 'rows' and a 'sha256'"]
    return []


def task_shards(names: list[str], num_tasks: int = 1, task_index: int = 0) -> list[str]:
    """The shards one job-array task owns (the rule itself is ``mt_qa.stage.TaskSlot``)."""
    from mt_qa.stage import TaskSlot

    return TaskSlot(num_tasks, task_index).pick(names)
