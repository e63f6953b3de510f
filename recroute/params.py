"""Every router's hyperparameters: their types and ranges, declared once.

``make_router`` (and so the CLI's ``--param``, the evaluation protocol and a
router folder's manifest) checks values against these declarations, so a
learning rate of NaN or -4 factors is one sentence before any work instead
of a failure deep inside a fit, or a router that fits and then cannot route.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

from .errors import RecrouteError


@dataclass(frozen=True)
class Param:
    """One hyperparameter: ``kind`` int, float or str with a closed range or a set of choices,
    or tuple: a non-empty sequence of values each accepted by ``sequence_of`` (a list too,
    as a manifest's JSON gives it back)."""

    kind: type
    low: float | None = None
    high: float | None = None
    choices: tuple[str, ...] = ()
    optional: bool = False  # None allowed (debias_clip: off)
    below_high: bool = False  # the range is [low, high) rather than [low, high]
    sequence_of: Param | None = None  # the elements of a tuple

    def describe(self) -> str:
        if self.sequence_of is not None:
            return f"a non-empty list, each {self.sequence_of.describe()}"
        if self.choices:
            return "one of " + ", ".join(repr(c) for c in self.choices)
        kind = {int: "an integer", float: "a number"}[self.kind]
        upper = "" if self.high is None else f" and {'below' if self.below_high else 'at most'} {_show(self.high)}"
        bound = "" if self.low is None else f" at least {_show(self.low)}{upper}"
        return f"{kind}{bound}" + (" (or null)" if self.optional else "")

    def accepts(self, value) -> bool:
        if value is None:
            return self.optional
        if self.sequence_of is not None:
            return isinstance(value, (tuple, list)) and len(value) > 0 and all(map(self.sequence_of.accepts, value))
        if self.kind is str:
            return isinstance(value, str) and value in self.choices
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            return False
        if self.kind is int and not isinstance(value, int):
            return False
        if not math.isfinite(value):
            return False
        if self.low is not None and value < self.low:
            return False
        if self.high is not None and (value >= self.high if self.below_high else value > self.high):
            return False
        return True


SEED = Param(int, 0, 2**32 - 1)
FACTORS = Param(int, 1, 4096)
STEPS = Param(int, 1, 1_000_000)  # epochs, iterations
RATE = Param(float, 1e-12, 10.0)  # learning rates must move
PENALTY = Param(float, 0.0, 1e6)  # regularisation strengths and weights
DEBIAS_CLIP = Param(float, 1.0, 1e12, optional=True)
#: Clip of the inverse-propensity weights of logged records (recroute.logs.propensity_weights); None: unweighted.
LOGGING_CLIP = Param(float, 1.0, 1e12, optional=True)
NEIGHBOURS = Param(int, 1, 100_000)
FOLDS = Param(int, 2, 10_000)  # cross-validation
#: What ``auto`` may stack: the learned routers that can be saved, itself excepted.
STACKABLE = ("cluster", "knnreg", "ridge", "task", "knn", "linear", "mlp", "als", "bpr", "lightfm", "bilinear")

PARAMS: dict[str, dict[str, Param]] = {
    "oracle": {},
    "random": {"seed": SEED},
    "bsm": {},
    "ro": {"p": Param(float, 0.0, 1.0), "seed": SEED},
    "knn": {"k": NEIGHBOURS, "debias_clip": DEBIAS_CLIP, "logging_clip": LOGGING_CLIP},
    "linear": {"epochs": STEPS, "batch_size": Param(int, 1, 10_000_000), "lr": RATE, "weight_decay": PENALTY,
               "seed": SEED, "debias_clip": DEBIAS_CLIP, "logging_clip": LOGGING_CLIP},
    "mlp": {"hidden": Param(int, 1, 65_536), "dropout": Param(float, 0.0, 1.0, below_high=True), "epochs": STEPS,
            "batch_size": Param(int, 1, 10_000_000), "lr": RATE, "weight_decay": PENALTY, "seed": SEED,
            "debias_clip": DEBIAS_CLIP, "logging_clip": LOGGING_CLIP},
    "als": {"factors": FACTORS, "regularization": PENALTY, "alpha": PENALTY, "negative_weight": PENALTY,
            "iterations": STEPS, "cg_steps": Param(int, 1, 100), "cold_start": Param(str, choices=("ridge", "knn", "mlp")),
            "seed": SEED, "debias_clip": DEBIAS_CLIP, "logging_clip": LOGGING_CLIP},
    # Spark MLlib's knobs (recroute.spark.als maps them to implicit's); regParam 0 would leave Spark's
    # normal equations singular for a prompt with one positive record and more factors than LLMs
    "spark-als": {"factors": FACTORS, "regParam": Param(float, 1e-12, 1e6), "alpha": PENALTY,
                  "negative_weight": PENALTY, "iterations": STEPS,
                  "cold_start": Param(str, choices=("ridge", "knn", "mlp")), "seed": SEED},
    "bpr": {"factors": FACTORS, "learning_rate": RATE, "regularization": PENALTY, "iterations": STEPS,
            "cold_start": Param(str, choices=("ridge", "knn", "mlp")), "seed": SEED, "debias_clip": DEBIAS_CLIP},
    "lightfm": {"factors": FACTORS, "loss": Param(str, choices=("warp", "logistic")), "epochs": STEPS,
                "learning_rate": RATE, "user_alpha": PENALTY, "item_alpha": PENALTY, "seed": SEED,
                "debias_clip": DEBIAS_CLIP, "logging_clip": LOGGING_CLIP},
    "bilinear": {"factors": FACTORS, "weight_decay": PENALTY, "epochs": STEPS, "lr": RATE, "seed": SEED,
                 "debias_clip": DEBIAS_CLIP, "logging_clip": LOGGING_CLIP},
    "cluster": {"k": Param(int, 1, 100_000, optional=True), "k_grid": Param(tuple, sequence_of=Param(int, 1, 100_000)),
                "min_cluster": Param(int, 0, 1_000_000), "prior": PENALTY, "folds": FOLDS, "niter": STEPS,
                "restarts": Param(int, 1, 1_000), "seed": SEED, "logging_clip": LOGGING_CLIP},
    "knnreg": {"k": Param(int, 1, 100_000, optional=True), "k_grid": Param(tuple, sequence_of=NEIGHBOURS),
               "folds": FOLDS, "seed": SEED, "logging_clip": LOGGING_CLIP},
    "ridge": {"alphas": Param(tuple, sequence_of=Param(float, 1e-12, 1e12)),  # RidgeCV needs alphas above 0
              "logging_clip": LOGGING_CLIP},
    "task": {"prior": PENALTY, "min_task": Param(int, 1, 1_000_000_000), "logging_clip": LOGGING_CLIP},
    "auto": {"candidates": Param(tuple, sequence_of=Param(str, choices=STACKABLE)), "folds": FOLDS,
             "confidence": Param(float, 0.0, 1_000.0), "seed": SEED, "logging_clip": LOGGING_CLIP},
}


def check_params(router: str, params: dict) -> None:
    """Refuse an unknown hyperparameter, or a value of the wrong type or out of range, in one sentence."""
    declared = PARAMS[router]
    for key, value in params.items():
        if key not in declared:
            known = ", ".join(declared) or "none"
            raise RecrouteError(f"router {router!r} has no hyperparameter {key!r} (it takes: {known}).")
        if not declared[key].accepts(value):
            shown = repr(value) if isinstance(value, str) else str(value)
            raise RecrouteError(f"router {router!r}: {key} must be {declared[key].describe()}, got {shown[:40]}.")


def _show(bound: float) -> str:
    return f"{bound:,}" if isinstance(bound, int) else f"{bound:g}"
