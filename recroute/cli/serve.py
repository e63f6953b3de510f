"""The HTTP server command; the server itself is recroute.server."""
from __future__ import annotations

import click


@click.command()
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
    from ..server import serve as run_server

    run_server(folder, host=host, port=port, upstreams=upstreams, log=log, api_key_env=api_key_env,
               fallbacks=fallbacks, upstream_timeout=upstream_timeout)


COMMANDS = (serve,)
