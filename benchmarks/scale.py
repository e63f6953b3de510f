"""How recroute's cost grows with the matrix: load, ALS fit and routing, up to RouterEval's size.

    python benchmarks/scale.py                       # 1,000 × 100, 5,000 × 1,000, 25,000 × 8,500
    python benchmarks/scale.py --sizes 1000x100      # the CI smoke size

For each size: `recroute synth` writes the matrix (dense .npz), then a fresh
child process loads it, fits ALS (64 factors, 15 iterations, ridge cold
start, one BLAS thread as implicit wants) and routes 5,000 prompts from their
precomputed embeddings: top-5 among all LLMs through the exact and the HNSW
FAISS index, and the best of a 5-LLM pool. The child reports its times and
peak resident memory, so each size's memory is its own. Prints a table;
--json writes the rows.
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

CHILD = r"""
import json, resource, sys, time
import numpy as np
from recroute.loaders import load
from recroute.retrieval import LLMIndex
from recroute.routers import Queries, make_router

path, queries_n = sys.argv[1], int(sys.argv[2])
row = {}
start = time.perf_counter(); data = load(path); row["load_s"] = time.perf_counter() - start
start = time.perf_counter()
router = make_router("als", factors=64, iterations=15, cold_start="ridge").fit(data)
row["fit_s"] = time.perf_counter() - start
emb = data.embeddings[np.random.default_rng(0).choice(data.n_prompts, min(queries_n, data.n_prompts), replace=False)]
vectors = router.query_vectors(emb)
for kind, hnsw_above in (("exact", 10**9), ("hnsw", 0)):
    index = LLMIndex(hnsw_above=hnsw_above).fit(router.item_vectors(), router.models_)
    index.search(vectors[:10], 5)  # warm up
    start = time.perf_counter(); index.search(vectors, 5); row[f"top5_{kind}_per_s"] = len(vectors) / (time.perf_counter() - start)
pool = list(router.models_[:5])
start = time.perf_counter(); router.route(Queries(embeddings=emb), pool); row["pool5_per_s"] = len(emb) / (time.perf_counter() - start)
row["peak_rss_gib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
print(json.dumps(row))
"""


def measure(prompts: int, llms: int, workdir: Path, queries: int = 5000) -> dict:
    path = workdir / f"synth_{prompts}x{llms}.npz"
    start = time.perf_counter()
    recroute = Path(sys.executable).with_name("recroute")  # the console script of this environment
    subprocess.run([str(recroute), "synth", "--prompts", str(prompts), "--llms", str(llms), "--out", str(path)],
                   check=True, capture_output=True)
    synth_s = time.perf_counter() - start
    child = subprocess.run([sys.executable, "-c", CHILD, str(path), str(queries)], check=True, capture_output=True,
                           text=True)
    path.unlink()
    return {"prompts": prompts, "llms": llms, "records": prompts * llms, "synth_s": synth_s,
            **json.loads(child.stdout.strip().splitlines()[-1])}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", nargs="+", default=["1000x100", "5000x1000", "25000x8500"])
    parser.add_argument("--json", default=None)
    args = parser.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for size in args.sizes:
            prompts, llms = (int(v) for v in size.lower().split("x"))
            print(f"measuring {prompts} × {llms} ...", file=sys.stderr, flush=True)
            rows.append(measure(prompts, llms, Path(tmp)))
    from recroute.report import format_table

    print(format_table(
        ["prompts × LLMs", "records", "synth", "load", "ALS fit", "peak RSS", "top-5 exact", "top-5 HNSW", "pool of 5"],
        [[f"{r['prompts']:,} × {r['llms']:,}", f"{r['records']:,}", f"{r['synth_s']:.1f} s", f"{r['load_s']:.1f} s",
          f"{r['fit_s']:.1f} s", f"{r['peak_rss_gib']:.2f} GiB", f"{r['top5_exact_per_s']:,.0f}/s",
          f"{r['top5_hnsw_per_s']:,.0f}/s", f"{r['pool5_per_s']:,.0f}/s"] for r in rows]))
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=1) + "\n")


if __name__ == "__main__":
    main()
