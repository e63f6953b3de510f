"""Score regression: predict each LLM's expected score on a prompt, then route to the highest.

RouterEval's classifiers learn which LLMs are within 95% of a prompt's best
score; for continuous scores that threshold throws away how much better or
worse each LLM did. These routers regress the score itself, choosing their
one setting by cross-validation on the training prompts. With
``logging_clip`` (a routing log) every record also counts its clipped,
self-normalised inverse logging propensity (:func:`recroute.logs.propensity_weights`):
in kNN's neighbour means, as ridge's sample weight, and in the fallback means.
"""
from __future__ import annotations

import numpy as np

from ..data import RoutingData
from ..errors import RecrouteError
from ..logs import propensity_weights
from .base import Queries, Router
from .crossval import column_means, fold_ids, normalise, routed_mean


class KNNRegressionRouter(Router):
    """CARROT's kNN: each LLM's similarity-weighted mean score over the k most similar training prompts.

    k is chosen from ``k_grid`` by K-fold cross-validation of the routed score.
    """

    trains_on_validation = True

    def __init__(self, k: int | None = None, k_grid: tuple[int, ...] = (5, 10, 20, 50, 100, 200, 400),
                 folds: int = 5, seed: int = 0, logging_clip: float | None = None):
        self.k = k
        self.k_grid = tuple(k_grid)  # a manifest's JSON gives a list back
        self.folds = folds
        self.seed = seed
        self.logging_clip = logging_clip

    def _fit(self, train: RoutingData) -> None:
        x = normalise(train.embeddings)
        weights = None if self.logging_clip is None else propensity_weights(train, self.logging_clip)
        self.k_ = np.array(self.k if self.k is not None else self._choose_k(x, train.scores, weights), dtype=np.int64)
        self.embeddings_, self.scores_ = x, train.scores.astype(np.float32)
        self.means_ = column_means(train.scores, weights).astype(np.float32)
        if weights is not None:
            self.weights_ = weights
        self._restore({})

    def _choose_k(self, x: np.ndarray, scores: np.ndarray, weights: np.ndarray | None) -> int:
        """The k of ``k_grid`` that routes held-out folds best (the smaller among ties); one search per fold."""
        grid = sorted({int(k) for k in self.k_grid if k >= 1}) or [1]
        folds = fold_ids(len(x), self.folds, self.seed)
        value = np.zeros(len(grid))
        for fold in range(self.folds):
            fit_rows, held = folds != fold, folds == fold
            index = _index(x[fit_rows])
            ks = [min(k, index.ntotal) for k in grid]
            similarity, neighbours = index.search(x[held], max(ks))
            fit_weights = None if weights is None else weights[fit_rows]
            for i, prediction in enumerate(_weighted_means(
                    similarity, scores[fit_rows][neighbours], ks, column_means(scores[fit_rows], fit_weights),
                    None if weights is None else fit_weights[neighbours])):
                value[i] += routed_mean(scores[held], np.argmax(prediction, axis=1)) * held.sum()
        return grid[int(np.argmax(value))]

    def chosen_params(self) -> dict:
        """The hyperparameters with the cross-validated k fixed: refitting with them skips the search."""
        return {**self.get_params(), "k": int(self.k_)}

    def array_shapes(self) -> dict[str, tuple[str, tuple]]:
        return {**super().array_shapes(), "k_": ("i", ()), "embeddings_": ("f", ("prompts", "d")),
                "scores_": ("F", ("prompts", "m")), "means_": ("f", ("m",)), "weights_?": ("f", ("prompts", "m"))}

    def _restore(self, arrays) -> None:
        if int(self.k_) < 1 or not len(self.embeddings_):
            raise RecrouteError(f"it has no neighbours to score with (k_ = {int(self.k_)}, {len(self.embeddings_)} prompts)")
        self.index_ = _index(self.embeddings_)

    def _score(self, queries: Queries, columns: np.ndarray) -> np.ndarray:
        k = min(int(self.k_), self.index_.ntotal)
        similarity, neighbours = self.index_.search(normalise(queries.embeddings), k)
        weights = getattr(self, "weights_", None)
        return _weighted_means(similarity, self.scores_[:, columns][neighbours], [k], self.means_[columns],
                               None if weights is None else weights[:, columns][neighbours])[0]


def _index(x: np.ndarray):
    import faiss

    index = faiss.IndexFlatIP(x.shape[1])
    index.add(x)
    return index


def _weighted_means(similarity: np.ndarray, neighbour_scores: np.ndarray, ks: list[int], fallback: np.ndarray,
                    record_weights: np.ndarray | None = None):
    """For each k in ``ks``: the mean of the first k neighbours' observed scores, weighted by similarity
    (clipped at a small positive floor) times each record's weight if given; ``fallback`` where none of them
    is observed. One cumulative sum serves every k."""
    weights = np.maximum(similarity, 1e-3)[:, :, None]
    if record_weights is not None:
        weights = weights * record_weights
    observed = ~np.isnan(neighbour_scores)
    sums = np.cumsum(np.where(observed, neighbour_scores, 0) * weights, axis=1)
    totals = np.cumsum(observed * weights, axis=1)
    out = []
    for k in ks:
        total = totals[:, k - 1]
        out.append(np.where(total > 0, sums[:, k - 1] / np.maximum(total, 1e-12), fallback).astype(np.float32))
    return out


#: The share of training prompts that must have been answered by every LLM for ridge to fit the LLMs jointly.
DENSE_SHARE = 0.9


class RidgeRouter(Router):
    """A ridge regression of each LLM's score on the prompt embedding (closed form).

    Penalties are chosen from ``alphas`` by sklearn's efficient leave-one-out
    cross-validation on the training prompts. Where nearly every prompt was
    answered by every LLM (at least ``DENSE_SHARE`` of them, as in benchmark
    data) those prompts alone are fitted as two regressions: of the prompt's
    mean score, and of each LLM's difference from that mean, with one penalty
    shared by all the differences (``alpha_``). How hard a prompt is and which
    LLM is better on it want different penalties (RouterDC: 1 and 100), and
    routing reads only the differences: a penalty per LLM on its raw score
    shrinks each one's share of the prompt's difficulty differently, which
    reads as one LLM being better on easy prompts. In a sparse log (or with
    ``logging_clip``) each LLM gets a regression of its own, on the prompts
    it answered.
    """

    trains_on_validation = True

    def __init__(self, alphas: tuple[float, ...] = (0.1, 1.0, 10.0, 100.0, 1000.0), logging_clip: float | None = None):
        self.alphas = tuple(alphas)  # a manifest's JSON gives a list back
        self.logging_clip = logging_clip

    def _fit(self, train: RoutingData) -> None:
        from sklearn.linear_model import RidgeCV

        x = normalise(train.embeddings).astype(np.float64)
        scores = train.scores.astype(np.float64)
        observed = ~np.isnan(scores)
        weights = None if self.logging_clip is None else propensity_weights(train, self.logging_clip)
        self.coef_ = np.zeros((train.n_models, x.shape[1]), dtype=np.float32)
        self.intercept_ = column_means(scores, weights).astype(np.float32)
        self.alpha_ = np.full(train.n_models, np.nan)
        every = observed.all(axis=1)
        if weights is None and train.n_models > 1 and every.sum() >= max(2, DENSE_SHARE * len(every)):
            y = scores[every]
            mean = y.mean(axis=1)
            level = RidgeCV(alphas=list(self.alphas)).fit(x[every], mean)
            difference = RidgeCV(alphas=list(self.alphas)).fit(x[every], y - mean[:, None])
            self.coef_[:] = difference.coef_ + level.coef_
            self.intercept_[:] = difference.intercept_ + level.intercept_
            self.alpha_[:] = difference.alpha_
            return
        for j in range(train.n_models):  # records of their own weight, or prompts each LLM answered
            rows = observed[:, j]
            if rows.sum() < 2:
                continue
            model = RidgeCV(alphas=list(self.alphas)).fit(
                x[rows], scores[rows, j], sample_weight=None if weights is None else weights[rows, j])
            self.coef_[j], self.intercept_[j], self.alpha_[j] = model.coef_, model.intercept_, model.alpha_

    def array_shapes(self) -> dict[str, tuple[str, tuple]]:
        return {**super().array_shapes(), "coef_": ("f", ("m", "d")), "intercept_": ("f", ("m",)),
                "alpha_": ("F", ("m",))}  # NaN: an LLM observed on too few prompts to fit

    def _score(self, queries: Queries, columns: np.ndarray) -> np.ndarray:
        x = normalise(queries.embeddings)
        return x @ self.coef_[columns].T + self.intercept_[columns]
