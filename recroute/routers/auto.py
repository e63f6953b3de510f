"""The router to use when you do not know which router to use.

``auto`` decides everything by K-fold cross-validation on its training
prompts, never on the prompts it is judged on:

1. each candidate router is fitted on all training prompts (choosing its own
   settings by its own cross-validation), then, with those settings, on K-1
   folds to predict the held-out fold: out-of-fold predicted scores for every
   training prompt;
2. the candidates' predictions are put on the scale of the true scores by a
   non-negative least-squares stack (per-LLM intercepts; weights fitted on the
   within-prompt differences, which are all that routing reads), for each
   candidate alone and for all of them together;
3. each of these routes a prompt away from the best single LLM only where its
   predicted gain over that LLM clears a margin; the structure and margin
   whose out-of-fold routing gains most over the best single LLM win, and
   only if that gain exceeds ``confidence`` standard errors (by default
   one, in the spirit of the one-standard-error rule of CART and glmnet,
   which keeps the simpler model — here the best single LLM — unless another
   is better by more than a standard error; here it is the error of the mean
   paired per-prompt gain, smaller than that of one model's score). A gain
   that only ties it (one prompt's gain ties its standard error) does not.
   Otherwise ``auto`` is the best single LLM: on data with nothing to learn
   it routes like it, not below it;
4. the winning structure's stack is refitted on all training prompts, and a
   member it weighs 0 is dropped (neither kept nor saved); if it weighs every
   member 0, ``auto`` is the best single LLM.

With ``logging_clip`` (a routing log) each candidate gets the same
``logging_clip``, and the best single LLM, the stack's intercepts and the
out-of-fold gains weigh each logged record by its clipped, self-normalised
inverse logging propensity (:func:`recroute.logs.propensity_weights`).
"""
from __future__ import annotations

import numpy as np
from scipy.optimize import nnls

from ..data import RoutingData
from ..errors import RecrouteError
from ..logs import propensity_weights
from .base import Queries, Router
from .crossval import column_means, fold_ids

#: Quantiles of the out-of-fold predicted gains tried as the margin a deviation must clear.
MARGIN_QUANTILES = (0.0, 0.25, 0.5, 0.75, 0.9)
#: Relative slack in comparing the gain with its threshold: a gain that rests on a few prompts can equal its
#: standard error exactly (one won; three won and one lost), and rounding must not decide whether it routes.
THRESHOLD_SLACK = 1e-9


class AutoRouter(Router):
    """Cross-validated choice and stack of score-predicting routers, falling back to the best single LLM."""

    trains_on_validation = True

    def __init__(self, candidates: tuple[str, ...] = ("cluster", "knnreg", "ridge", "task"), folds: int = 5,
                 confidence: float = 1.0, seed: int = 0, logging_clip: float | None = None):
        self.candidates = tuple(candidates)  # a manifest's JSON gives a list back
        self.folds = folds
        self.confidence = confidence
        self.seed = seed
        self.logging_clip = logging_clip

    def _fit(self, train: RoutingData) -> None:
        from . import make_router

        candidates = list(dict.fromkeys(self.candidates))
        if not candidates or "auto" in candidates:
            raise RecrouteError(f"auto needs candidate routers other than itself, got {self.candidates!r}.")
        for name in candidates:
            make_router(name)  # an unknown name fails before any fitting
        truth = train.scores
        weights = (~np.isnan(truth)).astype(np.float32) if self.logging_clip is None else \
            propensity_weights(train, self.logging_clip)  # 0 where unobserved
        # each candidate chooses its own settings (k, alpha) by its own cross-validation on all training
        # prompts once; the out-of-fold fits below reuse them rather than search again in every fold
        fitted = {name: self._member(name).fit(train) for name in candidates}
        settled = {name: getattr(router, "chosen_params", router.get_params)() for name, router in fitted.items()}
        folds = fold_ids(train.n_prompts, self.folds, self.seed)
        predicted = {name: np.zeros(truth.shape, dtype=np.float64) for name in candidates}
        fold_best = np.zeros(train.n_prompts, dtype=np.intp)  # each held-out prompt's best single LLM, from its folds
        for fold in range(self.folds):
            held = folds == fold
            rest = train.subset(prompts=~held)
            fold_best[held] = int(np.argmax(column_means(rest.scores, weights[~held])))
            queries = Queries(embeddings=train.embeddings[held],
                              texts=None if train.prompts is None else train.prompts[held])
            for name in candidates:
                predicted[name][held] = type(fitted[name])(**settled[name]).fit(rest).score(queries)

        structures = [(name,) for name in candidates] + ([tuple(candidates)] if len(candidates) > 1 else [])
        best = None
        for members in structures:
            features = np.stack([predicted[name] for name in members])
            stacked = np.zeros(truth.shape)
            for fold in range(self.folds):  # cross-fitted: a fold's stack weights come from the other folds
                held = folds == fold
                stack, bias = _stack(features[:, ~held], truth[~held], weights[~held])
                stacked[held] = np.tensordot(stack, features[:, held], axes=1) + bias
            margin, gain, spread, share = _best_margin(stacked, truth, fold_best, weights)
            if best is None or gain > best[2]:
                best = (members, margin, gain, spread, share)
        members, margin, gain, spread, share = best
        n = train.n_prompts
        self.means_ = column_means(truth, weights).astype(np.float32)
        self.cv_ = np.array([gain, spread / np.sqrt(n), share])
        if not _clears(gain, spread, n, self.confidence):
            members = ()
        self.weights_, self.bias_ = np.zeros(0), self.means_.astype(np.float64)  # the best single LLM
        if members:
            stack, bias = _stack(np.stack([predicted[name] for name in members]), truth, weights)
            kept = stack > 0  # a member weighted 0 adds nothing to any score: it is neither kept nor saved
            members = tuple(np.array(members, dtype=str)[kept])
            if members:
                self.weights_, self.bias_ = stack[kept], bias
        self.members_ = np.array(members, dtype=str)
        self.margin_ = np.array(margin if members else 0.0)
        self.member_routers_ = [fitted[name] for name in members]
        self._describe()

    def _member(self, name: str) -> Router:
        from . import make_router

        params = make_router(name).get_params()
        wanted = {"seed": self.seed, "logging_clip": getattr(self, "logging_clip", None)}
        return make_router(name, **{key: value for key, value in wanted.items() if key in params})

    def _describe(self) -> None:
        """``chosen_``: what cross-validation chose, in words and numbers, for ``recroute fit`` and the manifest."""
        gain, se, share = (float(v) for v in self.cv_)
        self.chosen_ = {
            "routes_with": [str(m) for m in self.members_] or "best single LLM",
            "best_single": str(self.models_[int(np.argmax(self.means_))]),
            "stack_weights": {str(m): round(float(w), 4) for m, w in zip(self.members_, self.weights_)},
            "margin": round(float(self.margin_), 6),
            "cv_gain_over_best_single": round(gain, 6), "cv_gain_se": round(se, 6),
            "cv_share_rerouted": round(share, 4),
            "member_settings": {str(m): {k: v.tolist() for k, v in r.state().items() if k in ("k_", "alpha_")}
                                for m, r in zip(self.members_, self.member_routers_)},
        }

    def state(self) -> dict[str, np.ndarray]:
        arrays = super().state()
        for name, router in zip(self.members_, self.member_routers_):
            arrays.update({f"member.{name}.{key}": value for key, value in router.state().items()})
        return arrays

    def array_shapes(self) -> dict[str, tuple[str, tuple]]:
        """Its own arrays and every candidate's under ``member.<name>.``, each optional: which candidates
        are saved is learned (``members_``), so :meth:`_restore` checks that exactly those are there."""
        shapes = {**super().array_shapes(), "means_": ("f", ("m",)), "cv_": ("f", (3,)), "members_": ("U", ("members",)),
                  "margin_": ("f", ()), "weights_": ("f", ("members",)), "bias_": ("f", ("m",))}
        for name in self.candidates:
            for key, (kind, shape) in self._member(name).array_shapes().items():
                # a member's own sizes (factors, clusters, index bytes) are named apart from another member's
                sizes = tuple(size if isinstance(size, int) or size in ("m", "d") else f"{name}.{size}" for size in shape)
                shapes[f"member.{name}.{key.rstrip('?')}?"] = (kind, sizes)
        return shapes

    def _restore(self, arrays) -> None:
        """Rebuild the members it routes with, refusing a folder whose member arrays are not exactly theirs."""
        members = self.members_.tolist()
        strangers = sorted(set(members) - set(self.candidates))
        if strangers:
            raise RecrouteError(f"routes with {strangers[0]!r}, which is not one of its candidates")
        saved = {}
        for name in self.candidates:
            prefix = f"member.{name}."
            saved[name] = {key[len(prefix):]: value for key, value in arrays.items() if key.startswith(prefix)}
            if name not in members and saved[name]:
                raise RecrouteError(f"holds arrays of {name!r}, which it does not route with")
            required = {key for key in self._member(name).array_shapes() if not key.endswith("?")}
            missing = sorted(required - set(saved[name])) if name in members else []
            if missing:
                raise RecrouteError(f"lacks the array '{prefix}{missing[0]}'")
        self.member_routers_ = [self._member(name).load_state(saved[name]) for name in members]
        self._describe()

    def _score(self, queries: Queries, columns: np.ndarray) -> np.ndarray:
        scores = np.broadcast_to(self.bias_[columns], (len(queries), len(columns))).astype(np.float64)
        for weight, router in zip(self.weights_, self.member_routers_):
            scores = scores + weight * router.score(queries, list(self.models_[columns]))
        # the best single LLM among these columns keeps a prompt unless another is predicted better by the margin
        scores[:, int(np.argmax(self.means_[columns]))] += float(self.margin_)
        return scores


def _stack(features: np.ndarray, truth: np.ndarray, records: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Non-negative weights (one per feature) and per-LLM intercepts mapping predictions to true scores.

    The weights are fitted on within-prompt differences (each prompt's mean
    over its observed cells removed from truth and predictions alike), the
    intercepts as each LLM's mean residual, weighted by ``records`` (0 where
    unobserved: those cells take no part).
    """
    observed = ~np.isnan(truth)
    counts = np.maximum(observed.sum(axis=1, keepdims=True), 1)
    y = np.where(observed, truth, 0)
    y_centred = (y - y.sum(axis=1, keepdims=True) / counts)[observed]
    x = np.where(observed, features, 0)
    x_centred = (x - x.sum(axis=2, keepdims=True) / counts)[:, observed]
    weights, _ = nnls(x_centred.T, y_centred)
    residual = np.where(observed, truth - np.tensordot(weights, features, axes=1), 0)
    total = (records * observed).sum(axis=0)
    bias = (residual * records).sum(axis=0) / np.where(total > 0, total, 1)
    return weights, bias


def _best_margin(stacked: np.ndarray, truth: np.ndarray, best_single: np.ndarray, records: np.ndarray):
    """The margin (among quantiles of the predicted gains) whose routing gains most over ``best_single``.

    Returns the margin, the mean per-prompt gain in true score (each observed
    record counted with its weight in ``records``, an unobserved one as 0),
    that gain's sample standard deviation across prompts, and the share of prompts rerouted.
    """
    rows = np.arange(len(truth))
    predicted_gain = stacked.max(axis=1) - stacked[rows, best_single]
    value = np.nan_to_num(truth).astype(np.float64) * records  # float64: a tie with the threshold stays exact
    kept = value[rows, best_single]
    best = (np.inf, 0.0, 0.0, 0.0)
    for margin in np.unique(np.quantile(predicted_gain, MARGIN_QUANTILES)):
        choice = np.where(predicted_gain > margin, np.argmax(stacked, axis=1), best_single)
        gain = value[rows, choice] - kept
        if gain.mean() > best[1]:
            best = (float(margin), float(gain.mean()), float(gain.std(ddof=1)), float((choice != best_single).mean()))
    return best


def _clears(gain: float, spread: float, n: int, confidence: float) -> bool:
    """Whether a mean gain over n prompts exceeds ``confidence`` standard errors (``spread`` / √n) by more than
    rounding (:data:`THRESHOLD_SLACK`)."""
    return gain > confidence * spread / np.sqrt(n) * (1 + THRESHOLD_SLACK)
