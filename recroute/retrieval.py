"""Top-k LLMs for many prompts at once, by inner product of latent vectors.

Latent-factor routers score an LLM for a prompt as the inner product of their
vectors, so routing is maximum-inner-product search with the LLMs as the
database. Up to a few hundred LLMs one matmul is fastest and exact; beyond,
a FAISS index answers (flat, or an HNSW graph that need not score every
LLM). ``LLMIndex`` picks between them per search, restricts a search to a
pool of LLMs without rebuilding anything, and serialises to a plain uint8
array (no pickle).
"""
from __future__ import annotations

from contextlib import contextmanager
from typing import Iterable, Sequence

import faiss
import numpy as np

from .errors import RecrouteError

# Exact scoring holds an (n, |pool|) score block in memory; at most this many cells (64 MiB) at a time.
_EXACT_CELLS = 1 << 24


@contextmanager
def _one_thread():
    """HNSW inserts race on the graph when threaded; one thread makes a build a function of its input."""
    before = faiss.omp_get_max_threads()
    faiss.omp_set_num_threads(1)
    try:
        yield
    finally:
        faiss.omp_set_num_threads(before)


class LLMIndex:
    """FAISS inner-product index over LLM vectors: top-k LLMs for a batch of prompt vectors.

    Up to ``hnsw_above`` LLMs it is an exact ``IndexFlatIP``; above, an
    ``IndexHNSWFlat`` (approximate, but its scores are exact inner products
    of the LLMs it returns). A search over at most ``exact_pool_limit``
    candidates (all LLMs, or a pool) skips FAISS and scores them with one
    matmul: for 64-d vectors that beat FAISS up to a few hundred LLMs, and it
    is always exact, so a pool of ``names_`` answers exactly like no pool.

    Builds run FAISS on one thread (``omp_set_num_threads(1)``, restored
    after): threaded HNSW inserts race, and an index should depend only on
    its vectors, so that ``remove`` undoes ``add`` and refits reproduce.
    """

    def __init__(
        self,
        hnsw_above: int = 2048,
        hnsw_m: int = 32,
        ef_construction: int = 200,
        ef_search: int = 128,
        exact_pool_limit: int = 256,
    ):
        self.hnsw_above = hnsw_above
        self.hnsw_m = hnsw_m
        self.ef_construction = ef_construction
        self.ef_search = ef_search
        self.exact_pool_limit = exact_pool_limit

    # ------------------------------------------------------------------ building

    def fit(self, vectors, names: Sequence[str]) -> "LLMIndex":
        """Index ``vectors`` (one row per LLM, in the order of ``names``)."""
        self._check_params()
        vectors = self._llm_vectors(vectors, d=None)
        names = self._names(names, len(vectors))
        self.names_ = names
        self.vectors_ = vectors
        self.index_ = self._build(vectors)
        return self

    def add(self, vectors, names: Sequence[str]) -> None:
        """Append LLMs whose names are new; the index changes kind if it crosses ``hnsw_above``."""
        self._check_fitted()
        vectors = self._llm_vectors(vectors, d=self.vectors_.shape[1])
        names = self._names(names, len(vectors))
        known = self._where()
        clash = [name for name in names.tolist() if name in known]
        if clash:
            raise RecrouteError(f"LLM {clash[0]!r} is already in the index; remove it first to replace its vector.")
        self.names_ = np.concatenate([self.names_, names])
        self.vectors_ = np.ascontiguousarray(np.vstack([self.vectors_, vectors]))
        if self._is_hnsw(self.index_) != (len(self.names_) > self.hnsw_above):
            self.index_ = self._build(self.vectors_)
        else:  # both kinds append in place; HNSW links the new nodes into the existing graph
            with _one_thread():
                self.index_.add(vectors)

    def remove(self, names: Iterable[str]) -> None:
        """Drop LLMs by name and rebuild from the kept vectors (HNSW cannot delete nodes)."""
        self._check_fitted()
        drop = [str(name) for name in ([names] if isinstance(names, str) else names)]
        known = self._where()
        unknown = [name for name in drop if name not in known]
        if unknown:
            raise RecrouteError(f"cannot remove unknown LLM {unknown[0]!r}: it is not in the index.")
        keep = ~np.isin(self.names_, drop)
        if not keep.any():
            raise RecrouteError("cannot remove every LLM: an index needs at least one.")
        self.names_ = self.names_[keep]
        self.vectors_ = np.ascontiguousarray(self.vectors_[keep])
        self.index_ = self._build(self.vectors_)

    def _build(self, vectors: np.ndarray):
        m, d = vectors.shape
        if m <= self.hnsw_above:
            index = faiss.IndexFlatIP(d)
        else:
            index = faiss.IndexHNSWFlat(d, int(self.hnsw_m), faiss.METRIC_INNER_PRODUCT)
            index.hnsw.efConstruction = int(self.ef_construction)
            index.hnsw.efSearch = int(self.ef_search)
        with _one_thread():
            index.add(vectors)
        return index

    # ------------------------------------------------------------------ searching

    def search(self, queries, k: int, pool: Sequence[str] | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Best ``k`` LLMs per prompt: (positions, scores), each (n, min(k, candidates)), best first.

        Positions index ``names_`` without a pool, and ``pool`` (in the
        caller's order) with one. Equal scores are listed lower position
        first; when a tie straddles the k-th place, an exact search keeps the
        lower positions and a FAISS search keeps whichever FAISS found.
        """
        self._check_fitted()
        queries = self._queries(queries)
        k = self._k(k)
        if pool is None and len(self.names_) <= self.exact_pool_limit:
            return self._exact_top(queries, self.vectors_, min(k, len(self.names_)))
        if pool is None:
            kk = min(k, len(self.names_))
            positions, scores = self._faiss_search(queries, kk, None)
            missing = (positions < 0).any(axis=1)
            if missing.any():  # HNSW found fewer than kk: answer those prompts exactly
                positions[missing], scores[missing] = self._exact_top(queries[missing], self.vectors_, kk)
            return positions, scores
        columns = self._columns(pool)
        kk = min(k, len(columns))
        if len(columns) <= self.exact_pool_limit:
            return self._exact_top(queries, self.vectors_[columns], kk)
        ids, scores = self._faiss_search(queries, kk, columns)
        to_pool = np.full(len(self.names_), -1, dtype=np.int64)
        to_pool[columns] = np.arange(len(columns))
        positions = np.where(ids >= 0, to_pool[np.maximum(ids, 0)], -1)
        missing = (positions < 0).any(axis=1)
        if missing.any():  # a filtered graph walk can run dry inside a sparse pool
            positions[missing], scores[missing] = self._exact_top(queries[missing], self.vectors_[columns], kk)
        return self._ties_by_position(positions, scores)

    def scores(self, queries, pool: Sequence[str] | None = None) -> np.ndarray:
        """Exact inner products, shape (n, number of LLMs), columns in ``pool`` order (all LLMs by default)."""
        self._check_fitted()
        queries = self._queries(queries)
        vectors = self.vectors_ if pool is None else self.vectors_[self._columns(pool)]
        return queries @ vectors.T

    def _faiss_search(self, queries: np.ndarray, k: int, columns: np.ndarray | None):
        """Index ids (-1 where FAISS found too few) and scores, ties by lower id."""
        selector = None if columns is None else faiss.IDSelectorBatch(columns.astype(np.int64))
        if self._is_hnsw(self.index_):
            params = faiss.SearchParametersHNSW(efSearch=max(int(self.ef_search), k))
            if selector is not None:
                params.sel = selector
        else:
            params = None if selector is None else faiss.SearchParameters(sel=selector)
        scores, ids = self.index_.search(queries, k, params=params)
        return self._ties_by_position(ids.astype(np.int64), scores)

    @staticmethod
    def _exact_top(queries: np.ndarray, vectors: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Top-k of one matmul; of LLMs tied at the k-th place, the lower positions make the cut."""
        positions = np.empty((len(queries), k), dtype=np.int64)
        scores = np.empty((len(queries), k), dtype=np.float32)
        rows = max(1, _EXACT_CELLS // len(vectors))
        for start in range(0, len(queries), rows):
            block = queries[start:start + rows] @ vectors.T
            if k < block.shape[1] and block.shape[1] > 64:  # partition first: no full sort of a wide pool
                kth = -np.partition(-block, k - 1, axis=1)[:, k - 1:k]
                above = block > kth
                tied = block == kth
                keep = above | (tied & (np.cumsum(tied, axis=1) <= k - above.sum(axis=1, keepdims=True)))
                chosen = np.nonzero(keep)[1].reshape(len(block), k)  # row-major: each row's k columns, ascending
                order = np.lexsort((chosen, -np.take_along_axis(block, chosen, axis=1)))
                order = np.take_along_axis(chosen, order, axis=1)
            else:
                order = np.argsort(-block, axis=1, kind="stable")[:, :k]
            positions[start:start + rows] = order
            scores[start:start + rows] = np.take_along_axis(block, order, axis=1)
        return positions, scores

    @staticmethod
    def _ties_by_position(positions: np.ndarray, scores: np.ndarray):
        """FAISS lists equal scores in heap order; reorder them lower position first."""
        if positions.size == 0:
            return positions, scores
        order = np.lexsort((positions, -scores))
        return np.take_along_axis(positions, order, axis=1), np.take_along_axis(scores, order, axis=1)

    # ------------------------------------------------------------------ storing

    def to_bytes(self) -> np.ndarray:
        """The FAISS index as a uint8 array, to store in an .npz beside ``names_`` and ``vectors_``."""
        self._check_fitted()
        return np.asarray(faiss.serialize_index(self.index_), dtype=np.uint8)

    @classmethod
    def from_bytes(cls, data, vectors, names: Sequence[str], **params) -> "LLMIndex":
        """Rebuild from ``to_bytes()`` output plus the ``vectors_`` and ``names_`` stored with it.

        The index must hold exactly ``vectors`` (compared bit for bit), so a
        corrupted array or one saved with other LLMs is an error, not a
        silently wrong router.
        """
        self = cls(**params)
        self._check_params()
        self.vectors_ = self._llm_vectors(vectors, d=None)
        self.names_ = self._names(names, len(self.vectors_))
        data = np.asarray(data)
        if data.dtype != np.uint8 or data.ndim != 1 or data.size == 0:
            raise RecrouteError(
                f"LLM index bytes must be a non-empty 1-D uint8 array, got {data.dtype} with shape {data.shape}."
            )
        try:
            index = faiss.deserialize_index(np.ascontiguousarray(data))
        except (RuntimeError, MemoryError, ValueError) as exc:
            reason = str(exc).strip().splitlines()[-1] if str(exc).strip() else type(exc).__name__
            raise RecrouteError(f"LLM index bytes are corrupted or not a FAISS index ({reason}).") from None
        m, d = self.vectors_.shape
        if not isinstance(index, (faiss.IndexFlatIP, faiss.IndexHNSWFlat)) or index.metric_type != faiss.METRIC_INNER_PRODUCT:
            raise RecrouteError(f"LLM index bytes hold a {type(index).__name__}, not an inner-product flat or HNSW index.")
        if index.d != d or index.ntotal != m:
            raise RecrouteError(
                f"LLM index holds {index.ntotal} vectors of dimension {index.d}, "
                f"but {m} LLM names and vectors of dimension {d} came with it."
            )
        if isinstance(index, faiss.IndexHNSWFlat):
            cls._check_graph(index)
        if not np.array_equal(index.reconstruct_n(0, m), self.vectors_):
            raise RecrouteError("LLM index holds different vectors from the LLM vectors stored with it.")
        self.index_ = index
        return self

    @staticmethod
    def _check_graph(index) -> None:
        """Out-of-range neighbour ids would crash a search; older FAISS reads them unchecked."""
        neighbors = faiss.vector_to_array(index.hnsw.neighbors)
        levels = faiss.vector_to_array(index.hnsw.levels)
        if (
            len(levels) != index.ntotal
            or (neighbors.size and (neighbors.min() < -1 or neighbors.max() >= index.ntotal))
            or not 0 <= index.hnsw.entry_point < index.ntotal
        ):
            raise RecrouteError("LLM index bytes are corrupted: the HNSW graph links to LLMs it does not hold.")

    # ------------------------------------------------------------------ checking

    def _where(self) -> dict:
        """Name -> position, rebuilt only when ``names_`` changes (pools are looked up per search)."""
        cached = getattr(self, "_where_cache", None)
        if cached is None or cached[0] is not self.names_:
            cached = (self.names_, {name: i for i, name in enumerate(self.names_.tolist())})
            self._where_cache = cached
        return cached[1]

    def _check_params(self) -> None:
        for param, least in (("hnsw_above", 0), ("hnsw_m", 2), ("ef_construction", 1), ("ef_search", 1), ("exact_pool_limit", 0)):
            value = getattr(self, param)
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < least:
                raise RecrouteError(f"LLMIndex: {param}={value!r} must be an integer of at least {least}.")

    def _check_fitted(self) -> None:
        if not hasattr(self, "index_"):
            raise RecrouteError("LLMIndex is not fitted yet; call fit() first.")

    @staticmethod
    def _is_hnsw(index) -> bool:
        return isinstance(index, faiss.IndexHNSW)

    @staticmethod
    def _llm_vectors(vectors, d: int | None) -> np.ndarray:
        vectors = np.asarray(vectors)
        if vectors.ndim != 2 or vectors.shape[0] == 0 or vectors.shape[1] == 0:
            raise RecrouteError(f"LLM vectors must be a non-empty 2-D array (LLMs x dimensions), got shape {vectors.shape}.")
        if d is not None and vectors.shape[1] != d:
            raise RecrouteError(f"LLM vectors have dimension {vectors.shape[1]}, but the index holds dimension {d}.")
        if not np.issubdtype(vectors.dtype, np.number) or not np.isfinite(vectors).all():
            raise RecrouteError("LLM vectors must be finite numbers (found NaN, infinity or non-numbers).")
        return np.ascontiguousarray(vectors, dtype=np.float32)

    @staticmethod
    def _names(names, m: int) -> np.ndarray:
        names = [names] if isinstance(names, str) else list(names)
        if len(names) != m:
            raise RecrouteError(f"got {m} LLM vectors but {len(names)} names.")
        if not all(isinstance(name, str) and name for name in names):
            raise RecrouteError("LLM names must be non-empty strings.")
        seen = set()
        for name in names:
            if name in seen:
                raise RecrouteError(f"LLM {name!r} is named twice; names must be unique.")
            seen.add(name)
        return np.asarray([str(name) for name in names], dtype=str)

    def _queries(self, queries) -> np.ndarray:
        queries = np.asarray(queries)
        d = self.vectors_.shape[1]
        if queries.ndim != 2 or queries.shape[1] != d:
            raise RecrouteError(f"prompt vectors must have shape (n, {d}) to match the LLM vectors, got {queries.shape}.")
        if not np.issubdtype(queries.dtype, np.number) or not np.isfinite(queries).all():
            raise RecrouteError("prompt vectors must be finite numbers (found NaN, infinity or non-numbers).")
        return np.ascontiguousarray(queries, dtype=np.float32)

    @staticmethod
    def _k(k) -> int:
        if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1:
            raise RecrouteError(f"k={k!r} must be a positive integer.")
        return int(k)

    def _columns(self, pool: Sequence[str]) -> np.ndarray:
        """Positions of ``pool`` among ``names_``; unknown, repeated or no names are an error."""
        pool = [pool] if isinstance(pool, str) else list(pool)
        if not pool:
            raise RecrouteError("the pool of LLMs is empty; name at least one LLM or pass pool=None for all.")
        where = self._where()
        unknown = [name for name in pool if name not in where]
        if unknown:
            raise RecrouteError(f"unknown LLM {unknown[0]!r} in the pool: the index does not hold it.")
        if len(set(pool)) != len(pool):
            twice = next(name for i, name in enumerate(pool) if name in pool[:i])
            raise RecrouteError(f"LLM {twice!r} appears twice in the pool.")
        return np.array([where[name] for name in pool], dtype=np.int64)
