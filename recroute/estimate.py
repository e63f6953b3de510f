"""A new LLM's benchmark score from a few of its answers, borrowing strength from the router's training LLMs.

The router's training prompts are the benchmark. A new LLM answers n of
them; the plain mean of those n outcomes has a standard error of
√(p(1−p)/n). Two things the training LLMs know make n answers say more:

* **how the prompts differ** — each prompt's covariates: its mean score over
  the training LLMs (how easy it is), centred, and its coordinates on the
  main directions along which the LLMs disagree: the leading left singular
  vectors of the score matrix with prompt and LLM means removed, those whose
  singular value rises above what noise alone would give, at most
  ``MAX_COMPONENTS``. An LLM's outcome on a prompt is modelled as a linear function of
  them, θ·x_p (x_p with a leading 1), plus noise;
* **how LLMs differ** — every training LLM's own θ, fitted by least squares
  on its observed outcomes, gives an empirical prior N(μ, Σ) for a new LLM's θ
  (and their residual variance the noise's prior).

The new LLM's θ is then the posterior mean from its n outcomes (Bayesian
linear regression; the noise variance is re-estimated from its residuals with
the pooled variance worth ``NOISE_PRIOR_DF`` outcomes), and its score is its
observed outcomes where known and θ·x_p elsewhere, averaged over every
training prompt. With many outcomes this is the regression (GREG) estimator;
with few it leans on the training LLMs, as tinyBenchmarks' IRT does. The
interval is the posterior's for the finite-population mean (θ's uncertainty
plus the unseen outcomes' own noise), with a Student-t quantile whose degrees
of freedom are those of the noise estimate.

:func:`benchmark_summary` computes the covariates and the prior from the
training scores at fit time (the router keeps them beside its training
prompts); :func:`benchmark_estimate` uses them.
"""
from __future__ import annotations

import numpy as np
from scipy.stats import t as student_t

from .errors import RecrouteError

#: Most directions of disagreement among the training LLMs used as prompt covariates (besides the mean score).
MAX_COMPONENTS = 8
#: Outcomes' worth of weight the training LLMs' pooled noise variance carries in a new LLM's noise estimate.
NOISE_PRIOR_DF = 5.0
#: Training LLMs needed for an empirical prior over LLMs.
MIN_LLMS = 3
_BLOCK = 2048
#: The router attributes that hold a summary (:func:`benchmark_summary`).
_SUMMARY = ("warm_covariates_", "benchmark_mean_", "benchmark_cov_", "benchmark_noise_")


def benchmark_summary(scores: np.ndarray, seed: int = 0) -> dict[str, np.ndarray] | None:
    """``{"covariates" (n, b), "mean" (b,), "cov" (b, b), "noise" (1,)}`` from training scores (NaN: not observed).

    None when fewer than ``MIN_LLMS`` LLMs have enough observed outcomes to
    say how LLMs differ. Works in row blocks: no dense float64 copy of the matrix.
    """
    scores = np.asarray(scores)
    n, m = scores.shape
    observed_count = np.zeros(m)
    row_sum, row_count, col_sum = np.zeros(n), np.zeros(n), np.zeros(m)
    for rows, block, seen in _blocks(scores):
        observed_count += seen.sum(axis=0)
        row_sum[rows], row_count[rows] = block.sum(axis=1), seen.sum(axis=1)
        col_sum += block.sum(axis=0)
    if observed_count.sum() == 0:
        return None
    grand = col_sum.sum() / observed_count.sum()
    ease = np.where(row_count > 0, row_sum / np.maximum(row_count, 1), grand)
    llm_mean = np.where(observed_count > 0, col_sum / np.maximum(observed_count, 1), grand)
    k = max(0, min(MAX_COMPONENTS, m - 2, n - 2))
    base = np.stack([np.ones(n), ease - ease.mean()], axis=1)
    covariates = np.hstack([base, _components(scores, ease, llm_mean, grand, k, seed, base)])
    b = covariates.shape[1]

    # every LLM's least-squares θ on its observed prompts, from per-LLM Gram matrices built by matrix-vector products
    gram, xty, yty = np.zeros((m, b, b)), np.zeros((m, b)), np.zeros(m)
    pairs = [(i, j) for i in range(b) for j in range(i, b)]
    for rows, block, seen in _blocks(scores):
        x = covariates[rows]
        seen = seen.astype(np.float64)
        for i, j in pairs:
            gram[:, i, j] += seen.T @ (x[:, i] * x[:, j])
        xty += block.T @ x
        yty += (block * block).sum(axis=0)
    upper = np.triu_indices(b, 1)
    gram[:, upper[1], upper[0]] = gram[:, upper[0], upper[1]]
    usable = observed_count > b
    if usable.sum() < MIN_LLMS:
        return None
    gram, xty, yty, count = gram[usable], xty[usable], yty[usable], observed_count[usable]
    theta = np.linalg.solve(gram + 1e-9 * np.eye(b), xty[:, :, None])[:, :, 0]
    residual = (yty - 2 * (theta * xty).sum(axis=1) + np.einsum("mi,mij,mj->m", theta, gram, theta)) / count
    used = len(theta)
    cov = np.cov(theta.T) * (1 + 1 / used)  # a new LLM is one more draw: the mean's uncertainty too
    cov[2:, :2] = cov[:2, 2:] = 0  # the components' coefficients: independent, one variance each
    cov[2:, 2:] = np.diag(np.diag(cov)[2:])
    cov += 1e-9 * np.eye(b)
    return {"covariates": covariates.astype(np.float32), "mean": theta.mean(axis=0), "cov": cov,
            "noise": np.array([max(float(np.mean(np.maximum(residual, 0))), 1e-12)])}


def _blocks(scores: np.ndarray):
    """(rows, scores with NaN as 0 in float64, observed mask) per block of rows."""
    for start in range(0, len(scores), _BLOCK):
        rows = slice(start, start + _BLOCK)
        block = scores[rows].astype(np.float64)
        seen = ~np.isnan(block)
        yield rows, np.where(seen, block, 0.0), seen


def _components(scores, ease, llm_mean, grand, k, seed, base) -> np.ndarray:
    """The leading left singular vectors (scaled to mean square 1), at most k, of the residuals
    R = s − ease_p − mean_m + grand (0 where unobserved) whose singular values exceed the edge
    σ·(√n + √m) of a matrix of independent noise with R's mean square σ² over the observed cells
    (Marchenko–Pastur); by a randomised range finder with power iterations, R never formed whole.
    They are made orthogonal to the ``base`` covariates (LLMs that differ in how much ease matters
    disagree along the ease itself), and any left with nothing new is dropped."""
    n, m = scores.shape
    if k == 0:
        return np.zeros((n, 0))

    def residuals():
        for rows, block, seen in _blocks(scores):
            yield rows, np.where(seen, block - ease[rows, None] - llm_mean[None, :] + grand, 0.0), seen

    def times(matrix):  # R @ matrix
        out = np.empty((n, matrix.shape[1]))
        for rows, r, _ in residuals():
            out[rows] = r @ matrix
        return out

    def transposed_times(matrix):  # R.T @ matrix
        return sum(r.T @ matrix[rows] for rows, r, _ in residuals())

    rng = np.random.default_rng(seed)
    basis = np.linalg.qr(times(rng.standard_normal((m, min(m, k + 8)))))[0]
    for _ in range(3):
        basis = np.linalg.qr(times(np.linalg.qr(transposed_times(basis))[0]))[0]
    left, singular, _ = np.linalg.svd(transposed_times(basis).T, full_matrices=False)
    square, cells = 0.0, 0
    for _, r, seen in residuals():
        square, cells = square + float((r * r).sum()), cells + int(seen.sum())
    edge = np.sqrt(square / max(cells, 1)) * (np.sqrt(n) + np.sqrt(m))
    vectors = basis @ left[:, :int(np.sum(singular[:k] > edge))]
    q = np.linalg.qr(base)[0]
    vectors -= q @ (q.T @ vectors)
    norms = np.linalg.norm(vectors, axis=0)
    return vectors[:, norms > 1e-3] / norms[norms > 1e-3] * np.sqrt(n)


def benchmark_estimate(router, prompt_ids, outcomes, confidence: float = 0.95) -> dict:
    """``{"n_observed", "estimate", "low", "high"}``: the new LLM's mean score over the router's training prompts."""
    warm_ids = getattr(router, "warm_ids_", None)
    if warm_ids is None:
        raise RecrouteError(f"a {type(router).__name__} does not keep its training prompts; estimating a "
                            "benchmark score needs one that does (als or bpr, fitted by this recroute).")
    if any(getattr(router, name, None) is None for name in _SUMMARY):
        raise RecrouteError(f"this {type(router).__name__} keeps no benchmark summary: it was fitted on fewer than "
                            f"{MIN_LLMS} LLMs with enough outcomes, by the Spark engine (which keeps a sample of "
                            "prompts) or by an older recroute; refit it with recroute fit to estimate.")
    row = {pid: i for i, pid in enumerate(warm_ids.tolist())}
    ids = [str(p) for p in prompt_ids]
    unknown = [p for p in ids if p not in row]
    if unknown:
        raise RecrouteError(f"{len(unknown)} prompt(s) are not among the router's training prompts, e.g. "
                            f"{unknown[0]!r}; the estimate is over those prompts, so the answers must be to them.")
    if len(set(ids)) != len(ids):
        twice = next(p for p in ids if ids.count(p) > 1)
        raise RecrouteError(f"prompt {twice!r} has more than one outcome; give one outcome per prompt.")
    y = np.asarray(outcomes, dtype=np.float64)
    if len(y) == 0:
        raise RecrouteError("estimating a benchmark score needs at least one outcome.")
    if y.shape != (len(ids),) or not np.isfinite(y).all():
        raise RecrouteError("estimating a benchmark score needs one finite outcome per prompt.")
    x = router.warm_covariates_.astype(np.float64)
    observed = np.array([row[p] for p in ids], dtype=np.int64)
    unseen = np.ones(len(x), dtype=bool)
    unseen[observed] = False
    n_all, n = len(x), len(observed)
    if not unseen.any():  # everything is known: nothing to predict
        value = float(y.mean())
        return {"n_observed": n, "estimate": value, "low": value, "high": value}
    theta, posterior, noise, df = _posterior(x[observed], y, router.benchmark_mean_.astype(np.float64),
                                             router.benchmark_cov_.astype(np.float64),
                                             float(router.benchmark_noise_[0]))
    total = x[unseen].sum(axis=0)
    estimate = float((y.sum() + total @ theta) / n_all)
    sd = float(np.sqrt(total @ posterior @ total + unseen.sum() * noise) / n_all)
    half = float(student_t.ppf(0.5 + confidence / 2, df)) * sd
    return {"n_observed": n, "estimate": estimate, "low": estimate - half, "high": estimate + half}


def _posterior(x, y, prior_mean, prior_cov, pooled_noise):
    """θ's posterior mean and covariance, the noise variance, and its degrees of freedom.

    The noise variance σ² and θ are solved in turn: σ² = (ν·pooled + RSS) / (ν + n − h), h the
    posterior's effective number of parameters, ν = ``NOISE_PRIOR_DF``."""
    precision0 = np.linalg.inv(prior_cov)
    noise = pooled_noise
    for _ in range(4):
        posterior = np.linalg.inv(precision0 + x.T @ x / noise)
        theta = posterior @ (precision0 @ prior_mean + x.T @ y / noise)
        effective = float(np.trace(x @ posterior @ x.T)) / noise
        df = NOISE_PRIOR_DF + len(y) - effective
        noise = max((NOISE_PRIOR_DF * pooled_noise + float(np.sum((y - x @ theta) ** 2))) / df, 1e-12)
    posterior = np.linalg.inv(precision0 + x.T @ x / noise)
    theta = posterior @ (precision0 @ prior_mean + x.T @ y / noise)
    return theta, posterior, noise, df
