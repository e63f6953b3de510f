"""Routers by name, so the CLI and the evaluation protocol can build them from strings."""
from __future__ import annotations

from ..errors import RecrouteError
from ..params import check_params
from .als import ALSRouter
from .auto import AutoRouter
from .base import Queries, Router, best_set_labels
from .baselines import KNNRouter, LinearRouter, MLPRouter
from .bilinear import BilinearRouter
from .bpr import BPRRouter
from .cluster import ClusterRouter
from .hybrid import LightFMRouter
from .reference import BestSingleRouter, OracleRouter, RandomRouter, ROracleRouter
from .regression import KNNRegressionRouter, RidgeRouter
from .spark_als import SparkALSRouter
from .task import TaskRouter

ROUTERS = {
    "oracle": OracleRouter,
    "random": RandomRouter,
    "bsm": BestSingleRouter,
    "ro": ROracleRouter,
    "knn": KNNRouter,
    "linear": LinearRouter,
    "mlp": MLPRouter,
    "als": ALSRouter,
    "spark-als": SparkALSRouter,
    "bpr": BPRRouter,
    "lightfm": LightFMRouter,
    "bilinear": BilinearRouter,
    "cluster": ClusterRouter,
    "knnreg": KNNRegressionRouter,
    "ridge": RidgeRouter,
    "task": TaskRouter,
    "auto": AutoRouter,
}


def make_router(spec: str, **params) -> Router:
    """Build a router from ``name`` or ``name:p`` (``ro:0.5`` is r_o(0.5)) plus keyword hyperparameters."""
    name, _, arg = spec.partition(":")
    if name not in ROUTERS:
        raise RecrouteError(f"unknown router {name!r}; choose from {', '.join(ROUTERS)}.")
    if arg:
        if name != "ro":
            raise RecrouteError(f"router {name!r} takes no ':' argument (only ro:P does).")
        try:
            params["p"] = float(arg)
        except ValueError:
            raise RecrouteError(f"router {spec!r}: {arg!r} is not a probability.") from None
    check_params(name, params)
    return ROUTERS[name](**params)


__all__ = [
    "Queries", "Router", "best_set_labels", "make_router", "ROUTERS",
    "OracleRouter", "ROracleRouter", "RandomRouter", "BestSingleRouter",
    "KNNRouter", "LinearRouter", "MLPRouter", "ALSRouter", "BPRRouter", "LightFMRouter", "BilinearRouter",
    "ClusterRouter", "KNNRegressionRouter", "RidgeRouter", "TaskRouter", "AutoRouter", "SparkALSRouter",
]
