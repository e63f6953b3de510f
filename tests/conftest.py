"""Shared helpers: where the real source data lives and independent readers for it.

The readers here use only csv/json, never recroute, so that the tests compare
recroute's results with numbers computed another way.
"""
from __future__ import annotations

import contextlib
import csv
import json
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from recroute.cli import main

# The repository is /work/main (or a CI clone); shared/ lies beside it.
SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"

ROUTERBENCH_LLMS = [
    "WizardLM/WizardLM-13B-V1.2", "claude-instant-v1", "claude-v1", "claude-v2", "gpt-3.5-turbo-1106",
    "gpt-4-1106-preview", "meta/code-llama-instruct-34b-chat", "meta/llama-2-70b-chat",
    "mistralai/mistral-7b-chat", "mistralai/mixtral-8x7b-chat", "zero-one-ai/Yi-34B-Chat",
]
ROUTELLM_LLMS = ["mistralai/Mixtral-8x7B-Instruct-v0.1", "gpt-4-1106-preview"]


def csv_rows(path) -> list[dict]:
    with open(path, newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


def json_items(path) -> list:
    with open(path, encoding="utf-8") as f:
        return json.load(f)


def jsonl_records(path) -> list[dict]:
    with open(path, encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


def cell(value):
    """One source cell as a float, or None when empty ('' / None)."""
    if value is None or value == "":
        return None
    if value in ("True", "False"):
        return float(value == "True")
    return float(value)


def means(records, models) -> np.ndarray:
    """Mean of the non-empty cells of each model over records (dicts model -> value)."""
    out = []
    for model in models:
        values = [cell(r.get(model)) for r in records]
        values = [v for v in values if v is not None]
        out.append(sum(values) / len(values))
    return np.array(out)


def score_records(items) -> list[dict]:
    """The ``scores`` dicts of a {question, scores} JSON list."""
    return [item["scores"] for item in items]


def run_cli(*args):
    return CliRunner().invoke(main, [str(a) for a in args])


def assert_cli_error(result, *fragments):
    """Exit 2, one line on the output naming the fragments, no traceback."""
    assert result.exit_code == 2, result.output
    assert isinstance(result.exception, SystemExit)
    assert "Traceback" not in result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1, result.output
    assert lines[0].startswith("recroute: error: ")
    for fragment in fragments:
        assert fragment in lines[0], (fragment, lines[0])


def write_file(path, content):
    """Write text, bytes, or whatever a callable writes at ``path``; return the path."""
    if callable(content):
        content(path)
    elif isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content, encoding="utf-8")
    return path


@contextlib.contextmanager
def private_cache_on_one_thread(tmp_path_factory, **env):
    """A private embedding cache, torch on one thread (tiny fits, busy machines), and ``env`` set."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        with pytest.MonkeyPatch.context() as mp:
            mp.setenv("RECROUTE_CACHE", str(tmp_path_factory.mktemp("cache")))
            for name, value in env.items():
                mp.setenv(name, value)
            yield
    finally:
        torch.set_num_threads(before)


def assert_paraphrases_are_closer(encoder):
    """Two pairs of paraphrases: each text is nearer its paraphrase than the other pair's texts, by 0.3 of cosine."""
    a, b, c, d = encoder.encode([
        "How do I bake a chocolate cake?",
        "What is a recipe for chocolate cake?",
        "Prove that there are infinitely many prime numbers.",
        "Show that the set of primes is infinite.",
    ])
    assert a @ b > a @ c + 0.3 and c @ d > b @ d + 0.3
