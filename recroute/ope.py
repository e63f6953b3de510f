"""Off-policy evaluation: a router's mean score estimated from a log another policy collected.

The target value is V = mean over prompts p of Σ_m π(m|p)·r(p, m), π the
router's policy (:meth:`Router.policy`), r the true outcomes. From a log with
propensities λ (:mod:`recroute.logs`) and w = π/λ on the logged records:

* **IPS** (Horvitz–Thompson): mean_p Σ_{logged m} w·r. Unbiased whenever the
  logging policy gave every LLM the router may choose a positive propensity.
* **SNIPS**: Σ_p Σ w·r / Σ_p Σ w; the denominator has expectation n, so this
  trades a little bias for much less variance when weights are large.
* **DR** (doubly robust): mean_p [Σ_m π·q + Σ_{logged m} w·(r − q)] with q a
  direct model of r (the router's own :meth:`Router.probability`): unbiased
  for any q, and low-variance when q is good.

Each comes with a 95% BCa bootstrap interval over prompts (scipy.stats.bootstrap;
the percentile interval where BCa is undefined), as in the Open Bandit Pipeline.
"""
from __future__ import annotations

import warnings

import numpy as np
from scipy.stats import bootstrap

from .errors import RecrouteError

ESTIMATORS = ("ips", "snips", "dr")


def prompt_terms(rewards: np.ndarray, propensity: np.ndarray, target: np.ndarray,
                 direct: np.ndarray | None = None) -> dict[str, np.ndarray]:
    """Per-prompt terms (n,) whose means make the estimates: 'ips', 'weight' (Σ w) and 'dr'.

    ``rewards`` and ``propensity`` (n, m) are NaN where not logged; ``target``
    (n, m) is the evaluated policy; ``direct`` (n, m) the direct model (0 when None).
    """
    logged = ~np.isnan(rewards)
    if (logged & np.isnan(propensity)).any():
        raise RecrouteError(f"{int((logged & np.isnan(propensity)).sum())} logged records have no propensity; "
                            "off-policy evaluation needs the logging policy's probability of each.")
    weight = np.where(logged, target / np.where(logged, propensity, 1.0), 0.0)
    r = np.where(logged, rewards, 0.0)
    q = np.zeros_like(weight) if direct is None else np.asarray(direct, dtype=np.float64)
    return {
        "ips": (weight * r).sum(axis=1),
        "weight": weight.sum(axis=1),
        "dr": (target * q).sum(axis=1) + (weight * (r - q)).sum(axis=1),
    }


def estimate(terms: dict[str, np.ndarray], confidence: float = 0.95, n_resamples: int = 2000,
             seed: int = 0) -> dict:
    """IPS, SNIPS and DR values with bootstrap intervals over prompts, plus ``n`` prompts."""
    n = len(terms["ips"])
    if n < 2:
        raise RecrouteError(f"off-policy evaluation needs at least 2 logged prompts, got {n}.")
    rng = np.random.default_rng(seed)

    def mean(x, axis=-1):
        return np.mean(x, axis=axis)

    def ratio(a, b, axis=-1):
        return np.sum(a, axis=axis) / np.sum(b, axis=axis)

    if not terms["weight"].sum() > 0:
        raise RecrouteError("the router never chooses an LLM the log has an outcome for on these prompts, so "
                            "self-normalised IPS is undefined; the log cannot evaluate it.")
    parts = {"ips": ((terms["ips"],), mean), "snips": ((terms["ips"], terms["weight"]), ratio),
             "dr": ((terms["dr"],), mean)}
    out = {}
    for name, (samples, statistic) in parts.items():
        value = float(statistic(*samples))
        if all(np.ptp(s) == 0 for s in samples):  # nothing varies: the bootstrap has nothing to say
            low = high = value
        else:
            low, high = np.nan, np.nan
            for method in ("BCa", "percentile"):  # BCa's acceleration is undefined when the jackknife is flat
                if np.isfinite(low) and np.isfinite(high):
                    break
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore", RuntimeWarning)
                    ci = bootstrap(samples, statistic, paired=len(samples) > 1, vectorized=True,
                                   n_resamples=n_resamples, confidence_level=confidence, method=method,
                                   random_state=rng).confidence_interval
                low, high = float(ci.low), float(ci.high)
        out[name] = {"value": value, "low": low, "high": high}
    out["n"] = n
    return out
