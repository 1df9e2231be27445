"""Fingerprints of a real dataset's source tree: which files its shards were converted from.

Conversion records, in ``dataset.json``, a digest of the files it read (the listed images and the
layout's list files, each by its path relative to ``dataset.root``) and writes every file's entry to
``source-files.tsv.gz`` beside the shards. Every later ``prepare`` fingerprints the tree again and
refuses shards converted from another tree, naming both digests and the first differing file: the
shard directory's name hashes the config, not the files, so another tree under the same name would
otherwise reuse the first tree's shards (and every base model and cell built on them).

``dataset.verify`` says what an entry is: ``stat`` (the default: size and modification time, one
``lstat`` per file) or ``content`` (size and SHA-256: every byte read again on every ``prepare``).
Files whose real location (symlinks followed, ``..`` resolved) lies outside the root are read but
listed in the record, with a warning, or refused with ``dataset.allow_outside_root=false``.
"""

from __future__ import annotations

import gzip
import hashlib
import logging
import os
import stat
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tqdm.auto import tqdm

from roarkar.identity import bytes_sha256

__all__ = [
    "ENTRIES_FILE",
    "VERIFY_MODES",
    "Fingerprint",
    "SourceChangedError",
    "check_outside",
    "check_source",
    "fingerprint",
    "write_entries",
]

log = logging.getLogger(__name__)

ENTRIES_FILE = "source-files.tsv.gz"
VERIFY_MODES = ("stat", "content")
OUTSIDE_LISTED = 1000  # outside-root files named in dataset.json (all are in ENTRIES_FILE)
_WARNED: set[str] = set()  # shard directories whose outside-root files were warned about


class SourceChangedError(ValueError):
    """A source tree that differs from the one a dataset's shards were converted from."""


@dataclass(frozen=True)
class Fingerprint:
    """A source tree as ``prepare`` saw it: ``entries`` sorted ``(relative path, value)``, their
    ``digest`` (16 hex), and the relative paths whose real location is outside the root."""

    mode: str
    digest: str
    entries: tuple[tuple[str, str], ...]
    outside: tuple[str, ...]

    def record(self) -> dict[str, Any]:
        """The ``source`` entry of ``dataset.json``."""
        return {
            "fingerprint": self.digest,
            "verify": self.mode,
            "files": len(self.entries),
            "entries_file": ENTRIES_FILE,
            "outside_root": {
                "count": len(self.outside),
                "files": list(self.outside[:OUTSIDE_LISTED]),
            },
        }


def verify_mode(cfg: Mapping[str, Any]) -> str:
    """``dataset.verify`` (default ``stat``), checked."""
    mode = str(cfg.get("verify") or "stat")
    if mode not in VERIFY_MODES:
        raise ValueError(f"dataset.verify={mode!r}: expected one of {list(VERIFY_MODES)}")
    return mode


def _relative(path: str, root: str) -> tuple[str, bool]:
    """``path`` relative to ``root`` (both normalised) and whether it stays inside lexically."""
    if path.startswith(root + os.sep):
        return path[len(root) + 1 :], True
    return os.path.relpath(path, root), False


def _content(path: str) -> str:
    """SHA-256 of a file, read now (not ``identity.file_sha256``: its memo by size and time is
    exactly what ``verify=content`` must not trust)."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def fingerprint(
    root: Path, files: Iterable[Path], mode: str = "stat", desc: str = ""
) -> Fingerprint:
    """Fingerprint ``files`` (absolute, under ``root`` or listed outside it) in ``mode``; a
    progress bar appears when the pass takes more than two seconds."""
    if mode not in VERIFY_MODES:
        raise ValueError(f"dataset.verify={mode!r}: expected one of {list(VERIFY_MODES)}")
    top = os.path.normpath(os.path.abspath(root))
    real_top = os.path.realpath(top)
    real_dirs: dict[str, str] = {}
    entries: dict[str, str] = {}
    outside: list[str] = []
    paths = sorted({os.path.normpath(os.path.abspath(f)) for f in files})
    for path in tqdm(
        paths, desc=f"{desc or 'source'}: fingerprint ({mode})", unit="file", delay=2.0,
        mininterval=1.0, dynamic_ncols=True,
    ):  # fmt: skip
        rel, inside = _relative(path, top)
        try:
            info = os.lstat(path)
            real = os.path.realpath(path) if stat.S_ISLNK(info.st_mode) else None
            if real is not None:
                info = os.stat(path)
        except FileNotFoundError:
            raise FileNotFoundError(
                f"{path} listed in dataset.root={root} does not exist"
            ) from None
        if real is None:
            parent, _, name = path.rpartition(os.sep)
            if parent not in real_dirs:
                real_dirs[parent] = os.path.realpath(parent)
            real = os.path.join(real_dirs[parent], name)
        if not inside or not (real == real_top or real.startswith(real_top + os.sep)):
            outside.append(rel)
        value = _content(path) if mode == "content" else str(info.st_mtime_ns)
        entries[rel] = f"{info.st_size} {value}"
    ordered = tuple(sorted(entries.items()))
    text = "\n".join(f"{rel}\t{value}" for rel, value in ordered)
    return Fingerprint(mode, bytes_sha256(f"{mode}\n{text}".encode())[:16], ordered, tuple(outside))


def write_entries(fp: Fingerprint, directory: Path) -> None:
    """Write every file's entry (``path<TAB>size value``) to ``directory / ENTRIES_FILE``."""
    text = "".join(f"{rel}\t{value}\n" for rel, value in fp.entries)
    # mtime=0: the same tree gives the same bytes (gzip's header would stamp the time of writing)
    (directory / ENTRIES_FILE).write_bytes(gzip.compress(text.encode("utf-8"), mtime=0))


def _read_entries(directory: Path) -> list[tuple[str, str]] | None:
    try:
        with gzip.open(directory / ENTRIES_FILE, "rt", encoding="utf-8") as handle:
            return [tuple(line.rstrip("\n").split("\t", 1)) for line in handle]  # type: ignore[misc]
    except (OSError, EOFError):
        return None


def _first_difference(old: list[tuple[str, str]], new: tuple[tuple[str, str], ...]) -> str:
    """The first relative path (in sorted order) at which two trees' entries differ, and how."""
    before, after = dict(old), dict(new)
    for rel in sorted(set(before) | set(after)):
        a, b = before.get(rel), after.get(rel)
        if a == b:
            continue
        if a is None:
            return f"{rel} (only in this tree)"
        if b is None:
            return f"{rel} (only in the tree the shards came from)"
        (size_a, value_a), size_b = a.split(" ", 1), b.split(" ", 1)[0]
        if size_a != size_b:
            return f"{rel} (size {size_a} -> {size_b} bytes)"
        what = "content (SHA-256)" if len(value_a) == 64 else "modification time"
        return f"{rel} (same size, {what} differs)"
    return "none found (the entries agree: the recorded digest is stale)"


def check_source(
    record: Mapping[str, Any] | None,
    directory: Path,
    fp: Fingerprint,
    *,
    name: str,
    root: Path,
    rebuild: Any = None,
) -> None:
    """Refuse shards in ``directory`` whose recorded source (``record``, from ``dataset.json``)
    is not the tree ``fp`` fingerprinted; shards written before sources were recorded are used,
    with a warning."""
    if not record:
        log.warning(
            "%s: %s records no source fingerprint (converted by an older roarkar), so it cannot be "
            "checked against dataset.root=%s; pass +dataset.rebuild=true to convert this tree anew",
            name,
            directory,
            root,
        )
        return
    if record.get("fingerprint") == fp.digest:
        return
    old = _read_entries(directory)
    first = (
        _first_difference(old, fp.entries)
        if old is not None
        else f"unknown ({directory / ENTRIES_FILE} is missing)"
    )
    way = (
        "+dataset.rebuild=true"
        if rebuild in (None, False, "", "false")
        else f"+dataset.rebuild={fp.digest[:8]} (any new value)"
    )
    raise SourceChangedError(
        f"dataset {name!r}: dataset.root={root} is not the tree the shards in {directory} were "
        f"converted from: they record source fingerprint {record.get('fingerprint')} "
        f"({record.get('files')} files, verify={record.get('verify')}), this tree has "
        f"{fp.digest} ({len(fp.entries)} files); first differing file: {first}. Those shards, "
        "and the base models and cells built on them, belong to the other tree. To convert this "
        f"tree, pass {way}: new shards and new identities; or point dataset.root back at the "
        "tree they came from."
    )


def check_outside(fp: Fingerprint, cfg: Mapping[str, Any], directory: Path) -> None:
    """Files read from outside ``dataset.root``: a warning with their count (once per shard
    directory and process), or an error with ``dataset.allow_outside_root=false``."""
    if not fp.outside:
        return
    allow = cfg.get("allow_outside_root", True)
    shown = ", ".join(fp.outside[:3]) + (
        f" (+{len(fp.outside) - 3} more)" if len(fp.outside) > 3 else ""
    )
    what = (
        f"dataset {cfg.get('name')!r}: {len(fp.outside)} listed file(s) lie outside "
        f"dataset.root={cfg.get('root')} (a '..' in a list file or a symlink leaving the root): {shown}"
    )
    if allow in (False, "false", "False", 0):
        raise ValueError(f"{what}; refused (dataset.allow_outside_root=false)")
    if str(directory) not in _WARNED:
        _WARNED.add(str(directory))
        log.warning(
            "%s; they are read, and listed in %s (set dataset.allow_outside_root=false to refuse)",
            what,
            directory / "dataset.json",
        )
