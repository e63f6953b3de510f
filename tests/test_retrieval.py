"""LLMIndex against brute-force numpy: same top-k, exact scores, pools, updates and storage."""
from __future__ import annotations

import io

import numpy as np
import pytest

from recroute.errors import RecrouteError
from recroute.retrieval import LLMIndex


def _data(m=40, d=16, n=60, seed=0):
    rng = np.random.default_rng(seed)
    vectors = rng.standard_normal((m, d)).astype(np.float32)
    queries = rng.standard_normal((n, d)).astype(np.float32)
    return vectors, [f"llm-{i}" for i in range(m)], queries


def _brute(queries, vectors, k):
    scores = queries @ vectors.T
    order = np.argsort(-scores, axis=1, kind="stable")[:, :k]
    return order, np.take_along_axis(scores, order, axis=1)


def _hnsw():
    """50 LLMs in an HNSW graph, searched through FAISS (exact_pool_limit=0) unless a test says otherwise."""
    vectors, names, _ = _data(m=50, d=16, seed=1)
    return LLMIndex(hnsw_above=10, exact_pool_limit=0).fit(vectors, names), vectors, names


@pytest.mark.parametrize("exact_pool_limit", [0, 256], ids=["faiss-flat", "matmul"])
def test_exact_search_equals_brute_force(exact_pool_limit):
    vectors, names, queries = _data()
    index = LLMIndex(exact_pool_limit=exact_pool_limit).fit(vectors, names)
    assert type(index.index_).__name__ == "IndexFlatIP"
    positions, scores = index.search(queries, 5)
    want, want_scores = _brute(queries, vectors, 5)
    np.testing.assert_array_equal(positions, want)
    np.testing.assert_allclose(scores, want_scores, rtol=1e-5, atol=1e-5)
    assert positions.dtype == np.int64 and scores.dtype == np.float32
    for got, same in zip(index.search(queries, 5, pool=names), (positions, scores)):
        np.testing.assert_array_equal(got, same)  # a pool of every LLM is no pool
    empty = index.search(queries[:0], 5)
    assert empty[0].shape == empty[1].shape == (0, 5)


def test_k_is_capped_and_ties_list_lower_position_first():
    vectors = np.tile(np.array([[1.0, 0.0]], dtype=np.float32), (6, 1))
    vectors[4] = [2.0, 0.0]
    names = list("abcdef")
    query = np.array([[1.0, 0.0]])
    faiss_flat = LLMIndex(exact_pool_limit=0).fit(vectors, names)
    positions, scores = faiss_flat.search(query, 10)  # FAISS path: ties in the list by lower position
    np.testing.assert_array_equal(positions, [[4, 0, 1, 2, 3, 5]])
    np.testing.assert_array_equal(scores, [[2, 1, 1, 1, 1, 1]])
    index = LLMIndex().fit(vectors, names)
    positions, _ = index.search(query, 3)  # exact path: ties cut at k keep the lower positions
    np.testing.assert_array_equal(positions, [[4, 0, 1]])
    # exact pool path: positions are pool-relative; ties cut at k keep the lower pool positions
    positions, _ = index.search(query, 10, pool=["f", "e", "a"])
    np.testing.assert_array_equal(positions, [[1, 0, 2]])
    positions, _ = index.search(query, 3, pool=["f", "e", "a", "b", "c"])
    np.testing.assert_array_equal(positions, [[1, 0, 2]])


def test_wide_exact_pool_with_many_ties_equals_a_stable_sort():
    rng = np.random.default_rng(7)
    vectors = rng.integers(-1, 2, (300, 4)).astype(np.float32)  # few distinct scores: ties everywhere
    queries = rng.integers(-1, 2, (50, 4)).astype(np.float32)
    names = [f"llm-{i}" for i in range(300)]
    index = LLMIndex(exact_pool_limit=1000).fit(vectors, names)
    pool = [names[i] for i in rng.permutation(300)[:200]]
    columns = [names.index(name) for name in pool]
    for k in (1, 7, 199, 200):
        positions, scores = index.search(queries, k, pool=pool)
        want, want_scores = _brute(queries, vectors[columns], k)
        np.testing.assert_array_equal(positions, want)
        np.testing.assert_array_equal(scores, want_scores)


def test_hnsw_recall_and_exact_scores():
    index, vectors, _ = _hnsw()
    assert type(index.index_).__name__ == "IndexHNSWFlat"
    queries = np.random.default_rng(2).standard_normal((200, 16)).astype(np.float32)
    positions, scores = index.search(queries, 5)
    want, _ = _brute(queries, vectors, 5)
    recall = np.mean([set(p) == set(w) for p, w in zip(positions, want)])
    assert recall >= 0.95
    exact = np.take_along_axis(queries @ vectors.T, positions, axis=1)
    np.testing.assert_allclose(scores, exact, rtol=1e-5, atol=1e-5)
    assert (np.diff(scores, axis=1) <= 0).all()


def test_small_pool_is_scored_exactly_in_pool_order():
    vectors, names, queries = _data()
    index = LLMIndex().fit(vectors, names)
    pool = ["llm-7", "llm-3", "llm-31", "llm-0", "llm-12"]
    columns = [names.index(name) for name in pool]
    positions, scores = index.search(queries, 3, pool=pool)
    want, want_scores = _brute(queries, vectors[columns], 3)
    np.testing.assert_array_equal(positions, want)
    np.testing.assert_allclose(scores, want_scores, rtol=1e-6)
    np.testing.assert_allclose(index.scores(queries, pool=pool), queries @ vectors[columns].T, rtol=1e-6)
    np.testing.assert_allclose(index.scores(queries), queries @ vectors.T, rtol=1e-6)


@pytest.mark.parametrize("hnsw_above", [10, 1000], ids=["hnsw", "flat"])
def test_large_pool_goes_through_a_faiss_selector(hnsw_above, monkeypatch):
    vectors, names, _ = _data(m=50, d=16, seed=1)
    index = LLMIndex(hnsw_above=hnsw_above, exact_pool_limit=8).fit(vectors, names)
    pool = [names[i] for i in np.random.default_rng(3).permutation(50)[:30]]
    columns = [names.index(name) for name in pool]
    queries = np.random.default_rng(4).standard_normal((100, 16)).astype(np.float32)

    def no_exact(*args):
        raise AssertionError("a pool above exact_pool_limit must be answered by FAISS")

    monkeypatch.setattr(LLMIndex, "_exact_top", staticmethod(no_exact))
    positions, scores = index.search(queries, 5, pool=pool)
    want, want_scores = _brute(queries, vectors[columns], 5)
    assert positions.shape == (100, 5) and ((positions >= 0) & (positions < 30)).all()
    assert np.mean((positions == want).all(axis=1)) >= 0.95
    exact = np.take_along_axis(queries @ vectors[columns].T, positions, axis=1)
    np.testing.assert_allclose(scores, exact, rtol=1e-5, atol=1e-5)


def test_queries_are_converted():
    vectors, names, queries = _data()
    index = LLMIndex().fit(vectors.astype(np.float64), names)
    assert index.vectors_.dtype == np.float32 and index.vectors_.flags.c_contiguous
    wide = np.repeat(queries.astype(np.float64), 2, axis=1)[:, ::2]  # float64, not contiguous
    for got, want in zip(index.search(wide, 4), index.search(queries, 4)):
        np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize("hnsw_above", [100, 45], ids=["stays-flat", "crosses-to-hnsw"])
def test_add_finds_the_new_best_llm(hnsw_above):
    vectors, names, queries = _data()
    index = LLMIndex(hnsw_above=hnsw_above, exact_pool_limit=0).fit(vectors, names)
    new = np.random.default_rng(5).standard_normal((8, 16)).astype(np.float32)
    new[3] = 100 * queries[0]
    index.add(new, [f"new-{i}" for i in range(8)])
    assert len(index.names_) == 48 and (type(index.index_).__name__ == "IndexHNSWFlat") == (hnsw_above < 48)
    positions, _ = index.search(queries[:1], 1)
    assert index.names_[positions[0, 0]] == "new-3"
    everything = np.vstack([vectors, new])
    positions, _ = index.search(queries, 5)
    assert np.mean([set(p) == set(w) for p, w in zip(positions, _brute(queries, everything, 5)[0])]) >= 0.95


def test_add_to_an_hnsw_index_appends_to_the_graph():
    index, vectors, _ = _hnsw()
    queries = np.random.default_rng(6).standard_normal((20, 16)).astype(np.float32)
    index.add(50 * queries[:2], ["best-0", "best-1"])
    assert index.index_.ntotal == 52
    positions, _ = index.search(queries[:2], 1)
    assert list(index.names_[positions[:, 0]]) == ["best-0", "best-1"]


@pytest.mark.parametrize("hnsw_above", [10, 1000], ids=["hnsw", "flat"])
def test_remove_and_add_then_remove(hnsw_above):
    vectors, names, queries = _data(m=50, d=16, seed=1)
    index = LLMIndex(hnsw_above=hnsw_above, exact_pool_limit=0).fit(vectors, names)
    before = index.search(queries, 5)
    index.add(100 * queries[:3], ["x", "y", "z"])
    index.remove(["x", "y", "z"])
    for got, want in zip(index.search(queries, 5), before):
        np.testing.assert_array_equal(got, want)
    assert list(index.names_) == names

    best = before[0][0, 0]
    index.remove([names[best]])
    positions, _ = index.search(queries, 5)
    assert names[best] not in index.names_[positions].ravel().tolist()
    assert len(index.names_) == 49 and index.index_.ntotal == 49


@pytest.mark.parametrize("hnsw_above", [10, 1000], ids=["hnsw", "flat"])
def test_bytes_round_trip_through_npz(hnsw_above):
    vectors, names, queries = _data(m=50, d=16, seed=1)
    index = LLMIndex(hnsw_above=hnsw_above, exact_pool_limit=8).fit(vectors, names)
    buffer = io.BytesIO()
    np.savez(buffer, index=index.to_bytes(), names=index.names_, vectors=index.vectors_)
    buffer.seek(0)
    with np.load(buffer, allow_pickle=False) as stored:
        loaded = LLMIndex.from_bytes(stored["index"], stored["vectors"], stored["names"], exact_pool_limit=8)
    assert type(loaded.index_) is type(index.index_)
    pool = names[5:40]
    for got, want in zip(loaded.search(queries, 5), index.search(queries, 5)):
        np.testing.assert_array_equal(got, want)
    for got, want in zip(loaded.search(queries, 5, pool=pool), index.search(queries, 5, pool=pool)):
        np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize("hnsw_above", [10, 1000], ids=["hnsw", "flat"])
def test_corrupted_or_mismatched_bytes_are_refused(hnsw_above):
    vectors, names, _ = _data(m=50, d=16, seed=1)
    data = LLMIndex(hnsw_above=hnsw_above).fit(vectors, names).to_bytes()
    bad = {
        "truncated": (data[: len(data) // 2], vectors, names, "corrupted"),
        "garbage": (np.frombuffer(b"not an index at all", np.uint8), vectors, names, "corrupted"),
        "empty": (np.zeros(0, np.uint8), vectors, names, "non-empty"),
        "wrong dtype": (data.astype(np.int64), vectors, names, "uint8"),
        "fewer names": (data, vectors[:49], names[:49], "49 LLM names"),
        "other dimension": (data, vectors[:, :8], names, "dimension 8"),
        "other vectors": (data, vectors + 1, names, "different vectors"),
    }
    flipped = data.copy()
    where = flipped.tobytes().find(vectors[7].tobytes())
    flipped[where + 1] ^= 0xFF  # a bit-level change inside LLM 7's stored vector
    bad["flipped vector"] = (flipped, vectors, names, "different vectors|corrupted")
    for case, (blob, vecs, llms, message) in bad.items():
        with pytest.raises(RecrouteError, match=message):
            LLMIndex.from_bytes(blob, vecs, llms)


def test_bad_inputs_are_recroute_errors():
    vectors, names, queries = _data()
    with pytest.raises(RecrouteError, match="not fitted"):
        LLMIndex().search(queries, 3)
    with pytest.raises(RecrouteError, match="twice"):
        LLMIndex().fit(vectors[:2], ["a", "a"])
    with pytest.raises(RecrouteError, match="2 names"):
        LLMIndex().fit(vectors[:3], ["a", "b"])
    with pytest.raises(RecrouteError, match="finite"):
        LLMIndex().fit(np.full((2, 3), np.nan), ["a", "b"])
    with pytest.raises(RecrouteError, match="hnsw_m"):
        LLMIndex(hnsw_m=1).fit(vectors, names)

    index = LLMIndex().fit(vectors, names)
    nan = queries.copy()
    nan[3, 2] = np.nan
    cases = {
        "finite": lambda: index.search(nan, 3),
        r"\(n, 16\)": lambda: index.search(queries[:, :8], 3),
        r"shape \(n, 16\)": lambda: index.scores(queries[0]),
        "k=0": lambda: index.search(queries, 0),
        "k=2.5": lambda: index.search(queries, 2.5),
        "empty": lambda: index.search(queries, 3, pool=[]),
        "'gpt-5'": lambda: index.search(queries, 3, pool=["llm-1", "gpt-5", "nope"]),
        "appears twice": lambda: index.search(queries, 3, pool=["llm-1", "llm-1"]),
        "'nope'": lambda: index.scores(queries, pool=["nope"]),
        "already in the index": lambda: index.add(vectors[:1], ["llm-4"]),
        "dimension 8": lambda: index.add(vectors[:1, :8], ["new"]),
        "cannot remove unknown LLM 'ghost'": lambda: index.remove(["llm-1", "ghost"]),
        "every LLM": lambda: index.remove(names),
    }
    for message, call in cases.items():
        with pytest.raises(RecrouteError, match=message):
            call()
    assert index.index_.ntotal == 40 and len(index.names_) == 40  # failed calls changed nothing
