"""Spark MLlib's implicit ALS on (prompt, LLM, rating) records: the factorisation both
``spark-als`` (in memory) and ``recroute fit --engine spark`` (records on a cluster) run.

How Spark's knobs map to implicit's (both read from their sources: Spark's
``ALS.computeFactors``, implicit's ``cpu/als.py``), for a cell with label
good (1) or bad (0) and prompt u, LLM i:

===============  =================================  =====================================
                 implicit (``als``)                 Spark (``spark-als``)
===============  =================================  =====================================
input value      v = +alpha (good), -negative_weight r = +1 (good), -negative_weight
                 (bad)                              (bad)
preference p     1 if v > 0 else 0                  1 if r > 0 else 0
confidence c     abs(v)                             1 + alpha * abs(r)
unobserved cell  p = 0, c = 1                       p = 0, c = 1
regularisation   lambda * |x_u|^2, the same for     regParam * n_u * |x_u|^2, n_u the
                 every row                          row's count of *positive* records
                                                    (ALS-WR, Zhou et al. 2008)
solver           cg_steps conjugate-gradient steps  exact Cholesky per row
===============  =================================  =====================================

So implicit's confidences (alpha_i, negative_weight_i) are Spark's
``alpha = alpha_i - 1`` and ``negative_weight = (negative_weight_i - 1) /
(alpha_i - 1)``: implicit's defaults (10, 10) are Spark's (9, 1).

Regularisation cannot map row by row (Spark's grows with each row's
positives, implicit's does not), but it maps on average: the product of the
factors only sees the penalty through the balance of its two sides, and
rescaling x by s and y by 1/s makes implicit's penalty 2·λ·|X||Y| and Spark's
2·regParam·N⁺/sqrt(n·m)·|X||Y| when every prompt has the mean count N⁺/n of
positives and every LLM N⁺/m (n prompts, m LLMs, N⁺ positive records).
Hence ``regParam ≈ λ·sqrt(n·m)/N⁺``. On the training splits of RouterEval's
pools of the bundled datasets (m = 3 or 5 LLMs, 54–71% of the cells good)
implicit's λ = 1 is regParam 0.010–0.012 on LLMRouter, 0.014–0.018 on
RouterBench and 0.006–0.007 on RouterDC: ``spark-als``'s default is 0.01 and
its tuning grid [0.001, 0.01, 0.1] is implicit's [0.1, 1, 10] mapped.

Two of Spark's behaviours are worked around here. A prompt whose records
are all bad has no positives, so Spark regularises it by 0 and its normal
equations are singular when the rank exceeds the number of LLMs (Cholesky
then fails); implicit gives such a prompt the factor 0 exactly (its
right-hand side is 0). Such prompts — and LLMs never good — are therefore
left out of the fit and given the factor 0, which is what implicit computes
for them, and leaving them out changes no other factor (a zero factor adds
nothing to anyone's normal equations).
"""
from __future__ import annotations

import numpy as np

from ..errors import RecrouteError

#: The rating a good outcome gets; a bad one gets -negative_weight.
GOOD_RATING = 1.0


def ratings_of_labels(labels: np.ndarray, negative_weight: float) -> np.ndarray:
    """Spark ratings of 0/1 labels (NaN stays NaN: not observed)."""
    ratings = np.where(labels == 1, GOOD_RATING, -float(negative_weight)).astype(np.float32)
    ratings[np.isnan(labels)] = np.nan
    return ratings


def rating_column(label, negative_weight: float):
    """The same rule as :func:`ratings_of_labels`, as a Spark column of a 0/1 label column."""
    from pyspark.sql import functions as F

    return F.when(label == 1, F.lit(GOOD_RATING)).otherwise(F.lit(-float(negative_weight))).cast("float")


def fit_als(ratings, *, rank: int, reg_param: float, alpha: float, iterations: int, seed: int,
            blocks: int | None = None):
    """Fit Spark's implicit ALS on a DataFrame of (user int, item int, rating float).

    Returns (user_factors, item_factors): DataFrames of (id, features), from
    which rows and columns without a positive record are absent (factor 0,
    see the module's notes). ``blocks`` is Spark's numUserBlocks and
    numItemBlocks (default: the session's parallelism).
    """
    from pyspark.ml.recommendation import ALS
    from pyspark.sql import functions as F

    spark = ratings.sparkSession
    positive = ratings.where(F.col("rating") > 0)
    if not positive.limit(1).count():
        raise RecrouteError("no outcome is good (every prompt's every record is bad), so there is nothing "
                            "to factorise.")
    users = positive.select("user").distinct()
    items = positive.select("item").distinct()
    kept = ratings.where(F.col("rating") != 0).join(users, "user", "left_semi").join(F.broadcast(items), "item",
                                                                                      "left_semi")
    blocks = blocks or max(1, spark.sparkContext.defaultParallelism)
    als = ALS(rank=rank, maxIter=iterations, regParam=reg_param, implicitPrefs=True, alpha=alpha, seed=seed,
              numUserBlocks=blocks, numItemBlocks=blocks, userCol="user", itemCol="item", ratingCol="rating",
              nonnegative=False, checkpointInterval=10)
    try:
        model = als.fit(kept)
    except Exception as exc:  # a JVM failure (memory, a lost executor) arrives as a long Java trace
        raise RecrouteError(f"Spark's ALS failed ({java_cause(exc)}).") from None
    return model.userFactors, model.itemFactors


def factors_array(factors, n: int, rank: int) -> np.ndarray:
    """Spark's (id, features) rows as an (n, rank) float32 array; ids absent from them get 0."""
    table = factors.select("id", "features").toArrow()
    out = np.zeros((n, rank), dtype=np.float32)
    if table.num_rows:
        ids = table.column("id").to_numpy()
        values = table.column("features").combine_chunks().flatten().to_numpy(zero_copy_only=False)
        out[ids] = values.reshape(len(ids), rank)
    return out


def java_cause(exc: Exception) -> str:
    """The line of a Java trace that says what went wrong, with advice for the common case."""
    text = str(exc)
    if "OutOfMemoryError" in text:
        return ("the JVM ran out of memory; give it more with --spark-conf spark.driver.memory=… (local mode) or "
                "spark.executor.memory=…, or more blocks/partitions")
    for line in text.splitlines():
        line = line.strip()
        if line.startswith("Caused by:") or "Exception:" in line:
            return line[:300]
    lines = [line for line in text.splitlines() if line.strip()]
    return (lines[0] if lines else type(exc).__name__)[:300]
