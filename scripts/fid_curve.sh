#!/usr/bin/env bash
# Inception FID (2,000 samples or N=10000, prior and 10-component mixture) of a run's epoch checkpoints:
# for each epoch E, OUT/eE gets the run's config.json and the checkpoint of epoch E, then
# wae fit-sampler and wae evaluate --n N (with and without --sampler gmm). The run must keep
# its checkpoints (wae train --keep-checkpoints 30). Then plot:
#   python scripts/quality_curve.py RUN --fid OUT --out docs/img/demo-fid-curve.png
# usage: scripts/fid_curve.sh RUN OUT EPOCH...      (e.g. runs/demo-quiet runs/curve 1 2 4 7 12 18 25)
set -euo pipefail
run=$1 out=$2
shift 2
wae=${WAE:-.venv/bin/wae}
n=${N:-2000}  # samples of each FID
for e in "$@"; do
  last=$({ grep '"kind": "eval"' "$run/metrics.jsonl" | grep "\"epoch\": $e[,}]" || true; } | head -1 | sed 's/.*"step": \([0-9]*\).*/\1/')
  if [ -z "$last" ]; then echo "no evaluation of epoch $e in $run/metrics.jsonl" >&2; exit 2; fi
  checkpoint=$run/checkpoints/step-$(printf "%08d" "$last").pt
  [ -f "$checkpoint" ] || { echo "$checkpoint is not kept" >&2; exit 2; }
  d=$out/e$e
  mkdir -p "$d/checkpoints"
  cp "$run/config.json" "$d/"
  cp "$checkpoint" "$d/checkpoints/"
  "$wae" fit-sampler "$d" > "$d/fit.log" 2>&1
  "$wae" evaluate "$d" --n "$n" > "$d/eval-prior.log" 2>&1
  "$wae" evaluate "$d" --n "$n" --sampler gmm > "$d/eval-gmm.log" 2>&1
  echo "epoch $e done $(date +%T)"
done
