"""RouterEval's own pool selection and split (``protocol="routereval"``), pinned on matrices worked out by hand.

The reference is RouterEval's ``get_router_dataset.py``: LLMs sorted by mean
score ascending, kept from the first with mean > 0.1 up to the first with
mean > 0.9; windows of m adjacent LLMs among w = max(⌊n/5⌋, m); strata
draws from numpy's legacy generator seeded with 42; per-group shuffles
seeded with the split seed, cut at int(0.8 n) and int(0.9 n).
"""
from __future__ import annotations

import numpy as np
import pytest

from recroute.data import RoutingData
from recroute.errors import RecrouteError
from recroute.protocol import evaluate, routereval_pools, routereval_split
from recroute.routers import Queries, make_router

PROMPTS = 20


def correct_on(*prompts) -> np.ndarray:
    column = np.zeros(PROMPTS, dtype=np.float32)
    column[list(prompts)] = 1
    return column


# 15 LLMs over 20 prompts, named by their rank from the weakest (L0) to the strongest (L14).
# n // 5 = 3, so w = max(3, m).
LADDER = {
    "L0": correct_on(),                      # mean 0.00: below the 0.1 bound
    "L1": correct_on(0, 1),                  # mean 0.10: not above 0.1, left out too
    "L2": correct_on(*range(0, 4)),          # 0.20  first kept
    "L3": correct_on(*range(4, 9)),          # 0.25
    "L4": correct_on(*range(0, 6)),          # 0.30
    "L5": correct_on(*range(0, 7)),          # 0.35
    "L6": correct_on(*range(0, 8)),          # 0.40
    "L7": correct_on(*range(0, 9)),          # 0.45
    "L8": correct_on(*range(0, 10)),         # 0.50
    "L9": correct_on(*range(0, 12)),         # 0.60
    "L10": correct_on(*range(0, 14)),        # 0.70
    "L11": correct_on(*range(0, 15)),        # 0.75
    "L12": correct_on(*range(2, 20)),        # 0.90  last kept: not above 0.9
    "L13": correct_on(*range(0, 19)),        # 0.95  first above 0.9: the kept range ends before it
    "L14": correct_on(*range(0, 20)),        # 1.00
}
SHUFFLE = [11, 3, 14, 0, 7, 9, 1, 12, 5, 2, 13, 8, 4, 10, 6]  # column order is not strength order
NAMES = [f"L{i}" for i in SHUFFLE]
SCORES = np.stack([LADDER[name] for name in NAMES], axis=1)


def names(columns) -> list[str]:
    return [NAMES[j] for j in columns]


def pools(sizes, groups=("all_strong", "all_weak", "strong_to_weak")):
    found, skipped = routereval_pools(SCORES, sizes, groups)
    return {(m, group): names(columns) for m, group, columns in found}, skipped


def test_all_weak_window_ties_go_to_the_first_window():
    # m = 2, w = 3: candidates L2, L3, L4. Oracle of (L2, L3): prompts 0-8 = 0.45; of (L3, L4): 0-8 = 0.45.
    found, _ = pools([2], ["all_weak"])
    assert found[(2, "all_weak")] == ["L2", "L3"]


def test_all_weak_window_slides_over_w_llms_not_just_the_m_weakest():
    # L4 answering prompts 9-14 instead (mean still 0.30): (L3, L4) answers 4-14 = 0.55 > (L2, L3)'s 0.45
    scores = SCORES.copy()
    scores[:, NAMES.index("L4")] = correct_on(*range(9, 15))
    found, _ = routereval_pools(scores, [2], ["all_weak"])
    assert names(found[0][2]) == ["L3", "L4"]


def test_all_strong_window_is_the_best_of_the_top_w():
    # m = 2, w = 3: candidates L10, L11, L12 (L13 and L14 are above 0.9).
    # Oracle of (L10, L11): prompts 0-14 = 0.75; of (L11, L12): prompts 0-19 = 1.0.
    found, _ = pools([2], ["all_strong"])
    assert found[(2, "all_strong")] == ["L11", "L12"]


def test_window_width_grows_to_m_and_pools_are_listed_weakest_first():
    # m = 4 > n // 5: w = 4, one window each; all_strong ends at L12, the last kept LLM.
    found, _ = pools([4], ["all_weak", "all_strong"])
    assert found[(4, "all_weak")] == ["L2", "L3", "L4", "L5"]
    assert found[(4, "all_strong")] == ["L9", "L10", "L11", "L12"]


def test_strong_to_weak_draws_one_llm_per_stratum():
    # 11 kept LLMs (L2..L12) in 3 strata of 4, 4 and 3.
    found, _ = pools([3], ["strong_to_weak"])
    pool = found[(3, "strong_to_weak")]
    assert pool[0] in {"L2", "L3", "L4", "L5"}
    assert pool[1] in {"L6", "L7", "L8", "L9"}
    assert pool[2] in {"L10", "L11", "L12"}
    # L3 (prompts 4-8) and L12 (prompts 2-19) together answer prompts 2-19; only L2 or L4..L11 add
    # prompts 0-1, so every best draw answers all 20 prompts: L12 with a weak LLM covering 0 and 1.
    columns = [NAMES.index(name) for name in pool]
    assert SCORES[:, columns].max(axis=1).mean() == 1.0


def test_strong_to_weak_is_the_first_best_of_1000_legacy_draws():
    """An independent, literal rendering of RouterEval's loop: np.random.seed(42), one np.random.choice per
    stratum, keep a draw only when strictly better."""
    order = np.argsort(SCORES.mean(axis=0))
    kept = order[2:13]
    strata = [kept[0:4], kept[4:8], kept[8:11]]
    np.random.seed(42)
    best, best_value = None, -np.inf
    for _ in range(1000):
        draw = [np.random.choice(stratum) for stratum in strata]
        value = np.mean(np.max(SCORES[:, draw].T, axis=0))
        if value > best_value:
            best, best_value = draw, value
    found, _ = pools([3], ["strong_to_weak"])
    assert found[(3, "strong_to_weak")] == names(best)


def test_two_strata_sizes_put_the_extra_llm_first():
    # 11 kept, m = 5: strata of 3, 2, 2, 2, 2.
    found, _ = pools([5], ["strong_to_weak"])
    pool = found[(5, "strong_to_weak")]
    strata = [{"L2", "L3", "L4"}, {"L5", "L6"}, {"L7", "L8"}, {"L9", "L10"}, {"L11", "L12"}]
    assert all(name in stratum for name, stratum in zip(pool, strata))


def test_pool_sizes_the_kept_llms_cannot_fill_are_skipped_with_a_sentence():
    found, skipped = pools([3, 11, 12, 100])
    assert {m for m, _ in found} == {3, 11}
    assert skipped == {
        12: "pool size 12 skipped: only 11 of 15 LLMs have a mean score above 0.1 and at most 0.9.",
        100: "pool size 100 skipped: only 11 of 15 LLMs have a mean score above 0.1 and at most 0.9.",
    }
    # m = 11 takes every kept LLM in each group
    assert found[(11, "strong_to_weak")] == [f"L{i}" for i in range(2, 13)]


def test_pools_refuse_bad_sizes_and_groups():
    with pytest.raises(RecrouteError, match="pool size 0"):
        routereval_pools(SCORES, [0])
    with pytest.raises(RecrouteError, match="'al_weak'"):
        routereval_pools(SCORES, [3], ["al_weak"])


# -- the split ----------------------------------------------------------------------
def test_split_shuffles_each_group_in_order_of_first_appearance():
    # group b first appears before group a; sizes 10 (b), 7 (a), 3 (c)
    groups = np.array(list("bbabaabbbab") + list("abbbaacc") + ["c"])
    data = RoutingData(scores=np.zeros((20, 2)), prompt_ids=[f"p{i}" for i in range(20)], models=["x", "y"],
                       groups=groups)
    split = routereval_split(data, seed=7)
    # int(0.8 * 10) = 8, int(0.9 * 10) = 9; int(0.8 * 7) = 5, int(0.9 * 7) = 6; int(0.8 * 3) = 2, int(0.9 * 3) = 2
    assert (split.train.n_prompts, split.val.n_prompts, split.test.n_prompts) == (8 + 5 + 2, 1 + 1 + 0, 1 + 1 + 1)
    # RouterEval's loop, written out: one seed per split, one shuffle per group, parts concatenated in group order
    np.random.seed(7)
    expected = ([], [], [])
    for name in "bac":
        members = np.flatnonzero(groups == name)
        np.random.shuffle(members)
        a, b = int(0.8 * len(members)), int(0.9 * len(members))
        for part, chunk in zip(expected, (members[:a], members[a:b], members[b:])):
            part.extend(f"p{i}" for i in chunk)
    assert [list(part.prompt_ids) for part in split] == list(expected)


def test_split_without_groups_is_one_shuffle_of_every_prompt():
    data = RoutingData(scores=np.zeros((10, 2)), prompt_ids=[f"p{i}" for i in range(10)], models=["x", "y"])
    split = routereval_split(data, seed=42)
    order = np.random.RandomState(42).permutation(10)  # shuffle and permutation draw alike
    assert list(split.train.prompt_ids) == [f"p{i}" for i in order[:8]]
    assert list(split.val.prompt_ids) == [f"p{order[8]}"]
    assert list(split.test.prompt_ids) == [f"p{order[9]}"]


# -- the protocol's rows on a known case -----------------------------------------------
def clustered() -> RoutingData:
    """Three clusters of 20, 30 and 40 prompts; LLM j answers exactly cluster j's prompts (means 2/9, 1/3, 4/9,
    all kept). Cluster j's prompts share one embedding direction, so 5 nearest neighbours come from the cluster."""
    sizes = [20, 30, 40]
    cluster = np.repeat(np.arange(3), sizes)
    order = np.random.default_rng(0).permutation(len(cluster))  # interleave the clusters
    cluster = cluster[order]
    scores = np.eye(3, dtype=np.float32)[cluster]
    rng = np.random.default_rng(1)
    embeddings = np.eye(3)[cluster] * 10 + rng.normal(scale=0.1, size=(len(cluster), 3))
    return RoutingData(scores=scores, prompt_ids=[f"p{i}" for i in range(len(cluster))], models=["a", "b", "c"],
                       embeddings=embeddings.astype(np.float32), source="clustered")


@pytest.mark.parametrize("seed", [42, 43])
def test_reference_and_knn_rows_on_a_known_case(seed):
    data = clustered()
    rows = evaluate(data, ["oracle", "random", "ro:0.5", "bsm", "knn"], pool_sizes=[3], groups=["all_weak"],
                    seeds=[seed], tune=False)
    by_router = {r["router"]: r for r in rows}
    test = routereval_split(data, seed).test.scores
    # int(0.9 * 90) = 81: 9 test prompts; the best single LLM on them answers its own cluster's share
    assert len(test) == 9
    best_share = test.mean(axis=0).max()
    expected_mu = {"oracle": 1.0, "random": 1 / 3, "ro:0.5": 0.5 + 0.5 / 3, "knn": 1.0}
    for router, mu in expected_mu.items():
        assert by_router[router]["mu"] == pytest.approx(mu, abs=1e-9)
        assert by_router[router]["vb"] == pytest.approx(mu / best_share, abs=1e-9)
    assert all(r["pool"] == ["a", "b", "c"] for r in rows)  # weakest first, as RouterEval lists them
    assert all(r["protocol"] == "routereval" for r in rows)


def test_knn_ties_go_to_the_first_llm_of_the_pool():
    """RouterEval's kNN takes np.argmax of the neighbours' mean labels: on a tie, the first column, which
    under this protocol is the weakest LLM of the pool."""
    rng = np.random.default_rng(0)
    data = RoutingData(scores=np.ones((30, 3)), prompt_ids=[f"p{i}" for i in range(30)], models=["a", "b", "c"],
                       embeddings=rng.normal(size=(30, 4)).astype(np.float32))
    router = make_router("knn").fit(data)  # every neighbour votes for every LLM: all tie
    queries = Queries(embeddings=rng.normal(size=(5, 4)).astype(np.float32))
    for pool in (["b", "c", "a"], ["c", "a", "b"]):
        assert router.route(queries, pool).tolist() == [0] * 5
        np.testing.assert_array_equal(router.policy(queries, pool), np.tile([1, 0, 0], (5, 1)))


def test_protocol_with_nothing_to_evaluate_says_why():
    data = clustered()
    notes = []
    with pytest.raises(RecrouteError, match="^clustered: no candidate pool to evaluate: pool size 4 skipped: only 3 of 3"):
        evaluate(data, ["oracle"], pool_sizes=[5, 4], seeds=[42], notice=notes.append)
    assert notes == []  # the error says it all, in one line
    evaluate(data, ["oracle"], pool_sizes=[3, 5], seeds=[42], notice=notes.append)
    assert notes == ["clustered: pool size 5 skipped: only 3 of 3 LLMs have a mean score above 0.1 and at most 0.9."]


def test_unknown_protocol_is_refused():
    with pytest.raises(RecrouteError, match="unknown protocol 'paper'"):
        evaluate(clustered(), ["oracle"], pool_sizes=[3], protocol="paper")


def test_routers_that_cross_validate_themselves_train_on_the_validation_prompts_too():
    """Under the protocol a router that chooses nothing on validation prompts (``trains_on_validation``) gets
    them as training prompts; the others are fitted on the training prompts alone. The test prompts never."""
    from recroute.routers import BestSingleRouter

    seen = {}

    class Spy(BestSingleRouter):
        def _fit(self, train):
            seen.setdefault(type(self).trains_on_validation, set()).update(train.prompt_ids.tolist())
            super()._fit(train)

    class SelfValidating(Spy):
        trains_on_validation = True

    data = clustered()
    evaluate(data, {"spy": Spy, "self": SelfValidating}, pool_sizes=[3], groups=["all_weak"], seeds=[42])
    split = routereval_split(data, 42)
    assert seen[False] == set(split.train.prompt_ids)
    assert seen[True] == set(split.train.prompt_ids) | set(split.val.prompt_ids)
    assert not seen[True] & set(split.test.prompt_ids)
