"""recroute's RouterEval protocol against RouterEval's own scripts, on the same data and embeddings.

    python benchmarks/routereval_parity.py --routereval PATH [--data FILE] [--seeds 42,43,44] [--sizes 3,5]

PATH is a checkout of RouterEval (github.com/MilkThink-Lab/RouterEval). For
every seed, pool size and candidate group this builds the pool with
RouterEval's ``select_candidates`` (numpy's legacy generator seeded with 42
before each pool) on RouterEval's split (per group, ``np.random.seed(seed)``
once, a shuffle per group, cut at int(0.8 n) and int(0.9 n)), writes the
``.npz`` its routers read, runs its ``knn.py`` (k = 5) and ``r_o_router.py``
(p = 1, 0, 0.5) exactly as its ``test_router.py`` does, and sets what they
print beside ``recroute.protocol.evaluate(..., protocol="routereval")`` on
the same data. Without ``--data`` it runs on two synthetic RouterEval-shaped
matrices (``recroute.synth``, 51 LLMs): 0/1 outcomes, and the true success
probabilities as continuous scores (trained on RouterEval's 95% labels).
Nothing of RouterEval's is copied here: its scripts are run from PATH.
"""
from __future__ import annotations

import argparse
import importlib.util
import re
import subprocess
import sys
import tempfile
from dataclasses import replace
from pathlib import Path

import numpy as np

from recroute.data import RoutingData
from recroute.loaders import load
from recroute.protocol import POOL_GROUPS, ROUTEREVAL_SEED, evaluate
from recroute.report import format_table
from recroute.synth import synthetic

ROUTERS = {"oracle": ("R_o/r_o_router.py", "--p 1.0"), "random": ("R_o/r_o_router.py", "--p 0.0"),
           "ro:0.5": ("R_o/r_o_router.py", "--p 0.5"), "knn": ("PRKnn-knn/knn.py", "--seed 0 --knearest 5")}


def routereval_split(groups: np.ndarray, seed: int) -> list[np.ndarray]:
    """The split loop of RouterEval's get_router_dataset.py, on groups in order of first appearance."""
    np.random.seed(seed)
    parts = ([], [], [])
    names, first = np.unique(groups, return_index=True)
    for name in names[np.argsort(first)]:
        members = np.flatnonzero(groups == name)
        np.random.shuffle(members)
        a, b = int(0.8 * len(members)), int(0.9 * len(members))
        for part, chunk in zip(parts, (members[:a], members[a:b], members[b:])):
            part.extend(chunk)
    return [np.array(p) for p in parts]


def run_theirs(checkout: Path, data: RoutingData, seeds, sizes, workdir: Path) -> dict:
    """{(seed, m, group, router): (pool names, mu, vb)} as RouterEval's scripts print them."""
    spec = importlib.util.spec_from_file_location("get_router_dataset", checkout / "get_router_dataset.py")
    sys.path.insert(0, str(checkout))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    continuous = data.score_kind != "binary"
    groups = data.groups if data.groups is not None else np.zeros(data.n_prompts, dtype="<U1")
    out = {}
    for seed in seeds:
        train, val, test = routereval_split(groups, seed)
        for m in sizes:
            for group in POOL_GROUPS:
                np.random.seed(ROUTEREVAL_SEED)
                pool_scores, names = module.select_candidates(dataset=data.scores.T.astype(np.float64),
                                                              model_list=np.array(data.models),
                                                              num_candidates=m, strength=group)
                scores = pool_scores.T
                train_score = module.process_label(scores[train].T).T if continuous else scores[train]
                path = workdir / "tmp_perf.npz"
                np.savez(path, train_embed=data.embeddings[train], val_embed=data.embeddings[val],
                         test_embed=data.embeddings[test], train_score=train_score, val_score=scores[val],
                         test_score=scores[test])
                for router, (script, args) in ROUTERS.items():
                    printed = subprocess.run([sys.executable, str(checkout / "router" / script), *args.split(),
                                              "--data", str(path)], check=True, capture_output=True, text=True).stdout
                    mu, vb, _ = (float(x) for x in re.findall(r"[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?",
                                                              printed)[-3:])
                    out[seed, m, group, router] = (list(names), mu, vb)
    return out


def compare(checkout: Path, data: RoutingData, seeds, sizes) -> list[list]:
    with tempfile.TemporaryDirectory() as tmp:
        theirs = run_theirs(checkout, data, seeds, sizes, Path(tmp))
    ours = {(r["seed"], r["m"], r["group"], r["router"]): r
            for r in evaluate(data, list(ROUTERS), pool_sizes=sizes, seeds=seeds, tune=False)}
    lines = []
    for router in ROUTERS:
        for m in sizes:
            keys = [(s, m, g, router) for s in seeds for g in POOL_GROUPS]
            same_pools = all(ours[k]["pool"] == theirs[k][0] for k in keys)
            vb_ours, vb_theirs = (np.mean([ours[k]["vb"] for k in keys]), np.mean([theirs[k][2] for k in keys]))
            worst = max(abs(ours[k]["vb"] - theirs[k][2]) for k in keys)
            lines.append([data.source, router, m, "yes" if same_pools else "NO", f"{vb_theirs:.4f}",
                          f"{vb_ours:.4f}", f"{vb_ours - vb_theirs:+.4f}", f"{worst:.4f}"])
    return lines


def synthetic_pair() -> list[RoutingData]:
    """A 0/1 matrix and its continuous twin (the true success probabilities), 51 LLMs, 4 groups."""
    binary, truth = synthetic(2000, 51, skills=4, dim=32, seed=3)
    probabilities = truth.probability().astype(np.float32)
    return [replace(binary, source="synthetic 0/1"),
            replace(binary, scores=np.round(probabilities, 3), source="synthetic continuous")]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--routereval", required=True, type=Path, help="a checkout of RouterEval")
    parser.add_argument("--data", help="a dataset file with embeddings (default: two synthetic ones)")
    parser.add_argument("--seeds", default="42,43,44")
    parser.add_argument("--sizes", default="3,5")
    args = parser.parse_args()
    seeds = [int(s) for s in args.seeds.split(",")]
    sizes = [int(s) for s in args.sizes.split(",")]
    datasets = [load(args.data)] if args.data else synthetic_pair()
    lines = [line for data in datasets for line in compare(args.routereval, data, seeds, sizes)]
    print(format_table(["data", "router", "m", "same pools", "V_B RouterEval", "V_B recroute", "difference",
                        "largest |Δ| of a pool"], lines))


if __name__ == "__main__":
    main()
