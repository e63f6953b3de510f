"""Commands over routing logs: simulate a logging policy, evaluate a router off-policy, estimate a new LLM."""
from __future__ import annotations

import json

import click
import numpy as np

from .. import datasets as bundled
from ..errors import RecrouteError
from .common import _csv_list, _output_target, _write_json, data_option, pickle_option


@click.command("simulate-logs")
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
    """Write the log a policy would have produced on a dataset, with exact propensities.

    Prompts that lack an outcome of some LLM in the pool are skipped (and counted on stderr)."""
    from ..logs import complete_prompts, explore, policy_probabilities, simulate_logs, write_long

    _output_target(out, ".jsonl", inputs=[data_name])
    data = bundled.resolve(data_name, allow_pickle=allow_pickle)
    if pool:
        data = data.subset(models=_csv_list(pool))
    data, skipped = complete_prompts(data)
    if skipped:
        click.echo(f"skipped {skipped} of {skipped + data.n_prompts} prompts that lack an outcome of some LLM in "
                   "the pool", err=True)
    if policy_spec.startswith("router:"):
        from ..serve import load_router

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


@click.command()
@click.option("--logs", "logs_path", required=True, help="A log in the long format with a propensity column.")
@click.option("--router", "folder", required=True, help="The saved router to evaluate.")
@click.option("--pool", default=None, help="Comma-separated LLMs the router chooses among (default: the log's).")
@click.option("--json", "json_out", default=None, help="Write the estimates here as JSON.")
def ope(logs_path, folder, pool, json_out):
    """Estimate a router's mean score on logged prompts (IPS, SNIPS, DR with 95% intervals)."""
    from ..loaders import load_long
    from ..ope import estimate, prompt_terms
    from ..serve import load_router

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
    result = estimate(prompt_terms(log.scores[:, columns], log.propensity[:, columns],
                                   served.router.policy(queries, names), served.router.probability(queries, names)))
    click.echo(json.dumps(result))
    if json_out:
        _write_json(result, json_out)


@click.command()
@click.argument("folder")
@click.option("--data", "data_name", required=True,
              help="The new LLM's outcomes on some of the router's training prompts (ids as in training).")
@click.option("--name", default=None, help="The LLM of the data to estimate (needed when the data holds several).")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON line instead of a sentence.")
def estimate(folder, data_name, name, as_json):
    """Estimate a new LLM's mean score over an als/bpr router's training prompts from a few of its outcomes."""
    from ..estimate import benchmark_estimate
    from ..loaders import load
    from ..serve import load_router

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


COMMANDS = (simulate_logs_command, ope, estimate)
