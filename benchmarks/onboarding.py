"""Onboarding curve: how well a latent router knows a new LLM from n of its outcomes.

    python benchmarks/onboarding.py [--data routerbench llmrouter] [--routers als bilinear] [--seeds 3]

For each dataset, seed (80/10/10 split) and LLM h: fit the router on the
training prompts without h, then reveal h's outcomes on n random training
prompts, n in {10, 25, 50, 100, 200}, and compare three ways of knowing h:

* ``onboard``: ``add_llm`` folds h into the fitted router (no refit);
* ``refit``: the router refitted from scratch on the training matrix in
  which h has only those n outcomes;
* ``constant``: h's mean over the n outcomes, for every prompt.

Reported on the test prompts, as means over LLMs and seeds: AUC and accuracy
of h's predicted correctness (outcome >= 0.5; the routers' scores are mapped
to probabilities by their score calibration), the routing μ_o over the
whole pool (h included; every LLM scored as a calibrated probability, h by
its constant in the constant reference), and the seconds that adding and
refitting took. Writes docs/results/onboarding.{md,json} and docs/onboarding.png.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
from scipy.special import expit

from recroute import metrics
from recroute.datasets import load_dataset
from recroute.protocol import with_embeddings
from recroute.report import format_table
from recroute.routers import Queries, make_router

REVEALED = (10, 25, 50, 100, 200)
ROOT = Path(__file__).resolve().parents[1]


def probabilities(router, queries, models) -> np.ndarray:
    a, c = router.calibration_
    return expit(a * router.score(queries, models) + c)


def judge(p_new: np.ndarray, truth: np.ndarray, column: int, choice_scores: np.ndarray) -> dict:
    good = truth[:, column] >= 0.5
    return {"auc": metrics.auc(good, p_new) if 0 < good.mean() < 1 else np.nan,
            "accuracy": metrics.accuracy(good, p_new),
            "mu": metrics.mu(truth, np.argmax(choice_scores, axis=1))}


def run(data_name: str, router_name: str, seeds: int) -> list[dict]:
    data = with_embeddings(load_dataset(data_name))
    rows = []
    for seed in range(seeds):
        split = data.split((0.8, 0.1, 0.1), seed=seed)
        test = split.test.subset(prompts=split.test.observed.all(axis=1))
        queries = Queries.of(test)
        names = list(data.models)
        for h, name in enumerate(names):
            others = [m for m in names if m != name]
            base = make_router(router_name, seed=seed).fit(split.train.subset(models=others))
            candidates = np.flatnonzero(split.train.observed[:, h])
            rng = np.random.default_rng(seed * 1000 + h)
            for n in REVEALED:
                shown = rng.choice(candidates, size=min(n, len(candidates)), replace=False)
                outcomes = split.train.scores[shown, h]
                start = time.perf_counter()
                base.add_llm(name, split.train.embeddings[shown], outcomes)
                add_seconds = time.perf_counter() - start
                onboard = probabilities(base, queries, names)
                base.remove_llm(name)
                sparse = split.train.scores.copy()
                hidden = np.ones(len(sparse), dtype=bool)
                hidden[shown] = False
                sparse[hidden, h] = np.nan
                start = time.perf_counter()
                refit = make_router(router_name, seed=seed).fit(replace(split.train, scores=sparse, cost=None))
                refit_seconds = time.perf_counter() - start
                refitted = probabilities(refit, queries, names)
                constant = onboard.copy()
                constant[:, h] = float((outcomes >= 0.5).mean())
                for how, p in (("onboard", onboard), ("refit", refitted), ("constant", constant)):
                    rows.append({"dataset": data_name, "router": router_name, "seed": seed, "llm": name, "n": n,
                                 "how": how, **judge(p[:, h], test.scores, h, p),
                                 "seconds": {"onboard": add_seconds, "refit": refit_seconds}.get(how, 0.0)})
            print(f"{data_name} {router_name} seed {seed}: {h + 1}/{len(names)} LLMs", file=sys.stderr, flush=True)
    return rows


def table(rows: list[dict]) -> str:
    lines = []
    keys = sorted({(r["dataset"], r["router"], r["n"]) for r in rows}, key=lambda k: (k[0], k[1], k[2]))
    for dataset, router, n in keys:
        mine = [r for r in rows if (r["dataset"], r["router"], r["n"]) == (dataset, router, n)]

        def mean(how, key):
            return float(np.nanmean([r[key] for r in mine if r["how"] == how]))
        lines.append([dataset, router, n,
                      *(f"{mean(h, 'auc'):.3f}" for h in ("onboard", "refit", "constant")),
                      *(f"{mean(h, 'accuracy'):.3f}" for h in ("onboard", "refit", "constant")),
                      *(f"{mean(h, 'mu'):.3f}" for h in ("onboard", "refit", "constant")),
                      f"{1000 * mean('onboard', 'seconds'):.1f} ms", f"{mean('refit', 'seconds'):.2f} s",
                      f"{mean('refit', 'seconds') / mean('onboard', 'seconds'):.0f}×"])
    return format_table(["data", "router", "n", "AUC add", "AUC refit", "AUC const", "acc add", "acc refit",
                         "acc const", "μ_o add", "μ_o refit", "μ_o const", "add", "refit", "speed-up"], lines)


def plot(rows: list[dict], out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = sorted({(r["dataset"], r["router"]) for r in rows})
    fig, axes = plt.subplots(1, len(panels), figsize=(4 * len(panels), 3.4), squeeze=False)
    for ax, (dataset, router) in zip(axes[0], panels):
        for how, style in (("onboard", "o-"), ("refit", "s--"), ("constant", ":")):
            means = [np.nanmean([r["auc"] for r in rows if (r["dataset"], r["router"], r["how"], r["n"]) ==
                                 (dataset, router, how, n)]) for n in REVEALED]
            ax.plot(REVEALED, means, style, label=how)
        ax.set_xscale("log")
        ax.set_title(f"{dataset}, {router}", fontsize=9)
        ax.set_xlabel("outcomes revealed (n)")
        ax.grid(alpha=0.3)
    axes[0][0].set_ylabel("AUC on test prompts")
    axes[0][0].legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(out, dpi=130)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", nargs="+", default=["llmrouter", "routerbench"])
    parser.add_argument("--routers", nargs="+", default=["als", "bilinear"])
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--out", default=str(ROOT / "docs" / "results" / "onboarding"))
    args = parser.parse_args()
    rows = [row for data in args.data for router in args.routers for row in run(data, router, args.seeds)]
    text = table(rows)
    print(text)
    out = Path(args.out)
    out.with_suffix(".md").write_text(text + "\n")
    out.with_suffix(".json").write_text(json.dumps(rows, indent=1) + "\n")
    plot(rows, ROOT / "docs" / "onboarding.png")


if __name__ == "__main__":
    main()
