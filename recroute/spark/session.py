"""The Spark session recroute fits on: local[*] unless told otherwise.

pyspark and Java are checked before anything starts, so their absence is one
sentence (a :class:`~recroute.errors.RecrouteError`) rather than a Java
gateway traceback.
"""
from __future__ import annotations

import atexit
import logging
import os
import shutil
import tempfile
from pathlib import Path

from ..errors import RecrouteError

#: The master used when none is given: RECROUTE_SPARK_MASTER, else every local core.
DEFAULT_MASTER = "local[*]"
INSTALL_HINT = 'pip install "recroute[spark]"'


def require_pyspark():
    """The pyspark module, or one sentence saying how to get it."""
    try:
        import pyspark
    except ImportError:
        raise RecrouteError(f"the Spark engine needs pyspark, which is not installed; install it with "
                            f"{INSTALL_HINT} (it also needs Java 17 or 21).") from None
    return pyspark


def java_executable() -> str | None:
    """The java Spark would start: $JAVA_HOME/bin/java, else the first java on PATH."""
    home = os.environ.get("JAVA_HOME")
    if home:
        candidate = Path(home) / "bin" / "java"
        return str(candidate) if candidate.is_file() and os.access(candidate, os.X_OK) else None
    return shutil.which("java")


def require_java() -> str:
    java = java_executable()
    if java is None:
        where = f"JAVA_HOME={os.environ['JAVA_HOME']} has no bin/java" if os.environ.get("JAVA_HOME") else \
            "no java is on PATH"
        raise RecrouteError(f"the Spark engine needs Java 17 or 21, and {where}; install a JDK "
                            "(e.g. apt-get install openjdk-17-jre-headless) or set JAVA_HOME.")
    return java


def spark_session(master: str | None = None, conf: dict[str, str] | None = None):
    """The active SparkSession, or a new one on ``master`` (default: RECROUTE_SPARK_MASTER or local[*]).

    A session already running on another master is stopped first. ``conf``
    adds Spark settings (``spark.driver.memory`` and the like, which only
    take effect when the JVM starts). Local sessions quiet Spark's console
    and get a temporary checkpoint folder, so long ALS runs cut their lineage.
    """
    require_pyspark()
    require_java()
    from pyspark.sql import SparkSession

    master = master or os.environ.get("RECROUTE_SPARK_MASTER") or DEFAULT_MASTER
    active = SparkSession.getActiveSession()
    if active is not None:
        if active.sparkContext.master == master and not conf:
            return active
        active.stop()
    builder = (SparkSession.builder.master(master).appName("recroute")
               .config("spark.ui.showConsoleProgress", "false"))
    conf = dict(conf or {})
    if master.startswith("local"):
        builder = (builder.config("spark.ui.enabled", "false")
                   .config("spark.sql.shuffle.partitions", str(max(2, 2 * (os.cpu_count() or 1)))))
        # local mode: the driver's heap is the executors' too; Spark's 1g default spills ALS at a few million records
        conf.setdefault("spark.driver.memory", f"{max(1, _memory_gib() // 2)}g")
    conf.setdefault("spark.driver.extraJavaOptions", f"-Dlog4j2.configurationFile={_quiet_log_config()}")
    for key, value in conf.items():
        builder = builder.config(key, value)
    try:
        spark = builder.getOrCreate()
    except Exception as exc:  # the Java gateway's own errors are several lines of JVM output
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise RecrouteError(f"Spark could not start on master {master!r} ({first[:200]}).") from None
    for name in ("DataFrameQueryContextLogger", "PySparkLogger"):  # pyspark's own JSON error logs: we say it once
        logging.getLogger(name).setLevel(logging.CRITICAL)
    sc = spark.sparkContext
    if master.startswith("local") and sc.getCheckpointDir() is None:
        folder = tempfile.mkdtemp(prefix="recroute-spark-checkpoints-")
        atexit.register(shutil.rmtree, folder, True)
        sc.setCheckpointDir(folder)
    return spark


def _memory_gib() -> int:
    try:
        return int(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30)
    except (ValueError, OSError, AttributeError):
        return 2


def _quiet_log_config() -> str:
    """A log4j2 file that lets only Spark's fatal messages through: its warnings are not the user's business,
    and a failed job is reported by recroute in one sentence (``recroute.spark.als.java_cause``)."""
    path = Path(tempfile.gettempdir()) / "recroute-spark-log4j2.properties"
    text = ("rootLogger.level = fatal\nrootLogger.appenderRef.stderr.ref = console\n"
            "appender.console.type = Console\nappender.console.name = console\nappender.console.target = SYSTEM_ERR\n"
            "appender.console.layout.type = PatternLayout\nappender.console.layout.pattern = spark: %p %c{1}: %m%n\n")
    try:
        if not path.is_file() or path.read_text() != text:
            tmp = path.with_suffix(f".{os.getpid()}.tmp")
            tmp.write_text(text)
            os.replace(tmp, path)
    except OSError:
        pass
    return str(path)
