"""What a query costs on each LLM, and choosing an LLM that is worth its price.

Routing for cost follows a willingness-to-pay rule: pick the LLM with the
highest predicted P(good answer) − λ·cost, where λ (``cost_weight``) is how
much probability of a good answer one dollar must buy; or, with a budget,
the best LLM whose predicted cost fits it. Every router states its
P(good answer) (:meth:`recroute.Router.probability`): its score where that
is a probability, a calibrated map of it for the latent-factor routers.

Costs come from the data in one of two forms, both turned into the same
per-LLM model, dollars = intercept + slope × prompt tokens:

* per-query costs (RouterBench's ``MODEL|total_cost``): a least-squares line
  per LLM on the training prompts' estimated token counts;
* per-LLM token prices (LLMRouter's dollars per million input/output
  tokens): slope = the input price, intercept = the output price times an
  assumed answer length (``output_tokens``, 256 by default).

Token counts are estimated from the text as ceil(characters / 4), the
usual rule of thumb for English with GPT-style tokenizers; no tokenizer is
downloaded.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np

from .data import RoutingData, name_positions
from .errors import RecrouteError

CHARS_PER_TOKEN = 4


def require_costs(data: RoutingData) -> None:
    """Refuse data with nothing to price queries by, naming it."""
    if data.cost is None and data.price is None:
        raise RecrouteError(f"{data.source}: has neither per-query costs nor per-LLM prices; nothing to trade off.")


def estimate_tokens(texts: Sequence[str]) -> np.ndarray:
    """Estimated prompt tokens: ceil(characters / 4), at least 1."""
    lengths = np.fromiter((len(t) for t in texts), dtype=np.float64, count=len(texts))
    return np.maximum(np.ceil(lengths / CHARS_PER_TOKEN), 1.0)


class CostModel:
    """Predicted dollars per query of each LLM from the prompt's length."""

    def __init__(self, output_tokens: int = 256):
        if isinstance(output_tokens, bool) or not isinstance(output_tokens, int) or output_tokens < 0:
            raise RecrouteError(f"the assumed answer length must be a non-negative integer of tokens, "
                                f"got {output_tokens!r}.")
        self.output_tokens = output_tokens

    def fit(self, data: RoutingData) -> "CostModel":
        """Learn per-LLM cost lines from ``data.cost`` (preferred) or ``data.price``."""
        require_costs(data)
        tokens = None if data.prompts is None else estimate_tokens(data.prompts)
        if data.cost is not None:
            self.intercept_, self.slope_ = _cost_lines(data.cost, tokens, data.source)
        else:
            if tokens is None:
                raise RecrouteError(f"{data.source}: token prices need the prompt texts to estimate token counts.")
            self.slope_ = (data.price[:, 0] / 1e6).astype(np.float64)
            self.intercept_ = (data.price[:, 1] / 1e6 * self.output_tokens).astype(np.float64)
        self.models_ = np.asarray(data.models)
        return self

    def predict(self, texts: Sequence[str], models: Sequence[str] | None = None) -> np.ndarray:
        """Predicted dollars, shape (len(texts), len(models)); every fitted LLM by default."""
        columns = np.arange(len(self.models_)) if models is None else \
            name_positions(self.models_, models, "the cost model")
        tokens = estimate_tokens(texts)
        return np.maximum(self.intercept_[columns] + tokens[:, None] * self.slope_[columns], 0.0)

    def add_llm(self, other: "CostModel") -> "CostModel":
        """Take in the cost lines of ``other`` (fitted on a new LLM's records) for LLMs not known yet."""
        clash = sorted(set(other.models_.tolist()) & set(self.models_.tolist()))
        if clash:
            raise RecrouteError(f"the cost model already prices {clash[0]!r}.")
        self.intercept_ = np.r_[self.intercept_, other.intercept_]
        self.slope_ = np.r_[self.slope_, other.slope_]
        self.models_ = np.r_[self.models_, other.models_]
        return self

    def remove_llm(self, name: str) -> "CostModel":
        keep = self.models_ != str(name)
        if keep.all():
            raise RecrouteError(f"the cost model does not price {name!r}.")
        self.intercept_, self.slope_, self.models_ = self.intercept_[keep], self.slope_[keep], self.models_[keep]
        return self

    def get_params(self) -> dict:
        return {"output_tokens": self.output_tokens}

    def state(self) -> dict[str, np.ndarray]:
        return {"intercept_": self.intercept_, "slope_": self.slope_, "models_": self.models_}

    #: What :meth:`state` saves, in the form of :meth:`recroute.Router.array_shapes`.
    ARRAY_SHAPES = {"intercept_": ("f", ("m",)), "slope_": ("f", ("m",)), "models_": ("U", ("m",))}

    def load_state(self, arrays: dict[str, np.ndarray]) -> "CostModel":
        for key in ("intercept_", "slope_", "models_"):
            if key not in arrays:
                raise RecrouteError(f"the cost model lacks its {key.rstrip('_')} array")
        self.intercept_ = np.asarray(arrays["intercept_"], dtype=np.float64)
        self.slope_ = np.asarray(arrays["slope_"], dtype=np.float64)
        self.models_ = np.asarray(arrays["models_"]).astype(str)
        if not (self.intercept_.shape == self.slope_.shape == self.models_.shape):
            raise RecrouteError("the cost model's arrays disagree in length")
        if not (np.isfinite(self.intercept_).all() and np.isfinite(self.slope_).all()) \
                or (self.intercept_ < 0).any() or (self.slope_ < 0).any():
            raise RecrouteError("the cost model's intercepts and slopes must be finite and non-negative")
        return self


def realised_cost(data: RoutingData, output_tokens: int = 256) -> np.ndarray:
    """What each (prompt, LLM) query cost: the recorded cost, or the price-based estimate without one."""
    if data.cost is not None:
        return data.cost.astype(np.float64)
    return CostModel(output_tokens).fit(data).predict(data.prompts)


def choose(scores: np.ndarray, costs: np.ndarray, cost_weight: float = 0.0,
           budget: float | None = None) -> np.ndarray:
    """Index of the chosen LLM per prompt: argmax of score − cost_weight·cost.

    With a ``budget`` only LLMs whose cost is within it compete; a prompt no
    LLM fits goes to its cheapest LLM.
    """
    utility = np.asarray(scores, dtype=np.float64) - cost_weight * np.asarray(costs, dtype=np.float64)
    if budget is not None:
        fits = costs <= budget
        utility = np.where(fits, utility, -np.inf)
        cheapest = np.argmin(costs, axis=1)
        return np.where(fits.any(axis=1), np.argmax(utility, axis=1), cheapest)
    return np.argmax(utility, axis=1)


def _cost_lines(cost: np.ndarray, tokens: np.ndarray | None, source: str) -> tuple[np.ndarray, np.ndarray]:
    """Per-LLM least-squares intercept and (non-negative) slope of cost on tokens."""
    m = cost.shape[1]
    intercept, slope = np.zeros(m), np.zeros(m)
    for j in range(m):
        seen = ~np.isnan(cost[:, j])
        if not seen.any():
            raise RecrouteError(f"{source}: LLM column {j} has no recorded cost.")
        y = cost[seen, j].astype(np.float64)
        if tokens is not None and np.ptp(tokens[seen]) > 0:
            b, a = np.polyfit(tokens[seen], y, 1)
            if b < 0:  # a longer prompt never costs less: fall back to the mean
                a, b = y.mean(), 0.0
        else:
            a, b = y.mean(), 0.0
        intercept[j], slope[j] = a, b
    return intercept, slope
