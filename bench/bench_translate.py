"""Benchmark mtqa's translation path: CTranslate2 int8 with and without a vocabulary map vs Transformers fp32.

    .venv/bin/python bench/bench_translate.py                       # CPU: threads 1 and 2, beams 1 and 2
    .venv/bin/python bench/bench_translate.py --repeat 2 --json r.json
    .venv/bin/python bench/bench_translate.py --gpu                 # the GPU section (< 5 min), see --gpu

What it does, with no download:

1. Builds a model shaped exactly like facebook/nllb-200-distilled-600M (d_model 1024, 12+12
   layers, 16 heads, ffn 4096, vocab 256,206) with random weights and an NLLB tokenizer over a
   SentencePiece model trained on SQuAD text; converts it with CTranslate2's converter to int8
   and to float32 (cached in --workdir, so reruns skip this).
2. Takes --sentences real English sentences from SQuAD dev (../shared/data) and runs each
   engine in its own subprocess (so peak RSS is the engine's own) on identical token ids and
   identical length-sorted batches. Random weights never emit </s> in a useful place, so output
   lengths are forced equal in every engine: each sentence decodes exactly as many tokens as its
   source length rounded up to a multiple of --length-bucket (16), plus the language tag.
   Engines: mtqa's CTranslate2 path (NllbTranslator.generate, int8; ``ct2-int8-vmap`` with a
   German vocabulary map: the pieces of Tatoeba's German side, digits/punctuation, the sources'
   own pieces, filled up to --map-size candidates; optionally float32) and what a user would
   write with Transformers: AutoModelForSeq2SeqLM in fp32 + generate(forced_bos_token_id).
   Engines are paired within each round (same load), at --threads-list threads each, at
   --beams beams (Transformers at the largest only); the load average is recorded per run.
   A second phase decodes --real-batch SQuAD questions as the stage batches them (one batch
   of ~200 at the 4,096-token budget) to measure peak RSS at real batch sizes.
3. Measures how many translation calls unique-segment dedup and the translation cache save
   on SQuAD dev, by running the real translate stage (with a tiny model: the counts do not
   depend on the model) twice, the second time with one more language.

Prints sentences/s, generated tokens/s, peak RSS per engine and the ratios; --json writes them.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

SHARED = Path(os.environ.get("MTQA_SHARED", ROOT.parent / "shared"))
SQUAD = SHARED / "data" / "squad-v1.1"
SRC, TGT = "eng_Latn", "deu_Latn"
ENGINES = ("ct2-int8", "ct2-int8-vmap", "hf-fp32")  # also: ct2-float32
TATOEBA_DE = SHARED / "data" / "tatoeba" / "tatoeba.deu-eng.deu"


# ---------------------------------------------------------------------- data
def squad_sentences(limit: int | None = None) -> list[str]:
    """English sentences of SQuAD dev paragraphs, in file order, without repeats."""
    import gzip

    from mt_qa.sentences import split_sentences

    with gzip.open(SQUAD / "dev-v1.1.en.json.gz", "rt", encoding="utf-8") as fh:
        data = json.load(fh)
    seen: dict[str, None] = {}
    for article in data["data"]:
        for paragraph in article["paragraphs"]:
            for sentence in split_sentences(paragraph["context"]):
                text = " ".join(sentence.split())
                if 3 <= len(text.split()) <= 80:
                    seen.setdefault(text, None)
                    if limit and len(seen) >= limit:
                        return list(seen)
    return list(seen)


def squad_questions(limit: int) -> list[str]:
    """Distinct SQuAD dev questions in file order: what the stage batches ~200 at a time."""
    import gzip

    with gzip.open(SQUAD / "dev-v1.1.en.json.gz", "rt", encoding="utf-8") as fh:
        data = json.load(fh)
    seen: dict[str, None] = {}
    for article in data["data"]:
        for paragraph in article["paragraphs"]:
            for qa in paragraph["qas"]:
                seen.setdefault(" ".join(qa["question"].split()), None)
                if len(seen) >= limit:
                    return list(seen)
    return list(seen)


def build_vocab_map(ct2_dir: Path, out: Path, map_size: int, log) -> dict[str, Any]:
    """The German map the vmap engines use: Tatoeba German pieces + always-tokens, filled to ``map_size``.

    Random weights make a calibrated map meaningless, so the benchmark's map is built from real
    German text with `mtqa model vocab-map`'s code and filled with further vocabulary entries to
    the candidate count a real NLLB language list is assumed to have (--map-size): the speed
    depends on the candidate count, not on which pieces they are.
    """
    from mt_qa.translate.models import load_model_info, read_vocabulary
    from mt_qa.translate.translator import SpmTokenizer
    from mt_qa.translate.vocab_map import VocabMap, read_sample, sample_tokens

    info = load_model_info(ct2_dir)
    vocabulary = read_vocabulary(ct2_dir)
    tokenizer = SpmTokenizer(ct2_dir / "sentencepiece.bpe.model", vocabulary)
    vmap = VocabMap(info.sha256)
    counts = sample_tokens(tokenizer, read_sample(TATOEBA_DE))
    vmap.add(TGT, counts, f"sample: {TATOEBA_DE.name}")
    from_sample = len(vmap.candidates(TGT, vocabulary))
    filler = [tok for tok in vocabulary if tok.startswith("madeupword")]
    need = max(0, map_size - from_sample)
    vmap.add(TGT, filler[:need], f"filler: {need} vocabulary entries to reach {map_size} candidates")
    vmap.save(out)
    stats = {"candidates": len(vmap.candidates(TGT, vocabulary)), "from_sample": from_sample,
             "vocabulary": len(vocabulary)}
    log(f"vocabulary map: {stats}")
    return stats


# ---------------------------------------------------------------------- models
def build_models(workdir: Path, log, float32: bool = False) -> dict[str, Path]:
    """The NLLB-600M-shaped random checkpoint and its int8 (and float32) CTranslate2 conversions."""
    from mt_qa.testing.nllb import NLLB_600M, build_nllb_checkpoint
    from mt_qa.translate.models import convert, is_ct2_dir, is_hf_checkpoint

    hf = workdir / "nllb600m-random-hf"
    int8, f32 = workdir / "nllb600m-random-ct2-int8", workdir / "nllb600m-random-ct2-f32"
    if not is_hf_checkpoint(hf):
        started = time.perf_counter()
        build_nllb_checkpoint(hf, squad_sentences(20000), NLLB_600M, spm_vocab_size=8000)
        log(f"built the random NLLB-600M-shaped checkpoint in {time.perf_counter() - started:.0f}s")
    for out, quantization in ((int8, "int8"), (f32, "float32")):
        if not is_ct2_dir(out) and (quantization == "int8" or float32):
            started = time.perf_counter()
            convert(hf, out, quantization)
            log(f"converted to CTranslate2 {quantization} in {time.perf_counter() - started:.0f}s")
    return {"hf": hf, "int8": int8, "float32": f32}


def model_shape(hf: Path) -> dict[str, Any]:
    config = json.loads((hf / "config.json").read_text())
    return {k: config[k] for k in ("d_model", "encoder_layers", "decoder_layers", "encoder_attention_heads",
                                   "encoder_ffn_dim", "vocab_size")}


# ---------------------------------------------------------------------- workers
LENGTH_BUCKET = 16  # --length-bucket
FIXED_LENGTH = 0  # real-batch phase: every sentence decodes exactly this many tokens


def forced_length(source_tokens: int) -> int:
    """Generated tokens per sentence (besides the language tag): the source length rounded up.

    Sentences with the same forced length share batches (mtqa's batching keeps one decoding
    bound per batch), so a coarser bucket means fewer, larger batches and fewer decoding steps.
    """
    if FIXED_LENGTH:
        return FIXED_LENGTH
    return -(-source_tokens // LENGTH_BUCKET) * LENGTH_BUCKET


def plan(pieces: list[list[str]], max_batch_tokens: int) -> list[list[int]]:
    """The batches every engine runs: mtqa's token batching, one forced length per batch."""
    from mt_qa.translate.translator import token_batches

    lengths = [len(p) + 2 for p in pieces]
    return token_batches(lengths, max_batch_tokens, groups=[forced_length(len(p)) for p in pieces])


def peak_rss_mib() -> float:
    """This process's peak resident memory (VmHWM: unlike ru_maxrss it does not survive exec,
    so a worker does not inherit the parent's peak)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return round(int(line.split()[1]) / 1024, 1)
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)  # pragma: no cover - not Linux


def worker(args: argparse.Namespace) -> dict[str, Any]:
    """Run one engine over the sentences; report speed and this process's peak RSS."""
    sentences = json.loads(Path(args.sentences_file).read_text())
    load_before = os.getloadavg()[0]
    import sentencepiece as spm

    sp = spm.SentencePieceProcessor(model_file=str(Path(args.hf) / "sentencepiece.bpe.model"))
    pieces = sp.encode(sentences, out_type=str)
    batches = plan(pieces, args.batch_tokens)
    generated = sum(forced_length(max(len(pieces[i]) for i in b)) * len(b) for b in batches)
    started = time.perf_counter()
    hyps_out: list[list[str]] = []
    if args.worker.startswith("ct2"):
        from mt_qa.translate.models import load_model_info
        from mt_qa.translate.translator import DecodeOptions, NllbTranslator
        from mt_qa.translate.vocab_map import VocabMap

        path = args.float32 if args.worker == "ct2-float32" else args.int8
        compute_type = "float32" if args.worker == "ct2-float32" else args.compute_type
        info = load_model_info(Path(path))
        vmap = VocabMap.load(args.vmap, info.sha256) if args.worker == "ct2-int8-vmap" else None
        translator = NllbTranslator(info, device=args.device, compute_type=compute_type,
                                    intra_threads=args.threads, max_batch_tokens=args.batch_tokens,
                                    options=DecodeOptions(beam_size=args.beam_size), vocab_map=vmap,
                                    max_batch_memory_mib=args.max_batch_memory)
        loaded = time.perf_counter()

        def run(subset: list[list[str]]) -> list[list[str]]:
            out = translator.generate(subset, [SRC] * len(subset), [TGT] * len(subset),
                                      max_decoding_length=forced_length, min_decoding_length=forced_length)
            return [hyp for hyp, _cap in out]

        run(pieces[:4])  # warm-up (also loads the map's engine)
        loaded = time.perf_counter() if vmap is not None else loaded
        t0 = time.perf_counter()
        hyps = run(pieces)
        seconds = time.perf_counter() - t0
        lengths = [len(h) - 1 for h in hyps]
        hyps_out = hyps
    else:
        import torch
        from transformers import AutoModelForSeq2SeqLM, AutoTokenizer

        if args.threads:
            torch.set_num_threads(args.threads)
            torch.set_num_interop_threads(args.threads)
        tokenizer = AutoTokenizer.from_pretrained(args.hf)
        model = AutoModelForSeq2SeqLM.from_pretrained(args.hf, dtype=torch.float32).eval().to(args.device)
        loaded = time.perf_counter()
        tgt_id = tokenizer.convert_tokens_to_ids(TGT)

        def run_batch(batch: list[int]) -> list[int]:
            ids = [tokenizer.convert_tokens_to_ids([SRC, *pieces[i], "</s>"]) for i in batch]
            width = max(map(len, ids))
            input_ids = torch.tensor([row + [tokenizer.pad_token_id] * (width - len(row)) for row in ids])
            mask = torch.tensor([[1] * len(row) + [0] * (width - len(row)) for row in ids])
            steps = forced_length(width - 2) + 1  # the forced language tag is one of the new tokens
            with torch.inference_mode():
                out = model.generate(input_ids=input_ids.to(args.device), attention_mask=mask.to(args.device),
                                     forced_bos_token_id=tgt_id, num_beams=args.beam_size, do_sample=False,
                                     max_new_tokens=steps, min_new_tokens=steps)
            # Each row: the decoder start token, the language tag, then the generated tokens.
            return [out.shape[1] - 2] * len(batch)

        run_batch(batches[0][:2])  # warm-up
        t0 = time.perf_counter()
        lengths = [n for batch in batches for n in run_batch(batch)]
        seconds = time.perf_counter() - t0
    result = {
        "engine": args.worker,
        "beam_size": args.beam_size,
        "threads": args.threads or "default",
        "phase": args.phase,
        "largest_batch": max(len(b) for b in batches),
        "sentences": len(sentences),
        "batches": len(batches),
        "source_tokens": sum(len(p) for p in pieces),
        "generated_tokens_planned": generated,
        "generated_tokens": sum(lengths),
        "load_s": round(loaded - started, 2),
        "translate_s": round(seconds, 2),
        "sentences_per_s": round(len(sentences) / seconds, 2),
        "tokens_per_s": round(sum(lengths) / seconds, 1),
        "peak_rss_mib": peak_rss_mib(),
        "load_avg_1min": [load_before, os.getloadavg()[0]],
    }
    if args.hyps_out and hyps_out:
        Path(args.hyps_out).write_text(json.dumps(hyps_out))
    if args.device == "cuda":  # CTranslate2's caching allocator keeps about its peak reserved
        query = ["nvidia-smi", "--query-gpu=memory.used", "--format=csv,noheader,nounits"]
        used = subprocess.run(query, capture_output=True, text=True)
        result["gpu_memory_used_mib"] = used.stdout.strip().splitlines()[:1]
    if args.device == "cuda" and args.worker.startswith("hf"):
        import torch

        result["cuda_max_allocated_mib"] = round(torch.cuda.max_memory_allocated() / 2**20, 1)
    return result


def run_worker(engine: str, args: argparse.Namespace, models: dict[str, Path], sentences_file: Path,
               beam: int, threads: int, phase: str, hyps_out: Path | None = None) -> dict:
    cmd = [sys.executable, __file__, "--worker", engine, "--sentences-file", str(sentences_file),
           "--hf", str(models["hf"]), "--int8", str(models["int8"]), "--float32", str(models["float32"]),
           "--vmap", str(models["vmap"]), "--phase", phase,
           "--device", args.device, "--compute-type", args.compute_type, "--beam-size", str(beam),
           "--batch-tokens", str(args.batch_tokens), "--threads", str(threads),
           "--length-bucket", str(args.length_bucket if phase == "throughput" else 0),
           "--fixed-length", str(args.real_batch_length if phase == "real-batch" else 0)]
    if hyps_out is not None:
        cmd += ["--hyps-out", str(hyps_out)]
    if args.max_batch_memory:
        cmd += ["--max-batch-memory", str(args.max_batch_memory)]
    env = dict(os.environ)
    if threads:  # torch and oneDNN size their pools from these too
        env.update(OMP_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads))
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if proc.returncode != 0:
        raise SystemExit(f"{engine} failed:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


# ---------------------------------------------------------------------- dedup + cache on SQuAD dev
def dedup_and_cache(workdir: Path, log) -> dict[str, Any]:
    """Translation calls on SQuAD dev: naive vs per-shard dedup vs cache, and on a rerun adding a language."""
    from squad_setup import collect_squad

    from mt_qa.testing.nllb import TINY, build_nllb_checkpoint
    from mt_qa.translate.models import convert, is_ct2_dir
    from mt_qa.translate.stage import TranslateStage
    from mt_qa.translate.translator import DecodeOptions

    tiny = workdir / "tiny-ct2"
    if not is_ct2_dir(tiny):
        build_nllb_checkpoint(workdir / "tiny-hf", squad_sentences(5000), TINY, spm_vocab_size=8000)
        convert(workdir / "tiny-hf", tiny, "int8")
    with tempfile.TemporaryDirectory(dir=workdir) as tmp:
        tmp = Path(tmp)
        collect_squad(tmp / "collect")
        # Counts do not depend on what the model outputs: keep decoding short.
        options = DecodeOptions(beam_size=1, max_length_ratio=0.01, max_length_slack=1, no_repeat_ngram_size=0)

        def stage(out: str, langs: str) -> dict[str, Any]:
            started = time.perf_counter()
            result = TranslateStage(tmp / "collect", tmp / out, langs, model=str(tiny), device="cpu",
                                    cache=tmp / "cache.sqlite", options=options, progress=False).run()
            log(f"  translate --langs {langs}: {time.perf_counter() - started:.0f}s")
            return result

        first = stage("first", "de,es,it")
        again = stage("again", "de,es,it,ar")
    stats = first["manifest"]["stats"]
    rows = first["manifest"]["totals"]["rows_by_lang"]
    return {
        "groups": rows["en"],
        "first_run_langs": "de,es,it",
        "naive_calls": stats["segments"]["occurrences"],  # every row's question and sentences, per language
        "after_shard_dedup": stats["segments"]["unique"],
        "after_cache": first["segments_translated"],  # dedup across shards too
        "imported_rows_kept": stats["skipped"]["existing"],
        "rerun_plus_ar_translated": again["segments_translated"],
        "rerun_plus_ar_from_cache": again["segments_cached"],
        "rerun_plus_ar_new_language_unique": again["langs"]["ar"]["unique"],
    }


# ---------------------------------------------------------------------- main
def agreement_of(plain_file: Path, mapped_file: Path) -> dict[str, Any] | None:
    """Token-identical share of the vmap engine's outputs vs the plain engine's (same inputs, same round)."""
    if not (plain_file.is_file() and mapped_file.is_file()):
        return None
    plain, mapped = json.loads(plain_file.read_text()), json.loads(mapped_file.read_text())
    same = sum(a == b for a, b in zip(plain, mapped, strict=True))
    tokens = sum(x == y for a, b in zip(plain, mapped, strict=True) for x, y in zip(a, b, strict=False))
    return {"segments": len(plain), "identical": same, "identical_share": round(same / len(plain), 4),
            "token_positions_equal": round(tokens / max(1, sum(map(len, plain))), 4)}


def ratio(a: dict[str, Any] | None, b: dict[str, Any] | None, key: str) -> float | None:
    return round(a[key] / b[key], 2) if a and b and b[key] else None


def pair_ratios(runs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Ratios of engines that ran in the same round, at the same threads and beam (never best-of)."""
    out = []
    keys = sorted({(r["round"], r["phase"], r["threads"], r["beam_size"]) for r in runs})
    for round_, phase, threads, beam in keys:
        same = {r["engine"]: r for r in runs if (r["round"], r["phase"], r["threads"], r["beam_size"])
                == (round_, phase, threads, beam)}
        hf = next((r for r in runs if (r["round"], r["phase"], r["threads"], r["engine"]) ==
                   (round_, phase, threads, "hf-fp32")), None)
        vm, plain = same.get("ct2-int8-vmap"), same.get("ct2-int8")
        loads = [x for r in same.values() for x in r["load_avg_1min"]]
        out.append({
            "round": round_, "phase": phase, "threads": threads, "beam_size": beam,
            "vmap_vs_plain_speed": ratio(vm, plain, "tokens_per_s"),
            "vmap_vs_hf_speed": ratio(vm, hf, "tokens_per_s") if hf and hf["beam_size"] == beam else None,
            "plain_vs_hf_speed": ratio(plain, hf, "tokens_per_s") if hf and hf["beam_size"] == beam else None,
            "vmap_vs_hf_peak_rss": ratio(vm, hf, "peak_rss_mib") if hf and hf["beam_size"] == beam else None,
            "plain_vs_hf_peak_rss": ratio(plain, hf, "peak_rss_mib") if hf and hf["beam_size"] == beam else None,
            "agreement": (vm or {}).get("agreement"),
            "load_avg_1min": [min(loads), max(loads)] if loads else None,
        })
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sentences", type=int, default=64, help="Real SQuAD sentences to translate.")
    parser.add_argument("--real-batch", type=int, default=200,
                        help="SQuAD questions for the real-batch-size phase (0: skip).")
    parser.add_argument("--beams", default="2,1", help="Beam sizes (Transformers runs at the first only).")
    parser.add_argument("--threads-list", default="1,2", help="Threads per engine, one pass each.")
    parser.add_argument("--batch-tokens", type=int, default=4096, help="Token budget per batch (all engines).")
    parser.add_argument("--max-batch-memory", type=float, default=None, help="mtqa's memory cap per batch (MiB).")
    parser.add_argument("--real-batch-length", type=int, default=4,
                        help="Forced output tokens in the real-batch phase: the logits' peak is reached at the "
                             "first step, so a short decode measures it (and tokens/s there is not comparable).")
    parser.add_argument("--map-size", type=int, default=32000, help="Candidates in the benchmark's German map.")
    parser.add_argument("--length-bucket", type=int, default=16,
                        help="Forced output length = source length rounded up to a multiple of this.")
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    parser.add_argument("--compute-type", default=None, help="CT2 int8 engines' compute type "
                        "(default int8 on CPU, int8_float16 on CUDA).")
    parser.add_argument("--engines", default=",".join(ENGINES))
    parser.add_argument("--gpu", action="store_true",
                        help="The GPU section: --device cuda, int8_float16, beam 2, 256 sentences, one round, "
                             "real batch 1,000 questions; no dedup phase.")
    parser.add_argument("--workdir", type=Path, default=Path.home() / ".cache" / "mtqa" / "bench",
                        help="Where the built models are kept between runs (about 3 GB; 5.5 GB with float32).")
    parser.add_argument("--repeat", type=int, default=1, help="Rounds; engines are paired within each round.")
    parser.add_argument("--skip-dedup", action="store_true", help="Skip the dedup/cache measurement.")
    parser.add_argument("--json", type=Path, help="Also write the results here.")
    # worker mode (internal)
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    parser.add_argument("--sentences-file", help=argparse.SUPPRESS)
    parser.add_argument("--hf", help=argparse.SUPPRESS)
    parser.add_argument("--int8", help=argparse.SUPPRESS)
    parser.add_argument("--float32", help=argparse.SUPPRESS)
    parser.add_argument("--vmap", help=argparse.SUPPRESS)
    parser.add_argument("--phase", default="throughput", help=argparse.SUPPRESS)
    parser.add_argument("--hyps-out", help=argparse.SUPPRESS)
    parser.add_argument("--fixed-length", type=int, default=0, help=argparse.SUPPRESS)
    parser.add_argument("--beam-size", type=int, default=2, help=argparse.SUPPRESS)
    parser.add_argument("--threads", type=int, default=0, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.gpu:
        args.device, args.beams, args.threads_list, args.repeat = "cuda", "2", "0", 1
        args.sentences, args.real_batch, args.skip_dedup = 256, 1000, True
        args.batch_tokens = max(args.batch_tokens, 16384)
    args.compute_type = args.compute_type or ("int8_float16" if args.device == "cuda" else "int8")
    global LENGTH_BUCKET, FIXED_LENGTH
    LENGTH_BUCKET = args.length_bucket
    FIXED_LENGTH = args.fixed_length
    if args.worker:
        args.threads = args.threads or None
        print(json.dumps(worker(args)))
        return

    def log(message: str) -> None:
        print(message, file=sys.stderr, flush=True)

    if not (SQUAD / "dev-v1.1.en.json.gz").is_file():
        raise SystemExit(f"SQuAD data not found at {SQUAD} (set MTQA_SHARED)")
    args.workdir.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    engines = [e for e in args.engines.split(",") if e]
    models = build_models(args.workdir, log, float32="ct2-float32" in engines)
    models["vmap"] = args.workdir / f"vmap-deu-{args.map_size}"
    map_stats = build_vocab_map(models["int8"], models["vmap"], args.map_size, log)
    files = {"throughput": args.workdir / "sentences.json", "real-batch": args.workdir / "questions.json"}
    files["throughput"].write_text(json.dumps(squad_sentences(args.sentences)))
    phases = ["throughput"]
    if args.real_batch:
        files["real-batch"].write_text(json.dumps(squad_questions(args.real_batch)))
        phases.append("real-batch")
    beams = [int(b) for b in args.beams.split(",")]
    threads_list = [int(t) for t in args.threads_list.split(",")]
    results: dict[str, Any] = {
        "command": " ".join([Path(sys.executable).name, *sys.argv]),
        "machine": f"{platform.machine()}, {os.cpu_count()} CPUs, {platform.python_version()}",
        "model_shape": model_shape(models["hf"]),
        "vocab_map": map_stats,
        "settings": {"sentences": args.sentences, "real_batch": args.real_batch, "beams": beams,
                     "threads": threads_list, "batch_tokens": args.batch_tokens,
                     "length_bucket": args.length_bucket, "repeat": args.repeat, "device": args.device,
                     "ct2_compute_type": args.compute_type, "map_size": args.map_size},
        "uptime_start": subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip(),
        "runs": [],
    }
    runs: list[dict[str, Any]] = results["runs"]
    hyps_dir = Path(tempfile.mkdtemp(prefix="bench-hyps-", dir=args.workdir))
    for round_ in range(1, args.repeat + 1):
        for phase in phases:
            for threads in threads_list:
                for beam in beams:
                    # Engines alternate inside the round, so a burst of load hits all of them alike.
                    for engine in engines:
                        if engine == "hf-fp32" and beam != beams[0]:
                            continue
                        if phase == "real-batch" and (engine == "ct2-float32" or beam != beams[0]
                                                      or threads != threads_list[0]):
                            continue  # peak memory depends on batch x beam x vocabulary, not on threads
                        log(f"round {round_} {phase} threads {threads or 'default'} beam {beam}: {engine} ...")
                        hyps = hyps_dir / f"{round_}-{phase}-{threads}-{beam}-{engine}.json"
                        run = run_worker(engine, args, models, files[phase], beam, threads, phase,
                                         hyps if engine.startswith("ct2-int8") else None)
                        run["round"] = round_
                        if engine == "ct2-int8-vmap":
                            run["agreement"] = agreement_of(hyps.with_name(hyps.name.replace("-vmap", "")), hyps)
                        runs.append(run)
                        log(f"  {json.dumps(run)}")
    shutil.rmtree(hyps_dir, ignore_errors=True)
    results["pairs"] = pair_ratios(runs)
    results["uptime_end"] = subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()
    if not args.skip_dedup:
        log("measuring dedup and cache on SQuAD dev ...")
        results["dedup_cache_squad_dev"] = dedup_and_cache(args.workdir, log)
    results["total_s"] = round(time.perf_counter() - started, 1)

    print(f"\n{results['machine']}; model {results['model_shape']}; map {map_stats}; {results['settings']}")
    print(f"{'round':>5} {'phase':<10} {'thr':>3} {'beam':>4} {'engine':<14} {'batch':>5} {'sent/s':>7} {'tok/s':>7} "
          f"{'RSS MiB':>8} {'load':>10}")
    for r in runs:
        print(f"{r['round']:>5} {r['phase']:<10} {r['threads']!s:>3} {r['beam_size']:>4} {r['engine']:<14} "
              f"{r['largest_batch']:>5} {r['sentences_per_s']:>7} {r['tokens_per_s']:>7} {r['peak_rss_mib']:>8} "
              f"{r['load_avg_1min'][0]:>4.1f}-{r['load_avg_1min'][1]:<4.1f}")
    for pair in results["pairs"]:
        print(json.dumps(pair))
    if "dedup_cache_squad_dev" in results:
        print(json.dumps(results["dedup_cache_squad_dev"], indent=2))
    if args.json:
        args.json.write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
