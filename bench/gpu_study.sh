#!/usr/bin/env bash
# Issue 4's studies on one GPU, all at once (several runs share the GPU through --jobs):
#  - configs/sweep-gpu.toml: RNS / DNS / SDNS / MixGCF on Gowalla (1 seed) and MovieLens-1M
#    (3 seeds), 16 runs, each with a training budget of $MINUTES minutes;
#  - configs/sweep-gpu-small.toml: IRGAN, AdvIR, and NGCF x 4 presets on ml-100k and Tmall
#    (3 seeds, 36 runs, 4 jobs) within the same $MINUTES (runs that cannot start stay pending);
# then the reports and the plots.
#   bash bench/gpu_study.sh                  (softbpr installed, ../shared/data beside the repo)
#   DATA=/path/to/data MINUTES=5 bash bench/gpu_study.sh
# Outputs: sweeps/gpu*/ (results.jsonl, runs/*/history.jsonl|result.json, report.md/.csv,
# plots/); with $OUT set, a tarball of those light files in $OUT/gpu-study.tar.gz.
set -uo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
[ -x "$PY" ] || PY=python3
MINUTES=${MINUTES:-5}
DATA=${DATA:-../shared/data}
DEVICE=${DEVICE:-cuda}
mkdir -p sweeps
sweepfile() {  # the shipped file, or a copy with the data paths rewritten
    if [ "$DATA" = "../shared/data" ]; then echo "configs/$1"; return; fi
    local f; f=$(mktemp --suffix .toml); sed "s#\.\./shared/data#$DATA#g" "configs/$1" > "$f"
    echo "$f"
}
BIG=$(sweepfile sweep-gpu.toml); SMALL=$(sweepfile sweep-gpu-small.toml)
# EXTRA: more sweep flags, e.g. EXTRA="--set max_batches=3" for a smoke test of this script
sweep() { "$PY" -m softbpr sweep "$@" --set "device=$DEVICE" ${EXTRA:-}; }
t0=$(date +%s)
sweep "$BIG" --out sweeps/gpu --set "time_limit=$MINUTES" --only dataset=gowalla --seeds 1 \
    --jobs 4 > sweeps/gpu.gowalla.log 2>&1 &
a=$!
sweep "$BIG" --out sweeps/gpu --set "time_limit=$MINUTES" --only dataset=ml-1m --jobs 12 \
    > sweeps/gpu.ml-1m.log 2>&1 &
b=$!
sweep "$SMALL" --out sweeps/gpu-small --budget "$MINUTES" --jobs 4 > sweeps/gpu-small.log 2>&1 &
c=$!
wait $a; wait $b; wait $c
echo "study: $(( $(date +%s) - t0 )) s"
grep -h "^\[job" sweeps/gpu.gowalla.log sweeps/gpu.ml-1m.log sweeps/gpu-small.log \
    | grep -v "skipped\|results:" | tail -70
"$PY" -m softbpr report sweeps/gpu --out sweeps/gpu/report
"$PY" -m softbpr plot sweeps/gpu --out sweeps/gpu/plots || true
if [ -f docs/results/presets-results.jsonl ] && [ -f sweeps/gpu-small/results.jsonl ]; then
    "$PY" -m softbpr report sweeps/gpu-small/results.jsonl docs/results/presets-results.jsonl \
        --rows model,method --out sweeps/gpu-small/report
fi
"$PY" -m softbpr plot sweeps/gpu-small --out sweeps/gpu-small/plots || true
if [ -n "${OUT:-}" ]; then
    tar czf "$OUT/gpu-study.tar.gz" sweeps/gpu*.log sweeps/gpu*/results.jsonl \
        sweeps/gpu*/report.* sweeps/gpu*/plots \
        $(ls -d sweeps/gpu*/runs/*/{config.json,history.jsonl,result.json,sweep.json} 2>/dev/null)
fi
