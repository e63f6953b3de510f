"""Rebuild the bundled datasets from the public source files.

    python datasets/build.py ../shared/data

Each source goes through recroute's own loaders, gets its groups, source
splits and unique prompt ids, and its prompts' embeddings from the default
:class:`recroute.embed.Encoder` (through its cache, so a rebuild encodes only
new texts; stored float16 with the encoder's settings), and is written as
``datasets/<name>.npz``. Source-specific decisions are made here and
documented in datasets/README.md.
"""
from __future__ import annotations

import ast
import json
import re
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np

from recroute.data import RoutingData
from recroute.embed import Encoder
from recroute.loaders import load_score_json, load_wide_csv, save_npz
from recroute.protocol import with_embeddings

HERE = Path(__file__).resolve().parent


def routerbench(src: Path) -> RoutingData:
    """Six CSVs (3 benchmarks × RouterDC's train/test). Ids are RouterBench's
    row index: 14 sample_ids repeat, each on a second row whose prompt is the
    question sent twice and which only gpt-3.5-turbo answered; both are kept
    as the distinct queries they are."""
    parts = []
    for path in sorted((src / "routerbench").glob("*.csv")):
        split = "train" if path.stem.endswith("_train") else "test"
        part = load_wide_csv(path, id_column="")
        texts = [_join_prompt_list(t) for t in part.prompts]
        parts.append(replace(part, prompts=texts, splits=[split] * part.n_prompts))
    return RoutingData.concat(parts, source="routerbench")


def _join_prompt_list(text: str) -> str:
    """RouterBench stores each prompt as a Python list literal of strings."""
    parts = ast.literal_eval(text)
    if not isinstance(parts, list) or not all(isinstance(p, str) for p in parts):
        raise ValueError(f"unexpected RouterBench prompt: {text[:60]!r}")
    return "\n\n".join(parts)


def llmrouter(src: Path) -> RoutingData:
    """Two JSON files, task names joined from the query files, token prices per LLM."""
    folder = src / "llmrouter"
    parts = []
    for split in ("train", "test"):
        part = load_score_json(folder / f"dcrouter_{split}.json", tasks=folder / f"default_query_{split}.jsonl")
        parts.append(replace(part, splits=[split] * part.n_prompts))
    data = RoutingData.concat(parts, source="llmrouter")
    llms = json.loads((folder / "default_llm.json").read_text())
    price = [[llms[m]["input_price"], llms[m]["output_price"]] for m in data.models]
    return replace(data, price=price)


def routerdc(src: Path) -> RoutingData:
    """Paired *_train/*_test files keep their split; the single files (C-Eval,
    JavaScript, MBPP, MATH prealgebra) are RouterDC's out-of-distribution test
    sets and are labelled 'test'."""
    parts = []
    for path in sorted((src / "routerdc" / "split2_model7").glob("*.json")):
        match = re.fullmatch(r"(.+?)[_-](train|test)", path.stem)
        group, split = match.groups() if match else (path.stem, "test")
        part = load_score_json(path)
        parts.append(replace(part, groups=[group] * part.n_prompts, splits=[split] * part.n_prompts))
    return RoutingData.concat(parts, source="routerdc")


def routellm(src: Path) -> RoutingData:
    """MMLU (one CSV per subject, group 'mmlu/<subject>') and GSM8K; no source split."""
    folder = src / "routellm"
    files = sorted((folder / "mmlu").glob("mmlu_*.csv")) + [folder / "gsm8k" / "gsm8k_responses.csv"]
    parts = []
    for path in files:
        group = "gsm8k" if path.parent.name == "gsm8k" else "mmlu/" + path.stem[len("mmlu_"):]
        part = load_wide_csv(path)
        parts.append(replace(
            part, prompt_ids=np.char.add(f"{group}/", part.prompt_ids), groups=[group] * part.n_prompts,
        ))
    return RoutingData.concat(parts, source="routellm")


BUILDERS = {"routerbench": routerbench, "llmrouter": llmrouter, "routerdc": routerdc, "routellm": routellm}


def main(src: str) -> None:
    encoder = Encoder()
    for name, build in BUILDERS.items():
        data = with_embeddings(build(Path(src)), progress=True, encoder=encoder)
        out = save_npz(data, HERE / f"{name}.npz")
        print(f"{name}: {data.n_prompts} prompts × {data.n_models} LLMs, "
              f"{data.embeddings.shape[1]}-d embeddings -> {out.name} ({out.stat().st_size / 1e6:.1f} MB)")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else str(HERE.parents[1] / "shared" / "data"))
