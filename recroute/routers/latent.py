"""The common shape of latent-factor routers: prompts and LLMs in one space.

An LLM m has a vector v_m and a bias b_m; a prompt p has a vector u_p, and
its predicted quality is <u_p, v_m> + b_m. Training prompts get u_p from the
factorisation; a new prompt gets it from its content embedding, either
natively (the model maps embeddings, as the bilinear and LightFM routers do)
or through a cold-start map fitted on the training prompts (ALS, BPR).
Ranking among all LLMs is a maximum-inner-product search (FAISS).
"""
from __future__ import annotations

from abc import abstractmethod
from typing import Sequence

import numpy as np

from ..data import RoutingData
from ..retrieval import LLMIndex
from .base import Queries, Router
from .coldstart import make_cold_start


class LatentFactorRouter(Router):
    """Base class: ``_fit`` sets ``llm_factors_`` (m, k) and ``llm_bias_`` (m,); ``prompt_factors`` maps embeddings."""

    def fit(self, train: RoutingData) -> "LatentFactorRouter":
        super().fit(train)
        self.index_ = LLMIndex().fit(self.item_vectors(), self.models_)
        return self

    def rebalance(self, held_out: RoutingData, models: Sequence[str] | None = None) -> "LatentFactorRouter":
        super().rebalance(held_out, models)
        self.index_ = LLMIndex().fit(self.item_vectors(), self.models_)  # the offsets join the bias coordinate
        return self

    def rank(self, queries: Queries, models: Sequence[str] | None = None, k: int | None = None):
        """Top-k LLMs by maximum-inner-product search in the FAISS index, restricted to ``models``."""
        self.columns(models)  # unknown names fail here, with the router's message
        k = len(self.models_) if k is None else k
        return self.index_.search(self.query_vectors(queries.embeddings), k, pool=models)

    def state(self) -> dict[str, np.ndarray]:
        return {**super().state(), "index": self.index_.to_bytes()}

    def _restore(self, arrays) -> None:
        self.index_ = LLMIndex.from_bytes(arrays["index"], self.item_vectors(), self.models_)

    @abstractmethod
    def prompt_factors(self, embeddings: np.ndarray) -> np.ndarray:
        """Latent vectors (n, k) of prompts given their content embeddings."""

    def _score(self, queries: Queries, columns: np.ndarray) -> np.ndarray:
        factors = self.prompt_factors(np.asarray(queries.embeddings, dtype=np.float32))
        return factors @ self.llm_factors_[columns].T + self.llm_bias_[columns]  # score() adds any offsets

    def item_vectors(self) -> np.ndarray:
        """LLM vectors with the bias (plus any rebalancing offset) as a last coordinate, for an inner-product index."""
        offsets = getattr(self, "offsets_", None)
        bias = self.llm_bias_ if offsets is None else self.llm_bias_ + offsets
        return np.hstack([self.llm_factors_, bias[:, None]]).astype(np.float32)

    def query_vectors(self, embeddings: np.ndarray) -> np.ndarray:
        """Prompt vectors with a constant 1 appended, matching :meth:`item_vectors`."""
        factors = self.prompt_factors(np.asarray(embeddings, dtype=np.float32))
        return np.hstack([factors, np.ones((len(factors), 1), dtype=np.float32)])


class ColdStartRouter(LatentFactorRouter):
    """A factorisation that only knows its training prompts, plus a cold-start map for new ones.

    ``cold_start`` is ``"ridge"`` (a ridge regression from embedding to
    factors), ``"knn"`` (the mean factors of the 10 most similar training
    prompts, found with FAISS) or ``"mlp"`` (a one-hidden-layer network).
    """

    def _fit(self, train: RoutingData) -> None:
        prompt_factors, self.llm_factors_, self.llm_bias_ = self._factorise(train)
        self.cold_start_ = make_cold_start(self.cold_start, self.seed).fit(train.embeddings, prompt_factors)

    @abstractmethod
    def _factorise(self, train: RoutingData) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Return training-prompt factors (n, k), LLM factors (m, k) and LLM biases (m,)."""

    def prompt_factors(self, embeddings: np.ndarray) -> np.ndarray:
        return self.cold_start_.transform(embeddings)

    def state(self) -> dict[str, np.ndarray]:
        cold = {f"cold_start.{k}": v for k, v in self.cold_start_.state().items()}
        return {**super().state(), **cold}

    def _restore(self, arrays) -> None:
        super()._restore(arrays)
        cold = {k[len("cold_start."):]: v for k, v in arrays.items() if k.startswith("cold_start.")}
        self.cold_start_ = make_cold_start(self.cold_start).load_state(cold)
