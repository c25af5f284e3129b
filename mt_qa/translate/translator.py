"""Running NLLB through CTranslate2: tokenization, token-based batching, guards and signals.

The translator takes segments (already split to NLLB's input limit), tokenizes them with the
model's SentencePiece model into NLLB's source layout ``[src_lang] tokens </s>``, forces the
target language as the first decoder token, and batches by tokens: segments are sorted by
length and a batch is closed when ``longest x count`` would pass ``max_batch_tokens``, so
padding stays small and memory bounded. Batches are submitted asynchronously, so with
``inter_threads`` > 1 several run at once.

Guards against NLLB's known failure modes (loops, hallucinated continuations, language tags
inside the output): ``max_decoding_length = min(512, ceil(ratio x source tokens) + slack)``,
with source lengths rounded up to a multiple of 8 so that every segment of a batch has the same
bound (CTranslate2 takes one per batch) and a result does not depend on its batch mates;
``no_repeat_ngram_size`` and ``repetition_penalty``; language/control tokens suppressed;
``<unk>`` disabled; and no input truncation (CTranslate2 would cut at 1024 tokens
silently; our segments are already within the limit). Each segment reports its token counts,
a repetition score and whether it hit the length cap; the stage turns them into the row
signals ``mt_length_ratio`` and ``mt_repetition`` that the filter reads.
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from typing import Any

from mt_qa.errors import MtqaError
from mt_qa.translate.cache import Translation
from mt_qa.translate.models import SPM_FILE, ModelError, ModelInfo, read_vocabulary
from mt_qa.translate.vocab_map import ModelView, VocabMap

DEVICES = ("auto", "cpu", "cuda")
HARD_MAX_DECODING = 512  # NLLB's training length limit: longer outputs are loops, never translations
REPETITION_NGRAM = 4
LENGTH_BUCKET = 8  # source lengths sharing one decoding cap (see DecodeOptions.max_decoding_length)
_FLORES_TOKEN = re.compile(r"^[a-z]{3}_[A-Z][a-z]{3}$")
_CONTROL_TOKENS = ("<s>", "<pad>", "</s>", "<unk>", "<mask>")
_MADEUP = re.compile(r"^madeupword\d+$")


@dataclass(frozen=True)
class DecodeOptions:
    """Every setting that changes the output (part of the cache key and of the run's params)."""

    beam_size: int = 2
    max_input_tokens: int = 256
    max_length_ratio: float = 2.0
    max_length_slack: int = 16
    repetition_penalty: float = 1.0
    no_repeat_ngram_size: int = 6

    def check(self) -> None:
        if self.beam_size < 1:
            raise MtqaError("--beam-size must be at least 1")
        if not 8 <= self.max_input_tokens <= HARD_MAX_DECODING:
            raise MtqaError(f"--max-input-tokens must be in 8..{HARD_MAX_DECODING} (NLLB's limit is 512)")
        if self.max_length_ratio <= 0 or self.max_length_slack < 0:
            raise MtqaError("--max-length-ratio must be > 0 and --max-length-slack >= 0")
        if self.repetition_penalty <= 0:
            raise MtqaError("--repetition-penalty must be > 0 (1.0 disables it)")
        if self.no_repeat_ngram_size < 0:
            raise MtqaError("--no-repeat-ngram-size must be >= 0 (0 disables it)")

    def max_decoding_length(self, source_tokens: int) -> int:
        """Generated-token cap for a source of ``source_tokens`` tokens.

        The length is first rounded up to a multiple of ``LENGTH_BUCKET``: segments of similar
        length then share one cap, batches never mix caps, and a segment's output does not
        depend on which other segments happened to share its batch (or were already cached).
        """
        bucket = -(-source_tokens // LENGTH_BUCKET) * LENGTH_BUCKET
        return min(HARD_MAX_DECODING, math.ceil(self.max_length_ratio * bucket) + self.max_length_slack)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def cpu_count() -> int:
    """The thread budget: $MTQA_THREADS (set by the cluster launchers), else the usable CPUs."""
    from mt_qa.threads import thread_budget

    return thread_budget()


def resolve_device(device: str) -> str:
    import ctranslate2

    if device not in DEVICES:
        raise MtqaError(f"--device must be one of {', '.join(DEVICES)}, not {device!r}")
    gpus = ctranslate2.get_cuda_device_count()
    if device == "auto":
        return "cuda" if gpus > 0 else "cpu"
    if device == "cuda" and gpus == 0:
        raise MtqaError("--device cuda: CTranslate2 sees no CUDA device (use --device cpu or auto)")
    return device


def resolve_compute_type(device: str, compute_type: str | None) -> str:
    """'auto' -> int8 on CPU, int8_float16 on GPU; anything else must be supported by the device."""
    import ctranslate2

    if compute_type in (None, "", "auto"):
        compute_type = "int8_float16" if device == "cuda" else "int8"
    supported = sorted(ctranslate2.get_supported_compute_types(device))
    if compute_type not in supported:
        raise MtqaError(f"--compute-type {compute_type} is not supported on {device} here "
                        f"(supported: {', '.join(supported)})")
    return compute_type


def default_threads(device: str, inter: int | None = None, intra: int | None = None) -> tuple[int, int]:
    """(inter_threads, intra_threads) that fill the machine without oversubscribing it.

    On CPU one translator replica gains little past ~8 threads, so larger machines run
    several replicas (inter) of up to 8 threads (intra). On GPU one replica per device.
    """
    cores = cpu_count()
    if device == "cuda":
        return inter or 1, intra or min(4, cores)
    inter = inter or max(1, cores // 8)
    intra = intra or max(1, cores // inter)
    if inter < 1 or intra < 1:
        raise MtqaError("--inter-threads and --intra-threads must be at least 1")
    return inter, intra


def gpu_free_mib(index: int) -> float | None:
    """Free memory of one GPU in MiB (nvidia-smi), or None when it cannot be read."""
    import shutil
    import subprocess

    if shutil.which("nvidia-smi") is None:
        return None
    try:
        query = ["nvidia-smi", f"--id={index}", "--query-gpu=memory.free", "--format=csv,noheader,nounits"]
        out = subprocess.run(query, capture_output=True, text=True, timeout=20, check=True).stdout
        return float(out.strip().splitlines()[0])
    except (OSError, subprocess.SubprocessError, ValueError, IndexError):
        return None


def token_batches(lengths: Sequence[int], max_batch_tokens: int,
                  groups: Sequence[int] | None = None, max_count: int | None = None) -> list[list[int]]:
    """Indices grouped into length-sorted batches whose padded size (longest x count) fits the budget.

    ``groups`` (non-decreasing with length, e.g. the decoding cap) must not mix inside a batch.
    ``max_count`` caps the segments per batch (memory grows with segments x beam x output vocabulary).
    Ties keep input order, so the same input always gives the same batches.
    """
    order = sorted(range(len(lengths)), key=lambda i: (lengths[i], i))
    batches: list[list[int]] = []
    current: list[int] = []
    for i in order:
        # Sorted ascending, so the newcomer is the longest: the padded size is its length x count.
        new_group = groups is not None and current and groups[i] != groups[current[0]]
        full = max_count is not None and len(current) >= max_count
        if current and (new_group or full or lengths[i] * (len(current) + 1) > max_batch_tokens):
            batches.append(current)
            current = []
        current.append(i)
    if current:
        batches.append(current)
    return batches


def repetition_rate(tokens: Sequence[str], n: int = REPETITION_NGRAM) -> float:
    """Share of the n-grams in ``tokens`` that repeat an earlier one (0: none, ->1: a loop)."""
    if len(tokens) <= n:
        return 0.0
    grams = [tuple(tokens[i:i + n]) for i in range(len(tokens) - n + 1)]
    return 1.0 - len(set(grams)) / len(grams)


class SpmTokenizer:
    """NLLB's SentencePiece model: pieces in, pieces out (CTranslate2 works on token strings)."""

    def __init__(self, model_file: str | os.PathLike[str], vocabulary: Sequence[str]):
        import sentencepiece as spm

        self.sp = spm.SentencePieceProcessor(model_file=str(model_file))
        self.special = frozenset(tok for tok in vocabulary
                                 if tok in _CONTROL_TOKENS or _FLORES_TOKEN.match(tok) or _MADEUP.match(tok))

    def encode(self, texts: Sequence[str]) -> list[list[str]]:
        return self.sp.encode(list(texts), out_type=str) if texts else []

    def count(self, text: str) -> int:
        return len(self.sp.encode(text))

    def decode(self, pieces: Sequence[str]) -> str:
        return self.sp.decode([p for p in pieces if p not in self.special]).strip()


class NllbTranslator:
    """A loaded CTranslate2 NLLB model plus its tokenizer and decoding settings."""

    def __init__(
        self,
        model: ModelInfo,
        device: str = "auto",
        compute_type: str | None = "auto",
        inter_threads: int | None = None,
        intra_threads: int | None = None,
        options: DecodeOptions | None = None,
        max_batch_tokens: int = 4096,
        vocab_map: VocabMap | None = None,
        device_index: int | Sequence[int] = 0,
        max_batch_memory_mib: float | None = None,
    ):
        self.model = model
        self.options = options or DecodeOptions()
        self.options.check()
        if max_batch_tokens < self.options.max_input_tokens + 2:
            raise MtqaError(f"--max-batch-tokens {max_batch_tokens} cannot hold one segment of "
                            f"--max-input-tokens {self.options.max_input_tokens} (+2 special tokens)")
        self.max_batch_tokens = max_batch_tokens
        self.device = resolve_device(device)
        self.compute_type = resolve_compute_type(self.device, compute_type)
        self.inter_threads, self.intra_threads = default_threads(self.device, inter_threads, intra_threads)
        self.device_index = list(device_index) if isinstance(device_index, Sequence) else [device_index]
        if not self.device_index or any(i < 0 for i in self.device_index):
            raise MtqaError("--device-index takes GPU numbers >= 0, e.g. 0 or 0,1")
        vocabulary = read_vocabulary(model.path)
        self.vocabulary_list = vocabulary
        self.vocabulary = frozenset(vocabulary)
        self.vocab_map = vocab_map
        if max_batch_memory_mib is not None and max_batch_memory_mib <= 0:
            raise MtqaError("--max-batch-memory must be > 0 MiB")
        if max_batch_memory_mib is None and self.device == "cuda":
            free = gpu_free_mib(self.device_index[0])
            max_batch_memory_mib = free / 2 if free else None  # half: weights of other replicas, allocator slack
        self.max_batch_memory_mib = max_batch_memory_mib
        self.tokenizer = SpmTokenizer(model.path / SPM_FILE, vocabulary)
        # Language tags and control tokens never belong inside a translation.
        self._suppress = [[tok] for tok in sorted(self.tokenizer.special)
                          if tok not in ("</s>", "<unk>") and not _MADEUP.match(tok)]
        # Loaded CTranslate2 engines: None = the plain model, a FLORES code = that language's map view.
        # One is resident at a time (two for a map check), so a map costs no extra model memory.
        self._engines: dict[str | None, tuple[Any, ModelView | None]] = {}
        self.max_engines = 1
        if vocab_map is None:
            self._engine(None)

    # ------------------------------------------------------------------ engines
    def _load(self, path: str) -> Any:
        import ctranslate2

        try:
            return ctranslate2.Translator(path, device=self.device, device_index=self.device_index,
                                          compute_type=self.compute_type, inter_threads=self.inter_threads,
                                          intra_threads=self.intra_threads)
        except (RuntimeError, ValueError, OSError) as exc:
            raise ModelError(f"{self.model.path}: CTranslate2 could not load the model on {self.device} "
                             f"({self.compute_type}): {exc}") from exc

    def _engine(self, lang: str | None) -> Any:
        """The engine for plain decoding (None) or for one target language's vocabulary map."""
        if lang in self._engines:
            self._engines[lang] = self._engines.pop(lang)  # most recently used last
            return self._engines[lang][0]
        while len(self._engines) >= self.max_engines:
            self._drop(next(iter(self._engines)))
        view = None
        if lang is None:
            engine = self._load(str(self.model.path))
        else:
            assert self.vocab_map is not None
            view = ModelView(self.model.path, self.vocab_map.vmap_text(lang, self.vocabulary_list), lang)
            try:
                engine = self._load(str(view.root))
            except BaseException:
                view.close()
                raise
        self._engines[lang] = (engine, view)
        return engine

    def _drop(self, lang: str | None) -> None:
        engine, view = self._engines.pop(lang)
        del engine
        if view is not None:
            view.close()

    def close(self) -> None:
        for lang in list(self._engines):
            self._drop(lang)

    def output_vocabulary(self, lang: str | None) -> int:
        """Size of the output layer decoding into ``lang`` (None: no map) before a batch's source copies."""
        if self.vocab_map is None or lang is None:
            return len(self.vocabulary_list)
        return len(self.vocab_map.candidates(lang, self.vocabulary_list))

    def max_batch_segments(self, lang: str | None) -> int | None:
        """Segments per batch that fit ``max_batch_memory_mib``: the beam x output-vocabulary logits dominate.

        Measured on the NLLB-600M shape: ~7.5 MB per segment at beam 2 with the full 256k
        vocabulary, i.e. about 3.7 float32 copies of each hypothesis's logits (scores,
        log-softmax, top-k work space), plus the encoder/decoder states (~0.5 MB).
        """
        if not self.max_batch_memory_mib:
            return None
        per_segment = self.options.beam_size * self.output_vocabulary(lang) * 4 * 3.7 + 0.5 * 2**20
        return max(1, int(self.max_batch_memory_mib * 2**20 // per_segment))

    def source_tokens(self, pieces: Sequence[str], src_lang: str) -> list[str]:
        """NLLB's source layout (Transformers' non-legacy NllbTokenizer): ``[lang] pieces </s>``."""
        return [src_lang, *pieces, "</s>"]

    def generate(
        self,
        pieces: Sequence[Sequence[str]],
        src_langs: Sequence[str],
        tgt_langs: Sequence[str],
        max_decoding_length: Callable[[int], int] | None = None,
        min_decoding_length: Callable[[int], int] | None = None,
        on_batch: Callable[[int], None] | None = None,
        use_map: bool = True,
    ) -> list[tuple[list[str], int]]:
        """Raw decoding: (output tokens including the target tag, the cap used) per input, in order.

        ``max_decoding_length`` maps a source length to a generated-token bound (default: the
        guard); segments with different bounds never share a batch. ``min_decoding_length``
        maps a batch's longest source length to a floor (default 1). The benchmark forces both.
        With a vocabulary map (and ``use_map``), batches hold one target language each and run
        on that language's map.
        """
        out = self.decode(pieces, src_langs, tgt_langs, max_decoding_length, min_decoding_length, on_batch,
                          use_map=use_map)
        return [(hyp, cap) for hyp, cap, _score in out]

    def decode(
        self,
        pieces: Sequence[Sequence[str]],
        src_langs: Sequence[str],
        tgt_langs: Sequence[str],
        max_decoding_length: Callable[[int], int] | None = None,
        min_decoding_length: Callable[[int], int] | None = None,
        on_batch: Callable[[int], None] | None = None,
        use_map: bool = True,
        return_scores: bool = False,
    ) -> list[tuple[list[str], int, float]]:
        """:meth:`generate` plus each hypothesis's score (0.0 unless ``return_scores``)."""
        cap_for = max_decoding_length or self.options.max_decoding_length
        floor_for = min_decoding_length or (lambda _n: 1)
        mapped = use_map and self.vocab_map is not None
        out: list[tuple[list[str], int, float]] = [([], 0, 0.0)] * len(pieces)
        if mapped:
            parts: dict[str | None, list[int]] = {}
            for i, lang in enumerate(tgt_langs):
                parts.setdefault(lang, []).append(i)
        else:
            parts = {None: list(range(len(pieces)))}
        resident = next(reversed(self._engines), None) if self._engines else None
        # The resident engine's language first: one model load fewer.
        for lang in sorted(parts, key=lambda key: key != resident):
            indices = parts[lang]
            engine = self._engine(lang)
            max_count = self.max_batch_segments(lang)
            lengths = [len(pieces[i]) + 2 for i in indices]
            caps = [cap_for(len(pieces[i])) for i in indices]
            submitted = []
            for local in token_batches(lengths, self.max_batch_tokens, groups=caps, max_count=max_count):
                batch = [indices[j] for j in local]
                longest = max(len(pieces[i]) for i in batch)
                # One cap per batch (the groups guarantee it); CTranslate2 counts the forced target tag.
                cap = caps[local[-1]] + 1
                futures = self._submit(engine, [self.source_tokens(pieces[i], src_langs[i]) for i in batch],
                                       [[tgt_langs[i]] for i in batch], cap, min(cap, floor_for(longest) + 1),
                                       use_vmap=mapped, return_scores=return_scores)
                submitted.append((batch, futures, cap))
            for batch, futures, cap in submitted:
                for i, future in zip(batch, futures, strict=True):
                    result = future.result()
                    out[i] = (result.hypotheses[0], cap, result.scores[0] if return_scores else 0.0)
                if on_batch is not None:
                    on_batch(len(batch))
        return out

    def _submit(self, engine: Any, sources: list[list[str]], prefixes: list[list[str]], cap: int, floor: int,
                use_vmap: bool, return_scores: bool) -> list[Any]:
        opts = self.options
        return engine.translate_batch(
            sources,
            prefixes,
            asynchronous=True,
            # Our batches already fit the budget; CTranslate2's token batching is the backstop.
            max_batch_size=self.max_batch_tokens,
            batch_type="tokens",
            beam_size=opts.beam_size,
            max_input_length=0,
            max_decoding_length=cap,
            min_decoding_length=floor,
            repetition_penalty=opts.repetition_penalty,
            no_repeat_ngram_size=opts.no_repeat_ngram_size,
            disable_unk=True,
            suppress_sequences=self._suppress or None,
            use_vmap=use_vmap,
            return_scores=return_scores,
        )

    def translate_pieces(
        self,
        pieces: Sequence[Sequence[str]],
        src_langs: Sequence[str],
        tgt_langs: Sequence[str],
        on_batch: Callable[[int], None] | None = None,
    ) -> list[Translation]:
        """Translate tokenized segments; each result carries its signals."""
        results = []
        raw = self.generate(pieces, src_langs, tgt_langs, on_batch=on_batch)
        for src, tgt_lang, (hyp, cap) in zip(pieces, tgt_langs, raw, strict=True):
            tokens = hyp[1:] if hyp and hyp[0] == tgt_lang else list(hyp)
            own_cap = self.options.max_decoding_length(len(src))  # equal to the batch's, by construction
            capped = len(hyp) >= cap or len(tokens) >= own_cap
            content = [tok for tok in tokens[:own_cap] if tok not in self.tokenizer.special]
            repetition = max(0.0, repetition_rate(content) - repetition_rate(src))
            results.append(Translation(
                text=self.tokenizer.decode(content), src_tokens=len(src), tgt_tokens=len(content),
                repetition=round(repetition, 4), capped=capped,
            ))
        return results

    def translate(self, texts: Sequence[str], src_lang: str, tgt_lang: str) -> list[str]:
        """Convenience: plain texts (each within the input limit) -> translations."""
        pieces = self.tokenizer.encode(list(texts))
        return [t.text for t in self.translate_pieces(pieces, [src_lang] * len(texts), [tgt_lang] * len(texts))]
