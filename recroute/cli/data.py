"""Commands about datasets: list the bundled ones, describe one, write a synthetic one."""
from __future__ import annotations

import click
import numpy as np

from .. import datasets as bundled
from ..report import format_table
from .common import _output_target, data_option, pickle_option


@click.command("datasets")
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


@click.command()
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


@click.command()
@click.option("--prompts", "n_prompts", type=int, required=True, help="Number of prompts (users).")
@click.option("--llms", "n_llms", type=int, required=True, help="Number of LLMs (items).")
@click.option("--skills", default=4, show_default=True, help="Latent skills of the item-response model.")
@click.option("--dim", default=64, show_default=True, help="Width of the synthetic prompt embeddings.")
@click.option("--seed", default=0, show_default=True)
@click.option("--format", "fmt", type=click.Choice(["npz", "parquet"]), default="npz", show_default=True,
              help="parquet: long-format records in row groups under OUT/records, embeddings under OUT/prompts, "
                   "for data larger than memory (needs recroute[spark]).")
@click.option("--out", required=True, help="The .npz to write (outcomes, groups, embeddings and the hidden truth), "
                                           "or with --format parquet the folder to create.")
def synth(n_prompts, n_llms, skills, dim, seed, fmt, out):
    """Write RouterEval-shaped 0/1 outcomes from a known item-response model (see recroute.synth)."""
    from ..loaders import save_npz
    from ..synth import synthetic

    if fmt == "parquet":
        return _synth_parquet(n_prompts, n_llms, skills, dim, seed, out)
    _output_target(out, ".npz")
    data, truth = synthetic(n_prompts, n_llms, skills=skills, dim=dim, seed=seed)
    save_npz(data, out, compress=False, extra=truth.arrays())
    click.echo(f"wrote {n_prompts} prompts × {n_llms} LLMs ({data.scores.nbytes / 2**20:.0f} MiB of scores, "
               f"mean outcome {data.scores.mean():.3f}) -> {out}")


def _synth_parquet(n_prompts, n_llms, skills, dim, seed, out) -> None:
    """Write into a hidden sibling folder and rename it into place: a failure leaves nothing behind."""
    import os
    import shutil
    import tempfile
    from pathlib import Path

    from ..errors import RecrouteError
    from ..safeio import check_output
    from ..synth import write_parquet

    check_output(out, folder=True)
    target = Path(out)
    if target.exists() and any(target.iterdir()):
        raise RecrouteError(f"{out}: exists and is not empty; refusing to write synthetic records over it.")
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.tmp-", dir=target.parent))
    try:
        written = write_parquet(tmp / "data", n_prompts, n_llms, skills=skills, dim=dim, seed=seed)
        if target.exists():
            target.rmdir()
        os.replace(tmp / "data", target)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    size = sum(f.stat().st_size for f in target.rglob("*") if f.is_file())
    click.echo(f"wrote {n_prompts} prompts × {n_llms} LLMs as {written['records']:,} records in {written['files']} "
               f"Parquet file(s), {size / 2**20:.0f} MiB (mean outcome {written['mean']:.3f}) -> {out}")


COMMANDS = (datasets_command, info, synth)
