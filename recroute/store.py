"""A fitted router as a self-describing folder: no pickle, written atomically.

    DIR/manifest.json   format, versions, router name and hyperparameters,
                        its LLMs, the embedding model, where it was fitted
    DIR/arrays.npz      the learned arrays (factors, weights, the FAISS index
                        serialised as bytes), read with allow_pickle=False
    DIR/cost.npz        optional: the per-LLM cost model for cost-aware routing

A folder is written next to its destination and renamed into place, so a
failure leaves any previous router there intact.
"""
from __future__ import annotations

import json
import os
import shutil
import tempfile
import zipfile
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

import numpy as np

from .cost import CostModel
from .errors import RecrouteError
from .routers import ROUTERS, Router

FORMAT = "recroute-router"
FORMAT_VERSION = 1
MANIFEST = "manifest.json"
ARRAYS = "arrays.npz"
COST = "cost.npz"


def save_router(router: Router, folder, *, embedding_model: str, data_source: str = "",
                embedding_dim: int | None = None, cost_model: CostModel | None = None) -> Path:
    """Write a fitted router to ``folder`` (replacing a router folder already there).

    ``embedding_dim``, the width of the prompt embeddings it was fitted on, lets a served router refuse
    prompts encoded by a model of another width with a clear error. A fitted ``cost_model`` is saved
    beside the router for cost-aware routing.
    """
    folder = Path(folder)
    if not router.servable:
        raise RecrouteError(f"{type(router).__name__} reads true outcomes, so it cannot route new prompts or be saved.")
    if not hasattr(router, "models_"):
        raise RecrouteError(f"{type(router).__name__} is not fitted; fit it before saving.")
    if folder.exists() and (not folder.is_dir() or (not (folder / MANIFEST).exists() and any(folder.iterdir()))):
        raise RecrouteError(f"{folder}: exists and is not a recroute router folder; refusing to overwrite it.")
    name = next((key for key, cls in ROUTERS.items() if cls is type(router)), None)
    if name is None:
        raise RecrouteError(f"{type(router).__name__} is not a registered router, so it cannot be saved.")
    manifest = {
        "format": FORMAT, "format_version": FORMAT_VERSION, "router": name, "params": router.get_params(),
        "models": [str(m) for m in router.models_], "embedding_model": embedding_model, "data": data_source,
        **({} if embedding_dim is None else {"embedding_dim": int(embedding_dim)}),
        **({} if cost_model is None else {"cost": cost_model.get_params()}),
        **({"chosen": router.chosen_} if isinstance(getattr(router, "chosen_", None), dict) else {}),
        "versions": {pkg: _version(pkg) for pkg in ("recroute", "numpy", "faiss-cpu", "implicit", "lightfm-next", "torch")},
    }
    folder.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{folder.name}-", dir=folder.parent))
    umask = os.umask(0)
    os.umask(umask)
    tmp.chmod(0o777 & ~umask)  # mkdtemp makes it private; a router folder is an ordinary folder
    try:
        (tmp / MANIFEST).write_text(json.dumps(manifest, indent=1) + "\n")
        with open(tmp / ARRAYS, "wb") as f:
            np.savez(f, **router.state())
        if cost_model is not None:
            with open(tmp / COST, "wb") as f:
                np.savez(f, **cost_model.state())
        if folder.exists():
            old = folder.with_name(f".{folder.name}-old")
            shutil.rmtree(old, ignore_errors=True)
            os.replace(folder, old)
            os.replace(tmp, folder)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, folder)
    except OSError as exc:
        shutil.rmtree(tmp, ignore_errors=True)
        raise RecrouteError(f"{folder}: cannot write the router ({exc.strerror or exc}).") from None
    return folder


def load_router(folder) -> tuple[Router, dict]:
    """Read a router folder back: the fitted router and its manifest."""
    folder = Path(folder)
    manifest = read_manifest(folder)
    cls = ROUTERS.get(manifest["router"])
    if cls is None:
        raise RecrouteError(f"{folder}: names an unknown router {manifest['router']!r}.")
    try:
        router = cls(**manifest["params"])
    except TypeError as exc:
        raise RecrouteError(f"{folder}: hyperparameters do not fit router {manifest['router']!r} ({exc}).") from None
    path = folder / ARRAYS
    if not zipfile.is_zipfile(path):
        raise RecrouteError(f"{path}: missing or not an .npz archive; the router folder is corrupt.")
    try:
        with np.load(path, allow_pickle=False) as npz:
            arrays = {k: npz[k] for k in npz.files}
        if [str(m) for m in arrays.get("models_", [])] != manifest["models"]:
            raise RecrouteError(f"{folder}: the LLMs in {ARRAYS} do not match the manifest; the folder is corrupt.")
        router.load_state(arrays)
    except RecrouteError as exc:
        if str(exc).startswith(str(folder)):
            raise
        reason = str(exc).rstrip(".")
        raise RecrouteError(f"{path}: cannot restore the router ({reason}); the folder is corrupt.") from None
    except (ValueError, KeyError, AttributeError, TypeError, OSError, zipfile.BadZipFile, RuntimeError) as exc:
        raise RecrouteError(f"{path}: cannot restore the router ({type(exc).__name__}: {exc}); the folder is corrupt.") from None
    return router, manifest


def load_cost_model(folder) -> CostModel | None:
    """The cost model saved with a router folder, or None if it was fitted without costs."""
    folder = Path(folder)
    manifest = read_manifest(folder)
    if "cost" not in manifest:
        return None
    if not isinstance(manifest["cost"], dict):
        raise RecrouteError(f"{folder / MANIFEST}: 'cost' must be an object of cost-model settings.")
    path = folder / COST
    if not zipfile.is_zipfile(path):
        raise RecrouteError(f"{path}: missing or not an .npz archive; the router folder is corrupt.")
    try:
        with np.load(path, allow_pickle=False) as npz:
            cost_model = CostModel(**manifest["cost"]).load_state({k: npz[k] for k in npz.files})
    except RecrouteError as exc:
        raise RecrouteError(f"{path}: {str(exc).rstrip('.')}; the router folder is corrupt.") from None
    except (ValueError, TypeError, OSError, zipfile.BadZipFile) as exc:
        raise RecrouteError(f"{path}: cannot read the cost model ({type(exc).__name__}); the folder is corrupt.") from None
    if list(cost_model.models_) != manifest["models"]:
        raise RecrouteError(f"{path}: its LLMs do not match the manifest's; the router folder is corrupt.")
    return cost_model


def read_manifest(folder: Path) -> dict:
    path = folder / MANIFEST
    if not folder.is_dir():
        raise RecrouteError(f"{folder}: no such router folder.")
    if not path.is_file():
        raise RecrouteError(f"{folder}: not a recroute router folder (no {MANIFEST}).")
    try:
        manifest = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise RecrouteError(f"{path}: is not valid JSON ({exc}).") from None
    except OSError as exc:
        raise RecrouteError(f"{path}: cannot be read ({exc.strerror or exc}).") from None
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise RecrouteError(f"{path}: is not a recroute router manifest.")
    if manifest.get("format_version") != FORMAT_VERSION:
        raise RecrouteError(f"{path}: format version {manifest.get('format_version')} is not supported "
                            f"(this recroute reads version {FORMAT_VERSION}).")
    missing = [k for k in ("router", "params", "models", "embedding_model") if k not in manifest]
    if missing:
        raise RecrouteError(f"{path}: lacks '{missing[0]}'.")
    kinds = {"router": str, "params": dict, "models": list, "embedding_model": str}
    wrong = [k for k, kind in kinds.items() if not isinstance(manifest[k], kind)]
    if wrong or not all(isinstance(m, str) for m in manifest["models"]):
        key = wrong[0] if wrong else "models"
        kind = "list of strings" if key == "models" else kinds[key].__name__
        raise RecrouteError(f"{path}: '{key}' must be a {kind}.")
    return manifest


def _version(package: str) -> str | None:
    try:
        return version(package)
    except PackageNotFoundError:
        return None
