#!/usr/bin/env bash
# The GPU section of the translation benchmark, as one short script (target: under 5 minutes on
# one GPU, model build included). Needs the project installed as the README says, with
# CTranslate2's CUDA wheel (the PyPI wheel is CUDA 12) and a CUDA build of torch for the
# Transformers engine. Writes $OUT/bench-translate-gpu.json (or ./ when OUT is unset).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-.venv/bin/python}
OUT=${OUT:-.}
nvidia-smi --query-gpu=name,memory.total,memory.free --format=csv
"$PY" -c "import ctranslate2; print('ctranslate2', ctranslate2.__version__, 'cuda devices:', ctranslate2.get_cuda_device_count())"
uptime
# --gpu: cuda, int8_float16, beam 2, 256 sentences, real batch 1,000 questions, one round.
timeout "${LIMIT_S:-540}" "$PY" bench/bench_translate.py --gpu --workdir "${WORKDIR:-/tmp/mtqa-bench}" \
    --json "$OUT/bench-translate-gpu.json" 2> >(grep -v -e '^Loading' -e '^Writing' >&2)
uptime
