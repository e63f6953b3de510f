"""Routing logs: the sparse, policy-biased feedback a deployed router collects.

A log holds, for each prompt, the outcomes of the LLMs a *logging policy*
chose, each with its **propensity**: the probability that the policy logged
that (prompt, LLM) record. :func:`simulate_logs` turns a dense matrix into the
log a policy would have produced, with exact propensities, so that learning
and evaluation from logs can be checked against the truth.

K records per prompt are drawn without replacement by systematic sampling
(Madow 1949) with inclusion probabilities λ = min(1, c·π) summing to K, where
π is the policy's choice distribution. The propensity of a logged LLM is λ,
its probability of being among the prompt's K logged ones; for K = 1 it is
the policy probability π itself, and the logged LLM is one draw from π.
Inverse-propensity estimates (Horvitz–Thompson, :mod:`recroute.ope`) are
unbiased with λ for every K.
"""
from __future__ import annotations

import json
import os
from dataclasses import replace
from pathlib import Path

import numpy as np
from scipy.special import softmax

from .data import RoutingData
from .errors import RecrouteError

#: Share of traffic a ``router:DIR`` logging policy spreads uniformly, so every LLM has a positive propensity.
EXPLORATION = 0.1


def policy_probabilities(spec: str, data: RoutingData) -> np.ndarray:
    """Choice distribution (n_prompts, n_models) of ``uniform`` or ``softmax:T`` on ``data``.

    ``softmax:T`` sends prompt p to LLM m with probability ∝ exp(s_pm / T)
    over the prompt's true outcomes: a logging router that knows something,
    more skewed towards the LLMs that answer well as T falls (T > 0).
    """
    n, m = data.scores.shape
    if spec == "uniform":
        return np.full((n, m), 1.0 / m)
    name, _, arg = spec.partition(":")
    if name == "softmax":
        try:
            temperature = float(arg)
        except ValueError:
            temperature = float("nan")
        if not (np.isfinite(temperature) and temperature > 0):
            raise RecrouteError(f"policy {spec!r}: softmax needs a positive temperature, e.g. softmax:0.5.")
        return softmax(data.scores.astype(np.float64) / temperature, axis=1)
    raise RecrouteError(f"unknown logging policy {spec!r}; use uniform, softmax:T or router:DIR.")


def explore(policy: np.ndarray, epsilon: float = EXPLORATION) -> np.ndarray:
    """(1 − ε)·policy + ε·uniform: a deterministic router's choices made loggable for every LLM."""
    return (1 - epsilon) * np.asarray(policy, dtype=np.float64) + epsilon / policy.shape[1]


def inclusion_probabilities(policy: np.ndarray, k: int) -> np.ndarray:
    """λ = min(1, c·π) with c per row such that each row sums to ``k``: what K draws log each LLM with."""
    policy = np.asarray(policy, dtype=np.float64)
    support = (policy > 0).sum(axis=1)
    if k < 1 or (support < k).any():
        raise RecrouteError(f"cannot log {k} LLMs per prompt: the policy gives some prompt only "
                            f"{int(support.min())} LLM(s) with a positive probability.")
    capped = np.zeros(policy.shape, dtype=bool)
    for _ in range(k + 1):  # each pass caps at least one more LLM, and at most k can be capped
        free_mass = np.where(capped, 0, policy).sum(axis=1, keepdims=True)
        lam = np.where(capped, 1.0, (k - capped.sum(axis=1, keepdims=True)) * policy / free_mass)
        if not (lam > 1).any():
            return lam
        capped |= lam > 1
    return lam


def complete_prompts(data: RoutingData) -> tuple[RoutingData, int]:
    """The prompts with an outcome from every LLM of ``data``, and how many others were left out.

    A log can only be simulated where the policy's every choice has an outcome;
    refused in one sentence when no prompt has them all.
    """
    complete = data.observed.all(axis=1)
    if not complete.any():
        raise RecrouteError(f"{data.source}: no prompt has an outcome from each of the {data.n_models} LLMs, so no "
                            "log can be simulated; choose a pool (--pool) whose outcomes the data holds.")
    skipped = int((~complete).sum())
    return (data.subset(prompts=complete) if skipped else data), skipped


def simulate_logs(data: RoutingData, policy: np.ndarray, k: int, seed: int = 0) -> RoutingData:
    """The log ``policy`` would have produced on ``data``: ``k`` outcomes per prompt, with propensities.

    ``data`` must hold every outcome the policy can choose (a dense matrix: see :func:`complete_prompts`).
    """
    if not data.observed.all():
        raise RecrouteError(f"{data.source}: simulating a log needs every outcome of the pool, but "
                            f"{int((~data.observed).any(axis=1).sum())} prompts lack some.")
    lam = inclusion_probabilities(policy, k)
    rng = np.random.default_rng(seed)
    n, m = lam.shape
    logged = np.zeros((n, m), dtype=bool)
    order = rng.permuted(np.tile(np.arange(m), (n, 1)), axis=1)  # a random order per prompt
    start = rng.random(n)
    for i in range(n):  # systematic sampling: the points u, u+1, ..., u+k-1 on the stacked λ's
        edges = np.concatenate([[0.0], np.cumsum(lam[i, order[i]])])
        hit = np.searchsorted(edges, start[i] + np.arange(k), side="right") - 1
        logged[i, order[i, np.minimum(hit, m - 1)]] = True
    return replace(  # the same prompts (texts, embeddings, groups), LLMs and prices; only the records thinned
        data, scores=np.where(logged, data.scores, np.nan),
        cost=None if data.cost is None else np.where(logged, data.cost, np.nan),
        propensity=np.where(logged, lam, np.nan), source=f"log of {data.source}",
    )


def write_long(data: RoutingData, path) -> Path:
    """Write the observed records as long JSONL (one object per outcome), atomically."""
    path = Path(path)
    rows, cols = np.nonzero(data.observed)
    tmp = path.with_name(f".{path.name}.tmp")
    try:
        with open(tmp, "w", encoding="utf-8") as f:
            for i, j in zip(rows.tolist(), cols.tolist()):
                record = {"prompt_id": str(data.prompt_ids[i]), "model": str(data.models[j]),
                          "score": float(data.scores[i, j])}
                for name in ("propensity", "cost"):
                    values = getattr(data, name)
                    if values is not None and not np.isnan(values[i, j]):
                        record[name] = float(values[i, j])
                for name, values in (("prompt", data.prompts), ("group", data.groups), ("split", data.splits)):
                    if values is not None:
                        record[name] = str(values[i])
                f.write(json.dumps(record, ensure_ascii=False) + "\n")
        os.replace(tmp, path)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise RecrouteError(f"{path}: cannot write ({exc.strerror or exc}).") from None
    return path


def propensity_weights(data: RoutingData, clip: float) -> np.ndarray:
    """Training weight of every cell: min(1/propensity, clip), scaled to mean 1 over the observed cells.

    Inverse-propensity weighting makes a log count every (prompt, LLM) record
    as a uniformly logged one would; the clip bounds the variance a rarely
    logged record adds; the scaling (self-normalisation) keeps the loss on
    its usual scale. A record without a propensity was logged for certain
    (weight 1); unobserved cells weigh 0, so the weights also mask them.
    """
    if data.propensity is None:
        raise RecrouteError(f"{data.source}: logging_clip weights records by their propensity, but the data has "
                            "no propensity column.")
    observed = data.observed
    propensity = np.where(np.isnan(data.propensity), 1.0, data.propensity)
    weights = np.where(observed, np.minimum(1.0 / propensity, clip), 0.0)
    return (weights / weights[observed].mean()).astype(np.float32)
