"""The common shape of latent-factor routers: prompts and LLMs in one space.

An LLM m has a vector v_m and a bias b_m; a prompt p has a vector u_p, and
its predicted quality is <u_p, v_m> + b_m. Training prompts get u_p from the
factorisation; a new prompt gets it from its content embedding, either
natively (the model maps embeddings, as the bilinear and LightFM routers do)
or through a cold-start map fitted on the training prompts (ALS, BPR).
Ranking among all LLMs is a maximum-inner-product search (FAISS).
"""
from __future__ import annotations

from abc import abstractmethod
from typing import Sequence

import numpy as np
from scipy.special import expit

from ..data import RoutingData
from ..errors import RecrouteError
from ..estimate import benchmark_summary
from ..retrieval import LLMIndex
from .base import Queries, Router, best_set_labels
from .coldstart import make_cold_start

#: How many prompts' worth of weight the "new LLM is like the average LLM" prior carries in a fold-in.
FOLD_IN_PRIOR = 10.0
#: Training cells (at most) on which the score-to-probability curve used by fold-ins is fitted.
CALIBRATION_CELLS = 200_000


class LatentFactorRouter(Router):
    """Base class: ``_fit`` sets ``llm_factors_`` (m, k) and ``llm_bias_`` (m,); ``prompt_factors`` maps embeddings."""

    def fit(self, train: RoutingData) -> "LatentFactorRouter":
        super().fit(train)
        return self._index_and_calibrate(train)

    def _index_and_calibrate(self, train: RoutingData) -> "LatentFactorRouter":
        """Build the LLM index and fit the score-to-probability curve on (at most
        ``CALIBRATION_CELLS`` cells of) ``train``, once the factors are set."""
        self.index_ = LLMIndex().fit(self.item_vectors(), self.models_)
        rows = np.random.default_rng(0).permutation(train.n_prompts)[:max(1, CALIBRATION_CELLS // train.n_models)]
        sample = train.subset(prompts=np.sort(rows))
        # on the prompts' embeddings, as new prompts are scored; by id only when the data has no embeddings
        ids = sample.prompt_ids if sample.embeddings is None else None
        self.calibration_ = _platt(self._score(Queries(embeddings=sample.embeddings, ids=ids), np.arange(train.n_models)),
                                   best_set_labels(sample.scores, binary=train.score_kind == "binary"))
        return self

    def probability(self, queries: Queries, models: Sequence[str] | None = None) -> np.ndarray:
        """σ(a·score + c), the Platt curve fitted on the training cells at fit time."""
        a, c = (float(v) for v in self.calibration_)
        return expit(a * self.score(queries, models) + c).astype(np.float32)

    # -- changing the pool without refitting ---------------------------------
    def add_llm(self, name: str, embeddings: np.ndarray, outcomes: np.ndarray) -> "LatentFactorRouter":
        """Fold a new LLM in from its outcomes on a few prompts, like a new item in a recommender.

        The prompts are placed in the latent space from their ``embeddings``
        exactly as routing places new prompts; the LLM's vector and bias are
        then fitted to its ``outcomes`` (read as good where >= 0.5) with every
        other parameter fixed (:meth:`_fold_in`), and it joins the FAISS index.
        """
        name = str(name)
        if not hasattr(self, "calibration_"):
            raise RecrouteError("this router was saved by an older recroute without a score calibration; refit it "
                                "to add LLMs.")
        if name in set(self.models_.tolist()):
            raise RecrouteError(f"this router already routes to {name!r}; remove it first to replace it.")
        embeddings = np.asarray(embeddings, dtype=np.float32)
        outcomes = np.asarray(outcomes, dtype=np.float64)
        if outcomes.ndim != 1 or len(outcomes) == 0 or len(outcomes) != len(embeddings):
            raise RecrouteError(f"adding {name!r} needs one outcome per prompt, got {outcomes.shape} outcomes "
                                f"for {len(embeddings)} prompts.")
        if not np.isfinite(outcomes).all():
            raise RecrouteError(f"the outcomes of {name!r} contain NaN or infinite values.")
        if embeddings.ndim != 2 or not np.isfinite(embeddings).all():
            raise RecrouteError(f"adding {name!r} needs finite prompt embeddings, one row per prompt.")
        try:
            factors = self.prompt_factors(embeddings)
        except (ValueError, RuntimeError) as exc:  # numpy and torch say "shapes do not match" in their own words
            raise RecrouteError(f"the {embeddings.shape[1]}-dimensional embeddings given for {name!r} do not fit "
                                f"this router ({exc}).") from None
        vector, bias = self._fold_in(factors, (outcomes >= 0.5).astype(np.float64))
        offsets = getattr(self, "offsets_", None)  # a new LLM starts without a rebalancing offset
        self.index_.add(np.r_[vector, bias].astype(np.float32)[None, :], [name])  # first: if refused, nothing changed
        self.llm_factors_ = np.vstack([self.llm_factors_, vector[None, :]]).astype(np.float32)
        self.llm_bias_ = np.append(self.llm_bias_, np.float32(bias)).astype(np.float32)
        self.models_ = np.append(self.models_, name)
        if offsets is not None:
            self.offsets_ = np.append(offsets, np.float32(0))
        return self

    def remove_llm(self, name: str) -> "LatentFactorRouter":
        """Retire an LLM: its vector leaves the factors and the index; nothing else changes."""
        keep = self.models_ != str(name)
        if keep.all():
            more = f" and {len(self.models_) - 5} more" if len(self.models_) > 5 else ""
            raise RecrouteError(f"this router does not route to {name!r}; it knows {', '.join(self.models_[:5])}{more}.")
        if not keep.any():
            raise RecrouteError(f"cannot remove {name!r}: it is the router's only LLM.")
        self.index_.remove([str(name)])
        self.llm_factors_, self.llm_bias_, self.models_ = self.llm_factors_[keep], self.llm_bias_[keep], self.models_[keep]
        if getattr(self, "offsets_", None) is not None:
            self.offsets_ = self.offsets_[keep]
        return self

    def _fold_in(self, factors: np.ndarray, good: np.ndarray) -> tuple[np.ndarray, float]:
        """The new LLM's vector and bias: logistic regression in the router's own score scale.

        The router's scores s are mapped to a probability of a good answer by
        a Platt curve σ(a·s + c) fitted on the training cells at fit time, so
        the new LLM's scores land on the same scale as the others'. Each
        coordinate is shrunk towards the mean LLM's with a weight worth
        ``FOLD_IN_PRIOR`` prompts (scaled by that coordinate's spread over the
        revealed prompts), so a handful of outcomes cannot throw it far. The
        objective is convex; scipy's L-BFGS minimises it.
        """
        from scipy.optimize import minimize

        a, c = (float(v) for v in self.calibration_)
        x = np.hstack([factors.astype(np.float64), np.ones((len(factors), 1))])
        prior = np.r_[self.llm_factors_.mean(axis=0), self.llm_bias_.mean()].astype(np.float64)
        strength = FOLD_IN_PRIOR * 0.25 * a * a * np.maximum(np.mean(x * x, axis=0), 1e-12)

        def objective(w):
            z = a * (x @ w) + c
            loss = np.sum(np.logaddexp(0, z) - good * z) + 0.5 * np.sum(strength * (w - prior) ** 2)
            return loss, a * x.T @ (expit(z) - good) + strength * (w - prior)

        w = minimize(objective, prior, jac=True, method="L-BFGS-B", options={"maxiter": 500}).x
        return w[:-1], float(w[-1])

    def rebalance(self, held_out: RoutingData, models: Sequence[str] | None = None) -> "LatentFactorRouter":
        super().rebalance(held_out, models)
        self.index_ = LLMIndex().fit(self.item_vectors(), self.models_)  # the offsets join the bias coordinate
        return self

    def rank(self, queries: Queries, models: Sequence[str] | None = None, k: int | None = None):
        """Top-k LLMs by maximum-inner-product search in the FAISS index, restricted to ``models``."""
        self.columns(models)  # unknown names fail here, with the router's message
        k = len(self.models_) if k is None else k
        factors = self.query_factors(queries)
        return self.index_.search(np.hstack([factors, np.ones((len(factors), 1), dtype=np.float32)]), k, pool=models)

    def state(self) -> dict[str, np.ndarray]:
        return {**super().state(), "index": self.index_.to_bytes()}

    def _restore(self, arrays) -> None:
        self.index_ = LLMIndex.from_bytes(arrays["index"], self.item_vectors(), self.models_)

    def array_shapes(self) -> dict[str, tuple[str, tuple]]:
        return {**super().array_shapes(), "llm_factors_": ("f", ("m", "k")), "llm_bias_": ("f", ("m",)),
                "calibration_": ("f", (2,)), "index": ("u1", ("bytes",))}

    @abstractmethod
    def prompt_factors(self, embeddings: np.ndarray) -> np.ndarray:
        """Latent vectors (n, k) of prompts given their content embeddings."""

    def query_factors(self, queries: Queries) -> np.ndarray:
        """Latent vectors of the queried prompts: from their embeddings here; by id too in :class:`ColdStartRouter`."""
        return self.prompt_factors(np.asarray(queries.embeddings, dtype=np.float32))

    def _score(self, queries: Queries, columns: np.ndarray) -> np.ndarray:
        factors = self.query_factors(queries)
        return factors @ self.llm_factors_[columns].T + self.llm_bias_[columns]  # score() adds any offsets

    def item_vectors(self) -> np.ndarray:
        """LLM vectors with the bias (plus any rebalancing offset) as a last coordinate, for an inner-product index."""
        offsets = getattr(self, "offsets_", None)
        bias = self.llm_bias_ if offsets is None else self.llm_bias_ + offsets
        return np.hstack([self.llm_factors_, bias[:, None]]).astype(np.float32)

    def query_vectors(self, embeddings: np.ndarray) -> np.ndarray:
        """Prompt vectors with a constant 1 appended, matching :meth:`item_vectors`."""
        factors = self.prompt_factors(np.asarray(embeddings, dtype=np.float32))
        return np.hstack([factors, np.ones((len(factors), 1), dtype=np.float32)])


class ColdStartRouter(LatentFactorRouter):
    """A factorisation that only knows its training prompts, plus a cold-start map for new ones.

    ``cold_start`` is ``"ridge"`` (a ridge regression from embedding to
    factors), ``"knn"`` (the mean factors of the 10 most similar training
    prompts, found with FAISS) or ``"mlp"`` (a one-hidden-layer network).

    The training prompts' own factors are kept (``warm_ids_``, ``warm_factors_``):
    a prompt queried by an id seen in training is placed by what its outcomes
    taught (warm start), and only new prompts need an embedding. Fitted on data
    without embeddings, the router has no cold-start map and serves its
    training prompts alone. The training prompts are also a benchmark: the
    router keeps their covariates and the training LLMs' prior
    (:func:`recroute.estimate.benchmark_summary`) so that a new LLM's score
    over them can be estimated from a few answers.
    """

    knows_prompts_by_id = True

    def _fit(self, train: RoutingData) -> None:
        prompt_factors, self.llm_factors_, self.llm_bias_ = self._factorise(train)
        self._keep_prompts(train.prompt_ids, train.embeddings, prompt_factors)
        summary = benchmark_summary(train.scores, self.seed)  # the training prompts as a benchmark
        for name, values in ({} if summary is None else summary).items():
            setattr(self, "warm_covariates_" if name == "covariates" else f"benchmark_{name}_", values)

    def _keep_prompts(self, prompt_ids, embeddings: np.ndarray | None, prompt_factors: np.ndarray) -> None:
        """Keep the training prompts' factors (warm start) and fit the cold-start map on their embeddings."""
        self.warm_ids_ = np.asarray(prompt_ids)
        self.warm_factors_ = np.ascontiguousarray(prompt_factors, dtype=np.float32)
        self.cold_start_ = None
        if embeddings is not None:
            self.cold_start_ = make_cold_start(self.cold_start, self.seed).fit(embeddings, prompt_factors)

    def fit_factorised(self, models, prompt_ids, embeddings: np.ndarray, prompt_factors: np.ndarray,
                       llm_factors: np.ndarray, calibration: RoutingData) -> "ColdStartRouter":
        """Finish a router whose factorisation ran elsewhere (a Spark cluster): the LLM factors, and the
        factors of a sample of prompts with their embeddings, which become the warm prompts and fit the
        cold-start map; ``calibration`` (a few prompts' outcomes over ``models``) fits the score curve."""
        self.models_ = np.asarray(models)
        self.offsets_ = None
        self.llm_factors_ = np.ascontiguousarray(llm_factors, dtype=np.float32)
        self.llm_bias_ = np.zeros(len(self.llm_factors_), dtype=np.float32)
        self._keep_prompts(prompt_ids, embeddings, prompt_factors)
        return self._index_and_calibrate(calibration)

    def query_factors(self, queries: Queries) -> np.ndarray:
        """Warm factors for prompts known by id; the cold-start map from embeddings for the rest."""
        n = len(queries)
        known = np.full(n, -1)
        if queries.ids is not None and getattr(self, "warm_ids_", None) is not None:
            row = {pid: i for i, pid in enumerate(self.warm_ids_.tolist())}
            known = np.array([row.get(pid, -1) for pid in np.asarray(queries.ids).tolist()], dtype=np.int64)
        cold = np.flatnonzero(known < 0)
        factors = np.empty((n, self.llm_factors_.shape[1]), dtype=np.float32)
        factors[known >= 0] = self.warm_factors_[known[known >= 0]]
        if len(cold):
            if queries.embeddings is None or self.cold_start_ is None:
                example = "" if queries.ids is None else f", e.g. {str(queries.ids[cold[0]])!r}"
                need = ("their texts or embeddings" if self.cold_start_ is not None else
                        "a router fitted on prompt texts or embeddings")
                raise RecrouteError(f"{type(self).__name__} knows its training prompts by id, but {len(cold)} "
                                    f"prompt(s) are new to it{example}; placing them needs {need}.")
            embeddings = np.asarray(queries.embeddings, dtype=np.float32)[cold]
            factors[cold] = self.prompt_factors(embeddings)
        return factors

    @abstractmethod
    def _factorise(self, train: RoutingData) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Return training-prompt factors (n, k), LLM factors (m, k) and LLM biases (m,)."""

    def prompt_factors(self, embeddings: np.ndarray) -> np.ndarray:
        if self.cold_start_ is None:
            raise RecrouteError(f"{type(self).__name__} was fitted without prompt embeddings, so it can place "
                                "only its training prompts (by id), not prompts given by text.")
        return self.cold_start_.transform(embeddings)

    def state(self) -> dict[str, np.ndarray]:
        cold = {} if self.cold_start_ is None else self.cold_start_.state()
        return {**super().state(), **{f"cold_start.{k}": v for k, v in cold.items()}}

    def _restore(self, arrays) -> None:
        super()._restore(arrays)
        cold = {k[len("cold_start."):]: v for k, v in arrays.items() if k.startswith("cold_start.")}
        missing = sorted(set(make_cold_start(self.cold_start).array_shapes()) - set(cold))
        if missing and (cold or getattr(self, "warm_ids_", None) is None):  # all or none, and none only if warm
            raise RecrouteError(f"lacks the array 'cold_start.{missing[0]}'")
        self.cold_start_ = make_cold_start(self.cold_start).load_state(cold) if cold else None

    def array_shapes(self) -> dict[str, tuple[str, tuple]]:
        cold = make_cold_start(self.cold_start).array_shapes()  # absent for a router fitted without embeddings
        return {**super().array_shapes(), "warm_ids_?": ("U", ("warm",)), "warm_factors_?": ("f", ("warm", "k")),
                "warm_covariates_?": ("f", ("warm", "b")), "benchmark_mean_?": ("f", ("b",)),
                "benchmark_cov_?": ("f", ("b", "b")), "benchmark_noise_?": ("f", (1,)),
                **{f"cold_start.{k}?": v for k, v in cold.items()}}


def _platt(scores: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """(a, c) of P(good) = σ(a·score + c) on the observed cells, by Newton steps."""
    observed = ~np.isnan(labels)
    s, y = scores[observed].astype(np.float64), labels[observed].astype(np.float64)
    if len(s) == 0 or np.ptp(s) == 0 or y.min() == y.max():
        return np.array([1.0, 0.0], dtype=np.float32)
    x = np.stack([s, np.ones_like(s)], axis=1)
    w = np.zeros(2)
    for _ in range(50):
        p = expit(x @ w)
        step = np.linalg.solve((x.T * (p * (1 - p))) @ x + 1e-6 * np.eye(2), x.T @ (p - y))
        w -= step
        if np.abs(step).max() < 1e-8:
            break
    return w.astype(np.float32)
