#!/usr/bin/env bash
# The README's measured tables. Output: docs/results/ and docs/*.png.
#  1. The RouterEval protocol on the bundled datasets with at least 7 LLMs:
#     pool sizes 3, 5 and all; three candidate groups; 3 seeds; hyperparameters
#     chosen on the validation prompts; every reference, baseline and latent router.
#     RouterDC (16,480 training prompts) runs the reference routers, the
#     baselines and the bilinear router with default hyperparameters, which
#     keeps the whole script near 40 minutes on two cores.
#  2. RouteLLM's strong/weak evaluation on the pair data (MMLU, GSM8K).
#  3. Side information: learned routers fitted on the pool only vs on every LLM.
# Prompt embeddings are encoded once and cached (~10 min for all four datasets on 2 cores).
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${BIN:-.venv/bin}
OUT=docs/results
mkdir -p "$OUT"
ROUTERS=${ROUTERS:-oracle,random,bsm,knn,linear,mlp,als,bpr,lightfm,bilinear}
DATASETS=${DATASETS:-routerbench llmrouter}
eval_one() {
  "$BIN/recroute" eval --data "$1" --routers "$ROUTERS" --pool-sizes 3,5,1000 --seeds 3 \
    --json "$OUT/eval_$1.json" | tee "$OUT/eval_$1.md"
}
set -- $DATASETS
eval_one "$1"
for part in mmlu gsm8k; do
  "$BIN/recroute" pair --data routellm --groups "$part" --routers random,bsm,knn,linear,mlp,bilinear --seeds 3 \
    --out "docs/pair_routellm_$part.png" --json "$OUT/pair_routellm_$part.json" | tee "$OUT/pair_routellm_$part.md"
done
"$BIN/recroute" eval --data "$1" --routers linear,mlp,als,bilinear --pool-sizes 3,5 --seeds 3 --side-info \
  --json "$OUT/side_info_$1.json" | tee "$OUT/side_info_$1.md"
shift
for data in "$@"; do eval_one "$data"; done
"$BIN/recroute" eval --data routerdc --routers oracle,random,bsm,knn,linear,mlp,bilinear --no-tune \
  --pool-sizes 3,5,1000 --seeds 3 --json "$OUT/eval_routerdc.json" | tee "$OUT/eval_routerdc.md"
"$BIN/recroute" eval --data routellm --routers oracle,random,bsm,knn,linear,bilinear --seeds 3 \
  | tee "$OUT/eval_pair_routellm.md"
