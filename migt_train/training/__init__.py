"""Training: losses, learning-rate schedulers and the Trainer (checkpoints, resume, early stopping)."""

from migt_train.training.checkpoint import load_checkpoint
from migt_train.training.distributed import is_main_process
from migt_train.training.early_stopping import EarlyStopping
from migt_train.training.losses import (
    CombinedQuantileLoss,
    PinballLoss,
    QuantileCrossingPenalty,
    QuantileLossOutput,
)
from migt_train.training.profile import step_time_split
from migt_train.training.sampler import EpochSampler
from migt_train.training.schedulers import (
    ConstantScheduler,
    LinearWarmupScheduler,
    Scheduler,
    WarmupCosineScheduler,
)
from migt_train.training.trainer import TRAINER_DEFAULTS, FitResult, Trainer, TrainingInterrupted

__all__ = [
    "CombinedQuantileLoss",
    "ConstantScheduler",
    "EarlyStopping",
    "EpochSampler",
    "FitResult",
    "LinearWarmupScheduler",
    "PinballLoss",
    "QuantileCrossingPenalty",
    "QuantileLossOutput",
    "Scheduler",
    "TRAINER_DEFAULTS",
    "Trainer",
    "TrainingInterrupted",
    "WarmupCosineScheduler",
    "is_main_process",
    "load_checkpoint",
    "step_time_split",
]
