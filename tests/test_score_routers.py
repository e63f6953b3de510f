"""cluster, knnreg, ridge, task and auto on synthetic worlds whose right answers are known."""
from __future__ import annotations

import shutil
from dataclasses import replace

import numpy as np
import pytest

from recroute import metrics
from recroute.data import RoutingData
from recroute.errors import RecrouteError
from recroute.logs import propensity_weights
from recroute.params import PARAMS
from recroute.routers import (
    ROUTERS, AutoRouter, BestSingleRouter, ClusterRouter, KNNRegressionRouter, Queries, RidgeRouter, Router,
    TaskRouter, make_router,
)
from recroute.store import ARRAYS, load_router, save_router


def make_data(scores, embeddings, prefix="p", groups=None) -> RoutingData:
    scores = np.asarray(scores, dtype=np.float32)
    return RoutingData(scores=scores, prompt_ids=np.array([f"{prefix}{i}" for i in range(len(scores))]),
                       models=np.array([f"llm{j}" for j in range(scores.shape[1])]),
                       embeddings=np.asarray(embeddings, dtype=np.float32), source="synthetic",
                       groups=None if groups is None else np.asarray(groups, dtype=str))


def blob_world(n=1200, m=4, seed=3, prefix="p", learnable=True) -> RoutingData:
    """Prompts in m well-separated blobs; in blob c LLM c answers 90% of prompts and the others 30%,
    except LLM 0, which answers 45% everywhere else, so it is the best single LLM. Without
    ``learnable`` each prompt's outcomes are drawn from another prompt's blob: nothing to learn.
    Each prompt's group (its task) is its blob's name."""
    rng = np.random.default_rng(seed)
    blob = rng.integers(m, size=n)
    centres = np.eye(m, 16) * 4
    embeddings = centres[blob] + rng.normal(scale=0.5, size=(n, 16))
    outcome_blob = blob if learnable else rng.integers(m, size=n)
    p = np.full((n, m), 0.3)
    p[:, 0] = 0.45
    p[np.arange(n), outcome_blob] = 0.9
    return make_data((rng.random((n, m)) < p).astype(np.float32), embeddings, prefix, [f"blob{b}" for b in blob])


def routed_mu(router: Router, data: RoutingData) -> float:
    return metrics.mu(data.scores, router.route(Queries.of(data)))


# -- cluster -----------------------------------------------------------------
def test_cluster_means_are_shrunk_towards_each_llms_global_mean_by_a_prior_worth_prompts():
    # two far-apart groups: 3 prompts where LLM 0 scores 1 and LLM 1 scores 0, 1 prompt the other way round
    embeddings = [[1, 0], [1, 0.01], [1, -0.01], [0, 1]]
    data = make_data([[1, 0], [1, 0], [1, 0], [0, 1]], embeddings)
    router = ClusterRouter(k=2, prior=2.0).fit(data)
    global_mean = np.array([0.75, 0.25])
    expected = {0: (np.array([3, 0]) + 2 * global_mean) / 5, 3: (np.array([0, 1]) + 2 * global_mean) / 3}
    scores = router.score(Queries.of(data))
    for row, want in expected.items():
        np.testing.assert_allclose(scores[row], want, atol=1e-6)


def test_cluster_router_chooses_k_by_cross_validation_and_finds_each_blobs_llm():
    train, test = blob_world(), blob_world(n=400, seed=4, prefix="t")
    router = ClusterRouter(seed=1).fit(train)
    assert int(router.k_) >= 4  # fewer clusters than blobs would merge two blobs' best LLMs
    best_single = routed_mu(BestSingleRouter().fit(train), test)
    assert routed_mu(router, test) > best_single + 0.3


def test_one_cluster_routes_like_the_best_single_llm():
    train = blob_world()
    router = ClusterRouter(k=1).fit(train)
    assert np.array_equal(router.route(Queries.of(train)), BestSingleRouter().fit(train).route(Queries.of(train)))


# -- task ----------------------------------------------------------------------
def test_task_scores_are_each_tasks_shrunk_means_weighted_by_its_predicted_probability():
    # two far-apart tasks: in "a" (3 prompts) LLM 0 scores 1 and LLM 1 scores 0; in "b" (2 prompts) the reverse
    rng = np.random.default_rng(0)
    embeddings = np.repeat([[1.0, 0.0], [0.0, 1.0]], [3, 2], axis=0) + rng.normal(scale=0.01, size=(5, 2))
    data = make_data([[1, 0]] * 3 + [[0, 1]] * 2, embeddings, groups=["a"] * 3 + ["b"] * 2)
    router = TaskRouter(prior=2.0, min_task=1).fit(data)
    global_mean = np.array([0.6, 0.4])
    np.testing.assert_allclose(router.task_scores_, [(np.array([3, 0]) + 2 * global_mean) / 5,
                                                     (np.array([0, 2]) + 2 * global_mean) / 4], atol=1e-6)
    probabilities = router.task_probabilities(Queries.of(data))
    assert list(router.tasks_) == ["a", "b"] and (probabilities.argmax(axis=1) == [0, 0, 0, 1, 1]).all()
    np.testing.assert_allclose(router.score(Queries.of(data)), probabilities @ router.task_scores_, atol=1e-6)


def test_task_probabilities_are_sklearns_lda_then_logistic_regression_for_two_tasks_and_for_more():
    from sklearn.discriminant_analysis import LinearDiscriminantAnalysis
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline

    for m in (2, 4):
        train = blob_world(n=300, m=m)
        router = TaskRouter(min_task=1).fit(train)
        pipeline = make_pipeline(LinearDiscriminantAnalysis(solver="eigen", shrinkage="auto"),
                                 LogisticRegression(max_iter=1000))
        pipeline.fit(train.embeddings / np.linalg.norm(train.embeddings, axis=1, keepdims=True), train.groups)
        test = blob_world(n=50, m=m, seed=4, prefix="t").embeddings
        queries = np.vstack([test, (test + test[::-1]) / 2])  # new prompts, and prompts between two tasks
        expected = pipeline.predict_proba(queries / np.linalg.norm(queries, axis=1, keepdims=True))
        assert (expected.max(axis=1) < 0.9).any()  # probabilities, not only 0s and 1s, are compared
        np.testing.assert_allclose(router.task_probabilities(Queries(embeddings=queries)), expected, atol=1e-4)


def test_task_router_fits_tasks_whose_prompts_share_one_embedding():
    """No within-task scatter leaves the LDA's eigen problem singular (LinAlgError in sklearn); the router
    still fits, and tells the two tasks apart."""
    centres = np.eye(2, 8) * 3 + 1
    blob = np.arange(40) % 2
    p = np.where(blob[:, None] == np.arange(2), 0.9, 0.2)
    train = make_data(p, centres[blob], groups=[f"blob{b}" for b in blob])
    router = TaskRouter(min_task=1).fit(train)
    probabilities = router.task_probabilities(Queries(embeddings=centres))
    assert (np.argmax(probabilities, axis=1) == [0, 1]).all() and (probabilities.max(axis=1) > 0.6).all()
    assert (router.route(Queries(embeddings=centres)) == [0, 1]).all()


def test_task_router_sends_each_tasks_new_prompts_to_its_best_llm():
    train, test = blob_world(), blob_world(n=400, seed=4, prefix="t")
    best_single = routed_mu(BestSingleRouter().fit(train), test)
    assert routed_mu(TaskRouter().fit(train), test) > best_single + 0.3


TEMPLATES = ("Q: what is {a} plus {b}? A:", "def scale_{a}(x):\n    return x * {b}",
             "Trivia. Which river flows through city number {a} of region {b}?")


def worded_world(n=600, seed=5, prefix="w", dim=16) -> RoutingData:
    """Three tasks told apart by their wording alone: each prompt fills its task's template with random
    numbers, and its embedding is noise. In task c LLM c answers 90% of prompts and the others 30%."""
    rng = np.random.default_rng(seed)
    task = rng.integers(3, size=n)
    texts = [TEMPLATES[t].format(a=rng.integers(1000), b=rng.integers(1000)) for t in task]
    p = np.full((n, 3), 0.3)
    p[np.arange(n), task] = 0.9
    data = make_data((rng.random((n, 3)) < p).astype(np.float32), rng.normal(size=(n, dim)), prefix,
                     [f"task{t}" for t in task])
    return replace(data, prompts=np.array(texts, dtype=object))


def test_task_router_reads_the_prompts_words_where_their_embeddings_cannot_tell_the_tasks_apart():
    train, test = worded_world(), worded_world(n=300, seed=6, prefix="t")
    router = TaskRouter().fit(train)
    truth = np.array([int(g[-1]) for g in test.groups])
    with_texts = router.task_probabilities(Queries.of(test))
    without = router.task_probabilities(Queries(embeddings=test.embeddings))
    assert (with_texts.argmax(axis=1) == truth).mean() > 0.98
    assert (without.argmax(axis=1) == truth).mean() < 0.5  # the embeddings alone: about chance (1/3)
    # the two classifiers' mean: the words' is sure, the embeddings' is not, so the right task keeps over half
    assert (with_texts[np.arange(len(truth)), truth] > 0.5).mean() > 0.98
    assert routed_mu(router, test) > 0.85 > routed_mu(BestSingleRouter().fit(train), test) + 0.3  # 0.9 vs 0.5


def test_a_task_router_fitted_with_texts_serves_them_after_saving(tmp_path):
    from recroute.serve import ServedRouter

    class NoiseEncoder:  # what an encoder that cannot tell these tasks apart gives
        model = "noise"

        def encode(self, texts):
            return np.random.default_rng(len(texts)).normal(size=(len(texts), 16)).astype(np.float32)

    router = TaskRouter().fit(worded_world())
    assert len(router.terms_) > 100 and router.text_coef_.shape == (3, len(router.terms_))
    loaded, manifest = load_router(save_router(router, tmp_path / "task", embedding_model="noise",
                                               embedding_dim=16, data_source="synthetic"))
    test = worded_world(n=60, seed=7, prefix="t")
    np.testing.assert_allclose(loaded.score(Queries.of(test)), router.score(Queries.of(test)), atol=1e-6)
    ranked = ServedRouter(loaded, NoiseEncoder(), manifest).rank(list(test.prompts), k=1)
    assert [row[0]["llm"] for row in ranked] == [f"llm{g[-1]}" for g in test.groups]


def test_auto_judges_the_task_router_by_its_held_out_prompts_words():
    """auto's out-of-fold predictions read the held-out prompts' texts as a served prompt's would be read:
    without them task would look no better than chance here, and auto would route like the best single LLM."""
    train, test = worded_world(), worded_world(n=300, seed=6, prefix="t")
    router = AutoRouter(seed=0).fit(train)
    assert "task" in router.chosen_["routes_with"]
    assert routed_mu(router, test) > routed_mu(BestSingleRouter().fit(train), test) + 0.3


def test_a_text_classifier_is_fitted_once_for_the_same_prompts_and_tasks_and_answers_as_a_fresh_one():
    """Every pool of an evaluation split (and auto's folds in each) fits task on the same prompts: the
    classifier of their words is reused, not refitted, and its kept probabilities are a fresh fit's."""
    from recroute.routers.task import WordClassifier

    train, test = worded_world(), worded_world(n=60, seed=7, prefix="t")
    first = TaskRouter().fit(train)
    again = TaskRouter().fit(train.subset(models=["llm0", "llm2"]))  # another pool, the same prompts
    assert again._words is first._words
    relabelled = TaskRouter().fit(replace(train, groups=np.roll(train.groups, 1)))._words  # other tasks
    assert relabelled is not first._words
    assert TaskRouter().fit(train.subset(prompts=np.arange(1, train.n_prompts)))._words is not first._words
    reworded = train.prompts.copy()
    reworded[-1] += " again"  # the same tasks, one prompt's words other
    assert TaskRouter().fit(replace(train, prompts=reworded))._words is not first._words
    kept = [first.task_probabilities(Queries.of(test)) for _ in range(2)]
    np.testing.assert_allclose(kept[1], kept[0], atol=0)
    texts = list(test.prompts)
    for words in (first._words, relabelled):  # each keeps its own, for each list (even of the same length)
        fresh = WordClassifier(*(a.copy() for a in (words.terms, words.idf, words.coef, words.intercept)))
        for asked in (texts, texts[::-1]):
            np.testing.assert_allclose(words.probabilities(asked), fresh._probabilities(asked), atol=1e-6)
    with pytest.raises(ValueError):  # shared arrays cannot be changed through one router
        first.text_coef_[0, 0] = 1.0


def test_what_is_kept_tells_apart_texts_that_join_to_the_same_string_and_their_tasks():
    from recroute.routers.task import _digest

    assert len({_digest(["ab", "c"]), _digest(["a", "bc"]), _digest(["a\0bc"]), _digest(["abc"])}) == 4
    assert len({_digest(["a"], np.array([0])), _digest(["a"], np.array([1])), _digest(["a"])}) == 3


def test_only_the_most_recently_used_few_classifiers_and_probabilities_are_kept():
    """What is kept for reuse stays bounded: the entry used longest ago goes first."""
    from collections import OrderedDict

    from recroute.routers.task import _remember

    kept, made = OrderedDict(), []
    for key in (b"a", b"b", b"a", b"c", b"a", b"b"):
        assert _remember(kept, key, lambda: made.append(key) or key.upper(), 2) == key.upper()
    assert made == [b"a", b"b", b"c", b"b"] and list(kept) == [b"a", b"b"]


def test_task_router_without_texts_or_shared_words_reads_the_embeddings_alone():
    train = blob_world(n=300)
    assert not hasattr(TaskRouter().fit(train), "terms_")  # no texts
    refitted = TaskRouter().fit(worded_world()).fit(replace(worded_world(), prompts=None))
    assert not hasattr(refitted, "terms_") and refitted._words is None  # nor an earlier fit's classifier
    unique = replace(train, prompts=np.array([chr(0x4E00 + i) for i in range(300)], dtype=object))
    router = TaskRouter().fit(unique)  # one character each: no n-gram in two prompts
    assert not hasattr(router, "terms_")
    queries = Queries.of(unique)
    np.testing.assert_allclose(router.task_probabilities(queries),
                               router.task_probabilities(Queries(embeddings=unique.embeddings)))


def test_rare_tasks_are_pooled_and_without_two_tasks_the_task_router_is_the_best_single_llm():
    train = blob_world(n=600)
    groups = train.groups.copy()
    groups[:5] = [f"once{i}" for i in range(5)]  # five tasks of one prompt each
    pooled = TaskRouter(min_task=2).fit(make_data(train.scores, train.embeddings, groups=groups))
    assert sorted(pooled.tasks_) == ["<other>", "blob0", "blob1", "blob2", "blob3"]
    queries = Queries.of(train)
    for groups in (None, ["same"] * 600, [f"p{i}" for i in range(600)]):  # no task, one task, every task rare
        router = TaskRouter().fit(make_data(train.scores, train.embeddings, groups=groups))
        assert len(router.tasks_) == 1
        assert np.array_equal(router.route(queries), BestSingleRouter().fit(train).route(queries))


# -- knn regression ----------------------------------------------------------
def test_knn_regression_is_the_similarity_weighted_mean_of_the_neighbours_scores():
    embeddings = [[1, 0], [0.8, 0.6], [0, 1]]
    data = make_data([[1.0, 0.0], [0.0, 0.5], [0.2, 0.2]], embeddings)
    router = KNNRegressionRouter(k=2).fit(data)
    # the query [1, 0] has similarity 1 with prompt 0 and 0.8 with prompt 1
    scores = router.score(Queries(embeddings=np.array([[2.0, 0.0]])))
    np.testing.assert_allclose(scores[0], [(1 * 1.0 + 0.8 * 0.0) / 1.8, (1 * 0.0 + 0.8 * 0.5) / 1.8], atol=1e-6)


def test_knn_regression_skips_unobserved_neighbours_for_that_llm_only():
    data = make_data([[1.0, np.nan], [0.0, 0.5]], [[1, 0], [1, 0.1]])
    scores = KNNRegressionRouter(k=2).fit(data).score(Queries(embeddings=np.array([[1.0, 0.0]])))
    assert scores[0, 1] == pytest.approx(0.5)
    assert 0.0 < scores[0, 0] < 1.0


def test_knn_regression_chooses_a_large_k_when_outcomes_are_noisy():
    train, test = blob_world(), blob_world(n=400, seed=4, prefix="t")
    router = KNNRegressionRouter(seed=1).fit(train)
    assert int(router.k_) >= 20  # 0/1 outcomes: a handful of neighbours is mostly noise
    assert routed_mu(router, test) > routed_mu(BestSingleRouter().fit(train), test) + 0.3


# -- ridge -------------------------------------------------------------------
def test_ridge_recovers_a_linear_world_on_new_prompts():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(3000, 8))
    unit = x / np.linalg.norm(x, axis=1, keepdims=True)
    weights, bias = rng.normal(size=(8, 3)), np.array([0.1, 0.2, 0.3])
    scores = unit @ weights + bias + rng.normal(scale=0.01, size=(3000, 3))
    train, test = make_data(scores[:2500], x[:2500]), make_data(scores[2500:], x[2500:])
    router = RidgeRouter().fit(train)
    predicted = router.score(Queries.of(test))
    np.testing.assert_allclose(predicted, unit[2500:] @ weights + bias, atol=0.02)
    assert np.all(router.alpha_ <= 1.0)  # almost noiseless: cross-validation keeps the penalty small


def difficulty_world(n, seed) -> RoutingData:
    """Two LLMs track the same, very predictable difficulty; llm1 is better by 0.1 everywhere but noisy."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 8))
    difficulty = 2 * x[:, 0] / np.linalg.norm(x, axis=1)
    return make_data(np.stack([difficulty + rng.normal(0, 0.02, n), difficulty + 0.1 + rng.normal(0, 1.0, n)],
                              axis=1), x)


def test_ridge_does_not_read_a_prompts_difficulty_as_one_llm_being_better_on_it():
    """A penalty per LLM on raw scores shrank llm1's share of the difficulty more than llm0's and sent a
    fifth of the prompts to llm0 (0.74-0.86 to llm1); regressing the prompt's mean and the LLMs' differences
    apart sends every prompt to llm1."""
    for seed in (0, 1, 2):
        router = RidgeRouter().fit(difficulty_world(1000, seed))
        assert np.all(router.route(Queries.of(difficulty_world(1000, seed + 100))) == 1)


def test_ridge_fits_the_llms_jointly_where_a_few_prompts_lack_one_of_them():
    train = difficulty_world(1000, 0)
    holes = train.scores.copy()
    holes[::25, 0] = np.nan  # 4% of the prompts lack llm0 (RouterBench: 28 of 3,178 lack one LLM or more)
    router = RidgeRouter().fit(replace(train, scores=holes))
    assert router.alpha_[0] == router.alpha_[1]
    assert np.all(router.route(Queries.of(difficulty_world(1000, 100))) == 1)
    rows = ~np.isnan(holes).any(axis=1)  # the prompts lacking an LLM play no part in the joint fit
    complete, test = RidgeRouter().fit(make_data(train.scores[rows], train.embeddings[rows])), difficulty_world(100, 9)
    np.testing.assert_allclose(router.score(Queries.of(test)), complete.score(Queries.of(test)), atol=1e-6)
    edge = train.scores.copy()
    edge[:100, 0] = np.nan  # exactly DENSE_SHARE of the prompts answered by both: still joint
    joint = RidgeRouter().fit(replace(train, scores=edge))
    assert joint.alpha_[0] == joint.alpha_[1]
    edge[100, 0] = np.nan  # one prompt fewer: each LLM its own
    below = RidgeRouter().fit(replace(train, scores=edge))
    assert below.alpha_[0] < below.alpha_[1]
    sparse = train.scores.copy()
    sparse[::2, 0] = sparse[1::4, 1] = np.nan  # a log: a quarter of the prompts have both LLMs, the rest one
    own = RidgeRouter().fit(replace(train, scores=sparse))
    assert own.alpha_[0] < own.alpha_[1]  # each its own penalty: llm1's noise wants the larger


def test_ridge_fits_the_prompts_mean_score_and_each_llms_difference_from_it_as_sklearn_does():
    from sklearn.linear_model import RidgeCV

    train, test = difficulty_world(1000, 0), difficulty_world(100, 9)
    router = RidgeRouter().fit(train)
    x, unit = (d.embeddings / np.linalg.norm(d.embeddings, axis=1, keepdims=True) for d in (train, test))
    mean = train.scores.mean(axis=1)
    level = RidgeCV(alphas=list(router.alphas)).fit(x, mean)
    difference = RidgeCV(alphas=list(router.alphas)).fit(x, train.scores - mean[:, None])
    predicted = router.score(Queries.of(test))
    np.testing.assert_allclose(predicted.mean(axis=1), level.predict(unit), atol=1e-4)
    np.testing.assert_allclose(predicted - predicted.mean(axis=1, keepdims=True), difference.predict(unit), atol=1e-4)
    assert np.all(router.alpha_ == difference.alpha_) and level.alpha_ != difference.alpha_  # 0.1 and 1000


def test_ridge_weighs_records_by_propensity_in_a_regression_per_llm_though_every_llm_answered_every_prompt():
    from sklearn.linear_model import RidgeCV

    train = difficulty_world(1000, 0)
    logged = replace(train, propensity=np.random.default_rng(3).uniform(0.1, 1.0, size=train.scores.shape))
    router = RidgeRouter(logging_clip=5.0).fit(logged)
    weights, test = propensity_weights(logged, 5.0), difficulty_world(100, 9)
    x, unit = (d.embeddings / np.linalg.norm(d.embeddings, axis=1, keepdims=True) for d in (train, test))
    for j in range(2):
        own = RidgeCV(alphas=list(router.alphas)).fit(x, train.scores[:, j], sample_weight=weights[:, j])
        np.testing.assert_allclose(router.score(Queries.of(test))[:, j], own.predict(unit), atol=1e-4)
        assert router.alpha_[j] == own.alpha_
    assert router.alpha_[0] < router.alpha_[1]


def test_ridge_fits_an_llm_with_unobserved_cells_on_the_prompts_it_answered():
    rng = np.random.default_rng(1)
    x = rng.normal(size=(400, 4))
    unit = x / np.linalg.norm(x, axis=1, keepdims=True)
    scores = np.stack([unit[:, 0], unit[:, 1]], axis=1)
    scores[::2, 1] = np.nan
    router = RidgeRouter(alphas=(0.01,)).fit(make_data(scores, x))
    np.testing.assert_allclose(router.score(Queries(embeddings=x[1::2]))[:, 1], unit[1::2, 1], atol=0.02)


# -- auto --------------------------------------------------------------------
def test_auto_beats_the_best_single_llm_clearly_where_there_is_something_to_learn():
    train, test = blob_world(), blob_world(n=400, seed=4, prefix="t")
    router = AutoRouter().fit(train)
    assert router.chosen_["routes_with"] != "best single LLM"
    assert routed_mu(router, test) > routed_mu(BestSingleRouter().fit(train), test) + 0.3


@pytest.mark.parametrize("seed", [3, 5, 8])
def test_auto_routes_like_the_best_single_llm_where_there_is_nothing_to_learn(seed):
    train = blob_world(seed=seed, learnable=False)
    test = blob_world(n=400, seed=seed + 100, prefix="t", learnable=False)
    router = AutoRouter().fit(train)
    assert router.chosen_["routes_with"] == "best single LLM"
    assert np.array_equal(router.route(Queries.of(test)), BestSingleRouter().fit(train).route(Queries.of(test)))


def test_auto_keeps_no_member_its_final_stack_weighs_zero(monkeypatch, tmp_path):
    import recroute.routers.auto as auto_module

    train = blob_world(n=600)
    fitted_stack = auto_module._stack

    def zero_on_all_prompts(features, truth, records):  # the cross-fitted stacks stay; the final one weighs 0
        weights, bias = fitted_stack(features, truth, records)
        return (np.zeros_like(weights) if features.shape[1] == train.n_prompts else weights), bias

    monkeypatch.setattr(auto_module, "_stack", zero_on_all_prompts)
    router = AutoRouter(candidates=("cluster", "ridge"), confidence=0.0).fit(train)
    assert router.cv_[0] > 0  # the cross-validated gain cleared the threshold: the zero stack, not it, left none
    assert router.chosen_["routes_with"] == "best single LLM" and router.member_routers_ == []
    assert router.weights_.shape == (0,) and float(router.margin_) == 0.0
    save_router(router, tmp_path / "router", embedding_model="test", data_source="synthetic", embedding_dim=16)
    assert not [key for key in np.load(tmp_path / "router" / ARRAYS) if key.startswith("member.")]
    test = blob_world(n=200, seed=4, prefix="t")
    assert np.array_equal(router.route(Queries.of(test)), BestSingleRouter().fit(train).route(Queries.of(test)))


def test_auto_best_margin_is_the_quantile_gaining_most_with_the_gains_sample_deviation():
    from recroute.routers.auto import _best_margin

    # LLM 1's predicted gain over LLM 0 (the best single) is 0.3, 0.2, 0.1, 0 (it is predicted worse on prompt 3);
    # it is truly better by 1 on prompts 0, 2 and 3 and worse by 1 on prompt 1
    stacked = np.array([[0.0, 0.3], [0.0, 0.2], [0.0, 0.1], [0.0, -0.1]])
    truth = np.array([[0.0, 1.0], [1.0, 0.0], [0.0, 1.0], [0.0, 1.0]])
    margin, gain, spread, share = _best_margin(stacked, truth, np.zeros(4, dtype=np.intp), np.ones((4, 2)))
    # margins 0 and 0.075 reroute prompts 0-2 (gains 1, -1, 1, 0: mean 0.25), 0.15 prompts 0-1 (0), 0.225 and
    # 0.27 prompt 0 (0.25, no more than the first): the first of the best wins
    assert margin == 0.0 and gain == pytest.approx(0.25) and share == pytest.approx(0.75)
    assert spread == pytest.approx(np.std([1, -1, 1, 0], ddof=1))  # the sample deviation: sqrt(2.75 / 3)


def test_auto_best_margin_keeps_a_prompt_whose_predicted_gain_only_equals_the_margin():
    from recroute.routers.auto import _best_margin

    # predicted gains 4, 3, 2, 1, 0 over LLM 0: the quantiles 0, 1, 2, 3, 3.6 fall on them exactly; rerouting
    # truly gains 1 on prompts 0-2 and loses 1 on prompt 3
    stacked = np.array([[0.0, 4.0], [0.0, 3.0], [0.0, 2.0], [0.0, 1.0], [0.0, 0.0]])
    truth = np.array([[0.0, 1.0], [0.0, 1.0], [0.0, 1.0], [1.0, 0.0], [0.0, 0.0]])
    margin, gain, _, share = _best_margin(stacked, truth, np.zeros(5, dtype=np.intp), np.ones((5, 2)))
    # a gain must clear the margin: margin 1 reroutes prompts 0-2 only (mean 3 / 5), the best; were a gain equal to
    # the margin enough, margin 1 would reroute prompt 3 too (2 / 5) and margin 2 would win instead
    assert margin == 1.0 and gain == pytest.approx(0.6) and share == pytest.approx(0.6)


@pytest.mark.parametrize("n", [50, 137, 600, 999, 1000])
@pytest.mark.parametrize("won", [0.3, 0.7, 1.0])
def test_auto_never_deviates_on_a_gain_that_rests_on_one_prompt(n, won):
    from recroute.routers.auto import _clears

    # one prompt gains ``won``, the rest nothing: the mean gain equals its standard error exactly (ddof=1)
    one, two = np.zeros(n), np.zeros(n)
    one[0] = two[:2] = won
    assert not _clears(one.mean(), one.std(ddof=1), n, 1.0)
    assert _clears(two.mean(), two.std(ddof=1), n, 1.0)  # two prompts: sqrt(2 (n-1) / (n-2)) errors
    assert _clears(one.mean(), one.std(ddof=1), n, 0.0)


@pytest.mark.parametrize("confidence, routes", [(None, True), (2.0, False)])
def test_auto_deviates_when_its_cross_validated_gain_clears_one_standard_error_by_default(monkeypatch, confidence,
                                                                                         routes):
    import recroute.routers.auto as auto_module

    train = blob_world(n=600)
    measured = auto_module._best_margin

    def one_and_a_half_errors(stacked, truth, best_single, records):  # the same choice, its gain set to 1.5 SE
        margin, _, spread, share = measured(stacked, truth, best_single, records)
        return margin, 1.5 * spread / np.sqrt(len(truth)), spread, share

    monkeypatch.setattr(auto_module, "_best_margin", one_and_a_half_errors)
    router = AutoRouter(candidates=("cluster",), **({} if confidence is None else {"confidence": confidence}))
    router.fit(train)
    gain, se, _ = router.cv_
    assert gain == pytest.approx(1.5 * se)
    assert (router.chosen_["routes_with"] != "best single LLM") is routes


class SpyRouter(Router):
    """Records the prompts it is fitted on and the embeddings it is asked to score."""

    fitted: list = []
    scored: list = []

    def _fit(self, train):
        SpyRouter.fitted.append(set(train.prompt_ids.tolist()))
        self.means_ = np.nanmean(train.scores, axis=0)

    def _score(self, queries, columns):
        SpyRouter.scored.append(queries.embeddings.copy())
        return np.broadcast_to(self.means_[columns], (len(queries), len(columns)))


def test_auto_cross_validates_on_its_training_prompts_only(monkeypatch):
    monkeypatch.setitem(ROUTERS, "spy", SpyRouter)
    monkeypatch.setitem(PARAMS, "spy", {})  # a registered router declares its hyperparameters (none)
    monkeypatch.setattr(SpyRouter, "fitted", [])
    monkeypatch.setattr(SpyRouter, "scored", [])
    train = blob_world(n=300)
    AutoRouter(candidates=("spy",), folds=3).fit(train)
    ids, rows = train.prompt_ids.tolist(), {tuple(e) for e in train.embeddings.tolist()}
    assert SpyRouter.fitted[0] == set(ids) and len(SpyRouter.fitted) == 4  # all training prompts, then 3 folds
    for fitted, scored in zip(SpyRouter.fitted[1:], SpyRouter.scored):
        scored_rows = {tuple(s) for s in scored.tolist()}
        assert scored_rows <= rows
        held = {ids[i] for i, e in enumerate(train.embeddings.tolist()) if tuple(e) in scored_rows}
        assert held and fitted <= set(ids) and not held & fitted  # each fold is scored by a router that never saw it


def test_auto_refuses_itself_as_a_candidate():
    with pytest.raises(RecrouteError, match="other than itself"):
        AutoRouter(candidates=("auto",)).fit(blob_world(n=100))


@pytest.mark.parametrize("name", ["cluster", "knnreg", "ridge", "task", "auto"])
def test_saved_routers_serve_the_same_scores(tmp_path, name):
    train, test = blob_world(n=600), blob_world(n=50, seed=4, prefix="t")
    router = ROUTERS[name]().fit(train)
    save_router(router, tmp_path / name, embedding_model="test", data_source="synthetic")
    loaded, manifest = load_router(tmp_path / name)
    np.testing.assert_allclose(loaded.score(Queries.of(test)), router.score(Queries.of(test)), atol=1e-5)
    assert loaded.get_params() == router.get_params()  # the manifest's JSON lists come back as tuples
    if name == "auto":
        assert loaded.chosen_ == router.chosen_


@pytest.mark.parametrize("name, params", [
    ("cluster", dict(k=None, k_grid=[1, 2, 4], min_cluster=0, prior=0.0, folds=2, niter=5, restarts=1, seed=7,
                         logging_clip=5.0)),
    ("knnreg", dict(k=3, k_grid=(5, 10), folds=3, seed=1, logging_clip=None)),
    ("ridge", dict(alphas=[0.5, 2], logging_clip=20.0)),
    ("task", dict(prior=0.0, min_task=3, logging_clip=4.0)),
    ("auto", dict(candidates=["ridge", "als"], folds=3, confidence=0.0, seed=2, logging_clip=3.0)),
])
def test_the_new_routers_hyperparameters_are_declared(name, params):
    router = make_router(name, **params)
    assert router.get_params() == {k: tuple(v) if isinstance(v, list) else v for k, v in params.items()}


@pytest.mark.parametrize("name, params, fragment", [
    ("cluster", dict(k_grid=[4, 0]), "k_grid must be a non-empty list, each an integer at least 1"),
    ("cluster", dict(k_grid=[]), "k_grid must be a non-empty list"),
    ("cluster", dict(k_grid=8), "k_grid must be a non-empty list"),
    ("cluster", dict(prior=-1), "prior must be a number at least 0"),
    ("knnreg", dict(k_grid=[5, 2.5]), "k_grid must be a non-empty list, each an integer"),
    ("knnreg", dict(folds=1), "folds must be an integer at least 2"),
    ("ridge", dict(alphas=[1.0, 0]), "alphas must be a non-empty list, each a number at least"),
    ("task", dict(min_task=0), "min_task must be an integer at least 1"),
    ("auto", dict(candidates=["ridge", "auto"]), "candidates must be a non-empty list, each one of 'cluster'"),
    ("auto", dict(candidates="ridge"), "candidates must be a non-empty list"),
    ("auto", dict(confidence=float("nan")), "confidence must be a number"),
])
def test_a_bad_hyperparameter_of_the_new_routers_is_refused(name, params, fragment):
    with pytest.raises(RecrouteError, match="must be") as info:
        make_router(name, **params)
    assert fragment in str(info.value), str(info.value)


@pytest.fixture(scope="module")
def saved_auto(tmp_path_factory):
    """An auto router that routes with ridge alone, though cluster was a candidate too."""
    router = AutoRouter(candidates=("cluster", "ridge"), confidence=0.0).fit(blob_world(n=600))
    router.members_, router.weights_, router.member_routers_ = np.array(["ridge"]), np.ones(1), [
        RidgeRouter().fit(blob_world(n=600))]
    folder = tmp_path_factory.mktemp("auto") / "router"
    save_router(router, folder, embedding_model="test", data_source="synthetic", embedding_dim=16)
    return folder


def _cluster_arrays(arrays):
    cluster = ClusterRouter(k=2).fit(blob_world(n=600))
    return {**arrays, **{f"member.cluster.{key}": value for key, value in cluster.state().items()}}


@pytest.mark.parametrize("change, fragment", [
    (lambda a: {k: v for k, v in a.items() if k != "member.ridge.coef_"}, "lacks the array 'member.ridge.coef_'"),
    (lambda a: {**a, "member.ridge.extra_": np.zeros(3)}, "holds an unexpected array 'member.ridge.extra_'"),
    (lambda a: {**a, "member.knn.labels_": np.zeros(3)}, "holds an unexpected array 'member.knn.labels_'"),
    (_cluster_arrays, "holds arrays of 'cluster', which it does not route with"),
    (lambda a: {**a, "members_": np.array(["knn"])}, "routes with 'knn', which is not one of its candidates"),
    (lambda a: {**a, "member.ridge.coef_": a["member.ridge.coef_"][:, :3]}, "'member.ridge.coef_' has shape"),
    (lambda a: {**a, "member.ridge.alpha_": a["member.ridge.alpha_"].astype(str)}, "'member.ridge.alpha_' has dtype"),
    (lambda a: {**a, "weights_": np.ones(2)}, "'weights_' has shape (2,), expected (1,)"),
])
def test_an_auto_folder_holds_exactly_its_members_arrays(saved_auto, tmp_path, change, fragment):
    assert load_router(saved_auto)[0].chosen_["routes_with"] == ["ridge"]
    folder = tmp_path / "router"
    shutil.copytree(saved_auto, folder)
    _assert_refused_once_damaged(folder, change, fragment)


@pytest.mark.parametrize("name, change, fragment", [
    ("knnreg", lambda a: {**a, "k_": np.array(0)}, "no neighbours to score with"),
    ("knnreg", lambda a: {**a, "k_": np.array(5.0)}, "'k_' has dtype float64, not integers"),
    ("knnreg", lambda a: {**a, "scores_": a["scores_"][:-1]}, "'scores_' has shape"),
    ("cluster", lambda a: {**a, "centroids_": a["centroids_"][:0], "cluster_scores_": a["cluster_scores_"][:0]},
     "no clusters to route with"),
    ("cluster", lambda a: {k: v for k, v in a.items() if k != "cluster_scores_"}, "lacks the array 'cluster_scores_'"),
    ("ridge", lambda a: {**a, "intercept_": np.full_like(a["intercept_"], np.nan)}, "'intercept_' holds NaN"),
    ("task", lambda a: {**a, "coef_": a["coef_"][:-1]}, "'coef_' has shape"),
    ("task", lambda a: {**a, "tasks_": np.zeros(len(a["tasks_"]), dtype=np.float32)}, "'tasks_' has dtype"),
])
def test_a_damaged_folder_of_a_new_router_is_refused(tmp_path, name, change, fragment):
    folder = save_router(ROUTERS[name]().fit(blob_world(n=600)), tmp_path / name, embedding_model="test")
    _assert_refused_once_damaged(folder, change, fragment)


@pytest.mark.parametrize("change, fragment", [
    (lambda a: {k: v for k, v in a.items() if k != "idf_"},
     "holds the text classifier's 'terms_' but lacks its 'idf_'"),
    (lambda a: {**a, "idf_": a["idf_"][:-1]}, "'idf_' has shape"),
    (lambda a: {**a, "text_coef_": a["text_coef_"][:, :-1]}, "'text_coef_' has shape"),
])
def test_a_damaged_text_classifier_of_a_task_router_is_refused(tmp_path, change, fragment):
    folder = save_router(TaskRouter().fit(worded_world()), tmp_path / "task", embedding_model="test")
    _assert_refused_once_damaged(folder, change, fragment)


def _assert_refused_once_damaged(folder, change, fragment):
    """Rewrite the folder's arrays through ``change``; loading must then fail naming ``fragment``."""
    with np.load(folder / ARRAYS, allow_pickle=False) as npz:
        arrays = change({key: npz[key] for key in npz.files})
    with open(folder / ARRAYS, "wb") as f:
        np.savez(f, **arrays)
    with pytest.raises(RecrouteError, match="the folder is corrupt") as info:
        load_router(folder)
    assert fragment in str(info.value), str(info.value)


def test_auto_weighs_float32_outcomes_in_float64_so_a_tie_with_one_standard_error_stays_a_tie():
    from recroute.routers.auto import _best_margin, _clears

    # 900 prompts, 0/1 outcomes in float32: rerouting wins on 3 prompts and loses on 1, so the mean gain (2/900)
    # equals its standard error exactly ((k+ - k-)^2 = k+ + k-); in float32 the two differ by ~1e-7 and rounding decides
    n = 900
    truth = np.zeros((n, 2), dtype=np.float32)
    truth[:, 0] = 1
    truth[:3] = [0, 1]
    stacked = np.zeros((n, 2))
    stacked[:4, 1] = 1  # the first four prompts are predicted better on LLM 1: three truly are, one is not
    _, gain, spread, _ = _best_margin(stacked, truth, np.zeros(n, dtype=np.intp), np.ones((n, 2), dtype=np.float32))
    assert gain == pytest.approx(2 / n) and spread / np.sqrt(n) == pytest.approx(2 / n)
    assert not _clears(gain, spread, n, 1.0)
