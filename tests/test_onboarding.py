"""Onboarding a new LLM into a fitted latent-factor router, and retiring one, without refitting.

A synthetic world with known low-rank structure (the approach of test_latent.py):
900 prompts with hidden skill vectors u_p ~ N(0, I_3) and 16-d content
embeddings e_p = A·u_p + noise; 11 LLMs with unit skill vectors v_m and
abilities b_m; the hidden quality of LLM m on prompt p is q = <u_p, v_m> + b_m
and the outcome is 1[q + 0.5·noise > 0]. Ten LLMs are trained on; the eleventh,
the *newcomer*, is held out of training and folded in afterwards from its
outcomes on n training prompts. Its vector is made orthogonal to the mean of
the others, so "copy the average LLM" (the fold-in's prior) knows nothing of
it, and it is no near-copy of any trained LLM. 300 prompts are never trained
on; on them the newcomer's scores are judged against its TRUE hidden quality
and its true outcomes.

Thresholds: seeds 0..5 of this world were tried; seed 1 is the one tested. Over
3-4 random draws of the revealed prompts, at n = 100 every router's Spearman
correlation with the hidden quality was .96-.99 (with the hidden quality of the
newcomer's nearest trained LLM: .83) and its AUC .92-.93; at n = 10 the mean
AUC was .86-.88, at n = 200 .93. Chance is 0 and .5. Seeds 2-4 draw a
newcomer too like the average LLM or a trained one (the world check below
fails, and with it the tests that need an unfamiliar newcomer); seed 5 passes
every test; seed 0 passes all but bilinear, where the undamped Newton fold-in
diverges (see ``test_a_specialist_opposite_to_the_average_llm_is_folded_in``).
"""
from __future__ import annotations

import copy

import numpy as np
import pytest
from scipy.special import expit
from scipy.stats import rankdata, spearmanr

from recroute.cost import CostModel
from recroute.data import RoutingData
from recroute.errors import RecrouteError
from recroute.routers import Queries, make_router
from recroute.routers.latent import LatentFactorRouter, _platt

N_PROMPTS, N_TRAINED, DIM, RANK, N_HELD_OUT = 900, 10, 16, 3, 300
MODELS = [f"m{j}" for j in range(N_TRAINED)]
NEW = "newcomer"

CASES = {
    "als": ("als", dict(factors=8, cold_start="ridge")),
    "bpr": ("bpr", dict(factors=8, iterations=50, cold_start="ridge")),
    "lightfm": ("lightfm", dict(factors=8, loss="logistic", epochs=20)),
    "bilinear": ("bilinear", dict(factors=8, epochs=200)),
}
NAMES = list(CASES)


def auc(scores: np.ndarray, labels: np.ndarray) -> float:
    """Area under the ROC curve (Mann-Whitney U with mid-ranks), computed independently of recroute."""
    labels = np.asarray(labels, dtype=bool)
    ranks = rankdata(scores)
    n_pos, n_neg = labels.sum(), (~labels).sum()
    return float((ranks[labels].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


class World:
    """Prompts, LLMs, hidden qualities and outcomes; the newcomer is column N_TRAINED."""

    def __init__(self, seed: int = 1):
        rng = np.random.default_rng(seed)
        skills = rng.normal(size=(N_PROMPTS, RANK))
        mixing = rng.normal(size=(RANK, DIM))
        self.embeddings = (skills @ mixing + 0.3 * rng.normal(size=(N_PROMPTS, DIM))).astype(np.float32)
        vectors = rng.normal(size=(N_TRAINED + 1, RANK))
        mean = vectors[:N_TRAINED].mean(axis=0)
        vectors[N_TRAINED] -= (vectors[N_TRAINED] @ mean) / (mean @ mean) * mean  # unlike the average LLM
        vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
        ability = rng.uniform(-0.5, 0.5, size=N_TRAINED + 1)
        ability[N_TRAINED] = 0.0
        self.quality = skills @ vectors.T + ability
        self.outcomes = (self.quality + 0.5 * rng.normal(size=self.quality.shape) > 0).astype(np.float32)
        n_train = N_PROMPTS - N_HELD_OUT
        self.train = RoutingData(scores=self.outcomes[:n_train, :N_TRAINED],
                                 prompt_ids=np.array([f"p{i}" for i in range(n_train)]), models=np.array(MODELS),
                                 embeddings=self.embeddings[:n_train], source="synthetic-onboarding")
        self.n_train = n_train
        self.test_embeddings = self.embeddings[n_train:]
        self.test_quality = self.quality[n_train:]
        self.test_outcomes = self.outcomes[n_train:]
        self.queries = Queries(embeddings=self.test_embeddings)

    def revealed(self, n: int, draw: int = 0) -> tuple[np.ndarray, np.ndarray]:
        """The newcomer's embeddings and outcomes on n random training prompts."""
        rows = np.sort(np.random.default_rng([n, draw]).choice(self.n_train, n, replace=False))
        return self.embeddings[rows], self.outcomes[rows, N_TRAINED]

    def held_out(self, prompts: slice = slice(None)) -> RoutingData:
        """Held-out prompts with the trained LLMs' outcomes (a validation set for rebalancing)."""
        outcomes = self.test_outcomes[prompts, :N_TRAINED]
        return RoutingData(scores=outcomes, prompt_ids=np.array([f"h{i}" for i in range(len(outcomes))]),
                           models=np.array(MODELS), embeddings=self.test_embeddings[prompts], source="held-out")


@pytest.fixture(scope="module")
def world() -> World:
    return World()


@pytest.fixture(scope="module")
def fitted(world):
    """Each router fitted once on the ten trained LLMs; tests change deep copies only."""
    cache = {}

    def get(name: str) -> LatentFactorRouter:
        if name not in cache:
            spec, params = CASES[name]
            cache[name] = make_router(spec, **params).fit(world.train)
        return cache[name]

    return get


def onboarded(router: LatentFactorRouter, world: World, n: int, draw: int = 0) -> LatentFactorRouter:
    """A copy of ``router`` with the newcomer folded in from n revealed outcomes."""
    router = copy.deepcopy(router)
    return router.add_llm(NEW, *world.revealed(n, draw))


def newcomer_scores(router, world, n, draw=0) -> np.ndarray:
    return onboarded(router, world, n, draw).score(world.queries, [NEW])[:, 0]


def snapshot(router: LatentFactorRouter, queries: Queries) -> dict:
    """Everything a caller can observe of a router's routing: LLMs, index, scores, rankings."""
    pool = router.models_[[3, 0, 1]].tolist()
    return {
        "models": router.models_.tolist(), "index names": router.index_.names_.tolist(),
        "index vectors": router.index_.vectors_.copy(), "score": router.score(queries),
        "rank": router.rank(queries, k=3), "pool rank": router.rank(queries, models=pool, k=2),
        "offsets": None if getattr(router, "offsets_", None) is None else router.offsets_.copy(),
    }


def assert_same(before: dict, after: dict) -> None:
    assert after["models"] == before["models"]
    assert after["index names"] == before["index names"]
    np.testing.assert_array_equal(after["index vectors"], before["index vectors"])
    np.testing.assert_array_equal(after["score"], before["score"])
    for key in ("rank", "pool rank"):
        np.testing.assert_array_equal(after[key][0], before[key][0])
        np.testing.assert_array_equal(after[key][1], before[key][1])
    if before["offsets"] is None:
        assert after["offsets"] is None
    else:
        np.testing.assert_array_equal(after["offsets"], before["offsets"])


# -- the synthetic world itself -----------------------------------------------------------------
def test_the_newcomer_is_neither_the_average_llm_nor_a_copy_of_one(world):
    truth = world.test_quality
    against_mean = np.corrcoef(truth[:, N_TRAINED], truth[:, :N_TRAINED].mean(axis=1))[0, 1]
    against_each = [abs(spearmanr(truth[:, N_TRAINED], truth[:, j])[0]) for j in range(N_TRAINED)]
    assert abs(against_mean) < 0.3
    assert max(against_each) < 0.9
    assert 0.3 < world.outcomes[:, N_TRAINED].mean() < 0.7  # neither always right nor always wrong


# -- (a) the fold-in learns the newcomer's hidden quality ------------------------------------------
@pytest.mark.parametrize("name", NAMES)
def test_a_folded_in_llm_scores_track_its_hidden_quality(world, fitted, name):
    router = fitted(name)
    truth = world.test_quality
    for draw in range(3):
        scores = newcomer_scores(router, world, 100, draw)
        own = spearmanr(scores, truth[:, N_TRAINED])[0]
        nearest_other = max(spearmanr(scores, truth[:, j])[0] for j in range(N_TRAINED))
        assert own > 0.85, (name, draw, own)
        assert np.corrcoef(scores, truth[:, N_TRAINED])[0, 1] > 0.8
        # It learned the newcomer, not the trained LLM it most resembles.
        assert own > nearest_other + 0.05, (name, draw, own, nearest_other)
        assert auc(scores, world.test_outcomes[:, N_TRAINED]) > 0.8


# -- (b) more revealed outcomes, a better fold-in -------------------------------------------------
@pytest.mark.parametrize("name", NAMES)
def test_more_revealed_outcomes_give_a_better_fold_in(world, fitted, name):
    router = fitted(name)
    labels = world.test_outcomes[:, N_TRAINED]
    mean_auc = {n: np.mean([auc(newcomer_scores(router, world, n, draw), labels) for draw in range(4)])
                for n in (10, 200)}
    assert mean_auc[10] > 0.6, mean_auc  # even ten outcomes beat chance
    assert mean_auc[200] > 0.85, mean_auc
    assert mean_auc[200] >= mean_auc[10] + 0.02, mean_auc


# -- (c) add then remove is a no-op ----------------------------------------------------------------
@pytest.mark.parametrize("name", NAMES)
def test_add_then_remove_restores_the_router_exactly(world, fitted, name):
    router = copy.deepcopy(fitted(name))
    before = snapshot(router, world.queries)
    state = {k: np.array(v) for k, v in router.state().items()}
    router.add_llm(NEW, *world.revealed(100))
    assert router.models_.tolist() == MODELS + [NEW]
    assert router.index_.names_.tolist() == MODELS + [NEW]
    assert router.llm_factors_.shape[0] == router.llm_bias_.shape[0] == N_TRAINED + 1
    np.testing.assert_array_equal(router.llm_factors_[:N_TRAINED], state["llm_factors_"])  # the others untouched
    np.testing.assert_array_equal(router.score(world.queries, MODELS), before["score"])
    router.remove_llm(NEW)
    assert_same(before, snapshot(router, world.queries))
    after = router.state()
    assert sorted(after) == sorted(state)
    for key in state:
        np.testing.assert_array_equal(after[key], state[key], err_msg=key)


def test_removing_a_trained_llm_drops_only_it(world, fitted):
    router = copy.deepcopy(fitted("bilinear"))
    full = router.score(world.queries)
    router.remove_llm("m4")
    kept = [m for m in MODELS if m != "m4"]
    assert router.models_.tolist() == kept and router.index_.names_.tolist() == kept
    # Recomputed through a 9-column matmul instead of a 10-column one: BLAS kernels (OpenBLAS's Haswell
    # sgemm, for one) may differ in the last bits of float32, so a few ulps of tolerance, no more.
    np.testing.assert_allclose(router.score(world.queries), full[:, [MODELS.index(m) for m in kept]],
                               rtol=1e-5, atol=1e-6)
    positions, _ = router.rank(world.queries, k=len(kept))
    # Positions stay exact: the two closest scores of any row here are 1.1e-4 apart, far above that rounding.
    np.testing.assert_array_equal(positions, np.argsort(-full[:, [MODELS.index(m) for m in kept]], axis=1,
                                                        kind="stable"))
    with pytest.raises(RecrouteError, match="unknown LLM 'm4'"):
        router.score(world.queries, ["m4"])


# -- (d) bad input -------------------------------------------------------------------------------
def _bad_adds(world):
    embeddings, outcomes = world.revealed(100)
    nan = outcomes.astype(np.float64).copy()
    nan[7] = np.nan
    inf = outcomes.astype(np.float64).copy()
    inf[3] = np.inf
    return {
        "name that exists": (("m3", embeddings, outcomes), ["already routes to 'm3'", "remove it first"]),
        "fewer outcomes than prompts": ((NEW, embeddings, outcomes[:99]),
                                        ["one outcome per prompt", "(99,) outcomes for 100 prompts"]),
        "more outcomes than prompts": ((NEW, embeddings[:50], outcomes), ["(100,) outcomes for 50 prompts"]),
        "no outcomes": ((NEW, embeddings[:0], outcomes[:0]), ["one outcome per prompt", "(0,) outcomes"]),
        "2-D outcomes": ((NEW, embeddings, outcomes[:, None]), ["(100, 1) outcomes"]),
        "NaN outcome": ((NEW, embeddings, nan), ["outcomes of 'newcomer' contain NaN or infinite"]),
        "infinite outcome": ((NEW, embeddings, inf), ["contain NaN or infinite"]),
    }


@pytest.mark.parametrize("name", ["als", "bilinear"])
@pytest.mark.parametrize("case", ["name that exists", "fewer outcomes than prompts", "more outcomes than prompts",
                                  "no outcomes", "2-D outcomes", "NaN outcome", "infinite outcome"])
def test_a_bad_add_raises_and_changes_nothing(world, fitted, name, case):
    router = copy.deepcopy(fitted(name))
    before = snapshot(router, world.queries)
    args, fragments = _bad_adds(world)[case]
    with pytest.raises(RecrouteError) as info:
        router.add_llm(*args)
    for fragment in fragments:
        assert fragment in str(info.value), (fragment, str(info.value))
    assert_same(before, snapshot(router, world.queries))


def test_adding_to_a_router_without_a_calibration_asks_for_a_refit(world, fitted):
    router = copy.deepcopy(fitted("bilinear"))
    del router.calibration_  # as a router saved by an older recroute loads
    with pytest.raises(RecrouteError, match="without a score calibration; refit it"):
        router.add_llm(NEW, *world.revealed(100))
    assert router.models_.tolist() == MODELS


@pytest.mark.parametrize("name", ["als", "bilinear"])
def test_removing_an_unknown_llm_raises_naming_what_the_router_knows(world, fitted, name):
    router = copy.deepcopy(fitted(name))
    before = snapshot(router, world.queries)
    with pytest.raises(RecrouteError) as info:
        router.remove_llm("gpt-9")
    assert "does not route to 'gpt-9'" in str(info.value)
    assert "it knows m0, m1, m2, m3, m4 and 5 more" in str(info.value)
    assert_same(before, snapshot(router, world.queries))


def test_removing_the_last_llm_is_refused(world, fitted):
    router = copy.deepcopy(fitted("als"))
    for name in MODELS[:-1]:
        router.remove_llm(name)
    assert router.models_.tolist() == ["m9"]
    scores = router.score(world.queries)
    with pytest.raises(RecrouteError, match="cannot remove 'm9': it is the router's only LLM"):
        router.remove_llm("m9")
    assert router.models_.tolist() == ["m9"] and router.index_.names_.tolist() == ["m9"]
    np.testing.assert_array_equal(router.score(world.queries), scores)
    positions, _ = router.rank(world.queries, k=3)
    assert positions.shape == (N_HELD_OUT, 1) and (positions == 0).all()


@pytest.mark.parametrize("name", ["als", "bilinear"])
def test_a_failed_add_with_non_finite_embeddings_changes_nothing(world, fitted, name):
    router = copy.deepcopy(fitted(name))
    embeddings, outcomes = world.revealed(20)
    embeddings = embeddings.copy()
    embeddings[2, 5] = np.nan
    with pytest.raises(RecrouteError):
        router.add_llm(NEW, embeddings, outcomes)
    assert router.models_.tolist() == MODELS
    assert router.index_.names_.tolist() == router.models_.tolist()


@pytest.mark.parametrize("name", ["als", "bilinear"])
def test_embeddings_of_another_width_are_a_clear_error(world, fitted, name):
    router = copy.deepcopy(fitted(name))
    embeddings, outcomes = world.revealed(20)
    with pytest.raises(RecrouteError, match="16"):
        router.add_llm(NEW, embeddings[:, :12], outcomes)


# -- (e) rebalancing offsets follow the pool ----------------------------------------------------------
@pytest.mark.parametrize("name", ["als", "lightfm"])
def test_rebalancing_offsets_are_extended_and_shrunk_with_the_pool(world, fitted, name):
    router = copy.deepcopy(fitted(name)).rebalance(world.held_out(slice(0, 150)))
    offsets = router.offsets_.copy()
    assert offsets.shape == (N_TRAINED,) and np.any(offsets != 0)
    queries = Queries(embeddings=world.test_embeddings[150:])
    scores = router.score(queries)

    router.add_llm(NEW, *world.revealed(100))
    assert router.offsets_.dtype == np.float32
    np.testing.assert_array_equal(router.offsets_, np.r_[offsets, 0])  # the newcomer starts unrebalanced
    np.testing.assert_array_equal(router.score(queries, MODELS), scores)
    items = router.item_vectors()
    np.testing.assert_array_equal(items[:, -1], router.llm_bias_ + router.offsets_)
    np.testing.assert_array_equal(router.index_.vectors_, items)  # the index ranks with the offsets too
    all_scores = router.score(queries)
    positions, ranked = router.rank(queries, k=4)
    np.testing.assert_allclose(ranked, np.take_along_axis(all_scores, positions, axis=1), atol=1e-5)
    assert (positions == np.argsort(-all_scores, axis=1, kind="stable")[:, :4]).mean() > 0.99

    router.remove_llm("m2")
    kept = [m for m in MODELS if m != "m2"]
    np.testing.assert_array_equal(router.offsets_, np.r_[np.delete(offsets, 2), 0])
    # The offsets are stored arrays (exact above); the scores are recomputed through a 9-column matmul instead
    # of the 10-column one: BLAS kernels may differ in the last bits of float32 (OpenBLAS's Haswell sgemm moves
    # one score of 1,350 by 2.4e-7), so a few ulps of tolerance, no more.
    np.testing.assert_allclose(router.score(queries, kept), scores[:, [MODELS.index(m) for m in kept]],
                               rtol=1e-5, atol=1e-6)
    router.remove_llm(NEW)
    np.testing.assert_array_equal(router.offsets_, np.delete(offsets, 2))
    assert router.models_.tolist() == router.index_.names_.tolist() == kept


# -- (f) routing with the newcomer -----------------------------------------------------------------
@pytest.mark.parametrize("name", NAMES)
def test_the_newcomer_competes_in_a_restricted_pool(world, fitted, name):
    router = onboarded(fitted(name), world, 200)
    # Its rival: the trained LLM whose hidden quality differs most often from the newcomer's by a clear margin.
    truth = world.test_quality
    rival = MODELS[int(np.argmax([np.mean(np.abs(truth[:, N_TRAINED] - truth[:, j]) > 1) for j in range(N_TRAINED)]))]
    pool = [NEW, rival]
    positions, scores = router.rank(world.queries, models=pool, k=2)
    pool_scores = router.score(world.queries, pool)
    assert positions.shape == (N_HELD_OUT, 2) and set(np.unique(positions)) == {0, 1}
    np.testing.assert_array_equal(positions, np.argsort(-pool_scores, axis=1, kind="stable"))
    np.testing.assert_allclose(scores, np.take_along_axis(pool_scores, positions, axis=1), atol=1e-5)
    # Known answer: where the newcomer is clearly better it comes first, and where clearly worse, second.
    gap = truth[:, N_TRAINED] - truth[:, MODELS.index(rival)]
    assert (gap > 1).sum() >= 20 and (gap < -1).sum() >= 20
    assert (positions[gap > 1, 0] == 0).mean() > 0.85, name
    assert (positions[gap < -1, 0] == 1).mean() > 0.85, name


@pytest.mark.parametrize("name", NAMES)
def test_after_adding_faiss_rank_agrees_with_score(world, fitted, name):
    router = onboarded(fitted(name), world, 100)
    scores = router.score(world.queries)
    assert scores.shape == (N_HELD_OUT, N_TRAINED + 1)
    brute = router.query_vectors(world.test_embeddings) @ router.item_vectors().T
    np.testing.assert_allclose(brute, scores, atol=1e-5)
    positions, ranked = router.rank(world.queries)
    np.testing.assert_array_equal(positions, np.argsort(-brute, axis=1, kind="stable"))
    # Force a real FAISS search: the appended vector must be in the FAISS index, not only in vectors_.
    assert router.index_.index_.ntotal == N_TRAINED + 1
    router.index_.exact_pool_limit = 0
    positions, ranked = router.rank(world.queries, k=3)
    np.testing.assert_allclose(ranked, np.take_along_axis(brute, positions, axis=1), atol=1e-5)
    np.testing.assert_allclose(ranked, -np.sort(-brute, axis=1)[:, :3], atol=1e-5)
    positions, _ = router.rank(world.queries, models=[NEW, "m1", "m7"], k=1)
    np.testing.assert_array_equal(positions[:, 0], np.argmax(router.score(world.queries, [NEW, "m1", "m7"]), axis=1))



# -- calibration and scale ---------------------------------------------------------------------
@pytest.mark.parametrize("name", NAMES)
def test_the_fitted_calibration_maps_scores_to_held_out_accuracy(world, fitted, name):
    router = fitted(name)
    a, c = (float(v) for v in router.calibration_)
    assert a > 0  # a higher score means a better chance of a good answer
    probability = expit(a * router.score(world.queries) + c)
    assert abs(probability.mean() - world.test_outcomes[:, :N_TRAINED].mean()) < 0.05
    # and it ranks cells: AUC of the calibrated probabilities over all held-out cells
    assert auc(probability.ravel(), world.test_outcomes[:, :N_TRAINED].ravel()) > 0.85


@pytest.mark.parametrize("name", ["als", "bpr", "lightfm", "bilinear"])
def test_an_llm_right_everywhere_ranks_high_and_one_wrong_everywhere_low(world, fitted, name):
    router = copy.deepcopy(fitted(name))
    embeddings, _ = world.revealed(100)
    router.add_llm("always-right", embeddings, np.ones(100))
    router.add_llm("always-wrong", embeddings, np.zeros(100))
    a, c = (float(v) for v in router.calibration_)
    p = expit(a * router.score(world.queries, ["always-right", "always-wrong"]) + c)
    positions, _ = router.rank(world.queries)
    names = router.models_[positions]
    place = {who: np.argmax(names == who, axis=1) for who in ("always-right", "always-wrong")}
    # With a prior worth 10 prompts, 100 of 100 right answers leave P(good) near 0.97; 0 of 100 near 0.03.
    assert p[:, 0].mean() > 0.9 and p[:, 1].mean() < 0.1, p.mean(axis=0)
    assert (place["always-right"] < 3).mean() > 0.5  # in the top 3 of 12 for most prompts
    assert (place["always-wrong"] >= len(router.models_) - 3).mean() > 0.5  # and in the bottom 3


def _specialist(spec: str, seed: int):
    """A router whose LLMs all sit opposite the specialist, and the specialist's outcomes.

    Prompt factors are rank 3 in 8 dimensions with a spread like a bilinear router's (|x| ~ 7);
    the trained LLMs all point at -0.6 times the specialist's direction, so the fold-in's prior
    (the mean LLM) ranks prompts backwards. The outcomes are 1[<f, w> + 2·noise > 0].
    """
    rng = np.random.default_rng(seed)
    k, rank = 8, 3
    basis = np.linalg.qr(rng.normal(size=(k, rank)))[0].T
    spread = 2.5 * np.sqrt(k / rank)
    train_factors = rng.normal(size=(200, rank)) * spread @ basis
    test_factors = rng.normal(size=(500, rank)) * spread @ basis
    direction = rng.normal(size=rank)
    w = 0.9 * direction / np.linalg.norm(direction) @ basis
    router = make_router(spec, factors=k)
    router.calibration_ = np.array([1.0, 0.0], dtype=np.float32)
    router.llm_factors_ = (np.tile(-0.6 * w, (10, 1)) + 0.01 * rng.normal(size=(10, k))).astype(np.float32)
    router.llm_bias_ = np.zeros(10, dtype=np.float32)
    good = (train_factors @ w + 2.0 * rng.normal(size=200) > 0).astype(np.float64)
    return router, train_factors, good, test_factors, test_factors @ w


@pytest.mark.parametrize("spec", ["als", "bpr", "lightfm", "bilinear"])
def test_a_specialist_opposite_to_the_average_llm_is_folded_in(spec):
    """The maximum of the documented objective ranks held-out prompts with Spearman .99 here (checked
    with scipy.optimize); the ALS half-step (a linear solve) gets .90-.99."""
    for seed in range(4):
        router, factors, good, test_factors, truth = _specialist(spec, seed)
        vector, bias = router._fold_in(factors, good)
        assert np.isfinite(vector).all() and np.isfinite(bias)
        assert spearmanr(test_factors @ vector + bias, truth)[0] > 0.8, (spec, seed)


def test_als_fold_in_is_the_closed_form_item_half_step(world):
    """Hu, Koren & Volinsky's item step with the router's confidences: a good outcome weighs alpha with
    preference 1, a bad one negative_weight with preference 0; x = (Yᵀ C Y + λI)⁻¹ Yᵀ C p, no bias."""
    router = make_router("als", factors=8, cold_start="ridge", alpha=5.0, negative_weight=2.0,
                         regularization=3.0).fit(world.train)
    embeddings, outcomes = world.revealed(60)
    router.add_llm(NEW, embeddings, outcomes)
    y = router.prompt_factors(embeddings).astype(np.float64)
    confidence = np.where(outcomes == 1, 5.0, 2.0)
    expected = np.linalg.solve((y.T * confidence) @ y + 3.0 * np.eye(8), y.T @ (confidence * outcomes))
    np.testing.assert_allclose(router.llm_factors_[-1], expected, rtol=1e-3, atol=1e-5)
    assert router.llm_bias_[-1] == 0.0


def test_outcomes_are_read_as_good_from_one_half(world, fitted):
    """Continuous outcomes are thresholded at 0.5: 0.5 and 0.9 are good, 0.49 and 0 are not."""
    embeddings, outcomes = world.revealed(100)
    soft = np.where(outcomes == 1, np.where(np.arange(100) % 2, 0.5, 0.9), np.where(np.arange(100) % 2, 0.49, 0.0))
    hard = copy.deepcopy(fitted("bilinear")).add_llm(NEW, embeddings, outcomes)
    graded = copy.deepcopy(fitted("bilinear")).add_llm(NEW, embeddings, soft)
    np.testing.assert_array_equal(hard.llm_factors_[-1], graded.llm_factors_[-1])
    assert hard.llm_bias_[-1] == graded.llm_bias_[-1]


# -- the Platt curve -------------------------------------------------------------------------------
@pytest.mark.parametrize("a,c", [(1.5, -0.7), (8.0, 2.0), (0.2, 0.5), (-1.0, 0.3)])
def test_platt_recovers_a_known_curve(a, c):
    rng = np.random.default_rng(7)
    scores = (1.5 * rng.normal(size=20_000)).astype(np.float32)
    labels = (rng.random(20_000) < expit(a * scores + c)).astype(np.float32)
    fitted_a, fitted_c = _platt(scores, labels)
    assert fitted_a == pytest.approx(a, rel=0.1, abs=0.03)
    assert fitted_c == pytest.approx(c, abs=0.1)


def test_platt_ignores_unobserved_cells():
    rng = np.random.default_rng(3)
    scores = rng.normal(size=5000).astype(np.float32)
    labels = (rng.random(5000) < expit(2 * scores - 1)).astype(np.float32)
    hidden = labels.copy()
    hidden[::3] = np.nan
    keep = ~np.isnan(hidden)
    np.testing.assert_array_equal(_platt(scores, hidden), _platt(scores[keep], labels[keep]))
    assert _platt(scores, hidden)[0] == pytest.approx(2, rel=0.15)


def test_platt_on_perfectly_separable_data_is_finite_and_separates():
    scores = np.random.default_rng(0).normal(size=1000).astype(np.float32)
    labels = (scores > 0.3).astype(np.float32)
    for scale in (1.0, 1000.0):
        a, c = _platt(scale * scores, labels)
        assert np.isfinite([a, c]).all() and a > 0
        assert -c / a == pytest.approx(0.3 * scale, rel=0.05)  # the boundary sits between the classes
        assert ((expit(a * scale * scores + c) > 0.5) == (labels == 1)).all()


@pytest.mark.parametrize("case", ["all good", "all bad", "constant scores", "nothing observed"])
def test_platt_without_information_is_the_identity_curve(case):
    scores = np.linspace(-2, 2, 50).astype(np.float32)
    labels = (scores > 0).astype(np.float32)
    scores, labels = {
        "all good": (scores, np.ones(50, dtype=np.float32)),
        "all bad": (scores, np.zeros(50, dtype=np.float32)),
        "constant scores": (np.full(50, 0.7, dtype=np.float32), labels),
        "nothing observed": (scores, np.full(50, np.nan, dtype=np.float32)),
    }[case]
    np.testing.assert_array_equal(_platt(scores, labels), [1.0, 0.0])


# -- the cost model --------------------------------------------------------------------------------
def _priced(models, prices) -> CostModel:
    data = RoutingData(scores=np.zeros((1, len(models))), prompt_ids=np.array(["p"]), models=np.array(models),
                       prompts=["x"], price=np.array(prices, dtype=float), source="prices")
    return CostModel().fit(data)


TEN_TOKENS = "a" * 40


def test_cost_model_add_llm_appends_the_new_lines():
    model = _priced(["a", "b"], [[1.0, 2.0], [3.0, 4.0]])
    before = model.predict([TEN_TOKENS, "b" * 400])
    other = _priced(["c"], [[10.0, 20.0]])
    assert model.add_llm(other) is model
    assert model.models_.tolist() == ["a", "b", "c"]
    texts = [TEN_TOKENS, "b" * 400]
    np.testing.assert_array_equal(model.predict(texts, ["a", "b"]), before)
    # 10 tokens at $10/M in, 256 answer tokens at $20/M out; 100 tokens likewise
    assert model.predict(texts, ["c"])[:, 0] == pytest.approx([10 * 10e-6 + 256 * 20e-6, 100 * 10e-6 + 256 * 20e-6])
    np.testing.assert_array_equal(model.predict(texts, ["c"]), other.predict(texts))


def test_cost_model_add_llm_refuses_a_clash_and_keeps_its_lines():
    model = _priced(["a", "b"], [[1.0, 2.0], [3.0, 4.0]])
    state = {k: v.copy() for k, v in model.state().items()}
    with pytest.raises(RecrouteError, match="already prices 'b'"):
        model.add_llm(_priced(["z", "b"], [[1.0, 1.0], [9.0, 9.0]]))
    for key, value in model.state().items():
        np.testing.assert_array_equal(value, state[key])


def test_cost_model_remove_llm_drops_its_line():
    model = _priced(["a", "b", "c"], [[1.0, 2.0], [3.0, 4.0], [5.0, 6.0]])
    before = model.predict([TEN_TOKENS])
    model.remove_llm("b")
    assert model.models_.tolist() == ["a", "c"]
    np.testing.assert_array_equal(model.predict([TEN_TOKENS]), before[:, [0, 2]])
    with pytest.raises(RecrouteError, match="unknown LLM 'b'"):
        model.predict([TEN_TOKENS], ["b"])


# -- the served router -----------------------------------------------------------------------------
class StubEncoder:
    """Stands in for the text encoder: a fixed 16-d vector per text, no model (as in test_store.py)."""

    model = "stub-encoder"

    def encode(self, texts):
        return np.stack([np.random.default_rng(len(t)).normal(size=DIM) for t in texts]).astype(np.float32)


def folder_bytes(folder) -> dict:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def _save(router, folder, cost_model=None):
    from recroute.store import save_router

    return save_router(router, folder, embedding_model="stub-encoder", data_source="synthetic", embedding_dim=DIM,
                       cost_model=cost_model)


def _serve(folder):
    from recroute.serve import load_router

    served = load_router(folder)
    served.encoder = StubEncoder()
    return served


@pytest.fixture(scope="module")
def train_costs():
    """A cost model for the ten trained LLMs: $1/M input tokens, 256 answer tokens at $2/M."""
    return _priced(MODELS, [[1.0, 2.0]] * N_TRAINED)


@pytest.mark.parametrize("spec,params", [("linear", dict(epochs=5)), ("knn", dict(k=5)), ("ridge", {})])
def test_a_router_without_llm_vectors_refuses_to_add_or_remove(world, tmp_path, spec, params):
    folder = _save(make_router(spec, **params).fit(world.train), tmp_path / spec)
    served = _serve(folder)
    saved = folder_bytes(folder)
    with pytest.raises(RecrouteError) as info:
        served.add_llm(NEW, [], world.revealed(10)[1], embeddings=world.revealed(10)[0])
    message = str(info.value)
    assert message.startswith(f"{folder}: {type(served.router).__name__} has no LLM vectors to add to")
    assert "als, bpr, lightfm, bilinear" in message
    with pytest.raises(RecrouteError, match="cannot drop an LLM without refitting") as info:
        served.remove_llm("m1")
    assert str(folder) in str(info.value)
    assert served.models == MODELS
    assert folder_bytes(folder) == saved


def test_a_router_with_costs_needs_the_newcomers_costs(world, fitted, train_costs, tmp_path):
    folder = _save(fitted("bilinear"), tmp_path / "costed", cost_model=copy.deepcopy(train_costs))
    served = _serve(folder)
    saved = folder_bytes(folder)
    with pytest.raises(RecrouteError) as info:
        served.add_llm(NEW, [], world.revealed(50)[1], embeddings=world.revealed(50)[0])
    assert str(info.value) == f"{folder}: routes by cost, so adding 'newcomer' needs its costs or prices."
    assert served.models == MODELS and served.cost_model.models_.tolist() == MODELS
    assert folder_bytes(folder) == saved


def test_add_save_and_load_routes_to_the_newcomer_and_prices_it(world, fitted, train_costs, tmp_path):
    folder = _save(fitted("bilinear"), tmp_path / "router", cost_model=copy.deepcopy(train_costs))
    served = _serve(folder)
    embeddings, outcomes = world.revealed(200)
    newcomer_costs = _priced([NEW], [[0.1, 0.2]])  # ten times cheaper than the others
    assert served.add_llm(NEW, [], outcomes, cost_model=newcomer_costs, embeddings=embeddings) is served
    assert served.models == MODELS + [NEW]
    assert served.save(folder) == folder
    assert sorted(p.name for p in tmp_path.iterdir()) == [".router.lock", "router"]  # no temporary folders left

    loaded = _serve(folder)
    assert loaded.models == MODELS + [NEW] and loaded.manifest["models"] == MODELS + [NEW]
    assert loaded.manifest["embedding_dim"] == DIM and loaded.manifest["embedding_model"] == "stub-encoder"
    np.testing.assert_array_equal(loaded.router.score(world.queries), served.router.score(world.queries))
    # the newcomer is priced by its own line, the others as before
    costs = loaded.cost_model.predict([TEN_TOKENS])[0]
    assert costs[-1] == pytest.approx(10 * 0.1e-6 + 256 * 0.2e-6)
    assert costs[:-1] == pytest.approx([10 * 1e-6 + 256 * 2e-6] * N_TRAINED)
    # a huge cost weight routes everything to the cheap newcomer; without it, its quality decides
    for ranking in loaded.rank(["What is 2 + 2?", TEN_TOKENS], k=2, cost_weight=1e6):
        assert ranking[0]["llm"] == NEW and ranking[0]["cost"] == pytest.approx(costs[-1], rel=0.5)
    texts = ["x" * (i + 1) for i in range(40)]
    scores = loaded.router.score(Queries(embeddings=StubEncoder().encode(texts)), [NEW, "m0"])
    for text_scores, ranking in zip(scores, loaded.rank(texts, pool=[NEW, "m0"], k=1)):
        assert ranking[0]["llm"] == [NEW, "m0"][int(np.argmax(text_scores))]
    assert {r[0]["llm"] for r in loaded.rank(texts, pool=[NEW, "m0"], k=1)} == {NEW, "m0"}


def test_served_add_llm_encodes_texts_like_the_router_reads_embeddings(world, fitted, tmp_path):
    folder = _save(fitted("als"), tmp_path / "router")
    served = _serve(folder)
    texts = ["t" * (i % 37 + 1) + str(i) for i in range(80)]
    outcomes = (np.arange(80) % 3 == 0).astype(np.float32)
    served.add_llm(NEW, texts, outcomes)
    direct = copy.deepcopy(fitted("als")).add_llm(NEW, StubEncoder().encode(texts), outcomes)
    np.testing.assert_array_equal(served.router.llm_factors_, direct.llm_factors_)


def test_served_remove_llm_drops_it_from_router_and_cost_model(world, fitted, train_costs, tmp_path):
    folder = _save(fitted("bilinear"), tmp_path / "router", cost_model=copy.deepcopy(train_costs))
    served = _serve(folder)
    served.remove_llm("m3")
    served.save(folder)
    loaded = _serve(folder)
    kept = [m for m in MODELS if m != "m3"]
    assert loaded.models == kept and loaded.cost_model.models_.tolist() == kept
    with pytest.raises(RecrouteError) as info:
        loaded.remove_llm("m3")
    assert str(info.value).startswith(f"{folder}: this router does not route to 'm3'")


def test_a_failing_add_names_the_folder_and_leaves_it_unchanged(world, fitted, tmp_path):
    folder = _save(fitted("als"), tmp_path / "router")
    saved = folder_bytes(folder)
    served = _serve(folder)
    with pytest.raises(RecrouteError) as info:
        served.add_llm("m5", [], world.revealed(30)[1], embeddings=world.revealed(30)[0])
    assert str(info.value) == f"{folder}: this router already routes to 'm5'; remove it first to replace it."
    assert served.models == MODELS
    assert folder_bytes(folder) == saved
    before = {k: np.array(v) for k, v in fitted("als").state().items()}
    served.save(folder)  # the router in memory is unchanged too: saving it writes the same arrays
    from recroute.store import load_router

    after = load_router(folder)[0].state()
    assert sorted(after) == sorted(before)
    for key, value in before.items():
        np.testing.assert_array_equal(after[key], value, err_msg=key)


def test_a_failed_write_leaves_the_old_folder_intact(world, fitted, tmp_path, monkeypatch):
    folder = _save(fitted("als"), tmp_path / "router")
    saved = folder_bytes(folder)
    served = _serve(folder)
    served.add_llm(NEW, [], world.revealed(50)[1], embeddings=world.revealed(50)[0])

    def disk_full(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(np, "savez", disk_full)
    with pytest.raises(RecrouteError, match="cannot write the router \\(No space left on device\\)") as info:
        served.save(folder)
    assert str(folder) in str(info.value)
    monkeypatch.undo()
    assert folder_bytes(folder) == saved
    assert sorted(p.name for p in tmp_path.iterdir()) == [".router.lock", "router"]  # the half-written copy is gone
    assert _serve(folder).models == MODELS


def test_a_cost_model_for_another_llm_is_refused(world, fitted, train_costs, tmp_path):
    from recroute.serve import load_router

    folder = _save(fitted("bilinear"), tmp_path / "router", cost_model=copy.deepcopy(train_costs))
    served = _serve(folder)
    try:
        served.add_llm(NEW, [], world.revealed(50)[1], cost_model=_priced(["other"], [[1.0, 1.0]]),
                       embeddings=world.revealed(50)[0])
    except RecrouteError:
        pass
    else:
        served.save(folder)
    load_router(folder)  # today: "cost.npz: its LLMs do not match the manifest's; the router folder is corrupt"
    assert served.models == served.cost_model.models_.tolist()


def test_a_cost_model_clash_leaves_the_served_router_unchanged(world, fitted, train_costs, tmp_path):
    folder = _save(fitted("bilinear"), tmp_path / "router", cost_model=copy.deepcopy(train_costs))
    served = _serve(folder)
    with pytest.raises(RecrouteError, match="must price 'newcomer' alone"):
        served.add_llm(NEW, [], world.revealed(50)[1], cost_model=_priced([NEW, "m0"], [[1.0, 1.0]] * 2),
                       embeddings=world.revealed(50)[0])
    assert served.models == served.cost_model.models_.tolist() == MODELS
