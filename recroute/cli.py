"""The ``recroute`` command: a thin click layer over the library.

Each command parses its options, calls the library and formats the result.
Any RecrouteError becomes one line on stderr and exit status 2, never a
traceback.
"""
from __future__ import annotations

import contextlib
import json
import sys
import warnings
from pathlib import Path

import click
import numpy as np

from . import datasets as bundled
from . import protocol
from .embed import DEFAULT_MODEL, WORDLLAMA, Encoder
from .errors import RecrouteError
from .report import format_table


class _Group(click.Group):
    """Turns library errors, and click's usage errors, into one sentence and exit status 2."""

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except RecrouteError as exc:
            click.echo(f"recroute: error: {exc}", err=True)
            sys.exit(2)
        except click.UsageError as exc:  # click's own form is four lines: usage, a hint, a blank, the error
            command = exc.ctx.command_path if exc.ctx else ctx.command_path
            click.echo(f"recroute: error: {command}: {exc.format_message()}", err=True)
            sys.exit(2)


data_option = click.option(
    "--data", "data_name", default=bundled.DEFAULT_DATASET, show_default=True,
    help="A bundled dataset name (see `recroute datasets`) or a file: .csv, .jsonl, .json, .npz, .pkl.",
)
pickle_option = click.option(
    "--allow-pickle", is_flag=True, help="Allow loading a RouterEval .pkl file (pickles can run code).",
)


def _encoder(ctx, param, name: str) -> Encoder:
    """The --encoder option as an Encoder, checked before any work: a bad name is a usage error."""
    encoder = Encoder(model=name)
    try:
        encoder.model_path()
    except RecrouteError as exc:
        raise click.BadParameter(str(exc)) from None
    return encoder


encoder_option = click.option(
    "--encoder", default=DEFAULT_MODEL, show_default=True, callback=_encoder,
    help=f"Prompt embedding model: {DEFAULT_MODEL}, {WORDLLAMA} (30-60x faster, a little less accurate on some "
         "data; see the README), or a local sentence-transformers folder.",
)


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="recroute")
def main():
    """Route each prompt to the LLM most likely to answer it well."""


@main.command("datasets")
def datasets_command():
    """List the bundled datasets."""
    rows = []
    for spec in bundled.BUNDLED.values():
        data = bundled.load_dataset(spec.name)
        rows.append([
            spec.name, data.n_prompts, data.n_models, data.score_kind,
            "per query" if data.cost is not None else "per token" if data.price is not None else "no",
            spec.licence, spec.description,
        ])
    click.echo(format_table(["name", "prompts", "LLMs", "scores", "cost", "licence", "contents"], rows))


@main.command()
@data_option
@pickle_option
def info(data_name, allow_pickle):
    """Describe a dataset: shape, scores, per-LLM means and costs, groups."""
    data = bundled.resolve(data_name, allow_pickle=allow_pickle)
    observed = data.observed
    click.echo(f"{data.source}: {data.n_prompts} prompts × {data.n_models} LLMs, "
               f"{int(observed.sum())} outcomes, {data.score_kind} scores, "
               f"{data.missing_fraction:.2%} of cells not observed")
    if data.splits is not None:
        names, counts = np.unique(data.splits, return_counts=True)
        click.echo("source split: " + ", ".join(f"{n} {c}" for n, c in zip(names, counts)))
    headers = ["LLM", "mean score", "outcomes"]
    columns = [data.models, data.model_means(), observed.sum(axis=0)]
    if data.cost is not None:
        headers.append("mean $/query")
        columns.append(data.model_costs())
    if data.price is not None:
        headers += ["$/M in", "$/M out"]
        columns += [data.price[:, 0], data.price[:, 1]]
    click.echo(format_table(headers, list(zip(*columns))))
    if data.groups is not None:
        names, counts = np.unique(data.groups, return_counts=True)
        order = np.argsort(-counts, kind="stable")
        click.echo(f"{len(names)} groups: " + ", ".join(f"{names[i]} {counts[i]}" for i in order))


def _csv_list(text: str, kind=str) -> list:
    """A comma-separated option: at least one item, none twice (an empty list would run nothing and exit 0)."""
    try:
        items = [kind(part.strip()) for part in text.split(",") if part.strip()]
    except ValueError:
        raise click.BadParameter(f"{text!r} is not a comma-separated list of {kind.__name__}s.") from None
    if not items:
        raise click.BadParameter(f"{text!r} names nothing; give a comma-separated list of {kind.__name__}s.")
    repeated = next((item for k, item in enumerate(items) if item in items[:k]), None)
    if repeated is not None:
        raise click.BadParameter(f"{text!r} names {repeated!r} twice.")
    return items


def _progress(done: int, total: int, label: str) -> None:
    """One overwritten line on a terminal; about ten lines in a log."""
    if sys.stderr.isatty():
        click.echo(f"\r[{done}/{total}] {label:<60}", err=True, nl=done == total)
    elif done == total or done % max(1, total // 10) == 0:
        click.echo(f"[{done}/{total}] {label}", err=True)


def _write_json(rows, path: str | None) -> None:
    if path:
        try:
            Path(path).write_text(json.dumps(rows, indent=1, default=float) + "\n")
        except OSError as exc:  # checked before the work started; the disk can still fill or the folder go
            raise RecrouteError(f"{path}: cannot write ({exc.strerror or exc}).") from None
        click.echo(f"wrote {f'{len(rows)} rows' if isinstance(rows, list) else 'the results'} to {path}", err=True)


def _with_embeddings(data, routers, encoder: Encoder):
    from .embed import shipped_embeddings
    from .routers import make_router

    built = [make_router(spec) for spec in routers]  # every name checked before any work
    textless = data.prompts is None and data.embeddings is None  # als, bpr then learn their prompts by id
    if not any(r.needs_embeddings and not (textless and r.knows_prompts_by_id) for r in built):
        return data
    if shipped_embeddings(data, encoder) is None:
        click.echo(f"embedding {data.n_prompts} prompts (cached after the first run)...", err=True)
    return protocol.with_embeddings(data, progress=True, encoder=encoder)


def _output_target(path: str | None, suffix: str, inputs=()) -> None:
    """Refuse before any work if an output cannot be written or would replace one of ``inputs``."""
    from .safeio import check_output

    check_output(path, suffix=suffix, inputs=inputs)


@main.command("eval")
@data_option
@pickle_option
@click.option("--routers", default="oracle,random,bsm,knn,linear,mlp,bilinear", show_default=True,
              help="Comma-separated routers: oracle, random, bsm, ro:P, knn, linear, mlp, als, bpr, lightfm, bilinear.")
@click.option("--pool-sizes", default="3,5,10,100,1000", show_default=True,
              help="Candidate pool sizes m (routereval: sizes the data cannot fill are skipped; ranked: sizes at "
                   "or above the number of LLMs mean the whole set).")
@click.option("--groups", default=",".join(protocol.POOL_GROUPS), show_default=True,
              help="Candidate groups: all_strong, all_weak, strong_to_weak.")
@click.option("--protocol", "protocol_name", type=click.Choice(protocol.PROTOCOLS), default="routereval",
              show_default=True, help="How pools and splits are chosen: as RouterEval's scripts do, or ranked by "
                                      "training score (recroute's earlier protocol).")
@click.option("--seeds", default=3, show_default=True, help="Number of random splits (seeds 42..41+N).")
@click.option("--seed-list", default=None, help="Comma-separated split seeds (RouterEval uses 42); overrides --seeds.")
@click.option("--reference", default=None,
              help="V_R denominator: an LLM name or a number (default: the best LLM on training prompts).")
@click.option("--side-info", is_flag=True,
              help="Also fit each learned router on every LLM's training outcomes (reported as ROUTER+all).")
@click.option("--debias", "debias_clip", type=float, default=None, metavar="CLIP",
              help="Also fit each learned router with inverse-propensity weights clipped at CLIP (ROUTER+ips) "
                   "and rebalanced on validation prompts (ROUTER+rebal).")
@click.option("--no-tune", is_flag=True, help="Use default hyperparameters instead of choosing them on validation prompts.")
@click.option("--detail", is_flag=True, help="Show one line per candidate group as well.")
@click.option("--json", "json_out", default=None, help="Write one JSON row per (seed, pool, router) here.")
@encoder_option
def eval_command(data_name, allow_pickle, routers, pool_sizes, groups, protocol_name, seeds, seed_list, reference,
                 side_info, debias_clip, no_tune, detail, json_out, encoder):
    """Run the RouterEval protocol: μ_o, V_R, V_B, E_p per router and pool size."""
    _output_target(json_out, ".json", inputs=[data_name])
    if debias_clip is not None and not debias_clip >= 1:
        raise RecrouteError(f"--debias {debias_clip}: the clip must be at least 1.")
    routers = _csv_list(routers)
    sizes, group_names = _csv_list(pool_sizes, int), _csv_list(groups)  # before any work
    seed_values = _csv_list(seed_list, int) if seed_list else _first_seeds(seeds)
    data = bundled.resolve(data_name, allow_pickle=allow_pickle)
    if reference is not None:
        try:
            reference = float(reference)
        except ValueError:
            data.model_index([reference])
        else:
            if not (np.isfinite(reference) and reference > 0):
                raise RecrouteError(f"--reference {reference}: a number must be finite and positive (V_R divides by it).")
    data = _with_embeddings(data, routers, encoder)
    with _evaluating(data):
        rows = protocol.evaluate(
            data, routers, pool_sizes=sizes, groups=group_names, protocol=protocol_name,
            seeds=seed_values, reference=reference,
            side_info=side_info, debias_clip=debias_clip, tune=not no_tune, progress=_progress,
            notice=lambda sentence: click.echo(sentence, err=True),
        )
    by = ("router", "m", "group") if detail else ("router", "m")
    order = list(dict.fromkeys(r["router"] for r in rows))
    table = protocol.summarize(rows, by=by)
    table.sort(key=lambda r: (r["m"], r.get("group", ""), order.index(r["router"])))
    headers = list(by) + ["μ_o", "V_R", "V_B", "E_p", "E_sel", "seeds"]
    click.echo(format_table(headers, [
        [r[k] for k in by] + [_pm(r, "mu"), _pm(r, "vr"), _pm(r, "vb"), _pm(r, "ep"), _pm(r, "es"), r["seeds"]]
        for r in table
    ]))
    _write_json(rows, json_out)


@contextlib.contextmanager
def _evaluating(data):
    """Data too thin for the protocol (one prompt, nothing observed) fails deep inside a metric: say which
    data, in one line. numpy's warnings about empty slices, which the tables show as NaN, stay off stderr."""
    if not data.observed.any():
        raise RecrouteError(f"{data.source}: holds no observed outcome to evaluate on.")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        try:
            yield
        except RecrouteError as exc:
            if str(exc).startswith(data.source):
                raise
            raise RecrouteError(f"{data.source}: cannot be evaluated ({str(exc).rstrip('.')}); "
                                f"it has {data.n_prompts} prompts.") from None


def _first_seeds(n: int) -> list[int]:
    """``--seeds N``: RouterEval's seed 42 and the N − 1 after it."""
    return [protocol.ROUTEREVAL_SEED + i for i in range(n)]


def _pm(row: dict, metric: str) -> str:
    return f"{row[metric]:.3f} ± {row[metric + '_std']:.3f}"


@main.command()
@data_option
@pickle_option
@click.option("--out", required=True, help="PNG file for the figure; the points go to the same name .json.")
@click.option("--pools", default=100, show_default=True, help="Random pools drawn per pool size.")
@click.option("--seed", default=0, show_default=True)
def scaling(data_name, allow_pickle, out, pools, seed):
    """Model-level scaling up: r_o(p) against pool size (RouterEval Figure 2)."""
    json_path = str(Path(out).with_suffix(".json"))
    _output_target(out, ".png", inputs=[data_name])
    _output_target(json_path, ".json", inputs=[data_name])
    data = bundled.resolve(data_name, allow_pickle=allow_pickle)
    with _evaluating(data):
        curve = protocol.scaling_curve(data, n_pools=pools, seed=seed)
    from .plots import plot_scaling

    plot_scaling(curve, f"{Path(data.source).stem}: r_o(p) vs pool size", out)
    points = [{"m": m, "p": p, "mu": float(curve["ro"][i, j])}
              for i, p in enumerate(curve["ps"]) for j, m in enumerate(curve["sizes"])]
    points += [{"m": m, "p": "bsm", "mu": float(curve["bsm"][j])} for j, m in enumerate(curve["sizes"])]
    _write_json(points, json_path)
    headers = ["m"] + [f"r_o({p:g})" for p in curve["ps"]] + ["BSM"]
    click.echo(format_table(headers, [[m, *curve["ro"][:, j], curve["bsm"][j]]
                                      for j, m in enumerate(curve["sizes"])]))
    click.echo(f"wrote {out}", err=True)


@main.command()
@data_option
@pickle_option
@click.option("--routers", default="random,bsm,knn,linear,mlp", show_default=True)
@click.option("--strong", default=None, help="The strong LLM (default: best on training prompts).")
@click.option("--weak", default=None, help="The weak LLM (default: worst on training prompts).")
@click.option("--groups", "prompt_groups", default=None,
              help="Only prompts whose group starts with one of these comma-separated prefixes (e.g. gsm8k).")
@click.option("--tolerance", default=0.0, show_default=True,
              help="Hybrid LLM's relaxation t: the weak LLM is good enough when it scores at least strong - t.")
@click.option("--strong-fraction", default=0.3, show_default=True,
              help="Calibrate each router's threshold on validation prompts to send this share to the strong LLM.")
@click.option("--seeds", default=3, show_default=True)
@click.option("--out", default=None, help="PNG of quality against strong-call fraction.")
@click.option("--json", "json_out", default=None)
@encoder_option
def pair(data_name, allow_pickle, routers, strong, weak, prompt_groups, tolerance, strong_fraction, seeds, out,
         json_out, encoder):
    """Strong/weak routing as RouteLLM and Hybrid LLM do it: P(weak is good enough), APGR, CPT."""
    _output_target(out, ".png", inputs=[data_name])
    _output_target(json_out, ".json", inputs=[data_name])
    protocol.check_pair_options(tolerance, strong_fraction)
    routers = _csv_list(routers)
    data = bundled.resolve(data_name, allow_pickle=allow_pickle)
    for name in (strong, weak):
        if name:
            data.model_index([name])
    if prompt_groups:
        if data.groups is None:
            raise RecrouteError(f"{data.source}: has no prompt groups to select from.")
        keep = np.zeros(data.n_prompts, dtype=bool)
        for prefix in _csv_list(prompt_groups):
            keep |= np.char.startswith(data.groups, prefix)
        if not keep.any():
            raise RecrouteError(f"{data.source}: no prompt group starts with {prompt_groups!r}.")
        data = data.subset(prompts=keep)
    data = _with_embeddings(data, routers, encoder)
    with _evaluating(data):
        rows, result = protocol.evaluate_pair(data, routers, strong=strong, weak=weak, seeds=range(seeds),
                                              tolerance=tolerance, strong_fraction=strong_fraction, progress=_progress)
    click.echo(f"strong {result['pair'][0]} μ={result['strong']:.3f}, weak {result['pair'][1]} "
               f"μ={result['weak']:.3f}, means over {seeds} seeds")
    table = []
    for name in routers:
        mine = [r for r in rows if r["router"] == name]
        table.append([name] + [float(np.nanmean([r[k] for r in mine]))
                               for k in ("apgr", "cpt20", "cpt50", "cpt80", "strong_share", "pgr_at")])
    at = f"{strong_fraction:.0%}"
    click.echo(format_table(["router", "APGR", "CPT(20%)", "CPT(50%)", "CPT(80%)", f"strong share @{at}",
                             f"PGR @{at}"], table))
    if out:
        from .plots import plot_strong_calls

        plot_strong_calls(result["curves"], result["weak"], result["strong"], tuple(result["pair"]),
                          f"{Path(data.source).stem}{f' ({prompt_groups})' if prompt_groups else ''}: strong/weak routing",
                          out)
        click.echo(f"wrote {out}", err=True)
    _write_json(rows, json_out)


@main.command()
@data_option
@pickle_option
@click.option("--routers", default="bsm,knn,linear,mlp,bilinear", show_default=True)
@click.option("--models", default=None, help="Comma-separated LLMs to route among (default: all).")
@click.option("--output-tokens", default=256, show_default=True, type=click.IntRange(min=0),
              help="Assumed answer length when costs come from per-token prices.")
@click.option("--seeds", default=3, show_default=True)
@click.option("--out", required=True, help="PNG of mean score against mean cost per query.")
@click.option("--json", "json_out", default=None, help="Write one JSON row per (seed, router), with its curve, here.")
@encoder_option
def pareto(data_name, allow_pickle, routers, models, output_tokens, seeds, out, json_out, encoder):
    """Quality against cost as the cost weight λ sweeps: AIQ per router (and APGR/CPT for two LLMs)."""
    from .cost import require_costs

    _output_target(out, ".png", inputs=[data_name])
    _output_target(json_out, ".json", inputs=[data_name])
    routers = _csv_list(routers)
    data = bundled.resolve(data_name, allow_pickle=allow_pickle)
    require_costs(data)  # before any embedding work
    models = _csv_list(models) if models else None
    if models:
        data.model_index(models)
    data = _with_embeddings(data, routers, encoder)
    with _evaluating(data):
        result = protocol.cost_quality(data, routers, seeds=range(seeds), models=models, output_tokens=output_tokens,
                                       progress=_progress)
    rows = result["rows"]
    two = len(result["models"]) == 2
    headers = ["router", "AIQ"] + (["APGR", "CPT(50%)", "CPT(80%)"] if two else []) + ["best score", "its cost"]
    table = []
    for name in dict.fromkeys(r["router"] for r in rows):
        mine = [r for r in rows if r["router"] == name]
        best = [int(np.argmax(r["quality"])) for r in mine]
        line = [name, _pm_values([r["aiq"] for r in mine])]
        if two:
            line += [float(np.nanmean([r[k] for r in mine])) for k in ("apgr", "cpt50", "cpt80")]
        line += [np.mean([r["quality"][i] for r, i in zip(mine, best)]),
                 f"${np.mean([r['cost'][i] for r, i in zip(mine, best)]):.2e}"]
        table.append(line)
    click.echo(f"{data.source}: {len(result['models'])} LLMs, means over {seeds} seeds; AIQ over the single LLMs' "
               f"cost range ${result['single_cost'].min():.2e}..${result['single_cost'].max():.2e}")
    click.echo(format_table(headers, table))
    from .plots import plot_cost_quality

    plot_cost_quality(result, f"{Path(data.source).stem}: quality vs cost", out)
    click.echo(f"wrote {out}", err=True)
    _write_json(rows, json_out)


def _pm_values(values) -> str:
    return f"{np.mean(values):.4f} ± {np.std(values):.4f}"


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


@main.command()
@data_option
@pickle_option
@click.option("--router", "router_name", default="auto", show_default=True,
              help="A learned router: auto (chooses by cross-validation), cluster, knnreg, ridge, als, bpr, "
                   "lightfm, bilinear, knn, linear, mlp, bsm.")
@click.option("--param", "param_pairs", multiple=True, help="Hyperparameter NAME=VALUE (repeatable); skips tuning.")
@click.option("--out", required=True, help="Folder to write the fitted router to.")
@encoder_option
def fit(data_name, allow_pickle, router_name, param_pairs, out, encoder):
    """Fit a router on every prompt of a dataset and save it as a folder."""
    from .cost import CostModel
    from .routers import make_router
    from .store import check_destination, save_router

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


@main.command()
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
    from .serve import load_router

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


@main.command("add-llm")
@click.argument("folder")
@click.option("--data", "data_name", required=True,
              help="The new LLM's outcomes: a file (.csv, .jsonl, .json, .npz) with prompt texts or embeddings.")
@pickle_option
@click.option("--name", default=None, help="The LLM of the data to add (needed when the data holds several).")
def add_llm(folder, data_name, allow_pickle, name):
    """Fold a new LLM into a saved latent-factor router from its outcomes on some prompts."""
    from .cost import CostModel
    from .embed import prompt_embeddings
    from .serve import load_router

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


@main.command("remove-llm")
@click.argument("folder")
@click.argument("name")
def remove_llm(folder, name):
    """Retire an LLM from a saved latent-factor router."""
    from .serve import load_router

    served = load_router(folder)
    served.remove_llm(name)
    served.save(folder)
    click.echo(f"removed {name} -> {folder} (now {len(served.models)} LLMs)")


@main.command("simulate-logs")
@data_option
@pickle_option
@click.option("--policy", "policy_spec", required=True,
              help="uniform; softmax:T (P ∝ exp(outcome/T): a logging router that knows something); or router:DIR "
                   "(a saved router's choices, 10% of traffic spread uniformly).")
@click.option("--pool", default=None, help="Comma-separated LLMs to log (default: all of the data's).")
@click.option("--per-prompt", "k", default=1, show_default=True, help="LLMs logged per prompt (drawn without replacement).")
@click.option("--seed", default=0, show_default=True)
@click.option("--out", required=True, help="The .jsonl log to write (long records with a propensity each).")
def simulate_logs_command(data_name, allow_pickle, policy_spec, pool, k, seed, out):
    """Write the log a policy would have produced on a dense dataset, with exact propensities."""
    from .logs import explore, policy_probabilities, simulate_logs, write_long

    _output_target(out, ".jsonl", inputs=[data_name])
    data = bundled.resolve(data_name, allow_pickle=allow_pickle)
    if pool:
        data = data.subset(models=_csv_list(pool))
    if policy_spec.startswith("router:"):
        from .serve import load_router

        served = load_router(policy_spec[len("router:"):])
        names = list(map(str, data.models))
        served.router.columns(names)  # unknown LLMs fail here, before any encoding
        policy = explore(served.router.policy(served.queries(data), names))
    else:
        policy = policy_probabilities(policy_spec, data)
    log = simulate_logs(data, policy, k, seed)
    write_long(log, out)
    click.echo(f"logged {int(log.observed.sum())} outcomes of {data.n_prompts} prompts × {data.n_models} LLMs "
               f"({k} per prompt, policy {policy_spec}) -> {out}")


@main.command()
@click.option("--logs", "logs_path", required=True, help="A log in the long format with a propensity column.")
@click.option("--router", "folder", required=True, help="The saved router to evaluate.")
@click.option("--pool", default=None, help="Comma-separated LLMs the router chooses among (default: the log's).")
@click.option("--json", "json_out", default=None, help="Write the estimates here as JSON.")
def ope(logs_path, folder, pool, json_out):
    """Estimate a router's mean score on logged prompts (IPS, SNIPS, DR with 95% bootstrap intervals)."""
    from .loaders import load_long
    from .ope import estimate, prompt_terms
    from .serve import load_router

    _output_target(json_out, ".json", inputs=[logs_path])
    log = load_long(logs_path)
    if log.propensity is None:
        raise RecrouteError(f"{log.source}: has no propensity column; off-policy evaluation needs the logging "
                            "policy's probability of each record.")
    served = load_router(folder)
    names = _csv_list(pool) if pool else list(map(str, log.models))
    served.router.columns(names)  # the router must know every LLM it is to choose among
    columns = log.model_index(names)  # and the log must hold outcomes of each
    queries = served.queries(log)
    target = np.zeros(log.scores.shape)
    direct = np.zeros(log.scores.shape)
    target[:, columns] = served.router.policy(queries, names)
    direct[:, columns] = served.router.probability(queries, names)
    result = estimate(prompt_terms(log.scores, log.propensity, target, direct))
    click.echo(json.dumps(result))
    if json_out:
        _write_json(result, json_out)


@main.command()
@click.argument("folder")
@click.option("--data", "data_name", required=True,
              help="The new LLM's outcomes on some of the router's training prompts (ids as in training).")
@click.option("--name", default=None, help="The LLM of the data to estimate (needed when the data holds several).")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON line instead of a sentence.")
def estimate(folder, data_name, name, as_json):
    """Estimate a new LLM's mean score over an als/bpr router's training prompts from a few of its outcomes."""
    from .estimate import benchmark_estimate
    from .loaders import load
    from .serve import load_router

    data = load(data_name)
    if name is None:
        if data.n_models != 1:
            raise RecrouteError(f"{data.source}: holds {data.n_models} LLMs; name the one to estimate with --name.")
        name = str(data.models[0])
    data = data.subset(models=[name])
    data = data.subset(prompts=data.observed[:, 0])
    served = load_router(folder)
    with served.named():
        result = {"llm": name, **benchmark_estimate(served.router, data.prompt_ids, data.scores[:, 0])}
    if as_json:
        click.echo(json.dumps(result))
    else:
        click.echo(f"{name}: {result['estimate']:.4f} (95% interval {result['low']:.4f} to {result['high']:.4f}) "
                   f"from {result['n_observed']} outcomes")


@main.command()
@click.argument("folder")
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on (loopback: this machine only).")
@click.option("--port", default=8000, show_default=True)
@click.option("--upstreams", default=None, help='JSON {"llms": {NAME: {"base_url", "model", "api_key_env"}}}: where '
                                                "/v1/chat/completions forwards each LLM's requests.")
@click.option("--log", default=None, help="JSONL file that /v1/feedback appends scored completions to (for `fit`).")
@click.option("--api-key-env", default=None, help="Environment variable holding the key clients must send as a Bearer token.")
@click.option("--fallbacks", default=2, show_default=True, help="Next-ranked LLMs to try when an upstream fails.")
@click.option("--upstream-timeout", default=120.0, show_default=True, help="Seconds an upstream may take to answer.")
def serve(folder, host, port, upstreams, log, api_key_env, fallbacks, upstream_timeout):
    """Serve a saved router over HTTP: /v1/route, and an OpenAI-compatible proxy with fallback."""
    from .server import serve as run_server

    run_server(folder, host=host, port=port, upstreams=upstreams, log=log, api_key_env=api_key_env,
               fallbacks=fallbacks, upstream_timeout=upstream_timeout)


@main.command()
@click.option("--prompts", "n_prompts", type=int, required=True, help="Number of prompts (users).")
@click.option("--llms", "n_llms", type=int, required=True, help="Number of LLMs (items).")
@click.option("--skills", default=4, show_default=True, help="Latent skills of the item-response model.")
@click.option("--dim", default=64, show_default=True, help="Width of the synthetic prompt embeddings.")
@click.option("--seed", default=0, show_default=True)
@click.option("--out", required=True, help="The .npz to write (outcomes, groups, embeddings and the hidden truth).")
def synth(n_prompts, n_llms, skills, dim, seed, out):
    """Write RouterEval-shaped 0/1 outcomes from a known item-response model (see recroute.synth)."""
    from .loaders import save_npz
    from .synth import synthetic

    _output_target(out, ".npz")
    data, truth = synthetic(n_prompts, n_llms, skills=skills, dim=dim, seed=seed)
    save_npz(data, out, compress=False, extra=truth.arrays())
    click.echo(f"wrote {n_prompts} prompts × {n_llms} LLMs ({data.scores.nbytes / 2**20:.0f} MiB of scores, "
               f"mean outcome {data.scores.mean():.3f}) -> {out}")


def _read_prompts(path: Path) -> list[str]:
    from .loaders import parse_json

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
