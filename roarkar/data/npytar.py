"""The one array container of roarkar's sample-keyed data (image shards, saliency rank shards): a
plain (uncompressed, POSIX) tar of whole ``.npy`` arrays, the first axis of each the samples in
order, plus small files (JSON). Written atomically without copying the arrays and byte-identical
for the same arrays (fixed owner and time); read back by locating each array's data in the file, so
it is memory-mapped in place (tar data starts on 512-byte boundaries and ``.npy`` data on 64-byte
ones). ``tar x`` gives ordinary files, and webdataset reads a container as one sample per member
name stem (``images.npy`` -> key ``images``, field ``npy``). Knows nothing about datasets.
"""

from __future__ import annotations

import io
import tarfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from roarkar.files import atomic_write


def _member(name: str, size: int) -> tarfile.TarInfo:
    """A tar header with fixed owner and time, so the same arrays give byte-identical shards."""
    info = tarfile.TarInfo(name)
    info.size, info.mtime, info.mode = size, 0, 0o644
    info.uid = info.gid = 0
    info.uname = info.gname = "roarkar"
    return info


class _Chunks(io.RawIOBase):
    """A read-only stream over byte chunks (a .npy header, then the array's memory), no copy."""

    def __init__(self, *chunks: bytes | memoryview) -> None:
        self._chunks = [memoryview(c).cast("B") for c in chunks]
        self._i = self._pos = 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:  # type: ignore[override]
        while self._i < len(self._chunks) and self._pos >= len(self._chunks[self._i]):
            self._i, self._pos = self._i + 1, 0
        if self._i == len(self._chunks):
            return 0
        chunk = self._chunks[self._i][self._pos : self._pos + len(buffer)]
        buffer[: len(chunk)] = chunk
        self._pos += len(chunk)
        return len(chunk)


def add_array(tar: tarfile.TarFile, name: str, array: np.ndarray) -> None:
    """Add ``array`` as the ``.npy`` member ``name``, streamed from its memory without a copy."""
    array = np.ascontiguousarray(array)
    header = io.BytesIO()
    np.lib.format.write_array_header_1_0(header, np.lib.format.header_data_from_array_1_0(array))
    head = header.getvalue()
    data = array.reshape(-1).view(np.uint8) if array.size else np.empty(0, np.uint8)
    tar.addfile(_member(name, len(head) + array.nbytes), io.BufferedReader(_Chunks(head, data)))


def add_bytes(tar: tarfile.TarFile, name: str, blob: bytes) -> None:
    """Add a member ``name`` holding ``blob`` (a small non-array file, e.g. JSON)."""
    tar.addfile(_member(name, len(blob)), io.BytesIO(blob))


@dataclass(frozen=True)
class ArrayPlace:
    """Where one ``.npy`` member's data lies in the tar file."""

    offset: int  # of the array data in the tar file
    shape: tuple[int, ...]
    dtype: np.dtype


def locate_arrays(path: Path) -> dict[str, ArrayPlace]:
    """Where each ``.npy`` member's data lies in the tar file, read from the tar and npy headers.

    Raises FileNotFoundError for a missing file, and tar, npy or EOFError/ValueError exceptions for
    an unreadable one (the caller names what it expected).
    """
    out: dict[str, ArrayPlace] = {}
    size = path.stat().st_size
    with open(path, "rb") as fh, tarfile.open(fileobj=fh, mode="r:") as tar:
        for member in tar.getmembers():
            if not member.name.endswith(".npy"):
                continue
            if member.offset_data + member.size > size:
                raise EOFError(f"member {member.name} runs past the end of the file")
            fh.seek(member.offset_data)
            version = np.lib.format.read_magic(fh)
            read_header = (
                np.lib.format.read_array_header_1_0
                if version == (1, 0)
                else np.lib.format.read_array_header_2_0
            )
            shape, fortran, dtype = read_header(fh)
            offset = fh.tell()
            nbytes = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
            if fortran or dtype.hasobject:
                raise ValueError(f"member {member.name} is not a plain C-order array")
            if offset + nbytes > member.offset_data + member.size:
                raise EOFError(f"member {member.name} is shorter than its header says")
            out[member.name] = ArrayPlace(offset, tuple(shape), dtype)
    return out


def write_arrays(
    path: Path, arrays: Mapping[str, np.ndarray], files: Mapping[str, bytes] | None = None
) -> None:
    """Write a container atomically (a killed writer leaves none): the ``.npy`` members
    ``arrays``, then the small members ``files``, in the order given."""
    with atomic_write(path) as tmp, tarfile.open(tmp, "w", format=tarfile.USTAR_FORMAT) as tar:
        for name, array in arrays.items():
            add_array(tar, name, array)
        for name, blob in (files or {}).items():
            add_bytes(tar, name, blob)


class ArrayTar:
    """An opened container: where each array lies, mapped on request (read-only), small members
    read whole. Raises FileNotFoundError for a missing file and ValueError/EOFError/tar errors for
    an unreadable one (the caller names what it expected)."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.places = locate_arrays(self.path)

    def check(self, expected: Mapping[str, tuple[tuple[int, ...], tuple[np.dtype, ...]]]) -> None:
        """Raise a ValueError naming the member unless each is there with its shape and one of its
        dtypes (the message says what was found and what was expected)."""
        for name, (shape, dtypes) in expected.items():
            found = self.places.get(name)
            if found is None:
                raise ValueError(f"lacks {name} (has {sorted(self.places)})")
            if found.shape != tuple(shape) or found.dtype not in [np.dtype(d) for d in dtypes]:
                wanted = " or ".join(str(np.dtype(d)) for d in dtypes)
                raise ValueError(
                    f"{name} is {found.dtype} {list(found.shape)}, expected {wanted} {list(shape)}"
                )

    def map(self, name: str) -> np.ndarray:
        """The array ``name`` memory-mapped in place (an empty array when it has no elements)."""
        a = self.places[name]
        if 0 in a.shape:
            return np.empty(a.shape, a.dtype)
        return np.memmap(self.path, dtype=a.dtype, mode="r", offset=a.offset, shape=a.shape)

    def read_into(self, name: str, out: np.ndarray) -> None:
        """Read a whole array with one ``readinto`` (faster than faulting in a mapping page by
        page); EOFError when the file ends first."""
        a = self.places[name]
        with open(self.path, "rb") as fh:
            fh.seek(a.offset)
            view = memoryview(out.reshape(-1).view(np.uint8))
            got = fh.readinto(view)
        if got != len(view):
            raise EOFError(f"{name} is truncated")

    def member(self, name: str) -> bytes:
        """The bytes of a small member (KeyError when there is none)."""
        with tarfile.open(self.path, mode="r:") as tar:
            handle = tar.extractfile(name)
            if handle is None:
                raise KeyError(name)
            return handle.read()
