#!/usr/bin/env bash
# One prepared GPU check: the ensemble and train_step benchmarks on CUDA, with their ratios.
# Budget: under 8 minutes on one H100 (each benchmark has its own timeout below).
#
#   bash bench/gpu_check.sh          # on a machine with a CUDA GPU
#   bash bench/gpu_check.sh --cpu    # the same script on the CPU (smaller sizes), to test it
#
# Logs go to $OUT (the device runner's output folder) or /tmp when OUT is unset.
# PYTHON picks the interpreter (default: .venv/bin/python when present, else python3);
# the package and the benchmarks are imported from this checkout (PYTHONPATH=src).
set -euo pipefail
cd "$(dirname "$0")/.."

DEVICE=cuda
ENSEMBLE_ARGS=(--quick)
STEP_ARGS=(--quick --profile --sizes 4096 1024)
if [[ "${1:-}" == "--cpu" ]]; then
    DEVICE=cpu
    ENSEMBLE_ARGS=(--quick --sizes 128 --E 1 4 16 --repeats 2)
    STEP_ARGS=(--quick --sizes 1024 --repeats 2)
fi
if [[ -z "${PYTHON:-}" ]]; then
    if [[ -x .venv/bin/python ]]; then PYTHON=.venv/bin/python; else PYTHON=python3; fi
fi
export PYTHONPATH="$PWD/src${PYTHONPATH:+:$PYTHONPATH}"
LOGS="${OUT:-/tmp}/gpu_check"
mkdir -p "$LOGS"

echo "== gpu_check: device=$DEVICE python=$PYTHON logs=$LOGS"
"$PYTHON" - "$DEVICE" <<'PY'
import sys, torch
device = sys.argv[1]
print(f"torch {torch.__version__}, cuda available {torch.cuda.is_available()}")
if device == "cuda":
    if not torch.cuda.is_available():
        sys.exit("gpu_check: no CUDA device visible to torch; run with --cpu to test the script on the CPU")
    print("GPU:", torch.cuda.get_device_name(0))
import gridsweep  # noqa: F401  (fails early if the package's dependencies are missing)
PY
if [[ "$DEVICE" == cuda ]] && command -v nvidia-smi >/dev/null; then
    nvidia-smi --query-gpu=name,memory.total,memory.used,utilization.gpu --format=csv || true
fi

status=0
echo "== bench/ensemble.py ${ENSEMBLE_ARGS[*]} --device $DEVICE"
timeout 200 "$PYTHON" bench/ensemble.py "${ENSEMBLE_ARGS[@]}" --device "$DEVICE" 2>&1 | tee "$LOGS/ensemble.txt" \
    || { echo "gpu_check: ensemble benchmark failed or timed out"; status=1; }
echo "== bench/train_step.py ${STEP_ARGS[*]} --device $DEVICE"
timeout 240 "$PYTHON" bench/train_step.py "${STEP_ARGS[@]}" --device "$DEVICE" 2>&1 | tee "$LOGS/train_step.txt" \
    || { echo "gpu_check: train_step benchmark failed or timed out"; status=1; }

echo "== summary ($DEVICE)"
grep -h '^RESULT' "$LOGS/ensemble.txt" "$LOGS/train_step.txt" || echo "gpu_check: no RESULT lines"
awk '/^ *[0-9]+ +[0-9]+ \|/ {print "ensemble Ng " $1 " E " $2 ": " $NF}' "$LOGS/ensemble.txt"
exit $status
