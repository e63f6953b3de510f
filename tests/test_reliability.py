"""Issue 13's reproductions: each once broke the promise that bad input is one sentence naming it, exit 2.

Grouped by cause: tracebacks while reading (1), router folders trusted at load (2),
unchecked hyperparameters (5), outputs (3, 4), accepted-but-wrong input (6), refusals
that broke the one-line form (7) and router folders lost or half-updated (8).
"""
from __future__ import annotations

import inspect
import json
import os
import pickle
import shutil
import zipfile

import numpy as np
import pytest

from conftest import assert_cli_error, run_cli, write_file as _write
from recroute.data import RoutingData
from recroute.errors import RecrouteError
from recroute.loaders import load
from recroute.params import PARAMS, check_params
from recroute.routers import ROUTERS, make_router
from recroute.store import ARRAYS, COST, MANIFEST, load_cost_model, load_router, save_router

MODELS = ["m0", "m1", "m2"]


def _npz(**arrays):
    def write(path):
        with open(path, "wb") as f:
            np.savez(f, **arrays)
    return write


def _refused(path, *fragments, args=()):
    """The CLI refuses ``path`` in one line naming it, exit 2; the library raises RecrouteError."""
    assert_cli_error(run_cli("info", "--data", path, *args), str(path), *fragments)


DEEP = "[" * 100_000 + "]" * 100_000
BASE = dict(scores=np.ones((2, 1)), prompt_ids=np.array(["p", "q"]), models=np.array(["m"]))
TEXTS = "héllo".encode() + b"w"

# -- 1. tracebacks while reading ----------------------------------------------------------------
READ_CASES = {
    "400-digit integer score, jsonl": ("a.jsonl", '{"prompt_id": "p", "model": "a", "score": %s}\n' % ("9" * 400),
                                       "too large"),
    "400-digit integer cost, jsonl": ("a.jsonl", '{"prompt_id": "p", "model": "a", "score": 1, "cost": %s}\n'
                                      % ("9" * 400), "too large"),
    "400-digit integer score, json": ("a.json", '[{"question": "q", "scores": {"a": %s}}]' % ("9" * 400), "too large"),
    "400-digit score, csv": ("a.csv", "prompt_id,model,score\np,a,%s\n" % ("9" * 400), "too large"),
    "json nested deeply": ("a.json", DEEP, "nested too deeply"),
    "jsonl nested deeply": ("a.jsonl", DEEP + "\n", "nested too deeply"),
    "lone surrogate LLM name": ("a.jsonl", '{"prompt_id": "p", "model": "\\ud800", "score": 1}\n', "not valid UTF-8"),
    "prompts_utf8 without offsets": ("a.npz", _npz(**BASE, prompts_utf8=np.frombuffer(b"ab", np.uint8)),
                                     "without the other"),
    "offsets split a character": ("a.npz", _npz(**BASE, prompts_utf8=np.frombuffer(TEXTS, np.uint8),
                                                prompts_offsets=np.array([0, 2, len(TEXTS)])), "not UTF-8"),
    "float offsets": ("a.npz", _npz(**BASE, prompts_utf8=np.frombuffer(TEXTS, np.uint8),
                                    prompts_offsets=np.array([0.0, 3.0, len(TEXTS)])), "'prompts_offsets' must be"),
    "offsets past the end": ("a.npz", _npz(**BASE, prompts_utf8=np.frombuffer(TEXTS, np.uint8),
                                           prompts_offsets=np.array([0, 3, 99])), "'prompts_offsets' must be"),
}


@pytest.mark.parametrize("case", list(READ_CASES))
def test_reading_bad_input_is_one_line_never_a_traceback(case, tmp_path):
    name, content, fragment = READ_CASES[case]
    path = _write(tmp_path / name, content)
    _refused(path, fragment)
    with pytest.raises(RecrouteError):
        load(path)


class _Raises:
    def __reduce__(self):
        return (int, ("not a number",))  # runs int("not a number") when unpickled: a ValueError


@pytest.mark.parametrize("payload, fragment", [
    (b"cno_such_module\nobj\n.", "ModuleNotFoundError"),  # protocol 0: GLOBAL module name, STOP
    (b"cjson\nno_such_attribute\n.", "AttributeError"),
    (pickle.dumps(_Raises()), "ValueError"),
])
def test_a_pickle_that_fails_to_unpickle_is_one_line(payload, fragment, tmp_path):
    path = _write(tmp_path / "bad.pkl", payload)
    _refused(path, "cannot be unpickled", fragment, args=("--allow-pickle",))


# -- 2. router folders are checked against their manifest at load -------------------------------------------
def _data(n=60, dim=8, seed=0) -> RoutingData:
    rng = np.random.default_rng(seed)
    emb = rng.normal(size=(n, dim)).astype(np.float32)
    scores = (rng.random((n, len(MODELS))) < 0.5).astype(np.float32)
    return RoutingData(scores=scores, prompt_ids=[f"p{i}" for i in range(n)], models=MODELS, embeddings=emb,
                       prompts=[f"prompt {i}" for i in range(n)], cost=np.full((n, len(MODELS)), 0.01, np.float32))


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    """Saved routers of several kinds (one with a cost model) to copy and damage."""
    from recroute.cost import CostModel

    data, root = _data(), tmp_path_factory.mktemp("routers")
    specs = {"bilinear": dict(factors=4, epochs=5), "als": dict(factors=4, iterations=3, cold_start="ridge"),
             "knn": dict(k=3), "linear": dict(epochs=2)}
    out = {}
    for name, params in specs.items():
        router = make_router(name, **params).fit(data)
        out[name] = save_router(router, root / name, embedding_model="stub", embedding_dim=8,
                                cost_model=CostModel().fit(data))
    return out


def _arrays(path):
    with np.load(path, allow_pickle=False) as npz:
        return {k: npz[k] for k in npz.files}


def _rewrite(name, change, file=ARRAYS):
    def apply(folder):
        arrays = change(_arrays(folder / file))
        with open(folder / file, "wb") as f:
            np.savez(f, **arrays)
    return name, apply


def _huge_header(folder):
    """An array header claiming 10**12 elements over the real data (numpy would allocate them all first)."""
    arrays = _arrays(folder / ARRAYS)
    with zipfile.ZipFile(folder / ARRAYS, "w") as archive:
        for name, array in arrays.items():
            with archive.open(f"{name}.npy", "w") as member:
                if name == "llm_bias_":
                    header = {"descr": "<f4", "fortran_order": False, "shape": (10**12,)}
                    np.lib.format.write_array_header_1_0(member, header)
                    member.write(array.tobytes())
                else:
                    np.lib.format.write_array(member, array)


FOLDER_DAMAGE = {
    "projection_ cut to 3 rows": ("bilinear", *_rewrite("x", lambda a: {**a, "projection_": a["projection_"][:3]})[1:],
                                  "'projection_' has shape (3, 4), expected (8, 4)"),
    "one-element calibration_": ("bilinear", _rewrite("x", lambda a: {**a, "calibration_": a["calibration_"][:1]})[1],
                                 "'calibration_' has shape (1,)"),
    "NaN in calibration_": ("bilinear", _rewrite("x", lambda a: {**a, "calibration_": np.array([np.nan, 1.0],
                                                                                              np.float32)})[1],
                            "'calibration_' holds NaN"),
    "kNN labels_ narrowed": ("knn", _rewrite("x", lambda a: {**a, "labels_": a["labels_"][:, :2]})[1],
                             "'labels_' has shape"),
    "ALS cold-start weight mis-shaped": ("als", _rewrite("x", lambda a: {**a, "cold_start.coef": a["cold_start.coef"].T})[1],
                                         "'cold_start.coef' has shape"),
    "float64 weights as text": ("linear", _rewrite("x", lambda a: {**a, "network.bias": a["network.bias"].astype(str)})[1],
                                "'network.bias' has dtype"),
    "arrays.npz of another router": ("bilinear", lambda f: shutil.copy(f.parent / "knn-copy" / ARRAYS, f / ARRAYS),
                                     "lacks the array"),
    "manifest naming another router": ("bilinear", lambda f: (f / MANIFEST).write_text(json.dumps(
        {**json.loads((f / MANIFEST).read_text()), "router": "linear", "params": {}})), "lacks the array"),
    "header claiming 10**12 elements": ("bilinear", _huge_header, "claims shape (1000000000000,)"),
}


@pytest.mark.parametrize("case", list(FOLDER_DAMAGE))
def test_a_router_folder_is_checked_against_its_manifest_at_load(folders, case, tmp_path):
    source, damage, fragment = FOLDER_DAMAGE[case]
    folder = tmp_path / "r"
    shutil.copytree(folders[source], folder)
    shutil.copytree(folders["knn"], tmp_path / "knn-copy")
    damage(folder)
    with pytest.raises(RecrouteError) as info:
        load_router(folder)
    assert fragment in str(info.value) and str(folder) in str(info.value), str(info.value)
    assert_cli_error(run_cli("route", folder, "hello"), str(folder), fragment)


@pytest.mark.parametrize("change, fragment", [
    (lambda a: {**a, "intercept_": np.array([np.nan, 0.0, 0.0])}, "'intercept_' holds NaN"),
    (lambda a: {**a, "intercept_": -np.abs(a["intercept_"]) - 1}, "finite and non-negative"),
    (lambda a: {**a, "slope_": a["slope_"][:2]}, "'slope_' has shape (2,), expected (3,)"),
])
def test_a_saved_cost_model_is_checked_at_load(folders, tmp_path, change, fragment):
    folder = tmp_path / "r"
    shutil.copytree(folders["linear"], folder)
    _rewrite("x", change, file=COST)[1](folder)
    with pytest.raises(RecrouteError) as info:
        load_cost_model(folder)
    assert fragment in str(info.value) and str(folder / COST) in str(info.value), str(info.value)


# -- 5. hyperparameters are declared and checked --------------------------------------------------
@pytest.mark.parametrize("router, param, fragment", [
    ("bilinear", "lr=NaN", "lr must be a number"),
    ("bilinear", "lr=-1", "lr must be a number at least"),
    ("bilinear", "factors=-4", "factors must be an integer at least 1"),
    ("bilinear", "factors=1000000000", "at most 4,096"),
    ("bilinear", "epochs=-3", "epochs must be an integer at least 1"),
    ("bilinear", "debias_clip=abc", "debias_clip must be a number at least 1"),
    ("knn", "k=0", "k must be an integer at least 1"),
    ("als", "cold_start=telepathy", "cold_start must be one of"),
    ("mlp", "dropout=1", "dropout must be a number at least 0 and below 1"),
    ("linear", "depth=3", "has no hyperparameter 'depth'"),
])
def test_a_bad_hyperparameter_is_one_sentence_before_any_work(router, param, fragment, tmp_path):
    result = run_cli("fit", "--router", router, "--param", param, "--out", tmp_path / "r")
    assert_cli_error(result, fragment)
    assert not (tmp_path / "r").exists()
    name, _, value = param.partition("=")
    with pytest.raises(RecrouteError, match="must be|has no"):
        make_router(router, **{name: json.loads(value) if value[0].isdigit() or value[0] == "-" else value})


@pytest.mark.parametrize("name", list(ROUTERS))
def test_every_router_declares_exactly_the_hyperparameters_it_takes(name):
    taken = list(inspect.signature(ROUTERS[name]).parameters)
    assert list(PARAMS[name]) == taken
    defaults = ROUTERS[name]().get_params()
    check_params(name, json.loads(json.dumps(defaults)))  # as a manifest gives them back
    assert make_router(name, **json.loads(json.dumps(defaults))).get_params() == defaults


def test_good_hyperparameters_pass_and_null_turns_debiasing_off():
    assert make_router("knn", k=1, debias_clip=None).k == 1
    assert make_router("bilinear", lr=0.5, factors=4096, debias_clip=1.0).factors == 4096


# -- 3, 4. outputs are checked before the work, and never replace an input ----------------------------
SMALL_DATA = "prompt_id,model,score,cost\n" + "".join(
    f"p{i},m{j},{(i + j) % 2},0.0{j + 1}\n" for i in range(12) for j in range(3))


@pytest.fixture
def small(tmp_path):
    return _write(tmp_path / "d.csv", SMALL_DATA)


def _unchanged(path, before):
    assert path.read_bytes() == before


@pytest.mark.parametrize("command", [
    lambda d, t: ["eval", "--data", d, "--routers", "bsm", "--json", t],
    lambda d, t: ["scaling", "--data", d, "--out", t.with_suffix(".png")],
    lambda d, t: ["pair", "--data", d, "--routers", "bsm", "--out", t.with_suffix(".png")],
    lambda d, t: ["pareto", "--data", d, "--routers", "bsm", "--out", t.with_suffix(".png")],
    lambda d, t: ["pair", "--data", d, "--routers", "bsm", "--json", t],
])
def test_an_output_onto_a_folder_is_refused_before_the_work(small, tmp_path, command):
    target = tmp_path / "taken.json"
    target.mkdir()
    target.with_suffix(".png").mkdir()
    assert_cli_error(run_cli(*command(small, target)), "is a folder")


def test_an_output_under_a_file_is_refused(small, tmp_path):
    assert_cli_error(run_cli("eval", "--data", small, "--routers", "bsm", "--json", small / "x.json"),
                     f"{small} is a file")
    assert_cli_error(run_cli("fit", "--data", small, "--router", "bsm", "--out", small / "r"), f"{small} is a file")


def test_an_unwritable_destination_is_refused_where_it_is_checked(small, tmp_path, monkeypatch):
    """A folder the process cannot write to (simulated: root writes anywhere, and CI runs as root): the probe
    file cannot be created, as on a read-only file system."""
    import tempfile as tempfile_module

    def refuse(*args, **kwargs):
        raise PermissionError(13, "Read-only file system")

    monkeypatch.setattr(tempfile_module, "TemporaryFile", refuse)
    result = run_cli("eval", "--data", small, "--routers", "bsm", "--json", tmp_path / "x.json")
    assert_cli_error(result, "cannot be written", "Read-only file system")
    assert not (tmp_path / "x.json").exists()


def test_no_command_writes_over_its_input(tmp_path):
    data = _write(tmp_path / "d.json", json.dumps([{"question": f"q{i}", "scores": {"a": i % 2, "b": 1 - i % 2}}
                                                   for i in range(12)]))
    before = data.read_bytes()
    assert_cli_error(run_cli("eval", "--data", data, "--routers", "bsm", "--json", data), "is one of this command's inputs")
    _unchanged(data, before)
    assert_cli_error(run_cli("scaling", "--data", data, "--out", tmp_path / "d.png"), "is one of this command's inputs")
    _unchanged(data, before)
    assert not (tmp_path / "d.png").exists()


# -- 6. input that was accepted but read wrong ----------------------------------------------------------------
def _pickled(obj):
    return pickle.dumps(obj)


WRONG_CASES = {
    "stray quote swallows the CSV": ("a.csv", 'prompt_id,model,score,prompt\np1,a,1,"what\np2,a,1,x\np3,a,0,y\n',
                                     "malformed CSV"),
    "ids 1 and '1'": ("a.jsonl", '{"prompt_id": 1, "model": "a", "score": 1}\n'
                                 '{"prompt_id": "1", "model": "b", "score": 0}\n', "use one type for ids"),
    "ids true and 'True'": ("a.jsonl", '{"prompt_id": true, "model": "a", "score": 1}\n'
                                       '{"prompt_id": "True", "model": "b", "score": 0}\n',
                            "'prompt_id' must be a string or an integer"),
    "repeated JSON key": ("a.json", '[{"question": "q", "scores": {"a": 1, "a": 0}}]', "'a' appears twice"),
    "repeated JSONL key": ("a.jsonl", '{"prompt_id": "p", "model": "a", "score": 1, "score": 0}\n', "appears twice"),
    "list as LLM name": ("a.jsonl", '{"prompt_id": "p", "model": ["a"], "score": 1}\n', "'model' must be a string"),
    "NaN as LLM name": ("a.jsonl", '{"prompt_id": "p", "model": NaN, "score": 1}\n', "'model' must be a string"),
    "object as LLM name": ("a.jsonl", '{"prompt_id": "p", "model": {}, "score": 1}\n', "'model' must be a string"),
    "misspelled column after line 1": ("a.jsonl", '{"prompt_id": "p", "model": "a", "score": 1}\n'
                                                  '{"prompt_id": "q", "model": "a", "score": 1, "scroe": 0}\n',
                                       "did you mean 'score'"),
    "1_0 as a number": ("a.csv", "prompt_id,model,score\np,a,1_0\n", "is not a number"),
    "Arabic-Indic digits": ("a.csv", "prompt_id,model,score\np,a,\u0661\n", "is not a number"),
    "complex scores": ("a.npz", _npz(scores=np.ones((2, 1), complex), prompt_ids=np.array(["p", "q"]),
                                     models=np.array(["m"])), "must hold real numbers"),
    "timedelta scores": ("a.npz", _npz(scores=np.ones((2, 1), "m8[s]"), prompt_ids=np.array(["p", "q"]),
                                       models=np.array(["m"])), "must hold real numbers"),
}


@pytest.mark.parametrize("case", list(WRONG_CASES))
def test_input_once_read_wrong_is_refused(case, tmp_path):
    name, content, fragment = WRONG_CASES[case]
    _refused(_write(tmp_path / name, content), fragment)


def test_a_pickle_whose_model_is_a_string_is_refused(tmp_path):
    obj = {"model": "ab", "data": {"train_score": np.ones((2, 2))}}
    _refused(_write(tmp_path / "r.pkl", _pickled(obj)), "'model' must be a list of LLM names", args=("--allow-pickle",))


def test_a_bom_is_not_part_of_a_column_name_or_a_prompt(tmp_path):
    from recroute.cli.routers import _read_prompts

    path = _write(tmp_path / "a.csv", "\ufeffprompt_id,model,score\np,a,1\n")
    assert list(load(path).prompt_ids) == ["p"]
    prompts = _write(tmp_path / "p.jsonl", '\ufeff{"prompt": "hi"}\n')
    assert _read_prompts(prompts) == ["hi"]
    assert _read_prompts(_write(tmp_path / "p.txt", "\ufeffhello\n")) == ["hello"]


@pytest.mark.parametrize("args, fragment", [
    (["eval", "--pool-sizes", ""], "names nothing"),
    (["eval", "--routers", ""], "names nothing"),
    (["eval", "--routers", "bsm,bsm"], "'bsm' twice"),
    (["eval", "--routers", "bsm", "--reference", "nan"], "finite and positive"),
    (["eval", "--routers", "bsm", "--reference", "-1"], "finite and positive"),
    (["pareto", "--output-tokens", "-5", "--out", "x.png"], "-5 is not in the range x>=0"),
])
def test_options_that_ran_nothing_or_nonsense_are_refused(small, args, fragment):
    assert_cli_error(run_cli(*args, "--data", small), fragment)


def test_a_pool_naming_an_llm_twice_or_none_is_refused(folders):
    assert_cli_error(run_cli("route", folders["linear"], "hi", "--pool", "m0,m0", "--cost-weight", "1"), "'m0' twice")
    assert_cli_error(run_cli("route", folders["linear"], "hi", "--pool", ",", "--cost-weight", "1"), "names nothing")


# -- 7. every refusal is one line ----------------------------------------------------------------------
@pytest.mark.parametrize("name, content", [
    ("a.csv", "prompt_id,model,score\np,a,1e39\n"),
    ("a.jsonl", '{"prompt_id": "p", "model": "a", "score": 1e308}\n'),
    ("a.npz", _npz(scores=np.full((2, 1), 1e308), prompt_ids=np.array(["p", "q"]), models=np.array(["m"]))),
])
def test_scores_too_large_for_float32_are_one_line_without_a_warning(tmp_path, name, content):
    _refused(_write(tmp_path / name, content), "too large")


@pytest.mark.parametrize("content, fragment", [
    ("prompt_id,a,b\n" + "".join(f"p{i},,\n" for i in range(20)), "no observed outcome"),
    ("prompt_id,a,b\np1,1,0\n", "no candidate pool to evaluate"),
])
def test_eval_on_data_too_thin_names_the_file_in_one_line(tmp_path, content, fragment):
    path = _write(tmp_path / "thin.csv", content)
    assert_cli_error(run_cli("eval", "--data", path, "--routers", "bsm"), str(path), fragment)


@pytest.mark.parametrize("args, fragment", [
    (["route", "r", "hi", "--top-k", "abc"], "'abc' is not a valid integer"),
    (["eval", "--pool-sizes", "2.5"], "'2.5' is not a comma-separated list of ints"),
    (["fit"], "Missing option '--out'"),
])
def test_click_usage_errors_are_one_line_exit_2(args, fragment):
    assert_cli_error(run_cli(*args), fragment)


def test_adding_an_llm_already_there_says_so_before_prices(folders, tmp_path):
    data = _write(tmp_path / "new.csv", "prompt_id,model,score,prompt\np,m0,1,hello\n")
    assert_cli_error(run_cli("add-llm", folders["bilinear"], "--data", data), "already routes to 'm0'")


# -- 8. router folders survive failed swaps, kills and concurrent writers -----------------------------
@pytest.fixture(scope="module")
def plain_bilinear():
    return make_router("bilinear", factors=4, epochs=5).fit(_data())


def _save(router, folder):
    return save_router(router, folder, embedding_model="stub", embedding_dim=8)


def _bytes(folder):
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir())}


def _beside(folder):
    return sorted(p.name for p in folder.parent.iterdir() if p.name != f".{folder.name}.lock")


def test_a_failed_second_rename_puts_the_old_router_back(plain_bilinear, tmp_path, monkeypatch):
    import recroute.store as store

    folder = _save(plain_bilinear, tmp_path / "router")
    before = _bytes(folder)
    real_replace, calls = os.replace, []

    def second_fails(src, dst):
        calls.append(src)
        if len(calls) == 2:
            raise OSError(28, "No space left on device")
        return real_replace(src, dst)

    monkeypatch.setattr(store.os, "replace", second_fails)
    with pytest.raises(RecrouteError, match="No space left on device"):
        _save(plain_bilinear, folder)
    monkeypatch.undo()
    assert len(calls) == 3  # set aside, the failed swap, the old router put back
    assert _bytes(folder) == before and _beside(folder) == ["router"]
    assert load_router(folder)[1]["router"] == "bilinear"


def test_a_write_killed_between_its_renames_is_repaired_by_the_next_command(plain_bilinear, tmp_path):
    folder = _save(plain_bilinear, tmp_path / "router")
    before = _bytes(folder)
    os.replace(folder, tmp_path / ".router-old")  # the first rename happened...
    (tmp_path / ".router.tmp-abcd1234").mkdir()  # ...the new folder was written, then the process was killed
    router, manifest = load_router(folder)  # reading it puts the old router back and clears the leftovers
    assert manifest["router"] == "bilinear" and _bytes(folder) == before
    assert _beside(folder) == ["router"]


def test_a_write_killed_before_its_first_rename_leaves_nothing_after_the_next_write(plain_bilinear, tmp_path):
    folder = _save(plain_bilinear, tmp_path / "router")
    (tmp_path / ".router.tmp-k1lled00").mkdir()
    (tmp_path / ".router.tmp-k1lled00" / MANIFEST).write_text("{}")
    _save(plain_bilinear, folder)
    assert _beside(folder) == ["router"]


def test_a_second_writer_is_refused_at_once_while_the_first_holds_the_lock(plain_bilinear, tmp_path):
    import subprocess
    import sys

    folder = _save(plain_bilinear, tmp_path / "router")
    before = _bytes(folder)
    holder = subprocess.Popen(
        [sys.executable, "-c", "import fcntl, os, sys, time; fd = os.open(sys.argv[1], os.O_RDWR | os.O_CREAT); "
                               "fcntl.flock(fd, fcntl.LOCK_EX); print('held', flush=True); time.sleep(60)",
         str(tmp_path / ".router.lock")],
        stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        with pytest.raises(RecrouteError, match="another recroute command is writing this router"):
            _save(plain_bilinear, folder)
        assert_cli_error(run_cli("remove-llm", folder, "m0"), str(folder), "another recroute command is writing")
    finally:
        holder.kill()
        holder.wait()
    assert _bytes(folder) == before


def test_of_two_concurrent_add_llm_one_succeeds_and_the_other_loses_nothing(plain_bilinear, tmp_path):
    from recroute.serve import load_router as serve

    folder = _save(plain_bilinear, tmp_path / "router")
    first, second = serve(folder), serve(folder)  # both read the router before either writes
    emb, outcomes = _data(seed=1).embeddings[:10], np.ones(10)
    first.add_llm("new-a", [], outcomes, embeddings=emb).save(folder)
    second.add_llm("new-b", [], outcomes, embeddings=emb)
    with pytest.raises(RecrouteError, match="was changed by another recroute command"):
        second.save(folder)
    assert load_router(folder)[1]["models"] == MODELS + ["new-a"]
    serve(folder).add_llm("new-b", [], outcomes, embeddings=emb).save(folder)  # run again: both are there
    assert load_router(folder)[1]["models"] == MODELS + ["new-a", "new-b"]


def test_a_symlinked_router_folder_is_written_through_and_stays_a_link(plain_bilinear, tmp_path):
    from recroute.serve import load_router as serve

    real = _save(plain_bilinear, tmp_path / "real")
    link = tmp_path / "link"
    link.symlink_to(real, target_is_directory=True)
    serve(link).remove_llm("m2").save(link)
    assert link.is_symlink() and os.path.realpath(link) == str(real)
    assert load_router(real)[1]["models"] == ["m0", "m1"]


def test_route_refuses_prompts_that_are_not_utf8_or_nested_too_deeply(folders, tmp_path):
    assert_cli_error(run_cli("route", folders["linear"], "caf\udce9"), "prompt 0 is not valid UTF-8")  # $'caf\xe9'
    deep = _write(tmp_path / "x.jsonl", DEEP + "\n")
    assert_cli_error(run_cli("route", folders["linear"], "--input", deep), f"{deep}:1", "nested too deeply")
    copy = tmp_path / "r"
    shutil.copytree(folders["linear"], copy)
    (copy / MANIFEST).write_text(DEEP)
    assert_cli_error(run_cli("route", copy, "hi"), str(copy / MANIFEST), "nested too deeply")
