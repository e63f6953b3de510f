"""`recroute serve`: a saved router over HTTP, and an OpenAI-compatible proxy in front of the LLMs it routes among.

    GET  /health                 200 and the router's LLM count
    GET  /v1/models              the one routing model, "recroute", as an OpenAI model list
    POST /v1/route               {"prompt"} or {"prompts"}, pool, k, cost_weight, budget -> {"rankings"}
    POST /v1/chat/completions    OpenAI's chat API; model "recroute" (or "recroute:cost=λ") routes the last
                                 user message, forwards to the chosen LLM, falls back down the ranking
    POST /v1/feedback            {"id", "score"} -> one line of `recroute fit`'s long JSONL in --log

A thin adapter over :class:`recroute.serve.ServedRouter`: every ranking is its ``rank``. What lives here
is HTTP: checking requests, micro-batching concurrent ones through the encoder, forwarding with
fallback, the feedback log and hot reload when ``recroute add-llm``/``remove-llm`` rewrite the folder.
"""
from __future__ import annotations

import asyncio
import contextlib
import hmac
import json
import math
import os
import socket
import sys
from collections import OrderedDict, defaultdict
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import httpx
import numpy as np
import torch
import uvicorn
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from .embed import Encoder
from .errors import RecrouteError
from .serve import ServedRouter, load_router
from .store import MANIFEST

ROUTING_MODEL = "recroute"
MAX_BODY_BYTES = 4 * 2**20  # a long chat fits; a runaway upload does not
MAX_PROMPTS = 256  # per /v1/route request: one request must not hold the encoder for seconds
ROUTE_FIELDS = ("prompt", "prompts", "pool", "k", "cost_weight", "budget")
UPSTREAM_FIELDS = ("base_url", "model", "api_key_env")
PROPENSITY = 1.0  # routing is deterministic: the LLM that answered was the only one that could have


class ApiError(Exception):
    """A request the server refuses, as OpenAI's error shape: one sentence naming the problem."""

    def __init__(self, status: int, message: str, param: str | None = None, kind: str = "invalid_request_error"):
        super().__init__(message)
        self.status, self.message, self.param, self.kind = status, message, param, kind

    def response(self) -> JSONResponse:
        return JSONResponse({"error": {"message": self.message, "type": self.kind, "param": self.param,
                                       "code": self.status}}, status_code=self.status)


# -- configuration, checked at start ------------------------------------------------------------------
@dataclass(frozen=True)
class Upstream:
    """Where one LLM of the router is served: an OpenAI-compatible ``base_url`` and its own model name there."""

    name: str
    base_url: str
    model: str
    api_key: str | None = None


def load_upstreams(path: str | Path, llms: list[str]) -> dict[str, Upstream]:
    """Read ``{"llms": {NAME: {"base_url", "model", "api_key_env"?}}}``; every NAME must be one of ``llms``."""
    path = Path(path)
    try:
        spec = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise RecrouteError(f"{path}: upstreams file not found.") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise RecrouteError(f"{path}: cannot read the upstreams file ({exc}).") from None
    except json.JSONDecodeError as exc:
        raise RecrouteError(f"{path}: is not valid JSON ({exc.msg}, line {exc.lineno}).") from None
    if not isinstance(spec, dict) or not isinstance(spec.get("llms"), dict) or not spec["llms"]:
        raise RecrouteError(f'{path}: expected {{"llms": {{"NAME": {{"base_url": ..., "model": ...}}}}}} '
                            "with at least one LLM.")
    upstreams = {}
    for name, entry in spec["llms"].items():
        where = f"{path}: LLM {name!r}"
        if name not in llms:
            raise RecrouteError(f"{where} is not one of the router's LLMs ({', '.join(llms)}).")
        if not isinstance(entry, dict):
            raise RecrouteError(f"{where}: expected an object with base_url and model.")
        unknown = sorted(set(entry) - set(UPSTREAM_FIELDS))
        if unknown:
            raise RecrouteError(f"{where}: unknown field {unknown[0]!r} (fields: {', '.join(UPSTREAM_FIELDS)}).")
        for field in UPSTREAM_FIELDS:
            if (field in entry or field != "api_key_env") and not (isinstance(entry.get(field), str) and entry[field]):
                raise RecrouteError(f"{where}: {field!r} must be a non-empty string.")
        if not entry["base_url"].startswith(("http://", "https://")):
            raise RecrouteError(f"{where}: base_url must start with http:// or https://, got {entry['base_url']!r}.")
        key = None
        if "api_key_env" in entry:
            key = os.environ.get(entry["api_key_env"])
            if not key:
                raise RecrouteError(f"{where}: the environment variable {entry['api_key_env']} holding its API key "
                                    "is not set.")
        upstreams[name] = Upstream(name, entry["base_url"].rstrip("/"), entry["model"], key)
    return upstreams


# -- the router, swapped when its folder is rewritten -------------------------------------------------
class LiveRouter:
    """The folder's current :class:`ServedRouter`; :meth:`reload_if_changed` swaps in a rewritten folder.

    ``recroute add-llm``/``remove-llm`` save a router by renaming a new folder into place, so the
    manifest's inode and mtime mark a new version. Requests in flight keep the router they started
    with; a folder that fails to load leaves the old router serving.
    """

    def __init__(self, folder: str | Path):
        self.folder = Path(folder)
        self.version = self._version()
        self.served = self._load(encoder=None)

    def _version(self):
        try:
            stat = (self.folder / MANIFEST).stat()
        except OSError:
            return None  # between the two renames of a save, or gone: look again later
        return stat.st_ino, stat.st_mtime_ns, stat.st_size

    def _load(self, encoder: Encoder | None) -> ServedRouter:
        served = load_router(self.folder)
        model = served.encoder.model
        # The server keeps its own bounded cache; the disk cache would grow with every prompt ever seen.
        served.encoder = encoder if encoder is not None and encoder.model == model else Encoder(model, cache=False)
        return served

    def changed(self) -> bool:
        version = self._version()
        return version is not None and version != self.version

    def reload_if_changed(self) -> bool:
        """Load the folder again if it was rewritten; True when a new router now serves."""
        version = self._version()
        if version is None or version == self.version:
            return False
        self.version = version  # a folder that fails to load is not retried until it changes again
        try:
            self.served = self._load(encoder=self.served.encoder)
        except RecrouteError as exc:
            print(f"recroute: warning: kept the previous router: {exc}", file=sys.stderr, flush=True)
            return False
        return True


# -- micro-batching --------------------------------------------------------------------------------
@dataclass
class _Job:
    texts: list[str]
    options: tuple  # (pool or None, k, cost_weight, budget): requests that share them are ranked in one call
    future: asyncio.Future


class RankBatcher:
    """Ranks the prompts of concurrent requests together: one encoder pass per batch.

    A request that finds the worker idle waits ``max_wait`` seconds for company (unless its prompts
    are all cached: only the encoder gains from company); while a batch is being ranked the next one
    gathers by itself. Prompt embeddings are kept in a bounded LRU cache,
    so repeated prompts skip the encoder. Ranking runs on one worker thread (the encoder is not
    thread-safe, and the event loop must keep taking requests meanwhile).
    """

    def __init__(self, live: LiveRouter, max_wait: float = 0.002, max_batch: int = 64, cache_size: int = 20_000):
        self.live, self.max_wait, self.max_batch, self.cache_size = live, max_wait, max_batch, cache_size
        self._cache: OrderedDict[tuple[str, str], np.ndarray] = OrderedDict()
        self._queue: asyncio.Queue | None = None
        self._executor = ThreadPoolExecutor(1, thread_name_prefix="recroute-rank")

    async def rank(self, texts: list[str], pool: tuple | None, k: int, cost_weight: float | None = None,
                   budget: float | None = None) -> list[list[dict]]:
        future = asyncio.get_running_loop().create_future()
        self._queue.put_nowait(_Job(texts, (pool, k, cost_weight, budget), future))
        return await future

    async def warm_up(self) -> None:
        """Load the encoder's weights now, not on the first request."""
        await asyncio.get_running_loop().run_in_executor(self._executor, self.live.served.encoder.encode, ["warm up"])

    def start(self) -> asyncio.Task:
        self._queue = asyncio.Queue()
        return asyncio.create_task(self._work())

    async def _work(self) -> None:
        """The worker: gather a batch, rank it on the worker thread, hand each request its rankings."""
        loop = asyncio.get_running_loop()
        while True:
            jobs = [await self._queue.get()]
            if self._queue.empty() and not self._all_cached(jobs[0].texts):
                await asyncio.sleep(self.max_wait)
            size = len(jobs[0].texts)
            while size < self.max_batch and not self._queue.empty():
                jobs.append(self._queue.get_nowait())
                size += len(jobs[-1].texts)
            try:
                outcomes = await loop.run_in_executor(self._executor, self._rank_batch, jobs, self.live.served)
            except Exception as exc:  # a bug must fail this batch's requests, not stop the worker
                outcomes = [exc] * len(jobs)
            for job, outcome in zip(jobs, outcomes):
                if job.future.done():  # the client went away
                    continue
                if isinstance(outcome, Exception):
                    job.future.set_exception(outcome)
                else:
                    job.future.set_result(outcome)

    def close(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)

    def _rank_batch(self, jobs: list[_Job], served: ServedRouter) -> list:
        """Each job's rankings, or the RecrouteError its options met (a bad pool fails only its own group)."""
        try:
            vectors = self._embeddings(served.encoder, [t for job in jobs for t in job.texts])
        except RecrouteError as exc:
            return [exc] * len(jobs)
        groups = defaultdict(list)
        for i, job in enumerate(jobs):
            groups[job.options].append(i)
        outcomes: list = [None] * len(jobs)
        for (pool, k, cost_weight, budget), members in groups.items():
            texts = [t for i in members for t in jobs[i].texts]
            try:
                rankings = served.rank(texts, pool=pool, k=k, cost_weight=cost_weight, budget=budget,
                                       embeddings=np.stack([vectors[t] for t in texts]))
            except RecrouteError as exc:
                for i in members:
                    outcomes[i] = exc
                continue
            start = 0
            for i in members:
                outcomes[i] = rankings[start:start + len(jobs[i].texts)]
                start += len(jobs[i].texts)
        return outcomes

    def _all_cached(self, texts: list[str]) -> bool:
        """Read between batches only, while the worker thread is idle."""
        model = self.live.served.encoder.model
        return all((model, text) in self._cache for text in texts)

    def _embeddings(self, encoder: Encoder, texts: list[str]) -> dict[str, np.ndarray]:
        """Vectors of ``texts``: from the LRU cache, the rest encoded in one pass and cached."""
        found, missing = {}, []
        for text in dict.fromkeys(texts):
            vector = self._cache.get((encoder.model, text))
            if vector is None:
                missing.append(text)
            else:
                self._cache.move_to_end((encoder.model, text))
                found[text] = vector
        if missing:
            for text, vector in zip(missing, encoder.encode(missing)):
                found[text] = vector
                self._cache[(encoder.model, text)] = vector
            while len(self._cache) > self.cache_size:
                self._cache.popitem(last=False)
        return found


# -- feedback --------------------------------------------------------------------------------------
class FeedbackLog:
    """Completions awaiting a score, and the JSONL file their scores go to.

    Each line is one row of the long format ``recroute fit`` reads: ``prompt_id`` (the completion's
    id), ``model`` (the LLM that answered), ``score``, ``prompt`` and ``propensity``, the probability
    that the router picked that LLM: 1.0, as routing is deterministic (a fallback LLM is chosen
    deterministically too, once the ones above it failed). ``recroute fit`` ignores the propensity
    column; it is there for off-policy estimates once the router explores.
    """

    def __init__(self, path: str | Path | None, remember: int = 100_000):
        self.path = None if path is None else Path(path)
        self.remember = remember
        self._pending: OrderedDict[str, tuple[str, str]] = OrderedDict()  # id -> (prompt, llm)
        self._scored: OrderedDict[str, None] = OrderedDict()
        self._file = None
        if self.path is not None:
            try:
                self._file = open(self.path, "a", encoding="utf-8")
            except OSError as exc:
                raise RecrouteError(f"{self.path}: cannot open the feedback log ({exc.strerror or exc}).") from None

    def answered(self, completion_id: str, prompt: str, llm: str) -> None:
        """Remember who answered, for a score that may come later (the oldest are forgotten)."""
        self._pending[completion_id] = (prompt, llm)
        while len(self._pending) > self.remember:
            self._pending.popitem(last=False)

    def score(self, completion_id: str, score: float) -> dict:
        """Append the scored completion to the log as one line; runs on the event loop, so lines never interleave."""
        if self._file is None:
            raise ApiError(404, "this server keeps no feedback log; start it with --log FILE.jsonl.",
                           kind="not_found_error")
        if completion_id in self._scored:
            raise ApiError(409, f"completion {completion_id!r} already has its feedback.", param="id")
        if completion_id not in self._pending:
            raise ApiError(404, f"unknown completion id {completion_id!r} (not answered by this server, or older "
                                f"than its last {self.remember} completions).", param="id", kind="not_found_error")
        prompt, llm = self._pending.pop(completion_id)
        row = {"prompt_id": completion_id, "model": llm, "score": score, "prompt": prompt, "propensity": PROPENSITY}
        self._file.write(json.dumps(row, ensure_ascii=False) + "\n")
        self._file.flush()
        self._scored[completion_id] = None
        while len(self._scored) > self.remember:
            self._scored.popitem(last=False)
        return row

    def close(self) -> None:
        if self._file is not None:
            self._file.close()


# -- request checks --------------------------------------------------------------------------------
async def _json_body(request: Request) -> dict:
    """The body as a JSON object; too large, not JSON or not an object is a 4xx naming the problem."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > MAX_BODY_BYTES:
        raise ApiError(413, f"the request body ({declared} bytes) is over the limit of {MAX_BODY_BYTES} bytes.")
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > MAX_BODY_BYTES:
            raise ApiError(413, f"the request body is over the limit of {MAX_BODY_BYTES} bytes.")
        chunks.append(chunk)
    try:
        body = json.loads(b"".join(chunks))
    except UnicodeDecodeError:
        raise ApiError(400, "the request body is not UTF-8 text.") from None
    except json.JSONDecodeError as exc:
        raise ApiError(400, f"the request body is not valid JSON ({exc.msg} at character {exc.pos}).") from None
    if not isinstance(body, dict):
        raise ApiError(400, f"the request body must be a JSON object, got a JSON {type(body).__name__}.")
    return body


def _non_negative(body: dict, field: str) -> float | None:
    value = body.get(field)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value < 0:
        raise ApiError(400, f"{field} must be a non-negative number, got {json.dumps(value)}.", param=field)
    return float(value)


def _pool(body: dict) -> tuple | None:
    pool = body.get("pool")
    if pool is None:
        return None
    if not isinstance(pool, list) or not pool or not all(isinstance(name, str) for name in pool):
        raise ApiError(400, f"pool must be a non-empty list of LLM names, got {json.dumps(pool)[:80]}.", param="pool")
    return tuple(pool)


def _route_request(body: dict) -> tuple[list[str], tuple | None, int, float | None, float | None]:
    unknown = sorted(set(body) - set(ROUTE_FIELDS))
    if unknown:
        raise ApiError(400, f"unknown field {unknown[0]!r}; /v1/route takes {', '.join(ROUTE_FIELDS)}.",
                       param=unknown[0])
    if ("prompt" in body) == ("prompts" in body):
        raise ApiError(400, 'give exactly one of "prompt" (a string) or "prompts" (a list of strings).')
    if "prompt" in body:
        texts, field = [body["prompt"]], "prompt"
    else:
        texts, field = body["prompts"], "prompts"
        if not isinstance(texts, list) or not texts:
            raise ApiError(400, f"prompts must be a non-empty list of strings, got {json.dumps(texts)[:80]}.",
                           param="prompts")
        if len(texts) > MAX_PROMPTS:
            raise ApiError(413, f"prompts holds {len(texts)} prompts; send at most {MAX_PROMPTS} a request.",
                           param="prompts")
    bad = next((t for t in texts if not isinstance(t, str) or not t.strip()), None)
    if bad is not None:
        raise ApiError(400, f"{field} must hold non-empty strings, got {json.dumps(bad)[:80]}.", param=field)
    k = body.get("k", 3)
    if isinstance(k, bool) or not isinstance(k, int) or k < 1:
        raise ApiError(400, f"k must be a positive integer, got {json.dumps(k)}.", param="k")
    return texts, _pool(body), k, _non_negative(body, "cost_weight"), _non_negative(body, "budget")


def _cost_weight(model) -> float | None:
    """``"recroute"`` routes by quality; ``"recroute:cost=λ"`` by quality − λ·dollars."""
    if model == ROUTING_MODEL:
        return None
    prefix = f"{ROUTING_MODEL}:cost="
    if isinstance(model, str) and model.startswith(prefix):
        try:
            weight = float(model[len(prefix):])
        except ValueError:
            weight = -1.0
        if math.isfinite(weight) and weight >= 0:
            return weight
        raise ApiError(400, f"model {model!r}: the cost weight after 'cost=' must be a non-negative number.",
                       param="model")
    raise ApiError(404, f"model {json.dumps(model)[:80]}: this server answers model {ROUTING_MODEL!r} "
                        f"(or '{ROUTING_MODEL}:cost=λ' to weigh dollars).", param="model", kind="not_found_error")


def _last_user_text(messages) -> str:
    """What recroute routes on: the text of the last user message."""
    if not isinstance(messages, list) or not messages:
        raise ApiError(400, "messages must be a non-empty list of chat messages.", param="messages")
    for message in reversed(messages):
        if not isinstance(message, dict) or message.get("role") != "user":
            continue
        content = message.get("content")
        if isinstance(content, list):
            content = "\n".join(part["text"] for part in content if isinstance(part, dict)
                                and part.get("type") == "text" and isinstance(part.get("text"), str))
        if not isinstance(content, str) or not content.strip():
            raise ApiError(400, "messages: the last user message has no text to route on.", param="messages")
        return content
    raise ApiError(400, "messages: no message has role 'user'; recroute routes on the last user message.",
                   param="messages")


def _stream_id(head: bytes) -> str | None:
    """The completion id in the first complete ``data:`` event of a server-sent stream, if it has arrived."""
    events = head.replace(b"\r\n", b"\n").split(b"\n\n")
    for event in events[:-1]:  # the last piece may be incomplete
        for line in event.split(b"\n"):
            if line.startswith(b"data:") and line[5:].strip() != b"[DONE]":
                with contextlib.suppress(ValueError):
                    chunk = json.loads(line[5:])
                    if isinstance(chunk, dict) and isinstance(chunk.get("id"), str):
                        return chunk["id"]
    return None


# -- the application -------------------------------------------------------------------------------
class _BearerAuth:
    """401 for any request without ``Authorization: Bearer <key>``."""

    def __init__(self, app, key: str):
        self.app, self.expected = app, f"Bearer {key}".encode()

    async def __call__(self, scope, receive, send):
        if scope["type"] == "http":
            given = dict(scope["headers"]).get(b"authorization", b"")
            if not hmac.compare_digest(given, self.expected):
                response = ApiError(401, "missing or wrong API key: send the header 'Authorization: Bearer <key>'.",
                                    kind="authentication_error").response()
                await response(scope, receive, send)
                return
        await self.app(scope, receive, send)


class _Service:
    """The endpoints and the state they share."""

    def __init__(self, live: LiveRouter, upstreams: dict[str, Upstream], feedback: FeedbackLog, fallbacks: int,
                 upstream_timeout: float, reload_interval: float, max_wait: float):
        self.live, self.upstreams, self.feedback, self.fallbacks = live, upstreams, feedback, fallbacks
        self.upstream_timeout, self.reload_interval = upstream_timeout, reload_interval
        self.batcher = RankBatcher(live, max_wait=max_wait)
        self.client: httpx.AsyncClient | None = None

    @contextlib.asynccontextmanager
    async def lifespan(self, app):
        await self.batcher.warm_up()
        self.client = httpx.AsyncClient(timeout=httpx.Timeout(self.upstream_timeout,
                                                              connect=min(5.0, self.upstream_timeout)))
        tasks = [self.batcher.start(), asyncio.create_task(self._watch())]
        try:
            yield
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            await self.client.aclose()
            self.batcher.close()
            self.feedback.close()

    async def _watch(self) -> None:
        """Hot reload: look at the folder's manifest every ``reload_interval`` seconds."""
        while True:
            await asyncio.sleep(self.reload_interval)
            if self.live.changed():
                await asyncio.to_thread(self.live.reload_if_changed)

    async def health(self, request: Request) -> Response:
        return JSONResponse({"status": "ok", "llms": len(self.live.served.models)})

    async def models(self, request: Request) -> Response:
        return JSONResponse({"object": "list", "data": [
            {"id": ROUTING_MODEL, "object": "model", "created": 0, "owned_by": "recroute",
             "llms": self.live.served.models}]})

    async def route(self, request: Request) -> Response:
        texts, pool, k, cost_weight, budget = _route_request(await _json_body(request))
        return JSONResponse({"rankings": await self.batcher.rank(texts, pool, k, cost_weight, budget)})

    async def give_feedback(self, request: Request) -> Response:
        body = await _json_body(request)
        completion_id, score = body.get("id"), body.get("score")
        if not isinstance(completion_id, str) or not completion_id:
            raise ApiError(400, f"id must be a completion's id (a string), got {json.dumps(completion_id)[:80]}.",
                           param="id")
        if isinstance(score, bool) or not isinstance(score, (int, float)) or not math.isfinite(score):
            raise ApiError(400, f"score must be a finite number, got {json.dumps(score)[:80]}.", param="score")
        row = self.feedback.score(completion_id, float(score))
        return JSONResponse({"logged": {k: row[k] for k in ("prompt_id", "model", "score", "propensity")}})

    async def chat(self, request: Request) -> Response:
        if not self.upstreams:
            raise ApiError(404, "this server has no upstream LLMs; start it with --upstreams FILE.json.",
                           kind="not_found_error")
        body = await _json_body(request)
        cost_weight = _cost_weight(body.get("model"))
        prompt = _last_user_text(body.get("messages"))
        stream = body.get("stream", False)
        if not isinstance(stream, bool):
            raise ApiError(400, f"stream must be true or false, got {json.dumps(stream)[:80]}.", param="stream")
        pool = _pool(body)
        if pool is not None:
            missing = [name for name in pool if name not in self.upstreams]
            if missing:
                raise ApiError(400, f"pool: no upstream serves LLM {missing[0]!r} (upstreams: "
                                    f"{', '.join(self.upstreams)}).", param="pool")
        else:
            known = set(self.live.served.models)
            pool = tuple(name for name in self.upstreams if name in known)
            if not pool:
                raise ApiError(503, "the router no longer knows any upstream LLM.", kind="server_error")
        ranking = (await self.batcher.rank([prompt], pool, self.fallbacks + 1, cost_weight))[0]
        forwarded = {key: value for key, value in body.items() if key != "pool"}
        failures = []
        for entry in ranking:
            upstream = self.upstreams[entry["llm"]]
            response = await self._forward(upstream, forwarded, prompt, stream, failures)
            if response is not None:
                return response
        raise ApiError(502, "every upstream tried failed: " + "; ".join(failures) + ".", kind="upstream_error")

    async def _forward(self, upstream: Upstream, body: dict, prompt: str, stream: bool,
                       failures: list[str]) -> Response | None:
        """The upstream's answer, or None (and a line in ``failures``) when it is down, too slow or fails (5xx)."""
        headers = {"authorization": f"Bearer {upstream.api_key}"} if upstream.api_key else {}
        request = self.client.build_request("POST", f"{upstream.base_url}/chat/completions",
                                            json={**body, "model": upstream.model}, headers=headers)
        try:
            response = await self.client.send(request, stream=True)
        except httpx.TransportError as exc:
            failures.append(f"{upstream.name} ({type(exc).__name__}: {exc or 'no answer'})")
            return None
        if response.status_code >= 500:
            await response.aclose()
            failures.append(f"{upstream.name} (HTTP {response.status_code})")
            return None
        marked = {"x-recroute-llm": upstream.name}
        media_type = response.headers.get("content-type", "application/json")
        if stream and response.status_code == 200:
            return StreamingResponse(self._relay(response, prompt, upstream.name), media_type=media_type,
                                     headers=marked)
        try:
            content = await response.aread()
        except httpx.TransportError as exc:
            failures.append(f"{upstream.name} ({type(exc).__name__}: {exc or 'broken answer'})")
            return None
        finally:
            await response.aclose()
        if response.status_code == 200:
            with contextlib.suppress(ValueError):
                answer = json.loads(content)
                if isinstance(answer, dict) and isinstance(answer.get("id"), str):
                    self.feedback.answered(answer["id"], prompt, upstream.name)
        return Response(content, status_code=response.status_code, media_type=media_type, headers=marked)

    async def _relay(self, response: httpx.Response, prompt: str, llm: str):
        """Pass a stream through as it comes, noting its completion id for feedback on the way."""
        head, noted = b"", False
        try:
            async for chunk in response.aiter_raw():
                if not noted:
                    head += chunk
                    completion_id = _stream_id(head)
                    if completion_id is not None:
                        self.feedback.answered(completion_id, prompt, llm)
                    noted = completion_id is not None or len(head) > 65536
                yield chunk
        finally:
            await response.aclose()


async def _api_error(request: Request, exc: ApiError) -> Response:
    return exc.response()


async def _library_error(request: Request, exc: RecrouteError) -> Response:
    return ApiError(400, str(exc)).response()  # an unknown LLM in pool, cost routing without costs, ...


async def _http_error(request: Request, exc: HTTPException) -> Response:
    kind = "not_found_error" if exc.status_code == 404 else "invalid_request_error"
    return ApiError(exc.status_code, f"{request.method} {request.url.path}: {exc.detail}.", kind=kind).response()


async def _internal_error(request: Request, exc: Exception) -> Response:
    return ApiError(500, f"internal error ({type(exc).__name__}); see the server's log.", kind="server_error").response()


def create_app(folder: str | Path, *, upstreams: str | Path | None = None, log: str | Path | None = None,
               api_key: str | None = None, fallbacks: int = 2, upstream_timeout: float = 120.0,
               reload_interval: float = 1.0, max_wait: float = 0.002) -> Starlette:
    """The ASGI app serving the router folder ``folder`` (see the module's docstring for the endpoints).

    ``upstreams``: the JSON file naming where each LLM is served (see :func:`load_upstreams`);
    ``fallbacks``: how many LLMs further down the ranking the proxy tries when one is down;
    ``upstream_timeout``: seconds an upstream may take; ``reload_interval``: seconds between looks
    at the folder; ``max_wait``: seconds a lone request waits for others to share its encoder pass.
    """
    if isinstance(fallbacks, bool) or not isinstance(fallbacks, int) or fallbacks < 0:
        raise RecrouteError(f"--fallbacks must be a non-negative integer, got {fallbacks!r}.")
    for name, value in (("upstream timeout", upstream_timeout), ("reload interval", reload_interval)):
        if not (isinstance(value, (int, float)) and math.isfinite(value) and value > 0):
            raise RecrouteError(f"the {name} must be a positive number of seconds, got {value!r}.")
    if api_key is not None and not api_key:
        raise RecrouteError("the API key must not be empty.")
    live = LiveRouter(folder)
    service = _Service(live, load_upstreams(upstreams, live.served.models) if upstreams else {}, FeedbackLog(log),
                       fallbacks, float(upstream_timeout), float(reload_interval), max_wait)
    routes = [
        Route("/health", service.health),
        Route("/v1/models", service.models),
        Route("/v1/route", service.route, methods=["POST"]),
        Route("/v1/chat/completions", service.chat, methods=["POST"]),
        Route("/v1/feedback", service.give_feedback, methods=["POST"]),
    ]
    handlers = {ApiError: _api_error, RecrouteError: _library_error, HTTPException: _http_error,
                Exception: _internal_error}
    middleware = [Middleware(_BearerAuth, key=api_key)] if api_key else []
    return Starlette(routes=routes, exception_handlers=handlers, middleware=middleware, lifespan=service.lifespan)


def serve(folder: str | Path, *, host: str = "127.0.0.1", port: int = 8000, upstreams: str | None = None,
          log: str | None = None, api_key_env: str | None = None, fallbacks: int = 2,
          upstream_timeout: float = 120.0) -> None:
    """Check every setting, bind the port, then serve until interrupted; any problem is one RecrouteError."""
    if not 0 <= port <= 65535:
        raise RecrouteError(f"--port must be between 0 and 65535, got {port}.")
    # One core stays with the event loop: on a busy machine torch's spinning thread pool made each
    # encoder pass of a few prompts 30 times slower than one thread does.
    torch.set_num_threads(max(1, (os.cpu_count() or 2) - 1))
    api_key = None
    if api_key_env is not None:
        api_key = os.environ.get(api_key_env)
        if not api_key:
            raise RecrouteError(f"--api-key-env {api_key_env}: that environment variable is not set or empty.")
    app = create_app(folder, upstreams=upstreams, log=log, api_key=api_key, fallbacks=fallbacks,
                     upstream_timeout=upstream_timeout)
    try:
        sock = socket.create_server((host, port))
    except OSError as exc:
        raise RecrouteError(f"cannot listen on {host}:{port} ({exc.strerror or exc}).") from None
    bound = sock.getsockname()
    print(f"recroute: serving {folder} on http://{bound[0]}:{bound[1]}", file=sys.stderr, flush=True)
    uvicorn.Server(uvicorn.Config(app, log_level="warning", access_log=False)).run(sockets=[sock])
