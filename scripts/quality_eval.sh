#!/usr/bin/env bash
# Inception FID (10,000 samples against the 10,000 MNIST test images) of one run with each
# ex-post sampler: the prior, a 10-component Gaussian mixture, the mixture whose size held-out
# codes chose, and a neural spline flow. Writes RUN/metrics*.json; about 4 minutes an
# evaluation with bf16 Inception on a CPU that has it (docs/results.md, "Sample quality").
#   scripts/quality_eval.sh runs/demo
set -euo pipefail
run=$1
wae=${WAE:-.venv/bin/wae}
$wae evaluate "$run" --n 10000
$wae fit-sampler "$run"
$wae evaluate "$run" --n 10000 --sampler gmm
$wae fit-sampler "$run" --kind flow
$wae evaluate "$run" --n 10000 --sampler flow
$wae fit-sampler "$run" --components auto
$wae evaluate "$run" --n 10000 --sampler gmm --out "$run/metrics-gmm-auto.json"
