"""The Spark engine: spark-als against implicit's ALS, fit --engine spark, Parquet synth, bad input.

One local[2] SparkSession serves the whole file (starting one costs seconds);
data are small so the file runs in about a minute. Needs the spark extra
(pyspark, pyarrow) and Java; without them the Spark tests are skipped, and
the tests of the one-sentence refusals still run.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from recroute.data import RoutingData
from recroute.errors import RecrouteError
from recroute.routers import Queries, best_set_labels, make_router
from recroute.spark.session import java_executable, require_java

from conftest import assert_cli_error, run_cli

HAVE_SPARK = java_executable() is not None
try:
    import pyarrow.parquet as pq
    import pyspark  # noqa: F401
except ImportError:
    HAVE_SPARK = False
needs_spark = pytest.mark.skipif(not HAVE_SPARK, reason="needs pyspark, pyarrow and Java (pip install '.[spark]')")
MASTER = "local[2]"


@pytest.fixture(scope="module")
def spark():
    from recroute.spark.session import spark_session

    before = os.environ.get("RECROUTE_SPARK_MASTER")
    os.environ["RECROUTE_SPARK_MASTER"] = MASTER
    session = spark_session(MASTER, {"spark.driver.memory": "1g", "spark.sql.shuffle.partitions": "4"})
    yield session
    if before is None:
        os.environ.pop("RECROUTE_SPARK_MASTER", None)
    else:
        os.environ["RECROUTE_SPARK_MASTER"] = before


def planted(n=800, m=8, seed=0):
    """Rank-2 0/1 outcomes (good where u·v + b > 0) and embeddings that carry u."""
    rng = np.random.default_rng(seed)
    u, v = rng.normal(size=(n, 2)), 1.5 * rng.normal(size=(m, 2))
    scores = (u @ v.T + rng.normal(0, 0.5, m) > 0).astype(np.float32)
    embeddings = np.hstack([u, rng.normal(0, 0.1, (n, 6))]).astype(np.float32)
    return scores, embeddings


# -- 1. spark-als is implicit's ALS with Spark's knobs -------------------------------------------------
@needs_spark
def test_spark_als_agrees_with_implicit_on_a_planted_low_rank_matrix(spark):
    scores, embeddings = planted()
    train = RoutingData(scores=scores[:500], prompt_ids=[f"p{i}" for i in range(500)],
                        models=[f"m{j}" for j in range(8)], embeddings=embeddings[:500], source="planted")
    new = Queries(embeddings=embeddings[500:])
    als = make_router("als", cold_start="ridge").fit(train).score(new)
    spark_als = make_router("spark-als", cold_start="ridge").fit(train).score(new)
    # the defaults are implicit's mapped (alpha 10 -> 9, negative weight 10 -> 1, λ 1 -> regParam 0.01)
    assert np.corrcoef(als.ravel(), spark_als.ravel())[0, 1] > 0.98
    assert (als.argmax(axis=1) == spark_als.argmax(axis=1)).mean() >= 0.9
    truth = scores[500:]
    routed = truth[np.arange(len(truth)), spark_als.argmax(axis=1)].mean()
    assert routed >= truth.mean(axis=0).max() + 0.2  # far above the best single LLM (about 0.7 here)


@needs_spark
def test_prompts_without_a_good_outcome_get_the_zero_factor_as_in_implicit(spark):
    scores, embeddings = planted(n=300, m=4, seed=1)
    scores[:20] = 0  # no good LLM: Spark would regularise them by 0 and fail; implicit gives them 0
    data = RoutingData(scores=scores, prompt_ids=[f"p{i}" for i in range(300)], models=list("abcd"),
                       embeddings=embeddings, source="planted")
    router = make_router("spark-als", factors=8, iterations=5, cold_start="ridge").fit(data)
    none_good = scores.max(axis=1) == 0  # the planted data has more than those 20
    np.testing.assert_array_equal(router.warm_factors_[none_good], 0)
    assert np.abs(router.warm_factors_[~none_good]).sum(axis=1).min() > 0


# -- 2. Parquet synth ----------------------------------------------------------------------------------
@needs_spark
def test_parquet_synth_round_trips_to_the_npz_data(tmp_path):
    from recroute.synth import load_truth, synthetic, write_parquet

    written = write_parquet(tmp_path / "syn", 1500, 7, dim=5, seed=3)  # 2 blocks of prompts: 2 row groups
    data, truth = synthetic(1500, 7, dim=5, seed=3)
    assert written["records"] == 1500 * 7 and pq.ParquetFile(next((tmp_path / "syn/records").glob("*.parquet"))
                                                             ).metadata.num_row_groups == 2
    records = pq.read_table(tmp_path / "syn" / "records").to_pydict()
    row = {p: i for i, p in enumerate(data.prompt_ids.tolist())}
    col = {m: j for j, m in enumerate(data.models.tolist())}
    back = np.full(data.scores.shape, np.nan, dtype=np.float32)
    back[[row[p] for p in records["prompt_id"]], [col[m] for m in records["model"]]] = records["score"]
    np.testing.assert_array_equal(back, data.scores)
    prompts = pq.read_table(tmp_path / "syn" / "prompts").to_pydict()
    assert prompts["prompt_id"] == data.prompt_ids.tolist() and prompts["group"] == data.groups.tolist()
    np.testing.assert_allclose(np.asarray(prompts["embedding"], dtype=np.float32), data.embeddings, rtol=1e-6)
    np.testing.assert_array_equal(load_truth(tmp_path / "syn").needs, truth.needs)


def test_synth_parquet_refuses_a_folder_that_is_not_empty(tmp_path):
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "keep.txt").write_text("mine")
    result = run_cli("synth", "--format", "parquet", "--prompts", "10", "--llms", "3", "--out", tmp_path / "full")
    assert_cli_error(result, "full", "not empty")
    assert (tmp_path / "full" / "keep.txt").read_text() == "mine"


# -- 3. fit --engine spark -----------------------------------------------------------------------------
@needs_spark
def test_fit_with_spark_writes_a_folder_that_routes(spark, tmp_path):
    from recroute.store import load_router
    from recroute.synth import load_truth, synthetic

    made = run_cli("synth", "--format", "parquet", "--prompts", "1200", "--llms", "20", "--dim", "384",
                   "--out", tmp_path / "logs")
    assert made.exit_code == 0, made.output
    fitted = run_cli("fit", "--engine", "spark", "--data", tmp_path / "logs", "--router", "als",
                     "--param", "iterations=8", "--sample", "1000", "--spark-master", MASTER, "--out", tmp_path / "r")
    assert fitted.exit_code == 0, fitted.output
    assert "24,000 records (1,200 prompts × 20 LLMs)" in fitted.output and "1,000 sampled prompts" in fitted.output
    manifest = json.loads((tmp_path / "r" / "manifest.json").read_text())
    assert manifest["router"] == "spark-als" and manifest["params"]["iterations"] == 8
    routed = run_cli("route", tmp_path / "r", "Write a haiku about routing.", "--top-k", "2")
    assert routed.exit_code == 0, routed.output
    ranking = json.loads(routed.output.strip().splitlines()[-1])["ranking"]
    assert len(ranking) == 2 and all(r["llm"].startswith("llm-") for r in ranking)
    # on the synthetic prompts' own embeddings it routes above the best single LLM, and about as well as
    # implicit's ALS fitted in memory on the same data
    router, _ = load_router(tmp_path / "r")
    data, truth = synthetic(1200, 20, dim=384, seed=0)
    probability = truth.probability()
    np.testing.assert_array_equal(load_truth(tmp_path / "logs").needs, truth.needs)

    def routed(model):
        chosen = model.score(Queries(embeddings=data.embeddings)).argmax(axis=1)
        return probability[np.arange(len(chosen)), chosen].mean()

    in_memory = routed(make_router("als", iterations=8).fit(data))
    assert routed(router) > probability.mean(axis=0).max() + 0.01
    assert routed(router) >= in_memory - 0.02, (routed(router), in_memory)


@needs_spark
def test_spark_labels_are_the_in_memory_best_set_labels(spark):
    from recroute.spark.engine import labelled

    scores = np.array([[0.9, 0.86, 0.5], [0.0, 0.0, 0.0], [0.2, 0.4, np.nan], [-0.5, -1.0, -0.4]], dtype=np.float32)
    rows = [(f"p{i}", f"m{j}", float(scores[i, j])) for i in range(4) for j in range(3) if not np.isnan(scores[i, j])]
    cells = spark.createDataFrame(rows, "prompt_id string, model string, score double")
    got = {(r["prompt_id"], r["model"]): r["label"] for r in labelled(cells, binary=False).collect()}
    expected = best_set_labels(scores, binary=False)
    for (p, m), label in got.items():
        assert label == expected[int(p[1:]), int(m[1:])], (p, m)
    assert len(got) == int((~np.isnan(scores)).sum())


@needs_spark
def test_dense_index_numbers_every_key_once(spark):
    from recroute.spark.engine import dense_index

    frame = spark.createDataFrame([(f"k{i % 37}",) for i in range(500)], "key string").repartition(5)
    index, n = dense_index(frame, "key", "id")
    ids = sorted(r["id"] for r in index.collect())
    assert n == 37 and ids == list(range(37))


# -- 4. bad input: one sentence, nothing written --------------------------------------------------------
def _fit_spark(data, out, *extra):
    return run_cli("fit", "--engine", "spark", "--data", data, "--router", "als", "--spark-master", MASTER,
                   "--out", out, *extra)


@needs_spark
@pytest.mark.parametrize("content, fragments", [
    ("prompt_id,model,value,prompt\np1,a,1,hi\n", ("lacks the column 'score'",)),
    ("prompt_id,model,score,prompt\np1,a,high,hi\np1,b,0,hi\n", ("not numbers", "'high'")),
    ("prompt_id,model,score,prompt\np1,a,nan,hi\n", ("NaN or infinite",)),
    ("prompt_id,model,score,prompt\np1,a,1,hi\np1,a,0,hi\n", ("'p1' × LLM 'a'", "different scores")),
    ("prompt_id,model,score,prompt\np1,,1,hi\n", ("empty 'model'",)),
    ("prompt_id,model,score\np1,a,1\n", ("neither a 'prompt' column",)),
])
def test_bad_records_are_one_sentence(spark, tmp_path, content, fragments):
    path = tmp_path / "records.csv"
    path.write_text(content)
    result = _fit_spark(path, tmp_path / "out")
    assert_cli_error(result, "records.csv", *fragments)
    assert not (tmp_path / "out").exists()


def test_bad_paths_and_options_are_one_sentence(tmp_path):
    (tmp_path / "empty_folder").mkdir()
    (tmp_path / "router_file").write_text("not a folder")
    (tmp_path / "r.csv").write_text("prompt_id,model,score,prompt\np1,a,1,hi\n")
    (tmp_path / "r.txt").write_text("x")
    cases = [
        (_fit_spark(tmp_path / "nope.parquet", tmp_path / "o"), ("nope.parquet", "no such file")),
        (_fit_spark(tmp_path / "empty_folder", tmp_path / "o"), ("empty_folder", "no .parquet files")),
        (_fit_spark(tmp_path / "r.txt", tmp_path / "o"), ("r.txt",)),
        (_fit_spark("routerbench", tmp_path / "o"), ("routerbench", "not a bundled dataset")),
        (_fit_spark(tmp_path / "r.csv", tmp_path / "router_file"), ("router_file", "not a router folder")),
        (_fit_spark(tmp_path / "r.csv", tmp_path / "o", "--param", "regParam=0"), ("regParam", "Spark's knobs")),
        (run_cli("fit", "--engine", "spark", "--data", tmp_path / "r.csv", "--router", "bpr", "--out",
                 tmp_path / "o"), ("ALS only",)),
        (run_cli("fit", "--data", "routerbench", "--router", "als", "--spark-master", MASTER, "--out",
                 tmp_path / "o"), ("--spark-master", "--engine spark only")),
    ]
    for result, fragments in cases:
        assert_cli_error(result, *fragments)
    assert (tmp_path / "router_file").read_text() == "not a folder" and not (tmp_path / "o").exists()


def test_missing_java_is_one_sentence_naming_where_it_was_looked_for(tmp_path, monkeypatch):
    monkeypatch.setenv("JAVA_HOME", str(tmp_path / "no-jdk"))
    with pytest.raises(RecrouteError, match=r"needs Java 17 or 21, and JAVA_HOME=.*no-jdk has no bin/java"):
        require_java()
    monkeypatch.delenv("JAVA_HOME")
    monkeypatch.setenv("PATH", str(tmp_path))  # a folder without java
    with pytest.raises(RecrouteError, match="needs Java 17 or 21, and no java is on PATH"):
        require_java()


@needs_spark
def test_fit_on_spark_without_java_is_one_sentence_and_writes_nothing(tmp_path, monkeypatch):
    monkeypatch.setenv("JAVA_HOME", str(tmp_path / "no-jdk"))
    (tmp_path / "r.csv").write_text("prompt_id,model,score,prompt\np1,a,1,hi\n")
    assert_cli_error(_fit_spark(tmp_path / "r.csv", tmp_path / "o"), "Java 17", "JAVA_HOME")
    assert not (tmp_path / "o").exists()


def test_missing_pyspark_is_one_sentence_and_recroute_imports_without_it(tmp_path):
    """In a fresh interpreter where pyspark cannot be imported: recroute imports, a spark-als folder
    loads and routes (numpy alone), and the Spark engine says what to install."""
    folder = tmp_path / "router"
    scores, embeddings = planted(n=200, m=4, seed=2)
    np.savez(tmp_path / "d.npz", scores=scores, embeddings=embeddings)
    script = f"""
import sys, numpy as np
sys.modules['pyspark'] = None  # import pyspark now fails
import recroute, recroute.cli, recroute.routers, recroute.store
from recroute.data import RoutingData
from recroute.errors import RecrouteError
from recroute.routers import make_router, Queries
from recroute.store import save_router, load_router
from recroute.spark.session import require_pyspark
d = np.load({str(tmp_path / 'd.npz')!r})
router = make_router('spark-als')
try:
    router.fit(RoutingData(scores=d['scores'], prompt_ids=[str(i) for i in range(200)], models=list('abcd'),
                           embeddings=d['embeddings'], source='x'))
except RecrouteError as exc:
    print('REFUSED', exc)
"""
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120,
                          env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])})
    assert done.returncode == 0, done.stderr
    assert "REFUSED the Spark engine needs pyspark" in done.stdout and "recroute[spark]" in done.stdout
    assert not folder.exists()


@needs_spark
def test_a_saved_spark_als_router_routes_without_pyspark(spark, tmp_path):
    from recroute.store import save_router

    scores, embeddings = planted(n=300, m=4, seed=4)
    data = RoutingData(scores=scores, prompt_ids=[f"p{i}" for i in range(300)], models=list("abcd"),
                       embeddings=embeddings, source="planted")
    router = make_router("spark-als", factors=4, iterations=5, cold_start="ridge").fit(data)
    save_router(router, tmp_path / "r", embedding_model="test")
    expected = router.score(Queries(embeddings=embeddings[:5]))
    np.save(tmp_path / "e.npy", embeddings[:5])
    script = f"""
import sys, numpy as np
sys.modules['pyspark'] = None
from recroute.store import load_router
from recroute.routers import Queries
router, _ = load_router({str(tmp_path / 'r')!r})
np.save({str(tmp_path / 's.npy')!r}, router.score(Queries(embeddings=np.load({str(tmp_path / 'e.npy')!r}))))
"""
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120,
                          env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])})
    assert done.returncode == 0, done.stderr
    np.testing.assert_allclose(np.load(tmp_path / "s.npy"), expected, atol=1e-5)
    with pytest.raises(RecrouteError, match="regParam"):
        make_router("spark-als", regParam=0.0)
