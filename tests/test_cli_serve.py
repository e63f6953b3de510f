"""`recroute fit` and `recroute route` end to end, on a small topical dataset encoded with the real model.

60 short prompts of three topics (math, code, history); LLM A answers the math
prompts, B the code prompts, C the history prompts, and nothing else. The
prompts' embeddings are computed once with the bundled MiniLM model (384-d),
exactly as `route` will encode new prompts, and written with the texts into an
.npz. A router fitted on it must send a new math prompt to A, a code prompt to
B and a history prompt to C. Every bad input exits 2 with one line, never a
traceback. The embedding cache lives in a temporary folder (RECROUTE_CACHE).
"""
from __future__ import annotations

import csv
import json
import shutil

import numpy as np
import pytest

from conftest import assert_cli_error, private_cache_on_one_thread, run_cli as cli
from recroute.data import RoutingData
from recroute.embed import Encoder
from recroute.loaders import save_npz

LLMS = ["A", "B", "C"]

MATH = [
    "What is 17 plus 25?", "Solve for x: 3x + 7 = 22.", "Compute the derivative of x^3 + 2x.",
    "What is the integral of sin(x) from 0 to pi?", "Find the square root of 144.", "What is 12 times 11?",
    "Simplify the fraction 42/56.", "What is the probability of rolling two sixes with two dice?",
    "Factor the polynomial x^2 - 5x + 6.", "What is 15 percent of 240?",
    "Prove that the sum of two even numbers is even.", "Compute the determinant of the matrix [[2, 1], [3, 4]].",
    "Solve the quadratic equation x^2 + 4x - 5 = 0.", "What is the least common multiple of 8 and 12?",
    "Evaluate the limit of (1 + 1/n)^n as n goes to infinity.", "How many ways can 5 books be arranged on a shelf?",
    "What is the area of a circle with radius 7?", "Convert 0.375 to a fraction.",
    "Find the slope of the line through (1, 2) and (4, 11).", "What is 2 to the power of 10?",
]
CODE = [
    "Write a Python function that reverses a string.",
    "How do I sort a list of dictionaries by a key in Python?",
    "Fix this JavaScript bug: undefined is not a function when calling map.",
    "Write a SQL query that counts rows per customer.",
    "Implement binary search in Java.",
    "What does the yield keyword do in a Python generator?",
    "Write a bash script that renames all .txt files to .md.",
    "How do I read a JSON file in Node.js?",
    "Explain the difference between a list and a tuple in Python.",
    "Write a C function that computes the length of a linked list.",
    "How do I create a virtual environment with pip?",
    "Write a regular expression that matches email addresses.",
    "Refactor this loop into a list comprehension in Python.",
    "How do I handle exceptions in Rust with the Result type?",
    "Write a unit test for a function that adds two numbers using pytest.",
    "What is a segmentation fault in C and how do I debug it?",
    "Implement a stack class with push and pop methods in Python.",
    "How do I merge two branches with git?",
    "Write a React component that shows a counter button.",
    "Why does my recursive Python function hit the recursion limit?",
]
HISTORY = [
    "Who was the first emperor of Rome?", "When did World War II end?", "What caused the French Revolution?",
    "Who wrote the Magna Carta and why was it signed?", "What was the significance of the Battle of Hastings in 1066?",
    "Who was Cleopatra?", "Why did the Roman Empire fall?", "When did the Berlin Wall come down?",
    "What was the Renaissance?", "Who led the Mongol Empire at its greatest extent?",
    "What were the causes of the American Civil War?", "Who was Napoleon Bonaparte?",
    "What was the Cold War?", "When did Columbus first reach the Americas?",
    "What was the Ottoman Empire?", "Who was the first president of the United States?",
    "What happened during the Industrial Revolution?", "Why was the Treaty of Versailles important?",
    "Who built the pyramids of Giza?", "What was the Silk Road?",
]

TOPICS = {"math": MATH, "code": CODE, "history": HISTORY}
# New prompts, none of them in the training data, with the LLM that should get each.
NEW = {
    "Calculate 23 times 19 and divide the result by 4.": "A",
    "What is the cube root of 27?": "A",
    "Write a Python function that checks whether a string is a palindrome.": "B",
    "How do I remove duplicates from a list in JavaScript?": "B",
    "Who was Julius Caesar?": "C",
    "When did the First World War begin?": "C",
}


@pytest.fixture(scope="module", autouse=True)
def environment(tmp_path_factory):
    """A private embedding cache for the module, and torch on one thread (tiny fits, busy machines)."""
    with private_cache_on_one_thread(tmp_path_factory):
        yield


@pytest.fixture(scope="module")
def topics_file(tmp_path_factory, environment):
    """The topical dataset as .npz: texts, groups, 0/1 outcomes and real MiniLM embeddings."""
    texts = [text for prompts in TOPICS.values() for text in prompts]
    topic = np.repeat(np.arange(len(TOPICS)), [len(p) for p in TOPICS.values()])
    embeddings = Encoder().encode(texts)  # the real model, cached in the module's RECROUTE_CACHE
    assert embeddings.shape == (len(texts), 384)
    data = RoutingData(
        scores=(topic[:, None] == np.arange(len(LLMS))).astype(np.float32),
        prompt_ids=np.array([f"q{i}" for i in range(len(texts))]), models=np.array(LLMS), prompts=texts,
        groups=np.array(list(TOPICS))[topic], embeddings=embeddings, source="topics",
    )
    return save_npz(data, tmp_path_factory.mktemp("data") / "topics.npz")


@pytest.fixture(scope="module")
def router_dir(topics_file, tmp_path_factory):
    out = tmp_path_factory.mktemp("routers") / "bilinear"
    result = cli("fit", "--data", topics_file, "--router", "bilinear", "--param", "epochs=50", "--out", out)
    assert result.exit_code == 0, result.output
    return out, result


def routed(result) -> list[dict]:
    """The JSON lines `route` printed on stdout."""
    assert result.exit_code == 0, result.output
    return [json.loads(line) for line in result.stdout.splitlines()]


# -- fit --------------------------------------------------------------------------------------
def test_fit_with_params_writes_a_router_folder(router_dir, topics_file):
    out, result = router_dir
    assert (out / "manifest.json").is_file() and (out / "arrays.npz").is_file()
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["format"] == "recroute-router" and manifest["router"] == "bilinear"
    assert manifest["params"]["epochs"] == 50 and manifest["models"] == LLMS
    assert manifest["embedding_model"] == "all-MiniLM-L6-v2" and manifest["embedding_dim"] == 384
    assert manifest["data"] == str(topics_file)
    assert "fitted bilinear on 60 prompts × 3 LLMs" in result.stdout
    assert "chose" not in result.output  # --param skips tuning


def test_fit_without_params_tunes_on_validation_prompts(topics_file, tmp_path):
    result = cli("fit", "--data", topics_file, "--router", "linear", "--out", tmp_path / "linear")
    assert result.exit_code == 0, result.output
    assert "chose" in result.stderr and "validation prompts" in result.stderr
    manifest = json.loads((tmp_path / "linear" / "manifest.json").read_text())
    assert manifest["router"] == "linear" and manifest["params"]["weight_decay"] in (1e-4, 1e-3, 1e-2)
    routed_ = routed(cli("route", tmp_path / "linear", *NEW, "--top-k", "1"))
    assert [r["ranking"][0]["llm"] for r in routed_] == list(NEW.values())


def test_fit_uses_auto_by_default_and_records_what_it_chose(topics_file, newcomer_file, tmp_path):
    folder = tmp_path / "default"
    result = cli("fit", "--data", topics_file, "--out", folder)
    assert result.exit_code == 0, result.output
    assert "auto chose" in result.stderr
    manifest = json.loads((folder / "manifest.json").read_text())
    assert manifest["router"] == "auto" and manifest["chosen"]["routes_with"] != "best single LLM"
    routed_ = routed(cli("route", folder, *NEW, "--top-k", "1"))
    assert [r["ranking"][0]["llm"] for r in routed_] == list(NEW.values())
    # an LLM joins or leaves an auto router only by refitting: both say so in one line and change nothing
    before = folder_bytes(folder)
    assert_cli_error(cli("add-llm", folder, "--data", newcomer_file), str(folder),
                     "AutoRouter has no LLM vectors to add to; only latent-factor routers")
    assert_cli_error(cli("remove-llm", folder, "A"), str(folder), "AutoRouter cannot drop an LLM without refitting")
    assert folder_bytes(folder) == before


# -- route -------------------------------------------------------------------------------------
def test_route_encodes_new_texts_and_ranks_within_the_pool(router_dir, tmp_path, monkeypatch):
    cache = tmp_path / "fresh-cache"
    monkeypatch.setenv("RECROUTE_CACHE", str(cache))  # nothing cached: route must run the model
    out, _ = router_dir
    result = cli("route", out, "text one", "text two", "--pool", "A,B", "--top-k", "1")
    lines = routed(result)
    assert [line["prompt"] for line in lines] == ["text one", "text two"]
    for line in lines:
        assert set(line) == {"prompt", "ranking"}
        assert len(line["ranking"]) == 1
        assert line["ranking"][0]["llm"] in ("A", "B")
        assert isinstance(line["ranking"][0]["score"], float)
    assert list((cache / "embeddings").rglob("*.npz"))  # the texts were encoded and cached


def test_route_sends_each_topic_to_its_llm(router_dir):
    out, _ = router_dir
    lines = routed(cli("route", out, *NEW, "--pool", "A,B,C", "--top-k", "1"))
    assert [line["prompt"] for line in lines] == list(NEW)
    assert [line["ranking"][0]["llm"] for line in lines] == list(NEW.values())


def test_route_lists_the_whole_ranking_best_first(router_dir):
    out, _ = router_dir
    math, code = list(NEW)[0], list(NEW)[2]
    lines = routed(cli("route", out, math, code))  # default: every LLM, top 3
    for line in lines:
        assert sorted(entry["llm"] for entry in line["ranking"]) == LLMS
        scores = [entry["score"] for entry in line["ranking"]]
        assert scores == sorted(scores, reverse=True)
    assert lines[0]["ranking"][0]["llm"] == "A" and lines[1]["ranking"][0]["llm"] == "B"
    # Without B in the pool the code prompt goes elsewhere, and never outside the pool.
    lines = routed(cli("route", out, code, "--pool", "C,A", "--top-k", "5"))
    assert sorted(entry["llm"] for entry in lines[0]["ranking"]) == ["A", "C"]


def test_route_reads_prompts_from_a_text_file(router_dir, tmp_path):
    out, _ = router_dir
    path = tmp_path / "prompts.txt"
    path.write_text("\n".join(list(NEW)[:3]) + "\n\n" + "\n".join(list(NEW)[3:]) + "\n", encoding="utf-8")
    lines = routed(cli("route", out, "--input", path, "--pool", "A,B,C", "--top-k", "1"))
    assert [line["prompt"] for line in lines] == list(NEW)  # the blank line is skipped
    assert [line["ranking"][0]["llm"] for line in lines] == list(NEW.values())


def test_route_reads_prompts_from_jsonl_after_the_arguments(router_dir, tmp_path):
    out, _ = router_dir
    path = tmp_path / "prompts.jsonl"
    path.write_text("".join(json.dumps({"prompt": text, "id": i}) + "\n" for i, text in enumerate(list(NEW)[1:])),
                    encoding="utf-8")
    lines = routed(cli("route", out, list(NEW)[0], "--input", path, "--pool", "A,B,C", "--top-k", "2"))
    assert [line["prompt"] for line in lines] == list(NEW)
    assert [line["ranking"][0]["llm"] for line in lines] == list(NEW.values())
    assert all(len(line["ranking"]) == 2 for line in lines)


# -- bad input: exit 2, one line, no traceback ---------------------------------------------------
@pytest.mark.parametrize("args,fragments", [
    (["--router", "xgboost"], ["unknown router 'xgboost'"]),
    (["--param", "epochs"], ["--param 'epochs'", "NAME=VALUE"]),
    (["--param", "=3"], ["NAME=VALUE"]),
    (["--router", "bilinear", "--param", "depth=3"], ["router 'bilinear'", "depth"]),
    (["--router", "bilinear", "--param", "epochs=many"], ["epochs must be an integer"]),
    (["--router", "bilinear", "--param", "factors=2.5"], ["factors must be an integer"]),
    (["--router", "oracle"], ["true outcomes"]),
], ids=["unknown router", "param without value", "param without name", "unknown param", "param not a number",
        "param not an integer", "oracle"])
def test_fit_bad_input(topics_file, tmp_path, args, fragments):
    out = tmp_path / "out"
    assert_cli_error(cli("fit", "--data", topics_file, *args, "--out", out), *fragments)
    assert not out.exists()


def test_fit_on_a_missing_data_file(tmp_path):
    assert_cli_error(cli("fit", "--data", tmp_path / "nope.npz", "--out", tmp_path / "out"), "nope.npz")


def _corrupt(folder):
    (folder / "arrays.npz").write_bytes(b"not a zip archive")


@pytest.mark.parametrize("case", ["unknown LLM in pool", "no prompts", "missing input file", "empty input file",
                                  "bad jsonl", "top-k 0", "corrupt folder", "missing folder", "not a router"])
def test_route_bad_input(router_dir, tmp_path, case):
    out, _ = router_dir
    text = list(NEW)[0]
    args, fragments = {
        "unknown LLM in pool": ([out, text, "--pool", "A,Z"], ["unknown LLM 'Z'"]),
        "no prompts": ([out], ["give prompts"]),
        "missing input file": ([out, "--input", tmp_path / "nope.txt"], ["nope.txt", "not found"]),
        "empty input file": ([out, "--input", tmp_path / "empty.txt"], ["holds no prompts"]),
        "bad jsonl": ([out, "--input", tmp_path / "bad.jsonl"], ["bad.jsonl:2", "invalid JSON"]),
        "top-k 0": ([out, text, "--top-k", "0"], ["--top-k must be at least 1"]),
        "corrupt folder": ([tmp_path / "corrupt", text], ["corrupt"]),
        "missing folder": ([tmp_path / "nowhere", text], ["no such router folder"]),
        "not a router": ([tmp_path, text], ["not a recroute router folder"]),
    }[case]
    (tmp_path / "empty.txt").write_text("\n  \n")
    (tmp_path / "bad.jsonl").write_text('{"prompt": "fine"}\n{"prompt": \n')
    shutil.copytree(out, tmp_path / "corrupt")
    _corrupt(tmp_path / "corrupt")
    assert_cli_error(cli("route", *args), *fragments)


def test_route_refuses_a_router_fitted_on_embeddings_of_another_width(tmp_path):
    """A file's own 8-d embeddings fit fine, but route encodes 384-d MiniLM vectors: a clear error, not a crash."""
    rng = np.random.default_rng(0)
    data = RoutingData(scores=(rng.random((40, 3)) < 0.5).astype(np.float32),
                       prompt_ids=np.array([f"p{i}" for i in range(40)]), models=np.array(LLMS),
                       embeddings=rng.normal(size=(40, 8)).astype(np.float32), source="narrow")
    path = save_npz(data, tmp_path / "narrow.npz")
    result = cli("fit", "--data", path, "--router", "linear", "--param", "epochs=5", "--out", tmp_path / "narrow")
    assert result.exit_code == 0, result.output
    assert json.loads((tmp_path / "narrow" / "manifest.json").read_text())["embedding_dim"] == 8
    assert_cli_error(cli("route", tmp_path / "narrow", list(NEW)[0]), "8-dimensional", "384")


# -- cost-aware routing --------------------------------------------------------------------------
# A answers math, B code, C history (as above); per query A costs 1e-5 + 1e-6 x tokens, B ten times that,
# C a hundred times: A is the cheapest LLM on every prompt, C the dearest.
COST_LINES = np.array([[1e-5, 1e-6], [1e-4, 1e-5], [1e-3, 1e-4]])  # intercept, slope per LLM


@pytest.fixture(scope="module")
def costed_router_dir(topics_file, tmp_path_factory):
    """The topical data with per-query costs (its embeddings reused), fitted and saved with a cost model."""
    from dataclasses import replace

    from recroute.cost import estimate_tokens
    from recroute.loaders import load

    data = load(topics_file)
    tokens = estimate_tokens(data.prompts)
    cost = COST_LINES[:, 0] + tokens[:, None] * COST_LINES[:, 1]
    folder = tmp_path_factory.mktemp("costed")
    path = save_npz(replace(data, cost=cost), folder / "topics-costs.npz")
    out = folder / "router"
    result = cli("fit", "--data", path, "--router", "bilinear", "--param", "epochs=50", "--out", out)
    assert result.exit_code == 0, result.output
    assert "with a cost model" in result.stdout
    return out


def _expected_cost(text, llm):
    tokens = max(-(-len(text) // 4), 1)
    intercept, slope = COST_LINES[LLMS.index(llm)]
    return intercept + slope * tokens


def test_fit_on_data_with_costs_saves_the_cost_model(costed_router_dir):
    assert (costed_router_dir / "cost.npz").is_file()
    assert json.loads((costed_router_dir / "manifest.json").read_text())["cost"] == {"output_tokens": 256}


def test_route_with_a_huge_cost_weight_puts_the_cheapest_first(costed_router_dir):
    texts = list(NEW)
    lines = routed(cli("route", costed_router_dir, *texts, "--cost-weight", "1e6"))
    for text, line in zip(texts, lines):
        assert [entry["llm"] for entry in line["ranking"]] == ["A", "B", "C"]
        for entry in line["ranking"]:
            assert entry["cost"] == pytest.approx(_expected_cost(text, entry["llm"]), rel=1e-3)


def test_route_with_cost_weight_zero_keeps_the_score_order(costed_router_dir):
    plain = routed(cli("route", costed_router_dir, *NEW))
    costed = routed(cli("route", costed_router_dir, *NEW, "--cost-weight", "0"))
    from scipy.special import expit

    from recroute.store import load_router as load_saved

    a, c = load_saved(costed_router_dir)[0].calibration_  # cost routing weighs P(good) = σ(a·score + c)
    for mine, theirs in zip(costed, plain):
        assert [e["llm"] for e in mine["ranking"]] == [e["llm"] for e in theirs["ranking"]]
        assert [e["score"] for e in mine["ranking"]] == pytest.approx(
            [expit(a * e["score"] + c) for e in theirs["ranking"]], abs=1e-5)
    assert [line["ranking"][0]["llm"] for line in costed] == list(NEW.values())


def test_route_with_a_budget_lists_only_affordable_llms(costed_router_dir):
    history = "Who was Julius Caesar?"  # 22 characters, 6 tokens: A 1.6e-5, B 1.6e-4, C 1.6e-3 dollars
    plain = routed(cli("route", costed_router_dir, history))[0]["ranking"]
    assert plain[0]["llm"] == "C"
    lines = routed(cli("route", costed_router_dir, history, "--budget", "5e-4"))
    ranking = lines[0]["ranking"]
    assert [e["llm"] for e in ranking] == [e["llm"] for e in plain if e["llm"] != "C"]
    assert all(e["cost"] <= 5e-4 for e in ranking)
    # nothing fits a budget of a millionth of a dollar: the cheapest LLM alone
    lines = routed(cli("route", costed_router_dir, history, "--budget", "1e-6", "--pool", "B,C"))
    assert [e["llm"] for e in lines[0]["ranking"]] == ["B"]


@pytest.mark.parametrize("flag,value", [("--cost-weight", "-1"), ("--budget", "-0.01"), ("--cost-weight", "nan"),
                                        ("--budget", "inf")])
def test_route_refuses_a_negative_or_non_finite_cost_option(costed_router_dir, flag, value):
    result = cli("route", costed_router_dir, "What is 2 + 2?", flag, value)
    assert_cli_error(result, flag, "non-negative number", f"got {float(value)}")


def test_route_by_cost_without_a_cost_model_names_the_folder(router_dir):
    out, _ = router_dir
    for flag, value in (("--cost-weight", "1"), ("--budget", "0.01")):
        assert_cli_error(cli("route", out, "What is 2 + 2?", flag, value), str(out), "fitted without costs")


# -- add-llm / remove-llm: onboarding and retiring an LLM of a saved router -------------------------
# D, the newcomer, answers the math and the history prompts and no code prompt. So on a math or history
# prompt it must beat B (code only); on a math prompt C (history only); on a history prompt A (math only);
# and on a code prompt B must beat it.
NEWCOMER_RIGHT = ("math", "history")
SMALL_ROUTERS = {
    "als": ["--param", "factors=8", "--param", "cold_start=ridge"],
    "bpr": ["--param", "factors=8", "--param", "cold_start=ridge", "--param", "iterations=50"],
    "lightfm": ["--param", "epochs=20"],
    "bilinear": ["--param", "epochs=50"],
}


def folder_bytes(folder) -> dict:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def npz_arrays(path) -> dict:
    with np.load(path, allow_pickle=False) as npz:
        return {k: npz[k] for k in npz.files}


def _newcomer(topics_file, **extra) -> RoutingData:
    from recroute.loaders import load

    data = load(topics_file)
    right = np.isin(data.groups, NEWCOMER_RIGHT).astype(np.float32)[:, None]
    fields = dict(scores=right, prompt_ids=data.prompt_ids, models=np.array(["D"]), prompts=list(data.prompts),
                  embeddings=data.embeddings, source="newcomer")
    return RoutingData(**{**fields, **extra})


@pytest.fixture(scope="module")
def newcomer_file(topics_file, tmp_path_factory):
    """D's 60 outcomes with the prompt texts and their MiniLM embeddings, as .npz."""
    return save_npz(_newcomer(topics_file), tmp_path_factory.mktemp("newcomer") / "d.npz")


@pytest.fixture(scope="module")
def small_router(topics_file, tmp_path_factory):
    """Each latent router fitted once on the topics (3 LLMs); tests work on copies of the folder."""
    cache = {}

    def get(name):
        if name not in cache:
            out = tmp_path_factory.mktemp("small") / name
            result = cli("fit", "--data", topics_file, "--router", name, *SMALL_ROUTERS[name], "--out", out)
            assert result.exit_code == 0, result.output
            cache[name] = out
        return cache[name]

    return get


@pytest.fixture(scope="module")
def linear_dir(topics_file, tmp_path_factory):
    out = tmp_path_factory.mktemp("linear") / "router"
    assert cli("fit", "--data", topics_file, "--router", "linear", "--param", "epochs=5", "--out", out).exit_code == 0
    return out


def copy_router(folder, tmp_path):
    target = tmp_path / "routers" / "router"
    shutil.copytree(folder, target)
    return target


def first_choices(folder, pool):
    return [line["ranking"][0]["llm"] for line in routed(cli("route", folder, *NEW, "--pool", pool, "--top-k", "1"))]


@pytest.mark.parametrize("name", ["als", "bilinear"])
def test_add_llm_from_embeddings_routes_to_it_and_remove_llm_undoes_it(small_router, router_dir, newcomer_file,
                                                                       tmp_path, monkeypatch, name):
    folder = copy_router(small_router(name) if name == "als" else router_dir[0], tmp_path)
    original_arrays = npz_arrays(folder / "arrays.npz")
    original_manifest = json.loads((folder / "manifest.json").read_text())
    original_routes = cli("route", folder, *NEW, "--top-k", "3").stdout

    # The file carries embeddings, so add-llm encodes nothing.
    with monkeypatch.context() as mp:
        mp.setattr(Encoder, "encode", lambda *a, **kw: pytest.fail("add-llm encoded texts it had embeddings for"))
        result = cli("add-llm", folder, "--data", newcomer_file)
    assert result.exit_code == 0, result.output
    assert result.stdout == f"added D from 60 outcomes -> {folder} (now 4 LLMs)\n"
    manifest = json.loads((folder / "manifest.json").read_text())
    assert manifest["models"] == LLMS + ["D"]
    assert {k: manifest[k] for k in ("router", "params", "embedding_model", "embedding_dim", "data")} == \
        {k: original_manifest[k] for k in ("router", "params", "embedding_model", "embedding_dim", "data")}
    assert sorted(p.name for p in folder.parent.iterdir()) == [".router.lock", "router"]  # written in place, nothing left over

    assert first_choices(folder, "D,B") == ["D", "D", "B", "B", "D", "D"]
    assert first_choices(folder, "D,C")[:2] == ["D", "D"]  # math: D is right, C (history) is not
    assert first_choices(folder, "A,D")[4:] == ["D", "D"]  # history: D is right, A (math) is not
    for line in routed(cli("route", folder, *NEW, "--top-k", "4")):
        assert sorted(entry["llm"] for entry in line["ranking"]) == LLMS + ["D"]

    result = cli("remove-llm", folder, "D")
    assert result.exit_code == 0, result.output
    assert result.stdout == f"removed D -> {folder} (now 3 LLMs)\n"
    assert json.loads((folder / "manifest.json").read_text())["models"] == LLMS
    arrays = npz_arrays(folder / "arrays.npz")
    assert sorted(arrays) == sorted(original_arrays)
    for key, value in original_arrays.items():
        np.testing.assert_array_equal(arrays[key], value, err_msg=key)
    assert cli("route", folder, *NEW, "--top-k", "3").stdout == original_routes
    assert_cli_error(cli("route", folder, list(NEW)[0], "--pool", "D,B"), "unknown LLM 'D'")


def test_add_llm_from_a_long_csv_picks_the_named_llm_and_encodes_its_texts(small_router, newcomer_file, topics_file,
                                                                         tmp_path):
    """Texts instead of embeddings: the same prompts encoded by the same model give the same router."""
    data = _newcomer(topics_file)
    path = tmp_path / "long.csv"
    with open(path, "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(["prompt_id", "model", "score", "prompt"])
        for pid, text, score in zip(data.prompt_ids, data.prompts, data.scores[:, 0]):
            writer.writerow([pid, "D", int(score), text])
            if pid.endswith(("0", "5")):
                writer.writerow([pid, "E", 1, text])  # another LLM in the same file
    from_csv = copy_router(small_router("als"), tmp_path / "csv")
    assert_cli_error(cli("add-llm", from_csv, "--data", path), str(path), "holds 2 LLMs", "--name")
    result = cli("add-llm", from_csv, "--data", path, "--name", "D")
    assert result.exit_code == 0, result.output
    assert result.stdout == f"added D from 60 outcomes -> {from_csv} (now 4 LLMs)\n"
    from_npz = copy_router(small_router("als"), tmp_path / "npz")
    assert cli("add-llm", from_npz, "--data", newcomer_file).exit_code == 0
    csv_arrays, npz_arrays_ = npz_arrays(from_csv / "arrays.npz"), npz_arrays(from_npz / "arrays.npz")
    np.testing.assert_allclose(csv_arrays["llm_factors_"], npz_arrays_["llm_factors_"], rtol=1e-5, atol=1e-6)
    assert first_choices(from_csv, "D,B") == ["D", "D", "B", "B", "D", "D"]
    # only D's outcomes were read: E is not routed to
    assert json.loads((from_csv / "manifest.json").read_text())["models"] == LLMS + ["D"]


def test_add_llm_to_a_router_with_costs_prices_the_newcomer(costed_router_dir, topics_file, tmp_path):
    from recroute.cost import estimate_tokens

    folder = copy_router(costed_router_dir, tmp_path)
    data = _newcomer(topics_file)
    # D costs a tenth of A: 1e-6 + 1e-7 x tokens dollars a query
    cost = 1e-6 + 1e-7 * estimate_tokens(data.prompts)[:, None]
    path = save_npz(_newcomer(topics_file, cost=cost), tmp_path / "d-costs.npz")
    result = cli("add-llm", folder, "--data", path)
    assert result.exit_code == 0, result.output
    assert "(now 4 LLMs)" in result.stdout
    assert npz_arrays(folder / "cost.npz")["models_"].tolist() == LLMS + ["D"]
    texts = list(NEW)
    for text, line in zip(texts, routed(cli("route", folder, *texts, "--cost-weight", "1e6", "--top-k", "4"))):
        assert [entry["llm"] for entry in line["ranking"]] == ["D", "A", "B", "C"]
        tokens = max(-(-len(text) // 4), 1)
        assert line["ranking"][0]["cost"] == pytest.approx(1e-6 + 1e-7 * tokens, rel=1e-3)
        for entry in line["ranking"][1:]:
            assert entry["cost"] == pytest.approx(_expected_cost(text, entry["llm"]), rel=1e-3)
    # and remove-llm drops its price with it
    assert cli("remove-llm", folder, "D").exit_code == 0
    assert npz_arrays(folder / "cost.npz")["models_"].tolist() == LLMS


def _bad_add(case, tmp_path, topics_file, newcomer_file, folders):
    """(folder, extra args, fragments) of each bad add-llm; the data files are written here."""
    latent, linear, costed = folders
    no_outcome = RoutingData(scores=np.array([[np.nan, 1.0], [np.nan, 0.0]]), prompt_ids=np.array(["a", "b"]),
                             models=np.array(["D", "E"]), prompts=["What is 1 + 1?", "Who was Nero?"], source="x")
    bare = RoutingData(scores=np.array([[1.0], [0.0]]), prompt_ids=np.array(["a", "b"]), models=np.array(["D"]),
                       source="x")
    not_router = tmp_path / "notes"
    not_router.mkdir(exist_ok=True)
    (not_router / "notes.txt").write_text("not a router")
    return {
        "several LLMs, no --name": (latent, ["--data", topics_file], [str(topics_file), "holds 3 LLMs", "--name"]),
        "--name not in the data": (latent, ["--data", topics_file, "--name", "Z"],
                                   [str(topics_file), "unknown LLM 'Z'"]),
        "name already routed": (latent, ["--data", topics_file, "--name", "A"], [str(latent), "already routes to 'A'"]),
        "no outcomes for the LLM": (latent, ["--data", save_npz(no_outcome, tmp_path / "nan.npz"), "--name", "D"],
                                    ["nan.npz", "has no outcome for 'D'"]),
        "neither texts nor embeddings": (latent, ["--data", save_npz(bare, tmp_path / "bare.npz")],
                                         ["bare.npz", "neither prompt texts nor embeddings"]),
        "missing data file": (latent, ["--data", tmp_path / "nope.npz"], ["nope.npz"]),
        "not a router folder": (not_router, ["--data", newcomer_file],
                                [str(not_router), "not a recroute router folder"]),
        "missing router folder": (tmp_path / "nowhere", ["--data", newcomer_file],
                                  [str(tmp_path / "nowhere"), "no such router folder"]),
        "non-latent router": (linear, ["--data", newcomer_file], [str(linear), "LinearRouter has no LLM vectors"]),
        "costs needed": (costed, ["--data", newcomer_file], [str(newcomer_file), str(costed), "routes by cost",
                                                              "cost column or prices"]),
    }[case]


@pytest.mark.parametrize("case", ["several LLMs, no --name", "--name not in the data", "name already routed",
                                  "no outcomes for the LLM", "neither texts nor embeddings", "missing data file",
                                  "not a router folder", "missing router folder", "non-latent router", "costs needed"])
def test_add_llm_bad_input_leaves_the_folder_unchanged(small_router, linear_dir, costed_router_dir, topics_file,
                                                       newcomer_file, tmp_path, case):
    folders = (copy_router(small_router("als"), tmp_path / "als"), copy_router(linear_dir, tmp_path / "linear"),
               copy_router(costed_router_dir, tmp_path / "costed"))
    folder, args, fragments = _bad_add(case, tmp_path, topics_file, newcomer_file, folders)
    before = folder_bytes(folder) if folder.exists() else None
    siblings = sorted(p.name for p in folder.parent.iterdir()) if folder.parent.exists() else None
    assert_cli_error(cli("add-llm", folder, *args), *fragments)
    if before is not None:
        assert folder_bytes(folder) == before
        assert sorted(p.name for p in folder.parent.iterdir()) == siblings
    else:
        assert not folder.exists()


def test_add_llm_with_embeddings_of_another_width_is_a_clear_error(small_router, topics_file, tmp_path):
    folder = copy_router(small_router("als"), tmp_path)
    before = folder_bytes(folder)
    data = _newcomer(topics_file, embeddings=np.ones((60, 8), dtype=np.float32))
    result = cli("add-llm", folder, "--data", save_npz(data, tmp_path / "narrow.npz"))
    assert folder_bytes(folder) == before
    assert_cli_error(result, "384")


@pytest.mark.parametrize("name", ["als", "bpr", "lightfm", "bilinear"])
def test_add_llm_newcomer_beats_an_llm_that_is_wrong_where_it_is_right(small_router, newcomer_file, tmp_path, name):
    folder = copy_router(small_router(name), tmp_path)
    assert cli("add-llm", folder, "--data", newcomer_file).exit_code == 0
    assert first_choices(folder, "D,B") == ["D", "D", "B", "B", "D", "D"]


@pytest.mark.parametrize("case", ["unknown LLM", "last LLM", "non-latent router", "not a router folder"])
def test_remove_llm_bad_input_leaves_the_folder_unchanged(small_router, linear_dir, tmp_path, case):
    folder = copy_router(small_router("bilinear"), tmp_path)
    if case == "last LLM":
        for name, left in (("A", 2), ("B", 1)):
            assert cli("remove-llm", folder, name).stdout == f"removed {name} -> {folder} (now {left} LLMs)\n"
        name, fragments = "C", [str(folder), "cannot remove 'C': it is the router's only LLM"]
    elif case == "unknown LLM":
        name, fragments = "Z", [str(folder), "does not route to 'Z'", "it knows A, B, C"]
    elif case == "non-latent router":
        folder = copy_router(linear_dir, tmp_path / "linear")
        name, fragments = "A", [str(folder), "LinearRouter cannot drop an LLM without refitting"]
    else:
        folder = tmp_path / "notes"
        folder.mkdir()
        (folder / "notes.txt").write_text("not a router")
        name, fragments = "A", [str(folder), "not a recroute router folder"]
    before = folder_bytes(folder)
    assert_cli_error(cli("remove-llm", folder, name), *fragments)
    assert folder_bytes(folder) == before
