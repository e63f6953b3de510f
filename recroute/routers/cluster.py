"""Per-cluster best model (Avengers; RouterEval's C-RoBERTa-cluster baseline).

Training prompts are grouped by k-means of their embeddings (FAISS); a new
prompt goes to its nearest centroid and is scored by each LLM's mean there.
A small cluster says little, so each cluster mean is shrunk towards the LLM's
mean over all prompts with a prior worth ``prior`` prompts. k is chosen by
K-fold cross-validation on the training prompts, among the k that leave
``min_cluster`` prompts a cluster on average (FAISS asks for 39); the best of
``restarts`` k-means runs is kept, as one can land in a poor local optimum.
k-means reads embeddings only, never scores, so cross-validation clusters all
training prompts once per k and holds out only the cluster means.
With ``logging_clip`` (a routing log) every record counts its clipped,
self-normalised inverse logging propensity (:func:`recroute.logs.propensity_weights`)
in the cluster means and the prior.
"""
from __future__ import annotations

import numpy as np

from ..data import RoutingData
from ..errors import RecrouteError
from ..logs import propensity_weights
from .base import Queries, Router
from .crossval import fold_ids, normalise, routed_mean, shrunk_means


class ClusterRouter(Router):
    """Each LLM's shrunk mean score in the prompt's k-means cluster."""

    trains_on_validation = True

    def __init__(self, k: int | None = None, k_grid: tuple[int, ...] = (1, 2, 4, 8, 16, 32, 64),
                 min_cluster: int = 39, prior: float = 5.0, folds: int = 5, niter: int = 20, restarts: int = 3,
                 seed: int = 0, logging_clip: float | None = None):
        self.k = k
        self.k_grid = tuple(k_grid)  # a manifest's JSON gives a list back
        self.min_cluster = min_cluster
        self.prior = prior
        self.folds = folds
        self.niter = niter
        self.restarts = restarts
        self.seed = seed
        self.logging_clip = logging_clip

    def _fit(self, train: RoutingData) -> None:
        x = normalise(train.embeddings)
        weights = None if self.logging_clip is None else propensity_weights(train, self.logging_clip)
        self.k_ = np.array(self.k if self.k is not None else self._choose_k(x, train.scores, weights), dtype=np.int64)
        self.centroids_ = self._kmeans(x, int(self.k_), self.restarts)
        self.cluster_scores_ = shrunk_means(_nearest(self.centroids_, x), train.scores, int(self.k_), self.prior, weights)
        self._restore({})

    def _choose_k(self, x: np.ndarray, scores: np.ndarray, weights: np.ndarray | None) -> int:
        """The k of ``k_grid`` whose clusters route held-out folds best (the smaller k among ties)."""
        grid = sorted({int(k) for k in self.k_grid if 1 <= k <= len(x) // max(self.min_cluster, 1)}) or [1]
        folds = fold_ids(len(x), self.folds, self.seed)
        value = np.zeros(len(grid))
        for i, k in enumerate(grid):
            assignment = _nearest(self._kmeans(x, k, restarts=1), x)  # one run suffices to compare k
            for fold in range(self.folds):
                fit_rows, held = folds != fold, folds == fold
                means = shrunk_means(assignment[fit_rows], scores[fit_rows], k, self.prior,
                                     None if weights is None else weights[fit_rows])
                value[i] += routed_mean(scores[held], np.argmax(means[assignment[held]], axis=1)) * held.sum()
        return grid[int(np.argmax(value))]

    def _kmeans(self, x: np.ndarray, k: int, restarts: int) -> np.ndarray:
        """Unit-length k-means centroids of the prompts (the best of ``restarts`` runs)."""
        import faiss

        if k == 1:
            return normalise(x.mean(axis=0, keepdims=True))
        # the k grid already keeps min_cluster prompts per cluster; faiss's own floor (39) only warns
        kmeans = faiss.Kmeans(x.shape[1], k, niter=self.niter, nredo=restarts, seed=self.seed,
                              spherical=True, max_points_per_centroid=100_000, min_points_per_centroid=1)
        kmeans.train(x)
        return normalise(kmeans.centroids)

    def chosen_params(self) -> dict:
        """The hyperparameters with the cross-validated k fixed: refitting with them skips the search."""
        return {**self.get_params(), "k": int(self.k_)}

    def array_shapes(self) -> dict[str, tuple[str, tuple]]:
        return {**super().array_shapes(), "k_": ("i", ()), "centroids_": ("f", ("clusters", "d")),
                "cluster_scores_": ("f", ("clusters", "m"))}

    def _restore(self, arrays) -> None:
        import faiss

        if not len(self.centroids_):
            raise RecrouteError("it has no clusters to route with")
        self.index_ = faiss.IndexFlatIP(self.centroids_.shape[1])
        self.index_.add(self.centroids_)

    def _score(self, queries: Queries, columns: np.ndarray) -> np.ndarray:
        _, nearest = self.index_.search(normalise(queries.embeddings), 1)
        return self.cluster_scores_[nearest[:, 0]][:, columns]


def _nearest(centroids: np.ndarray, x: np.ndarray) -> np.ndarray:
    """The centroid of greatest inner product with each row (centroids and rows unit length)."""
    return np.argmax(x @ centroids.T, axis=1)
