"""Commands over a saved router folder: fit one, route prompts with it, add or remove an LLM."""
from __future__ import annotations

import json
from pathlib import Path

import click
import numpy as np

from .. import datasets as bundled
from .. import protocol
from ..errors import RecrouteError
from .common import _csv_list, _with_embeddings, data_option, encoder_option, pickle_option


def _params(pairs: tuple[str, ...]) -> dict:
    """``--param k=v`` pairs; values read as JSON where they parse (numbers, true/false), else strings."""
    params = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise RecrouteError(f"--param {pair!r}: expected NAME=VALUE.")
        try:
            params[key] = json.loads(value)
        except json.JSONDecodeError:
            params[key] = value
    return params


@click.command()
@data_option
@pickle_option
@click.option("--router", "router_name", default="auto", show_default=True,
              help="A learned router: auto (chooses by cross-validation), cluster, knnreg, ridge, als, spark-als, "
                   "bpr, lightfm, bilinear, knn, linear, mlp, bsm.")
@click.option("--param", "param_pairs", multiple=True, help="Hyperparameter NAME=VALUE (repeatable); skips tuning.")
@click.option("--out", required=True, help="Folder to write the fitted router to.")
@encoder_option
@click.option("--engine", type=click.Choice(["memory", "spark"]), default="memory", show_default=True,
              help="spark: fit ALS with Spark MLlib on long-format records (Parquet file or folder, CSV, JSONL) "
                   "too large for memory; needs recroute[spark] and Java.")
@click.option("--spark-master", default=None, metavar="URL",
              help="With --engine spark: the Spark master (default: RECROUTE_SPARK_MASTER or local[*]).")
@click.option("--spark-conf", "spark_conf", multiple=True, metavar="KEY=VALUE",
              help="With --engine spark: a Spark setting, e.g. spark.driver.memory=8g (repeatable).")
@click.option("--sample", "sample", type=int, default=None,
              help="With --engine spark: prompts whose factors and embeddings come back to fit the cold-start "
                   "map [default: 100000].")
def fit(data_name, allow_pickle, router_name, param_pairs, out, encoder, engine, spark_master, spark_conf, sample):
    """Fit a router on every prompt of a dataset and save it as a folder."""
    from ..cost import CostModel
    from ..routers import make_router
    from ..store import check_destination, save_router

    if engine == "spark":
        return _fit_on_spark(data_name, router_name, param_pairs, out, encoder, spark_master, spark_conf, sample)
    for flag, value in (("--spark-master", spark_master), ("--spark-conf", spark_conf), ("--sample", sample)):
        if value:
            raise RecrouteError(f"{flag} is for --engine spark only.")
    params = _params(param_pairs)
    make_router(router_name, **params)  # fail before any work on a bad name or parameter
    check_destination(out, inputs=[data_name])
    data = _with_embeddings(bundled.resolve(data_name, allow_pickle=allow_pickle), [router_name], encoder)
    factory = lambda: make_router(router_name, **params)  # noqa: E731
    if not params and getattr(factory(), "param_grid", None):
        split = data.split((0.9, 0.1, 0.0), seed=0)
        chosen = protocol.fit_tuned(factory, split.train, split.val, list(data.models)).get_params()
        click.echo(f"chose {chosen} on {split.val.n_prompts} validation prompts", err=True)
        factory = lambda: make_router(router_name, **chosen)  # noqa: E731
    router = factory().fit(data)
    if hasattr(router, "chosen_"):
        click.echo(f"{router_name} chose {json.dumps(router.chosen_)}", err=True)
    has_costs = data.cost is not None or (data.price is not None and data.prompts is not None)
    cost_model = CostModel().fit(data) if has_costs else None
    folder = save_router(router, out, embedding_model=encoder.model, data_source=data.source,
                         embedding_dim=None if data.embeddings is None else data.embeddings.shape[1],
                         cost_model=cost_model)
    click.echo(f"fitted {router_name} on {data.n_prompts} prompts × {data.n_models} LLMs"
               f"{' with a cost model' if cost_model else ''} -> {folder}")


def _fit_on_spark(data_name, router_name, param_pairs, out, encoder, spark_master, spark_conf, sample):
    """``fit --engine spark``: Spark reads and factorises the records; the router folder is the usual one."""
    from ..datasets import BUNDLED
    from ..routers import make_router
    from ..spark.engine import DEFAULT_SAMPLE, fit_on_spark
    from ..store import check_destination, save_router

    if router_name not in ("als", "spark-als"):
        raise RecrouteError(f"--engine spark fits ALS only (--router als), not {router_name!r}.")
    params = _params(param_pairs)
    try:
        make_router("spark-als", **params)
    except RecrouteError as exc:
        raise RecrouteError(f"{exc} (with --engine spark, ALS takes Spark's knobs)") from None
    conf = {}
    for pair in spark_conf:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise RecrouteError(f"--spark-conf {pair!r}: expected KEY=VALUE.")
        conf[key.strip()] = value
    if data_name in BUNDLED:
        raise RecrouteError(f"--data {data_name}: the Spark engine reads long-format records (a .parquet file or "
                            "folder, .csv or .jsonl), not a bundled dataset; fit that without --engine spark.")
    sample = DEFAULT_SAMPLE if sample is None else sample
    if sample < 1:
        raise RecrouteError(f"--sample must be at least 1, got {sample}.")
    check_destination(out, inputs=[data_name])
    result = fit_on_spark(data_name, params, master=spark_master, conf=conf, sample=sample, encoder=encoder,
                          progress=lambda message: click.echo(message, err=True))
    folder = save_router(result.router, out, embedding_model=encoder.model, data_source=result.source,
                         embedding_dim=result.embedding_dim)
    click.echo(f"fitted spark-als with Spark on {result.records:,} records ({result.prompts:,} prompts × "
               f"{result.llms:,} LLMs), cold-start map on {result.sample:,} sampled prompts -> {folder}")


@click.command()
@click.argument("folder")
@click.argument("prompts", nargs=-1)
@click.option("--input", "input_path", default=None, help="A .txt file (one prompt a line) or .jsonl ({\"prompt\": ...}).")
@click.option("--pool", default=None, help="Comma-separated LLMs to choose among (default: all the router knows).")
@click.option("--top-k", default=3, show_default=True, help="How many LLMs to list per prompt.")
@click.option("--cost-weight", type=float, default=None, metavar="LAMBDA",
              help="Rank by score - LAMBDA x predicted dollars per query (needs a router fitted with costs).")
@click.option("--budget", type=float, default=None, help="Only LLMs predicted to cost at most this many dollars a query.")
def route(folder, prompts, input_path, pool, top_k, cost_weight, budget):
    """Rank LLMs for prompts with a saved router; one JSON line per prompt."""
    from ..serve import load_router

    texts = list(prompts) + (_read_prompts(Path(input_path)) if input_path else [])
    if not texts:
        raise RecrouteError("give prompts as arguments or with --input FILE.")
    if top_k < 1:
        raise RecrouteError(f"--top-k must be at least 1, got {top_k}.")
    for flag, value in (("--cost-weight", cost_weight), ("--budget", budget)):
        if value is not None and not (np.isfinite(value) and value >= 0):
            raise RecrouteError(f"{flag} must be a non-negative number, got {value}.")
    served = load_router(folder)
    pool = _csv_list(pool) if pool else None
    for text, ranking in zip(texts, served.rank(texts, pool=pool, k=top_k, cost_weight=cost_weight, budget=budget)):
        click.echo(json.dumps({"prompt": text, "ranking": ranking}, ensure_ascii=False))


@click.command("add-llm")
@click.argument("folder")
@click.option("--data", "data_name", required=True,
              help="The new LLM's outcomes: a file (.csv, .jsonl, .json, .npz) with prompt texts or embeddings.")
@pickle_option
@click.option("--name", default=None, help="The LLM of the data to add (needed when the data holds several).")
def add_llm(folder, data_name, allow_pickle, name):
    """Fold a new LLM into a saved latent-factor router from its outcomes on some prompts."""
    from ..cost import CostModel
    from ..embed import prompt_embeddings
    from ..serve import load_router

    served = load_router(folder)
    data = bundled.resolve(data_name, allow_pickle=allow_pickle)
    if name is None:
        if data.n_models != 1:
            raise RecrouteError(f"{data.source}: holds {data.n_models} LLMs; name the one to add with --name.")
        name = str(data.models[0])
    if name in served.models:  # before anything about prices, which would only distract from this
        raise RecrouteError(f"{folder}: already routes to {name!r}; remove it first to replace it.")
    data = data.subset(models=[name])
    data = data.subset(prompts=data.observed[:, 0])
    if data.n_prompts == 0:
        raise RecrouteError(f"{data.source}: has no outcome for {name!r}.")
    if data.embeddings is None and data.prompts is None:
        raise RecrouteError(f"{data.source}: has neither prompt texts nor embeddings to place the prompts with.")
    cost_model = None
    if served.cost_model is not None:
        if data.cost is None and (data.price is None or data.prompts is None):
            raise RecrouteError(f"{data.source}: {folder} routes by cost, so the new LLM needs a cost column or prices.")
        cost_model = CostModel(**served.cost_model.get_params()).fit(data)
    served.add_llm(name, [] if data.prompts is None else list(data.prompts), data.scores[:, 0], cost_model=cost_model,
                   embeddings=prompt_embeddings(data, served.encoder))  # never another encoder's shipped vectors
    served.save(folder)
    click.echo(f"added {name} from {data.n_prompts} outcomes -> {folder} (now {len(served.models)} LLMs)")


@click.command("remove-llm")
@click.argument("folder")
@click.argument("name")
def remove_llm(folder, name):
    """Retire an LLM from a saved latent-factor router."""
    from ..serve import load_router

    served = load_router(folder)
    served.remove_llm(name)
    served.save(folder)
    click.echo(f"removed {name} -> {folder} (now {len(served.models)} LLMs)")


def _read_prompts(path: Path) -> list[str]:
    from ..loaders import parse_json

    if not path.is_file():
        raise RecrouteError(f"{path}: file not found.")
    try:
        lines = path.read_text(encoding="utf-8-sig").splitlines()  # -sig: a byte-order mark is not prompt text
    except UnicodeDecodeError:
        raise RecrouteError(f"{path}: is not UTF-8 text.") from None
    if path.suffix.lower() != ".jsonl":
        texts = [line for line in lines if line.strip()]
    else:
        texts = []
        for number, line in enumerate(lines, 1):
            if not line.strip():
                continue
            try:
                record = parse_json(line)
            except (ValueError, RecursionError):
                raise RecrouteError(f"{path}:{number}: invalid JSON (malformed, nested too deeply, "
                                    "or a key given twice).") from None
            if not isinstance(record, dict) or not isinstance(record.get("prompt"), str):
                raise RecrouteError(f"{path}:{number}: expected an object with a 'prompt' string.")
            texts.append(record["prompt"])
    if not texts:
        raise RecrouteError(f"{path}: holds no prompts.")
    return texts


COMMANDS = (fit, route, add_llm, remove_llm)
