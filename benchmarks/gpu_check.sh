#!/usr/bin/env bash
# Issue 12's GPU check, one script for a lent CUDA machine: about 8 minutes in all, each step under its own limit
# so one slow step cannot eat the others' time.
#   1. the CUDA tests: pytest -m gpu (stacked folds on CUDA against one-by-one CUDA training, the CUDA LOSO run)
#   2. benchmarks/loso_speed.py on CUDA, stacked vs one by one (local), achieved TFLOP/s beside a bf16 matmul
#      rate measured in the same run:
#      - pamnet at 224 px: the stack over all 68 folds for 2 of the recipe's 40 epochs, projected to 40 (every
#        epoch costs the same); one by one on 2 folds x 1 epoch, projected; target <= 3 min for the full run
#      - the STSTNet recipe (28x28 flow, batch 256, 800 epochs): the stack over all 68 folds for 100 epochs,
#        projected to 800; one by one on 2 folds x 20 epochs; target <= 1 min
# Usage (repository root or anywhere): bash benchmarks/gpu_check.sh; results also go to $OUT (default
# /tmp/gpu-check). Exit status: that of the first failing step.
set -uo pipefail
cd "$(dirname "$0")/.."
export PYTHONPATH="$PWD/src${PYTHONPATH:+:$PYTHONPATH}"
out="${OUT:-/tmp/gpu-check}"
mkdir -p "$out"
status=0
step() {  # step SECONDS LOGNAME COMMAND...: run under a time limit, log to $out/LOGNAME, keep the first failure
    local limit=$1 log=$2
    shift 2
    echo "== $* (limit ${limit} s)"
    timeout "$limit" "$@" 2>&1 | tee "$out/$log"
    local rc=${PIPESTATUS[0]}
    [ "$rc" -eq 0 ] || { echo "== exit $rc"; [ "$status" -ne 0 ] || status=$rc; }
}
{
    date -u
    nvidia-smi --query-gpu=name,memory.total,memory.used,clocks.max.sm --format=csv
    python -c "import torch; print('torch', torch.__version__, 'cuda', torch.version.cuda, torch.cuda.is_available())"
} 2>&1 | tee "$out/machine.txt"
bench=(python benchmarks/loso_speed.py --device cuda --executors stacked local)
step 120 pytest-gpu.txt python -m pytest -m gpu -q -p no:cacheprovider tests
step 180 pamnet-224.txt "${bench[@]}" --workloads pamnet-224 --folds 68 --epochs 2 \
    --one-by-one-folds 2 --one-by-one-epochs 1 --overhead-epochs 1 --rounds 3
step 120 ststnet.txt "${bench[@]}" --workloads ststnet --folds 68 --epochs 100 \
    --one-by-one-folds 2 --one-by-one-epochs 20 --overhead-epochs 10 --rounds 3
exit "$status"
