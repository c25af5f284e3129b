"""Benchmark mtqa's translation path: CTranslate2 int8 vs Transformers fp32, and int8 vs float32.

    /work/venv/bin/python bench/bench_translate.py [--sentences 64] [--beam-size 2]
    /work/venv/bin/python bench/bench_translate.py --device cuda --compute-type int8_float16

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
   Engines: mtqa's CTranslate2 path (NllbTranslator.generate, int8 / float32) and what a user
   would write with Transformers: AutoModelForSeq2SeqLM in fp32 + generate(forced_bos_token_id).
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
ENGINES = ("ct2-int8", "ct2-float32", "hf-fp32")


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


# ---------------------------------------------------------------------- models
def build_models(workdir: Path, log) -> dict[str, Path]:
    """The NLLB-600M-shaped random checkpoint and its int8 / float32 CTranslate2 conversions."""
    from mt_qa.translate.models import convert, is_ct2_dir, is_hf_checkpoint
    from mt_qa.translate.tiny import NLLB_600M, build_nllb_checkpoint

    hf = workdir / "nllb600m-random-hf"
    int8, f32 = workdir / "nllb600m-random-ct2-int8", workdir / "nllb600m-random-ct2-f32"
    if not is_hf_checkpoint(hf):
        started = time.perf_counter()
        build_nllb_checkpoint(hf, squad_sentences(20000), NLLB_600M, spm_vocab_size=8000)
        log(f"built the random NLLB-600M-shaped checkpoint in {time.perf_counter() - started:.0f}s")
    for out, quantization in ((int8, "int8"), (f32, "float32")):
        if not is_ct2_dir(out):
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


def forced_length(source_tokens: int) -> int:
    """Generated tokens per sentence (besides the language tag): the source length rounded up.

    Sentences with the same forced length share batches (mtqa's batching keeps one decoding
    bound per batch), so a coarser bucket means fewer, larger batches and fewer decoding steps.
    """
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
    import sentencepiece as spm

    sp = spm.SentencePieceProcessor(model_file=str(Path(args.hf) / "sentencepiece.bpe.model"))
    pieces = sp.encode(sentences, out_type=str)
    batches = plan(pieces, args.batch_tokens)
    generated = sum(forced_length(max(len(pieces[i]) for i in b)) * len(b) for b in batches)
    started = time.perf_counter()
    if args.worker.startswith("ct2"):
        from mt_qa.translate.models import load_model_info
        from mt_qa.translate.translator import DecodeOptions, NllbTranslator

        path = args.int8 if args.worker == "ct2-int8" else args.float32
        compute_type = args.compute_type if args.worker == "ct2-int8" else "float32"
        translator = NllbTranslator(load_model_info(Path(path)), device=args.device, compute_type=compute_type,
                                    intra_threads=args.threads, max_batch_tokens=args.batch_tokens,
                                    options=DecodeOptions(beam_size=args.beam_size))
        loaded = time.perf_counter()

        def run(subset: list[list[str]]) -> list[list[str]]:
            out = translator.generate(subset, [SRC] * len(subset), [TGT] * len(subset),
                                      max_decoding_length=forced_length, min_decoding_length=forced_length)
            return [hyp for hyp, _cap in out]

        run(pieces[:4])  # warm-up
        t0 = time.perf_counter()
        hyps = run(pieces)
        seconds = time.perf_counter() - t0
        lengths = [len(h) - 1 for h in hyps]
    else:
        import torch
        from transformers import AutoModelForSeq2SeqLM, AutoTokenizer

        if args.threads:
            torch.set_num_threads(args.threads)
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
    }
    if args.device == "cuda" and args.worker.startswith("hf"):
        import torch

        result["cuda_max_allocated_mib"] = round(torch.cuda.max_memory_allocated() / 2**20, 1)
    return result


def run_worker(engine: str, args: argparse.Namespace, models: dict[str, Path], sentences_file: Path) -> dict:
    cmd = [sys.executable, __file__, "--worker", engine, "--sentences-file", str(sentences_file),
           "--hf", str(models["hf"]), "--int8", str(models["int8"]), "--float32", str(models["float32"]),
           "--device", args.device, "--compute-type", args.compute_type, "--beam-size", str(args.beam_size),
           "--batch-tokens", str(args.batch_tokens), "--threads", str(args.threads or 0),
           "--length-bucket", str(args.length_bucket)]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        raise SystemExit(f"{engine} failed:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


# ---------------------------------------------------------------------- dedup + cache on SQuAD dev
def dedup_and_cache(workdir: Path, log) -> dict[str, Any]:
    """Translation calls on SQuAD dev: naive vs per-shard dedup vs cache, and on a rerun adding a language."""
    from mt_qa.collect import CollectStage, ParallelSpec, SourceSpec
    from mt_qa.translate.models import convert, is_ct2_dir
    from mt_qa.translate.stage import TranslateStage
    from mt_qa.translate.tiny import TINY, build_nllb_checkpoint
    from mt_qa.translate.translator import DecodeOptions

    tiny = workdir / "tiny-ct2"
    if not is_ct2_dir(tiny):
        build_nllb_checkpoint(workdir / "tiny-hf", squad_sentences(5000), TINY, spm_vocab_size=8000)
        convert(workdir / "tiny-hf", tiny, "int8")
    with tempfile.TemporaryDirectory(dir=workdir) as tmp:
        tmp = Path(tmp)
        CollectStage([SourceSpec(str(SQUAD / "dev-v1.1.en.json.gz"))], tmp / "collect",
                     parallel=[ParallelSpec("es", str(SQUAD / "dev-v1.1.es.json.gz")),
                               ParallelSpec("it", str(SQUAD / "dev-v1.1.it.json.gz"))], progress=False).run()
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
def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sentences", type=int, default=64, help="Real SQuAD sentences to translate.")
    parser.add_argument("--beam-size", type=int, default=2)
    parser.add_argument("--batch-tokens", type=int, default=4096, help="Token budget per batch (all engines).")
    parser.add_argument("--length-bucket", type=int, default=16,
                        help="Forced output length = source length rounded up to a multiple of this.")
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    parser.add_argument("--compute-type", default=None, help="CT2 'int8' engine compute type "
                        "(default int8 on CPU, int8_float16 on CUDA).")
    parser.add_argument("--threads", type=int, default=0, help="Threads per engine (default: all cores).")
    parser.add_argument("--engines", default=",".join(ENGINES))
    parser.add_argument("--workdir", type=Path, default=Path.home() / ".cache" / "mtqa" / "bench",
                        help="Where the built models are kept between runs (about 5.5 GB).")
    parser.add_argument("--repeat", type=int, default=1,
                        help="Run every engine this many times (interleaved) and keep each one's best run.")
    parser.add_argument("--skip-dedup", action="store_true", help="Skip the dedup/cache measurement.")
    parser.add_argument("--json", type=Path, help="Also write the results here.")
    # worker mode (internal)
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    parser.add_argument("--sentences-file", help=argparse.SUPPRESS)
    parser.add_argument("--hf", help=argparse.SUPPRESS)
    parser.add_argument("--int8", help=argparse.SUPPRESS)
    parser.add_argument("--float32", help=argparse.SUPPRESS)
    args = parser.parse_args()
    args.compute_type = args.compute_type or ("int8_float16" if args.device == "cuda" else "int8")
    global LENGTH_BUCKET
    LENGTH_BUCKET = args.length_bucket
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
    models = build_models(args.workdir, log)
    sentences = squad_sentences(args.sentences)
    sentences_file = args.workdir / "sentences.json"
    sentences_file.write_text(json.dumps(sentences))
    results: dict[str, Any] = {
        "command": " ".join([Path(sys.executable).name, *sys.argv]),
        "machine": f"{platform.machine()}, {os.cpu_count()} CPUs, {platform.python_version()}",
        "model_shape": model_shape(models["hf"]),
        "settings": {"sentences": len(sentences), "beam_size": args.beam_size, "batch_tokens": args.batch_tokens,
                     "length_bucket": args.length_bucket, "repeat": args.repeat,
                     "device": args.device, "ct2_compute_type": args.compute_type, "threads": args.threads or "all"},
        "engines": {},
    }
    runs: dict[str, list[dict[str, Any]]] = {}
    for round_ in range(args.repeat):  # engines alternate, so a burst of load on the box hits all alike
        for engine in [e for e in args.engines.split(",") if e]:
            log(f"running {engine} (round {round_ + 1}/{args.repeat}) ...")
            runs.setdefault(engine, []).append(run_worker(engine, args, models, sentences_file))
            log(f"  {json.dumps(runs[engine][-1])}")
    for engine, engine_runs in runs.items():
        results["engines"][engine] = max(engine_runs, key=lambda r: r["tokens_per_s"])
        results["engines"][engine]["tokens_per_s_all_runs"] = [r["tokens_per_s"] for r in engine_runs]
    engines = results["engines"]
    ratios = {}
    if "ct2-int8" in engines and "hf-fp32" in engines:
        a, b = engines["ct2-int8"], engines["hf-fp32"]
        ratios["ct2_int8_vs_hf_fp32_speed"] = round(a["tokens_per_s"] / b["tokens_per_s"], 2)
        ratios["ct2_int8_vs_hf_fp32_peak_rss"] = round(a["peak_rss_mib"] / b["peak_rss_mib"], 2)
    if "ct2-int8" in engines and "ct2-float32" in engines:
        a, b = engines["ct2-int8"], engines["ct2-float32"]
        ratios["ct2_int8_vs_ct2_float32_speed"] = round(a["tokens_per_s"] / b["tokens_per_s"], 2)
        ratios["ct2_int8_vs_ct2_float32_peak_rss"] = round(a["peak_rss_mib"] / b["peak_rss_mib"], 2)
    results["ratios"] = ratios
    if not args.skip_dedup:
        log("measuring dedup and cache on SQuAD dev ...")
        results["dedup_cache_squad_dev"] = dedup_and_cache(args.workdir, log)
    results["total_s"] = round(time.perf_counter() - started, 1)

    print(f"\n{results['machine']}; model {results['model_shape']}; {results['settings']}")
    print(f"{'engine':<12} {'sent/s':>8} {'tok/s':>8} {'peak RSS MiB':>13} {'load s':>7} {'translate s':>12}")
    for name, r in engines.items():
        print(f"{name:<12} {r['sentences_per_s']:>8} {r['tokens_per_s']:>8} {r['peak_rss_mib']:>13} "
              f"{r['load_s']:>7} {r['translate_s']:>12}")
    for name, value in ratios.items():
        print(f"{name}: {value}x")
    if "dedup_cache_squad_dev" in results:
        print(json.dumps(results["dedup_cache_squad_dev"], indent=2))
    if args.json:
        args.json.write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
