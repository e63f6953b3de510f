"""The RouterEval protocol on synthetic, in-memory data with known answers.

Nothing here encodes text: every RoutingData is built in memory, with
synthetic ``embeddings`` where a router reads prompts.
"""
from __future__ import annotations

import numpy as np
import pytest

from recroute import metrics, protocol
from recroute.data import RoutingData
from recroute.errors import RecrouteError
from recroute.protocol import (
    candidate_pool, candidate_pools, evaluate, evaluate_pair, scaling_curve, strength_order, summarize,
)
from recroute.routers import BestSingleRouter, KNNRouter, best_set_labels

ROW_KEYS = {"dataset", "protocol", "m", "group", "router", "seed", "mu", "vr", "vb", "ep", "es", "n_test", "train_on",
            "pool", "params"}


def make_data(scores, embeddings=None, groups=None, models=None, source="<synthetic>") -> RoutingData:
    scores = np.asarray(scores, dtype=np.float32)
    n, m = scores.shape
    return RoutingData(
        scores=scores,
        prompt_ids=np.array([f"p{i}" for i in range(n)]),
        models=np.array(models if models is not None else [f"llm{j}" for j in range(m)]),
        groups=None if groups is None else np.asarray(groups),
        embeddings=embeddings,
        source=source,
    )


def synthetic(n=200, m=6, seed=0, missing=0.05) -> RoutingData:
    """Binary outcomes, LLM j correct with probability rising in j, two groups, a few NaN cells."""
    rng = np.random.default_rng(seed)
    strength = np.linspace(0.2, 0.8, m)[rng.permutation(m)]  # column order != strength order
    scores = (rng.random((n, m)) < strength).astype(np.float32)
    scores[rng.random((n, m)) < missing] = np.nan
    groups = np.where(np.arange(n) % 3 == 0, "math", "code")
    return make_data(scores, embeddings=rng.normal(size=(n, 8)).astype(np.float32), groups=groups,
                     source="synthetic.npz")



# -- candidate pools -----------------------------------------------------------
ORDER = np.array([7, 2, 9, 0, 5, 1, 8, 3, 6, 4])  # 10 LLMs, strongest first


@pytest.mark.parametrize("m", [1, 2, 3, 5, 9])
def test_all_strong_and_all_weak_are_the_ends_of_the_order(m):
    assert candidate_pool(ORDER, m, "all_strong").tolist() == ORDER[:m].tolist()
    assert candidate_pool(ORDER, m, "all_weak").tolist() == ORDER[-m:].tolist()


def test_strong_to_weak_spreads_evenly_from_best_to_worst():
    assert candidate_pool(ORDER, 2, "strong_to_weak").tolist() == [7, 4]
    assert candidate_pool(ORDER, 4, "strong_to_weak").tolist() == [7, 0, 8, 4]  # positions 0, 3, 6, 9
    assert candidate_pool(ORDER, 10, "strong_to_weak").tolist() == ORDER.tolist()
    for m in range(2, 10):
        pool = candidate_pool(ORDER, m, "strong_to_weak")
        assert len(pool) == len(set(pool.tolist())) == m
        assert pool[0] == ORDER[0] and pool[-1] == ORDER[-1]
        positions = [ORDER.tolist().index(i) for i in pool]
        gaps = np.diff(positions)
        assert (gaps >= 1).all() and gaps.max() - gaps.min() <= 1, positions


@pytest.mark.parametrize("group", ["all_strong", "all_weak", "strong_to_weak"])
@pytest.mark.parametrize("m", [10, 11, 1000])
def test_pool_at_least_the_whole_set_is_the_whole_set(group, m):
    assert candidate_pool(ORDER, m, group).tolist() == ORDER.tolist()


def test_candidate_pools_yield_the_full_set_once_as_all():
    pools = list(candidate_pools(ORDER, [3, 10, 100, 1000], ["all_strong", "strong_to_weak"]))
    assert [(m, g) for m, g, _ in pools] == [(3, "all_strong"), (3, "strong_to_weak"), (10, "all")]
    assert pools[0][2].tolist() == [7, 2, 9]
    assert pools[1][2].tolist() == [7, 5, 4]  # positions 0, 4.5 -> 4 (half to even), 9
    assert pools[2][2].tolist() == ORDER.tolist()


def test_candidate_pools_without_a_full_size_have_no_all_group():
    pools = list(candidate_pools(ORDER, [2, 5], protocol.POOL_GROUPS))
    assert [(m, g) for m, g, _ in pools] == [(m, g) for m in (2, 5) for g in protocol.POOL_GROUPS]


def test_unknown_group_raises():
    with pytest.raises(RecrouteError, match="all_strng"):
        candidate_pool(ORDER, 3, "all_strng")
    with pytest.raises(RecrouteError, match="bogus"):
        list(candidate_pools(ORDER, [3], ["bogus"]))


@pytest.mark.parametrize("m", [0, -1, -5])
def test_pool_size_below_one_raises(m):
    # -1 once gave ORDER[:-1], nine LLMs reported as m = -1
    with pytest.raises(RecrouteError, match="pool size"):
        candidate_pool(ORDER, m, "all_strong")
    with pytest.raises(RecrouteError, match="pool size"):
        list(candidate_pools(ORDER, [3, m], protocol.POOL_GROUPS))


def test_strength_order_ranks_by_mean_ignoring_nan():
    nan = np.nan
    # means ignoring NaN: a=0.5, b=1.0 (one outcome), c=0.75, e=no outcome at all, d=0.0
    # (NaN as 0 would give b=0.25 and put it last but one); an LLM without outcomes goes last
    scores = [[1, nan, 1, nan, 0],
              [0, nan, 1, nan, 0],
              [1, 1, 0, nan, 0],
              [0, nan, 1, nan, 0]]
    data = make_data(scores, models=list("abced"))
    assert strength_order(data).tolist() == [1, 2, 0, 4, 3]


def test_strength_order_keeps_column_order_on_ties():
    data = make_data([[1, 0, 1, 1], [0, 1, 0, 0], [1, 0, 1, 0]])  # means 2/3, 1/3, 2/3, 1/3
    assert strength_order(data).tolist() == [0, 2, 1, 3]


# -- best-set labels -----------------------------------------------------------
def test_best_set_labels_of_binary_rows_are_the_scores():
    scores = np.array([[1, 0, 1], [0, 0, 1], [1, 1, 1]], dtype=np.float32)
    assert np.array_equal(best_set_labels(scores), scores)


def test_best_set_labels_of_continuous_rows_are_within_95_percent_of_the_best():
    scores = np.array([
        [0.80, 0.77, 0.75, 0.20],   # 0.95 * 0.80 = 0.76: 0.77 in, 0.75 out
        [0.50, 0.50, 0.474, 0.476],  # 0.95 * 0.50 = 0.475
        [0.0, 0.0, 0.0, 0.0],        # best 0: RouterEval's process_label marks every LLM (0 >= 0.95 * 0)
        [np.nan, 0.4, 0.39, 0.1],    # NaN stays NaN; 0.95 * 0.4 = 0.38
    ], dtype=np.float32)
    expected = np.array([
        [1, 1, 0, 0],
        [1, 1, 0, 1],
        [1, 1, 1, 1],
        [np.nan, 1, 1, 0],
    ], dtype=np.float32)
    np.testing.assert_array_equal(best_set_labels(scores), expected)


def test_best_set_labels_of_an_unanswered_binary_prompt_are_all_zero():
    """RouterEval trains on 0/1 outcomes as they are: a prompt nobody answers marks no LLM."""
    scores = np.array([[0, 0, 0], [1, 0, 1]], dtype=np.float32)
    np.testing.assert_array_equal(best_set_labels(scores), scores)
    # a slice of continuous data that happens to hold only 0/1 follows its data's kind when told
    np.testing.assert_array_equal(best_set_labels(scores, binary=False), [[1, 1, 1], [1, 0, 1]])


def test_best_set_labels_of_an_all_nan_row_stay_nan():
    labels = best_set_labels(np.array([[np.nan, np.nan], [0.2, 1.0]], dtype=np.float32))
    assert np.isnan(labels[0]).all()
    assert labels[1].tolist() == [0, 1]


# -- evaluate ------------------------------------------------------------------
@pytest.fixture(scope="module")
def data():
    return synthetic()


@pytest.fixture(scope="module")
def rows(data):
    return evaluate(data, ["oracle", "random", "bsm"], pool_sizes=(3, 10), protocol="ranked", seeds=(0, 1))


def _independent_pool(means, m, group):
    order = sorted(range(len(means)), key=lambda j: -means[j])
    n = len(order)
    if group == "all":
        return order
    if group == "all_strong":
        return order[:m]
    if group == "all_weak":
        return order[n - m:]
    step = (n - 1) / (m - 1)
    return [order[round(i * step)] for i in range(m)]  # Python rounds halves to even, as numpy does


def test_evaluate_rows_have_the_documented_keys_and_plan(rows, data):
    assert all(set(r) == ROW_KEYS for r in rows)
    plan = [(s, m, g, r) for s in (0, 1)
            for m, g in [(3, "all_strong"), (3, "all_weak"), (3, "strong_to_weak"), (6, "all")]
            for r in ("oracle", "random", "bsm")]
    assert [(r["seed"], r["m"], r["group"], r["router"]) for r in rows] == plan
    assert all(r["dataset"] == "synthetic.npz" for r in rows)


def test_oracle_mu_is_the_mean_row_max_of_the_test_prompts(rows, data):
    checked = 0
    for seed in (0, 1):
        split = data.split((0.8, 0.1, 0.1), seed)
        train, test = split.train.scores, split.test.scores
        means = [float(np.mean(train[~np.isnan(train[:, j]), j])) for j in range(train.shape[1])]
        for m, group in [(3, "all_strong"), (3, "all_weak"), (3, "strong_to_weak"), (6, "all")]:
            pool = _independent_pool(means, m, group)
            truth = test[:, pool]
            truth = truth[~np.isnan(truth).any(axis=1)]
            row, = [r for r in rows if (r["seed"], r["m"], r["group"], r["router"]) == (seed, m, group, "oracle")]
            assert row["n_test"] == len(truth)
            assert row["mu"] == pytest.approx(truth.max(axis=1).mean(), abs=1e-6)
            assert row["vb"] == pytest.approx(truth.max(axis=1).mean() / truth.mean(axis=0).max(), abs=1e-6)
            checked += 1
    assert checked == 8


def test_oracle_and_bsm_bound_v_b(rows):
    for r in rows:
        if r["router"] == "bsm":
            assert r["vb"] <= 1 + 1e-9
        if r["router"] == "oracle":
            assert r["vb"] >= 1 - 1e-9
    oracle = [r["mu"] for r in rows if r["router"] == "oracle"]
    random = [r["mu"] for r in rows if r["router"] == "random"]
    assert np.mean(oracle) > np.mean(random) + 0.2


def test_selection_entropy_of_bsm_is_zero_and_random_spreads(rows):
    for r in rows:
        if r["router"] == "bsm":
            assert r["es"] == 0.0
        if r["router"] == "random":
            assert r["es"] > 0.5 * np.log2(r["m"])


def test_evaluate_is_deterministic(data, rows):
    again = evaluate(data, ["oracle", "random", "bsm"], pool_sizes=(3, 10), protocol="ranked", seeds=(0, 1))
    assert again == rows


def _judged(split, m, group):
    """The test prompts a row is judged on: observed for every LLM of its pool."""
    pool = candidate_pool(strength_order(split.train), m, group)
    return split.test.observed[:, pool].all(axis=1)


def test_default_reference_is_the_best_training_llm_on_the_judged_prompts(data, rows):
    for seed in (0, 1):
        split = data.split((0.8, 0.1, 0.1), seed)
        best = int(np.argmax(np.nanmean(split.train.scores, axis=0)))
        for r in rows:
            if r["seed"] == seed:
                judged = _judged(split, r["m"], r["group"])
                ref = float(np.nanmean(split.test.scores[judged, best]))
                assert r["vr"] == pytest.approx(r["mu"] / ref, rel=1e-9)


def test_reference_as_a_number(data):
    rows = evaluate(data, ["oracle", "bsm"], pool_sizes=(3,), protocol="ranked", seeds=(0,), reference=0.25)
    for r in rows:
        assert r["vr"] == pytest.approx(r["mu"] / 0.25, rel=1e-12)


def test_reference_as_an_llm_name(data):
    weakest = data.models[int(np.argmin(np.nanmean(data.scores, axis=0)))]
    rows = evaluate(data, ["oracle", "bsm"], pool_sizes=(3,), protocol="ranked", seeds=(0, 1), reference=str(weakest))
    for seed in (0, 1):
        split = data.split((0.8, 0.1, 0.1), seed)
        for r in rows:
            if r["seed"] == seed:
                judged = _judged(split, r["m"], r["group"])
                ref = float(np.nanmean(split.test.scores[judged, list(data.models).index(weakest)]))
                assert r["vr"] == pytest.approx(r["mu"] / ref, rel=1e-9)
    assert all(r["vr"] > 1 for r in rows if r["router"] == "oracle")


def test_unknown_reference_llm_raises(data):
    with pytest.raises(RecrouteError, match="no-such-llm"):
        evaluate(data, ["bsm"], pool_sizes=(3,), protocol="ranked", seeds=(0,), reference="no-such-llm")


def test_evaluate_refuses_embedding_routers_without_embeddings(data):
    bare = make_data(data.scores, groups=data.groups)
    with pytest.raises(RecrouteError, match="knn"):
        evaluate(bare, ["oracle", "knn"], pool_sizes=(3,), protocol="ranked", seeds=(0,))


def test_evaluate_with_a_learned_router_and_factories(data):
    rows = evaluate(data, {"knn": lambda: KNNRouter(k=3), "mine": BestSingleRouter}, pool_sizes=(2,), groups=("all_strong",), protocol="ranked", seeds=(0,))
    assert [r["router"] for r in rows] == ["knn", "mine"]
    assert all(set(r) == ROW_KEYS and r["m"] == 2 for r in rows)


def test_evaluate_refuses_bad_plans_before_any_work(data):
    calls = []

    def factory():
        calls.append(1)
        return BestSingleRouter()

    for kwargs, fragment in [({"seeds": ()}, "no seeds"), ({"pool_sizes": (3, 0)}, "pool size"),
                             ({"groups": ("all_strong", "al_weak")}, "al_weak")]:
        with pytest.raises(RecrouteError, match=fragment):
            evaluate(data, {"bsm": factory}, **{"pool_sizes": (3,), "seeds": (0,), "protocol": "ranked", **kwargs})
    assert len(calls) == 3  # only the embeddings check built a router; none was fitted


def test_evaluate_progress_counts_every_step(data):
    seen = []
    evaluate(data, ["oracle", "bsm"], pool_sizes=(3, 10), protocol="ranked", seeds=(0,), progress=lambda d, t, _: seen.append((d, t)))
    assert seen == [(i, 8) for i in range(1, 9)]


# -- summarize -----------------------------------------------------------------
def _row(router, m, group, seed, mu):
    return {"router": router, "m": m, "group": group, "seed": seed,
            "mu": mu, "vr": 2 * mu, "vb": mu + 1, "ep": 0.0, "es": 1.0}


def test_summarize_averages_over_groups_then_seeds():
    rows = [
        # seed 0: groups 0.2 and 0.4 -> 0.3; seed 1: one group 0.9 -> 0.9 (an unequal group count
        # tells "groups then seeds" (0.6) apart from a flat mean over rows ((0.2+0.4+0.9)/3 = 0.5))
        _row("a", 3, "all_strong", 0, 0.2), _row("a", 3, "all_weak", 0, 0.4), _row("a", 3, "all_strong", 1, 0.9),
        _row("b", 3, "all_strong", 0, 0.5), _row("b", 3, "all_strong", 1, 0.5),
        _row("a", 5, "all", 0, 1.0),
    ]
    table = summarize(rows)
    assert [(r["router"], r["m"]) for r in table] == [("a", 3), ("b", 3), ("a", 5)]
    a3, b3, a5 = table
    assert a3["mu"] == pytest.approx(0.6)
    assert a3["mu_std"] == pytest.approx(0.3)      # std of (0.3, 0.9), population
    assert a3["vr"] == pytest.approx(1.2) and a3["vb"] == pytest.approx(1.6)
    assert a3["seeds"] == 2
    assert b3["mu"] == pytest.approx(0.5) and b3["mu_std"] == 0.0
    assert a5["mu"] == 1.0 and a5["seeds"] == 1 and a5["mu_std"] == 0.0
    for r in table:
        assert {f"{k}_std" for k in protocol.METRICS} <= set(r)


def test_summarize_by_group():
    rows = [_row("a", 3, "all_strong", 0, 0.2), _row("a", 3, "all_weak", 0, 0.4),
            _row("a", 3, "all_strong", 1, 0.6)]
    table = summarize(rows, by=("router", "m", "group"))
    assert [(r["group"], r["mu"], r["seeds"]) for r in table] == [
        ("all_strong", pytest.approx(0.4), 2), ("all_weak", pytest.approx(0.4), 1)]
    assert table[0]["mu_std"] == pytest.approx(0.2)


def test_summarize_of_real_rows(rows):
    table = summarize(rows)
    assert [(r["router"], r["m"]) for r in table] == [(n, m) for m in (3, 6) for n in ("oracle", "random", "bsm")]
    oracle3 = table[0]
    per_seed = [np.mean([r["mu"] for r in rows if r["router"] == "oracle" and r["m"] == 3 and r["seed"] == s])
                for s in (0, 1)]
    assert oracle3["mu"] == pytest.approx(np.mean(per_seed))
    assert oracle3["mu_std"] == pytest.approx(np.std(per_seed))


# -- scaling curve ---------------------------------------------------------------
TINY = np.array([
    [1.0, 0.0, 0.0],
    [0.0, 0.5, 1.0],
    [0.2, 0.2, 0.2],
    [0.0, np.nan, 1.0],   # not observed for every LLM: left out
    [0.5, 0.0, 0.0],
], dtype=np.float32)
# over rows 0, 1, 2, 4: row maxima 1, 1, 0.2, 0.5 -> 0.675; overall mean 3.6 / 12 = 0.3;
# column means 0.425, 0.175, 0.3 -> best single 0.425


def test_scaling_curve_whole_set_equals_hand_values():
    curve = scaling_curve(make_data(TINY), ps=(0.0, 0.5, 1.0), sizes=[3], n_pools=7)
    assert curve["sizes"] == [3] and curve["ps"] == [0.0, 0.5, 1.0]
    assert curve["ro"].shape == (3, 1) and curve["bsm"].shape == (1,)
    np.testing.assert_allclose(curve["ro"][:, 0], [0.3, 0.4875, 0.675], atol=1e-6)
    assert curve["bsm"][0] == pytest.approx(0.425, abs=1e-6)


def test_scaling_curve_single_llm_pools():
    # m = 1: best = average in every pool, so every p gives the mean over pools of one column mean;
    # over many pools that tends to the mean of the column means, 0.3.
    curve = scaling_curve(make_data(TINY), ps=(0.0, 1.0), sizes=[1], n_pools=3000)
    assert curve["ro"][0, 0] == pytest.approx(curve["ro"][1, 0], abs=1e-12)
    assert curve["ro"][0, 0] == pytest.approx(0.3, abs=0.01)
    assert curve["bsm"][0] == pytest.approx(curve["ro"][0, 0], abs=1e-12)


def test_scaling_curve_lines_are_ordered_and_rise_with_m():
    data = synthetic(n=300, m=8, missing=0.0)
    curve = scaling_curve(data, ps=(0.0, 0.5, 1.0), n_pools=50)
    assert curve["sizes"] == list(range(1, 9))
    ro = curve["ro"]
    assert (ro[2] >= ro[1] - 1e-12).all() and (ro[1] >= ro[0] - 1e-12).all()
    assert (np.diff(ro[2]) > 0).all()                     # more LLMs, better oracle
    full = data.scores
    assert np.abs(ro[0] - full.mean()).max() < 0.08       # a random pool's average is the overall mean
    assert ro[2, -1] == pytest.approx(full.max(axis=1).mean(), abs=1e-6)
    assert ro[0, -1] == pytest.approx(full.mean(), abs=1e-6)


def test_scaling_curve_sizes_outside_range_are_dropped_and_no_full_prompt_is_an_error():
    curve = scaling_curve(make_data(TINY), sizes=[0, 2, 3, 4, 50], n_pools=5)
    assert curve["sizes"] == [2, 3]
    with pytest.raises(RecrouteError, match="at least 1 pool"):
        scaling_curve(make_data(TINY), n_pools=0)
    holes = make_data([[np.nan, 1.0], [0.0, np.nan]])
    with pytest.raises(RecrouteError, match="no prompt"):
        scaling_curve(holes)


# -- strong / weak pair ----------------------------------------------------------
def pair_data(n=1000, seed=0) -> RoutingData:
    """The strong LLM always answers; the weak one fails exactly when the first coordinate is positive."""
    rng = np.random.default_rng(seed)
    emb = rng.normal(size=(n, 4)).astype(np.float32)
    scores = np.stack([np.ones(n), (emb[:, 0] <= 0).astype(float)], axis=1)
    return make_data(scores, embeddings=emb, models=["strong", "weak"], source="pair.npz")


@pytest.fixture(scope="module")
def pair_rows():
    return evaluate_pair(pair_data(), ["random", "knn", "linear"], seeds=(0, 1, 2))


def test_pair_learned_routers_beat_random(pair_rows):
    rows, result = pair_rows
    assert result["pair"] == ["strong", "weak"]
    assert result["strong"] == 1.0 and 0.35 < result["weak"] < 0.65

    def mean(router, key):
        return float(np.mean([r[key] for r in rows if r["router"] == router]))

    assert mean("random", "apgr") == pytest.approx(0.5, abs=0.1)
    for name in ("knn", "linear"):
        assert mean(name, "apgr") > mean("random", "apgr") + 0.15, name
        assert mean(name, "apgr") > 0.65, name
        assert mean(name, "cpt50") < mean("random", "cpt50") - 0.1, name
    assert len(rows) == 9
    assert all({"apgr", "cpt20", "cpt50", "cpt80", "strong", "weak", "n_test"} <= set(r) for r in rows)


def test_pair_curves_run_from_weak_to_strong(pair_rows):
    _, result = pair_rows
    for name, (grid, quality) in result["curves"].items():
        assert grid[0] == 0 and grid[-1] == 1 and len(grid) == len(quality)
        assert quality[0] == pytest.approx(result["weak"]) and quality[-1] == pytest.approx(result["strong"])
    # a perfect router reaches the strong quality once it sends the weak model's failures (about half) away
    assert result["curves"]["linear"][1][60] > 0.97


def test_pair_with_the_same_llm_twice_raises():
    with pytest.raises(RecrouteError, match="must differ"):
        evaluate_pair(pair_data(n=100), ["random"], strong="weak", weak="weak", seeds=(0,))


def test_pair_without_seeds_raises():
    with pytest.raises(RecrouteError, match="no seeds"):
        evaluate_pair(pair_data(n=100), ["random"], seeds=())


def test_pair_explicit_names_are_used():
    rows, result = evaluate_pair(pair_data(n=200), ["bsm"], strong="weak", weak="strong", seeds=(0,))
    assert result["pair"] == ["weak", "strong"]
    assert rows[0]["strong_mu"] < rows[0]["weak_mu"]


# -- strong / weak labels, thresholds and calibrated shares ------------------------------------------
def test_pair_labels_weak_ok_within_the_tolerance():
    # strong, weak, other; values exact in float32 so the tolerance comparison has no round-off
    scores = [[1.0, 1.0, 0.0],     # tie: the weak one is good enough
              [1.0, 0.0, 1.0],     # weak fails
              [0.0, 0.0, 1.0],     # both fail: a tie again
              [0.75, 0.5, 0.0],    # 0.25 short: ok only with t >= 0.25
              [np.nan, 1.0, 0.0],  # strong unobserved
              [0.5, np.nan, 0.0],  # weak unobserved
              [0.25, 0.5, 0.0]]    # weak better
    data = RoutingData(scores=np.asarray(scores, dtype=np.float32), prompt_ids=np.array([f"p{i}" for i in range(7)]),
                       models=np.array(["strong", "weak", "other"]), cost=np.ones((7, 3)), price=np.ones((3, 2)),
                       source="labels")

    def labels(tolerance):
        pair = protocol.pair_labels(data, "strong", "weak", tolerance)
        assert pair.models.tolist() == ["weak_ok", "strong_needed"]
        assert pair.cost is None and pair.price is None and pair.prompt_ids.tolist() == data.prompt_ids.tolist()
        ok, needed = pair.scores.T
        np.testing.assert_array_equal(np.isnan(ok), np.isnan(needed))
        np.testing.assert_array_equal(needed[~np.isnan(ok)], 1 - ok[~np.isnan(ok)])
        return ok

    np.testing.assert_array_equal(labels(0.0), [1, 0, 1, 0, np.nan, np.nan, 1])
    np.testing.assert_array_equal(labels(0.2), [1, 0, 1, 0, np.nan, np.nan, 1])
    np.testing.assert_array_equal(labels(0.25), [1, 0, 1, 1, np.nan, np.nan, 1])
    np.testing.assert_array_equal(labels(1.0), [1, 1, 1, 1, np.nan, np.nan, 1])
    # swapping the roles swaps who must be good enough
    swapped = protocol.pair_labels(data, "weak", "strong").scores[:, 0]
    np.testing.assert_array_equal(swapped, [1, 1, 1, 1, np.nan, np.nan, 0])


@pytest.mark.parametrize("tolerance", [-0.1, np.nan, np.inf])
def test_pair_labels_refuse_a_bad_tolerance(tolerance):
    data = make_data([[1.0, 0.0]], models=["s", "w"])
    with pytest.raises(RecrouteError, match="tolerance must be a non-negative number"):
        protocol.pair_labels(data, "s", "w", tolerance)


def test_pair_labels_refuse_an_unknown_llm():
    with pytest.raises(RecrouteError, match="unknown LLM 'gpt-9'"):
        protocol.pair_labels(make_data([[1.0, 0.0]], models=["s", "w"]), "s", "gpt-9")


# ten distinct benefits; sorted: -0.4 -0.2 0.0 0.1 0.2 0.3 0.5 0.6 0.7 0.9
BENEFIT = np.array([0.1, 0.5, -0.2, 0.9, 0.3, 0.0, 0.7, -0.4, 0.2, 0.6])


@pytest.mark.parametrize("fraction,above", [(0.0, 0), (0.1, 1), (0.3, 3), (0.33, 3), (0.5, 5), (0.7, 7),
                                            (0.94, 9), (1.0, 10)])
def test_strong_threshold_sends_round_f_n_of_distinct_benefits(fraction, above):
    threshold = protocol.strong_threshold(BENEFIT, fraction)
    assert (BENEFIT > threshold).sum() == above


def test_strong_threshold_values():
    assert protocol.strong_threshold(BENEFIT, 0.3) == 0.5       # 0.6, 0.7, 0.9 lie above
    assert protocol.strong_threshold(BENEFIT, 0.0) == 0.9       # nothing lies above the largest
    assert protocol.strong_threshold(BENEFIT, 1.0) == -np.inf   # everything lies above


@pytest.mark.parametrize("fraction,above", [(0.05, 0), (0.3, 2), (0.5, 2), (0.55, 2), (0.65, 10), (0.7, 10)])
def test_strong_threshold_with_ties_takes_the_closest_achievable_share(fraction, above):
    # eight prompts tie at 0 and two at 1: only 0, 2 or 10 of them can go to the strong LLM
    ties = np.array([0.0] * 8 + [1.0] * 2)
    assert (ties > protocol.strong_threshold(ties, fraction)).sum() == above


@pytest.mark.parametrize("fraction", [-0.1, 1.5, np.nan])
def test_strong_threshold_refuses_a_fraction_outside_0_1(fraction):
    with pytest.raises(RecrouteError, match="strong fraction must be between 0 and 1"):
        protocol.strong_threshold(BENEFIT, fraction)


@pytest.fixture(scope="module")
def calibrated_rows():
    rows, _ = evaluate_pair(pair_data(), ["linear", "bilinear"], seeds=(0, 1, 2), strong_fraction=0.2)
    return rows


def test_pair_rows_carry_the_calibrated_strong_share(calibrated_rows):
    assert len(calibrated_rows) == 6
    for name in ("linear", "bilinear"):
        mine = [r for r in calibrated_rows if r["router"] == name]
        assert all(r["strong_fraction"] == 0.2 and r["tolerance"] == 0.0 for r in mine)
        # calibrated on 100 validation prompts, applied to 100 test prompts: close, not exact
        shares = [r["strong_share"] for r in mine]
        assert all(abs(s - 0.2) <= 0.1 for s in shares), shares
        assert abs(np.mean(shares) - 0.2) <= 0.05, shares
        for r in mine:
            # a (near) perfect ranking spends each strong call on a prompt the weak LLM fails:
            # PGR = share / (share of weak failures) = share / (1 - weak μ)
            assert r["pgr_at"] == pytest.approx(r["strong_share"] / (1 - r["weak_mu"]), abs=0.05), r


@pytest.mark.parametrize("fraction,share", [(0.0, 0.0), (0.4, 0.0), (0.6, 1.0), (1.0, 1.0)])
def test_pair_strong_share_of_a_router_without_preference_is_all_or_nothing(fraction, share):
    # BSM scores every prompt alike: one big tie, so only 0% or 100% of the prompts can go to the strong LLM
    rows, _ = evaluate_pair(pair_data(n=200), ["bsm"], seeds=(0,), strong_fraction=fraction)
    assert rows[0]["strong_share"] == share
    assert rows[0]["pgr_at"] == pytest.approx(share)


@pytest.mark.parametrize("options,message", [({"tolerance": -1.0}, "tolerance"),
                                             ({"strong_fraction": 1.2}, "strong fraction")])
def test_pair_refuses_bad_options(options, message):
    with pytest.raises(RecrouteError, match=message):
        evaluate_pair(pair_data(n=100), ["bsm"], seeds=(0,), **options)


# -- cost weights and the quality-vs-cost sweep ----------------------------------------------------------
def test_cost_weights_on_one_prompt_by_hand():
    # quality 0.9 / 0.6 / 0.3 at cost 10 / 4 / 1: break-even λ = 0.3/6 = 0.05, 0.6/9 = 1/15, 0.3/3 = 0.1
    scores, costs = np.array([[0.9, 0.6, 0.3]]), np.array([[10.0, 4.0, 1.0]])
    # n = 3: one inner quantile, the median 1/15, and 2 x 0.1 beyond the largest
    assert protocol.cost_weights(scores, costs, 3) == pytest.approx([0.0, 1 / 15, 0.2])
    from recroute.cost import choose

    assert [choose(scores, costs, w)[0] for w in protocol.cost_weights(scores, costs, 3)] == [0, 1, 2]


def test_cost_weights_without_a_trade_off_is_zero_alone():
    # the better LLM is also the cheaper one on every prompt: λ never changes a choice
    scores, costs = np.array([[0.9, 0.1], [0.2, 0.8]]), np.array([[1.0, 2.0], [5.0, 3.0]])
    assert protocol.cost_weights(scores, costs).tolist() == [0.0]


def test_cost_weights_span_best_score_to_cheapest():
    from recroute.cost import choose

    rng = np.random.default_rng(0)
    scores, costs = rng.random((50, 4)), rng.random((50, 4))
    weights = protocol.cost_weights(scores, costs, 20)
    assert weights[0] == 0 and np.all(np.diff(weights) > 0) and len(weights) <= 20
    np.testing.assert_array_equal(choose(scores, costs, weights[0]), np.argmax(scores, axis=1))
    np.testing.assert_array_equal(choose(scores, costs, weights[-1]), np.argmin(costs, axis=1))
    # a prompt's chosen cost never rises as λ grows
    spent = np.array([costs[np.arange(50), choose(scores, costs, w)] for w in weights])
    assert np.all(np.diff(spent, axis=0) <= 0)


COST_LLMS = ["cheap", "mid", "dear"]


def costly_data(n=300, seed=0, with_cost=True) -> RoutingData:
    """3 LLMs, cheap / mid / dear answering 30% / 60% / 90% (cheap also wherever emb[0] > 0.8),
    each costing an exact line in the prompt's estimated tokens; the dearer LLM is dearer on every prompt."""
    from recroute.cost import estimate_tokens

    rng = np.random.default_rng(seed)
    emb = rng.normal(size=(n, 4)).astype(np.float32)
    texts = [f"prompt {i}: " + "word " * int(rng.integers(1, 40)) for i in range(n)]
    scores = (rng.random((n, 3)) < np.array([0.3, 0.6, 0.9])).astype(np.float32)
    scores[:, 0] = np.maximum(scores[:, 0], emb[:, 0] > 0.8)
    cost = np.array([1e-5, 1e-4, 1e-3]) + estimate_tokens(texts)[:, None] * np.array([1e-6, 5e-6, 3e-5])
    return RoutingData(scores=scores, prompt_ids=np.array([f"p{i}" for i in range(n)]), models=np.array(COST_LLMS),
                       prompts=texts, cost=cost if with_cost else None, embeddings=emb, source="costly.npz")


@pytest.fixture(scope="module")
def costly():
    return costly_data()


@pytest.fixture(scope="module")
def sweep(costly):
    return protocol.cost_quality(costly, ["bsm", "knn"], seeds=(0, 1))


def _test_part(data, seed):
    return data.split((0.8, 0.1, 0.1), seed=seed).test


def test_cost_quality_rows_and_singles(sweep, costly):
    rows = sweep["rows"]
    assert [(r["router"], r["seed"]) for r in rows] == [(name, s) for s in (0, 1) for name in ("oracle", "bsm", "knn")]
    assert sweep["models"] == COST_LLMS
    tests = [_test_part(costly, s) for s in (0, 1)]
    np.testing.assert_allclose(sweep["single_quality"], np.mean([t.scores.mean(axis=0) for t in tests], axis=0))
    np.testing.assert_allclose(sweep["single_cost"], np.mean([t.cost.mean(axis=0) for t in tests], axis=0),
                               rtol=1e-6)
    for r in rows:
        assert len(r["cost"]) == len(r["quality"]) >= 2 and r["n_test"] == 30
        assert "apgr" not in r  # three LLMs: no strong/weak pair
        assert 0 <= r["aiq"] <= 1


def test_cost_quality_oracle_beats_every_router(sweep):
    for seed in (0, 1):
        mine = {r["router"]: r["aiq"] for r in sweep["rows"] if r["seed"] == seed}
        assert all(mine["oracle"] >= value for value in mine.values()), mine
        assert mine["oracle"] > mine["bsm"] + 0.05


def test_cost_quality_aiq_is_over_the_single_llms_cost_range(sweep, costly):
    for seed in (0, 1):
        cost = _test_part(costly, seed).cost.mean(axis=0)
        for r in (r for r in sweep["rows"] if r["seed"] == seed):
            assert r["aiq"] == pytest.approx(metrics.aiq(r["cost"], r["quality"], (cost.min(), cost.max())))
        # the oracle spends less than the dearest LLM at its best, so its own range is narrower
        oracle = next(r for r in sweep["rows"] if r["seed"] == seed and r["router"] == "oracle")
        assert max(oracle["cost"]) < cost.max()
        assert oracle["aiq"] > metrics.aiq(oracle["cost"], oracle["quality"]) - 1e-12


def test_cost_quality_bsm_runs_from_the_best_llm_to_the_cheapest(sweep, costly):
    for seed in (0, 1):
        test = _test_part(costly, seed)
        quality, cost = test.scores.mean(axis=0), test.cost.mean(axis=0)
        row = next(r for r in sweep["rows"] if r["router"] == "bsm" and r["seed"] == seed)
        # λ = 0: every prompt to the best training LLM ('dear'); the last λ: every prompt to 'cheap'
        assert (row["quality"][0], row["cost"][0]) == (pytest.approx(quality[2]), pytest.approx(cost[2], rel=1e-6))
        assert (row["quality"][-1], row["cost"][-1]) == (pytest.approx(quality[0]), pytest.approx(cost[0], rel=1e-6))
        # the AIQ is taken over the single LLMs' cost range, the same for every router
        assert row["aiq"] == pytest.approx(metrics.aiq(row["cost"], row["quality"], (cost.min(), cost.max())))


def test_cost_quality_oracle_ends_at_the_mean_best_score(sweep, costly):
    for seed in (0, 1):
        test = _test_part(costly, seed)
        row = next(r for r in sweep["rows"] if r["router"] == "oracle" and r["seed"] == seed)
        assert row["quality"][0] == pytest.approx(test.scores.max(axis=1).mean())
        assert row["quality"][-1] == pytest.approx(test.scores[:, 0].mean())  # all to the cheapest
        assert max(row["quality"]) == pytest.approx(test.scores.max(axis=1).mean())


def test_cost_quality_with_two_llms_reports_apgr_and_cpt(costly):
    result = protocol.cost_quality(costly, ["bsm", "knn"], seeds=(0,), models=["dear", "cheap"])
    assert result["models"] == ["dear", "cheap"]
    for r in result["rows"]:
        assert {"apgr", "cpt50", "cpt80"} <= set(r), r
    apgr = {r["router"]: r["apgr"] for r in result["rows"]}
    assert apgr["oracle"] > 0.6 and apgr["oracle"] >= apgr["bsm"] and apgr["oracle"] >= apgr["knn"]


def test_cost_quality_needs_costs_or_prices(costly):
    with pytest.raises(RecrouteError, match="costly.npz: has neither per-query costs nor per-LLM prices"):
        protocol.cost_quality(costly_data(n=50, with_cost=False), ["bsm"], seeds=(0,))


def test_cost_quality_refuses_an_unknown_llm(costly):
    with pytest.raises(RecrouteError, match="unknown LLM 'gpt-9'"):
        protocol.cost_quality(costly, ["bsm"], seeds=(0,), models=["cheap", "gpt-9"])
