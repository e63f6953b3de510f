"""Synthetic RouterEval-shaped data whose true structure is known.

Outcomes come from a multidimensional item-response model: LLM m has an
ability a_m and skill loadings s_m (k skills), prompt p a difficulty d_p and
skill needs z_p, and P(m answers p) = σ(a_m + s_m·z_p − d_p). The outcome is
one Bernoulli draw of it, so the true probability — and the truly best LLM
for every prompt — is known. Prompts are grouped by their dominant skill,
and their embedding is a fixed random projection of their needs plus noise,
so a router can learn the structure from text-like features.

Generated in row blocks straight into the float32 matrix: no per-cell
Python object at any size (25,000 × 8,500 is 850 MB of scores).
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from scipy.special import expit

from .data import RoutingData
from .errors import RecrouteError

BLOCK_ROWS = 1024


@dataclass(frozen=True)
class SyntheticTruth:
    """The hidden parameters behind a synthetic outcome matrix."""

    ability: np.ndarray     # (n_llms,)
    skills: np.ndarray      # (n_llms, k)
    needs: np.ndarray       # (n_prompts, k)
    difficulty: np.ndarray  # (n_prompts,)

    def probability(self, rows=slice(None)) -> np.ndarray:
        """True P(correct) of every LLM on the chosen prompts, (rows, n_llms)."""
        return expit(self.ability[None, :] + self.needs[rows] @ self.skills.T - self.difficulty[rows, None])

    def best_llm(self) -> np.ndarray:
        """Index of the LLM with the highest true P(correct) on each prompt."""
        n = len(self.difficulty)
        return np.concatenate([np.argmax(self.probability(slice(i, i + BLOCK_ROWS)), axis=1)
                               for i in range(0, n, BLOCK_ROWS)]) if n else np.zeros(0, dtype=np.int64)

    def arrays(self) -> dict[str, np.ndarray]:
        return {f"truth_{name}": getattr(self, name) for name in ("ability", "skills", "needs", "difficulty")}


def synthetic(n_prompts: int, n_llms: int, skills: int = 4, dim: int = 64, noise: float = 0.5,
              seed: int = 0) -> tuple[RoutingData, SyntheticTruth]:
    """``n_prompts`` × ``n_llms`` 0/1 outcomes with ``skills`` latent skills and ``dim``-d embeddings."""
    for name, value, low in (("prompts", n_prompts, 1), ("LLMs", n_llms, 1), ("skills", skills, 1), ("dim", dim, 1)):
        if not isinstance(value, (int, np.integer)) or value < low:
            raise RecrouteError(f"synthetic data needs at least {low} {name}, got {value!r}.")
    rng = np.random.default_rng(seed)
    truth = SyntheticTruth(
        ability=rng.normal(0.0, 1.0, n_llms).astype(np.float32),
        skills=rng.normal(0.0, 1.0 / np.sqrt(skills), (n_llms, skills)).astype(np.float32),
        needs=rng.normal(0.0, 1.0, (n_prompts, skills)).astype(np.float32),
        difficulty=rng.normal(0.0, 1.0, n_prompts).astype(np.float32),
    )
    scores = np.empty((n_prompts, n_llms), dtype=np.float32)
    for start in range(0, n_prompts, BLOCK_ROWS):
        block = slice(start, start + BLOCK_ROWS)
        p = truth.probability(block)
        scores[block] = rng.random(p.shape, dtype=np.float32) < p
    projection = rng.normal(0.0, 1.0 / np.sqrt(skills), (skills, dim)).astype(np.float32)
    embeddings = truth.needs @ projection + rng.normal(0.0, noise, (n_prompts, dim)).astype(np.float32)
    width = len(str(max(n_prompts, n_llms) - 1))
    data = RoutingData(
        scores=scores,
        prompt_ids=np.char.add("p", np.char.zfill(np.arange(n_prompts).astype(str), width)),
        models=np.char.add("llm-", np.char.zfill(np.arange(n_llms).astype(str), width)),
        groups=np.char.add("skill-", np.argmax(truth.needs, axis=1).astype(str)),
        embeddings=embeddings,
        source=f"synthetic({n_prompts}x{n_llms}, seed {seed})",
    )
    return data, truth


def load_truth(path) -> SyntheticTruth:
    """The hidden parameters stored beside the outcomes by ``recroute synth``."""
    path = Path(path)
    try:
        with np.load(path, allow_pickle=False) as npz:
            return SyntheticTruth(**{name: npz[f"truth_{name}"] for name in
                                     ("ability", "skills", "needs", "difficulty")})
    except KeyError as exc:
        raise RecrouteError(f"{path}: holds no synthetic truth ({exc.args[0]} missing); "
                            "it was not written by recroute synth.") from None
    except (OSError, ValueError) as exc:
        raise RecrouteError(f"{path}: cannot be read as an .npz archive ({exc}).") from None
