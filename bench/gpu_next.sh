#!/usr/bin/env bash
# The next lent GPU's session in one command (about 11 minutes): first the speed figures never
# taken (seconds per epoch of single RNS, DNS, SDNS runs on Gowalla, with the GPU's utilisation
# sampled every second), then configs/gpu-gowalla.toml (6 runs at once, $MINUTES each).
#   OUT=/some/folder bash bench/gpu_next.sh        (softbpr installed, ../shared/data beside)
# Env: PY, OUT (default .), MINUTES (training budget per run, default 7), DEVICE (cuda),
#      EXTRA (more sweep flags), SPEED_BATCHES (200); a CPU smoke test:
#      DEVICE=cpu SPEED_BATCHES=2 EXTRA="--set max_batches=2 --set epochs=1" OUT=/tmp/g bash ...
# Outputs in $OUT: env.txt, gpu-util.csv, bench-gpu.json, speed.log, gpu-gowalla.log and
# gpu-gowalla.tar.gz (results.jsonl, each run's config/history/result, the report).
set -uo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
[ -x "$PY" ] || PY=python3
OUT=${OUT:-.}
MINUTES=${MINUTES:-7}
DEVICE=${DEVICE:-cuda}
mkdir -p "$OUT" sweeps
{ nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
  "$PY" -c "import torch; print('torch', torch.__version__, 'cuda', torch.cuda.is_available())"
  nproc; } > "$OUT/env.txt" 2>&1
cat "$OUT/env.txt"
nvidia-smi --query-gpu=timestamp,utilization.gpu,memory.used --format=csv -lms 1000 \
    > "$OUT/gpu-util.csv" 2>/dev/null &
SMI=$!
trap 'kill $SMI 2>/dev/null' EXIT
echo "speed $(date +%T)" | tee -a "$OUT/gpu-util.csv"
timeout 150 "$PY" bench/epoch.py --datasets gowalla --device "$DEVICE" --samplers rns,dns,sdns \
    --max-batches "${SPEED_BATCHES:-200}" --json "$OUT/bench-gpu.json" 2>&1 | tee "$OUT/speed.log"
echo "study $(date +%T)" | tee -a "$OUT/gpu-util.csv"
"$PY" -m softbpr sweep configs/gpu-gowalla.toml --jobs 6 --set "time_limit=$MINUTES" \
    --set "device=$DEVICE" ${EXTRA:-} > "$OUT/gpu-gowalla.log" 2>&1
echo "done $(date +%T)" | tee -a "$OUT/gpu-util.csv"
grep -h "^\[job" "$OUT/gpu-gowalla.log" | grep -v "results:" | tail -20
"$PY" -m softbpr report sweeps/gpu-gowalla --rows method --proposed none \
    --out sweeps/gpu-gowalla/report || true
tar czf "$OUT/gpu-gowalla.tar.gz" sweeps/gpu-gowalla/results.jsonl sweeps/gpu-gowalla/report.* \
    $(ls -d sweeps/gpu-gowalla/runs/*/{config.json,history.jsonl,result.json,sweep.json} \
      2>/dev/null)
