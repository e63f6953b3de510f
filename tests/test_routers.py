"""Routers on synthetic, in-memory data with known answers (no text is ever encoded)."""
from __future__ import annotations

import numpy as np
import pytest

from recroute import metrics
from recroute.data import RoutingData
from recroute.errors import RecrouteError
from recroute.routers import (
    ROUTERS, BestSingleRouter, KNNRouter, LinearRouter, MLPRouter, OracleRouter, Queries, RandomRouter,
    ROracleRouter, make_router,
)



def make_data(scores, embeddings=None, models=None) -> RoutingData:
    scores = np.asarray(scores, dtype=np.float32)
    n, m = scores.shape
    return RoutingData(
        scores=scores, prompt_ids=np.array([f"p{i}" for i in range(n)]),
        models=np.array(models if models is not None else [f"llm{j}" for j in range(m)]),
        embeddings=embeddings, source="synthetic",
    )


def continuous(n=2000, m=5, seed=7) -> RoutingData:
    # (not seed 0: the random routers draw from default_rng(0) too, and would copy the scores)
    rng = np.random.default_rng(seed)
    scores = rng.random((n, m)) * np.linspace(0.6, 1.0, m)
    return make_data(scores, embeddings=rng.normal(size=(n, 6)).astype(np.float32))


def binary(n=3000, m=5, seed=1) -> RoutingData:
    rng = np.random.default_rng(seed)
    return make_data((rng.random((n, m)) < np.linspace(0.2, 0.7, m)).astype(np.float32))


# -- reference routers ---------------------------------------------------------
def test_oracle_picks_a_best_llm_on_every_prompt():
    data = continuous()
    choice = OracleRouter().fit(data).route(Queries.of(data))
    assert np.array_equal(data.scores[np.arange(data.n_prompts), choice], data.scores.max(axis=1))


def test_oracle_treats_unobserved_cells_as_zero():
    data = make_data([[np.nan, 0.2], [0.4, np.nan]])
    assert OracleRouter().fit(data).route(Queries.of(data)).tolist() == [1, 0]


@pytest.mark.parametrize("data", [binary(), continuous()], ids=["binary", "continuous"])
def test_r_o_of_1_is_the_oracle_and_r_o_of_0_the_pool_average(data):
    queries = Queries.of(data)
    oracle = metrics.mu(data.scores, OracleRouter().fit(data).route(queries))
    assert oracle == pytest.approx(data.scores.max(axis=1).mean())
    assert metrics.mu(data.scores, ROracleRouter(p=1.0).fit(data).route(queries)) == pytest.approx(oracle, abs=1e-7)
    assert metrics.mu(data.scores, ROracleRouter(p=0.0).fit(data).route(queries)) == pytest.approx(
        data.scores.mean(), abs=0.02)
    half = metrics.mu(data.scores, ROracleRouter(p=0.5).fit(data).route(queries))
    assert half == pytest.approx(0.5 * oracle + 0.5 * data.scores.mean(), abs=0.02)


def test_r_o_of_1_picks_the_best_llm_even_when_scores_differ_by_less_than_its_tie_noise():
    rng = np.random.default_rng(0)
    data = make_data(0.5 + 1e-4 * rng.integers(0, 5, size=(500, 4)))   # gaps of 1e-4
    choice = ROracleRouter(p=1.0, seed=3).fit(data).route(Queries.of(data))
    assert np.array_equal(data.scores[np.arange(500), choice], data.scores.max(axis=1))


def test_r_o_breaks_ties_between_equally_good_llms_at_random():
    data = make_data(np.ones((3000, 3)))
    choice = ROracleRouter(p=1.0).fit(data).route(Queries.of(data))
    assert metrics.selection_entropy(choice, 3) > np.log2(3) - 0.01


def test_r_o_rejects_p_outside_0_1():
    with pytest.raises(RecrouteError, match="1.5"):
        ROracleRouter(p=1.5).fit(binary(n=10))


def test_reference_routers_need_the_truth():
    router = OracleRouter().fit(binary(n=10))
    with pytest.raises(RecrouteError, match="true outcomes"):
        router.score(Queries(embeddings=np.zeros((3, 2), dtype=np.float32)))


def test_random_router_spreads_prompts_evenly():
    data = binary(n=5000, m=6)
    choice = RandomRouter().fit(data).route(Queries.of(data))
    assert metrics.selection_entropy(choice, 6) == pytest.approx(np.log2(6), abs=0.01)
    # reproducible with the same seed, different with another
    assert np.array_equal(choice, RandomRouter().fit(data).route(Queries.of(data)))
    assert not np.array_equal(choice, RandomRouter(seed=1).fit(data).route(Queries.of(data)))


def test_best_single_router_always_chooses_the_best_training_mean_ignoring_nan():
    nan = np.nan
    # means ignoring NaN: a 0.5, b 1.0 (NaN as 0 would make it 0.25), c 0.75
    train = make_data([[1, nan, 1], [0, nan, 1], [1, 1, 0], [0, nan, 1]], models=list("abc"))
    router = BestSingleRouter().fit(train)
    test = binary(n=50, m=3)
    choice = router.route(Queries.of(make_data(test.scores, models=list("abc"))))
    assert (choice == 1).all()
    assert router.route(Queries.of(make_data(test.scores[:, [0, 2]], models=list("ac"))), models=["a", "c"]).tolist() \
        == [1] * 50


# -- the Router interface ------------------------------------------------------
@pytest.mark.parametrize("name", ["oracle", "bsm", "ro:1", "knn", "linear", "mlp"])
def test_score_of_a_reordered_subset_is_those_columns_of_the_full_score(name):
    data = continuous(n=200)
    router = make_router(name, **({"epochs": 5} if name in ("linear", "mlp") else {})).fit(data)
    queries = Queries.of(data)
    full = router.score(queries)
    assert full.shape == (200, 5) and full.dtype == np.float32
    names = ["llm3", "llm0", "llm4"]
    part = router.score(queries, models=names)
    assert part.shape == (200, 3)
    if name == "ro:1":  # tie-break draws depend on the pool's size; the pick follows the truth
        assert np.array_equal(np.argmax(part, axis=1), np.argmax(data.scores[:, [3, 0, 4]], axis=1))
    else:
        np.testing.assert_allclose(part, full[:, [3, 0, 4]], rtol=1e-6, atol=1e-7)


def test_rank_and_route_follow_the_scores():
    data = continuous(n=50)
    router = OracleRouter().fit(data)
    order, top = router.rank(Queries.of(data), k=2)
    assert order.shape == top.shape == (50, 2)
    assert np.array_equal(order[:, 0], router.route(Queries.of(data)))
    np.testing.assert_array_equal(top[:, 0], data.scores.max(axis=1))
    assert (top[:, 0] >= top[:, 1]).all()


def test_unknown_llm_name_is_named():
    router = BestSingleRouter().fit(binary(n=20))
    with pytest.raises(RecrouteError, match="'gpt-9'"):
        router.score(Queries.of(binary(n=20)), models=["llm0", "gpt-9"])


@pytest.mark.parametrize("cls", [OracleRouter, BestSingleRouter, RandomRouter, KNNRouter, LinearRouter])
def test_scoring_before_fit_raises(cls):
    data = continuous(n=20)
    with pytest.raises(RecrouteError, match="not fitted"):
        cls().score(Queries.of(data))


@pytest.mark.parametrize("cls", [KNNRouter, LinearRouter, MLPRouter])
def test_router_reading_prompts_needs_embeddings(cls):
    bare = binary(n=30)
    with pytest.raises(RecrouteError, match="embeddings"):
        cls().fit(bare)
    fitted = cls(**({} if cls is KNNRouter else {"epochs": 1})).fit(continuous(n=30))
    with pytest.raises(RecrouteError, match="embeddings"):
        fitted.score(Queries.of(bare))


def test_make_router():
    router = make_router("ro:0.3")
    assert isinstance(router, ROracleRouter) and router.p == 0.3
    assert isinstance(make_router("knn", k=7), KNNRouter) and make_router("knn", k=7).k == 7
    assert make_router("random").get_params() == {"seed": 0}
    assert set(ROUTERS) == {"oracle", "random", "bsm", "ro", "knn", "linear", "mlp", "als", "bpr", "lightfm", "bilinear",
                            "cluster", "knnreg", "ridge", "task", "auto", "spark-als"}
    with pytest.raises(RecrouteError, match="'nope'"):
        make_router("nope")
    with pytest.raises(RecrouteError, match="'knn'"):
        make_router("knn:3")
    with pytest.raises(RecrouteError, match="not a probability"):
        make_router("ro:high")
    with pytest.raises(RecrouteError, match="'linear'"):
        make_router("linear", depth=3)


# -- learned baselines on clusters ---------------------------------------------
def clusters(n=600, seed=0, label_noise=0.05):
    """Three embedding clusters; LLM j answers (almost) only the prompts of cluster j."""
    rng = np.random.default_rng(seed)
    dim = 16
    centres = rng.normal(size=(3, dim))
    centres /= np.linalg.norm(centres, axis=1, keepdims=True)
    cluster = rng.integers(0, 3, size=n)
    emb = (centres[cluster] + 0.25 * rng.normal(size=(n, dim))).astype(np.float32)
    scores = (cluster[:, None] == np.arange(3)).astype(np.float32)
    flip = rng.random(scores.shape) < label_noise
    scores[flip] = 1 - scores[flip]
    return make_data(scores, embeddings=emb, models=["alpha", "beta", "gamma"]), cluster


@pytest.fixture(scope="module")
def cluster_split():
    data, cluster = clusters()
    train, test = np.arange(480), np.arange(480, 600)
    return data.subset(train), data.subset(test), cluster[test]


@pytest.mark.parametrize("name,params", [
    ("knn", {}),
    ("linear", {"epochs": 200}),
    ("mlp", {"epochs": 100, "hidden": 64}),
])
def test_learned_routers_find_the_cluster_llm(cluster_split, name, params):
    train, test, cluster = cluster_split
    router = make_router(name, **params).fit(train)
    choice = router.route(Queries(embeddings=test.embeddings))
    assert (choice == cluster).mean() >= 0.9
    bsm = BestSingleRouter().fit(train).route(Queries.of(test))
    mu, mu_bsm = metrics.mu(test.scores, choice), metrics.mu(test.scores, bsm)
    assert mu >= mu_bsm + 0.4, (mu, mu_bsm)
    probs = router.score(Queries(embeddings=test.embeddings))
    assert ((probs >= 0) & (probs <= 1)).all()


def test_learned_routers_are_reproducible(cluster_split):
    train, test, _ = cluster_split
    queries = Queries(embeddings=test.embeddings)
    for name in ("linear", "mlp"):
        a = make_router(name, epochs=20, seed=4).fit(train).score(queries)
        b = make_router(name, epochs=20, seed=4).fit(train).score(queries)
        np.testing.assert_array_equal(a, b)


def test_knn_scores_are_the_mean_best_set_label_of_the_neighbours():
    # four training prompts on two opposite directions; k = 2 neighbours each
    emb = np.array([[1, 0], [0.9, 0.1], [-1, 0], [-0.9, -0.1]], dtype=np.float32)
    scores = [[1, 0], [1, 1], [0.5, 1], [np.nan, 0.3]]  # best sets: {0}, {0, 1}, {1}, {1} (NaN kept)
    router = KNNRouter(k=2).fit(make_data(scores, embeddings=emb))
    got = router.score(Queries(embeddings=np.array([[2, 0.1], [-3, 0]], dtype=np.float32)))
    # first: neighbours 0, 1 -> (1+1)/2, (0+1)/2; second: neighbours 2, 3 -> 0/1 (NaN skipped), (1+1)/2
    np.testing.assert_allclose(got, [[1.0, 0.5], [0.0, 1.0]])
    router = KNNRouter(k=2).fit(make_data([[1, 0], [1, 1], [1, 1], [np.nan, 1]], embeddings=emb))
    got = router.score(Queries(embeddings=np.array([[-3, 0]], dtype=np.float32)))
    np.testing.assert_allclose(got, [[1.0, 1.0]])  # 1/1 over the observed neighbour, not 1/2


def test_knn_with_k_above_the_training_size_uses_them_all():
    emb = np.array([[1, 0], [0, 1]], dtype=np.float32)
    router = KNNRouter(k=50).fit(make_data([[1, 0], [0, 0]], embeddings=emb))
    np.testing.assert_allclose(router.score(Queries(embeddings=emb)), [[0.5, 0.0], [0.5, 0.0]])


def test_torch_trains_small_fits_on_one_thread_and_large_ones_on_all():
    import torch

    from recroute.routers.base import PARALLEL_CELLS, torch_threads

    default = torch.get_num_threads()
    with torch_threads(PARALLEL_CELLS - 1):
        assert torch.get_num_threads() == 1
    assert torch.get_num_threads() == default  # restored
    with torch_threads(PARALLEL_CELLS):
        assert torch.get_num_threads() == default
    with pytest.raises(ValueError):
        with torch_threads(10):
            raise ValueError("a failing fit")
    assert torch.get_num_threads() == default  # restored after a failure too
