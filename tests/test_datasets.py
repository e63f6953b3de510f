"""The bundled datasets against the public source files they were built from."""
from __future__ import annotations

import functools
from collections import Counter

import numpy as np
import pytest

from conftest import (ROUTELLM_LLMS, ROUTERBENCH_LLMS, SHARED, csv_rows, json_items, jsonl_records, means,
                      run_cli, score_records)
from recroute.datasets import BUNDLED, load_dataset
from recroute.errors import RecrouteError
from recroute.loaders import load_npz, save_npz

FIELDS = ("prompt_ids", "models", "prompts", "groups", "splits", "cost", "price", "embeddings")


@functools.lru_cache(maxsize=None)
def source(name):
    """(records as {llm: value} dicts, group per record, split per record) read from the source files."""
    records, groups, splits = [], [], []
    if name == "routerbench":
        for path in sorted((SHARED / "routerbench").glob("*.csv")):
            rows = csv_rows(path)
            records += rows
            groups += [r["eval_name"] for r in rows]
            splits += ["train" if path.stem.endswith("_train") else "test"] * len(rows)
    elif name == "llmrouter":
        for split in ("train", "test"):
            items = json_items(SHARED / "llmrouter" / f"dcrouter_{split}.json")
            task_of = {}
            for rec in jsonl_records(SHARED / "llmrouter" / f"default_query_{split}.jsonl"):
                task_of.setdefault(rec["query"], rec["task_name"])
            records += score_records(items)
            groups += [task_of[item["question"]] for item in items]
            splits += [split] * len(items)
    elif name == "routerdc":
        for path in sorted((SHARED / "routerdc" / "split2_model7").glob("*.json")):
            items = json_items(path)
            split = "train" if "train" in path.stem else "test"
            group = path.stem.replace("-train", "").replace("-test", "").replace("_train", "").replace("_test", "")
            records += score_records(items)
            groups += [group] * len(items)
            splits += [split] * len(items)
    elif name == "routellm":
        for path in sorted((SHARED / "routellm").rglob("*.csv")):
            rows = csv_rows(path)
            records += rows
            groups += ["gsm8k" if path.parent.name == "gsm8k" else "mmlu/" + path.stem[len("mmlu_"):]] * len(rows)
    return records, groups, splits


SHAPES = {  # name: (prompts, LLMs, score kind, has per-query cost, has token prices)
    "routerbench": (3178, 11, "binary", True, False),
    "llmrouter": (6108, 9, "continuous", False, True),
    "routerdc": (20600, 7, "continuous", False, False),
    "routellm": (15361, 2, "binary", False, False),
}


def test_every_bundled_dataset_is_described():
    assert set(BUNDLED) == set(SHAPES)


@pytest.mark.parametrize("name", sorted(SHAPES))
def test_bundled_shape_and_means_match_source(name):
    data = load_dataset(name)
    records, groups, splits = source(name)
    n, m, kind, has_cost, has_price = SHAPES[name]
    assert (data.n_prompts, data.n_models, data.score_kind) == (len(records), m, kind)
    assert data.n_prompts == n
    assert (data.cost is not None, data.price is not None) == (has_cost, has_price)
    models = list(data.models)
    np.testing.assert_allclose(data.model_means(), means(records, models), rtol=1e-6)
    assert Counter(data.groups) == Counter(groups)
    if splits:
        assert Counter(data.splits) == Counter(splits)
    else:
        assert data.splits is None


def test_routerbench_llms_and_costs():
    data = load_dataset("routerbench")
    assert list(data.models) == ROUTERBENCH_LLMS
    records, _, _ = source("routerbench")
    costs = [{m: r[f"{m}|total_cost"] for m in ROUTERBENCH_LLMS} for r in records]
    np.testing.assert_allclose(data.model_costs(), means(costs, ROUTERBENCH_LLMS), rtol=1e-6)


def test_llmrouter_prices_from_default_llm_json():
    data = load_dataset("llmrouter")
    llms = json_items(SHARED / "llmrouter" / "default_llm.json")
    expected = [[llms[m]["input_price"], llms[m]["output_price"]] for m in data.models]
    np.testing.assert_array_equal(data.price, expected)


def test_routellm_groups_and_llms():
    data = load_dataset("routellm")
    assert list(data.models) == ROUTELLM_LLMS
    subjects = {p.stem[len("mmlu_"):] for p in (SHARED / "routellm" / "mmlu").glob("mmlu_*.csv")}
    assert len(subjects) == 57
    assert set(data.groups) == {"gsm8k"} | {f"mmlu/{s}" for s in subjects}
    assert Counter(data.groups)["gsm8k"] == 1319
    assert sum(g.startswith("mmlu/") for g in data.groups) == 14042


@pytest.mark.parametrize("name, train, test", [("routerbench", 2225, 953), ("llmrouter", 5608, 500)])
def test_source_splits(name, train, test):
    _, _, splits = source(name)
    assert (splits.count("train"), splits.count("test")) == (train, test)
    parts = load_dataset(name).source_split()
    assert (parts.train.n_prompts, parts.val.n_prompts, parts.test.n_prompts) == (train, 0, test)
    assert set(parts.train.splits) == {"train"} and set(parts.test.splits) == {"test"}


def test_source_split_needs_splits():
    with pytest.raises(RecrouteError, match="no train/val/test split"):
        load_dataset("routellm").source_split()


@pytest.mark.parametrize("name", sorted(SHAPES))
def test_npz_round_trip_preserves_every_field(name, tmp_path):
    data = load_dataset(name)
    back = load_npz(save_npz(data, tmp_path / f"{name}.npz"))
    np.testing.assert_array_equal(back.scores, data.scores)  # NaN where NaN
    assert back.scores.dtype == data.scores.dtype
    for field in FIELDS:
        before, after = getattr(data, field), getattr(back, field)
        assert (before is None) == (after is None), field
        if before is not None:
            assert after.dtype == before.dtype, field
            np.testing.assert_array_equal(after, before, err_msg=field)
    if name == "routerdc":
        assert any(any(ord(ch) > 127 for ch in text) for text in back.prompts)
        assert "答案" in back.prompts[np.flatnonzero(back.groups == "cmmlu")[0]]


def test_cli_datasets_lists_all_four():
    result = run_cli("datasets")
    assert result.exit_code == 0, result.output
    for name in ("routerbench", "llmrouter", "routerdc", "routellm"):
        assert f"| {name} " in result.output


def test_cli_info_routerbench():
    result = run_cli("info", "--data", "routerbench")
    assert result.exit_code == 0, result.output
    assert "3178 prompts × 11 LLMs" in result.output
    for llm in ROUTERBENCH_LLMS:
        assert f"| {llm} " in result.output
