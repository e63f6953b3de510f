"""`recroute serve` over real HTTP on 127.0.0.1: routing, the OpenAI-compatible proxy, fallback, feedback, reload, auth.

The router is the topical one of test_cli_serve (LLM A answers math prompts, B code, C history) fitted
here on the real MiniLM embeddings, with a cost model where A is the cheapest LLM and C the dearest.
Servers run in this process on free loopback ports (uvicorn in a thread); fake upstreams are small
Starlette apps that answer "answer from NAME", fail with 503, stall, or are not there at all. Every
wait is bounded.
"""
from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import numpy as np
import openai
import pytest
import uvicorn
from starlette.applications import Starlette
from starlette.responses import JSONResponse, StreamingResponse
from starlette.routing import Route

from conftest import assert_cli_error, private_cache_on_one_thread, run_cli as cli
from recroute.cost import CostModel
from recroute.data import RoutingData
from recroute.embed import DEFAULT_MODEL, Encoder
from recroute.loaders import load
from recroute.routers import make_router
from recroute.serve import load_router
from recroute.server import MAX_BODY_BYTES, create_app
from recroute.store import save_router
from test_cli_serve import COST_LINES, LLMS, NEW, TOPICS

MATH, CODE, HISTORY = list(NEW)[0], list(NEW)[2], list(NEW)[4]
STARTUP_S = 120  # loading the encoder on a busy machine


@pytest.fixture(scope="module", autouse=True)
def environment(tmp_path_factory):
    """A private embedding cache and torch on one thread, as `recroute serve` runs it on two cores."""
    with private_cache_on_one_thread(tmp_path_factory, KEY_A="secret-a"):
        yield


@pytest.fixture(scope="module")
def topics(environment):
    texts = [text for prompts in TOPICS.values() for text in prompts]
    topic = np.repeat(np.arange(len(TOPICS)), [len(p) for p in TOPICS.values()])
    tokens = np.maximum(-(-np.array([len(t) for t in texts]) // 4), 1)
    return RoutingData(
        scores=(topic[:, None] == np.arange(len(LLMS))).astype(np.float32),
        prompt_ids=np.array([f"q{i}" for i in range(len(texts))]), models=np.array(LLMS), prompts=texts,
        embeddings=Encoder().encode(texts), cost=COST_LINES[:, 0] + tokens[:, None] * COST_LINES[:, 1],
        source="topics",
    )


@pytest.fixture(scope="module")
def routers(topics, tmp_path_factory):
    """The same fitted router saved twice: with its cost model ("costed") and without ("plain")."""
    folder = tmp_path_factory.mktemp("routers")
    router = make_router("bilinear", epochs=50).fit(topics)
    for name, cost_model in (("costed", CostModel().fit(topics)), ("plain", None)):
        save_router(router, folder / name, embedding_model=DEFAULT_MODEL, embedding_dim=384, cost_model=cost_model)
    return folder


@contextlib.contextmanager
def serving(app):
    """Run an ASGI app on a free 127.0.0.1 port in a thread; its base URL while the block runs."""
    sock = socket.create_server(("127.0.0.1", 0))
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", timeout_graceful_shutdown=5))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + STARTUP_S
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "the server did not start"
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    finally:
        server.should_exit = True
        thread.join(timeout=30)
        sock.close()


class FakeLLM:
    """An OpenAI-compatible upstream that records what it was sent and answers "answer from NAME"."""

    def __init__(self, name: str, status: int = 200, delay: float = 0.0):
        self.name, self.status, self.delay = name, status, delay
        self.received: list[dict] = []

    def app(self) -> Starlette:
        return Starlette(routes=[Route("/v1/chat/completions", self.chat, methods=["POST"])])

    async def chat(self, request):
        body = await request.json()
        self.received.append({"body": body, "authorization": request.headers.get("authorization")})
        completion_id = f"chatcmpl-{self.name}-{len(self.received)}"
        if self.delay:
            await asyncio.sleep(self.delay)
        if self.status != 200:
            return JSONResponse({"error": {"message": "overloaded"}}, status_code=self.status)
        if body.get("stream"):
            return StreamingResponse(self.events(completion_id, body["model"]), media_type="text/event-stream")
        return JSONResponse({
            "id": completion_id, "object": "chat.completion", "created": 1, "model": body["model"],
            "choices": [{"index": 0, "finish_reason": "stop",
                         "message": {"role": "assistant", "content": f"answer from {self.name}"}}],
        })

    async def events(self, completion_id, model):
        for i, piece in enumerate(["answer", " from", f" {self.name}"]):
            chunk = {"id": completion_id, "object": "chat.completion.chunk", "created": 1, "model": model,
                     "choices": [{"index": 0, "delta": {"content": piece}, "finish_reason": None}]}
            yield f"data: {json.dumps(chunk)}\n\n"
            await asyncio.sleep(0.01)
        yield "data: [DONE]\n\n"


def closed_port() -> int:
    """A loopback port nothing listens on: connecting to it is refused."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def upstreams_file(path: Path, urls: dict[str, str], keys: dict[str, str] = {}) -> Path:
    path.write_text(json.dumps({"llms": {name: {"base_url": url, "model": f"upstream-{name}",
                                                **({"api_key_env": keys[name]} if name in keys else {})}
                                         for name, url in urls.items()}}))
    return path


@pytest.fixture(scope="module")
def fakes():
    """Three healthy upstreams, one per LLM, each on its own port."""
    llms = {name: FakeLLM(name) for name in LLMS}
    with contextlib.ExitStack() as stack:
        urls = {name: stack.enter_context(serving(llm.app())) + "/v1" for name, llm in llms.items()}
        yield llms, urls


@pytest.fixture(scope="module")
def server(routers, fakes, tmp_path_factory):
    """The costed router behind the proxy, with a feedback log; A's upstream needs the key in KEY_A."""
    folder = tmp_path_factory.mktemp("server")
    llms, urls = fakes
    app = create_app(routers / "costed", upstreams=upstreams_file(folder / "upstreams.json", urls, {"A": "KEY_A"}),
                     log=folder / "feedback.jsonl")
    with serving(app) as base:
        yield base, folder / "feedback.jsonl"


def client(base: str, **kwargs) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{base}/v1", api_key=kwargs.pop("api_key", "unused"), max_retries=0, timeout=60,
                         **kwargs)


def post(base: str, path: str, body, **kwargs) -> httpx.Response:
    return httpx.post(f"{base}{path}", json=body, timeout=60, **kwargs)


def chat(base: str, prompt: str, model: str = "recroute", **extra):
    """A completion through the openai client: (the parsed completion, the LLM that answered)."""
    raw = client(base).chat.completions.with_raw_response.create(
        model=model, messages=[{"role": "system", "content": "Be brief."}, {"role": "user", "content": prompt}],
        **extra)
    return raw.parse(), raw.headers["x-recroute-llm"]


# -- health, models, /v1/route -------------------------------------------------------------------------
def test_health_and_models(server):
    base, _ = server
    health = httpx.get(f"{base}/health", timeout=30)
    assert health.status_code == 200 and health.json() == {"status": "ok", "llms": 3}
    models = client(base).models.list()
    assert [m.id for m in models.data] == ["recroute"]
    assert models.data[0].model_extra["llms"] == LLMS


def test_route_gives_the_answer_of_recroute_route(server, routers):
    base, _ = server
    response = post(base, "/v1/route", {"prompts": list(NEW), "k": 2})
    assert response.status_code == 200
    rankings = response.json()["rankings"]
    assert [r[0]["llm"] for r in rankings] == list(NEW.values())
    result = cli("route", routers / "costed", *NEW, "--top-k", "2")
    assert result.exit_code == 0, result.output
    expected = [json.loads(line)["ranking"] for line in result.stdout.splitlines()]
    assert [[e["llm"] for e in r] for r in rankings] == [[e["llm"] for e in r] for r in expected]
    np.testing.assert_allclose([[e["score"] for e in r] for r in rankings], [[e["score"] for e in r] for r in expected],
                               atol=1e-5)
    single = post(base, "/v1/route", {"prompt": MATH}).json()["rankings"]
    assert len(single) == 1 and [e["llm"] for e in single[0]][0] == "A" and len(single[0]) == 3


def test_route_respects_the_pool(server):
    base, _ = server
    rankings = post(base, "/v1/route", {"prompts": [MATH, CODE, HISTORY], "pool": ["C", "B"], "k": 5}).json()["rankings"]
    assert all(sorted(e["llm"] for e in r) == ["B", "C"] for r in rankings)
    assert [r[0]["llm"] for r in rankings][1:] == ["B", "C"]
    alone = post(base, "/v1/route", {"prompt": HISTORY, "pool": ["A"]}).json()["rankings"]
    assert len(alone) == 1 and [e["llm"] for e in alone[0]] == ["A"]


def test_route_by_cost(server):
    base, _ = server
    rankings = post(base, "/v1/route", {"prompts": [HISTORY, CODE], "cost_weight": 1e6}).json()["rankings"]
    for ranking in rankings:
        assert [e["llm"] for e in ranking] == ["A", "B", "C"]  # cheapest first
        assert all(e["cost"] > 0 for e in ranking)
    # Who was Julius Caesar? costs A 1.6e-5, B 1.6e-4, C 1.6e-3 dollars: only A and B fit 5e-4
    budgeted = post(base, "/v1/route", {"prompt": HISTORY, "budget": 5e-4}).json()["rankings"][0]
    assert sorted(e["llm"] for e in budgeted) == ["A", "B"] and all(e["cost"] <= 5e-4 for e in budgeted)


async def _burst(base: str, path: str, bodies: list) -> list[httpx.Response]:
    async with httpx.AsyncClient(base_url=base, timeout=60) as session:
        return await asyncio.gather(*(session.post(path, json=body) for body in bodies))


def test_concurrent_requests_share_encoder_passes_and_repeats_hit_the_cache(routers, monkeypatch):
    calls = []
    encode = Encoder.encode

    def counted(self, texts, progress=False):
        calls.append(len(texts))
        return encode(self, texts, progress)

    monkeypatch.setattr(Encoder, "encode", counted)
    texts = [f"What is {i} plus {i + 3}?" for i in range(24)] + [f"Who ruled Rome in year {i}?" for i in range(24)]
    with serving(create_app(routers / "plain", max_wait=1.0)) as base:
        calls.clear()  # the warm-up
        answers = asyncio.run(_burst(base, "/v1/route", [{"prompt": t, "k": 1} for t in texts]))
        assert [a.status_code for a in answers] == [200] * len(texts)
        assert sum(calls) == len(texts) and len(calls) < len(texts) / 4  # batched: each text encoded once
        alone = [post(base, "/v1/route", {"prompt": t, "k": 1}).json()["rankings"] for t in texts[::12]]
        batched = [a.json()["rankings"] for a in answers[::12]]  # a batch answers as single requests do
        assert [r[0][0]["llm"] for r in batched] == [r[0][0]["llm"] for r in alone]
        np.testing.assert_allclose([r[0][0]["score"] for r in batched], [r[0][0]["score"] for r in alone], atol=1e-5)
        assert [a.json()["rankings"][0][0]["llm"] for a in answers] == ["A"] * 24 + ["C"] * 24
        encoded = sum(calls)
        asyncio.run(_burst(base, "/v1/route", [{"prompt": t, "k": 2} for t in texts]))
        assert sum(calls) == encoded  # repeated prompts come from the cache
        started = time.monotonic()
        post(base, "/v1/route", {"prompt": texts[0]})
        assert time.monotonic() - started < 1.0  # a cached prompt does not wait for company
        started = time.monotonic()
        post(base, "/v1/route", {"prompt": "A prompt never seen before"})
        assert time.monotonic() - started >= 1.0  # a new one does


# -- the OpenAI-compatible proxy ----------------------------------------------------------------------
def test_proxy_routes_each_topic_and_forwards_to_its_upstream(server, fakes):
    base, _ = server
    llms, _ = fakes
    for prompt, llm in NEW.items():
        completion, answered = chat(base, prompt, temperature=0.5)
        assert answered == llm
        assert completion.choices[0].message.content == f"answer from {llm}"
        sent = llms[llm].received[-1]
        assert sent["body"]["model"] == f"upstream-{llm}" and sent["body"]["temperature"] == 0.5
        assert sent["body"]["messages"][-1] == {"role": "user", "content": prompt}
        assert sent["authorization"] == ("Bearer secret-a" if llm == "A" else None)


def test_proxy_streams(server, fakes):
    base, _ = server
    with client(base).chat.completions.with_streaming_response.create(
            model="recroute", messages=[{"role": "user", "content": CODE}], stream=True) as response:
        assert response.headers["x-recroute-llm"] == "B"
        chunks = list(response.parse())
    assert "".join(c.choices[0].delta.content or "" for c in chunks) == "answer from B"
    assert fakes[0]["B"].received[-1]["body"]["stream"] is True


def test_proxy_pool_and_cost_aware_model_name(server):
    base, _ = server
    assert chat(base, HISTORY, extra_body={"pool": ["A", "B"]})[1] in ("A", "B")
    assert chat(base, MATH, extra_body={"pool": ["B"]})[1] == "B"
    assert chat(base, HISTORY)[1] == "C"
    assert chat(base, HISTORY, model="recroute:cost=1e6")[1] == "A"  # quality is worth nothing next to dollars
    assert chat(base, HISTORY, model="recroute:cost=0")[1] == "C"


@pytest.fixture(scope="module")
def failing(routers, tmp_path_factory):
    """Two proxies whose A refuses connections and whose B answers 503; C answers in one and stalls in the other."""
    folder = tmp_path_factory.mktemp("failing")
    broken, stalled, healthy = FakeLLM("B", status=503), FakeLLM("C", delay=3.0), FakeLLM("C")
    with serving(broken.app()) as b, serving(stalled.app()) as c_slow, serving(healthy.app()) as c_ok:
        down = f"http://127.0.0.1:{closed_port()}/v1"
        apps = {}
        for name, c in (("answers", c_ok), ("stalls", c_slow)):
            path = upstreams_file(folder / f"{name}.json", {"A": down, "B": b + "/v1", "C": c + "/v1"})
            apps[name] = create_app(routers / "plain", upstreams=path, fallbacks=2, upstream_timeout=0.5)
        with serving(apps["answers"]) as answers, serving(apps["stalls"]) as stalls:
            yield answers, stalls


def test_proxy_falls_back_when_the_first_upstreams_are_down(failing):
    answers, _ = failing
    completion, answered = chat(answers, MATH)  # A (refused), then B (503) or C: C answers
    assert answered == "C" and completion.choices[0].message.content == "answer from C"
    with httpx.stream("POST", f"{answers}/v1/chat/completions", timeout=30, json={
            "model": "recroute", "messages": [{"role": "user", "content": MATH}], "stream": True}) as response:
        assert response.status_code == 200 and response.headers["x-recroute-llm"] == "C"
        assert "answer" in response.read().decode()


def test_proxy_answers_502_naming_every_failure(failing):
    answers, stalls = failing
    response = post(answers, "/v1/chat/completions", {"model": "recroute", "pool": ["A", "B"],
                                                      "messages": [{"role": "user", "content": MATH}]})
    assert response.status_code == 502
    message = response.json()["error"]["message"]
    assert "A (ConnectError" in message and "B (HTTP 503)" in message
    started = time.monotonic()
    response = post(stalls, "/v1/chat/completions", {"model": "recroute", "pool": ["C"],
                                                     "messages": [{"role": "user", "content": HISTORY}]})
    assert response.status_code == 502 and "C (ReadTimeout" in response.json()["error"]["message"]
    assert time.monotonic() - started < 2.5  # the 0.5 s timeout, not the upstream's 3 s stall


def test_proxy_with_fewer_fallbacks_gives_up_sooner(routers, tmp_path):
    path = upstreams_file(tmp_path / "up.json", {name: f"http://127.0.0.1:{closed_port()}/v1" for name in LLMS})
    with serving(create_app(routers / "plain", upstreams=path, fallbacks=0)) as base:
        response = post(base, "/v1/chat/completions", {"model": "recroute", "messages": [{"role": "user", "content": MATH}]})
    assert response.status_code == 502
    assert response.json()["error"]["message"].count("ConnectError") == 1  # only A was tried


# -- feedback ----------------------------------------------------------------------------------------
def test_feedback_appends_one_long_format_line_per_completion(server, tmp_path):
    base, log = server
    before = len(log.read_text().splitlines())
    prompts = [f"{text} (variant {i})" for i in range(8) for text in NEW]
    bodies = [{"model": "recroute", "messages": [{"role": "user", "content": p}]} for p in prompts]
    completions = asyncio.run(_burst(base, "/v1/chat/completions", bodies))
    assert [c.status_code for c in completions] == [200] * len(prompts)
    answered = {c.json()["id"]: (p, c.headers["x-recroute-llm"]) for p, c in zip(prompts, completions)}
    scores = {cid: float(i % 2) for i, cid in enumerate(answered)}
    replies = asyncio.run(_burst(base, "/v1/feedback", [{"id": cid, "score": s} for cid, s in scores.items()]))
    assert [r.status_code for r in replies] == [200] * len(prompts)
    lines = [json.loads(line) for line in log.read_text().splitlines()[before:]]
    assert len(lines) == len(prompts)  # none lost
    for line in lines:
        prompt, llm = answered[line["prompt_id"]]
        assert line == {"prompt_id": line["prompt_id"], "model": llm, "score": scores[line["prompt_id"]],
                        "prompt": prompt, "propensity": 1.0}
    # `recroute fit` reads the log: one prompt per completion, the LLM that answered observed
    data = load(log)
    assert data.n_prompts == len(lines) and sorted(data.models) == sorted({llm for _, llm in answered.values()})
    assert int(data.observed.sum()) == len(lines)


def test_feedback_on_a_streamed_completion(server):
    base, log = server
    with client(base).chat.completions.with_streaming_response.create(
            model="recroute", messages=[{"role": "user", "content": HISTORY}], stream=True) as response:
        chunks = list(response.parse())
    reply = post(base, "/v1/feedback", {"id": chunks[0].id, "score": 0.5})
    assert reply.status_code == 200
    assert json.loads(log.read_text().splitlines()[-1]) == {"prompt_id": chunks[0].id, "model": "C", "score": 0.5,
                                                          "prompt": HISTORY, "propensity": 1.0}


def test_feedback_twice_or_for_an_unknown_id_is_refused(server):
    base, log = server
    completion, _ = chat(base, CODE)
    assert post(base, "/v1/feedback", {"id": completion.id, "score": 1}).status_code == 200
    lines = len(log.read_text().splitlines())
    again = post(base, "/v1/feedback", {"id": completion.id, "score": 0})
    assert again.status_code == 409 and "already" in again.json()["error"]["message"]
    unknown = post(base, "/v1/feedback", {"id": "chatcmpl-nobody", "score": 1})
    assert unknown.status_code == 404 and "unknown completion id 'chatcmpl-nobody'" in unknown.json()["error"]["message"]
    assert len(log.read_text().splitlines()) == lines


# -- hot reload ---------------------------------------------------------------------------------------
def test_reload_after_remove_llm_and_add_llm_without_failing_requests(routers, topics, tmp_path):
    folder = tmp_path / "router"
    shutil.copytree(routers / "plain", folder)
    statuses, stop = [], threading.Event()

    def hammer(base):
        with httpx.Client(base_url=base, timeout=60) as session:
            for i in range(5000):  # bounded; stopped by the test long before
                if stop.is_set():
                    return
                statuses.append(session.post("/v1/route", json={"prompt": list(NEW)[i % 6], "k": 5}).status_code)

    def wait_for_requests(count):
        deadline = time.monotonic() + 30
        while len(statuses) < count:
            assert time.monotonic() < deadline and worker.is_alive(), "the requests stalled"
            time.sleep(0.01)

    def wait_for(base, llms):
        deadline = time.monotonic() + 30
        while httpx.get(f"{base}/health", timeout=30).json()["llms"] != llms:
            assert time.monotonic() < deadline, f"the server did not reload to {llms} LLMs"
            time.sleep(0.05)

    with serving(create_app(folder, reload_interval=0.05)) as base:
        worker = threading.Thread(target=hammer, args=(base,))
        worker.start()
        try:
            wait_for_requests(10)
            result = cli("remove-llm", folder, "C")
            assert result.exit_code == 0, result.output
            wait_for(base, 2)
            ranking = post(base, "/v1/route", {"prompt": HISTORY, "k": 5}).json()["rankings"][0]
            assert sorted(e["llm"] for e in ranking) == ["A", "B"]
            gone = post(base, "/v1/route", {"prompt": HISTORY, "pool": ["C"]})
            assert gone.status_code == 400 and "unknown LLM 'C'" in gone.json()["error"]["message"]
            served = load_router(folder)  # D answers the history prompts, as C did
            served.add_llm("D", topics.prompts, topics.scores[:, 2], embeddings=topics.embeddings)
            served.save(folder)
            wait_for(base, 3)
            assert post(base, "/v1/route", {"prompt": HISTORY, "k": 1}).json()["rankings"][0][0]["llm"] == "D"
            wait_for_requests(len(statuses) + 10)
        finally:
            stop.set()
            worker.join(timeout=60)
    assert len(statuses) >= 20 and set(statuses) == {200}


# -- auth ---------------------------------------------------------------------------------------------
def test_api_key(routers):
    with serving(create_app(routers / "plain", api_key="s3cret")) as base:
        for headers in ({}, {"authorization": "Bearer wrong"}, {"authorization": "s3cret"}):
            response = post(base, "/v1/route", {"prompt": MATH}, headers=headers)
            assert response.status_code == 401 and "Authorization: Bearer" in response.json()["error"]["message"]
        assert httpx.get(f"{base}/health", timeout=30).status_code == 401
        ok = post(base, "/v1/route", {"prompt": MATH}, headers={"authorization": "Bearer s3cret"})
        assert ok.status_code == 200 and ok.json()["rankings"][0][0]["llm"] == "A"
        assert [m.id for m in client(base, api_key="s3cret").models.list().data] == ["recroute"]
        with pytest.raises(openai.AuthenticationError):
            client(base, api_key="wrong").models.list()


# -- bad input: a 4xx JSON error naming the problem ---------------------------------------------------------
BAD_ROUTE = {
    "malformed JSON": (b'{"prompt": ', 400, "not valid JSON"),
    "not UTF-8": (b'{"prompt": "\xff"}', 400, "not UTF-8"),
    "not an object": ([MATH], 400, "must be a JSON object, got a JSON list"),
    "no prompt": ({"k": 1}, 400, 'exactly one of "prompt"'),
    "prompt and prompts": ({"prompt": MATH, "prompts": [MATH]}, 400, 'exactly one of "prompt"'),
    "prompt not a string": ({"prompt": 7}, 400, "prompt must hold non-empty strings, got 7"),
    "empty prompt": ({"prompt": " "}, 400, "prompt must hold non-empty strings"),
    "prompts not a list": ({"prompts": MATH}, 400, "prompts must be a non-empty list"),
    "too many prompts": ({"prompts": ["hi"] * 257}, 413, "at most 256"),
    "unknown field": ({"prompt": MATH, "top_k": 2}, 400, "unknown field 'top_k'"),
    "k zero": ({"prompt": MATH, "k": 0}, 400, "k must be a positive integer, got 0"),
    "k a string": ({"prompt": MATH, "k": "2"}, 400, 'k must be a positive integer, got "2"'),
    "k true": ({"prompt": MATH, "k": True}, 400, "k must be a positive integer, got true"),
    "unknown LLM in pool": ({"prompt": MATH, "pool": ["A", "Z"]}, 400, "unknown LLM 'Z'"),
    "pool not a list": ({"prompt": MATH, "pool": "A"}, 400, "pool must be a non-empty list"),
    "negative cost weight": ({"prompt": MATH, "cost_weight": -1}, 400, "cost_weight must be a non-negative number"),
    "budget a string": ({"prompt": MATH, "budget": "cheap"}, 400, "budget must be a non-negative number"),
}
BAD_CHAT = {
    "unknown model": ({"model": "gpt-4", "messages": [{"role": "user", "content": MATH}]}, 404, "'recroute'"),
    "bad cost weight": ({"model": "recroute:cost=lots", "messages": [{"role": "user", "content": MATH}]}, 400,
                        "cost weight"),
    "no messages": ({"model": "recroute"}, 400, "messages must be a non-empty list"),
    "no user message": ({"model": "recroute", "messages": [{"role": "system", "content": "hi"}]}, 400,
                        "no message has role 'user'"),
    "stream not a bool": ({"model": "recroute", "stream": "yes", "messages": [{"role": "user", "content": MATH}]},
                          400, "stream must be true or false"),
    "pool without upstream": ({"model": "recroute", "pool": ["Z"], "messages": [{"role": "user", "content": MATH}]},
                              400, "no upstream serves LLM 'Z'"),
}
BAD_FEEDBACK = {
    "unknown id": ({"id": "chatcmpl-none", "score": 1}, 404, "unknown completion id"),
    "score not a number": ({"id": "chatcmpl-none", "score": "good"}, 400, "score must be a finite number"),
    "no id": ({"score": 1}, 400, "id must be a completion's id"),
}


def _assert_error(response: httpx.Response, status: int, fragment: str) -> None:
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert fragment in error["message"] and "Traceback" not in response.text
    assert error["code"] == status


@pytest.mark.parametrize("path,case", [("/v1/route", c) for c in BAD_ROUTE] + [("/v1/chat/completions", c) for c in BAD_CHAT]
                         + [("/v1/feedback", c) for c in BAD_FEEDBACK])
def test_bad_requests_get_a_4xx_json_error(server, path, case):
    base, _ = server
    body, status, fragment = {**BAD_ROUTE, **BAD_CHAT, **BAD_FEEDBACK}[case]
    if isinstance(body, bytes):
        response = httpx.post(f"{base}{path}", content=body, timeout=30)
    else:
        response = post(base, path, body)
    _assert_error(response, status, fragment)


def test_oversize_bodies_wrong_methods_and_paths(server):
    base, _ = server
    big = {"prompt": "x" * (MAX_BODY_BYTES + 1)}
    _assert_error(post(base, "/v1/route", big), 413, "over the limit")
    chunked = httpx.post(f"{base}/v1/route", content=iter([json.dumps(big).encode()]), timeout=30)  # no Content-Length
    _assert_error(chunked, 413, "over the limit")
    _assert_error(httpx.get(f"{base}/v1/route", timeout=30), 405, "Method Not Allowed")
    _assert_error(httpx.get(f"{base}/v2/nothing", timeout=30), 404, "Not Found")


def test_cost_routing_without_costs_and_chat_without_upstreams(routers):
    with serving(create_app(routers / "plain")) as base:
        _assert_error(post(base, "/v1/route", {"prompt": MATH, "cost_weight": 1}), 400, "fitted without costs")
        _assert_error(post(base, "/v1/chat/completions", {"model": "recroute", "messages": []}), 404, "--upstreams")
        _assert_error(post(base, "/v1/feedback", {"id": "x", "score": 1}), 404, "--log")


# -- the command ----------------------------------------------------------------------------------------
@pytest.mark.parametrize("case", ["unknown LLM", "no base_url", "bad base_url", "unset key", "not JSON", "missing file",
                                  "api key env unset", "log folder missing", "negative fallbacks", "missing router"])
def test_serve_refuses_bad_settings_in_one_line(routers, tmp_path, case):
    good = {"A": {"base_url": "http://127.0.0.1:9/v1", "model": "a"}}
    specs = {"unknown LLM": {**good, "Z": {"base_url": "http://127.0.0.1:9/v1", "model": "z"}},
             "no base_url": {"A": {"model": "a"}}, "bad base_url": {"A": {"base_url": "localhost:9", "model": "a"}},
             "unset key": {"A": {"base_url": "http://127.0.0.1:9/v1", "model": "a", "api_key_env": "NO_SUCH_KEY"}}}
    path = tmp_path / "up.json"
    path.write_text("{nope" if case == "not JSON" else json.dumps({"llms": specs.get(case, good)}))
    args, fragments = {
        "unknown LLM": ([], ["LLM 'Z' is not one of the router's LLMs (A, B, C)"]),
        "no base_url": ([], ["'base_url' must be a non-empty string"]),
        "bad base_url": ([], ["base_url must start with http://"]),
        "unset key": ([], ["NO_SUCH_KEY", "is not set"]),
        "not JSON": ([], ["up.json", "not valid JSON"]),
        "missing file": (["--upstreams", tmp_path / "none.json"], ["none.json", "not found"]),
        "api key env unset": (["--api-key-env", "NO_SUCH_KEY"], ["--api-key-env NO_SUCH_KEY"]),
        "log folder missing": (["--log", tmp_path / "no" / "log.jsonl"], ["cannot open the feedback log"]),
        "negative fallbacks": (["--fallbacks", "-1"], ["--fallbacks must be a non-negative integer"]),
        "missing router": ([], ["no such router folder"]),
    }[case]
    folder = tmp_path / "nowhere" if case == "missing router" else routers / "plain"
    assert_cli_error(cli("serve", folder, "--upstreams", path, "--port", "0", *args), *fragments)


def test_recroute_serve_runs_as_a_command(routers, tmp_path):
    """The real entry point in its own process: it listens on loopback and routes; curl's view of it."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    root = Path(__file__).resolve().parents[1]
    process = subprocess.Popen([sys.executable, "-c", "from recroute.cli import main; main()", "serve",
                                str(routers / "plain"), "--port", str(port)], cwd=root, stderr=subprocess.PIPE,
                               text=True, env={**os.environ, "PYTHONPATH": str(root)})
    try:
        deadline = time.monotonic() + STARTUP_S
        while True:
            assert process.poll() is None, process.stderr.read()
            assert time.monotonic() < deadline, "recroute serve did not answer"
            with contextlib.suppress(httpx.TransportError):
                if httpx.get(f"http://127.0.0.1:{port}/health", timeout=5).status_code == 200:
                    break
            time.sleep(0.2)
        response = post(f"http://127.0.0.1:{port}", "/v1/route", {"prompt": CODE, "k": 1})
        assert response.status_code == 200 and [e["llm"] for e in response.json()["rankings"][0]] == ["B"]
    finally:
        process.terminate()
        process.wait(timeout=30)
    assert f"serving {routers / 'plain'} on http://127.0.0.1:{port}" in process.stderr.read()
