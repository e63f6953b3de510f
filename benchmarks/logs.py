"""Learning from routing logs, measured (issue 15): training on logs, off-policy evaluation, IPS-weighted
training, and a new LLM's benchmark score from a few answers.

    python benchmarks/logs.py [--parts a b c d] [--seeds 3]        # ~25 min on two busy cores

Data: the bundled routerbench (11 LLMs, 0/1), llmrouter (9, mostly 0/1) and routerdc (7, continuous; 6,000
of its 20,600 prompts, drawn once) with their shipped embeddings, and synthetic item-response data
(``recroute.synth``) of 1,500 prompts × 50, 200 and 1,000 LLMs. Splits are RouterEval's
(``routereval_split``, seeds 42, 43, 44); the candidate pool is every LLM of the data, so that the number
of LLMs is the variable; prompts missing an outcome are left out.

(a) V_B on the test prompts of routers trained on the log a uniform policy would have collected on the
    training prompts with K = 1, 2, 5 outcomes per prompt, against the same routers on the dense matrix.
(b) Off-policy evaluation: a kNN router fitted on the dense training prompts is evaluated from logs of
    its test prompts (one outcome each) under the uniform policy and a skewed one (softmax:0.5 over the
    true outcomes), 20 log draws; truth is the router's mean score on those prompts. Error, coverage
    and mean interval width of IPS, SNIPS and DR (``recroute.ope``: DR's calibrated direct model, each
    interval also counting a modelled variance), on how many prompts the router's choice was the
    logged LLM, and in how many of the first 5 draws the truth lies in the DR interval. A log in
    which the router's choice is never the logged LLM has no IPS or SNIPS estimate: their error,
    coverage and width are over the logs that have one, and the table says how many do.
(c) Under two skewed policies (K = 1): V_B of routers trained on the log plainly and with
    ``logging_clip=20`` (the dense column of (a) is the reference). ``hard→best`` sends the harder half
    of the prompts to the strongest LLM with probability 0.8 (the rest uniformly), the easier half
    uniformly: the policy that teaches plain training that the strongest LLM fails; ``softmax:0.5``
    logs each prompt's good answers more often, for every LLM alike.
(d) A new LLM's benchmark score: each LLM in turn (10 of the synthetic 50) is left out, an ALS router is
    fitted on the others' outcomes (ids only), and its estimate from the LLM's outcomes on n = 10, 30,
    100 random training prompts is compared with the plain mean of those n; per seed 15 draws per LLM
    and n. Mean absolute error (and its ratio to the plain mean's) and 95% interval coverage.

Means are over seeds (and draws); ± is the standard deviation of the per-seed means. Writes
docs/results/logs_{vb,ope,ips,estimate}.json and docs/logs_vb.png, docs/logs_ope.png, docs/logs_estimate.png.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
from threadpoolctl import threadpool_limits

from recroute import metrics
from recroute.datasets import load_dataset
from recroute.estimate import benchmark_estimate
from recroute.logs import complete_prompts, policy_probabilities, simulate_logs
from recroute.ope import ESTIMATORS, estimate as ope_estimate, prompt_terms
from recroute.protocol import routereval_split, with_embeddings
from recroute.report import format_table
from recroute.routers import Queries, make_router
from recroute.synth import synthetic

ROOT = Path(__file__).resolve().parents[1]
BUNDLED = ("routerbench", "llmrouter", "routerdc")
SYNTHETIC_LLMS = (50, 200, 1000)
SYNTHETIC_PROMPTS = 1500
ROUTERDC_PROMPTS = 6000
PER_PROMPT = (1, 2, 5)
SKEWED = "softmax:0.5"
HARD = "hard→best"
CLIP = 20.0
#: Per-LLM classifiers / instance-based routers against latent-factor ones; knnreg regresses scores.
ROUTERS = {"linear": {}, "mlp": {}, "knn": {}, "knnreg": {}, "als": {}, "bpr": {}}
WEIGHTED = ("linear", "mlp", "knn", "knnreg", "als")
OPE_DRAWS = 20
ESTIMATE_N = (10, 30, 100)
ESTIMATE_DRAWS = 15


def say(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def datasets(names) -> dict:
    """Name -> RoutingData with embeddings, every prompt complete."""
    out = {}
    for name in names:
        if name.startswith("synth-"):
            data, _ = synthetic(SYNTHETIC_PROMPTS, int(name.split("-")[1]), seed=1)
        else:
            data = with_embeddings(load_dataset(name))
            if name == "routerdc":
                rows = np.sort(np.random.default_rng(0).choice(data.n_prompts, ROUTERDC_PROMPTS, replace=False))
                data = data.subset(prompts=rows)
        out[name] = complete_prompts(data)[0]
    return out


def value_b(router, test) -> float:
    return metrics.vb(test.scores, router.policy(Queries.of(test)))


def fit(name: str, train, **extra):
    with threadpool_limits(1, "blas"):
        return make_router(name, **ROUTERS[name], **extra).fit(train)


def spread(values) -> tuple[float, float]:
    values = np.asarray(values, dtype=np.float64)
    return float(np.mean(values)), float(np.std(values)) if len(values) > 1 else 0.0


# -- (a) --------------------------------------------------------------------------------------------
def measure_vb(data_sets: dict, seeds: list[int]) -> list[dict]:
    rows = []
    for name, data in data_sets.items():
        for seed in seeds:
            split = routereval_split(data, seed)
            uniform = policy_probabilities("uniform", split.train)
            trains = {"dense": split.train}
            trains.update({f"K={k}": simulate_logs(split.train, uniform, k, seed) for k in PER_PROMPT
                           if k < data.n_models})
            for router in ROUTERS:
                for condition, train in trains.items():
                    started = time.time()
                    vb = value_b(fit(router, train), split.test)
                    rows.append({"dataset": name, "n_llms": data.n_models, "seed": seed, "router": router,
                                 "train": condition, "vb": vb, "seconds": time.time() - started})
                say(f"(a) {name} seed {seed} {router}: " + ", ".join(
                    f"{r['train']} {r['vb']:.3f}" for r in rows[-len(trains):]))
    return rows


def table_vb(rows: list[dict]) -> str:
    conditions = ["K=1", "K=2", "K=5", "dense"]
    lines = []
    for name in dict.fromkeys(r["dataset"] for r in rows):
        for router in ROUTERS:
            cells = []
            for condition in conditions:
                per_seed = [r["vb"] for r in rows if (r["dataset"], r["router"], r["train"]) == (name, router, condition)]
                cells.append("" if not per_seed else "%.3f ± %.3f" % spread(per_seed))
            n_llms = next(r["n_llms"] for r in rows if r["dataset"] == name)
            lines.append([name, n_llms, router, *cells])
    return format_table(["data", "LLMs", "router", *[f"V_B {c}" for c in conditions]], lines)


def plot_vb(rows: list[dict], out: Path) -> None:
    plt = _pyplot()
    names = list(dict.fromkeys(r["dataset"] for r in rows))
    columns = min(3, len(names))
    rows_of_panels = -(-len(names) // columns)
    fig, axes = plt.subplots(rows_of_panels, columns, figsize=(3.6 * columns, 3.0 * rows_of_panels), squeeze=False)
    conditions = ["K=1", "K=2", "K=5", "dense"]
    for ax, name in zip(axes.flat, names):
        for router in ROUTERS:
            present = [c for c in conditions if any((r["dataset"], r["router"], r["train"]) == (name, router, c)
                                                    for r in rows)]
            means = [np.mean([r["vb"] for r in rows if (r["dataset"], r["router"], r["train"]) == (name, router, c)])
                     for c in present]
            ax.plot(range(len(present)), means, "o-" if router in ("als", "bpr") else "s--", ms=3, label=router)
            ax.set_xticks(range(len(present)), present)
        n_llms = next(r["n_llms"] for r in rows if r["dataset"] == name)
        ax.set_title(f"{name} ({n_llms} LLMs)", fontsize=9)
        ax.grid(alpha=0.3)
    for ax in axes[:, 0]:
        ax.set_ylabel("V_B on test prompts")
    for ax in axes.flat[len(names):]:
        ax.axis("off")
    _save(fig, axes, "(a) routers trained on uniform logs with K outcomes per prompt vs the dense matrix", out)


# -- (b) --------------------------------------------------------------------------------------------
def measure_ope(data_sets: dict, seed: int) -> list[dict]:
    rows = []
    for name, data in data_sets.items():
        split = routereval_split(data, seed)
        router = fit("knn", split.train)
        test = split.test
        queries = Queries.of(test)
        target = router.policy(queries).astype(np.float64)
        router_scores = router.probability(queries).astype(np.float64)
        truth = metrics.mu(test.scores, target)
        for policy in ("uniform", SKEWED):
            logging = policy_probabilities(policy, test)
            for draw in range(OPE_DRAWS):
                log = simulate_logs(test, logging, 1, seed=draw)
                result = ope_estimate(prompt_terms(log.scores, log.propensity, target, router_scores), seed=draw)
                choice_logged = int((log.observed & (target > 0)).sum())
                for estimator in ESTIMATORS:
                    r = result[estimator] or {"value": np.nan, "low": np.nan, "high": np.nan}  # None: undefined
                    rows.append({"dataset": name, "n_llms": data.n_models, "policy": policy, "draw": draw,
                                 "estimator": estimator, "truth": truth, "value": r["value"], "low": r["low"],
                                 "high": r["high"], "error": abs(r["value"] - truth),
                                 "covered": bool(r["low"] <= truth <= r["high"]), "n": result["n"],
                                 "choice_logged": choice_logged})
            dr = [r for r in rows[-3 * OPE_DRAWS:] if r["estimator"] == "dr"]
            say(f"(b) {name} {policy}: truth {truth:.3f}, DR error {np.nanmean([r['error'] for r in dr] + [np.nan]):.3f}, "
                f"DR covers {sum(r['covered'] for r in dr)}/{OPE_DRAWS}")
    return rows


def table_ope(rows: list[dict]) -> str:
    lines = []
    for name in dict.fromkeys(r["dataset"] for r in rows):
        for policy in ("uniform", SKEWED):
            mine = [r for r in rows if (r["dataset"], r["policy"]) == (name, policy)]
            cells = []
            for estimator in ESTIMATORS:
                these = [r for r in mine if r["estimator"] == estimator]
                given = [r for r in these if np.isfinite(r["error"])]
                cells += [f"{np.mean([r['error'] for r in given]):.3f}" if given else "undefined",
                          f"{np.mean([r['covered'] for r in given]):.2f}" if given else "–",
                          f"{np.mean([r['high'] - r['low'] for r in given]):.2f}" if given else "–"]
            dr = [r for r in mine if r["estimator"] == "dr"]
            defined = sum(np.isfinite(r["error"]) for r in mine if r["estimator"] == "ips")
            lines.append([name, mine[0]["n_llms"], policy, mine[0]["n"],
                          f"{np.mean([r['choice_logged'] for r in dr]):.1f}", f"{defined}/{len(dr)}",
                          f"{mine[0]['truth']:.3f}", *cells, f"{sum(r['covered'] for r in dr if r['draw'] < 5)}/5"])
    return format_table(["data", "LLMs", "logging policy", "prompts", "choice logged", "IPS, SNIPS defined",
                         "truth", *(f"{e.upper()} {column}" for e in ESTIMATORS for column in ("error", "cover", "width")),
                         "DR covers, draws 0-4"], lines)


def plot_ope(rows: list[dict], out: Path) -> None:
    plt = _pyplot()
    names = list(dict.fromkeys(r["dataset"] for r in rows))
    fig, axes = plt.subplots(1, 2, figsize=(9, 3.4), squeeze=False)
    width = 0.27
    for ax, policy in zip(axes[0], ("uniform", SKEWED)):
        for i, estimator in enumerate(ESTIMATORS):
            errors = [np.nanmean([r["error"] for r in rows if (r["dataset"], r["policy"], r["estimator"]) ==
                                  (name, policy, estimator)] + [np.nan]) for name in names]
            ax.bar(np.arange(len(names)) + (i - 1) * width, errors, width, label=estimator.upper())
        ax.set_xticks(range(len(names)), names, rotation=30, fontsize=7)
        ax.set_yscale("log")
        ax.set_title(f"logging policy {policy}", fontsize=9)
        ax.grid(alpha=0.3, axis="y")
    axes[0][0].set_ylabel("mean |estimate − truth|")
    _save(fig, axes, "(b) off-policy evaluation of a kNN router from one logged outcome per prompt", out)


# -- (c) --------------------------------------------------------------------------------------------
def hard_to_best(train) -> np.ndarray:
    """The policy of issue 15's worry: the harder half of the prompts (mean score over the LLMs below the
    median) goes to the LLM of best mean score with probability 0.8 (the rest spread uniformly); the
    easier half is spread uniformly."""
    n, m = train.scores.shape
    ease = np.nanmean(train.scores, axis=1)
    best = np.eye(m)[int(np.argmax(np.nanmean(train.scores, axis=0)))]
    return np.where((ease < np.median(ease))[:, None], 0.8 * best + 0.2 / m, 1.0 / m)


POLICIES = {HARD: hard_to_best, SKEWED: lambda train: policy_probabilities(SKEWED, train)}


def measure_ips(data_sets: dict, seeds: list[int]) -> list[dict]:
    rows = []
    for name, data in data_sets.items():
        for seed in seeds:
            split = routereval_split(data, seed)
            for policy, make in POLICIES.items():
                log = simulate_logs(split.train, make(split.train), 1, seed)
                for router in WEIGHTED:
                    for condition, train, extra in (("plain", log, {}), ("weighted", log, {"logging_clip": CLIP})):
                        rows.append({"dataset": name, "n_llms": data.n_models, "seed": seed, "router": router,
                                     "policy": policy, "train": condition,
                                     "vb": value_b(fit(router, train, **extra), split.test)})
                    say(f"(c) {name} seed {seed} {policy} {router}: " +
                        ", ".join(f"{r['train']} {r['vb']:.3f}" for r in rows[-2:]))
    return rows


def table_ips(rows: list[dict]) -> str:
    lines = []
    for name in dict.fromkeys(r["dataset"] for r in rows):
        for router in WEIGHTED:
            cells = []
            for policy in POLICIES:
                mine = {c: [r["vb"] for r in rows if (r["dataset"], r["router"], r["policy"], r["train"]) ==
                            (name, router, policy, c)] for c in ("plain", "weighted")}
                cells += ["%.3f ± %.3f" % spread(mine[c]) for c in ("plain", "weighted")]
            lines.append([name, router, *cells])
    return format_table(["data", "router", *[f"{policy}: {c}" for policy in POLICIES
                                             for c in ("plain", f"logging_clip={CLIP:g}")]], lines)


# -- (d) --------------------------------------------------------------------------------------------
def measure_estimate(data_sets: dict, seeds: list[int]) -> list[dict]:
    rows = []
    for name, data in data_sets.items():
        held = range(0, data.n_models, max(1, data.n_models // 10))
        for h in held:
            train = replace(data.subset(models=[j for j in range(data.n_models) if j != h]), embeddings=None,
                            embedding_model=None)
            router = fit("als", train, factors=8)
            outcomes = data.scores[:, h].astype(np.float64)
            truth = float(outcomes.mean())
            for seed in seeds:
                rng = np.random.default_rng([seed, h])
                for n in ESTIMATE_N:
                    for _ in range(ESTIMATE_DRAWS):
                        rows_drawn = rng.choice(data.n_prompts, n, replace=False)
                        result = benchmark_estimate(router, data.prompt_ids[rows_drawn], outcomes[rows_drawn])
                        rows.append({"dataset": name, "llm": str(data.models[h]), "seed": seed, "n": n,
                                     "truth": truth, "estimate": result["estimate"],
                                     "plain": float(outcomes[rows_drawn].mean()),
                                     "covered": bool(result["low"] <= truth <= result["high"]),
                                     "width": result["high"] - result["low"]})
        mine = [r for r in rows if r["dataset"] == name and r["n"] == 30]
        say(f"(d) {name}: n=30 MAE ratio {_mae(mine, 'estimate') / _mae(mine, 'plain'):.2f}")
    return rows


def _mae(rows, key) -> float:
    return float(np.mean([abs(r[key] - r["truth"]) for r in rows]))


def summary_estimate(rows: list[dict]) -> list[dict]:
    out = []
    for name in dict.fromkeys(r["dataset"] for r in rows):
        for n in ESTIMATE_N:
            per_seed = {}
            for seed in dict.fromkeys(r["seed"] for r in rows):
                mine = [r for r in rows if (r["dataset"], r["n"], r["seed"]) == (name, n, seed)]
                per_seed[seed] = (_mae(mine, "estimate"), _mae(mine, "plain"), np.mean([r["covered"] for r in mine]))
            values = np.array(list(per_seed.values()))
            ratio = values[:, 0] / values[:, 1]
            out.append({"dataset": name, "n": n, "mae": spread(values[:, 0]), "plain_mae": spread(values[:, 1]),
                        "ratio": spread(ratio), "coverage": spread(values[:, 2]),
                        "llms": len({r["llm"] for r in rows if r["dataset"] == name})})
    return out


def per_llm(rows: list[dict]) -> list[dict]:
    """Per dataset, LLM, seed and n: the truth, both mean absolute errors and the coverage over the draws."""
    keys = dict.fromkeys((r["dataset"], r["llm"], r["seed"], r["n"]) for r in rows)
    out = []
    for dataset, llm, seed, n in keys:
        mine = [r for r in rows if (r["dataset"], r["llm"], r["seed"], r["n"]) == (dataset, llm, seed, n)]
        out.append({"dataset": dataset, "llm": llm, "seed": seed, "n": n, "truth": mine[0]["truth"],
                    "draws": len(mine), "mae": _mae(mine, "estimate"), "plain_mae": _mae(mine, "plain"),
                    "coverage": float(np.mean([r["covered"] for r in mine])),
                    "mean_width": float(np.mean([r["width"] for r in mine]))})
    return out


def table_estimate(summary: list[dict]) -> str:
    lines = [[s["dataset"], s["llms"], s["n"], "%.4f ± %.4f" % s["plain_mae"], "%.4f ± %.4f" % s["mae"],
              "%.2f ± %.2f" % s["ratio"], "%.2f" % s["coverage"][0]] for s in summary]
    return format_table(["data", "LLMs held out", "n", "plain mean MAE", "estimate MAE", "ratio", "95% coverage"],
                        lines)


def plot_estimate(summary: list[dict], out: Path) -> None:
    plt = _pyplot()
    names = list(dict.fromkeys(s["dataset"] for s in summary))
    fig, axes = plt.subplots(1, len(names), figsize=(3.2 * len(names), 3.3), squeeze=False)
    for ax, name in zip(axes[0], names):
        mine = [s for s in summary if s["dataset"] == name]
        ns = [s["n"] for s in mine]
        for key, style, label in (("plain_mae", "s--", "plain mean"), ("mae", "o-", "estimate")):
            ax.errorbar(ns, [s[key][0] for s in mine], yerr=[s[key][1] for s in mine], fmt=style, ms=4,
                        capsize=2, label=label)
        ax.plot(ns, [0.75 * s["plain_mae"][0] for s in mine], ":", color="grey", label="0.75 × plain")
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xticks(ns, [str(n) for n in ns])
        ax.set_title(name, fontsize=9)
        ax.set_xlabel("outcomes of the new LLM (n)")
        ax.grid(alpha=0.3)
    axes[0][0].set_ylabel("mean absolute error")
    _save(fig, axes, "(d) a new LLM's mean score over the router's training prompts", out)


def _save(fig, axes, title: str, out) -> None:
    """Legend on the first panel, the figure's title, written to ``out`` and closed."""
    import matplotlib.pyplot as plt

    axes[0][0].legend(fontsize=7)
    fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    fig.savefig(out, dpi=130)
    plt.close(fig)


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--parts", nargs="+", default=["a", "b", "c", "d"], choices=["a", "b", "c", "d"])
    parser.add_argument("--seeds", type=int, default=3)
    args = parser.parse_args()
    seeds = [42 + i for i in range(args.seeds)]
    results, docs = ROOT / "docs" / "results", ROOT / "docs"
    synthetic_names = [f"synth-{m}" for m in SYNTHETIC_LLMS]
    started = time.time()
    if "a" in args.parts:
        rows = measure_vb(datasets([*BUNDLED, *synthetic_names]), seeds)
        (results / "logs_vb.json").write_text(json.dumps(rows, indent=1) + "\n")
        plot_vb(rows, docs / "logs_vb.png")
        print("(a) V_B trained on uniform logs with K outcomes per prompt, and on the dense matrix\n" + table_vb(rows))
    if "b" in args.parts:
        rows = measure_ope(datasets([*BUNDLED, *synthetic_names]), seeds[0])
        (results / "logs_ope.json").write_text(json.dumps(rows, indent=1) + "\n")
        plot_ope(rows, docs / "logs_ope.png")
        print("(b) off-policy evaluation of a kNN router, one logged outcome per test prompt\n" + table_ope(rows))
    if "c" in args.parts:
        rows = measure_ips(datasets([*BUNDLED, synthetic_names[0]]), seeds)
        (results / "logs_ips.json").write_text(json.dumps(rows, indent=1) + "\n")
        print("(c) IPS-weighted against plain training under a skewed logging policy\n" + table_ips(rows))
    if "d" in args.parts:
        rows = measure_estimate(datasets([*BUNDLED, synthetic_names[0]]), seeds)
        summary = summary_estimate(rows)
        (results / "logs_estimate.json").write_text(json.dumps({"summary": summary, "per_llm": per_llm(rows)},
                                                               indent=1) + "\n")
        plot_estimate(summary, docs / "logs_estimate.png")
        print("(d) a new LLM's benchmark score from n outcomes: mean absolute error\n" + table_estimate(summary))
    say(f"done in {time.time() - started:.0f} s")


if __name__ == "__main__":
    main()
