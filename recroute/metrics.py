"""Routing metrics as pure functions of numpy arrays.

Conventions (shared by every function here):

* ``truth``  -- (n_prompts, m) float array, the true score of each of the m
  candidate LLMs on each prompt (binary 0/1 or continuous in [0, 1]).
* ``choice`` -- (n_prompts,) int array, the column chosen for each prompt; or
  a (n_prompts, m) policy, each row the probabilities of choosing each
  column (a randomised router), where the metric is then its expectation.
* ``scores`` -- (n_prompts, m) float array of router predictions, higher = better.

Nothing here knows about routers or data classes; inputs that do not fit the
conventions raise :class:`recroute.errors.RecrouteError` (a ``ValueError``).
Where a ranking has ties in ``scores`` it is broken by a stable sort, i.e. the
lower column index (or earlier prompt) wins.

Sources: RouterEval (mu, vr, vb, prediction / selection entropy), RouteLLM
(strong-call curve, PGR, APGR, CPT), RouterBench (AIQ), plus the usual
recommender ranking metrics (NDCG@k, recall@k, AUC, accuracy).
"""

from __future__ import annotations

import numpy as np
from scipy.stats import rankdata

from recroute.errors import RecrouteError

_trapezoid = getattr(np, "trapezoid", None) or np.trapz  # numpy < 2 has only trapz

# PGR values computed in floating point land a hair off the exact fraction
# (0.2 / 0.4 == 0.4999999999999999), so CPT compares with this slack.
_PGR_TOL = 1e-9


# --------------------------------------------------------------------------
# validation helpers
# --------------------------------------------------------------------------

def _array(x, name: str, ndim: int) -> np.ndarray:
    a = np.asarray(x, dtype=float)
    if a.ndim != ndim:
        raise RecrouteError(f"{name} must be a {ndim}-D array, got shape {a.shape}")
    if a.size == 0:
        raise RecrouteError(f"{name} is empty; a metric needs at least one value")
    if not np.all(np.isfinite(a)):
        raise RecrouteError(f"{name} contains NaN or infinite values")
    return a


def _same_shape(a: np.ndarray, b: np.ndarray, name_a: str, name_b: str) -> None:
    if a.shape != b.shape:
        raise RecrouteError(f"{name_a} has shape {a.shape} but {name_b} has shape {b.shape}; they must match")


def _choice(choice, n: int | None, m: int) -> np.ndarray:
    """Validate column indices; n=None accepts any number of prompts."""
    c = np.asarray(choice)
    if c.ndim != 1 or (n is not None and c.shape[0] != n):
        want = "a 1-D array" if n is None else f"shape ({n},)"
        raise RecrouteError(f"choice must have {want} (one column per prompt), got shape {c.shape}")
    if c.shape[0] == 0:
        raise RecrouteError("choice is empty; metrics need at least one prompt")
    if not np.issubdtype(c.dtype, np.integer):
        raise RecrouteError(f"choice must hold integer column indices, got dtype {c.dtype}")
    if c.min() < 0 or c.max() >= m:
        raise RecrouteError(f"choice holds column indices outside [0, {m - 1}] (min {c.min()}, max {c.max()})")
    return c


def _policy(policy, n: int | None, m: int) -> np.ndarray:
    """Validate a (n, m) choice distribution; n=None accepts any number of prompts."""
    c = np.asarray(policy, dtype=float)
    if c.shape[1] != m or (n is not None and c.shape[0] != n) or c.shape[0] == 0:
        raise RecrouteError(f"a choice policy must have shape ({'n' if n is None else n}, {m}), got {c.shape}")
    if not np.all(np.isfinite(c)) or (c < 0).any() or not np.allclose(c.sum(axis=1), 1.0, atol=1e-6):
        raise RecrouteError("a choice policy's rows must be probabilities summing to 1")
    return c


def _binary(labels, name: str = "labels") -> np.ndarray:
    y = np.asarray(labels)
    if y.size == 0:
        raise RecrouteError(f"{name} is empty")
    if not np.all((y == 0) | (y == 1)):
        raise RecrouteError(f"{name} must be binary (0/1 or bool)")
    return y.astype(bool)


def _k(k, m: int) -> int:
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1:
        raise RecrouteError(f"k must be a positive integer, got {k!r}")
    return min(int(k), m)


def _topk(scores: np.ndarray, k: int) -> np.ndarray:
    """Column indices of the k best scores per row, best first; ties -> lower index."""
    return np.argsort(-scores, axis=1, kind="stable")[:, :k]


# --------------------------------------------------------------------------
# RouterEval table metrics
# --------------------------------------------------------------------------

def mu(truth, choice) -> float:
    """mu_o: mean true score of the LLMs the router chose.

    The headline quality of a router: what you actually get, on average, by
    sending each prompt where the router said.
    """
    t = _array(truth, "truth", 2)
    if np.ndim(choice) == 2:  # expected score under a randomised choice
        return float((t * _policy(choice, *t.shape)).sum(axis=1).mean())
    c = _choice(choice, *t.shape)
    return float(t[np.arange(t.shape[0]), c].mean())


def vr(mu_o, reference) -> float:
    """V_R: mu_o divided by a reference score (e.g. a reference model's or the oracle's).

    Puts a router's quality on a relative scale so that benchmarks of different
    difficulty can be compared; > 1 means the router beats the reference.
    """
    mu_o, reference = float(mu_o), float(reference)
    if reference == 0:
        raise RecrouteError("reference score is 0; V_R = mu_o / reference is undefined")
    return mu_o / reference


def vb(truth, choice) -> float:
    """V_B: mu_o divided by the mean score of the best single LLM on the same prompts.

    Answers "is routing worth it at all?": > 1 means the router beats always
    calling the one model that is best on average.
    """
    t = _array(truth, "truth", 2)
    best = t.mean(axis=0).max()
    if best == 0:
        raise RecrouteError("every LLM scores 0 on these prompts; V_B is undefined")
    return mu(t, choice) / best


def prediction_entropy(scores) -> float:
    """E_p: mean over prompts of the entropy (bits) of softmax(scores row).

    Measures how decisive the router's predictions are per prompt: 0 when it is
    certain of one LLM, log2(m) when its scores do not separate the LLMs.
    """
    s = _array(scores, "scores", 2)
    z = s - s.max(axis=1, keepdims=True)             # stable: exp never overflows
    logp = z - np.log(np.exp(z).sum(axis=1, keepdims=True))
    p = np.exp(logp)
    h = -(p * logp).sum(axis=1) / np.log(2)           # p underflowing to 0 contributes 0
    return float(np.maximum(h, 0.0).mean())


def selection_entropy(choice, m: int) -> float:
    """Entropy (bits) of how often each of the m LLMs is chosen across prompts.

    Detects collapse: 0 when the router always picks the same LLM, log2(m) when
    it spreads prompts evenly over all of them.
    """
    if isinstance(m, bool) or not isinstance(m, (int, np.integer)) or m < 1:
        raise RecrouteError(f"m must be a positive integer number of LLMs, got {m!r}")
    if np.ndim(choice) == 2:  # expected shares under a randomised choice
        p = _policy(choice, None, int(m)).mean(axis=0)
    else:
        c = _choice(choice, None, int(m))
        p = np.bincount(c, minlength=int(m)) / c.shape[0]
    p = p[p > 0]
    return float(max(-(p * np.log2(p)).sum(), 0.0))


# --------------------------------------------------------------------------
# RouteLLM strong/weak pair metrics
# --------------------------------------------------------------------------

def strong_call_curve(strong_benefit, strong, weak) -> tuple[np.ndarray, np.ndarray]:
    """Quality as a function of the fraction of prompts sent to the strong LLM.

    For k = 0..n the k prompts with the highest ``strong_benefit`` go to the
    strong model (ties: stable sort on -benefit, earlier prompt first), the rest
    to the weak one. Returns ``(fractions, quality)``, each of length n + 1,
    with fractions = k / n and quality = mean resulting true score. The end
    points are exactly ``weak.mean()`` and ``strong.mean()``.
    """
    b = _array(strong_benefit, "strong_benefit", 1)
    s = _array(strong, "strong", 1)
    w = _array(weak, "weak", 1)
    _same_shape(b, s, "strong_benefit", "strong")
    _same_shape(b, w, "strong_benefit", "weak")
    n = b.shape[0]
    order = np.argsort(-b, kind="stable")
    strong_prefix = np.concatenate([[0.0], np.cumsum(s[order])])             # sum of strong over first k
    weak_suffix = np.concatenate([np.cumsum(w[order][::-1])[::-1], [0.0]])   # sum of weak over the rest
    quality = (strong_prefix + weak_suffix) / n
    quality[0], quality[-1] = w.mean(), s.mean()   # exact end points, so PGR is exactly 0 and 1 there
    return np.arange(n + 1) / n, quality


def pgr(quality, weak_quality, strong_quality):
    """Performance Gap Recovered: (quality - weak) / (strong - weak), elementwise.

    The share of the strong model's advantage over the weak one that a router
    keeps: 0 = weak model's quality, 1 = strong model's quality.
    """
    weak_quality, strong_quality = float(weak_quality), float(strong_quality)
    if strong_quality == weak_quality:
        raise RecrouteError("strong and weak quality are equal; PGR is undefined (no gap to recover)")
    out = (np.asarray(quality, dtype=float) - weak_quality) / (strong_quality - weak_quality)
    return float(out) if out.ndim == 0 else out


def _pgr_curve(fractions, quality, weak_quality, strong_quality):
    f = _array(fractions, "fractions", 1)
    q = _array(quality, "quality", 1)
    _same_shape(f, q, "fractions", "quality")
    if np.any(np.diff(f) < 0):
        raise RecrouteError("fractions must be non-decreasing")
    if f[0] != 0 or f[-1] != 1:
        raise RecrouteError(f"fractions must run from 0 to 1, got {f[0]} .. {f[-1]}")
    return f, pgr(q, weak_quality, strong_quality)


def apgr(fractions, quality, weak_quality, strong_quality) -> float:
    """APGR: area under the PGR vs strong-call-fraction curve over [0, 1] (trapezoid rule).

    One number for a router's whole cost/quality trade-off: 0.5 is what random
    routing gets, 1 means recovering the full gap from the first strong call.
    """
    f, g = _pgr_curve(fractions, quality, weak_quality, strong_quality)
    return float(_trapezoid(g, f))


def cpt(fractions, quality, weak_quality, strong_quality, x) -> float:
    """CPT(x%): the smallest strong-call fraction at which PGR >= x / 100.

    How many (expensive) strong calls a router needs to recover x% of the gap;
    lower is better. NaN if the curve never gets there. PGR is compared with a
    1e-9 slack so that float round-off does not miss an exactly reached target.
    """
    x = float(x)
    if not np.isfinite(x):
        raise RecrouteError(f"x must be a finite percentage, got {x}")
    f, g = _pgr_curve(fractions, quality, weak_quality, strong_quality)
    hit = np.flatnonzero(g >= x / 100 - _PGR_TOL)
    return float(f[hit[0]]) if hit.size else float("nan")


# --------------------------------------------------------------------------
# ranking metrics (router as recommender)
# --------------------------------------------------------------------------

def ndcg_at_k(truth, scores, k) -> float:
    """Mean NDCG@k of the LLM ranking by ``scores``, with gains = ``truth``.

    Linear gains and a 1 / log2(rank + 1) discount; rewards putting the truly
    good LLMs near the top, not only at rank 1. Prompts on which every LLM
    scores 0 (ideal DCG 0) are skipped; NaN if all are. k > m is treated as m.
    """
    t = _array(truth, "truth", 2)
    s = _array(scores, "scores", 2)
    _same_shape(t, s, "truth", "scores")
    k = _k(k, t.shape[1])
    discount = 1.0 / np.log2(np.arange(2, k + 2))
    dcg = (np.take_along_axis(t, _topk(s, k), axis=1) * discount).sum(axis=1)
    idcg = (-np.sort(-t, axis=1)[:, :k] * discount).sum(axis=1)
    keep = idcg > 0
    return float((dcg[keep] / idcg[keep]).mean()) if keep.any() else float("nan")


def recall_at_k(truth, scores, k) -> float:
    """Mean over prompts of |B_i ∩ topk_i| / min(|B_i|, k), B_i = the LLMs with the row's best true score.

    How often the router's shortlist of k contains the best LLM(s). Rows whose
    best true score is 0 (nobody answers well) are skipped; NaN if all are.
    k > m is treated as m; ties in scores go to the lower column index.
    """
    t = _array(truth, "truth", 2)
    s = _array(scores, "scores", 2)
    _same_shape(t, s, "truth", "scores")
    k = _k(k, t.shape[1])
    rowmax = t.max(axis=1, keepdims=True)
    best = t == rowmax
    keep = rowmax[:, 0] > 0
    if not keep.any():
        return float("nan")
    hits = np.take_along_axis(best, _topk(s, k), axis=1).sum(axis=1)
    denom = np.minimum(best.sum(axis=1), k)
    return float((hits[keep] / denom[keep]).mean())


def auc(labels, predictions) -> float:
    """ROC AUC of binary labels vs predictions (both flattened), by the Mann-Whitney rank formula.

    The probability that a random positive is scored above a random negative
    (ties count one half); NaN if only one class is present.
    """
    y = _binary(labels)
    if y.shape != np.shape(predictions):
        raise RecrouteError(f"labels has shape {y.shape} but predictions has shape {np.shape(predictions)}; they must match")
    y = y.ravel()
    p = _array(np.ravel(predictions), "predictions", 1)
    n_pos = int(y.sum())
    n_neg = y.size - n_pos
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    ranks = rankdata(p)  # average ranks for ties
    return float((ranks[y].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def accuracy(labels, predictions, threshold: float = 0.5) -> float:
    """Fraction of entries where (prediction >= threshold) equals the binary label.

    The plain hit rate of a router used as a "will this LLM answer correctly?"
    classifier.
    """
    y = _binary(labels)
    p = np.asarray(predictions, dtype=float)
    if y.shape != p.shape:
        raise RecrouteError(f"labels has shape {y.shape} but predictions has shape {p.shape}; they must match")
    if np.any(np.isnan(p)):
        raise RecrouteError("predictions contains NaN values")
    return float(np.mean((p >= threshold) == y))


# --------------------------------------------------------------------------
# cost metrics (RouterBench)
# --------------------------------------------------------------------------

def quality_hull(costs, qualities) -> tuple[np.ndarray, np.ndarray]:
    """The non-decreasing convex hull of quality-vs-cost points, as its corner points.

    Quality is first made non-decreasing in cost (spending more may buy the
    cheaper choice), then replaced by its upper concave envelope (mixing two
    operating points at random reaches every point of the chord between
    them). Returns the corners' costs and qualities, cheapest first.
    """
    c = _array(costs, "costs", 1)
    q = _array(qualities, "qualities", 1)
    _same_shape(c, q, "costs", "qualities")
    if c.size == 0:
        raise RecrouteError("no cost/quality points")
    order = np.lexsort((q, c))                         # by cost, then quality
    c, q = c[order], np.maximum.accumulate(q[order])   # best quality at cost <= c
    last = np.r_[c[1:] != c[:-1], True]                # one point per cost: the best
    hull: list[tuple[float, float]] = []               # upper hull, monotone chain
    for point in zip(c[last], q[last]):
        while len(hull) >= 2:
            (ox, oy), (ax, ay) = hull[-2], hull[-1]
            if (ax - ox) * (point[1] - oy) - (ay - oy) * (point[0] - ox) >= 0:
                hull.pop()                             # middle point on or below the chord
            else:
                break
        hull.append(point)
    hx, hy = np.array(hull).T
    return hx, hy


def aiq(costs, qualities, cost_range: tuple[float, float] | None = None) -> float:
    """AIQ (Average Improvement in Quality) of a router's cost/quality sweep.

    The average height of :func:`quality_hull` over [min cost, max cost]; or
    over ``cost_range``, the same for every router compared (RouterBench uses
    the cheapest and dearest single LLM), with the hull held flat beyond its
    end points. A single cost level returns the best quality at that cost.
    """
    hx, hy = quality_hull(costs, qualities)
    if cost_range is None:
        return float(hy[0]) if hx.size == 1 else float(_trapezoid(hy, hx) / (hx[-1] - hx[0]))
    lo, hi = map(float, cost_range)
    if not (np.isfinite(lo) and np.isfinite(hi) and hi > lo):
        raise RecrouteError(f"cost_range must be two finite costs, low < high, got {cost_range}")
    xs = np.unique(np.r_[lo, hi, hx[(hx > lo) & (hx < hi)]])
    return float(_trapezoid(np.interp(xs, hx, hy), xs) / (hi - lo))
