"""The Router interface every router implements.

A router is fitted on the outcome matrix of training prompts (their content
embeddings ride along in ``RoutingData.embeddings``) and then scores any
prompts against any subset of the LLMs it was fitted on. Higher scores mean
"more likely to answer well"; ranking and routing are derived from scores, so
a router implements two methods: ``_fit`` and ``_score``.
"""
from __future__ import annotations

import contextlib
from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Sequence

import numpy as np

from ..data import RoutingData, name_positions
from ..errors import RecrouteError


@dataclass(frozen=True)
class Queries:
    """The prompts a router is asked about.

    ``embeddings`` is what a real router reads. ``texts``, the prompts' own
    words, are read by the task router besides them (its task classifier
    reads their character n-grams) when given. ``ids``, when given, name the
    prompts as the training data did, so a router that learned factors for its
    training prompts (ALS, BPR) serves those by id (warm start); leave them out
    for prompts of another dataset, whose ids may collide. ``truth`` holds the prompts' true
    outcomes and is read only by reference routers (oracle, r_o(p)), which
    exist to bound what routing can achieve.
    """

    embeddings: np.ndarray | None = None
    truth: RoutingData | None = None
    ids: np.ndarray | None = None
    texts: np.ndarray | None = None

    @classmethod
    def of(cls, data: RoutingData) -> "Queries":
        return cls(embeddings=data.embeddings, truth=data, texts=data.prompts)

    def __len__(self) -> int:
        if self.embeddings is not None:
            return len(self.embeddings)
        if self.ids is not None:
            return len(self.ids)
        if self.truth is not None:
            return self.truth.n_prompts
        raise RecrouteError("queries carry neither embeddings nor outcomes.")


class Router(ABC):
    """Base class: hyperparameters in ``__init__``, learned state in ``*_`` attributes."""

    #: True when the router reads prompt embeddings at fit and score time.
    needs_embeddings = True
    #: True when the router can fit without embeddings and serve its training prompts by id alone.
    knows_prompts_by_id = False
    #: True when the router chooses its own settings by cross-validation on its training prompts (or has
    #: none to choose): an evaluation then gives it the validation prompts to train on as well.
    trains_on_validation = False

    def fit(self, train: RoutingData) -> "Router":
        """Learn from the training prompts' outcomes over ``train.models``."""
        if self.needs_embeddings and not self.knows_prompts_by_id and train.embeddings is None:
            raise RecrouteError(f"{train.source}: {type(self).__name__} needs prompt embeddings to fit.")
        self.models_ = np.asarray(train.models)
        self.offsets_ = None  # set by rebalance(), after fitting
        self._fit(train)
        return self

    def score(self, queries: Queries, models: Sequence[str] | None = None) -> np.ndarray:
        """Predicted quality, shape (len(queries), len(models)); all fitted LLMs by default."""
        if not hasattr(self, "models_"):
            raise RecrouteError(f"{type(self).__name__} is not fitted yet; call fit() first.")
        if self.needs_embeddings and not self.knows_prompts_by_id and queries.embeddings is None:
            raise RecrouteError(f"{type(self).__name__} needs the prompts' embeddings to score them.")
        columns = self.columns(models)
        scores = np.asarray(self._score(queries, columns), dtype=np.float32)
        offsets = getattr(self, "offsets_", None)
        return scores if offsets is None else scores + offsets[columns]

    def probability(self, queries: Queries, models: Sequence[str] | None = None) -> np.ndarray:
        """Predicted probability of a good answer: what a cost trade-off weighs against dollars.

        The score itself for routers whose scores already are probabilities
        (reference routers, kNN, linear, MLP); latent-factor routers map theirs.
        """
        return self.score(queries, models)

    def rebalance(self, held_out: RoutingData, models: Sequence[str] | None = None) -> "Router":
        """Post-hoc debiasing: per-LLM score offsets that make the choices among ``models`` on
        ``held_out`` prompts spread as they would if the router never missed
        (:func:`~recroute.routers.debias.oracle_share`) instead of piling onto one LLM.

        Fit the offsets on prompts the router was not trained on (the
        validation split): on training prompts a router looks more certain
        than it is. Only prompts observed for every one of ``models`` count.
        """
        from .debias import oracle_share, selection_offsets

        columns = self.columns(models)
        names = list(self.models_[columns])
        judged = held_out.subset(prompts=held_out.observed[:, held_out.model_index(names)].all(axis=1), models=names)
        self.offsets_ = np.zeros(len(self.models_), dtype=np.float32)
        if judged.n_prompts:
            predicted = self.score(Queries.of(judged), names)
            self.offsets_[columns] = selection_offsets(predicted, oracle_share(judged.scores, predicted))
        return self

    def policy(self, queries: Queries, models: Sequence[str] | None = None) -> np.ndarray:
        """Probability of sending each prompt to each of ``models``, shape (len(queries), len(models)).

        A deterministic router puts all of it on its best-scored LLM (the
        first among ties, as :meth:`route`); a randomised one (random, r_o(p))
        spreads it, so evaluation can report its exact expected outcome.
        """
        choice = self.route(queries, models)
        return np.eye(len(self.columns(models)), dtype=np.float32)[choice]

    def route(self, queries: Queries, models: Sequence[str] | None = None) -> np.ndarray:
        """Index (into ``models``) of the best-scored LLM for each prompt."""
        return np.argmax(self.score(queries, models), axis=1)

    def rank(self, queries: Queries, models: Sequence[str] | None = None, k: int | None = None):
        """Top-``k`` LLM indices (into ``models``) per prompt, best first, and their scores."""
        scores = self.score(queries, models)
        k = scores.shape[1] if k is None else min(k, scores.shape[1])
        order = np.argsort(-scores, axis=1, kind="stable")[:, :k]
        return order, np.take_along_axis(scores, order, axis=1)

    def columns(self, models: Sequence[str] | None) -> np.ndarray:
        """Positions of ``models`` among the fitted LLMs; unknown names are an error."""
        if models is None:
            return np.arange(len(self.models_))
        return name_positions(self.models_, models, f"this {type(self).__name__}")

    #: False for routers that read the true outcomes (oracle, r_o): they cannot serve new prompts.
    servable = True

    def state(self) -> dict[str, np.ndarray]:
        """The learned arrays (``*_`` attributes) that rebuild the fitted router, for saving without pickle."""
        return {k: v for k, v in vars(self).items() if k.endswith("_") and isinstance(v, np.ndarray)}

    def load_state(self, arrays: dict[str, np.ndarray]) -> "Router":
        """Restore a router saved with :meth:`state` (on an instance built with the same hyperparameters)."""
        for name, value in arrays.items():
            if name.endswith("_"):
                setattr(self, name, value)
        self._restore(arrays)
        return self

    def _restore(self, arrays: dict[str, np.ndarray]) -> None:
        """Rebuild what is derived from the saved arrays (indexes, networks); nothing by default."""

    def array_shapes(self) -> dict[str, tuple[str, tuple]]:
        """What :meth:`state` saves, so a router folder is checked before it is trusted.

        Each array's kind ('f' finite floats, 'F' floats that may be NaN, 'i'
        integers, 'U' strings, 'u1' bytes) and shape; a size is an int or a name: 'm' the
        LLMs, 'd' the embedding width, any other name bound by its first use.
        A name ending in '?' is an array that may be absent.
        """
        return {"models_": ("U", ("m",)), "offsets_?": ("f", ("m",))}

    def get_params(self) -> dict:
        """Hyperparameters as given to ``__init__`` (for manifests and reports)."""
        return {k: v for k, v in vars(self).items() if not k.endswith("_") and not k.startswith("_")}

    @abstractmethod
    def _fit(self, train: RoutingData) -> None: ...

    @abstractmethod
    def _score(self, queries: Queries, columns: np.ndarray) -> np.ndarray: ...


#: Target cells (rows × outputs) from which a torch fit uses all of torch's threads.
PARALLEL_CELLS = 1_000_000


@contextlib.contextmanager
def torch_threads(cells: int):
    """Train small torch models on one thread and large ones on all: on a busy two-core machine
    torch's thread pool made fits of a few thousand cells up to 50 times slower than one thread,
    while a 20,000 × 1,000 fit runs 1.6–2 times faster on two."""
    import torch

    before = torch.get_num_threads()
    if cells < PARALLEL_CELLS:
        torch.set_num_threads(1)
    try:
        yield torch
    finally:
        torch.set_num_threads(before)


#: RouterEval's best set: the LLMs whose score is at least this share of the prompt's best.
BEST_SET_TOLERANCE = 0.95


def best_set_labels(scores: np.ndarray, tolerance: float = BEST_SET_TOLERANCE, binary: bool | None = None
                    ) -> np.ndarray:
    """RouterEval's multi-hot targets: 1 for the LLMs within ``tolerance`` of the prompt's best score.

    As RouterEval trains on them: 0/1 outcomes are their own labels (a prompt
    no LLM answers has no good LLM), while continuous scores go through its
    ``process_label``, score >= tolerance × best, which marks every LLM of a
    prompt whose best score is 0. ``binary`` says which the data is (pass
    ``data.score_kind == "binary"`` when labelling a slice of it); by default
    the array itself decides. Unobserved cells stay NaN.
    """
    scores = np.asarray(scores, dtype=np.float32)
    observed = ~np.isnan(scores)
    with np.errstate(invalid="ignore"):
        best = np.where(observed, scores, -np.inf).max(axis=1, keepdims=True)
        labels = (scores >= tolerance * best).astype(np.float32)
    if binary is None:
        binary = bool(np.all((scores == 0) | (scores == 1) | ~observed))
    if binary:
        labels = np.where(observed, scores, 0).astype(np.float32)
    labels[~observed] = np.nan
    return labels
