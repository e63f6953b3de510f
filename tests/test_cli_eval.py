"""`recroute eval`, `scaling` and `pair` end to end on small synthetic .npz files.

The files ship their own `embeddings`, so no prompt is ever encoded.
"""
from __future__ import annotations

import json

import numpy as np
import pytest
from click.testing import CliRunner

from conftest import assert_cli_error
from recroute.cli import main
from recroute.data import RoutingData
from recroute.loaders import save_npz

ROW_KEYS = {"dataset", "protocol", "m", "group", "router", "seed", "mu", "vr", "vb", "ep", "es", "n_test", "train_on",
            "pool", "params"}
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"



def cli(*args):
    return CliRunner().invoke(main, [str(a) for a in args])


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    return tmp_path_factory.mktemp("cli")


@pytest.fixture(scope="module")
def many(folder):
    """200 prompts × 6 LLMs, binary, two groups; the LLM that answers depends on the embedding."""
    rng = np.random.default_rng(0)
    n, m = 200, 6
    emb = rng.normal(size=(n, 8)).astype(np.float32)
    strength = np.array([0.3, 0.8, 0.5, 0.2, 0.6, 0.4])
    scores = (rng.random((n, m)) < strength).astype(np.float32)
    scores[:, 3] = np.maximum(scores[:, 3], emb[:, 0] > 0.5)   # a weak LLM that a router can learn to use
    scores[rng.random((n, m)) < 0.02] = np.nan
    data = RoutingData(
        scores=scores, prompt_ids=np.array([f"q{i}" for i in range(n)]),
        models=np.array(["gpt-x", "claude-y", "llama-z", "mistral-w", "qwen-v", "phi-u"]),
        groups=np.where(np.arange(n) % 4 == 0, "algebra", "history"), embeddings=emb, source="many",
    )
    return save_npz(data, folder / "many.npz")


@pytest.fixture(scope="module")
def two(folder):
    """A strong LLM that always answers and a weak one that fails when the first coordinate is positive."""
    rng = np.random.default_rng(1)
    n = 600
    emb = rng.normal(size=(n, 4)).astype(np.float32)
    scores = np.stack([np.ones(n), (emb[:, 0] <= 0).astype(float)], axis=1)
    data = RoutingData(scores=scores, prompt_ids=np.array([f"q{i}" for i in range(n)]),
                       models=np.array(["big", "small"]), embeddings=emb, source="two")
    return save_npz(data, folder / "two.npz")


ROUTERS = ["oracle", "random", "bsm", "knn", "linear"]


@pytest.fixture(scope="module")
def eval_run(many, folder):
    out = folder / "out.json"
    result = cli("eval", "--data", many, "--routers", ",".join(ROUTERS), "--pool-sizes", "2,3,10",
                 "--protocol", "ranked", "--seeds", 2, "--json", out)
    return result, out


def _table(text):
    """The Markdown table's rows as lists of cells (header first, rule dropped)."""
    lines = [line for line in text.splitlines() if line.startswith("|")]
    rows = [[c.strip() for c in line.strip("|").split("|")] for line in lines]
    return [rows[0]] + rows[2:]


def test_eval_prints_a_table_of_every_router_and_pool_size(eval_run):
    result, _ = eval_run
    assert result.exit_code == 0, result.output
    assert result.exception is None
    table = _table(result.stdout)
    assert table[0] == ["router", "m", "μ_o", "V_R", "V_B", "E_p", "E_sel", "seeds"]
    # sizes 2 and 3 below the six LLMs, 10 the whole set (m = 6); routers in the order given
    assert [(r[0], r[1]) for r in table[1:]] == [(name, m) for m in ("2", "3", "6") for name in ROUTERS]
    for row in table[1:]:
        assert row[-1] == "2"
        assert all(" ± " in cell for cell in row[2:7])
    oracle_6 = next(r for r in table if r[:2] == ["oracle", "6"])
    bsm_6 = next(r for r in table if r[:2] == ["bsm", "6"])
    assert float(oracle_6[4].split(" ± ")[0]) >= 1.0 >= float(bsm_6[4].split(" ± ")[0])


def test_eval_writes_json_rows(eval_run, many):
    result, out = eval_run
    rows = json.loads(out.read_text())
    assert len(rows) == 2 * (3 + 3 + 1) * len(ROUTERS)
    assert all(set(r) == ROW_KEYS for r in rows)
    assert {r["router"] for r in rows} == set(ROUTERS)
    assert {(r["m"], r["group"]) for r in rows} == {
        (m, g) for m in (2, 3) for g in ("all_strong", "all_weak", "strong_to_weak")} | {(6, "all")}
    assert {r["seed"] for r in rows} == {42, 43}  # --seeds N: RouterEval's 42 and those after it
    assert all(r["protocol"] == "ranked" for r in rows)
    assert all(0 <= r["mu"] <= 1 and r["n_test"] > 0 for r in rows)
    assert f"wrote {len(rows)} rows to {out}" in result.stderr
    # the table's μ_o is the mean over groups, then seeds, of these rows
    table = _table(result.stdout)
    knn_2 = next(r for r in table if r[:2] == ["knn", "2"])
    per_seed = [np.mean([r["mu"] for r in rows if (r["router"], r["m"], r["seed"]) == ("knn", 2, s)]) for s in (42, 43)]
    assert knn_2[2] == f"{np.mean(per_seed):.3f} ± {np.std(per_seed):.3f}"


def test_eval_detail_shows_the_groups(many):
    result = cli("eval", "--data", many, "--routers", "oracle,bsm", "--pool-sizes", "3,10", "--seeds", 1,
                 "--protocol", "ranked", "--detail")
    assert result.exit_code == 0, result.output
    table = _table(result.stdout)
    assert table[0][:3] == ["router", "m", "group"]
    assert {r[2] for r in table[1:]} == {"all_strong", "all_weak", "strong_to_weak", "all"}
    plain = cli("eval", "--data", many, "--routers", "oracle,bsm", "--pool-sizes", "3,10", "--seeds", 1,
                "--protocol", "ranked")
    assert "all_weak" not in plain.stdout


def test_eval_reference_as_a_number(many):
    result = cli("eval", "--data", many, "--routers", "oracle", "--pool-sizes", "6", "--seeds", 1,
                 "--reference", "0.5")
    assert result.exit_code == 0, result.output
    row = _table(result.stdout)[1]
    assert float(row[3].split(" ± ")[0]) == pytest.approx(2 * float(row[2].split(" ± ")[0]), abs=2e-3)


def test_eval_defaults_to_routereval_pools_with_the_pool_in_each_row(many, folder):
    out = folder / "routereval.json"
    result = cli("eval", "--data", many, "--routers", "oracle,knn", "--pool-sizes", "3,7", "--seed-list", "42,44",
                 "--no-tune", "--json", out)
    assert result.exit_code == 0, result.output
    # six LLMs, all with means between 0.1 and 0.9: a pool of 7 cannot be drawn, said in one line
    skipped = [line for line in result.stderr.splitlines() if "skipped" in line]
    assert skipped == [f"{many}: pool size 7 skipped: only 6 of 6 LLMs have a mean score above 0.1 and at most 0.9."]
    rows = json.loads(out.read_text())
    assert {r["seed"] for r in rows} == {42, 44} and {r["m"] for r in rows} == {3}
    assert all(r["protocol"] == "routereval" and len(r["pool"]) == 3 for r in rows)
    # the pools do not depend on the split seed, and list their LLMs weakest first (by mean over all prompts)
    data = np.load(many)
    means = dict(zip(["gpt-x", "claude-y", "llama-z", "mistral-w", "qwen-v", "phi-u"],
                     np.nanmean(data["scores"], axis=0)))
    for group in ("all_strong", "all_weak", "strong_to_weak"):
        pools = {tuple(r["pool"]) for r in rows if r["group"] == group}
        assert len(pools) == 1
        pool, = pools
        assert [means[name] for name in pool] == sorted(means[name] for name in pool)


def test_eval_seed_list_and_seeds_agree(many):
    args = ["eval", "--data", many, "--routers", "oracle,random", "--pool-sizes", "3", "--no-tune"]
    assert cli(*args, "--seeds", 2).stdout == cli(*args, "--seed-list", "42,43").stdout


def test_scaling_writes_png_and_points(many, folder):
    out = folder / "fig.png"
    result = cli("scaling", "--data", many, "--out", out, "--pools", 20)
    assert result.exit_code == 0, result.output
    assert out.read_bytes()[:8] == PNG_MAGIC and out.stat().st_size > 1000
    points = json.loads((folder / "fig.json").read_text())
    assert len(points) == 6 * 5 + 6  # m = 1..6 for five p values, plus the best single model
    assert {p["m"] for p in points} == set(range(1, 7))
    # at m = 6 the one pool is every LLM: r_o(1) is the mean row max, r_o(0) the mean
    from recroute.loaders import load

    scores = load(many).scores
    scores = scores[~np.isnan(scores).any(axis=1)]
    whole = {p["p"]: p["mu"] for p in points if p["m"] == 6}
    assert whole[1.0] == pytest.approx(scores.max(axis=1).mean(), abs=1e-6)
    assert whole[0.0] == pytest.approx(scores.mean(), abs=1e-6)
    assert whole["bsm"] == pytest.approx(scores.mean(axis=0).max(), abs=1e-6)
    table = _table(result.stdout)
    assert table[0] == ["m", "r_o(0)", "r_o(0.3)", "r_o(0.5)", "r_o(0.7)", "r_o(1)", "BSM"]
    assert len(table) == 7


def test_pair_prints_apgr_and_cpt_and_draws(two, folder):
    out = folder / "pair.png"
    result = cli("pair", "--data", two, "--routers", "random,bsm,knn,bilinear", "--seeds", 2, "--out", out,
                 "--json", folder / "pair.json")
    assert result.exit_code == 0, result.output
    assert "strong big" in result.stdout and "weak small" in result.stdout
    table = _table(result.stdout)
    assert table[0] == ["router", "APGR", "CPT(20%)", "CPT(50%)", "CPT(80%)", "strong share @30%", "PGR @30%"]
    apgr = {r[0]: float(r[1]) for r in table[1:]}
    assert set(apgr) == {"random", "bsm", "knn", "bilinear"}
    assert apgr["knn"] > apgr["random"] + 0.15 and apgr["bilinear"] > apgr["random"] + 0.15
    share = {r[0]: float(r[5]) for r in table[1:]}
    assert abs(share["bilinear"] - 0.3) < 0.1  # the threshold calibrated on validation prompts carries over
    assert out.read_bytes()[:8] == PNG_MAGIC
    rows = json.loads((folder / "pair.json").read_text())
    assert len(rows) == 8 and {r["strong"] for r in rows} == {"big"}


# -- bad input: exit 2, one line naming the problem, no traceback, no file ---------
@pytest.mark.parametrize("command,fragments", [
    (["eval", "--routers", "oracle,nope", "--json", "{dir}/a.json"], ["'nope'"]),
    (["eval", "--routers", "knn:3"], ["'knn'"]),
    (["eval", "--routers", "bsm,knn", "--reference", "no-such-llm", "--json", "{dir}/a.json"], ["'no-such-llm'"]),
    (["eval", "--routers", "bsm", "--json", "{dir}/a.csv"], ["a.csv", ".json"]),
    (["eval", "--routers", "bsm", "--json", "{dir}/missing/a.json"], ["missing", "does not exist"]),
    (["eval", "--routers", "bsm", "--pool-sizes", "-1,2"], ["pool size -1"]),
    (["eval", "--routers", "bsm", "--groups", "all_strng", "--json", "{dir}/a.json"], ["'all_strng'"]),
    (["eval", "--routers", "bsm", "--seeds", "0", "--json", "{dir}/a.json"], ["no seeds"]),
    (["scaling", "--out", "{dir}/missing/fig.png"], ["missing", "does not exist"]),
    (["scaling", "--out", "{dir}/fig.jpg"], ["fig.jpg", ".png"]),
    (["scaling", "--out", "{dir}/fig.png", "--pools", "0"], ["at least 1 pool"]),
    (["pair", "--routers", "random,nope", "--out", "{dir}/p.png"], ["'nope'"]),
    (["pair", "--strong", "gpt-9", "--out", "{dir}/p.png"], ["'gpt-9'"]),
    (["pair", "--out", "{dir}/missing/p.png"], ["missing", "does not exist"]),
    (["pair", "--json", "{dir}/p.txt"], ["p.txt", ".json"]),
    (["pair", "--routers", "random", "--seeds", "0", "--out", "{dir}/p.png"], ["no seeds"]),
])
def test_bad_input_is_one_line_and_writes_nothing(command, fragments, many, tmp_path):
    args = [a.format(dir=tmp_path) for a in command]
    result = cli(args[0], "--data", many, *args[1:])
    assert_cli_error(result, *fragments)
    assert list(tmp_path.iterdir()) == []


# -- eval --debias ----------------------------------------------------------------------------
def test_eval_debias_adds_ips_and_rebalanced_rows(many, folder):
    out = folder / "debias.json"
    result = cli("eval", "--data", many, "--routers", "bsm,knn", "--pool-sizes", "6", "--seeds", 1,
                 "--groups", "all_strong", "--debias", 10, "--json", out)
    assert result.exit_code == 0, result.output
    table = _table(result.stdout)
    # bsm learns nothing to weight, so it gets no variants; knn gets both, after the plain routers
    assert [r[0] for r in table[1:]] == ["bsm", "knn", "knn+ips", "knn+rebal"]
    rows = json.loads(out.read_text())
    assert [r["router"] for r in rows] == ["bsm", "knn", "knn+ips", "knn+rebal"]
    params = {r["router"]: r["params"] for r in rows}
    assert params["knn+ips"]["debias_clip"] == 10 and params["knn"]["debias_clip"] is None
    assert params["knn+rebal"]["debias_clip"] is None  # rebalanced after a plain fit
    assert len({r["n_test"] for r in rows}) == 1


# -- pareto -------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def costly(folder):
    """3 LLMs answering 30% / 60% / 90% of 300 prompts, each query costing an exact line in its tokens."""
    from recroute.cost import estimate_tokens

    rng = np.random.default_rng(2)
    n = 300
    emb = rng.normal(size=(n, 4)).astype(np.float32)
    texts = [f"prompt {i}: " + "word " * int(rng.integers(1, 40)) for i in range(n)]
    scores = (rng.random((n, 3)) < np.array([0.3, 0.6, 0.9])).astype(np.float32)
    scores[:, 0] = np.maximum(scores[:, 0], emb[:, 0] > 0.8)
    cost = np.array([1e-5, 1e-4, 1e-3]) + estimate_tokens(texts)[:, None] * np.array([1e-6, 5e-6, 3e-5])
    data = RoutingData(scores=scores, prompt_ids=np.array([f"q{i}" for i in range(n)]),
                       models=np.array(["cheap", "mid", "dear"]), prompts=texts, cost=cost, embeddings=emb,
                       source="costly")
    return save_npz(data, folder / "costly.npz")


def test_pareto_draws_and_writes_aiq_rows(costly, tmp_path):
    fig, out = tmp_path / "pareto.png", tmp_path / "pareto.json"
    result = cli("pareto", "--data", costly, "--routers", "bsm,knn", "--seeds", 2, "--out", fig, "--json", out)
    assert result.exit_code == 0, result.output
    assert fig.read_bytes()[:8] == PNG_MAGIC and fig.stat().st_size > 1000
    rows = json.loads(out.read_text())
    assert sorted((r["seed"], r["router"]) for r in rows) == [(s, name) for s in (0, 1)
                                                             for name in ("bsm", "knn", "oracle")]
    for r in rows:
        assert isinstance(r["aiq"], float) and 0 <= r["aiq"] <= 1
        assert len(r["cost"]) == len(r["quality"]) and "apgr" not in r
    table = _table(result.stdout)
    assert table[0] == ["router", "AIQ", "best score", "its cost"]
    assert [r[0] for r in table[1:]] == ["oracle", "bsm", "knn"]
    aiq = {r[0]: r[1] for r in table[1:]}
    for name in ("oracle", "bsm", "knn"):
        values = [r["aiq"] for r in rows if r["router"] == name]
        assert aiq[name] == f"{np.mean(values):.4f} ± {np.std(values):.4f}"
    assert float(aiq["oracle"].split(" ± ")[0]) > float(aiq["bsm"].split(" ± ")[0])
    assert "3 LLMs, means over 2 seeds" in result.stdout
    assert f"wrote {fig}" in result.stderr


def test_pareto_of_two_llms_adds_apgr_and_cpt(costly, tmp_path):
    result = cli("pareto", "--data", costly, "--routers", "bsm", "--models", "cheap,dear", "--seeds", 1,
                 "--out", tmp_path / "two.png")
    assert result.exit_code == 0, result.output
    table = _table(result.stdout)
    assert table[0] == ["router", "AIQ", "APGR", "CPT(50%)", "CPT(80%)", "best score", "its cost"]
    assert [r[0] for r in table[1:]] == ["oracle", "bsm"]


def test_pareto_on_data_without_costs_is_an_error(many, tmp_path):
    result = cli("pareto", "--data", many, "--routers", "bsm", "--out", tmp_path / "p.png",
                 "--json", tmp_path / "p.json")
    assert_cli_error(result, str(many), "has neither per-query costs nor per-LLM prices")
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("command,fragments", [
    (["--routers", "bsm,nope", "--out", "{dir}/p.png"], ["'nope'"]),
    (["--routers", "bsm", "--models", "cheap,gpt-9", "--out", "{dir}/p.png"], ["'gpt-9'"]),
    (["--routers", "bsm", "--out", "{dir}/p.jpg"], ["p.jpg", ".png"]),
    (["--routers", "bsm", "--out", "{dir}/p.png", "--json", "{dir}/p.csv"], ["p.csv", ".json"]),
    (["--routers", "bsm", "--out", "{dir}/missing/p.png"], ["missing", "does not exist"]),
    (["--routers", "bsm", "--seeds", "0", "--out", "{dir}/p.png"], ["no seeds"]),
])
def test_pareto_bad_input(costly, tmp_path, command, fragments):
    args = [a.format(dir=tmp_path) for a in command]
    assert_cli_error(cli("pareto", "--data", costly, *args), *fragments)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("clip", ["0.5", "0", "-2", "nan"])
def test_eval_debias_below_one_is_an_error(many, tmp_path, clip):
    result = cli("eval", "--data", many, "--routers", "bsm,knn", "--debias", clip, "--json", tmp_path / "a.json")
    assert_cli_error(result, f"--debias {float(clip)}", "at least 1")
    assert list(tmp_path.iterdir()) == []


def test_pareto_of_two_llms_that_tie_on_a_split_reports_nan_apgr(tmp_path):
    """A seed where both LLMs have the same test mean has no gap to recover: NaN there, not a crash."""
    rng = np.random.default_rng(2)
    n = 40
    data = RoutingData(scores=(rng.random((n, 2)) < 0.5).astype(float), prompt_ids=np.array([f"q{i}" for i in range(n)]),
                       models=np.array(["cheap", "dear"]), cost=np.tile([1e-4, 1e-3], (n, 1)), source="tie")
    path = save_npz(data, tmp_path / "tie.npz")
    result = cli("pareto", "--data", path, "--routers", "bsm", "--seeds", 2, "--out", tmp_path / "t.png",
                 "--json", tmp_path / "t.json")
    assert result.exit_code == 0, result.output
    rows = json.loads((tmp_path / "t.json").read_text())
    tied = [r for r in rows if r["router"] == "bsm" and np.isnan(r["apgr"])]
    assert tied, "the fixture should tie on one seed"
    assert "APGR" in _table(result.stdout)[0]
