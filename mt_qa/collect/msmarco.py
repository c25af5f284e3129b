"""MS MARCO passage ranking: collection.tsv + queries.<split>.tsv + qrels.<split>.tsv."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from mt_qa.collect.base import BadRecord, Example, Item, Reader
from mt_qa.errors import InputError
from mt_qa.io import iter_lines


class MSMarcoReader(Reader):
    """One example per relevant (query, passage) pair in the qrels.

    The source path is the directory holding the three files; ``--split`` picks
    queries.<split>.tsv / qrels.<split>.tsv (default: dev, else train). Only the passages the
    qrels name are kept in memory while the 8.8M-passage collection streams past.
    """

    name = "msmarco"
    dataset = "msmarco"

    def default_split(self) -> str:
        return self.options.get("split") or ("dev" if self._file("queries", "dev").exists() else "train")

    def _file(self, kind: str, split: str) -> Path:
        return self.path / f"{kind}.{split}.tsv"

    def input_files(self) -> list[Path]:
        split = self.default_split()
        return [self.path / "collection.tsv", self._file("queries", split), self._file("qrels", split)]

    def read(self) -> Iterator[Item]:
        if not self.path.is_dir():
            raise InputError(
                str(self.path),
                "path",
                "MS MARCO needs the directory with collection.tsv, queries.<split>.tsv and qrels.<split>.tsv",
            )
        split = self.default_split()
        for path in self.input_files():
            if not path.is_file():
                raise InputError(str(path), "file", "not found (MS MARCO layout)")
        queries: dict[str, str] = {}
        bad: list[BadRecord] = []
        for lineno, text, error in iter_lines(self._file("queries", split)):
            location = f"{self._file('queries', split).name} line {lineno}"
            cols = text.rstrip("\r\n").split("\t") if text is not None else []
            if text is None or len(cols) != 2:
                bad.append(
                    BadRecord(
                        location,
                        "encoding" if text is None else "bad_columns",
                        error or f"expected qid<TAB>query, got {len(cols)} columns",
                        payload=text,
                    )
                )
                continue
            queries[cols[0]] = cols[1]
        pairs: list[tuple[str, str, str]] = []
        for lineno, text, error in iter_lines(self._file("qrels", split)):
            location = f"{self._file('qrels', split).name} line {lineno}"
            cols = text.split() if text is not None else []
            if text is None or len(cols) != 4:
                bad.append(BadRecord(location, "bad_columns", error or "expected 'qid 0 pid relevance'", payload=text))
                continue
            if cols[3] not in ("0",):
                pairs.append((cols[0], cols[2], location))
        yield from bad
        wanted = {pid for _, pid, _ in pairs}
        passages: dict[str, str] = {}
        for lineno, text, error in iter_lines(self.path / "collection.tsv"):
            if text is None:
                yield BadRecord(f"collection.tsv line {lineno}", "encoding", error)
                continue
            pid, _, passage = text.rstrip("\r\n").partition("\t")
            if pid in wanted:
                passages[pid] = passage
        for qid, pid, location in pairs:
            source_id = f"{qid}_{pid}"
            if qid not in queries:
                yield BadRecord(
                    location, "unknown_query_id", f"query {qid} is not in the queries file", source_id=source_id
                )
            elif pid not in passages:
                yield BadRecord(
                    location, "unknown_passage_id", f"passage {pid} is not in collection.tsv", source_id=source_id
                )
            else:
                yield Example(source_id, queries[qid], passages[pid], location)
