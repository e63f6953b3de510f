"""Reference routers: the bounds every learned router is judged between.

The oracle and r_o(p) read the true outcomes of the prompts they route
(``Queries.truth``), which no deployable router can; random and the best
single model (BSM) read nothing about the prompt at all.
"""
from __future__ import annotations

import numpy as np

from ..data import RoutingData
from ..errors import RecrouteError
from .base import Queries, Router


def _truth(queries: Queries, models: np.ndarray) -> np.ndarray:
    if queries.truth is None:
        raise RecrouteError("reference routers need the true outcomes of the prompts they route.")
    return np.nan_to_num(queries.truth.subset(models=list(models)).scores, nan=0.0)


class OracleRouter(Router):
    """Picks an LLM with the best true score for every prompt: the ceiling."""

    needs_embeddings = False
    servable = False

    def _fit(self, train: RoutingData) -> None:
        pass

    def _score(self, queries, columns):
        return _truth(queries, self.models_[columns])


class ROracleRouter(Router):
    """RouterEval's r_o(p): the oracle's choice with probability p, a uniformly random LLM otherwise.

    r_o(0) is the random router and r_o(1) the oracle; sweeping p shows how
    much of the pool's potential a router of a given accuracy captures.
    """

    needs_embeddings = False
    servable = False

    def __init__(self, p: float = 0.5, seed: int = 0):
        self.p = p
        self.seed = seed

    def _fit(self, train: RoutingData) -> None:
        if not 0.0 <= self.p <= 1.0:
            raise RecrouteError(f"r_o(p) needs 0 <= p <= 1, got {self.p}.")

    def _score(self, queries, columns):
        rng = np.random.default_rng(self.seed)
        n = len(queries)
        noise = rng.random((n, len(columns)))
        if self.p == 0:
            return noise
        truth = _truth(queries, self.models_[columns])
        use_oracle = rng.random(n) < self.p
        # Oracle rows: true scores, with noise only to break ties between equally good LLMs
        # (added to the row's best LLMs alone, so it never lifts a worse one above them).
        best = truth >= truth.max(axis=1, keepdims=True)
        return np.where(use_oracle[:, None], truth + 1e-3 * noise * best, noise)


    def policy(self, queries, models=None):
        """The oracle's choice with probability p, each LLM with probability (1 − p)/m besides."""
        columns = self.columns(models)
        uniform = np.full((len(queries), len(columns)), (1.0 - self.p) / len(columns))
        if self.p == 0:
            return uniform
        best = np.argmax(_truth(queries, self.models_[columns]), axis=1)
        uniform[np.arange(len(best)), best] += self.p
        return uniform


class RandomRouter(ROracleRouter):
    """Uniformly random LLM for every prompt (r_o(0))."""

    def __init__(self, seed: int = 0):
        super().__init__(p=0.0, seed=seed)

    def get_params(self) -> dict:
        return {"seed": self.seed}


class BestSingleRouter(Router):
    """Always the LLM with the best mean training score (BSM): what routing must beat."""

    needs_embeddings = False

    def _fit(self, train: RoutingData) -> None:
        self.means_ = np.nan_to_num(train.model_means(), nan=0.0)

    def _score(self, queries, columns):
        return np.broadcast_to(self.means_[columns], (len(queries), len(columns)))

    def array_shapes(self) -> dict[str, tuple[str, tuple]]:
        return {**super().array_shapes(), "means_": ("f", ("m",))}
