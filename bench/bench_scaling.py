"""Scaling of sharded steps: filter and translate over 1 and 2 local workers and a local Ray
instance (wall time, rows/s), and memory per worker as the input grows 10x.

Each configuration runs `mtqa run` on a one-step pipeline in its own driver process; memory per
worker is the largest peak RSS among that driver's child processes (the local executor's
workers). Ray workers are not children of the driver, so Ray rows report time only.

    python bench/bench_scaling.py [--out docs/benchmarks/scaling.md] [--skip-ray] [--skip-translate]
    python bench/bench_scaling.py --floors [--repeat N] [--out docs/benchmarks/scaling-floors.md]
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
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
SQUAD = ROOT.parent / "shared" / "data" / "squad-v1.1"
sys.path.insert(0, str(ROOT))


def collect(out: Path, copies: int) -> int:
    """SQuAD dev English, ``copies`` times under distinct dataset names (so 10 copies = 10x rows)."""
    from mt_qa.collect import CollectStage, SourceSpec
    from mt_qa.shards import ShardStore

    specs = [SourceSpec(str(SQUAD / "dev-v1.1.en.json.gz"), dataset=f"squad{i}") for i in range(copies)]
    CollectStage(specs, out, shard_size=1000, progress=False).run()
    return ShardStore.open(out).manifest["totals"]["rows"]


def pipeline(path: Path, run_dir: Path, step: str, stage: str, args: list[str], options: dict) -> Path:
    import yaml

    path.write_text(
        yaml.safe_dump(
            {
                "name": step,
                "run_dir": str(run_dir),
                "steps": [{"name": step, "stage": stage, "args": args, "options": options}],
            }
        )
    )
    return path


def driver(spec: dict) -> dict:
    """Run one configuration (in this process): mtqa run, then time and children's peak RSS."""
    from mt_qa.run.config import load_pipeline
    from mt_qa.run.executors import LocalExecutor, RayExecutor
    from mt_qa.run.runner import PipelineRunner

    pipe = load_pipeline(spec["pipeline"])
    if spec["executor"] == "ray":
        import ray

        ray.init(num_cpus=spec["workers"], include_dashboard=False, log_to_driver=False)
        executor = RayExecutor(spec["workers"])
    else:
        executor = LocalExecutor(spec["workers"])
    started = time.perf_counter()
    PipelineRunner(pipe, executor, echo=lambda m: None).run()
    seconds = time.perf_counter() - started
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    peak_child = children.ru_maxrss / 1024
    return {"seconds": seconds, "worker_peak_mib": peak_child if spec["executor"] == "local" else None,
            "task_cpu_seconds": children.ru_utime + children.ru_stime}  # fmt: skip


def run_config(tmp: Path, name: str, step: str, stage: str, args: list[str], options: dict, executor: str,
               workers: int) -> dict:  # fmt: skip
    run_dir = tmp / f"run-{name}"
    shutil.rmtree(run_dir, ignore_errors=True)
    path = pipeline(tmp / f"{name}.yaml", run_dir, step, stage, args, options)
    spec = {"pipeline": str(path), "executor": executor, "workers": workers}
    out = subprocess.run([sys.executable, __file__, "--driver", json.dumps(spec)], capture_output=True, text=True)
    if out.returncode != 0:
        raise SystemExit(f"{name} failed:\n{out.stderr[-3000:]}")
    result = json.loads(out.stdout.strip().splitlines()[-1])
    from mt_qa.shards import ShardStore

    result["rows"] = ShardStore.open(run_dir / step).manifest["totals"]["rows"]
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--driver", help=argparse.SUPPRESS)
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "benchmarks" / "scaling.md")
    parser.add_argument("--skip-ray", action="store_true")
    parser.add_argument("--skip-translate", action="store_true")
    parser.add_argument("--skip-filter", action="store_true")
    parser.add_argument("--repeat", type=int, default=1,
                        help="--floors: run each configuration N times and keep the one of least task CPU (the "
                        "machine's other load only ever adds)")  # fmt: skip
    parser.add_argument("--floors", action="store_true",
                        help="Only the serial floors: collect (two inputs) and filter (dedup on) at 1/2/4 tasks, "
                        "CPU-seconds summed over tasks -> docs/benchmarks/scaling-floors.md")  # fmt: skip
    args = parser.parse_args()
    if args.driver:
        print(json.dumps(driver(json.loads(args.driver))))
        return
    if args.floors:
        default = args.out == parser.get_default("out")
        floors(ROOT / "docs" / "benchmarks" / "scaling-floors.md" if default else args.out, max(1, args.repeat))
        return
    tmp = Path(tempfile.mkdtemp(prefix="mtqa-scaling-"))
    rows: list[tuple[str, str, int, dict]] = []
    try:
        inputs = {} if args.skip_filter else {1: tmp / "qa-1x", 10: tmp / "qa-10x"}
        sizes = {k: collect(v, k) for k, v in inputs.items()}
        configs = [("local", 1), ("local", 2)] + ([] if args.skip_ray else [("ray", 2)])
        for size, path in inputs.items():
            for executor, workers in configs:
                if executor == "ray" and size != 1:
                    continue
                name = f"filter-{size}x-{executor}{workers}"
                opts = {"detector": "fasttext", "no-dedup": True}
                res = run_config(tmp, name, "filter", "filter", [str(path)], opts, executor, workers)
                res["rows_in"] = sizes[size]
                rows.append(("filter (fastText, no dedup)", f"{size}× ({sizes[size]:,} rows)", workers,
                             {**res, "ex": executor}))
                print(name, res, flush=True)
        if not args.skip_translate:
            from mt_qa.testing.nllb import build_nllb_checkpoint
            from mt_qa.translate.models import convert

            texts = [line for line in (SQUAD.parent / "tatoeba" / "tatoeba.deu-eng.eng").read_text().splitlines()]
            ckpt = build_nllb_checkpoint(tmp / "nllb-hf", texts[:800], spm_vocab_size=300)
            model = convert(ckpt, tmp / "nllb-ct2", "int8").path
            small = tmp / "qa-train"
            from mt_qa.collect import CollectStage, SourceSpec
            from mt_qa.shards import ShardStore

            CollectStage([SourceSpec(str(SQUAD / "train-v1.1.prefix.en.json.gz"))], small, shard_size=400,
                         progress=False).run()  # fmt: skip
            n_small = ShardStore.open(small).manifest["totals"]["rows"]
            for executor, workers in configs:
                name = f"translate-{executor}{workers}"
                opts = {"langs": "de", "model": str(model), "no-cache": True, "beam-size": 1}
                res = run_config(tmp, name, "translate", "translate", [str(small)], opts, executor, workers)
                res["rows_in"] = n_small
                rows.append(
                    ("translate (tiny NLLB, int8)", "SQuAD train prefix → de", workers, {**res, "ex": executor})
                )
                print(name, res, flush=True)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)

    lines = [
        "# Benchmark: scaling of sharded steps (`mtqa run`)",
        "",
        f"Command: `python bench/bench_scaling.py`. Machine: {platform.machine()}, {os.cpu_count()} cores, "
        f"Python {platform.python_version()}.",
        "Filter input: SQuAD dev English (9,380 rows) at 1×, ten copies under distinct dataset names at 10×, "
        "shards of 1,000 items. Translate: a random-weight NLLB-architecture model (tiny; speed, not quality), "
        "SQuAD train prefix into German, no cache. Memory per worker = largest peak RSS among the worker processes.",
        "",
        "| step | input | executor | workers | seconds | input rows/s | peak RSS per worker |",
        "|---|---|---|---|---|---|---|",
    ]
    for step, size, workers, r in rows:
        mem = f"{r['worker_peak_mib']:,.0f} MiB" if r.get("worker_peak_mib") else "n/a (Ray workers)"
        rate = r["rows_in"] / r["seconds"]
        lines.append(f"| {step} | {size} | {r['ex']} | {workers} | {r['seconds']:.1f} | {rate:,.0f} | {mem} |")
    lines.append("")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text("\n".join(lines))
    print("\n".join(lines))


def least_cpu(repeat: int, run: Callable[..., dict], *args: Any) -> dict:
    """The run of least CPU among ``repeat``: CPU time is what the work costs plus what the machine's load adds."""
    return min((run(*args) for _ in range(repeat)), key=lambda r: r["task_cpu_seconds"])


def startup_cpu(module: str) -> dict:
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    subprocess.run([sys.executable, "-c", f"import mt_qa.cli, {module}, pyarrow; pyarrow.array([''])"], check=True)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return {"task_cpu_seconds": after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime}


def floors(out: Path, repeat: int = 1) -> None:
    """Work that does not split across tasks: if every task of N reads every input (collect) or
    rescans every row for the dedup plan (filter), the CPU-seconds summed over the tasks grow with
    N instead of staying flat. Wall time on a machine with fewer cores than tasks says little;
    the summed CPU time is the measure."""
    tmp = Path(tempfile.mkdtemp(prefix="mtqa-floors-"))
    rows = []
    collect_inputs = {  # step label -> sources, --parallel files
        "collect (SQuAD dev en + es)": (["dev-v1.1.en.json.gz"], ["es=dev-v1.1.es.json.gz"]),
        "collect (SQuAD dev + train prefix, en + es/it/pt)": (
            ["dev-v1.1.en.json.gz", "train-v1.1.prefix.en.json.gz"],
            ["es=dev-v1.1.es.json.gz", "it=dev-v1.1.it.json.gz", "pt=train-v1.1.prefix.pt.json.gz"]),
    }  # fmt: skip
    try:
        qa = None
        for n, (step, (sources, parallel)) in enumerate(collect_inputs.items()):
            collect_args = [str(SQUAD / name) for name in sources]
            collect_opts = {"parallel": [f"{p.split('=')[0]}={SQUAD / p.split('=')[1]}" for p in parallel],
                            "shard-size": 1000}  # fmt: skip
            for tasks in (1, 2, 4):
                res = least_cpu(repeat, run_config, tmp, f"collect{n}-{tasks}", "collect", "collect", collect_args,
                                collect_opts, "local", tasks)  # fmt: skip
                rows.append((step, tasks, res))
                print(step, tasks, res, flush=True)
                if qa is None:
                    qa = tmp / "qa"
                    shutil.copytree(tmp / f"run-collect{n}-{tasks}" / "collect", qa)
        for tasks in (1, 2, 4):
            opts = {"detector": "fasttext"}  # dedup on (exact + near-duplicate), the default
            res = least_cpu(repeat, run_config, tmp, f"filter-{tasks}", "filter", "filter", [str(qa)], opts, "local",
                            tasks)  # fmt: skip
            rows.append(("filter (fastText, dedup on)", tasks, res))
            print("filter", tasks, res, flush=True)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    # What any task costs before it does work: a fresh interpreter importing the stage and making its
    # first Arrow array from Python values (pyarrow imports pandas then, ~0.4 s, in every process).
    startup = {}
    for step, module in ([(step, "mt_qa.collect.stage") for step in collect_inputs]
                         + [("filter (fastText, dedup on)", "mt_qa.filter.stage")]):  # fmt: skip
        startup[step] = least_cpu(repeat, startup_cpu, module)["task_cpu_seconds"]
    load = os.getloadavg()
    lines = [
        "# Benchmark: serial floors of sharded steps",
        "",
        f"Command: `python bench/bench_scaling.py --floors{f' --repeat {repeat}' if repeat > 1 else ''}`. "
        f"Machine: {platform.machine()}, {os.cpu_count()} cores "
        f"(shared; load average {load[0]:.1f} at the end), Python {platform.python_version()}. Local executor; "
        f"each configuration run {repeat} time(s), the run of least task CPU kept; "
        "`task CPU s` = user + system time summed over the step's task processes; `ratio` = that sum over the "
        "1-task sum (1.0 = the work splits; N = every task does all of it); `per extra task` = the growth per "
        "added task less the `startup` CPU of one task process (a fresh interpreter importing the stage and making "
        "its first Arrow array, when pyarrow imports pandas): the work every task repeats; `startup floor` = the "
        "ratio a perfect split still has, each extra task costing its startup: (1-task CPU + (N - 1) x startup) / "
        "1-task CPU.",
        "",
        "| step | tasks | wall s | task CPU s | ratio | startup floor | startup CPU s | per extra task, less startup "
        "| rows |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    base: dict[str, float] = {}
    for step, tasks, r in rows:
        base.setdefault(step, r["task_cpu_seconds"])
        extra = "" if tasks == 1 else f"{(r['task_cpu_seconds'] - base[step]) / (tasks - 1) - startup[step]:.2f}"
        cpu = r["task_cpu_seconds"]
        floor = (base[step] + (tasks - 1) * startup[step]) / base[step]
        lines.append(f"| {step} | {tasks} | {r['seconds']:.1f} | {cpu:.1f} | {cpu / base[step]:.2f} | {floor:.2f} | "
                     f"{startup[step]:.2f} | {extra} | {r['rows']:,} |")  # fmt: skip
    lines.append("")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text("\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
