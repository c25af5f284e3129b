#!/usr/bin/env bash
# Submit a whole pipeline as chained Slurm jobs: sharded steps as job arrays, each step starting
# only after the previous one succeeded (--dependency=afterok). Logs go to ./logs/.
#
#   manifests/slurm/pipeline.sh [--resume] PIPELINE.yaml [ARRAY_TASKS]
#
#   --resume     after a failed or cancelled job: cancel this pipeline's jobs left waiting on it
#                (DependencyNeverSatisfied) and submit only the steps that are not complete.
#                Within a step, tasks skip the shards they already finished.
#   ARRAY_TASKS  tasks per sharded step (default 8); every array gets MTQA_NUM_SHARDS=ARRAY_TASKS.
#
# Resources per task, highest priority first: MTQA_CPUS_PER_TASK / MTQA_MEM / MTQA_GPUS_PER_NODE /
# MTQA_TIME from the environment, then the step's `resources:` in the pipeline, then defaults read
# from the cluster (CPUs: the smallest node's, at most 8; GPUs for train: the nodes' gres/gpu count,
# 0 on a CPU-only cluster, where train runs as one CPU process; memory and time: the partition's
# defaults). Other sbatch settings come from Slurm's own SBATCH_* variables (SBATCH_PARTITION,
# SBATCH_ACCOUNT, ...). MTQA_SET="--set k=v ..." is passed to every mtqa run.
set -euo pipefail
RESUME=0
if [[ "${1:-}" == --resume ]]; then RESUME=1; shift; fi
PIPELINE="${1:?usage: pipeline.sh [--resume] PIPELINE.yaml [ARRAY_TASKS]}"
TASKS="${2:-8}"
[[ "$TASKS" =~ ^[1-9][0-9]*$ ]] || { echo "Error: ARRAY_TASKS must be a positive integer, not '$TASKS'" >&2; exit 2; }
HERE="$(cd "$(dirname "$0")" && pwd)"

# The steps as mtqa sees them (fails here, non-zero, on a bad pipeline): a header, then
# NAME KIND TASKS DONE DEPENDS CPUS MEM GPUS TIME per line.
# shellcheck disable=SC2086  # MTQA_SET is a list of words
PLAN="$(mtqa run "$PIPELINE" --list-steps --num-shards "$TASKS" ${MTQA_SET:-})"
command -v sbatch >/dev/null || { echo "Error: sbatch not found: run this on a Slurm login node" >&2; exit 1; }

node_cpus() { sinfo -h -o %c 2>/dev/null | tr -d '+' | sort -n | head -n 1; }
node_gpus() { sinfo -h -o %G 2>/dev/null | grep -o 'gpu[^,(]*' | sed 's/.*://' | grep -E '^[0-9]+$' | sort -n | tail -n 1; }
DEFAULT_CPUS="$(node_cpus || true)"; DEFAULT_CPUS="${DEFAULT_CPUS:-1}"
(( DEFAULT_CPUS > 8 )) && DEFAULT_CPUS=8
DEFAULT_GPUS="$(node_gpus || true)"; DEFAULT_GPUS="${DEFAULT_GPUS:-0}"
pick() { local env="$1" step="$2" fallback="$3"; if [[ -n "$env" ]]; then echo "$env"; elif [[ "$step" != - ]]; then echo "$step"; else echo "$fallback"; fi; }

PIPE_NAME="$(sed -n '1s/^# pipeline \([^ ]*\) .*/\1/p' <<<"$PLAN")"
STEPS=()
while IFS=$'\t' read -r name _; do STEPS+=("$name"); done < <(grep -v '^#' <<<"$PLAN")

# Jobs of this pipeline still in the queue. Running ones, or ones pending for any reason but a
# dependency, refuse. If none is left, those waiting on a dependency wait on a job that failed or
# was cancelled: stuck for ever (DependencyNeverSatisfied); --resume cancels them.
stuck=() active=()
while IFS='|' read -r id jobname state reason; do
  for s in "${STEPS[@]}"; do
    [[ "$jobname" == "mtqa-$PIPE_NAME-$s" ]] || continue
    if [[ "$state" == PENDING && "$reason" == Dependency* ]]; then stuck+=("$id"); else active+=("$id ($jobname, $state)"); fi
  done
done < <(squeue -h -u "$(id -un)" -o '%i|%j|%T|%r' 2>/dev/null || true)
if (( ${#active[@]} )); then
  echo "Error: jobs of pipeline $PIPE_NAME are still queued or running: ${active[*]}; wait for them or scancel them" >&2
  exit 1
fi
if (( ${#stuck[@]} )); then
  if (( ! RESUME )); then
    echo "Error: jobs of pipeline $PIPE_NAME wait on a failed job (DependencyNeverSatisfied): ${stuck[*]}; rerun with --resume" >&2
    exit 1
  fi
  echo "cancelling ${#stuck[@]} job(s) left waiting on a failed one: ${stuck[*]}"
  scancel "${stuck[@]%%_*}"
fi

mkdir -p logs
prev=""
while IFS=$'\t' read -r name kind tasks done _depends cpus mem gpus time; do
  if [[ "$done" == 1 ]]; then
    if (( ! RESUME )); then
      echo "Error: step $name of $PIPELINE is already complete; use --resume to submit only what is not" >&2
      exit 1
    fi
    echo "$name: complete, not submitted"
    continue
  fi
  args=(--parsable --job-name="mtqa-$PIPE_NAME-$name" --cpus-per-task="$(pick "${MTQA_CPUS_PER_TASK:-}" "$cpus" "$DEFAULT_CPUS")")
  m="$(pick "${MTQA_MEM:-}" "$mem" "")"; [[ -n "$m" ]] && args+=(--mem="$m")
  t="$(pick "${MTQA_TIME:-}" "$time" "")"; [[ -n "$t" ]] && args+=(--time="$t")
  [[ -n "$prev" ]] && args+=(--dependency="afterok:$prev")
  export_vars="ALL,PIPELINE=$PIPELINE,STEP=$name"
  case "$kind" in
    array)
      args+=(--array="0-$((tasks - 1))" --output="logs/%x-%A_%a.out" --export="$export_vars,MTQA_NUM_SHARDS=$tasks")
      script="$HERE/step-array.sbatch" ;;
    train)
      g="$(pick "${MTQA_GPUS_PER_NODE:-}" "$gpus" "$DEFAULT_GPUS")"
      args+=(--output="logs/%x-%j.out" --export="$export_vars")
      if (( g > 0 )); then args+=(--gpus-per-node="$g"); script="$HERE/train.sbatch"
      else script="$HERE/step-single.sbatch"; fi ;;  # CPU-only: one process, no torchrun
    *)
      args+=(--output="logs/%x-%j.out" --export="$export_vars")
      script="$HERE/step-single.sbatch" ;;
  esac
  prev="$(sbatch "${args[@]}" "$script")"
  prev="${prev%%;*}"
  echo "$name: submitted as job $prev ($kind, $tasks task(s))"
done < <(grep -v '^#' <<<"$PLAN")
[[ -n "$prev" ]] || echo "every step of $PIPELINE is complete: nothing to submit"
