#!/usr/bin/env python3
"""Benchmark ``mtqa train`` against the alternative a user would pick, in one run.

1. Throughput and peak memory: ``mtqa train`` vs a plain sentence-transformers
   ``SentenceTransformerTrainer`` + ``MultipleNegativesRankingLoss``, on the same model
   (multilingual-e5-small, optionally cut to ``--layers``), the same real SQuAD pairs
   (en/es/it/pt, hybrid batches), the same batch size, sequence length, optimizer (fused
   AdamW, lr 3e-5, wd 0.01, 10% warm-up, clipping 1.0) and precision. Both runs use the plain
   in-batch loss (mtqa ``--mini-batch-size 0``), so the comparison measures the training
   loops. Target: mtqa >= 0.95x the Trainer's pairs/s.
2. GradCache: peak memory of ``mtqa train`` for batches of 32 ... 512 with GradCache
   (mini-batch 32) and without it.

Each measurement runs in its own process (peak memory is that process's: max RSS on CPU,
``torch.cuda.max_memory_allocated`` on GPU); runs alternate mtqa / Trainer ``--repeats``
times and the ratio of medians is reported. Throughput counts steps 2..N (step 1 warms up).

Usage::

    python bench/bench_train.py                       # CPU defaults (4 layers, 12 steps, B=32, L=64)
    python bench/bench_train.py --device cuda --layers 12 --steps 50 --batch-size 128 --max-length 128 \\
        --precision bf16 --sweep-layers 12 --sweep-length 128
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("MTQA_SHARED", ROOT.parent / "shared"))
SQUAD = SHARED / "data" / "squad-v1.1"


# ----------------------------------------------------------------------------- workers (child processes)
def _peak_mb(device: str) -> float:
    import resource

    import torch

    if device.startswith("cuda"):
        return torch.cuda.max_memory_allocated() / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _rate(times: list[float], batch_size: int) -> float:
    """Pairs/s over steps 2..N from per-step end times."""
    return (len(times) - 1) * batch_size / (times[-1] - times[0])


def _threads(a: dict) -> None:
    import torch

    if a.get("threads"):
        torch.set_num_threads(a["threads"])


def _clock(times: list[float], cpu: list[float]) -> None:
    times.append(time.perf_counter())
    cpu.append(time.process_time())


def _result(times: list[float], cpu: list[float], a: dict) -> dict:
    return {"pairs_per_s": _rate(times, a["batch_size"]), "pairs_per_cpu_s": _rate(cpu, a["batch_size"]),
            "peak_mb": _peak_mb(a["device"]), "steps": len(times)}


def worker_mtqa(a: dict) -> dict:
    from mt_qa.train import BiEncoderTrainer, TrainConfig

    _threads(a)
    out = Path(a["tmp"]) / f"mtqa-{time.time_ns()}"
    cfg = TrainConfig(batches=a["batches"], model=a["model"], out=str(out), max_query_length=a["max_length"],
                      max_passage_length=a["max_length"], max_steps=a["steps"], mini_batch_size=a["mini_batch_size"],
                      precision=a["precision"], device=a["device"], log_steps=1, save_steps=10**9, progress=False)
    times: list[float] = []
    cpu: list[float] = []
    BiEncoderTrainer(cfg, callbacks=[lambda state: _clock(times, cpu)]).train()
    return _result(times, cpu, a)


def worker_st(a: dict) -> dict:
    from datasets import Dataset
    from sentence_transformers import (
        SentenceTransformer,
        SentenceTransformerTrainer,
        SentenceTransformerTrainingArguments,
    )
    from sentence_transformers.sentence_transformer.losses import MultipleNegativesRankingLoss
    from transformers import TrainerCallback

    from mt_qa.train import BatchSource

    _threads(a)
    queries, positives = [], []
    for batch in BatchSource(a["batches"]).iter():
        if batch.step >= a["steps"]:
            break
        queries += batch.queries
        positives += batch.positives
    model = SentenceTransformer(a["model"], device=a["device"])
    model.max_seq_length = a["max_length"]
    times: list[float] = []
    cpu: list[float] = []

    class Clock(TrainerCallback):
        def on_step_end(self, args, state, control, **kwargs):
            _clock(times, cpu)

    args = SentenceTransformerTrainingArguments(
        output_dir=str(Path(a["tmp"]) / f"st-{time.time_ns()}"), per_device_train_batch_size=a["batch_size"],
        max_steps=a["steps"], learning_rate=3e-5, weight_decay=0.01, warmup_steps=0.1, max_grad_norm=1.0,
        logging_steps=10**6, save_strategy="no", report_to="none", disable_tqdm=True, seed=42,
        prompts={"anchor": "query: ", "positive": "passage: "}, dataloader_drop_last=True,
        bf16=a["precision"] == "bf16", fp16=a["precision"] == "fp16", use_cpu=a["device"] == "cpu",
    )
    trainer = SentenceTransformerTrainer(
        model=model, args=args, train_dataset=Dataset.from_dict({"anchor": queries, "positive": positives}),
        loss=MultipleNegativesRankingLoss(model, scale=20.0), callbacks=[Clock()],
    )
    trainer.train()
    return _result(times, cpu, a)


def run_worker(kind: str, args: dict) -> dict:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.run([sys.executable, __file__, "--worker", kind, json.dumps(args)], capture_output=True,
                          text=True, env=env, cwd=ROOT)
    if proc.returncode != 0:
        raise SystemExit(f"{kind} worker failed:\n{proc.stderr[-4000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


# ----------------------------------------------------------------------------- setup
def e5_model(layers: int | None) -> Path:
    tool = SHARED / "tools" / "make_e5_small.py"
    base = Path(os.environ.get("MTQA_E5_DIR", Path.home() / ".cache" / "mtqa" / "e5-small"))
    out = base if not layers else base.with_name(f"{base.name}-L{layers}")
    cmd = [sys.executable, str(tool), str(out)] + (["--layers", str(layers)] if layers else [])
    subprocess.run(cmd, check=True, capture_output=True)
    return out


def collect(tmp: Path) -> Path:
    from squad_setup import collect_squad

    return collect_squad(tmp / "collect", train_prefix=True)


def batches(qa: Path, tmp: Path, batch_size: int) -> Path:
    from mt_qa.batches import BuildBatchesStage

    out = tmp / f"batches-{batch_size}"
    if not (out / "manifest.json").is_file():
        BuildBatchesStage([str(qa)], out, strategy="hybrid", batch_size=batch_size, seed=0, progress=False).run()
    return out


def machine(device: str) -> str:
    import torch

    if device.startswith("cuda"):
        return f"{torch.cuda.get_device_name(0)}, torch {torch.__version__}"
    mem = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    return f"{os.cpu_count()}-core CPU ({platform.machine()}), {mem:.0f} GiB RAM, torch {torch.__version__}"


# ----------------------------------------------------------------------------- main
def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--layers", type=int, default=4, help="Keep the first N of e5-small's 12 layers (0 = all).")
    p.add_argument("--steps", type=int, default=12)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--max-length", type=int, default=64, help="Max tokens for queries and passages (both runs).")
    p.add_argument("--precision", choices=["fp32", "bf16", "fp16"], default="fp32")
    p.add_argument("--device", default="cuda" if _cuda() else "cpu")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--threads", type=int, default=0, help="torch threads in each run (0 = torch's default).")
    p.add_argument("--sweep", default="32,64,128,256,512",
                   help="Batch sizes of the GradCache memory sweep ('' to skip it).")
    p.add_argument("--sweep-layers", type=int, default=2)
    p.add_argument("--sweep-length", type=int, default=32)
    p.add_argument("--sweep-steps", type=int, default=2)
    p.add_argument("--no-sweep-baseline", action="store_true", help="Skip the no-GradCache runs of the sweep.")
    p.add_argument("--worker", help=argparse.SUPPRESS)
    p.add_argument("worker_args", nargs="?", help=argparse.SUPPRESS)
    a = p.parse_args()
    if a.worker:
        fn = {"mtqa": worker_mtqa, "st": worker_st}[a.worker]
        print(json.dumps(fn(json.loads(a.worker_args))))
        return

    started = time.perf_counter()
    sizes = [int(x) for x in a.sweep.split(",") if x.strip()]
    mtqa_runs: list[dict] = []
    st_runs: list[dict] = []
    sweep: list[dict] = []
    with tempfile.TemporaryDirectory(prefix="mtqa-bench-train-") as tmpdir:
        tmp = Path(tmpdir)
        qa = collect(tmp)
        common = dict(max_length=a.max_length, steps=a.steps, batch_size=a.batch_size, precision=a.precision,
                      device=a.device, tmp=str(tmp), threads=a.threads)
        if a.repeats:
            model = e5_model(a.layers or None)
            data = str(batches(qa, tmp, a.batch_size))
            for i in range(a.repeats):
                mtqa_runs.append(run_worker("mtqa", {**common, "model": str(model), "batches": data,
                                                     "mini_batch_size": 0}))
                st_runs.append(run_worker("st", {**common, "model": str(model), "batches": data}))
                print(f"repeat {i + 1}: mtqa {mtqa_runs[-1]['pairs_per_s']:.2f} pairs/s, "
                      f"Trainer {st_runs[-1]['pairs_per_s']:.2f} pairs/s", file=sys.stderr)
        if sizes:
            sweep_model = e5_model(a.sweep_layers or None)
            for size in sizes:
                row: dict = {"batch_size": size}
                args = dict(common, model=str(sweep_model), max_length=a.sweep_length, steps=a.sweep_steps,
                            batch_size=size, batches=str(batches(qa, tmp, size)))
                row["gradcache"] = run_worker("mtqa", {**args, "mini_batch_size": 32})
                if not a.no_sweep_baseline:
                    row["plain"] = run_worker("mtqa", {**args, "mini_batch_size": 0})
                sweep.append(row)
                print(f"sweep B={size}: GradCache {row['gradcache']['peak_mb']:.0f} MB"
                      + (f", plain {row['plain']['peak_mb']:.0f} MB" if "plain" in row else ""), file=sys.stderr)

    mem_kind = "peak GPU memory allocated" if a.device.startswith("cuda") else "peak RSS"
    lines = [
        f"command: `python bench/bench_train.py {' '.join(sys.argv[1:])}`".rstrip(),
        f"machine: {machine(a.device)}, device {a.device}, torch threads {a.threads or 'default'}",
    ]
    if mtqa_runs:
        lines += _throughput_table(a, mtqa_runs, st_runs, mem_kind)
    if sweep:
        lines += _sweep_table(a, sweep, mem_kind)
    lines += ["", f"total benchmark time: {time.perf_counter() - started:.0f} s"]
    print("\n".join(lines))


def _throughput_table(a: argparse.Namespace, mtqa_runs: list[dict], st_runs: list[dict], mem_kind: str) -> list[str]:
    def med(runs: list[dict], key: str) -> float:
        return statistics.median(r[key] for r in runs)

    def each(runs: list[dict], key: str) -> str:
        return ", ".join(f"{r[key]:.2f}" for r in runs)

    lines = [
        "",
        f"### Throughput: e5-small ({a.layers or 12} layers), batch {a.batch_size}, max length {a.max_length}, "
        f"{a.steps} steps (rate over steps 2-{a.steps}), {a.precision}, {a.repeats} alternating repeats",
        "",
        f"| run | pairs/s wall (each) | median | pairs per CPU-s (each) | median | {mem_kind} MB |",
        "|---|---|---|---|---|---|",
    ]
    for name, runs in (("mtqa train (--mini-batch-size 0)", mtqa_runs),
                       ("SentenceTransformerTrainer + MNRL", st_runs)):
        lines.append(f"| {name} | {each(runs, 'pairs_per_s')} | {med(runs, 'pairs_per_s'):.2f} | "
                     f"{each(runs, 'pairs_per_cpu_s')} | {med(runs, 'pairs_per_cpu_s'):.2f} | "
                     f"{med(runs, 'peak_mb'):.0f} |")
    wall = med(mtqa_runs, "pairs_per_s") / med(st_runs, "pairs_per_s")
    cpu = med(mtqa_runs, "pairs_per_cpu_s") / med(st_runs, "pairs_per_cpu_s")
    mem = med(mtqa_runs, "peak_mb") / med(st_runs, "peak_mb")
    lines += ["", f"**ratio mtqa / Trainer: {wall:.3f}x pairs/s (wall), {cpu:.3f}x pairs per CPU-second, "
              f"{mem:.3f}x peak memory** (target >= 0.95x throughput)"]
    return lines


def _sweep_table(a: argparse.Namespace, sweep: list[dict], mem_kind: str) -> list[str]:
    lines = [
        "",
        f"### GradCache: {mem_kind} vs batch size (e5-small {a.sweep_layers or 12} layers, max length "
        f"{a.sweep_length}, {a.sweep_steps} steps)",
        "",
        "| batch | GradCache (mini-batch 32) MB | (+ vs first) | pairs/s | no GradCache MB | (+ vs first) | pairs/s |",
        "|---|---|---|---|---|---|---|",
    ]
    for row in sweep:
        g, pl = row["gradcache"], row.get("plain")
        cells = (f"| {row['batch_size']} | {g['peak_mb']:.0f} | +{g['peak_mb'] - sweep[0]['gradcache']['peak_mb']:.0f}"
                 f" | {g['pairs_per_s']:.1f} | ")
        if pl:
            cells += (f"{pl['peak_mb']:.0f} | +{pl['peak_mb'] - sweep[0]['plain']['peak_mb']:.0f} | "
                      f"{pl['pairs_per_s']:.1f} |")
        else:
            cells += "- | - | - |"
        lines.append(cells)
    first, last = sweep[0], sweep[-1]
    lines += ["", f"GradCache peak memory, batch {last['batch_size']} / batch {first['batch_size']}: "
              f"{last['gradcache']['peak_mb'] / first['gradcache']['peak_mb']:.3f}x"]
    if "plain" in first:
        lines.append(f"without GradCache: {last['plain']['peak_mb'] / first['plain']['peak_mb']:.3f}x")
    return lines


def _cuda() -> bool:
    try:
        import torch

        return torch.cuda.is_available()
    except ImportError:
        return False


if __name__ == "__main__":
    main()
