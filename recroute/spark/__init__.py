"""The Spark engine: ALS fitted by Spark MLlib on records that do not fit one machine.

A thin adapter over the library, in three parts:

- :mod:`~recroute.spark.session` — the one SparkSession (local by default),
  and one sentence when pyspark or Java is missing;
- :mod:`~recroute.spark.als` — the factorisation both entry points share:
  (prompt, LLM, label) ratings in, Spark's implicit ALS, factors out;
- :mod:`~recroute.spark.engine` — ``recroute fit --engine spark``: long-format
  records read by Spark (Parquet, CSV, JSONL), checked and labelled there,
  factorised on the cluster; only the LLM factors and a bounded sample of
  prompt factors (with their embeddings) come back to the driver, where the
  cold-start map is fitted and the usual router folder is written.

The router itself (:class:`recroute.routers.spark_als.SparkALSRouter`) routes
with numpy alone: a folder it wrote is served without pyspark.
pyspark is imported lazily, so ``import recroute`` never needs it.
"""
