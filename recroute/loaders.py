"""Read routing records from every supported format into one RoutingData.

One function per format, all strict in the same way: absence of a value means
*not observed*; a value that is present must be a finite number; any problem
raises RecrouteError with one sentence naming the file (and the line where
there is one).
"""
from __future__ import annotations

import contextlib
import csv
import difflib
import json
import math
import os
import pickle
import zipfile
from pathlib import Path
from typing import Iterable, Iterator

import numpy as np

from .data import SPLIT_NAMES, RoutingData
from .errors import RecrouteError

LONG_REQUIRED = ("prompt_id", "model", "score")
LONG_OPTIONAL = ("prompt", "cost", "group", "split")
# Wide CSV columns that are not LLMs (RouterBench and RouteLLM layouts).
WIDE_ID_COLUMNS = ("prompt_id", "sample_id", "id")
WIDE_GROUP_COLUMNS = ("group", "eval_name")
WIDE_IGNORED = ("", "oracle_model_to_route_to")
COST_SUFFIX = "|total_cost"

csv.field_size_limit(2**31 - 1)


def load(path, *, allow_pickle: bool = False, tasks=None) -> RoutingData:
    """Load any supported file, choosing the reader from its extension.

    ``.npz`` dense matrix; ``.pkl``/``.pickle`` RouterEval router dataset
    (needs ``allow_pickle=True``); ``.jsonl`` long records; ``.json`` lists of
    ``{question, scores}`` (``tasks`` optionally names a JSONL of
    ``{task_name, query}`` joined in as groups); ``.csv`` long records when
    the header has a ``model`` or ``score`` column, otherwise one column per LLM.
    """
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix == ".npz":
        return load_npz(path)
    if suffix in (".pkl", ".pickle"):
        return load_routereval_pickle(path, allow_pickle=allow_pickle)
    if suffix == ".jsonl":
        return load_long(path)
    if suffix == ".json":
        return load_score_json(path, tasks=tasks)
    if suffix == ".csv":
        with _reading(path):
            with open(path, newline="", encoding="utf-8") as f:
                header = next(csv.reader(f), [])
        return load_long(path) if {"model", "score"} & set(header) else load_wide_csv(path)
    raise RecrouteError(
        f"{path}: unknown format '{suffix or path.name}'; expected .csv, .jsonl, .json, .npz or .pkl."
    )


# -- long records: one row per (prompt, LLM) --------------------------------
def load_long(path) -> RoutingData:
    """CSV or JSONL with one row per (prompt_id, model, score[, prompt, cost, group, split])."""
    path = Path(path)
    with _reading(path):
        if path.suffix.lower() == ".jsonl":
            records = list(_jsonl_records(path))
        else:
            records = list(_csv_records(path))
    if not records:
        raise RecrouteError(f"{path}: holds a header but no records.")
    _check_columns(path, set(records[0][1]), LONG_REQUIRED, LONG_OPTIONAL)

    prompt_row: dict[str, int] = {}
    model_col: dict[str, int] = {}
    cells: dict[tuple[int, int], tuple[float, float, int]] = {}
    per_prompt = {name: {} for name in ("prompt", "group", "split")}
    for line, rec in records:
        missing = [c for c in LONG_REQUIRED if rec.get(c) in (None, "")]
        if missing:
            raise RecrouteError(f"{path}:{line}: empty '{missing[0]}'.")
        pid, model = str(rec["prompt_id"]), str(rec["model"])
        i = prompt_row.setdefault(pid, len(prompt_row))
        j = model_col.setdefault(model, len(model_col))
        score = _number(rec["score"], path, line, "score", allow_empty=False)
        cost = _number(rec.get("cost"), path, line, "cost", allow_empty=True)
        if cost < 0:
            raise RecrouteError(f"{path}:{line}: negative cost {cost}.")
        previous = cells.get((i, j))
        if previous is not None and (previous[0] != score or not _same(previous[1], cost)):
            raise RecrouteError(
                f"{path}:{line}: prompt {pid!r} × LLM {model!r} repeats line {previous[2]} "
                f"with a different score or cost."
            )
        cells[(i, j)] = (score, cost, line)
        for name, seen in per_prompt.items():
            value = rec.get(name)
            if value in (None, ""):
                continue
            if seen.setdefault(i, str(value)) != str(value):
                raise RecrouteError(f"{path}:{line}: prompt {pid!r} has two different '{name}' values.")

    n, m = len(prompt_row), len(model_col)
    scores = np.full((n, m), np.nan, dtype=np.float32)
    cost = np.full((n, m), np.nan, dtype=np.float32)
    for (i, j), (score, c, _) in cells.items():
        scores[i, j] = score
        cost[i, j] = c

    def per_prompt_array(name):
        seen = per_prompt[name]
        if not seen:
            return None
        if len(seen) != n:
            raise RecrouteError(f"{path}: '{name}' is given for some prompts and missing for others.")
        return [seen[i] for i in range(n)]

    return RoutingData(
        source=str(path), scores=scores, prompt_ids=list(prompt_row), models=list(model_col),
        prompts=per_prompt_array("prompt"), groups=per_prompt_array("group"),
        splits=per_prompt_array("split"), cost=None if np.isnan(cost).all() else cost,
    )


# -- wide CSV: one row per prompt, one column per LLM ------------------------
def load_wide_csv(path, id_column: str | None = None) -> RoutingData:
    """CSV with one column per LLM (RouterBench, RouteLLM layouts).

    Roles by column name: ``prompt_id``/``sample_id``/``id`` the prompt id (row
    number when absent), ``prompt`` the text, ``group``/``eval_name`` the
    group, ``split`` the source split, ``LLM|total_cost`` the dollars per query
    of that LLM. Columns named ``X|...`` or ``X_response``, an unnamed index
    column and ``oracle_model_to_route_to`` are ignored. Every other column is
    an LLM; its empty cells are not observed, True/False read as 1/0.
    ``id_column`` picks the id column by name ('' is a pandas index column).
    """
    path = Path(path)
    with _reading(path):
        records = list(_csv_records(path))
    if not records:
        raise RecrouteError(f"{path}: holds a header but no rows.")
    header = list(records[0][1])
    if id_column is None:
        id_column = next((c for c in WIDE_ID_COLUMNS if c in header), None)
    elif id_column not in header:
        raise RecrouteError(f"{path}: has no id column {id_column!r}.")
    group_col = next((c for c in WIDE_GROUP_COLUMNS if c in header), None)
    not_models = {*WIDE_ID_COLUMNS, *WIDE_GROUP_COLUMNS, *WIDE_IGNORED, "prompt", "split"}
    models = [c for c in header if c not in not_models and "|" not in c and not c.endswith("_response")]
    if not models:
        raise RecrouteError(f"{path}: found no LLM score columns in header {header}.")
    cost_cols = {c[: -len(COST_SUFFIX)]: c for c in header if c.endswith(COST_SUFFIX)}
    stray = sorted(set(cost_cols) - set(models))
    if stray:
        raise RecrouteError(f"{path}: cost column '{stray[0]}{COST_SUFFIX}' has no score column '{stray[0]}'.")

    n, m = len(records), len(models)
    scores = np.full((n, m), np.nan, dtype=np.float32)
    cost = np.full((n, m), np.nan, dtype=np.float32) if cost_cols else None
    for i, (line, rec) in enumerate(records):
        for j, model in enumerate(models):
            scores[i, j] = _number(rec[model], path, line, model, allow_empty=True)
            if model in cost_cols:
                cost[i, j] = _number(rec[cost_cols[model]], path, line, cost_cols[model], allow_empty=True)
                if cost[i, j] < 0:
                    raise RecrouteError(f"{path}:{line}: negative cost in column '{cost_cols[model]}'.")

    def column(name):
        return None if name is None or name not in header else [rec[name] for _, rec in records]

    return RoutingData(
        source=str(path), scores=scores, prompt_ids=column(id_column) or [str(line) for line, _ in records],
        models=models, prompts=column("prompt"), groups=column(group_col), splits=column("split"), cost=cost,
    )


# -- JSON lists of {question, scores} (LLMRouter, RouterDC) -------------------
def load_score_json(path, tasks=None) -> RoutingData:
    """A JSON list of ``{question, scores: {llm: score}}``.

    Prompt ids are ``<file stem>/<position>`` because the same question text
    may appear twice. ``tasks`` names a JSONL of ``{task_name, query}``
    (LLMRouter's ``default_query_*.jsonl``) whose task becomes each question's
    group; a question listed under several tasks takes the first.
    """
    path = Path(path)
    with _reading(path):
        with open(path, encoding="utf-8") as f:
            items = json.load(f)
    if not isinstance(items, list) or not items:
        raise RecrouteError(f"{path}: expected a non-empty JSON list of {{question, scores}} objects.")
    models: dict[str, int] = {}
    for k, item in enumerate(items):
        if not isinstance(item, dict) or not isinstance(item.get("question"), str) \
                or not isinstance(item.get("scores"), dict):
            raise RecrouteError(f"{path}: item {k} lacks a 'question' string or a 'scores' object.")
        for model in item["scores"]:
            models.setdefault(model, len(models))
    scores = np.full((len(items), len(models)), np.nan, dtype=np.float32)
    for k, item in enumerate(items):
        for model, value in item["scores"].items():
            scores[k, models[model]] = _number(value, path, f"item {k}", model, allow_empty=False)
    questions = [item["question"] for item in items]
    groups = None
    if tasks is not None:
        task_of = _task_names(Path(tasks))
        unmatched = [q for q in questions if q not in task_of]
        if unmatched:
            raise RecrouteError(f"{tasks}: has no task for the question {unmatched[0][:60]!r} of {path}.")
        groups = [task_of[q] for q in questions]
    ids = [f"{path.stem}/{k}" for k in range(len(items))]
    return RoutingData(source=str(path), scores=scores, prompt_ids=ids, models=list(models), prompts=questions, groups=groups)


def _task_names(path: Path) -> dict[str, str]:
    task_of: dict[str, str] = {}
    with _reading(path):
        for line, rec in _jsonl_records(path):
            if not isinstance(rec.get("query"), str) or not isinstance(rec.get("task_name"), str):
                raise RecrouteError(f"{path}:{line}: needs 'query' and 'task_name' strings.")
            task_of.setdefault(rec["query"], rec["task_name"])
    return task_of


# -- dense .npz: the fast path ------------------------------------------------
def load_npz(path) -> RoutingData:
    """A dense matrix in ``.npz``: ``scores`` (NaN = not observed), ``prompt_ids``,
    ``models``; optional ``prompts``, ``groups``, ``splits``, ``cost``, ``price``,
    ``embeddings``. Prompt texts may also come packed as UTF-8 bytes
    (``prompts_utf8`` + ``prompts_offsets``), which is how :func:`save_npz`
    writes them. Object arrays are refused: they would need pickle.
    """
    path = Path(path)
    with _reading(path):
        if not zipfile.is_zipfile(path):
            raise RecrouteError(f"{path}: is not an .npz (zip) archive; it is corrupt or was not written by numpy.savez.")
        with np.load(path, allow_pickle=False) as npz:
            keys = set(npz.files)
            missing = [k for k in ("scores", "prompt_ids", "models") if k not in keys]
            if missing:
                raise RecrouteError(f"{path}: missing array '{missing[0]}' (has {', '.join(sorted(keys))}).")
            arrays = {k: npz[k] for k in keys}
    if arrays["scores"].ndim != 2 or arrays["scores"].shape[0] == 0:
        raise RecrouteError(f"{path}: 'scores' must be a non-empty prompts × LLMs matrix, got shape {arrays['scores'].shape}.")
    if "prompts_utf8" in arrays:
        blob, offsets = arrays.pop("prompts_utf8"), arrays.pop("prompts_offsets")
        raw = blob.tobytes()
        arrays["prompts"] = [raw[a:b].decode("utf-8") for a, b in zip(offsets[:-1], offsets[1:])]
    if "embedding_model" in arrays:
        arrays["embedding_model"] = _encoder_record(arrays["embedding_model"], path)
    known = {"scores", "prompt_ids", "models", "prompts", "groups", "splits", "cost", "price", "embeddings",
             "embedding_model"}
    return RoutingData(source=str(path), **{k: v for k, v in arrays.items() if k in known})


def _encoder_record(array: np.ndarray, path: Path) -> dict:
    """The ``embedding_model`` entry of an ``.npz``: a JSON object held in a 0-d string array."""
    try:
        record = json.loads(str(array[()])) if array.dtype.kind == "U" and array.ndim == 0 else None
    except ValueError:
        record = None
    if not isinstance(record, dict):
        raise RecrouteError(f"{path}: 'embedding_model' must be a JSON object as one string (the encoder that "
                            f"computed the embeddings), got {array.dtype} {array.shape} {str(array)[:80]!r}.")
    return record


def save_npz(data: RoutingData, path, compress: bool = True, extra: dict[str, np.ndarray] | None = None) -> Path:
    """Write ``data`` as ``.npz`` atomically (a temporary file renamed into place).

    ``extra`` arrays ride along under their own names (the synthetic truth,
    say); :func:`load_npz` ignores them. Embeddings that name the encoder
    that computed them (``data.embedding_model``, written as a JSON string)
    are unit vectors that the encoder can recompute, and are stored as
    float16 (half the bytes; cosine to the float32 vector above 0.9999);
    embeddings of unknown origin keep float32.
    """
    path = Path(path)
    arrays = {**(extra or {}), "scores": data.scores, "prompt_ids": data.prompt_ids, "models": data.models}
    for name in ("groups", "splits", "cost", "price", "embeddings"):
        if getattr(data, name) is not None:
            arrays[name] = getattr(data, name)
    if data.embedding_model is not None:
        arrays["embeddings"] = data.embeddings.astype(np.float16)
        arrays["embedding_model"] = np.array(json.dumps(data.embedding_model, sort_keys=True))
    if data.prompts is not None:
        encoded = [text.encode("utf-8") for text in data.prompts]
        arrays["prompts_utf8"] = np.frombuffer(b"".join(encoded), dtype=np.uint8)
        arrays["prompts_offsets"] = np.concatenate([[0], np.cumsum([len(e) for e in encoded])]).astype(np.int64)
    tmp = path.with_name(f".{path.name}.tmp")
    try:
        with open(tmp, "wb") as f:
            (np.savez_compressed if compress else np.savez)(f, **arrays)
        os.replace(tmp, path)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise RecrouteError(f"{path}: cannot write ({exc.strerror}).") from None
    return path


# -- RouterEval router_dataset pickles ---------------------------------------
def load_routereval_pickle(path, *, allow_pickle: bool = False, key: str | None = None) -> RoutingData:
    """RouterEval's ``router_dataset`` structure, only with ``allow_pickle=True``.

    Expected: a dict with ``model`` (LLM names) and ``data`` holding
    ``{train,val,test}_score`` arrays (prompts × LLMs), optionally
    ``{split}_embed`` arrays, and ``prompt`` holding ``{split}_prompt`` lists.
    ``key`` ('easy/all_strong/3', say) walks into a nested dict first.
    Loading a pickle can run arbitrary code, hence the explicit opt-in.
    """
    path = Path(path)
    with _reading(path):
        if not allow_pickle:
            raise RecrouteError(
                f"{path}: is a pickle, and loading a pickle can run code; pass --allow-pickle "
                "(allow_pickle=True) only for a file from a source you trust."
            )
        with open(path, "rb") as f:
            obj = pickle.load(f)  # noqa: S301 - opted in above
    for part in (key.split("/") if key else []):
        if not isinstance(obj, dict) or part not in obj and _maybe_int(part) not in obj:
            raise RecrouteError(f"{path}: no entry {part!r} on the way to {key!r}.")
        obj = obj[part] if part in obj else obj[_maybe_int(part)]
    if not isinstance(obj, dict) or "data" not in obj or "model" not in obj:
        keys = list(obj)[:8] if isinstance(obj, dict) else type(obj).__name__
        raise RecrouteError(f"{path}: not a RouterEval router dataset (needs 'model' and 'data'; found {keys}); "
                            "name the nested entry with --key.")
    data, prompts = obj["data"], obj.get("prompt") or {}
    parts = []
    try:  # a malformed structure is bad input too, not a traceback
        for split in SPLIT_NAMES:
            if f"{split}_score" not in data:
                continue
            scores = np.asarray(data[f"{split}_score"], dtype=np.float32)
            emb = next((data[k] for k in (f"{split}_embed", f"{split}_embedding") if k in data), None)
            texts = prompts.get(f"{split}_prompt")
            n = len(scores)
            parts.append(RoutingData(
                source=str(path), scores=scores, prompt_ids=[f"{split}/{i}" for i in range(n)], models=list(obj["model"]),
                prompts=None if texts is None else [str(t) for t in texts], splits=[split] * n,
                embeddings=None if emb is None else np.asarray(emb, dtype=np.float32),
            ))
    except RecrouteError:
        raise
    except (TypeError, ValueError, AttributeError) as exc:
        raise RecrouteError(f"{path}: malformed RouterEval router dataset ({exc}).") from None
    if not parts:
        raise RecrouteError(f"{path}: 'data' holds no train_score, val_score or test_score array.")
    return RoutingData.concat(parts, source=str(path))


# -- shared helpers ----------------------------------------------------------
@contextlib.contextmanager
def _reading(path: Path):
    """Turn every way a file can fail to read into one sentence naming it."""
    if not path.exists():
        raise RecrouteError(f"{path}: file not found.")
    if path.is_dir():
        raise RecrouteError(f"{path}: is a folder, not a file.")
    if path.stat().st_size == 0:
        raise RecrouteError(f"{path}: is empty.")
    try:
        yield
    except RecrouteError:
        raise
    except UnicodeDecodeError:
        raise RecrouteError(f"{path}: is not UTF-8 text.") from None
    except json.JSONDecodeError as exc:
        raise RecrouteError(f"{path}:{exc.lineno}: invalid JSON ({exc.msg}).") from None
    except csv.Error as exc:
        raise RecrouteError(f"{path}: malformed CSV ({exc}).") from None
    except (zipfile.BadZipFile, EOFError, pickle.UnpicklingError) as exc:
        raise RecrouteError(f"{path}: is corrupt or truncated ({exc}).") from None
    except ValueError as exc:
        if "allow_pickle" in str(exc):
            raise RecrouteError(f"{path}: holds object arrays, which need pickle; store strings as numpy str arrays.") from None
        raise RecrouteError(f"{path}: cannot be read ({exc}).") from None
    except OSError as exc:
        raise RecrouteError(f"{path}: cannot be read ({exc.strerror or exc}).") from None


def _csv_records(path: Path) -> Iterator[tuple[int, dict]]:
    with open(path, newline="", encoding="utf-8") as f:
        reader = csv.DictReader(f)
        if not reader.fieldnames:
            raise RecrouteError(f"{path}: has no header row.")
        duplicated = {c for c in reader.fieldnames if reader.fieldnames.count(c) > 1}
        if duplicated:
            raise RecrouteError(f"{path}: column '{sorted(duplicated)[0]}' appears twice in the header.")
        for rec in reader:
            if None in rec:
                raise RecrouteError(f"{path}:{reader.line_num}: has more fields than the header.")
            if any(v is None for v in rec.values()):
                raise RecrouteError(f"{path}:{reader.line_num}: has fewer fields than the header.")
            yield reader.line_num, rec


def _jsonl_records(path: Path) -> Iterator[tuple[int, dict]]:
    with open(path, encoding="utf-8") as f:
        for line_no, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                rec = json.loads(line)
            except json.JSONDecodeError as exc:
                raise RecrouteError(f"{path}:{line_no}: invalid JSON ({exc.msg}).") from None
            if not isinstance(rec, dict):
                raise RecrouteError(f"{path}:{line_no}: expected a JSON object per line.")
            yield line_no, rec


def _check_columns(path: Path, present: set, required: Iterable[str], optional: Iterable[str]) -> None:
    """Missing required columns, and unknown ones that look like misspellings, are errors."""
    for column in required:
        if column not in present:
            close = difflib.get_close_matches(column, present, n=1)
            hint = f" (is '{close[0]}' meant to be '{column}'?)" if close else f" (has: {', '.join(sorted(present))})"
            raise RecrouteError(f"{path}: missing column '{column}'{hint}.")
    known = set(required) | set(optional)
    for column in sorted(present - known):
        close = difflib.get_close_matches(column, known, n=1, cutoff=0.8)
        if close:
            raise RecrouteError(f"{path}: unknown column '{column}'; did you mean '{close[0]}'?")


def _number(value, path, where, column, allow_empty: bool) -> float:
    """Parse one score or cost; empty is NaN (not observed) only where allowed."""
    if value is None or (isinstance(value, str) and value.strip() == ""):
        if allow_empty:
            return math.nan
        raise RecrouteError(f"{path}:{where}: empty '{column}'.")
    if isinstance(value, bool):
        return float(value)
    if isinstance(value, str):
        text = value.strip()
        if text in ("True", "true", "False", "false"):
            return float(text.lower() == "true")
        try:
            number = float(text)
        except ValueError:
            raise RecrouteError(f"{path}:{where}: '{column}' value {value[:40]!r} is not a number.") from None
    elif isinstance(value, (int, float)):
        number = float(value)
    else:
        raise RecrouteError(f"{path}:{where}: '{column}' value {value!r} is not a number.")
    if not math.isfinite(number):
        raise RecrouteError(f"{path}:{where}: '{column}' is {value!r}; leave a cell empty for 'not observed'.")
    return number


def _same(a: float, b: float) -> bool:
    return a == b or (math.isnan(a) and math.isnan(b))


def _maybe_int(text: str):
    return int(text) if text.lstrip("-").isdigit() else text

