"""What keeping the end of long prompts does to routing (issue 14): plain truncation against head + tail.

    python benchmarks/long_prompts.py [DATASET ...] [--routers A,B,...]   # default: routerbench; oracle,bsm,knn,mlp,auto

MiniLM reads 256 tokens; 85% of RouterBench prompts are longer, and their
few-shot examples come first, so plain truncation gives every ARC-Challenge
(and every Winogrande) prompt the same vector. ``Encoder(long_prompts=
"head_tail")`` keeps a quarter of the window from the head and the rest from
the tail, where the question is. For each dataset this encodes the prompts
both ways (the bundled vectors are the plain ones; head + tail is encoded
once and cached) and runs RouterEval's protocol (m = 3, 5; seeds 42-44) on
each, printing mean V_B ± seeds, the share of the best-single → oracle gap
closed, and how many distinct prompt vectors each encoding gives. Only the
prompts longer than the window change under head + tail, so only they are
encoded again; plain truncation's rows are those of ``benchmarks/quality.py``
(docs/results/quality_<dataset>.json, the same protocol) where it has them.
"""
from __future__ import annotations

import argparse
import json
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np

from recroute.datasets import load_dataset
from recroute.embed import Encoder
from recroute.protocol import evaluate, summarize, with_embeddings
from recroute.report import format_table

SEEDS = (42, 43, 44)
RESULTS = Path(__file__).resolve().parents[1] / "docs" / "results"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("datasets", nargs="*", default=["routerbench"])
    parser.add_argument("--routers", default="oracle,bsm,knn,mlp,auto")
    args = parser.parse_args()
    lines = []
    for name in args.datasets:
        bundled = with_embeddings(load_dataset(name))
        routers = args.routers.split(",")
        for setting in ("truncate", "head_tail"):
            data = bundled if setting == "truncate" else _head_tail(bundled)
            distinct = len(np.unique(np.round(data.embeddings, 4), axis=0))
            rows = _measured(name, routers) if setting == "truncate" else []
            todo = [r for r in routers if r not in {row["router"] for row in rows}]
            rows += evaluate(data, todo, pool_sizes=(3, 5), seeds=SEEDS,
                             progress=lambda done, total, what: print(f"{name}, {setting}: [{done}/{total}] {what}",
                                                                      file=sys.stderr, flush=True)) if todo else []
            summary = {r["router"]: r for r in summarize(rows, by=("router",))}
            oracle = summary["oracle"]["vb"]
            for router in routers:
                s = summary[router]
                lines.append([name, setting, distinct, router, f"{s['vb']:.3f} ± {s['vb_std']:.3f}",
                              f"{(s['vb'] - 1) / (oracle - 1):.0%}"])
    print(format_table(["dataset", "long prompts", "distinct vectors", "router", "mean V_B", "gap closed"], lines))


def _head_tail(data):
    """``data`` as ``Encoder(long_prompts="head_tail")`` sees it: the prompts it cuts encoded anew, the others
    (unchanged texts) keeping their vectors."""
    encoder = Encoder(long_prompts="head_tail")
    texts = list(data.prompts)
    cut = encoder.head_and_tail(texts)
    changed = np.flatnonzero([a != b for a, b in zip(texts, cut)])
    print(f"{data.source}: {len(changed)} of {len(texts)} prompts exceed the window", file=sys.stderr, flush=True)
    embeddings = data.embeddings.copy()
    embeddings[changed] = Encoder().encode([cut[i] for i in changed], progress=True)
    return replace(data, embeddings=embeddings, embedding_model=encoder.settings())


def _measured(name: str, routers: list[str]) -> list[dict]:
    """The rows benchmarks/quality.py measured for these routers with the bundled (truncated) vectors."""
    path = RESULTS / f"quality_{name}.json"
    return [r for r in json.loads(path.read_text()) if r["router"] in routers and r["seed"] in SEEDS
            and r["m"] in (3, 5)] if path.exists() else []


if __name__ == "__main__":
    main()
