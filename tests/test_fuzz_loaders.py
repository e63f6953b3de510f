"""Seeded random mutations of every input format: a clean one-line refusal or a sound load, never a traceback.

Valid data files (long CSV, wide CSV, JSONL, score JSON, .npz) and a saved router folder are
mutated at random: bytes flipped, cut, repeated or replaced by tokens that once broke a reader
(a stray quote, NaN, 1e39, a 400-digit number, a lone surrogate, a BOM, deep nesting, ...).
Each mutant goes through ``recroute info`` (or ``route`` for a router folder). The outcome must be
exit 0 with data that holds together, or exit 2 with one line naming the file. Set
RECROUTE_FUZZ_SEED to run other mutants; RECROUTE_FUZZ_CASES to run more.
"""
from __future__ import annotations

import io
import os
import random
import shutil

import numpy as np
import pytest

from conftest import run_cli
from recroute.data import RoutingData
from recroute.errors import RecrouteError
from recroute.loaders import load
from recroute.routers import make_router
from recroute.store import ARRAYS, MANIFEST, load_cost_model, load_router, save_router

SEED = int(os.environ.get("RECROUTE_FUZZ_SEED", "13"))
CASES = int(os.environ.get("RECROUTE_FUZZ_CASES", "360"))
TOKENS = ['"', ",", "\n", "{", "}", "[", "]", ":", "NaN", "Infinity", "1e39", "-1e308", "9" * 400, "\\ud800",
          "\ufeff", "1_0", "\u0661", "null", "true", "-1", "\x00", "[" * 3000, '"score"', '"model": 1', "'", "\r"]


def _base_files() -> dict[str, bytes]:
    rows = [(f"p{i}", f"m{j}", (i * j) % 3 / 2, 0.001 * (j + 1), f"text {i}", "g" + str(i % 2))
            for i in range(6) for j in range(3)]
    long_csv = "prompt_id,model,score,cost,prompt,group\n" + "".join(",".join(map(str, r)) + "\n" for r in rows)
    jsonl = "".join(f'{{"prompt_id": "{p}", "model": "{m}", "score": {s}, "cost": {c}, "prompt": "{t}", '
                    f'"group": "{g}"}}\n' for p, m, s, c, t, g in rows)
    wide = "prompt_id,prompt,m0,m1,m0|total_cost,m1|total_cost\n" + "".join(
        f"p{i},text {i},{i % 2},{(i + 1) % 2},0.01,0.02\n" for i in range(6))
    score_json = "[" + ",".join(f'{{"question": "q{i}", "scores": {{"a": {i % 2}, "b": 0.5}}}}' for i in range(6)) + "]"
    npz = io.BytesIO()
    texts = [f"prompt {i} é" for i in range(4)]
    encoded = [t.encode() for t in texts]
    np.savez(npz, scores=np.eye(4, 3, dtype=np.float32), prompt_ids=np.array([f"p{i}" for i in range(4)]),
             models=np.array(["a", "b", "c"]), cost=np.full((4, 3), 0.01, np.float32),
             prompts_utf8=np.frombuffer(b"".join(encoded), np.uint8),
             prompts_offsets=np.r_[0, np.cumsum([len(e) for e in encoded])].astype(np.int64))
    return {"long.csv": long_csv.encode(), "data.jsonl": jsonl.encode(), "wide.csv": wide.encode(),
            "scores.json": score_json.encode(), "dense.npz": npz.getvalue()}


def _mutate(raw: bytes, rng: random.Random) -> bytes:
    data = bytearray(raw)
    for _ in range(rng.randint(1, 3)):
        if not data:
            break
        at = rng.randrange(len(data))
        kind = rng.randrange(6)
        if kind == 0:
            data[at] ^= 1 << rng.randrange(8)
        elif kind == 1:
            del data[at:at + rng.randint(1, 40)]
        elif kind == 2:
            data[at:at] = data[at:at + rng.randint(1, 60)]
        elif kind == 3:
            data[at:at] = rng.choice(TOKENS).encode("utf-8", "surrogatepass")
        elif kind == 4:
            end = min(len(data), at + rng.randint(1, 8))
            data[at:end] = rng.choice(TOKENS).encode("utf-8", "surrogatepass")
        else:
            del data[at:]
    return bytes(data)


def _mutate_npz_arrays(raw: bytes, rng: random.Random) -> bytes:
    """Structural mutations a byte flip rarely reaches inside a zip: arrays dropped, reshaped, retyped."""
    with np.load(io.BytesIO(raw), allow_pickle=False) as npz:
        arrays = {k: npz[k] for k in npz.files}
    key = rng.choice(sorted(arrays))
    choice = rng.randrange(5)
    if choice == 0:
        del arrays[key]
    elif choice == 1:
        arrays[key] = arrays[key].reshape(-1)[: max(0, arrays[key].size - 1)]
    elif choice == 2:
        dtype = rng.choice(["float64", "int8", "complex64", "U3", "bool", "m8[s]"])
        try:
            arrays[key] = arrays[key].astype(dtype)
        except (ValueError, TypeError):  # text that is not a number
            arrays[key] = np.zeros(arrays[key].shape, dtype)
    elif choice == 3:
        arrays[key] = np.full(arrays[key].shape, rng.choice([np.nan, 1e39, -1.0, 0.0]))
    else:
        arrays[key] = arrays[key].T if arrays[key].ndim == 2 else arrays[key][::-1]
    out = io.BytesIO()
    np.savez(out, **arrays)
    return out.getvalue()


def _assert_sound(data: RoutingData) -> None:
    n, m = data.scores.shape
    assert len(data.prompt_ids) == n and len(data.models) == m and n > 0 and m > 0
    assert not np.isinf(data.scores).any()
    assert len(set(data.models.tolist())) == m and len(set(data.prompt_ids.tolist())) == n
    if data.cost is not None:
        assert data.cost.shape == (n, m) and not (data.cost < 0).any()


def _outcome(result, path) -> str:
    lines = result.output.strip().splitlines()
    if result.exit_code == 0:
        return "loaded"
    assert result.exit_code == 2 and isinstance(result.exception, SystemExit), (path, result.output[-2000:])
    assert len(lines) == 1 and lines[0].startswith("recroute: error: "), (path, result.output[-2000:])
    assert str(path) in lines[0], (path, lines[0])
    return "refused"


@pytest.mark.filterwarnings("error")  # a warning on the way to a refusal breaks the one-line form
def test_mutated_data_files_are_refused_in_one_line_or_loaded_soundly(tmp_path):
    rng = random.Random(SEED)
    bases = _base_files()
    outcomes = {"loaded": 0, "refused": 0}
    for case in range(CASES):
        name = rng.choice(sorted(bases))
        raw = bases[name]
        mutant = _mutate_npz_arrays(raw, rng) if name.endswith(".npz") and rng.random() < 0.5 else _mutate(raw, rng)
        path = tmp_path / f"{case:04d}-{name}"
        path.write_bytes(mutant)
        outcome = _outcome(run_cli("info", "--data", path), path)
        outcomes[outcome] += 1
        if outcome == "loaded":
            _assert_sound(load(path))
        else:
            with pytest.raises(RecrouteError):
                load(path)
    assert sum(outcomes.values()) == CASES
    for name, raw in bases.items():  # the unmutated files load: refusals above are the mutations' doing
        (tmp_path / name).write_bytes(raw)
        _assert_sound(load(tmp_path / name))
    assert outcomes["refused"] > CASES // 4 and outcomes["loaded"] > 0, outcomes  # the mutants test both sides


@pytest.fixture(scope="module")
def router_folder(tmp_path_factory):
    from recroute.cost import CostModel

    rng = np.random.default_rng(0)
    data = RoutingData(scores=(rng.random((40, 3)) < 0.5).astype(np.float32), prompt_ids=[f"p{i}" for i in range(40)],
                       models=["a", "b", "c"], embeddings=rng.normal(size=(40, 8)).astype(np.float32),
                       prompts=[f"t{i}" for i in range(40)], cost=np.full((40, 3), 0.01, np.float32))
    router = make_router("als", factors=4, iterations=2, cold_start="ridge").fit(data)
    return save_router(router, tmp_path_factory.mktemp("fuzz") / "router", embedding_model="stub", embedding_dim=8,
                       cost_model=CostModel().fit(data))


@pytest.mark.filterwarnings("error")
def test_mutated_router_folders_are_refused_naming_the_folder_or_load(router_folder, tmp_path):
    rng = random.Random(SEED + 1)
    outcomes = {"loaded": 0, "refused": 0}
    for case in range(CASES // 4):
        folder = tmp_path / f"r{case:03d}"
        shutil.copytree(router_folder, folder)
        target = folder / rng.choice([MANIFEST, ARRAYS, ARRAYS, "cost.npz"])
        raw = target.read_bytes()
        mutated = _mutate_npz_arrays(raw, rng) if target.suffix == ".npz" and rng.random() < 0.7 else _mutate(raw, rng)
        target.write_bytes(mutated)
        try:
            router, manifest = load_router(folder)
            load_cost_model(folder)
            outcomes["loaded"] += 1
            assert [str(m) for m in router.models_] == manifest["models"]
        except RecrouteError as exc:
            message = str(exc)
            assert str(folder) in message and "\n" not in message, message
            outcomes["refused"] += 1
    assert outcomes["refused"] > 0, outcomes
