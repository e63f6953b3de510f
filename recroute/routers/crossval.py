"""K-fold cross-validation on training prompts: how the routers that choose their own settings choose.

Routing is judged by what it delivers, so a setting is scored by the mean true
score of the LLM it routes each held-out prompt to (``routed_mean``); the test
prompts of an evaluation never take part, only the prompts passed to ``fit``.
"""
from __future__ import annotations

import numpy as np

from ..errors import RecrouteError


def fold_ids(n: int, folds: int, seed: int) -> np.ndarray:
    """A fold number in 0..folds-1 for each of n prompts, shuffled with ``seed``, folds as equal as can be."""
    if not isinstance(folds, (int, np.integer)) or folds < 2:
        raise RecrouteError(f"cross-validation needs at least 2 folds, got {folds!r}.")
    if n < folds:
        raise RecrouteError(f"{n} training prompts cannot be cut into {folds} folds.")
    return np.random.default_rng(seed).permutation(np.arange(n) % folds)


def routed_mean(truth: np.ndarray, choice: np.ndarray) -> float:
    """Mean true score of the chosen LLM per prompt (prompts whose chosen cell is unobserved do not count)."""
    picked = truth[np.arange(len(choice)), choice]
    picked = picked[~np.isnan(picked)]
    return float(picked.mean(dtype=np.float64)) if picked.size else -np.inf


def column_means(scores: np.ndarray, weights: np.ndarray | None = None) -> np.ndarray:
    """Each LLM's mean observed score (0 for an LLM never observed), weighted by ``weights`` per cell if given
    (:func:`recroute.logs.propensity_weights`, 0 where unobserved)."""
    observed = ~np.isnan(scores)
    w = observed if weights is None else np.where(observed, weights, 0)
    total = np.asarray(w, dtype=np.float64).sum(axis=0)
    return (np.where(observed, scores, 0) * w).sum(axis=0, dtype=np.float64) / np.where(total > 0, total, 1)


def normalise(x: np.ndarray) -> np.ndarray:
    """Rows scaled to unit length, float32 and contiguous, as FAISS wants them."""
    x = np.ascontiguousarray(x, dtype=np.float32)
    return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)


def shrunk_means(assignment: np.ndarray, scores: np.ndarray, k: int, prior: float,
                 weights: np.ndarray | None = None) -> np.ndarray:
    """Each of k groups' per-LLM mean observed score (record-``weights``-ed if given), shrunk towards the
    LLM's mean over all the given prompts with a prior worth ``prior`` prompts: shape (k, LLMs), float32."""
    observed = ~np.isnan(scores)
    w = observed if weights is None else np.where(observed, weights, 0)
    sums = np.zeros((k, scores.shape[1]))
    counts = np.zeros((k, scores.shape[1]))
    np.add.at(sums, assignment, np.where(observed, scores, 0) * w)
    np.add.at(counts, assignment, w)
    return ((sums + prior * column_means(scores, weights)) / np.maximum(counts + prior, 1e-12)).astype(np.float32)
