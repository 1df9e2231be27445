"""Training curves where researchers look for them (``trainer.logger``): one row per epoch (train
loss, train accuracy, lr, images/s) in the folder a run checkpoints into (each cell's folder, the
base model's folder). ``csv``: ``train_log.csv``; ``tensorboard``: event files that
``tensorboard --logdir results/cells`` shows; ``none``: nothing.

Curves say how a run went, not what it computes: ``logger`` is in
:data:`roarkar.identity.NOT_RESULT_RELEVANT`. Only the process that checkpoints (rank 0) writes.
"""

from __future__ import annotations

import csv
import io
import math
from pathlib import Path
from typing import Protocol

from roarkar.files import write_text_atomic
from roarkar.registry import Registry

__all__ = ["COLUMNS", "CURVE_FILE", "LOGGERS", "CurveLogger", "open_logger"]

CURVE_FILE = "train_log.csv"
COLUMNS = ("epoch", "train_loss", "train_accuracy", "lr", "images_per_s")


class CurveLogger(Protocol):
    """Writes one row (the :data:`COLUMNS`) per finished epoch."""

    def log(self, row: dict) -> None: ...

    def close(self) -> None: ...


# name -> class(directory, done): ``done`` holds the rows of the epochs a resumed run has behind it
LOGGERS: Registry[type] = Registry("training logger", "trainer.logger")


@LOGGERS.register("none")
class NoLogger:
    """``trainer.logger=none``: no curves."""

    def __init__(self, directory: Path | None = None, done: list[dict] | None = None) -> None:
        pass

    def log(self, row: dict) -> None:
        pass

    def close(self) -> None:
        pass


@LOGGERS.register("csv")
class CsvLogger:
    """``train_log.csv``, rewritten whole and atomically every epoch from the rows of this run (the
    checkpoint's rows after a resume): a kill never leaves half a row or a repeated epoch."""

    def __init__(self, directory: Path, done: list[dict]) -> None:
        self.path = Path(directory) / CURVE_FILE
        self.rows = list(done)
        self._write()

    def log(self, row: dict) -> None:
        self.rows.append(row)
        self._write()

    def close(self) -> None:
        pass

    def _write(self) -> None:
        text = io.StringIO()
        writer = csv.DictWriter(text, COLUMNS, extrasaction="ignore", lineterminator="\n")
        writer.writeheader()
        writer.writerows(self.rows)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        write_text_atomic(self.path, text.getvalue())


@LOGGERS.register("tensorboard")
class TensorboardLogger:
    """TensorBoard scalars ``train/<column>`` at step = epoch. A resumed run purges what a killed
    one logged past its checkpoint (``purge_step``), so each epoch shows once."""

    def __init__(self, directory: Path, done: list[dict]) -> None:
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError as exc:
            raise ImportError(
                "trainer.logger=tensorboard needs the tensorboard package "
                "(pip install 'roarkar[tensorboard]'); or use trainer.logger=csv"
            ) from exc
        self.writer = SummaryWriter(log_dir=str(directory), purge_step=len(done) + 1)

    def log(self, row: dict) -> None:
        for column in COLUMNS[1:]:
            value = row.get(column)
            if value is not None and not math.isnan(value):
                self.writer.add_scalar(f"train/{column}", value, global_step=row["epoch"])
        self.writer.flush()

    def close(self) -> None:
        self.writer.close()


def open_logger(name: str, directory: Path | None, done: list[dict]) -> CurveLogger:
    """The ``trainer.logger`` named ``name`` writing into ``directory`` (None: no curves), after
    the rows ``done`` of the epochs already trained."""
    cls = LOGGERS.get(name)
    return NoLogger() if directory is None else cls(directory, done)
