"""The per-LLM cost model and cost-aware choice, on tiny data with hand-computed answers.

Per-query costs here are exactly linear in the estimated token count
(ceil(characters / 4)), so the least-squares lines the cost model fits are
the lines the data was made from.
"""
from __future__ import annotations

import numpy as np
import pytest

from recroute.cost import CostModel, choose, estimate_tokens, realised_cost
from recroute.data import RoutingData
from recroute.errors import RecrouteError

approx = pytest.approx

MODELS = ["cheap", "mid", "dear"]
# dollars = intercept + slope x tokens, per LLM
INTERCEPT = np.array([1e-5, 1e-4, 1e-3])
SLOPE = np.array([1e-6, 5e-6, 3e-5])
# prompts of 1, 2, 3, 5 and 8 tokens: 4, 8, 12, 20 and 29 characters
TEXTS = ["abcd", "abcdefgh", "x" * 12, "y" * 20, "z" * 29]
TOKENS = np.array([1, 2, 3, 5, 8])


def make_data(scores=None, cost=None, price=None, prompts=TEXTS, models=MODELS, source="costs.npz") -> RoutingData:
    n = len(prompts) if prompts is not None else len(cost if cost is not None else scores)
    scores = np.zeros((n, len(models))) if scores is None else scores
    return RoutingData(scores=scores, prompt_ids=np.array([f"p{i}" for i in range(n)]), models=np.array(models),
                       prompts=prompts, cost=cost, price=price, source=source)


def linear_cost(tokens=TOKENS) -> np.ndarray:
    return INTERCEPT[None, :] + np.asarray(tokens, dtype=float)[:, None] * SLOPE[None, :]


# -- token counts ------------------------------------------------------------------------------
def test_estimate_tokens_is_a_quarter_of_the_characters_rounded_up_and_at_least_one():
    texts = ["", "a", "abcd", "abcde", "x" * 8, "x" * 9, "é" * 7]
    # 0 -> 1 (at least one), 1 -> 1, 4 -> 1, 5 -> 2, 8 -> 2, 9 -> 3, 7 characters (not bytes) -> 2
    assert estimate_tokens(texts).tolist() == [1, 1, 1, 2, 2, 3, 2]
    assert estimate_tokens(TEXTS).tolist() == TOKENS.tolist()
    assert estimate_tokens([]).shape == (0,)


# -- fitting from per-query costs ----------------------------------------------------------------
def test_fit_on_costs_linear_in_tokens_recovers_the_lines():
    model = CostModel().fit(make_data(cost=linear_cost()))
    assert model.models_.tolist() == MODELS
    assert model.intercept_ == approx(INTERCEPT, rel=1e-4)
    assert model.slope_ == approx(SLOPE, rel=1e-4)
    # a new prompt of 40 characters = 10 tokens
    assert model.predict(["q" * 40])[0] == approx(INTERCEPT + 10 * SLOPE, rel=1e-4)


def test_fit_ignores_unrecorded_costs():
    cost = linear_cost()
    cost[0, 0] = cost[3, 1] = np.nan
    model = CostModel().fit(make_data(cost=cost))
    assert model.intercept_ == approx(INTERCEPT, rel=1e-4) and model.slope_ == approx(SLOPE, rel=1e-4)


def test_a_negative_slope_falls_back_to_the_mean_cost():
    cost = linear_cost()
    cost[:, 1] = [9e-5, 8e-5, 7e-5, 5e-5, 2e-5]  # longer prompts cheaper on 'mid': 1e-4 - 1e-5 x tokens
    model = CostModel().fit(make_data(cost=cost))
    assert model.slope_[1] == 0.0
    assert model.intercept_[1] == approx((9 + 8 + 7 + 5 + 2) / 5 * 1e-5, rel=1e-5)  # the mean
    assert model.predict(["a", "b" * 400], ["mid"])[:, 0] == approx([6.2e-5, 6.2e-5], rel=1e-5)
    # the other LLMs keep their lines
    assert model.slope_[[0, 2]] == approx(SLOPE[[0, 2]], rel=1e-4)


def test_without_prompt_texts_or_token_spread_the_cost_is_the_mean():
    cost = linear_cost()
    no_texts = CostModel().fit(make_data(cost=cost, prompts=None))
    assert no_texts.slope_.tolist() == [0.0, 0.0, 0.0]
    assert no_texts.intercept_ == approx(cost.mean(axis=0), rel=1e-5)
    same_length = ["abcd", "efgh", "ijkl", "mnop", "qrst"]  # every prompt 1 token: no line to fit
    flat = CostModel().fit(make_data(cost=cost, prompts=same_length))
    assert flat.slope_.tolist() == [0.0, 0.0, 0.0]
    assert flat.intercept_ == approx(cost.mean(axis=0), rel=1e-5)


def test_an_llm_with_no_recorded_cost_is_an_error():
    cost = linear_cost()
    cost[:, 2] = np.nan
    with pytest.raises(RecrouteError, match="costs.npz: LLM column 2 has no recorded cost"):
        CostModel().fit(make_data(cost=cost))


def test_predictions_never_go_below_zero():
    # cost = 2e-6 x (tokens - 5) for prompts of 5..8 tokens: intercept -1e-5, so a 1-token prompt would be -8e-6
    texts = ["a" * 20, "b" * 24, "c" * 28, "d" * 32]
    cost = np.array([[0.0], [2e-6], [4e-6], [6e-6]])
    model = CostModel().fit(make_data(cost=cost, prompts=texts, models=["solo"]))
    assert model.intercept_[0] == approx(-1e-5, rel=1e-4) and model.slope_[0] == approx(2e-6, rel=1e-4)
    assert model.predict(["a", "e" * 40])[:, 0] == approx([0.0, 1e-5], abs=1e-11)


# -- fitting from per-token prices -----------------------------------------------------------------
def test_fit_on_prices_uses_input_price_per_token_and_an_assumed_answer_length():
    price = np.array([[1.0, 2.0], [3.0, 15.0], [10.0, 30.0]])  # dollars per million input, output tokens
    model = CostModel(output_tokens=100).fit(make_data(price=price))
    assert model.slope_ == approx([1e-6, 3e-6, 1e-5])
    assert model.intercept_ == approx([2e-4, 1.5e-3, 3e-3])  # output price / 1e6 x 100 tokens
    # a 3-token prompt on 'dear': 3e-3 + 3 x 1e-5
    assert model.predict(["x" * 12], ["dear"])[0, 0] == approx(3.03e-3)
    assert CostModel().fit(make_data(price=price)).intercept_ == approx([2 * 256e-6, 15 * 256e-6, 30 * 256e-6])


def test_per_query_costs_take_precedence_over_prices():
    model = CostModel().fit(make_data(cost=linear_cost(), price=np.ones((3, 2))))
    assert model.slope_ == approx(SLOPE, rel=1e-4)


def test_fit_without_costs_or_prices_is_an_error():
    with pytest.raises(RecrouteError, match="costs.npz: has neither per-query costs nor per-LLM prices"):
        CostModel().fit(make_data())


def test_prices_without_prompt_texts_are_an_error():
    data = make_data(scores=np.zeros((4, 3)), price=np.ones((3, 2)), prompts=None)
    with pytest.raises(RecrouteError, match="costs.npz: token prices need the prompt texts"):
        CostModel().fit(data)


# -- predicting -----------------------------------------------------------------------------------
def test_predict_for_named_llms_in_the_order_given():
    model = CostModel().fit(make_data(cost=linear_cost()))
    texts = ["abcdefgh", "q" * 17]  # 2 and 5 tokens
    everyone = model.predict(texts)
    assert everyone.shape == (2, 3)
    assert everyone == approx(linear_cost([2, 5]), rel=1e-4)
    some = model.predict(texts, ["dear", "cheap"])
    assert some.shape == (2, 2)
    np.testing.assert_array_equal(some, everyone[:, [2, 0]])


def test_predict_for_an_unknown_llm_is_an_error():
    model = CostModel().fit(make_data(cost=linear_cost()))
    with pytest.raises(RecrouteError, match="the cost model: unknown LLM 'gpt-9'"):
        model.predict(["hello"], ["cheap", "gpt-9"])


def test_state_round_trip_predicts_the_same():
    model = CostModel(output_tokens=64).fit(make_data(cost=linear_cost()))
    state = model.state()
    assert set(state) == {"intercept_", "slope_", "models_"}
    loaded = CostModel(**model.get_params()).load_state(state)
    assert loaded.get_params() == {"output_tokens": 64}
    assert loaded.models_.tolist() == MODELS
    texts = ["a", "b" * 100, "c" * 7]
    np.testing.assert_array_equal(loaded.predict(texts), model.predict(texts))
    np.testing.assert_array_equal(loaded.predict(texts, ["mid"]), model.predict(texts, ["mid"]))


def test_load_state_refuses_missing_or_disagreeing_arrays():
    state = CostModel().fit(make_data(cost=linear_cost())).state()
    with pytest.raises(RecrouteError, match="lacks its slope array"):
        CostModel().load_state({k: v for k, v in state.items() if k != "slope_"})
    with pytest.raises(RecrouteError, match="disagree in length"):
        CostModel().load_state({**state, "intercept_": state["intercept_"][:2]})


# -- realised cost --------------------------------------------------------------------------------
def test_realised_cost_is_the_recorded_cost_with_its_gaps():
    cost = linear_cost()
    cost[1, 1] = np.nan
    spent = realised_cost(make_data(cost=cost))
    assert spent.dtype == np.float64
    assert np.isnan(spent[1, 1]) and np.isnan(spent).sum() == 1
    assert spent[~np.isnan(spent)] == approx(cost[~np.isnan(cost)], rel=1e-6)


def test_realised_cost_from_prices_is_the_price_estimate():
    price = np.array([[1.0, 2.0], [3.0, 15.0], [10.0, 30.0]])
    spent = realised_cost(make_data(price=price), output_tokens=10)
    # prompt of 8 tokens on 'mid': 8 x 3e-6 + 10 x 15e-6
    assert spent.shape == (5, 3)
    assert spent[4, 1] == approx(8 * 3e-6 + 10 * 15e-6)
    assert spent[:, 0] == approx(TOKENS * 1e-6 + 10 * 2e-6)


# -- choosing -------------------------------------------------------------------------------------
# One prompt: quality 0.9 / 0.6 / 0.3 at cost 10 / 4 / 1. Utilities score - λ cost:
#   λ = 0.04: 0.5, 0.44, 0.26 -> 0     λ = 0.06: 0.3, 0.36, 0.24 -> 1     λ = 0.2: -1.1, -0.2, 0.1 -> 2
SCORES = np.array([[0.9, 0.6, 0.3]])
COSTS = np.array([[10.0, 4.0, 1.0]])


@pytest.mark.parametrize("weight,expected", [(0.0, 0), (0.04, 0), (0.06, 1), (0.2, 2), (100.0, 2)])
def test_choose_maximises_score_minus_weighted_cost(weight, expected):
    assert choose(SCORES, COSTS, weight).tolist() == [expected]


@pytest.mark.parametrize("budget,weight,expected", [
    (10.0, 0.0, 0),   # everything fits: the best score
    (5.0, 0.0, 1),    # 'dear' does not fit: the best of the rest
    (4.0, 0.0, 1),    # a cost equal to the budget fits
    (5.0, 0.2, 2),    # among those that fit, score - λ cost still decides
    (0.5, 0.0, 2),    # nothing fits: the cheapest
    (0.5, 100.0, 2),
])
def test_choose_with_a_budget(budget, weight, expected):
    assert choose(SCORES, COSTS, weight, budget=budget).tolist() == [expected]


def test_choose_decides_each_prompt_on_its_own():
    scores = np.array([[0.9, 0.6, 0.3], [0.2, 0.8, 0.5], [0.5, 0.5, 0.9]])
    costs = np.array([[10.0, 4.0, 1.0], [1.0, 2.0, 3.0], [3.0, 2.0, 9.0]])
    assert choose(scores, costs).tolist() == [0, 1, 2]
    # λ = 0.09: row 0: 0.0, 0.24, 0.21 -> 1; row 1: 0.11, 0.62, 0.23 -> 1; row 2: 0.23, 0.32, 0.09 -> 1
    assert choose(scores, costs, 0.09).tolist() == [1, 1, 1]
    # budget 2.5: row 0 fits only 'cheap' (cost 1) -> 2; row 1 fits 0 and 1 -> 1; row 2 fits only 1 -> 1
    assert choose(scores, costs, budget=2.5).tolist() == [2, 1, 1]
    # budget 1.5: row 2 fits nothing -> its cheapest, column 1
    assert choose(scores, costs, budget=1.5).tolist() == [2, 0, 1]


def test_router_probability_is_the_score_for_probability_routers_and_calibrated_for_latent_ones():
    """What cost routing weighs against dollars: P(good answer), on the same scale for every router."""
    from scipy.special import expit

    from recroute.routers import Queries, make_router

    rng = np.random.default_rng(0)
    n = 300
    emb = rng.normal(size=(n, 6)).astype(np.float32)
    truth = np.stack([emb[:, 0] > 0, emb[:, 1] > 0, np.ones(n, dtype=bool)], axis=1).astype(np.float32)
    data = RoutingData(scores=truth, prompt_ids=np.array([f"q{i}" for i in range(n)]), models=np.array(list("ABC")),
                       embeddings=emb, source="prob")
    queries = Queries(embeddings=emb[:50])
    linear = make_router("linear").fit(data)
    assert np.array_equal(linear.probability(queries), linear.score(queries))
    bilinear = make_router("bilinear").fit(data)
    a, c = bilinear.calibration_
    assert a > 0  # a higher score means a better chance of a good answer
    p = bilinear.probability(queries, ["B", "C"])
    assert p == pytest.approx(expit(a * bilinear.score(queries, ["B", "C"]) + c), abs=1e-6)
    assert ((p >= 0) & (p <= 1)).all()
    # calibrated: the always-right LLM C is predicted near certain, B tracks its coordinate
    assert p[:, 1].mean() > 0.9
    assert p[emb[:50, 1] > 0.5, 0].mean() > 0.7 > 0.3 > p[emb[:50, 1] < -0.5, 0].mean()
