"""A fitted router as a self-describing folder: no pickle, written atomically.

    DIR/manifest.json   format, versions, router name and hyperparameters,
                        its LLMs, the embedding model, where it was fitted
    DIR/arrays.npz      the learned arrays (factors, weights, the FAISS index
                        serialised as bytes), read with allow_pickle=False
    DIR/cost.npz        optional: the per-LLM cost model for cost-aware routing

A folder is written next to its destination (``.NAME.tmp-XXXXXXXX``) and
renamed into place, the old one set aside as ``.NAME-old`` meanwhile: a
failed rename puts the old one back, and a write killed half-way is
repaired by the next command that reads or writes the folder. Writers hold
``.NAME.lock`` (beside the folder) while they swap; a second writer is
refused at once.

A command that reads a router, changes it and writes it back (``add-llm``)
passes the :func:`folder_version` it read to :func:`save_router`, which refuses to
write if another command has replaced the folder in between: of two
concurrent ``add-llm``, one succeeds and the other says to run it again,
instead of both succeeding with one LLM lost. A router folder that is a symlink is written through to its
target; the link stays.
"""
from __future__ import annotations

import contextlib
import fcntl
import json
import os
import re
import shutil
import tempfile
import zipfile
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

import numpy as np

from .cost import CostModel
from .errors import RecrouteError
from .loaders import parse_json
from .routers import ROUTERS, Router, make_router
from .safeio import check_output, read_npz

FORMAT = "recroute-router"
FORMAT_VERSION = 1
MANIFEST = "manifest.json"
ARRAYS = "arrays.npz"
COST = "cost.npz"


def save_router(router: Router, folder, *, embedding_model: str, data_source: str = "",
                embedding_dim: int | None = None, cost_model: CostModel | None = None,
                read_version: tuple | None = None) -> Path:
    """Write a fitted router to ``folder`` (replacing a router folder already there).

    ``read_version``, the :func:`folder_version` of the folder when the router was read from it, makes
    the write fail if another command has replaced the folder since.

    ``embedding_dim``, the width of the prompt embeddings it was fitted on, lets a served router refuse
    prompts encoded by a model of another width with a clear error. A fitted ``cost_model`` is saved
    beside the router for cost-aware routing.
    """
    folder = Path(folder)
    if not router.servable:
        raise RecrouteError(f"{type(router).__name__} reads true outcomes, so it cannot route new prompts or be saved.")
    if not hasattr(router, "models_"):
        raise RecrouteError(f"{type(router).__name__} is not fitted; fit it before saving.")
    check_destination(folder)
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
    with writing(folder) as target:
        if read_version is not None and folder_version(target) != read_version:
            raise RecrouteError(f"{folder}: was changed by another recroute command while this one ran; "
                                "nothing was written, run this command again.")
        tmp = None
        try:
            tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.tmp-", dir=target.parent))
            umask = os.umask(0)
            os.umask(umask)
            tmp.chmod(0o777 & ~umask)  # mkdtemp makes it private; a router folder is an ordinary folder
            (tmp / MANIFEST).write_text(json.dumps(manifest, indent=1) + "\n")
            with open(tmp / ARRAYS, "wb") as f:
                np.savez(f, **router.state())
            if cost_model is not None:
                with open(tmp / COST, "wb") as f:
                    np.savez(f, **cost_model.state())
            _swap_in(tmp, target)
        except OSError as exc:
            if tmp is not None:
                shutil.rmtree(tmp, ignore_errors=True)
            raise RecrouteError(f"{folder}: cannot write the router ({exc.strerror or exc}).") from None
    return folder


def folder_version(folder) -> tuple:
    """Which write of a router folder this is: every write swaps in new files, so their identities change."""
    stats = []
    for name in (MANIFEST, ARRAYS, COST):
        try:
            st = os.stat(Path(folder) / name)
            stats.append((st.st_ino, st.st_mtime_ns, st.st_size))
        except OSError:
            stats.append(None)
    return tuple(stats)


def _swap_in(new: Path, target: Path) -> None:
    """Rename ``new`` to ``target``, the old router set aside until then and put back if the rename fails."""
    if not target.exists():
        os.replace(new, target)
        return
    old = _set_aside(target)
    os.replace(target, old)
    try:
        os.replace(new, target)
    except OSError:
        os.replace(old, target)  # if this fails too, the next command restores it from `old`
        raise
    shutil.rmtree(old, ignore_errors=True)


def _set_aside(target: Path) -> Path:
    return target.with_name(f".{target.name}-old")


@contextlib.contextmanager
def writing(folder):
    """Hold the writer lock of a router folder, with any interrupted write repaired first.

    Yields the folder to write: the target of a symlink, so the link survives. Another
    process holding the lock is an error at once, not a wait. Re-entrant within a process.
    """
    target = Path(os.path.realpath(folder)) if Path(folder).is_symlink() else Path(folder)
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise RecrouteError(f"{folder}: cannot create its folder ({exc.strerror or exc}).") from None
    lock = target.parent / f".{target.name}.lock"
    if lock in _HELD:  # this process already writes it (add-llm reads, then saves)
        yield target
        return
    try:
        fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o666)
    except OSError as exc:
        raise RecrouteError(f"{folder}: cannot create its lock file {lock.name} ({exc.strerror or exc}).") from None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)  # released by the kernel if the process dies
        except BlockingIOError:
            raise RecrouteError(f"{folder}: another recroute command is writing this router; "
                                "try again when it has finished.") from None
        _HELD.add(lock)
        try:
            _repair(target)
            yield target
        finally:
            _HELD.discard(lock)
    finally:
        os.close(fd)


_HELD: set[Path] = set()  # lock files this process holds


def _repair(target: Path) -> None:
    """Finish what a killed write left: the old router back if the new one never arrived; no temporaries."""
    old = _set_aside(target)
    if old.is_dir():
        if target.exists():
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(old, target)
    leftover = re.compile(re.escape(f".{target.name}.tmp-") + r"[a-z0-9_]{8}")
    for path in target.parent.iterdir():
        if leftover.fullmatch(path.name) and path.is_dir():
            shutil.rmtree(path, ignore_errors=True)


def check_destination(folder, inputs=()) -> None:
    """Refuse a folder a router cannot be written to: unwritable, one of ``inputs``, or holding something else."""
    folder = Path(folder)
    check_output(folder, inputs=inputs, folder=True)
    if folder.is_dir() and not (folder / MANIFEST).exists() and any(folder.iterdir()):
        raise RecrouteError(f"{folder}: exists and is not a recroute router folder; refusing to overwrite it.")


def load_router(folder) -> tuple[Router, dict]:
    """Read a router folder back: the fitted router and its manifest, every array checked against it."""
    folder = Path(folder)
    manifest = read_manifest(folder)
    if manifest["router"] not in ROUTERS:
        raise RecrouteError(f"{folder}: names an unknown router {manifest['router']!r}.")
    try:
        router = make_router(manifest["router"], **manifest["params"])
    except RecrouteError as exc:
        raise RecrouteError(f"{folder}: hyperparameters do not fit router {manifest['router']!r} "
                            f"({str(exc).rstrip('.')}).") from None
    if not router.servable:
        raise RecrouteError(f"{folder}: names router {manifest['router']!r}, which cannot be saved or served.")
    path = folder / ARRAYS
    if not zipfile.is_zipfile(path):
        raise RecrouteError(f"{path}: missing or not an .npz archive; the router folder is corrupt.")
    arrays = _read_folder_npz(path)
    try:
        if [str(m) for m in arrays.get("models_", [])] != manifest["models"]:
            raise RecrouteError(f"{folder}: the LLMs in {ARRAYS} do not match the manifest; the folder is corrupt.")
        _check_arrays(path, arrays, router.array_shapes(), manifest)
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
    arrays = _read_folder_npz(path)
    try:
        _check_arrays(path, arrays, CostModel.ARRAY_SHAPES, manifest)
        cost_model = CostModel(**manifest["cost"]).load_state(arrays)
    except RecrouteError as exc:
        raise RecrouteError(f"{path}: {str(exc).rstrip('.')}; the router folder is corrupt.") from None
    except (ValueError, TypeError, OSError, zipfile.BadZipFile) as exc:
        raise RecrouteError(f"{path}: cannot read the cost model ({type(exc).__name__}); the folder is corrupt.") from None
    if list(cost_model.models_) != manifest["models"]:
        raise RecrouteError(f"{path}: its LLMs do not match the manifest's; the router folder is corrupt.")
    return cost_model


def _read_folder_npz(path: Path) -> dict[str, np.ndarray]:
    try:
        return read_npz(path)
    except RecrouteError as exc:
        raise RecrouteError(f"{str(exc).rstrip('.')}; the folder is corrupt.") from None


def _check_arrays(path: Path, arrays: dict[str, np.ndarray], shapes: dict[str, tuple[str, tuple]],
                  manifest: dict) -> None:
    """The one check of a folder's arrays against what its router declares (``Router.array_shapes``):
    names, kinds, shapes consistent with the manifest's LLMs and embedding width, finite values."""
    sizes = {"m": len(manifest["models"])}
    if isinstance(manifest.get("embedding_dim"), int):
        sizes["d"] = manifest["embedding_dim"]
    required = {name for name in shapes if not name.endswith("?")}
    known = {name.rstrip("?") for name in shapes}
    missing, extra = sorted(required - set(arrays)), sorted(set(arrays) - known)
    if missing or extra:
        raise RecrouteError(f"lacks the array '{missing[0]}'" if missing else
                            f"holds an unexpected array '{extra[0]}' (is it another router's?)")
    for spec_name, (kind, shape) in shapes.items():
        name = spec_name.rstrip("?")
        if name not in arrays:
            continue
        array = arrays[name]
        ok_kind = {"f": "f", "F": "f", "i": "i", "U": "U", "u1": "u"}[kind] == array.dtype.kind
        if ok_kind and kind == "u1":
            ok_kind = array.dtype == np.uint8
        if not ok_kind:
            raise RecrouteError(f"array '{name}' has dtype {array.dtype}, not {_KIND_NAMES[kind]}")
        expected = tuple(sizes.setdefault(size, actual) if isinstance(size, str) else size
                         for size, actual in zip(shape, array.shape))
        if array.ndim != len(shape) or array.shape != expected:
            wanted = tuple(sizes.get(size, size) if isinstance(size, str) else size for size in shape)
            raise RecrouteError(f"array '{name}' has shape {array.shape}, expected {wanted}")
        if kind in "fF":
            with np.errstate(over="ignore"):
                as_float32 = array.astype(np.float32)  # what the routers compute in
            if np.isinf(as_float32).any() or kind == "f" and np.isnan(as_float32).any():
                raise RecrouteError(f"array '{name}' holds NaN, infinite values or values too large for 32-bit floats")


_KIND_NAMES = {"f": "floats", "F": "floats", "i": "integers", "U": "strings", "u1": "bytes (uint8)"}


def read_manifest(folder: Path) -> dict:
    path = folder / MANIFEST
    if not folder.is_dir() and _set_aside(folder).is_dir():  # a write was killed between its two renames
        with contextlib.suppress(RecrouteError), writing(folder):
            pass
    if not folder.is_dir():
        raise RecrouteError(f"{folder}: no such router folder.")
    if not path.is_file():
        raise RecrouteError(f"{folder}: not a recroute router folder (no {MANIFEST}).")
    try:
        manifest = parse_json(path.read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError) as exc:
        raise RecrouteError(f"{path}: is not valid JSON ({exc}).") from None
    except RecursionError:
        raise RecrouteError(f"{path}: is not valid JSON (nested too deeply).") from None
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
