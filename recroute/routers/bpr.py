"""Bayesian Personalised Ranking (Rendle et al. 2009) through the ``implicit`` library.

Users are prompts, items are LLMs; a prompt's positives are its best-set
LLMs and BPR learns to rank each positive above a sampled non-positive LLM.
With 0/1 outcomes on a dense matrix every non-positive is an observed wrong
answer, so the sampled negatives are real negatives. implicit's BPR keeps an
item bias as the last factor (with a constant 1 on the user side), which the
cold-start map learns to reproduce for new prompts. implicit's BPR samples
positive records uniformly and ignores their values, so ``debias_clip``
weights are realised by repeating a positive record: w times on average
(floor(w) times, once more with probability w − floor(w), seeded).
Training runs on one thread: implicit's parallel SGD is not reproducible.
"""
from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from ..data import RoutingData
from .base import best_set_labels
from .debias import ips_weights
from .latent import ColdStartRouter


class BPRRouter(ColdStartRouter):
    param_grid = {"regularization": [1e-3, 1e-2, 1e-1]}

    def __init__(self, factors: int = 32, learning_rate: float = 0.05, regularization: float = 0.01,
                 iterations: int = 200, cold_start: str = "mlp", seed: int = 0,
                 debias_clip: float | None = None):
        self.factors = factors
        self.learning_rate = learning_rate
        self.regularization = regularization
        self.iterations = iterations
        self.cold_start = cold_start
        self.seed = seed
        self.debias_clip = debias_clip

    def _factorise(self, train: RoutingData):
        from implicit.cpu.bpr import BayesianPersonalizedRanking
        from threadpoolctl import threadpool_limits

        positives = _positives(train.scores, self.debias_clip, self.seed)
        model = BayesianPersonalizedRanking(factors=self.factors, learning_rate=self.learning_rate,
                                            regularization=self.regularization, iterations=self.iterations,
                                            random_state=self.seed, num_threads=1)
        with threadpool_limits(1, "blas"):
            model.fit(positives, show_progress=False)
        llm_factors = np.asarray(model.item_factors)
        return np.asarray(model.user_factors), llm_factors, np.zeros(len(llm_factors), dtype=np.float32)


def _positives(scores: np.ndarray, clip: float | None, seed: int = 0) -> sp.csr_matrix:
    """Prompts × LLMs CSR of best-set records; with a clip, record (p, m) appears w_m times on average."""
    good = np.nan_to_num(best_set_labels(scores)) == 1
    if clip is None:
        return sp.csr_matrix(good.astype(np.float32))
    weights = np.broadcast_to(ips_weights(scores, clip)[None, :], good.shape)
    draws = np.random.default_rng(seed).random(good.shape)
    repeats = np.where(good, np.floor(weights) + (draws < weights - np.floor(weights)), 0).astype(np.int64)
    rows, cols = np.nonzero(repeats)
    counts = repeats[rows, cols]
    indices = np.repeat(cols, counts).astype(np.int32)  # duplicates kept on purpose: implicit samples each
    indptr = np.r_[0, np.cumsum(repeats.sum(axis=1))].astype(np.int32)
    return sp.csr_matrix((np.ones(len(indices), dtype=np.float32), indices, indptr), shape=scores.shape)
