"""The ``recroute`` command: a thin click layer over the library.

Each command parses its options, calls the library and formats the result.
Any RecrouteError becomes one line on stderr and exit status 2, never a
traceback. The commands live in one module per group (data, evaluate,
routers, logs, serve), each listing its own in ``COMMANDS``; this module
builds the group from them.
"""
from __future__ import annotations

import sys

import click

from ..errors import RecrouteError
from . import data, evaluate, logs, routers, serve


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


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="recroute")
def main():
    """Route each prompt to the LLM most likely to answer it well."""


for _command in (*data.COMMANDS, *evaluate.COMMANDS, *routers.COMMANDS, *logs.COMMANDS, *serve.COMMANDS):
    main.add_command(_command)
del _command
