"""Evaluate routers on RouterBench, then fit one, save it, load it back and route new prompts.

    python examples/fit_eval_route.py [ROUTER_FOLDER]

ROUTER_FOLDER defaults to ./routers/bilinear-routerbench. The first run encodes
the ~3,200 RouterBench prompts with the bundled MiniLM model (about two
minutes on a laptop CPU) and caches the vectors in ~/.cache/recroute (or
$RECROUTE_CACHE); later runs read them from the cache in about a second.
"""
from __future__ import annotations

import sys
import time

import torch

import recroute
from recroute import protocol
from recroute.embed import DEFAULT_MODEL
from recroute.report import format_table
from recroute.routers import make_router
from recroute.store import save_router

# The learned routers here train full-batch on a few thousand prompts: one thread is fastest, and on a
# busy machine extra threads spend their time waiting for each other.
torch.set_num_threads(1)

folder = sys.argv[1] if len(sys.argv) > 1 else "routers/bilinear-routerbench"
started = time.time()

# 1. Load the bundled dataset: a prompts x LLMs matrix of 0/1 outcomes (prompts are users, LLMs are items),
#    with the prompt texts. Routers read prompts through their embeddings, so attach those (cached on disk).
data = protocol.with_embeddings(recroute.load_dataset("routerbench"), progress=True)
print(f"{data.source}: {data.n_prompts} prompts x {data.n_models} LLMs, embeddings {data.embeddings.shape[1]}-d")

# 2. RouterEval's protocol, as its own scripts choose pools and splits: for each seed an 80/10/10 split of every
#    benchmark; candidate pools of 3 and 5 LLMs (the best window among the weakest, among the strongest, and the
#    best draw of one LLM per stratum from weak to strong); each router fitted on the training prompts, its
#    hyperparameters chosen on the validation prompts, and judged on the test prompts. bsm (always the best
#    single LLM on training prompts) is the bar to beat.
routers = ["bsm", "linear", "bilinear", "als"]
rows = protocol.evaluate(data, routers, pool_sizes=[3, 5], seeds=[42, 43])

# 3. Average over pool groups and seeds (± is the spread across seeds). mu: mean true score of the chosen LLMs;
#    V_R: mu over the score of the LLM that is best overall on training prompts; V_B: mu over the best single LLM
#    of the pool on the same test prompts (> 1: routing beats always calling that one LLM); E_sel: entropy in bits
#    of which LLMs get chosen (0 = always the same one).
table = protocol.summarize(rows, by=("m", "router"))
print(format_table(
    ["pool size", "router", "mu", "V_R", "V_B", "E_sel", "seeds"],
    [[r["m"], r["router"], f"{r['mu']:.3f} ± {r['mu_std']:.3f}", f"{r['vr']:.3f} ± {r['vr_std']:.3f}",
      f"{r['vb']:.3f}", f"{r['es']:.3f}", r["seeds"]] for r in table],
))

# 4. Fit the bilinear router (score = <W·e_prompt, v_llm> + b_llm) on every prompt and save it as a folder:
#    manifest.json (router, hyperparameters, LLMs, embedding model) + arrays.npz (no pickle).
router = make_router("bilinear").fit(data)
save_router(router, folder, embedding_model=DEFAULT_MODEL, data_source=data.source,
            embedding_dim=data.embeddings.shape[1])
print(f"\nsaved a bilinear router over {len(router.models_)} LLMs to {folder}")

# 5. Load it back the way a service would: the router plus the text encoder it was fitted with.
served = recroute.load_router(folder)

# 6. Route new prompts: texts in, a ranked list of LLMs out (top 3 of all LLMs, then of a cheaper pool).
prompts = [
    "Write a Python function that returns the n-th Fibonacci number.",
    "Which is more likely to float, a block of wood or an iron nail? Explain.",
    "The trophy didn't fit into the suitcase because it was too small. What was too small?",
]
cheap = ["mistralai/mixtral-8x7b-chat", "gpt-3.5-turbo-1106", "meta/code-llama-instruct-34b-chat"]
for pool_name, pool in (("all LLMs", None), ("cheap pool", cheap)):
    print(f"\nrankings among {pool_name}:")
    for prompt, ranking in zip(prompts, served.rank(prompts, pool=pool, k=3)):
        print(f"  {prompt}")
        for place, entry in enumerate(ranking, 1):
            print(f"    {place}. {entry['llm']:<36} {entry['score']:+.3f}")

print(f"\ndone in {time.time() - started:.0f} s")
