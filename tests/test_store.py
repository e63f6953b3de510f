"""Router folders: save_router / load_router round trips, atomic writes, and corrupt folders.

Every servable router is fitted on a small synthetic dataset with embeddings,
saved, loaded back and asked the same questions: the answers must be
identical bit for bit. Corrupt folders must each fail with a RecrouteError
that names the problem, never with a traceback from numpy, json or FAISS.
"""
from __future__ import annotations

import json
import os
import shutil
import zipfile
from pathlib import Path

import numpy as np
import pytest

from recroute.data import RoutingData
from recroute.errors import RecrouteError
from recroute.retrieval import LLMIndex
from recroute.routers import ROUTERS, Queries, make_router
from recroute.routers.latent import LatentFactorRouter
from recroute.store import ARRAYS, FORMAT, FORMAT_VERSION, MANIFEST, load_router, save_router

MODELS = ["m0", "m1", "m2", "m3", "m4"]
POOL = ["m3", "m0", "m2"]  # restricted and out of fitted order
EMBEDDING_MODEL = "all-MiniLM-L6-v2"

# Small settings: these tests are about storage, not about routing well.
SERVABLE = {
    "als": ("als", dict(factors=4, iterations=5)),
    "als-knn": ("als", dict(factors=4, iterations=5, cold_start="knn")),
    "bpr": ("bpr", dict(factors=4, iterations=20)),
    "lightfm": ("lightfm", dict(factors=4, epochs=5)),
    "bilinear": ("bilinear", dict(factors=4, epochs=30)),
    "knn": ("knn", dict(k=5)),
    "linear": ("linear", dict(epochs=30)),
    "mlp": ("mlp", dict(hidden=16, epochs=30)),
    "bsm": ("bsm", {}),
}



def synthetic(n=240, dim=8, seed=3) -> RoutingData:
    rng = np.random.default_rng(seed)
    embeddings = rng.normal(size=(n, dim)).astype(np.float32)
    logits = embeddings[:, :len(MODELS)] + np.linspace(-0.5, 0.5, len(MODELS))
    scores = (rng.random((n, len(MODELS))) < 1 / (1 + np.exp(-2 * logits))).astype(np.float32)
    return RoutingData(scores=scores, prompt_ids=np.array([f"p{i}" for i in range(n)]), models=np.array(MODELS),
                       embeddings=embeddings, source="synthetic")


@pytest.fixture(scope="module")
def data() -> RoutingData:
    return synthetic()


@pytest.fixture(scope="module")
def queries() -> Queries:
    """New prompts (not the training ones): only embeddings, as a served router sees them."""
    return Queries(embeddings=np.random.default_rng(11).normal(size=(40, 8)).astype(np.float32))


@pytest.fixture(scope="module")
def fitted(data):
    cache = {}

    def get(name):
        if name not in cache:
            spec, params = SERVABLE[name]
            cache[name] = make_router(spec, **params).fit(data)
        return cache[name]

    return get


@pytest.fixture(scope="module")
def saved(fitted, tmp_path_factory):
    """A folder holding a saved ALS router (kNN cold start: the richest state) to copy and corrupt."""
    folder = tmp_path_factory.mktemp("saved") / "router"
    save_router(fitted("als-knn"), folder, embedding_model=EMBEDDING_MODEL, data_source="synthetic")
    return folder


def read_arrays(folder: Path) -> dict:
    with np.load(folder / ARRAYS, allow_pickle=False) as npz:
        return {k: npz[k] for k in npz.files}


def write_arrays(folder: Path, arrays: dict) -> None:
    with open(folder / ARRAYS, "wb") as f:
        np.savez(f, **arrays)


def edit_manifest(folder: Path, change) -> None:
    manifest = json.loads((folder / MANIFEST).read_text())
    (folder / MANIFEST).write_text(json.dumps(change(manifest)))


def leftovers(parent: Path, keep: set[str]) -> list[str]:
    """What else lies beside the router: the writers' lock file (.NAME.lock) stays on purpose."""
    return sorted(p.name for p in parent.iterdir() if p.name not in keep and not p.name.endswith(".lock"))


# -- round trips --------------------------------------------------------------------------------
@pytest.mark.parametrize("name", list(SERVABLE))
def test_round_trip_gives_identical_scores_and_rankings(fitted, queries, tmp_path, name):
    router = fitted(name)
    folder = save_router(router, tmp_path / name, embedding_model=EMBEDDING_MODEL, data_source="synthetic")
    assert folder == tmp_path / name
    assert sorted(p.name for p in folder.iterdir()) == [ARRAYS, MANIFEST]
    loaded, manifest = load_router(folder)
    assert type(loaded) is type(router)
    assert loaded.get_params() == router.get_params()
    assert loaded.models_.tolist() == MODELS
    for pool in (None, POOL, ["m4"]):
        np.testing.assert_array_equal(loaded.score(queries, pool), router.score(queries, pool))
        for k in (None, 1, 2):
            for mine, theirs in zip(loaded.rank(queries, pool, k), router.rank(queries, pool, k)):
                np.testing.assert_array_equal(mine, theirs)
        np.testing.assert_array_equal(loaded.route(queries, pool), router.route(queries, pool))
    positions, _ = loaded.rank(queries, POOL, 2)
    assert positions.shape == (len(queries), 2) and positions.max() < len(POOL)
    if isinstance(router, LatentFactorRouter):
        assert isinstance(loaded.index_, LLMIndex)
        np.testing.assert_array_equal(loaded.index_.vectors_, router.index_.vectors_)
    # The manifest describes the router.
    spec, params = SERVABLE[name]
    assert manifest["format"] == FORMAT == "recroute-router"
    assert manifest["format_version"] == FORMAT_VERSION == 1
    assert manifest["router"] == spec and ROUTERS[spec] is type(router)
    assert manifest["params"] == router.get_params() and all(manifest["params"][k] == v for k, v in params.items())
    assert manifest["models"] == MODELS
    assert manifest["embedding_model"] == EMBEDDING_MODEL
    assert manifest["data"] == "synthetic"
    assert manifest == json.loads((folder / MANIFEST).read_text())


@pytest.mark.parametrize("name", list(SERVABLE))
def test_arrays_are_read_without_pickle(fitted, tmp_path, name):
    folder = save_router(fitted(name), tmp_path / name, embedding_model=EMBEDDING_MODEL)
    with np.load(folder / ARRAYS, allow_pickle=False) as npz:
        assert "models_" in npz.files
        for key in npz.files:
            array = npz[key]  # an object array would raise here
            assert array.dtype != object, key
    assert zipfile.is_zipfile(folder / ARRAYS)
    if name in ("als", "bpr", "lightfm", "bilinear", "als-knn"):
        arrays = read_arrays(folder)
        assert arrays["index"].dtype == np.uint8 and arrays["index"].ndim == 1


def test_a_saved_folder_is_an_ordinary_folder_not_a_private_temp_one(fitted, tmp_path):
    folder = save_router(fitted("bsm"), tmp_path / "nested" / "bsm", embedding_model=EMBEDDING_MODEL)
    umask = os.umask(0)
    os.umask(umask)
    assert folder.stat().st_mode & 0o777 == 0o777 & ~umask
    assert leftovers(tmp_path / "nested", {"bsm"}) == []


# -- what cannot be saved ----------------------------------------------------------------------
@pytest.mark.parametrize("spec", ["oracle", "ro:0.5", "random"])
def test_saving_a_router_that_reads_true_outcomes_raises(data, tmp_path, spec):
    router = make_router(spec).fit(data)
    with pytest.raises(RecrouteError, match="true outcomes"):
        save_router(router, tmp_path / "r", embedding_model=EMBEDDING_MODEL)
    assert not (tmp_path / "r").exists() and leftovers(tmp_path, set()) == []


@pytest.mark.parametrize("spec", ["bilinear", "knn", "bsm"])
def test_saving_an_unfitted_router_raises(tmp_path, spec):
    with pytest.raises(RecrouteError, match="not fitted"):
        save_router(make_router(spec), tmp_path / "r", embedding_model=EMBEDDING_MODEL)
    assert leftovers(tmp_path, set()) == []


def test_saving_an_unregistered_router_class_raises(data, tmp_path):
    class Custom(ROUTERS["bsm"]):
        pass

    with pytest.raises(RecrouteError, match="not a registered router"):
        save_router(Custom().fit(data), tmp_path / "r", embedding_model=EMBEDDING_MODEL)


# -- overwriting --------------------------------------------------------------------------------
def test_saving_over_a_router_folder_replaces_it_atomically(fitted, queries, tmp_path):
    folder = tmp_path / "router"
    save_router(fitted("als"), folder, embedding_model=EMBEDDING_MODEL)
    (folder / "stale.txt").write_text("from the old router")
    save_router(fitted("linear"), folder, embedding_model=EMBEDDING_MODEL)
    loaded, manifest = load_router(folder)
    assert manifest["router"] == "linear" and type(loaded).__name__ == "LinearRouter"
    np.testing.assert_array_equal(loaded.score(queries), fitted("linear").score(queries))
    assert sorted(p.name for p in folder.iterdir()) == [ARRAYS, MANIFEST]  # nothing of the old folder survives
    assert "index" not in read_arrays(folder)
    assert leftovers(tmp_path, {"router"}) == []  # no temporary or '-old' folder left beside it


def test_saving_into_an_empty_existing_folder_is_allowed(fitted, tmp_path):
    (tmp_path / "empty").mkdir()
    save_router(fitted("bsm"), tmp_path / "empty", embedding_model=EMBEDDING_MODEL)
    assert load_router(tmp_path / "empty")[1]["router"] == "bsm"
    assert leftovers(tmp_path, {"empty"}) == []


def test_refuses_to_overwrite_a_folder_that_is_not_a_router(fitted, tmp_path):
    folder = tmp_path / "my-notes"
    folder.mkdir()
    (folder / "thesis.tex").write_text("precious")
    (folder / "sub").mkdir()
    (folder / "sub" / "data.csv").write_text("1,2,3")
    with pytest.raises(RecrouteError, match="not a recroute router folder; refusing to overwrite"):
        save_router(fitted("bsm"), folder, embedding_model=EMBEDDING_MODEL)
    assert (folder / "thesis.tex").read_text() == "precious"
    assert (folder / "sub" / "data.csv").read_text() == "1,2,3"
    assert sorted(p.name for p in folder.iterdir()) == ["sub", "thesis.tex"]
    assert leftovers(tmp_path, {"my-notes"}) == []


def test_refuses_to_overwrite_a_file(fitted, tmp_path):
    path = tmp_path / "router"
    path.write_text("not a folder")
    with pytest.raises(RecrouteError, match="refusing to overwrite"):
        save_router(fitted("bsm"), path, embedding_model=EMBEDDING_MODEL)
    assert path.read_text() == "not a folder"
    assert leftovers(tmp_path, {"router"}) == []


# -- corrupt folders ----------------------------------------------------------------------------
def _flip_index_bytes(folder: Path) -> None:
    arrays = read_arrays(folder)
    index = arrays["index"].copy()
    middle = len(index) // 2
    index[middle:middle + 16] ^= 0xFF  # inside the stored vectors: FAISS reads it, the check must not pass it
    write_arrays(folder, {**arrays, "index": index})


def _flip_index_header(folder: Path) -> None:
    arrays = read_arrays(folder)
    index = arrays["index"].copy()
    index[:12] ^= 0xFF  # the index type and dimension: FAISS itself refuses it
    write_arrays(folder, {**arrays, "index": index})


def _truncate(folder: Path) -> None:
    raw = (folder / ARRAYS).read_bytes()
    (folder / ARRAYS).write_bytes(raw[: len(raw) // 2])


def _corrupt_a_member(folder: Path) -> None:
    raw = bytearray((folder / ARRAYS).read_bytes())
    raw[100:120] = b"\x00" * 20  # inside the first member's data: a bad CRC, the zip directory intact
    (folder / ARRAYS).write_bytes(bytes(raw))


def _drop_array(key):
    return lambda folder: write_arrays(folder, {k: v for k, v in read_arrays(folder).items() if k != key})


def _other_models(folder: Path) -> None:
    write_arrays(folder, {**read_arrays(folder), "models_": np.array(["m0", "m1", "m2", "m3", "gpt-9"])})


def _object_array(folder: Path) -> None:
    arrays = read_arrays(folder)
    arrays["models_"] = arrays["models_"].astype(object)  # only readable with pickle
    with open(folder / ARRAYS, "wb") as f:
        np.savez(f, **arrays)


def _del_manifest_key(key):
    def change(manifest):
        del manifest[key]
        return manifest

    return lambda folder: edit_manifest(folder, change)


def _set_manifest(**values):
    return lambda folder: edit_manifest(folder, lambda m: {**m, **values})


CORRUPTIONS = {
    "missing folder": (lambda folder: shutil.rmtree(folder), "no such router folder"),
    "no manifest": (lambda folder: (folder / MANIFEST).unlink(), "not a recroute router folder (no manifest.json)"),
    "manifest is a folder": (lambda folder: ((folder / MANIFEST).unlink(), (folder / MANIFEST).mkdir()),
                             "no manifest.json"),
    "invalid JSON": (lambda folder: (folder / MANIFEST).write_text('{"format": "recroute-router",'), "not valid JSON"),
    "manifest not an object": (lambda folder: (folder / MANIFEST).write_text("[1, 2]"),
                               "not a recroute router manifest"),
    "foreign format": (_set_manifest(format="keras-model"), "not a recroute router manifest"),
    "wrong format version": (_set_manifest(format_version=99), "format version 99 is not supported"),
    "manifest lacks models": (_del_manifest_key("models"), "lacks 'models'"),
    "router not a string": (_set_manifest(router=["als"]), "'router' must be a str"),
    "unknown router": (_set_manifest(router="xgboost"), "unknown router 'xgboost'"),
    "params not a mapping": (_set_manifest(params=[1, 2]), "'params' must be a dict"),
    "unknown hyperparameter": (_set_manifest(params={"factors": 4, "depth": 3}),
                               "hyperparameters do not fit router 'als'"),
    "bad hyperparameter value": (_set_manifest(params={"factors": 4, "iterations": 5, "cold_start": "telepathy"}),
                                 "cold_start must be one of 'ridge', 'knn', 'mlp', got 'telepathy'"),
    "manifest names other LLMs": (_set_manifest(models=["a", "b", "c", "d", "e"]), "do not match the manifest"),
    "missing arrays.npz": (lambda folder: (folder / ARRAYS).unlink(), "missing or not an .npz archive"),
    "arrays.npz is a folder": (lambda folder: ((folder / ARRAYS).unlink(), (folder / ARRAYS).mkdir()),
                               "missing or not an .npz archive"),
    "truncated arrays.npz": (_truncate, "missing or not an .npz archive"),
    "garbage arrays.npz": (lambda folder: (folder / ARRAYS).write_bytes(os.urandom(4096)),
                           "missing or not an .npz archive"),
    "empty arrays.npz": (lambda folder: (folder / ARRAYS).write_bytes(b""), "missing or not an .npz archive"),
    "damaged member": (_corrupt_a_member, "the folder is corrupt"),
    "arrays name other LLMs": (_other_models, "do not match the manifest"),
    "arrays lack models_": (_drop_array("models_"), "do not match the manifest"),
    "arrays lack the LLM factors": (_drop_array("llm_factors_"), "llm_factors_"),
    "arrays lack the index": (_drop_array("index"), "'index'"),
    "arrays lack the cold start": (_drop_array("cold_start.factors"), "'cold_start.factors'"),
    "object array": (_object_array, "holds Python objects"),
    "tampered index bytes": (_flip_index_bytes, "LLM index"),
    "tampered index header": (_flip_index_header, "LLM index bytes are corrupted"),
    "index of other vectors": (
        lambda folder: write_arrays(folder, {**read_arrays(folder), "llm_factors_":
                                             read_arrays(folder)["llm_factors_"] + 1}),
        "LLM index holds different vectors"),
}


@pytest.mark.parametrize("problem", list(CORRUPTIONS))
def test_a_corrupt_folder_raises_an_error_naming_the_problem(saved, tmp_path, problem):
    folder = tmp_path / "router"
    shutil.copytree(saved, folder)
    assert load_router(folder)[1]["router"] == "als"  # the copy is good before it is damaged
    corrupt, fragment = CORRUPTIONS[problem]
    corrupt(folder)
    with pytest.raises(RecrouteError) as info:
        load_router(folder)
    message = str(info.value)
    assert fragment in message, message
    assert str(folder) in message, message  # says which folder
    assert "\n" not in message.strip()


def test_a_corrupt_folder_can_be_replaced_by_saving_again(saved, fitted, tmp_path):
    folder = tmp_path / "router"
    shutil.copytree(saved, folder)
    (folder / ARRAYS).write_bytes(b"garbage")
    save_router(fitted("bsm"), folder, embedding_model=EMBEDDING_MODEL)  # it has a manifest: still a router folder
    assert load_router(folder)[1]["router"] == "bsm"


# -- serving a loaded folder ---------------------------------------------------------------------
class StubEncoder:
    """Stands in for the text encoder: fixed vectors per text, no model."""

    model = "stub-encoder"

    def __init__(self, dim: int):
        self.dim = dim

    def encode(self, texts):
        return np.stack([np.random.default_rng(len(t)).normal(size=self.dim) for t in texts]).astype(np.float32)


def test_the_manifest_records_the_embedding_width_when_given(fitted, tmp_path):
    save_router(fitted("bilinear"), tmp_path / "with", embedding_model=EMBEDDING_MODEL, embedding_dim=8)
    save_router(fitted("bilinear"), tmp_path / "without", embedding_model=EMBEDDING_MODEL)
    assert load_router(tmp_path / "with")[1]["embedding_dim"] == 8
    assert "embedding_dim" not in load_router(tmp_path / "without")[1]


def test_a_served_router_ranks_texts_like_the_router_ranks_their_embeddings(fitted, tmp_path):
    from recroute.serve import ServedRouter

    save_router(fitted("als-knn"), tmp_path / "r", embedding_model=EMBEDDING_MODEL, embedding_dim=8)
    router, manifest = load_router(tmp_path / "r")
    encoder = StubEncoder(8)
    served = ServedRouter(router, encoder, manifest)
    texts = ["a", "bb", "ccc"]
    rankings = served.rank(texts, pool=POOL, k=2)
    positions, scores = fitted("als-knn").rank(Queries(embeddings=encoder.encode(texts)), POOL, 2)
    assert [[entry["llm"] for entry in r] for r in rankings] == np.asarray(POOL)[positions].tolist()
    np.testing.assert_array_equal([[entry["score"] for entry in r] for r in rankings], scores)
    # Prompts encoded by a model of another width are refused with a clear error, not a numpy crash.
    wrong = ServedRouter(router, StubEncoder(384), manifest)
    with pytest.raises(RecrouteError, match="fitted on 8-dimensional prompt embeddings, but stub-encoder gives 384"):
        wrong.rank(texts)


# -- a cost model saved with the router, and cost-aware serving -----------------------------------
# Token prices ($ per million input, output tokens); with 256 output tokens assumed, a prompt of t tokens costs
# output x 256e-6 + input x t x 1e-6. 'm3' is the cheapest on every prompt, then m1, m2, m0, m4.
PRICES = np.array([[5.0, 10.0], [1.0, 2.0], [3.0, 6.0], [0.5, 1.0], [10.0, 20.0]])
BY_COST = ["m3", "m1", "m2", "m0", "m4"]
TEN_TOKENS = "a" * 40
# what a 10-token prompt costs on m0..m4: 2.56e-3 + 5e-5, 5.12e-4 + 1e-5, 1.536e-3 + 3e-5, 2.56e-4 + 5e-6, ...
TEN_TOKEN_COSTS = dict(zip(MODELS, [2.61e-3, 5.22e-4, 1.566e-3, 2.61e-4, 5.22e-3]))


@pytest.fixture(scope="module")
def cost_model():
    from recroute.cost import CostModel

    priced = RoutingData(scores=np.zeros((1, len(MODELS))), prompt_ids=np.array(["p"]), models=np.array(MODELS),
                         prompts=["x"], price=PRICES, source="priced")
    return CostModel().fit(priced)


def test_save_router_with_a_cost_model_writes_cost_npz(fitted, cost_model, tmp_path):
    from recroute.store import COST, load_cost_model

    folder = save_router(fitted("linear"), tmp_path / "r", embedding_model=EMBEDDING_MODEL, cost_model=cost_model)
    assert sorted(p.name for p in folder.iterdir()) == [ARRAYS, COST, MANIFEST] and COST == "cost.npz"
    manifest = json.loads((folder / MANIFEST).read_text())
    assert manifest["cost"] == {"output_tokens": 256}
    with np.load(folder / COST, allow_pickle=False) as npz:
        assert sorted(npz.files) == ["intercept_", "models_", "slope_"]
    loaded = load_cost_model(folder)
    assert loaded.models_.tolist() == MODELS and loaded.output_tokens == 256
    texts = [TEN_TOKENS, "b", "c" * 1000]
    np.testing.assert_array_equal(loaded.predict(texts), cost_model.predict(texts))
    assert loaded.predict([TEN_TOKENS])[0] == pytest.approx([TEN_TOKEN_COSTS[m] for m in MODELS])
    # the router itself loads as before
    assert load_router(folder)[1]["router"] == "linear"


def test_load_cost_model_is_none_without_one(fitted, cost_model, tmp_path):
    from recroute.store import COST, load_cost_model

    folder = save_router(fitted("linear"), tmp_path / "r", embedding_model=EMBEDDING_MODEL)
    assert load_cost_model(folder) is None and "cost" not in json.loads((folder / MANIFEST).read_text())
    # saving over a folder with a cost model, without one, leaves no stale cost.npz
    save_router(fitted("linear"), folder, embedding_model=EMBEDDING_MODEL, cost_model=cost_model)
    assert load_cost_model(folder) is not None
    save_router(fitted("linear"), folder, embedding_model=EMBEDDING_MODEL)
    assert load_cost_model(folder) is None and not (folder / COST).exists()


def _rewrite_cost(change):
    def corrupt(folder):
        with np.load(folder / "cost.npz", allow_pickle=False) as npz:
            arrays = change({k: npz[k] for k in npz.files})
        with open(folder / "cost.npz", "wb") as f:
            np.savez(f, **arrays)
    return corrupt


COST_CORRUPTIONS = {
    "missing": (lambda folder: (folder / "cost.npz").unlink(), "missing or not an .npz archive"),
    "garbage": (lambda folder: (folder / "cost.npz").write_bytes(b"not a zip"), "missing or not an .npz archive"),
    "lacks slope": (_rewrite_cost(lambda a: {k: v for k, v in a.items() if k != "slope_"}), "lacks the array 'slope_'"),
    "lengths disagree": (_rewrite_cost(lambda a: {**a, "intercept_": a["intercept_"][:2]}), "has shape (2,), expected (5,)"),
    "object array": (_rewrite_cost(lambda a: {**a, "models_": a["models_"].astype(object)}),
                     "holds Python objects"),
}


@pytest.mark.parametrize("problem", list(COST_CORRUPTIONS))
def test_a_corrupt_cost_model_raises_an_error_naming_the_file(fitted, cost_model, tmp_path, problem):
    from recroute.store import load_cost_model

    folder = save_router(fitted("linear"), tmp_path / "r", embedding_model=EMBEDDING_MODEL, cost_model=cost_model)
    corrupt, fragment = COST_CORRUPTIONS[problem]
    corrupt(folder)
    with pytest.raises(RecrouteError) as info:
        load_cost_model(folder)
    message = str(info.value)
    assert str(folder / "cost.npz") in message and fragment in message, message
    assert "corrupt" in message and "\n" not in message


@pytest.fixture(scope="module")
def served_with_costs(fitted, cost_model, tmp_path_factory):
    """The fitted linear router served from a folder with its cost model, texts encoded by the stub."""
    from recroute.serve import ServedRouter
    from recroute.store import load_cost_model

    folder = save_router(fitted("linear"), tmp_path_factory.mktemp("served") / "r", embedding_model=EMBEDDING_MODEL,
                         embedding_dim=8, cost_model=cost_model)
    router, manifest = load_router(folder)
    return ServedRouter(router, StubEncoder(8), manifest, load_cost_model(folder), source=str(folder))


TEXTS = [TEN_TOKENS, "What is 2 + 2?", "b" * 300]


def test_a_huge_cost_weight_ranks_the_cheapest_first(served_with_costs):
    for ranking in served_with_costs.rank(TEXTS, k=None, cost_weight=1e6):
        assert [entry["llm"] for entry in ranking] == BY_COST
        assert all(set(entry) == {"llm", "score", "cost"} for entry in ranking)
    ranking = served_with_costs.rank([TEN_TOKENS], pool=["m0", "m4", "m2"], k=2, cost_weight=1e6)[0]
    assert [entry["llm"] for entry in ranking] == ["m2", "m0"]
    assert [entry["cost"] for entry in ranking] == pytest.approx([TEN_TOKEN_COSTS["m2"], TEN_TOKEN_COSTS["m0"]])


def test_cost_weight_zero_keeps_the_score_order(served_with_costs):
    plain = served_with_costs.rank(TEXTS, k=None)
    costed = served_with_costs.rank(TEXTS, k=None, cost_weight=0.0)
    scores = served_with_costs.router.score(Queries(embeddings=StubEncoder(8).encode(TEXTS)))
    for i, (mine, theirs) in enumerate(zip(costed, plain)):
        assert [e["llm"] for e in mine] == [e["llm"] for e in theirs]
        assert [e["llm"] for e in mine] == [MODELS[j] for j in np.argsort(-scores[i], kind="stable")]
        assert [e["score"] for e in mine] == pytest.approx([e["score"] for e in theirs])


def test_a_moderate_cost_weight_trades_score_against_cost(served_with_costs):
    scores = served_with_costs.router.score(Queries(embeddings=StubEncoder(8).encode([TEN_TOKENS])))[0]
    score = dict(zip(MODELS, scores))
    # a better-scored but dearer LLM and a cheaper one swap places where λ crosses their break-even point
    pairs = [(a, b) for a in MODELS for b in MODELS if score[a] > score[b] and TEN_TOKEN_COSTS[a] > TEN_TOKEN_COSTS[b]]
    dear, cheap = max(pairs, key=lambda p: score[p[0]] - score[p[1]])
    break_even = (score[dear] - score[cheap]) / (TEN_TOKEN_COSTS[dear] - TEN_TOKEN_COSTS[cheap])
    for weight, first, second in ((0.9 * break_even, dear, cheap), (1.1 * break_even, cheap, dear)):
        order = [e["llm"] for e in served_with_costs.rank([TEN_TOKENS], k=None, cost_weight=weight)[0]]
        assert order.index(first) < order.index(second), (weight, order)
        utility = {m: score[m] - weight * TEN_TOKEN_COSTS[m] for m in MODELS}
        assert order == sorted(MODELS, key=lambda m: -utility[m])


def test_a_budget_lists_only_affordable_llms(served_with_costs):
    scores = served_with_costs.router.score(Queries(embeddings=StubEncoder(8).encode([TEN_TOKENS])))[0]
    by_score = [MODELS[j] for j in np.argsort(-scores, kind="stable")]
    for budget, affordable in [(1e-3, {"m1", "m3"}), (2e-3, {"m1", "m2", "m3"}), (1.0, set(MODELS))]:
        ranking = served_with_costs.rank([TEN_TOKENS], k=None, budget=budget)[0]
        assert [e["llm"] for e in ranking] == [m for m in by_score if m in affordable], budget
        assert all(e["cost"] <= budget for e in ranking)
    # k still caps the list
    assert len(served_with_costs.rank([TEN_TOKENS], k=1, budget=1.0)[0]) == 1


def test_a_budget_nothing_fits_gives_the_cheapest_alone(served_with_costs):
    for ranking in served_with_costs.rank(TEXTS, k=3, budget=1e-5):
        assert [e["llm"] for e in ranking] == ["m3"]
    ranking = served_with_costs.rank([TEN_TOKENS], pool=["m0", "m2"], k=3, budget=1e-5)[0]
    assert [e["llm"] for e in ranking] == ["m2"]
    assert ranking[0]["cost"] == pytest.approx(TEN_TOKEN_COSTS["m2"])


def test_cost_routing_without_a_cost_model_names_the_folder(fitted, tmp_path):
    from recroute.serve import load_router as serve

    folder = save_router(fitted("linear"), tmp_path / "plain", embedding_model=EMBEDDING_MODEL, embedding_dim=8)
    served = serve(folder)
    assert served.cost_model is None
    for options in ({"cost_weight": 1.0}, {"budget": 0.01}, {"cost_weight": 0.0}):
        with pytest.raises(RecrouteError, match="fitted without costs or prices") as info:
            served.rank(["hello"], **options)
        assert str(folder) in str(info.value)


def test_serve_load_router_reads_the_cost_model(fitted, cost_model, tmp_path):
    from recroute.serve import load_router as serve

    folder = save_router(fitted("linear"), tmp_path / "r", embedding_model=EMBEDDING_MODEL, cost_model=cost_model)
    served = serve(folder)
    np.testing.assert_array_equal(served.cost_model.predict(TEXTS), cost_model.predict(TEXTS))
    served.encoder = StubEncoder(8)
    assert [e["llm"] for e in served.rank([TEN_TOKENS], k=None, cost_weight=1e6)[0]] == BY_COST
