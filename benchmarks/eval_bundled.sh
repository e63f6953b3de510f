#!/usr/bin/env bash
# The README's measured tables: the RouterEval protocol on every bundled dataset
# with at least 7 LLMs (pool sizes 3, 5 and all; three groups; 3 seeds), and
# RouteLLM's strong/weak evaluation on the pair data. Output: docs/results/.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${BIN:-.venv/bin}
OUT=docs/results
mkdir -p "$OUT"
ROUTERS=${ROUTERS:-oracle,random,bsm,knn,linear,mlp}
for data in routerbench llmrouter routerdc; do
  "$BIN/recroute" eval --data "$data" --routers "$ROUTERS" --pool-sizes 3,5,1000 --seeds 3 \
    --json "$OUT/eval_$data.json" | tee "$OUT/eval_$data.md"
done
for part in mmlu gsm8k; do
  "$BIN/recroute" pair --data routellm --groups "$part" --routers random,bsm,knn,linear,mlp --seeds 3 \
    --out "docs/pair_routellm_$part.png" --json "$OUT/pair_routellm_$part.json" | tee "$OUT/pair_routellm_$part.md"
done
