"""Reading untrusted .npz archives and checking output destinations, each in one place.

An .npz member's header states its array's shape, and numpy allocates that
much memory before reading a byte: a damaged or hostile header claiming 10¹²
elements is a MemoryError, not a clear refusal. :func:`read_npz` compares
every header with the bytes actually stored before reading anything.

:func:`check_output` is what every command runs on the files it will write,
before it starts its work: a destination that cannot be written, or that is
one of the command's own inputs, is refused in one sentence while nothing
has been done yet.
"""
from __future__ import annotations

import math
import os
import tempfile
import zipfile
from pathlib import Path
from typing import Iterable

import numpy as np

from .errors import RecrouteError


def read_npz(path) -> dict[str, np.ndarray]:
    """Every array of an .npz, without pickle, each header checked against the bytes stored for it.

    Raises RecrouteError naming the file for anything that is not a sound
    archive of plain numpy arrays; callers add what the file was for.
    """
    path = Path(path)
    try:
        with zipfile.ZipFile(path) as archive:
            arrays = {}
            for info in archive.infolist():
                name = info.filename[:-4] if info.filename.endswith(".npy") else info.filename
                with archive.open(info) as member:
                    arrays[name] = _read_member(path, name, member, info.file_size)
            return arrays
    except RecrouteError:
        raise
    except (zipfile.BadZipFile, zipfile.LargeZipFile, EOFError, ValueError, OSError, NotImplementedError,
            OverflowError, TypeError, KeyError) as exc:  # what zipfile and numpy raise on damaged bytes
        raise RecrouteError(f"{path}: is damaged ({type(exc).__name__}: {exc}).") from None


def _read_member(path: Path, name: str, member, stored: int) -> np.ndarray:
    version = np.lib.format.read_magic(member)
    read_header = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
    shape, fortran, dtype = read_header(member)
    if dtype.hasobject:
        raise RecrouteError(f"{path}: array '{name}' holds Python objects, which need pickle; "
                            "store strings as numpy str arrays.")
    if any(size < 0 for size in shape):
        raise RecrouteError(f"{path}: array '{name}' has a negative size in its shape {shape}.")
    claimed = math.prod(shape) * dtype.itemsize
    if claimed > stored:
        raise RecrouteError(f"{path}: array '{name}' claims shape {shape} ({claimed:,} bytes) but the file stores "
                            f"{stored:,}.")
    count = math.prod(shape)
    data = member.read(claimed)
    if len(data) != claimed:
        raise RecrouteError(f"{path}: array '{name}' is truncated.")
    array = np.frombuffer(data, dtype=dtype, count=count).copy()
    return array.reshape(shape[::-1]).transpose() if fortran else array.reshape(shape)


def check_output(path, *, suffix: str = "", inputs: Iterable = (), folder: bool = False) -> None:
    """Refuse, before any work, a destination that cannot be written or that is one of ``inputs``.

    ``suffix`` is the file type the name must end with; ``folder`` says the
    destination is a folder (a router) that may not exist yet, with any
    missing parents created when it is written.
    """
    if path is None:
        return
    target = Path(path)
    if suffix and not str(path).lower().endswith(suffix):
        raise RecrouteError(f"{path}: expected a {suffix} file name.")
    for source in inputs:
        if source is not None and Path(source).exists() and target.exists() and os.path.samefile(source, target):
            raise RecrouteError(f"{path}: is one of this command's inputs; refusing to write over it.")
    if not folder and target.is_dir():
        raise RecrouteError(f"{path}: is a folder; name a file to write.")
    if folder and target.exists() and not target.is_dir():
        raise RecrouteError(f"{path}: is a file, not a router folder; refusing to overwrite it.")
    parent = target.resolve().parent
    existing = parent
    while not existing.exists():
        existing = existing.parent
    if not existing.is_dir():
        raise RecrouteError(f"{path}: cannot be written, as {existing} is a file, not a folder.")
    if existing != parent and not folder:
        raise RecrouteError(f"{path}: its folder does not exist.")
    try:
        with tempfile.TemporaryFile(dir=existing):
            pass
    except OSError as exc:
        raise RecrouteError(f"{path}: cannot be written in {existing} ({exc.strerror or exc}).") from None
