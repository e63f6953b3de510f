"""Implicit ALS (Hu, Koren & Volinsky 2008) through the ``implicit`` library.

Users are prompts, items are LLMs. The preference of a cell is 1 when the LLM
is in the prompt's best set (the LLMs within 95% of its best score; for 0/1
outcomes, the LLMs that answered correctly) and 0 otherwise. Confidence, made
explicit: a good outcome weighs ``alpha``; an observed bad outcome weighs
``negative_weight`` (passed to implicit as a negative value, its way of
saying "confidently not liked"); a cell never observed weighs implicit's
default 1 for preference 0. With ``debias_clip`` a good outcome's confidence
is further multiplied by its LLM's inverse-propensity weight. With
``logging_clip`` every observed cell's confidence is multiplied by its
record's clipped, self-normalised inverse logging propensity
(:func:`recroute.logs.propensity_weights`). New prompts enter through the
cold-start map. On a routing log, note that implicit's ALS still gives
every unobserved cell preference 0 at confidence 1 (against ``alpha`` and
``negative_weight`` for observed ones): a weak "not chosen" signal.

implicit solves each half-step approximately, with ``cg_steps`` conjugate-
gradient steps per row (its default is 3); a sweep costs about
(1 + cg_steps) passes over the records, so 2 steps fit a RouterEval-sized
matrix a fifth faster (``benchmarks/scale.py`` measures both, with the
routing quality each reaches).
"""
from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from ..data import RoutingData, csr_of_observed
from ..logs import propensity_weights
from .base import best_set_labels
from .debias import ips_weights
from .latent import ColdStartRouter


class ALSRouter(ColdStartRouter):
    param_grid = {"regularization": [0.1, 1.0, 10.0]}

    def __init__(self, factors: int = 32, regularization: float = 1.0, alpha: float = 10.0,
                 negative_weight: float = 10.0, iterations: int = 15, cg_steps: int = 3, cold_start: str = "mlp",
                 seed: int = 0, debias_clip: float | None = None, logging_clip: float | None = None):
        self.factors = factors
        self.regularization = regularization
        self.alpha = alpha
        self.negative_weight = negative_weight
        self.iterations = iterations
        self.cg_steps = cg_steps
        self.cold_start = cold_start
        self.seed = seed
        self.debias_clip = debias_clip
        self.logging_clip = logging_clip

    def _factorise(self, train: RoutingData):
        from implicit.cpu.als import AlternatingLeastSquares
        from threadpoolctl import threadpool_limits

        alpha = self.alpha if self.debias_clip is None else self.alpha * ips_weights(train.scores, self.debias_clip)
        logged = None if self.logging_clip is None else propensity_weights(train, self.logging_clip)
        confidence = np.empty(train.scores.shape, dtype=np.float32)  # float32, row blocks: RouterEval-sized data fits
        for start in range(0, train.n_prompts, 2048):
            labels = best_set_labels(train.scores[start:start + 2048], binary=train.score_kind == "binary")
            block = np.where(labels == 1, alpha, -self.negative_weight).astype(np.float32)
            if logged is not None:
                block *= logged[start:start + 2048]
            block[np.isnan(labels) | (block == 0)] = np.nan  # unobserved (or weightless) cells are left out
            confidence[start:start + 2048] = block
        user_items = csr_of_observed(confidence)  # prompts as rows
        del confidence
        with threadpool_limits(1, "blas"):  # implicit checks BLAS threads (and warns) when the model is built
            model = AlternatingLeastSquares(factors=self.factors, regularization=self.regularization, alpha=1.0,
                                            iterations=self.iterations, random_state=self.seed)
            model.cg_steps = self.cg_steps  # a public attribute, not an __init__ argument, in implicit 0.7
            model.fit(user_items, show_progress=False)
        llm_factors = np.asarray(model.item_factors)
        return np.asarray(model.user_factors), llm_factors, np.zeros(len(llm_factors), dtype=np.float32)

    def _fold_in(self, factors: np.ndarray, good: np.ndarray) -> tuple[np.ndarray, float]:
        """The ALS item half-step for the new LLM alone: implicit's ``partial_fit_items`` with the
        revealed prompts as the only users, confidences as in training, every other factor fixed."""
        from implicit.cpu.als import AlternatingLeastSquares
        from threadpoolctl import threadpool_limits

        confidence = np.where(good == 1, self.alpha, -self.negative_weight).astype(np.float32)
        item_users = sp.csr_matrix((confidence, (np.zeros(len(good), dtype=np.int32), np.arange(len(good)))),
                                   shape=(1, len(good)))
        with threadpool_limits(1, "blas"):
            model = AlternatingLeastSquares(factors=self.factors, regularization=self.regularization, alpha=1.0,
                                            random_state=self.seed)
            model.user_factors = np.ascontiguousarray(factors, dtype=np.float32)
            model.item_factors = np.ascontiguousarray(self.llm_factors_, dtype=np.float32)
            new = len(self.llm_factors_)
            model.partial_fit_items(np.array([new]), item_users)
        return np.asarray(model.item_factors[new]), 0.0
