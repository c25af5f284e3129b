"""The shipped pipelines and cluster manifests: they parse, and every mtqa command they would
run is accepted by the real CLI (Click parses each command line without running it)."""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import click
import pytest
import yaml

from mt_qa.cli import cli
from mt_qa.run.config import load_pipeline
from mt_qa.run.executors import LocalExecutor
from mt_qa.run.runner import PipelineRunner

ROOT = Path(__file__).resolve().parents[2]
PIPELINES = sorted((ROOT / "pipelines").glob("*.yaml"))
MANIFESTS = ROOT / "manifests"


def check_argv(argv: list[str]) -> None:
    """Parse ``mtqa ARGV`` with the real command tree; raises on unknown options or bad values."""
    ctx = click.Context(cli, info_name="mtqa")
    command: click.Command = cli
    args = list(argv)
    while isinstance(command, click.Group):
        name, args = args[0], args[1:]
        sub = command.get_command(ctx, name)
        assert sub is not None, f"mtqa has no command {name!r} ({shlex.join(argv)})"
        assert "Unavailable" not in (sub.help or ""), f"{name}: {sub.help}"
        command = sub
    try:
        command.make_context(command.name, args)
    except click.BadParameter as exc:
        # Paths that only exist once earlier steps ran are fine; anything else is a real error.
        if "does not exist" not in str(exc):
            raise AssertionError(f"{shlex.join(argv)}: {exc}") from exc


def test_the_three_pipelines_ship():
    assert {p.stem for p in PIPELINES} >= {"quickstart", "paper", "squad-parallel"}


@pytest.mark.parametrize("path", PIPELINES, ids=lambda p: p.stem)
def test_every_pipeline_task_is_a_valid_command(path):
    runner = PipelineRunner(load_pipeline(path), LocalExecutor(3), echo=lambda m: None)
    planned = runner.plan()
    assert planned
    for p in planned:
        for argv in p.argvs:
            check_argv(argv)


def test_paper_pipeline_has_the_paper_recipe():
    pipe = load_pipeline(ROOT / "pipelines" / "paper.yaml")
    langs = set(pipe.step("translate").options["langs"].split(",")) | {"en"}
    assert langs == {"ar", "zh", "en", "de", "es", "ru", "hi", "th", "tr"}
    batches, train = pipe.step("batches").options, pipe.step("train").options
    assert (batches["strategy"], float(batches["alpha"]), batches["batch-size"]) == ("hybrid", 0.5, 100)
    assert (float(train["lr"]), float(train["weight-decay"])) == (3e-5, 0.01)


def test_squad_parallel_study_runs_differ_only_in_strategy_alpha_and_seed():
    pipe = load_pipeline(ROOT / "pipelines" / "squad-parallel.yaml")
    benchmark = pipe.out_dir(pipe.step("benchmark"))
    selbench = pipe.out_dir(pipe.step("selbench"))
    batches = [s for s in pipe.steps if s.stage == "build-batches"]
    trains = [s for s in pipe.steps if s.stage == "train"]
    assert len(batches) == len(trains) >= 8
    for step in batches:  # nothing evaluated on, nor selected on, is trained on
        assert step.options["exclude-groups"] == [f"{benchmark}/heldout_group_ids.txt",
                                                  f"{selbench}/heldout_group_ids.txt"]
    for step in trains:  # model selection on the selection benchmark, never on the reported one
        assert step.options["dev-benchmark"] == str(selbench)
    varying = {"strategy", "alpha", "seed", "batches"}
    for group in (batches, trains):
        assert len({json.dumps({k: v for k, v in s.options.items() if k not in varying}) for s in group}) == 1
    conditions = [(s.options["strategy"], float(s.options["alpha"])) for s in batches]
    for main_condition in [("xx", 1.0), ("xy", 0.0), ("hybrid", 0.5)]:
        assert conditions.count(main_condition) >= 2  # at least two seeds
    assert {a for _, a in conditions} == {0.0, 0.25, 0.5, 0.75, 1.0}


@pytest.mark.parametrize("script", sorted((MANIFESTS / "slurm").iterdir()), ids=lambda p: p.name)
def test_slurm_scripts_pass_bash_n(script):
    assert subprocess.run(["bash", "-n", str(script)], capture_output=True).returncode == 0


@pytest.mark.parametrize(
    "manifest", sorted((MANIFESTS / "kubernetes").glob("*.yaml")) + sorted((MANIFESTS / "ray").glob("*.yaml")),
    ids=lambda p: p.name,
)  # fmt: skip
def test_yaml_manifests_parse(manifest):
    docs = [d for d in yaml.safe_load_all(manifest.read_text()) if d is not None]
    assert docs and all(isinstance(d, dict) for d in docs)


def _mtqa_commands(text: str) -> list[list[str]]:
    """The `mtqa run ...` invocations written in a manifest (YAML command arrays or shell lines)."""
    found = []
    for doc in yaml.safe_load_all(text):
        stack = [doc]
        while stack:
            node = stack.pop()
            if isinstance(node, dict):
                stack += list(node.values())
            elif isinstance(node, list):
                if node and node[0] == "mtqa":
                    found.append([str(x) for x in node[1:]])
                else:
                    stack += node
            elif isinstance(node, str) and "mtqa run" in node:
                for match in re.finditer(r"mtqa (run [^\n\"&|)]*)", " ".join(node.split())):
                    found.append(shlex.split(match.group(1)))
    return found


@pytest.mark.parametrize(
    "manifest", sorted((MANIFESTS / "kubernetes").glob("*.yaml")) + [MANIFESTS / "ray" / "rayjob.yaml"],
    ids=lambda p: p.name,
)  # fmt: skip
def test_manifest_commands_resolve_against_the_real_cli(manifest, tmp_path):
    commands = _mtqa_commands(manifest.read_text())
    assert commands, f"{manifest.name} runs no mtqa command"
    for argv in commands:
        assert argv[0] == "run" and (ROOT / argv[1]).is_file(), argv
        check_argv(argv)
        if "--step" in argv:
            # What the pod would run: the step's task command line, itself valid.
            env = {**os.environ, "JOB_COMPLETION_INDEX": "0", "MTQA_NUM_SHARDS": "8"}
            cut = [a for a in argv if a not in ("--print-argv",)]
            out = subprocess.run([sys.executable, "-m", "mt_qa.cli", *cut, "--print-argv"], cwd=ROOT, env=env,
                                 capture_output=True, text=True)  # fmt: skip
            assert out.returncode == 0, out.stderr
            check_argv(shlex.split(out.stdout))
        else:
            out = subprocess.run([sys.executable, "-m", "mt_qa.cli", *argv, "--dry-run"], cwd=ROOT,
                                 capture_output=True, text=True)  # fmt: skip
            assert out.returncode == 0 and "mtqa " in out.stdout, out.stderr


@pytest.mark.parametrize("pipeline", ["paper", "squad-parallel"])
def test_slurm_step_scripts_resolve_every_step(pipeline):
    """step-array / step-single / train .sbatch run `mtqa run $PIPELINE --step $STEP`."""
    path = ROOT / "pipelines" / f"{pipeline}.yaml"
    env = {**os.environ, "SLURM_ARRAY_TASK_ID": "3", "SLURM_ARRAY_TASK_COUNT": "8"}
    for step in load_pipeline(path).steps:
        argv = ["run", str(path), "--step", step.name, "--print-argv"]
        if not step.sharded:
            argv += ["--num-shards", "1", "--shard-index", "0"]
        out = subprocess.run([sys.executable, "-m", "mt_qa.cli", *argv], capture_output=True, text=True, env=env)
        assert out.returncode == 0, out.stderr
        task = shlex.split(out.stdout)
        check_argv(task)
        if step.sharded:
            assert task[-4:] == ["--num-shards", "8", "--shard-index", "3"]


# The oldest Kubernetes the manifests support (backoffLimitPerIndex is on by default from 1.29),
# as the manifests' headers and docs/cluster.md say.
K8S_MIN = "1.29.0"


def _k8s_versions() -> list[str]:
    kv = pytest.importorskip("kubernetes_validate")
    return sorted({K8S_MIN, kv.latest_version()})


def _pod_templates(node):
    """Every pod template (a mapping with spec.containers) inside a custom resource."""
    if isinstance(node, dict):
        if isinstance(node.get("spec"), dict) and "containers" in node["spec"]:
            yield node
        for value in node.values():
            yield from _pod_templates(value)
    elif isinstance(node, list):
        for value in node:
            yield from _pod_templates(value)


@pytest.mark.parametrize(
    "manifest", sorted((MANIFESTS / "kubernetes").glob("*.yaml")) + [MANIFESTS / "ray" / "rayjob.yaml"],
                         ids=lambda p: p.name)  # fmt: skip
def test_kubernetes_manifests_validate_against_the_real_schemas(manifest):
    """Offline, strict (unknown fields rejected), against the oldest supported and newest Kubernetes.
    KubeRay's RayJob has no schema there: its pod templates are validated as core PodTemplates."""
    import kubernetes_validate as kv

    assert f"Kubernetes >= {K8S_MIN.rsplit('.', 1)[0]}" in manifest.read_text() or manifest.parent.name == "ray"
    for doc in yaml.safe_load_all(manifest.read_text()):
        resources = [doc]
        if doc["kind"] == "RayJob":
            resources = [{"apiVersion": "v1", "kind": "PodTemplate", "metadata": {"name": f"t{i}"}, "template": t}
                         for i, t in enumerate(_pod_templates(doc["spec"]))]  # fmt: skip
            assert len(resources) == 2  # head and worker group
        for resource in resources:
            for version in _k8s_versions():
                kv.validate(resource, version, strict=True)


def test_a_misspelt_field_fails_validation():
    import kubernetes_validate as kv

    doc = yaml.safe_load((MANIFESTS / "kubernetes" / "step-indexed-job.yaml").read_text())
    doc["spec"]["completionsMode"] = doc["spec"].pop("completionMode")
    with pytest.raises(kv.ValidationError):
        kv.validate(doc, _k8s_versions()[0], strict=True)


def test_indexed_job_shards_match_completions_and_threads_match_cpus():
    """completions < MTQA_NUM_SHARDS would leave the step unfinished while the Job shows Complete."""
    job = yaml.safe_load((MANIFESTS / "kubernetes" / "step-indexed-job.yaml").read_text())
    container = job["spec"]["template"]["spec"]["containers"][0]
    env = {e["name"]: e["value"] for e in container["env"]}
    assert job["spec"]["completionMode"] == "Indexed"
    assert int(env["MTQA_NUM_SHARDS"]) == job["spec"]["completions"]
    assert env["MTQA_THREADS"] == str(container["resources"]["requests"]["cpu"])


def test_manifests_run_the_image_the_dockerfile_builds():
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert re.search(r"^WORKDIR /work$", dockerfile, re.M)
    ray_pin = re.search(r'RAY_SPEC="ray\[default\]==([0-9.]+)"', dockerfile).group(1)
    for manifest in sorted((MANIFESTS / "kubernetes").glob("*.yaml")) + [MANIFESTS / "ray" / "rayjob.yaml"]:
        doc = yaml.safe_load(manifest.read_text())
        for template in _pod_templates(doc):
            for c in template["spec"]["containers"]:
                assert c["image"] == "mtqa:latest" and c["workingDir"] == "/work", (manifest.name, c)
        if doc["kind"] == "RayJob":
            assert doc["spec"]["rayClusterSpec"]["rayVersion"] == ray_pin


def test_ray_job_runtime_env_installs_nothing_and_sets_no_thread_budget():
    """Before: it pip-installed mtqa[train,ray] (on no index) and set MTQA_THREADS, which
    conflicted with the executor's own runtime_env."""
    env = yaml.safe_load((MANIFESTS / "ray" / "job.yaml").read_text())
    assert "pip" not in env and "MTQA_THREADS" not in env.get("env_vars", {})
