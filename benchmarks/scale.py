"""How recroute's cost grows with the matrix, up to RouterEval's size (issue 7).

    python benchmarks/scale.py                        # 1,000 × 100 up to 25,000 × 8,500 (about 80 minutes)
    python benchmarks/scale.py --sizes 1000x100       # the CI smoke size (about two minutes)
    python benchmarks/scale.py --json docs/results/scale.json --plot docs/scale.png

For each size `recroute synth` writes the matrix (dense .npz, 0/1 outcomes
from a known item-response model). Then, for each latent-factor router, a
fresh child process loads it, fits the router on every record and routes
5,000 of the prompts from their precomputed embeddings: top-5 among all LLMs
through an exact and an HNSW FAISS index (with HNSW's recall of the exact
top 5), and the best of a 5-LLM pool. The child reports its times and its
peak resident memory, so each row's memory is its own. The routed LLM is
judged against the hidden truth: regret is how far its true P(correct)
falls short of the truly best LLM's, beside the regret of the best single
LLM. At the largest size the RouterEval protocol (`recroute eval`, m up to
1,000, 3 seeds) is timed end to end, and the text encoder's throughput is
measured on real prompts with an empty cache. Prints the README's tables.
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

#: label: (router, hyperparameters, largest number of records it is fitted on).
ROUTERS = {
    "ALS": ("als", {"factors": 64, "iterations": 15}, None),
    "ALS, 2 CG steps": ("als", {"factors": 64, "iterations": 15, "cg_steps": 2}, None),
    "BPR": ("bpr", {"factors": 64, "iterations": 15}, None),
    "bilinear": ("bilinear", {"factors": 64}, None),
    # LightFM builds each prompt from its dense embedding features at every SGD step: records × dim × factors
    # work per epoch, about 30 s an epoch at 5M records on one core; it is fitted on the small sizes only.
    "LightFM": ("lightfm", {"factors": 64}, 2_000_000),
}
#: The timed protocol runs at the largest size: RouterEval's references and baselines as `recroute eval` runs them
#: (each learned router tuned on validation prompts: three fits per pool), then with ALS added and no tuning.
#: The README's times were measured under the ranked protocol, so these runs name it.
PROTOCOL_RUNS = {"RouterEval routers, tuned": ["--protocol", "ranked", "--routers", "oracle,random,bsm,knn,linear,mlp"],
                 "with ALS, untuned": ["--protocol", "ranked", "--routers", "oracle,random,bsm,knn,linear,mlp,als",
                                       "--no-tune"]}
QUERIES = 5000

CHILD = r"""
import json, resource, sys, time
import numpy as np
from recroute.loaders import load
from recroute.retrieval import LLMIndex
from recroute.routers import Queries, make_router
from recroute.synth import load_truth

path, name, params, queries_n = sys.argv[1], sys.argv[2], json.loads(sys.argv[3]), int(sys.argv[4])
row = {}
start = time.perf_counter(); data = load(path); row["load_s"] = time.perf_counter() - start
start = time.perf_counter(); router = make_router(name, **params).fit(data); row["fit_s"] = time.perf_counter() - start
row["peak_rss_gib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20  # the fit's peak: routing adds little

rows = np.sort(np.random.default_rng(0).choice(data.n_prompts, min(queries_n, data.n_prompts), replace=False))
emb, truth = data.embeddings[rows], load_truth(path).probability(rows)
choice = router.route(Queries(embeddings=emb))
best_single = np.argmax(data.model_means())
row["regret"] = float(np.mean(truth.max(axis=1) - truth[np.arange(len(rows)), choice]))
row["regret_bsm"] = float(np.mean(truth.max(axis=1) - truth[:, best_single]))

def per_second(route):
    route(emb[:10])  # warm up
    best = float("inf")
    for _ in range(3):  # the best of three: a busy machine only ever slows a run down
        start = time.perf_counter(); route(emb); best = min(best, time.perf_counter() - start)
    return len(emb) / best

found = {}
for kind, hnsw_above in (("exact", 10**9), ("hnsw", 0)):
    index = LLMIndex(hnsw_above=hnsw_above).fit(router.item_vectors(), router.models_)
    row[f"top5_{kind}_per_s"] = per_second(lambda e: index.search(router.query_vectors(e), 5))
    found[kind] = index.search(router.query_vectors(emb), 5)[0]
row["hnsw_recall"] = float(np.mean([len(set(a) & set(b)) / len(a) for a, b in zip(found["exact"], found["hnsw"])]))
pool = list(router.models_[:5])
row["pool5_per_s"] = per_second(lambda e: router.route(Queries(embeddings=e), pool))
print(json.dumps(row))
"""

ENCODER_CHILD = r"""
import json, sys, tempfile, time
import numpy as np
from recroute.datasets import load_dataset
from recroute.embed import Encoder

rows = []
with tempfile.TemporaryDirectory() as cache:  # an empty cache: every prompt is encoded
    encoder = Encoder(cache_dir=cache)
    start = time.perf_counter(); encoder.encode(["load the model"]); load_s = time.perf_counter() - start
    for name in sys.argv[2:]:
        texts = list(dict.fromkeys(load_dataset(name).prompts))  # a random sample: the files are ordered by task
        texts = [texts[i] for i in np.random.default_rng(0).permutation(len(texts))[:int(sys.argv[1])]]
        start = time.perf_counter(); encoder.encode(texts); seconds = time.perf_counter() - start
        rows.append({"dataset": name, "prompts": len(texts), "mean_chars": sum(map(len, texts)) / len(texts),
                     "per_s": len(texts) / seconds, "model_load_s": load_s})
print(json.dumps(rows))
"""

PROTOCOL_CHILD = r"""
import json, resource, subprocess, sys, time
start = time.perf_counter()
subprocess.run(sys.argv[1:], check=True, capture_output=True)
print(json.dumps({"protocol_s": time.perf_counter() - start,
                  "peak_rss_gib": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 2**20}))
"""


def recroute_command() -> str:
    return str(Path(sys.executable).with_name("recroute"))  # the console script of this environment


def synthesize(prompts: int, llms: int, path: Path) -> None:
    """`recroute synth`, as a user runs it."""
    subprocess.run([recroute_command(), "synth", "--prompts", str(prompts), "--llms", str(llms), "--out", str(path)],
                   check=True, capture_output=True)


def run_child(*args: str) -> dict:
    child = subprocess.run([sys.executable, "-c", *args], capture_output=True, text=True)
    if child.returncode:
        sys.exit(f"benchmark child failed:\n{child.stderr[-2000:]}")
    return json.loads(child.stdout.strip().splitlines()[-1])


def measure_size(prompts: int, llms: int, workdir: Path, protocol: bool) -> list[dict]:
    path = workdir / f"synth_{prompts}x{llms}.npz"
    start = time.perf_counter()
    synthesize(prompts, llms, path)
    base = {"prompts": prompts, "llms": llms, "records": prompts * llms, "synth_s": time.perf_counter() - start}
    rows = []
    for label, (name, params, max_records) in ROUTERS.items():
        if max_records is not None and prompts * llms > max_records:
            continue
        print(f"  {label} ...", file=sys.stderr, flush=True)
        rows.append({**base, "router": label, "params": params,
                     **run_child(CHILD, str(path), name, json.dumps(params), str(QUERIES))})
    for label, options in PROTOCOL_RUNS.items() if protocol else ():
        print(f"  RouterEval protocol, {label} ...", file=sys.stderr, flush=True)
        rows.append({**base, "router": "protocol", "run": label, "options": " ".join(options),
                     **time_protocol(path, workdir, options)})
    path.unlink()
    return rows


def time_protocol(path: Path, workdir: Path, options: list[str]) -> dict:
    """`recroute eval` with its default pools (3, 5, 10, 100 and 1,000 LLMs in three groups) and 3 seeds."""
    out = workdir / "protocol.json"
    timed = run_child(PROTOCOL_CHILD, recroute_command(), "eval", "--data", str(path), *options,
                      "--json", str(out))  # a child of its own, so its peak RSS is the protocol's alone
    evaluated = json.loads(out.read_text())
    return {**timed, "evaluations": len(evaluated), "largest_pool": max(r["m"] for r in evaluated)}


def encoder_throughput(prompts: int) -> list[dict]:
    return run_child(ENCODER_CHILD, str(prompts), "llmrouter", "routerbench")


def tables(rows: list[dict], encoder: list[dict]) -> str:
    from recroute.report import format_table

    fits = [r for r in rows if r["router"] != "protocol"]
    text = [format_table(
        ["prompts × LLMs", "records", "router", "load", "fit", "peak RSS", "regret (best LLM)", "top-5 exact",
         "top-5 HNSW (recall)", "pool of 5"],
        [[f"{r['prompts']:,} × {r['llms']:,}", f"{r['records']:,}", r["router"], f"{r['load_s']:.1f} s",
          f"{r['fit_s']:.1f} s", f"{r['peak_rss_gib']:.2f} GiB", f"{r['regret']:.3f} ({r['regret_bsm']:.3f})",
          f"{r['top5_exact_per_s']:,.0f}/s", f"{r['top5_hnsw_per_s']:,.0f}/s ({r['hnsw_recall']:.2f})",
          f"{r['pool5_per_s']:,.0f}/s"] for r in fits])]
    sizes = list(dict.fromkeys((r["prompts"], r["llms"], r["synth_s"]) for r in rows))
    text.append(format_table(["prompts × LLMs", "recroute synth"], [[f"{p:,} × {m:,}", f"{s:.1f} s"] for p, m, s in sizes]))
    runs = [r for r in rows if r["router"] == "protocol"]
    if runs:
        text.append(format_table(
            ["prompts × LLMs", "recroute eval", "evaluations", "largest pool", "time", "peak RSS"],
            [[f"{r['prompts']:,} × {r['llms']:,}", r["options"], r["evaluations"], f"{r['largest_pool']:,}",
              f"{r['protocol_s'] / 60:.1f} min", f"{r['peak_rss_gib']:.2f} GiB"] for r in runs]))
    if encoder:
        text.append(format_table(
            ["text encoder", "prompts", "mean length", "prompts/s", "model load"],
            [["all-MiniLM-L6-v2, " + e["dataset"], f"{e['prompts']:,}", f"{e['mean_chars']:,.0f} chars",
              f"{e['per_s']:,.0f}/s", f"{e['model_load_s']:.1f} s"] for e in encoder]))
    return "\n\n".join(text)


def plot(rows: list[dict], out: str) -> None:
    """Log-log: seconds against records for writing, loading and each router's fit; peak RSS beside it."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fits = [r for r in rows if r["router"] != "protocol"]
    fig, (time_ax, memory_ax) = plt.subplots(1, 2, figsize=(11, 4.2))
    sizes = sorted({(r["records"], r["synth_s"]) for r in fits})
    time_ax.plot(*zip(*sizes), "k:", marker=".", label="recroute synth")
    loads = sorted({r["records"]: r["load_s"] for r in fits}.items())
    time_ax.plot(*zip(*loads), "k--", marker=".", label="load (.npz)")
    for label in ROUTERS:
        mine = sorted((r["records"], r["fit_s"], r["peak_rss_gib"]) for r in fits if r["router"] == label)
        if mine:
            records, seconds, memory = zip(*mine)
            time_ax.plot(records, seconds, marker="o", ms=4, label=f"{label} fit")
            memory_ax.plot(records, memory, marker="o", ms=4, label=label)
    time_ax.axhline(300, color="grey", lw=0.8, ls="-.", label="ALS target (300 s)")
    memory_ax.axhline(8e9 / 2**30, color="grey", lw=0.8, ls="-.", label="target (8 GB)")
    for ax, ylabel in ((time_ax, "seconds"), (memory_ax, "peak RSS of the fitting process (GiB)")):
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("records (prompts × LLMs)")
        ax.set_ylabel(ylabel)
        ax.grid(alpha=0.3, which="both")
        ax.legend(fontsize=7)
    fig.suptitle("recroute on synthetic RouterEval-shaped data, 2 cores")
    fig.tight_layout()
    fig.savefig(out, dpi=130)
    plt.close(fig)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", nargs="+", default=["1000x100", "3000x500", "10000x2000", "25000x8500"])
    parser.add_argument("--no-protocol", action="store_true", help="Skip timing the protocol at the largest size.")
    parser.add_argument("--encoder-prompts", type=int, default=1000,
                        help="Prompts per dataset for the text-encoder throughput (0: skip).")
    parser.add_argument("--json", default=None, help="Write the measured rows here.")
    parser.add_argument("--plot", default=None, help="Write the log-log plot of time against records here (PNG).")
    args = parser.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for i, size in enumerate(args.sizes):
            prompts, llms = (int(v) for v in size.lower().split("x"))
            print(f"measuring {prompts:,} × {llms:,} ...", file=sys.stderr, flush=True)
            rows += measure_size(prompts, llms, Path(tmp), protocol=i == len(args.sizes) - 1 and not args.no_protocol)
    encoder = encoder_throughput(args.encoder_prompts) if args.encoder_prompts else []
    print(tables(rows, encoder))
    if args.json:
        Path(args.json).write_text(json.dumps({"rows": rows, "encoder": encoder}, indent=1) + "\n")
    if args.plot:
        plot(rows, args.plot)


if __name__ == "__main__":
    main()
