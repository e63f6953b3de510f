"""Encoding speed of each prompt encoder, from an empty cache, on bundled prompts.

    python benchmarks/encoders.py [--data routerbench llmrouter] [--prompts 1000] [--minilm-prompts 300]

For each dataset a fixed random sample of its prompts (seed 0) is encoded by a
fresh :class:`recroute.embed.Encoder` with an empty cache folder, once per
encoder. The first call encodes one unrelated text, so loading the model is
timed apart from encoding. MiniLM encodes a smaller sample (it reads RouterBench's
long prompts at ~20 a second). Writes docs/results/encoders.{md,json}.
"""
from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np

from recroute.datasets import load_dataset
from recroute.embed import DEFAULT_MODEL, WORDLLAMA, Encoder
from recroute.report import format_table

ROOT = Path(__file__).resolve().parents[1]


def measure(model: str, texts: list[str]) -> dict:
    with tempfile.TemporaryDirectory() as cache:
        encoder = Encoder(model=model, cache_dir=cache)
        start = time.perf_counter()
        encoder.encode(["A warm-up text that loads the model."])
        loaded = time.perf_counter()
        vectors = encoder.encode(texts)
        done = time.perf_counter()
    return {"encoder": model, "prompts": len(texts), "dim": vectors.shape[1], "load_s": loaded - start,
            "encode_s": done - loaded, "prompts_per_s": len(texts) / (done - loaded)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", nargs="+", default=["routerbench", "llmrouter"])
    parser.add_argument("--prompts", type=int, default=1000, help="Prompts per dataset for wordllama.")
    parser.add_argument("--minilm-prompts", type=int, default=300, help="Prompts per dataset for MiniLM.")
    args = parser.parse_args()
    rows = []
    for name in args.data:
        prompts = list(load_dataset(name).prompts)
        sample = [prompts[i] for i in np.random.default_rng(0).permutation(len(prompts))[:args.prompts]]
        for model, n in ((DEFAULT_MODEL, args.minilm_prompts), (WORDLLAMA, args.prompts)):
            row = {"dataset": name, **measure(model, sample[:n]),
                   "mean_chars": float(np.mean([len(t) for t in sample[:n]]))}
            rows.append(row)
            print(json.dumps(row), flush=True)
    table = format_table(["dataset", "encoder", "dim", "prompts", "mean chars", "load s", "prompts/s"],
                         [[r["dataset"], r["encoder"], r["dim"], r["prompts"], round(r["mean_chars"]),
                           f"{r['load_s']:.1f}", f"{r['prompts_per_s']:,.0f}"] for r in rows])
    print(table)
    out = ROOT / "docs" / "results"
    (out / "encoders.json").write_text(json.dumps(rows, indent=1) + "\n")
    (out / "encoders.md").write_text(table + "\n")


if __name__ == "__main__":
    main()
