"""Pipeline YAML: loading, ``--set`` overrides, ``${...}`` references, and validation.

A pipeline is a list of named steps, each one mtqa stage command with its arguments and
options. Steps are driven through the same CLI users type, so a pipeline, a Slurm script and a
shell one-liner all run exactly the same code.

.. code-block:: yaml

    name: demo
    run_dir: runs/demo
    vars: {data: ../shared/data/squad-v1.1}
    steps:
      - name: collect
        stage: collect
        args: ["${vars.data}/dev-v1.1.en.json.gz"]
        options: {parallel: ["es=${vars.data}/dev-v1.1.es.json.gz"]}
      - name: filter
        stage: filter
        args: ["${steps.collect}"]          # a step's output directory

Every step writes ``<run_dir>/<name>`` (passed as its ``--out``). References: ``${run_dir}``,
``${vars.NAME}``, ``${steps.NAME}`` (that step's output directory, which also makes the step
depend on it) and ``${env.NAME}``.

A step with ``foreach`` (a list, or ``${vars.NAME}`` holding one) becomes one step per item, in
place, like DVC's ``foreach`` stages: ``${item}`` or ``${item.KEY}`` is filled in first, so the
name must use it (``name: train-${item.run}``) and references may too (``${steps.batches-${item.run}}``).
"""

from __future__ import annotations

import copy
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from mt_qa.errors import MtqaError
from mt_qa.stage import is_sharded  # whether a stage runs as N tasks: the stage class says (`sharded`)

REF = re.compile(r"\$\{([^}]+)\}")
ITEM_REF = re.compile(r"\$\{item(?:\.([A-Za-z0-9_-]+))?\}")
STAGES = ("collect", "translate", "filter", "build-batches", "train", "evaluate")


class PipelineError(MtqaError):
    pass


@dataclass
class Step:
    name: str
    stage: str  # the mtqa command, e.g. "translate" or "evaluate lareqa"
    args: list[str] = field(default_factory=list)
    options: dict[str, Any] = field(default_factory=dict)
    out_option: str | None = "--out"  # None: the step writes no directory of its own
    sharded: bool = False
    depends: list[str] = field(default_factory=list)
    hint: str | None = None  # shown under the error when the step fails: how to fix the usual cause
    resources: dict[str, Any] = field(default_factory=dict)  # what a scheduler should give each task

    @property
    def command(self) -> list[str]:
        return self.stage.split()


@dataclass
class Pipeline:
    name: str
    run_dir: Path
    steps: list[Step]
    source: str  # the YAML file it came from
    raw: dict[str, Any]

    def step(self, name: str) -> Step:
        for step in self.steps:
            if step.name == name:
                return step
        raise PipelineError(f"{self.source}: no step named {name!r} (steps: {', '.join(s.name for s in self.steps)})")

    def out_dir(self, step: Step) -> Path:
        return self.run_dir / step.name


def parse_value(text: str) -> Any:
    """A ``--set`` value: YAML scalars (numbers, true/false, null, lists) or a plain string."""
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError:
        return text


def apply_override(doc: dict[str, Any], assignment: str) -> None:
    """``key.path=value``; a step is addressed by name: ``steps.train.options.max_steps=10``."""
    key, sep, value = assignment.partition("=")
    if not sep or not key:
        raise PipelineError(f"--set {assignment!r}: expected KEY=VALUE, e.g. --set steps.train.options.max-steps=10")
    parts = key.split(".")
    node: Any = doc
    for i, part in enumerate(parts[:-1]):
        if isinstance(node, list):
            matches = [s for s in node if isinstance(s, dict) and s.get("name") == part]
            if not matches:
                raise PipelineError(f"--set {key}: no step named {part!r}")
            node = matches[0]
        elif isinstance(node, dict):
            node = node.setdefault(part, {} if parts[i + 1] != "steps" else [])
        else:
            raise PipelineError(f"--set {key}: {'.'.join(parts[: i + 1])} is not a mapping")
    if not isinstance(node, dict):
        raise PipelineError(f"--set {key}: cannot set a key inside a {type(node).__name__}")
    node[parts[-1]] = parse_value(value)


def _resolve(value: Any, context: dict[str, Any], where: str, deps: set[str]) -> Any:
    if isinstance(value, str):

        def sub(match: re.Match[str]) -> str:
            ref = match.group(1).strip()
            head, _, rest = ref.partition(".")
            if head == "env":
                if rest not in os.environ:
                    raise PipelineError(f"{where}: ${{{ref}}}: environment variable {rest} is not set")
                return os.environ[rest]
            if head == "steps":
                if rest not in context["steps"]:
                    raise PipelineError(f"{where}: ${{{ref}}} names no earlier step")
                deps.add(rest)
                return str(context["steps"][rest])
            if head == "vars":
                if rest not in context["vars"]:
                    raise PipelineError(f"{where}: ${{{ref}}}: no such variable in vars")
                return str(context["vars"][rest])
            if ref == "run_dir":
                return str(context["run_dir"])
            raise PipelineError(f"{where}: unknown reference ${{{ref}}} (use run_dir, vars.*, steps.*, env.*)")

        return REF.sub(sub, value)
    if isinstance(value, list):
        return [_resolve(v, context, where, deps) for v in value]
    if isinstance(value, dict):
        return {k: _resolve(v, context, f"{where}.{k}", deps) for k, v in value.items()}
    return value


# Names the run directory uses itself: a step of that name would write into them.
RESERVED_STEP_NAMES = frozenset({"logs", "_steps", "pipeline.json", "run.json"})


def check_step_name(name: str, where: str) -> None:
    """A step name becomes ``<run_dir>/<name>``, which ``overwrite`` may replace: it must be one plain
    path component (no ``.``/``..``, no separator, no hidden name) and not one the run directory uses."""
    if not re.fullmatch(r"[A-Za-z0-9_][A-Za-z0-9_.-]*", name) or name in (".", ".."):
        raise PipelineError(f"{where}: step name {name!r} must be letters, digits, '.', '_' or '-', starting "
                            "with a letter, digit or '_' (it names the step's directory)")
    if name in RESERVED_STEP_NAMES:
        raise PipelineError(f"{where}: step name {name!r} is used by the run directory itself; choose another")


def load_pipeline(path: str | os.PathLike[str], overrides: list[str] = ()) -> Pipeline:
    """Read, override, resolve and validate a pipeline file."""
    path = Path(path)
    try:
        doc = yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise PipelineError(f"{path}: pipeline file not found") from exc
    except UnicodeDecodeError as exc:
        raise PipelineError(f"{path}: not UTF-8 text (byte {exc.start}: {exc.reason})") from exc
    except OSError as exc:
        raise PipelineError(f"{path}: cannot read the pipeline file: {exc.strerror or exc}") from exc
    except yaml.YAMLError as exc:
        raise PipelineError(f"{path}: not valid YAML: {exc}") from exc
    if not isinstance(doc, dict) or not isinstance(doc.get("steps"), list) or not doc["steps"]:
        raise PipelineError(f"{path}: a pipeline needs a non-empty 'steps' list")
    doc = copy.deepcopy(doc)
    for assignment in overrides:
        apply_override(doc, assignment)
    unknown = set(doc) - {"name", "run_dir", "vars", "steps", "description"}
    if unknown:
        raise PipelineError(f"{path}: unknown top-level keys {sorted(unknown)}")
    vars_ = doc.get("vars") or {}
    context: dict[str, Any] = {"steps": {}, "vars": {}, "run_dir": None}
    context["vars"] = {k: _resolve(v, {**context, "vars": {}}, f"vars.{k}", set()) for k, v in vars_.items()}
    default_dir = f"runs/{doc.get('name') or path.stem}"
    run_dir = Path(_resolve(str(doc.get("run_dir") or default_dir), context, "run_dir", set()))
    context["run_dir"] = run_dir
    steps: list[Step] = []
    for raw, where in _expand_foreach(doc["steps"], context["vars"], path):
        if not isinstance(raw, dict) or "name" not in raw or "stage" not in raw:
            raise PipelineError(f"{where}: each step needs a 'name' and a 'stage'")
        unknown = set(raw) - {"name", "stage", "args", "options", "out", "sharded", "hint", "resources"}
        if unknown:
            raise PipelineError(f"{where}: unknown keys {sorted(unknown)}")
        name, stage = str(raw["name"]), str(raw["stage"])
        check_step_name(name, where)
        if name in context["steps"]:
            raise PipelineError(f"{where}: step name {name!r} is used twice")
        if stage.split()[0] not in STAGES:
            raise PipelineError(f"{where}: unknown stage {stage!r}; one of {', '.join(STAGES)}")
        deps: set[str] = set()
        args = _resolve([str(a) for a in raw.get("args") or []], context, f"{where}.args", deps)
        options = _resolve(dict(raw.get("options") or {}), context, f"{where}.options", deps)
        out = raw.get("out", "--out")
        hint = _resolve(str(raw["hint"]), context, f"{where}.hint", set()) if raw.get("hint") else None
        resources = _resources(_resolve(raw.get("resources") or {}, context, f"{where}.resources", set()), where)
        step = Step(name, stage, args, options, out_option=out or None,
                    sharded=bool(raw.get("sharded", is_sharded(stage))), depends=sorted(deps),
                    hint=hint, resources=resources)  # fmt: skip
        steps.append(step)
        context["steps"][name] = run_dir / name
    return Pipeline(str(doc.get("name") or path.stem), run_dir, steps, str(path), doc)


RESOURCE_KEYS = {"cpus": int, "gpus": int, "mem": str, "time": str}


def _resources(value: Any, where: str) -> dict[str, Any]:
    """A step's ``resources: {cpus: 4, mem: 16G, gpus: 1, time: "02:00:00"}`` (per task), checked."""
    if not isinstance(value, dict):
        raise PipelineError(f"{where}.resources: expected a mapping such as {{cpus: 4, mem: 16G, gpus: 1}}")
    out: dict[str, Any] = {}
    for key, raw in value.items():
        if key not in RESOURCE_KEYS:
            raise PipelineError(f"{where}.resources: unknown key {key!r} (one of {', '.join(RESOURCE_KEYS)})")
        kind = RESOURCE_KEYS[key]
        try:
            out[key] = kind(raw)
        except (TypeError, ValueError):
            raise PipelineError(f"{where}.resources.{key}: {raw!r} is not a {kind.__name__}") from None
        if kind is int and out[key] < 0:
            raise PipelineError(f"{where}.resources.{key}: must be >= 0, not {raw!r}")
    return out


def _expand_foreach(raw_steps: list[Any], vars_: dict[str, Any], path: Path):
    """Yield (raw step, location) with every ``foreach`` step repeated once per item."""
    for n, raw in enumerate(raw_steps):
        where = f"{path}: steps[{n}]"
        if not isinstance(raw, dict) or "foreach" not in raw:
            yield raw, where
            continue
        items = raw["foreach"]
        if isinstance(items, str):
            match = re.fullmatch(r"\$\{vars\.([^}]+)\}", items.strip())
            if not match or match.group(1) not in vars_:
                raise PipelineError(f"{where}.foreach: expected a list or ${{vars.NAME}} naming one, got {items!r}")
            items = vars_[match.group(1)]
        if not isinstance(items, list) or not items:
            raise PipelineError(f"{where}.foreach: needs a non-empty list, got {items!r}")
        body = {k: v for k, v in raw.items() if k != "foreach"}
        if not ITEM_REF.search(str(body.get("name", ""))):
            raise PipelineError(f"{where}: a foreach step's name must use ${{item}} or ${{item.KEY}} to be unique")
        for i, item in enumerate(items):
            yield _fill_item(body, item, f"{where}.foreach[{i}]"), f"{where}.foreach[{i}]"


def _fill_item(value: Any, item: Any, where: str) -> Any:
    if isinstance(value, list):
        return [_fill_item(v, item, where) for v in value]
    if isinstance(value, dict):
        return {k: _fill_item(v, item, where) for k, v in value.items()}
    if not isinstance(value, str):
        return value

    def sub(match: re.Match[str]) -> str:
        key = match.group(1)
        if key is None:
            return str(item)
        if not isinstance(item, dict) or key not in item:
            raise PipelineError(f"{where}: ${{item.{key}}}: the item {item!r} has no key {key!r}")
        return str(item[key])

    return ITEM_REF.sub(sub, value)


def option_args(options: dict[str, Any]) -> list[str]:
    """{'langs': 'de,ar', 'parallel': [a, b], 'quiet': True} -> ['--langs', 'de,ar', '--parallel', a, ...]."""
    out: list[str] = []
    for key, value in options.items():
        flag = "--" + key.replace("_", "-")
        if value is None or value is False:
            continue
        if value is True:
            out.append(flag)
        elif isinstance(value, list):
            for item in value:
                out += [flag, str(item)]
        else:
            out += [flag, str(value)]
    return out
