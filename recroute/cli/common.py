"""What every command shares: the common options and the small helpers that check outputs and report progress."""
from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from .. import datasets as bundled
from .. import protocol
from ..embed import DEFAULT_MODEL, WORDLLAMA, Encoder
from ..errors import RecrouteError


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
    from ..embed import shipped_embeddings
    from ..routers import make_router

    built = [make_router(spec) for spec in routers]  # every name checked before any work
    textless = data.prompts is None and data.embeddings is None  # als, bpr then learn their prompts by id
    if not any(r.needs_embeddings and not (textless and r.knows_prompts_by_id) for r in built):
        return data
    if shipped_embeddings(data, encoder) is None:
        click.echo(f"embedding {data.n_prompts} prompts (cached after the first run)...", err=True)
    return protocol.with_embeddings(data, progress=True, encoder=encoder)


def _output_target(path: str | None, suffix: str, inputs=()) -> None:
    """Refuse before any work if an output cannot be written or would replace one of ``inputs``."""
    from ..safeio import check_output

    check_output(path, suffix=suffix, inputs=inputs)
