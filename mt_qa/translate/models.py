"""Translation models: find, convert (once), validate and fingerprint CTranslate2 NLLB models.

``--model`` is a Hugging Face id or a local directory. A directory is either a CTranslate2
model (used as is) or a Transformers NLLB checkpoint (converted once, with CTranslate2's own
converter, into the model cache and reused). A path-like ``--model`` that does not exist (see
``looks_like_path``) is a "not found" error at once. A hub id is looked up in the model cache,
then in the Hugging Face cache, and only then downloaded; offline (``HF_HUB_OFFLINE``, or the hub
out of reach on one quick connect), that fails at once with a message that says how to provide
the model. Every model is validated before use and identified by a
content hash, which goes into the manifest, each row's ``origin_detail`` and the cache key.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import re
import shutil
import socket
import tempfile
import urllib.parse
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

from mt_qa import __version__
from mt_qa.cachedir import cache_root
from mt_qa.errors import MtqaError
from mt_qa.io import atomic_write_json, sha256_file

DEFAULT_MODEL = "facebook/nllb-200-distilled-600M"
HUB_PROBE_SECONDS = 3.0  # one connect to the hub before downloading: fail at once when offline
_HUB_ID = re.compile(r"(?:[A-Za-z0-9][A-Za-z0-9_.-]*/)?[A-Za-z0-9][A-Za-z0-9_.-]*")
QUANTIZATIONS = ("int8", "int8_float32", "int8_float16", "int8_bfloat16", "int16", "float16", "bfloat16", "float32")
SPM_FILE = "sentencepiece.bpe.model"
META_FILE = "mtqa_model.json"  # written by `mtqa model convert`: where the model came from
HASH_FILE = ".mtqa_hash.json"  # per-file sha256 keyed by size and mtime, so a rerun skips rehashing
VOCAB_FILES = ("shared_vocabulary.json", "shared_vocabulary.txt")
# Files the translator reads: they (and nothing else) make up the content hash.
CONTENT_FILES = ("model.bin", "config.json", *VOCAB_FILES, SPM_FILE)
# Tokenizer files copied from a Transformers checkpoint into the converted directory.
COPY_FILES = (SPM_FILE, "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json",
              "generation_config.json")
HF_WEIGHTS = ("model.safetensors", "model.safetensors.index.json", "pytorch_model.bin", "pytorch_model.bin.index.json")
HF_MODEL_TYPES = ("m2m_100",)  # NLLB-200 dense checkpoints (600M, 1.3B, 3.3B) use the M2M-100 architecture


class ModelError(MtqaError):
    """A model that cannot be found, converted or used."""


@dataclass(frozen=True)
class ModelInfo:
    """A validated CTranslate2 NLLB model directory."""

    path: Path
    id: str  # the hub id it was converted from, else the directory name
    sha256: str  # content hash of CONTENT_FILES
    quantization: str | None

    @property
    def detail(self) -> str:
        """Short provenance for a row's ``origin_detail``: model id plus content hash."""
        return f"{self.id}@{self.sha256[:12]}"

    def manifest_ref(self) -> dict[str, Any]:
        return {"id": self.id, "sha256": self.sha256, "quantization": self.quantization}


# ---------------------------------------------------------------------- inspecting directories
def is_ct2_dir(path: Path) -> bool:
    return (path / "model.bin").is_file() and (path / "config.json").is_file()


def is_hf_checkpoint(path: Path) -> bool:
    return (path / "config.json").is_file() and any((path / name).is_file() for name in HF_WEIGHTS)


def read_vocabulary(path: Path) -> list[str]:
    """The CTranslate2 model's (shared) vocabulary, one token per id."""
    if (path / "shared_vocabulary.json").is_file():
        return json.loads((path / "shared_vocabulary.json").read_text(encoding="utf-8"))
    if (path / "shared_vocabulary.txt").is_file():
        return (path / "shared_vocabulary.txt").read_text(encoding="utf-8").splitlines()
    raise ModelError(f"{path}: no shared_vocabulary.json/.txt: NLLB models share one vocabulary between "
                     "encoder and decoder; convert the checkpoint with `mtqa model convert`")


def validate_ct2_dir(path: Path, flores_codes: Iterable[str] = ()) -> list[str]:
    """Problems that make ``path`` unusable as an NLLB CTranslate2 model (empty list: fine)."""
    problems: list[str] = []
    for name in ("model.bin", "config.json"):
        if not (path / name).is_file():
            problems.append(f"missing {name}")
    if not (path / SPM_FILE).is_file():
        problems.append(f"missing {SPM_FILE} (the SentencePiece model; `mtqa model convert` copies it from the "
                        "checkpoint, or copy it in by hand)")
    try:
        config = json.loads((path / "config.json").read_text())
        if not isinstance(config, dict):
            raise ValueError("not a JSON object")
    except (OSError, ValueError) as exc:
        if (path / "config.json").is_file():
            problems.append(f"config.json is unreadable: {exc}")
        config = {}
    if config.get("decoder_start_token") not in (None, "</s>"):
        problems.append(f"decoder_start_token is {config.get('decoder_start_token')!r}, NLLB uses '</s>'")
    try:
        vocab = set(read_vocabulary(path))
    except (ModelError, OSError, ValueError) as exc:
        problems.append(str(exc).removeprefix(f"{path}: "))
        return problems
    missing_special = [tok for tok in ("</s>", "<unk>", "eng_Latn") if tok not in vocab]
    if missing_special:
        problems.append(f"vocabulary lacks {', '.join(missing_special)}: not an NLLB model")
    missing = [code for code in flores_codes if code not in vocab]
    if missing:
        problems.append(f"vocabulary has no language token for {', '.join(missing)}")
    return problems


def check_ct2_dir(path: Path, flores_codes: Iterable[str] = ()) -> None:
    problems = validate_ct2_dir(path, flores_codes)
    if problems:
        raise ModelError(f"{path}: not a usable NLLB CTranslate2 model: " + "; ".join(problems))


def check_hf_checkpoint(path: Path) -> None:
    """Refuse before conversion what the converter or the translator could not use."""
    try:
        config = json.loads((path / "config.json").read_text())
    except (OSError, ValueError) as exc:
        raise ModelError(f"{path}/config.json: unreadable: {exc}") from exc
    model_type = config.get("model_type")
    if model_type not in HF_MODEL_TYPES:
        raise ModelError(f"{path}: model_type {model_type!r} is not an NLLB-200 checkpoint (expected "
                         f"{' or '.join(HF_MODEL_TYPES)}, e.g. facebook/nllb-200-distilled-600M)")
    if not (path / SPM_FILE).is_file():
        raise ModelError(f"{path}: no {SPM_FILE}: the translator tokenizes with NLLB's SentencePiece model")
    if not (path / "tokenizer.json").is_file() and not (path / "tokenizer_config.json").is_file():
        raise ModelError(f"{path}: no tokenizer.json / tokenizer_config.json: the converter reads the vocabulary "
                         "from the Transformers tokenizer")


# ---------------------------------------------------------------------- hashing
def content_hash(path: Path) -> str:
    """sha256 over the files the translator reads; per-file digests are remembered beside them."""
    sidecar = path / HASH_FILE
    try:
        known = json.loads(sidecar.read_text()) if sidecar.is_file() else {}
    except (OSError, ValueError):
        known = {}
    entries: dict[str, list[Any]] = {}
    for name in CONTENT_FILES:
        file = path / name
        if not file.is_file():
            continue
        stat = file.stat()
        old = known.get(name)
        if old and old[0] == stat.st_size and old[1] == stat.st_mtime_ns:
            entries[name] = old
        else:
            entries[name] = [stat.st_size, stat.st_mtime_ns, sha256_file(file)]
    if entries != known:
        try:
            atomic_write_json(sidecar, entries)
        except OSError:
            pass  # a read-only model directory: hash again next time
    digest = hashlib.sha256()
    for name in sorted(entries):
        digest.update(f"{name}\t{entries[name][2]}\n".encode())
    return digest.hexdigest()


def load_model_info(path: Path, flores_codes: Iterable[str] = ()) -> ModelInfo:
    check_ct2_dir(path, flores_codes)
    meta: dict[str, Any] = {}
    if (path / META_FILE).is_file():
        try:
            meta = json.loads((path / META_FILE).read_text())
        except (OSError, ValueError):
            meta = {}
    return ModelInfo(path=path, id=str(meta.get("source") or path.name), sha256=content_hash(path),
                     quantization=meta.get("quantization"))


# ---------------------------------------------------------------------- converting
@contextmanager
def _lock(target: Path) -> Iterator[None]:
    """Serialise conversions into one directory (job-array tasks may all start at once)."""
    target.parent.mkdir(parents=True, exist_ok=True)
    with open(target.parent / f".{target.name}.lock", "w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def convert(source: str | os.PathLike[str], out: str | os.PathLike[str], quantization: str = "int8",
            force: bool = False, source_id: str | None = None) -> ModelInfo:
    """Convert a Transformers NLLB checkpoint (dir or hub id) into a CTranslate2 model at ``out``.

    Written into a temporary sibling and renamed into place, so an interrupted conversion never
    leaves a half model that a later run would take for a finished one.
    """
    if quantization not in QUANTIZATIONS:
        raise ModelError(f"unknown quantization {quantization!r}; choose one of {', '.join(QUANTIZATIONS)}")
    out = Path(out).expanduser()
    src_path = Path(source).expanduser()
    if not src_path.is_dir() and looks_like_path(str(source)):
        raise _missing_directory(str(source))
    local = src_path if src_path.is_dir() else fetch_hub_snapshot(str(source))
    source_id = source_id or (checkpoint_id(src_path) if src_path.is_dir() else str(source))
    if is_ct2_dir(local):
        raise ModelError(f"{source} is already a CTranslate2 model: pass it to --model directly")
    if not is_hf_checkpoint(local):
        raise ModelError(f"{source}: not a Transformers checkpoint (needs config.json and "
                         f"{' or '.join(HF_WEIGHTS[::2])})")
    check_hf_checkpoint(local)
    with _lock(out):
        if out.exists():
            if not force:
                if is_ct2_dir(out):
                    raise ModelError(f"{out} already holds a converted model; use --force to replace it")
                raise ModelError(f"{out} exists and is not a model directory; choose another --out")
        try:
            from ctranslate2.converters import TransformersConverter
        except ImportError as exc:  # pragma: no cover - ctranslate2 is a hard dependency
            raise ModelError(f"converting needs ctranslate2 with its converters: {exc}") from exc
        copy = [name for name in COPY_FILES if (local / name).is_file()]
        out.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
        try:
            try:
                TransformersConverter(str(local), copy_files=copy).convert(str(tmp), quantization=quantization,
                                                                           force=True)
            except ImportError as exc:
                raise ModelError(f"converting a Transformers checkpoint needs torch and transformers "
                                 f"(pip install 'mtqa[train]'): {exc}") from exc
            except (ValueError, OSError, RuntimeError) as exc:
                raise ModelError(f"CTranslate2 could not convert {source}: {exc}") from exc
            import ctranslate2

            atomic_write_json(tmp / META_FILE, {"source": source_id, "quantization": quantization,
                                                "converter": f"ctranslate2 {ctranslate2.__version__}",
                                                "mtqa": __version__})
            check_ct2_dir(tmp)
            if out.exists():
                shutil.rmtree(out)
            os.replace(tmp, out)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
    return load_model_info(out)


# ---------------------------------------------------------------------- the hub
def _offline() -> bool:
    flags = (os.environ.get(name, "").strip().lower() for name in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE",
                                                                    "MTQA_OFFLINE"))
    return any(flag in ("1", "true", "yes", "on") for flag in flags)


def _download_cli() -> str:
    """The download command the installed huggingface_hub provides: ``hf`` (>= 0.34), else ``huggingface-cli``."""
    try:
        scripts = {ep.name for ep in metadata.distribution("huggingface_hub").entry_points
                   if ep.group == "console_scripts"}  # fmt: skip
    except metadata.PackageNotFoundError:
        scripts = set()
    return "huggingface-cli" if "huggingface-cli" in scripts and "hf" not in scripts else "hf"


def _how_to_provide(repo_id: str) -> str:
    name = _slug(repo_id.split("/")[-1])
    return (f"on a machine with network, run `mtqa model convert {repo_id} --out models/{name}-int8` (or "
            f"download the checkpoint with `{_download_cli()} download {repo_id} --local-dir {name}`), copy that "
            f"directory here and pass it as --model DIR")


def _hub_unreachable(timeout: float = HUB_PROBE_SECONDS) -> str | None:
    """Why the hub cannot be reached, or None: one TCP connect to its endpoint, instead of the client's
    retries with back-off (about 25 s) on a machine without network. Skipped behind a proxy."""
    if any(os.environ.get(name) for name in ("HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy", "ALL_PROXY",
                                             "all_proxy")):  # fmt: skip
        return None
    try:
        from huggingface_hub import constants

        endpoint = urllib.parse.urlsplit(constants.ENDPOINT)
    except (ImportError, AttributeError, ValueError):
        return None
    host = endpoint.hostname or "huggingface.co"
    port = endpoint.port or (443 if endpoint.scheme == "https" else 80)
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return None
    except OSError as exc:
        return f"cannot reach {host}:{port} ({type(exc).__name__}: {exc})"


def fetch_hub_snapshot(repo_id: str) -> Path:
    """A local copy of a hub model: the Hugging Face cache first, the network only if allowed."""
    try:
        from huggingface_hub import snapshot_download
    except ImportError as exc:  # pragma: no cover - a dependency of transformers
        raise ModelError(f"model {repo_id!r} is not a local directory and huggingface_hub is missing") from exc
    # Weights as safetensors or .bin (never both, see below), tokenizer and configs.
    patterns = ["*.json", "*.model", "*.safetensors", "*.txt"]
    try:
        return Path(snapshot_download(repo_id, allow_patterns=patterns + ["*.bin"], local_files_only=True))
    except Exception:  # noqa: BLE001 - any failure here only means "not cached"
        pass
    if _offline():
        raise ModelError(f"model {repo_id!r} is not in the local caches and downloads are disabled "
                         f"(HF_HUB_OFFLINE/TRANSFORMERS_OFFLINE/MTQA_OFFLINE is set): {_how_to_provide(repo_id)}")
    unreachable = _hub_unreachable()
    if unreachable:
        raise ModelError(f"model {repo_id!r} is not in the local caches and the Hugging Face hub is out of reach "
                         f"({unreachable}){_not_local(repo_id)}: {_how_to_provide(repo_id)}")
    try:
        from huggingface_hub import list_repo_files

        files = list_repo_files(repo_id)
        if not any(name.endswith(".safetensors") for name in files):
            patterns.append("*.bin")
        return Path(snapshot_download(repo_id, allow_patterns=patterns))
    except Exception as exc:  # noqa: BLE001 - network, auth and missing-repo errors all end the same way
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ModelError(f"model {repo_id!r} is not a local directory and could not be downloaded "
                         f"({type(exc).__name__}: {reason[:200]}); {_how_to_provide(repo_id)}") from exc


def _not_local(spec: str) -> str:
    return f"; no local directory {spec!r} either" if "/" in spec else ""


# ---------------------------------------------------------------------- resolving --model
def _slug(text: str) -> str:
    keep = "".join(ch if ch.isalnum() or ch in "-._" else "-" for ch in text)
    return keep.strip("-.") or "model"


def checkpoint_id(path: Path) -> str:
    """A readable id for a local checkpoint: the hub id of a Hugging Face cache snapshot, else its name."""
    path = path.resolve()
    repo = path.parent.parent.name  # <cache>/models--owner--name/snapshots/<commit>
    if path.parent.name == "snapshots" and repo.startswith("models--"):
        return repo.removeprefix("models--").replace("--", "/")
    return path.name


def _checkpoint_fingerprint(path: Path) -> str:
    """Cheap identity of a local checkpoint (path, weight sizes and mtimes) to name its conversion."""
    parts = [str(path.resolve())]
    for file in sorted(path.iterdir()):
        if file.is_file():
            stat = file.stat()
            parts.append(f"{file.name}:{stat.st_size}:{stat.st_mtime_ns}")
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()[:12]


def looks_like_path(spec: str) -> bool:
    """Whether ``--model`` names a local directory rather than a hub id ('owner/name' or 'name').

    A path: it starts with '/', '.' or '~', holds a backslash or more than one '/', is no valid hub
    id, or its first part is a directory here (``models/nllb-600M-int8`` beside ``models/``).
    """
    if spec.startswith(("/", ".", "~")) or "\\" in spec or spec.count("/") > 1 or not _HUB_ID.fullmatch(spec):
        return True
    if "--" in spec or ".." in spec or spec.endswith(".git"):
        return True  # the hub refuses these in repo ids
    owner, sep, _ = spec.partition("/")
    return bool(sep) and Path(owner).is_dir()


def _missing_directory(spec: str) -> ModelError:
    path = Path(spec).expanduser()
    parent = path.parent
    if parent.is_dir() and str(parent) not in ("", "."):
        siblings = sorted(p.name for p in parent.iterdir() if p.is_dir() and not p.name.startswith("."))
        where = f"{parent}/ holds {', '.join(siblings[:8])}{' ...' if len(siblings) > 8 else ''}" if siblings else \
            f"{parent}/ holds no model directories"
    else:
        where = f"{parent}/ does not exist either" if str(parent) not in ("", ".") else "not in this directory"
    return ModelError(f"model directory {spec!r} not found ({where}); --model takes an existing directory (a "
                      "CTranslate2 model or a Transformers NLLB checkpoint) or a Hugging Face id such as "
                      f"{DEFAULT_MODEL}")


def resolve_model(spec: str = DEFAULT_MODEL, quantization: str = "int8", flores_codes: Iterable[str] = (),
                  model_cache: str | os.PathLike[str] | None = None) -> ModelInfo:
    """``--model`` -> a validated CTranslate2 model, converting (once) when needed."""
    codes = list(flores_codes)
    path = Path(spec).expanduser()
    models = Path(model_cache).expanduser() if model_cache else cache_root() / "models"
    if path.is_dir():
        if is_ct2_dir(path):
            return load_model_info(path, codes)
        if is_hf_checkpoint(path):
            target = models / f"{_slug(path.resolve().name)}-{_checkpoint_fingerprint(path)}-ct2-{quantization}"
            if not is_ct2_dir(target):
                try:
                    convert(path, target, quantization)
                except ModelError as exc:
                    if not is_ct2_dir(target):  # another task converted it meanwhile: fine
                        raise exc
            return load_model_info(target, codes)
        raise ModelError(f"{path}: neither a CTranslate2 model (model.bin + config.json) nor a Transformers "
                         "NLLB checkpoint (config.json + weights)")
    if path.exists():
        raise ModelError(f"{path}: is a file; --model takes a directory or a Hugging Face id")
    if looks_like_path(spec):
        raise _missing_directory(spec)
    target = models / f"{_slug(spec.replace('/', '--'))}-ct2-{quantization}"
    if not is_ct2_dir(target):
        local = fetch_hub_snapshot(spec)
        if is_ct2_dir(local):  # a hub repo that already holds a CTranslate2 conversion
            return load_model_info(local, codes)
        try:
            convert(local, target, quantization, source_id=spec)
        except ModelError:
            if not is_ct2_dir(target):
                raise
    return load_model_info(target, codes)
