#!/usr/bin/env bash
# Submit a whole pipeline as chained Slurm jobs: sharded steps as job arrays, each step
# starting only after the previous one succeeded (--dependency=afterok).
#
#   manifests/slurm/pipeline.sh pipelines/paper.yaml [ARRAY_TASKS]
set -euo pipefail
PIPELINE="${1:?usage: pipeline.sh PIPELINE.yaml [ARRAY_TASKS]}"
TASKS="${2:-8}"
HERE="$(cd "$(dirname "$0")" && pwd)"
mkdir -p logs

submit() {  # submit KIND STEP [DEPENDENCY]
  local kind="$1" step="$2" dep="${3:-}" args=(--parsable --export="ALL,PIPELINE=$PIPELINE,STEP=$step")
  [[ -n "$dep" ]] && args+=(--dependency="afterok:$dep")
  case "$kind" in
    array) sbatch "${args[@]}" --array="0-$((TASKS - 1))" --job-name="mtqa-$step" "$HERE/step-array.sbatch" ;;
    single) sbatch "${args[@]}" --job-name="mtqa-$step" "$HERE/step-single.sbatch" ;;
    train) sbatch "${args[@]}" --job-name="mtqa-$step" "$HERE/train.sbatch" ;;
  esac
}

prev=""
# Steps in order, from the plan mtqa prints: "- NAME [STAGE ...] ...".
while read -r name stage; do
  case "$stage" in
    collect|translate|filter) kind=array ;;
    train) kind=train ;;
    *) kind=single ;;
  esac
  prev="$(submit "$kind" "$name" "$prev")"
  echo "submitted $name ($stage) as job $prev"
done < <(mtqa run "$PIPELINE" --dry-run | sed -n 's/^- \([^ ]*\) \[\([^] ]*\).*/\1 \2/p')
