"""Real engines for the cluster tests: a single-node Slurm and a Ray head, both on 127.0.0.1.

Each engine starts once per session and stops at its end. Where an engine cannot be installed
or started (not root, no apt-get) its tests skip with the reason, unless MTQA_CLUSTER_REQUIRED=1
(as in CI), where that is a failure. The pipeline every test submits is a tiny one the tests
write: 3 articles of the shared SQuAD dev set in English and Spanish -> collect -> filter ->
build-batches, all paths relative to a work directory of its own, so a local `mtqa run` of it
in another work directory is the byte-for-byte reference.
"""

from __future__ import annotations

import gzip
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent  # the environment's bin/: mtqa, ray
REQUIRED = os.environ.get("MTQA_CLUSTER_REQUIRED") == "1"
STEPS = ("collect", "filter", "batches")

PIPELINE = """name: tiny
run_dir: runs/tiny
steps:
  - name: collect
    stage: collect
    args: [data/dev.en.json.gz]
    options: {parallel: [es=data/dev.es.json.gz], shard-size: 60}
  - name: filter
    stage: filter
    args: ["${steps.collect}"]
  - name: batches
    stage: build-batches
    args: ["${steps.filter}"]
    options: {batch-size: 8, epochs: 1, seed: 0}
"""


def unavailable(reason: str):
    if REQUIRED:
        pytest.fail(f"MTQA_CLUSTER_REQUIRED=1 but {reason}")
    pytest.skip(reason)


def engine_env(**extra: str) -> dict[str, str]:
    return {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}", **extra}


@pytest.fixture(scope="session")
def sample_data(squad_dir: Path, tmp_path_factory) -> Path:
    """The first 3 articles of SQuAD dev in en and es (1064 + 606 questions)."""
    out = tmp_path_factory.mktemp("sample")
    for lang in ("en", "es"):
        doc = json.loads(gzip.open(squad_dir / f"dev-v1.1.{lang}.json.gz").read())
        doc["data"] = doc["data"][:3]
        with gzip.GzipFile(out / f"dev.{lang}.json.gz", "wb", mtime=0) as fh:
            fh.write(json.dumps(doc).encode())
    return out


@pytest.fixture
def workdir(sample_data: Path, tmp_path: Path) -> Path:
    """A fresh work directory holding data/ and pipe.yaml (relative paths only)."""
    work = tmp_path / "work"
    shutil.copytree(sample_data, work / "data")
    (work / "pipe.yaml").write_text(PIPELINE)
    return work


@pytest.fixture(scope="session")
def reference(sample_data: Path, tmp_path_factory) -> Path:
    """RUN_DIR of a local `mtqa run` of the pipeline, one worker."""
    work = tmp_path_factory.mktemp("reference")
    shutil.copytree(sample_data, work / "data")
    (work / "pipe.yaml").write_text(PIPELINE)
    subprocess.run([str(BIN / "mtqa"), "run", "pipe.yaml", "--workers", "1"], cwd=work, env=engine_env(),
                   check=True, capture_output=True)  # fmt: skip
    return work / "runs" / "tiny"


def assert_same_outputs(run_dir: Path, reference: Path) -> None:
    from tests.helpers import tree_digest

    for step in STEPS:
        assert (run_dir / step / "manifest.json").is_file(), f"{step}: no manifest"
        assert tree_digest(run_dir / step) == tree_digest(reference / step), f"{step} differs from the local run"


@pytest.fixture(scope="session")
def slurm() -> dict[str, str]:
    """A running single-node Slurm; the environment its commands need (SLURM_CONF, PATH)."""
    state = Path(tempfile.mkdtemp(prefix="mtqa-slurm-"))
    script = Path(__file__).with_name("setup_slurm.sh")
    out = subprocess.run(["bash", str(script), "start", str(state)], capture_output=True, text=True)
    if out.returncode != 0:
        lines = out.stderr.strip().splitlines()
        unavailable(lines[-1] if lines else f"setup_slurm.sh exited {out.returncode}")
    env = engine_env(SLURM_CONF=str(state / "slurm.conf"))
    yield env
    subprocess.run(["bash", str(script), "stop", str(state)], capture_output=True)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="session")
def ray_head() -> dict[str, str]:
    """A Ray head on 127.0.0.1 started by `ray start --head` in a directory of its own (not the
    one the driver runs in). Yields {"address", "dashboard", "env"}."""
    if shutil.which("ray", path=str(BIN)) is None:
        unavailable("the ray CLI is not installed (pip install 'mtqa[ray]')")
    temp = Path(tempfile.mkdtemp(prefix="mtqa-ray-"))
    port, dash, agent, client = (_free_port() for _ in range(4))
    # A token of its own (Ray's token authentication), so no token elsewhere on the machine matters.
    # RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0: a single-node cluster, where Ray keeps 127.0.0.1 as every
    # process's node address instead of swapping loopback for the host's interface address.
    env = engine_env(RAY_USAGE_STATS_ENABLED="0", RAY_AUTH_MODE="token", RAY_AUTH_TOKEN=secrets.token_hex(32),
                     RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER="0")  # fmt: skip
    cmd = [str(BIN / "ray"), "start", "--head", "--block", "--node-ip-address", "127.0.0.1", "--port", str(port),
           "--dashboard-host", "127.0.0.1", "--dashboard-port", str(dash), "--include-dashboard", "true",
           "--dashboard-agent-listen-port", str(agent), "--ray-client-server-port", str(client),
           "--num-cpus", "2", "--temp-dir", str(temp), "--disable-usage-stats"]  # fmt: skip
    log = open(temp / "ray-start.log", "wb")  # noqa: SIM115 - closed at teardown
    proc = subprocess.Popen(cmd, cwd=temp, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    address = f"127.0.0.1:{port}"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and proc.poll() is None:
        probe = subprocess.run([str(BIN / "ray"), "job", "list", "--address", f"http://127.0.0.1:{dash}"],
                               env=env, capture_output=True)  # fmt: skip
        if probe.returncode == 0:
            break
        time.sleep(1)
    else:
        _stop_group(proc)
        unavailable(f"ray start --head did not come up: {(temp / 'ray-start.log').read_text()[-500:]}")
    yield {"address": address, "dashboard": f"http://127.0.0.1:{dash}", "env": env}
    _stop_group(proc)
    log.close()


def _stop_group(proc: subprocess.Popen) -> None:
    """Stop `ray start` and every process it started (they share its process group)."""
    for sig, wait in ((signal.SIGTERM, 20), (signal.SIGKILL, 10)):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            return
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline:
            try:
                os.killpg(proc.pid, 0)
            except ProcessLookupError:
                return
            proc.poll()
            time.sleep(0.5)
