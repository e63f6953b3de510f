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
    rng, truth = _truth(n_prompts, n_llms, skills, dim, seed)
    scores = np.empty((n_prompts, n_llms), dtype=np.float32)
    for block, outcomes in _outcome_blocks(rng, truth):
        scores[block] = outcomes
    embeddings = _embeddings(rng, truth, dim, noise)
    prompt_ids, models, groups = _names(truth)
    data = RoutingData(scores=scores, prompt_ids=prompt_ids, models=models, groups=groups, embeddings=embeddings,
                       source=f"synthetic({n_prompts}x{n_llms}, seed {seed})")
    return data, truth


def write_parquet(folder, n_prompts: int, n_llms: int, skills: int = 4, dim: int = 64, noise: float = 0.5,
                  seed: int = 0, records_per_file: int = 16_000_000) -> dict:
    """The same data as :func:`synthetic` (same arguments, same draws) as long-format Parquet, written in
    row groups so that it never has to fit in memory at once::

        FOLDER/records/part-NNNNN.parquet   prompt_id, model, score (float32), group; one row group
                                            per block of prompts
        FOLDER/prompts/part-00000.parquet   prompt_id, group, embedding (list of float32)
        FOLDER/truth.npz                    the hidden parameters (load_truth(FOLDER))

    Memory is one block of outcomes (``BLOCK_ROWS`` prompts × ``n_llms``) plus the
    per-prompt arrays. Needs pyarrow (``pip install "recroute[spark]"``).
    """
    try:
        import pyarrow as pa
        import pyarrow.parquet as pq
    except ImportError:
        raise RecrouteError('writing Parquet needs pyarrow, which is not installed; install it with '
                            'pip install "recroute[spark]".') from None
    folder = Path(folder)
    rng, truth = _truth(n_prompts, n_llms, skills, dim, seed)
    prompt_ids, models, groups = _names(truth)
    (folder / "records").mkdir(parents=True)
    (folder / "prompts").mkdir()
    model_codes = pa.array(models.astype(object), type=pa.string())
    schema = pa.schema([("prompt_id", pa.dictionary(pa.int32(), pa.string())),
                        ("model", pa.dictionary(pa.int32(), pa.string())),
                        ("score", pa.float32()), ("group", pa.dictionary(pa.int32(), pa.string()))])
    writer, files, in_file, total, good = None, 0, 0, 0, 0.0
    try:
        for block, outcomes in _outcome_blocks(rng, truth):
            rows = np.arange(block.start, block.start + len(outcomes))
            if writer is None or in_file >= records_per_file:
                if writer is not None:
                    writer.close()
                writer = pq.ParquetWriter(folder / "records" / f"part-{files:05d}.parquet", schema)
                files, in_file = files + 1, 0
            prompt_col = pa.DictionaryArray.from_arrays(
                np.repeat(np.arange(len(rows), dtype=np.int32), n_llms), pa.array(prompt_ids[rows].astype(object)))
            model_col = pa.DictionaryArray.from_arrays(np.tile(np.arange(n_llms, dtype=np.int32), len(rows)),
                                                       model_codes)
            group_col = pa.DictionaryArray.from_arrays(
                np.repeat(np.arange(len(rows), dtype=np.int32), n_llms), pa.array(groups[rows].astype(object)))
            writer.write_table(pa.table([prompt_col, model_col, pa.array(outcomes.ravel()), group_col],
                                        schema=schema))
            in_file += outcomes.size
            total += outcomes.size
            good += float(outcomes.sum())
    finally:
        if writer is not None:
            writer.close()
    embeddings = _embeddings(rng, truth, dim, noise)
    flat = pa.array(embeddings.ravel())
    pq.write_table(pa.table({"prompt_id": prompt_ids.astype(object), "group": groups.astype(object),
                             "embedding": pa.FixedSizeListArray.from_arrays(flat, dim).cast(pa.list_(pa.float32()))}),
                   folder / "prompts" / "part-00000.parquet")
    np.savez(folder / "truth.npz", **truth.arrays())
    return {"records": total, "files": files, "mean": good / max(total, 1)}


def _truth(n_prompts, n_llms, skills, dim, seed) -> tuple[np.random.Generator, SyntheticTruth]:
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
    return rng, truth


def _outcome_blocks(rng: np.random.Generator, truth: SyntheticTruth):
    """(rows, 0/1 outcomes) for each block of ``BLOCK_ROWS`` prompts, drawn in order."""
    for start in range(0, len(truth.difficulty), BLOCK_ROWS):
        block = slice(start, start + BLOCK_ROWS)
        p = truth.probability(block)
        yield block, (rng.random(p.shape, dtype=np.float32) < p).astype(np.float32)


def _embeddings(rng: np.random.Generator, truth: SyntheticTruth, dim: int, noise: float) -> np.ndarray:
    skills = truth.needs.shape[1]
    projection = rng.normal(0.0, 1.0 / np.sqrt(skills), (skills, dim)).astype(np.float32)
    return truth.needs @ projection + rng.normal(0.0, noise, (len(truth.needs), dim)).astype(np.float32)


def _names(truth: SyntheticTruth) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    n_prompts, n_llms = len(truth.difficulty), len(truth.ability)
    width = len(str(max(n_prompts, n_llms) - 1))
    return (np.char.add("p", np.char.zfill(np.arange(n_prompts).astype(str), width)),
            np.char.add("llm-", np.char.zfill(np.arange(n_llms).astype(str), width)),
            np.char.add("skill-", np.argmax(truth.needs, axis=1).astype(str)))


def load_truth(path) -> SyntheticTruth:
    """The hidden parameters stored beside the outcomes by ``recroute synth``."""
    path = Path(path)
    if path.is_dir():  # a folder written by write_parquet
        path = path / "truth.npz"
    try:
        with np.load(path, allow_pickle=False) as npz:
            return SyntheticTruth(**{name: npz[f"truth_{name}"] for name in
                                     ("ability", "skills", "needs", "difficulty")})
    except KeyError as exc:
        raise RecrouteError(f"{path}: holds no synthetic truth ({exc.args[0]} missing); "
                            "it was not written by recroute synth.") from None
    except (OSError, ValueError) as exc:
        raise RecrouteError(f"{path}: cannot be read as an .npz archive ({exc}).") from None
