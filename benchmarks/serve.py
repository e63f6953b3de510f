"""Load test of `recroute serve` on loopback (issue 16): requests/s and latency percentiles.

    python benchmarks/serve.py                                   # 5,000 requests a phase (about 6 minutes on 2 cores)
    python benchmarks/serve.py --requests 300 --concurrency 16   # a smoke run
    python benchmarks/serve.py --router routers/als --json docs/results/serve.json
    python benchmarks/serve.py --as-upstream 9000                # only the fake upstream, for trying the proxy

The server runs as `recroute serve` in its own process, as it would in use, bound to 127.0.0.1 on a
free port; a fake OpenAI-compatible upstream (answering at once) runs in a third. Without --router a
bilinear router is fitted on `recroute synth` data with 384-d embeddings (the width of the bundled
encoder), so every routed prompt goes through the real MiniLM encoder. Phases, each at every
concurrency:

    route, distinct   POST /v1/route, every prompt new (each one is encoded)
    route, repeated   POST /v1/route cycling through 50 prompts (the server's embedding cache)
    proxy             POST /v1/chat/completions routed and forwarded to the fake upstream,
                      then POST /v1/feedback for every answer; the log's lines are counted

Every request is bounded by a timeout and every phase by its request count; an error is any
exception or any status but 200. Beside wall-clock rates the table gives the server process's CPU
time per request (Linux /proc), which other load on a shared machine changes much less. Prints the
README's table.
"""
from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

import httpx
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
REPEATED = 50
TIMEOUT_S = 30.0
LLMS = 11


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def fake_upstream(port: int) -> None:
    """An OpenAI-compatible chat endpoint that answers at once, naming the model it was asked for."""
    import itertools

    import uvicorn
    from starlette.applications import Starlette
    from starlette.responses import JSONResponse
    from starlette.routing import Route

    ids = itertools.count()

    async def chat(request):
        body = await request.json()
        return JSONResponse({"id": f"chatcmpl-{next(ids)}", "object": "chat.completion", "created": 0,
                             "model": body["model"], "choices": [{"index": 0, "finish_reason": "stop",
                             "message": {"role": "assistant", "content": f"answer from {body['model']}"}}]})

    app = Starlette(routes=[Route("/v1/chat/completions", chat, methods=["POST"])])
    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning", access_log=False)


def recroute(*args: str) -> None:
    subprocess.run([sys.executable, "-c", "from recroute.cli import main; main()", *args], check=True,
                   env={**os.environ, "PYTHONPATH": str(ROOT)}, stdout=subprocess.DEVNULL)


def fit_router(folder: Path) -> Path:
    data = folder / "synth.npz"
    recroute("synth", "--prompts", "2000", "--llms", str(LLMS), "--dim", "384", "--out", str(data))
    recroute("fit", "--data", str(data), "--router", "bilinear", "--param", "epochs=5", "--out", str(folder / "router"))
    return folder / "router"


def start(command: list[str], port: int, log: Path) -> subprocess.Popen:
    """A child process, once it answers on ``port`` (at most two minutes)."""
    process = subprocess.Popen(command, env={**os.environ, "PYTHONPATH": str(ROOT)}, stdout=log.open("w"),
                               stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"{command[0]} exited: {log.read_text()}")
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return process
        time.sleep(0.2)
    process.kill()
    raise SystemExit(f"nothing answered on port {port} within two minutes: {log.read_text()}")


async def load(base: str, path: str, bodies: list[dict], concurrency: int) -> dict:
    """Send every body with ``concurrency`` requests in flight; times, errors (counted by kind) and the 200 answers."""
    latencies, errors, answers = [], Counter(), []
    position = iter(range(len(bodies)))
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(base_url=base, timeout=TIMEOUT_S, limits=limits) as client:
        async def worker():
            for i in position:
                sent = time.perf_counter()
                try:
                    response = await client.post(path, json=bodies[i])
                except httpx.HTTPError as exc:
                    errors[type(exc).__name__] += 1
                    continue
                latencies.append(time.perf_counter() - sent)
                if response.status_code == 200:
                    answers.append(response)
                else:
                    errors[f"HTTP {response.status_code}"] += 1

        began = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        elapsed = time.perf_counter() - began
    ms = np.array(latencies) * 1000
    return {"requests": len(bodies), "concurrency": concurrency, "req_per_s": len(bodies) / elapsed,
            "p50_ms": float(np.percentile(ms, 50)) if len(ms) else None,
            "p99_ms": float(np.percentile(ms, 99)) if len(ms) else None, "errors": sum(errors.values()),
            "error_kinds": dict(errors), "answers": answers}


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def prompts(tag: str, n: int) -> list[str]:
    """Short distinct prompts, different for every ``tag`` so no phase hits another's cache."""
    return [f"{tag} question {i}: what is {i % 97} times {i % 89} plus {i}?" for i in range(n)]


async def run(args, base: str, log_path: Path, server_pid: int) -> list[dict]:
    rows = []
    for concurrency in args.concurrency:
        for phase in ("route, distinct", "route, repeated", "proxy"):
            if phase == "route, distinct":
                bodies = [{"prompt": p} for p in prompts(f"c{concurrency}", args.requests)]
            elif phase == "route, repeated":
                bodies = [{"prompt": p} for p in prompts("repeat", REPEATED)] * (args.requests // REPEATED + 1)
                bodies = bodies[:args.requests]
            else:
                texts = prompts(f"proxy c{concurrency}", args.requests)
                bodies = [{"model": "recroute", "messages": [{"role": "user", "content": p}]} for p in texts]
            path = "/v1/chat/completions" if phase == "proxy" else "/v1/route"
            cpu = cpu_seconds(server_pid)
            result = await load(base, path, bodies, concurrency)
            row = {"phase": phase, **{k: v for k, v in result.items() if k != "answers"},
                   "server_cpu_ms": (cpu_seconds(server_pid) - cpu) / len(bodies) * 1000}
            if phase == "proxy":
                before = len(log_path.read_text().splitlines())
                feedback = [{"id": r.json()["id"], "score": 1.0} for r in result["answers"]]
                sent = await load(base, "/v1/feedback", feedback, concurrency)
                row["feedback_sent"], row["feedback_errors"] = len(feedback), sent["errors"]
                row["feedback_lines"] = len(log_path.read_text().splitlines()) - before
            rows.append(row)
            print(json.dumps(row), file=sys.stderr, flush=True)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--router", default=None, help="A router folder (default: fit one on synthetic data).")
    parser.add_argument("--requests", type=int, default=5000, help="Requests per phase and concurrency.")
    parser.add_argument("--concurrency", type=lambda s: [int(c) for c in s.split(",")], default=[1, 16, 64])
    parser.add_argument("--json", default=None, help="Write the rows here.")
    parser.add_argument("--as-upstream", type=int, default=None, metavar="PORT",
                        help="Only run the fake upstream on 127.0.0.1:PORT (to try the proxy without real LLMs).")
    args = parser.parse_args()
    if args.as_upstream is not None:
        return fake_upstream(args.as_upstream)

    with tempfile.TemporaryDirectory(prefix="recroute-serve-bench-") as tmp:
        tmp = Path(tmp)
        router = Path(args.router) if args.router else fit_router(tmp)
        names = json.loads((router / "manifest.json").read_text())["models"]
        upstream_port, port = free_port(), free_port()
        upstream = start([sys.executable, __file__, "--as-upstream", str(upstream_port)], upstream_port,
                         tmp / "upstream.log")
        (tmp / "upstreams.json").write_text(json.dumps({"llms": {name: {
            "base_url": f"http://127.0.0.1:{upstream_port}/v1", "model": f"upstream-{name}"} for name in names}}))
        log_path = tmp / "feedback.jsonl"
        log_path.touch()
        server = start([sys.executable, "-c", "from recroute.cli import main; main()", "serve", str(router),
                        "--port", str(port), "--upstreams", str(tmp / "upstreams.json"), "--log", str(log_path)],
                       port, tmp / "server.log")
        try:
            rows = asyncio.run(run(args, f"http://127.0.0.1:{port}", log_path, server.pid))
        finally:
            for process in (server, upstream):
                process.terminate()
                process.wait(timeout=30)
    print(f"recroute serve on 127.0.0.1, {os.cpu_count()} cores, {len(names)} LLMs, client in another process; "
          "latency in ms")
    print("| phase | concurrency | requests | req/s | p50 | p99 | server CPU per request | errors | feedback lines |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        lines = f"{r['feedback_lines']} of {r['feedback_sent']}" if "feedback_lines" in r else ""
        print(f"| {r['phase']} | {r['concurrency']} | {r['requests']} | {r['req_per_s']:.0f} | {r['p50_ms']:.1f} | "
              f"{r['p99_ms']:.1f} | {r['server_cpu_ms']:.1f} | {r['errors']} | {lines} |")
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=1) + "\n")


if __name__ == "__main__":
    main()
