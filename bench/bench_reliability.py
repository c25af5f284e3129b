"""Reliability figures: bad input over the CLIs, SIGKILL/resume trials, concurrent writers, orphan workers.

Every case runs ``python -m mt_qa.cli ...`` as a user would and is classified:

- ``clear``: non-zero exit, exactly one ``Error:`` line, no traceback;
- ``traceback``: a Python traceback on stderr;
- ``silent``: exit 0 on input that is wrong;
- ``unclear``: non-zero exit without one ``Error:`` line; ``hang``: no exit within the time limit.

    python bench/bench_reliability.py [--kill-trials 10] [--concurrent-trials 4] [--out docs/benchmarks/reliability.md]

Needs ../shared/data (SQuAD); the Tatoeba/--device cases on evaluate also use $MTQA_E5_DIR when set.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SQUAD = ROOT.parent / "shared" / "data" / "squad-v1.1"
FIX = ROOT / "tests" / "fixtures" / "collect"
sys.path.insert(0, str(ROOT))
PY = [sys.executable, "-m", "mt_qa.cli"]


def mtqa(*argv: str, timeout: float = 120, cwd: Path | None = None) -> tuple[int | None, str]:
    try:
        done = subprocess.run([*PY, *argv], capture_output=True, text=True, timeout=timeout, cwd=cwd)
    except subprocess.TimeoutExpired:
        return None, ""
    return done.returncode, done.stderr


def classify(code: int | None, err: str) -> str:
    if code is None:
        return "hang"
    if "Traceback (most recent call last)" in err:
        return "traceback"
    if code == 0:
        return "silent"
    return "clear" if sum(line.startswith("Error:") for line in err.splitlines()) == 1 else "unclear"


# ----------------------------------------------------------------------------- store damage

def _manifest(store: Path) -> dict:
    return json.loads((store / "manifest.json").read_text())


def _write_manifest(store: Path, manifest) -> None:
    (store / "manifest.json").write_text(json.dumps(manifest))


def _first_file(store: Path) -> Path:
    return sorted((store / "data").rglob("*.arrow"))[0]


def _letters(store: Path) -> None:
    path = _first_file(store)
    data = path.read_bytes()
    i = data.index(b"the ")
    path.write_bytes(data[:i] + b"THE " + data[i + 4:])


def _flip(store: Path) -> None:
    path = _first_file(store)
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))


def _truncate(store: Path) -> None:
    path = _first_file(store)
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


def _delete(store: Path) -> None:
    _first_file(store).unlink()


def _extra(store: Path) -> None:
    path = _first_file(store)
    shutil.copy(path, path.with_name("part-09999.arrow"))


def _drop_shard(store: Path) -> None:
    m = _manifest(store)
    m["shards"].pop(sorted(m["shards"])[0])
    _write_manifest(store, m)


def _drop_shard_fix_totals(store: Path) -> None:
    m = _manifest(store)
    name = sorted(m["shards"])[0]
    for info in m["shards"].pop(name)["files"].values():
        m["totals"]["rejects" if info.get("rejects") else "rows"] -= info["rows"]
    _write_manifest(store, m)
    shutil.rmtree(store / "_done")


def _bad_json(store: Path) -> None:
    (store / "manifest.json").write_text("{not json")


def _no_totals(store: Path) -> None:
    m = _manifest(store)
    del m["totals"]
    _write_manifest(store, m)


def _rows_string(store: Path) -> None:
    m = _manifest(store)
    shard = m["shards"][sorted(m["shards"])[0]]
    info = next(iter(shard["files"].values()))
    info["rows"] = str(info["rows"])
    _write_manifest(store, m)


def _escape(store: Path) -> None:
    m = _manifest(store)
    files = m["shards"][sorted(m["shards"])[0]]["files"]
    rel = next(iter(files))
    files["../../../../etc/hostname"] = files.pop(rel)
    _write_manifest(store, m)


def _empty_manifest(store: Path) -> None:
    (store / "manifest.json").write_text("")


def _non_utf8_manifest(store: Path) -> None:
    (store / "manifest.json").write_bytes(b"\xff\xfe{}")


DAMAGE: dict[str, Callable[[Path], None]] = {
    "8 letters changed in an Arrow file": _letters, "one byte flipped": _flip, "Arrow file truncated": _truncate,
    "Arrow file deleted": _delete, "unlisted extra Arrow file": _extra, "shard removed from manifest": _drop_shard,
    "shard removed from manifest, totals fixed, markers gone": _drop_shard_fix_totals,
    "manifest not JSON": _bad_json, "manifest without totals": _no_totals, "rows as a string": _rows_string,
    "manifest path outside the store": _escape, "empty manifest": _empty_manifest,
    "manifest not UTF-8": _non_utf8_manifest,
}


def store_cases(work: Path, clean: Path) -> list[tuple[str, str, list[str]]]:
    cases = []
    for damage, fn in DAMAGE.items():
        store = work / f"damaged-{len(cases)}"
        shutil.copytree(clean, store)
        fn(store)
        for command, argv in {
            "filter": ["filter", str(store), "-o", str(work / f"o{len(cases)}f"), "-q", "--skip", "langid"],
            "build-batches": ["build-batches", str(store), "-o", str(work / f"o{len(cases)}b"), "--batch-size", "4",
                              "-q"],
            "inspect": ["inspect", str(store)],
            "build-lareqa": ["evaluate", "build-lareqa", str(store), "-o", str(work / f"o{len(cases)}l"),
                             "--split", "train", "--articles", "1", "-q"],
        }.items():
            cases.append(("corrupted/edited store", f"{command}: {damage}", argv))
        # Later cases reuse the same store: copy per damage once, commands read it only.
    return cases


def option_cases(work: Path, clean: Path, e5: str | None) -> list[tuple[str, str, list[str]]]:
    src = str(FIX / "squad_v2.json")
    foreign = work / "foreign"
    (foreign / "src").mkdir(parents=True)
    (foreign / "thesis.tex").write_text("thesis")
    (work / "afile").write_text("x")
    cases = [
        ("options", "collect --num-shards 0", ["collect", src, "-o", str(work / "n0"), "--num-shards", "0", "-q"]),
        ("options", "collect --num-shards -1", ["collect", src, "-o", str(work / "n1"), "--num-shards", "-1", "-q"]),
        ("options", "collect --shard-index 5 of 2", ["collect", src, "-o", str(work / "n2"), "--num-shards", "2",
                                                     "--shard-index", "5", "-q"]),
        ("options", "collect --shard-size 0", ["collect", src, "-o", str(work / "n3"), "--shard-size", "0", "-q"]),
        ("options", "collect of a missing file", ["collect", str(work / "nope.json"), "-o", str(work / "n4"), "-q"]),
        ("options", "filter --workers 0", ["filter", str(clean), "-o", str(work / "n5"), "--workers", "0", "-q"]),
        ("options", "build-batches --langs xx", ["build-batches", str(clean), "-o", str(work / "n6"), "--langs", "xx",
                                                 "-q"]),
        ("options", "build-batches --langs de (absent)", ["build-batches", str(clean), "-o", str(work / "n7"),
                                                          "--langs", "de", "-q"]),
        ("options", "train --device cuda (no GPU)", ["train", "--batches", str(clean), "--model", str(work / "m"),
                                                     "--out", str(work / "n8"), "--device", "cuda"]),
        ("options", "train --device bogus", ["train", "--batches", str(clean), "--model", str(work / "m"),
                                             "--out", str(work / "n9"), "--device", "bogus"]),
        ("output directory", "collect -o foreign dir --overwrite", ["collect", src, "-o", str(foreign),
                                                                   "--overwrite", "-q"]),
        ("output directory", "collect -o foreign dir", ["collect", src, "-o", str(foreign), "-q"]),
        ("output directory", "collect -o a file", ["collect", src, "-o", str(work / "afile"), "-q"]),
        ("output directory", "build-lareqa -o foreign dir --overwrite",
         ["evaluate", "build-lareqa", str(clean), "-o", str(foreign), "--split", "train", "--articles", "1",
          "--overwrite", "-q"]),
        ("output directory", "filter -o its own input", ["filter", str(clean), "-o", str(clean), "-q"]),
    ]
    pipes = {
        "pipeline not UTF-8": b"name: caf\xe9\nsteps: [{name: c, stage: collect, args: [x]}]\n",
        "pipeline not YAML": b"steps: [\n",
        "pipeline run_dir is a file": f"run_dir: {work / 'afile'}\nsteps: [{{name: c, stage: collect, args: [{src}]}}]"
                                      .encode(),
        "step named ..": f"run_dir: {work / 'r1'}\nsteps: [{{name: '..', stage: collect, args: [{src}], options: "
                         "{overwrite: true}}]".encode(),
        "step named .": f"run_dir: {work / 'r2'}\nsteps: [{{name: '.', stage: collect, args: [{src}]}}]".encode(),
        "step named logs": f"run_dir: {work / 'r3'}\nsteps: [{{name: logs, stage: collect, args: [{src}]}}]".encode(),
        "unknown stage": b"steps: [{name: c, stage: nope}]\n",
        "empty steps": b"steps: []\n",
    }
    for label, body in pipes.items():
        path = work / f"{len(cases)}.yaml"
        path.write_bytes(body)
        cases.append(("pipeline", label, ["run", str(path)]))
    ok = work / "ok.yaml"
    ok.write_text(f"run_dir: {work / 'r4'}\nsteps: [{{name: c, stage: collect, args: [{src}]}}]\n")
    cases += [("pipeline", "run --workers -3", ["run", str(ok), "--workers", "-3"]),
              ("pipeline", "run --workers 0", ["run", str(ok), "--workers", "0"]),
              ("pipeline", "pipeline is a directory", ["run", str(work)])]
    tat = work / "tatoeba-empty"
    tat.mkdir()
    (tat / "tatoeba.deu-eng.deu").write_text("")
    (tat / "tatoeba.deu-eng.eng").write_text("")
    tat2 = work / "tatoeba-uneven"
    tat2.mkdir()
    (tat2 / "tatoeba.deu-eng.deu").write_text("a\nb\n")
    (tat2 / "tatoeba.deu-eng.eng").write_text("a\n")
    if e5:
        for label, d in (("empty Tatoeba files", tat), ("Tatoeba sides of different length", tat2)):
            cases.append(("tatoeba", label, ["evaluate", "tatoeba", str(d), "-m", e5, "-o", str(work / f"t{label}"),
                                             "-q", "--no-cache"]))
        cases.append(("options", "evaluate --device cuda (no GPU)",
                      ["evaluate", "tatoeba", str(tat), "-m", e5, "-o", str(work / "tcuda"), "--device", "cuda"]))
    return cases


# ----------------------------------------------------------------------------- kill / resume

def collect_cmd(out: Path, shard_size: int = 400) -> list[str]:
    return [*PY, "collect", "-q", str(SQUAD / "dev-v1.1.en.json.gz"), "--parallel",
            f"es={SQUAD / 'dev-v1.1.es.json.gz'}", "--shard-size", str(shard_size), "-o", str(out)]


def ids(store: Path) -> list[str]:
    from mt_qa.shards import ShardStore

    return ShardStore.open(store).table(columns=["id"])["id"].to_pylist()


def digest(root: Path) -> dict[str, str]:
    from tests.helpers import tree_digest

    return tree_digest(root)


def kill_trials(work: Path, trials: int) -> dict[str, int]:
    reference = work / "kill-ref"
    subprocess.run(collect_cmd(reference), check=True, capture_output=True)
    ref_ids, ref_digest = ids(reference), digest(reference)
    out = Counter(trials=0, rows_lost=0, rows_duplicated=0, byte_identical=0, temp_files_left=0)
    rng = random.Random(15)
    for t in range(trials):
        target = work / f"kill-{t}"
        proc = subprocess.Popen(collect_cmd(target), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(rng.uniform(0.8, 3.0))
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        subprocess.run(collect_cmd(target), check=True, capture_output=True)
        got = ids(target)
        out["trials"] += 1
        out["rows_lost"] += len(set(ref_ids) - set(got))
        out["rows_duplicated"] += len(got) - len(set(got))
        out["byte_identical"] += digest(target) == ref_digest
        out["temp_files_left"] += len(list(target.rglob(".*.tmp")))
    return dict(out)


def orphan_trials(work: Path, trials: int) -> dict[str, int]:
    """SIGKILL / SIGTERM to `mtqa run` while its workers run: are any workers left?"""
    out = Counter(trials=0, workers_started=0, workers_left_running=0)
    for t in range(trials):
        sig = (signal.SIGKILL, signal.SIGTERM)[t % 2]
        fifo = work / f"fifo-{t}.jsonl"
        os.mkfifo(fifo)
        pipe = work / f"orphan-{t}.yaml"
        pipe.write_text(f"run_dir: {work / f'orun-{t}'}\nsteps: [{{name: c, stage: collect, args: ['{fifo}']}}]\n")
        proc = subprocess.Popen([*PY, "run", str(pipe), "--workers", "2"], stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL)
        kids: list[int] = []
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not kids:
            time.sleep(0.2)
            kids = [int(x) for task in Path(f"/proc/{proc.pid}/task").iterdir()
                    for x in (task / "children").read_text().split()]
        time.sleep(1.0)
        proc.send_signal(sig)
        proc.wait()
        time.sleep(3.0)
        out["trials"] += 1
        out["workers_started"] += len(kids)
        for pid in kids:
            try:
                state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
            except FileNotFoundError:
                continue
            if state not in ("Z", "X"):
                out["workers_left_running"] += 1
                os.kill(pid, signal.SIGKILL)
    return dict(out)


def concurrent_trials(work: Path, trials: int) -> dict[str, int]:
    out = Counter()
    small = [str(FIX / "squad_v2.json")]
    ref_dev, ref_small = work / "conc-ref-dev", work / "conc-ref-small"
    subprocess.run(collect_cmd(ref_dev, 300), check=True, capture_output=True)
    subprocess.run([*PY, "collect", "-q", *small, "--shard-size", "300", "-o", str(ref_small)], check=True,
                   capture_output=True)
    for key in ("same_crashed", "same_tracebacks", "same_output_differs", "diff_refused_with_error",
                "diff_tracebacks", "diff_mixed"):
        out[key] = 0
    for t in range(trials):
        # Same command twice at once.
        target = work / f"same-{t}"
        procs = [subprocess.Popen(collect_cmd(target, 300), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
                 for _ in range(2)]
        texts = [p.communicate()[0] for p in procs]
        out["same_trials"] += 1
        out["same_crashed"] += sum(p.returncode != 0 for p in procs)
        out["same_tracebacks"] += sum("Traceback" in x for x in texts)
        out["same_output_differs"] += digest(target) != digest(ref_dev)
        # Different inputs at once.
        target = work / f"diff-{t}"
        cmds = [collect_cmd(target, 300), [*PY, "collect", "-q", *small, "--shard-size", "300", "-o", str(target)]]
        procs = [subprocess.Popen(c, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True) for c in cmds]
        texts = [p.communicate()[0] for p in procs]
        out["diff_trials"] += 1
        out["diff_refused_with_error"] += sum(p.returncode != 0 and "Error:" in x and "Traceback" not in x
                                              for p, x in zip(procs, texts, strict=True))
        out["diff_tracebacks"] += sum("Traceback" in x for x in texts)
        from mt_qa.shards import ShardStore

        try:
            store = ShardStore.open(target)
            sources = sorted(ref["path"] for ref in store.manifest["inputs"])
            # The winner's own single-run output: the directory must be exactly that.
            ref = ref_dev if any("dev-v1.1" in s for s in sources) else ref_small
            out["diff_mixed"] += digest(target) != digest(ref)
        except Exception:  # noqa: BLE001 - a broken directory counts as mixed
            out["diff_mixed"] += 1
    return dict(out)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kill-trials", type=int, default=10)
    parser.add_argument("--orphan-trials", type=int, default=4)
    parser.add_argument("--concurrent-trials", type=int, default=4)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    e5 = os.environ.get("MTQA_E5_DIR")
    load = " ".join(f"{x:.2f}" for x in os.getloadavg())
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        clean = work / "clean"
        subprocess.run([*PY, "collect", "-q", str(FIX / "squad_v2.json"), "--shard-size", "2", "-o", str(clean)],
                       check=True, capture_output=True)
        cases = store_cases(work, clean) + option_cases(work, clean, e5)
        results = []
        for cls, label, argv in cases:
            code, err = mtqa(*argv)
            verdict = classify(code, err)
            first = next((line for line in err.splitlines() if line.startswith("Error:")), err.strip()[-160:])
            results.append((cls, label, verdict, first))
            print(f"{verdict:9s} {label}: {first[:150]}", flush=True)
        kills = kill_trials(work, args.kill_trials)
        print("kill", kills, flush=True)
        orphans = orphan_trials(work, args.orphan_trials)
        print("orphans", orphans, flush=True)
        conc = concurrent_trials(work, args.concurrent_trials)
        print("concurrent", conc, flush=True)
    counts = Counter(v for _, _, v, _ in results)
    classes = Counter(c for c, _, _, _ in results)
    lines = ["# Reliability: bad input, kills, concurrent writers", "",
             f"`python bench/bench_reliability.py --kill-trials {args.kill_trials} --orphan-trials "
             f"{args.orphan_trials} --concurrent-trials {args.concurrent_trials}`"
             f"{' with MTQA_E5_DIR set' if e5 else ''}; load at start {load}.", "",
             f"**{len(results)} bad-input cases** in {len(classes)} classes "
             f"({', '.join(f'{c} {n}' for c, n in classes.items())}): "
             + ", ".join(f"{counts[k]} {k}" for k in ("clear", "traceback", "silent", "unclear", "hang")) + ".", "",
             "| class | case | result | first Error line |", "|---|---|---|---|"]
    for cls, label, verdict, first in results:
        lines.append(f"| {cls} | {label} | {verdict} | {first[:140].replace('|', '/')} |")
    lines += ["", "## SIGKILL during collect, then rerun", "", json.dumps(kills), "",
              "## SIGKILL / SIGTERM to `mtqa run` while its workers run", "", json.dumps(orphans), "",
              "## Concurrent writers into one directory", "", json.dumps(conc), ""]
    text = "\n".join(lines)
    print(text)
    if args.out:
        args.out.write_text(text)


if __name__ == "__main__":
    main()
