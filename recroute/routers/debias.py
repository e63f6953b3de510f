"""Popularity debiasing: why a router collapses onto one LLM, and two ways to stop it.

A router trained on outcome records sees the strongest LLM among the best
answers most often, so its scores drift towards that LLM for every prompt
(RouterEval's low selection entropy). Two remedies, usable with every learned
router:

* **inverse-propensity weights** at training time (``debias_clip`` on each
  learned router): a record where LLM m is among the prompt's best answers
  weighs 1/propensity(m), the propensity being how often m is among the best
  on the training prompts, scaled so the most popular LLM weighs 1 and
  clipped at ``clip`` so a rarely-best LLM cannot dominate;
* **post-hoc rebalancing** (:func:`selection_offsets`): per-LLM score offsets,
  fitted on held-out prompts, that make the router's choices follow
  :func:`oracle_share`, the spread a router that never missed would have,
  instead of piling onto one LLM.
"""
from __future__ import annotations

import numpy as np

from ..errors import RecrouteError
from .base import best_set_labels


def oracle_share(truth: np.ndarray, predicted: np.ndarray) -> np.ndarray:
    """How a router's choices would spread if it never missed.

    On each prompt the router's highest-scored LLM among those within 95%
    of the prompt's best outcome (ties between good answers are broken by
    the router's own preference, so a popular LLM keeps the prompts it gets
    right). Prompts no LLM answers well cast no vote. Returns shares summing
    to 1 (uniform when no prompt votes).
    """
    good = np.nan_to_num(best_set_labels(np.asarray(truth, dtype=np.float32))) == 1
    votes = good.any(axis=1)
    m = good.shape[1]
    if not votes.any():
        return np.full(m, 1 / m)
    picks = np.argmax(np.where(good, predicted, -np.inf)[votes], axis=1)
    return np.bincount(picks, minlength=m) / votes.sum()


def ips_weights(scores: np.ndarray, clip: float) -> np.ndarray:
    """Per-LLM weight of a best-set record: max propensity / propensity, clipped at ``clip``.

    The propensity of an LLM is the fraction of (observed) training prompts on
    which it is among the best. The most popular LLM weighs 1; one that is
    never among the best weighs ``clip``.
    """
    if not clip >= 1:
        raise RecrouteError(f"debias_clip must be a number of at least 1, got {clip!r}.")
    labels = best_set_labels(np.asarray(scores, dtype=np.float32))
    observed = (~np.isnan(labels)).sum(axis=0)
    propensity = np.nan_to_num(labels).sum(axis=0) / np.maximum(observed, 1)
    top = propensity.max()
    if top == 0:
        return np.ones(labels.shape[1], dtype=np.float32)
    with np.errstate(divide="ignore"):
        return np.minimum(top / propensity, clip).astype(np.float32)


def record_weights(scores: np.ndarray, clip: float | None) -> np.ndarray:
    """Weight of every training cell: the LLM's IPS weight where it is among the best, else 1.

    Without a clip (debiasing off) every cell weighs 1. Unobserved cells get
    weight 0, so a loss multiplied by these weights also masks them.
    """
    scores = np.asarray(scores, dtype=np.float32)
    observed = ~np.isnan(scores)
    if clip is None:
        return observed.astype(np.float32)
    good = np.nan_to_num(best_set_labels(scores)) == 1
    return np.where(good, ips_weights(scores, clip)[None, :], 1.0).astype(np.float32) * observed


def selection_offsets(predicted: np.ndarray, target_share: np.ndarray, steps: int = 200,
                      step_size: float | None = None) -> np.ndarray:
    """Per-LLM offsets that make argmax(predicted + offsets) pick LLMs in ``target_share`` proportions.

    A multiplicative-weights search: an LLM chosen more often than its target
    share is lowered, one chosen less often is raised, in steps that shrink
    over time. ``step_size`` defaults to the spread of the predicted scores.
    Returns the offsets with the best match seen (total variation distance).
    """
    predicted = np.asarray(predicted, dtype=np.float64)
    target = np.asarray(target_share, dtype=np.float64)
    if predicted.ndim != 2 or target.shape != (predicted.shape[1],):
        raise RecrouteError(f"selection_offsets: predicted scores {predicted.shape} and target shares "
                            f"{target.shape} do not match.")
    n, m = predicted.shape
    offsets = np.zeros(m)
    if n == 0 or m < 2:
        return offsets.astype(np.float32)
    scale = step_size if step_size is not None else float(np.std(predicted)) or 1.0
    best, best_gap = offsets.copy(), np.inf
    for step in range(steps):
        share = np.bincount(np.argmax(predicted + offsets, axis=1), minlength=m) / n
        gap = 0.5 * np.abs(share - target).sum()
        if gap < best_gap:
            best, best_gap = offsets.copy(), gap
        offsets -= scale * (share - target) / np.sqrt(step + 1)
    return (best - best.mean()).astype(np.float32)
