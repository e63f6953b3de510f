"""A LightFM hybrid: the prompt's content embedding as its user features.

A prompt's latent vector is the embedding-weighted sum of learned feature
vectors (there is no per-prompt identity feature), so a new prompt is placed
by its text alone, the way LightFM handles cold-start users. LLMs have
identity features. ``loss="logistic"`` reads observed bad outcomes as real
negatives (-1 interactions) and good ones as positives (+1); ``loss="warp"``
learns from positives and samples negatives among the other LLMs, which on a
dense outcome matrix are exactly the observed bad outcomes. ``debias_clip``
passes inverse-propensity weights as LightFM's ``sample_weight``, and
``logging_clip`` multiplies them by each logged record's clipped,
self-normalised inverse logging propensity (:func:`recroute.logs.propensity_weights`).
"""
from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from ..data import RoutingData
from ..errors import RecrouteError
from ..logs import propensity_weights
from .base import best_set_labels
from .debias import record_weights
from .latent import LatentFactorRouter


class LightFMRouter(LatentFactorRouter):
    param_grid = {"user_alpha": [1e-5, 1e-4, 1e-3]}

    def __init__(self, factors: int = 32, loss: str = "warp", epochs: int = 30, learning_rate: float = 0.05,
                 user_alpha: float = 1e-4, item_alpha: float = 1e-6, seed: int = 0,
                 debias_clip: float | None = None, logging_clip: float | None = None):
        self.factors = factors
        self.loss = loss
        self.epochs = epochs
        self.learning_rate = learning_rate
        self.user_alpha = user_alpha
        self.item_alpha = item_alpha
        self.seed = seed
        self.debias_clip = debias_clip
        self.logging_clip = logging_clip

    def _fit(self, train: RoutingData) -> None:
        from lightfm import LightFM

        if self.loss not in ("warp", "logistic"):
            raise RecrouteError(f"lightfm router: loss must be 'warp' or 'logistic', got {self.loss!r}.")
        labels = best_set_labels(train.scores)
        if self.loss == "logistic":
            values = np.where(labels == 1, 1.0, -1.0)
            values[np.isnan(labels)] = 0
        else:
            values = np.nan_to_num(labels) == 1
        interactions = sp.coo_matrix(values.astype(np.float32))
        weights = record_weights(train.scores, self.debias_clip)
        if self.logging_clip is not None:
            weights = weights * propensity_weights(train, self.logging_clip)
        weights = weights[interactions.row, interactions.col]
        sample_weight = sp.coo_matrix((weights, (interactions.row, interactions.col)), shape=interactions.shape)
        model = LightFM(no_components=self.factors, loss=self.loss, learning_rate=self.learning_rate,
                        user_alpha=self.user_alpha, item_alpha=self.item_alpha, random_state=self.seed)
        model.fit(interactions, user_features=_features(train.embeddings), sample_weight=sample_weight,
                  epochs=self.epochs, num_threads=1)
        self.feature_factors_ = model.user_embeddings.astype(np.float32)
        self.llm_factors_ = model.item_embeddings.astype(np.float32)
        self.llm_bias_ = model.item_biases.astype(np.float32)

    def prompt_factors(self, embeddings: np.ndarray) -> np.ndarray:
        return embeddings @ self.feature_factors_

    def array_shapes(self) -> dict[str, tuple[str, tuple]]:
        return {**super().array_shapes(), "feature_factors_": ("f", ("d", "k"))}


def _features(embeddings: np.ndarray) -> sp.csr_matrix:
    """LightFM takes features as a sparse matrix; a dense embedding becomes a fully stored CSR row."""
    return sp.csr_matrix(np.asarray(embeddings, dtype=np.float32))
