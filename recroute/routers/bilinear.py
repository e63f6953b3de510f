"""Text-conditioned bilinear matrix factorisation (RouteLLM's MF router, on outcome records).

score(p, m) = <W·e_p, v_m> + b_m, where e_p is the prompt's content
embedding: the prompt side is a learned projection of its text, so new
prompts need no cold-start step. Fitted with logistic loss on observed cells
only (soft targets for continuous scores), so a missing outcome is never
read as a wrong one; the bias b_m starts at the LLM's training log-odds and
carries the "best single model" prior that the factors then correct.
``logging_clip`` weights each logged record by its clipped, self-normalised
inverse logging propensity (:func:`recroute.logs.propensity_weights`).
"""
from __future__ import annotations

import numpy as np

from ..data import RoutingData
from ..logs import propensity_weights
from .base import torch_threads
from .debias import record_weights
from .latent import LatentFactorRouter


class BilinearRouter(LatentFactorRouter):
    param_grid = {"weight_decay": [1e-4, 1e-3, 1e-2]}

    def __init__(self, factors: int = 32, weight_decay: float = 1e-3, epochs: int = 300, lr: float = 1e-2,
                 seed: int = 0, debias_clip: float | None = None, logging_clip: float | None = None):
        self.factors = factors
        self.weight_decay = weight_decay
        self.epochs = epochs
        self.lr = lr
        self.seed = seed
        self.debias_clip = debias_clip
        self.logging_clip = logging_clip

    def _fit(self, train: RoutingData) -> None:
        with torch_threads(train.n_prompts * train.n_models):
            self._train(train)

    def _train(self, train: RoutingData) -> None:
        import torch

        generator = torch.Generator().manual_seed(self.seed)
        x = torch.from_numpy(np.ascontiguousarray(train.embeddings, dtype=np.float32))
        weight = record_weights(train.scores, self.debias_clip)  # 0 where unobserved
        if self.logging_clip is not None:
            weight = weight * propensity_weights(train, self.logging_clip)
        target = torch.from_numpy(np.nan_to_num(train.scores))
        observed = ~np.isnan(train.scores)  # the bias starts at each LLM's (weighted) log-odds
        means = (np.nan_to_num(train.scores) * weight).sum(axis=0) / np.maximum((weight * observed).sum(axis=0), 1e-12)
        means = np.clip(np.where(observed.any(axis=0), means, 0.5), 1e-3, 1 - 1e-3)
        weight = torch.from_numpy(weight)
        projection = torch.nn.Parameter(0.01 * torch.randn(x.shape[1], self.factors, generator=generator))
        llm = torch.nn.Parameter(0.01 * torch.randn(train.n_models, self.factors, generator=generator))
        bias = torch.nn.Parameter(torch.from_numpy(np.log(means / (1 - means)).astype(np.float32)))
        optimiser = torch.optim.Adam([projection, llm, bias], lr=self.lr)
        loss_fn = torch.nn.BCEWithLogitsLoss(reduction="none")
        total = weight.sum().clamp(min=1e-6)
        for _ in range(self.epochs):  # full batch: the whole matrix is one step
            optimiser.zero_grad()
            logits = (x @ projection) @ llm.T + bias
            loss = (loss_fn(logits, target) * weight).sum() / total
            loss = loss + self.weight_decay * (projection.square().sum() + llm.square().sum())
            loss.backward()
            optimiser.step()
        self.projection_ = projection.detach().numpy()
        self.llm_factors_ = llm.detach().numpy()
        self.llm_bias_ = bias.detach().numpy()

    def prompt_factors(self, embeddings: np.ndarray) -> np.ndarray:
        return embeddings @ self.projection_

    def array_shapes(self) -> dict[str, tuple[str, tuple]]:
        return {**super().array_shapes(), "projection_": ("f", ("d", "k"))}
