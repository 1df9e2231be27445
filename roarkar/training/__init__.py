"""Training: one trainer (SGD recipe, checkpoint/resume, DDP), batching and augmentation."""

from roarkar.training.batches import ArrayBatches, epoch_generator
from roarkar.training.distributed import DistInfo, setup
from roarkar.training.trainer import (
    CheckpointMismatchError,
    Evaluation,
    FitResult,
    NonFiniteLossError,
    TrainerSettings,
    evaluate,
    fit,
    load_checkpoint,
)

__all__ = [
    "ArrayBatches",
    "CheckpointMismatchError",
    "DistInfo",
    "Evaluation",
    "FitResult",
    "NonFiniteLossError",
    "TrainerSettings",
    "epoch_generator",
    "evaluate",
    "fit",
    "load_checkpoint",
    "setup",
]
