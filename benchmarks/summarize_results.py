"""Summarise docs/results/eval_*.json: mean V_B per router and dataset, over every pool, group and seed.

    python benchmarks/summarize_results.py

Prints the README's overview table: one column per dataset, one row per
router, each cell the mean V_B (± the spread over seeds), so the question
"does this router beat the best single model, and the baselines?" has one
number per dataset.
"""
from __future__ import annotations

import json
from pathlib import Path

from recroute.protocol import summarize
from recroute.report import format_table

RESULTS = Path(__file__).resolve().parents[1] / "docs" / "results"


def main() -> None:
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


if __name__ == "__main__":
    main()
