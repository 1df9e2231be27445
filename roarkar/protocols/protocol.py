"""A protocol as a registered unit (as methods, models, dataset kinds and tables are): what a cell
of it is, how a study expands into its cells, how it trains from a context and a base model, and
which tables it feeds. ``roarkar.protocols.cell.run_cell`` runs any registered protocol; the plan,
the status and the report look protocols up here instead of testing their names.

Adding one: a module in ``roarkar/protocols/`` with a :class:`Protocol` subclass and
``@register_protocol``, imported by ``roarkar/protocols/__init__.py`` (the list in
``docs/ARCHITECTURE.md``, "How to add").
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, ClassVar

from roarkar.config import Config, ProtocolConfig
from roarkar.registry import Registry

if TYPE_CHECKING:
    from roarkar.models import TappedNet
    from roarkar.protocols.context import Context
    from roarkar.store import Cell
    from roarkar.training import FitResult


@dataclass(frozen=True)
class StudyPart:
    """A protocol's part of a study (``study.<protocol>``) as plain values, and what expanding it
    may need from the run: the model's name and its taps (computed on demand; None without a
    model)."""

    node: dict
    model: str | None = None
    taps: Callable[[], tuple[str, ...]] | None = None


@dataclass(frozen=True)
class CellRun:
    """What a protocol trains one cell from: its context (method, data, recipe), the base model
    and its identity, the cell, the cell's identity and checkpoint, and a per-step callback
    (the claim's heartbeat)."""

    ctx: Context
    base: TappedNet
    base_id: str
    cell: Cell
    identity: str
    checkpoint: Path
    on_step: Callable[[int], None] | None = None


class Protocol:
    """One protocol. Subclasses set the class attributes and implement the three methods.

    ``name`` is ``protocol.name`` and the trainer stage whose epochs and learning-rate scale its
    cells use; ``config`` its typed view of ``protocol`` (``roarkar.config``); ``study_lists`` the
    lists of ``study.<name>`` that must not be empty; ``tables`` the registered tables its rows
    feed; ``precomputes`` whether ``task=precompute`` / ``task=export_maps`` apply to it.
    """

    name: ClassVar[str]
    config: ClassVar[type[ProtocolConfig]]
    study_lists: ClassVar[tuple[str, ...]] = ("methods", "modes")
    tables: ClassVar[tuple[str, ...]] = ()
    precomputes: ClassVar[bool] = False

    def cell_fields(self, config: Config) -> tuple[str, float]:
        """The cell's layer ('' where the protocol has none) and percent, each checked, with the
        key named when it is wrong."""
        raise NotImplementedError

    def study_cells(self, part: StudyPart) -> list[tuple[str, dict[str, object]]]:
        """One ``(method, scalar settings)`` per cell of one seed of ``part``; the plan adds the
        seed, the dataset and the study's method parameters."""
        raise NotImplementedError

    def train(self, run: CellRun) -> FitResult:
        """Train the cell; its held-out accuracy and true-class score in the result."""
        raise NotImplementedError


PROTOCOLS: Registry[Protocol] = Registry("protocol", "protocol.name")


def register_protocol(cls: type[Protocol]) -> type[Protocol]:
    """Register one instance of ``cls`` under ``cls.name`` (a class decorator)."""
    PROTOCOLS.register(cls.name, cls())
    return cls


def get_protocol(name: str) -> Protocol:
    """The registered protocol ``name`` (an unknown one names the registered ones)."""
    return PROTOCOLS.get(str(name))
