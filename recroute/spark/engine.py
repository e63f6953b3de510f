"""``recroute fit --engine spark``: fit ALS on records Spark reads, write the usual router folder.

The records never become a matrix on the driver. Spark reads them
(Parquet — a file or a folder of files —, CSV or JSONL, long format:
``prompt_id, model, score`` plus optional columns), checks them (every
required value present, every score a finite number, a prompt × LLM pair
repeated only with the same score), labels each record as the in-memory
routers do (0/1 outcomes as they are; continuous scores: within 95% of the
prompt's best), numbers prompts and LLMs, and fits
:func:`recroute.spark.als.fit_als` on the cluster. Back on the driver come:
the LLM factors (one row per LLM), the factors of a bounded sample of
prompts with their embeddings (which fit the cold-start map and become the
router's warm prompts), and the outcomes of a few of them (at most
``CALIBRATION_CELLS``, for the score curve). Embeddings come from a
``prompts/`` folder beside ``records/`` (what ``recroute synth --format
parquet`` writes: ``prompt_id, embedding``) or, when the records carry a
``prompt`` column, from encoding the sampled prompts' texts on the driver.
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

from ..data import RoutingData
from ..errors import RecrouteError
from ..loaders import LONG_OPTIONAL, LONG_REQUIRED
from ..routers.base import BEST_SET_TOLERANCE
from ..routers.latent import CALIBRATION_CELLS
from ..routers.spark_als import SparkALSRouter
from .als import factors_array, fit_als, java_cause, rating_column
from .session import spark_session

#: Prompts whose factors and embeddings come back to fit the cold-start map, at most.
DEFAULT_SAMPLE = 100_000
#: Records per ALS block (Spark's numUserBlocks = numItemBlocks), at most.
RECORDS_PER_BLOCK = 4_000_000
FORMATS = {".parquet": "parquet", ".csv": "csv", ".jsonl": "json", ".json": "json"}


@dataclass
class SparkFit:
    """What a Spark fit did: the router, the sizes, and seconds per stage."""

    router: SparkALSRouter
    records: int
    prompts: int
    llms: int
    sample: int
    embedding_dim: int
    source: str
    seconds: dict = field(default_factory=dict)


def fit_on_spark(path, params: dict | None = None, *, master: str | None = None, conf: dict | None = None,
                 sample: int = DEFAULT_SAMPLE, encoder=None, progress: Callable[[str], None] | None = None) -> SparkFit:
    """Fit ``spark-als`` on the long-format records at ``path`` with Spark (see the module's notes)."""
    from ..routers import make_router

    router = make_router("spark-als", **(params or {}))  # a bad hyperparameter fails before Spark starts
    if not (isinstance(sample, int) and sample >= 1):
        raise RecrouteError(f"the cold-start sample must be at least 1 prompt, got {sample!r}.")
    shown = progress or (lambda message: None)
    clock, seconds, held = time.perf_counter(), {}, []

    def say(message: str) -> None:
        """Progress, held back until the records have passed their checks: a refusal stays one line."""
        if held is not None:
            held.append(message)
        else:
            shown(message)

    def checked() -> None:
        nonlocal held
        for message in held:
            shown(message)
        held = None

    def lap(stage: str) -> None:
        nonlocal clock
        now = time.perf_counter()
        seconds[stage] = round(now - clock, 2)
        clock = now
        say(f"{stage}: {seconds[stage]:.1f} s")

    records_path, prompts_path = locate(path)
    spark = spark_session(master, conf)
    lap("spark session")
    try:
        return _fit(spark, router, path, records_path, prompts_path, sample, encoder, say, lap, checked, seconds)
    except RecrouteError:
        raise
    except Exception as exc:  # Spark's own failures (a malformed file, a lost executor) are long Java traces
        if not _is_spark_error(exc):
            raise
        raise RecrouteError(f"{path}: Spark failed while reading or fitting it ({java_cause(exc)}).") from None


def locate(path) -> tuple[str, str | None]:
    """The records' path and the prompts' (embeddings) path, or None; one sentence when neither is usable."""
    text = str(path)
    if "://" in text:  # hdfs://, s3a://: Spark resolves it; a folder of Parquet files is assumed
        return text, None
    path = Path(path)
    if not path.exists():
        raise RecrouteError(f"{path}: no such file or folder.")
    if path.is_dir():
        records = path / "records" if (path / "records").is_dir() else path
        prompts = path / "prompts" if (path / "prompts").is_dir() else None
        if not any(records.rglob("*.parquet")):
            raise RecrouteError(f"{path}: holds no .parquet files (a folder is read as Parquet; give a .csv or "
                                ".jsonl file by its name).")
        if prompts is not None and not any(prompts.rglob("*.parquet")):
            raise RecrouteError(f"{prompts}: holds no .parquet files of prompt embeddings.")
        return str(records), None if prompts is None else str(prompts)
    if path.suffix.lower() not in FORMATS:
        raise RecrouteError(f"{path}: unknown format '{path.suffix or path.name}'; the Spark engine reads "
                            ".parquet, .csv and .jsonl records, or a folder of .parquet files.")
    if path.stat().st_size == 0:
        raise RecrouteError(f"{path}: is empty.")
    return str(path), None


def read(spark, location: str):
    """A DataFrame of the records at ``location`` (a path from :func:`locate`)."""
    suffix = Path(location).suffix.lower()
    fmt = FORMATS.get(suffix, "parquet")
    reader = spark.read
    if fmt == "csv":
        return reader.option("header", True).option("mode", "FAILFAST").csv(location)
    if fmt == "json":
        return reader.option("mode", "FAILFAST").json(location)
    return reader.parquet(location)


def _fit(spark, router, path, records_path, prompts_path, sample, encoder, say, lap, checked, seconds) -> SparkFit:
    from pyspark import StorageLevel
    from pyspark.sql import functions as F

    records = read(spark, records_path)
    columns = set(records.columns)
    missing = [c for c in LONG_REQUIRED if c not in columns]
    if missing:
        known = ", ".join(sorted(columns)) or "none"
        hint = _closest(missing[0], columns)
        raise RecrouteError(f"{path}: lacks the column '{missing[0]}'{hint} (has: {known}); long records need "
                            f"{', '.join(LONG_REQUIRED)} and may have {', '.join(LONG_OPTIONAL)}.")
    prompts = None
    if prompts_path is not None:
        prompts = read(spark, prompts_path)
        if not {"prompt_id", "embedding"} <= set(prompts.columns):
            raise RecrouteError(f"{prompts_path}: needs the columns 'prompt_id' and 'embedding', has "
                                f"{', '.join(sorted(prompts.columns))}.")
    elif "prompt" not in columns:
        raise RecrouteError(f"{path}: has neither a 'prompt' column of texts nor a prompts/ folder of embeddings, "
                            "so new prompts could not be placed; add one of them.")

    score = F.col("score").try_cast("double")  # ANSI mode: a malformed number is NULL, counted below
    checks = records.agg(
        F.count(F.lit(1)).alias("records"),
        *[F.sum(F.when(F.col(c).isNull() | (F.col(c).cast("string") == ""), 1).otherwise(0)).alias(f"empty_{c}")
          for c in LONG_REQUIRED],
        F.sum(F.when(F.col("score").isNotNull() & score.isNull(), 1).otherwise(0)).alias("not_number"),
        F.sum(F.when(F.isnan(score) | (F.abs(score) == float("inf")), 1).otherwise(0)).alias("not_finite"),
        F.sum(F.when((score != 0) & (score != 1), 1).otherwise(0)).alias("not_binary"),
    ).first()
    if not checks["records"]:
        raise RecrouteError(f"{path}: holds no records.")
    for c in LONG_REQUIRED:
        if checks[f"empty_{c}"]:
            raise RecrouteError(f"{path}: {checks[f'empty_{c}']:,} record(s) have an empty '{c}'.")
    if checks["not_number"]:
        bad = records.where(F.col("score").isNotNull() & score.isNull()).select("score").first()[0]
        raise RecrouteError(f"{path}: {checks['not_number']:,} score(s) are not numbers, e.g. {str(bad)[:40]!r}.")
    if checks["not_finite"]:
        raise RecrouteError(f"{path}: {checks['not_finite']:,} score(s) are NaN or infinite; leave a record out "
                            "to mark its cell as not observed.")
    binary = checks["not_binary"] == 0
    n_records = int(checks["records"])
    lap("read and check")

    cells = (records.select(F.col("prompt_id").cast("string").alias("prompt_id"),
                            F.col("model").cast("string").alias("model"), score.alias("score"))
             .groupBy("prompt_id", "model").agg(F.min("score").alias("score"), F.max("score").alias("high"))
             .persist(StorageLevel.MEMORY_AND_DISK))
    clash = cells.where(F.col("score") != F.col("high")).first()
    if clash is not None:
        raise RecrouteError(f"{path}: prompt {clash['prompt_id']!r} × LLM {clash['model']!r} is repeated with "
                            "different scores.")
    models = sorted(row[0] for row in cells.select("model").distinct().collect())
    llm_index = spark.createDataFrame([(name, i) for i, name in enumerate(models)], "model string, item int")
    prompt_index, n_prompts = dense_index(cells, "prompt_id", "user")
    lap("cells and ids")
    checked()
    say(f"{n_records:,} records, {n_prompts:,} prompts × {len(models):,} LLMs, "
        f"{'0/1 outcomes' if binary else 'continuous scores'}")

    ratings = (labelled(cells, binary)
               .join(prompt_index, "prompt_id").join(F.broadcast(llm_index), "model")
               .select("user", "item", rating_column(F.col("label"), router.negative_weight).alias("rating")))
    # ALS builds each block's records in one array: blocks of a few million records keep that bounded (two
    # blocks of 106M records ran a 12 GiB heap out of memory at 212.5M records in local[2])
    blocks = max(spark.sparkContext.defaultParallelism, math.ceil(n_records / RECORDS_PER_BLOCK))
    user_factors, item_factors = fit_als(ratings, rank=router.factors, reg_param=router.regParam, alpha=router.alpha,
                                         iterations=router.iterations, seed=router.seed, blocks=blocks)
    llm_factors = factors_array(item_factors, len(models), router.factors)
    lap("ALS")

    fraction = min(1.0, 1.2 * sample / max(n_prompts, 1))
    chosen = prompt_index if fraction >= 1.0 else prompt_index.sample(False, fraction, seed=router.seed)
    chosen = chosen.limit(sample).join(user_factors.withColumnRenamed("id", "user"), "user", "left")
    if prompts is not None:
        chosen = chosen.join(prompts.select(F.col("prompt_id").cast("string").alias("prompt_id"), "embedding"),
                             "prompt_id")
    else:
        texts = (records.select(F.col("prompt_id").cast("string").alias("prompt_id"), "prompt")
                 .where(F.col("prompt").isNotNull()).join(chosen.select("prompt_id"), "prompt_id", "left_semi")
                 .groupBy("prompt_id").agg(F.first("prompt").alias("prompt")))
        chosen = chosen.join(texts, "prompt_id")
    table = chosen.orderBy("user").toArrow()
    if table.num_rows == 0:
        raise RecrouteError(f"{path}: none of the sampled prompts has an embedding or a text.")
    ids = np.asarray(table.column("prompt_id").to_pylist(), dtype=str)
    factors, has = _list_matrix(table.column("features"), "the prompt factors")
    if not has.all():  # prompts without a good outcome are left out of ALS: their factor is 0
        factors = np.zeros((table.num_rows, router.factors), dtype=np.float32) if not has.any() else factors
    if prompts is not None:
        embeddings, present = _list_matrix(table.column("embedding"), prompts_path)
        if not present.all() or not np.isfinite(embeddings).all():
            raise RecrouteError(f"{prompts_path}: some prompts' embeddings are missing or hold NaN or infinite "
                                "values.")
    else:
        if encoder is None:
            from ..embed import Encoder

            encoder = Encoder()
        embeddings = encoder.encode([str(t) for t in table.column("prompt").to_pylist()])
    lap(f"sample of {len(ids):,} prompts")

    calibration_ids = ids[:max(1, CALIBRATION_CELLS // len(models))]
    wanted = spark.createDataFrame([(str(i),) for i in calibration_ids], "prompt_id string")
    outcome = cells.join(F.broadcast(wanted), "prompt_id").select("prompt_id", "model", "score").toArrow()
    row = {pid: i for i, pid in enumerate(calibration_ids.tolist())}
    col = {name: j for j, name in enumerate(models)}
    scores = np.full((len(calibration_ids), len(models)), np.nan, dtype=np.float32)
    scores[[row[p] for p in outcome.column("prompt_id").to_pylist()],
           [col[m] for m in outcome.column("model").to_pylist()]] = outcome.column("score").to_numpy()
    calibration = RoutingData(scores=scores, prompt_ids=calibration_ids, models=models,
                              embeddings=embeddings[:len(calibration_ids)], source=str(path))
    cells.unpersist()
    prompt_index.unpersist()
    if not binary and calibration.score_kind == "binary":  # the sample's scores happen to be 0/1: label as the whole
        calibration = _as_continuous(calibration)
    router.fit_factorised(models, ids, embeddings, factors, llm_factors, calibration)
    lap("cold-start map")
    return SparkFit(router=router, records=n_records, prompts=n_prompts, llms=len(models), sample=len(ids),
                    embedding_dim=int(embeddings.shape[1]), source=str(path), seconds=seconds)


def labelled(cells, binary: bool):
    """(prompt_id, model, label) of (prompt_id, model, score) cells, as
    :func:`recroute.routers.base.best_set_labels` labels a matrix: 0/1 outcomes are their
    own labels; continuous scores are 1 within ``BEST_SET_TOLERANCE`` of the prompt's best."""
    from pyspark.sql import Window
    from pyspark.sql import functions as F

    if binary:
        label = F.col("score")
    else:
        best = F.max("score").over(Window.partitionBy("prompt_id"))
        label = (F.col("score") >= F.lit(BEST_SET_TOLERANCE) * best).cast("double")
    return cells.select("prompt_id", "model", label.alias("label"))


def dense_index(frame, column: str, name: str):
    """(DataFrame of ``column`` → contiguous int ids 0..n-1 as ``name``, n), computed on the cluster.

    Each partition of the distinct keys numbers its own rows; the partition
    counts (one row per partition) give the offsets. Nothing per key reaches
    the driver. The result is persisted: ALS and the sample both read it.
    """
    from pyspark import StorageLevel
    from pyspark.sql import Window
    from pyspark.sql import functions as F

    spark = frame.sparkSession
    keys = (frame.select(column).distinct().withColumn("_part", F.spark_partition_id())
            .persist(StorageLevel.MEMORY_AND_DISK))
    counts = sorted((int(r["_part"]), int(r["count"])) for r in keys.groupBy("_part").count().collect())
    offsets, total = [], 0
    for part, count in counts:
        offsets.append((part, total))
        total += count
    if total >= 2**31:
        raise RecrouteError(f"{total:,} distinct {column} values: Spark's ALS numbers them with 32-bit integers.")
    starts = spark.createDataFrame(offsets, "_part int, _offset long")
    numbered = (keys.withColumn("_local", F.row_number().over(Window.partitionBy("_part").orderBy(column)))
                .join(F.broadcast(starts), "_part")
                .select(column, (F.col("_offset") + F.col("_local") - 1).cast("int").alias(name))
                .persist(StorageLevel.MEMORY_AND_DISK))
    numbered.count()
    keys.unpersist()
    return numbered, total


def _list_matrix(column, what) -> tuple[np.ndarray, np.ndarray]:
    """An Arrow column of equal-length float lists (nulls allowed) as a float32 matrix (nulls: rows of 0)
    and the mask of rows present; one sentence when the lists' lengths differ."""
    import pyarrow.compute as pc

    column = column.combine_chunks()
    present = column.is_valid().to_numpy(zero_copy_only=False)
    lengths = pc.list_value_length(column).to_numpy(zero_copy_only=False)
    widths = np.unique(lengths[present]) if present.any() else np.array([0])
    if len(widths) != 1:
        raise RecrouteError(f"{what}: vectors of different lengths ({', '.join(map(str, widths[:5]))}).")
    width = int(widths[0])
    matrix = np.zeros((len(column), width), dtype=np.float32)
    values = column.filter(column.is_valid()).flatten().to_numpy(zero_copy_only=False)
    matrix[present] = np.asarray(values, dtype=np.float32).reshape(-1, width)
    return matrix, present


def _as_continuous(data: RoutingData) -> RoutingData:
    """Keep continuous-score labelling for a calibration sample whose scores happen all to be 0 or 1."""
    from dataclasses import replace

    scores = data.scores.copy()
    scores[~np.isnan(scores)] *= 1 - 1e-7  # still 95%-of-best labels, no longer read as 0/1 outcomes
    return replace(data, scores=scores)


def _closest(name: str, columns) -> str:
    import difflib

    match = difflib.get_close_matches(name, sorted(columns), n=1)
    return f" (did you mean '{match[0]}'?)" if match else ""


def _is_spark_error(exc: Exception) -> bool:
    module = type(exc).__module__ or ""
    return module.startswith(("pyspark", "py4j"))

