"""Popularity debiasing: IPS weights, selection offsets, Router.rebalance and ``debias_clip`` on every learned router.

The weight functions are pinned on a five-prompt matrix by hand. ``debias_clip``
is checked on a synthetic "popular LLM" matrix: LLM A answers 90% of the
prompts (whatever they say), B answers 85% of the prompts whose first
embedding coordinate is above 0.5 (and none of the others), C answers 20% at
random. B is worse than A even in its region (0.85 < 0.9), so a router fitted
without weights never or rarely picks it; with inverse-propensity weights B's
rare positives count about three times, and it wins its region. Where a
router's choices do not move reliably on such tiny data (ALS, BPR), its
training input is checked instead. Rebalancing is checked on a second matrix
(see :func:`spread`).
"""
from __future__ import annotations

import numpy as np
import pytest

from recroute.data import RoutingData
from recroute.errors import RecrouteError
from recroute.routers import Queries, make_router
from recroute.routers.bpr import _positives
from recroute.routers.debias import ips_weights, oracle_share, record_weights, selection_offsets

approx = pytest.approx
nan = np.nan

# Best sets: rows 0, 1, 3 {A}; row 2 {A, B}; row 4 none (nobody answers); B unobserved on row 3.
# Propensities (best / observed): A 4/5 = 0.8, B 1/4 = 0.25, C 0/5 = 0.  IPS: A 1, B 0.8/0.25 = 3.2, C clip.
TINY = np.array([[1, 0, 0],
                 [1, 0, 0],
                 [1, 1, 0],
                 [1, nan, 0],
                 [0, 0, 0]], dtype=np.float32)


# -- oracle_share -------------------------------------------------------------------------------
def test_oracle_share_counts_the_routers_favourite_among_each_prompts_good_llms():
    # Row 2 has two good LLMs (A, B): the router's preference decides which one gets the vote.
    # Row 4 has none and casts no vote; row 3's unobserved B cannot be picked.
    prefers_b = np.array([[0.1, 0.9, 0.5]] * 5)      # B over C over A, on every prompt
    assert oracle_share(TINY, prefers_b) == approx([0.75, 0.25, 0.0])  # rows 0, 1, 3 A; row 2 B
    prefers_a = np.array([[0.9, 0.1, 0.5]] * 5)
    assert oracle_share(TINY, prefers_a) == approx([1.0, 0.0, 0.0])
    # per prompt, not per LLM: only row 2 prefers B
    mixed = np.array([[0.9, 0.1, 0.0]] * 5)
    mixed[2] = [0.2, 0.3, 0.9]  # C is the favourite but was not good there
    assert oracle_share(TINY, mixed) == approx([0.75, 0.25, 0.0])


def test_oracle_share_of_continuous_outcomes_uses_the_95_percent_best_set():
    truth = np.array([[0.8, 0.78, 0.1],   # 0.78 >= 0.95 x 0.8: A and B both good
                      [0.2, 0.3, 0.9],    # C alone
                      [0.5, 0.4, 0.0]])   # A alone (0.4 < 0.475)
    predicted = np.array([[0.0, 1.0, 2.0]] * 3)  # C > B > A
    assert oracle_share(truth, predicted) == approx([1 / 3, 1 / 3, 1 / 3])


def test_oracle_share_is_uniform_when_no_prompt_votes():
    assert oracle_share(np.zeros((3, 4)), np.ones((3, 4))) == approx([0.25] * 4)
    assert oracle_share(np.full((2, 2), nan), np.ones((2, 2))) == approx([0.5, 0.5])


# -- ips_weights ----------------------------------------------------------------------------------
def test_ips_weights_are_max_propensity_over_propensity_clipped():
    assert ips_weights(TINY, 10) == approx([1.0, 3.2, 10.0])  # C never best: the clip
    assert ips_weights(TINY, 2) == approx([1.0, 2.0, 2.0])
    assert ips_weights(TINY, 1) == approx([1.0, 1.0, 1.0])
    assert ips_weights(TINY, 10).dtype == np.float32


def test_ips_weights_count_only_observed_prompts():
    # B is best on 1 of its 4 observed prompts (0.25), not 1 of 5 (0.2, which would give 4.0)
    assert ips_weights(TINY, 100)[1] == approx(3.2)


def test_ips_weights_without_any_best_answer_are_one():
    assert ips_weights(np.zeros((3, 2)), 5).tolist() == [1.0, 1.0]


@pytest.mark.parametrize("clip", [0.5, 0, -3, nan])
def test_ips_weights_refuse_a_clip_below_one(clip):
    with pytest.raises(RecrouteError, match="debias_clip must be a number of at least 1"):
        ips_weights(TINY, clip)


# -- record_weights -------------------------------------------------------------------------------
def test_record_weights_without_a_clip_are_the_observed_mask():
    weights = record_weights(TINY, None)
    assert weights.dtype == np.float32
    assert weights.tolist() == [[1, 1, 1], [1, 1, 1], [1, 1, 1], [1, 0, 1], [1, 1, 1]]


def test_record_weights_put_the_ips_weight_on_best_set_cells_only():
    weights = record_weights(TINY, 10)
    expected = np.array([[1, 1, 1],
                         [1, 1, 1],
                         [1, 3.2, 1],   # B's one best-set cell
                         [1, 0, 1],     # unobserved: 0
                         [1, 1, 1]])    # observed bad answers weigh 1, C's clip never used
    np.testing.assert_allclose(weights, expected, rtol=1e-6)
    with pytest.raises(RecrouteError, match="at least 1"):
        record_weights(TINY, 0.9)


# -- selection_offsets ----------------------------------------------------------------------------
def _shares(choice, m):
    return np.bincount(choice, minlength=m) / len(choice)


def test_selection_offsets_spread_a_collapsed_argmax_to_the_target_shares():
    rng = np.random.default_rng(0)
    predicted = rng.random((1000, 3)) + np.array([1.0, 0.0, 0.0])  # column 0 always wins by itself
    assert _shares(np.argmax(predicted, axis=1), 3).tolist() == [1.0, 0.0, 0.0]
    target = np.array([0.5, 0.3, 0.2])
    offsets = selection_offsets(predicted, target)
    assert offsets.shape == (3,) and offsets.dtype == np.float32
    assert offsets.sum() == approx(0.0, abs=1e-5)  # centred
    shares = _shares(np.argmax(predicted + offsets, axis=1), 3)
    assert 0.5 * np.abs(shares - target).sum() < 0.05, shares
    assert offsets[0] < offsets[1] and offsets[0] < offsets[2]  # the collapsed column is lowered


def test_selection_offsets_leave_a_matching_argmax_alone():
    predicted = np.eye(4)[np.arange(100) % 4]  # each column wins a quarter
    assert selection_offsets(predicted, np.full(4, 0.25)).tolist() == [0.0] * 4


def test_selection_offsets_edge_cases():
    assert selection_offsets(np.zeros((0, 3)), np.full(3, 1 / 3)).tolist() == [0.0, 0.0, 0.0]
    assert selection_offsets(np.ones((5, 1)), np.ones(1)).tolist() == [0.0]
    with pytest.raises(RecrouteError, match="do not match"):
        selection_offsets(np.zeros((5, 3)), np.full(2, 0.5))
    with pytest.raises(RecrouteError, match="do not match"):
        selection_offsets(np.zeros(5), np.ones(1))


# -- the popular-LLM matrix -----------------------------------------------------------------------
def three_llms(n: int, seed: int, a_rate: float, b_region: float, b_rate: float, c_rate: float,
               name: str) -> RoutingData:
    """A right at ``a_rate`` anywhere, B at ``b_rate`` where the first coordinate exceeds ``b_region``, C at ``c_rate``."""
    rng = np.random.default_rng(seed)
    emb = rng.normal(size=(n, 4)).astype(np.float32)
    a = rng.random(n) < a_rate
    b = (emb[:, 0] > b_region) & (rng.random(n) < b_rate)
    c = rng.random(n) < c_rate
    return RoutingData(scores=np.stack([a, b, c], axis=1).astype(np.float32),
                       prompt_ids=np.array([f"p{i}" for i in range(n)]), models=np.array(["A", "B", "C"]),
                       embeddings=emb, source=f"{name}-{seed}")


def popular(n: int, seed: int) -> RoutingData:
    return three_llms(n, seed, a_rate=0.9, b_region=0.5, b_rate=0.85, c_rate=0.2, name="popular")


@pytest.fixture(scope="module")
def train():
    return popular(400, 0)


@pytest.fixture(scope="module")
def val():
    return popular(200, 5)


@pytest.fixture(scope="module")
def new_prompts():
    return popular(300, 1)


# Small settings so each fit takes a fraction of a second.
SMALL = {
    "knn": {},
    "linear": {"epochs": 100},
    "mlp": {"hidden": 32},
    "als": {"factors": 4},
    "bpr": {"factors": 4, "iterations": 100},
    "lightfm": {"factors": 4},
    "bilinear": {"factors": 4, "epochs": 200},
}


@pytest.mark.parametrize("name", list(SMALL))
def test_every_learned_router_takes_debias_clip(name, train):
    router = make_router(name, debias_clip=5.0, **SMALL[name])
    assert router.get_params()["debias_clip"] == 5.0
    assert make_router(name).get_params()["debias_clip"] is None
    router.fit(train)  # fits with the weights


# The routers on which the weights reliably move choices towards B on this matrix (fixed seeds).
@pytest.mark.parametrize("name", ["knn", "linear", "mlp", "lightfm", "bilinear"])
def test_debias_clip_sends_more_prompts_to_the_rarely_best_llm(name, train, new_prompts):
    region = new_prompts.embeddings[:, 0] > 0.5
    queries = Queries.of(new_prompts)
    plain = make_router(name, **SMALL[name]).fit(train).route(queries)
    weighted = make_router(name, debias_clip=10.0, **SMALL[name]).fit(train).route(queries)
    plain_b, weighted_b = int((plain == 1).sum()), int((weighted == 1).sum())
    assert weighted_b > plain_b + 5, (plain_b, weighted_b)
    # ... and it is B's own region that gains
    assert (weighted[region] == 1).sum() > (plain[region] == 1).sum() + 5
    assert (plain == 0).mean() > 0.8  # without weights the popular LLM takes almost everything


def tiny_data() -> RoutingData:
    return RoutingData(scores=TINY, prompt_ids=np.array([f"p{i}" for i in range(5)]), models=np.array(list("ABC")),
                       embeddings=np.eye(5, 3, dtype=np.float32), source="tiny")


def test_bpr_positives_repeat_a_record_by_its_weight():
    plain = _positives(TINY, None)
    assert plain.toarray().tolist() == [[1, 0, 0], [1, 0, 0], [1, 1, 0], [1, 0, 0], [0, 0, 0]]
    clipped = _positives(TINY, 2)  # B's weight 3.2 clipped to 2: a whole number, so exactly twice
    assert clipped.indptr.tolist() == [0, 1, 2, 5, 6, 6]
    assert clipped.indices[2:5].tolist() == [0, 1, 1] and clipped.data.tolist() == [1.0] * 6
    # integer weights repeat exactly: propensities A 6/7, B 3/7, so B weighs 2
    scores = np.array([[1, 0], [1, 0], [1, 1], [0, 1], [1, 0], [1, 1], [1, 0]], dtype=np.float32)
    assert ips_weights(scores, 10) == approx([1.0, 2.0])
    assert _positives(scores, 10).nnz == 6 + 2 * 3


def test_bpr_positives_repeat_fractional_weights_right_on_average():
    # A best on all 400 prompts, B on 100 -> B weighs 4, clipped at 2.6: floor 2, a third copy 60% of the time
    scores = np.stack([np.ones(400), np.arange(400) < 100], axis=1).astype(np.float32)
    assert ips_weights(scores, 2.6) == approx([1.0, 2.6])
    copies = [(_positives(scores, 2.6, seed).indices == 1).sum() / 100 for seed in range(20)]
    assert all(2 <= c <= 3 for c in copies)  # each record twice or three times
    assert np.mean(copies) == approx(2.6, abs=0.05)
    same_seed = [(_positives(scores, 2.6, 3).indices == 1).sum() for _ in range(2)]
    assert same_seed[0] == same_seed[1]  # reproducible
    assert len({(_positives(scores, 2.6, seed).indices == 1).sum() for seed in range(5)}) > 1  # the seed draws


def test_bpr_router_trains_on_the_repeated_records(train, monkeypatch):
    from implicit.cpu.bpr import BayesianPersonalizedRanking

    seen = []
    original = BayesianPersonalizedRanking.fit

    def spy(self, user_items, *args, **kwargs):
        seen.append(user_items.copy())
        return original(self, user_items, *args, **kwargs)

    monkeypatch.setattr(BayesianPersonalizedRanking, "fit", spy)
    make_router("bpr", factors=4, iterations=5).fit(train)
    make_router("bpr", factors=4, iterations=5, debias_clip=10.0).fit(train)
    plain, weighted = seen
    good = train.scores == 1
    assert plain.nnz == good.sum()
    weights = ips_weights(train.scores, 10.0)
    assert weights[0] == 1 and weights[1] >= 3
    low, high = (good * np.floor(weights)).sum(), (good * np.ceil(weights)).sum()
    assert low <= weighted.nnz <= high and weighted.nnz > plain.nnz


def test_als_confidence_carries_the_ips_weight(monkeypatch):
    from implicit.cpu.als import AlternatingLeastSquares

    seen = []
    original = AlternatingLeastSquares.fit

    def spy(self, user_items, *args, **kwargs):
        seen.append(user_items.toarray())
        return original(self, user_items, *args, **kwargs)

    monkeypatch.setattr(AlternatingLeastSquares, "fit", spy)
    data = tiny_data()
    make_router("als", factors=2, iterations=2, alpha=10.0, negative_weight=4.0).fit(data)
    make_router("als", factors=2, iterations=2, alpha=10.0, negative_weight=4.0, debias_clip=10.0).fit(data)
    plain, weighted = seen
    # good cells alpha (x the IPS weight), bad cells -negative_weight, unobserved cells absent (0)
    np.testing.assert_allclose(plain, [[10, -4, -4], [10, -4, -4], [10, 10, -4], [10, 0, -4], [-4, -4, -4]])
    np.testing.assert_allclose(weighted, [[10, -4, -4], [10, -4, -4], [10, 32, -4], [10, 0, -4], [-4, -4, -4]])


def test_lightfm_gets_the_ips_weights_as_sample_weights(monkeypatch):
    from lightfm import LightFM

    seen = []
    original = LightFM.fit

    def spy(self, interactions, *args, **kwargs):
        seen.append((interactions.toarray(), kwargs["sample_weight"].toarray()))
        return original(self, interactions, *args, **kwargs)

    monkeypatch.setattr(LightFM, "fit", spy)
    data = tiny_data()
    for loss in ("warp", "logistic"):
        make_router("lightfm", factors=2, epochs=1, loss=loss).fit(data)
        make_router("lightfm", factors=2, epochs=1, loss=loss, debias_clip=10.0).fit(data)
    (warp_x, warp_plain), (_, warp_w), (log_x, log_plain), (_, log_w) = seen
    positives = [[1, 0, 0], [1, 0, 0], [1, 1, 0], [1, 0, 0], [0, 0, 0]]
    assert warp_x.tolist() == positives  # WARP: only positives are interactions
    assert warp_plain.tolist() == positives
    np.testing.assert_allclose(warp_w, [[1, 0, 0], [1, 0, 0], [1, 3.2, 0], [1, 0, 0], [0, 0, 0]], rtol=1e-6)
    # logistic: +1 good, -1 bad, unobserved left out; bad answers weigh 1
    assert log_x.tolist() == [[1, -1, -1], [1, -1, -1], [1, 1, -1], [1, 0, -1], [-1, -1, -1]]
    assert log_plain.tolist() == [[1, 1, 1], [1, 1, 1], [1, 1, 1], [1, 0, 1], [1, 1, 1]]
    np.testing.assert_allclose(log_w, [[1, 1, 1], [1, 1, 1], [1, 3.2, 1], [1, 0, 1], [1, 1, 1]], rtol=1e-6)


# -- Router.rebalance -----------------------------------------------------------------------------
# A second matrix: A answers 60% of the prompts, B half of those with a positive first coordinate, C 30%.
# Every router prefers A (0.6 beats B's 0.5 even in its region), so it sends (nearly) everything there,
# while a router that never missed would send A's failures to B or C: about 76% / 12% / 12%.
def spread(n: int, seed: int) -> RoutingData:
    return three_llms(n, seed, a_rate=0.6, b_region=0.0, b_rate=0.5, c_rate=0.3, name="spread")


@pytest.fixture(scope="module")
def spread_parts():
    return spread(400, 0), spread(200, 5), spread(300, 1)  # train, held out, new prompts


def _tv(choice, target):
    return 0.5 * np.abs(_shares(choice, len(target)) - target).sum()


@pytest.mark.parametrize("name", ["linear", "bilinear", "als", "lightfm", "knn"])
def test_rebalance_makes_choices_spread_like_a_router_that_never_missed(name, spread_parts):
    train, held_out, new = spread_parts
    router = make_router(name, **SMALL[name]).fit(train)
    assert router.offsets_ is None
    queries = Queries.of(held_out)
    raw = router.score(queries)
    before = router.route(queries)
    target = oracle_share(held_out.scores, raw)
    assert target[1] > 0.1 and target[2] > 0.09  # A's failures spread to B and C
    assert _tv(before, target) > 0.15 and (before == 2).sum() <= 5  # C (almost) never picked before
    router.rebalance(held_out)
    assert router.offsets_.shape == (3,) and router.offsets_.dtype == np.float32
    np.testing.assert_allclose(router.score(queries), raw + router.offsets_, rtol=1e-5, atol=1e-5)
    after = router.route(queries)
    assert _tv(after, target) < 0.02
    # the offsets carry over to prompts they were not fitted on
    assert _tv(router.route(Queries.of(new)), target) < 0.1


def test_rebalance_within_a_pool_offsets_only_its_llms(spread_parts):
    train, held_out, _ = spread_parts
    router = make_router("bilinear", **SMALL["bilinear"]).fit(train)
    queries = Queries.of(held_out)
    raw = router.score(queries, ["A", "C"])
    router.rebalance(held_out, ["A", "C"])
    assert router.offsets_[1] == 0.0 and router.offsets_[0] < 0 < router.offsets_[2]
    target = oracle_share(held_out.scores[:, [0, 2]], raw)
    assert _tv(router.route(queries, ["A", "C"]), target) < 0.02


def test_a_refit_clears_the_offsets(spread_parts):
    train, held_out, new = spread_parts
    queries = Queries.of(new)
    fresh = make_router("bilinear", **SMALL["bilinear"]).fit(train)
    router = make_router("bilinear", **SMALL["bilinear"]).fit(train).rebalance(held_out)
    assert router.offsets_ is not None and np.abs(router.offsets_).max() > 0
    router.fit(train)
    assert router.offsets_ is None
    np.testing.assert_array_equal(router.score(queries), fresh.score(queries))
    for mine, theirs in zip(router.rank(queries), fresh.rank(queries)):
        np.testing.assert_array_equal(mine, theirs)


@pytest.mark.parametrize("name", ["bilinear", "als"])
def test_latent_rank_agrees_with_scores_after_rebalancing(name, spread_parts):
    train, held_out, new = spread_parts
    router = make_router(name, **SMALL[name]).fit(train)
    queries = Queries.of(new)
    before, _ = router.rank(queries, k=1)
    router.rebalance(held_out)
    scores = router.score(queries)
    positions, ranked = router.rank(queries)
    np.testing.assert_array_equal(positions, np.argsort(-scores, axis=1, kind="stable"))
    np.testing.assert_allclose(ranked, np.take_along_axis(scores, positions, axis=1), rtol=1e-5, atol=1e-5)
    # the FAISS index moved with the offsets: C now tops some prompts it did not top before
    assert (before[:, 0] == 2).sum() <= 5 and (positions[:, 0] == 2).sum() >= 10
    pool_positions, _ = router.rank(queries, ["C", "B"], k=1)
    np.testing.assert_array_equal(pool_positions[:, 0], np.argmax(router.score(queries, ["C", "B"]), axis=1))
