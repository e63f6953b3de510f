"""The loaders on real source files, checked against numbers read with csv/json."""
from __future__ import annotations

import json
from collections import Counter

import numpy as np
import pytest

from conftest import ROUTELLM_LLMS, ROUTERBENCH_LLMS, SHARED, csv_rows, jsonl_records, json_items, means, score_records
from recroute.errors import RecrouteError
from recroute.loaders import load, load_long, load_score_json, load_wide_csv, save_npz

ROUTERBENCH_CSV = SHARED / "routerbench" / "arc_challenge_test.csv"
ANATOMY_CSV = SHARED / "routellm" / "mmlu" / "mmlu_anatomy.csv"
GSM8K_CSV = SHARED / "routellm" / "gsm8k" / "gsm8k_responses.csv"
CMMLU_JSON = SHARED / "routerdc" / "split2_model7" / "cmmlu_test.json"
LLMROUTER = SHARED / "llmrouter"


# -- RouterBench: wide CSV with costs and repeated sample_ids -----------------
@pytest.fixture(scope="module")
def routerbench():
    return load_wide_csv(ROUTERBENCH_CSV, id_column=""), csv_rows(ROUTERBENCH_CSV)


def test_routerbench_shape_and_means(routerbench):
    data, rows = routerbench
    assert (data.n_prompts, data.n_models) == (len(rows), 11) == (445, 11)
    assert list(data.models) == ROUTERBENCH_LLMS
    assert list(data.prompt_ids) == [r[""] for r in rows]
    assert list(data.prompts) == [r["prompt"] for r in rows]
    assert set(data.groups) == {"arc-challenge"}
    assert data.score_kind == "binary"
    np.testing.assert_allclose(data.model_means(), means(rows, ROUTERBENCH_LLMS), rtol=1e-12)
    observed = [sum(r[m] != "" for r in rows) for m in ROUTERBENCH_LLMS]
    np.testing.assert_array_equal(data.observed.sum(axis=0), observed)
    costs = [{m: r[f"{m}|total_cost"] for m in ROUTERBENCH_LLMS} for r in rows]
    np.testing.assert_allclose(data.model_costs(), means(costs, ROUTERBENCH_LLMS), rtol=1e-6)


def test_routerbench_known_cells(routerbench):
    data, _ = routerbench
    ids, llm = list(data.prompt_ids), list(data.models)
    first, repeat = ids.index("385"), ids.index("1641")  # arc-challenge.test.1; 2nd arc-challenge.val.172
    assert data.scores[first, llm.index("gpt-4-1106-preview")] == 1.0
    np.testing.assert_allclose(data.cost[first, llm.index("gpt-4-1106-preview")], 0.00519, rtol=1e-6)
    assert data.scores[repeat, llm.index("mistralai/mistral-7b-chat")] == 0.0  # observed 0
    assert data.observed[repeat, llm.index("mistralai/mistral-7b-chat")]
    assert np.isnan(data.scores[repeat, llm.index("gpt-3.5-turbo-1106")])  # not observed
    np.testing.assert_allclose(data.cost[repeat, llm.index("claude-v1")], 0.003888, rtol=1e-6)


def test_routerbench_default_id_column_names_duplicate():
    with pytest.raises(RecrouteError, match=r"'arc-challenge\.val\.172' appears 2 times") as exc:
        load_wide_csv(ROUTERBENCH_CSV)
    assert str(ROUTERBENCH_CSV) in str(exc.value)
    with pytest.raises(RecrouteError, match=r"arc-challenge\.val\.172"):
        load(ROUTERBENCH_CSV)  # dispatch picks the wide reader with its default id column


# -- RouteLLM: True/False wide CSVs ------------------------------------------
def test_routellm_mmlu_true_false():
    data, rows = load_wide_csv(ANATOMY_CSV), csv_rows(ANATOMY_CSV)
    assert (data.n_prompts, data.n_models) == (len(rows), 2) == (135, 2)
    assert list(data.models) == ROUTELLM_LLMS
    assert list(data.prompts) == [r["prompt"] for r in rows]
    assert data.score_kind == "binary" and data.observed.all()
    np.testing.assert_allclose(data.model_means(), means(rows, ROUTELLM_LLMS), rtol=1e-12)
    np.testing.assert_array_equal(data.scores[3], [0.0, 1.0])  # row 4: Mixtral False, GPT-4 True
    np.testing.assert_array_equal(data.scores[5], [0.0, 0.0])


def test_routellm_gsm8k_ignores_response_columns():
    data, rows = load_wide_csv(GSM8K_CSV), csv_rows(GSM8K_CSV)
    assert any(c.endswith("_response") for c in rows[0])
    assert list(data.models) == ROUTELLM_LLMS
    assert data.n_prompts == len(rows) == 1319
    np.testing.assert_allclose(data.model_means(), [842 / 1319, 1130 / 1319], rtol=1e-12)
    np.testing.assert_allclose(data.model_means(), means(rows, ROUTELLM_LLMS), rtol=1e-12)
    np.testing.assert_array_equal(data.scores[:3], [[1, 1], [1, 1], [0, 0]])


# -- RouterDC and LLMRouter: JSON lists of {question, scores} -----------------
def test_routerdc_continuous_scores():
    data, items = load_score_json(CMMLU_JSON), json_items(CMMLU_JSON)
    llms = list(items[0]["scores"])
    assert (data.n_prompts, data.n_models) == (len(items), 7) == (3475, 7)
    assert list(data.models) == llms
    assert data.score_kind == "continuous"
    assert list(data.prompts) == [item["question"] for item in items]
    assert data.prompts[0].startswith("1991年我国加入")
    assert list(data.prompt_ids[:2]) == ["cmmlu_test/0", "cmmlu_test/1"]
    np.testing.assert_allclose(data.scores[0, 0], 0.6636262490502093, rtol=1e-6)
    assert data.scores[0, llms.index("meta-llama/Meta-Llama-3-8B")] == 0.0
    assert data.observed.all()
    np.testing.assert_allclose(data.model_means(), means(score_records(items), llms), rtol=1e-6)


def test_llmrouter_with_task_groups():
    path, tasks = LLMROUTER / "dcrouter_test.json", LLMROUTER / "default_query_test.jsonl"
    data, items = load_score_json(path, tasks=tasks), json_items(path)
    llms = list(dict.fromkeys(m for item in items for m in item["scores"]))
    assert (data.n_prompts, data.n_models) == (len(items), len(llms)) == (500, 9)
    assert sorted(data.models) == sorted(llms)
    np.testing.assert_allclose(data.model_means(), means(score_records(items), list(data.models)), rtol=1e-6)
    task_of = {}
    for rec in jsonl_records(tasks):
        task_of.setdefault(rec["query"], rec["task_name"])
    assert list(data.groups) == [task_of[item["question"]] for item in items]
    assert len(set(data.groups)) == 10 and set(Counter(data.groups).values()) == {50}
    assert data.groups[0] == "agentverse-logicgrid"
    col = list(data.models)
    assert data.scores[0, col.index("gemma-2-9b-it")] == 1.0
    assert data.scores[0, col.index("qwen2.5-7b-instruct")] == 0.0


# -- dispatch by extension -----------------------------------------------------
def test_load_dispatches_by_extension(tmp_path):
    np.testing.assert_array_equal(load(ANATOMY_CSV).scores, load_wide_csv(ANATOMY_CSV).scores)
    by_json = load(LLMROUTER / "dcrouter_test.json", tasks=LLMROUTER / "default_query_test.jsonl")
    assert by_json.n_prompts == 500 and by_json.groups is not None
    npz = save_npz(load_wide_csv(ANATOMY_CSV), tmp_path / "anatomy.npz")
    by_npz = load(npz)
    assert by_npz.source == str(npz)
    np.testing.assert_array_equal(by_npz.scores, load_wide_csv(ANATOMY_CSV).scores)
    (tmp_path / "long.jsonl").write_text('{"prompt_id": "p", "model": "m", "score": 1}\n')
    (tmp_path / "long.csv").write_text("prompt_id,model,score\np,m,1\n")
    for name in ("long.jsonl", "long.csv"):
        data = load(tmp_path / name)
        assert (list(data.prompt_ids), list(data.models), data.scores.tolist()) == (["p"], ["m"], [[1.0]])


# -- long format: one row per (prompt, LLM) -----------------------------------
LONG_ROWS = [  # prompt_id, model, score, cost, group
    ("p1", "gpt", 1, 0.5, "math"),
    ("p1", "llama", 0, 0.25, "math"),   # an observed 0
    ("p2", "gpt", 0.5, 1.5, "code"),    # p2 × llama is missing
    ("p1", "gpt", 1, 0.5, "math"),      # an identical duplicate: accepted
]


@pytest.mark.parametrize("suffix", ["csv", "jsonl"])
def test_long_format(tmp_path, suffix):
    path = tmp_path / f"long.{suffix}"
    if suffix == "csv":
        lines = ["prompt_id,model,score,cost,group"] + [",".join(map(str, r)) for r in LONG_ROWS]
    else:
        keys = ("prompt_id", "model", "score", "cost", "group")
        lines = [json.dumps(dict(zip(keys, r))) for r in LONG_ROWS]
    path.write_text("\n".join(lines) + "\n")
    data = load_long(path)
    assert list(data.prompt_ids) == ["p1", "p2"] and list(data.models) == ["gpt", "llama"]
    np.testing.assert_array_equal(data.scores, [[1, 0], [0.5, np.nan]])
    np.testing.assert_array_equal(data.observed, [[True, True], [True, False]])
    np.testing.assert_array_equal(data.cost, [[0.5, 0.25], [1.5, np.nan]])
    assert list(data.groups) == ["math", "code"]
    assert data.prompts is None and data.splits is None
    assert data.score_kind == "continuous"
    np.testing.assert_allclose(data.model_means(), [0.75, 0.0])
    np.testing.assert_array_equal(load(path).scores, data.scores)
