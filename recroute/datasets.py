"""The bundled datasets, loadable by name, and the one entry point for ``--data``.

The files live in the repository's ``datasets/`` folder (installed to
``<prefix>/share/recroute/datasets`` by a non-editable install); each is a
``.npz`` written by ``datasets/build.py`` from the public source files, whose
provenance and licences ``datasets/README.md`` records.
"""
from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from pathlib import Path

from .data import RoutingData
from .errors import RecrouteError
from .loaders import load, load_npz


@dataclass(frozen=True)
class BundledDataset:
    name: str
    description: str
    licence: str
    source: str

    @property
    def filename(self) -> str:
        return f"{self.name}.npz"


BUNDLED = {
    d.name: d
    for d in (
        BundledDataset(
            "routerbench", "RouterBench subset: ARC-Challenge, MBPP, Winogrande; dollars per query",
            "MIT", "RouterBench (withmartian/routerbench) as re-split by the RouterDC repository",
        ),
        BundledDataset(
            "llmrouter", "LLMRouter: 14 tasks (GSM8K, MMLU, MATH, GPQA, ...); token prices per LLM",
            "MIT", "LLMRouter (ulab-uiuc/LLMRouter) dcrouter_{train,test}.json",
        ),
        BundledDataset(
            "routerdc", "RouterDC split2: MMLU, CMMLU, C-Eval, ARC, GSM8K, MATH, HumanEval, MBPP, JS",
            "none stated by the source", "RouterDC (shuhao02/RouterDC) datasets/split2_model7",
        ),
        BundledDataset(
            "routellm", "RouteLLM pair data: MMLU + GSM8K, GPT-4 vs Mixtral-8x7B",
            "Apache-2.0", "RouteLLM (lm-sys/RouteLLM) eval data",
        ),
    )
}
DEFAULT_DATASET = "routerbench"


def datasets_dir() -> Path:
    """The folder holding the bundled ``.npz`` files.

    ``RECROUTE_DATASETS`` overrides; otherwise the source checkout's
    ``datasets/`` (editable install), then the installed data files.
    """
    candidates = [Path(os.environ["RECROUTE_DATASETS"])] if os.environ.get("RECROUTE_DATASETS") else []
    candidates += [Path(__file__).resolve().parents[1] / "datasets", Path(sys.prefix) / "share" / "recroute" / "datasets"]
    for folder in candidates:
        if (folder / BUNDLED[DEFAULT_DATASET].filename).exists():
            return folder
    raise RecrouteError(f"cannot find the bundled datasets; looked in {', '.join(map(str, candidates))}.")


def load_dataset(name: str) -> RoutingData:
    """Load a bundled dataset by name."""
    if name not in BUNDLED:
        raise RecrouteError(f"unknown dataset {name!r}; bundled datasets are {', '.join(BUNDLED)}.")
    return load_npz(datasets_dir() / BUNDLED[name].filename)


def resolve(name_or_path: str, *, allow_pickle: bool = False) -> RoutingData:
    """A bundled dataset by name, or any supported file by path."""
    if name_or_path in BUNDLED:
        return load_dataset(name_or_path)
    path = Path(name_or_path)
    if not path.exists() and path.suffix == "":
        raise RecrouteError(
            f"{name_or_path}: neither a bundled dataset ({', '.join(BUNDLED)}) nor an existing file."
        )
    return load(path, allow_pickle=allow_pickle)
