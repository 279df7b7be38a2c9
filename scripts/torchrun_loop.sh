#!/usr/bin/env bash
# Launch `torchrun --standalone --nproc-per-node 2 -m wae train` on tiny synthetic data N times
# (default 20) on the CPU and count the launches that exit 0 with a whole run folder.
# usage: scripts/torchrun_loop.sh [N] [WORK_DIR]
set -u
n=${1:-20}
work=${2:-$(mktemp -d)}
mkdir -p "$work"
here=$(cd "$(dirname "$0")/.." && pwd)
torchrun=${TORCHRUN:-$here/.venv/bin/torchrun}
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}
clean=0
for i in $(seq 1 "$n"); do
    out=$work/run-$i
    "$torchrun" --standalone --nproc-per-node 2 -m wae train --dataset synthetic --batch-size 32 \
        --precision fp32 --no-batch-norm --max-steps 2 --eval-every 0 --no-progress --out "$out" \
        >"$work/log-$i.txt" 2>&1
    rc=$?
    if [ "$rc" -eq 0 ] && [ -f "$out/report.md" ] && [ -f "$out/config.json" ]; then
        clean=$((clean + 1))
    else
        echo "launch $i: exit $rc (log: $work/log-$i.txt)"
        grep -m3 -E "terminate called|Error|error" "$work/log-$i.txt"
    fi
done
echo "$clean of $n launches exited 0"
[ "$clean" -eq "$n" ]
