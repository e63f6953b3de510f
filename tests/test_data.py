"""RoutingData on small matrices whose right answers are known."""
from __future__ import annotations

from collections import Counter

import numpy as np
import pytest

from recroute.data import RoutingData
from recroute.errors import RecrouteError

nan = np.nan
SMALL = [[1.0, 0.0, nan],
         [nan, nan, 0.5],
         [0.0, nan, nan],
         [1.0, 1.0, 0.25]]


def small(**changes):
    fields = dict(scores=SMALL, prompt_ids=["p0", "p1", "p2", "p3"], models=["a", "b", "c"],
                  groups=["x", "y", "x", "y"], splits=["train", "test", "train", "val"],
                  cost=np.arange(12, dtype=float).reshape(4, 3), price=[[1, 2], [3, 4], [5, 6]], source="small")
    return RoutingData(**{**fields, **changes})


def grouped(sizes=(37, 23, 10), m=4):
    """Prompts in groups g0, g1, ... of the given sizes, random 0/1 scores."""
    n = sum(sizes)
    groups = np.repeat([f"g{k}" for k in range(len(sizes))], sizes)
    scores = np.random.default_rng(0).integers(0, 2, size=(n, m))
    return RoutingData(scores=scores, prompt_ids=[f"p{i}" for i in range(n)], models=[f"m{j}" for j in range(m)],
                       groups=groups)


def test_observed_mask_tells_zero_from_missing():
    data = small()
    np.testing.assert_array_equal(data.observed, [[1, 1, 0], [0, 0, 1], [1, 0, 0], [1, 1, 1]])
    assert data.scores[0, 1] == 0 and data.observed[0, 1]
    assert data.missing_fraction == 5 / 12
    assert data.scores.dtype == np.float32


def test_score_kind():
    assert small(scores=[[1, 0, nan], [nan, 1, 0], [0, 0, 0], [1, 1, 1]]).score_kind == "binary"
    assert small(scores=np.array([[True, False, True]] * 4)).score_kind == "binary"
    assert small().score_kind == "continuous"  # holds 0.5 and 0.25


def test_model_means_ignore_missing():
    np.testing.assert_allclose(small().model_means(), [2 / 3, 0.5, 0.375])
    only_missing = small(scores=[[1, nan, 0], [0, nan, 0], [1, nan, 0], [1, nan, 1]]).model_means()
    np.testing.assert_allclose(only_missing[[0, 2]], [0.75, 0.25])
    assert np.isnan(only_missing[1])


def test_subset_by_index_mask_and_names():
    data = small()
    by_index = data.subset(prompts=[3, 0], models=[2, 0])
    np.testing.assert_array_equal(by_index.scores, [[0.25, 1.0], [nan, 1.0]])
    assert list(by_index.prompt_ids) == ["p3", "p0"] and list(by_index.models) == ["c", "a"]
    assert list(by_index.groups) == ["y", "x"] and list(by_index.splits) == ["val", "train"]
    np.testing.assert_array_equal(by_index.cost, [[11, 9], [2, 0]])
    np.testing.assert_array_equal(by_index.price, [[5, 6], [1, 2]])
    by_mask = data.subset(prompts=np.array([False, True, False, True]), models=np.array([False, True, True]))
    assert list(by_mask.prompt_ids) == ["p1", "p3"] and list(by_mask.models) == ["b", "c"]
    by_name = data.subset(models=["c", "a"])
    np.testing.assert_array_equal(by_name.scores, data.scores[:, [2, 0]])
    assert data.n_models == 3  # the original is unchanged


def test_subset_unknown_llm_name():
    with pytest.raises(RecrouteError, match="unknown LLM 'gpt-5'") as exc:
        small().subset(models=["a", "gpt-5"])
    assert str(exc.value).startswith("small: ")


def test_split_partitions_every_prompt_once():
    data = grouped()
    parts = data.split((0.8, 0.1, 0.1), seed=3)
    ids = [list(p.prompt_ids) for p in parts]
    assert sorted(sum(ids, [])) == sorted(data.prompt_ids)
    assert len(set(sum(ids, []))) == data.n_prompts
    assert [len(i) for i in ids] == [56, 7, 7]
    for part in parts:  # each part keeps its prompts' rows
        rows = [int(pid[1:]) for pid in part.prompt_ids]
        np.testing.assert_array_equal(part.scores, data.scores[rows])


def test_split_seed():
    data = grouped()
    first, again, other = (data.split(seed=s) for s in (7, 7, 8))
    for a, b in zip(first, again):
        assert list(a.prompt_ids) == list(b.prompt_ids)
    assert list(first.train.prompt_ids) != list(other.train.prompt_ids)
    assert list(first.test.prompt_ids) != list(other.test.prompt_ids)


@pytest.mark.parametrize("fractions", [(0.8, 0.1, 0.1), (0.6, 0.3, 0.1), (0.5, 0.0, 0.5)])
def test_stratified_split_keeps_group_proportions(fractions):
    data = grouped()
    sizes = Counter(data.groups)
    parts = data.split(fractions, seed=1)
    for part, fraction in zip(parts, fractions):
        got = Counter(part.groups)
        for group, size in sizes.items():
            assert abs(got[group] - fraction * size) <= 1, (group, got[group], fraction * size)


def test_split_without_stratify_ignores_groups():
    data = grouped(sizes=(50, 50))
    parts = data.split((0.5, 0.25, 0.25), seed=0, stratify=False)
    assert [p.n_prompts for p in parts] == [50, 25, 25]
    assert sorted(sum((list(p.prompt_ids) for p in parts), [])) == sorted(data.prompt_ids)


def test_split_rejects_bad_fractions():
    with pytest.raises(RecrouteError, match="summing to 1"):
        grouped().split((0.8, 0.1, 0.2))


def test_source_split():
    parts = small().source_split()
    assert [list(p.prompt_ids) for p in parts] == [["p0", "p2"], ["p3"], ["p1"]]
    np.testing.assert_array_equal(parts.test.scores, [[nan, nan, 0.5]])
    no_val = small(splits=["train", "test", "train", "test"]).source_split()
    assert (no_val.train.n_prompts, no_val.val.n_prompts, no_val.test.n_prompts) == (2, 0, 2)
    assert no_val.val.to_csr().shape == (0, 3)
    with pytest.raises(RecrouteError, match="no train/val/test split"):
        small(splits=None).source_split()


@pytest.mark.parametrize("block", [1, 3, 2048])
def test_to_csr_stores_observed_zeros(block):
    data = small()
    csr = data.to_csr(block=block)
    assert csr.shape == (4, 3)  # prompts are rows
    assert csr.nnz == int(data.observed.sum()) == 7
    assert np.isin(1, csr.indices[csr.indptr[0]:csr.indptr[1]])  # the observed 0 at (p0, b)
    assert 2 not in csr.indices[csr.indptr[0]:csr.indptr[1]]  # the missing (p0, c)
    assert list(csr.indices[csr.indptr[1]:csr.indptr[2]]) == [2]
    rows, cols = csr.nonzero()  # nonzero() drops explicit zeros; the stored pattern keeps them
    assert len(rows) == 5
    coo = csr.tocoo()
    np.testing.assert_array_equal(sorted(zip(coo.row, coo.col)), np.argwhere(data.observed))
    np.testing.assert_array_equal(csr.toarray(), np.nan_to_num(data.scores))


def test_concat_unions_llms():
    one = RoutingData(scores=[[1, 0]], prompt_ids=["q1"], models=["a", "b"], groups=["x"])
    two = RoutingData(scores=[[0.5, 1], [0, 0]], prompt_ids=["q2", "q3"], models=["c", "b"], groups=["y", "y"])
    both = RoutingData.concat([one, two], source="both")
    assert list(both.models) == ["a", "b", "c"] and list(both.prompt_ids) == ["q1", "q2", "q3"]
    np.testing.assert_array_equal(both.scores, [[1, 0, nan], [nan, 1, 0.5], [nan, 0, 0]])
    assert list(both.groups) == ["x", "y", "y"] and both.source == "both"
    with pytest.raises(RecrouteError, match="'groups' is present in some parts"):
        RoutingData.concat([one, RoutingData(scores=[[1]], prompt_ids=["q9"], models=["a"])], source="mixed")


@pytest.mark.parametrize("block", [1, 2, 2048])
def test_csr_of_observed_keeps_every_observed_cell_zeros_included(block):
    from recroute.data import csr_of_observed

    matrix = np.array([[1.0, np.nan, 0.0], [np.nan, np.nan, np.nan], [0.5, 0.0, np.nan]], dtype=np.float32)
    csr = csr_of_observed(matrix, block=block)
    assert csr.dtype == np.float32 and csr.indices.dtype == np.int32
    assert csr.indptr.tolist() == [0, 2, 2, 4]
    assert csr.indices.tolist() == [0, 2, 0, 1]
    assert csr.data.tolist() == [1.0, 0.0, 0.5, 0.0]  # stored zeros are observed wrong answers, kept
    assert csr_of_observed(np.empty((0, 3), dtype=np.float32)).shape == (0, 3)
