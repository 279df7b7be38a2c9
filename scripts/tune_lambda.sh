#!/usr/bin/env bash
# The lambda sweep behind the swd / sinkhorn / cw settings of docs/results.md: each penalty at
# lambda 1, 10, 100 for EPOCHS epochs (fast net, seed 0), scored on 2,000 prior samples by the
# classifier's Fréchet distance at the end. Prints one line per run.
# Usage: scripts/tune_lambda.sh [EPOCHS] [OUT]   (defaults: 3, runs/tune)
set -euo pipefail
EPOCHS=${1:-3}
OUT=${2:-runs/tune}
WAE=${WAE:-.venv/bin/wae}
for objective in swd sinkhorn cw; do
    for lam in 1 10 100; do
        run="$OUT/$objective-lam$lam"
        if [ ! -f "$run.json" ]; then
            "$WAE" train --objective "$objective" --lam "$lam" --epochs "$EPOCHS" --eval-every "$EPOCHS" \
                --seed 0 --threads "${THREADS:-1}" --out "$run" --overwrite --no-progress 2>/dev/null > "$run.json"
        fi
        python3 -c "import json,sys; r=json.load(open(sys.argv[1])); print(sys.argv[2], sys.argv[3], \
'fd %.1f recon %.4f mmd %.4f' % (r['fd_samples'], r['test_recon_mse'], r['test_mmd']))" "$run.json" "$objective" "$lam"
    done
done
