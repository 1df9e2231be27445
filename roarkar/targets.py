"""Import targets, ``pkg.module:obj`` or ``path/to/file.py:obj``: parse one, find its source file
(what a cell identity hashes) and import it, the same way in every process and launcher.

A file target's relative path is resolved against the directory the user ran from
(:func:`absolute_target`, applied where the command line is read), so a job started on another
node, or in another folder, imports the same file. Bottom layer: no roarkar imports; nothing happens
on import.
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import sys
from pathlib import Path
from typing import Any

__all__ = [
    "TargetError",
    "absolute_target",
    "is_file",
    "load_target",
    "source_file",
    "split_target",
]


class TargetError(ValueError):
    """A target that cannot be parsed, found or imported; the message names it and why."""


def split_target(target: str) -> tuple[str, str]:
    """``("pkg.module" | "path/file.py", "obj.attr")``; a target without ``:obj`` is an error."""
    if not isinstance(target, str) or ":" not in target:
        raise TargetError(f"target {target!r}: expected 'pkg.module:obj' or 'path/to/file.py:obj'")
    where, _, attr = target.rpartition(":")
    if not where or not attr or not all(part.isidentifier() for part in attr.split(".")):
        raise TargetError(f"target {target!r}: expected 'pkg.module:obj' or 'path/to/file.py:obj'")
    return where, attr


def is_file(where: str) -> bool:
    """True for the file part of ``path/to/file.py:obj``, False for a module's dotted name."""
    return where.endswith(".py") or "/" in where


def absolute_target(target: str, base: str | Path | None = None) -> str:
    """``target`` with a relative file path made absolute against ``base`` (default: the current
    directory); a module target, or an absolute path, is returned unchanged."""
    where, attr = split_target(target)
    if not is_file(where) or Path(where).expanduser().is_absolute():
        return f"{Path(where).expanduser()}:{attr}" if is_file(where) else target
    return f"{(Path(base or Path.cwd()) / where).resolve()}:{attr}"


def source_file(target: str) -> Path:
    """The file that defines ``target``'s module (the module's package is imported to find it,
    the module itself is not)."""
    where, _ = split_target(target)
    if is_file(where):
        path = Path(where).expanduser()
        path = path if path.is_absolute() else Path.cwd() / path
        if not path.is_file():
            raise TargetError(f"target {target!r}: no file {path}")
        return path.resolve()
    try:
        spec = importlib.util.find_spec(where)
    except (ImportError, ValueError) as exc:
        raise TargetError(
            f"target {target!r} does not import: {type(exc).__name__}: {exc}"
        ) from exc
    if spec is None or not spec.origin or not Path(spec.origin).is_file():
        raise TargetError(f"target {target!r}: no module {where!r} (not on sys.path)")
    return Path(spec.origin).resolve()


def _import_file(path: Path) -> Any:
    """The module of file ``path``, imported once per content (an edited file is imported anew)."""
    digest = hashlib.sha256(path.read_bytes()).hexdigest()[:12]
    name = f"roarkar_user_{path.stem}_{digest}"
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, path)
        if spec is None or spec.loader is None:
            raise TargetError(f"{path}: not an importable python file")
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module  # dataclasses and pickling look the module up by name
        try:
            spec.loader.exec_module(module)
        except BaseException:
            del sys.modules[name]
            raise
    return sys.modules[name]


def load_target(target: str) -> Any:
    """The object ``target`` names, imported; a module that does not import (its error quoted) or
    a missing attribute is a :class:`TargetError` naming the target."""
    where, attr = split_target(target)
    try:
        module = (
            _import_file(source_file(target)) if is_file(where) else importlib.import_module(where)
        )
    except TargetError:
        raise
    except Exception as exc:  # the user's module failed while importing: say how
        raise TargetError(
            f"target {target!r} does not import: {type(exc).__name__}: {exc}"
        ) from exc
    obj: Any = module
    for i, part in enumerate(attr.split(".")):
        if not hasattr(obj, part):
            owner = ".".join([where, *attr.split(".")[:i]]) if not is_file(where) else where
            public = sorted(n for n in dir(obj) if not n.startswith("_"))[:20]
            raise TargetError(
                f"target {target!r}: {owner} has no attribute {part!r} (it has: "
                f"{', '.join(public) or 'nothing public'})"
            )
        obj = getattr(obj, part)
    return obj
