"""Commands that evaluate routers on a dataset: the RouterEval protocol, scaling, strong/weak pairs, cost-quality."""
from __future__ import annotations

import contextlib
import warnings
from pathlib import Path

import click
import numpy as np

from .. import datasets as bundled
from .. import protocol
from ..errors import RecrouteError
from ..report import format_table
from .common import (_csv_list, _output_target, _progress, _with_embeddings, _write_json, data_option, encoder_option,
                     pickle_option)


@click.command("eval")
@data_option
@pickle_option
@click.option("--routers", default="oracle,random,bsm,knn,linear,mlp,auto", show_default=True,
              help="Comma-separated routers: oracle, random, bsm, ro:P, knn, linear, mlp, als, spark-als (needs "
                   "recroute[spark]), bpr, lightfm, bilinear, cluster, knnreg, ridge, task, auto.")
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


@click.command()
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
    from ..plots import plot_scaling

    plot_scaling(curve, f"{Path(data.source).stem}: r_o(p) vs pool size", out)
    points = [{"m": m, "p": p, "mu": float(curve["ro"][i, j])}
              for i, p in enumerate(curve["ps"]) for j, m in enumerate(curve["sizes"])]
    points += [{"m": m, "p": "bsm", "mu": float(curve["bsm"][j])} for j, m in enumerate(curve["sizes"])]
    _write_json(points, json_path)
    headers = ["m"] + [f"r_o({p:g})" for p in curve["ps"]] + ["BSM"]
    click.echo(format_table(headers, [[m, *curve["ro"][:, j], curve["bsm"][j]]
                                      for j, m in enumerate(curve["sizes"])]))
    click.echo(f"wrote {out}", err=True)


@click.command()
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
        from ..plots import plot_strong_calls

        plot_strong_calls(result["curves"], result["weak"], result["strong"], tuple(result["pair"]),
                          f"{Path(data.source).stem}{f' ({prompt_groups})' if prompt_groups else ''}: strong/weak routing",
                          out)
        click.echo(f"wrote {out}", err=True)
    _write_json(rows, json_out)


@click.command()
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
    from ..cost import require_costs

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
    from ..plots import plot_cost_quality

    plot_cost_quality(result, f"{Path(data.source).stem}: quality vs cost", out)
    click.echo(f"wrote {out}", err=True)
    _write_json(rows, json_out)


def _pm_values(values) -> str:
    return f"{np.mean(values):.4f} ± {np.std(values):.4f}"


COMMANDS = (eval_command, scaling, pair, pareto)
