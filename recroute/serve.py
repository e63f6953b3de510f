"""A saved router at work: prompt texts in, a ranked list of LLMs out.

    router = recroute.load_router("routers/als")
    router.rank(["Prove that sqrt(2) is irrational."], pool=["gpt-4-1106-preview", "claude-v2"], k=2)
"""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

from .embed import Encoder
from .errors import RecrouteError
from .routers import Queries, Router
from .store import load_router as _load


class ServedRouter:
    """A fitted router with the text encoder it was fitted with."""

    def __init__(self, router: Router, encoder: Encoder, manifest: dict | None = None):
        self.router = router
        self.encoder = encoder
        self.manifest = manifest or {}

    @property
    def models(self) -> list[str]:
        return [str(m) for m in self.router.models_]

    def rank(self, texts: Sequence[str], pool: Sequence[str] | None = None, k: int | None = 3) -> list[list[dict]]:
        """For each prompt, the top-``k`` LLMs of ``pool`` (default: all) as ``{"llm", "score"}``, best first."""
        queries = Queries(embeddings=self.encoder.encode(list(texts)))
        fitted_dim = self.manifest.get("embedding_dim")
        if fitted_dim is not None and queries.embeddings.shape[1] != fitted_dim:
            raise RecrouteError(
                f"this router was fitted on {fitted_dim}-dimensional prompt embeddings, but "
                f"{self.encoder.model} gives {queries.embeddings.shape[1]}; fit it on prompt texts "
                f"(recroute encodes them) or on embeddings of {self.encoder.model}."
            )
        names = self.models if pool is None else list(pool)
        positions, scores = self.router.rank(queries, pool, k)
        return [[{"llm": names[j], "score": float(s)} for j, s in zip(row, row_scores)]
                for row, row_scores in zip(positions, scores)]


def load_router(folder: str | Path, cache_dir: str | Path | None = None) -> ServedRouter:
    """Load a router folder written by ``recroute fit`` (or :func:`recroute.store.save_router`)."""
    router, manifest = _load(folder)
    return ServedRouter(router, Encoder(model=manifest["embedding_model"], cache_dir=cache_dir), manifest)
