"""A saved router at work: prompt texts in, a ranked list of LLMs out.

    router = recroute.load_router("routers/als")
    router.rank(["Prove that sqrt(2) is irrational."], pool=["gpt-4-1106-preview", "claude-v2"], k=2)
    router.rank(["What is 2 + 2?"], cost_weight=100)   # pay $0.01 only for 1 point of quality
"""
from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Sequence

import numpy as np

from .cost import CostModel
from .data import RoutingData, check_unicode
from .embed import Encoder, prompt_embeddings
from .errors import RecrouteError
from .routers import Queries, Router
from .store import folder_version, load_cost_model, save_router
from .store import load_router as _load


class ServedRouter:
    """A fitted router with the text encoder it was fitted with."""

    def __init__(self, router: Router, encoder: Encoder, manifest: dict | None = None,
                 cost_model: CostModel | None = None, source: str = "this router", read_version: tuple | None = None):
        self.router = router
        self.read_version = read_version  # of the folder it was read from, so saving back cannot lose a write
        self.source = source
        self.encoder = encoder
        self.manifest = manifest or {}
        self.cost_model = cost_model

    @property
    def models(self) -> list[str]:
        return [str(m) for m in self.router.models_]

    def rank(self, texts: Sequence[str], pool: Sequence[str] | None = None, k: int | None = 3,
             cost_weight: float | None = None, budget: float | None = None,
             embeddings: np.ndarray | None = None) -> list[list[dict]]:
        """For each prompt, the top-``k`` LLMs of ``pool`` (default: all) as ``{"llm", "score"}``, best first.

        With ``cost_weight`` λ the LLMs are ranked by P(good answer) − λ·predicted dollars (the
        router's :meth:`~recroute.Router.probability`, which becomes each entry's ``"score"``);
        with ``budget`` (dollars per query) only LLMs predicted to fit it are listed (the cheapest
        alone if none does). Both need a router fitted on data with costs or prices, and add
        ``"cost"`` to each entry. ``embeddings`` of ``texts``, when the caller already has them
        (the HTTP server encodes a micro-batch once and keeps a cache), skip the encoder.
        """
        if (cost_weight is not None or budget is not None) and self.cost_model is None:
            raise RecrouteError(f"{self.source}: was fitted without costs or prices, so it cannot route by cost; "
                                "fit it on data that has them (routerbench, llmrouter).")
        texts = list(texts)
        check_unicode(texts, "prompt")
        names = self.models if pool is None else list(pool)
        if pool is not None:
            self.router.columns(names)  # unknown names fail before any encoding, with the router's message
        queries = Queries(embeddings=self.encoder.encode(texts) if embeddings is None else embeddings,
                          texts=np.asarray(texts, dtype=object))
        fitted_dim = self.manifest.get("embedding_dim")
        if fitted_dim is not None and queries.embeddings.shape[1] != fitted_dim:
            raise RecrouteError(
                f"{self.source}: was fitted on {fitted_dim}-dimensional prompt embeddings, but "
                f"{self.encoder.model} gives {queries.embeddings.shape[1]}; fit it on prompt texts "
                f"(recroute encodes them) or on embeddings of {self.encoder.model}."
            )
        if cost_weight is None and budget is None:
            positions, scores = self.router.rank(queries, pool, k)
            return [[{"llm": names[j], "score": float(s)} for j, s in zip(row, row_scores)]
                    for row, row_scores in zip(positions, scores)]
        scores = self.router.probability(queries, names)
        costs = self.cost_model.predict(texts, names)
        utility = scores - (cost_weight or 0.0) * costs
        if budget is not None:
            utility = np.where(costs <= budget, utility, -np.inf)
            alone = ~np.isfinite(utility).any(axis=1)  # nothing fits: the cheapest LLM alone
            utility[alone, np.argmin(costs[alone], axis=1)] = 0.0
        order = np.argsort(-utility, axis=1, kind="stable")[:, :k]
        return [[{"llm": names[j], "score": float(scores[i, j]), "cost": float(costs[i, j])}
                 for j in row if np.isfinite(utility[i, j])] for i, row in enumerate(order)]


    def queries(self, data: RoutingData) -> Queries:
        """``data``'s prompts as this router reads them: by id, and by embedding when some are new to it.

        Prompts the router was trained on (ALS, BPR keep them) need no text;
        the rest are encoded from their texts (or the data's own embeddings
        of this router's encoder).
        """
        warm = set(getattr(self.router, "warm_ids_", np.array([])).tolist())
        if self.router.knows_prompts_by_id and all(pid in warm for pid in data.prompt_ids.tolist()):
            return Queries(ids=data.prompt_ids)
        if data.prompts is None and data.embeddings is None:
            by_id = " (or ones an als or bpr router was trained on, known by id)" if warm else ""
            raise RecrouteError(f"{data.source}: has no prompt texts, and {self.source} (a "
                                f"{type(self.router).__name__}) needs them to place its prompts{by_id}.")
        return Queries(embeddings=prompt_embeddings(data, self.encoder), ids=data.prompt_ids, texts=data.prompts)

    # -- changing the pool ------------------------------------------------------
    def add_llm(self, name: str, texts: Sequence[str], outcomes, cost_model: CostModel | None = None,
                embeddings: np.ndarray | None = None) -> "ServedRouter":
        """Fold a new LLM in from its ``outcomes`` on ``texts`` (or their precomputed ``embeddings``).

        Only latent-factor routers can (an LLM is an item with a vector); a router saved with a
        cost model needs ``cost_model``, a :class:`~recroute.cost.CostModel` fitted on the new LLM.
        """
        self._require_latent("has no LLM vectors to add to; only latent-factor routers (als, bpr, lightfm, "
                             "bilinear) take new LLMs without refitting")
        if self.cost_model is not None:
            if cost_model is None:
                raise RecrouteError(f"{self.source}: routes by cost, so adding {name!r} needs its costs or prices.")
            if list(cost_model.models_) != [name] or name in set(self.cost_model.models_.tolist()):
                raise RecrouteError(f"{self.source}: the cost model given for {name!r} must price {name!r} alone "
                                    f"(it prices {', '.join(map(str, cost_model.models_))}).")
        if embeddings is None:
            embeddings = self.encoder.encode(list(texts))
        with self.named():
            self.router.add_llm(name, embeddings, outcomes)  # all or nothing
        if self.cost_model is not None:
            self.cost_model.add_llm(cost_model)  # checked above: cannot fail
        return self

    def remove_llm(self, name: str) -> "ServedRouter":
        """Retire an LLM from the router (and its cost model)."""
        self._require_latent("cannot drop an LLM without refitting; only latent-factor routers (als, bpr, "
                             "lightfm, bilinear) can")
        with self.named():
            self.router.remove_llm(name)
            if self.cost_model is not None:
                self.cost_model.remove_llm(name)
        return self

    def _require_latent(self, why: str) -> None:
        """Only a latent-factor router has per-LLM vectors to add or remove: a classifier must be refitted."""
        from .routers.latent import LatentFactorRouter

        if not isinstance(self.router, LatentFactorRouter):
            raise RecrouteError(f"{self.source}: {type(self.router).__name__} {why}.")

    @contextlib.contextmanager
    def named(self):
        """Errors from the router name the folder it came from."""
        try:
            yield
        except RecrouteError as exc:
            raise RecrouteError(f"{self.source}: {exc}") from None

    def save(self, folder: str | Path) -> Path:
        """Write the router back as a folder (atomically: a failure leaves the old folder intact)."""
        return save_router(self.router, folder, embedding_model=self.manifest.get("embedding_model", self.encoder.model),
                           data_source=self.manifest.get("data", ""), embedding_dim=self.manifest.get("embedding_dim"),
                           cost_model=self.cost_model,
                           read_version=self.read_version if str(folder) == self.source else None)


def load_router(folder: str | Path, cache_dir: str | Path | None = None) -> ServedRouter:
    """Load a router folder written by ``recroute fit`` (or :func:`recroute.store.save_router`)."""
    read_version = folder_version(folder)  # before reading: a write in between makes saving back refuse, never lose it
    router, manifest = _load(folder)
    return ServedRouter(router, Encoder(model=manifest["embedding_model"], cache_dir=cache_dir), manifest,
                        load_cost_model(folder), source=str(folder), read_version=read_version)
