"""A new LLM's benchmark score from a few of its answers, through the router's latent space.

The router's training prompts are the benchmark. A new LLM answers n of them;
it is folded in from those outcomes (issue 6's fold-in, placed by the
prompts' learned factors: :meth:`LatentFactorRouter.new_llm_probability`),
and its score is its observed outcomes where known and its predicted
probability of a good answer elsewhere, averaged over every training prompt.
Like tinyBenchmarks' IRT estimates, the other LLMs' outcomes tell how hard
and how alike the prompts are, so n answers say more than their plain mean.

The interval is a bootstrap over the observed prompts: each replicate refits
the fold-in on a resample of them and draws each unobserved prompt's outcome
from the refitted probability, so it counts both the fold-in's uncertainty
and the randomness of the outcomes still unseen (but not a misspecified
model, which the benchmarks measure).
"""
from __future__ import annotations

import numpy as np
from scipy.stats import bootstrap

from .errors import RecrouteError
from .routers.latent import LatentFactorRouter


def benchmark_estimate(router: LatentFactorRouter, prompt_ids, outcomes, confidence: float = 0.95,
                       n_resamples: int = 200, seed: int = 0) -> dict:
    """``{"n_observed", "estimate", "low", "high"}``: the mean score over the router's training prompts."""
    warm_ids = getattr(router, "warm_ids_", None)
    if not isinstance(router, LatentFactorRouter) or warm_ids is None:
        raise RecrouteError(f"a {type(router).__name__} does not keep its training prompts; estimating a "
                            "benchmark score needs one that does (als or bpr, fitted by this recroute).")
    row = {pid: i for i, pid in enumerate(warm_ids.tolist())}
    ids = [str(p) for p in prompt_ids]
    unknown = [p for p in ids if p not in row]
    if unknown:
        raise RecrouteError(f"{len(unknown)} prompt(s) are not among the router's training prompts, e.g. "
                            f"{unknown[0]!r}; the estimate is over those prompts, so the answers must be to them.")
    outcomes = np.asarray(outcomes, dtype=np.float64)
    observed = np.array([row[p] for p in ids], dtype=np.int64)
    if len(observed) == 0:
        raise RecrouteError("estimating a benchmark score needs at least one outcome.")
    factors = router.warm_factors_
    n_all = len(factors)
    unseen = np.setdiff1d(np.arange(n_all), observed)
    rng = np.random.default_rng(seed)

    def value(sample: np.ndarray, draw: bool) -> float:
        p = router.new_llm_probability(factors[observed[sample]], outcomes[sample], factors[unseen])
        rest = (rng.random(len(p)) < p).sum() if draw else p.sum()
        return float((outcomes.sum() + rest) / n_all)

    estimate = value(np.arange(len(observed)), draw=False)
    low = high = estimate
    if len(observed) > 1 and len(unseen):
        ci = bootstrap((np.arange(len(observed)),), lambda s: value(s.astype(np.int64), draw=True),
                       vectorized=False, n_resamples=n_resamples, confidence_level=confidence,
                       method="percentile", random_state=rng).confidence_interval
        low, high = min(float(ci.low), estimate), max(float(ci.high), estimate)
    return {"n_observed": int(len(observed)), "estimate": estimate, "low": low, "high": high}
