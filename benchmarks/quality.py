"""Routing quality on every bundled dataset with RouterEval's protocol: the README's quality table and figure.

    nice -n 15 python benchmarks/quality.py run [--routers A,B,...] [DATASET ...]   # slow: docs/results/quality_<dataset>.json
    python benchmarks/quality.py report                         # table on stdout, docs/quality_gap_closed.png
    python benchmarks/quality.py task-bound                     # V_B of routing by each test prompt's true task
    nice -n 15 python benchmarks/quality.py small [--report]      # auto on small data: docs/results/quality_small.json

``run`` evaluates every router (or those named) on pools of 3 and 5 LLMs (RouterEval's three
groups) and seeds 42, 43, 44, reusing the rows of routers that
``benchmarks/eval_bundled.sh`` already measured on the same protocol
(``docs/results/eval_<dataset>.json``); ``report`` gives, per dataset and router, the
mean V_B, the share of the best-single → oracle gap it closes,
(V_B − 1)/(V_B(oracle) − 1), and the selection entropy, plus what ``auto``
chose on each pool and seed. ``task-bound`` routes each test prompt to its
pool's best LLM, on the training prompts, of the prompt's *true* task (its
group): what knowing the task alone is worth, a bound the ``task`` router
approaches as far as the embeddings tell tasks apart. ``small`` asks what
``auto``'s fallback to the best single LLM costs and saves where little can
be learned: four random 1,000-prompt subsamples of each dataset (the size of
a typical held-out benchmark) without task names, the same with each
prompt's embedding swapped for another's (nothing to learn), and with task
names; ``auto`` at its default confidence (1 standard error) and at 2 (the
earlier default).
"""
from __future__ import annotations

import collections
import dataclasses
import json
import sys
import time
from pathlib import Path

import numpy as np

from recroute.datasets import load_dataset
from recroute import metrics
from recroute.protocol import POOL_GROUPS, evaluate, routereval_pools, routereval_split, summarize, with_embeddings
from recroute.report import format_table
from recroute.routers import make_router

DOCS = Path(__file__).resolve().parents[1] / "docs"
RESULTS = DOCS / "results"
DATASETS = ("routerbench", "llmrouter", "routerdc")
ROUTERS = ("oracle", "random", "bsm", "knn", "linear", "mlp", "als", "bpr", "lightfm", "bilinear", "cluster", "knnreg",
           "ridge", "task", "auto")
SEEDS = (42, 43, 44)
SMALL_PROMPTS, SUBSAMPLES = 1000, (0, 1, 2, 3)
#: The small subsamples without task names, the same with each prompt's embedding swapped for another's (nothing to
#: learn), and with task names (RouterEval's split then cuts each task apart; ``task`` reads them).
SMALL_WORLDS = ("no task names", "embeddings shuffled", "task names kept")
SMALL_ROUTERS = {"oracle": lambda: make_router("oracle"), "bsm": lambda: make_router("bsm"),
                 "auto": lambda: make_router("auto"), "auto, 2 SE": lambda: make_router("auto", confidence=2.0)}


def run(datasets, routers=ROUTERS) -> None:
    RESULTS.mkdir(parents=True, exist_ok=True)
    for name in datasets:
        measured, out = RESULTS / f"eval_{name}.json", RESULTS / f"quality_{name}.json"
        reused = [r for r in json.loads(measured.read_text()) if r["router"] in routers and r["seed"] in SEEDS
                  and r["m"] in (3, 5) and r.get("protocol") == "routereval"] if measured.exists() else []
        # the other routers' rows stay as they were measured: a run of some routers replaces only theirs
        kept = [r for r in json.loads(out.read_text()) if r["router"] not in routers] if out.exists() else []
        todo = [r for r in routers if r not in {row["router"] for row in reused}]
        data = with_embeddings(load_dataset(name))
        start = time.time()
        rows = kept + reused + evaluate(data, todo, pool_sizes=(3, 5), seeds=SEEDS,
                        progress=lambda done, total, what: print(f"{name} {done}/{total} {what} "
                                                                 f"{time.time() - start:.0f}s", flush=True))
        rows.sort(key=lambda r: ROUTERS.index(r["router"]) if r["router"] in ROUTERS else len(ROUTERS))
        out.write_text(json.dumps(rows, indent=0, default=str) + "\n")


def report() -> None:
    """One row per router, one column per dataset: mean V_B ± seeds (gap closed, selection entropy)."""
    cells, gaps, names = {}, {}, []
    for name in DATASETS:
        path = RESULTS / f"quality_{name}.json"
        if not path.exists():
            continue
        names.append(name)
        rows = json.loads(path.read_text())
        summary = {r["router"]: r for r in summarize(rows, by=("router",))}
        oracle = summary["oracle"]["vb"]
        for router, s in summary.items():
            gap = (s["vb"] - 1) / (oracle - 1)
            gaps.setdefault(router, {})[name] = gap
            cells[router, name] = f"{s['vb']:.3f} ± {s['vb_std']:.3f} ({gap:.0%}, {s['es']:.2f})"
        choices = collections.Counter(
            "+".join(r["chosen"]["routes_with"]) if isinstance(r["chosen"]["routes_with"], list)
            else r["chosen"]["routes_with"] for r in rows if r["router"] == "auto")
        print(f"{name}: auto chose " + ", ".join(f"{k} ×{v}" for k, v in choices.most_common()), file=sys.stderr)
    routers = [r for r in ROUTERS if r in gaps]
    print(format_table(["router"] + [f"{name}: V_B (gap closed, E_sel)" for name in names],
                       [[r] + [cells.get((r, name), "–") for name in names] for r in routers]))
    _figure([r for r in routers if r != "oracle"], names, gaps)
    if "auto" in gaps:
        print(f"auto closes {np.mean(list(gaps['auto'].values())):.1%} of the gap on average over {len(names)} datasets")


def task_bound() -> None:
    """Mean V_B and gap closed of routing each test prompt by its true task (training prompts' per-task means)."""
    lines = []
    for name in DATASETS:
        data = load_dataset(name)
        pools, _ = routereval_pools(data.scores, (3, 5), POOL_GROUPS)
        bound, oracle = [], []
        for seed in SEEDS:
            split = routereval_split(data, seed)
            for _, _, pool in pools:
                train, test = split.train.subset(models=pool), split.test.subset(models=pool)
                test = test.subset(prompts=~np.isnan(test.scores).any(axis=1))
                overall = np.nanmean(train.scores, axis=0)
                choice = np.array([np.nanargmax(np.nanmean(train.scores[train.groups == g], axis=0))
                                   if (train.groups == g).any() else np.nanargmax(overall) for g in test.groups])
                bound.append(metrics.vb(test.scores, choice))
                oracle.append(metrics.vb(test.scores, np.nanargmax(test.scores, axis=1)))
        vb, top = float(np.mean(bound)), float(np.mean(oracle))
        lines.append([name, f"{vb:.3f}", f"{top:.3f}", f"{(vb - 1) / (top - 1):.0%}"])
    print(format_table(["dataset", "true-task routing: V_B", "oracle V_B", "gap closed"], lines))


def small() -> None:
    """Run the small-data comparison (slow), write its JSON, print its table and draw its figure."""
    rows = []
    for name in DATASETS:
        full = with_embeddings(load_dataset(name))
        for sub in SUBSAMPLES:
            rng = np.random.default_rng(sub)
            named = full.subset(prompts=np.sort(rng.choice(full.n_prompts, SMALL_PROMPTS, replace=False)))
            data = dataclasses.replace(named, groups=None)
            shuffled = dataclasses.replace(data, embeddings=data.embeddings[rng.permutation(data.n_prompts)])
            for world, subsample in zip(SMALL_WORLDS, (data, shuffled, named)):
                start = time.time()
                for row in evaluate(subsample, SMALL_ROUTERS, pool_sizes=(3, 5), seeds=SEEDS):
                    rows.append({**row, "dataset": name, "subsample": sub, "world": world})
                print(f"{name} subsample {sub} {world}: {time.time() - start:.0f}s", file=sys.stderr, flush=True)
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "quality_small.json").write_text(json.dumps(rows, indent=0, default=str) + "\n")
    small_report()


def small_report() -> None:
    """Per dataset and world: each router's mean V_B ± the spread over subsamples, and how often auto routes."""
    rows = json.loads((RESULTS / "quality_small.json").read_text())
    lines, bars = [], {}
    for name in DATASETS:
        for world in SMALL_WORLDS:
            mine = [r for r in rows if r["dataset"] == name and r["world"] == world]
            cells = []
            for router in SMALL_ROUTERS:
                per_sub = [np.mean([r["vb"] for r in mine if r["router"] == router and r["subsample"] == sub])
                           for sub in SUBSAMPLES]
                bars[name, world, router] = float(np.mean(per_sub))
                cells.append(f"{np.mean(per_sub):.3f} ± {np.std(per_sub):.3f}")
            shares = [np.mean([r["chosen"]["routes_with"] != "best single LLM" for r in mine if r["router"] == auto])
                      for auto in ("auto", "auto, 2 SE")]
            lines.append([name, world, *cells, f"{shares[0]:.0%} / {shares[1]:.0%}"])
    print(format_table(["dataset", "1,000 prompts", *(f"{r}: V_B" for r in SMALL_ROUTERS),
                        "pools auto routes (default / 2 SE)"], lines))
    _small_figure(bars)


def _small_figure(bars) -> None:
    groups = [(name, world) for name in DATASETS for world in SMALL_WORLDS]
    series = {router: [bars[name, world, router] for name, world in groups] for router in SMALL_ROUTERS
              if router != "oracle"}
    values = [v for bars_of_router in series.values() for v in bars_of_router]
    _grouped_bars(series, [f"{name}\n{world}" for name, world in groups], baseline=1, ylabel="mean V_B",
                  title="auto on 1,000-prompt subsamples (RouterEval protocol, m = 3, 5; seeds 42–44; 4 subsamples)",
                  out=DOCS / "quality_small.png", fontsize=8, ylim=(min(values) - 0.01, max(values) + 0.01),
                  width=12)


def _figure(routers, datasets, gaps) -> None:
    series = {name: [100 * gaps[r].get(name, np.nan) for r in routers] for name in datasets}
    _grouped_bars(series, routers, baseline=0, ylabel="% of best single → oracle gap closed",
                  title="Routing quality, RouterEval protocol (m = 3, 5; seeds 42–44)",
                  out=DOCS / "quality_gap_closed.png")


def _grouped_bars(series: dict, ticks, baseline: float, ylabel: str, title: str, out: Path, fontsize=None,
                  ylim=None, width: float = 9) -> None:
    """One bar per series at each tick and a line at ``baseline``, saved to ``out``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(width, 4))
    bar = 0.8 / len(series)
    for i, (label, values) in enumerate(series.items()):
        ax.bar(np.arange(len(ticks)) + i * bar, values, bar, label=label)
    ax.axhline(baseline, color="black", linewidth=0.8)
    ax.set_xticks(np.arange(len(ticks)) + bar * (len(series) - 1) / 2, ticks, fontsize=fontsize)
    if ylim:
        ax.set_ylim(*ylim)
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.grid(axis="y", alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(out, dpi=120)
    plt.close(fig)


if __name__ == "__main__":
    command, *args = sys.argv[1:] or ["report"]
    if command == "task-bound":
        task_bound()
    elif command == "small":
        if args not in ([], ["--report"]):  # a mistyped --report would otherwise start the hours-long run
            sys.exit(f"quality.py small: unknown arguments {' '.join(args)}; the only one is --report.")
        small_report() if args else small()
    elif command != "run":
        report()
    elif args[:1] == ["--routers"]:
        run(args[2:] or DATASETS, args[1].split(","))
    else:
        run(args or DATASETS)
