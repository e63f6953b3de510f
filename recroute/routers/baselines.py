"""RouterEval's learned baselines, rebuilt on prompt embeddings.

Each treats routing as multi-label classification: for every training prompt
the target is the multi-hot set of LLMs within 95% of its best score
(:func:`best_set_labels`), and a new prompt's score for an LLM is the
predicted probability that the LLM is in its best set. ``debias_clip``
(every learned router has it) turns on inverse-propensity weights against
popular LLMs; see :mod:`recroute.routers.debias`. On a routing log, kNN
averages the logged labels alone and linear and MLP learn from the logged
cells alone (the loss is masked), and ``logging_clip`` weights each record by
its clipped, self-normalised inverse logging propensity
(:func:`recroute.logs.propensity_weights`): in kNN's neighbour average, in
linear's and MLP's loss.
"""
from __future__ import annotations

import numpy as np

from ..data import RoutingData
from ..logs import propensity_weights
from .base import Queries, Router, best_set_labels, torch_threads
from .debias import ips_weights, record_weights


def _normalise(x: np.ndarray) -> np.ndarray:
    x = np.ascontiguousarray(x, dtype=np.float32)
    return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)


class KNNRouter(Router):
    """PRknn: the mean best-set label of the k most cosine-similar training prompts."""

    def __init__(self, k: int = 5, debias_clip: float | None = None, logging_clip: float | None = None):
        self.k = k
        self.debias_clip = debias_clip
        self.logging_clip = logging_clip

    def _fit(self, train: RoutingData) -> None:
        self.embeddings_ = _normalise(train.embeddings)
        self.labels_ = best_set_labels(train.scores)
        if self.debias_clip is not None:  # a neighbour's vote for an LLM counts 1/propensity
            self.labels_ *= ips_weights(train.scores, self.debias_clip)
        if self.logging_clip is not None:  # a logged record counts its inverse logging propensity
            self.weights_ = propensity_weights(train, self.logging_clip)
        self._restore({})

    def _restore(self, arrays) -> None:
        import faiss

        self.index_ = faiss.IndexFlatIP(self.embeddings_.shape[1])
        self.index_.add(self.embeddings_)

    def array_shapes(self) -> dict[str, tuple[str, tuple]]:
        return {**super().array_shapes(), "embeddings_": ("f", ("prompts", "d")), "labels_": ("F", ("prompts", "m")),
                "weights_?": ("f", ("prompts", "m"))}

    def _score(self, queries: Queries, columns: np.ndarray) -> np.ndarray:
        k = min(self.k, self.index_.ntotal)
        _, neighbours = self.index_.search(_normalise(queries.embeddings), k)
        labels = self.labels_[:, columns][neighbours]  # (n, k, |pool|)
        weights = getattr(self, "weights_", None)
        weights = ~np.isnan(labels) if weights is None else weights[:, columns][neighbours]  # 0 where unobserved
        total = weights.sum(axis=1)
        return (np.nan_to_num(labels) * weights).sum(axis=1) / np.where(total > 0, total, 1)


class LinearRouter(Router):
    """LinearR: one logistic output per LLM on the prompt embedding (multi-label BCE)."""

    param_grid = {"weight_decay": [1e-4, 1e-3, 1e-2]}

    def __init__(self, epochs: int = 20, batch_size: int = 256, lr: float = 1e-2, weight_decay: float = 1e-4,
                 seed: int = 0, debias_clip: float | None = None, logging_clip: float | None = None):
        self.epochs = epochs
        self.batch_size = batch_size
        self.lr = lr
        self.weight_decay = weight_decay
        self.seed = seed
        self.debias_clip = debias_clip
        self.logging_clip = logging_clip

    def _network(self, dim: int, outputs: int):
        import torch

        return torch.nn.Linear(dim, outputs)

    def array_shapes(self) -> dict[str, tuple[str, tuple]]:
        return {**super().array_shapes(), "network.weight": ("f", ("m", "d")), "network.bias": ("f", ("m",))}

    def _fit(self, train: RoutingData) -> None:
        with torch_threads(train.n_prompts * train.n_models):
            self._train(train)

    def _train(self, train: RoutingData) -> None:
        import torch

        torch.manual_seed(self.seed)
        x = torch.from_numpy(_normalise(train.embeddings))
        labels = best_set_labels(train.scores)
        weight = record_weights(train.scores, self.debias_clip)  # 0 where unobserved
        if self.logging_clip is not None:
            weight = weight * propensity_weights(train, self.logging_clip)
        weight = torch.from_numpy(weight)
        y = torch.from_numpy(np.nan_to_num(labels))
        self.network_ = self._network(x.shape[1], y.shape[1])
        optimiser = torch.optim.Adam(self.network_.parameters(), lr=self.lr, weight_decay=self.weight_decay)
        loss_fn = torch.nn.BCEWithLogitsLoss(reduction="none")
        generator = torch.Generator().manual_seed(self.seed)
        self.network_.train()
        for _ in range(self.epochs):  # mini-batches: cost grows with the data once, not epochs × data
            order = torch.randperm(len(x), generator=generator)
            for batch in order.split(self.batch_size):
                optimiser.zero_grad()
                w = weight[batch]
                loss = (loss_fn(self.network_(x[batch]), y[batch]) * w).sum() / w.sum().clamp(min=1e-6)
                loss.backward()
                optimiser.step()
        self.network_.eval()

    def state(self) -> dict[str, np.ndarray]:
        weights = {f"network.{k}": v.numpy() for k, v in self.network_.state_dict().items()}
        return {**super().state(), **weights}

    def _restore(self, arrays) -> None:
        import torch

        weights = {k[len("network."):]: torch.from_numpy(np.array(v)) for k, v in arrays.items()
                   if k.startswith("network.")}
        first, last = next(iter(weights.values())), list(weights.values())[-1]
        self.network_ = self._network(first.shape[1], last.shape[0])
        self.network_.load_state_dict(weights)
        self.network_.eval()

    def _score(self, queries: Queries, columns: np.ndarray) -> np.ndarray:
        import torch

        with torch.no_grad():
            logits = self.network_(torch.from_numpy(_normalise(queries.embeddings)))
        return torch.sigmoid(logits).numpy()[:, columns]


class MLPRouter(LinearRouter):
    """MLPR: as LinearR with one hidden ReLU layer (and dropout)."""

    def __init__(self, hidden: int = 256, dropout: float = 0.1, epochs: int = 20, batch_size: int = 256,
                 lr: float = 1e-3, weight_decay: float = 1e-4, seed: int = 0, debias_clip: float | None = None,
                 logging_clip: float | None = None):
        super().__init__(epochs=epochs, batch_size=batch_size, lr=lr, weight_decay=weight_decay, seed=seed,
                         debias_clip=debias_clip, logging_clip=logging_clip)
        self.hidden = hidden
        self.dropout = dropout

    def _network(self, dim: int, outputs: int):
        import torch

        return torch.nn.Sequential(
            torch.nn.Linear(dim, self.hidden), torch.nn.ReLU(), torch.nn.Dropout(self.dropout),
            torch.nn.Linear(self.hidden, outputs),
        )

    def array_shapes(self) -> dict[str, tuple[str, tuple]]:
        return {**Router.array_shapes(self), "network.0.weight": ("f", (self.hidden, "d")),
                "network.0.bias": ("f", (self.hidden,)), "network.3.weight": ("f", ("m", self.hidden)),
                "network.3.bias": ("f", ("m",))}
