"""The one data model: a prompts × LLMs outcome matrix and what describes it.

Prompts play the role of users and LLMs the role of items. A cell holds the
outcome of one LLM on one prompt (0/1 correctness or a continuous score); NaN
means *not observed*, which is different from an observed 0. Everything is a
numpy array, so a dense RouterEval-sized matrix (25,000 × 8,500) costs 4 bytes
a cell and no Python object per cell.
"""
from __future__ import annotations

import functools
from dataclasses import dataclass, replace
from typing import NamedTuple, Sequence

import numpy as np
import scipy.sparse as sp

from .errors import RecrouteError

SPLIT_NAMES = ("train", "val", "test")


@dataclass(frozen=True, eq=False)
class RoutingData:
    """Outcomes of LLMs on prompts, with optional text, groups, cost and price.

    Attributes
    ----------
    scores : float32 array (n_prompts, n_models); NaN where not observed.
    prompt_ids : str array (n_prompts,), unique.
    models : str array (n_models,), unique LLM names.
    prompts : object array of str (n_prompts,) or None; the prompt texts.
    groups : str array (n_prompts,) or None; benchmark or subject per prompt.
    splits : str array (n_prompts,) or None; the source's own train/val/test.
    cost : float32 array like ``scores`` or None; dollars per query, NaN unknown.
    price : float64 array (n_models, 2) or None; dollars per million input and
        output tokens.
    embeddings : float32 array (n_prompts, dim) or None; precomputed prompt
        embeddings shipped with the data.
    embedding_model : dict or None; the encoder that computed ``embeddings``:
        its ``model`` name and the settings that determine the vectors (JSON
        scalars), so that they stand in for that encoder only. None when
        unknown (the user's own vectors, used as given).
    source : where the data came from, used to name it in error messages.
    """

    scores: np.ndarray
    prompt_ids: np.ndarray
    models: np.ndarray
    prompts: np.ndarray | None = None
    groups: np.ndarray | None = None
    splits: np.ndarray | None = None
    cost: np.ndarray | None = None
    price: np.ndarray | None = None
    embeddings: np.ndarray | None = None
    embedding_model: dict | None = None
    source: str = "<memory>"

    def __post_init__(self):
        set_ = functools.partial(object.__setattr__, self)
        src = self.source
        scores = np.asarray(self.scores)
        if scores.ndim != 2:
            raise RecrouteError(f"{src}: scores must be a 2-D prompts × LLMs matrix, got shape {scores.shape}.")
        if not np.issubdtype(scores.dtype, np.number) and scores.dtype != bool:
            raise RecrouteError(f"{src}: scores must be numeric, got dtype {scores.dtype}.")
        scores = scores.astype(np.float32, copy=False)
        n, m = scores.shape
        if m == 0:  # zero prompts is allowed: an empty part of a split (no 'val', say)
            raise RecrouteError(f"{src}: no outcomes ({n} prompts × {m} LLMs).")
        if np.isinf(scores).any():
            raise RecrouteError(f"{src}: scores contain infinite values.")
        set_("scores", scores)
        set_("prompt_ids", _strings(self.prompt_ids, n, "prompt_ids", src, unique=True))
        set_("models", _strings(self.models, m, "models", src, unique=True))
        if self.prompts is not None:
            set_("prompts", _texts(self.prompts, n, src))
        if self.groups is not None:
            set_("groups", _strings(self.groups, n, "groups", src))
        if self.splits is not None:
            splits = _strings(self.splits, n, "splits", src)
            unknown = sorted(set(map(str, np.unique(splits))) - set(SPLIT_NAMES))
            if unknown:
                raise RecrouteError(f"{src}: split labels must be train/val/test, found {unknown[:3]}.")
            set_("splits", splits)
        if self.cost is not None:
            cost = np.asarray(self.cost, dtype=np.float32)
            if cost.shape != scores.shape:
                raise RecrouteError(f"{src}: cost has shape {cost.shape}, scores have {scores.shape}.")
            if np.isinf(cost).any() or (cost < 0).any():
                raise RecrouteError(f"{src}: costs must be finite and non-negative.")
            set_("cost", cost)
        if self.price is not None:
            price = np.asarray(self.price, dtype=np.float64)
            if price.shape != (m, 2):
                raise RecrouteError(f"{src}: price must have shape ({m}, 2) for input/output tokens, got {price.shape}.")
            if not np.isfinite(price).all() or (price < 0).any():
                raise RecrouteError(f"{src}: prices must be finite and non-negative.")
            set_("price", price)
        if self.embeddings is not None:
            emb = np.asarray(self.embeddings, dtype=np.float32)
            if emb.ndim != 2 or emb.shape[0] != n:
                raise RecrouteError(f"{src}: embeddings must have shape ({n}, dim), got {emb.shape}.")
            if not np.isfinite(emb).all():
                raise RecrouteError(f"{src}: embeddings contain NaN or infinite values.")
            set_("embeddings", emb)
        if self.embedding_model is not None:
            set_("embedding_model", _encoder_record(self.embedding_model, self.embeddings is not None, src))

    # -- shape and summaries -------------------------------------------------
    @property
    def n_prompts(self) -> int:
        return self.scores.shape[0]

    @property
    def n_models(self) -> int:
        return self.scores.shape[1]

    @property
    def observed(self) -> np.ndarray:
        """Boolean mask of the cells that hold an outcome."""
        return ~np.isnan(self.scores)

    @functools.cached_property
    def score_kind(self) -> str:
        """'binary' when every observed score is 0 or 1, else 'continuous'."""
        s = self.scores
        return "binary" if bool(np.all((s == 0) | (s == 1) | np.isnan(s))) else "continuous"

    @property
    def missing_fraction(self) -> float:
        return float(np.isnan(self.scores).mean())

    def model_means(self) -> np.ndarray:
        """Mean observed score of each LLM (NaN for an LLM with no outcome)."""
        return _nanmean_columns(self.scores)

    def model_costs(self) -> np.ndarray | None:
        """Mean observed cost per query of each LLM, or None without costs."""
        return None if self.cost is None else _nanmean_columns(self.cost)

    # -- selection -----------------------------------------------------------
    def model_index(self, names: Sequence[str]) -> np.ndarray:
        """Column indices of LLMs by name; an unknown name is an error."""
        return name_positions(self.models, names, self.source)

    def subset(self, prompts=None, models=None) -> "RoutingData":
        """A new RoutingData restricted to some prompts and/or LLMs.

        ``prompts`` is an index array or boolean mask; ``models`` is an index
        array, boolean mask or a list of LLM names.
        """
        rows = np.arange(self.n_prompts) if prompts is None else _as_index(prompts)
        if models is not None and len(models) and isinstance(models[0], str):
            models = self.model_index(models)
        cols = np.arange(self.n_models) if models is None else _as_index(models)

        def by_row(a):
            return None if a is None else a[rows]

        def by_cell(a):
            return None if a is None else a[np.ix_(rows, cols)]

        return replace(
            self,
            scores=by_cell(self.scores), cost=by_cell(self.cost),
            prompt_ids=by_row(self.prompt_ids), prompts=by_row(self.prompts),
            groups=by_row(self.groups), splits=by_row(self.splits),
            embeddings=by_row(self.embeddings),
            models=self.models[cols], price=None if self.price is None else self.price[cols],
        )

    # -- splits --------------------------------------------------------------
    def split(self, fractions=(0.8, 0.1, 0.1), seed: int = 0, stratify: bool = True) -> "Split":
        """Random train/val/test split; stratified by group when groups exist.

        Within each group the prompts are shuffled with ``seed`` and cut by
        ``fractions`` (largest-remainder rounding), so every split keeps the
        dataset's group mix.
        """
        fractions = np.asarray(fractions, dtype=float)
        if fractions.shape != (3,) or (fractions < 0).any() or not np.isclose(fractions.sum(), 1.0):
            raise RecrouteError(f"split fractions must be three non-negative numbers summing to 1, got {fractions.tolist()}.")
        rng = np.random.default_rng(seed)
        labels = self.groups if (stratify and self.groups is not None) else np.zeros(self.n_prompts, dtype="<U1")
        parts = [[], [], []]
        for group in np.unique(labels):
            members = rng.permutation(np.flatnonzero(labels == group))
            bounds = np.cumsum(_largest_remainder(fractions, len(members)))
            for part, chunk in zip(parts, np.split(members, bounds[:-1])):
                part.append(chunk)
        train, val, test = (np.sort(np.concatenate(p)) for p in parts)
        return Split(self.subset(train), self.subset(val), self.subset(test))

    def source_split(self) -> "Split":
        """The train/val/test split that came with the data (``splits``)."""
        if self.splits is None:
            raise RecrouteError(f"{self.source}: the data carries no train/val/test split of its own.")
        return Split(*(self.subset(self.splits == name) for name in SPLIT_NAMES))

    # -- recommender views ---------------------------------------------------
    def to_csr(self, block: int = 2048) -> sp.csr_matrix:
        """Observed cells as a CSR matrix, prompts as rows (what implicit expects).

        Observed zeros are stored explicitly, so ``csr.indices`` tells observed
        cells apart from missing ones (see :func:`csr_of_observed`).
        """
        return csr_of_observed(self.scores, block)

    @classmethod
    def concat(cls, parts: Sequence["RoutingData"], source: str) -> "RoutingData":
        """Stack prompts of several datasets; LLMs are the union (NaN where absent)."""
        models = list(dict.fromkeys(name for part in parts for name in part.models))
        col = {name: j for j, name in enumerate(models)}

        def stack(attr, matrix=False):
            values = [getattr(p, attr) for p in parts]
            if all(v is None for v in values):
                return None
            if any(v is None for v in values):
                raise RecrouteError(f"{source}: '{attr}' is present in some parts and missing in others.")
            if not matrix:
                return np.concatenate(values)
            out = np.full((sum(p.n_prompts for p in parts), len(models)), np.nan, dtype=np.float32)
            row = 0
            for p, v in zip(parts, values):
                out[row:row + p.n_prompts, [col[name] for name in p.models]] = v
                row += p.n_prompts
            return out

        prices = [p.price for p in parts if p.price is not None]
        price = None
        if prices:
            price = np.full((len(models), 2), np.nan)
            for p in parts:
                if p.price is not None:
                    price[[col[name] for name in p.models]] = p.price
            if np.isnan(price).any():
                raise RecrouteError(f"{source}: some LLMs have a price and others do not.")
        records = [p.embedding_model for p in parts]
        if any(r != records[0] for r in records):
            raise RecrouteError(f"{source}: the parts' embeddings come from different encoders.")
        return cls(
            scores=stack("scores", True), prompt_ids=stack("prompt_ids"), models=np.array(models),
            prompts=stack("prompts"), groups=stack("groups"), splits=stack("splits"),
            cost=stack("cost", True), price=price, embeddings=stack("embeddings"),
            embedding_model=records[0] if parts else None, source=source,
        )


class Split(NamedTuple):
    train: RoutingData
    val: RoutingData
    test: RoutingData


def csr_of_observed(matrix: np.ndarray, block: int = 2048) -> sp.csr_matrix:
    """The non-NaN cells of a dense float matrix as CSR (zeros kept), built in row blocks straight
    into preallocated arrays: no int64 coordinates and no second copy of the records."""
    indptr = np.zeros(matrix.shape[0] + 1, dtype=np.int64)
    for start in range(0, matrix.shape[0], block):  # first pass: how many cells each row keeps
        indptr[start + 1:start + 1 + block] = (~np.isnan(matrix[start:start + block])).sum(axis=1)
    np.cumsum(indptr, out=indptr)
    indices = np.empty(indptr[-1], dtype=np.int32)
    data = np.empty(indptr[-1], dtype=matrix.dtype)
    for start in range(0, matrix.shape[0], block):
        chunk = matrix[start:start + block]
        mask = ~np.isnan(chunk)
        low, high = indptr[start], indptr[start + len(chunk)]
        indices[low:high] = np.nonzero(mask)[1]
        data[low:high] = chunk[mask]
    if indptr[-1] < np.iinfo(np.int32).max:
        indptr = indptr.astype(np.int32)
    return sp.csr_matrix((data, indices, indptr), shape=matrix.shape)


def _strings(values, n, name, src, unique=False) -> np.ndarray:
    arr = np.asarray(values)
    if arr.ndim != 1 or len(arr) != n:
        raise RecrouteError(f"{src}: {name} must hold {n} entries, got shape {arr.shape}.")
    if arr.dtype.kind not in "UO":
        raise RecrouteError(f"{src}: {name} must be strings, got dtype {arr.dtype}.")
    if arr.dtype.kind == "O":
        if not all(isinstance(v, str) for v in arr):
            raise RecrouteError(f"{src}: {name} must be strings.")
        arr = arr.astype(str)
    if unique and len(np.unique(arr)) != n:
        values, counts = np.unique(arr, return_counts=True)
        k = int(np.argmax(counts > 1))
        raise RecrouteError(f"{src}: {name} must be unique; {str(values[k])!r} appears {counts[k]} times.")
    return arr


def _texts(values, n, src) -> np.ndarray:
    """Prompt texts as an object array: no fixed-width padding for long prompts."""
    arr = np.empty(n, dtype=object)
    values = list(values)
    if len(values) != n or not all(isinstance(v, str) for v in values):
        raise RecrouteError(f"{src}: prompts must be {n} strings.")
    arr[:] = values
    return arr


def _encoder_record(record, has_embeddings: bool, src) -> dict:
    """A copy of an ``embedding_model`` record: a dict of JSON scalars naming its ``model``."""
    if not has_embeddings:
        raise RecrouteError(f"{src}: has an embedding_model record but no embeddings.")
    scalars = (str, int, float, bool, type(None))
    if (not isinstance(record, dict) or not isinstance(record.get("model"), str)
            or not all(isinstance(k, str) and isinstance(v, scalars) for k, v in record.items())):
        raise RecrouteError(
            f"{src}: embedding_model must map 'model' to the encoder's name and other settings to "
            f"plain values, got {record!r:.120}."
        )
    return dict(record)


def name_positions(known: Sequence[str], names: Sequence[str], owner: str) -> np.ndarray:
    """Positions of ``names`` in ``known``; the first unknown name is an error naming ``owner``'s LLMs."""
    where = {str(name): i for i, name in enumerate(known)}
    unknown = [name for name in names if name not in where]
    if unknown:
        raise RecrouteError(f"{owner}: unknown LLM {str(unknown[0])!r}; known LLMs are {', '.join(map(str, known))}.")
    return np.array([where[name] for name in names], dtype=np.intp)


def _as_index(selector) -> np.ndarray:
    arr = np.asarray(selector)
    return np.flatnonzero(arr) if arr.dtype == bool else arr.astype(np.intp)


def _largest_remainder(fractions: np.ndarray, total: int) -> np.ndarray:
    exact = fractions * total
    counts = np.floor(exact).astype(int)
    order = np.argsort(-(exact - counts), kind="stable")
    counts[order[: total - counts.sum()]] += 1
    return counts


def _nanmean_columns(matrix: np.ndarray) -> np.ndarray:
    observed = ~np.isnan(matrix)
    counts = observed.sum(axis=0)
    sums = np.where(observed, matrix, 0).sum(axis=0, dtype=np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(counts > 0, sums / np.maximum(counts, 1), np.nan)
