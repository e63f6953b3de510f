"""Issue 15: routing logs, off-policy evaluation, warm start by id, a new LLM's benchmark estimate."""
from __future__ import annotations

import itertools
import json
from dataclasses import replace

import numpy as np
import pytest
from click.testing import CliRunner

from recroute.cli import main
from recroute.data import RoutingData
from recroute.errors import RecrouteError
from recroute.estimate import benchmark_estimate
from recroute.loaders import load_long
from recroute.logs import inclusion_probabilities, policy_probabilities, propensity_weights, simulate_logs, write_long
from recroute.ope import calibrated_direct, estimate, prompt_terms
from recroute.routers import Queries, make_router
from recroute.synth import synthetic


def _dense(n=4, m=3, seed=0):
    rng = np.random.default_rng(seed)
    return RoutingData(scores=(rng.random((n, m)) < 0.5).astype(np.float32), prompt_ids=[f"p{i}" for i in range(n)],
                       models=[f"m{j}" for j in range(m)], source="dense")


# -- 1. logs are data -----------------------------------------------------------------------------
def test_the_long_format_reads_propensities_and_any_number_of_outcomes_per_prompt(tmp_path):
    path = tmp_path / "log.jsonl"
    rows = [{"prompt_id": "a", "model": "x", "score": 1, "propensity": 0.25},
            {"prompt_id": "a", "model": "y", "score": 0, "propensity": 0.5},
            {"prompt_id": "b", "model": "y", "score": 1}]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    data = load_long(path)
    assert data.propensity.dtype == np.float32
    np.testing.assert_allclose(data.propensity, [[0.25, 0.5], [np.nan, np.nan]])
    np.testing.assert_array_equal(data.observed, [[True, True], [False, True]])


@pytest.mark.parametrize("value", [0, 1.5, -0.1, "nan"])
def test_a_bad_propensity_is_one_sentence_naming_file_and_line(tmp_path, value):
    path = tmp_path / "log.csv"
    path.write_text(f"prompt_id,model,score,propensity\na,x,1,0.5\nb,x,0,{value}\n")
    with pytest.raises(RecrouteError, match=r"log\.csv:3: .*propensity"):
        load_long(path)


def test_inclusion_probabilities_cap_at_one_and_sum_to_k():
    lam = inclusion_probabilities(np.array([[0.5, 0.3, 0.2], [0.7, 0.2, 0.1]]), 2)
    np.testing.assert_allclose(lam, [[1.0, 0.6, 0.4], [1.0, 2 / 3, 1 / 3]], atol=1e-12)
    np.testing.assert_allclose(inclusion_probabilities(np.array([[0.5, 0.3, 0.2]]), 1), [[0.5, 0.3, 0.2]])
    with pytest.raises(RecrouteError, match="cannot log 2"):
        inclusion_probabilities(np.array([[1.0, 0.0, 0.0]]), 2)


@pytest.mark.parametrize("k", [1, 2])
def test_simulated_logs_log_each_llm_with_its_stated_propensity(k):
    data = _dense(n=2000, m=4)
    policy = np.tile([0.55, 0.25, 0.15, 0.05], (2000, 1))
    log = simulate_logs(data, policy, k, seed=1)
    assert (log.observed.sum(axis=1) == k).all()
    lam = inclusion_probabilities(policy[:1], k)[0]
    np.testing.assert_allclose(log.propensity[log.observed], np.broadcast_to(lam, log.observed.shape)[log.observed])
    se = np.sqrt(lam * (1 - lam) / 2000) + 1e-9
    assert (np.abs(log.observed.mean(axis=0) - lam) < 4 * se + 1e-6).all()  # frequencies match λ within 4 SE
    np.testing.assert_array_equal(log.scores[log.observed], data.scores[log.observed])


def test_softmax_policy_prefers_good_answers_and_rejects_a_bad_temperature():
    data = _dense()
    pi = policy_probabilities("softmax:0.5", data)
    np.testing.assert_allclose(pi.sum(axis=1), 1)
    good = data.scores == 1
    row = np.flatnonzero(good.any(axis=1) & ~good.all(axis=1))[0]
    assert pi[row, good[row]].min() / pi[row, ~good[row]].max() == pytest.approx(np.exp(2), rel=1e-9)
    with pytest.raises(RecrouteError, match="positive temperature"):
        policy_probabilities("softmax:-1", data)


def test_a_simulated_log_keeps_the_prompts_embeddings_and_groups():
    data, _ = synthetic(50, 4, seed=0)
    log = simulate_logs(data, policy_probabilities("uniform", data), 1, seed=0)
    np.testing.assert_array_equal(log.embeddings, data.embeddings)
    np.testing.assert_array_equal(log.groups, data.groups)
    assert log.observed.sum() == 50 and make_router("knn").fit(log).score(Queries.of(data)).shape == (50, 4)


def test_a_log_round_trips_through_jsonl(tmp_path):
    data = _dense(n=30, m=4)
    log = simulate_logs(data, policy_probabilities("uniform", data), 2, seed=0)
    back = load_long(write_long(log, tmp_path / "log.jsonl"))

    def cells(d):
        rows, cols = np.nonzero(d.observed)
        return {(str(d.prompt_ids[i]), str(d.models[j])): (float(d.scores[i, j]), float(d.propensity[i, j]))
                for i, j in zip(rows, cols)}

    assert cells(back) == cells(log) and len(cells(back)) == 60  # both float32 values, written as exact decimals


# -- 2. training on logs --------------------------------------------------------------------------
def test_propensity_weights_are_clipped_and_self_normalised():
    data = RoutingData(scores=[[1.0, 0.0, np.nan]], prompt_ids=["a"], models=["x", "y", "z"],
                       propensity=[[0.5, 0.25, np.nan]])
    np.testing.assert_allclose(propensity_weights(data, 100), [[2 / 3, 4 / 3, 0]], rtol=1e-6)
    np.testing.assert_allclose(propensity_weights(data, 3), [[0.8, 1.2, 0]], rtol=1e-6)
    with pytest.raises(RecrouteError, match="no propensity column"):
        propensity_weights(replace(data, propensity=None), 3)


def test_ips_weighted_training_undoes_a_policy_that_logged_only_good_answers():
    """LLM y is right on half the prompts but was logged almost only where right (propensity 0.9 there,
    0.1 elsewhere): plain training believes y is nearly always right; IPS weighting recovers one half."""
    n = 4000
    rng = np.random.default_rng(0)
    right = rng.random(n) < 0.5
    logged = rng.random(n) < np.where(right, 0.9, 0.1)
    scores = np.where(logged, right, np.nan)[:, None].astype(np.float32)
    data = RoutingData(scores=np.hstack([scores, np.ones((n, 1), np.float32)]), prompt_ids=[f"p{i}" for i in range(n)],
                       models=["y", "always"], embeddings=np.ones((n, 2), np.float32),
                       propensity=np.hstack([np.where(logged, np.where(right, 0.9, 0.1), np.nan)[:, None],
                                             np.ones((n, 1))]))
    plain = make_router("linear", epochs=30, seed=0).fit(data).score(Queries(embeddings=np.ones((1, 2))))[0, 0]
    weighted = make_router("linear", epochs=30, seed=0, logging_clip=100.0).fit(data)
    assert plain > 0.85
    assert weighted.score(Queries(embeddings=np.ones((1, 2))))[0, 0] == pytest.approx(0.5, abs=0.06)


def _hard_prompts_sent_to_one_llm(n=4000, seed=0):
    """A log of one outcome per prompt: half the prompts are hard; LLM "sent-hard" (right on 95% of easy and
    55% of hard prompts: true mean 0.75) got 85% of the hard prompts and 15% of the easy ones, LLM "other"
    (right on 68% of any) the rest. Logged, sent-hard looks worse than other (about 0.61); it is better.
    The embeddings are noise: the routers cannot see which prompts are hard."""
    rng = np.random.default_rng(seed)
    hard = rng.random(n) < 0.5
    right = np.stack([rng.random(n) < np.where(hard, 0.55, 0.95), rng.random(n) < 0.68], axis=1)
    to_sent_hard = np.where(hard, 0.85, 0.15)
    logged = np.stack([rng.random(n) < to_sent_hard, np.zeros(n, bool)], axis=1)
    logged[:, 1] = ~logged[:, 0]
    propensity = np.stack([to_sent_hard, 1 - to_sent_hard], axis=1)
    return RoutingData(scores=np.where(logged, right, np.nan).astype(np.float32), prompt_ids=[f"p{i}" for i in range(n)],
                       models=["sent-hard", "other"], embeddings=rng.normal(size=(n, 8)).astype(np.float32),
                       propensity=np.where(logged, propensity, np.nan))


@pytest.mark.parametrize("name, params, link", [
    ("knn", {"k": 1000}, None), ("knnreg", {"k": 1000}, None), ("cluster", {"k": 1}, None), ("ridge", {}, None),
    ("task", {}, None),
    ("mlp", {"epochs": 30}, None), ("bilinear", {"factors": 4, "epochs": 200}, "logit"),
    ("lightfm", {"factors": 4, "loss": "logistic"}, "rank"), ("auto", {"candidates": ["cluster"], "folds": 2}, None),
])
def test_ips_weighted_training_recovers_the_llm_a_skewed_policy_sent_the_hard_prompts(name, params, link):
    data = _hard_prompts_sent_to_one_llm()
    queries = Queries(embeddings=np.random.default_rng(9).normal(size=(200, 8)).astype(np.float32))
    plain = make_router(name, **params).fit(data)
    weighted = make_router(name, logging_clip=20.0, **params).fit(data)
    assert (plain.route(queries) == 1).mean() > 0.9  # plain training believes "other" is better
    assert (weighted.route(queries) == 0).mean() > 0.7  # weighted training knows sent-hard is
    if link != "rank":  # and reads sent-hard's true mean, 0.75, off the weighted router's score
        read = (lambda s: 1 / (1 + np.exp(-s))) if link == "logit" else (lambda s: s)
        assert read(plain.score(queries)[:, 0]).mean() < 0.64
        assert read(weighted.score(queries)[:, 0]).mean() == pytest.approx(0.75, abs=0.03)


# -- 3. off-policy evaluation ---------------------------------------------------------------------
def test_ips_and_dr_equal_the_true_value_in_expectation_over_every_possible_log():
    rng = np.random.default_rng(3)
    n, m = 3, 3
    rewards = rng.random((n, m))
    logging = rng.dirichlet(np.ones(m), size=n)
    target = rng.dirichlet(np.ones(m), size=n)
    direct = rng.random((n, m))
    truth = (target * rewards).sum(axis=1).mean()
    expected = {"ips": 0.0, "dr": 0.0}
    for choice in itertools.product(range(m), repeat=n):  # every log of one draw per prompt, with its probability
        chosen = np.zeros((n, m), bool)
        chosen[np.arange(n), choice] = True
        prob = logging[np.arange(n), choice].prod()
        terms = prompt_terms(np.where(chosen, rewards, np.nan), np.where(chosen, logging, np.nan), target, direct)
        for name in expected:
            expected[name] += prob * terms[name].mean()
    assert expected["ips"] == pytest.approx(truth, abs=1e-12)
    assert expected["dr"] == pytest.approx(truth, abs=1e-12)


def test_a_perfect_direct_model_makes_dr_exact():
    rng = np.random.default_rng(0)
    rewards = rng.random((50, 3))
    target = rng.dirichlet(np.ones(3), size=50)
    log = np.where(np.eye(3, dtype=bool)[rng.integers(0, 3, 50)], rewards, np.nan)
    terms = prompt_terms(log, np.where(np.isnan(log), np.nan, 1 / 3), target, rewards)
    result = estimate(terms)
    assert result["dr"]["value"] == pytest.approx((target * rewards).sum(axis=1).mean(), abs=1e-12)
    assert result["n"] == 50


def test_intervals_cover_the_truth_at_about_their_nominal_rate():
    """200 logs of 300 prompts under a skewed logging policy: each 95% interval covers the true value of
    a fixed target policy in 88%–99% of them (a binomial 95% band around 0.95 is about ±3 points)."""
    rng = np.random.default_rng(7)
    n, m = 300, 4
    p_good = rng.random((n, m))
    target = np.eye(m)[np.argmax(p_good + rng.normal(0, 0.3, (n, m)), axis=1)]
    logging = np.tile([0.4, 0.3, 0.2, 0.1], (n, 1))
    truth = (target * p_good).sum(axis=1).mean()  # expected outcome: the rewards are Bernoulli draws
    covered = {"ips": 0, "snips": 0, "dr": 0}
    for _ in range(200):
        choice = (rng.random((n, 1)) > np.cumsum(logging, axis=1)).sum(axis=1)
        chosen = np.eye(m, dtype=bool)[choice]
        rewards = (rng.random((n, m)) < p_good).astype(float)
        terms = prompt_terms(np.where(chosen, rewards, np.nan), np.where(chosen, logging, np.nan), target,
                             np.full((n, m), 0.5))
        result = estimate(terms, n_resamples=500, seed=int(rng.integers(1 << 30)))
        for name in covered:
            covered[name] += result[name]["low"] <= truth <= result[name]["high"]
    for name, hits in covered.items():
        assert 0.88 <= hits / 200 <= 0.99, (name, hits)


def _every_log(logging):
    """Every log of one draw per prompt from ``logging`` (n, m): the logged mask and its probability."""
    n, m = logging.shape
    for choice in itertools.product(range(m), repeat=n):
        chosen = np.zeros((n, m), bool)
        chosen[np.arange(n), choice] = True
        yield chosen, logging[np.arange(n), choice].prod()


def test_dr_with_the_calibrated_direct_model_is_unbiased_over_every_possible_log():
    """The router's scores track the outcomes but overshoot; calibrating them on the log itself would pull
    each prompt's q towards its own logged outcome and bias DR, cross-fitting keeps it exact in expectation."""
    rng = np.random.default_rng(5)
    n, m = 4, 3
    rewards = (rng.random((n, m)) < 0.5).astype(float)
    scores = 0.3 + 0.6 * rewards + rng.normal(0, 0.2, (n, m))
    logging = rng.dirichlet(np.ones(m), size=n)
    target = np.eye(m)[np.argmax(scores, axis=1)]
    truth = (target * rewards).sum(axis=1).mean()
    expected, spread = 0.0, []
    for chosen, prob in _every_log(logging):
        log = np.where(chosen, rewards, np.nan)
        expected += prob * prompt_terms(log, np.where(chosen, logging, np.nan), target, scores)["dr"].mean()
        spread.append(calibrated_direct(scores, log, np.where(chosen, logging, np.nan)))
    assert np.ptp(spread, axis=0).max() > 0.1  # q does depend on the log
    assert expected == pytest.approx(truth, abs=1e-12)


def test_scores_an_affine_map_from_the_outcomes_calibrate_into_an_exact_dr():
    rng = np.random.default_rng(1)
    rewards = rng.random((40, 5))
    chosen = np.eye(5, dtype=bool)[rng.integers(0, 5, 40)]
    target = rng.dirichlet(np.ones(5), size=40)
    terms = prompt_terms(np.where(chosen, rewards, np.nan), np.where(chosen, 0.2, np.nan), target, 3 * rewards - 1)
    assert terms["dr"].mean() == pytest.approx((target * rewards).sum(axis=1).mean(), abs=1e-9)
    np.testing.assert_allclose(terms["dr_variance"], 0, atol=1e-12)


def test_dr_covers_near_nominal_with_many_llms_and_few_logged_choices():
    """60 LLMs, 200 prompts, one uniformly logged outcome each: the router's choice is logged on about 3
    prompts, and its raw score (the best of 60 noisy estimates) overshoots its outcome rate by about 0.2.
    The 95% DR interval covers in 88%–100% of 150 logs (all of them, measured: it errs wide), and its mean
    width, 1.11 measured, stays under 1.2: wider is an inflated variance, not an honest one."""
    rng = np.random.default_rng(11)
    n, m = 200, 60
    p_good = rng.beta(2, 2, (n, m))
    scores = np.clip(p_good + rng.normal(0, 0.25, (n, m)), 0, 1)
    target = np.eye(m)[np.argmax(scores, axis=1)]
    truth = (target * p_good).sum(axis=1).mean()
    assert (target * scores).sum(axis=1).mean() - truth > 0.15
    covered, widths = 0, []
    for _ in range(150):
        chosen = np.eye(m, dtype=bool)[rng.integers(0, m, n)]
        rewards = (rng.random((n, m)) < p_good).astype(float)
        terms = prompt_terms(np.where(chosen, rewards, np.nan), np.where(chosen, 1 / m, np.nan), target, scores)
        dr = estimate(terms, n_resamples=100)["dr"]
        covered += dr["low"] <= truth <= dr["high"]
        widths.append(dr["high"] - dr["low"])
    assert 0.88 <= covered / 150 <= 1.0, covered
    assert np.mean(widths) < 1.2, np.mean(widths)


def test_ips_and_snips_intervals_cover_with_many_llms_and_few_logged_choices():
    """60 LLMs, 200 prompts, one uniformly logged outcome each: IPS and SNIPS rest on the ~3 prompts whose
    logged LLM is the router's choice, where a bootstrap over prompts sees almost none of their variance (and
    SNIPS's resamples without such a prompt have no value). Each 95% interval is finite and covers the
    truth in 88%–100% of 100 logs."""
    rng = np.random.default_rng(12)
    n, m = 200, 60
    p_good = rng.beta(2, 2, (n, m))
    target = np.eye(m)[np.argmax(p_good + rng.normal(0, 0.25, (n, m)), axis=1)]
    truth = (target * p_good).sum(axis=1).mean()
    covered, logs = {"ips": 0, "snips": 0}, 0
    for _ in range(100):
        chosen = np.eye(m, dtype=bool)[rng.integers(0, m, n)]
        rewards = (rng.random((n, m)) < p_good).astype(float)
        result = estimate(prompt_terms(np.where(chosen, rewards, np.nan), np.where(chosen, 1 / m, np.nan), target),
                          n_resamples=200)
        if result["ips"] is None:  # the router's choice logged on no prompt: nothing to weigh
            continue
        logs += 1
        for name in covered:
            assert np.isfinite([result[name]["low"], result[name]["high"]]).all(), (name, result[name])
            covered[name] += result[name]["low"] <= truth <= result[name]["high"]
    assert logs >= 90
    for name, hits in covered.items():
        assert 0.88 <= hits / logs <= 1.0, (name, hits, logs)


def test_snips_interval_is_widened_where_its_bootstrap_rests_on_a_few_prompts():
    """30 LLMs, 200 prompts, one uniformly logged outcome each: SNIPS rests on the ~7 prompts whose logged LLM
    is the router's choice, and its bootstrap interval (the modelled bound where the bootstrap gives none)
    covered 88%–92% of 200 logs (6 seeds measured). Its share of the modelled variance brings that to
    96%–100%, at a mean width of 0.82–0.85; the modelled interval all the way (or SNIPS's variance centred
    on 0, not its value) is 0.92–0.95 wide."""
    rng = np.random.default_rng(13)
    n, m = 200, 30
    p_good = rng.beta(2, 2, (n, m))
    target = np.eye(m)[np.argmax(p_good + rng.normal(0, 0.25, (n, m)), axis=1)]
    truth = (target * p_good).sum(axis=1).mean()
    covered, widths = 0, []
    for _ in range(200):
        chosen = np.eye(m, dtype=bool)[rng.integers(0, m, n)]
        rewards = (rng.random((n, m)) < p_good).astype(float)
        snips = estimate(prompt_terms(np.where(chosen, rewards, np.nan), np.where(chosen, 1 / m, np.nan), target),
                         n_resamples=200)["snips"]
        covered += snips["low"] <= truth <= snips["high"]
        widths.append(snips["high"] - snips["low"])
    assert covered / 200 >= 0.94, covered
    assert np.mean(widths) < 0.89, np.mean(widths)


def test_ips_and_snips_are_undefined_but_dr_is_given_when_the_routers_choice_is_never_logged():
    rewards = np.array([[1.0, np.nan], [np.nan, 0.0], [0.0, np.nan]])
    propensity = np.where(np.isnan(rewards), np.nan, 0.5)
    target = np.array([[0.0, 1.0], [1.0, 0.0], [0.0, 1.0]])
    result = estimate(prompt_terms(rewards, propensity, target, np.array([[0.9, 0.2], [0.8, 0.3], [0.7, 0.1]])))
    assert result["ips"] is None and result["snips"] is None
    assert result["dr"]["low"] < result["dr"]["value"] < result["dr"]["high"]


def test_a_log_without_any_outcome_is_refused():
    nothing = np.full((3, 2), np.nan)
    with pytest.raises(RecrouteError, match="holds no outcome"):
        prompt_terms(nothing, nothing, np.array([[1.0, 0.0]] * 3), np.full((3, 2), 0.5))


def test_float32_propensities_policy_and_scores_give_the_float64_estimates():
    """A log stores float32 outcomes (graded, not only 0/1) and propensities, and a router gives float32
    policies and scores: the per-prompt terms and estimates are those of the same numbers in float64, not
    moved by float32 arithmetic (an outcome squared in float32 moved IPS's modelled variance by 2e-9)."""
    rng = np.random.default_rng(2)
    n, m = 200, 4
    chosen = np.eye(m, dtype=bool)[rng.integers(0, m, n)]
    rewards = np.where(chosen, rng.random((n, m)), np.nan).astype(np.float32)
    propensity = np.where(chosen, np.float32(1 / 3) * np.array([0.3, 0.6, 0.9, 1.2]), np.nan).astype(np.float32)
    target, scores = rng.dirichlet(np.ones(m), n).astype(np.float32), rng.random((n, m)).astype(np.float32)
    single_terms = prompt_terms(rewards, propensity, target, scores)
    double_terms = prompt_terms(*(x.astype(np.float64) for x in (rewards, propensity, target, scores)))
    for key, value in double_terms.items():
        np.testing.assert_allclose(single_terms[key], value, rtol=1e-14, atol=0, err_msg=key)
    single, double = estimate(single_terms), estimate(double_terms)
    for name in ("ips", "snips", "dr"):
        for key in ("value", "low", "high"):
            assert single[name][key] == pytest.approx(double[name][key], abs=1e-12), (name, key)


@pytest.mark.parametrize("bad", [0.0, -0.2, 1.5])
def test_records_with_a_propensity_outside_zero_one_are_refused(bad):
    with pytest.raises(RecrouteError, match=r"1 logged records have a propensity outside \(0, 1\]"):
        prompt_terms(np.array([[1.0, np.nan], [0.0, np.nan]]), np.array([[bad, np.nan], [0.5, np.nan]]),
                     np.array([[1.0, 0.0], [1.0, 0.0]]))


def test_records_without_a_propensity_are_refused():
    with pytest.raises(RecrouteError, match="1 logged records have no propensity"):
        prompt_terms(np.array([[1.0, np.nan]]), np.array([[np.nan, np.nan]]), np.array([[1.0, 0.0]]))


# -- 4. prompts known by id -------------------------------------------------------------------------
@pytest.fixture(scope="module")
def textless():
    data, _ = synthetic(300, 12, seed=2)
    return replace(data, embeddings=None)


@pytest.mark.parametrize("name", ["als", "bpr"])
def test_a_warm_prompt_routes_by_its_learned_factors(textless, name):
    router = make_router(name, factors=8, seed=0).fit(textless)
    ids = textless.prompt_ids[[5, 17, 42]]
    scores = router.score(Queries(ids=ids))
    rows = [5, 17, 42]
    np.testing.assert_allclose(scores, router.warm_factors_[rows] @ router.llm_factors_.T + router.llm_bias_,
                               rtol=1e-5, atol=1e-5)
    np.testing.assert_array_equal(router.route(Queries(ids=ids)), np.argmax(scores, axis=1))
    with pytest.raises(RecrouteError, match="1 prompt\\(s\\) are new to it, e.g. 'new'"):
        router.score(Queries(ids=np.array(["p005", "new"])))


def test_a_router_that_needs_text_says_so_in_one_line(textless):
    with pytest.raises(RecrouteError, match="LinearRouter needs prompt embeddings to fit"):
        make_router("linear").fit(textless)


# -- 5. a new LLM's benchmark score -----------------------------------------------------------------
def _linear_llms(n=1500, m=40, noise=0.1, seed=0):
    """Scores a_m + b_m·e_p + noise: prompts of varying ease e_p, LLMs of varying level a_m and slope b_m."""
    rng = np.random.default_rng(seed)
    ease = rng.normal(0, 1, n)
    scores = rng.normal(0.5, 0.1, m) + rng.normal(0.2, 0.05, m) * ease[:, None] + rng.normal(0, noise, (n, m))
    return RoutingData(scores=scores.astype(np.float32), prompt_ids=[f"p{i}" for i in range(n)],
                       models=[f"m{j}" for j in range(m)], source="linear")


def test_the_estimate_beats_the_plain_mean_and_its_interval_covers_when_prompts_differ_in_ease():
    """30 training LLMs teach each prompt's ease; 10 new LLMs give 30 outcomes each, 20 draws: the estimate's
    mean absolute error is under half the plain mean's (ease explains ~80% of an outcome's variance, so the
    regression estimator alone should reach about √0.2 ≈ 0.45), and the 95% interval covers in 88%–99%."""
    data = _linear_llms()
    router = make_router("als", factors=4, iterations=3, seed=0).fit(data.subset(models=np.arange(30)))
    rng = np.random.default_rng(1)
    ours, plain, hits = [], [], 0
    for h in range(30, 40):
        truth = data.scores[:, h].mean()
        for _ in range(20):
            rows = rng.choice(data.n_prompts, 30, replace=False)
            result = benchmark_estimate(router, data.prompt_ids[rows], data.scores[rows, h])
            assert result["n_observed"] == 30 and result["low"] < result["estimate"] < result["high"]
            ours.append(abs(result["estimate"] - truth))
            plain.append(abs(data.scores[rows, h].mean() - truth))
            hits += result["low"] <= truth <= result["high"]
    assert np.mean(ours) < 0.55 * np.mean(plain)
    assert 0.88 <= hits / 200 <= 0.99


def test_the_estimate_on_01_outcomes_leans_on_the_training_llms_and_covers_the_truth():
    data, _ = synthetic(800, 25, seed=4)
    router = make_router("bpr", factors=8, seed=0).fit(replace(data.subset(models=np.arange(20)), embeddings=None))
    rng = np.random.default_rng(0)
    hits, ours, plain = 0, [], []
    for h in range(20, 25):
        truth = data.scores[:, h].mean()
        for _ in range(20):
            rows = rng.choice(800, 10, replace=False)
            result = benchmark_estimate(router, data.prompt_ids[rows], data.scores[rows, h])
            hits += result["low"] <= truth <= result["high"]
            ours.append(abs(result["estimate"] - truth))
            plain.append(abs(data.scores[rows, h].mean() - truth))
    assert np.mean(ours) < 0.85 * np.mean(plain) and hits >= 85  # of 100
    everything = benchmark_estimate(router, data.prompt_ids, data.scores[:, 20])
    assert everything == {"n_observed": 800, "estimate": pytest.approx(data.scores[:, 20].mean(), abs=1e-9),
                          "low": everything["estimate"], "high": everything["estimate"]}  # all known: no prediction


def test_the_router_keeps_the_prior_that_the_training_llms_imply():
    """On noiseless a_m + b_m·e_p scores the prior's mean is the LLMs' mean score and relative slope (the
    covariate is the prompt's mean score, centred: e_p's deviation times the mean b), with their spread as
    its variances (times 1 + 1/20 for a new draw), and its noise is nil."""
    rng = np.random.default_rng(0)
    ease, level, slope = rng.normal(0, 1, 500), rng.normal(0.5, 0.1, 20), rng.normal(0.2, 0.05, 20)
    data = RoutingData(scores=(level + slope * ease[:, None]).astype(np.float32),
                       prompt_ids=[f"p{i}" for i in range(500)], models=[f"m{j}" for j in range(20)])
    router = make_router("als", factors=2, iterations=2).fit(data)
    mean_score, relative_slope = level + slope * ease.mean(), slope / slope.mean()
    np.testing.assert_allclose(router.warm_covariates_[:, 1], slope.mean() * (ease - ease.mean()), atol=1e-5)
    np.testing.assert_allclose(router.benchmark_mean_[:2], [mean_score.mean(), 1.0], atol=1e-5)
    np.testing.assert_allclose(np.diag(router.benchmark_cov_)[:2],
                               [mean_score.var(ddof=1) * 21 / 20, relative_slope.var(ddof=1) * 21 / 20], rtol=1e-3)
    assert router.benchmark_noise_[0] < 1e-8


def test_an_estimate_needs_answers_to_the_routers_own_prompts_and_a_summary(textless):
    router = make_router("als", factors=4).fit(textless)
    with pytest.raises(RecrouteError, match="not among the router's training prompts, e.g. 'elsewhere'"):
        benchmark_estimate(router, ["p001", "elsewhere"], [1.0, 0.0])
    with pytest.raises(RecrouteError, match="prompt 'p001' has more than one outcome"):
        benchmark_estimate(router, ["p001", "p001"], [1.0, 0.0])
    two = make_router("als", factors=2).fit(textless.subset(models=[0, 1]))
    with pytest.raises(RecrouteError, match="fitted on fewer than 3 LLMs"):
        benchmark_estimate(two, ["p001"], [1.0])


# -- the commands ---------------------------------------------------------------------------------------
def _cli(*args):
    return CliRunner().invoke(main, list(map(str, args)))


def test_simulate_ope_and_estimate_from_the_command_line(tmp_path, textless):
    dense = write_long(textless.subset(models=np.arange(10)), tmp_path / "dense.jsonl")
    result = _cli("fit", "--data", dense, "--router", "als", "--param", "factors=8", "--out", tmp_path / "r")
    assert result.exit_code == 0, result.output
    result = _cli("simulate-logs", "--data", dense, "--policy", "uniform", "--per-prompt", 1, "--seed", 1,
                  "--out", tmp_path / "log.jsonl")
    assert result.exit_code == 0, result.output
    log = load_long(tmp_path / "log.jsonl")
    np.testing.assert_allclose(log.propensity[log.observed], 0.1, rtol=1e-6)
    result = _cli("ope", "--logs", tmp_path / "log.jsonl", "--router", tmp_path / "r", "--json", tmp_path / "o.json")
    assert result.exit_code == 0, result.output
    saved = json.loads((tmp_path / "o.json").read_text())
    assert set(saved) == {"ips", "snips", "dr", "n"} and saved["n"] == 300
    assert all(saved[k]["low"] <= saved[k]["value"] <= saved[k]["high"] for k in ("ips", "snips", "dr"))
    new = textless.subset(prompts=np.arange(40), models=[10])
    result = _cli("estimate", tmp_path / "r", "--data", write_long(new, tmp_path / "new.jsonl"), "--json")
    assert result.exit_code == 0, result.output
    line = json.loads(result.output)
    assert set(line) == {"llm", "n_observed", "estimate", "low", "high"} and line["n_observed"] == 40


@pytest.mark.parametrize("args, message", [
    (["simulate-logs", "--policy", "softmax:x", "--per-prompt", 1], "positive temperature"),
    (["simulate-logs", "--policy", "greedy", "--per-prompt", 1], "unknown logging policy"),
    (["simulate-logs", "--policy", "uniform", "--per-prompt", 11], "cannot log 11"),
])
def test_bad_simulate_logs_input_is_one_line_and_writes_nothing(tmp_path, textless, args, message):
    dense = write_long(textless.subset(models=np.arange(10)), tmp_path / "dense.jsonl")
    result = _cli(*args[:1], "--data", dense, *args[1:], "--out", tmp_path / "log.jsonl")
    assert result.exit_code == 2 and message in result.output and len(result.output.strip().splitlines()) == 1
    assert not (tmp_path / "log.jsonl").exists()


def test_simulate_logs_skips_prompts_lacking_an_outcome_and_says_how_many(tmp_path, textless):
    dense = textless.subset(prompts=np.arange(30), models=np.arange(4))
    scores = dense.scores.copy()
    scores[[2, 5, 11], [0, 3, 1]] = np.nan
    holey = write_long(replace(dense, scores=scores), tmp_path / "holey.jsonl")
    result = _cli("simulate-logs", "--data", holey, "--policy", "uniform", "--per-prompt", 2, "--out",
                  tmp_path / "log.jsonl")
    assert result.exit_code == 0, result.output
    assert result.stderr.strip() == "skipped 3 of 30 prompts that lack an outcome of some LLM in the pool"
    log = load_long(tmp_path / "log.jsonl")
    assert sorted(log.prompt_ids.tolist()) == sorted(set(dense.prompt_ids.tolist()) - {"p002", "p005", "p011"})
    assert (log.observed.sum(axis=1) == 2).all()
    scores[:, 2] = np.nan  # LLM 2 answered nothing: no prompt is complete
    scores[0, 2] = 1.0
    scores[0, 0] = np.nan
    none = write_long(replace(dense, scores=scores), tmp_path / "none.jsonl")
    result = _cli("simulate-logs", "--data", none, "--policy", "uniform", "--out", tmp_path / "none-log.jsonl")
    assert result.exit_code == 2 and len(result.output.strip().splitlines()) == 1
    assert "no prompt has an outcome from each of the 4 LLMs" in result.output
    assert not (tmp_path / "none-log.jsonl").exists()
