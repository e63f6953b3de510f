"""Summarise docs/results/: the README's overview and debiasing tables.

    python benchmarks/summarize_results.py

The overview (from eval_*.json): one column per dataset, one row per
router, each cell the mean V_B over every pool, group and seed (± the
spread over seeds), so "does this router beat the best single model, and
the baselines?" has one number per dataset.

The debiasing table (from debias_*.json): every (dataset, router, pool
size, group) where the plain router collapses — its selection entropy below
COLLAPSED bits, i.e. nearly every prompt to one LLM — with μ_o, E_p and
E_sel of the plain, inverse-propensity-weighted (+ips) and rebalanced
(+rebal) variants, and μ_o's change relative to the plain router.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from recroute.protocol import summarize
from recroute.report import format_table

RESULTS = Path(__file__).resolve().parents[1] / "docs" / "results"
COLLAPSED = 0.5


def overview() -> None:
    columns, cells, routers = [], {}, []
    for path in sorted(RESULTS.glob("eval_*.json")):
        dataset = path.stem[len("eval_"):]
        columns.append(dataset)
        for row in summarize(json.loads(path.read_text()), by=("router",)):
            routers.append(row["router"])
            cells[row["router"], dataset] = f"{row['vb']:.3f} ± {row['vb_std']:.3f}"
    routers = list(dict.fromkeys(routers))
    print(format_table(["router"] + [f"V_B {c}" for c in columns],
                       [[r] + [cells.get((r, c), "–") for c in columns] for r in routers]))


def debiasing() -> None:
    lines, changes = [], {"ips": [], "rebal": []}
    for path in sorted(RESULTS.glob("debias_*.json")):
        rows = summarize(json.loads(path.read_text()), by=("router", "m", "group"))
        cell = {(r["router"], r["m"], r["group"]): r for r in rows}
        for (router, m, group), plain in cell.items():
            if "+" in router or plain["es"] >= COLLAPSED:
                continue
            variants = [plain] + [cell[f"{router}+{v}", m, group] for v in ("ips", "rebal")]
            for v, row in zip(("ips", "rebal"), variants[1:]):
                changes[v].append((row["mu"] / plain["mu"] - 1, row["ep"] - plain["ep"], row["es"] - plain["es"]))
            lines.append([path.stem[len("debias_"):], router, m, group]
                         + [f"{v['mu']:.3f}" for v in variants]
                         + [f"{100 * (v['mu'] / plain['mu'] - 1):+.1f}%" for v in variants[1:]]
                         + [f"{v['ep']:.3f}" for v in variants] + [f"{v['es']:.2f}" for v in variants])
    if not lines:
        return
    print(format_table(["data", "router", "m", "group", "μ_o", "μ_o +ips", "μ_o +rebal", "Δμ ips", "Δμ rebal",
                        "E_p", "E_p +ips", "E_p +rebal", "E_sel", "E_sel +ips", "E_sel +rebal"], lines))
    for variant, values in changes.items():
        mu, ep, es = (100 * np.mean([v[0] for v in values]), np.mean([v[1] for v in values]),
                      np.mean([v[2] for v in values]))
        worst = 100 * min(v[0] for v in values)
        print(f"+{variant}: over {len(values)} collapsed cells, μ_o {mu:+.2f}% on average (worst {worst:+.2f}%), "
              f"E_p {ep:+.3f} bits, E_sel {es:+.2f} bits; E_p up in {sum(v[1] > 0 for v in values)}, "
              f"E_sel up in {sum(v[2] > 0 for v in values)}")


def main() -> None:
    overview()
    print()
    debiasing()


if __name__ == "__main__":
    main()
