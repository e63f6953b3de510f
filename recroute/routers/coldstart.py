"""Cold start: place a prompt never seen in training into the latent space from its text.

Latent-factor models learn a vector for every *training* prompt. A new prompt
has no outcomes yet, only a content embedding, so we learn a map from
embedding to factors on the training prompts and apply it to new ones.
"""
from __future__ import annotations

import numpy as np

from ..errors import RecrouteError


class RidgeColdStart:
    """A linear map embedding → factors, fitted by ridge regression (closed form)."""

    def __init__(self, alpha: float = 1.0):
        self.alpha = alpha

    def fit(self, embeddings: np.ndarray, factors: np.ndarray) -> "RidgeColdStart":
        x = np.asarray(embeddings, dtype=np.float64)
        self.x_mean_ = x.mean(axis=0)
        self.y_mean_ = factors.mean(axis=0)
        xc = x - self.x_mean_
        gram = xc.T @ xc + self.alpha * np.eye(x.shape[1])
        self.coef_ = np.linalg.solve(gram, xc.T @ (factors - self.y_mean_)).astype(np.float32)
        return self

    def transform(self, embeddings: np.ndarray) -> np.ndarray:
        return (embeddings - self.x_mean_.astype(np.float32)) @ self.coef_ + self.y_mean_.astype(np.float32)

    def state(self) -> dict:
        return {"x_mean": self.x_mean_, "y_mean": self.y_mean_, "coef": self.coef_}

    def load_state(self, arrays: dict) -> "RidgeColdStart":
        self.x_mean_, self.y_mean_, self.coef_ = arrays["x_mean"], arrays["y_mean"], arrays["coef"]
        return self


class NeighbourColdStart:
    """The mean factors of the k training prompts most cosine-similar to the new one (FAISS)."""

    def __init__(self, k: int = 10):
        self.k = k

    def fit(self, embeddings: np.ndarray, factors: np.ndarray) -> "NeighbourColdStart":
        self.embeddings_ = _unit(embeddings)
        self.factors_ = np.ascontiguousarray(factors, dtype=np.float32)
        self._build()
        return self

    def _build(self) -> None:
        import faiss

        self.index_ = faiss.IndexFlatIP(self.embeddings_.shape[1])
        self.index_.add(self.embeddings_)

    def transform(self, embeddings: np.ndarray) -> np.ndarray:
        k = min(self.k, self.index_.ntotal)
        _, neighbours = self.index_.search(_unit(embeddings), k)
        return self.factors_[neighbours].mean(axis=1)

    def state(self) -> dict:
        return {"embeddings": self.embeddings_, "factors": self.factors_}

    def load_state(self, arrays: dict) -> "NeighbourColdStart":
        self.embeddings_, self.factors_ = arrays["embeddings"], arrays["factors"]
        self._build()
        return self


COLD_STARTS = {"ridge": RidgeColdStart, "knn": NeighbourColdStart}


def make_cold_start(name: str):
    if name not in COLD_STARTS:
        raise RecrouteError(f"unknown cold start {name!r}; choose from {', '.join(COLD_STARTS)}.")
    return COLD_STARTS[name]()


def _unit(x: np.ndarray) -> np.ndarray:
    x = np.ascontiguousarray(x, dtype=np.float32)
    return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)
