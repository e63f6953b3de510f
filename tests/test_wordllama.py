"""The fast encoder: ``Encoder(model="wordllama")`` and ``--encoder wordllama``.

wordllama's weights ship in its wheel, so everything here runs offline. Its
vectors are checked against the package's own ``embed`` (the known answer),
and a router fitted with ``--encoder wordllama`` must route new prompts with
wordllama, never with the default MiniLM.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from conftest import assert_cli_error, assert_paraphrases_are_closer, private_cache_on_one_thread, run_cli as cli
from recroute.data import RoutingData
from recroute.datasets import load_dataset
from recroute.embed import DEFAULT_MODEL, WORDLLAMA, Encoder, shipped_embeddings
from recroute.errors import RecrouteError
from recroute.loaders import save_npz
from recroute.protocol import with_embeddings
from recroute.serve import load_router

MATH = ["What is 17 plus 25?", "Solve for x: 3x + 7 = 22.", "Compute the derivative of x^3 + 2x.",
        "Find the square root of 144.", "What is 12 times 11?", "Simplify the fraction 42/56.",
        "Factor the polynomial x^2 - 5x + 6.", "What is 15 percent of 240?",
        "Solve the quadratic equation x^2 + 4x - 5 = 0.", "What is the least common multiple of 8 and 12?"]
HISTORY = ["Who was the first emperor of Rome?", "When did World War II end?", "What caused the French Revolution?",
           "Who was Cleopatra?", "Why did the Roman Empire fall?", "When did the Berlin Wall come down?",
           "What was the Renaissance?", "Who was Napoleon Bonaparte?", "What was the Cold War?",
           "What was the Ottoman Empire?"]
NEW = {"Calculate 23 times 19 and divide the result by 4.": "A", "What is the cube root of 27?": "A",
       "Who was Julius Caesar?": "B", "When did the First World War begin?": "B"}


@pytest.fixture(scope="module", autouse=True)
def environment(tmp_path_factory):
    with private_cache_on_one_thread(tmp_path_factory):
        yield


@pytest.fixture(scope="module")
def encoder(tmp_path_factory):
    return Encoder(model=WORDLLAMA, cache_dir=tmp_path_factory.mktemp("wordllama-cache"))


def reference_vectors(texts):
    """wordllama's own normalised embeddings, loaded offline from its package folder."""
    import wordllama
    from wordllama import WordLlama

    model = WordLlama.load(cache_dir=Path(wordllama.__file__).parent, disable_download=True)
    return model.embed(list(texts), norm=True)


def test_vectors_are_wordllamas_own_unit_norm_256d_and_cached(encoder):
    texts = MATH[:3] + HISTORY[:3]
    out = encoder.encode(texts)
    assert out.shape == (6, 256) and out.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(out, axis=1), 1.0, atol=1e-5)
    np.testing.assert_allclose(out, reference_vectors(texts), atol=1e-6)
    assert encoder.cache_path.name == WORDLLAMA
    shards = set(encoder.cache_path.glob("*.npz"))
    again = Encoder(model=WORDLLAMA, cache_dir=encoder.cache_dir)
    np.testing.assert_array_equal(again.encode(texts), out)
    assert again._model is None and set(encoder.cache_path.glob("*.npz")) == shards


def test_similar_texts_are_closer_than_unrelated_ones(encoder):
    assert_paraphrases_are_closer(encoder)


def test_the_empty_text_gets_a_unit_vector(encoder):
    (vector,) = encoder.encode([""])
    assert np.isfinite(vector).all() and np.linalg.norm(vector) == pytest.approx(1.0, abs=1e-5)


def test_long_prompt_cutting_is_refused_as_it_has_no_window(encoder):
    with pytest.raises(RecrouteError, match="wordllama has no token window"):
        Encoder(model=WORDLLAMA, cache_dir=encoder.cache_dir, long_prompts="head_tail").encode(["hello"])


def test_the_record_names_wordllama_so_bundled_minilm_vectors_are_not_used(encoder):
    from importlib.metadata import version

    assert encoder.settings() == {"model": WORDLLAMA, "weights": f"wordllama=={version('wordllama')}",
                                  "max_seq_length": None, "normalize": True}
    data = load_dataset("routerbench").subset(prompts=[0, 1, 2])
    assert data.embedding_model["model"] == DEFAULT_MODEL and shipped_embeddings(data, encoder) is None
    attached = with_embeddings(data, encoder=encoder)
    assert attached.embedding_model == encoder.settings()
    np.testing.assert_allclose(attached.embeddings, reference_vectors(data.prompts), atol=1e-6)


# -- the command line --------------------------------------------------------------------
@pytest.fixture(scope="module")
def topics_file(tmp_path_factory):
    """Math prompts answered by A alone, history prompts by B alone; texts only, no vectors."""
    texts = MATH + HISTORY
    math = np.arange(len(texts)) < len(MATH)
    data = RoutingData(scores=np.stack([math, ~math], axis=1).astype(np.float32),
                       prompt_ids=np.array([f"q{i}" for i in range(len(texts))]), models=np.array(["A", "B"]),
                       prompts=texts, source="topics")
    return save_npz(data, tmp_path_factory.mktemp("data") / "topics.npz")


def test_a_router_fitted_on_wordllama_routes_with_wordllama(topics_file, tmp_path):
    out = tmp_path / "knn"
    result = cli("fit", "--data", topics_file, "--router", "knn", "--param", "k=5", "--encoder", WORDLLAMA,
                 "--out", out)
    assert result.exit_code == 0, result.output
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["embedding_model"] == WORDLLAMA and manifest["embedding_dim"] == 256
    assert load_router(out).encoder.model == WORDLLAMA
    result = cli("route", out, *NEW, "--top-k", "1")
    assert result.exit_code == 0, result.output
    assert [json.loads(line)["ranking"][0]["llm"] for line in result.stdout.splitlines()] == list(NEW.values())


def test_a_router_served_with_another_encoder_than_it_was_fitted_on_is_one_error(topics_file, tmp_path):
    out = tmp_path / "knn"
    assert cli("fit", "--data", topics_file, "--router", "knn", "--param", "k=5", "--encoder", WORDLLAMA,
               "--out", out).exit_code == 0
    manifest = json.loads((out / "manifest.json").read_text())
    (out / "manifest.json").write_text(json.dumps({**manifest, "embedding_model": DEFAULT_MODEL}))
    assert_cli_error(cli("route", out, "What is 2 + 2?"), "256-dimensional", f"{DEFAULT_MODEL} gives 384")


def test_an_unknown_encoder_is_one_line_before_any_work(topics_file, tmp_path):
    result = cli("fit", "--data", topics_file, "--router", "knn", "--encoder", "no-such-encoder",
                 "--out", tmp_path / "r")
    assert_cli_error(result, "--encoder", "no-such-encoder", WORDLLAMA)
    assert not (tmp_path / "r").exists()


def test_add_llm_encodes_with_the_routers_encoder_not_the_datas_minilm_vectors(topics_file, tmp_path):
    out = tmp_path / "als"
    assert cli("fit", "--data", topics_file, "--router", "als", "--param", "factors=4", "--encoder", WORDLLAMA,
               "--out", out).exit_code == 0
    minilm_record = load_dataset("routerbench").embedding_model
    newcomer = RoutingData(scores=np.ones((len(MATH), 1), dtype=np.float32),
                           prompt_ids=np.array([f"n{i}" for i in range(len(MATH))]), models=np.array(["C"]),
                           prompts=MATH, embeddings=np.eye(len(MATH), 384, dtype=np.float32),
                           embedding_model=minilm_record, source="newcomer")
    result = cli("add-llm", out, "--data", save_npz(newcomer, tmp_path / "newcomer.npz"))
    assert result.exit_code == 0, result.output
    assert load_router(out).models == ["A", "B", "C"]
