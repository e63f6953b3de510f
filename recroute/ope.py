"""Off-policy evaluation: a router's mean score estimated from a log another policy collected.

The target value is V = mean over prompts p of Σ_m π(m|p)·r(p, m), π the
router's policy (:meth:`Router.policy`), r the true outcomes. From a log with
propensities λ (:mod:`recroute.logs`) and w = π/λ on the logged records:

* **IPS** (Horvitz–Thompson): mean_p Σ_{logged m} w·r. Unbiased whenever the
  logging policy gave every LLM the router may choose a positive propensity.
* **SNIPS**: Σ_p Σ w·r / Σ_p Σ w; the denominator has expectation n, so this
  trades a little bias for much less variance when weights are large.
* **DR** (doubly robust): mean_p [Σ_m π·q + Σ_{logged m} w·(r − q)] with q a
  direct model of r: unbiased for any q independent of the prompt's own log,
  and low-variance when q is good. q is the router's own predicted score
  (:meth:`Router.probability`) calibrated to the logged outcomes, cross-fitted
  over prompts (:func:`calibrated_direct`): raw scores are far from outcome
  rates on the LLMs a router picks, and with 50+ LLMs and one outcome per
  prompt the router's choice is logged on a few prompts only, so DR is
  mostly q.

Each comes with a 95% interval over prompts that also counts the variance
the log did not happen to sample, modelled from every logged record
(:func:`prompt_terms`): with 50+ LLMs and one outcome per prompt only a few
prompts carry a weighted record, and from the sample alone SNIPS's interval
covered the truth in 0–5% of logs (or had no bounds), DR's in 1 of 5.
IPS and SNIPS widen a BCa bootstrap (scipy.stats.bootstrap, as in the Open
Bandit Pipeline) towards the modelled interval, the more so the fewer
prompts are weighted; DR's interval is normal, with the larger of the two
variances.
"""
from __future__ import annotations

import warnings

import numpy as np
from scipy.stats import bootstrap, norm

from .errors import RecrouteError

ESTIMATORS = ("ips", "snips", "dr")
#: Prompts' worth of weight IPS's and SNIPS's modelled variance carries against their bootstrap (a prior,
#: as the benchmark estimate's NOISE_PRIOR_DF; set before measuring, not tuned).
MODELLED_WEIGHT = 10.0


def calibrated_direct(scores: np.ndarray, rewards: np.ndarray, propensity: np.ndarray) -> np.ndarray:
    """The direct model q (n, m): the logged outcome regressed linearly on the router's score for the logged LLM.

    A router's raw score is no outcome probability on the LLMs it picks: a kNN router's best of 50 LLMs
    scores 1.0 where that LLM answers two times in three. Each record weighs 1/λ, so the fit answers for
    every LLM rather than those the logging policy favoured; each prompt's fit leaves that prompt's records
    out (cross-fitting), so q is independent of its own log and DR stays unbiased. Too few records for a
    slope give the weighted mean outcome; none at all, the raw score.
    """
    scores, propensity = np.asarray(scores, dtype=np.float64), np.asarray(propensity, dtype=np.float64)
    logged = ~np.isnan(rewards)
    w = np.where(logged, 1 / np.where(logged, propensity, 1.0), 0.0)
    s, r = np.where(logged, scores, 0.0), np.where(logged, rewards, 0.0)
    per_prompt = np.stack([(w * x).sum(axis=1) for x in (np.ones_like(s), s, s * s, r, s * r)])
    others = per_prompt.sum(axis=1, keepdims=True) - per_prompt  # each prompt's sums without its own records
    total, s1, s2, r1, sr = others
    spread = total * s2 - s1 * s1
    has_slope = spread > 1e-9 * np.maximum(total * s2, 1e-300)
    slope = np.where(has_slope, (total * sr - s1 * r1) / np.where(has_slope, spread, 1.0), 0.0)
    intercept = (r1 - slope * s1) / np.where(total > 0, total, 1.0)
    return np.where((total > 0)[:, None], intercept[:, None] + slope[:, None] * scores, scores)


def prompt_terms(rewards: np.ndarray, propensity: np.ndarray, target: np.ndarray,
                 router_scores: np.ndarray | None = None) -> dict[str, np.ndarray]:
    """Per-prompt terms (n,) whose means make the estimates: 'ips', 'weight' (Σ w), 'dr' and its 'direct'
    part, and for each estimator '<name>_variance': the modelled second moment, over logs, of its weighted
    sum of logged outcomes about its q (IPS is DR with q = 0, SNIPS to first order DR with q its own value;
    for IPS this exceeds the variance by its squared value, which matters only where propensities near 1).

    ``rewards`` and ``propensity`` (n, m) are NaN where not logged; ``target`` (n, m) is the evaluated
    policy; ``router_scores`` (n, m) its predicted scores, calibrated into the direct model by
    :func:`calibrated_direct` (q = 0 when None).

    The correction's variance Σ_m π²/λ·(r − q)² is estimated from every logged record, not only from the
    few where the router's choice was logged (none, with a thousand LLMs and one outcome per prompt): the
    mean over all cells of (r − q)²/λ (inverse-propensity weighted) times Σ_m π², as if the router's
    choices were typical cells.
    """
    # float64 throughout: a log's float32 outcomes and propensities and a router's float32 policy, summed over
    # many prompts (a float32 outcome minus a Python float stays float32, and so does its square)
    rewards, propensity, target = (np.asarray(x, dtype=np.float64) for x in (rewards, propensity, target))
    logged = ~np.isnan(rewards)
    if (logged & np.isnan(propensity)).any():
        raise RecrouteError(f"{int((logged & np.isnan(propensity)).sum())} logged records have no propensity; "
                            "off-policy evaluation needs the logging policy's probability of each.")
    outside = logged & ~np.isnan(propensity) & ~((propensity > 0) & (propensity <= 1))
    if outside.any():
        raise RecrouteError(f"{int(outside.sum())} logged records have a propensity outside (0, 1], e.g. "
                            f"{float(propensity[outside][0])!r}; a logging policy's probability of a logged "
                            "choice is in (0, 1].")
    if not logged.any():  # DR would be the router's own raw scores, with an interval as if they were measured
        raise RecrouteError("the log holds no outcome of the LLMs evaluated; off-policy evaluation has nothing "
                            "to estimate from.")
    inverse = np.where(logged, 1 / np.where(logged, propensity, 1.0), 0.0)
    weight = target * inverse
    r = np.where(logged, rewards, 0.0)
    q = np.zeros_like(weight) if router_scores is None else calibrated_direct(router_scores, rewards, propensity)
    ips, weight_sum = (weight * r).sum(axis=1), weight.sum(axis=1)
    snips = ips.sum() / weight_sum.sum() if weight_sum.sum() > 0 else 0.0
    direct = (target * q).sum(axis=1)
    spread = (target ** 2).sum(axis=1)

    def correction_variance(baseline):  # Σ_m π² times the IPW mean over all cells of (r − baseline)²/λ
        return spread * (inverse ** 2 * np.where(logged, r - baseline, 0.0) ** 2).sum() / rewards.size

    return {
        "ips": ips,
        "weight": weight_sum,
        "dr": direct + (weight * np.where(logged, r - q, 0.0)).sum(axis=1),
        "direct": direct,
        "ips_variance": correction_variance(0.0),
        "snips_variance": correction_variance(snips),
        "dr_variance": correction_variance(q),
    }


def estimate(terms: dict[str, np.ndarray], confidence: float = 0.95, n_resamples: int = 2000,
             seed: int = 0) -> dict:
    """IPS, SNIPS and DR values with intervals over prompts, plus ``n`` prompts.

    IPS and SNIPS are None when the router's choice is never the logged LLM: they have nothing to weigh.
    """
    n = len(terms["ips"])
    if n < 2:
        raise RecrouteError(f"off-policy evaluation needs at least 2 logged prompts, got {n}.")
    out = {"ips": None, "snips": None}
    weighted = int(np.count_nonzero(terms["weight"]))  # prompts whose logged LLM the router may choose
    if weighted:
        rng = np.random.default_rng(seed)
        parts = {"ips": ((terms["ips"],), _mean), "snips": ((terms["ips"], terms["weight"]), _ratio)}
        for name, (samples, statistic) in parts.items():
            out[name] = _widened(_bootstrap(samples, statistic, confidence, n_resamples, rng),
                                   np.mean(terms[f"{name}_variance"]), n, weighted, confidence)
    out["dr"] = _dr_interval(terms, confidence)
    out["n"] = n
    return out


def _mean(x, axis=-1):
    return np.mean(x, axis=axis)


def _ratio(a, b, axis=-1):
    return np.sum(a, axis=axis) / np.sum(b, axis=axis)


def _bootstrap(samples, statistic, confidence: float, n_resamples: int, rng) -> dict:
    """The statistic with its BCa bootstrap interval (percentile where BCa is undefined)."""
    value = float(statistic(*samples))
    if all(np.ptp(s) == 0 for s in samples):  # nothing varies: the bootstrap has nothing to say
        return {"value": value, "low": value, "high": value}
    low, high = np.nan, np.nan
    for method in ("BCa", "percentile"):  # BCa's acceleration is undefined when the jackknife is flat
        if np.isfinite(low) and np.isfinite(high):
            break
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            ci = bootstrap(samples, statistic, paired=len(samples) > 1, vectorized=True, n_resamples=n_resamples,
                           confidence_level=confidence, method=method, random_state=rng).confidence_interval
        low, high = float(ci.low), float(ci.high)
    return {"value": value, "low": low, "high": high}


def _widened(interval: dict, modelled_variance: float, n: int, weighted: int, confidence: float) -> dict:
    """IPS's or SNIPS's bootstrap interval, each side widened towards the normal one of the modelled variance.

    The bootstrap is right when many of the ``n`` prompts carry a weighted record (``weighted``); with many
    LLMs and one outcome per prompt a few do, and it may see almost none of the variance (SNIPS has no
    value at all in resamples without them, and around the mean of three outcomes it is confident). Where
    the modelled half-width (:func:`prompt_terms`) is the wider, a side moves towards it by the share
    ``MODELLED_WEIGHT / (MODELLED_WEIGHT + weighted)``: the modelled variance counts as that many prompts.
    Not all the way, as DR's does: it assumes the router's choices are typical cells, and the outcomes a
    router picks sit closer to SNIPS's value than typical ones (1.7 times the sampled variance in
    ``tests/test_logs.py``'s 4-LLM case, where the wider of the two covered 200 of 200 logs). A bound the
    bootstrap could not give (NaN) is the modelled one.
    """
    half = norm.ppf(0.5 + confidence / 2) * np.sqrt(modelled_variance / n)
    value = interval["value"]
    share = MODELLED_WEIGHT / (MODELLED_WEIGHT + weighted)
    below, above = value - interval["low"], interval["high"] - value
    below = below + share * max(half - below, 0.0) if np.isfinite(below) else half
    above = above + share * max(half - above, 0.0) if np.isfinite(above) else half
    return {"value": value, "low": float(value - below), "high": float(value + above)}


def _dr_interval(terms: dict[str, np.ndarray], confidence: float) -> dict:
    """DR with a normal interval whose variance is the larger of the per-prompt terms' sample variance (right
    when many records match the router's choices) and the direct part's variance plus the modelled
    correction variance (right when few or none do). The larger, not a share as for IPS and SNIPS: DR's
    residuals from a calibrated q are alike on most cells, so the modelled variance is barely wider than
    the sampled one where the sample suffices (1.1 times in ``tests/test_logs.py``'s 4-LLM case), and DR,
    the estimate to trust with many LLMs, errs wide rather than narrow."""
    n = len(terms["dr"])
    value = float(np.mean(terms["dr"]))
    modelled = np.var(terms["direct"], ddof=1) + np.mean(terms["dr_variance"])
    half = norm.ppf(0.5 + confidence / 2) * np.sqrt(max(np.var(terms["dr"], ddof=1), modelled) / n)
    return {"value": value, "low": value - half, "high": value + half}
