"""Cold start: place a prompt never seen in training into the latent space from its text.

Latent-factor models learn a vector for every *training* prompt. A new prompt
has no outcomes yet, only a content embedding, so we learn a map from
embedding to factors on the training prompts and apply it to new ones:
ridge (linear), the nearest training prompts' mean (FAISS), or a small MLP.
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

    def array_shapes(self) -> dict:
        return {"x_mean": ("f", ("d",)), "y_mean": ("f", ("k",)), "coef": ("f", ("d", "k"))}

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

    def array_shapes(self) -> dict:
        return {"embeddings": ("f", ("prompts", "d")), "factors": ("f", ("prompts", "k"))}

    def load_state(self, arrays: dict) -> "NeighbourColdStart":
        self.embeddings_, self.factors_ = arrays["embeddings"], arrays["factors"]
        self._build()
        return self


class MLPColdStart:
    """A one-hidden-layer network embedding → factors (the MLP baseline's shape, regressing factors).

    The ridge map is linear, so a factorisation served through it can only
    be as good as a linear model of the text; this map bends. Targets are
    standardised per factor; trained with mini-batch Adam on one thread.
    """

    def __init__(self, hidden: int = 256, epochs: int = 20, batch_size: int = 256, lr: float = 1e-3,
                 weight_decay: float = 1e-4, dropout: float = 0.1, seed: int = 0):
        self.hidden = hidden
        self.epochs = epochs
        self.batch_size = batch_size
        self.lr = lr
        self.weight_decay = weight_decay
        self.dropout = dropout
        self.seed = seed

    def _network(self, dim: int, outputs: int):
        import torch

        return torch.nn.Sequential(torch.nn.Linear(dim, self.hidden), torch.nn.ReLU(), torch.nn.Dropout(self.dropout),
                                   torch.nn.Linear(self.hidden, outputs))

    def fit(self, embeddings: np.ndarray, factors: np.ndarray) -> "MLPColdStart":
        from .base import torch_threads

        with torch_threads(np.size(factors)) as torch:
            torch.manual_seed(self.seed)
            x = torch.from_numpy(np.ascontiguousarray(embeddings, dtype=np.float32))
            y = np.asarray(factors, dtype=np.float32)
            self.y_mean_, self.y_scale_ = y.mean(axis=0), y.std(axis=0) + 1e-6
            y = torch.from_numpy((y - self.y_mean_) / self.y_scale_)
            self.network_ = self._network(x.shape[1], y.shape[1])
            optimiser = torch.optim.Adam(self.network_.parameters(), lr=self.lr, weight_decay=self.weight_decay)
            generator = torch.Generator().manual_seed(self.seed)
            for _ in range(self.epochs):
                for batch in torch.randperm(len(x), generator=generator).split(self.batch_size):
                    optimiser.zero_grad()
                    loss = (self.network_(x[batch]) - y[batch]).square().mean()
                    loss.backward()
                    optimiser.step()
            self.network_.eval()
        return self

    def transform(self, embeddings: np.ndarray) -> np.ndarray:
        import torch

        with torch.no_grad():
            out = self.network_(torch.from_numpy(np.ascontiguousarray(embeddings, dtype=np.float32))).numpy()
        return out * self.y_scale_ + self.y_mean_

    def state(self) -> dict:
        weights = {f"network.{k}": v.numpy() for k, v in self.network_.state_dict().items()}
        return {"y_mean": self.y_mean_, "y_scale": self.y_scale_, **weights}

    def array_shapes(self) -> dict:
        return {"y_mean": ("f", ("k",)), "y_scale": ("f", ("k",)), "network.0.weight": ("f", (self.hidden, "d")),
                "network.0.bias": ("f", (self.hidden,)), "network.3.weight": ("f", ("k", self.hidden)),
                "network.3.bias": ("f", ("k",))}

    def load_state(self, arrays: dict) -> "MLPColdStart":
        import torch

        self.y_mean_, self.y_scale_ = arrays["y_mean"], arrays["y_scale"]
        weights = {k[len("network."):]: torch.from_numpy(np.array(v)) for k, v in arrays.items()
                   if k.startswith("network.")}
        self.network_ = self._network(weights["0.weight"].shape[1], weights["3.weight"].shape[0])
        self.network_.load_state_dict(weights)
        self.network_.eval()
        return self


COLD_STARTS = {"ridge": RidgeColdStart, "knn": NeighbourColdStart, "mlp": MLPColdStart}


def make_cold_start(name: str, seed: int = 0):
    """A fresh cold-start map by name; ``seed`` reaches the one with randomness (mlp)."""
    if name not in COLD_STARTS:
        raise RecrouteError(f"unknown cold start {name!r}; choose from {', '.join(COLD_STARTS)}.")
    return MLPColdStart(seed=seed) if name == "mlp" else COLD_STARTS[name]()


def _unit(x: np.ndarray) -> np.ndarray:
    x = np.ascontiguousarray(x, dtype=np.float32)
    return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)
