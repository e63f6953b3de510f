"""Every bad input is one RecrouteError naming the file; through the CLI, exit 2 and one line."""
from __future__ import annotations

import os
import pickle

import numpy as np
import pytest

from conftest import assert_cli_error, run_cli, write_file as _write
from recroute.data import RoutingData
from recroute.datasets import resolve
from recroute.errors import RecrouteError
from recroute.loaders import load, load_routereval_pickle


def _npz(**arrays):
    def write(path):
        with open(path, "wb") as f:  # a file object: np.savez would otherwise append '.npz'
            np.savez(f, **arrays)
    return write


def _npy(path):
    with open(path, "wb") as f:
        np.save(f, np.zeros(3))


GOOD = dict(scores=np.ones((1, 1)), prompt_ids=np.array(["p"]), models=np.array(["m"]))
LONG = "prompt_id,model,score"

# file name, content (text, bytes or a writer), a fragment the message must hold
CASES = {
    "empty csv": ("e.csv", b"", "is empty"),
    "empty jsonl": ("e.jsonl", b"", "is empty"),
    "empty json": ("e.json", b"", "is empty"),
    "empty npz": ("e.npz", b"", "is empty"),
    "header only": ("h.csv", LONG + "\n", "no records"),
    "no score column": ("s.csv", "prompt_id,model,cost\np,a,0.1\n", "missing column 'score'"),
    "misspelled score": ("s.csv", "prompt_id,model,scroe\np,a,1\n", "'score'"),
    "misspelled group": ("g.csv", LONG + ",grup\np,a,1,x\n", "did you mean 'group'"),
    "non-numeric score": ("n.csv", LONG + "\np,a,abc\n", "'abc' is not a number"),
    "nan score csv": ("n.csv", LONG + "\np,a,nan\n", "leave a cell empty"),
    "nan score jsonl": ("n.jsonl", '{"prompt_id": "p", "model": "a", "score": NaN}\n', "leave a cell empty"),
    "nan in wide csv": ("w.csv", "prompt,gpt,llama\nq,1,nan\n", "leave a cell empty"),
    "conflicting duplicate": ("d.csv", LONG + "\np,a,1\np,a,0\n", "repeats line 2"),
    "negative cost long": ("c.csv", LONG + ",cost\np,a,1,-0.5\n", "negative cost"),
    "negative cost wide": ("c.csv", "prompt,gpt,gpt|total_cost\nq,1,-0.5\n", "negative cost"),
    "cost names no LLM": ("c.csv", "prompt,gpt,claude|total_cost\nq,1,0.1\n", "no score column 'claude'"),
    "json not a list": ("j.json", '{"question": "q", "scores": {"a": 1}}', "non-empty JSON list"),
    "json without scores": ("j.json", '[{"question": "q"}]', "lacks a 'question' string or a 'scores'"),
    "json null score": ("j.json", '[{"question": "q", "scores": {"a": null}}]', "empty 'a'"),
    "invalid json": ("j.json", '[{"question": "q", ', "invalid JSON"),
    "npz without models": ("m.npz", _npz(scores=GOOD["scores"], prompt_ids=GOOD["prompt_ids"]), "'models'"),
    "npz object array": ("o.npz", _npz(**{**GOOD, "prompt_ids": np.array(["p"], dtype=object)}), "holds Python objects"),
    "corrupt npz": ("r.npz", np.random.default_rng(0).bytes(512), "is not an .npz"),
    "npy named npz": ("a.npz", _npy, "is not an .npz"),
    "unknown extension": ("data.txt", "prompt,gpt\nq,1\n", "unknown format '.txt'"),
}


def _check(target, fragment, *extra_args):
    """The library raises RecrouteError naming the target; the CLI exits 2 with one clean line."""
    with pytest.raises(RecrouteError) as exc:
        resolve(str(target), allow_pickle="--allow-pickle" in extra_args)
    assert str(target) in str(exc.value) and fragment in str(exc.value), str(exc.value)
    assert "\n" not in str(exc.value)
    assert_cli_error(run_cli("info", "--data", target, *extra_args), str(target), fragment)


@pytest.mark.parametrize("case", sorted(CASES))
def test_bad_file(case, tmp_path):
    name, content, fragment = CASES[case]
    _write(tmp_path / name, content)
    _check(tmp_path / name, fragment)


def test_misspelled_score_names_both_spellings(tmp_path):
    path = tmp_path / "s.csv"
    path.write_text("prompt_id,model,scroe\np,a,1\n")
    with pytest.raises(RecrouteError, match=r"'score'.*'scroe'|'scroe'.*'score'"):
        load(path)


@pytest.mark.parametrize("target, fragment", [
    ("missing.csv", "file not found"),
    ("folder.csv", "is a folder"),
    ("plainfolder", "unknown format"),
    ("routerbnech", "neither a bundled dataset"),
])
def test_missing_folder_and_unknown_name(target, fragment, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "folder.csv").mkdir()
    (tmp_path / "plainfolder").mkdir()
    _check(target, fragment)


class _Payload:
    """Unpickling this creates a marker file: proof that the pickle ran."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return open, (self.marker, "w")


def test_pickle_is_refused_and_never_executed(tmp_path):
    marker, path = tmp_path / "ran", tmp_path / "evil.pkl"
    payload = pickle.dumps(_Payload(marker))
    path.write_bytes(payload)
    _check(path, "--allow-pickle")
    with pytest.raises(RecrouteError, match="allow-pickle"):
        load_routereval_pickle(path)
    assert not marker.exists()
    pickle.loads(payload).close()  # the payload does work: the checks above could have failed
    assert marker.exists()


def _routereval(n=(4, 2, 3), m=3, dim=5):
    rng = np.random.default_rng(1)
    data = {}
    for split, k in zip(("train", "val", "test"), n):
        data[f"{split}_score"] = rng.integers(0, 2, size=(k, m)).astype(float)
        data[f"{split}_embed"] = rng.normal(size=(k, dim))
    prompts = {f"{s}_prompt": [f"{s} question {i}" for i in range(k)] for s, k in zip(("train", "val", "test"), n)}
    return {"model": [f"llm{j}" for j in range(m)], "prompt": prompts, "data": data}


def test_routereval_pickle_with_allow_pickle(tmp_path):
    obj, path = _routereval(), tmp_path / "router_dataset.pkl"
    path.write_bytes(pickle.dumps(obj))
    data = load(path, allow_pickle=True)
    assert (data.n_prompts, data.n_models) == (9, 3)
    assert list(data.models) == ["llm0", "llm1", "llm2"]
    assert list(data.splits) == ["train"] * 4 + ["val"] * 2 + ["test"] * 3
    assert data.prompts[4] == "val question 0" and data.prompt_ids[4] == "val/0"
    stacked = [obj["data"][f"{s}_score"] for s in ("train", "val", "test")]
    np.testing.assert_array_equal(data.scores, np.concatenate(stacked))
    embeds = np.concatenate([obj["data"][f"{s}_embed"] for s in ("train", "val", "test")])
    np.testing.assert_allclose(data.embeddings, embeds, rtol=1e-6)
    parts = data.source_split()
    assert (parts.train.n_prompts, parts.val.n_prompts, parts.test.n_prompts) == (4, 2, 3)
    result = run_cli("info", "--data", path, "--allow-pickle")
    assert result.exit_code == 0, result.output
    assert "9 prompts × 3 LLMs" in result.output


@pytest.mark.parametrize("change, fragment", [
    (lambda obj: obj["data"].update(train_score=[["x", "y", "z"]] * 4), "scores must hold real numbers"),
    (lambda obj: obj.update(prompt=["not", "a", "dict"]), "malformed RouterEval"),
    (lambda obj: obj["data"].update(val_score=np.ones((2, 4))), "models must hold 4 entries"),
    (lambda obj: obj.pop("data"), "not a RouterEval router dataset"),
])
def test_malformed_routereval_pickle(change, fragment, tmp_path):
    obj, path = _routereval(), tmp_path / "router_dataset.pkl"
    change(obj)
    path.write_bytes(pickle.dumps(obj))
    _check(path, fragment, "--allow-pickle")


def _snapshot(folder):
    return {p: (p.stat().st_size, p.stat().st_mtime_ns) for p in sorted(folder.rglob("*"))}


def test_bad_input_writes_nothing(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    for case, (name, content, _) in CASES.items():
        _write(tmp_path / f"{case.replace(' ', '_')}_{name}", content)
    before = _snapshot(tmp_path)
    for path in list(before):
        with pytest.raises(RecrouteError):
            load(path)
        assert run_cli("info", "--data", path).exit_code == 2
    assert run_cli("info", "--data", "missing.npz").exit_code == 2
    assert _snapshot(tmp_path) == before
    assert sorted(os.listdir(tmp_path)) == sorted(p.name for p in before)


# -- RoutingData's own validation ----------------------------------------------
def _data(**changes):
    fields = dict(scores=[[1.0, 0.0], [0.0, np.nan]], prompt_ids=["p1", "p2"], models=["a", "b"], source="mem")
    return RoutingData(**{**fields, **changes})


@pytest.mark.parametrize("changes, fragment", [
    (dict(cost=np.zeros((2, 3))), "cost has shape (2, 3)"),
    (dict(scores=[[1.0, np.inf], [0.0, 1.0]]), "infinite"),
    (dict(models=["a", "a"]), "'a' appears 2 times"),
    (dict(prompt_ids=["p1", "p1"]), "'p1' appears 2 times"),
    (dict(scores=np.zeros((5, 2)), prompt_ids=["x", "x", "y", "y", "y"]), "'x' appears 2 times"),
    (dict(cost=[[0.1, -0.1], [0.0, 0.0]]), "non-negative"),
    (dict(splits=["train", "dev"]), "found ['dev']"),
])
def test_routing_data_validation(changes, fragment):
    _data()  # the unchanged fields are valid
    with pytest.raises(RecrouteError) as exc:
        _data(**changes)
    assert fragment in str(exc.value) and str(exc.value).startswith("mem: ")
