"""Training: one trainer (SGD recipe, checkpoint/resume, DDP), batching and augmentation."""

from roarkar.training.batches import ArrayBatches, epoch_generator
from roarkar.training.checkpoint import CheckpointMismatchError, load_checkpoint
from roarkar.training.distributed import DistInfo, setup
from roarkar.training.settings import TrainerSettings
from roarkar.training.trainer import Evaluation, FitResult, NonFiniteLossError, evaluate, fit

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
