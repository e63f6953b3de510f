"""The ``recroute`` command: a thin click layer over the library.

Each command parses its options, calls the library and formats the result.
Any RecrouteError becomes one line on stderr and exit status 2, never a
traceback.
"""
from __future__ import annotations

import sys

import click
import numpy as np

from . import datasets as bundled
from .errors import RecrouteError
from .report import format_table


class _Group(click.Group):
    """Turns library errors into one sentence and a non-zero exit."""

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except RecrouteError as exc:
            click.echo(f"recroute: error: {exc}", err=True)
            sys.exit(2)


data_option = click.option(
    "--data", "data_name", default=bundled.DEFAULT_DATASET, show_default=True,
    help="A bundled dataset name (see `recroute datasets`) or a file: .csv, .jsonl, .json, .npz, .pkl.",
)
pickle_option = click.option(
    "--allow-pickle", is_flag=True, help="Allow loading a RouterEval .pkl file (pickles can run code).",
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
