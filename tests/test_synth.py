"""Synthetic data with known structure: what `recroute synth` promises about its outcomes and truth."""
from __future__ import annotations

import numpy as np
import pytest
from click.testing import CliRunner
from scipy.special import expit

from conftest import assert_cli_error
from recroute.cli import main
from recroute.errors import RecrouteError
from recroute.loaders import load
from recroute.synth import BLOCK_ROWS, load_truth, synthetic


def test_outcomes_are_bernoulli_draws_of_the_item_response_model():
    n, m = BLOCK_ROWS + 500, 60  # more than one block of rows
    data, truth = synthetic(n, m, skills=3, dim=16, seed=4)
    assert data.scores.shape == (n, m) and data.scores.dtype == np.float32
    assert set(np.unique(data.scores)) == {0.0, 1.0}
    p = expit(truth.ability[None, :] + truth.needs @ truth.skills.T - truth.difficulty[:, None])
    assert truth.probability() == pytest.approx(p, abs=1e-6)
    # draws follow their probabilities: per-LLM means within sampling error, and cell-wise calibration
    assert np.abs(data.scores.mean(axis=0) - p.mean(axis=0)).max() < 4 * np.sqrt(0.25 / n)
    for low in (0.1, 0.5, 0.8):
        cells = (p > low) & (p < low + 0.1)
        assert data.scores[cells].mean() == pytest.approx(p[cells].mean(), abs=0.02)


def test_the_truly_best_llm_is_known_for_every_prompt():
    data, truth = synthetic(BLOCK_ROWS * 2 + 7, 25, seed=1)
    best = truth.best_llm()
    assert best.tolist() == np.argmax(truth.probability(), axis=1).tolist()
    # and it is not one LLM for all: the skills make different LLMs best for different prompts
    assert len(np.unique(best)) >= 5


def test_groups_are_the_dominant_skill_and_embeddings_carry_the_needs():
    data, truth = synthetic(3000, 10, skills=4, dim=32, noise=0.5, seed=2)
    assert data.groups.tolist() == [f"skill-{j}" for j in np.argmax(truth.needs, axis=1)]
    assert data.embeddings.shape == (3000, 32)
    # a linear map from embedding back to the needs explains most of their variance
    coef, *_ = np.linalg.lstsq(data.embeddings, truth.needs, rcond=None)
    residual = truth.needs - data.embeddings @ coef
    assert residual.var() / truth.needs.var() < 0.2


def test_the_same_seed_gives_the_same_data_and_another_seed_does_not():
    a, _ = synthetic(200, 30, seed=7)
    b, _ = synthetic(200, 30, seed=7)
    c, _ = synthetic(200, 30, seed=8)
    assert np.array_equal(a.scores, b.scores) and np.array_equal(a.embeddings, b.embeddings)
    assert not np.array_equal(a.scores, c.scores)


@pytest.mark.parametrize("kwargs", [{"n_prompts": 0, "n_llms": 5}, {"n_prompts": 5, "n_llms": 0},
                                    {"n_prompts": 5, "n_llms": 5, "skills": 0}, {"n_prompts": 2.5, "n_llms": 5}])
def test_bad_sizes_are_refused(kwargs):
    with pytest.raises(RecrouteError, match="at least 1"):
        synthetic(**kwargs)


def test_cli_writes_loadable_outcomes_with_their_truth(tmp_path):
    out = tmp_path / "synth.npz"
    result = CliRunner().invoke(main, ["synth", "--prompts", "300", "--llms", "40", "--skills", "2",
                                       "--seed", "3", "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert "300 prompts × 40 LLMs" in result.output
    data, truth = load(out), load_truth(out)
    expected, expected_truth = synthetic(300, 40, skills=2, seed=3)
    assert np.array_equal(data.scores, expected.scores)
    assert data.models.tolist() == expected.models.tolist() and data.groups.tolist() == expected.groups.tolist()
    assert np.array_equal(truth.needs, expected_truth.needs)
    assert np.array_equal(truth.best_llm(), expected_truth.best_llm())


def test_load_truth_of_a_file_without_one_names_the_file(tmp_path):
    from recroute.loaders import save_npz

    plain = save_npz(synthetic(20, 3)[0], tmp_path / "plain.npz")
    with pytest.raises(RecrouteError, match="plain.npz: holds no synthetic truth"):
        load_truth(plain)


@pytest.mark.parametrize("args,fragments", [
    (["--prompts", "0", "--llms", "3", "--out", "{dir}/s.npz"], ["at least 1 prompts"]),
    (["--prompts", "5", "--llms", "3", "--out", "{dir}/missing/s.npz"], ["missing", "does not exist"]),
    (["--prompts", "5", "--llms", "3", "--out", "{dir}/s.csv"], ["s.csv", ".npz"]),
])
def test_cli_bad_input(tmp_path, args, fragments):
    args = [a.replace("{dir}", str(tmp_path)) for a in args]
    result = CliRunner().invoke(main, ["synth", *args])
    assert_cli_error(result, *fragments)
    assert not (tmp_path / "s.npz").exists()
