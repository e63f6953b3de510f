"""Prompt embeddings: the real bundled model (loaded once per module) and the disk cache."""
from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from conftest import assert_paraphrases_are_closer
from recroute.data import RoutingData
from recroute.embed import DEFAULT_MODEL, Encoder, prompt_embeddings
from recroute.errors import RecrouteError

PROMPTS = [
    "What is the capital of France?",
    "Write a Python function that reverses a linked list.",
    "Solve for x: 3x + 5 = 20.",
    "Which gas do plants absorb from the air during photosynthesis?",
]


@pytest.fixture(scope="module")
def cache_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("recroute-cache")


@pytest.fixture(scope="module")
def encoder(cache_dir):
    """The one Encoder of this module that loads the model."""
    return Encoder(cache_dir=cache_dir)


@pytest.fixture(scope="module")
def prompt_vectors(encoder):
    return encoder.encode(PROMPTS)


def shards(encoder):
    return set(encoder.cache_path.glob("*.npz"))


def shard_keys(path):
    with np.load(path, allow_pickle=False) as z:
        return z["keys"], z["vectors"]


def test_import_does_not_load_sentence_transformers():
    code = "import sys, recroute.embed; sys.exit('sentence_transformers' in sys.modules or 'torch' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code]).returncode == 0


def test_constructor_only_stores_settings(tmp_path):
    enc = Encoder(model=str(tmp_path / "nowhere"), cache_dir=tmp_path, batch_size=8)
    assert (enc.model, enc.cache_dir, enc.batch_size) == (str(tmp_path / "nowhere"), tmp_path, 8)
    assert enc._model is None
    assert not (tmp_path / "embeddings").exists()


def test_cache_dir_defaults(tmp_path, monkeypatch):
    monkeypatch.setenv("RECROUTE_CACHE", str(tmp_path))
    assert Encoder().cache_path == tmp_path / "embeddings" / DEFAULT_MODEL
    monkeypatch.delenv("RECROUTE_CACHE")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert Encoder().cache_path == tmp_path / "home" / ".cache" / "recroute" / "embeddings" / DEFAULT_MODEL


def test_unit_norm_float32_384(prompt_vectors):
    assert prompt_vectors.shape == (len(PROMPTS), 384)
    assert prompt_vectors.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(prompt_vectors, axis=1), 1.0, atol=1e-5)


def test_paraphrases_are_closer_than_unrelated_texts(encoder):
    assert_paraphrases_are_closer(encoder)


def test_second_instance_reads_the_cache_without_the_model(encoder, prompt_vectors, cache_dir, monkeypatch):
    # Any attempt to load a model now fails: the import is blocked.
    monkeypatch.setitem(sys.modules, "sentence_transformers", None)
    other = Encoder(cache_dir=cache_dir)
    again = other.encode(list(reversed(PROMPTS)))
    np.testing.assert_array_equal(again, prompt_vectors[::-1])
    assert other._model is None
    with pytest.raises(RecrouteError, match="sentence-transformers"):
        other.encode(["a prompt nobody encoded before"])


def test_only_missing_texts_are_encoded_once_each(encoder, prompt_vectors):
    before = shards(encoder)
    new = "Translate 'good morning' into Spanish. (test_only_missing)"
    out = encoder.encode([PROMPTS[0], new, PROMPTS[1], new])
    (added,) = shards(encoder) - before
    keys, vectors = shard_keys(added)
    assert keys.shape == (1,) and keys.dtype.kind == "S" and vectors.shape == (1, 384)
    np.testing.assert_array_equal(out[[0, 2]], prompt_vectors[:2])
    np.testing.assert_array_equal(out[1], out[3])
    np.testing.assert_array_equal(out[1], vectors[0])
    # all cached now: no new shard
    encoder.encode([new, PROMPTS[3]])
    assert shards(encoder) == before | {added}


def test_order_is_preserved_with_duplicates(encoder):
    texts = ["beta (test_order)", "alpha (test_order)", "beta (test_order)", "gamma (test_order)", "alpha (test_order)"]
    before = shards(encoder)
    out = encoder.encode(texts)
    (added,) = shards(encoder) - before
    assert len(shard_keys(added)[0]) == 3
    unique = encoder.encode(["alpha (test_order)", "beta (test_order)", "gamma (test_order)"])
    np.testing.assert_array_equal(out, unique[[1, 0, 1, 2, 0]])
    assert not np.allclose(unique[0], unique[1])


def test_matches_sentence_transformers_across_batches(encoder, monkeypatch, capsys):
    # texts of mixed scripts and lengths, regrouped by token length into batches of 2
    texts = [
        "一个很长的中文问题：请解释光合作用的过程以及它对地球生态系统的重要性。 (test_matches)",
        "Hi (test_matches)",
        "Explain, step by step, how a hash map handles collisions and when it resizes. " * 3 + "(test_matches)",
        "2+2? (test_matches)",
        "Quelle est la capitale de l'Italie ? (test_matches)",
    ]
    monkeypatch.setattr(encoder, "batch_size", 2)
    out = encoder.encode(texts, progress=True)
    assert "Encoding prompts" in capsys.readouterr().err
    direct = encoder._model.encode(texts, normalize_embeddings=True)
    np.testing.assert_allclose(out, direct, atol=1e-5)


def test_empty_input(encoder):
    out = encoder.encode([])
    assert out.shape == (0, 384) and out.dtype == np.float32


def test_rejects_a_single_string_and_non_strings(encoder):
    with pytest.raises(RecrouteError, match="single string"):
        encoder.encode("just one prompt")
    with pytest.raises(RecrouteError, match="strings"):
        encoder.encode(["ok", 3])


@pytest.mark.parametrize("damage", ["garbage", "truncated", "wrong_arrays"])
def test_corrupt_shard_is_an_error_naming_the_file(encoder, prompt_vectors, cache_dir, tmp_path, damage):
    copy = tmp_path / "cache"
    folder = copy / "embeddings" / DEFAULT_MODEL
    folder.mkdir(parents=True)
    good = sorted(encoder.cache_path.glob("*.npz"))[0]
    bad = folder / "0-bad.npz"
    if damage == "garbage":
        bad.write_bytes(b"this is not a numpy file")
    elif damage == "truncated":
        bad.write_bytes(good.read_bytes()[:200])
    else:
        np.savez(bad, keys=np.array([1, 2]), vectors=np.zeros((2, 384), np.float32))
    with pytest.raises(RecrouteError, match="delete") as info:
        Encoder(cache_dir=copy).encode(PROMPTS[:1])
    assert str(bad) in str(info.value)


def test_missing_model_folder_is_an_error_naming_it(tmp_path):
    missing = tmp_path / "no-such-model"
    with pytest.raises(RecrouteError, match="no-such-model"):
        Encoder(model=str(missing), cache_dir=tmp_path).encode(["hello"])


def test_many_shards_are_merged(encoder, prompt_vectors, tmp_path, monkeypatch):
    import recroute.embed as embed

    monkeypatch.setattr(embed, "MERGE_SHARDS_ABOVE", 2)
    folder = tmp_path / "embeddings" / DEFAULT_MODEL
    folder.mkdir(parents=True)
    keys = [embed._key(t) for t in PROMPTS]
    for i in range(len(PROMPTS)):
        np.savez(folder / f"{i}.npz", keys=np.array(keys[i:i + 1], dtype="S64"), vectors=prompt_vectors[i:i + 1])
    monkeypatch.setitem(sys.modules, "sentence_transformers", None)
    out = Encoder(cache_dir=tmp_path).encode(PROMPTS)
    np.testing.assert_array_equal(out, prompt_vectors)
    (merged,) = folder.glob("*.npz")
    assert len(shard_keys(merged)[0]) == len(PROMPTS)
    np.testing.assert_array_equal(Encoder(cache_dir=tmp_path).encode(PROMPTS), prompt_vectors)


def make_data(prompts=None, embeddings=None):
    return RoutingData(
        scores=np.ones((2, 2)), prompt_ids=np.array(["p0", "p1"]), models=np.array(["a", "b"]),
        prompts=prompts, embeddings=embeddings, source="toy.npz",
    )


def test_prompt_embeddings_prefers_shipped_embeddings(tmp_path):
    shipped = np.arange(6, dtype=np.float32).reshape(2, 3)
    unusable = Encoder(model=str(tmp_path / "no-model"), cache_dir=tmp_path)
    out = prompt_embeddings(make_data(prompts=["x", "y"], embeddings=shipped), encoder=unusable)
    np.testing.assert_array_equal(out, shipped)
    assert unusable._model is None


def test_prompt_embeddings_encodes_prompts(encoder, prompt_vectors):
    out = prompt_embeddings(make_data(prompts=PROMPTS[2:]), encoder=encoder)
    np.testing.assert_array_equal(out, prompt_vectors[2:])


def test_prompt_embeddings_needs_prompts_or_embeddings():
    with pytest.raises(RecrouteError) as info:
        prompt_embeddings(make_data())
    assert str(info.value) == (
        "toy.npz: has neither prompt texts nor embeddings; routers that read prompts need one of them."
    )


# -- long prompts -----------------------------------------------------------------------------
def test_head_tail_keeps_the_question_at_the_end_of_a_long_prompt(encoder, cache_dir):
    cut = Encoder(cache_dir=cache_dir, long_prompts="head_tail")
    cut._model, cut._model_for = encoder._load_model(), cut.model  # share the loaded model
    long = "Example: two plus two is four. " * 200 + "Question: what is the capital of France?"
    kept, short = cut.head_and_tail([long, PROMPTS[0]])
    assert kept.startswith("Example: two plus two") and kept.endswith("what is the capital of France?")
    assert " … " in kept and short == PROMPTS[0]
    assert len(encoder._model.tokenizer(kept)["input_ids"]) <= encoder._model.max_seq_length
    np.testing.assert_allclose(cut.encode([long]), encoder.encode([kept]), atol=1e-6)  # the cut text is encoded
    truncated = encoder.encode([long])
    assert float((truncated @ cut.encode([long]).T)[0, 0]) < 0.99  # the default sees only the examples


def test_head_tail_is_part_of_the_encoder_record_so_shipped_vectors_are_not_used():
    from recroute.datasets import load_dataset
    from recroute.embed import shipped_embeddings

    data = load_dataset("routerbench")
    assert Encoder().settings() == data.embedding_model  # the default record is unchanged
    cut = Encoder(long_prompts="head_tail")
    assert cut.settings()["long_prompts"] == "head_tail" and shipped_embeddings(data, cut) is None


def test_unknown_long_prompt_setting_is_an_error(cache_dir):
    with pytest.raises(RecrouteError, match="long_prompts"):
        Encoder(cache_dir=cache_dir, long_prompts="middle").encode(["hello"])


def test_an_uncached_encoder_never_touches_the_disk(tmp_path, prompt_vectors):
    uncached = Encoder(cache_dir=tmp_path, cache=False)
    np.testing.assert_allclose(uncached.encode(PROMPTS), prompt_vectors, atol=1e-6)
    assert not (tmp_path / "embeddings").exists()
    assert "cache=False" in repr(uncached)
