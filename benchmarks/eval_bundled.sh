#!/usr/bin/env bash
# The README's measured tables and figures. Output: docs/results/ and docs/*.png.
#
#   benchmarks/eval_bundled.sh                # every part, one after another (~2 h on 2 cores)
#   benchmarks/eval_bundled.sh routerdc pair  # only some parts (run two at once on two cores)
#
# Parts:
#   main      the RouterEval protocol (its own pools and splits) on RouterBench and
#             LLMRouter: pool sizes 3 and 5; three candidate groups; seeds 42-44;
#             hyperparameters chosen on the validation prompts; every reference,
#             baseline and latent router. Also RouterBench under the ranked protocol,
#             to show what the faithful pools change.
#   debias    the same for four learned routers, each also with inverse-propensity
#             weights (clip 10: ROUTER+ips) and rebalanced (ROUTER+rebal), per group.
#   routerdc  the same on RouterDC (16,480 training prompts), without LightFM (a
#             LightFM fit there takes ~30 s, times 3 settings, times 27 pools) and
#             without the debiasing variants.
#   side      side information on RouterBench: learned routers fitted on the pool only vs every LLM.
#   pair      RouteLLM's strong/weak evaluation on the pair data (MMLU, GSM8K), Hybrid LLM's
#             label with t = 0, thresholds calibrated for 30% strong calls; and the ranked
#             protocol on that two-LLM data (RouterEval's pools need at least 3 LLMs).
#   pareto    quality against cost on RouterBench (per-query costs) and LLMRouter (token prices).
# The bundled datasets ship their prompt embeddings, so nothing is encoded.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${BIN:-.venv/bin}
OUT=docs/results
mkdir -p "$OUT"
LEARNED=knn,linear,mlp,als,bpr,lightfm,bilinear

main() {
  for data in routerbench llmrouter; do
    "$BIN/recroute" eval --data "$data" --routers "oracle,random,bsm,$LEARNED" --pool-sizes 3,5 --seeds 3 \
      --json "$OUT/eval_$data.json" | tee "$OUT/eval_$data.md"
  done
  "$BIN/recroute" eval --data routerbench --protocol ranked --routers "oracle,random,bsm,$LEARNED" \
    --pool-sizes 3,5,1000 --seeds 3 --json "$OUT/ranked_routerbench.json" | tee "$OUT/ranked_routerbench.md"
}

debias() {
  for data in routerbench llmrouter; do
    "$BIN/recroute" eval --data "$data" --routers linear,mlp,bpr,bilinear --pool-sizes 3,5 --seeds 3 \
      --debias 10 --detail --json "$OUT/debias_$data.json"  # the README table: benchmarks/summarize_results.py
  done
}

routerdc() {
  "$BIN/recroute" eval --data routerdc --routers oracle,random,bsm,knn,linear,mlp,als,bpr,bilinear \
    --pool-sizes 3,5 --seeds 3 --json "$OUT/eval_routerdc.json" | tee "$OUT/eval_routerdc.md"
}

side() {
  "$BIN/recroute" eval --data routerbench --routers linear,mlp,als,bilinear --pool-sizes 3,5 --seeds 3 --side-info \
    --json "$OUT/side_info_routerbench.json" | tee "$OUT/side_info_routerbench.md"
}

pair() {
  for part in mmlu gsm8k; do
    "$BIN/recroute" pair --data routellm --groups "$part" --routers "random,bsm,$LEARNED" --seeds 3 \
      --tolerance 0 --strong-fraction 0.3 --out "docs/pair_routellm_$part.png" \
      --json "$OUT/pair_routellm_$part.json" | tee "$OUT/pair_routellm_$part.md"
  done
  "$BIN/recroute" eval --data routellm --protocol ranked --routers oracle,random,bsm,knn,linear,bilinear --seeds 3 \
    | tee "$OUT/eval_pair_routellm.md"
}

pareto() {
  for data in routerbench llmrouter; do
    "$BIN/recroute" pareto --data "$data" --routers "bsm,$LEARNED" --seeds 3 --out "docs/pareto_$data.png" \
      --json "$OUT/pareto_$data.json" | tee "$OUT/pareto_$data.md"
  done
}

for part in "${@:-main routerdc debias side pair pareto}"; do
  for p in $part; do "$p"; done
done
