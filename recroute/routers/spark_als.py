"""``spark-als``: implicit ALS (Hu, Koren & Volinsky 2008) fitted by Spark MLlib.

The same router as ``als`` — users are prompts, items LLMs, a cell is good
when the LLM is in the prompt's best set — with Spark's knobs: ``factors`` (Spark's
``rank``; named as ``als`` names it, and ``rank`` is a Router method),
``regParam`` (ALS-WR: scaled by each row's count of positive records),
``alpha`` (confidence 1 + alpha·|rating|), ``iterations``, and
``negative_weight`` (a bad outcome is the rating -negative_weight). How these
map to implicit's, and why the defaults are what they are:
:mod:`recroute.spark.als`.

Fitting needs pyspark and Java (``pip install "recroute[spark]"``) and runs on
the session of :func:`recroute.spark.session.spark_session` (local[*], or
RECROUTE_SPARK_MASTER); scoring, saving and serving are numpy, like ``als``.
``recroute fit --engine spark`` fits this router on records Spark reads
itself (:mod:`recroute.spark.engine`).
"""
from __future__ import annotations

import numpy as np

from ..data import RoutingData
from .base import best_set_labels
from .latent import ColdStartRouter

#: Rows labelled at a time when the in-memory matrix becomes Spark records.
BLOCK_ROWS = 2048


class SparkALSRouter(ColdStartRouter):
    # regParam ≈ λ·sqrt(n·m)/N⁺ (recroute.spark.als): implicit's grid [0.1, 1, 10] on the bundled datasets' pools
    param_grid = {"regParam": [0.001, 0.01, 0.1]}

    def __init__(self, factors: int = 32, regParam: float = 0.01, alpha: float = 9.0, negative_weight: float = 1.0,
                 iterations: int = 15, cold_start: str = "mlp", seed: int = 0):
        self.factors = factors
        self.regParam = regParam
        self.alpha = alpha
        self.negative_weight = negative_weight
        self.iterations = iterations
        self.cold_start = cold_start
        self.seed = seed

    def _factorise(self, train: RoutingData):
        import pyarrow as pa

        from ..spark.als import factors_array, fit_als, ratings_of_labels
        from ..spark.session import spark_session

        spark = spark_session()
        users, items, ratings = [], [], []
        for start in range(0, train.n_prompts, BLOCK_ROWS):
            labels = best_set_labels(train.scores[start:start + BLOCK_ROWS], binary=train.score_kind == "binary")
            block = ratings_of_labels(labels, self.negative_weight)
            rows, cols = np.nonzero(~np.isnan(block))
            users.append((rows + start).astype(np.int32))
            items.append(cols.astype(np.int32))
            ratings.append(block[rows, cols])
        table = pa.table({"user": np.concatenate(users), "item": np.concatenate(items),
                          "rating": np.concatenate(ratings)})
        records = spark.createDataFrame(table)
        blocks = min(4, max(1, spark.sparkContext.defaultParallelism))  # RouterEval-sized: few blocks are faster
        user_factors, item_factors = fit_als(records, rank=self.factors, reg_param=self.regParam, alpha=self.alpha,
                                             iterations=self.iterations, seed=self.seed, blocks=blocks)
        prompt_factors = factors_array(user_factors, train.n_prompts, self.factors)
        llm_factors = factors_array(item_factors, train.n_models, self.factors)
        return prompt_factors, llm_factors, np.zeros(train.n_models, dtype=np.float32)
