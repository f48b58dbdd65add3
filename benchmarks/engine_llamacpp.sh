#!/usr/bin/env bash
# Issue 14's measurement: the bundled pair on llama.cpp's llama-server under load vs the in-process decoder,
# on the same 12 Spec-Bench prompts (stratified sample, seed 0), 64 output tokens each. Writes DIR/results.json
# (in-process run + the engine block merged in) and DIR/brief.pdf showing both verdicts; prints every figure.
#   usage: flock /tmp/specdec-heavy.lock benchmarks/engine_llamacpp.sh [DIR] [WORKLOAD]
set -euo pipefail
cd "$(dirname "$0")/.."
OUT="${1:-/tmp/specdec-engine-llamacpp}"
WORKLOAD="${2:-../shared/data/spec_bench_questions.jsonl}"
N=12 TOKENS=64 G="${DRAFT_LENGTHS:-2,4}"
mkdir -p "$OUT" && rm -f "$OUT/results.json"
scripts/install_llama_server.sh >/dev/null
t0=$(date +%s)
python -m specdec run --workload "$WORKLOAD" --out "$OUT" --max-prompts $N --methods draft --draft-lengths "$G" \
  --max-new-tokens $TOKENS --no-store
t1=$(date +%s)
python -m specdec engine-run --workload "$WORKLOAD" --out "$OUT" --engine llama.cpp --max-prompts $N \
  --draft-lengths "$G" --concurrency 1,2,4 --max-new-tokens $TOKENS
t2=$(date +%s)
python -m specdec decide --results "$OUT/results.json" --hardware this-machine | head -1
python -m specdec brief --results "$OUT/results.json" --out "$OUT/brief.pdf" --hardware this-machine
echo "in-process run $((t1 - t0)) s, engine-run $((t2 - t1)) s"
