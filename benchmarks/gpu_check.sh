#!/usr/bin/env bash
# GPU check, ready to run on a CUDA machine (about 6 minutes, at most 8): the tests marked `gpu`,
# the benchmarks on the device, and a `zoo matrix` over three random-init families; the figures
# are gathered at the end. Without CUDA it says so and exits 0.
# Usage: benchmarks/gpu_check.sh   (PYTHON=... to pick the interpreter; logs in $ZOO_GPU_LOGS)
set -u
cd "$(dirname "$0")/.."
PY=${PYTHON:-.venv/bin/python}
[ -x "$PY" ] || PY=python3
ZOO=("$PY" -m zoo)
if ! "$PY" -c "import sys, torch; sys.exit(0 if torch.cuda.is_available() else 1)" 2>/dev/null; then
    echo "gpu_check: no CUDA device on this machine (torch.cuda.is_available() is False); nothing to check"
    exit 0
fi
LOGS=${ZOO_GPU_LOGS:-$(mktemp -d -t zoo-gpu-XXXX)}
mkdir -p "$LOGS"
SUMMARY=()
T0=$SECONDS

step() {  # step NAME SECONDS CMD...: run with a time limit, log, keep the exit status
    local name=$1 limit=$2
    shift 2
    echo "=== $name (limit ${limit}s)"
    local t=$SECONDS
    timeout "$limit" "$@" >"$LOGS/$name.log" 2>&1
    local rc=$?
    tail -n 40 "$LOGS/$name.log"
    SUMMARY+=("$name: exit $rc in $((SECONDS - t)) s$([ $rc = 124 ] && echo ' (TIMED OUT)')")
}

"$PY" -c "import torch; p = torch.cuda.get_device_properties(0); print(f'device: {p.name}, {p.total_memory / 2**30:.0f} GiB, torch {torch.__version__}')"
step gpu-tests 90 "$PY" -m pytest -q -m gpu tests/test_gpu.py
step cka-allpairs 150 "$PY" benchmarks/bench_cka_allpairs.py --device cuda
step extract 120 "$PY" benchmarks/bench_extract.py --device cuda --size 224 --images 256 \
    --batch 64 --repeats 2
step ncut 120 "$PY" benchmarks/bench_ncut.py --quick --device cuda
step matrix 90 "${ZOO[@]}" matrix resnet-ssl dinov2 mae --random-init --device cuda \
    --data synthetic:64 --no-cache --out "$LOGS/matrix" --overwrite

echo
echo "=== figures (logs in $LOGS, total $((SECONDS - T0)) s)"
printf '%s\n' "${SUMMARY[@]}"
grep -hE "passed|failed|skipped|error" "$LOGS/gpu-tests.log" | tail -n 3
grep -hE "^engine|^per-pair|^float32 GEMM|^fraction|^max" "$LOGS/cka-allpairs.log"
grep -hE "random init|images/s|overhead" "$LOGS/extract.log"
grep -hE "^(zoo|ncut-pytorch|exact|scale|accuracy)" "$LOGS/ncut.log"
tail -n 12 "$LOGS/matrix.log"
