"""Per-target-language output vocabularies for CTranslate2 (``use_vmap``).

NLLB's output layer projects onto all 256,206 pieces at every decoding step, for every
hypothesis, although one target language uses a small share of them. CTranslate2 can restrict
the output layer of a batch to a candidate list read from ``vmap.txt`` in the model directory
(its format: one rule per line, ``source n-gram<TAB>target candidates``, space separated; the
rule with an empty n-gram lists the tokens that are always candidates; a batch's candidates are
the always-list, plus the targets of every rule whose n-gram occurs in a source of the batch,
plus the target prefix). The map is per model directory, not per language, so mtqa keeps one
token list per target language and gives each language its own *view* of the model: a
temporary directory of symlinks to the model files plus that language's ``vmap.txt``. Batches
are single-target-language, so one map applies to a whole batch.

A language's candidates are:

- its own list: the pieces a monolingual sample of the language tokenizes into
  (``mtqa model vocab-map --sample deu_Latn=FILE``) and/or the pieces the unrestricted model
  actually produced for the first N segments of a run (calibration);
- always: control tokens, the target tag, and every piece made only of digits, punctuation or
  symbols (numbers, dates and quotes are copied in any language);
- the source's own pieces: one identity rule per vocabulary piece (``piece<TAB>piece``, plus
  the variant with/without the word-start mark ``▁``), so names and numbers can be copied
  through even when the sample never had them.

A map changes what the model may output, so it is part of the translation cache key (the
sha256 of each language's list), and ``mtqa translate --check-vocab-map N`` measures, on
held-out segments, how many outputs stay token-identical to unrestricted decoding.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
import unicodedata
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mt_qa.errors import MtqaError
from mt_qa.io import atomic_write_json

FORMAT_VERSION = 1
META_FILE = "vocab_map.json"
CHECK_FILE = "check.json"  # the last --check-vocab-map result for this map
VMAP_FILE = "vmap.txt"  # the name CTranslate2 reads from a model directory
WORD_START = "\u2581"  # SentencePiece's "▁"
AGREEMENT_THRESHOLD = 0.99  # share of token-identical outputs a map must reach before it is trusted
_CONTROL = ("<s>", "<pad>", "</s>", "<unk>", "<mask>")


class VocabMapError(MtqaError):
    """A vocabulary map that cannot be built, read or used with this model."""


def _is_symbolic(piece: str) -> bool:
    """Digits, punctuation, symbols only (after the word-start mark): language-neutral pieces."""
    body = piece.replace(WORD_START, "")
    if not body:
        return True  # the bare word-start mark
    return all(unicodedata.category(ch)[0] in "NPSZ" for ch in body)


def _usable(token: str) -> bool:
    """CTranslate2's map format splits on spaces and tabs: tokens holding them cannot be listed."""
    return bool(token) and not any(ch in token for ch in " \t\r\n")


def always_tokens(vocabulary: Sequence[str]) -> frozenset[str]:
    """Candidates for every language: control tokens and digit/punctuation/symbol pieces."""
    return frozenset(tok for tok in vocabulary if _usable(tok) and (tok in _CONTROL or _is_symbolic(tok)))


def is_language_tag(token: str) -> bool:
    return len(token) == 8 and token[3] == "_" and token[:3].islower() and token[4].isupper()


@dataclass
class VocabMap:
    """Target FLORES code -> the pieces that language may output (besides the always-list and copies)."""

    model_sha256: str
    langs: dict[str, frozenset[str]] = field(default_factory=dict)
    sources: dict[str, list[str]] = field(default_factory=dict)  # how each list was made, for the record
    path: Path | None = None

    def digest(self, lang: str) -> str:
        """sha256 of a language's list: part of the translation cache key."""
        return hashlib.sha256("\n".join(sorted(self.langs[lang])).encode()).hexdigest()

    def candidates(self, lang: str, vocabulary: Sequence[str]) -> frozenset[str]:
        """The always-candidates of one language (before source copies)."""
        known = set(vocabulary)
        own = {tok for tok in self.langs.get(lang, ()) if tok in known}
        return frozenset(own | always_tokens(vocabulary) | ({lang} if lang in known else set()))

    def vmap_text(self, lang: str, vocabulary: Sequence[str]) -> str:
        """CTranslate2 ``vmap.txt`` for one target language: always-line plus source-copy rules."""
        fixed = self.candidates(lang, vocabulary)
        known = set(vocabulary)
        lines = ["\t" + " ".join(sorted(fixed))]
        for tok in vocabulary:
            if tok in fixed or not _usable(tok) or tok in _CONTROL or is_language_tag(tok):
                continue
            variant = tok[1:] if tok.startswith(WORD_START) else WORD_START + tok
            targets = [tok, variant] if variant in known and variant not in fixed else [tok]
            lines.append(f"{tok}\t{' '.join(targets)}")
        # Copies of pieces already in the fixed list need no rule; their variants may.
        for tok in sorted(fixed):
            variant = tok[1:] if tok.startswith(WORD_START) else WORD_START + tok
            if variant in known and variant not in fixed and _usable(variant) and not is_language_tag(variant):
                lines.append(f"{tok}\t{variant}")
        return "\n".join(lines) + "\n"

    def add(self, lang: str, tokens: Iterable[str], source: str) -> int:
        """Union ``tokens`` into a language's list; returns how many were new."""
        old = self.langs.get(lang, frozenset())
        new = frozenset(tok for tok in tokens if _usable(tok) and not is_language_tag(tok) and tok not in _CONTROL)
        self.langs[lang] = old | new
        self.sources.setdefault(lang, []).append(source)
        return len(new - old)

    # ------------------------------------------------------------------ files
    def save(self, directory: str | os.PathLike[str]) -> Path:
        """One token list per language plus ``vocab_map.json``; each file written atomically."""
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        langs: dict[str, Any] = {}
        for lang in sorted(self.langs):
            name = f"{lang}.txt"
            tmp = directory / f".{name}.tmp"
            tmp.write_text("\n".join(sorted(self.langs[lang])) + "\n", encoding="utf-8")
            os.replace(tmp, directory / name)
            langs[lang] = {"file": name, "tokens": len(self.langs[lang]), "sha256": self.digest(lang),
                           "sources": self.sources.get(lang, [])}
        atomic_write_json(directory / META_FILE, {"format": FORMAT_VERSION, "model_sha256": self.model_sha256,
                                                  "langs": langs})
        self.path = directory
        return directory

    @classmethod
    def load(cls, directory: str | os.PathLike[str], model_sha256: str | None = None) -> VocabMap:
        directory = Path(directory)
        meta_file = directory / META_FILE
        if not meta_file.is_file():
            raise VocabMapError(f"{directory}: not a vocabulary map (no {META_FILE}); build one with "
                                "`mtqa model vocab-map`")
        try:
            meta = json.loads(meta_file.read_text(encoding="utf-8"))
            if not isinstance(meta, dict) or not isinstance(meta.get("langs"), dict):
                raise ValueError("not a vocabulary-map description")
        except (OSError, ValueError) as exc:
            raise VocabMapError(f"{meta_file}: unreadable: {exc}") from exc
        if meta.get("format") != FORMAT_VERSION:
            raise VocabMapError(f"{meta_file}: format {meta.get('format')!r}, this mtqa reads {FORMAT_VERSION}")
        if model_sha256 and meta.get("model_sha256") != model_sha256:
            raise VocabMapError(f"{directory}: built for model {str(meta.get('model_sha256'))[:12]}, not for this "
                                f"model ({model_sha256[:12]}); build a map for it with `mtqa model vocab-map`")
        vmap = cls(model_sha256=str(meta.get("model_sha256")), path=directory)
        for lang, entry in meta["langs"].items():
            file = directory / str(entry.get("file", ""))
            try:
                tokens = [line for line in file.read_text(encoding="utf-8").splitlines() if line]
            except OSError as exc:
                raise VocabMapError(f"{file}: unreadable token list for {lang}: {exc}") from exc
            vmap.langs[lang] = frozenset(tokens)
            vmap.sources[lang] = list(entry.get("sources", []))
            if entry.get("sha256") and vmap.digest(lang) != entry["sha256"]:
                raise VocabMapError(f"{file}: content does not match the sha256 in {META_FILE} (edited by hand?); "
                                    "rebuild the map")
        return vmap

    def require(self, langs: Iterable[str]) -> None:
        missing = [lang for lang in langs if lang not in self.langs]
        if missing:
            where = f" {self.path}" if self.path else ""
            raise VocabMapError(f"vocabulary map{where} has no list for {', '.join(missing)}: add one with "
                                f"`mtqa model vocab-map --sample {missing[0]}=FILE` or use --vocab-map auto")


def sample_tokens(tokenizer: Any, lines: Iterable[str], min_count: int = 1) -> Counter[str]:
    """Pieces of a monolingual sample (``tokenizer.encode`` of SentencePiece pieces) with counts."""
    counts: Counter[str] = Counter()
    batch: list[str] = []
    for line in lines:
        line = " ".join(line.split())
        if line:
            batch.append(line)
        if len(batch) >= 1000:
            for pieces in tokenizer.encode(batch):
                counts.update(pieces)
            batch = []
    if batch:
        for pieces in tokenizer.encode(batch):
            counts.update(pieces)
    return Counter({tok: n for tok, n in counts.items() if n >= min_count})


def read_sample(path: str | os.PathLike[str]) -> list[str]:
    """A monolingual sample: UTF-8 text, one sentence (or paragraph) per line."""
    path = Path(path)
    try:
        return path.read_text(encoding="utf-8").splitlines()
    except UnicodeDecodeError as exc:
        raise VocabMapError(f"{path}: not UTF-8 text (byte {exc.start}): a sample is plain text, one sentence "
                            "per line") from exc
    except OSError as exc:
        raise VocabMapError(f"{path}: cannot read the sample: {exc}") from exc


class ModelView:
    """A model directory as CTranslate2 sees it with one language's ``vmap.txt``: symlinks + the map.

    The user's model directory is never written to; the view lives in a temporary directory
    removed by :meth:`close`.
    """

    def __init__(self, model_dir: Path, vmap_text: str, lang: str):
        self.root = Path(tempfile.mkdtemp(prefix=f"mtqa-vmap-{lang}-"))
        try:
            for entry in model_dir.iterdir():
                if entry.name == VMAP_FILE or not entry.is_file():
                    continue
                try:
                    (self.root / entry.name).symlink_to(entry.resolve())
                except OSError:  # no symlinks here (some filesystems): hard link, else copy
                    try:
                        os.link(entry, self.root / entry.name)
                    except OSError:
                        shutil.copy2(entry, self.root / entry.name)
            (self.root / VMAP_FILE).write_text(vmap_text, encoding="utf-8")
        except BaseException:
            self.close()
            raise

    def close(self) -> None:
        shutil.rmtree(self.root, ignore_errors=True)


@dataclass(frozen=True)
class Agreement:
    """Decoding with a map vs without, on the same segments."""

    lang: str
    segments: int
    identical: int
    mean_score_diff: float  # mapped - plain, per segment (CTranslate2's length-normalised log-prob)
    worst_score_diff: float

    @property
    def share(self) -> float:
        return self.identical / self.segments if self.segments else 1.0

    def passed(self, threshold: float = AGREEMENT_THRESHOLD) -> bool:
        return self.share >= threshold

    def as_dict(self) -> dict[str, Any]:
        return {"lang": self.lang, "segments": self.segments, "identical": self.identical,
                "identical_share": round(self.share, 4), "mean_score_diff": round(self.mean_score_diff, 5),
                "worst_score_diff": round(self.worst_score_diff, 5)}


def agreement(lang: str, plain: Sequence[tuple[Sequence[str], float]],
              mapped: Sequence[tuple[Sequence[str], float]]) -> Agreement:
    """Token-identical share and score difference of mapped vs plain (hypothesis, score) pairs."""
    if len(plain) != len(mapped):
        raise ValueError("plain and mapped outputs differ in number")
    same = sum(list(a) == list(b) for (a, _), (b, _) in zip(plain, mapped, strict=True))
    diffs = [sb - sa for (_, sa), (_, sb) in zip(plain, mapped, strict=True)]
    return Agreement(lang=lang, segments=len(plain), identical=same,
                     mean_score_diff=sum(diffs) / len(diffs) if diffs else 0.0,
                     worst_score_diff=min(diffs) if diffs else 0.0)


def write_check(directory: Path, results: Mapping[str, Agreement], threshold: float,
                extra: Mapping[str, Any] | None = None) -> Path:
    """Record the agreement measured for a map next to it (``check.json``)."""
    payload = {"threshold": threshold, "passed": all(a.passed(threshold) for a in results.values()),
               "langs": {lang: a.as_dict() for lang, a in results.items()}, **(extra or {})}
    atomic_write_json(directory / CHECK_FILE, payload)
    return directory / CHECK_FILE


def auto_map_dir(model: Any) -> Path:
    """Where ``--vocab-map auto`` keeps a model's calibrated map: the mtqa cache, by content hash."""
    from mt_qa.translate.models import cache_root

    return cache_root() / "vocab-maps" / model.sha256[:16]


# ---------------------------------------------------------------------- calibration and checks
def input_segments(input_dir: str | os.PathLike[str], tokenizer: Any, max_tokens: int, skip: int = 0,
                   limit: int | None = None) -> list[tuple[str, list[str]]]:
    """(source FLORES code, pieces) of the input's distinct English-side segments, in store order.

    Questions and passage sentences of ``origin=source`` rows, whitespace-collapsed as the
    stage does; segments longer than ``max_tokens`` (the stage would split them) are left out.
    The first ``skip`` are skipped: calibration takes the first N, a check the next ones.
    """
    from mt_qa.shards import ShardStore
    from mt_qa.translate.segment import normalize

    store = ShardStore.open(input_dir)
    seen: dict[tuple[str, str], None] = {}
    wanted = None if limit is None else skip + limit
    for name in store.shard_names():
        table = store.table(shard=name, columns=["origin", "lang_code", "question", "passage_sentences"])
        for row in table.to_pylist():
            if row["origin"] != "source":
                continue
            for text in [row["question"], *row["passage_sentences"]]:
                text = normalize(text)
                if text:
                    seen.setdefault((row["lang_code"], text), None)
        if wanted is not None and len(seen) >= wanted * 2:  # some may be too long: keep a margin
            break
    keys = list(seen)
    out: list[tuple[str, list[str]]] = []
    for start in range(0, len(keys), 1000):
        chunk = keys[start:start + 1000]
        for (lang, _text), pieces in zip(chunk, tokenizer.encode([t for _, t in chunk]), strict=True):
            if 0 < len(pieces) <= max_tokens:
                out.append((lang, pieces))
        if wanted is not None and len(out) >= wanted:
            break
    return out[skip:wanted]


def _content(hyp: Sequence[str], lang: str) -> list[str]:
    return list(hyp[1:]) if hyp and hyp[0] == lang else list(hyp)


def calibrate(translator: Any, segments: Sequence[tuple[str, list[str]]], lang: str, vmap: VocabMap,
              label: str) -> int:
    """Add the pieces the unrestricted model produces for ``segments`` into ``lang``'s list."""
    if not segments:
        return 0
    out = translator.decode([p for _, p in segments], [s for s, _ in segments], [lang] * len(segments),
                            use_map=False)
    return vmap.add(lang, (tok for hyp, _cap, _score in out for tok in _content(hyp, lang)), label)


def check(translator: Any, segments: Sequence[tuple[str, list[str]]], lang: str) -> tuple[Agreement, list[str]]:
    """Decode ``segments`` with and without ``lang``'s map; the agreement and the plain outputs' pieces."""
    pieces, srcs = [p for _, p in segments], [s for s, _ in segments]
    plain = translator.decode(pieces, srcs, [lang] * len(pieces), use_map=False, return_scores=True)
    mapped = translator.decode(pieces, srcs, [lang] * len(pieces), use_map=True, return_scores=True)
    result = agreement(lang, [(h, sc) for h, _c, sc in plain], [(h, sc) for h, _c, sc in mapped])
    return result, [tok for hyp, _c, _s in plain for tok in _content(hyp, lang)]


__all__ = ["AGREEMENT_THRESHOLD", "Agreement", "ModelView", "VocabMap", "VocabMapError", "agreement", "auto_map_dir",
           "always_tokens", "calibrate", "check", "input_segments", "read_sample", "sample_tokens", "write_check"]
